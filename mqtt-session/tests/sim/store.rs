//! A session store model: every change is an entry of a log that becomes durable only at
//! `sync`; mutations and syncs fail on a seeded schedule; and after a simulated crash of the
//! client process the store recovers from its synced entries plus a prefix of the unsynced
//! ones (what the disk happened to hold), the entry after that prefix being a torn record
//! that recovery ignores, as `FileStore` does.

use sansmqtt_proto::PacketId;
use sansmqtt_session::store::{IncomingState, OutgoingFlight, OutgoingState};
use sansmqtt_session::{MemoryStore, SessionStore, StoreError};

use super::rng::Rng;

/// How often the store fails, per thousand operations.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StoreFaults {
    pub(crate) mutation_permille: u64,
    pub(crate) sync_permille: u64,
}

#[derive(Debug, Clone)]
enum Op {
    Insert(PacketId, Box<OutgoingFlight>),
    Update(PacketId, OutgoingState, u64),
    Remove(PacketId),
    Incoming(PacketId, Option<IncomingState>),
    ClearIncoming,
}

pub(crate) struct SimStore {
    live: MemoryStore,
    synced: Vec<Op>,
    pending: Vec<Op>,
    faults: StoreFaults,
    rng: Rng,
    pub(crate) mutation_failures: u64,
    pub(crate) sync_failures: u64,
    pub(crate) torn_records: u64,
}

fn injected() -> StoreError {
    StoreError::io("simulated", std::io::Error::other("injected store failure"))
}

impl SimStore {
    pub(crate) fn new(faults: StoreFaults, rng: Rng) -> Self {
        Self {
            live: MemoryStore::new(),
            synced: Vec::new(),
            pending: Vec::new(),
            faults,
            rng,
            mutation_failures: 0,
            sync_failures: 0,
            torn_records: 0,
        }
    }

    fn mutation_fails(&mut self) -> bool {
        let fails = self.rng.below(1000) < self.faults.mutation_permille;
        self.mutation_failures += u64::from(fails);
        fails
    }

    /// The store a restarted process opens: the synced entries, then a random prefix of the
    /// unsynced ones; the entry after the prefix was torn and is ignored, and so is the rest.
    /// `Delivered` incoming states are not kept across a restart (see `IncomingState`).
    pub(crate) fn crash_and_recover(&mut self) -> Self {
        let written = self.rng.range_usize(0, self.pending.len());
        if written < self.pending.len() {
            self.torn_records += 1;
        }
        let mut log = std::mem::take(&mut self.synced);
        log.extend(self.pending.drain(..written));
        let mut live = MemoryStore::new();
        for op in &log {
            replay(&mut live, op);
        }
        let delivered: Vec<PacketId> = live
            .incoming_flows()
            .filter(|(_, state)| *state == IncomingState::Delivered)
            .map(|(id, _)| id)
            .collect();
        for id in delivered {
            let _ = live.set_incoming(id, None);
        }
        Self {
            live,
            synced: log,
            pending: Vec::new(),
            faults: self.faults,
            rng: self.rng.fork(),
            mutation_failures: self.mutation_failures,
            sync_failures: self.sync_failures,
            torn_records: self.torn_records,
        }
    }

    /// The tokens of the outgoing flows the store holds.
    pub(crate) fn tokens(&self) -> Vec<sansmqtt_session::Token> {
        self.live
            .outgoing_in_order()
            .into_iter()
            .map(|(_, flight)| flight.token)
            .collect()
    }
}

fn replay(store: &mut MemoryStore, op: &Op) {
    // A MemoryStore never fails.
    let _ = match op {
        Op::Insert(id, flight) => store.insert_outgoing(*id, (**flight).clone()),
        Op::Update(id, state, seq) => store.update_outgoing(*id, *state, *seq),
        Op::Remove(id) => store.remove_outgoing(*id).map(drop),
        Op::Incoming(id, state) => store.set_incoming(*id, *state),
        Op::ClearIncoming => store.clear_incoming(),
    };
}

impl SessionStore for SimStore {
    fn outgoing(&self, id: PacketId) -> Option<&OutgoingFlight> {
        self.live.outgoing(id)
    }

    fn insert_outgoing(&mut self, id: PacketId, flight: OutgoingFlight) -> Result<(), StoreError> {
        if self.mutation_fails() {
            return Err(injected());
        }
        self.pending.push(Op::Insert(id, Box::new(flight.clone())));
        self.live.insert_outgoing(id, flight)
    }

    fn update_outgoing(
        &mut self,
        id: PacketId,
        state: OutgoingState,
        seq: u64,
    ) -> Result<(), StoreError> {
        if self.mutation_fails() {
            return Err(injected());
        }
        self.pending.push(Op::Update(id, state, seq));
        self.live.update_outgoing(id, state, seq)
    }

    fn remove_outgoing(&mut self, id: PacketId) -> Result<Option<OutgoingFlight>, StoreError> {
        if self.mutation_fails() {
            return Err(injected());
        }
        self.pending.push(Op::Remove(id));
        self.live.remove_outgoing(id)
    }

    fn outgoing_len(&self) -> usize {
        self.live.outgoing_len()
    }

    fn outgoing_in_order(&self) -> Vec<(PacketId, OutgoingFlight)> {
        self.live.outgoing_in_order()
    }

    fn incoming(&self, id: PacketId) -> Option<IncomingState> {
        self.live.incoming(id)
    }

    fn set_incoming(
        &mut self,
        id: PacketId,
        state: Option<IncomingState>,
    ) -> Result<(), StoreError> {
        if self.mutation_fails() {
            return Err(injected());
        }
        self.pending.push(Op::Incoming(id, state));
        self.live.set_incoming(id, state)
    }

    fn incoming_len(&self) -> usize {
        self.live.incoming_len()
    }

    fn clear_incoming(&mut self) -> Result<(), StoreError> {
        if self.mutation_fails() {
            return Err(injected());
        }
        self.pending.push(Op::ClearIncoming);
        self.live.clear_incoming()
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.rng.below(1000) < self.faults.sync_permille {
            // Nothing of the batch is durable; it stays pending for the next sync.
            self.sync_failures += 1;
            return Err(injected());
        }
        self.synced.append(&mut self.pending);
        Ok(())
    }
}
