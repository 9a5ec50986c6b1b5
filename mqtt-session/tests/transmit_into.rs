//! `poll_transmit_into`: the session's bytes copied into a caller's fixed buffer, a packet
//! larger than the buffer handed out over several calls without losing a byte.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::{Harness, connect_v3, connect_v5, decode_all, message};
use sansmqtt_session::proto::{BytesMut, Packet, PingResp, ProtocolVersion, QoS, ReasonCode};
use sansmqtt_session::{ConnectionState, Event};

/// A payload far larger than the small buffers below.
const PAYLOAD: &str = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\
                       0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz";

/// Queues a QoS 0, a QoS 1 and a QoS 2 publish of [`PAYLOAD`] and a ping.
fn queue_mixed(h: &mut Harness) {
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        h.session
            .publish(h.now(), message("t/big", PAYLOAD, qos))
            .unwrap();
    }
    h.session.ping(h.now()).unwrap();
}

/// Drains `poll_transmit_into` with a buffer of `size` bytes; every call but the last fills
/// it.
fn drain_into(h: &mut Harness, size: usize) -> Vec<u8> {
    let mut buf = vec![0u8; size];
    let mut wire = Vec::new();
    loop {
        let n = h.session.poll_transmit_into(h.now(), &mut buf);
        if n == 0 {
            return wire;
        }
        assert!(n <= size);
        wire.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn chunks_of_any_size_make_the_same_stream_as_poll_transmit() {
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut reference = common::connected(version);
        queue_mixed(&mut reference);
        let mut expected = Vec::new();
        while let Some(bytes) = reference.session.poll_transmit(reference.now()) {
            expected.extend_from_slice(&bytes);
        }
        assert!(expected.len() > 3 * PAYLOAD.len());
        for size in [1, 2, 7, 64, 150, expected.len(), 64 * 1024] {
            let mut h = common::connected(version);
            queue_mixed(&mut h);
            assert_eq!(
                drain_into(&mut h, size),
                expected,
                "{version:?}, {size}-byte buffer"
            );
            assert_eq!(h.session.buffered_len(), 0);
        }
    }
}

#[test]
fn a_buffer_smaller_than_the_packet_loses_nothing_and_qos0_completes_after_its_last_byte() {
    let mut h = connect_v3();
    let token = h
        .session
        .publish(h.now(), message("t/big", PAYLOAD, QoS::AtMostOnce))
        .unwrap();
    let mut buf = [0u8; 16];
    let mut wire = BytesMut::new();
    loop {
        let n = h.session.poll_transmit_into(h.now(), &mut buf);
        assert_eq!(n, 16.min(h.session.buffered_len() + n));
        wire.extend_from_slice(&buf[..n]);
        if h.session.buffered_len() > 0 {
            assert!(
                h.session.poll_event().is_none(),
                "a QoS 0 publish completed with {} of its bytes still unsent",
                h.session.buffered_len()
            );
        } else {
            break;
        }
    }
    assert_eq!(h.session.poll_transmit_into(h.now(), &mut buf), 0);
    let packets = decode_all(&mut wire, ProtocolVersion::V311);
    assert_matches!(packets.as_slice(), [Packet::Publish(p)] if p.payload == PAYLOAD.as_bytes());
    assert_matches!(
        h.events().as_slice(),
        [Event::Published { token: t, result: Ok(ReasonCode::Success), .. }] if *t == token
    );
}

#[test]
fn an_empty_buffer_gets_nothing_and_the_bytes_stay_pending() {
    let mut h = connect_v3();
    h.session.ping(h.now()).unwrap();
    assert_eq!(h.session.poll_transmit_into(h.now(), &mut []), 0);
    assert_eq!(h.session.buffered_len(), 2);
    assert_eq!(drain_into(&mut h, 2), [0xc0, 0x00]);
}

#[test]
fn handing_out_part_of_a_packet_counts_for_keep_alive() {
    let mut h = connect_v3();
    let before = h.session.poll_timeout().unwrap();
    h.advance(std::time::Duration::from_secs(5));
    h.session
        .publish(h.now(), message("t/big", PAYLOAD, QoS::AtMostOnce))
        .unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(h.session.poll_transmit_into(h.now(), &mut buf), 8);
    assert!(h.session.poll_timeout().unwrap() > before);
}

#[test]
fn a_connection_closed_mid_packet_sends_no_disconnect_behind_the_cut() {
    // MQTT 5 answers a protocol error with DISCONNECT; behind half a packet the server
    // would read it as the rest of that packet, so the transport just closes.
    let mut h = connect_v5();
    h.session
        .publish(h.now(), message("t/big", PAYLOAD, QoS::AtLeastOnce))
        .unwrap();
    let mut buf = [0u8; 10];
    assert_eq!(h.session.poll_transmit_into(h.now(), &mut buf), 10);
    h.feed(PingResp); // unsolicited: a protocol error
    assert_matches!(h.events().as_slice(), [Event::Disconnected { .. }]);
    assert_eq!(h.session.poll_transmit_into(h.now(), &mut buf), 0);
    assert_eq!(h.session.state(), ConnectionState::Disconnected);
    // The message stays in flight for the next connection.
    assert_eq!(h.session.inflight_len(), 1);
}

#[test]
fn a_connection_closed_on_a_packet_boundary_still_sends_its_disconnect() {
    let mut h = connect_v5();
    h.session
        .publish(h.now(), message("t/big", PAYLOAD, QoS::AtLeastOnce))
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = h.session.poll_transmit_into(h.now(), &mut buf);
    assert!(n > PAYLOAD.len());
    h.feed(PingResp);
    assert_matches!(h.events().as_slice(), [Event::Disconnected { .. }]);
    assert_eq!(h.session.state(), ConnectionState::Closing);
    let mut wire = BytesMut::from(&drain_into(&mut h, 3)[..]);
    assert_matches!(
        decode_all(&mut wire, ProtocolVersion::V5).as_slice(),
        [Packet::Disconnect(d)] if d.reason_code == ReasonCode::ProtocolError
    );
    assert_eq!(h.session.state(), ConnectionState::Disconnected);
}
