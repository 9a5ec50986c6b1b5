//! The command queue from client handles to the driver: a mutex-guarded `VecDeque` and the
//! driver's waker. A handle pushes under one short lock; the driver takes every queued
//! command in one go per wake. Cheaper than a channel (no node per message), and it doubles as
//! the "is a driver running" flag, so a handle needs no second lock to find the driver.
//! Before the first driver it keeps what may be declared before `connect` (publishes,
//! subscribes, unsubscribes: `driver::declared`), in order, for that driver.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::driver::Command;
use super::driver::declared::{self, Admit, Declared};
use super::{ClientError, PublishAck, lock};

pub(crate) struct CommandQueue(Mutex<State>);

struct State {
    commands: VecDeque<Command>,
    waker: Option<Waker>,
    /// A driver serves the queue.
    accepting: bool,
    /// Every client handle is gone: the driver should leave.
    handles_gone: bool,
    /// The caller of the driver's connect attempt gave up; the driver is about to stop.
    abandoned: bool,
    /// What the queue keeps before the first driver (see `driver::declared`).
    declared: Declared,
}

impl CommandQueue {
    /// A queue that keeps at most `declared_limit` subscribes and unsubscribes (publishes are
    /// bounded by the publish budget) for the first driver.
    pub(crate) fn new(declared_limit: usize) -> Self {
        Self(Mutex::new(State {
            commands: VecDeque::new(),
            waker: None,
            accepting: false,
            handles_gone: false,
            abandoned: false,
            declared: Declared::new(declared_limit),
        }))
    }

    /// Queues `command` for the running driver, or before the first one, keeps what may be
    /// declared before `connect`; false (and the command dropped or failed) otherwise.
    pub(crate) fn push(&self, command: Command) -> bool {
        self.offer(command).is_ok()
    }

    /// [`push`](Self::push), with why a command was not taken: [`ClientError::NotConnected`]
    /// (no driver, and the command cannot wait for one), [`ClientError::QueueFull`] (too many
    /// declared before `connect`).
    pub(crate) fn offer(&self, command: Command) -> Result<(), ClientError> {
        let mut state = lock(&self.0);
        if state.accepting {
            state.commands.push_back(command);
            let waker = state.waker.take();
            drop(state);
            if let Some(waker) = waker {
                waker.wake();
            }
            return Ok(());
        }
        match state.declared.admit(&command) {
            Admit::Keep => {
                state.commands.push_back(command);
                Ok(())
            }
            Admit::Refuse(err) => Err(err),
            Admit::Release => {
                let released = std::mem::take(&mut state.commands);
                drop(state);
                drop(command);
                declared::release(released);
                Err(ClientError::NotConnected)
            }
        }
    }

    /// Whether a driver serves the queue.
    pub(crate) fn is_accepting(&self) -> bool {
        lock(&self.0).accepting
    }

    /// Claims the queue for a new driver; false if one already serves it. Commands declared
    /// before the first driver stay queued for it.
    pub(crate) fn open(&self) -> bool {
        let mut state = lock(&self.0);
        if state.accepting {
            return false;
        }
        state.accepting = true;
        state.declared.opened();
        true
    }

    /// The driver claimed by [`open`](Self::open) could not start (its session store did not
    /// open): the queue is idle again. What may wait for the first driver stays queued, if
    /// none has run yet; the rest is returned, to be refused.
    pub(crate) fn abort_open(&self) -> VecDeque<Command> {
        let mut state = lock(&self.0);
        let state = &mut *state;
        state.accepting = false;
        state.abandoned = false;
        state.waker = None;
        let queued = std::mem::take(&mut state.commands);
        let (kept, refused) = state.declared.reopen(queued);
        state.commands = kept;
        refused
    }

    /// Moves every queued command to the end of `inbox` and registers the driver's waker for
    /// the next one. Returns whether every client handle is gone.
    pub(crate) fn take(&self, cx: &mut Context<'_>, inbox: &mut VecDeque<Command>) -> bool {
        let mut state = lock(&self.0);
        if inbox.is_empty() {
            // The usual case: no command moves, the two queues trade places.
            std::mem::swap(inbox, &mut state.commands);
        } else {
            inbox.append(&mut state.commands);
        }
        if !state
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.waker = Some(cx.waker().clone());
        }
        state.handles_gone
    }

    /// The caller of a connect attempt dropped its future before CONNACK (the driver notices
    /// through the dropped reply channel and stops).
    pub(crate) fn abandon(&self) {
        let mut state = lock(&self.0);
        if state.accepting {
            state.abandoned = true;
        }
    }

    /// Whether the running driver's connect attempt was abandoned.
    pub(crate) fn is_abandoned(&self) -> bool {
        lock(&self.0).abandoned
    }

    /// The driver stops: no more commands are accepted; those still queued are returned.
    pub(crate) fn close(&self) -> VecDeque<Command> {
        let mut state = lock(&self.0);
        state.accepting = false;
        state.abandoned = false;
        state.waker = None;
        state.declared.stopped();
        std::mem::take(&mut state.commands)
    }

    /// The last client handle was dropped. Commands declared before a first `connect` that
    /// never came fail with [`ClientError::Closed`].
    pub(crate) fn handles_dropped(&self) {
        let (waker, released) = {
            let mut state = lock(&self.0);
            state.handles_gone = true;
            let released = if state.accepting {
                VecDeque::new()
            } else {
                std::mem::take(&mut state.commands)
            };
            (state.waker.take(), released)
        };
        declared::release(released);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The bound on publishes accepted and not yet completed: a count and a byte total, shared by
/// every handle, and the completion slots through which the driver answers QoS 1/2 publishes.
///
/// A publish holds a [`Permit`] from acceptance until its outcome is known (QoS 0 handed to
/// the transport, although its future completed at acceptance; QoS 1/2 acknowledged; or
/// failed); settling the permit returns its share, and a permit dropped unsettled returns it
/// too (its waiter, if any, learns [`ClientError::Closed`]), so no path (completion, failure,
/// a driver that stops) can leak budget or leave a caller waiting forever.
///
/// A QoS 1/2 permit also owns a completion slot: the publish future waits on the slot, the
/// driver writes the outcome into it. This replaced a `oneshot` channel per publish (an
/// allocation, and the channel's own locking on send, poll and both drops: 10% of the
/// client's CPU at QoS 1 against a sink server). Slots live in one table under the budget's
/// lock, so acceptance takes one lock for both, and the driver settles every outcome of one
/// wake under one lock, waking each waiting task once (see docs/decisions.md, "The client's
/// own cost per publish").
pub(crate) struct PublishBudget {
    used: Mutex<Used>,
    max_count: usize,
    max_bytes: usize,
    /// Notified when a permit is returned.
    room: event_listener::Event,
    /// Notified when the last permit is returned (a drain waits for it).
    idle: event_listener::Event,
}

#[derive(Default)]
struct Used {
    count: usize,
    bytes: usize,
    /// Completion slots, indexed by `Permit::slot`; grown to the most QoS 1/2 publishes ever
    /// pending at once, dropped again whenever none is.
    slots: Vec<Slot>,
    /// Indices of free entries of `slots`.
    free: Vec<u32>,
    /// Slots not free.
    slots_in_use: usize,
}

/// One QoS 1/2 publish's completion. A slot is freed once both sides are done with it: the
/// driver has written the outcome (or the permit was dropped) and the future has taken it (or
/// was dropped), so an index is never reused while either side still holds it.
enum Slot {
    Free,
    /// No outcome yet; the waker of the future's last poll.
    Pending(Option<Waker>),
    /// The outcome, not yet taken by the future.
    Done(Result<PublishAck, ClientError>),
    /// The future was dropped before the outcome: the driver frees the slot.
    Abandoned,
}

/// Completion slots an idle client keeps allocated.
const KEPT_SLOTS: usize = 8;

/// What the driver settles: a permit with the outcome for its waiter (`None` for QoS 0,
/// whose caller was answered at acceptance).
pub(crate) type Settled = (Permit, Option<Result<PublishAck, ClientError>>);

impl Used {
    fn open_slot(&mut self) -> u32 {
        self.slots_in_use += 1;
        if let Some(index) = self.free.pop() {
            self.slots[index as usize] = Slot::Pending(None);
            return index;
        }
        self.slots.push(Slot::Pending(None));
        // At most `max_count` slots exist (one per permit), which `new` bounds to `u32`.
        u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
    }

    fn free_slot(&mut self, index: u32) {
        self.slots[index as usize] = Slot::Free;
        self.slots_in_use -= 1;
        if self.slots_in_use == 0 {
            // Every slot is free: start over, and do not keep a burst's table (a few slots
            // are kept, so that a sequential QoS 1 loop allocates nothing per publish).
            if self.slots.capacity() > KEPT_SLOTS {
                self.slots = Vec::new();
                self.free = Vec::new();
            } else {
                self.slots.clear();
                self.free.clear();
            }
        } else {
            self.free.push(index);
        }
    }

    /// The driver's side: the outcome goes into the slot, its waker (if any) to `wakers`.
    fn complete(
        &mut self,
        index: u32,
        outcome: Result<PublishAck, ClientError>,
        wakers: &mut Vec<Waker>,
    ) {
        match std::mem::replace(&mut self.slots[index as usize], Slot::Done(outcome)) {
            Slot::Pending(waker) => {
                if let Some(waker) = waker
                    && !wakers.last().is_some_and(|last| last.will_wake(&waker))
                {
                    wakers.push(waker);
                }
            }
            Slot::Abandoned => self.free_slot(index),
            // Completed twice, or a free slot: cannot happen (a permit settles once).
            Slot::Done(_) | Slot::Free => self.free_slot(index),
        }
    }

    /// Returns a permit's share of `bytes`; true when no permit is left.
    fn release(&mut self, bytes: usize) -> bool {
        self.count -= 1;
        self.bytes -= bytes;
        self.count == 0
    }
}

impl PublishBudget {
    pub(crate) fn new(max_count: usize, max_bytes: usize) -> Self {
        Self {
            used: Mutex::new(Used::default()),
            // Slot indices are `u32`.
            max_count: max_count.clamp(1, u32::MAX as usize),
            max_bytes,
            room: event_listener::Event::new(),
            idle: event_listener::Event::new(),
        }
    }

    /// A permit for a publish of `bytes`, if there is room, with a completion slot when a
    /// caller will wait for the outcome (`waits`: QoS 1/2). A publish larger than the byte
    /// bound on its own gets one when nothing else is queued, so it is never refused forever.
    pub(crate) fn try_acquire(self: &Arc<Self>, bytes: usize, waits: bool) -> Option<Permit> {
        let mut used = lock(&self.used);
        let fits = used.count < self.max_count
            && (used.count == 0 || used.bytes.saturating_add(bytes) <= self.max_bytes);
        if !fits {
            return None;
        }
        used.count += 1;
        used.bytes += bytes;
        let slot = waits.then(|| used.open_slot());
        drop(used);
        Some(Permit {
            budget: self.clone(),
            bytes,
            slot,
            settled: false,
        })
    }

    /// The outcome in slot `index`, once the driver wrote it (the slot is then freed: take it
    /// once); otherwise registers the waker.
    pub(crate) fn poll_outcome(
        &self,
        index: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Result<PublishAck, ClientError>> {
        let mut used = lock(&self.used);
        let slot = &mut used.slots[index as usize];
        match slot {
            Slot::Pending(waker) => {
                if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Slot::Done(_) => {
                let Slot::Done(outcome) = std::mem::replace(slot, Slot::Free) else {
                    return Poll::Ready(Err(ClientError::Closed));
                };
                used.free_slot(index);
                Poll::Ready(outcome)
            }
            // The future polls only a slot it holds: cannot happen.
            Slot::Abandoned | Slot::Free => Poll::Ready(Err(ClientError::Closed)),
        }
    }

    /// The future of slot `index` stops waiting (dropped, or timed out) before taking its
    /// outcome.
    pub(crate) fn abandon(&self, index: u32) {
        let mut used = lock(&self.used);
        match &used.slots[index as usize] {
            Slot::Pending(_) => used.slots[index as usize] = Slot::Abandoned,
            Slot::Done(_) => used.free_slot(index),
            Slot::Abandoned | Slot::Free => {}
        }
    }

    /// Settles every permit of `batch` (emptied) under one lock: returns their shares, hands
    /// the outcomes to their slots, then wakes each waiting task once. `wakers` is scratch
    /// space the caller keeps between batches.
    pub(crate) fn settle(&self, batch: &mut Vec<Settled>, wakers: &mut Vec<Waker>) {
        if batch.is_empty() {
            return;
        }
        let idle = {
            let mut used = lock(&self.used);
            let mut idle = false;
            for (permit, outcome) in batch.iter_mut() {
                permit.settled = true;
                idle = used.release(permit.bytes);
                if let Some(index) = permit.slot {
                    let outcome = outcome.take().unwrap_or(Err(ClientError::Closed));
                    used.complete(index, outcome, wakers);
                }
            }
            idle
        };
        let released = batch.len();
        // Settled: dropping them only drops their reference to the budget.
        batch.clear();
        self.notify(released, idle);
        for waker in wakers.drain(..) {
            waker.wake();
        }
    }

    fn notify(&self, released: usize, idle: bool) {
        // One waiter per returned permit; a notified listener that is dropped passes it on.
        self.room.notify(released);
        if idle {
            self.idle.notify(usize::MAX);
        }
    }

    /// A listener notified when room may have appeared; create it before retrying
    /// [`try_acquire`](Self::try_acquire) so no release is missed.
    pub(crate) fn listen(&self) -> event_listener::EventListener {
        self.room.listen()
    }

    /// Publishes accepted and not completed.
    pub(crate) fn in_use(&self) -> usize {
        lock(&self.used).count
    }

    /// Topic and payload bytes of those publishes.
    pub(crate) fn bytes_in_use(&self) -> usize {
        lock(&self.used).bytes
    }

    /// Waits until no publish is accepted and unfinished.
    pub(crate) async fn idle(&self) {
        loop {
            // Listen first, then look: the last permit returned in between is not missed.
            let listener = self.idle.listen();
            if self.in_use() == 0 {
                return;
            }
            listener.await;
        }
    }
}

/// One accepted publish's share of the [`PublishBudget`], with its completion slot if a
/// caller waits for the outcome.
pub(crate) struct Permit {
    budget: Arc<PublishBudget>,
    bytes: usize,
    slot: Option<u32>,
    /// Returned (by `settle` or `complete`): nothing left for `drop` to do.
    settled: bool,
}

impl Permit {
    /// The completion slot the publish's future waits on (QoS 1/2).
    pub(crate) fn slot(&self) -> Option<u32> {
        self.slot
    }

    /// Settles this one permit with `outcome` for its waiter (a batch goes through
    /// [`PublishBudget::settle`]).
    pub(crate) fn complete(mut self, outcome: Result<PublishAck, ClientError>) {
        self.finish(Some(outcome));
    }

    /// Returns the share of a publish that was never queued (refused at acceptance): its
    /// slot, if any, is freed, nobody waiting on it.
    pub(crate) fn cancel(mut self) {
        self.settled = true;
        let idle = {
            let mut used = lock(&self.budget.used);
            if let Some(index) = self.slot {
                used.free_slot(index);
            }
            used.release(self.bytes)
        };
        self.budget.notify(1, idle);
    }

    fn finish(&mut self, outcome: Option<Result<PublishAck, ClientError>>) {
        self.settled = true;
        let mut wakers = Vec::new();
        let idle = {
            let mut used = lock(&self.budget.used);
            if let Some(index) = self.slot {
                let outcome = outcome.unwrap_or(Err(ClientError::Closed));
                used.complete(index, outcome, &mut wakers);
            }
            used.release(self.bytes)
        };
        self.budget.notify(1, idle);
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.settled {
            // Dropped without an outcome (a driver that stopped, a refused command): its
            // waiter learns the client closed, as a dropped reply channel told it before.
            self.finish(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(budget: &PublishBudget, slot: u32) -> Poll<Result<PublishAck, ClientError>> {
        budget.poll_outcome(slot, &mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_settled_outcome_reaches_its_slot_and_the_budget_comes_back() {
        let budget = Arc::new(PublishBudget::new(2, 1000));
        let first = budget.try_acquire(10, true).expect("room");
        let second = budget.try_acquire(10, false).expect("room");
        assert!(
            budget.try_acquire(10, true).is_none(),
            "two permits at most"
        );
        let slot = first.slot().expect("a waiting publish has a slot");
        assert!(second.slot().is_none(), "QoS 0 needs none");
        assert!(outcome(&budget, slot).is_pending());

        let mut batch = vec![(first, Some(Ok(PublishAck::success()))), (second, None)];
        budget.settle(&mut batch, &mut Vec::new());
        assert!(batch.is_empty());
        assert_eq!(budget.in_use(), 0);
        assert!(matches!(outcome(&budget, slot), Poll::Ready(Ok(_))));
        assert!(lock(&budget.used).slots.is_empty(), "every slot free again");
    }

    #[test]
    fn a_permit_dropped_unsettled_tells_its_waiter_the_client_closed() {
        let budget = Arc::new(PublishBudget::new(4, 1000));
        let permit = budget.try_acquire(1, true).expect("room");
        let slot = permit.slot().expect("slot");
        drop(permit);
        assert_eq!(budget.in_use(), 0);
        assert!(matches!(
            outcome(&budget, slot),
            Poll::Ready(Err(ClientError::Closed))
        ));
    }

    #[test]
    fn an_abandoned_slot_is_freed_by_its_completion_and_reused() {
        let budget = Arc::new(PublishBudget::new(4, 1000));
        let first = budget.try_acquire(1, true).expect("room");
        let kept = budget.try_acquire(1, true).expect("room");
        let slot = first.slot().expect("slot");
        // The future went away first (dropped after acceptance): the message is still sent,
        // and its completion frees the slot.
        budget.abandon(slot);
        first.complete(Ok(PublishAck::success()));
        let again = budget.try_acquire(1, true).expect("room");
        assert_eq!(again.slot(), Some(slot), "the freed slot is reused");
        // The other order: completed, then abandoned before the future looked.
        let kept_slot = kept.slot().expect("slot");
        kept.complete(Ok(PublishAck::success()));
        budget.abandon(kept_slot);
        let refused = budget.try_acquire(1, true).expect("room");
        assert_eq!(refused.slot(), Some(kept_slot));
        refused.cancel();
        again.complete(Err(ClientError::Closed));
        assert_eq!(budget.in_use(), 0);
        assert!(
            !lock(&budget.used).slots.is_empty(),
            "an outcome waits for its future"
        );
        assert!(matches!(
            outcome(&budget, slot),
            Poll::Ready(Err(ClientError::Closed))
        ));
        assert!(lock(&budget.used).slots.is_empty());
    }
}
