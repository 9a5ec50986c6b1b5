//! Incoming PUBLISH: topic aliases, the receive maximum, exactly-once delivery of QoS 2, and
//! the acknowledgements the application (or automatic mode) sends.

use super::*;

impl<S: SessionStore, I: Instant> Session<S, I> {
    pub(super) fn on_publish(&mut self, mut publish: Publish) -> Result<(), ProtocolError> {
        self.resolve_alias(&mut publish)?;
        let Some(id) = publish.packet_id else {
            self.push_event(Event::Message(Message { publish, ack: None }));
            return Ok(());
        };
        let token = AckToken {
            packet_id: id,
            qos: publish.qos,
            connection: self.connection,
            session: self.server_session,
        };
        match publish.qos {
            QoS::AtMostOnce => unreachable_qos0(),
            QoS::AtLeastOnce => {
                // A re-send on the same connection (only DUP ones can be) is not counted twice.
                let repeated = publish.dup
                    && self
                        .unsent_acks
                        .iter()
                        .any(|unsent| unsent.id == id && unsent.qos == QoS::AtLeastOnce);
                if !repeated {
                    self.check_receive_maximum()?;
                    self.unsent_acks.push_back(UnsentAck {
                        id,
                        qos: QoS::AtLeastOnce,
                        ready: false,
                        refused: false,
                    });
                    self.unsent_qos1 += 1;
                }
            }
            QoS::ExactlyOnce => match self.store.incoming(id) {
                // Delivered, acknowledgement pending: a re-send must not deliver it twice.
                Some(IncomingState::Delivered) => {
                    if let Some(pos) = self.failed_acks.iter().position(|&x| x == id) {
                        // Its automatic acknowledgement could not be recorded: again now.
                        self.failed_acks.swap_remove(pos);
                        if let Err(SessionError::Store(err)) = self.send_ack(token) {
                            self.failed_acks.push(id);
                            self.store_fault(err);
                        }
                    }
                    return Ok(());
                }
                // PUBREC went out, maybe lost with the last connection: repeat it only.
                Some(IncomingState::AwaitingPubRel) => {
                    self.encode(&PubRec::new(id));
                    return Ok(());
                }
                None => {
                    self.check_receive_maximum()?;
                    if let Err(err) = self.store.set_incoming(id, Some(IncomingState::Delivered)) {
                        // Not delivered: the server sends it again on the next connection.
                        self.store_fault(err);
                        return Ok(());
                    }
                    self.unsent_acks.push_back(UnsentAck {
                        id,
                        qos: QoS::ExactlyOnce,
                        ready: false,
                        refused: false,
                    });
                }
            },
        }
        let (ack, auto_ack) = match self.config.ack_mode {
            AckMode::Auto => (None, Some(token)),
            AckMode::Manual => (Some(token), None),
        };
        self.events.push_back(Pending {
            event: Event::Message(Message { publish, ack }),
            auto_ack,
        });
        Ok(())
    }

    /// MQTT 5.0 3.3.4 / [MQTT-3.3.4-9]: the server may not exceed our receive maximum.
    /// Called for a QoS 1/2 PUBLISH that is about to take a slot of the window.
    pub(super) fn check_receive_maximum(&mut self) -> Result<(), ProtocolError> {
        if !self.config.protocol_version.is_v5() {
            return Ok(());
        }
        let unacknowledged = self.unsent_qos1 + self.store.incoming_len();
        if unacknowledged < usize::from(self.config.receive_maximum) {
            return Ok(());
        }
        match self.config.receive_maximum_exceeded {
            ReceiveMaximumExceeded::Disconnect => Err(ProtocolError::ReceiveMaximumExceeded),
            ReceiveMaximumExceeded::Accept => {
                self.overruns += 1;
                Ok(())
            }
        }
    }

    pub(super) fn resolve_alias(&mut self, publish: &mut Publish) -> Result<(), ProtocolError> {
        let Some(alias) = publish.properties.topic_alias else {
            return Ok(());
        };
        // [MQTT-3.3.2-9] / [MQTT-3.3.2-10]: 0 < alias <= our topic alias maximum.
        if alias == 0 || alias > self.config.topic_alias_maximum {
            return Err(ProtocolError::TopicAliasInvalid(alias));
        }
        let slot = usize::from(alias) - 1;
        if self.aliases_in.len() <= slot {
            self.aliases_in.resize(slot + 1, None);
        }
        if publish.topic.is_empty() {
            publish.topic = self.aliases_in[slot]
                .clone()
                .ok_or(ProtocolError::TopicAliasInvalid(alias))?;
        } else {
            self.aliases_in[slot] = Some(publish.topic.clone());
        }
        Ok(())
    }

    pub(super) fn on_pubrel(&mut self, rel: PubRel) -> Result<(), ProtocolError> {
        let id = rel.packet_id;
        let mut comp = PubComp::new(id);
        match self.store.incoming(id) {
            Some(IncomingState::AwaitingPubRel) => {
                if let Err(err) = self.store.set_incoming(id, None) {
                    // PUBCOMP only once the flow's end is recorded; the server repeats PUBREL.
                    self.store_fault(err);
                    return Ok(());
                }
            }
            // PUBREL before our PUBREC: the server skipped a step.
            Some(IncomingState::Delivered) => {
                return Err(ProtocolError::UnexpectedPacket(PacketType::PubRel));
            }
            // A PUBREL for a flow already completed (its PUBCOMP was lost with a connection)
            // is still answered ([MQTT-4.3.3-11] / 3.1.1 4.3.3).
            None if self.config.protocol_version.is_v5() => {
                comp.reason_code = ReasonCode::PacketIdentifierNotFound;
            }
            None => {}
        }
        self.encode(&comp);
        Ok(())
    }

    /// Acknowledges one received message. The PUBACK / PUBREC is queued behind those of
    /// messages that arrived earlier on this connection and are not acknowledged yet, so the
    /// wire order is the arrival order ([MQTT-4.6.0-2], [MQTT-4.6.0-3]).
    pub(super) fn send_ack(&mut self, token: AckToken) -> Result<(), SessionError> {
        let id = token.packet_id;
        let current = token.connection == self.connection && self.is_connected();
        match token.qos {
            QoS::AtMostOnce => Err(SessionError::UnknownAckToken),
            QoS::AtLeastOnce => {
                if !current {
                    // The server re-sends unacknowledged QoS 1 messages on the next connection;
                    // an acknowledgement from an older one must not go out.
                    return Ok(());
                }
                self.mark_ack_ready(id, QoS::AtLeastOnce)
                    .ok_or(SessionError::UnknownAckToken)?;
                self.flush_acks();
                Ok(())
            }
            QoS::ExactlyOnce => {
                if token.session != self.server_session {
                    // The server lost the session the message belonged to: there is nothing
                    // left to acknowledge, and its identifier may name a newer message now.
                    return Ok(());
                }
                if self.store.incoming(id) != Some(IncomingState::Delivered) {
                    return Err(SessionError::UnknownAckToken);
                }
                // The state survives a reconnect: if PUBREC cannot go out now, the server's
                // re-sent PUBLISH will be answered with it.
                // Write-ahead: the PUBREC state is recorded before PUBREC is encoded.
                self.store
                    .set_incoming(id, Some(IncomingState::AwaitingPubRel))?;
                self.failed_acks.retain(|&failed| failed != id);
                if current && self.mark_ack_ready(id, QoS::ExactlyOnce).is_some() {
                    self.flush_acks();
                } else if self.is_connected() {
                    // Received on an earlier connection: no ordering left to keep on this one.
                    self.encode(&PubRec::new(id));
                }
                Ok(())
            }
        }
    }

    fn mark_ack_ready(&mut self, id: PacketId, qos: QoS) -> Option<()> {
        let unsent = self
            .unsent_acks
            .iter_mut()
            .find(|unsent| unsent.id == id && unsent.qos == qos && !unsent.ready)?;
        unsent.ready = true;
        Some(())
    }

    /// Sends the acknowledgements at the front of the arrival order that are ready.
    fn flush_acks(&mut self) {
        while let Some(unsent) = self.unsent_acks.front().copied() {
            if !unsent.ready {
                return;
            }
            self.unsent_acks.pop_front();
            if unsent.qos == QoS::AtLeastOnce {
                self.unsent_qos1 -= 1;
                self.encode(&PubAck::new(unsent.id));
            } else {
                self.encode(&PubRec::new(unsent.id));
            }
        }
    }
}
