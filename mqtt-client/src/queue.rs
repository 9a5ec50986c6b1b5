//! The command queue from client handles to the driver: a mutex-guarded `VecDeque` and the
//! driver's waker. A handle pushes under one short lock; the driver takes every queued
//! command in one go per wake. Cheaper than a channel (no node per message), and it doubles as
//! the "is a driver running" flag, so a handle needs no second lock to find the driver.
//! Before the first driver it keeps what may be declared before `connect` (publishes,
//! subscribes, unsubscribes: `driver::declared`), in order, for that driver.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

use super::driver::Command;
use super::driver::declared::{self, Admit, Declared};
use super::{ClientError, lock};

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
        inbox.append(&mut state.commands);
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
/// every handle. A publish holds a [`Permit`] from acceptance until its outcome is known (QoS 0
/// handed to the transport, although its future completed at acceptance; QoS 1/2
/// acknowledged; or failed); the permit's drop returns its share, so no path
/// (completion, failure, a driver that stops) can leak budget.
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
}

impl PublishBudget {
    pub(crate) fn new(max_count: usize, max_bytes: usize) -> Self {
        Self {
            used: Mutex::new(Used::default()),
            max_count: max_count.max(1),
            max_bytes,
            room: event_listener::Event::new(),
            idle: event_listener::Event::new(),
        }
    }

    /// A permit for a publish of `bytes`, if there is room. A publish larger than the byte
    /// bound on its own gets one when nothing else is queued, so it is never refused forever.
    pub(crate) fn try_acquire(self: &Arc<Self>, bytes: usize) -> Option<Permit> {
        let mut used = lock(&self.used);
        let fits = used.count < self.max_count
            && (used.count == 0 || used.bytes.saturating_add(bytes) <= self.max_bytes);
        if !fits {
            return None;
        }
        used.count += 1;
        used.bytes += bytes;
        Some(Permit {
            budget: self.clone(),
            bytes,
        })
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

/// One accepted publish's share of the [`PublishBudget`].
pub(crate) struct Permit {
    budget: Arc<PublishBudget>,
    bytes: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let idle = {
            let mut used = lock(&self.budget.used);
            used.count -= 1;
            used.bytes -= self.bytes;
            used.count == 0
        };
        // One waiter is enough: a notified listener that is dropped passes it on.
        self.budget.room.notify(1);
        if idle {
            self.budget.idle.notify(usize::MAX);
        }
    }
}
