//! A `#![no_std]` user of `sansmqtt-session`: one connection driven through CONNECT, a QoS 1
//! and a QoS 2 publish, a QoS 1 message received and acknowledged by hand, and a keep-alive
//! ping, with time as a [`Duration`] since an origin of our choosing and every byte handed out
//! through a fixed 64-byte transmit buffer, as a device would. The server's side is written
//! out as raw bytes, so that nothing here needs more than `core` and `alloc`.
//!
//! `cargo test -p sansmqtt-nostd-check` builds the session without its `std` feature and
//! links this crate into a test; in a workspace build, where other crates turn `std` on, it
//! must still compile unchanged (cargo features are additive).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use core::time::Duration;

use sansmqtt_session::proto::{ProtocolVersion, Publish, QoS};
use sansmqtt_session::{
    AckMode, ConnectOptions, Event, MemoryStore, Session, SessionConfig, SessionError,
};

/// The session type of a `no_std` user: the instant type is named, here `Duration`.
type DeviceSession = Session<MemoryStore, Duration>;

/// What one run saw: every byte the session handed out and the events it reported.
#[derive(Debug, Default)]
pub struct Report {
    /// The bytes handed out, in order, as the transport would have carried them.
    pub sent: Vec<u8>,
    /// `Event::Connected` count.
    pub connected: usize,
    /// Publishes completed successfully (`Event::Published` with `Ok`).
    pub published: usize,
    /// Messages received (`Event::Message`), with their payloads.
    pub received: Vec<Vec<u8>>,
    /// The next deadline after the last step, as time since the origin.
    pub next_deadline: Option<Duration>,
}

/// Runs the exchange described in the crate docs and reports what the session did.
pub fn run() -> Result<Report, SessionError> {
    let mut config = SessionConfig::new("nostd", ProtocolVersion::V311);
    config.ack_mode = AckMode::Manual;
    let mut session: DeviceSession = Session::new(config);
    let mut report = Report::default();
    let mut now = Duration::from_millis(1);

    session.connect(now, ConnectOptions::new(Duration::from_secs(30)))?;
    drain(&mut session, now, &mut report);
    // CONNACK: accepted, no session present.
    session.handle_read(now, &[0x20, 0x02, 0x00, 0x00]);
    drain(&mut session, now, &mut report);

    session.publish(now, qos(Publish::new("t/1", "one"), QoS::AtLeastOnce))?;
    session.publish(now, qos(Publish::new("t/2", "two"), QoS::ExactlyOnce))?;
    drain(&mut session, now, &mut report);
    // PUBACK 1, PUBREC 2, then (after our PUBREL) PUBCOMP 2.
    session.handle_read(now, &[0x40, 0x02, 0x00, 0x01, 0x50, 0x02, 0x00, 0x02]);
    drain(&mut session, now, &mut report);
    session.handle_read(now, &[0x70, 0x02, 0x00, 0x02]);
    drain(&mut session, now, &mut report);

    // An incoming QoS 1 PUBLISH "t" id 7 payload "hi", acknowledged by hand.
    session.handle_read(now, &[0x32, 0x07, 0x00, 0x01, b't', 0x00, 0x07, b'h', b'i']);
    let mut tokens = Vec::new();
    while let Some(event) = session.poll_event() {
        if let Event::Message(message) = event {
            report.received.push(message.publish.payload.to_vec());
            tokens.extend(message.ack);
        }
    }
    for token in tokens {
        session.ack(now, token)?;
    }
    drain(&mut session, now, &mut report);

    // Sleep until the keep-alive deadline: a PINGREQ, answered by PINGRESP.
    if let Some(deadline) = session.poll_timeout() {
        now = deadline;
        session.handle_timeout(now);
        drain(&mut session, now, &mut report);
        session.handle_read(now, &[0xd0, 0x00]);
        drain(&mut session, now, &mut report);
    }
    report.next_deadline = session.poll_timeout();
    Ok(report)
}

fn qos(publish: Publish, qos: QoS) -> Publish {
    Publish { qos, ..publish }
}

/// Drains events, then transmits through a fixed buffer, as a device's loop does.
fn drain(session: &mut DeviceSession, now: Duration, report: &mut Report) {
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                Event::Connected { .. } => report.connected += 1,
                Event::Published { result: Ok(_), .. } => report.published += 1,
                Event::Message(message) => report.received.push(message.publish.payload.to_vec()),
                _ => {}
            }
        }
        let mut tx = [0u8; 64];
        let n = session.poll_transmit_into(now, &mut tx);
        if n == 0 && session.pending_events() == 0 {
            return;
        }
        report.sent.extend_from_slice(&tx[..n]);
    }
}
