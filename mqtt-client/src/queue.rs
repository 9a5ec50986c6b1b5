//! The command queue from client handles to the driver: a mutex-guarded `VecDeque` and the
//! driver's waker. A handle pushes under one short lock; the driver takes every queued
//! command in one go per wake. Cheaper than a channel (no node per message), and it doubles as
//! the "is a driver running" flag, so a handle needs no second lock to find the driver.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Waker};

use super::driver::Command;
use super::lock;

#[derive(Default)]
pub(crate) struct CommandQueue(Mutex<State>);

#[derive(Default)]
struct State {
    commands: VecDeque<Command>,
    waker: Option<Waker>,
    /// A driver serves the queue.
    accepting: bool,
    /// Every client handle is gone: the driver should leave.
    handles_gone: bool,
}

impl CommandQueue {
    /// Queues `command` for the running driver; false (and the command dropped) when none
    /// runs.
    pub(crate) fn push(&self, command: Command) -> bool {
        let waker = {
            let mut state = lock(&self.0);
            if !state.accepting {
                return false;
            }
            state.commands.push_back(command);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// Whether a driver serves the queue.
    pub(crate) fn is_accepting(&self) -> bool {
        lock(&self.0).accepting
    }

    /// Claims the queue for a new driver; false if one already serves it.
    pub(crate) fn open(&self) -> bool {
        let mut state = lock(&self.0);
        if state.accepting {
            return false;
        }
        state.accepting = true;
        true
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

    /// The driver stops: no more commands are accepted; those still queued are returned.
    pub(crate) fn close(&self) -> VecDeque<Command> {
        let mut state = lock(&self.0);
        state.accepting = false;
        state.waker = None;
        std::mem::take(&mut state.commands)
    }

    /// The last client handle was dropped.
    pub(crate) fn handles_dropped(&self) {
        let waker = {
            let mut state = lock(&self.0);
            state.handles_gone = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}
