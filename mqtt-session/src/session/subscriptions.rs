//! SUBSCRIBE / UNSUBSCRIBE flows, kept across reconnects, and re-subscription after the
//! server lost the session.

use super::*;

impl<S: SessionStore, I: Instant> Session<S, I> {
    pub(super) fn on_suback(&mut self, ack: SubAck) -> Result<(), ProtocolError> {
        let Some(index) = self.control_index(ack.packet_id, true) else {
            return Err(ProtocolError::UnknownPacketId {
                packet: PacketType::SubAck,
                id: ack.packet_id.get(),
            });
        };
        let ControlFlight::Subscribe { token, packet } = self.control.remove(index) else {
            unreachable_control();
        };
        self.ids.release(packet.packet_id);
        // [MQTT-3.9.3-1] one code per filter, in order.
        if ack.reason_codes.len() != packet.filters.len() {
            return Err(ProtocolError::AckCountMismatch {
                packet: PacketType::SubAck,
                expected: packet.filters.len(),
                got: ack.reason_codes.len(),
            });
        }
        let Subscribe {
            filters,
            properties,
            ..
        } = packet;
        for (filter, code) in filters.into_iter().zip(&ack.reason_codes) {
            if code.is_success() {
                self.remember_subscription(filter, &properties);
            } else if !self
                .subscriptions
                .iter()
                .any(|sub| sub.filter.filter == filter.filter)
                && let Err(err) = self.store.remove_subscription(&filter.filter)
            {
                // Refused and not held from before: the store must not bring it back.
                self.store_fault(err);
            }
        }
        let event = match token {
            Some(token) => Event::Subscribed {
                token,
                reason_codes: ack.reason_codes,
                properties: ack.properties,
            },
            None => Event::Resubscribed {
                reason_codes: ack.reason_codes,
            },
        };
        self.push_event(event);
        Ok(())
    }

    pub(super) fn on_unsuback(&mut self, ack: UnsubAck) -> Result<(), ProtocolError> {
        let Some(index) = self.control_index(ack.packet_id, false) else {
            return Err(ProtocolError::UnknownPacketId {
                packet: PacketType::UnsubAck,
                id: ack.packet_id.get(),
            });
        };
        let ControlFlight::Unsubscribe { token, packet } = self.control.remove(index) else {
            unreachable_control();
        };
        self.ids.release(packet.packet_id);
        // MQTT 5 [MQTT-3.11.3-1]: one code per filter; 3.1.1 UNSUBACK carries none.
        if self.config.protocol_version.is_v5() && ack.reason_codes.len() != packet.filters.len() {
            return Err(ProtocolError::AckCountMismatch {
                packet: PacketType::UnsubAck,
                expected: packet.filters.len(),
                got: ack.reason_codes.len(),
            });
        }
        self.subscriptions
            .retain(|sub| !packet.filters.contains(&sub.filter.filter));
        self.push_event(Event::Unsubscribed {
            token,
            reason_codes: ack.reason_codes,
            properties: ack.properties,
        });
        Ok(())
    }

    /// SUBSCRIBE and UNSUBSCRIBE still unacknowledged, or made while offline, are sent (again)
    /// in the order they were made, so the commands complete on the new connection.
    pub(super) fn resend_control(&mut self) {
        let mut buf = core::mem::take(&mut self.write_buf);
        for flight in &self.control {
            let result = match flight {
                ControlFlight::Subscribe { packet, .. } => {
                    packet.encode(self.config.protocol_version, &mut buf)
                }
                ControlFlight::Unsubscribe { packet, .. } => {
                    packet.encode(self.config.protocol_version, &mut buf)
                }
            };
            if let Err(err) = result {
                warn!(%err, "cannot re-send a subscription request");
            }
        }
        self.write_buf = buf;
    }

    /// Subscribes again to every granted filter not already being subscribed to, one
    /// SUBSCRIBE per distinct set of properties, so MQTT 5 subscription identifiers and user
    /// properties come back as they were.
    pub(super) fn resubscribe(&mut self) {
        // Filters with a SUBSCRIBE of their own on the way, and filters being left: an
        // UNSUBSCRIBE made offline must not be undone by a re-subscription sent after it.
        let pending: Vec<ByteString> = self
            .control
            .iter()
            .flat_map(|flight| match flight {
                ControlFlight::Subscribe { packet, .. } => packet
                    .filters
                    .iter()
                    .map(|filter| filter.filter.clone())
                    .collect::<Vec<_>>(),
                ControlFlight::Unsubscribe { packet, .. } => packet.filters.clone(),
            })
            .collect();
        let mut groups: Vec<(SubscribeProperties, Vec<SubscribeFilter>)> = Vec::new();
        for sub in &self.subscriptions {
            if pending.contains(&sub.filter.filter) {
                continue;
            }
            match groups
                .iter_mut()
                .find(|(props, _)| *props == sub.properties)
            {
                Some((_, filters)) => filters.push(sub.filter.clone()),
                None => groups.push((sub.properties.clone(), vec![sub.filter.clone()])),
            }
        }
        for (properties, filters) in groups {
            let Some(packet_id) = self.ids.allocate() else {
                return;
            };
            let packet = Subscribe {
                packet_id,
                filters,
                properties,
            };
            debug!(
                filters = packet.filters.len(),
                "re-subscribing after session loss"
            );
            self.encode(&packet);
            self.control.push(ControlFlight::Subscribe {
                token: None,
                packet,
            });
        }
    }

    pub(super) fn remember_subscription(
        &mut self,
        filter: SubscribeFilter,
        properties: &SubscribeProperties,
    ) {
        let granted = Granted {
            filter,
            properties: properties.clone(),
        };
        match self
            .subscriptions
            .iter_mut()
            .find(|sub| sub.filter.filter == granted.filter.filter)
        {
            Some(existing) => *existing = granted,
            None => self.subscriptions.push(granted),
        }
    }

    pub(super) fn control_index(&self, id: PacketId, subscribe: bool) -> Option<usize> {
        self.control.iter().position(|flight| {
            flight.packet_id() == id
                && matches!(flight, ControlFlight::Subscribe { .. }) == subscribe
        })
    }
}
