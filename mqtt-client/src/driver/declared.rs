//! Commands declared before the first `connect`: publishes, subscribes and unsubscribes made
//! before the client ever started its connection task.
//!
//! Until the first driver starts, the command queue keeps them ([`Declared::admit`]), in the
//! order they were made: publishes bounded by the publish budget (`max_queued`,
//! `max_queued_bytes`) like any other, subscribes and unsubscribes by a count of their own (the
//! same `max_queued`). Everything else that needs a connection (ping, re-authentication, an
//! acknowledgement) is refused with [`ClientError::NotConnected`], as before. `disconnect` and
//! `cancel_tasks` before any `connect`, and the last handle's drop, fail what was kept with
//! [`ClientError::Closed`] ([`release`]).
//!
//! `connect` starts the driver, which applies them at once, before it opens a transport
//! ([`Driver::apply_declared`]): a publish joins the session's queue (with a durable store,
//! which `connect` has just opened, a QoS 1/2 one is recorded, and a sync off the executor
//! makes it durable, so `Publishing::stored` resolves even if no broker answers yet); a
//! subscribe or unsubscribe waits in the session for the first CONNACK. At that CONNACK the
//! session sends them before the queued publishes (each kind in the order it was made), so a
//! client that subscribes to its own topic before connecting receives what it published
//! before connecting. A subscription is recorded in the store when it is applied, as any other.
//!
//! Once a driver has run and stopped (`disconnect`, or reconnecting gave up), commands are
//! refused with [`ClientError::NotConnected`] until `connect` or `reconnect` starts the next
//! one, as before: that is a client the application stopped, not one it has not started.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::Poll;

use super::{Command, Driver, Ended};
use crate::error::ClientError;
use crate::transport::Runtime;

/// What the command queue does with a command while no driver serves it.
pub(crate) enum Admit {
    /// Keep it for the first driver.
    Keep,
    /// Refuse it with this error (the command is dropped).
    Refuse(ClientError),
    /// A `disconnect` or `cancel_tasks` before the first `connect`: fail everything kept with
    /// [`ClientError::Closed`].
    Release,
}

/// The queue's bookkeeping of commands declared before the first driver.
#[derive(Debug)]
pub(crate) struct Declared {
    /// Subscribes and unsubscribes that may be kept.
    limit: usize,
    /// Subscribes and unsubscribes kept.
    requests: usize,
    /// A driver has run and stopped: nothing is kept any more.
    stopped: bool,
}

impl Declared {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            requests: 0,
            stopped: false,
        }
    }

    /// Decides what happens to `command`, which arrived while no driver serves the queue.
    pub(crate) fn admit(&mut self, command: &Command) -> Admit {
        if self.stopped {
            return Admit::Refuse(ClientError::NotConnected);
        }
        match command {
            Command::Publish { .. } => Admit::Keep,
            Command::Subscribe { .. } | Command::Unsubscribe { .. } => {
                if self.requests >= self.limit {
                    return Admit::Refuse(ClientError::QueueFull);
                }
                self.requests += 1;
                Admit::Keep
            }
            Command::Cancel | Command::Disconnect { .. } => {
                self.requests = 0;
                Admit::Release
            }
            Command::Ack(_)
            | Command::Ping { .. }
            | Command::Reauthenticate { .. }
            | Command::Reconnect { .. } => Admit::Refuse(ClientError::NotConnected),
        }
    }

    /// A driver takes the queue: what was kept is its to apply.
    pub(crate) fn opened(&mut self) {
        self.requests = 0;
    }

    /// A driver stopped: from now on nothing is kept while none runs.
    pub(crate) fn stopped(&mut self) {
        self.stopped = true;
        self.requests = 0;
    }

    /// The driver that claimed the queue did not start: splits what was queued into what stays
    /// for the next driver (before the first one ran) and what must be refused.
    pub(crate) fn reopen(
        &mut self,
        queued: VecDeque<Command>,
    ) -> (VecDeque<Command>, VecDeque<Command>) {
        let mut kept = VecDeque::new();
        let mut refused = VecDeque::new();
        for command in queued {
            match self.admit(&command) {
                Admit::Keep => kept.push_back(command),
                // A release seen here was meant for the driver: it simply fails what came
                // before it.
                Admit::Refuse(_) | Admit::Release => {
                    if matches!(command, Command::Cancel | Command::Disconnect { .. }) {
                        release(std::mem::take(&mut kept));
                    }
                    refused.push_back(command);
                }
            }
        }
        (kept, refused)
    }
}

/// Fails commands kept for a first driver that will not come with [`ClientError::Closed`].
pub(crate) fn release(commands: VecDeque<Command>) {
    for command in commands {
        command.fail(ClientError::Closed);
    }
}

impl<R: Runtime> Driver<R> {
    /// At the driver's start, before the first transport opens: applies every command queued
    /// so far (those declared before `connect` among them), and makes the publishes they queued
    /// durable with a sync off the executor (see the module docs). Returns whether the client
    /// closed meanwhile (`disconnect`, every handle dropped).
    pub(super) async fn apply_declared(&mut self) -> bool {
        let handles_gone = poll_fn(|cx| {
            let handles_gone = self.shared.commands.take(cx, &mut self.inbox);
            let now = self.runtime.now();
            while let Some(command) = self.inbox.pop_front() {
                if self.apply(now, command) {
                    break;
                }
            }
            Poll::Ready(handles_gone)
        })
        .await;
        match self.end.take() {
            Some(Ended::Closed) => return true,
            // `reconnect()` before the first CONNACK: the connection is about to be made.
            Some(Ended::Reconnect) | None => {}
            // Nothing is connected yet: nothing can be lost.
            Some(Ended::Lost(err)) => self.end = Some(Ended::Lost(err)),
        }
        if self.syncing.start(&self.runtime, &mut self.session) {
            self.syncing.finish(&mut self.session).await;
        }
        self.session.sync_queued();
        while let Some(event) = self.session.poll_event() {
            self.dispatch(event);
        }
        handles_gone
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_channel::oneshot;
    use sansmqtt_proto::{Disconnect, Publish, SubscribeFilter};

    use super::*;
    use crate::queue::{CommandQueue, PublishBudget};
    use std::sync::Arc;

    fn subscribe() -> (
        Command,
        oneshot::Receiver<Result<crate::Acknowledgement, ClientError>>,
    ) {
        let (reply, rx) = oneshot::channel();
        let command = Command::Subscribe {
            filters: vec![SubscribeFilter::new(
                "a/#",
                sansmqtt_proto::QoS::AtLeastOnce,
            )],
            properties: Default::default(),
            reply,
        };
        (command, rx)
    }

    type Answer<T> = oneshot::Receiver<Result<T, ClientError>>;

    fn publish(budget: &Arc<PublishBudget>) -> (Command, Answer<crate::PublishAck>, Answer<()>) {
        let (reply, rx) = oneshot::channel();
        let (stored, stored_rx) = oneshot::channel();
        let mut message = Publish::new("a/b", Bytes::from_static(b"x"));
        message.qos = sansmqtt_proto::QoS::AtLeastOnce;
        let command = Command::Publish {
            publish: message,
            reply: Some(reply),
            permit: budget.try_acquire(4).expect("room"),
            stored: Some(stored),
        };
        (command, rx, stored_rx)
    }

    fn failed<T: std::fmt::Debug>(
        mut rx: oneshot::Receiver<Result<T, ClientError>>,
    ) -> Option<ClientError> {
        match rx.try_recv() {
            Ok(Some(Err(err))) => Some(err),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn before_the_first_driver_publishes_and_subscribes_are_kept_in_order() {
        let queue = CommandQueue::new(2);
        let budget = Arc::new(PublishBudget::new(10, 1024));
        let (sub, _sub_rx) = subscribe();
        let (publ, _pub_rx, _stored_rx) = publish(&budget);
        assert!(queue.offer(sub).is_ok());
        assert!(queue.offer(publ).is_ok());
        let (ping, _) = oneshot::channel();
        assert!(matches!(
            queue.offer(Command::Ping { reply: ping }),
            Err(ClientError::NotConnected)
        ));
        // The second subscribe fits, the third is beyond the bound.
        let (sub2, _sub2_rx) = subscribe();
        assert!(queue.offer(sub2).is_ok());
        let (sub3, _) = subscribe();
        assert!(matches!(queue.offer(sub3), Err(ClientError::QueueFull)));
        // The first driver finds them, in order.
        assert!(queue.open());
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let mut taken = VecDeque::new();
        queue.take(&mut cx, &mut taken);
        let kinds: Vec<&str> = taken
            .iter()
            .map(|command| match command {
                Command::Subscribe { .. } => "subscribe",
                Command::Publish { .. } => "publish",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["subscribe", "publish", "subscribe"]);
        // Once a driver has stopped, nothing is kept while none runs.
        drop(taken);
        assert!(queue.close().is_empty());
        let (sub, _) = subscribe();
        assert!(matches!(queue.offer(sub), Err(ClientError::NotConnected)));
    }

    #[test]
    fn disconnect_cancel_and_drop_before_connect_fail_what_was_kept_with_closed() {
        let budget = Arc::new(PublishBudget::new(10, 1024));
        for release in ["disconnect", "cancel", "drop"] {
            let queue = CommandQueue::new(10);
            let (sub, sub_rx) = subscribe();
            let (publ, pub_rx, stored_rx) = publish(&budget);
            assert!(queue.offer(sub).is_ok());
            assert!(queue.offer(publ).is_ok());
            assert_eq!(budget.in_use(), 1);
            match release {
                "disconnect" => {
                    let (reply, _) = oneshot::channel();
                    let disconnect = Command::Disconnect {
                        packet: Disconnect::default(),
                        reply,
                    };
                    assert!(matches!(
                        queue.offer(disconnect),
                        Err(ClientError::NotConnected)
                    ));
                }
                "cancel" => assert!(!queue.push(Command::Cancel)),
                _ => queue.handles_dropped(),
            }
            assert!(
                matches!(failed(sub_rx), Some(ClientError::Closed)),
                "{release}"
            );
            assert!(
                matches!(failed(pub_rx), Some(ClientError::Closed)),
                "{release}"
            );
            assert!(
                matches!(failed(stored_rx), Some(ClientError::Closed)),
                "{release}"
            );
            assert_eq!(budget.in_use(), 0, "{release}: the permit is returned");
            // Still before any connect: new commands are kept again.
            let (sub, _) = subscribe();
            assert!(queue.offer(sub).is_ok(), "{release}");
        }
    }

    #[test]
    fn a_first_start_that_fails_keeps_what_was_declared() {
        let queue = CommandQueue::new(10);
        let (sub, mut sub_rx) = subscribe();
        assert!(queue.offer(sub).is_ok());
        assert!(queue.open());
        // Pushed while the driver was being set up: refused when it does not start.
        let (ping, mut ping_rx) = oneshot::channel();
        assert!(queue.push(Command::Ping { reply: ping }));
        let refused = queue.abort_open();
        assert_eq!(refused.len(), 1);
        for command in refused {
            command.refuse();
        }
        assert!(matches!(
            ping_rx.try_recv(),
            Ok(Some(Err(ClientError::NotConnected)))
        ));
        assert!(matches!(sub_rx.try_recv(), Ok(None)), "still waiting");
        assert!(!queue.is_accepting());
        let (sub, _) = subscribe();
        assert!(queue.offer(sub).is_ok(), "still before the first driver");
    }
}
