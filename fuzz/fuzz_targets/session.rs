//! Feeds arbitrary bytes, in arbitrary chunks and interleaved with commands and timer ticks,
//! to a connected session. The session must never panic, never buffer more than one packet's
//! worth of input, and once it reports a fatal error it must stop reading.
//!
//! Input layout: byte 0 picks the version and options; then a sequence of steps, each a tag
//! byte followed by its data: 0..=127 a chunk of network bytes (length = tag + 1), otherwise a
//! command or a clock advance chosen by the tag.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sansmqtt_proto::{ConnAck, Encode, ProtocolVersion, Publish, QoS, SubscribeFilter};
use sansmqtt_session::{AckMode, ConnectOptions, ConnectionState, Session, SessionConfig};

const MAX_PACKET: u32 = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let version = if first & 1 == 0 {
        ProtocolVersion::V311
    } else {
        ProtocolVersion::V5
    };
    let mut config = SessionConfig::new("fuzz", version);
    config.max_packet_size = MAX_PACKET;
    config.max_inflight = 8;
    config.max_queued = 16;
    if first & 2 != 0 {
        config.ack_mode = AckMode::Manual;
    }
    let mut session = Session::new(config);
    let start = Instant::now();
    let mut now = start;
    let mut options = ConnectOptions::new(Duration::from_secs(5));
    options.clean_start = first & 4 != 0;
    session.connect(now, options).expect("a new session connects");
    let mut connack = Vec::new();
    ConnAck::new(false)
        .encode(version, &mut connack)
        .expect("CONNACK encodes");
    session.handle_read(now, &connack);
    let mut acks = Vec::new();

    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        match tag {
            0..=127 => {
                let len = usize::from(tag) + 1;
                let (chunk, tail) = rest.split_at(len.min(rest.len()));
                rest = tail;
                session.handle_read(now, chunk);
            }
            128..=159 => {
                let qos = QoS::from_u8(tag % 3).unwrap_or_default();
                let publish = Publish {
                    qos,
                    ..Publish::new("fuzz/topic", vec![tag; usize::from(tag % 7)])
                };
                let _ = session.publish(now, publish);
            }
            160..=175 => {
                let filter = SubscribeFilter::new("fuzz/#", QoS::ExactlyOnce);
                let _ = session.subscribe(now, vec![filter], Default::default());
            }
            176..=191 => {
                let _ = session.unsubscribe(now, vec!["fuzz/#".into()]);
            }
            192..=207 => {
                let _ = session.ping(now);
            }
            208..=223 => {
                if let Some(token) = acks.pop() {
                    let _ = session.ack(now, token);
                }
            }
            224..=239 => {
                now += Duration::from_millis(u64::from(tag - 223) * 700);
                session.handle_timeout(now);
            }
            240..=247 => session.handle_transport_closed(now),
            248..=251 => {
                let mut options = ConnectOptions::new(Duration::from_secs(5));
                options.clean_start = tag & 1 == 0;
                if session.connect(now, options).is_ok() {
                    session.handle_read(now, &connack);
                }
            }
            _ => {
                let _ = session.disconnect(now, Default::default());
            }
        }
        while let Some(event) = session.poll_event() {
            if let sansmqtt_session::Event::Message(message) = event
                && let Some(token) = message.ack
            {
                acks.push(token);
            }
        }
        while session.poll_transmit(now).is_some() {}
        // A partial packet is all that may be buffered, and it is bounded by the maximum.
        assert!(
            session.buffered_len() <= MAX_PACKET as usize + 128,
            "buffered {} bytes",
            session.buffered_len()
        );
        assert!(session.queued_len() <= 16);
        assert!(session.inflight_len() <= 8);
        if session.state() == ConnectionState::Disconnected {
            assert!(session.poll_timeout().is_none(), "no timers without a connection");
        }
    }
});
