//! Memory behaviour of the hot path: decoding PUBLISH packets from a receive buffer in a
//! steady-state read loop slices topic and payload out of that buffer instead of copying
//! them, and encoding a PUBLISH into a buffer with room for it writes in place.
//!
//! Allocations are counted by `stats_alloc`'s instrumented system allocator, installed as
//! this test binary's global allocator: it keeps the project free of `unsafe` code (the
//! workspace forbids it) while counting every allocation. The counters are process-wide, so
//! this binary runs without libtest's harness (`harness = false`): the harness's own threads
//! (output capture, slow-test notices) allocate at moments of their choosing, which under load
//! landed inside a measured region. libtest-mimic reads libtest's command line and runs the test
//! on the main thread: only this thread runs while the loops are measured.
#![allow(clippy::unwrap_used)]

use std::alloc::System;
use std::ops::Range;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

use sansmqtt_proto::{
    ByteString, Bytes, BytesMut, Encode, MAX_PACKET_SIZE, Packet, PacketId, ProtocolVersion,
    Publish, QoS, decode,
};

// ---- the workload -----------------------------------------------------------------------

/// How many PUBLISH packets one measurement decodes.
const N: usize = 512;
/// A 16-byte topic name.
const TOPIC: &str = "sensors/0042/tmp";
/// A 64-byte payload.
const PAYLOAD: &[u8; 64] =
    b"{\"temperature\":21.5,\"humidity\":40.25,\"unit\":\"C\",\"seq\":123456789}";

/// `N` publishes alternating QoS 0 and QoS 1, without properties (so, in MQTT 5, without user
/// properties): the common case on a busy connection.
fn publishes() -> Vec<Publish> {
    assert_eq!(TOPIC.len(), 16);
    let topic = ByteString::from_static(TOPIC);
    let payload = Bytes::from_static(PAYLOAD);
    (0..N)
        .map(|i| {
            let publish = Publish::new(topic.clone(), payload.clone());
            if i % 2 == 0 {
                publish
            } else {
                let id = PacketId::new(u16::try_from(i).unwrap()).unwrap();
                publish.with_qos(QoS::AtLeastOnce, id)
            }
        })
        .collect()
}

/// A receive buffer as a read loop holds it after its first packet: a PINGRESP that has been
/// decoded already (so the buffer has been split once), followed by all of `publishes`.
///
/// A fresh `BytesMut` owns its storage like a `Vec`; the first `split_to` (which `decode`
/// performs to hand out the packet's bytes) must allocate a shared, reference-counted header
/// for the storage, and every split after that only increments its reference count. A real
/// connection pays that once, for its first packet; decoding the PINGRESP first puts this
/// buffer in the same state, so what is measured afterwards is the cost per packet.
fn steady_state_buffer(version: ProtocolVersion, publishes: &[Publish]) -> BytesMut {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let storage = buf.as_ptr();
    Packet::PingResp(sansmqtt_proto::PingResp)
        .encode(version, &mut buf)
        .unwrap();
    for publish in publishes {
        publish.encode(version, &mut buf).unwrap();
    }
    assert_eq!(
        buf.as_ptr(),
        storage,
        "every packet fit without growing the buffer"
    );
    let first = decode(&mut buf, version, MAX_PACKET_SIZE).unwrap();
    assert_eq!(first, Some(Packet::PingResp(sansmqtt_proto::PingResp)));
    buf
}

/// The byte range a slice occupies in memory.
fn span(bytes: &[u8]) -> Range<usize> {
    let start = bytes.as_ptr() as usize;
    start..start + bytes.len()
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

fn check_decoding(version: ProtocolVersion) {
    let expected = publishes();
    let mut buf = steady_state_buffer(version, &expected);
    let storage = span(&buf);
    let mut decoded = Vec::with_capacity(N);

    let region = Region::new(GLOBAL);
    for _ in 0..N {
        match decode(&mut buf, version, MAX_PACKET_SIZE) {
            Ok(Some(Packet::Publish(publish))) => decoded.push(publish),
            other => panic!("expected a PUBLISH, got {other:?}"),
        }
    }
    let stats = region.change();
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "decoding {N} PUBLISH packets ({version}) allocated"
    );

    assert!(buf.is_empty());
    assert_eq!(decoded, expected);
    for publish in &decoded {
        let topic = span(publish.topic.as_bytes());
        let payload = span(&publish.payload);
        assert!(
            contains(&storage, &topic),
            "topic is a slice of the receive buffer"
        );
        assert!(
            contains(&storage, &payload),
            "payload is a slice of the receive buffer"
        );
        assert!(
            topic.end <= payload.start,
            "topic precedes payload in its packet"
        );
    }
}

fn check_encoding(version: ProtocolVersion) {
    let publishes = publishes();
    let total: usize = publishes
        .iter()
        .map(|publish| publish.encoded_len(version).unwrap())
        .sum();
    let mut out = BytesMut::with_capacity(total);
    let storage = out.as_ptr();

    let capacity = out.capacity();

    let region = Region::new(GLOBAL);
    let written: usize = publishes
        .iter()
        .map(|publish| publish.encode(version, &mut out).unwrap())
        .sum();
    let stats = region.change();
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "encoding {N} PUBLISH packets ({version}) allocated"
    );

    assert_eq!(out.capacity(), capacity, "the output buffer did not grow");
    assert_eq!(written, total);
    assert_eq!(out.len(), total);
    assert_eq!(
        out.as_ptr(),
        storage,
        "the output buffer was not reallocated"
    );
}

/// Both versions, decoding and encoding.
fn publish_hot_path_allocates_nothing_and_copies_nothing() {
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        check_decoding(version);
        check_encoding(version);
    }
}

fn main() -> std::process::ExitCode {
    // libtest's command line (`--list`, `--exact`, filters, `--ignored`), so that
    // `cargo test -- --list` and nextest list this test without running it.
    let mut args = libtest_mimic::Arguments::from_args();
    // On the main thread, with no harness thread allocating beside it.
    args.test_threads = Some(1);
    let test = libtest_mimic::Trial::test(
        "publish_hot_path_allocates_nothing_and_copies_nothing",
        || {
            publish_hot_path_allocates_nothing_and_copies_nothing();
            Ok(())
        },
    );
    libtest_mimic::run(&args, vec![test]).exit_code()
}
