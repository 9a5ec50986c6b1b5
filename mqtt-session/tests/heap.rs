//! The session's heap use per connection, counted by `stats_alloc`'s instrumented system
//! allocator (this binary's global allocator; no `unsafe` needed): an idle connected session,
//! the same with 10 QoS 1 and 10 QoS 2 publishes in flight, and the allocations per message
//! of a steady publish loop that hands bytes out through `poll_transmit_into`.
//!
//! The counters are process-wide, so this binary runs without libtest's harness
//! (`harness = false`; libtest-mimic reads libtest's command line and runs the test on the
//! main thread): only this thread runs while a region is measured. It prints the
//! figures the crate docs and docs/decisions.md quote, and fails if they grow past the bounds
//! below (a regression in the session's memory, not a timing).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::alloc::System;
use std::time::{Duration, Instant};

use sansmqtt_session::proto::{ByteString, Bytes, ProtocolVersion, Publish, QoS};
use sansmqtt_session::{ConnectOptions, MemoryStore, Session, SessionConfig};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, Stats, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// A 16-byte topic name.
const TOPIC: &str = "sensors/0042/tmp";
/// A 64-byte payload.
const PAYLOAD: &[u8; 64] =
    b"{\"temperature\":21.5,\"humidity\":40.25,\"unit\":\"C\",\"seq\":123456789}";
/// The device's transmit buffer.
const TX: usize = 1024;
/// Messages in the steady-state loop.
const LOOP: usize = 1000;

/// Heap bytes still held at the end of a region (a reallocation's growth or shrinkage is
/// already in `bytes_allocated` / `bytes_deallocated`).
fn live(stats: &Stats) -> isize {
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

fn message(qos: QoS) -> Publish {
    // Static topic and payload: the application's buffers, which the session references
    // (`Bytes` clones) rather than copies, so what is counted is the session's own memory.
    Publish {
        qos,
        ..Publish::new(ByteString::from_static(TOPIC), Bytes::from_static(PAYLOAD))
    }
}

/// Drains events (dropping them) and hands every byte out through a fixed buffer.
fn drain(session: &mut Session, now: Instant) -> usize {
    let mut tx = [0u8; TX];
    let mut sent = 0;
    loop {
        while session.poll_event().is_some() {}
        let n = session.poll_transmit_into(now, &mut tx);
        if n == 0 && session.pending_events() == 0 {
            return sent;
        }
        sent += n;
    }
}

/// `[type, 2, id]`: PUBACK (0x40), PUBREC (0x50) or PUBCOMP (0x70) for `id`.
fn ack(kind: u8, id: u16) -> [u8; 4] {
    let [hi, lo] = id.to_be_bytes();
    [kind, 0x02, hi, lo]
}

struct Figures {
    idle: isize,
    in_flight: isize,
    /// Per QoS: allocations plus reallocations in the whole loop, and bytes allocated.
    per_message: [(QoS, usize, usize); 3],
}

fn measure(version: ProtocolVersion) -> Figures {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let connack: &[u8] = if version.is_v5() {
        &[0x20, 0x03, 0x00, 0x00, 0x00]
    } else {
        &[0x20, 0x02, 0x00, 0x00]
    };

    let region = Region::new(GLOBAL);
    let mut session: Session = Session::new(SessionConfig::new("heap-client-0001", version));
    session
        .connect(now, ConnectOptions::new(Duration::from_secs(30)))
        .unwrap();
    drain(&mut session, now);
    session.handle_read(now, connack);
    drain(&mut session, now);
    assert!(session.is_connected());
    let idle = live(&region.change());

    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for _ in 0..10 {
            session.publish(now, message(qos)).unwrap();
            // A device's loop drains after every command.
            drain(&mut session, now);
        }
    }
    drain(&mut session, now);
    assert_eq!(session.inflight_len(), 20);
    let in_flight = live(&region.change());

    // Complete them: PUBACK 1-10, PUBREC then PUBCOMP 11-20.
    for id in 1..=10 {
        session.handle_read(now, &ack(0x40, id));
    }
    for id in 11..=20 {
        session.handle_read(now, &ack(0x50, id));
        drain(&mut session, now);
        session.handle_read(now, &ack(0x70, id));
    }
    drain(&mut session, now);
    assert_eq!(session.inflight_len(), 0);

    let per_message = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce].map(|qos| {
        let region = Region::new(GLOBAL);
        for _ in 0..LOOP {
            session.publish(now, message(qos)).unwrap();
            drain(&mut session, now);
            // Identifiers are allocated lowest-first: the one just freed comes back.
            match qos {
                QoS::AtMostOnce => {}
                QoS::AtLeastOnce => session.handle_read(now, &ack(0x40, 1)),
                QoS::ExactlyOnce => {
                    session.handle_read(now, &ack(0x50, 1));
                    drain(&mut session, now);
                    session.handle_read(now, &ack(0x70, 1));
                }
            }
            drain(&mut session, now);
        }
        assert_eq!(session.inflight_len(), 0);
        let stats = region.change();
        (
            qos,
            stats.allocations + stats.reallocations,
            stats.bytes_allocated,
        )
    });
    drop(session);
    Figures {
        idle,
        in_flight,
        per_message,
    }
}

/// The figures, printed, and their bounds.
fn session_heap_per_connection() {
    println!(
        "size_of Session (std Instant): {} bytes; Session<MemoryStore, Duration>: {} bytes",
        size_of::<Session>(),
        size_of::<Session<MemoryStore, Duration>>()
    );
    println!(
        "size_of OutgoingFlight {} bytes, Publish {} bytes",
        size_of::<sansmqtt_session::store::OutgoingFlight>(),
        size_of::<Publish>()
    );
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let figures = measure(version);
        println!(
            "{version}: heap of an idle connected session {} bytes; with 10 QoS 1 + 10 QoS 2 \
             in flight {} bytes ({} per message)",
            figures.idle,
            figures.in_flight,
            (figures.in_flight - figures.idle) / 20
        );
        for (qos, allocations, bytes) in figures.per_message {
            println!(
                "{version}: {LOOP} {qos:?} publishes through poll_transmit_into: \
                 {allocations} allocations, {bytes} bytes allocated"
            );
            // Steady state: buffers and tables are reused; at most a one-off growth.
            assert!(
                allocations <= 2,
                "{version} {qos:?}: {allocations} allocations in {LOOP} publishes"
            );
        }
        // Bounds with room above today's figures (640-672 and about 4,100 bytes): growth
        // past them is a regression worth a look.
        assert!(figures.idle < 1024, "idle session: {} bytes", figures.idle);
        assert!(
            figures.in_flight < 6 * 1024,
            "20 in flight: {} bytes",
            figures.in_flight
        );
    }
}

fn main() -> std::process::ExitCode {
    // libtest's command line (`--list`, `--exact`, filters, `--ignored`), so that
    // `cargo test -- --list` and nextest list this test without running it.
    let mut args = libtest_mimic::Arguments::from_args();
    // On the main thread, with no harness thread allocating beside it.
    args.test_threads = Some(1);
    let test = libtest_mimic::Trial::test("session_heap_per_connection", || {
        session_heap_per_connection();
        Ok(())
    });
    libtest_mimic::run(&args, vec![test]).exit_code()
}
