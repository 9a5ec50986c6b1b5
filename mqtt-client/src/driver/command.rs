//! Command application: what a client handle asks of the driver, and the callers waiting
//! for the outcome.

use super::*;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

/// A request from a client handle to the driver.
// A publish is moved once through the channel; boxing it to shrink the enum would cost an
// allocation per message.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    Publish {
        publish: Publish,
        /// The publish's share of the client's publish budget, returned when it completes
        /// (QoS 0: once its bytes are handed to the transport), with the completion slot its
        /// caller waits on (none for QoS 0, whose future completed when the message was
        /// accepted).
        permit: Permit,
        /// `Publishing::stored`: answered when the message is durable (`Event::Stored`).
        stored: Option<Reply<()>>,
    },
    /// The application took (or acknowledged) a received message.
    Ack(AckToken),
    Subscribe {
        filters: Vec<SubscribeFilter>,
        properties: SubscribeProperties,
        reply: Reply<Acknowledgement>,
    },
    Unsubscribe {
        filters: Vec<ByteString>,
        properties: UnsubscribeProperties,
        reply: Reply<Acknowledgement>,
    },
    Ping {
        reply: Reply<()>,
    },
    /// MQTT 5 re-authentication: from `reauthenticate` (with its caller) or a refresh
    /// schedule (with its generation).
    Reauthenticate {
        reply: Option<Reply<()>>,
        generation: Option<u64>,
    },
    Disconnect {
        /// MQTT 5 reason code and properties (3.1.1 sends an empty DISCONNECT).
        packet: Disconnect,
        reply: Reply<()>,
    },
    Reconnect {
        clean_start: Option<bool>,
        reply: Reply<ConnAck>,
    },
    /// Fail every pending operation (amqtt's `cancel_tasks`); the connection stays up.
    Cancel,
}

impl Command {
    /// Whether the command needs a connection and waits here for one during a reconnect.
    /// Publishes, subscribes and unsubscribes wait in the session instead (its queue, and
    /// its SUBSCRIBE / UNSUBSCRIBE sent at the next CONNACK), which keeps their order.
    pub(super) fn waits_for_connection(&self) -> bool {
        matches!(self, Self::Ping { .. })
    }

    /// Whether the caller stopped waiting for the answer (dropped its future).
    pub(super) fn is_abandoned(&self) -> bool {
        match self {
            Self::Ping { reply } => reply.is_canceled(),
            _ => false,
        }
    }

    /// Answers a command that arrived after the driver stopped: the caller retries on a new
    /// driver (`reconnect`) or learns there is no connection.
    pub(crate) fn refuse(self) {
        self.fail(ClientError::NotConnected);
    }

    /// Fails the command with `err`.
    pub(super) fn fail(self, err: ClientError) {
        match self {
            Self::Publish { permit, stored, .. } => {
                if let Some(stored) = stored {
                    let _ = stored.send(Err(err.clone()));
                }
                permit.complete(Err(err));
            }
            Self::Ack(_) => {}
            Self::Subscribe { reply, .. } | Self::Unsubscribe { reply, .. } => {
                drop(reply.send(Err(err)));
            }
            Self::Ping { reply } | Self::Disconnect { reply, .. } => drop(reply.send(Err(err))),
            Self::Reconnect { reply, .. } => drop(reply.send(Err(err))),
            Self::Reauthenticate { reply, .. } => {
                if let Some(reply) = reply {
                    drop(reply.send(Err(err)));
                }
            }
            Self::Cancel => {}
        }
    }
}

/// A caller waiting for a command's completion event.
pub(super) enum Waiter {
    /// A QoS 1/2 publish: its permit holds the caller's completion slot.
    Publish(Permit),
    Subscribe(Reply<Acknowledgement>),
    Unsubscribe(Reply<Acknowledgement>),
    Ping(Reply<()>),
}

impl Waiter {
    pub(super) fn fail(self, err: ClientError) {
        // A dropped receiver means the caller stopped waiting: nothing to tell.
        match self {
            Self::Publish(permit) => permit.complete(Err(err)),
            Self::Subscribe(reply) | Self::Unsubscribe(reply) => drop(reply.send(Err(err))),
            Self::Ping(reply) => drop(reply.send(Err(err))),
        }
    }
}

impl<R: Runtime> Driver<R> {
    /// Applies one command. Returns true when the driver must stop serving commands now.
    pub(super) fn apply(&mut self, now: Instant, command: Command) -> bool {
        if !self.session.is_connected() && command.waits_for_connection() {
            if !command.is_abandoned() {
                self.deferred.push(command);
            }
            return false;
        }
        match command {
            Command::Publish {
                publish,
                permit,
                stored,
            } => match (self.session.publish(now, publish), permit.slot().is_some()) {
                (Ok(token), true) => {
                    self.waiters.insert(token, Waiter::Publish(permit));
                    if let Some(stored) = stored {
                        self.stored_waiters.insert(token, stored);
                    }
                }
                (Ok(token), false) => {
                    // QoS 0 is stored nowhere: a `stored` waiter, if any, learns nothing more
                    // than the publish future did (accepted).
                    drop(stored);
                    self.qos0_permits.push_back((token, permit));
                }
                (Err(err), true) => {
                    let err = ClientError::from(err);
                    if let Some(stored) = stored {
                        let _ = stored.send(Err(err.clone()));
                    }
                    permit.complete(Err(err));
                }
                (Err(err), false) => {
                    // Checked against the last CONNACK at acceptance; what fails here (a
                    // newer CONNACK's limits) is reported, the caller having had its `Ok`.
                    drop(permit);
                    drop(stored);
                    self.shared.publish_refused(err.into());
                }
            },
            Command::Subscribe {
                filters,
                properties,
                reply,
            } => match self.session.subscribe(now, filters, properties) {
                Ok(token) => {
                    self.waiters.insert(token, Waiter::Subscribe(reply));
                }
                Err(err) => {
                    let _ = reply.send(Err(err.into()));
                }
            },
            Command::Unsubscribe {
                filters,
                properties,
                reply,
            } => {
                match self
                    .session
                    .unsubscribe_with_properties(now, filters, properties)
                {
                    Ok(token) => {
                        self.waiters.insert(token, Waiter::Unsubscribe(reply));
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err.into()));
                    }
                }
            }
            Command::Reauthenticate { reply, generation } => {
                self.start_reauth(now, reply, generation);
            }
            Command::Ping { reply } => match self.session.ping(now) {
                Ok(token) => {
                    self.waiters.insert(token, Waiter::Ping(reply));
                }
                Err(err) => {
                    let _ = reply.send(Err(err.into()));
                }
            },
            Command::Disconnect { packet, reply } => {
                self.end = Some(Ended::Closed);
                if self.session.disconnect(now, packet).is_err() {
                    // Not connected (e.g. between reconnect attempts): nothing to send.
                    let _ = reply.send(Ok(()));
                    return true;
                }
                self.disconnect_waiter = Some(reply);
            }
            Command::Reconnect { clean_start, reply } => {
                if self.session.is_connected() {
                    // amqtt: `reconnect()` on a live connection does nothing.
                    debug!("reconnect() while connected: nothing to do");
                    let connack = self.connack.clone().ok_or(ClientError::NotConnected);
                    let _ = reply.send(connack);
                    return false;
                }
                if let Some(clean_start) = clean_start {
                    Arc::make_mut(&mut self.params).options.clean_start = clean_start;
                }
                if let Some(previous) = self.connect_waiter.replace(reply) {
                    let _ = previous.send(Err(ClientError::Closed));
                }
                self.end = Some(Ended::Reconnect);
                if self.session.disconnect(now, Disconnect::default()).is_err() {
                    return true;
                }
            }
            Command::Ack(token) => {
                if let Err(err) = self.session.ack(now, token) {
                    debug!(%err, "acknowledgement not applied");
                }
            }
            Command::Cancel => {
                for command in self.deferred.drain(..) {
                    command.fail(ClientError::Closed);
                }
                for (_, waiter) in self.waiters.drain() {
                    waiter.fail(ClientError::Closed);
                }
                for (_, stored) in self.stored_waiters.drain() {
                    let _ = stored.send(Err(ClientError::Closed));
                }
                if let Some(waiter) = self.connect_waiter.take() {
                    let _ = waiter.send(Err(ClientError::Closed));
                }
            }
        }
        false
    }
}
