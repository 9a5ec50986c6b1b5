//! The session's timers: a tiny table of deadlines. `poll_timeout` is their minimum, and a
//! `handle_timeout` before any of them is due does nothing.

use core::time::Duration;

use crate::time::Instant;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// CONNACK must arrive by then.
    ConnAck = 0,
    /// Nothing sent since `keep_alive`: time for a PINGREQ.
    KeepAlive = 1,
    /// A PINGREQ is unanswered: the connection is lost at this point.
    PingResp = 2,
}

const TIMERS: [Timer; 3] = [Timer::ConnAck, Timer::KeepAlive, Timer::PingResp];

#[derive(Debug, Clone)]
pub(crate) struct TimerTable<I>([Option<I>; 3]);

impl<I> Default for TimerTable<I> {
    fn default() -> Self {
        Self([None, None, None])
    }
}

impl<I: Instant> TimerTable<I> {
    /// Arms `timer` for `after` past `now`; a deadline the instant type cannot represent is
    /// never reached, so the timer stays unarmed.
    pub(crate) fn set(&mut self, timer: Timer, now: I, after: Duration) {
        self.0[timer as usize] = now.checked_add(after);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.0[timer as usize] = None;
    }

    pub(crate) fn clear(&mut self) {
        self.0 = [None, None, None];
    }

    pub(crate) fn next(&self) -> Option<I> {
        self.0.iter().flatten().min().copied()
    }

    /// The first timer due at `now`, which it stops.
    pub(crate) fn expire(&mut self, now: I) -> Option<Timer> {
        let timer = TIMERS
            .into_iter()
            .find(|t| self.0[*t as usize].is_some_and(|at| at <= now))?;
        self.stop(timer);
        Some(timer)
    }
}
