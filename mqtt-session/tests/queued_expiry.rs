//! An MQTT 5 message expiry interval is honoured while a publish waits in the queue for a
//! connection: one that expired is not sent, fails with `PublishError::Expired` and is
//! counted; one with time left goes out with the interval it has left.

use std::time::{Duration, Instant};

use sansmqtt_session::proto::{ConnAck, Encode, Packet, ProtocolVersion, Publish, QoS, decode};
use sansmqtt_session::{ConnectOptions, Event, PublishError, Session, SessionConfig};

#[allow(clippy::disallowed_methods)]
fn start() -> Instant {
    Instant::now()
}

fn expiring(topic: &str, qos: QoS, seconds: Option<u32>) -> Publish {
    let mut publish = Publish {
        qos,
        ..Publish::new(topic, "x")
    };
    publish.properties.message_expiry_interval = seconds;
    publish
}

#[test]
fn queued_publishes_expire_while_they_wait_for_a_connection() {
    let t0 = start();
    let mut session = Session::new(SessionConfig::new("expiry", ProtocolVersion::V5));
    // Offline: all three wait in the queue.
    let stale = session
        .publish(t0, expiring("e/stale", QoS::AtLeastOnce, Some(2)))
        .expect("queued");
    let stale0 = session
        .publish(t0, expiring("e/stale0", QoS::AtMostOnce, Some(1)))
        .expect("queued");
    session
        .publish(t0, expiring("e/fresh", QoS::AtLeastOnce, Some(10)))
        .expect("queued");
    session
        .publish(t0, expiring("e/forever", QoS::AtLeastOnce, None))
        .expect("queued");

    let later = t0 + Duration::from_millis(3_500);
    session
        .connect(later, ConnectOptions::new(Duration::from_secs(60)))
        .expect("connect");
    while session.poll_transmit(later).is_some() {}
    let mut wire = bytes::BytesMut::new();
    ConnAck::new(false)
        .encode(ProtocolVersion::V5, &mut wire)
        .expect("encodes");
    session.handle_read(later, &wire);

    let mut expired = Vec::new();
    while let Some(event) = session.poll_event() {
        if let Event::Published {
            token,
            result: Err(PublishError::Expired),
            ..
        } = event
        {
            expired.push(token);
        }
    }
    assert_eq!(expired, [stale, stale0]);
    assert_eq!(session.expired_publishes(), 2);

    let mut wire = bytes::BytesMut::new();
    while let Some(bytes) = session.poll_transmit(later) {
        wire.extend_from_slice(&bytes);
    }
    let mut sent = Vec::new();
    while let Some(packet) = decode(&mut wire, ProtocolVersion::V5, u32::MAX).expect("valid") {
        if let Packet::Publish(publish) = packet {
            sent.push((
                publish.topic.to_string(),
                publish.properties.message_expiry_interval,
            ));
        }
    }
    // 10 s less the 3.5 s waited: 6.5 s, rounded up.
    assert_eq!(
        sent,
        [
            ("e/fresh".to_owned(), Some(7)),
            ("e/forever".to_owned(), None)
        ]
    );
}
