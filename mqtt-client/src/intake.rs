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
//! reconnects at once, and the broker sends the refused messages again.
//!
//! With a **clean session** a refused message would be lost (the reconnect starts a new
//! session, and the broker forgets what it had not delivered), and withholding
//! acknowledgements does not slow a broker without an in-flight limit. The only bound that
//! loses nothing there is to stop reading: once `message_buffer` QoS 1/2 messages wait, the
//! next one is **held** (with what the same read brought after it, at most one read) and
//! reading pauses, with no time bound, until consumers take one; TCP flow control then holds
//! the broker back. QoS 0 messages keep their own bound (the burst pause, then the overflow
//! policy), so a broker with an in-flight window below `message_buffer` never causes this
//! pause. Since no PINGRESP can be read meanwhile, the session's ping deadline is
//! suspended for exactly that pause ([`Session::set_reading_paused`]); keep-alive PINGREQs
//! still go out, so the broker keeps the connection. This is the one case where the driver
//! stops reading for longer than the bounded burst pause.
//!
//! **MQTT 5** announces `message_buffer` as its Receive Maximum (unless configured otherwise),
//! so a broker that keeps to flow control never fills the inbox with QoS 1/2. mosquitto 2.0
//! does not: once acknowledgements and new messages interleave it sends hundreds beyond the
//! window. MQTT 5 suggests DISCONNECT 0x93 for that, which with a clean session loses every
//! message not yet delivered and, after a reconnect, happens again; so the session takes them
//! ([`ReceiveMaximumExceeded::Accept`], counted in `ClientStats::receive_maximum_overruns`)
//! and an MQTT 5 connection gets the clean-session pause above: lossless for clean and
//! persistent sessions alike, and never met with a broker that keeps to the window.
//!
//! [`ReceiveMaximumExceeded::Accept`]: sansmqtt_session::ReceiveMaximumExceeded::Accept
//! [`Session::refuse`]: sansmqtt_session::Session::refuse
//! [`Session::set_reading_paused`]: sansmqtt_session::Session::set_reading_paused

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

/// How a connection bounds the QoS 1/2 messages the client holds (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReliableBound {
    /// By flow control alone (before a connection has chosen its bound).
    FlowControl,
    /// MQTT 3.1.1 with a persistent session: refuse beyond the bound, reconnect for them.
    Refuse,
    /// MQTT 3.1.1 with a clean session, and MQTT 5: stop reading beyond the bound.
    PauseReading,
}

impl ReliableBound {
    /// The bound of a connection of `protocol` with `clean_start`.
    pub(crate) fn of(protocol: sansmqtt_proto::ProtocolVersion, clean_start: bool) -> Self {
        match (protocol.is_v5(), clean_start) {
            // The Receive Maximum (announced from `message_buffer`) keeps a sound broker
            // below the bound, so the pause is met only by one that overruns it.
            (true, _) => Self::PauseReading,
            (false, false) => Self::Refuse,
            (false, true) => Self::PauseReading,
        }
    }
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
    /// How this connection bounds QoS 1/2.
    reliable: ReliableBound,
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
            reliable: ReliableBound::FlowControl,
            refusing: false,
            timer: None,
            bound: pause_bound(keep_alive),
        }
    }

    /// A connection starts, bounding QoS 1/2 as `reliable` says (see the module docs).
    pub(crate) fn start_connection(&mut self, reliable: ReliableBound) {
        self.reliable = reliable;
        self.refusing = false;
    }

    /// Whether reading is paused with no time bound: on a clean 3.1.1 session, a QoS 1/2
    /// message waits for the application to take one of the `message_buffer` QoS 1/2 messages
    /// it holds (the session's ping deadline must not run meanwhile).
    pub(crate) fn withholding(&self) -> bool {
        matches!(self.state, State::Paused)
            && self.reliable == ReliableBound::PauseReading
            && self
                .held
                .front()
                .is_some_and(|message| message.qos() != QoS::AtMostOnce)
    }

    /// Takes a received message.
    pub(crate) fn push(
        &mut self,
        runtime: &R,
        inbox: &Inbox,
        message: ApplicationMessage,
    ) -> Intaken {
        if message.qos() != QoS::AtMostOnce
            && self.reliable == ReliableBound::Refuse
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
        // A clean 3.1.1 session's QoS 1/2 message never meets the overflow policy: beyond the
        // bound it waits here, and reading pauses (see the module docs).
        let withheld =
            message.qos() != QoS::AtMostOnce && self.reliable == ReliableBound::PauseReading;
        match self.state {
            State::Paused => {
                self.hold(message);
                0
            }
            State::Dropping if !withheld => u64::from(inbox.push(message) != Pushed::Queued),
            State::Flowing | State::Dropping => {
                if let Err(message) = self.admit(inbox, message) {
                    if withheld {
                        tracing::debug!(
                            waiting = inbox.reliable_len(),
                            "QoS 1/2 messages fill the buffer: reading pauses until the application takes one"
                        );
                    }
                    self.hold(message);
                    self.state = State::Paused;
                    let until = runtime.now() + self.bound;
                    self.timer = Some(Box::pin(runtime.sleep_until(until)));
                }
                0
            }
        }
    }

    /// Queues a message if the inbox has room for it: a QoS 0 message while fewer than
    /// `message_buffer` messages wait; a QoS 1/2 one always, except on a clean 3.1.1 session,
    /// where fewer than `message_buffer` QoS 1/2 messages must wait. Hands it back otherwise.
    fn admit(&self, inbox: &Inbox, message: ApplicationMessage) -> Result<(), ApplicationMessage> {
        if message.qos() != QoS::AtMostOnce && self.reliable == ReliableBound::PauseReading {
            inbox.try_push_reliable(message)
        } else {
            inbox.try_push(message)
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
            if let Err(message) = self.admit(inbox, message) {
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
        if self.withholding() {
            // No time bound: a QoS 1/2 message waits for room, it is never dropped.
            return false;
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
        // The overflow policy takes the QoS 0 messages held, up to a QoS 1/2 message that
        // must still wait for room (a clean 3.1.1 session); reading then stays paused.
        while let Some(message) = self.held.pop_front() {
            let reliable = message.qos() != QoS::AtMostOnce;
            if reliable && self.reliable == ReliableBound::PauseReading {
                if let Err(message) = self.admit(inbox, message) {
                    self.held.push_front(message);
                    self.timer = None;
                    return false;
                }
            } else if inbox.push(message) != Pushed::Queued {
                *dropped += 1;
            }
            self.held_reliable -= usize::from(reliable);
        }
        self.timer = None;
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

#[cfg(test)]
mod tests {
    use std::io;

    use bytes::Bytes;
    use sansmqtt_proto::{PacketId, Publish};

    use super::*;
    use crate::config::Overflow;

    /// A runtime whose every timer has already expired: a pause with a time bound ends at
    /// once, so what these tests see of a pause is what has none.
    #[derive(Clone)]
    struct Expired;

    impl Runtime for Expired {
        type Tcp = futures_util::io::Cursor<Vec<u8>>;
        type Sleep = std::future::Ready<()>;

        async fn connect_tcp(&self, _host: String, _port: u16) -> io::Result<Self::Tcp> {
            Err(io::ErrorKind::Unsupported.into())
        }

        fn set_nodelay(_tcp: &Self::Tcp) -> io::Result<()> {
            Ok(())
        }

        fn sleep_until(&self, _deadline: std::time::Instant) -> Self::Sleep {
            std::future::ready(())
        }

        fn spawn<F>(&self, _future: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
        }
    }

    fn message(qos: QoS, n: u16) -> ApplicationMessage {
        ApplicationMessage::new(
            Publish {
                qos,
                packet_id: (qos != QoS::AtMostOnce).then(|| PacketId::new(n).expect("non-zero")),
                ..Publish::new("t", Bytes::from(n.to_string()))
            },
            None,
        )
    }

    fn may_read(intake: &mut Intake<Expired>, inbox: &Inbox) -> bool {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut dropped = 0;
        let read = intake.may_read(&mut cx, inbox, &mut dropped);
        assert_eq!(dropped, 0, "nothing is dropped");
        read
    }

    fn payloads(inbox: &Inbox) -> Vec<String> {
        std::iter::from_fn(|| inbox.pop())
            .map(|m| String::from_utf8_lossy(m.payload()).into_owned())
            .collect()
    }

    #[test]
    fn a_clean_311_session_holds_qos1_beyond_the_bound_and_pauses_with_no_time_bound() {
        let inbox = Inbox::new(3, Overflow::DropNewest);
        let mut intake = Intake::<Expired>::new(Duration::from_secs(60));
        intake.start_connection(ReliableBound::PauseReading);
        for n in 1..=5 {
            assert!(matches!(
                intake.push(&Expired, &inbox, message(QoS::AtLeastOnce, n)),
                Intaken::Kept
            ));
        }
        // A QoS 0 message read behind them waits behind them.
        intake.push(&Expired, &inbox, message(QoS::AtMostOnce, 6));
        assert_eq!(inbox.len(), 3, "the bound");
        assert!(intake.withholding());
        // Its timer has expired, yet the pause goes on: nothing may be dropped.
        assert!(!may_read(&mut intake, &inbox));
        assert_eq!(inbox.len(), 3);
        assert_eq!(
            inbox.pop().map(|m| m.payload().clone()),
            Some(Bytes::from("1"))
        );
        assert!(!may_read(&mut intake, &inbox), "4 moved in, 5 and 6 wait");
        assert_eq!(inbox.len(), 3);
        assert_eq!(payloads(&inbox), ["2", "3", "4"]);
        assert!(
            may_read(&mut intake, &inbox),
            "all moved in: reading resumes"
        );
        assert!(!intake.withholding());
        assert_eq!(payloads(&inbox), ["5", "6"]);
    }

    #[test]
    fn on_a_clean_311_session_qos0_messages_do_not_hold_back_qos1() {
        let inbox = Inbox::new(2, Overflow::DropNewest);
        let mut intake = Intake::<Expired>::new(Duration::from_secs(60));
        intake.start_connection(ReliableBound::PauseReading);
        intake.push(&Expired, &inbox, message(QoS::AtMostOnce, 1));
        intake.push(&Expired, &inbox, message(QoS::AtMostOnce, 2));
        // The buffer is full of QoS 0 messages, but no QoS 1/2 one waits: this one goes in.
        intake.push(&Expired, &inbox, message(QoS::AtLeastOnce, 3));
        assert!(!intake.withholding());
        assert!(may_read(&mut intake, &inbox));
        assert_eq!(payloads(&inbox), ["1", "2", "3"]);
    }

    #[test]
    fn other_connections_keep_their_own_bounds() {
        // MQTT 5: flow control bounds QoS 1/2, the inbox takes them all.
        let inbox = Inbox::new(2, Overflow::DropNewest);
        let mut intake = Intake::<Expired>::new(Duration::from_secs(60));
        intake.start_connection(ReliableBound::FlowControl);
        for n in 1..=4 {
            intake.push(&Expired, &inbox, message(QoS::AtLeastOnce, n));
        }
        assert_eq!(inbox.len(), 4);
        assert!(!intake.withholding());
        assert!(may_read(&mut intake, &inbox));

        // A persistent 3.1.1 session refuses beyond the bound, and keeps reading.
        let inbox = Inbox::new(2, Overflow::DropNewest);
        let mut intake = Intake::<Expired>::new(Duration::from_secs(60));
        intake.start_connection(ReliableBound::Refuse);
        let kept: Vec<bool> = (1..=4)
            .map(|n| {
                matches!(
                    intake.push(&Expired, &inbox, message(QoS::AtLeastOnce, n)),
                    Intaken::Kept
                )
            })
            .collect();
        assert_eq!(kept, [true, true, false, false]);
        assert!(!intake.withholding());
        assert!(may_read(&mut intake, &inbox));

        // A QoS 0 burst on a clean 3.1.1 session: the pause has its time bound, and at its
        // end the overflow policy applies.
        let inbox = Inbox::new(2, Overflow::DropNewest);
        let mut intake = Intake::<Expired>::new(Duration::from_secs(60));
        intake.start_connection(ReliableBound::PauseReading);
        for n in 1..=3 {
            intake.push(&Expired, &inbox, message(QoS::AtMostOnce, n));
        }
        assert!(!intake.withholding());
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut dropped = 0;
        assert!(intake.may_read(&mut cx, &inbox, &mut dropped));
        assert_eq!(dropped, 1);
    }
}
