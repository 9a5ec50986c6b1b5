//! Received messages waiting for the application, and the budget that bounds what publishers
//! can queue.
//!
//! The inbox is a plain queue under a short lock, shared by the driver (which pushes) and
//! every `deliver_message` / `messages()` consumer (which pop). Nothing is allocated up front:
//! an idle client holds an empty `VecDeque`. QoS 1/2 messages are always admitted, because
//! flow control already bounds them (each is unacknowledged, and the broker may have only so
//! many unacknowledged messages out: its in-flight window, or our MQTT 5 Receive Maximum);
//! QoS 0 messages beyond the buffer follow the [`Overflow`] policy.

use std::collections::VecDeque;
use std::sync::Mutex;

use futures_util::task::AtomicWaker;

use sansmqtt_proto::QoS;

use crate::config::Overflow;
use crate::{ApplicationMessage, lock};

/// Messages received and not yet taken by the application.
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
    /// Notified when a message arrives, and (for everyone) when waiting must be re-checked:
    /// `cancel_tasks`, the driver stopping.
    pub(crate) changed: event_listener::Event,
    /// The driver, while it has paused reading because the inbox was full
    /// ([`Intake`](crate::intake::Intake)): woken when a consumer takes a message.
    pub(crate) room: AtomicWaker,
}

struct InboxState {
    messages: VecDeque<ApplicationMessage>,
    capacity: usize,
    overflow: Overflow,
    /// QoS 0 messages dropped by the overflow policy since the client was created.
    dropped: u64,
    /// QoS 1/2 messages among `messages`.
    reliable: usize,
}

/// What [`Inbox::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued.
    Queued,
    /// Queued; an older QoS 0 message made room for it.
    QueuedDroppingOldest,
    /// The message itself was dropped.
    Dropped,
}

impl Inbox {
    pub(crate) fn new(capacity: usize, overflow: Overflow) -> Self {
        Self {
            state: Mutex::new(InboxState {
                messages: VecDeque::new(),
                capacity: capacity.max(1),
                overflow,
                dropped: 0,
                reliable: 0,
            }),
            changed: event_listener::Event::new(),
            room: AtomicWaker::new(),
        }
    }

    /// Queues a received message; a QoS 0 message may be dropped (see the module docs).
    pub(crate) fn push(&self, message: ApplicationMessage) -> Pushed {
        let pushed = {
            let mut state = lock(&self.state);
            let full = state.messages.len() >= state.capacity;
            let pushed = if !full || message.qos() != QoS::AtMostOnce {
                Pushed::Queued
            } else if state.overflow == Overflow::DropOldest
                && let Some(oldest) = state
                    .messages
                    .iter()
                    .position(|m| m.qos() == QoS::AtMostOnce)
            {
                state.messages.remove(oldest);
                Pushed::QueuedDroppingOldest
            } else {
                Pushed::Dropped
            };
            match pushed {
                Pushed::Dropped => state.dropped += 1,
                Pushed::QueuedDroppingOldest => {
                    state.dropped += 1;
                    state.messages.push_back(message);
                }
                Pushed::Queued => {
                    state.reliable += usize::from(message.qos() != QoS::AtMostOnce);
                    state.messages.push_back(message);
                }
            }
            pushed
        };
        if pushed != Pushed::Dropped {
            self.changed.notify_additional(1);
        }
        pushed
    }

    /// Queues a received message unless it is a QoS 0 message and the inbox is full: then it
    /// is handed back, and nothing is counted.
    pub(crate) fn try_push(&self, message: ApplicationMessage) -> Result<(), ApplicationMessage> {
        {
            let mut state = lock(&self.state);
            if state.messages.len() >= state.capacity && message.qos() == QoS::AtMostOnce {
                return Err(message);
            }
            state.reliable += usize::from(message.qos() != QoS::AtMostOnce);
            state.messages.push_back(message);
        }
        self.changed.notify_additional(1);
        Ok(())
    }

    /// Queues a received QoS 1/2 message only if fewer than the bound of QoS 1/2 messages
    /// wait; otherwise hands it back.
    pub(crate) fn try_push_reliable(
        &self,
        message: ApplicationMessage,
    ) -> Result<(), ApplicationMessage> {
        {
            let mut state = lock(&self.state);
            if state.reliable >= state.capacity {
                return Err(message);
            }
            state.reliable += 1;
            state.messages.push_back(message);
        }
        self.changed.notify_additional(1);
        Ok(())
    }

    /// The oldest waiting message. The taker wakes the driver ([`room`](Self::room)) once it
    /// has also queued the message's acknowledgement.
    pub(crate) fn pop(&self) -> Option<ApplicationMessage> {
        let mut state = lock(&self.state);
        let message = state.messages.pop_front()?;
        state.reliable -= usize::from(message.qos() != QoS::AtMostOnce);
        Some(message)
    }

    /// QoS 1/2 messages waiting.
    pub(crate) fn reliable_len(&self) -> usize {
        lock(&self.state).reliable
    }

    /// The configured bound (`message_buffer`).
    pub(crate) fn capacity(&self) -> usize {
        lock(&self.state).capacity
    }

    /// Messages waiting.
    pub(crate) fn len(&self) -> usize {
        lock(&self.state).messages.len()
    }

    /// QoS 0 messages dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        lock(&self.state).dropped
    }

    /// Wakes every waiting consumer to re-check its conditions.
    pub(crate) fn wake_all(&self) {
        self.changed.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use sansmqtt_proto::Publish;

    use super::*;

    fn message(qos: QoS, payload: &'static str) -> ApplicationMessage {
        ApplicationMessage::new(
            Publish {
                qos,
                packet_id: (qos != QoS::AtMostOnce).then_some(sansmqtt_proto::PacketId::MIN),
                ..Publish::new("t", Bytes::from_static(payload.as_bytes()))
            },
            None,
        )
    }

    fn payloads(inbox: &Inbox) -> Vec<String> {
        std::iter::from_fn(|| inbox.pop())
            .map(|m| String::from_utf8_lossy(m.payload()).into_owned())
            .collect()
    }

    #[test]
    fn qos0_beyond_the_buffer_drops_the_newest_by_default() {
        let inbox = Inbox::new(2, Overflow::DropNewest);
        assert_eq!(inbox.push(message(QoS::AtMostOnce, "a")), Pushed::Queued);
        assert_eq!(inbox.push(message(QoS::AtMostOnce, "b")), Pushed::Queued);
        assert_eq!(inbox.push(message(QoS::AtMostOnce, "c")), Pushed::Dropped);
        assert_eq!(inbox.dropped(), 1);
        assert_eq!(payloads(&inbox), ["a", "b"]);
    }

    #[test]
    fn drop_oldest_removes_the_oldest_qos0_message() {
        let inbox = Inbox::new(2, Overflow::DropOldest);
        inbox.push(message(QoS::AtLeastOnce, "q1"));
        inbox.push(message(QoS::AtMostOnce, "a"));
        assert_eq!(
            inbox.push(message(QoS::AtMostOnce, "b")),
            Pushed::QueuedDroppingOldest
        );
        assert_eq!(inbox.dropped(), 1);
        assert_eq!(payloads(&inbox), ["q1", "b"]);
    }

    #[test]
    fn qos1_and_qos2_are_never_dropped() {
        let inbox = Inbox::new(1, Overflow::DropOldest);
        inbox.push(message(QoS::AtLeastOnce, "1"));
        assert_eq!(inbox.push(message(QoS::ExactlyOnce, "2")), Pushed::Queued);
        assert_eq!(inbox.push(message(QoS::AtMostOnce, "0")), Pushed::Dropped);
        assert_eq!(payloads(&inbox), ["1", "2"]);
    }
}
