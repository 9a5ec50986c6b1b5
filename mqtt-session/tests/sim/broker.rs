//! A model MQTT broker built on sansmqtt-proto, itself a pure state machine: bytes in, bytes out,
//! time as an argument.
//!
//! It keeps persistent sessions by client id (subscriptions, queued and in-flight messages
//! towards the client, QoS 2 flows from the client), routes what the client publishes to
//! matching subscriptions, originates messages of its own, and re-sends unacknowledged PUBLISH
//! (DUP) and PUBREL when a client resumes its session. It also checks the rules a client must
//! follow and records the first breach in `violation`.
//!
//! To judge packet-identifier reuse exactly, the broker learns from the network how many of
//! its bytes the client has received (`client_received`): an identifier is free again for the
//! client once the PUBACK / PUBCOMP that ended its flow has reached it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use sansmqtt_proto::properties::ConnAckProperties;
use sansmqtt_proto::topic::matches;
use sansmqtt_proto::{
    ByteString, ConnAck, Encode, Packet, PacketId, PingResp, ProtocolVersion, PubAck, PubComp,
    PubRec, PubRel, Publish, QoS, ReasonCode, SubAck, UnsubAck,
};

#[derive(Debug, Clone)]
pub(crate) struct BrokerConfig {
    pub(crate) version: ProtocolVersion,
    /// Receive maximum announced in CONNACK (MQTT 5 only).
    pub(crate) receive_maximum: Option<u16>,
    /// Topic alias maximum announced in CONNACK (MQTT 5; 0 announces none).
    pub(crate) topic_alias_maximum: u16,
    /// Use topic aliases on messages towards the client (MQTT 5, within its maximum).
    pub(crate) aliases_out: bool,
    /// Keep alive imposed in CONNACK (MQTT 5 server keep alive).
    pub(crate) server_keep_alive: Option<u16>,
    /// Most QoS 1/2 messages in flight towards the client (the client's receive maximum
    /// lowers it further).
    pub(crate) out_window: u16,
    /// Lateness allowed on top of 1.5 × keep alive before the client counts as silent.
    pub(crate) keep_alive_slack: Duration,
    /// The longest round trip: the client's keep alive starts when CONNACK reaches it, so the
    /// first deadline after CONNECT allows for one.
    pub(crate) round_trip: Duration,
}

/// A message on its way to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutMsg {
    pub(crate) topic: ByteString,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
}

/// The acknowledgement a message to the client waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    /// PUBACK.
    Ack,
    /// PUBREC.
    Rec,
    /// PUBCOMP (PUBREL sent).
    Comp,
}

#[derive(Debug)]
struct OutFlight {
    id: PacketId,
    msg: OutMsg,
    state: OutState,
}

/// Where a packet the broker sent ends in its byte stream: once the client has received
/// `end` bytes of link `link`, it has the packet.
#[derive(Debug, Clone, Copy)]
struct Mark {
    link: u64,
    end: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InState {
    /// QoS 1: PUBACK sent.
    Acked,
    /// QoS 2: PUBREC sent, PUBREL awaited.
    Received,
    /// QoS 2: PUBCOMP sent.
    Completed,
}

/// A QoS 1/2 flow from the client, by packet identifier.
#[derive(Debug)]
struct InFlow {
    qos: QoS,
    state: InState,
    payload: Bytes,
    /// The last acknowledgement sent for it.
    mark: Mark,
}

#[derive(Debug, Default)]
struct BrokerSession {
    subscriptions: Vec<(ByteString, QoS)>,
    queue: VecDeque<OutMsg>,
    /// In send order.
    inflight: Vec<OutFlight>,
    last_id: u16,
    incoming: HashMap<u16, InFlow>,
}

#[derive(Debug)]
struct Conn {
    link: u64,
    read: BytesMut,
    /// Set by CONNECT.
    client_id: Option<ByteString>,
    /// The session ends with this connection (3.1.1 clean session, MQTT 5 expiry 0).
    ephemeral: bool,
    keep_alive: Duration,
    last_received: Instant,
    /// No packet since CONNECT yet.
    just_connected: bool,
    client_receive_maximum: u16,
    client_alias_maximum: u16,
    aliases_in: HashMap<u16, ByteString>,
    aliases_out: HashMap<ByteString, u16>,
    /// Bytes handed to the network on this link.
    written: u64,
}

/// A message the broker's application received from the client.
#[derive(Debug, Clone)]
pub(crate) struct AppMsg {
    pub(crate) topic: ByteString,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
}

#[derive(Debug)]
pub(crate) struct Broker {
    cfg: BrokerConfig,
    // Ordered maps where the broker iterates: a run must replay identically from its seed.
    sessions: BTreeMap<ByteString, BrokerSession>,
    /// Retained messages by topic; they survive restarts like the sessions.
    retained: BTreeMap<ByteString, OutMsg>,
    conn: Option<Conn>,
    out: BytesMut,
    /// Bytes of each link that reached the client.
    delivered: HashMap<u64, u64>,
    /// Every message delivered to the broker's application, in order.
    pub(crate) app: Vec<AppMsg>,
    /// Every message put into a session towards the client (routed or originated).
    pub(crate) routed: Vec<OutMsg>,
    /// Payloads of QoS 1/2 messages lost with a discarded session.
    pub(crate) discarded: Vec<Bytes>,
    /// Sessions discarded (clean start, or the end of a connection whose session ends with it).
    pub(crate) discards: u32,
    /// The first rule the client broke (or a packet the model could not handle).
    pub(crate) violation: Option<String>,
    /// CONNACKs sent, with their session-present flag.
    pub(crate) connacks: Vec<bool>,
    /// The client's store fails or its process crashes in this run: it may repeat a PUBREL
    /// for a flow it had finished, when its store could not record (or make durable) the end.
    pub(crate) client_may_repeat_pubrel: bool,
    /// Packets in and out, when tracing.
    pub(crate) notes: Option<Vec<String>>,
}

impl Broker {
    pub(crate) fn new(cfg: BrokerConfig) -> Self {
        Self {
            cfg,
            sessions: BTreeMap::new(),
            retained: BTreeMap::new(),
            conn: None,
            out: BytesMut::new(),
            delivered: HashMap::new(),
            app: Vec::new(),
            routed: Vec::new(),
            discarded: Vec::new(),
            discards: 0,
            violation: None,
            connacks: Vec::new(),
            client_may_repeat_pubrel: false,
            notes: None,
        }
    }

    // ---- transport ----------------------------------------------------------------------

    /// A client opened `link`.
    pub(crate) fn open(&mut self, now: Instant, link: u64) {
        self.end_connection();
        self.conn = Some(Conn {
            link,
            read: BytesMut::new(),
            client_id: None,
            ephemeral: false,
            keep_alive: Duration::ZERO,
            last_received: now,
            just_connected: true,
            client_receive_maximum: u16::MAX,
            client_alias_maximum: 0,
            aliases_in: HashMap::new(),
            aliases_out: HashMap::new(),
            written: 0,
        });
    }

    /// `link` closed (cut, or the client closed it).
    pub(crate) fn closed(&mut self, link: u64) {
        if self.conn.as_ref().is_some_and(|conn| conn.link == link) {
            self.end_connection();
        }
    }

    /// The broker process restarts: connection state is gone, sessions stay.
    pub(crate) fn restart(&mut self) {
        self.end_connection();
    }

    /// The client has received `delivered` bytes of `link` so far.
    pub(crate) fn client_received(&mut self, link: u64, delivered: u64) {
        self.delivered.insert(link, delivered);
    }

    /// Bytes to send, with their link.
    pub(crate) fn poll_transmit(&mut self) -> Option<(u64, Vec<u8>)> {
        if self.out.is_empty() {
            return None;
        }
        let conn = self.conn.as_mut()?;
        let bytes = self.out.split().to_vec();
        conn.written += bytes.len() as u64;
        Some((conn.link, bytes))
    }

    /// The keep-alive deadline of the client: 1.5 × its keep alive after its last packet
    /// ([MQTT-3.1.2-24] / [MQTT-3.1.2-22]), plus the network's jitter.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let conn = self.conn.as_ref()?;
        if conn.client_id.is_none() || conn.keep_alive.is_zero() {
            return None;
        }
        let mut slack = self.cfg.keep_alive_slack;
        if conn.just_connected {
            slack += self.cfg.round_trip;
        }
        Some(conn.last_received + conn.keep_alive * 3 / 2 + slack)
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|at| at <= now) {
            let keep_alive = self.conn.as_ref().map(|conn| conn.keep_alive);
            self.violate(format!(
                "client silent for 1.5 x its keep alive {keep_alive:?} (plus network jitter)"
            ));
            self.end_connection();
        }
    }

    pub(crate) fn handle_read(&mut self, now: Instant, link: u64, bytes: &[u8]) {
        let Some(conn) = self.conn.as_mut().filter(|conn| conn.link == link) else {
            return;
        };
        conn.read.extend_from_slice(bytes);
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return;
            };
            match sansmqtt_proto::decode(&mut conn.read, self.cfg.version, 1 << 20) {
                Ok(Some(packet)) => {
                    if let Some(notes) = self.notes.as_mut() {
                        notes.push(format!("broker <- {}", summary(&packet)));
                    }
                    let Some(conn) = self.conn.as_mut() else {
                        return;
                    };
                    conn.just_connected = matches!(packet, Packet::Connect(_));
                    conn.last_received = now;
                    self.handle_packet(packet);
                }
                Ok(None) => return,
                Err(err) => {
                    self.violate(format!("malformed packet from the client: {err}"));
                    self.end_connection();
                    return;
                }
            }
        }
    }

    // ---- the broker's own application ---------------------------------------------------

    /// Publishes `msg` to `client_id` if its session subscribes to the topic. False when
    /// there is no such subscription (yet).
    pub(crate) fn originate(&mut self, client_id: &str, msg: OutMsg) -> bool {
        let Some(session) = self.sessions.get_mut(client_id) else {
            return false;
        };
        let Some(granted) = granted_qos(session, &msg.topic) else {
            return false;
        };
        let msg = OutMsg {
            qos: msg.qos.min(granted),
            ..msg
        };
        self.routed.push(msg.clone());
        session.queue.push_back(msg);
        self.pump();
        true
    }

    /// Payloads of the QoS 1/2 messages in flight towards `client_id`.
    pub(crate) fn inflight_payloads(&self, client_id: &str) -> Vec<Bytes> {
        self.sessions
            .get(client_id)
            .map(|s| s.inflight.iter().map(|f| f.msg.payload.clone()).collect())
            .unwrap_or_default()
    }

    /// The client restarted its flows although the broker kept the session (it could not
    /// tell whether its clean-start CONNECT had reached the broker): from now on the client
    /// reuses those packet identifiers for new messages.
    pub(crate) fn forget_client_flows(&mut self, client_id: &str) {
        if let Some(session) = self.sessions.get_mut(client_id) {
            session.incoming.clear();
        }
    }

    /// Nothing waits or is in flight towards `client_id`.
    pub(crate) fn drained(&self, client_id: &str) -> bool {
        self.sessions
            .get(client_id)
            .is_none_or(|s| s.queue.is_empty() && s.inflight.is_empty())
    }

    // ---- packets --------------------------------------------------------------------------

    fn handle_packet(&mut self, packet: Packet) {
        let connected = self.conn.as_ref().is_some_and(|c| c.client_id.is_some());
        match packet {
            Packet::Connect(connect) => {
                if connected {
                    // [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
                    self.violate("second CONNECT on one connection".into());
                    return;
                }
                self.on_connect(*connect);
            }
            _ if !connected => {
                // [MQTT-3.1.0-1] the first packet is CONNECT.
                self.violate(format!("{} before CONNECT", packet.packet_type()));
            }
            Packet::Publish(publish) => self.on_publish(publish),
            Packet::PubRel(rel) => self.on_pubrel(rel.packet_id),
            Packet::PubAck(ack) => self.on_ack(ack.packet_id, OutState::Ack, "PUBACK"),
            Packet::PubRec(rec) => self.on_ack(rec.packet_id, OutState::Rec, "PUBREC"),
            Packet::PubComp(comp) => {
                self.on_ack(comp.packet_id, OutState::Comp, "PUBCOMP");
            }
            Packet::Subscribe(subscribe) => {
                self.check_control_id(subscribe.packet_id, "SUBSCRIBE");
                let mut retained = Vec::new();
                for filter in &subscribe.filters {
                    for msg in self.retained.values() {
                        if matches(&filter.filter, &msg.topic) {
                            let qos = msg.qos.min(filter.options.qos);
                            retained.push(OutMsg { qos, ..msg.clone() });
                        }
                    }
                }
                let session = self.session_mut();
                let mut codes = Vec::new();
                for filter in subscribe.filters {
                    let qos = filter.options.qos;
                    session.subscriptions.retain(|(f, _)| *f != filter.filter);
                    session.subscriptions.push((filter.filter, qos));
                    codes.push(ReasonCode::granted(qos));
                }
                let ack = SubAck {
                    packet_id: subscribe.packet_id,
                    reason_codes: codes,
                    properties: Default::default(),
                };
                self.encode(&ack);
                // [MQTT-3.3.1-6] retained messages matching a new subscription follow it.
                for msg in retained {
                    self.routed.push(msg.clone());
                    self.session_mut().queue.push_back(msg);
                }
                self.pump();
            }
            Packet::Unsubscribe(unsubscribe) => {
                self.check_control_id(unsubscribe.packet_id, "UNSUBSCRIBE");
                let session = self.session_mut();
                let mut codes = Vec::new();
                for filter in unsubscribe.filters {
                    let before = session.subscriptions.len();
                    session.subscriptions.retain(|(f, _)| *f != filter);
                    codes.push(if session.subscriptions.len() < before {
                        ReasonCode::Success
                    } else {
                        ReasonCode::NoSubscriptionExisted
                    });
                }
                if !self.cfg.version.is_v5() {
                    codes.clear();
                }
                let ack = UnsubAck {
                    packet_id: unsubscribe.packet_id,
                    reason_codes: codes,
                    properties: Default::default(),
                };
                self.encode(&ack);
            }
            Packet::PingReq(_) => {
                self.encode(&PingResp);
            }
            Packet::Disconnect(disconnect) => {
                if disconnect.reason_code != ReasonCode::Success {
                    // The session only sends a reasoned DISCONNECT when it found fault with
                    // the broker: either the model or the session is wrong.
                    self.violate(format!(
                        "client disconnected with reason {}",
                        disconnect.reason_code
                    ));
                }
                self.end_connection();
            }
            other => self.violate(format!("client sent {}", other.packet_type())),
        }
    }

    fn on_connect(&mut self, connect: sansmqtt_proto::Connect) {
        let v5 = self.cfg.version.is_v5();
        if connect.client_id.is_empty() {
            self.violate("empty client id".into());
            return;
        }
        let id = connect.client_id.clone();
        if connect.clean_start {
            self.discard_session(&id);
        }
        let session_present = self.sessions.contains_key(&id);
        self.sessions.entry(id.clone()).or_default();
        let props = &connect.properties;
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        conn.client_id = Some(id);
        conn.ephemeral = if v5 {
            props.session_expiry_interval.unwrap_or(0) == 0
        } else {
            connect.clean_start
        };
        let keep_alive = match self.cfg.server_keep_alive {
            Some(imposed) if v5 => imposed,
            _ => connect.keep_alive,
        };
        conn.keep_alive = Duration::from_secs(u64::from(keep_alive));
        conn.client_receive_maximum = props.receive_maximum.unwrap_or(u16::MAX);
        conn.client_alias_maximum = props.topic_alias_maximum.unwrap_or(0);
        let mut connack = ConnAck::new(session_present);
        if v5 {
            connack.properties = ConnAckProperties {
                receive_maximum: self.cfg.receive_maximum,
                topic_alias_maximum: (self.cfg.topic_alias_maximum > 0)
                    .then_some(self.cfg.topic_alias_maximum),
                server_keep_alive: self.cfg.server_keep_alive,
                ..Default::default()
            };
        }
        self.connacks.push(session_present);
        self.encode(&connack);
        // [MQTT-4.4.0-1]: a resumed session re-sends unacknowledged PUBLISH (DUP) and PUBREL,
        // in their original order.
        let resend: Vec<_> = self
            .session_mut()
            .inflight
            .iter()
            .map(|f| (f.id, f.msg.clone(), f.state))
            .collect();
        for (id, msg, state) in resend {
            match state {
                OutState::Comp => {
                    self.encode(&PubRel::new(id));
                }
                _ => self.send_publish(&msg, Some(id), true),
            }
        }
        self.pump();
    }

    fn on_publish(&mut self, mut publish: Publish) {
        if let Err(why) = self.resolve_alias(&mut publish) {
            self.violate(why);
            return;
        }
        let Some(id) = publish.packet_id else {
            self.deliver(&publish);
            return;
        };
        let key = id.get();
        let flow = self
            .session_mut()
            .incoming
            .get(&key)
            .map(|f| (f.qos, f.state, f.payload.clone(), f.mark));
        let released = |broker: &Self, state: InState, mark: Mark| {
            state != InState::Received && broker.is_delivered(mark)
        };
        match flow {
            Some((qos, state, payload, mark)) if !released(self, state, mark) => {
                if !publish.dup {
                    // [MQTT-2.3.1-2] (3.1.1) / [MQTT-2.2.1-3] (5.0): a new PUBLISH takes an
                    // identifier that is not in use.
                    self.violate(format!(
                        "new PUBLISH reuses packet id {id} still in flight ({state:?})"
                    ));
                    return;
                }
                if qos != publish.qos || payload != publish.payload {
                    self.violate(format!("DUP PUBLISH {id} differs from the original"));
                    return;
                }
                match state {
                    InState::Acked => {
                        // QoS 1 re-delivers: at least once.
                        self.deliver(&publish);
                        let mark = self.encode(&PubAck::new(id));
                        self.set_flow(key, qos, InState::Acked, payload, mark);
                    }
                    // The client could not record the PUBREC (its store failed): it re-sends
                    // the PUBLISH, which is answered, not delivered again.
                    InState::Received if self.client_may_repeat_pubrel => {
                        let mark = self.encode(&PubRec::new(id));
                        self.set_flow(key, qos, InState::Received, payload, mark);
                    }
                    InState::Received if self.is_delivered(mark) => {
                        // [MQTT-4.3.3-1] 3.1.1, [MQTT-4.3.3-4] 5.0: after PUBREC the sender moves on to PUBREL.
                        self.violate(format!("PUBLISH {id} re-sent after its PUBREC arrived"));
                    }
                    InState::Received => {
                        // Not delivered again: exactly once.
                        let mark = self.encode(&PubRec::new(id));
                        self.set_flow(key, qos, InState::Received, payload, mark);
                    }
                    InState::Completed => {
                        self.violate(format!("PUBLISH {id} re-sent after its PUBREL"));
                    }
                }
            }
            previous => {
                // A QoS 1 flow whose end the client's store could not record is re-sent:
                // delivered again, at least once. A QoS 2 one never is.
                let repeat_allowed =
                    self.client_may_repeat_pubrel && publish.qos == QoS::AtLeastOnce;
                if publish.dup
                    && !repeat_allowed
                    && previous.is_some_and(|(_, _, payload, _)| payload == publish.payload)
                {
                    self.violate(format!(
                        "DUP PUBLISH {id} re-sends a message whose flow had completed"
                    ));
                    return;
                }
                if let Some(max) = self.receive_maximum() {
                    let in_flight = self.unreleased_flows(key);
                    // MQTT 5.0 3.3.4 [MQTT-3.3.4-7]: no more than Receive Maximum QoS 1/2
                    // PUBLISH unacknowledged.
                    if in_flight >= usize::from(max) {
                        self.violate(format!(
                            "PUBLISH {id} exceeds the receive maximum {max} ({in_flight} in flight)"
                        ));
                        return;
                    }
                }
                self.deliver(&publish);
                let (ack, state) = if publish.qos == QoS::AtLeastOnce {
                    (self.encode(&PubAck::new(id)), InState::Acked)
                } else {
                    (self.encode(&PubRec::new(id)), InState::Received)
                };
                self.set_flow(key, publish.qos, state, publish.payload, ack);
            }
        }
    }

    fn on_pubrel(&mut self, id: PacketId) {
        let key = id.get();
        let flow = self
            .session_mut()
            .incoming
            .get(&key)
            .map(|f| (f.state, f.payload.clone(), f.mark));
        match flow {
            Some((InState::Received, payload, mark)) if self.is_delivered(mark) => {
                let mark = self.encode(&PubComp::new(id));
                self.set_flow(key, QoS::ExactlyOnce, InState::Completed, payload, mark);
            }
            Some((InState::Received, _, _)) => {
                self.violate(format!("PUBREL {id} before its PUBREC reached the client"));
            }
            // PUBCOMP lost with a connection, or the client process crashed before its
            // record of the PUBCOMP was durable: the client repeats PUBREL.
            Some((InState::Completed, payload, mark))
                if !self.is_delivered(mark) || self.client_may_repeat_pubrel =>
            {
                let mark = self.encode(&PubComp::new(id));
                self.set_flow(key, QoS::ExactlyOnce, InState::Completed, payload, mark);
            }
            // The client could not record that a session loss ended the flow (its store
            // failed): the PUBREL is answered, as the protocol requires.
            None if self.client_may_repeat_pubrel => {
                let mut comp = PubComp::new(id);
                if self.cfg.version.is_v5() {
                    comp.reason_code = ReasonCode::PacketIdentifierNotFound;
                }
                self.encode(&comp);
            }
            other => {
                let state = other.map(|(state, _, _)| state);
                // [MQTT-4.3.3-1] 3.1.1, [MQTT-4.3.3-4] 5.0: PUBREL only answers a PUBREC.
                self.violate(format!("PUBREL {id} without a PUBREC ({state:?})"));
            }
        }
    }

    fn on_ack(&mut self, id: PacketId, expected: OutState, name: &str) {
        let session = self.session_mut();
        if expected == OutState::Rec
            && session
                .inflight
                .iter()
                .any(|f| f.id == id && f.state == OutState::Comp)
        {
            // A second PUBREC: the client answers every PUBLISH it gets, and a manual
            // acknowledgement can answer the first copy after the DUP copy was answered.
            // The PUBREL is out already (or re-sent on reconnect).
            return;
        }
        let Some(pos) = session
            .inflight
            .iter()
            .position(|f| f.id == id && f.state == expected)
        else {
            let state = session
                .inflight
                .iter()
                .find(|f| f.id == id)
                .map(|f| f.state);
            self.violate(format!("{name} {id} for no matching flow ({state:?})"));
            return;
        };
        match expected {
            OutState::Rec => {
                session.inflight[pos].state = OutState::Comp;
                self.encode(&PubRel::new(id));
            }
            _ => {
                session.inflight.remove(pos);
                self.pump();
            }
        }
    }

    /// SUBSCRIBE and UNSUBSCRIBE share the identifier space with PUBLISH ([MQTT-2.3.1-2]).
    fn check_control_id(&mut self, id: PacketId, name: &str) {
        let key = id.get();
        let flow = self
            .session_mut()
            .incoming
            .get(&key)
            .map(|f| (f.state, f.mark));
        if let Some((state, mark)) = flow
            && (state == InState::Received || !self.is_delivered(mark))
        {
            self.violate(format!(
                "{name} reuses packet id {id} of a PUBLISH in flight"
            ));
        }
    }

    // ---- helpers ------------------------------------------------------------------------

    fn receive_maximum(&self) -> Option<u16> {
        self.cfg
            .receive_maximum
            .filter(|_| self.cfg.version.is_v5())
    }

    /// Flows from the client other than `except` that the client still counts as in flight.
    fn unreleased_flows(&mut self, except: u16) -> usize {
        let flows: Vec<_> = self
            .session_mut()
            .incoming
            .iter()
            .filter(|(id, _)| **id != except)
            .map(|(_, f)| (f.state, f.mark))
            .collect();
        flows
            .into_iter()
            .filter(|(state, mark)| *state == InState::Received || !self.is_delivered(*mark))
            .count()
    }

    fn set_flow(&mut self, id: u16, qos: QoS, state: InState, payload: Bytes, mark: Mark) {
        self.session_mut().incoming.insert(
            id,
            InFlow {
                qos,
                state,
                payload,
                mark,
            },
        );
    }

    fn is_delivered(&self, mark: Mark) -> bool {
        self.delivered
            .get(&mark.link)
            .is_some_and(|&delivered| delivered >= mark.end)
    }

    fn resolve_alias(&mut self, publish: &mut Publish) -> Result<(), String> {
        let Some(alias) = publish.properties.topic_alias.take() else {
            return Ok(());
        };
        // [MQTT-3.3.2-8] / [MQTT-3.3.2-9]: 0 < alias <= the server's topic alias maximum.
        if alias == 0 || alias > self.cfg.topic_alias_maximum || !self.cfg.version.is_v5() {
            return Err(format!("topic alias {alias} out of range"));
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        if publish.topic.is_empty() {
            publish.topic = conn
                .aliases_in
                .get(&alias)
                .cloned()
                .ok_or_else(|| format!("unknown topic alias {alias} on this connection"))?;
        } else {
            conn.aliases_in.insert(alias, publish.topic.clone());
        }
        Ok(())
    }

    /// Hands a message from the client to the broker's application and routes it.
    fn deliver(&mut self, publish: &Publish) {
        self.app.push(AppMsg {
            topic: publish.topic.clone(),
            payload: publish.payload.clone(),
            qos: publish.qos,
        });
        if publish.retain {
            // [MQTT-3.3.1-5] the server keeps the last retained message of a topic.
            let msg = OutMsg {
                topic: publish.topic.clone(),
                payload: publish.payload.clone(),
                qos: publish.qos,
            };
            self.retained.insert(publish.topic.clone(), msg);
        }
        let mut targets = Vec::new();
        for (id, session) in &self.sessions {
            if let Some(granted) = granted_qos(session, &publish.topic) {
                targets.push((id.clone(), publish.qos.min(granted)));
            }
        }
        for (id, qos) in targets {
            let msg = OutMsg {
                topic: publish.topic.clone(),
                payload: publish.payload.clone(),
                qos,
            };
            self.routed.push(msg.clone());
            if let Some(session) = self.sessions.get_mut(&id) {
                session.queue.push_back(msg);
            }
        }
        self.pump();
    }

    /// Moves queued messages for the connected client into its in-flight window.
    fn pump(&mut self) {
        let Some(conn) = self.conn.as_ref() else {
            return;
        };
        let Some(id) = conn.client_id.clone() else {
            return;
        };
        let window = usize::from(self.cfg.out_window.min(conn.client_receive_maximum));
        loop {
            let Some(session) = self.sessions.get_mut(&id) else {
                return;
            };
            let Some(front) = session.queue.front() else {
                return;
            };
            if front.qos != QoS::AtMostOnce && session.inflight.len() >= window {
                return;
            }
            let Some(msg) = session.queue.pop_front() else {
                return;
            };
            if msg.qos == QoS::AtMostOnce {
                self.send_publish(&msg, None, false);
                continue;
            }
            let mut next = session.last_id;
            let packet_id = loop {
                next = next.checked_add(1).unwrap_or(1);
                let candidate = PacketId::new(next).expect("never 0");
                if !session.inflight.iter().any(|f| f.id == candidate) {
                    break candidate;
                }
            };
            session.last_id = next;
            let state = if msg.qos == QoS::AtLeastOnce {
                OutState::Ack
            } else {
                OutState::Rec
            };
            session.inflight.push(OutFlight {
                id: packet_id,
                msg: msg.clone(),
                state,
            });
            self.send_publish(&msg, Some(packet_id), false);
        }
    }

    fn send_publish(&mut self, msg: &OutMsg, id: Option<PacketId>, dup: bool) {
        let mut publish = Publish::new(msg.topic.clone(), msg.payload.clone());
        if let Some(id) = id {
            publish = publish.with_qos(msg.qos, id);
        }
        publish.dup = dup;
        if let Some(conn) = self.conn.as_mut()
            && self.cfg.version.is_v5()
            && self.cfg.aliases_out
            && conn.client_alias_maximum > 0
        {
            if let Some(&alias) = conn.aliases_out.get(&msg.topic) {
                publish.topic = ByteString::new();
                publish.properties.topic_alias = Some(alias);
            } else if conn.aliases_out.len() < usize::from(conn.client_alias_maximum.min(3)) {
                let alias = conn.aliases_out.len() as u16 + 1;
                conn.aliases_out.insert(msg.topic.clone(), alias);
                publish.properties.topic_alias = Some(alias);
            }
        }
        self.encode(&publish);
    }

    fn encode<P: Encode + Clone + Into<Packet>>(&mut self, packet: &P) -> Mark {
        if let Some(notes) = self.notes.as_mut() {
            notes.push(format!("broker -> {}", summary(&packet.clone().into())));
        }
        // The model only builds valid packets.
        packet
            .encode(self.cfg.version, &mut self.out)
            .expect("the model broker builds valid packets");
        match &self.conn {
            Some(conn) => Mark {
                link: conn.link,
                end: conn.written + self.out.len() as u64,
            },
            None => Mark {
                link: 0,
                end: u64::MAX,
            },
        }
    }

    fn session_mut(&mut self) -> &mut BrokerSession {
        let id = self
            .conn
            .as_ref()
            .and_then(|c| c.client_id.clone())
            .unwrap_or_default();
        self.sessions.entry(id).or_default()
    }

    fn discard_session(&mut self, id: &str) {
        if let Some(session) = self.sessions.remove(id) {
            self.discards += 1;
            let lost = session
                .queue
                .into_iter()
                .chain(session.inflight.into_iter().map(|f| f.msg))
                .filter(|m| m.qos != QoS::AtMostOnce)
                .map(|m| m.payload);
            self.discarded.extend(lost);
        }
    }

    fn end_connection(&mut self) {
        self.out.clear();
        let Some(conn) = self.conn.take() else {
            return;
        };
        if conn.ephemeral
            && let Some(id) = conn.client_id
        {
            self.discard_session(&id);
        }
    }

    fn violate(&mut self, why: String) {
        if self.violation.is_none() {
            self.violation = Some(why);
        }
    }
}

/// The highest QoS granted by a subscription of `session` matching `topic`.
fn granted_qos(session: &BrokerSession, topic: &str) -> Option<QoS> {
    session
        .subscriptions
        .iter()
        .filter(|(filter, _)| matches(filter, topic))
        .map(|(_, qos)| *qos)
        .max()
}

/// One line about a packet, for traces.
pub(crate) fn summary(packet: &Packet) -> String {
    match packet {
        Packet::Publish(p) => format!(
            "PUBLISH {:?} id={:?} dup={} topic={:?} alias={:?} payload={:?}",
            p.qos,
            p.packet_id.map(PacketId::get),
            p.dup,
            p.topic,
            p.properties.topic_alias,
            p.payload
        ),
        Packet::PubAck(a) => format!("PUBACK {} {:?}", a.packet_id, a.reason_code),
        Packet::PubRec(a) => format!("PUBREC {} {:?}", a.packet_id, a.reason_code),
        Packet::PubRel(a) => format!("PUBREL {} {:?}", a.packet_id, a.reason_code),
        Packet::PubComp(a) => format!("PUBCOMP {} {:?}", a.packet_id, a.reason_code),
        Packet::Subscribe(s) => format!("SUBSCRIBE {}", s.packet_id),
        Packet::SubAck(s) => format!("SUBACK {} {:?}", s.packet_id, s.reason_codes),
        Packet::Unsubscribe(u) => format!("UNSUBSCRIBE {}", u.packet_id),
        Packet::UnsubAck(u) => format!("UNSUBACK {}", u.packet_id),
        Packet::Connect(c) => format!("CONNECT clean={}", c.clean_start),
        Packet::ConnAck(c) => format!("CONNACK present={}", c.session_present),
        other => other.packet_type().to_string(),
    }
}
