//! Received messages on their way into the inbox: the read pause that makes bursts lossless.
//!
//! The driver reads up to 64 KiB at a time, hundreds or thousands of small messages, and a
//! consumer task may not be scheduled before the `message_buffer` fills up even though it keeps
//! up on average. Dropping QoS 0 messages at that instant lost 1-6% of a burst that a
//! consumer doing nothing but count was able to take. So:
//!
//! - **Flowing**: messages go into the inbox. A QoS 0 message that finds it full is held
//!   here instead, and reading **pauses**.
//! - **Paused**: the socket is not read, messages already read are held (in order, at most
//!   one read's worth), and every message a consumer takes lets the driver move held ones in;
//!   once all are in, reading resumes. The pause is bounded by [`pause_bound`]
//!   (`min(keep_alive / 4, 1 s)`), well inside the keep-alive budget: if the consumer is still
//!   stalled at its end, the held messages meet the overflow policy (counted, reported) and
//!   reading resumes.
//! - **Dropping**: a consumer that stalled through a whole pause is slow, not bursty: the
//!   overflow policy applies at once and the socket is read at full speed (so PINGRESP and
//!   acknowledgements keep flowing), until the consumer has drained the inbox to half of its
//!   bound; then a burst may pause reading again.
//!
//! QoS 1/2 messages never pause reading (flow control bounds them); while reading is paused
//! they are held behind the QoS 0 messages read before them, so arrival order is kept.
//!
//! **The MQTT 3.1.1 bound on QoS 1/2.** MQTT 5 bounds them with the Receive Maximum; 3.1.1
//! has none, and a broker without an in-flight limit (mosquitto's `max_inflight_messages 0`)
//! sends every message it has whether or not earlier ones were acknowledged. So in 3.1.1 with
//! a persistent session (`clean_session(false)`), once `message_buffer` QoS 1/2 messages wait,
//! the next ones are **refused**: dropped unacknowledged ([`Session::refuse`]), and so is every
//! later QoS 1/2 message of that connection (acknowledgements go out in arrival order, so none
//! after the first refused one could be sent anyway). The socket is still read. Once the
//! application has taken every message it holds (their acknowledgements queued), the client
//! reconnects at once, and the broker sends the refused messages again. With a clean session
//! a refused message would be lost, so there QoS 1/2 are not bounded (as before).
//!
//! [`Session::refuse`]: sansmqtt_session::Session::refuse

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use sansmqtt_proto::QoS;
use sansmqtt_session::AckToken;

use crate::ApplicationMessage;
use crate::inbox::{Inbox, Pushed};
use crate::transport::Runtime;

/// The longest read pause, whatever the keep-alive.
pub(crate) const MAX_READ_PAUSE: Duration = Duration::from_secs(1);

/// How long reading may pause for a full inbox: a quarter of the keep-alive, at most 1 s (1 s
/// when keep-alive is off).
pub(crate) fn pause_bound(keep_alive: Duration) -> Duration {
    if keep_alive.is_zero() {
        MAX_READ_PAUSE
    } else {
        (keep_alive / 4).min(MAX_READ_PAUSE)
    }
}

enum State {
    Flowing,
    Paused,
    Dropping,
}

/// What [`Intake::push`] did with a message.
#[derive(Debug)]
pub(crate) enum Intaken {
    /// Queued, or held for the inbox.
    Kept,
    /// Dropped by the overflow policy (QoS 0).
    Dropped,
    /// Refused (QoS 1/2 beyond the 3.1.1 bound): the session must be told, with this token.
    Refused(Option<AckToken>),
}

/// The driver's side of the inbox (see the module docs).
pub(crate) struct Intake<R: Runtime> {
    state: State,
    /// Messages read while paused, oldest first.
    held: VecDeque<ApplicationMessage>,
    /// QoS 1/2 messages among `held`.
    held_reliable: usize,
    /// This connection bounds QoS 1/2 by refusing them (3.1.1, persistent session).
    bounded: bool,
    /// A QoS 1/2 message was refused on this connection.
    refusing: bool,
    /// The end of the current pause.
    timer: Option<Pin<Box<R::Sleep>>>,
    bound: Duration,
}

impl<R: Runtime> Intake<R> {
    pub(crate) fn new(keep_alive: Duration) -> Self {
        Self {
            state: State::Flowing,
            held: VecDeque::new(),
            held_reliable: 0,
            bounded: false,
            refusing: false,
            timer: None,
            bound: pause_bound(keep_alive),
        }
    }

    /// A connection starts: `bounded` when QoS 1/2 are bounded by refusal on it (see the
    /// module docs).
    pub(crate) fn start_connection(&mut self, bounded: bool) {
        self.bounded = bounded;
        self.refusing = false;
    }

    /// Takes a received message.
    pub(crate) fn push(
        &mut self,
        runtime: &R,
        inbox: &Inbox,
        message: ApplicationMessage,
    ) -> Intaken {
        if message.qos() != QoS::AtMostOnce
            && self.bounded
            && (self.refusing || inbox.reliable_len() + self.held_reliable >= inbox.capacity())
        {
            if !self.refusing {
                tracing::debug!(
                    "{} QoS 1/2 messages wait: refusing more until the application takes them",
                    inbox.capacity()
                );
            }
            self.refusing = true;
            return Intaken::Refused(message.ack);
        }
        match self.take(runtime, inbox, message) {
            0 => Intaken::Kept,
            _ => Intaken::Dropped,
        }
    }

    /// Whether messages were refused and the application has now taken every QoS 1/2
    /// message the client held: time to reconnect, so that the broker sends the refused ones
    /// again. Registers the driver to be woken when the application takes a message.
    pub(crate) fn refusal_over(&mut self, cx: &mut Context<'_>, inbox: &Inbox) -> bool {
        if !self.refusing {
            return false;
        }
        inbox.room.register(cx.waker());
        if inbox.reliable_len() + self.held_reliable > 0 {
            return false;
        }
        self.refusing = false;
        true
    }

    /// Queues or holds a message; returns how many the overflow policy dropped (0 or 1).
    fn take(&mut self, runtime: &R, inbox: &Inbox, message: ApplicationMessage) -> u64 {
        if let State::Dropping = self.state
            && inbox.len() <= inbox.capacity() / 2
        {
            self.state = State::Flowing;
        }
        match self.state {
            State::Paused => {
                self.hold(message);
                0
            }
            State::Flowing => {
                if let Err(message) = inbox.try_push(message) {
                    self.hold(message);
                    self.state = State::Paused;
                    let until = runtime.now() + self.bound;
                    self.timer = Some(Box::pin(runtime.sleep_until(until)));
                }
                0
            }
            State::Dropping => u64::from(inbox.push(message) != Pushed::Queued),
        }
    }

    /// Whether the driver may read the socket now. While paused this moves held messages into
    /// the room consumers made, and registers the driver to be woken by a consumer or by the
    /// end of the pause; `dropped` counts what the overflow policy drops when the pause ends
    /// with the consumer still stalled.
    pub(crate) fn may_read(
        &mut self,
        cx: &mut Context<'_>,
        inbox: &Inbox,
        dropped: &mut u64,
    ) -> bool {
        if !matches!(self.state, State::Paused) {
            return true;
        }
        inbox.room.register(cx.waker());
        while let Some(message) = self.held.pop_front() {
            let reliable = message.qos() != QoS::AtMostOnce;
            if let Err(message) = inbox.try_push(message) {
                self.held.push_front(message);
                break;
            }
            self.held_reliable -= usize::from(reliable);
        }
        if self.held.is_empty() {
            self.state = State::Flowing;
            self.timer = None;
            return true;
        }
        let expired = self
            .timer
            .as_mut()
            .is_none_or(|timer| timer.as_mut().poll(cx).is_ready());
        if !expired {
            return false;
        }
        tracing::debug!(
            held = self.held.len(),
            "the consumer stayed stalled through the read pause: the overflow policy applies"
        );
        self.flush(inbox, dropped);
        self.state = State::Dropping;
        true
    }

    /// Hands every held message to the inbox under the overflow policy (the connection
    /// ended, or the pause did).
    pub(crate) fn flush(&mut self, inbox: &Inbox, dropped: &mut u64) {
        for message in self.held.drain(..) {
            if inbox.push(message) != Pushed::Queued {
                *dropped += 1;
            }
        }
        self.held_reliable = 0;
        self.timer = None;
        if let State::Paused = self.state {
            self.state = State::Flowing;
        }
    }
}

impl<R: Runtime> Intake<R> {
    fn hold(&mut self, message: ApplicationMessage) {
        self.held_reliable += usize::from(message.qos() != QoS::AtMostOnce);
        self.held.push_back(message);
    }
}
