//! Where the session keeps the state that must outlive a connection: outgoing QoS 1/2 flows
//! and incoming QoS 2 flows, keyed by packet identifier.
//!
//! The session writes through the [`SessionStore`] trait on every state change, so a store
//! that persists (a file, a database) lets QoS 1/2 messages survive a process restart. The
//! default [`MemoryStore`] keeps everything in id-indexed tables.

use mqtt_proto::{PacketId, Publish};

use crate::event::Token;

/// Where an outgoing QoS 1/2 message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutgoingState {
    /// QoS 1 PUBLISH sent, PUBACK awaited.
    AwaitingPubAck,
    /// QoS 2 PUBLISH sent, PUBREC awaited.
    AwaitingPubRec,
    /// PUBREL sent, PUBCOMP awaited.
    AwaitingPubComp,
}

/// One outgoing QoS 1/2 message in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingFlight {
    /// The publish command's token.
    pub token: Token,
    /// The message as first sent (full topic, no alias), for re-sending.
    pub publish: Publish,
    /// Its stage.
    pub state: OutgoingState,
    /// Send order: re-sends after a reconnect go out in this order ([MQTT-4.4.0-1] /
    /// [MQTT-4.6.0-1]).
    pub seq: u64,
}

/// Where an incoming QoS 2 message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncomingState {
    /// Delivered to the application, PUBREC not yet sent (waiting for the acknowledgement).
    Delivered,
    /// PUBREC sent, PUBREL awaited. A re-sent PUBLISH with this id is a duplicate.
    AwaitingPubRel,
}

/// Storage of in-flight session state. The session calls it on every change; an
/// implementation may persist each call.
pub trait SessionStore {
    /// The outgoing flow with `id`.
    fn outgoing(&self, id: PacketId) -> Option<&OutgoingFlight>;
    /// Records a new outgoing flow (or replaces one).
    fn insert_outgoing(&mut self, id: PacketId, flight: OutgoingFlight);
    /// Moves an outgoing flow to `state`, with the send order of that step.
    fn update_outgoing(&mut self, id: PacketId, state: OutgoingState, seq: u64);
    /// Removes a finished outgoing flow.
    fn remove_outgoing(&mut self, id: PacketId) -> Option<OutgoingFlight>;
    /// Number of outgoing flows.
    fn outgoing_len(&self) -> usize;
    /// Every outgoing flow with its id, in send order (used on reconnect and restore).
    fn outgoing_in_order(&self) -> Vec<(PacketId, OutgoingFlight)>;
    /// The incoming QoS 2 flow with `id`.
    fn incoming(&self, id: PacketId) -> Option<IncomingState>;
    /// Records (`Some`) or ends (`None`) an incoming QoS 2 flow.
    fn set_incoming(&mut self, id: PacketId, state: Option<IncomingState>);
    /// Number of incoming QoS 2 flows.
    fn incoming_len(&self) -> usize;
    /// Forgets incoming state (the server has no session for us any more).
    fn clear_incoming(&mut self);
}

/// The default store: id-indexed tables in memory, grown only as far as the highest
/// identifier used (outgoing identifiers are allocated lowest-first).
#[derive(Debug, Default)]
pub struct MemoryStore {
    outgoing: Vec<Option<OutgoingFlight>>,
    outgoing_len: usize,
    incoming: Vec<Option<IncomingState>>,
    incoming_len: usize,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn index(id: PacketId) -> usize {
    usize::from(id.get()) - 1
}

impl SessionStore for MemoryStore {
    fn outgoing(&self, id: PacketId) -> Option<&OutgoingFlight> {
        self.outgoing.get(index(id)).and_then(Option::as_ref)
    }

    fn insert_outgoing(&mut self, id: PacketId, flight: OutgoingFlight) {
        let i = index(id);
        if self.outgoing.len() <= i {
            self.outgoing.resize_with(i + 1, || None);
        }
        if self.outgoing[i].replace(flight).is_none() {
            self.outgoing_len += 1;
        }
    }

    fn update_outgoing(&mut self, id: PacketId, state: OutgoingState, seq: u64) {
        if let Some(Some(flight)) = self.outgoing.get_mut(index(id)) {
            flight.state = state;
            flight.seq = seq;
            if state == OutgoingState::AwaitingPubComp {
                // After PUBREC only PUBREL is ever re-sent: the payload can go.
                flight.publish.payload = bytes::Bytes::new();
            }
        }
    }

    fn remove_outgoing(&mut self, id: PacketId) -> Option<OutgoingFlight> {
        let flight = self.outgoing.get_mut(index(id))?.take()?;
        self.outgoing_len -= 1;
        Some(flight)
    }

    fn outgoing_len(&self) -> usize {
        self.outgoing_len
    }

    fn outgoing_in_order(&self) -> Vec<(PacketId, OutgoingFlight)> {
        let mut flights: Vec<_> = self
            .outgoing
            .iter()
            .zip(1u16..)
            .filter_map(|(flight, id)| Some((PacketId::new(id)?, flight.clone()?)))
            .collect();
        flights.sort_by_key(|(_, flight)| flight.seq);
        flights
    }

    fn incoming(&self, id: PacketId) -> Option<IncomingState> {
        self.incoming.get(index(id)).copied().flatten()
    }

    fn set_incoming(&mut self, id: PacketId, state: Option<IncomingState>) {
        let i = index(id);
        if self.incoming.len() <= i {
            if state.is_none() {
                return;
            }
            // One byte per identifier: at most 64 KiB, however the server picks its ids.
            self.incoming.resize(i + 1, None);
        }
        match (self.incoming[i].is_some(), state.is_some()) {
            (false, true) => self.incoming_len += 1,
            (true, false) => self.incoming_len -= 1,
            _ => {}
        }
        self.incoming[i] = state;
    }

    fn incoming_len(&self) -> usize {
        self.incoming_len
    }

    fn clear_incoming(&mut self) {
        self.incoming.clear();
        self.incoming_len = 0;
    }
}
