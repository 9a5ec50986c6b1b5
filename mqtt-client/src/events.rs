//! Connection events fanned out to every listener of
//! [`MqttClient::connection_events`](crate::MqttClient::connection_events), each through a
//! bounded queue: a listener that stops polling holds at most [`EVENT_BUFFER`] events, and
//! learns how many it missed ([`ConnectionEvent::Missed`]).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};

use futures_util::Stream;

use crate::{ConnectionEvent, lock};

/// Undelivered events one listener of
/// [`connection_events`](crate::MqttClient::connection_events) holds at most. When a listener
/// falls this far behind, its oldest event is dropped for each new one, and the listener is
/// told how many it missed with [`ConnectionEvent::Missed`] before the events it still holds.
/// 64 covers every burst a client produces between two polls of a listener that keeps up (a
/// failover round over a long URI list yields two events per URI), while a listener that
/// never polls costs at most a few KiB. [`ConnectionEvent::MessagesDropped`] reports waiting
/// one after the other merge into one (their counts add up), so a steady stream of drops
/// neither fills the queue nor loses its total.
pub const EVENT_BUFFER: usize = 64;

/// One listener's queue, shared between its stream and the hub.
#[derive(Default)]
struct Queue {
    events: VecDeque<ConnectionEvent>,
    /// Events dropped since the listener last polled.
    missed: u64,
    /// The client is gone: no more events will come.
    ended: bool,
    waker: Option<Waker>,
}

/// Every listener's queue. Held by the client's shared state; listeners whose stream was
/// dropped are forgotten at the next event.
#[derive(Default)]
pub(crate) struct EventHub {
    listeners: Mutex<Vec<Weak<Mutex<Queue>>>>,
}

impl EventHub {
    /// A new listener, which sees the events from now on.
    pub(crate) fn listen(&self) -> ConnectionEvents {
        let queue = Arc::new(Mutex::new(Queue::default()));
        lock(&self.listeners).push(Arc::downgrade(&queue));
        ConnectionEvents { queue }
    }

    /// Hands `event` to every listener.
    pub(crate) fn send(&self, event: &ConnectionEvent) {
        lock(&self.listeners).retain(|listener| {
            let Some(queue) = listener.upgrade() else {
                return false;
            };
            let mut queue = lock(&queue);
            // Drop reports waiting side by side merge ("dropped since the last such event"),
            // so a listener that lags behind a dropping inbox still gets the exact total.
            if let (
                ConnectionEvent::MessagesDropped { count },
                Some(ConnectionEvent::MessagesDropped { count: waiting }),
            ) = (event, queue.events.back_mut())
            {
                *waiting += count;
                return true;
            }
            if queue.events.len() >= EVENT_BUFFER {
                queue.events.pop_front();
                queue.missed += 1;
            }
            queue.events.push_back(event.clone());
            if let Some(waker) = queue.waker.take() {
                waker.wake();
            }
            true
        });
    }
}

impl Drop for EventHub {
    fn drop(&mut self) {
        // The client is gone: each listener's stream ends once it has taken what it holds.
        for listener in lock(&self.listeners).drain(..) {
            if let Some(queue) = listener.upgrade() {
                let mut queue = lock(&queue);
                queue.ended = true;
                if let Some(waker) = queue.waker.take() {
                    waker.wake();
                }
            }
        }
    }
}

/// The stream returned by [`MqttClient::connection_events`](crate::MqttClient::connection_events):
/// the client's [`ConnectionEvent`]s from the moment it was created, through a queue of at
/// most [`EVENT_BUFFER`] events. It ends when every handle of the client is dropped.
#[must_use = "streams do nothing unless polled"]
pub struct ConnectionEvents {
    queue: Arc<Mutex<Queue>>,
}

impl ConnectionEvents {
    /// Events waiting to be taken (at most [`EVENT_BUFFER`]).
    pub fn len(&self) -> usize {
        lock(&self.queue).events.len()
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for ConnectionEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queue = lock(&self.queue);
        f.debug_struct("ConnectionEvents")
            .field("waiting", &queue.events.len())
            .field("missed", &queue.missed)
            .finish_non_exhaustive()
    }
}

impl Stream for ConnectionEvents {
    type Item = ConnectionEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ConnectionEvent>> {
        let mut queue = lock(&self.queue);
        if queue.missed > 0 {
            let count = std::mem::take(&mut queue.missed);
            return Poll::Ready(Some(ConnectionEvent::Missed { count }));
        }
        if let Some(event) = queue.events.pop_front() {
            return Poll::Ready(Some(event));
        }
        if queue.ended {
            return Poll::Ready(None);
        }
        queue.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (lock(&self.queue).events.len(), None)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{FutureExt, StreamExt};

    use super::*;

    fn attempt(attempt: u32) -> ConnectionEvent {
        ConnectionEvent::Reconnecting {
            attempt,
            delay: std::time::Duration::ZERO,
            uri: String::new(),
        }
    }

    fn attempt_of(event: Option<ConnectionEvent>) -> Option<u32> {
        match event {
            Some(ConnectionEvent::Reconnecting { attempt, .. }) => Some(attempt),
            _ => None,
        }
    }

    #[test]
    fn a_listener_that_falls_behind_keeps_the_newest_and_counts_the_rest() {
        let hub = EventHub::default();
        let mut late = hub.listen();
        let mut prompt = hub.listen();
        let total = 3 * EVENT_BUFFER as u32 + 5;
        for n in 1..=total {
            hub.send(&attempt(n));
            assert!(late.len() <= EVENT_BUFFER);
            // The prompt listener misses nothing.
            assert_eq!(attempt_of(prompt.next().now_or_never().flatten()), Some(n));
        }
        assert_eq!(late.len(), EVENT_BUFFER);
        match late.next().now_or_never().flatten() {
            Some(ConnectionEvent::Missed { count }) => {
                assert_eq!(count, u64::from(total) - EVENT_BUFFER as u64);
            }
            other => panic!("expected Missed first, got {other:?}"),
        }
        let first_kept = total - EVENT_BUFFER as u32 + 1;
        for n in first_kept..=total {
            assert_eq!(attempt_of(late.next().now_or_never().flatten()), Some(n));
        }
        assert!(
            late.next().now_or_never().is_none(),
            "nothing more, not ended"
        );
        // Caught up: the next event comes without a Missed marker.
        hub.send(&attempt(0));
        assert_eq!(attempt_of(late.next().now_or_never().flatten()), Some(0));
    }

    #[test]
    fn drop_reports_that_wait_side_by_side_add_up() {
        let hub = EventHub::default();
        let mut events = hub.listen();
        for _ in 0..10 * EVENT_BUFFER {
            hub.send(&ConnectionEvent::MessagesDropped { count: 3 });
        }
        hub.send(&ConnectionEvent::Closed);
        hub.send(&ConnectionEvent::MessagesDropped { count: 1 });
        assert!(matches!(
            events.next().now_or_never(),
            Some(Some(ConnectionEvent::MessagesDropped { count })) if count == 30 * EVENT_BUFFER as u64
        ));
        assert!(matches!(
            events.next().now_or_never(),
            Some(Some(ConnectionEvent::Closed))
        ));
        assert!(matches!(
            events.next().now_or_never(),
            Some(Some(ConnectionEvent::MessagesDropped { count: 1 }))
        ));
    }

    #[test]
    fn streams_end_when_the_client_is_gone_and_dropped_listeners_are_forgotten() {
        let hub = EventHub::default();
        let mut events = hub.listen();
        drop(hub.listen());
        hub.send(&ConnectionEvent::Closed);
        assert_eq!(
            lock(&hub.listeners).len(),
            1,
            "the dropped listener is forgotten"
        );
        drop(hub);
        assert!(matches!(
            events.next().now_or_never(),
            Some(Some(ConnectionEvent::Closed))
        ));
        assert!(matches!(events.next().now_or_never(), Some(None)));
    }
}
