//! Event dispatch: what the session said, handed to the callers, the inbox and the
//! connection's listeners.

use super::*;

impl<R: Runtime> Driver<R> {
    pub(super) fn dispatch(&mut self, event: Event) {
        match event {
            Event::Connected {
                session_present,
                properties,
            } => {
                if let Some((_, exchange)) = self.auth.as_mut()
                    && let Err(err) = exchange.on_success(properties.authentication_data.as_deref())
                {
                    self.auth_failed(err);
                    return;
                }
                self.schedule_refresh();
                info!(session_present, "connected");
                self.shared.stats.connected();
                self.reached_connack = true;
                // Publishes accepted from now on are checked against these limits.
                self.shared.acceptance.set(self.session.publish_limits());
                // The timer still armed for the CONNACK deadline would fire for nothing,
                // connect timeout after connecting: every idle client would wake once more.
                // The next poll arms the keep-alive deadline instead.
                self.sleep = None;
                self.v5_accepted |= self.session.protocol_version().is_v5();
                self.retry_connect = false;
                self.connack = Some(ConnAck {
                    session_present,
                    reason_code: ReasonCode::Success,
                    properties: (*properties).clone(),
                });
                // Calls that waited for the connection go out on it now.
                let now = self.runtime.now();
                for command in std::mem::take(&mut self.deferred) {
                    if !command.is_abandoned() {
                        self.apply(now, command);
                    }
                }
                self.shared
                    .status(ConnectionEvent::Connected { session_present });
                if let Some(waiter) = self.connect_waiter.take() {
                    let answered = waiter.send(Ok(ConnAck {
                        session_present,
                        reason_code: ReasonCode::Success,
                        properties: *properties,
                    }));
                    if answered.is_err() {
                        // The caller gave up just before CONNACK: the attempt is abandoned.
                        debug!("connect cancelled by its caller at CONNACK; disconnecting");
                        let _ = self
                            .session
                            .disconnect(self.runtime.now(), Disconnect::default());
                        self.end = Some(Ended::Closed);
                    }
                }
            }
            Event::Published {
                token,
                result,
                properties,
            } => self.published(token, result, properties.into_inner()),
            Event::Stored { token } => {
                if let Some(stored) = self.stored_waiters.remove(&token) {
                    let _ = stored.send(Ok(()));
                }
            }
            Event::Message(message) => {
                let message = ApplicationMessage::new(message.publish, message.ack);
                // A reply to a pending `request` goes to its caller, not to the inbox.
                if let Some(waiter) = self.shared.responses.waiter_for(&message) {
                    let ack = message.ack;
                    // A caller that gave up meanwhile drops the reply; it is acknowledged
                    // all the same.
                    let _ = waiter.send(message);
                    if let Some(token) = ack
                        && let Err(err) = self.session.ack(self.runtime.now(), token)
                    {
                        debug!(%err, "acknowledgement of a reply not applied");
                    }
                    return;
                }
                match self.intake.push(&self.runtime, &self.shared.inbox, message) {
                    Intaken::Kept => {}
                    Intaken::Dropped => self.dropped_unreported += 1,
                    Intaken::Refused(Some(token)) => {
                        if let Err(err) = self.session.refuse(self.runtime.now(), token) {
                            debug!(%err, "refusing a message failed");
                        }
                    }
                    Intaken::Refused(None) => {}
                }
            }
            Event::Subscribed {
                token,
                reason_codes,
                properties,
            } => {
                if let Some(Waiter::Subscribe(reply)) = self.waiters.remove(&token) {
                    let _ = reply.send(Ok(Acknowledgement::new(reason_codes, properties)));
                }
            }
            Event::Resubscribed { reason_codes } => {
                debug!(?reason_codes, "re-subscribed after session loss");
            }
            Event::Unsubscribed {
                token,
                reason_codes,
                properties,
            } => {
                if let Some(Waiter::Unsubscribe(reply)) = self.waiters.remove(&token) {
                    let _ = reply.send(Ok(Acknowledgement::new(reason_codes, properties)));
                }
            }
            Event::Pong { token } => {
                if let Some(Waiter::Ping(reply)) = self.waiters.remove(&token) {
                    let _ = reply.send(Ok(()));
                }
            }
            Event::Auth {
                reason_code,
                properties,
            } => {
                debug!(%reason_code, "AUTH from the broker");
                if reason_code == ReasonCode::Success {
                    self.reauth_succeeded(properties.authentication_data.as_deref());
                    return;
                }
                let Some((method, exchange)) = self.auth.as_mut() else {
                    return;
                };
                if reason_code != ReasonCode::ContinueAuthentication {
                    return;
                }
                let answer = exchange.on_challenge(properties.authentication_data.as_deref());
                match answer {
                    Ok(data) => {
                        let reply = AuthProperties {
                            authentication_method: Some(method.clone()),
                            authentication_data: data,
                            ..AuthProperties::default()
                        };
                        let now = self.runtime.now();
                        if let Err(err) =
                            self.session
                                .auth(now, ReasonCode::ContinueAuthentication, reply)
                        {
                            debug!(%err, "AUTH reply not sent");
                        }
                    }
                    Err(err) => self.auth_failed(err),
                }
            }
            Event::Disconnected { reason } => {
                info!(%reason, "disconnected");
                self.reauth_ended(&ClientError::ConnectionLost(reason.clone()));
                // Pings die with their connection; publishes and subscriptions live on in the
                // session and complete after a reconnect.
                let pings: Vec<Token> = self
                    .waiters
                    .iter()
                    .filter(|(_, waiter)| matches!(waiter, Waiter::Ping(_)))
                    .map(|(token, _)| *token)
                    .collect();
                for token in pings {
                    if let Some(waiter) = self.waiters.remove(&token) {
                        waiter.fail(ClientError::ConnectionLost(reason.clone()));
                    }
                }
                if !matches!(reason, ConnectionError::Local) {
                    // A transport error seen first (e.g. a TLS alert) says more than the
                    // session's "transport closed".
                    let err = match &self.end {
                        Some(Ended::Lost(err)) => err.clone(),
                        _ => ClientError::from(reason),
                    };
                    if let Some(waiter) = self.connect_waiter.take() {
                        if !self.gives_up(&err) {
                            self.connect_waiter = Some(waiter);
                        } else {
                            let _ = waiter.send(Err(err.clone()));
                        }
                    }
                    self.end.get_or_insert(Ended::Lost(err));
                }
            }
            other => debug!(?other, "session event the client does not use"),
        }
    }

    /// A publish completed: its caller learns the outcome; one recovered from the durable
    /// store (its caller died with an earlier process) is reported as a connection event.
    pub(super) fn published(
        &mut self,
        token: Token,
        result: Result<ReasonCode, sansmqtt_session::PublishError>,
        properties: AckProperties,
    ) {
        if let Err(sansmqtt_session::PublishError::Expired) = result {
            self.shared
                .status(ConnectionEvent::PublishesExpired { count: 1 });
        }
        let refused = matches!(result, Err(sansmqtt_session::PublishError::Refused(_)));
        let result = result.map_err(ClientError::from);
        if !self.stored_waiters.is_empty()
            && let Some(stored) = self.stored_waiters.remove(&token)
        {
            // Completed (or failed) before a `Stored` event: QoS 0, or a store failure.
            let _ = stored.send(result.as_ref().map(|_| ()).map_err(Clone::clone));
        }
        if let Some(Waiter::Publish(permit)) = self.waiters.remove(&token) {
            // Room and outcome together, when this wake ends.
            let outcome = result.map(|code| PublishAck::new(code, properties));
            self.settling.push((permit, Some(outcome)));
            return;
        }
        // The usual case first: the oldest QoS 0 publish, handed to the transport (the
        // session completes them in order), with no lock taken for `recovered`.
        let oldest_qos0 = self
            .qos0_permits
            .front()
            .is_some_and(|(front, _)| *front == token);
        let recovered = if oldest_qos0 {
            None
        } else {
            lock(&self.shared.recovered).remove(&token)
        };
        if let Some(recovered) = recovered {
            self.shared.status(recovered.completed(result));
            return;
        }
        // A QoS 0 publish: handed to the transport (or failed). Tokens grow, so an earlier
        // entry still here could only be one the session dropped without an event: returning
        // its room too keeps the budget exact.
        match result {
            Err(err) if refused => self.shared.publish_refused(err),
            Err(err) => debug!(%err, "QoS 0 message not sent"),
            Ok(_) => {}
        }
        while let Some((front, _)) = self.qos0_permits.front()
            && *front <= token
        {
            if let Some((_, permit)) = self.qos0_permits.pop_front() {
                self.settling.push((permit, None));
            }
        }
    }

    /// Settles the publishes completed since the last call: their budget comes back and their
    /// callers are woken, under one lock for the whole batch. Called whenever the driver is
    /// about to yield (or stop), so no outcome waits for a later wake.
    pub(super) fn settle(&mut self) {
        self.shared
            .budget
            .settle(&mut self.settling, &mut self.wakers);
    }

    /// The client's side of enhanced authentication failed: the connection ends ("not
    /// authorized"), with an error that is final.
    pub(super) fn auth_failed(&mut self, err: AuthError) {
        warn!(%err, "enhanced authentication failed");
        self.reauth_ended(&ClientError::Auth(err.clone()));
        let disconnect = Disconnect {
            reason_code: ReasonCode::NotAuthorized,
            ..Disconnect::default()
        };
        if self
            .session
            .disconnect(self.runtime.now(), disconnect)
            .is_err()
        {
            self.session.handle_transport_closed(self.runtime.now());
        }
        self.end = Some(Ended::Lost(ClientError::Auth(err)));
    }
}
