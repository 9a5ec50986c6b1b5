//! Outgoing QoS 1/2 flows: the in-flight window, the queue behind it, PUBACK / PUBREC /
//! PUBCOMP, and what happens to flows in flight when a connection ends.

use super::*;

impl<S: SessionStore, I: Instant> Session<S, I> {
    pub(super) fn on_puback(&mut self, ack: PubAck) -> Result<(), ProtocolError> {
        let id = ack.packet_id;
        self.expect_outgoing(id, OutgoingState::AwaitingPubAck, PacketType::PubAck)?;
        self.finish_outgoing(id, ack.reason_code, ack.properties);
        Ok(())
    }

    pub(super) fn on_pubrec(&mut self, rec: PubRec) -> Result<(), ProtocolError> {
        let id = rec.packet_id;
        match self.store.outgoing(id).map(|flight| flight.state) {
            Some(OutgoingState::AwaitingPubRec) if !rec.reason_code.is_success() => {
                // MQTT 5.0 4.3.3: a failing PUBREC ends the flow; no PUBREL follows.
                self.finish_outgoing(id, rec.reason_code, rec.properties);
            }
            Some(OutgoingState::AwaitingPubRec) => {
                let seq = self.seq();
                // Write-ahead: the PUBREL state is recorded before the PUBREL is encoded.
                match self
                    .store
                    .update_outgoing(id, OutgoingState::AwaitingPubComp, seq)
                {
                    Ok(()) => self.encode(&PubRel::new(id)),
                    Err(err) => self.store_fault(err),
                }
            }
            // A PUBREC repeated for a re-sent PUBLISH: the PUBREL is repeated too.
            Some(OutgoingState::AwaitingPubComp) => self.encode(&PubRel::new(id)),
            Some(OutgoingState::AwaitingPubAck) => {
                return Err(ProtocolError::UnexpectedAck {
                    packet: PacketType::PubRec,
                    id: id.get(),
                    expected: PacketType::PubAck,
                });
            }
            None => {
                return Err(ProtocolError::UnknownPacketId {
                    packet: PacketType::PubRec,
                    id: id.get(),
                });
            }
        }
        Ok(())
    }

    pub(super) fn on_pubcomp(&mut self, comp: PubComp) -> Result<(), ProtocolError> {
        let id = comp.packet_id;
        self.expect_outgoing(id, OutgoingState::AwaitingPubComp, PacketType::PubComp)?;
        // The server owned the message since its PUBREC; "identifier not found" answers a
        // PUBREL it had already completed (one re-sent from a store whose record of the
        // completion was not durable): the flow is done.
        let code = match comp.reason_code {
            ReasonCode::PacketIdentifierNotFound => ReasonCode::Success,
            other => other,
        };
        self.finish_outgoing(id, code, comp.properties);
        Ok(())
    }

    pub(super) fn window_has_room(&self) -> bool {
        let window = self.config.max_inflight.min(self.limits.receive_maximum);
        self.store.outgoing_len() < usize::from(window)
    }

    /// Whether queued messages may move into the window: enough room for a refill step
    /// ([`SessionConfig::refill_batch`]), or the window is nearly empty anyway.
    pub(super) fn window_can_refill(&self) -> bool {
        let window = usize::from(self.config.max_inflight.min(self.limits.receive_maximum));
        let step = usize::from(self.config.refill_batch.max(1)).min(window.max(1));
        self.store.outgoing_len() + step <= window
    }

    /// Sends a message that was never sent before. Needs a connection and, for QoS 1/2, room
    /// in the window.
    /// `seq` is its send order, taken when it was accepted.
    pub(super) fn send_new(
        &mut self,
        token: Token,
        mut publish: Publish,
        seq: u64,
    ) -> Result<(), SessionError> {
        if publish.qos == QoS::AtMostOnce {
            self.encode_publish(&publish);
            self.qos0_unsent.push(token);
            return Ok(());
        }
        let id = self
            .ids
            .allocate()
            .ok_or(SessionError::PacketIdsExhausted)?;
        publish.packet_id = Some(id);
        let state = match publish.qos {
            QoS::AtLeastOnce => OutgoingState::AwaitingPubAck,
            _ => OutgoingState::AwaitingPubRec,
        };
        // Encoded before the store records it, so that the store can take the flight by value
        // (a clone cost two reference-count round trips per message). Write-ahead still holds:
        // bytes leave only through `poll_transmit`, after the store's sync, and a refused
        // record takes its bytes (and a topic alias it created) back.
        let unsent = self.write_buf.len();
        let aliases = self.aliases_out.len();
        self.encode_publish(&publish);
        let new_alias = (self.aliases_out.len() > aliases).then(|| publish.topic.clone());
        let flight = OutgoingFlight {
            token,
            publish,
            state,
            seq,
        };
        if let Err(err) = self.store.insert_outgoing(id, flight) {
            self.write_buf.truncate(unsent);
            if let Some(topic) = new_alias {
                self.aliases_out.remove(&topic);
            }
            self.ids.release(id);
            return Err(SessionError::Store(err));
        }
        self.unsynced.push((token, id));
        Ok(())
    }

    /// Encodes a PUBLISH, replacing its topic with an alias where enabled (MQTT 5). The alias
    /// is applied here, at encode time, so re-sends on a new connection carry the full topic.
    pub(super) fn encode_publish(&mut self, publish: &Publish) {
        let aliases = self.config.outgoing_topic_aliases
            && self.config.protocol_version.is_v5()
            && self.limits.topic_alias_maximum > 0
            && publish.properties.topic_alias.is_none();
        if !aliases {
            self.encode(publish);
            return;
        }
        let (alias, known) = if let Some(&alias) = self.aliases_out.get(&publish.topic) {
            (alias, true)
        } else if self.aliases_out.len() < usize::from(self.limits.topic_alias_maximum) {
            // Aliases are handed out until the server's maximum and then kept: the first
            // topics used are taken as the hot ones, which avoids churn on the wire.
            let alias = self.aliases_out.len() as u16 + 1;
            self.aliases_out.insert(publish.topic.clone(), alias);
            (alias, false)
        } else {
            self.encode(publish);
            return;
        };
        // Setting the alias on an empty property box would allocate per message: a message
        // without properties borrows the session's set instead.
        let borrowed = publish.properties.is_empty();
        let properties = if borrowed {
            core::mem::take(&mut self.alias_properties)
        } else {
            publish.properties.clone()
        };
        let mut aliased = Publish {
            dup: publish.dup,
            qos: publish.qos,
            retain: publish.retain,
            // A known alias stands for the topic; a new one is announced with it.
            topic: if known {
                ByteString::new()
            } else {
                publish.topic.clone()
            },
            packet_id: publish.packet_id,
            properties,
            payload: publish.payload.clone(),
        };
        aliased.properties.topic_alias = Some(alias);
        self.encode(&aliased);
        if borrowed {
            self.alias_properties = aliased.properties;
            self.alias_properties.topic_alias = None;
        }
    }

    pub(super) fn expect_outgoing(
        &self,
        id: PacketId,
        state: OutgoingState,
        packet: PacketType,
    ) -> Result<(), ProtocolError> {
        match self.store.outgoing(id) {
            Some(flight) if flight.state == state => Ok(()),
            // The identifier is in flight, but its flow awaits another acknowledgement.
            Some(flight) => Err(ProtocolError::UnexpectedAck {
                packet,
                id: id.get(),
                expected: match flight.state {
                    OutgoingState::AwaitingPubAck => PacketType::PubAck,
                    OutgoingState::AwaitingPubRec => PacketType::PubRec,
                    OutgoingState::AwaitingPubComp => PacketType::PubComp,
                },
            }),
            None => Err(ProtocolError::UnknownPacketId {
                packet,
                id: id.get(),
            }),
        }
    }

    pub(super) fn finish_outgoing(
        &mut self,
        id: PacketId,
        reason_code: ReasonCode,
        properties: AckProperties,
    ) {
        let flight = match self.store.remove_outgoing(id) {
            Ok(Some(flight)) => flight,
            Ok(None) => return,
            // Still recorded: the flow completes when the server acknowledges it again.
            Err(err) => return self.store_fault(err),
        };
        self.ids.release(id);
        // A rejection carries the server's reason in its error; a success its properties.
        let (result, properties) = if reason_code.is_success() {
            (Ok(reason_code), properties)
        } else {
            let reason = ServerReason::with_properties(
                reason_code,
                properties.reason_string,
                properties.user_properties,
            );
            (
                Err(PublishError::Rejected(Box::new(reason))),
                AckProperties::default(),
            )
        };
        self.push_event(Event::Published {
            token: flight.token,
            result,
            properties: properties.into(),
        });
        self.pump_queue();
    }

    /// Moves queued publishes into the window while there is room.
    pub(super) fn pump_queue(&mut self) {
        while self.is_connected() {
            let Some(front) = self.queue.front() else {
                return;
            };
            if front.publish.qos != QoS::AtMostOnce && !self.window_can_refill() {
                return;
            }
            let Some(Queued {
                token,
                mut publish,
                expires,
                seq,
                recorded,
            }) = self.queue.pop_front()
            else {
                return;
            };
            // A publish queued by an earlier process carries an interval and no instant (see
            // `with_store`): what is left of it counts from now, the first time it is looked
            // at, since an instant of that process means nothing here.
            let expires = match (expires, publish.properties.message_expiry_interval) {
                (None, Some(left)) => self
                    .read_now
                    .and_then(|now| now.checked_add(Duration::from_secs(u64::from(left)))),
                (expires, _) => expires,
            };
            if !self.still_fresh(&mut publish, expires) {
                self.forget_queued(recorded, seq);
                self.expired += 1;
                debug!(topic = %publish.topic, "queued message expired before it could be sent");
                self.push_event(Event::Published {
                    token,
                    result: Err(PublishError::Expired),
                    properties: Default::default(),
                });
                continue;
            }
            // The flight keeps the queued record's `seq`: recording it replaces that record.
            let sent = self
                .check_publish(&mut publish)
                .and_then(|()| self.send_new(token, publish, seq));
            if let Err(err) = sent {
                self.forget_queued(recorded, seq);
                let err = match err {
                    SessionError::Store(err) => PublishError::Store(err),
                    other => PublishError::Refused(other),
                };
                self.push_event(Event::Published {
                    token,
                    result: Err(err),
                    properties: Default::default(),
                });
            }
        }
    }

    /// A queued publish that will not be sent: its record (if any) goes too.
    fn forget_queued(&mut self, recorded: bool, seq: u64) {
        if recorded && let Err(err) = self.store.remove_queued(seq) {
            // Left recorded, it is queued again by the next process and fails there too.
            warn!(%err, "session store cannot forget a queued publish");
        }
    }

    /// Whether a queued message's MQTT 5 expiry interval has time left; if so, the interval it
    /// is sent with is what is left (rounded up to whole seconds), as a server forwarding it
    /// does ([MQTT-3.3.2-6]).
    fn still_fresh(&self, publish: &mut Publish, expires: Option<I>) -> bool {
        let (Some(expires), Some(now), Some(interval)) = (
            expires,
            self.read_now,
            publish.properties.message_expiry_interval,
        ) else {
            return true;
        };
        if now >= expires {
            return false;
        }
        // Whole seconds left, rounded up: the least `left` with `now + left >= expires`
        // (the instant type orders and adds, it does not subtract).
        let reaches = |secs: u32| {
            now.checked_add(Duration::from_secs(u64::from(secs)))
                .is_none_or(|at| at >= expires)
        };
        let (mut low, mut high) = (1, interval);
        while low < high {
            let mid = low + (high - low) / 2;
            if reaches(mid) {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        publish.properties.message_expiry_interval = Some(low);
        true
    }

    /// Session present: everything unacknowledged goes out again ([MQTT-4.4.0-1] in both
    /// versions): first every PUBREL, in the order their PUBRECs arrived, then every
    /// PUBLISH with DUP set, in the order first sent. Each kind keeps its own order
    /// ([MQTT-4.6.0-1], [MQTT-4.6.0-4]); PUBRELs lead because they free the server's receive
    /// quota: a server at its limit of open QoS 2 flows (mosquitto's `max_inflight_messages`,
    /// 20 by default) refuses a re-sent PUBLISH until the flows ahead of it complete.
    pub(super) fn resend_inflight(&mut self) {
        let flights = self.store.outgoing_in_order();
        for (id, flight) in &flights {
            if flight.state == OutgoingState::AwaitingPubComp {
                self.encode(&PubRel::new(*id));
            }
        }
        for (_, flight) in flights {
            if flight.state != OutgoingState::AwaitingPubComp {
                let mut publish = flight.publish;
                publish.dup = true;
                self.encode_publish(&publish);
            }
        }
    }

    /// No session on the server: in-flight messages are restarted or failed, by policy.
    pub(super) fn restart_inflight(&mut self) {
        // Acknowledgement tokens of the lost session's messages are void from here on.
        self.server_session += 1;
        // Until every step below is recorded, our state still belongs to the lost session.
        self.reset_pending = self.store.incoming_len() > 0 || self.store.outgoing_len() > 0;
        if self.store.incoming_len() > 0
            && let Err(err) = self.store.clear_incoming()
        {
            return self.store_fault(err);
        }
        for (id, flight) in self.store.outgoing_in_order() {
            match (flight.state, self.config.session_loss_policy) {
                // The server acknowledged receipt with PUBREC and so owns the message:
                // sending it again could deliver it twice.
                (OutgoingState::AwaitingPubComp, _) => {
                    // Not `finish_outgoing`: its queue pump would send queued messages ahead
                    // of the in-flight ones re-sent below (`on_connack` pumps afterwards).
                    if let Err(err) = self.store.remove_outgoing(id) {
                        return self.store_fault(err);
                    }
                    self.ids.release(id);
                    self.push_event(Event::Published {
                        token: flight.token,
                        result: Ok(ReasonCode::Success),
                        properties: Default::default(),
                    });
                }
                (_, SessionLossPolicy::Resend) => {
                    let seq = self.seq();
                    if let Err(err) = self.store.update_outgoing(id, flight.state, seq) {
                        return self.store_fault(err);
                    }
                    self.encode_publish(&flight.publish);
                }
                (_, SessionLossPolicy::Fail) => {
                    if let Err(err) = self.store.remove_outgoing(id) {
                        return self.store_fault(err);
                    }
                    self.ids.release(id);
                    self.push_event(Event::Published {
                        token: flight.token,
                        result: Err(PublishError::SessionLost),
                        properties: Default::default(),
                    });
                }
            }
        }
        self.reset_pending = false;
    }
}
