//! Test harness for scripted session flows: one [`Session`], a virtual clock, and helpers that
//! speak packets (encode what the "server" sends, decode what the session writes).
//!
//! The clock is a base `Instant` taken once when a harness is made, plus offsets; the session
//! itself never reads a clock, and neither do the tests after that.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use sansmqtt_session::proto::{
    self, BytesMut, ConnAck, Connect, Encode, MAX_PACKET_SIZE, Packet, PacketId, ProtocolVersion,
    Publish, QoS,
};
use sansmqtt_session::{ConnectOptions, ConnectionState, Event, Session, SessionConfig};

/// Keep alive used by the `connect_*` helpers.
pub const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// `assert!(matches!(..))` that prints the value on failure. The value is matched by
/// reference, so patterns may bind fields (compare them with `*binding` in the guard).
#[macro_export]
macro_rules! assert_matches {
    ($value:expr, $pattern:pat $(if $guard:expr)? $(,)?) => {
        // `match` keeps temporaries of `$value` alive for the whole check.
        match &$value {
            value => assert!(
                matches!(value, $pattern $(if $guard)?),
                "expected `{}`\n     got {:#?}",
                stringify!($pattern $(if $guard)?),
                value,
            ),
        }
    };
    ($value:expr, $pattern:pat $(if $guard:expr)?, $($msg:tt)+) => {
        match &$value {
            value => assert!(
                matches!(value, $pattern $(if $guard)?),
                "{}: expected `{}`\n     got {:#?}",
                format_args!($($msg)+),
                stringify!($pattern $(if $guard)?),
                value,
            ),
        }
    };
}

/// A session under test, with a virtual clock.
pub struct Harness {
    /// The session under test.
    pub session: Session,
    /// The protocol version packets are encoded and decoded with.
    pub version: ProtocolVersion,
    base: Instant,
    now: Instant,
    /// Events drained by [`Harness::sent`] and not yet returned by [`Harness::events`].
    drained: Vec<Event>,
}

impl Harness {
    /// A fresh session over `config`; the clock starts at offset 0.
    pub fn new(config: SessionConfig) -> Self {
        // The one clock read of a harness: everything else is base + offset.
        #[allow(clippy::disallowed_methods)]
        let base = Instant::now();
        Self {
            version: config.protocol_version,
            session: Session::new(config),
            base,
            now: base,
            drained: Vec::new(),
        }
    }

    // ---- clock ----------------------------------------------------------------------------

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The instant `offset` after the harness was created.
    pub fn at(&self, offset: Duration) -> Instant {
        self.base + offset
    }

    /// The instant `secs` seconds after the harness was created.
    pub fn at_secs(&self, secs: u64) -> Instant {
        self.at(Duration::from_secs(secs))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Moves the clock to `offset` after creation (never backwards).
    pub fn set_time(&mut self, offset: Duration) {
        let at = self.at(offset);
        assert!(at >= self.now, "the virtual clock cannot go backwards");
        self.now = at;
    }

    /// Moves the clock to `secs` seconds after creation.
    pub fn set_secs(&mut self, secs: u64) {
        self.set_time(Duration::from_secs(secs));
    }

    /// `poll_timeout` as an offset from the harness's creation, for readable assertions.
    pub fn timeout_offset(&self) -> Option<Duration> {
        self.session
            .poll_timeout()
            .map(|at| at.duration_since(self.base))
    }

    // ---- inputs ---------------------------------------------------------------------------

    /// Encodes `packet` as the server would and hands it to `handle_read`.
    pub fn feed(&mut self, packet: impl Into<Packet>) {
        let bytes = encode(&packet.into(), self.version);
        self.session.handle_read(self.now, &bytes);
    }

    /// Hands raw bytes to `handle_read`.
    pub fn feed_bytes(&mut self, bytes: &[u8]) {
        self.session.handle_read(self.now, bytes);
    }

    /// `handle_timeout` at the current virtual time.
    pub fn fire_timers(&mut self) {
        self.session.handle_timeout(self.now);
    }

    /// `handle_transport_closed` at the current virtual time.
    pub fn close_transport(&mut self) {
        self.session.handle_transport_closed(self.now);
    }

    // ---- outputs --------------------------------------------------------------------------

    /// Drains `poll_event` (keeping the events for [`Harness::events`]; handing out a message
    /// may queue its acknowledgement), then `poll_transmit`, and decodes everything written.
    pub fn sent(&mut self) -> Vec<Packet> {
        while let Some(event) = self.session.poll_event() {
            self.drained.push(event);
        }
        self.transmit()
    }

    /// Drains `poll_transmit` only (no event is handed out) and decodes what was written.
    pub fn transmit(&mut self) -> Vec<Packet> {
        let mut wire = BytesMut::new();
        while let Some(bytes) = self.session.poll_transmit(self.now) {
            assert!(!bytes.is_empty(), "poll_transmit returned an empty buffer");
            wire.extend_from_slice(&bytes);
        }
        decode_all(&mut wire, self.version)
    }

    /// Every event not yet returned: those drained by `sent`, then the session's.
    pub fn events(&mut self) -> Vec<Event> {
        let mut events = std::mem::take(&mut self.drained);
        while let Some(event) = self.session.poll_event() {
            events.push(event);
        }
        events
    }

    /// Asserts that nothing is pending: no event, no bytes.
    pub fn assert_idle(&mut self) {
        let sent = self.sent();
        let events = self.events();
        assert!(
            sent.is_empty() && events.is_empty(),
            "expected nothing, got packets {sent:#?} and events {events:#?}"
        );
    }

    // ---- connection -----------------------------------------------------------------------

    /// `connect(options)`, checks that exactly one CONNECT goes out, answers it with
    /// `connack`, and returns the CONNECT and the events that followed.
    pub fn handshake(
        &mut self,
        options: ConnectOptions,
        connack: ConnAck,
    ) -> (Connect, Vec<Event>) {
        self.session.connect(self.now, options).unwrap();
        assert_eq!(self.session.state(), ConnectionState::Connecting);
        let sent = self.sent();
        let connect = match sent.as_slice() {
            [Packet::Connect(connect)] => (**connect).clone(),
            other => panic!("expected exactly one CONNECT, got {other:#?}"),
        };
        self.feed(connack);
        (connect, self.events())
    }

    /// `handshake` with a plain accepting CONNACK; asserts `Event::Connected`.
    pub fn connect_accepted(&mut self, options: ConnectOptions, session_present: bool) -> Connect {
        let (connect, events) = self.handshake(options, ConnAck::new(session_present));
        assert_matches!(
            events.as_slice(),
            [Event::Connected { session_present: sp, .. }] if *sp == session_present
        );
        assert_eq!(self.session.state(), ConnectionState::Connected);
        connect
    }
}

/// Default settings for `version` with client id "client".
pub fn config(version: ProtocolVersion) -> SessionConfig {
    SessionConfig::new("client", version)
}

/// A session of `version` connected (clean start, [`KEEP_ALIVE`]) at offset 0.
pub fn connected(version: ProtocolVersion) -> Harness {
    connected_with(config(version))
}

/// A session over `config`, connected (clean start, [`KEEP_ALIVE`]) at offset 0.
pub fn connected_with(config: SessionConfig) -> Harness {
    let mut h = Harness::new(config);
    h.connect_accepted(ConnectOptions::new(KEEP_ALIVE), false);
    h
}

/// A connected MQTT 3.1.1 session.
pub fn connect_v3() -> Harness {
    connected(ProtocolVersion::V311)
}

/// A connected MQTT 5.0 session.
pub fn connect_v5() -> Harness {
    connected(ProtocolVersion::V5)
}

// ---- packets ------------------------------------------------------------------------------

/// Packet identifier `n`.
pub fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

/// An outgoing message for `Session::publish` (the session sets id and DUP).
pub fn message(topic: &str, payload: &'static str, qos: QoS) -> Publish {
    Publish {
        qos,
        ..Publish::new(topic, payload)
    }
}

/// An incoming PUBLISH as the server sends it: QoS 1/2 need `id`.
pub fn incoming(topic: &str, payload: &'static str, qos: QoS, id: Option<u16>) -> Publish {
    Publish {
        qos,
        packet_id: id.map(pid),
        ..Publish::new(topic, payload)
    }
}

/// `packet` on the wire.
pub fn encode(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut wire = BytesMut::new();
    packet.encode(version, &mut wire).unwrap();
    wire
}

/// Decodes every packet in `wire`; anything left over or malformed fails the test.
pub fn decode_all(wire: &mut BytesMut, version: ProtocolVersion) -> Vec<Packet> {
    let mut packets = Vec::new();
    loop {
        match proto::decode(wire, version, MAX_PACKET_SIZE) {
            Ok(Some(packet)) => packets.push(packet),
            Ok(None) => break,
            Err(err) => panic!("the session wrote a malformed packet: {err} (after {packets:#?})"),
        }
    }
    assert!(
        wire.is_empty(),
        "the session wrote a partial packet: {wire:?}"
    );
    packets
}
