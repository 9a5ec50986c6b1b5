//! A publish whose record the store refuses sends nothing: its bytes (encoded before the
//! record, so that the store can take the flight by value) are taken back, and so is a topic
//! alias it created.

use std::time::{Duration, Instant};

use sansmqtt_session::proto::properties::ConnAckProperties;
use sansmqtt_session::proto::{ConnAck, Encode, PacketId, ProtocolVersion, Publish, QoS, decode};
use sansmqtt_session::store::{IncomingState, OutgoingFlight, OutgoingState};
use sansmqtt_session::{
    ConnectOptions, Event, MemoryStore, Session, SessionConfig, SessionError, SessionStore,
    StoreError,
};

/// A memory store that refuses new outgoing records while `full` is set.
#[derive(Default)]
struct FullStore {
    inner: MemoryStore,
    full: bool,
}

impl SessionStore for FullStore {
    fn outgoing(&self, id: PacketId) -> Option<&OutgoingFlight> {
        self.inner.outgoing(id)
    }
    fn insert_outgoing(&mut self, id: PacketId, flight: OutgoingFlight) -> Result<(), StoreError> {
        if self.full {
            return Err(StoreError::Full);
        }
        self.inner.insert_outgoing(id, flight)
    }
    fn update_outgoing(
        &mut self,
        id: PacketId,
        state: OutgoingState,
        seq: u64,
    ) -> Result<(), StoreError> {
        self.inner.update_outgoing(id, state, seq)
    }
    fn remove_outgoing(&mut self, id: PacketId) -> Result<Option<OutgoingFlight>, StoreError> {
        self.inner.remove_outgoing(id)
    }
    fn outgoing_len(&self) -> usize {
        self.inner.outgoing_len()
    }
    fn outgoing_in_order(&self) -> Vec<(PacketId, OutgoingFlight)> {
        self.inner.outgoing_in_order()
    }
    fn incoming(&self, id: PacketId) -> Option<IncomingState> {
        self.inner.incoming(id)
    }
    fn set_incoming(
        &mut self,
        id: PacketId,
        state: Option<IncomingState>,
    ) -> Result<(), StoreError> {
        self.inner.set_incoming(id, state)
    }
    fn incoming_len(&self) -> usize {
        self.inner.incoming_len()
    }
    fn clear_incoming(&mut self) -> Result<(), StoreError> {
        self.inner.clear_incoming()
    }
}

#[allow(clippy::disallowed_methods)]
fn start() -> Instant {
    Instant::now()
}

/// A connected MQTT 5 session whose broker allows `aliases` topic aliases.
fn connected(now: Instant, aliases: u16) -> Session<FullStore> {
    let mut config = SessionConfig::new("refused", ProtocolVersion::V5);
    config.outgoing_topic_aliases = true;
    let mut session = Session::with_store(config, FullStore::default());
    session
        .connect(now, ConnectOptions::new(Duration::from_secs(60)))
        .expect("connect");
    while session.poll_transmit(now).is_some() {}
    let mut connack = ConnAck::new(false);
    connack.properties = ConnAckProperties {
        topic_alias_maximum: Some(aliases),
        ..ConnAckProperties::default()
    };
    let mut wire = bytes::BytesMut::new();
    connack
        .encode(ProtocolVersion::V5, &mut wire)
        .expect("encodes");
    session.handle_read(now, &wire);
    assert!(matches!(
        session.poll_event(),
        Some(Event::Connected { .. })
    ));
    session
}

fn sent(session: &mut Session<FullStore>, now: Instant) -> Vec<Publish> {
    let mut wire = bytes::BytesMut::new();
    while let Some(bytes) = session.poll_transmit(now) {
        wire.extend_from_slice(&bytes);
    }
    let mut out = Vec::new();
    while let Some(packet) = decode(&mut wire, ProtocolVersion::V5, u32::MAX).expect("valid") {
        match packet {
            sansmqtt_session::proto::Packet::Publish(publish) => out.push(publish),
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

#[test]
fn a_refused_record_sends_nothing_and_keeps_no_alias() {
    let now = start();
    let mut session = connected(now, 10);
    let message = |qos| Publish {
        qos,
        ..Publish::new("sensors/a", "x")
    };

    session.store_mut().full = true;
    let refused = session.publish(now, message(QoS::AtLeastOnce));
    assert!(
        matches!(refused, Err(SessionError::Store(StoreError::Full))),
        "{refused:?}"
    );
    assert!(
        sent(&mut session, now).is_empty(),
        "a refused publish left bytes"
    );
    assert_eq!(session.packet_ids_in_use(), 0);

    // The alias the refused publish would have introduced was taken back: the next publish
    // of that topic introduces it again (full topic plus alias), as the server never saw it.
    session.store_mut().full = false;
    session
        .publish(now, message(QoS::AtLeastOnce))
        .expect("accepted");
    let sent = sent(&mut session, now);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].topic, "sensors/a");
    assert_eq!(sent[0].properties.topic_alias, Some(1));
}
