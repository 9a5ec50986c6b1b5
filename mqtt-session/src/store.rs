//! Where the session keeps the state that must outlive a connection: outgoing QoS 1/2 flows
//! and incoming QoS 2 flows, keyed by packet identifier.
//!
//! The session writes through the [`SessionStore`] trait on every state change, so a store
//! that persists (a file, a database) lets QoS 1/2 messages survive a process restart. The
//! default [`MemoryStore`] keeps everything in id-indexed tables and never fails.
//!
//! # The write-ahead contract
//!
//! What a packet commits the client to is recorded in the store *before* the packet is
//! encoded: a new outgoing QoS 1/2 PUBLISH ([`insert_outgoing`](SessionStore::insert_outgoing)),
//! the step to PUBREL ([`update_outgoing`](SessionStore::update_outgoing) to
//! [`OutgoingState::AwaitingPubComp`]) and an incoming QoS 2 message acknowledged with PUBREC
//! ([`set_incoming`](SessionStore::set_incoming) to [`IncomingState::AwaitingPubRel`]).
//! Recording may only buffer the change; durability comes in groups from
//! [`sync`](SessionStore::sync), which [`Session::poll_transmit`](crate::Session::poll_transmit)
//! calls before it hands out a batch of bytes. So no byte of a committing packet reaches the
//! transport before its record is durable, and a batch of any size costs one sync.
//!
//! A record that cannot be made (a mutation returns an error) fails the command that needed it
//! (a publish fails with [`SessionError::Store`](crate::SessionError::Store) and is not sent);
//! a failing `sync` withholds the whole batch, fails the publishes first recorded in it
//! ([`PublishError::Store`](crate::PublishError::Store)), and closes the connection
//! ([`ConnectionError::Store`](crate::ConnectionError::Store)). Neither loses what an earlier
//! successful `sync` made durable.
//!
//! The session itself never opens a file: a durable store (e.g. `sansmqtt-client`'s `FileStore`)
//! does the I/O behind this trait.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::error::Error;

use sansmqtt_proto::properties::SubscribeProperties;
use sansmqtt_proto::{PacketId, Publish, SubscribeFilter};

use crate::event::Token;

/// Why a [`SessionStore`] could not record or persist state.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The storage is full (e.g. `ENOSPC`); records already synced are intact.
    #[error("session store is full")]
    Full,
    /// Reading or writing the storage failed.
    #[error("session store I/O failed while {op}: {source}")]
    Io {
        /// What the store was doing ("appending records", "syncing", "compacting", ...).
        op: &'static str,
        /// The underlying error: a `std::io::Error` from [`StoreError::io`], or whatever the
        /// storage of a `no_std` store reports ([`StoreError::other`]).
        source: Arc<dyn Error + Send + Sync>,
    },
    /// The stored data is not a session store of a known format (a torn tail is not
    /// corruption: it is ignored on recovery).
    #[error("session store is corrupt: {0}")]
    Corrupt(&'static str),
    /// The store was closed or is held by another client.
    #[error("session store unavailable: {0}")]
    Unavailable(&'static str),
    /// Another client (in this process or another) holds the store's directory: one client
    /// at a time may use a store, and its lock goes with it (or with its process).
    /// (Only with `std`: a store without a file system has no directory to lock.)
    #[cfg(feature = "std")]
    #[error("session store {} is in use by another client{}", .dir.display(), HolderPid(*.pid))]
    Locked {
        /// The store's directory.
        dir: std::path::PathBuf,
        /// The process holding it, when it recorded its id (`None` if it has not written it
        /// yet, or it is unreadable).
        pid: Option<u32>,
    },
}

/// Formats the holder of a locked store, if known.
#[cfg(feature = "std")]
struct HolderPid(Option<u32>);

#[cfg(feature = "std")]
impl core::fmt::Display for HolderPid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(pid) => write!(f, " (process {pid})"),
            None => Ok(()),
        }
    }
}

impl StoreError {
    /// Classifies an I/O error met while doing `op`: a full disk becomes [`StoreError::Full`].
    #[cfg(feature = "std")]
    pub fn io(op: &'static str, err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::StorageFull
            || err.kind() == std::io::ErrorKind::QuotaExceeded
        {
            Self::Full
        } else {
            Self::other(op, err)
        }
    }

    /// A storage error met while doing `op` ([`StoreError::Io`]): for stores over storage
    /// that is not `std::io` (a flash driver, an RTOS file system).
    pub fn other(op: &'static str, err: impl Error + Send + Sync + 'static) -> Self {
        Self::Io {
            op,
            source: Arc::new(err),
        }
    }
}

impl PartialEq for StoreError {
    /// Errors compare by kind and operation, and I/O errors by their message (the errors
    /// themselves are not comparable).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Full, Self::Full) => true,
            (Self::Io { op: a, source: x }, Self::Io { op: b, source: y }) => {
                use alloc::string::ToString;
                a == b && (Arc::ptr_eq(x, y) || x.to_string() == y.to_string())
            }
            (Self::Corrupt(a), Self::Corrupt(b)) | (Self::Unavailable(a), Self::Unavailable(b)) => {
                a == b
            }
            #[cfg(feature = "std")]
            (Self::Locked { dir: a, pid: x }, Self::Locked { dir: b, pid: y }) => a == b && x == y,
            _ => false,
        }
    }
}

impl Eq for StoreError {}

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
    ///
    /// Commits the client to nothing, so a durable store need not persist it, and must not
    /// report it after a process restart: the application's acknowledgement died with the
    /// process, and the re-sent PUBLISH must be delivered again rather than ignored.
    Delivered,
    /// PUBREC sent, PUBREL awaited. A re-sent PUBLISH with this id is a duplicate.
    AwaitingPubRel,
}

/// Storage of in-flight session state. The session calls it on every change; see the
/// [module documentation](self) for the write-ahead contract.
///
/// Reads see every recorded change, synced or not. A mutation that returns an error must leave
/// the store as it was; a failed [`sync`](Self::sync) must leave the durable state as of the last
/// successful one and keep the changes since then pending, to be written by the next `sync`.
pub trait SessionStore {
    /// The outgoing flow with `id`.
    fn outgoing(&self, id: PacketId) -> Option<&OutgoingFlight>;
    /// Records a new outgoing flow (or replaces one).
    fn insert_outgoing(&mut self, id: PacketId, flight: OutgoingFlight) -> Result<(), StoreError>;
    /// Moves an outgoing flow to `state`, with the send order of that step.
    fn update_outgoing(
        &mut self,
        id: PacketId,
        state: OutgoingState,
        seq: u64,
    ) -> Result<(), StoreError>;
    /// Removes a finished outgoing flow, returning it (`Ok(None)` if there was none).
    fn remove_outgoing(&mut self, id: PacketId) -> Result<Option<OutgoingFlight>, StoreError>;
    /// Number of outgoing flows.
    fn outgoing_len(&self) -> usize;
    /// Every outgoing flow with its id, in send order (used on reconnect and restore).
    fn outgoing_in_order(&self) -> Vec<(PacketId, OutgoingFlight)>;
    /// The incoming QoS 2 flow with `id`.
    fn incoming(&self, id: PacketId) -> Option<IncomingState>;
    /// Records (`Some`) or ends (`None`) an incoming QoS 2 flow.
    fn set_incoming(
        &mut self,
        id: PacketId,
        state: Option<IncomingState>,
    ) -> Result<(), StoreError>;
    /// Number of incoming QoS 2 flows.
    fn incoming_len(&self) -> usize;
    /// Forgets incoming state (the server has no session for us any more).
    fn clear_incoming(&mut self) -> Result<(), StoreError>;
    /// Makes every change recorded so far durable. Called by the session before it hands out
    /// bytes, so once per batch; a store with nothing pending returns at once. The default
    /// (for stores that are not durable) does nothing.
    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Records a subscription (its filter with options, and the properties of the SUBSCRIBE
    /// that asks for it), replacing one with the same filter. Called before the SUBSCRIBE is
    /// encoded, so a durable store has it once the SUBSCRIBE is out; a session built over the
    /// store later subscribes to it again when the server has no session for it. The default
    /// keeps nothing (the session remembers its subscriptions in memory anyway).
    fn put_subscription(
        &mut self,
        filter: &SubscribeFilter,
        properties: &SubscribeProperties,
    ) -> Result<(), StoreError> {
        let _ = (filter, properties);
        Ok(())
    }
    /// Forgets the subscription to `filter` (an UNSUBSCRIBE, or a SUBSCRIBE the server
    /// refused). The default keeps nothing.
    fn remove_subscription(&mut self, filter: &str) -> Result<(), StoreError> {
        let _ = filter;
        Ok(())
    }
    /// The subscriptions recorded, in the order first recorded: read once, when a session is
    /// built over the store. The default has none.
    fn subscriptions(&self) -> Vec<(SubscribeFilter, SubscribeProperties)> {
        Vec::new()
    }
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

    /// Every incoming QoS 2 flow with its id, lowest id first (for a durable store that keeps
    /// a `MemoryStore` as its index and writes a snapshot of it when compacting).
    pub fn incoming_flows(&self) -> impl Iterator<Item = (PacketId, IncomingState)> + '_ {
        self.incoming
            .iter()
            .zip(1u16..)
            .filter_map(|(state, id)| Some((PacketId::new(id)?, (*state)?)))
    }
}

fn index(id: PacketId) -> usize {
    usize::from(id.get()) - 1
}

impl SessionStore for MemoryStore {
    fn outgoing(&self, id: PacketId) -> Option<&OutgoingFlight> {
        self.outgoing.get(index(id)).and_then(Option::as_ref)
    }

    fn insert_outgoing(&mut self, id: PacketId, flight: OutgoingFlight) -> Result<(), StoreError> {
        let i = index(id);
        if self.outgoing.len() <= i {
            self.outgoing.resize_with(i + 1, || None);
        }
        if self.outgoing[i].replace(flight).is_none() {
            self.outgoing_len += 1;
        }
        Ok(())
    }

    fn update_outgoing(
        &mut self,
        id: PacketId,
        state: OutgoingState,
        seq: u64,
    ) -> Result<(), StoreError> {
        if let Some(Some(flight)) = self.outgoing.get_mut(index(id)) {
            flight.state = state;
            flight.seq = seq;
            if state == OutgoingState::AwaitingPubComp {
                // After PUBREC only PUBREL is ever re-sent: the payload can go.
                flight.publish.payload = bytes::Bytes::new();
            }
        }
        Ok(())
    }

    fn remove_outgoing(&mut self, id: PacketId) -> Result<Option<OutgoingFlight>, StoreError> {
        let flight = self.outgoing.get_mut(index(id)).and_then(Option::take);
        if flight.is_some() {
            self.outgoing_len -= 1;
        }
        Ok(flight)
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

    fn set_incoming(
        &mut self,
        id: PacketId,
        state: Option<IncomingState>,
    ) -> Result<(), StoreError> {
        let i = index(id);
        if self.incoming.len() <= i {
            if state.is_none() {
                return Ok(());
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
        Ok(())
    }

    fn incoming_len(&self) -> usize {
        self.incoming_len
    }

    fn clear_incoming(&mut self) -> Result<(), StoreError> {
        self.incoming.clear();
        self.incoming_len = 0;
        Ok(())
    }
}
