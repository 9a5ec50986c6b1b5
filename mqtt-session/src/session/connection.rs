//! One connection's life: dispatching received packets, CONNACK, keep-alive, and the ways a
//! connection ends.

use super::*;

impl<S: SessionStore, I: Instant> Session<S, I> {
    pub(super) fn handle_packet(&mut self, now: I, packet: Packet) -> Result<(), ProtocolError> {
        debug!(client_id = %self.config.client_id, "<-in-- {packet:?}");
        self.last_received = Some(now);
        if !self.pings.is_empty() && !self.reading_paused {
            // Any packet shows the server is alive: the ping deadline moves with it.
            self.timers
                .set(Timer::PingResp, now, self.config.ping_timeout);
        }
        match (self.state, packet) {
            (ConnectionState::Connecting, Packet::ConnAck(connack)) => {
                self.on_connack(now, *connack)
            }
            (ConnectionState::Connecting | ConnectionState::Connected, Packet::Auth(auth)) => {
                self.on_auth(*auth)
            }
            // MQTT 3.1.1 has no server DISCONNECT: it falls through to `UnexpectedPacket`.
            (_, Packet::Disconnect(disconnect)) if self.config.protocol_version.is_v5() => {
                debug!(reason = %disconnect.reason_code, "DISCONNECT from the server");
                let properties = disconnect.properties;
                self.server_reference = properties.server_reference;
                self.close(
                    ConnectionError::ServerDisconnected(ServerReason::with_properties(
                        disconnect.reason_code,
                        properties.reason_string,
                        properties.user_properties,
                    )),
                    None,
                );
                Ok(())
            }
            (ConnectionState::Connected, Packet::Publish(publish)) => self.on_publish(publish),
            (ConnectionState::Connected, Packet::PubAck(ack)) => self.on_puback(ack),
            (ConnectionState::Connected, Packet::PubRec(rec)) => self.on_pubrec(rec),
            (ConnectionState::Connected, Packet::PubRel(rel)) => self.on_pubrel(rel),
            (ConnectionState::Connected, Packet::PubComp(comp)) => self.on_pubcomp(comp),
            (ConnectionState::Connected, Packet::SubAck(ack)) => self.on_suback(ack),
            (ConnectionState::Connected, Packet::UnsubAck(ack)) => self.on_unsuback(ack),
            (ConnectionState::Connected, Packet::PingResp(_)) => self.on_pingresp(now),
            (_, other) => Err(ProtocolError::UnexpectedPacket(other.packet_type())),
        }
    }

    pub(super) fn on_connack(&mut self, now: I, connack: ConnAck) -> Result<(), ProtocolError> {
        self.timers.stop(Timer::ConnAck);
        if !connack.reason_code.is_success() {
            warn!(reason = %connack.reason_code, "connection refused");
            let properties = connack.properties;
            self.server_reference = properties.server_reference;
            // The server closes the connection after a refusal; nothing more is sent.
            self.close(
                ConnectionError::Refused(ServerReason::with_properties(
                    connack.reason_code,
                    properties.reason_string,
                    properties.user_properties,
                )),
                None,
            );
            return Ok(());
        }
        // [MQTT-3.2.2-4] (3.1.1) / [MQTT-3.2.2-5] (5.0): a session the client did not keep
        // cannot be present; the client must close the connection.
        if connack.session_present && self.options.clean_start {
            return Err(ProtocolError::UnexpectedPacket(PacketType::ConnAck));
        }
        // A session present after a CONNECT that may have started a new one went unanswered
        // can be that new, empty session: state from ours must not be reused in it
        // ([MQTT-3.1.2-6]), so it counts as a session loss.
        // Likewise after a session loss whose reset the store could not complete.
        let session_present =
            connack.session_present && !self.session_maybe_replaced && !self.reset_pending;
        self.session_maybe_replaced = false;
        self.server_session_ended = false;
        self.apply_connack_properties(&connack.properties);
        self.state = ConnectionState::Connected;
        // [MQTT-3.1.2-23]: the keep alive runs from the CONNECT's transmission, not CONNACK.
        self.arm_keep_alive(self.last_sent.unwrap_or(now));
        debug!(session_present, "CONNACK accepted");
        self.push_event(Event::Connected {
            session_present,
            properties: Box::new(connack.properties),
        });
        if session_present {
            self.resend_inflight();
        } else {
            self.restart_inflight();
        }
        self.resend_control();
        if !session_present && self.config.resubscribe {
            self.resubscribe();
        }
        self.pump_queue();
        Ok(())
    }

    pub(super) fn apply_connack_properties(&mut self, props: &ConnAckProperties) {
        if let Some(max) = props.receive_maximum {
            self.limits.receive_maximum = max;
        }
        if let Some(qos) = props.maximum_qos {
            self.limits.maximum_qos = qos;
        }
        if let Some(retain) = props.retain_available {
            self.limits.retain_available = retain;
        }
        if let Some(size) = props.maximum_packet_size {
            self.limits.maximum_packet_size = size;
        }
        if let Some(max) = props.topic_alias_maximum {
            self.limits.topic_alias_maximum = max;
        }
        if let Some(keep_alive) = props.server_keep_alive {
            // [MQTT-3.2.2-21] the client uses the server's keep alive.
            self.limits.keep_alive = Duration::from_secs(u64::from(keep_alive));
        }
        if let Some(id) = &props.assigned_client_identifier {
            // Reconnects must present the identifier the server chose.
            self.config.client_id = id.clone();
        }
    }

    pub(super) fn on_auth(&mut self, auth: Auth) -> Result<(), ProtocolError> {
        if self.options.properties.authentication_method.is_none() {
            return Err(ProtocolError::UnexpectedAuth);
        }
        self.push_event(Event::Auth {
            reason_code: auth.reason_code,
            properties: Box::new(auth.properties),
        });
        Ok(())
    }

    pub(super) fn on_pingresp(&mut self, now: I) -> Result<(), ProtocolError> {
        let Some((ping, sent)) = self.pings.pop_front() else {
            return Err(ProtocolError::UnexpectedPacket(PacketType::PingResp));
        };
        if self.pings.is_empty() {
            self.timers.stop(Timer::PingResp);
        }
        self.last_ping = Some((sent, now));
        if let Some(token) = ping {
            self.push_event(Event::Pong { token });
        }
        Ok(())
    }

    pub(super) fn connect_packet(&self, options: &ConnectOptions) -> Result<Connect, SessionError> {
        let v5 = self.config.protocol_version.is_v5();
        let mut properties = options.properties.clone();
        if v5 {
            properties.session_expiry_interval = options.session_expiry_interval;
            properties.receive_maximum =
                (self.config.receive_maximum != u16::MAX).then_some(self.config.receive_maximum);
            properties.maximum_packet_size = (self.config.max_packet_size
                < sansmqtt_proto::MAX_PACKET_SIZE)
                .then_some(self.config.max_packet_size);
            properties.topic_alias_maximum =
                (self.config.topic_alias_maximum > 0).then_some(self.config.topic_alias_maximum);
        }
        let keep_alive = u16::try_from(options.keep_alive.as_secs()).unwrap_or(u16::MAX);
        let connect = Connect {
            clean_start: options.clean_start,
            keep_alive,
            client_id: self.config.client_id.clone(),
            will: options.will.clone(),
            username: options.username.clone(),
            password: options.password.clone(),
            properties,
        };
        connect.encoded_len(self.config.protocol_version)?;
        Ok(connect)
    }

    /// How long the connection may stay idle before a keep-alive PINGREQ: `keep_alive` less
    /// `ping_delay`, but at least half of it.
    pub(super) fn ping_interval(&self) -> Duration {
        let keep_alive = self.limits.keep_alive;
        keep_alive
            .saturating_sub(self.config.ping_delay)
            .max(keep_alive / 2)
    }

    /// The next keep-alive PINGREQ is due one ping interval after the last send.
    pub(super) fn arm_keep_alive(&mut self, now: I) {
        if self.limits.keep_alive.is_zero() {
            return;
        }
        self.timers.set(Timer::KeepAlive, now, self.ping_interval());
    }

    /// How many keep-alive PINGREQs may be unanswered at once before the connection is given
    /// up. Any packet from the server postpones the ping deadline, so a server that keeps
    /// sending yet never answers a ping would otherwise grow the list forever; a slow but
    /// honest one has at most about `ping_timeout / interval` pings out at a time.
    pub(super) fn max_unanswered_pings(&self) -> usize {
        let interval = self.ping_interval().as_millis().max(1);
        let in_timeout = self.config.ping_timeout.as_millis().div_ceil(interval);
        usize::try_from(in_timeout)
            .unwrap_or(usize::MAX)
            .saturating_add(2)
            .max(4)
    }

    pub(super) fn send_ping(&mut self, now: I, token: Option<Token>) {
        self.encode(&PingReq);
        if self.pings.is_empty() && !self.reading_paused {
            self.timers
                .set(Timer::PingResp, now, self.config.ping_timeout);
        }
        self.pings.push_back((token, now));
        // The next keep-alive ping is armed when this one is handed to the transport.
        self.timers.stop(Timer::KeepAlive);
    }

    pub(super) fn protocol_failure(&mut self, err: ProtocolError) {
        warn!(%err, "protocol error, closing the connection");
        let reason = err.reason_code();
        self.close(ConnectionError::Protocol(err), Some(reason));
    }

    /// Ends the connection from our side: pending output is dropped, and MQTT 5 gets a
    /// DISCONNECT with `reason` when one is given.
    pub(super) fn close(&mut self, error: ConnectionError, reason: Option<ReasonCode>) {
        if !matches!(
            self.state,
            ConnectionState::Connecting | ConnectionState::Connected
        ) {
            return;
        }
        // A packet handed out in part cannot be finished after the bytes behind it are
        // dropped, so a DISCONNECT could not be framed: the peer sees the transport close.
        let framed = self.write_cut == 0;
        self.discard_unsent();
        self.connection_ended();
        self.state = ConnectionState::Disconnected;
        if let Some(reason) = reason
            && self.config.protocol_version.is_v5()
            && framed
        {
            self.encode(&Disconnect::new(reason));
            self.state = ConnectionState::Closing;
        }
        self.push_event(Event::Disconnected { reason: error });
    }

    /// Resets what lives and dies with one connection.
    pub(super) fn connection_ended(&mut self) {
        if self.state == ConnectionState::Connecting {
            self.session_maybe_replaced |= self.connect_may_replace;
        } else {
            // The server's session ends with the connection: 3.1.1 clean session
            // [MQTT-3.1.2-6], MQTT 5 session expiry absent or 0 (3.1.2.11.2).
            self.server_session_ended |= if self.config.protocol_version.is_v5() {
                self.options.session_expiry_interval.unwrap_or(0) == 0
            } else {
                self.options.clean_start
            };
        }
        for token in core::mem::take(&mut self.qos0_unsent) {
            if self.write_buf.is_empty() {
                self.push_event(Event::Published {
                    token,
                    result: Err(PublishError::ConnectionLost),
                    properties: Default::default(),
                });
            } else {
                // Still in the buffer ahead of a DISCONNECT: it will be handed out.
                self.qos0_unsent.push(token);
            }
        }
        self.timers.clear();
        self.pings.clear();
        self.reading_paused = false;
        // QoS 1 acknowledgements die with the connection (the server re-sends those
        // messages); QoS 2 state lives on in the store.
        self.unsent_acks.clear();
        self.unsent_qos1 = 0;
        self.aliases_in.clear();
        self.aliases_out.clear();
        self.read_buf.clear();
        // Outgoing aliases and the limits belong to the connection too; both are reset when
        // the next CONNACK arrives.
    }
}
