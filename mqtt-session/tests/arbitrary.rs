//! Arbitrary inputs never panic the session: any sequence of commands (connect, publish,
//! subscribe, unsubscribe, ping, ack, disconnect), timeouts at arbitrary times and transport
//! closes, interleaved with arbitrary byte chunks (random bytes, and valid server packets
//! with random fields and identifiers, split at random points). After each step the session
//! is drained the way a driver drains it, and its buffers stay bounded.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use sansmqtt_proto::properties::{AckProperties, ConnAckProperties, PublishProperties};
use sansmqtt_proto::{
    Auth, ConnAck, Disconnect, Encode, Packet, PacketId, PingResp, ProtocolVersion, PubAck,
    PubComp, PubRec, PubRel, Publish, QoS, ReasonCode, SubAck, SubscribeFilter, UnsubAck,
};
use sansmqtt_session::{AckMode, AckToken, ConnectOptions, Event, Session, SessionConfig};

const MAX_PACKET: u32 = 1024;
const MAX_CHUNK: usize = 64;
const MAX_INFLIGHT: u16 = 4;
const MAX_QUEUED: usize = 8;

const TOPICS: [&str; 4] = ["a", "a/b", "sensors/1/temp", "$SYS/x"];
const FILTERS: [&str; 4] = ["a/#", "+/b", "#", "sensors/+/temp"];

/// Reason codes of every kind, valid or not for a given packet: encoding weeds out those a
/// packet cannot carry.
fn reason() -> impl Strategy<Value = ReasonCode> {
    select(
        [
            0x00u8, 0x01, 0x02, 0x04, 0x10, 0x11, 0x18, 0x19, 0x80, 0x81, 0x82, 0x87, 0x8D, 0x8E,
            0x91, 0x92, 0x93, 0x94, 0x95, 0x97, 0x9B,
        ]
        .as_slice(),
    )
    .prop_map(|code| ReasonCode::from_u8(code).unwrap())
}

fn qos() -> impl Strategy<Value = QoS> {
    select([QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce].as_slice())
}

/// Small identifiers collide with the session's own (allocated lowest first); any value is
/// possible.
fn packet_id() -> impl Strategy<Value = PacketId> {
    prop_oneof![6 => 1u16..5, 1 => 1u16..=u16::MAX].prop_map(|id| PacketId::new(id).unwrap())
}

fn publish() -> impl Strategy<Value = Packet> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![9 => select(TOPICS.as_slice()).prop_map(String::from), 1 => Just(String::new())],
        packet_id(),
        proptest::option::weighted(0.2, 0u16..6),
        vec(any::<u8>(), 0..24),
    )
        .prop_map(|(qos, dup, retain, topic, id, alias, payload)| {
            let mut publish = Publish::new(topic, payload).with_qos(qos, id);
            publish.dup = dup;
            publish.retain = retain;
            publish.properties = PublishProperties {
                topic_alias: alias,
                ..Default::default()
            }
            .into();
            Packet::Publish(publish)
        })
}

fn connack() -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        prop_oneof![3 => Just(ReasonCode::Success), 1 => reason()],
        proptest::option::of(0u16..6),
        proptest::option::of(qos()),
        proptest::option::of(0u16..4),
        proptest::option::of(0u16..5),
        proptest::option::of(0u32..200),
    )
        .prop_map(
            |(present, code, receive_max, max_qos, alias_max, keep_alive, max_size)| {
                Packet::from(ConnAck {
                    session_present: present,
                    reason_code: code,
                    properties: ConnAckProperties {
                        receive_maximum: receive_max,
                        maximum_qos: max_qos,
                        topic_alias_maximum: alias_max,
                        server_keep_alive: keep_alive,
                        maximum_packet_size: max_size,
                        ..Default::default()
                    },
                })
            },
        )
}

/// A packet a server could send, with random fields (some invalid for the moment or the
/// version; those the codec refuses to encode become no-ops).
fn server_packet() -> impl Strategy<Value = Packet> {
    let ack = || (packet_id(), reason());
    prop_oneof![
        2 => connack(),
        4 => publish(),
        2 => ack().prop_map(|(id, code)| Packet::PubAck(PubAck { reason_code: code, ..PubAck::new(id) })),
        2 => ack().prop_map(|(id, code)| Packet::PubRec(PubRec { reason_code: code, ..PubRec::new(id) })),
        2 => ack().prop_map(|(id, code)| Packet::PubRel(PubRel { reason_code: code, ..PubRel::new(id) })),
        2 => ack().prop_map(|(id, code)| Packet::PubComp(PubComp { reason_code: code, ..PubComp::new(id) })),
        2 => (packet_id(), vec(reason(), 1..4)).prop_map(|(id, codes)| Packet::SubAck(SubAck {
            packet_id: id,
            reason_codes: codes,
            properties: AckProperties::default(),
        })),
        1 => (packet_id(), vec(reason(), 0..3)).prop_map(|(id, codes)| Packet::UnsubAck(UnsubAck {
            packet_id: id,
            reason_codes: codes,
            properties: AckProperties::default(),
        })),
        1 => Just(Packet::PingResp(PingResp)),
        1 => reason().prop_map(|code| Packet::from(Disconnect::new(code))),
        1 => reason().prop_map(|code| Packet::from(Auth { reason_code: code, properties: Default::default() })),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Connect {
        clean: bool,
        keep_alive: u8,
    },
    /// When disconnected: connect, and the server accepts.
    Reconnect {
        clean: bool,
        present: bool,
    },
    Publish {
        qos: QoS,
        topic: usize,
        retain: bool,
        len: usize,
    },
    Subscribe {
        filters: Vec<usize>,
        qos: QoS,
    },
    Unsubscribe {
        filters: Vec<usize>,
    },
    Ping,
    Ack(usize),
    Disconnect(ReasonCode),
    /// Advance the clock by this many milliseconds, or to the session's deadline.
    Timeout {
        millis: u32,
        to_deadline: bool,
    },
    TransportClosed,
    Bytes(Vec<u8>),
    /// A valid encoding, delivered in two pieces split at `split`.
    Packet {
        packet: Box<Packet>,
        split: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (any::<bool>(), 0u8..5).prop_map(|(clean, keep_alive)| Op::Connect { clean, keep_alive }),
        3 => (any::<bool>(), any::<bool>()).prop_map(|(clean, present)| Op::Reconnect { clean, present }),
        4 => (qos(), 0..TOPICS.len(), any::<bool>(), 0usize..2000)
            .prop_map(|(qos, topic, retain, len)| Op::Publish { qos, topic, retain, len }),
        1 => (vec(0..FILTERS.len(), 0..3), qos()).prop_map(|(filters, qos)| Op::Subscribe { filters, qos }),
        1 => vec(0..FILTERS.len(), 0..3).prop_map(|filters| Op::Unsubscribe { filters }),
        1 => Just(Op::Ping),
        2 => any::<usize>().prop_map(Op::Ack),
        1 => reason().prop_map(Op::Disconnect),
        3 => (0u32..40_000, any::<bool>()).prop_map(|(millis, to_deadline)| Op::Timeout { millis, to_deadline }),
        1 => Just(Op::TransportClosed),
        3 => vec(any::<u8>(), 0..MAX_CHUNK).prop_map(Op::Bytes),
        10 => (server_packet(), any::<usize>()).prop_map(|(packet, split)| Op::Packet { packet: Box::new(packet), split }),
    ]
}

struct Driver {
    session: Session,
    version: ProtocolVersion,
    now: Instant,
    acks: Vec<AckToken>,
    ops: usize,
}

impl Driver {
    /// Drains the session the way an adapter does, and checks its bounds.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        loop {
            let mut progressed = false;
            while let Some(event) = self.session.poll_event() {
                progressed = true;
                if let Event::Message(message) = event
                    && let Some(token) = message.ack
                {
                    self.acks.push(token);
                }
            }
            while self.session.poll_transmit(self.now).is_some() {
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        let s = &self.session;
        prop_assert!(s.buffered_len() <= MAX_PACKET as usize + MAX_CHUNK);
        prop_assert!(s.inflight_len() <= usize::from(MAX_INFLIGHT));
        prop_assert!(s.queued_len() <= MAX_QUEUED);
        prop_assert_eq!(s.pending_events(), 0);
        prop_assert!(s.packet_ids_in_use() <= usize::from(MAX_INFLIGHT) + self.ops);
        if let Some(at) = s.poll_timeout() {
            // A deadline is never more than the longest timer away.
            prop_assert!(at <= self.now + Duration::from_secs(3600));
        }
        Ok(())
    }

    fn apply(&mut self, op: Op) {
        let now = self.now;
        let s = &mut self.session;
        // Commands may be refused (not connected, queue full, invalid now): never a panic.
        match op {
            Op::Connect { clean, keep_alive } => {
                let mut options = ConnectOptions::new(Duration::from_secs(keep_alive.into()));
                options.clean_start = clean;
                let _ = s.connect(now, options);
            }
            Op::Reconnect { clean, present } => {
                let mut options = ConnectOptions::new(Duration::from_secs(2));
                options.clean_start = clean;
                if s.connect(now, options).is_ok() {
                    let connack = Packet::from(ConnAck::new(present && !clean));
                    self.apply(Op::Packet {
                        packet: Box::new(connack),
                        split: 3,
                    });
                }
            }
            Op::Publish {
                qos,
                topic,
                retain,
                len,
            } => {
                let mut publish = Publish::new(TOPICS[topic], Bytes::from(vec![7u8; len]));
                publish.qos = qos;
                publish.retain = retain;
                let _ = s.publish(now, publish);
            }
            Op::Subscribe { filters, qos } => {
                let filters = filters
                    .into_iter()
                    .map(|i| SubscribeFilter::new(FILTERS[i], qos))
                    .collect();
                let _ = s.subscribe(now, filters, Default::default());
            }
            Op::Unsubscribe { filters } => {
                let filters = filters.into_iter().map(|i| FILTERS[i].into()).collect();
                let _ = s.unsubscribe(now, filters);
            }
            Op::Ping => {
                let _ = s.ping(now);
            }
            Op::Ack(i) => {
                if !self.acks.is_empty() {
                    let token = self.acks[i % self.acks.len()];
                    let _ = s.ack(now, token);
                }
            }
            Op::Disconnect(reason) => {
                let _ = s.disconnect(now, Disconnect::new(reason));
            }
            Op::Timeout {
                millis,
                to_deadline,
            } => {
                let deadline = s.poll_timeout().filter(|_| to_deadline);
                self.now =
                    deadline.map_or(now + Duration::from_millis(millis.into()), |at| at.max(now));
                s.handle_timeout(self.now);
            }
            Op::TransportClosed => s.handle_transport_closed(now),
            Op::Bytes(bytes) => s.handle_read(now, &bytes),
            Op::Packet { packet, split } => {
                let mut buf = BytesMut::new();
                if packet.encode(self.version, &mut buf).is_ok() {
                    for chunk in buf.chunks(MAX_CHUNK) {
                        let at = split % (chunk.len() + 1);
                        s.handle_read(now, &chunk[..at]);
                        s.handle_read(now, &chunk[at..]);
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_inputs_never_panic_and_stay_bounded(
        v5 in any::<bool>(),
        manual in any::<bool>(),
        connect_first in any::<bool>(),
        ops in vec(op(), 0..160),
    ) {
        let version = if v5 { ProtocolVersion::V5 } else { ProtocolVersion::V311 };
        let mut config = SessionConfig::new("prop", version);
        config.max_packet_size = MAX_PACKET;
        config.max_inflight = MAX_INFLIGHT;
        config.max_queued = MAX_QUEUED;
        config.receive_maximum = 3;
        config.topic_alias_maximum = 4;
        config.outgoing_topic_aliases = true;
        config.ack_mode = if manual { AckMode::Manual } else { AckMode::Auto };
        // The one clock reading: only offsets from it matter.
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let mut driver = Driver {
            session: Session::new(config),
            version,
            now,
            acks: Vec::new(),
            ops: 0,
        };
        if connect_first {
            // Most interesting input needs a connection: start with one accepted.
            driver.apply(Op::Connect { clean: true, keep_alive: 2 });
            driver.apply(Op::Packet { packet: Box::new(Packet::from(ConnAck::new(false))), split: 1 });
            driver.drain()?;
        }
        for op in ops {
            driver.ops += 1;
            driver.apply(op);
            driver.drain()?;
        }
    }
}
