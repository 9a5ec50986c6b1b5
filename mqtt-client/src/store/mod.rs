//! Session stores the client can run on: in memory (the default) or durable on disk
//! ([`FileStore`], selected by [`ClientConfig::session_store`](crate::ClientConfig::session_store)).

mod file;
mod sync;
#[cfg(test)]
mod tests;

pub use file::{FileStore, FileStoreMonitor, FileStoreStats};
pub use sansmqtt_session::store::{IncomingState, OutgoingFlight, OutgoingState};
pub use sansmqtt_session::{MemoryStore, SessionStore, StoreError};
pub(crate) use sync::BackgroundSync;

use sansmqtt_proto::properties::SubscribeProperties;
use sansmqtt_proto::{PacketId, SubscribeFilter};

/// The store under a client's session: one enum rather than a trait object, so the session
/// stays statically dispatched whichever store the configuration picks.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientStore {
    /// In memory: in-flight messages survive reconnects, not a restart of the process.
    Memory(MemoryStore),
    /// On disk: in-flight messages survive a crash of the process.
    File(FileStore),
}

impl Default for ClientStore {
    fn default() -> Self {
        Self::Memory(MemoryStore::new())
    }
}

impl ClientStore {
    /// The file store's counters, if this is one.
    pub fn file_stats(&self) -> Option<FileStoreStats> {
        match self {
            Self::Memory(_) => None,
            Self::File(store) => Some(store.stats()),
        }
    }
}

macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Self::Memory($store) => $call,
            Self::File($store) => $call,
        }
    };
}

impl SessionStore for ClientStore {
    fn outgoing(&self, id: PacketId) -> Option<&OutgoingFlight> {
        delegate!(self, s => s.outgoing(id))
    }

    fn insert_outgoing(&mut self, id: PacketId, flight: OutgoingFlight) -> Result<(), StoreError> {
        delegate!(self, s => s.insert_outgoing(id, flight))
    }

    fn update_outgoing(
        &mut self,
        id: PacketId,
        state: OutgoingState,
        seq: u64,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.update_outgoing(id, state, seq))
    }

    fn remove_outgoing(&mut self, id: PacketId) -> Result<Option<OutgoingFlight>, StoreError> {
        delegate!(self, s => s.remove_outgoing(id))
    }

    fn outgoing_len(&self) -> usize {
        delegate!(self, s => s.outgoing_len())
    }

    fn outgoing_in_order(&self) -> Vec<(PacketId, OutgoingFlight)> {
        delegate!(self, s => s.outgoing_in_order())
    }

    fn incoming(&self, id: PacketId) -> Option<IncomingState> {
        delegate!(self, s => s.incoming(id))
    }

    fn set_incoming(
        &mut self,
        id: PacketId,
        state: Option<IncomingState>,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.set_incoming(id, state))
    }

    fn incoming_len(&self) -> usize {
        delegate!(self, s => s.incoming_len())
    }

    fn clear_incoming(&mut self) -> Result<(), StoreError> {
        delegate!(self, s => s.clear_incoming())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        delegate!(self, s => s.sync())
    }

    fn put_subscription(
        &mut self,
        filter: &SubscribeFilter,
        properties: &SubscribeProperties,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.put_subscription(filter, properties))
    }

    fn remove_subscription(&mut self, filter: &str) -> Result<(), StoreError> {
        delegate!(self, s => s.remove_subscription(filter))
    }

    fn subscriptions(&self) -> Vec<(SubscribeFilter, SubscribeProperties)> {
        delegate!(self, s => s.subscriptions())
    }
}
