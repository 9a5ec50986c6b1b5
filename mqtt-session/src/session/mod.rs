//! The client state machine.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use sansmqtt_proto::properties::{
    AckProperties, AuthProperties, ConnAckProperties, PropertyBox, PublishProperties,
    SubscribeProperties, UnsubscribeProperties,
};
use sansmqtt_proto::topic::{validate_topic_filter, validate_topic_name};
use sansmqtt_proto::{
    Auth, ConnAck, Connect, Disconnect, Encode, EncodeError, Packet, PacketId, PacketType, PingReq,
    ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, QoS, ReasonCode, SubAck, Subscribe,
    SubscribeFilter, UnsubAck, Unsubscribe,
};
use tracing::{debug, warn};

use crate::config::{
    AckMode, ConnectOptions, ReceiveMaximumExceeded, SessionConfig, SessionLossPolicy,
};
use crate::error::{ConnectionError, ProtocolError, PublishError, ServerReason, SessionError};
use crate::event::{AckToken, Event, Message, Token};
use crate::ids::PacketIds;
use crate::store::{
    IncomingState, MemoryStore, OutgoingFlight, OutgoingState, SessionStore, StoreError,
};
use crate::time::{DefaultInstant, Instant};
use crate::timer::{Timer, TimerTable};

pub use limits::PublishLimits;

mod connection;
mod incoming;
mod limits;
mod outgoing;
mod subscriptions;
mod transmit;

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
            maximum_packet_size: sansmqtt_proto::MAX_PACKET_SIZE,
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
struct Queued<I> {
    token: Token,
    publish: Publish,
    /// When its MQTT 5 message expiry interval, counted from acceptance, runs out.
    expires: Option<I>,
    /// Its send order, taken at acceptance: the flight that carries it keeps it, which is
    /// also how a store knows that flight replaces the queued record (`put_queued`).
    seq: u64,
    /// Recorded in the store ([`SessionStore::put_queued`]): accepted while disconnected
    /// over a store that keeps queued publishes.
    recorded: bool,
}

/// A received QoS 1/2 message whose acknowledgement has not been sent yet.
#[derive(Debug, Clone, Copy)]
struct UnsentAck {
    id: PacketId,
    qos: QoS,
    /// The application acknowledged it; it goes out once every earlier one has.
    ready: bool,
    /// Given back with [`Session::refuse`]: it never goes out (nor any after it).
    refused: bool,
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
/// `S` is where in-flight state lives ([`MemoryStore`] by default), `I` the type of every
/// `now` and deadline ([`Instant`]; `std::time::Instant` by default with the `std` feature, so
/// std users never name it; without `std`, e.g. [`Duration`] since an origin of your choice).
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
///   [`poll_transmit`](Self::poll_transmit) until `None` and write what it returns (it syncs
///   the store first; a failed sync queues events, so repeat while
///   [`pending_events`](Self::pending_events) is not zero), then sleep until
///   [`poll_timeout`](Self::poll_timeout) and call `handle_timeout`.
///
/// A fatal problem on a connection is reported once, as [`Event::Disconnected`]; the
/// session then waits for the next `connect`, keeping what must survive (in-flight QoS 1/2
/// flows, queued publishes, pending subscriptions).
///
/// One handshake, with the server's bytes written by hand (the crate docs show the same loop
/// over a real socket):
///
/// ```
/// use std::time::{Duration, Instant};
///
/// use sansmqtt_session::proto::ProtocolVersion;
/// use sansmqtt_session::{ConnectOptions, ConnectionState, Event, Session, SessionConfig};
///
/// let mut session = Session::new(SessionConfig::new("doc-client", ProtocolVersion::V311));
/// let now = Instant::now();
/// session.connect(now, ConnectOptions::new(Duration::from_secs(30))).unwrap();
/// let connect = session.poll_transmit(now).expect("CONNECT to send");
/// assert_eq!(connect[0], 0x10, "a CONNECT packet");
///
/// // CONNACK: session present 0, return code 0 (accepted).
/// session.handle_read(now, &[0x20, 0x02, 0x00, 0x00]);
/// assert!(matches!(
///     session.poll_event(),
///     Some(Event::Connected { session_present: false, .. })
/// ));
/// assert_eq!(session.state(), ConnectionState::Connected);
/// // The next thing to do: wake up for the keep-alive ping.
/// assert!(session.poll_timeout().is_some());
/// ```
pub struct Session<S: SessionStore = MemoryStore, I = DefaultInstant> {
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
    queue: VecDeque<Queued<I>>,
    /// QoS 1/2 messages received on this connection whose PUBACK / PUBREC has not gone out,
    /// in arrival order: acknowledgements leave in this order ([MQTT-4.6.0-2],
    /// [MQTT-4.6.0-3]) whatever order the application gives them in.
    unsent_acks: VecDeque<UnsentAck>,
    /// QoS 1 entries of `unsent_acks` (QoS 2 ones are counted by the store).
    unsent_qos1: usize,
    /// Counts the server sessions this session has seen end (session losses): acknowledgement
    /// tokens carry it, so one from a lost session cannot acknowledge a newer message that
    /// reuses its packet identifier.
    server_session: u64,
    /// One entry per PINGREQ awaiting PINGRESP, with when it was queued; `Some` for a
    /// `ping` command.
    pings: VecDeque<(Option<Token>, I)>,
    /// When the last answered PINGREQ was queued and when its PINGRESP was read.
    last_ping: Option<(I, I)>,
    /// The adapter stopped reading on purpose ([`Session::set_reading_paused`]): no PINGRESP
    /// can arrive, so no ping deadline runs.
    reading_paused: bool,
    /// Granted subscriptions with the properties of the SUBSCRIBE that made them (MQTT 5
    /// subscription identifier, user properties), for re-subscribing after a session loss.
    subscriptions: Vec<Granted>,
    /// The `now` of the `handle_read` under way: what the queue pump, run by the packets it
    /// handles, measures message expiry against.
    read_now: Option<I>,
    /// Queued publishes dropped because their MQTT 5 message expiry interval ran out while
    /// they waited.
    expired: u64,
    /// QoS 1/2 PUBLISHes taken beyond our Receive Maximum
    /// ([`ReceiveMaximumExceeded::Accept`](crate::ReceiveMaximumExceeded::Accept)).
    overruns: u64,
    aliases_in: Vec<Option<ByteString>>,
    aliases_out: BTreeMap<ByteString, u16>,
    /// The property set an aliased PUBLISH without properties of its own borrows for its
    /// alias: allocated once, so that aliasing costs no allocation per message.
    alias_properties: PropertyBox<PublishProperties>,
    timers: TimerTable<I>,
    last_received: Option<I>,
    /// When bytes were last handed to the transport: keep-alive counts from there.
    last_sent: Option<I>,
    read_buf: BytesMut,
    write_buf: BytesMut,
    /// Bytes at the front of `write_buf` that finish a packet
    /// [`poll_transmit_into`](Self::poll_transmit_into) handed out in part (0: the front is
    /// a packet boundary). A closing connection sends its DISCONNECT only on a boundary.
    write_cut: usize,
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
    /// Publishes recorded in the store since its last successful sync: they become durable
    /// ([`Event::Stored`]) with the next one, or fail if it fails.
    unsynced: Vec<(Token, PacketId)>,
    /// Publishes queued while disconnected and recorded in the store since its last
    /// successful sync: stored ([`Event::Stored`]) with the next one, failed if it fails.
    unsynced_queued: Vec<Token>,
    /// A store mutation failed while handling input: the connection is closed once the
    /// current packet is handled.
    store_failure: Option<StoreError>,
    /// Incoming QoS 2 messages handed out in automatic mode whose acknowledgement the store
    /// could not record: acknowledged when the server sends them again.
    failed_acks: Vec<PacketId>,
    /// A session loss was seen but the store failed before our state was reset for it: a
    /// later "session present" names the server's new session, not ours.
    reset_pending: bool,
    /// MQTT 5 Server Reference of the last CONNACK refusal or server DISCONNECT on the
    /// current (or last) connection: where the server suggests to connect instead.
    server_reference: Option<ByteString>,
}

impl<I: Instant> Session<MemoryStore, I> {
    /// A session with the in-memory store. Nothing is sent until [`connect`](Self::connect).
    pub fn new(config: SessionConfig) -> Self {
        Self::with_store(config, MemoryStore::new())
    }
}

impl<S: SessionStore, I: Instant> Session<S, I> {
    /// A session over `store`, resuming any in-flight flows it holds (e.g. after a process
    /// restart with a persistent store).
    pub fn with_store(config: SessionConfig, store: S) -> Self {
        let mut ids = PacketIds::new();
        let subscriptions = store
            .subscriptions()
            .into_iter()
            .map(|(filter, properties)| Granted { filter, properties })
            .collect();
        let mut next_token = 0;
        let mut next_seq = 0;
        for (id, flight) in store.outgoing_in_order() {
            ids.claim(id);
            next_token = next_token.max(flight.token.0 + 1);
            next_seq = next_seq.max(flight.seq + 1);
        }
        // Publishes accepted while disconnected by an earlier process wait again, behind the
        // flights (they were accepted after those were sent). An instant of that process
        // means nothing here, so they carry no expiry instant: the store hands each one's
        // MQTT 5 expiry interval reduced to what is left (a store with a wall clock can tell),
        // and the queue pump counts that from the first time it looks at the message; one with
        // 0 left is dropped there as expired.
        let mut queue = VecDeque::new();
        for (seq, token, publish) in store.queued_in_order() {
            next_token = next_token.max(token.0 + 1);
            next_seq = next_seq.max(seq + 1);
            queue.push_back(Queued {
                token,
                publish,
                expires: None,
                seq,
                recorded: true,
            });
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
            queue,
            unsent_acks: VecDeque::new(),
            unsent_qos1: 0,
            server_session: 0,
            pings: VecDeque::new(),
            reading_paused: false,
            subscriptions,
            read_now: None,
            expired: 0,
            overruns: 0,
            last_ping: None,
            aliases_in: Vec::new(),
            aliases_out: BTreeMap::new(),
            alias_properties: PropertyBox::none(),
            timers: TimerTable::default(),
            last_received: None,
            last_sent: None,
            read_buf: BytesMut::new(),
            write_buf: BytesMut::new(),
            write_cut: 0,
            qos0_unsent: Vec::new(),
            events: VecDeque::new(),
            server_session_ended: false,
            connect_may_replace: false,
            session_maybe_replaced: false,
            unsynced: Vec::new(),
            unsynced_queued: Vec::new(),
            store_failure: None,
            failed_acks: Vec::new(),
            reset_pending: false,
            server_reference: None,
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

    /// The store, mutably: for maintenance that needs it (e.g. a durable store's own
    /// operations). Changing the flights behind the session's back breaks its bookkeeping.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Outgoing QoS 1/2 messages in flight.
    pub fn inflight_len(&self) -> usize {
        self.store.outgoing_len()
    }

    /// Incoming QoS 1/2 messages not yet acknowledged (PUBACK / PUBREC not sent) or, for QoS
    /// 2, not yet released (PUBREL not received): what flow control counts against the
    /// Receive Maximum.
    pub fn incoming_inflight_len(&self) -> usize {
        self.unsent_qos1 + self.store.incoming_len()
    }

    /// The last answered PINGREQ, keep-alive or [`ping`](Self::ping): when it was queued
    /// and when its PINGRESP was read, the instants the caller passed in (their difference
    /// is the round trip, including the time the driver took to write the request out and to
    /// read the answer). `None` until one is answered.
    pub fn last_ping(&self) -> Option<(I, I)> {
        self.last_ping
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

    /// Queued publishes dropped so far because their MQTT 5 message expiry interval ran out
    /// before they could be sent (each also failed with [`PublishError::Expired`]).
    pub fn expired_publishes(&self) -> u64 {
        self.expired
    }

    /// QoS 1/2 PUBLISHes an MQTT 5 server sent beyond the Receive Maximum we announced and
    /// the session took anyway, since it was created (only with
    /// [`ReceiveMaximumExceeded::Accept`](crate::ReceiveMaximumExceeded::Accept); otherwise
    /// the first one ends the connection). A number that grows names a server that ignores
    /// flow control.
    pub fn receive_maximum_overruns(&self) -> u64 {
        self.overruns
    }

    /// Whether packets are encoded and waiting for [`poll_transmit`](Self::poll_transmit).
    /// A driver that makes the store durable on its own (off its executor, say) checks this
    /// to sync before the batch is handed out.
    pub fn has_transmit(&self) -> bool {
        !self.write_buf.is_empty()
    }

    /// Events not yet drained.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// The MQTT 5 Server Reference (another server to use) that the server sent with a
    /// CONNACK refusal or a DISCONNECT on the current or last connection, if any; cleared
    /// by the next [`connect`](Self::connect). What to do with it (reason codes 0x9C "use
    /// another server", 0x9D "server moved") is up to the client.
    pub fn server_reference(&self) -> Option<&ByteString> {
        self.server_reference.as_ref()
    }

    /// Changes how long the next CONNACK is waited for (e.g. what is left of a connect budget
    /// after opening the transport).
    pub fn set_connect_timeout(&mut self, timeout: Duration) {
        self.config.connect_timeout = timeout;
    }

    /// Switches the protocol version for the next connection, e.g. to fall back to MQTT
    /// 3.1.1 when a server refused MQTT 5, with the in-flight window to use with it (a 3.1.1
    /// server announces no Receive Maximum). Only while disconnected.
    pub fn set_protocol_version(
        &mut self,
        version: ProtocolVersion,
        max_inflight: u16,
    ) -> Result<(), SessionError> {
        if self.state != ConnectionState::Disconnected {
            return Err(SessionError::AlreadyConnected);
        }
        self.config.protocol_version = version;
        self.config.max_inflight = max_inflight.max(1);
        Ok(())
    }

    // ---- B. inputs ---------------------------------------------------------------------------

    /// Takes bytes read from the transport and processes every whole packet among them; a
    /// partial packet is kept for the next call. Bytes arriving while no connection is up are
    /// ignored.
    pub fn handle_read(&mut self, now: I, bytes: &[u8]) {
        if !matches!(
            self.state,
            ConnectionState::Connecting | ConnectionState::Connected
        ) {
            return;
        }
        self.read_now = Some(now);
        self.read_buf.extend_from_slice(bytes);
        loop {
            let decoded = sansmqtt_proto::decode(
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
            if let Some(err) = self.store_failure.take() {
                warn!(%err, "session store failed, closing the connection");
                self.close(ConnectionError::Store(err), None);
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
    pub fn handle_timeout(&mut self, now: I) {
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
                    if self.pings.len() >= self.max_unanswered_pings() && !self.reading_paused {
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
    pub fn handle_transport_closed(&mut self, _now: I) {
        if self.state == ConnectionState::Disconnected {
            return;
        }
        let was_closing = self.state == ConnectionState::Closing;
        self.discard_unsent();
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
    pub fn connect(&mut self, now: I, options: ConnectOptions) -> Result<(), SessionError> {
        if self.state != ConnectionState::Disconnected {
            return Err(SessionError::AlreadyConnected);
        }
        let connect = self.connect_packet(&options)?;
        self.connection += 1;
        self.server_reference = None;
        self.read_buf.clear();
        self.discard_unsent();
        self.limits = ServerLimits::defaults(options.keep_alive);
        self.connect_may_replace = options.clean_start || self.server_session_ended;
        self.options = options;
        self.encode(&connect);
        debug!(client_id = %self.config.client_id, clean_start = connect.clean_start, "CONNECT");
        self.state = ConnectionState::Connecting;
        self.last_received = None;
        self.last_sent = None;
        self.timers
            .set(Timer::ConnAck, now, self.config.connect_timeout);
        Ok(())
    }

    /// Publishes `publish`. Its `dup` flag and packet identifier are managed by the session.
    ///
    /// While not connected, or while the in-flight window is full, the message waits in an
    /// ordered queue (in memory). QoS 0 completes when handed to the transport, QoS 1 at
    /// PUBACK, QoS 2 at PUBCOMP: see [`Event::Published`].
    ///
    /// A QoS 1/2 message is recorded in the store when it enters the in-flight window (here,
    /// or later from the queue), before it is encoded; it is durable once the store's sync
    /// before the next hand-out succeeded, reported as [`Event::Stored`] (with
    /// [`SessionConfig::report_stored`]). If the store cannot
    /// record it, this fails with [`SessionError::Store`] (or, from the queue, its
    /// [`Event::Published`] carries [`PublishError::Store`]) and nothing is sent.
    pub fn publish(&mut self, now: I, mut publish: Publish) -> Result<Token, SessionError> {
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
        let seq = self.seq();
        if sendable {
            self.send_new(token, publish, seq)?;
        } else {
            let expires = publish
                .properties
                .message_expiry_interval
                .and_then(|secs| now.checked_add(Duration::from_secs(u64::from(secs))));
            // Offline, a durable store gets the message now: it is stored after the next
            // sync (`sync_queued`), not when a connection lets it into the window. Behind a
            // full window on a live connection it waits in memory, as the window drains
            // soon and recording it twice (queued, then in flight) would cost a sync each.
            let recorded =
                publish.qos != QoS::AtMostOnce && !self.is_connected() && self.store.keeps_queued();
            if recorded {
                self.store
                    .put_queued(seq, token, &publish)
                    .map_err(SessionError::Store)?;
                self.unsynced_queued.push(token);
            }
            self.queue.push_back(Queued {
                token,
                publish,
                expires,
                seq,
                recorded,
            });
        }
        Ok(token)
    }

    /// Subscribes to `filters` (SUBSCRIBE). [`Event::Subscribed`] carries the result. A
    /// subscribe in flight when the connection drops is sent again on the next connection.
    ///
    /// Without a connection (none yet, or before CONNACK, or between connections) the
    /// SUBSCRIBE waits and goes out at the next CONNACK, with the subscribes and unsubscribes
    /// of the last connection still unanswered, in the order they were made, and before the
    /// publishes queued meanwhile: a client that subscribes to its own topic and then
    /// publishes while offline receives its message.
    pub fn subscribe(
        &mut self,
        _now: I,
        filters: Vec<SubscribeFilter>,
        properties: SubscribeProperties,
    ) -> Result<Token, SessionError> {
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
        // Write-ahead: a durable store has the subscription before the SUBSCRIBE leaves.
        for filter in &packet.filters {
            if let Err(err) = self.store.put_subscription(filter, &packet.properties) {
                self.ids.release(packet_id);
                return Err(SessionError::Store(err));
            }
        }
        let token = self.token();
        // Offline it waits in `control`, which `resend_control` sends at the next CONNACK.
        if self.is_connected() {
            self.encode(&packet);
        }
        self.control.push(ControlFlight::Subscribe {
            token: Some(token),
            packet,
        });
        Ok(token)
    }

    /// Unsubscribes from `filters` (UNSUBSCRIBE). [`Event::Unsubscribed`] carries the result.
    pub fn unsubscribe(&mut self, now: I, filters: Vec<ByteString>) -> Result<Token, SessionError> {
        self.unsubscribe_with_properties(now, filters, UnsubscribeProperties::default())
    }

    /// [`unsubscribe`](Self::unsubscribe) with MQTT 5 UNSUBSCRIBE properties (user
    /// properties). Without a connection it waits for the next CONNACK, as a
    /// [`subscribe`](Self::subscribe) does.
    pub fn unsubscribe_with_properties(
        &mut self,
        _now: I,
        filters: Vec<ByteString>,
        properties: UnsubscribeProperties,
    ) -> Result<Token, SessionError> {
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
        let mut packet = Unsubscribe::new(packet_id, filters);
        packet.properties = properties;
        if let Err(err) = self.check_size(&packet) {
            self.ids.release(packet_id);
            return Err(err);
        }
        for filter in &packet.filters {
            if let Err(err) = self.store.remove_subscription(filter) {
                self.ids.release(packet_id);
                return Err(SessionError::Store(err));
            }
        }
        let token = self.token();
        if self.is_connected() {
            self.encode(&packet);
        }
        self.control
            .push(ControlFlight::Unsubscribe { token, packet });
        Ok(token)
    }

    /// Sends PINGREQ; [`Event::Pong`] reports the PINGRESP. If the connection ends first,
    /// the token is void (the adapter fails its waiter on [`Event::Disconnected`]).
    pub fn ping(&mut self, now: I) -> Result<Token, SessionError> {
        self.require_connected()?;
        let token = self.token();
        self.send_ping(now, Some(token));
        Ok(token)
    }

    /// Acknowledges a message received in [`AckMode::Manual`]. An acknowledgement for a QoS 1
    /// message from an earlier connection is dropped: the server sends such messages again.
    /// If the store cannot record a QoS 2 acknowledgement, this fails with
    /// [`SessionError::Store`]: the connection closes, and the acknowledgement is made when
    /// the server sends the message again (no need to call this again).
    pub fn ack(&mut self, _now: I, token: AckToken) -> Result<(), SessionError> {
        let result = self.send_ack(token);
        if let Err(SessionError::Store(err)) = &result {
            warn!(%err, "session store failed, closing the connection");
            self.failed_acks.push(token.packet_id);
            self.close(ConnectionError::Store(err.clone()), None);
        }
        result
    }

    /// Gives back a received QoS 1/2 message that the application will not take on this
    /// connection (a client bounding what it holds against a server that sends without
    /// limit). No acknowledgement goes out for it, and since acknowledgements go out in
    /// arrival order ([MQTT-4.6.0-2]), none for any later message of this connection either:
    /// a server keeping the session sends them all again on the next connection
    /// ([MQTT-4.4.0-1]). A QoS 2 message's `Delivered` state is forgotten, so that its re-send
    /// is delivered rather than taken for a duplicate.
    pub fn refuse(&mut self, _now: I, token: AckToken) -> Result<(), SessionError> {
        if token.connection == self.connection
            && let Some(unsent) = self
                .unsent_acks
                .iter_mut()
                .find(|unsent| unsent.id == token.packet_id && unsent.qos == token.qos)
        {
            unsent.refused = true;
        }
        if token.qos == QoS::ExactlyOnce
            && token.session == self.server_session
            && self.store.incoming(token.packet_id) == Some(IncomingState::Delivered)
        {
            self.store.set_incoming(token.packet_id, None)?;
        }
        Ok(())
    }

    /// Whether every QoS 1/2 message received on this connection has been acknowledged,
    /// but for those given back with [`refuse`](Self::refuse) (which come last: a client
    /// refuses everything after its first refusal). A client that refused messages reconnects
    /// for the server to send them again only once this holds: an earlier message the
    /// application took but has not acknowledged yet (manual acknowledgements) would otherwise
    /// come again too, and be processed twice.
    pub fn acknowledged_all_but_refused(&self) -> bool {
        self.unsent_acks.front().is_none_or(|unsent| unsent.refused)
    }

    /// The adapter has stopped reading the transport on purpose (`true`), or reads again
    /// (`false`). A client bounding what it holds against a server that sends without limit
    /// (MQTT 3.1.1 has no Receive Maximum) may have no lossless way but to stop reading; then
    /// no PINGRESP can arrive, and the ping deadline ([`SessionConfig::ping_timeout`], and the
    /// bound on unanswered PINGREQs) would end a healthy connection. While paused the deadline
    /// does not run; keep-alive PINGREQs still go out on schedule, so the server sees the
    /// client alive. On resuming, a deadline starts at `now` for the PINGREQs still
    /// unanswered (their PINGRESPs wait behind what was not read). The pause ends with the
    /// connection too.
    ///
    /// A server that dies during the pause is noticed when reading resumes, or by a write
    /// failing: pause only while the application holds messages it will take.
    pub fn set_reading_paused(&mut self, now: I, paused: bool) {
        if paused == self.reading_paused {
            return;
        }
        self.reading_paused = paused;
        if paused {
            self.timers.stop(Timer::PingResp);
        } else if !self.pings.is_empty() && self.is_connected() {
            self.timers
                .set(Timer::PingResp, now, self.config.ping_timeout);
        }
    }

    /// Answers an [`Event::Auth`] step of MQTT 5 enhanced authentication, or starts a
    /// re-authentication (`reason_code` [`ReasonCode::ReAuthenticate`]) once connected.
    pub fn auth(
        &mut self,
        _now: I,
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
    pub fn disconnect(&mut self, _now: I, disconnect: Disconnect) -> Result<(), SessionError> {
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

    /// The next event. In [`AckMode::Auto`], handing out a QoS 1/2 message queues its
    /// acknowledgement: drain `poll_transmit` afterwards.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        let pending = self.events.pop_front()?;
        if let Some(token) = pending.auto_ack {
            // The token was made by the session for this very message; failing here means the
            // connection changed in between, and the server will re-send the message, or
            // that the store failed, which ends the connection (without the acknowledgement).
            if let Err(SessionError::Store(err)) = self.send_ack(token) {
                warn!(%err, "session store failed, closing the connection");
                self.failed_acks.push(token.packet_id);
                self.close(ConnectionError::Store(err), None);
            }
        }
        Some(pending.event)
    }

    /// When `handle_timeout` must be called next, if any timer is armed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<I> {
        self.timers.next()
    }

    // ---- shared by the flows (the flows themselves live in `connection`, `outgoing`,
    // `incoming` and `subscriptions`) ---------------------------------------------------------

    fn require_connected(&self) -> Result<(), SessionError> {
        if self.is_connected() {
            Ok(())
        } else {
            Err(SessionError::NotConnected)
        }
    }

    fn encode<P: Encode + core::fmt::Debug>(&mut self, packet: &P) {
        debug!(client_id = %self.config.client_id, "-out-> {packet:?}");
        if let Err(err) = packet.encode(self.config.protocol_version, &mut self.write_buf) {
            // Every packet the session builds is validated before it gets here.
            warn!(%err, "dropping a packet that cannot be encoded");
        }
    }

    /// Whether publishes queued while disconnected wait for a store sync to be stored: a
    /// driver syncing on its own (off its executor) starts one for them, then calls
    /// [`sync_queued`](Self::sync_queued).
    pub fn has_unsynced_queued(&self) -> bool {
        !self.unsynced_queued.is_empty()
    }

    /// Makes the publishes queued while disconnected durable: syncs the store and reports
    /// each as [`Event::Stored`] (with [`SessionConfig::report_stored`]), or, if the sync
    /// fails, fails each with [`PublishError::Store`] and forgets it. With no connection
    /// nothing else would sync the store; call it after such publishes (see
    /// [`has_unsynced_queued`](Self::has_unsynced_queued)). Does nothing if there are none.
    pub fn sync_queued(&mut self) {
        if self.unsynced_queued.is_empty() {
            return;
        }
        match self.store.sync() {
            Ok(()) => self.queued_synced(),
            Err(err) => {
                warn!(%err, "session store sync failed, failing the queued publishes");
                self.fail_unsynced_queued(&err);
            }
        }
    }

    /// A sync succeeded: queued publishes recorded before it are stored.
    fn queued_synced(&mut self) {
        for token in core::mem::take(&mut self.unsynced_queued) {
            if self.config.report_stored {
                self.push_event(Event::Stored { token });
            }
        }
    }

    /// A sync failed: queued publishes recorded since the last good one fail and are
    /// forgotten (their records, still pending in the store, are cancelled by a removal).
    fn fail_unsynced_queued(&mut self, err: &StoreError) {
        for token in core::mem::take(&mut self.unsynced_queued) {
            // Gone from the queue already: it entered the window, and the flight's own
            // failure (`sync_failed`) answers it.
            let Some(at) = self.queue.iter().position(|queued| queued.token == token) else {
                continue;
            };
            let Some(queued) = self.queue.remove(at) else {
                continue;
            };
            if let Err(err) = self.store.remove_queued(queued.seq) {
                warn!(%err, "session store cannot forget a failed queued publish");
            }
            self.push_event(Event::Published {
                token,
                result: Err(PublishError::Store(err.clone())),
                properties: Default::default(),
            });
        }
    }

    /// The store's sync failed: nothing of this batch goes out. Publishes first recorded in it
    /// are taken back and fail; what was durable before stays (and what else is pending is
    /// kept by the store for its next sync).
    fn sync_failed(&mut self, err: StoreError) {
        warn!(%err, "session store sync failed, withholding the batch");
        for (token, id) in core::mem::take(&mut self.unsynced) {
            // The id may have been finished and reused since (a session loss with the `Fail`
            // policy): only the flight this token made is taken back.
            if self.store.outgoing(id).map(|flight| flight.token) != Some(token) {
                continue;
            }
            match self.store.remove_outgoing(id) {
                Ok(_) => {
                    self.ids.release(id);
                    self.push_event(Event::Published {
                        token,
                        result: Err(PublishError::Store(err.clone())),
                        properties: Default::default(),
                    });
                }
                // Still recorded: it stays in flight and becomes durable with a later sync.
                Err(_) => self.unsynced.push((token, id)),
            }
        }
        self.fail_unsynced_queued(&err);
        if self.state == ConnectionState::Closing {
            self.discard_unsent();
            self.state = ConnectionState::Disconnected;
        } else {
            self.close(ConnectionError::Store(err), None);
        }
    }

    /// A store mutation failed while handling input: the connection closes after this packet.
    fn store_fault(&mut self, err: StoreError) {
        self.store_failure.get_or_insert(err);
    }

    /// Drops every byte not yet handed out (the connection is over or starting afresh).
    fn discard_unsent(&mut self) {
        self.write_buf.clear();
        self.write_cut = 0;
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

impl<S: SessionStore, I> core::fmt::Debug for Session<S, I> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
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
