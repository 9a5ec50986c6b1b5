//! The client state machine.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use mqtt_proto::properties::{AuthProperties, ConnAckProperties, SubscribeProperties};
use mqtt_proto::topic::{validate_topic_filter, validate_topic_name};
use mqtt_proto::{
    Auth, ConnAck, Connect, Disconnect, Encode, EncodeError, Packet, PacketId, PacketType, PingReq,
    ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, QoS, ReasonCode, SubAck, Subscribe,
    SubscribeFilter, UnsubAck, Unsubscribe,
};
use tracing::{debug, warn};

use crate::config::{AckMode, ConnectOptions, SessionConfig, SessionLossPolicy};
use crate::error::{ConnectionError, ProtocolError, PublishError, SessionError};
use crate::event::{AckToken, Event, Message, Token};
use crate::ids::PacketIds;
use crate::store::{IncomingState, MemoryStore, OutgoingFlight, OutgoingState, SessionStore};
use crate::timer::{Timer, TimerTable};

/// Where the current connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// No connection; [`Session::connect`] starts one.
    Disconnected,
    /// CONNECT queued, CONNACK (or an AUTH step) awaited.
    Connecting,
    /// CONNACK accepted.
    Connected,
    /// A DISCONNECT is queued; once `poll_transmit` has handed it out the state becomes
    /// `Disconnected` and the transport should be closed.
    Closing,
}

/// Limits the server announced in CONNACK (MQTT 5), or the protocol defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// How many QoS 1/2 PUBLISH may be in flight towards the server.
    pub receive_maximum: u16,
    /// Highest QoS the server accepts.
    pub maximum_qos: QoS,
    /// Whether retained messages are accepted.
    pub retain_available: bool,
    /// Largest packet the server accepts.
    pub maximum_packet_size: u32,
    /// Highest topic alias the server accepts.
    pub topic_alias_maximum: u16,
    /// Keep alive in force (the server may override the client's).
    pub keep_alive: Duration,
}

impl ServerLimits {
    fn defaults(keep_alive: Duration) -> Self {
        Self {
            receive_maximum: u16::MAX,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            maximum_packet_size: mqtt_proto::MAX_PACKET_SIZE,
            topic_alias_maximum: 0,
            keep_alive,
        }
    }
}

/// A SUBSCRIBE or UNSUBSCRIBE awaiting its acknowledgement. Kept until acknowledged and sent
/// again after a reconnect, so a command survives a connection loss.
#[derive(Debug)]
enum ControlFlight {
    Subscribe {
        /// `None` for the session's own re-subscription after a session loss.
        token: Option<Token>,
        packet: Subscribe,
    },
    Unsubscribe {
        token: Token,
        packet: Unsubscribe,
    },
}

impl ControlFlight {
    fn packet_id(&self) -> PacketId {
        match self {
            Self::Subscribe { packet, .. } => packet.packet_id,
            Self::Unsubscribe { packet, .. } => packet.packet_id,
        }
    }
}

/// A subscription the server granted, and the properties it was requested with.
#[derive(Debug)]
struct Granted {
    filter: SubscribeFilter,
    properties: SubscribeProperties,
}

/// A publish waiting for room in the in-flight window (or for a connection).
#[derive(Debug)]
struct Queued {
    token: Token,
    publish: Publish,
}

/// An event, and the acknowledgement to send when it is handed out (automatic mode).
#[derive(Debug)]
struct Pending {
    event: Event,
    auto_ack: Option<AckToken>,
}

/// One MQTT client session: the protocol state of one client across any number of
/// connections. It performs no I/O and never reads a clock.
///
/// Methods come in four groups, after quinn-proto:
/// - **A. getters**: [`state`](Self::state), [`client_id`](Self::client_id),
///   [`server_limits`](Self::server_limits), [`inflight_len`](Self::inflight_len), ...
/// - **B. inputs**, `now` first: [`handle_read`](Self::handle_read) (bytes from the transport),
///   [`handle_timeout`](Self::handle_timeout), [`handle_transport_closed`](Self::handle_transport_closed).
/// - **C. commands**: [`connect`](Self::connect), [`publish`](Self::publish),
///   [`subscribe`](Self::subscribe), [`unsubscribe`](Self::unsubscribe), [`ping`](Self::ping),
///   [`ack`](Self::ack), [`auth`](Self::auth), [`disconnect`](Self::disconnect). They never
///   block; those that complete later return a [`Token`] that their event carries.
/// - **D. outputs**: after every input or command, drain [`poll_event`](Self::poll_event)
///   until `None` (handing out a message can queue its acknowledgement), then
///   [`poll_transmit`](Self::poll_transmit) until `None` and write what it returns, then
///   sleep until [`poll_timeout`](Self::poll_timeout) and call `handle_timeout`.
///
/// A fatal problem on a connection is reported once, as [`Event::Disconnected`]; the
/// session then waits for the next `connect`, keeping what must survive (in-flight QoS 1/2
/// flows, queued publishes, pending subscriptions).
pub struct Session<S: SessionStore = MemoryStore> {
    config: SessionConfig,
    store: S,
    state: ConnectionState,
    /// Number of the current (or last) connection; acknowledgement tokens refer to it.
    connection: u64,
    options: ConnectOptions,
    limits: ServerLimits,
    ids: PacketIds,
    next_token: u64,
    next_seq: u64,
    control: Vec<ControlFlight>,
    queue: VecDeque<Queued>,
    /// QoS 1 messages received on this connection and not yet acknowledged.
    incoming_qos1: Vec<PacketId>,
    /// One entry per PINGREQ awaiting PINGRESP; `Some` for a `ping` command.
    pings: VecDeque<Option<Token>>,
    /// Granted subscriptions with the properties of the SUBSCRIBE that made them (MQTT 5
    /// subscription identifier, user properties), for re-subscribing after a session loss.
    subscriptions: Vec<Granted>,
    aliases_in: Vec<Option<ByteString>>,
    aliases_out: HashMap<ByteString, u16>,
    timers: TimerTable,
    last_received: Option<Instant>,
    /// When bytes were last handed to the transport: keep-alive counts from there.
    last_sent: Option<Instant>,
    read_buf: BytesMut,
    write_buf: BytesMut,
    /// QoS 0 publishes encoded into `write_buf`: they complete when it is handed out.
    qos0_unsent: Vec<Token>,
    events: VecDeque<Pending>,
    /// Our session ended at the server: a connection whose session ends with it closed
    /// (3.1.1 clean session [MQTT-3.1.2-6], MQTT 5 session expiry absent or 0).
    server_session_ended: bool,
    /// This connection's CONNECT may start a new session at the server: clean start
    /// [MQTT-3.1.2-4], or ours had ended.
    connect_may_replace: bool,
    /// Such a CONNECT went unanswered: the server may hold a newer session made by it, and a
    /// later "session present" may name that one, which knows nothing of our state.
    session_maybe_replaced: bool,
}

impl Session<MemoryStore> {
    /// A session with the in-memory store. Nothing is sent until [`connect`](Self::connect).
    pub fn new(config: SessionConfig) -> Self {
        Self::with_store(config, MemoryStore::new())
    }
}

impl<S: SessionStore> Session<S> {
    /// A session over `store`, resuming any in-flight flows it holds (e.g. after a process
    /// restart with a persistent store).
    pub fn with_store(config: SessionConfig, store: S) -> Self {
        let mut ids = PacketIds::new();
        let mut next_token = 0;
        let mut next_seq = 0;
        for (id, flight) in store.outgoing_in_order() {
            ids.claim(id);
            next_token = next_token.max(flight.token.0 + 1);
            next_seq = next_seq.max(flight.seq + 1);
        }
        Self {
            limits: ServerLimits::defaults(Duration::ZERO),
            config,
            store,
            state: ConnectionState::Disconnected,
            connection: 0,
            options: ConnectOptions::default(),
            ids,
            next_token,
            next_seq,
            control: Vec::new(),
            queue: VecDeque::new(),
            incoming_qos1: Vec::new(),
            pings: VecDeque::new(),
            subscriptions: Vec::new(),
            aliases_in: Vec::new(),
            aliases_out: HashMap::new(),
            timers: TimerTable::default(),
            last_received: None,
            last_sent: None,
            read_buf: BytesMut::new(),
            write_buf: BytesMut::new(),
            qos0_unsent: Vec::new(),
            events: VecDeque::new(),
            server_session_ended: false,
            connect_may_replace: false,
            session_maybe_replaced: false,
        }
    }

    // ---- A. getters ------------------------------------------------------------------------

    /// Where the current connection stands.
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// Whether CONNACK accepted the current connection.
    pub fn is_connected(&self) -> bool {
        self.state == ConnectionState::Connected
    }

    /// The session's configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The client identifier in use (the server-assigned one, once MQTT 5 assigned one).
    pub fn client_id(&self) -> &ByteString {
        &self.config.client_id
    }

    /// The protocol version spoken.
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.config.protocol_version
    }

    /// The server's limits from the last CONNACK.
    pub fn server_limits(&self) -> &ServerLimits {
        &self.limits
    }

    /// The store holding in-flight state.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Outgoing QoS 1/2 messages in flight.
    pub fn inflight_len(&self) -> usize {
        self.store.outgoing_len()
    }

    /// Publishes waiting behind the in-flight window.
    pub fn queued_len(&self) -> usize {
        self.queue.len()
    }

    /// Packet identifiers in use (publishes, subscribes and unsubscribes in flight).
    pub fn packet_ids_in_use(&self) -> usize {
        self.ids.len()
    }

    /// Bytes buffered: a partial incoming packet plus encoded packets not yet handed out.
    pub fn buffered_len(&self) -> usize {
        self.read_buf.len() + self.write_buf.len()
    }

    /// Events not yet drained.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Changes how long the next CONNACK is waited for (e.g. what is left of a connect budget
    /// after opening the transport).
    pub fn set_connect_timeout(&mut self, timeout: Duration) {
        self.config.connect_timeout = timeout;
    }

    // ---- B. inputs ---------------------------------------------------------------------------

    /// Takes bytes read from the transport and processes every whole packet among them; a
    /// partial packet is kept for the next call. Bytes arriving while no connection is up are
    /// ignored.
    pub fn handle_read(&mut self, now: Instant, bytes: &[u8]) {
        if !matches!(
            self.state,
            ConnectionState::Connecting | ConnectionState::Connected
        ) {
            return;
        }
        self.read_buf.extend_from_slice(bytes);
        loop {
            let decoded = mqtt_proto::decode(
                &mut self.read_buf,
                self.config.protocol_version,
                self.config.max_packet_size,
            );
            let result = match decoded {
                Ok(Some(packet)) => self.handle_packet(now, packet),
                Ok(None) => return,
                Err(err) => Err(ProtocolError::Decode(err)),
            };
            if let Err(err) = result {
                self.protocol_failure(err);
                return;
            }
            if !matches!(
                self.state,
                ConnectionState::Connecting | ConnectionState::Connected
            ) {
                return;
            }
        }
    }

    /// Fires the timers due at `now`. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.expire(now) {
            match timer {
                Timer::ConnAck => {
                    warn!("no CONNACK within the connect timeout");
                    self.close(ConnectionError::ConnAckTimeout, None);
                }
                Timer::PingResp => {
                    warn!("no PINGRESP within the ping timeout");
                    self.close(
                        ConnectionError::KeepAliveTimeout,
                        Some(ReasonCode::KeepAliveTimeout),
                    );
                }
                Timer::KeepAlive => {
                    // [MQTT-3.1.2-23]: nothing sent for keep_alive means PINGREQ, even
                    // while an earlier one is unanswered (a ping timeout above the keep alive).
                    if !self.is_connected() {
                        continue;
                    }
                    if self.pings.len() >= self.max_unanswered_pings() {
                        // A server that keeps talking but never answers PINGREQ is broken; the
                        // bound keeps the list of unanswered pings from growing forever.
                        warn!(pings = self.pings.len(), "PINGREQs go unanswered");
                        self.close(
                            ConnectionError::KeepAliveTimeout,
                            Some(ReasonCode::KeepAliveTimeout),
                        );
                    } else {
                        self.send_ping(now, None);
                    }
                }
            }
        }
    }

    /// The transport closed or failed. Emits [`Event::Disconnected`] unless the connection
    /// had already ended.
    pub fn handle_transport_closed(&mut self, _now: Instant) {
        if self.state == ConnectionState::Disconnected {
            return;
        }
        let was_closing = self.state == ConnectionState::Closing;
        self.write_buf.clear();
        self.connection_ended();
        self.state = ConnectionState::Disconnected;
        if !was_closing {
            self.push_event(Event::Disconnected {
                reason: ConnectionError::TransportClosed,
            });
        }
    }

    // ---- C. commands -------------------------------------------------------------------------

    /// Starts a connection over a freshly opened transport: queues CONNECT and arms the
    /// CONNACK timer.
    pub fn connect(&mut self, now: Instant, options: ConnectOptions) -> Result<(), SessionError> {
        if self.state != ConnectionState::Disconnected {
            return Err(SessionError::AlreadyConnected);
        }
        let connect = self.connect_packet(&options)?;
        self.connection += 1;
        self.read_buf.clear();
        self.write_buf.clear();
        self.limits = ServerLimits::defaults(options.keep_alive);
        self.connect_may_replace = options.clean_start || self.server_session_ended;
        self.options = options;
        self.encode(&connect);
        debug!(client_id = %self.config.client_id, clean_start = connect.clean_start, "CONNECT");
        self.state = ConnectionState::Connecting;
        self.last_received = None;
        self.last_sent = None;
        self.timers
            .set(Timer::ConnAck, now + self.config.connect_timeout);
        Ok(())
    }

    /// Publishes `publish`. Its `dup` flag and packet identifier are managed by the session.
    ///
    /// While not connected, or while the in-flight window is full, the message waits in an
    /// ordered queue. QoS 0 completes when handed to the transport, QoS 1 at PUBACK, QoS 2 at
    /// PUBCOMP: see [`Event::Published`].
    pub fn publish(&mut self, _now: Instant, mut publish: Publish) -> Result<Token, SessionError> {
        publish.dup = false;
        publish.packet_id = None;
        if self.is_connected() {
            // Sizing the packet validates the topic too.
            self.check_publish(&mut publish)?;
        } else {
            validate_topic_name(&publish.topic)?;
        }
        let sendable = self.is_connected()
            && self.queue.is_empty()
            && (publish.qos == QoS::AtMostOnce || self.window_has_room());
        if !sendable && self.queue.len() >= self.config.max_queued {
            return Err(SessionError::QueueFull);
        }
        let token = self.token();
        if sendable {
            self.send_new(token, publish)?;
        } else {
            self.queue.push_back(Queued { token, publish });
        }
        Ok(token)
    }

    /// Subscribes to `filters` (SUBSCRIBE). [`Event::Subscribed`] carries the result. A
    /// subscribe in flight when the connection drops is sent again on the next connection.
    pub fn subscribe(
        &mut self,
        _now: Instant,
        filters: Vec<SubscribeFilter>,
        properties: SubscribeProperties,
    ) -> Result<Token, SessionError> {
        self.require_connected()?;
        if filters.is_empty() {
            return Err(SessionError::NoFilters);
        }
        for filter in &filters {
            validate_topic_filter(&filter.filter)?;
        }
        let packet_id = self
            .ids
            .allocate()
            .ok_or(SessionError::PacketIdsExhausted)?;
        let packet = Subscribe {
            packet_id,
            filters,
            properties,
        };
        if let Err(err) = self.check_size(&packet) {
            self.ids.release(packet_id);
            return Err(err);
        }
        let token = self.token();
        self.encode(&packet);
        self.control.push(ControlFlight::Subscribe {
            token: Some(token),
            packet,
        });
        Ok(token)
    }

    /// Unsubscribes from `filters` (UNSUBSCRIBE). [`Event::Unsubscribed`] carries the result.
    pub fn unsubscribe(
        &mut self,
        _now: Instant,
        filters: Vec<ByteString>,
    ) -> Result<Token, SessionError> {
        self.require_connected()?;
        if filters.is_empty() {
            return Err(SessionError::NoFilters);
        }
        for filter in &filters {
            validate_topic_filter(filter)?;
        }
        let packet_id = self
            .ids
            .allocate()
            .ok_or(SessionError::PacketIdsExhausted)?;
        let packet = Unsubscribe::new(packet_id, filters);
        if let Err(err) = self.check_size(&packet) {
            self.ids.release(packet_id);
            return Err(err);
        }
        let token = self.token();
        self.encode(&packet);
        self.control
            .push(ControlFlight::Unsubscribe { token, packet });
        Ok(token)
    }

    /// Sends PINGREQ; [`Event::Pong`] reports the PINGRESP. If the connection ends first,
    /// the token is void (the adapter fails its waiter on [`Event::Disconnected`]).
    pub fn ping(&mut self, now: Instant) -> Result<Token, SessionError> {
        self.require_connected()?;
        let token = self.token();
        self.send_ping(now, Some(token));
        Ok(token)
    }

    /// Acknowledges a message received in [`AckMode::Manual`]. An acknowledgement for a QoS 1
    /// message from an earlier connection is dropped: the server sends such messages again.
    pub fn ack(&mut self, _now: Instant, token: AckToken) -> Result<(), SessionError> {
        self.send_ack(token)
    }

    /// Answers an [`Event::Auth`] step of MQTT 5 enhanced authentication, or starts a
    /// re-authentication (`reason_code` [`ReasonCode::ReAuthenticate`]) once connected.
    pub fn auth(
        &mut self,
        _now: Instant,
        reason_code: ReasonCode,
        properties: AuthProperties,
    ) -> Result<(), SessionError> {
        if !self.config.protocol_version.is_v5() {
            return Err(SessionError::RequiresV5("AUTH"));
        }
        if !matches!(
            self.state,
            ConnectionState::Connecting | ConnectionState::Connected
        ) {
            return Err(SessionError::NotConnected);
        }
        let packet = Auth {
            reason_code,
            properties,
        };
        packet.encoded_len(self.config.protocol_version)?;
        self.encode(&packet);
        Ok(())
    }

    /// Ends the connection with DISCONNECT (in MQTT 5 with `disconnect`'s reason and
    /// properties; MQTT 3.1.1 sends an empty one). Packets queued before it are still handed
    /// out first. The session keeps its state for a later `connect`.
    pub fn disconnect(
        &mut self,
        _now: Instant,
        disconnect: Disconnect,
    ) -> Result<(), SessionError> {
        if !matches!(
            self.state,
            ConnectionState::Connecting | ConnectionState::Connected
        ) {
            return Err(SessionError::NotConnected);
        }
        let packet = if self.config.protocol_version.is_v5() {
            disconnect
        } else {
            Disconnect::default()
        };
        packet.encoded_len(self.config.protocol_version)?;
        self.encode(&packet);
        self.connection_ended();
        self.state = ConnectionState::Closing;
        self.push_event(Event::Disconnected {
            reason: ConnectionError::Local,
        });
        Ok(())
    }

    // ---- D. outputs --------------------------------------------------------------------------

    /// Everything encoded since the last call, as one buffer for one write. `now` is when
    /// it is handed to the transport: keep-alive counts from it.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        if self.write_buf.is_empty() {
            if self.state == ConnectionState::Closing {
                self.state = ConnectionState::Disconnected;
            }
            return None;
        }
        let bytes = self.write_buf.split().freeze();
        self.last_sent = Some(now);
        if self.state == ConnectionState::Connected {
            self.arm_keep_alive(now);
        }
        for token in std::mem::take(&mut self.qos0_unsent) {
            self.push_event(Event::Published {
                token,
                result: Ok(ReasonCode::Success),
            });
        }
        if self.state == ConnectionState::Closing {
            self.state = ConnectionState::Disconnected;
        }
        Some(bytes)
    }

    /// The next event. In [`AckMode::Auto`], handing out a QoS 1/2 message queues its
    /// acknowledgement: drain `poll_transmit` afterwards.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        let pending = self.events.pop_front()?;
        if let Some(token) = pending.auto_ack {
            // The token was made by the session for this very message; failing here means the
            // connection changed in between, and the server will re-send the message.
            let _ = self.send_ack(token);
        }
        Some(pending.event)
    }

    /// When `handle_timeout` must be called next, if any timer is armed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    // ---- packet handling ---------------------------------------------------------------------

    fn handle_packet(&mut self, now: Instant, packet: Packet) -> Result<(), ProtocolError> {
        debug!(client_id = %self.config.client_id, "<-in-- {packet:?}");
        self.last_received = Some(now);
        if !self.pings.is_empty() {
            // Any packet shows the server is alive: the ping deadline moves with it.
            self.timers
                .set(Timer::PingResp, now + self.config.ping_timeout);
        }
        match (self.state, packet) {
            (ConnectionState::Connecting, Packet::ConnAck(connack)) => {
                self.on_connack(now, connack)
            }
            (ConnectionState::Connecting | ConnectionState::Connected, Packet::Auth(auth)) => {
                self.on_auth(auth)
            }
            // MQTT 3.1.1 has no server DISCONNECT: it falls through to `UnexpectedPacket`.
            (_, Packet::Disconnect(disconnect)) if self.config.protocol_version.is_v5() => {
                debug!(reason = %disconnect.reason_code, "DISCONNECT from the server");
                self.close(
                    ConnectionError::ServerDisconnected {
                        reason_code: disconnect.reason_code,
                    },
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

    fn on_connack(&mut self, now: Instant, connack: ConnAck) -> Result<(), ProtocolError> {
        self.timers.stop(Timer::ConnAck);
        if !connack.reason_code.is_success() {
            warn!(reason = %connack.reason_code, "connection refused");
            // The server closes the connection after a refusal; nothing more is sent.
            self.close(ConnectionError::Refused(connack.reason_code), None);
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
        let session_present = connack.session_present && !self.session_maybe_replaced;
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

    fn apply_connack_properties(&mut self, props: &ConnAckProperties) {
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

    fn on_auth(&mut self, auth: Auth) -> Result<(), ProtocolError> {
        if self.options.properties.authentication_method.is_none() {
            return Err(ProtocolError::UnexpectedAuth);
        }
        self.push_event(Event::Auth {
            reason_code: auth.reason_code,
            properties: auth.properties,
        });
        Ok(())
    }

    fn on_publish(&mut self, mut publish: Publish) -> Result<(), ProtocolError> {
        self.resolve_alias(&mut publish)?;
        let Some(id) = publish.packet_id else {
            self.push_event(Event::Message(Message { publish, ack: None }));
            return Ok(());
        };
        let token = AckToken {
            packet_id: id,
            qos: publish.qos,
            connection: self.connection,
        };
        match publish.qos {
            QoS::AtMostOnce => unreachable_qos0(),
            QoS::AtLeastOnce => {
                if !self.incoming_qos1.contains(&id) {
                    self.check_receive_maximum()?;
                    self.incoming_qos1.push(id);
                }
            }
            QoS::ExactlyOnce => match self.store.incoming(id) {
                // Delivered, acknowledgement pending: a re-send must not deliver it twice.
                Some(IncomingState::Delivered) => return Ok(()),
                // PUBREC went out, maybe lost with the last connection: repeat it only.
                Some(IncomingState::AwaitingPubRel) => {
                    self.encode(&PubRec::new(id));
                    return Ok(());
                }
                None => {
                    self.check_receive_maximum()?;
                    self.store.set_incoming(id, Some(IncomingState::Delivered));
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
    fn check_receive_maximum(&self) -> Result<(), ProtocolError> {
        if !self.config.protocol_version.is_v5() {
            return Ok(());
        }
        let unacknowledged = self.incoming_qos1.len() + self.store.incoming_len();
        if unacknowledged >= usize::from(self.config.receive_maximum) {
            return Err(ProtocolError::ReceiveMaximumExceeded);
        }
        Ok(())
    }

    fn resolve_alias(&mut self, publish: &mut Publish) -> Result<(), ProtocolError> {
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

    fn on_puback(&mut self, ack: PubAck) -> Result<(), ProtocolError> {
        let id = ack.packet_id;
        self.expect_outgoing(id, OutgoingState::AwaitingPubAck, PacketType::PubAck)?;
        self.finish_outgoing(id, ack.reason_code);
        Ok(())
    }

    fn on_pubrec(&mut self, rec: PubRec) -> Result<(), ProtocolError> {
        let id = rec.packet_id;
        match self.store.outgoing(id).map(|flight| flight.state) {
            Some(OutgoingState::AwaitingPubRec) if !rec.reason_code.is_success() => {
                // MQTT 5.0 4.3.3: a failing PUBREC ends the flow; no PUBREL follows.
                self.finish_outgoing(id, rec.reason_code);
            }
            Some(OutgoingState::AwaitingPubRec) => {
                let seq = self.seq();
                self.store
                    .update_outgoing(id, OutgoingState::AwaitingPubComp, seq);
                self.encode(&PubRel::new(id));
            }
            // A PUBREC repeated for a re-sent PUBLISH: the PUBREL is repeated too.
            Some(OutgoingState::AwaitingPubComp) => self.encode(&PubRel::new(id)),
            _ => {
                return Err(ProtocolError::UnknownPacketId {
                    packet: PacketType::PubRec,
                    id: id.get(),
                });
            }
        }
        Ok(())
    }

    fn on_pubrel(&mut self, rel: PubRel) -> Result<(), ProtocolError> {
        let id = rel.packet_id;
        let mut comp = PubComp::new(id);
        match self.store.incoming(id) {
            Some(IncomingState::AwaitingPubRel) => self.store.set_incoming(id, None),
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

    fn on_pubcomp(&mut self, comp: PubComp) -> Result<(), ProtocolError> {
        let id = comp.packet_id;
        self.expect_outgoing(id, OutgoingState::AwaitingPubComp, PacketType::PubComp)?;
        self.finish_outgoing(id, comp.reason_code);
        Ok(())
    }

    fn on_suback(&mut self, ack: SubAck) -> Result<(), ProtocolError> {
        let Some(index) = self.control_index(ack.packet_id, true) else {
            return Err(ProtocolError::UnknownPacketId {
                packet: PacketType::SubAck,
                id: ack.packet_id.get(),
            });
        };
        let ControlFlight::Subscribe { token, packet } = self.control.swap_remove(index) else {
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

    fn on_unsuback(&mut self, ack: UnsubAck) -> Result<(), ProtocolError> {
        let Some(index) = self.control_index(ack.packet_id, false) else {
            return Err(ProtocolError::UnknownPacketId {
                packet: PacketType::UnsubAck,
                id: ack.packet_id.get(),
            });
        };
        let ControlFlight::Unsubscribe { token, packet } = self.control.swap_remove(index) else {
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
        });
        Ok(())
    }

    fn on_pingresp(&mut self, _now: Instant) -> Result<(), ProtocolError> {
        let Some(ping) = self.pings.pop_front() else {
            return Err(ProtocolError::UnexpectedPacket(PacketType::PingResp));
        };
        if self.pings.is_empty() {
            self.timers.stop(Timer::PingResp);
        }
        if let Some(token) = ping {
            self.push_event(Event::Pong { token });
        }
        Ok(())
    }

    // ---- outgoing flows ----------------------------------------------------------------------

    fn window_has_room(&self) -> bool {
        let window = self.config.max_inflight.min(self.limits.receive_maximum);
        self.store.outgoing_len() < usize::from(window)
    }

    /// What the server's CONNACK forbids for this message.
    fn check_publish(&self, publish: &mut Publish) -> Result<(), SessionError> {
        // [MQTT-3.2.2-11]: no QoS above the server's maximum.
        if publish.qos > self.limits.maximum_qos {
            return Err(SessionError::QoSNotSupported {
                requested: publish.qos,
                maximum: self.limits.maximum_qos,
            });
        }
        // [MQTT-3.2.2-14]: no retained message when retain is not available.
        if publish.retain && !self.limits.retain_available {
            return Err(SessionError::RetainNotSupported);
        }
        // A packet id is added when sent: check the size as it will be.
        let id = publish.packet_id;
        if publish.qos != QoS::AtMostOnce {
            publish.packet_id = Some(PacketId::MAX);
        }
        let checked = self.check_size(publish);
        publish.packet_id = id;
        checked
    }

    /// [MQTT-3.1.2-24]: nothing larger than the server's maximum packet size.
    fn check_size<P: Encode>(&self, packet: &P) -> Result<(), SessionError> {
        let size = packet
            .encoded_len(self.config.protocol_version)
            .map_err(|err| match err {
                EncodeError::InvalidTopic(topic) => SessionError::InvalidTopic(topic),
                other => SessionError::Encode(other),
            })?;
        if size > self.limits.maximum_packet_size as usize {
            return Err(SessionError::PacketTooLarge {
                size,
                max: self.limits.maximum_packet_size,
            });
        }
        Ok(())
    }

    /// Sends a message that was never sent before. Needs a connection and, for QoS 1/2, room
    /// in the window.
    fn send_new(&mut self, token: Token, mut publish: Publish) -> Result<(), SessionError> {
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
        self.encode_publish(&publish);
        let state = match publish.qos {
            QoS::AtLeastOnce => OutgoingState::AwaitingPubAck,
            _ => OutgoingState::AwaitingPubRec,
        };
        let seq = self.seq();
        self.store.insert_outgoing(
            id,
            OutgoingFlight {
                token,
                publish,
                state,
                seq,
            },
        );
        Ok(())
    }

    /// Encodes a PUBLISH, replacing its topic with an alias where enabled (MQTT 5). The alias
    /// is applied here, at encode time, so re-sends on a new connection carry the full topic.
    fn encode_publish(&mut self, publish: &Publish) {
        let aliases = self.config.outgoing_topic_aliases
            && self.config.protocol_version.is_v5()
            && self.limits.topic_alias_maximum > 0
            && publish.properties.topic_alias.is_none();
        if !aliases {
            self.encode(publish);
            return;
        }
        let mut aliased = publish.clone();
        if let Some(&alias) = self.aliases_out.get(&publish.topic) {
            aliased.topic = ByteString::new();
            aliased.properties.topic_alias = Some(alias);
        } else if self.aliases_out.len() < usize::from(self.limits.topic_alias_maximum) {
            // Aliases are handed out until the server's maximum and then kept: the first
            // topics used are taken as the hot ones, which avoids churn on the wire.
            let alias = self.aliases_out.len() as u16 + 1;
            self.aliases_out.insert(publish.topic.clone(), alias);
            aliased.properties.topic_alias = Some(alias);
        }
        self.encode(&aliased);
    }

    fn expect_outgoing(
        &self,
        id: PacketId,
        state: OutgoingState,
        packet: PacketType,
    ) -> Result<(), ProtocolError> {
        match self.store.outgoing(id) {
            Some(flight) if flight.state == state => Ok(()),
            _ => Err(ProtocolError::UnknownPacketId {
                packet,
                id: id.get(),
            }),
        }
    }

    fn finish_outgoing(&mut self, id: PacketId, reason_code: ReasonCode) {
        let Some(flight) = self.store.remove_outgoing(id) else {
            return;
        };
        self.ids.release(id);
        let result = if reason_code.is_success() {
            Ok(reason_code)
        } else {
            Err(PublishError::Rejected(reason_code))
        };
        self.push_event(Event::Published {
            token: flight.token,
            result,
        });
        self.pump_queue();
    }

    /// Moves queued publishes into the window while there is room.
    fn pump_queue(&mut self) {
        while self.is_connected() {
            let Some(front) = self.queue.front() else {
                return;
            };
            if front.publish.qos != QoS::AtMostOnce && !self.window_has_room() {
                return;
            }
            let Some(Queued { token, mut publish }) = self.queue.pop_front() else {
                return;
            };
            let sent = self
                .check_publish(&mut publish)
                .and_then(|()| self.send_new(token, publish));
            if let Err(err) = sent {
                self.push_event(Event::Published {
                    token,
                    result: Err(PublishError::Refused(err)),
                });
            }
        }
    }

    /// Session present: everything unacknowledged goes out again, in its original order
    /// ([MQTT-4.4.0-1] 3.1.1, [MQTT-4.4.0-2] 5.0): PUBLISH with DUP set, or PUBREL.
    fn resend_inflight(&mut self) {
        for (id, flight) in self.store.outgoing_in_order() {
            match flight.state {
                OutgoingState::AwaitingPubAck | OutgoingState::AwaitingPubRec => {
                    let mut publish = flight.publish;
                    publish.dup = true;
                    self.encode_publish(&publish);
                }
                OutgoingState::AwaitingPubComp => self.encode(&PubRel::new(id)),
            }
        }
    }

    /// No session on the server: in-flight messages are restarted or failed, by policy.
    fn restart_inflight(&mut self) {
        self.store.clear_incoming();
        for (id, flight) in self.store.outgoing_in_order() {
            match (flight.state, self.config.session_loss_policy) {
                // The server acknowledged receipt with PUBREC and so owns the message:
                // sending it again could deliver it twice.
                (OutgoingState::AwaitingPubComp, _) => {
                    // Not `finish_outgoing`: its queue pump would send queued messages ahead
                    // of the in-flight ones re-sent below (`on_connack` pumps afterwards).
                    self.store.remove_outgoing(id);
                    self.ids.release(id);
                    self.push_event(Event::Published {
                        token: flight.token,
                        result: Ok(ReasonCode::Success),
                    });
                }
                (_, SessionLossPolicy::Resend) => {
                    let seq = self.seq();
                    self.store.update_outgoing(id, flight.state, seq);
                    self.encode_publish(&flight.publish);
                }
                (_, SessionLossPolicy::Fail) => {
                    self.store.remove_outgoing(id);
                    self.ids.release(id);
                    self.push_event(Event::Published {
                        token: flight.token,
                        result: Err(PublishError::SessionLost),
                    });
                }
            }
        }
    }

    /// SUBSCRIBE and UNSUBSCRIBE still unacknowledged are sent again, so the commands
    /// complete on the new connection.
    fn resend_control(&mut self) {
        let mut buf = std::mem::take(&mut self.write_buf);
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
    fn resubscribe(&mut self) {
        let pending: Vec<ByteString> = self
            .control
            .iter()
            .filter_map(|flight| match flight {
                ControlFlight::Subscribe { packet, .. } => Some(&packet.filters),
                ControlFlight::Unsubscribe { .. } => None,
            })
            .flatten()
            .map(|filter| filter.filter.clone())
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

    fn remember_subscription(&mut self, filter: SubscribeFilter, properties: &SubscribeProperties) {
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

    fn control_index(&self, id: PacketId, subscribe: bool) -> Option<usize> {
        self.control.iter().position(|flight| {
            flight.packet_id() == id
                && matches!(flight, ControlFlight::Subscribe { .. }) == subscribe
        })
    }

    // ---- incoming acknowledgements -----------------------------------------------------------

    fn send_ack(&mut self, token: AckToken) -> Result<(), SessionError> {
        let id = token.packet_id;
        match token.qos {
            QoS::AtMostOnce => Err(SessionError::UnknownAckToken),
            QoS::AtLeastOnce => {
                if token.connection != self.connection || !self.is_connected() {
                    // The server re-sends unacknowledged QoS 1 messages on the next connection;
                    // an acknowledgement from an older one must not go out.
                    return Ok(());
                }
                let Some(pos) = self.incoming_qos1.iter().position(|&x| x == id) else {
                    return Err(SessionError::UnknownAckToken);
                };
                self.incoming_qos1.swap_remove(pos);
                self.encode(&PubAck::new(id));
                Ok(())
            }
            QoS::ExactlyOnce => {
                if self.store.incoming(id) != Some(IncomingState::Delivered) {
                    return Err(SessionError::UnknownAckToken);
                }
                // The state survives a reconnect: if PUBREC cannot go out now, the server's
                // re-sent PUBLISH will be answered with it.
                self.store
                    .set_incoming(id, Some(IncomingState::AwaitingPubRel));
                if self.is_connected() {
                    self.encode(&PubRec::new(id));
                }
                Ok(())
            }
        }
    }

    // ---- connection ----------------------------------------------------------------------------

    fn connect_packet(&self, options: &ConnectOptions) -> Result<Connect, SessionError> {
        let v5 = self.config.protocol_version.is_v5();
        let mut properties = options.properties.clone();
        if v5 {
            properties.session_expiry_interval = options.session_expiry_interval;
            properties.receive_maximum =
                (self.config.receive_maximum != u16::MAX).then_some(self.config.receive_maximum);
            properties.maximum_packet_size = (self.config.max_packet_size
                < mqtt_proto::MAX_PACKET_SIZE)
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
    fn ping_interval(&self) -> Duration {
        let keep_alive = self.limits.keep_alive;
        keep_alive
            .saturating_sub(self.config.ping_delay)
            .max(keep_alive / 2)
    }

    /// The next keep-alive PINGREQ is due one ping interval after the last send.
    fn arm_keep_alive(&mut self, now: Instant) {
        if self.limits.keep_alive.is_zero() {
            return;
        }
        self.timers
            .set(Timer::KeepAlive, now + self.ping_interval());
    }

    /// How many keep-alive PINGREQs may be unanswered at once before the connection is given
    /// up. Any packet from the server postpones the ping deadline, so a server that keeps
    /// sending yet never answers a ping would otherwise grow the list forever; a slow but
    /// honest one has at most about `ping_timeout / interval` pings out at a time.
    fn max_unanswered_pings(&self) -> usize {
        let interval = self.ping_interval().as_millis().max(1);
        let in_timeout = self.config.ping_timeout.as_millis().div_ceil(interval);
        usize::try_from(in_timeout)
            .unwrap_or(usize::MAX)
            .saturating_add(2)
            .max(4)
    }

    fn send_ping(&mut self, now: Instant, token: Option<Token>) {
        self.encode(&PingReq);
        if self.pings.is_empty() {
            self.timers
                .set(Timer::PingResp, now + self.config.ping_timeout);
        }
        self.pings.push_back(token);
        // The next keep-alive ping is armed when this one is handed to the transport.
        self.timers.stop(Timer::KeepAlive);
    }

    fn protocol_failure(&mut self, err: ProtocolError) {
        warn!(%err, "protocol error, closing the connection");
        let reason = err.reason_code();
        self.close(ConnectionError::Protocol(err), Some(reason));
    }

    /// Ends the connection from our side: pending output is dropped, and MQTT 5 gets a
    /// DISCONNECT with `reason` when one is given.
    fn close(&mut self, error: ConnectionError, reason: Option<ReasonCode>) {
        if !matches!(
            self.state,
            ConnectionState::Connecting | ConnectionState::Connected
        ) {
            return;
        }
        self.write_buf.clear();
        self.connection_ended();
        self.state = ConnectionState::Disconnected;
        if let Some(reason) = reason
            && self.config.protocol_version.is_v5()
        {
            self.encode(&Disconnect::new(reason));
            self.state = ConnectionState::Closing;
        }
        self.push_event(Event::Disconnected { reason: error });
    }

    /// Resets what lives and dies with one connection.
    fn connection_ended(&mut self) {
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
        for token in std::mem::take(&mut self.qos0_unsent) {
            if self.write_buf.is_empty() {
                self.push_event(Event::Published {
                    token,
                    result: Err(PublishError::ConnectionLost),
                });
            } else {
                // Still in the buffer ahead of a DISCONNECT: it will be handed out.
                self.qos0_unsent.push(token);
            }
        }
        self.timers.clear();
        self.pings.clear();
        self.incoming_qos1.clear();
        self.aliases_in.clear();
        self.aliases_out.clear();
        self.read_buf.clear();
        // Outgoing aliases and the limits belong to the connection too; both are reset when
        // the next CONNACK arrives.
    }

    fn require_connected(&self) -> Result<(), SessionError> {
        if self.is_connected() {
            Ok(())
        } else {
            Err(SessionError::NotConnected)
        }
    }

    fn encode<P: Encode + std::fmt::Debug>(&mut self, packet: &P) {
        debug!(client_id = %self.config.client_id, "-out-> {packet:?}");
        if let Err(err) = packet.encode(self.config.protocol_version, &mut self.write_buf) {
            // Every packet the session builds is validated before it gets here.
            warn!(%err, "dropping a packet that cannot be encoded");
        }
    }

    fn push_event(&mut self, event: Event) {
        self.events.push_back(Pending {
            event,
            auto_ack: None,
        });
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        Token(self.next_token)
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }
}

impl<S: SessionStore> std::fmt::Debug for Session<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("client_id", &self.config.client_id)
            .field("state", &self.state)
            .field("connection", &self.connection)
            .field("inflight", &self.store.outgoing_len())
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

#[cold]
fn unreachable_qos0() -> ! {
    // The decoder guarantees: a packet identifier is present exactly for QoS 1 and 2.
    unreachable!("QoS 0 PUBLISH with a packet identifier")
}

#[cold]
fn unreachable_control() -> ! {
    // `control_index` matched the flight kind.
    unreachable!("control flight kind changed")
}
