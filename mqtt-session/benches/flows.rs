//! Protocol-core cost per message: this crate's `Session` against rumqttc 0.25's `MqttState`
//! plus its codec (what rumqttc's event loop does between socket reads and writes), in the
//! same run, MQTT 3.1.1, 64-byte payloads, batches of 100 messages with an in-flight window
//! of 100 on both sides.
//!
//! Run with `cargo bench -p sansmqtt-session --bench flows`. Each iteration is one batch; the
//! throughput line is per message. Both sides do the same work per batch:
//!
//! * `outgoing_qos1`: hand 100 publishes to the state machine, encode them, read the 100
//!   PUBACKs a broker would answer (all in one read) and drain the completion events;
//! * `outgoing_qos2`: the same with PUBREC, the 100 PUBRELs it causes, and PUBCOMP;
//! * `incoming_qos1`: read 100 QoS 1 PUBLISHes (one read), hand the messages out (ours:
//!   `poll_event`, which queues the PUBACK; rumqttc: its `events` queue) and encode the 100
//!   PUBACKs;
//! * `incoming_qos2`: read 100 QoS 2 PUBLISHes, encode the PUBRECs, read the 100 PUBRELs and
//!   encode the PUBCOMPs.
//!
//! The acknowledgements a broker would send are built by one function for both sides
//! ([`acks_for`]), which reads the packet identifiers at their fixed offset in the (identical)
//! outgoing PUBLISH/PUBREL frames; it is part of the timed loop for both. Our session reads
//! from a byte slice into its own buffer, as the client driver does; rumqttc's side reads
//! from a `BytesMut` as its `Network` does. rumqttc stamps `Instant::now()` into its state on
//! every packet; our session takes `now` as an argument and is given the same instant
//! throughout.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_main};
use rumqttc::mqttbytes::v4 as rv4;
use sansmqtt_proto::{Encode, PacketId, ProtocolVersion, Publish, QoS};
use sansmqtt_session::{ConnectOptions, Event, Session, SessionConfig};

const BATCH: u16 = 100;
const TOPIC: &str = "sensors/room/004";
const PAYLOAD_LEN: usize = 64;
const MAX: usize = 1 << 20;
/// CONNACK, session not present, accepted.
const CONNACK: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

/// The one instant every call is given: the session never reads the clock itself.
#[allow(clippy::disallowed_methods)]
fn start() -> Instant {
    Instant::now()
}

fn payload() -> Bytes {
    (0..PAYLOAD_LEN)
        .map(|i| i as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn connected_session(now: Instant) -> Session {
    let mut config = SessionConfig::new("bench", ProtocolVersion::V311);
    config.max_inflight = BATCH;
    let mut session = Session::new(config);
    session
        .connect(now, ConnectOptions::new(Duration::from_secs(60)))
        .expect("connect");
    while session.poll_transmit(now).is_some() {}
    session.handle_read(now, &CONNACK);
    assert!(matches!(
        session.poll_event(),
        Some(Event::Connected { .. })
    ));
    session
}

fn rumqttc_state() -> rumqttc::MqttState {
    rumqttc::MqttState::new(BATCH, false)
}

/// The broker's answers to the QoS 1/2 PUBLISH (or PUBREL) frames in `sent`: for each frame,
/// a 4-byte acknowledgement of type `ack_type` with the frame's packet identifier. Frames are
/// walked by their fixed header; the identifier follows the topic in a PUBLISH and comes
/// first in a PUBREL.
fn acks_for(sent: &[u8], ack_type: u8, out: &mut BytesMut) {
    out.clear();
    let mut at = 0;
    while at < sent.len() {
        let first = sent[at];
        // Remaining length: every frame here is shorter than 16 KiB (at most two bytes).
        let (remaining, len_bytes) = if sent[at + 1] & 0x80 == 0 {
            (usize::from(sent[at + 1]), 1)
        } else {
            (
                usize::from(sent[at + 1] & 0x7f) | (usize::from(sent[at + 2]) << 7),
                2,
            )
        };
        let body = at + 1 + len_bytes;
        let id_at = if first >> 4 == 3 {
            body + 2 + usize::from(u16::from_be_bytes([sent[body], sent[body + 1]]))
        } else {
            body
        };
        out.put_slice(&[ack_type, 0x02, sent[id_at], sent[id_at + 1]]);
        at = body + remaining;
    }
}

/// 100 QoS `qos` PUBLISH frames with identifiers 1..=100, as a broker would send them.
fn incoming_publishes(qos: QoS) -> Vec<u8> {
    let mut out = BytesMut::new();
    for id in 1..=BATCH {
        let id = PacketId::new(id).expect("non-zero");
        Publish::new(TOPIC, payload())
            .with_qos(qos, id)
            .encode(ProtocolVersion::V311, &mut out)
            .expect("encodes");
    }
    out.to_vec()
}

/// 100 acknowledgements of type `ack_type` (first byte) for identifiers 1..=100.
fn acks_1_to_100(ack_type: u8) -> Vec<u8> {
    (1..=BATCH)
        .flat_map(|id| {
            let [hi, lo] = id.to_be_bytes();
            [ack_type, 0x02, hi, lo]
        })
        .collect()
}

const PUBACK: u8 = 0x40;
const PUBREC: u8 = 0x50;
const PUBREL: u8 = 0x62;
const PUBCOMP: u8 = 0x70;

// ---- ours --------------------------------------------------------------------------------

/// Hands every transmit out into `wire` (the bytes a driver would write).
fn transmit(session: &mut Session, now: Instant, wire: &mut BytesMut) {
    wire.clear();
    while let Some(bytes) = session.poll_transmit(now) {
        wire.put_slice(&bytes);
    }
}

/// Drains events, counting the ones that finish a flow (`Published`, `Message`).
fn drain(session: &mut Session) -> usize {
    let mut done = 0;
    while let Some(event) = session.poll_event() {
        if matches!(event, Event::Published { .. } | Event::Message(_)) {
            done += 1;
        }
        black_box(event);
    }
    done
}

fn ours_outgoing(c: &mut Criterion, qos: QoS, name: &str) {
    let now = start();
    let mut session = connected_session(now);
    let body = payload();
    let mut wire = BytesMut::with_capacity(64 * 1024);
    let mut acks = BytesMut::with_capacity(4096);
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(u64::from(BATCH)));
    g.bench_function("sansmqtt-session", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                let publish = Publish {
                    qos,
                    ..Publish::new(TOPIC, body.clone())
                };
                session.publish(now, publish).expect("accepted");
            }
            transmit(&mut session, now, &mut wire);
            let first_ack = if qos == QoS::AtLeastOnce {
                PUBACK
            } else {
                PUBREC
            };
            acks_for(&wire, first_ack, &mut acks);
            session.handle_read(now, &acks);
            if qos == QoS::ExactlyOnce {
                transmit(&mut session, now, &mut wire);
                acks_for(&wire, PUBCOMP, &mut acks);
                session.handle_read(now, &acks);
            }
            let done = drain(&mut session);
            assert_eq!(done, usize::from(BATCH));
        });
    });
    rumqttc_outgoing(&mut g, qos);
    g.finish();
}

fn ours_incoming(c: &mut Criterion, qos: QoS, name: &str) {
    let now = start();
    let mut session = connected_session(now);
    let publishes = incoming_publishes(qos);
    let pubrels = acks_1_to_100(PUBREL);
    let mut wire = BytesMut::with_capacity(64 * 1024);
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(u64::from(BATCH)));
    g.bench_function("sansmqtt-session", |b| {
        b.iter(|| {
            session.handle_read(now, black_box(&publishes));
            let done = drain(&mut session);
            assert_eq!(done, usize::from(BATCH));
            transmit(&mut session, now, &mut wire);
            if qos == QoS::ExactlyOnce {
                session.handle_read(now, black_box(&pubrels));
                drain(&mut session);
                transmit(&mut session, now, &mut wire);
            }
            wire.len()
        });
    });
    rumqttc_incoming(&mut g, qos);
    g.finish();
}

// ---- rumqttc -----------------------------------------------------------------------------

/// Encodes what the state returned, as rumqttc's `Network::write` does.
fn write_rumqttc(packet: Option<rv4::Packet>, wire: &mut BytesMut) {
    if let Some(packet) = packet {
        packet.write(wire, MAX).expect("encodes");
    }
}

/// Reads every whole packet from `read` into the state, as rumqttc's event loop does;
/// replies are encoded into `wire`.
fn read_rumqttc(state: &mut rumqttc::MqttState, read: &mut BytesMut, wire: &mut BytesMut) {
    while !read.is_empty() {
        let packet = rv4::Packet::read(read, MAX).expect("decodes");
        let reply = state.handle_incoming_packet(packet).expect("valid");
        write_rumqttc(reply, wire);
    }
}

fn drain_rumqttc(state: &mut rumqttc::MqttState) -> usize {
    let mut done = 0;
    while let Some(event) = state.events.pop_front() {
        if matches!(
            event,
            rumqttc::Event::Incoming(
                rv4::Packet::PubAck(_) | rv4::Packet::PubComp(_) | rv4::Packet::Publish(_)
            )
        ) {
            done += 1;
        }
        black_box(event);
    }
    done
}

fn rumqttc_outgoing(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    qos: QoS,
) {
    let mut state = rumqttc_state();
    let body = payload();
    let their_qos = match qos {
        QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    };
    let mut wire = BytesMut::with_capacity(64 * 1024);
    let mut replies = BytesMut::with_capacity(64 * 1024);
    let mut acks = BytesMut::with_capacity(4096);
    g.bench_function("rumqttc", |b| {
        b.iter(|| {
            wire.clear();
            for _ in 0..BATCH {
                let publish = rv4::Publish::from_bytes(TOPIC, their_qos, body.clone());
                let packet = state
                    .handle_outgoing_packet(rumqttc::Request::Publish(publish))
                    .expect("accepted");
                write_rumqttc(packet, &mut wire);
            }
            let first_ack = if qos == QoS::AtLeastOnce {
                PUBACK
            } else {
                PUBREC
            };
            acks_for(&wire, first_ack, &mut acks);
            replies.clear();
            read_rumqttc(&mut state, &mut acks, &mut replies);
            if qos == QoS::ExactlyOnce {
                acks_for(&replies, PUBCOMP, &mut acks);
                replies.clear();
                read_rumqttc(&mut state, &mut acks, &mut replies);
            }
            let done = drain_rumqttc(&mut state);
            assert_eq!(done, usize::from(BATCH));
        });
    });
}

fn rumqttc_incoming(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    qos: QoS,
) {
    let mut state = rumqttc_state();
    let publishes = incoming_publishes(qos);
    let pubrels = acks_1_to_100(PUBREL);
    let mut read = BytesMut::with_capacity(64 * 1024);
    let mut wire = BytesMut::with_capacity(64 * 1024);
    g.bench_function("rumqttc", |b| {
        b.iter(|| {
            wire.clear();
            read.put_slice(black_box(&publishes));
            read_rumqttc(&mut state, &mut read, &mut wire);
            let done = drain_rumqttc(&mut state);
            assert_eq!(done, usize::from(BATCH));
            if qos == QoS::ExactlyOnce {
                read.put_slice(black_box(&pubrels));
                read_rumqttc(&mut state, &mut read, &mut wire);
                drain_rumqttc(&mut state);
            }
            wire.len()
        });
    });
}

fn outgoing_qos1(c: &mut Criterion) {
    ours_outgoing(c, QoS::AtLeastOnce, "outgoing_qos1");
}

fn outgoing_qos2(c: &mut Criterion) {
    ours_outgoing(c, QoS::ExactlyOnce, "outgoing_qos2");
}

fn incoming_qos1(c: &mut Criterion) {
    ours_incoming(c, QoS::AtLeastOnce, "incoming_qos1");
}

fn incoming_qos2(c: &mut Criterion) {
    ours_incoming(c, QoS::ExactlyOnce, "incoming_qos2");
}

/// Holds the undocumented `pub fn` that `criterion_group!` generates.
#[allow(missing_docs)]
mod group {
    use criterion::criterion_group;

    criterion_group!(
        benches,
        super::outgoing_qos1,
        super::outgoing_qos2,
        super::incoming_qos1,
        super::incoming_qos2
    );
}

criterion_main!(group::benches);
