//! The sink server: a minimal MQTT server whose own cost is as small as a server's can be, so
//! that a benchmark against it measures the client (`e2e_bench --broker sink`).
//!
//! What it does, and nothing more:
//!
//! - accepts TCP connections on 127.0.0.1 and sets TCP_NODELAY on each (so no segment waits
//!   for Nagle's algorithm on the server's side);
//! - answers CONNECT with a successful CONNACK (MQTT 3.1.1 or 5.0, whichever the client
//!   speaks; no authentication, no session state: `session_present` is always false),
//!   PINGREQ with PINGRESP, SUBSCRIBE with a SUBACK granting the requested QoS, UNSUBSCRIBE
//!   with an UNSUBACK, and closes the connection on DISCONNECT;
//! - acknowledges every QoS 1 PUBLISH with PUBACK and every QoS 2 PUBLISH with PUBREC, then
//!   PUBREL with PUBCOMP (a QoS 2 message is forwarded when its PUBLISH arrives; the sink
//!   keeps no per-message state for incoming QoS 2);
//! - forwards ("echoes") each PUBLISH to every connection subscribed to a matching filter
//!   (`+` and `#` honoured, `$share/` filters treated as ordinary ones), at the lower of the
//!   two QoS, with a packet identifier of the subscriber's own; it runs the subscriber's side
//!   of QoS 1 (PUBACK frees the slot) and QoS 2 (PUBREC answered with PUBREL, PUBCOMP frees
//!   the slot), with at most `inflight` (default 100, `--sink-inflight`) unacknowledged
//!   messages per subscriber and an unbounded queue behind them (a benchmark must not lose
//!   messages to a slow subscriber);
//! - everything one read produced (acknowledgements, CONNACK/SUBACK, echoes to the reading
//!   connection itself, queued messages its acknowledgements released) goes out in one
//!   write; echoes to other connections are handed to their tasks, which likewise write
//!   everything they have in one go;
//! - no retained messages, no wills, no keep-alive enforcement, no topic aliases, no
//!   persistence; a malformed packet closes the connection.
//!
//! It decodes and encodes with `sansmqtt-proto`, this workspace's codec (zero-copy, and per the
//! criterion benchmarks faster than rumqttc's own, see docs/decisions.md "Known limits"): the
//! same server code serves every client the benchmark compares, so its cost is the same for
//! each of them and the client's share of the run is what differs.
//!
//! It runs on one Tokio thread by default (a current-thread runtime), on more with
//! `--sink-threads N` (a multi-thread runtime with N workers); the benchmark's parent starts it
//! as a child process (`e2e_bench --serve sink`), reads the port it listens on from its first
//! line of output, samples its CPU like mosquitto's, and kills it at the end.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sansmqtt_proto::topic::matches;
use sansmqtt_proto::{
    BytesMut, ConnAck, DecodeError, Encode, Packet, PacketId, PingResp, ProtocolVersion, PubAck,
    PubComp, PubRec, PubRel, Publish, QoS, ReasonCode, SubAck, UnsubAck,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// The first line the sink prints: `SINK_LISTENING port=N`.
pub(crate) const LISTENING_TAG: &str = "SINK_LISTENING";

/// Largest packet the sink accepts (a benchmark's payload is far smaller).
const MAX_PACKET: u32 = 16 * 1024 * 1024;

/// Read buffer reserve per connection before each read.
const READ_RESERVE: usize = 64 * 1024;

/// How the sink runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SinkOptions {
    /// Tokio worker threads; 1 = a current-thread runtime.
    pub(crate) threads: usize,
    /// Unacknowledged messages per subscriber.
    pub(crate) inflight: usize,
}

/// Binds 127.0.0.1:`port` (0: any free port), prints the port, then serves until killed.
pub(crate) fn serve(port: u16, options: SinkOptions) -> Result<(), String> {
    let runtime = if options.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads)
            .enable_io()
            .build()
    }
    .map_err(|err| format!("sink runtime: {err}"))?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|err| format!("sink bind: {err}"))?;
        let port = listener
            .local_addr()
            .map_err(|err| format!("sink local_addr: {err}"))?
            .port();
        {
            use std::io::Write as _;
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{LISTENING_TAG} port={port}");
            let _ = stdout.flush();
        }
        let registry = Arc::new(Registry::default());
        let ids = AtomicU64::new(1);
        loop {
            let (stream, _) = listener
                .accept()
                .await
                .map_err(|err| format!("sink accept: {err}"))?;
            let id = ids.fetch_add(1, Ordering::Relaxed);
            let registry = registry.clone();
            tokio::spawn(async move {
                // A connection's end (a client closing, a malformed packet) ends its task only.
                let _ = Connection::new(id, options.inflight, registry)
                    .run(stream)
                    .await;
            });
        }
    })
}

/// One subscription of one connection.
struct Subscription {
    connection: u64,
    filter: String,
    qos: QoS,
    /// The subscriber's task, for echoes from other connections.
    tx: UnboundedSender<Publish>,
}

/// Every connection's subscriptions.
#[derive(Default)]
struct Registry {
    subscriptions: Mutex<Vec<Subscription>>,
    /// `subscriptions.len()`, read without the lock: `pub` runs have no subscriber at all.
    count: AtomicUsize,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscription>> {
        self.subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn subscribe(&self, subscription: Subscription) {
        let mut subscriptions = self.lock();
        // A second subscription to the same filter replaces the first (MQTT-3.8.4-3).
        subscriptions
            .retain(|s| s.connection != subscription.connection || s.filter != subscription.filter);
        subscriptions.push(subscription);
        self.count.store(subscriptions.len(), Ordering::Relaxed);
    }

    fn unsubscribe(&self, connection: u64, filter: Option<&str>) {
        let mut subscriptions = self.lock();
        subscriptions
            .retain(|s| s.connection != connection || filter.is_some_and(|f| f != s.filter));
        self.count.store(subscriptions.len(), Ordering::Relaxed);
    }

    /// Calls `deliver(is_own, qos, tx)` for every subscription matching `topic`.
    fn route(&self, topic: &str, mut deliver: impl FnMut(u64, QoS, &UnboundedSender<Publish>)) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        for s in self.lock().iter() {
            if matches(&s.filter, topic) {
                deliver(s.connection, s.qos, &s.tx);
            }
        }
    }
}

/// Where a message sent to this connection's client stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    /// QoS 1 sent, waiting for PUBACK; QoS 2 sent, waiting for PUBREC.
    Published,
    /// QoS 2: PUBREL sent, waiting for PUBCOMP.
    Released,
}

/// Messages on their way to this connection's client: the in-flight window and the queue.
struct Outbound {
    version: ProtocolVersion,
    window: usize,
    in_flight: usize,
    next_id: PacketId,
    slots: Vec<Slot>,
    queue: VecDeque<Publish>,
}

impl Outbound {
    fn new(window: usize) -> Self {
        Self {
            version: ProtocolVersion::V311,
            window: window.clamp(1, 65_535),
            in_flight: 0,
            next_id: PacketId::MIN,
            slots: vec![Slot::Free; 65_536],
            queue: VecDeque::new(),
        }
    }

    /// Sends `publish` (its `qos` already the delivery QoS) now, or queues it behind a full
    /// window.
    fn offer(&mut self, publish: Publish, out: &mut BytesMut) -> Result<(), String> {
        if publish.qos == QoS::AtMostOnce {
            return encode(&publish, self.version, out);
        }
        if self.in_flight >= self.window || !self.queue.is_empty() {
            self.queue.push_back(publish);
            return Ok(());
        }
        self.send(publish, out)
    }

    fn send(&mut self, mut publish: Publish, out: &mut BytesMut) -> Result<(), String> {
        while self.slots[usize::from(self.next_id.get())] != Slot::Free {
            self.next_id = self.next_id.next();
        }
        let id = self.next_id;
        self.next_id = id.next();
        self.slots[usize::from(id.get())] = Slot::Published;
        self.in_flight += 1;
        publish.packet_id = Some(id);
        publish.dup = false;
        publish.retain = false;
        encode(&publish, self.version, out)
    }

    /// A QoS 1 PUBACK or QoS 2 PUBCOMP freed `id`: send what waits.
    fn release(&mut self, id: PacketId, out: &mut BytesMut) -> Result<(), String> {
        let slot = &mut self.slots[usize::from(id.get())];
        if *slot == Slot::Free {
            return Ok(());
        }
        *slot = Slot::Free;
        self.in_flight -= 1;
        while self.in_flight < self.window {
            let Some(next) = self.queue.pop_front() else {
                break;
            };
            self.send(next, out)?;
        }
        Ok(())
    }

    /// QoS 2: PUBREC for `id`, answered with PUBREL.
    fn received(&mut self, id: PacketId, out: &mut BytesMut) -> Result<(), String> {
        self.slots[usize::from(id.get())] = Slot::Released;
        encode(&PubRel::new(id), self.version, out)
    }
}

fn encode<P: Encode>(
    packet: &P,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), String> {
    packet
        .encode(version, out)
        .map(drop)
        .map_err(|err| format!("encode: {err}"))
}

/// One client connection.
struct Connection {
    id: u64,
    registry: Arc<Registry>,
    outbound: Outbound,
    /// Echoes from other connections' publishes.
    tx: UnboundedSender<Publish>,
    rx: UnboundedReceiver<Publish>,
    connected: bool,
    /// Echoes of one PUBLISH to this connection itself (kept: no allocation per message).
    own_echoes: Vec<Publish>,
}

impl Connection {
    fn new(id: u64, window: usize, registry: Arc<Registry>) -> Self {
        let (tx, rx) = unbounded_channel();
        Self {
            id,
            registry,
            outbound: Outbound::new(window),
            tx,
            rx,
            connected: false,
            own_echoes: Vec::new(),
        }
    }

    async fn run(mut self, mut stream: TcpStream) -> Result<(), String> {
        stream
            .set_nodelay(true)
            .map_err(|err| format!("TCP_NODELAY: {err}"))?;
        let result = self.serve(&mut stream).await;
        self.registry.unsubscribe(self.id, None);
        result
    }

    async fn serve(&mut self, stream: &mut TcpStream) -> Result<(), String> {
        let mut input = BytesMut::with_capacity(READ_RESERVE);
        let mut out = BytesMut::with_capacity(READ_RESERVE);
        loop {
            input.reserve(READ_RESERVE);
            tokio::select! {
                read = stream.read_buf(&mut input) => {
                    let n = read.map_err(|err| format!("read: {err}"))?;
                    if n == 0 {
                        return Ok(());
                    }
                    if !self.handle_input(&mut input, &mut out)? {
                        if !out.is_empty() {
                            let _ = stream.write_all(&out).await;
                        }
                        return Ok(());
                    }
                }
                Some(publish) = self.rx.recv() => {
                    self.outbound.offer(publish, &mut out)?;
                }
            }
            // Everything else already waiting from other connections rides along.
            while let Ok(publish) = self.rx.try_recv() {
                self.outbound.offer(publish, &mut out)?;
            }
            if !out.is_empty() {
                stream
                    .write_all(&out)
                    .await
                    .map_err(|err| format!("write: {err}"))?;
                out.clear();
            }
        }
    }

    /// Handles every whole packet in `input`; `Ok(false)` on DISCONNECT.
    fn handle_input(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<bool, String> {
        if !self.connected {
            self.outbound.version = match peek_level(input) {
                None => return Ok(true),
                Some(5) => ProtocolVersion::V5,
                Some(_) => ProtocolVersion::V311,
            };
        }
        let version = self.outbound.version;
        while let Some(packet) = sansmqtt_proto::decode(input, version, MAX_PACKET)
            .map_err(|err: DecodeError| format!("decode: {err}"))?
        {
            if !self.handle(packet, out)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn handle(&mut self, packet: Packet, out: &mut BytesMut) -> Result<bool, String> {
        let version = self.outbound.version;
        match packet {
            Packet::Connect(_) => {
                self.connected = true;
                encode(&ConnAck::new(false), version, out)?;
            }
            Packet::Publish(publish) => self.publish(publish, out)?,
            Packet::PubRel(rel) => encode(&PubComp::new(rel.packet_id), version, out)?,
            Packet::PubAck(ack) => self.outbound.release(ack.packet_id, out)?,
            Packet::PubRec(rec) => self.outbound.received(rec.packet_id, out)?,
            Packet::PubComp(comp) => self.outbound.release(comp.packet_id, out)?,
            Packet::Subscribe(subscribe) => {
                let mut codes = Vec::with_capacity(subscribe.filters.len());
                for filter in subscribe.filters {
                    let qos = filter.options.qos;
                    self.registry.subscribe(Subscription {
                        connection: self.id,
                        filter: filter.filter.to_string(),
                        qos,
                        tx: self.tx.clone(),
                    });
                    codes.push(match qos {
                        QoS::AtMostOnce => ReasonCode::Success,
                        QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                        QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
                    });
                }
                let ack = SubAck {
                    packet_id: subscribe.packet_id,
                    reason_codes: codes,
                    properties: Default::default(),
                };
                encode(&ack, version, out)?;
            }
            Packet::Unsubscribe(unsubscribe) => {
                for filter in &unsubscribe.filters {
                    self.registry.unsubscribe(self.id, Some(filter));
                }
                let codes = if version == ProtocolVersion::V5 {
                    vec![ReasonCode::Success; unsubscribe.filters.len()]
                } else {
                    Vec::new()
                };
                let ack = UnsubAck {
                    packet_id: unsubscribe.packet_id,
                    reason_codes: codes,
                    properties: Default::default(),
                };
                encode(&ack, version, out)?;
            }
            Packet::PingReq(_) => encode(&PingResp, version, out)?,
            Packet::Disconnect(_) => return Ok(false),
            other => {
                return Err(format!(
                    "unexpected {:?} from a client",
                    other.packet_type()
                ));
            }
        }
        Ok(true)
    }

    /// Acknowledges a PUBLISH and echoes it to its subscribers.
    fn publish(&mut self, publish: Publish, out: &mut BytesMut) -> Result<(), String> {
        let version = self.outbound.version;
        match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => encode(&PubAck::new(id), version, out)?,
            (QoS::ExactlyOnce, Some(id)) => encode(&PubRec::new(id), version, out)?,
            _ => {}
        }
        let own = self.id;
        let mut mine = std::mem::take(&mut self.own_echoes);
        self.registry
            .route(&publish.topic, |connection, granted, tx| {
                let mut echo = publish.clone();
                echo.qos = echo.qos.min(granted);
                if connection == own {
                    mine.push(echo);
                } else {
                    // A closed subscriber is removed when its task ends.
                    let _ = tx.send(echo);
                }
            });
        let mut result = Ok(());
        for echo in mine.drain(..) {
            if result.is_ok() {
                result = self.outbound.offer(echo, out);
            }
        }
        self.own_echoes = mine;
        result
    }
}

/// The protocol level of the CONNECT at the front of `input`, once its first bytes are there:
/// fixed header, then the protocol name "MQTT" (2 + 4 bytes), then the level.
fn peek_level(input: &[u8]) -> Option<u8> {
    let mut at = 1;
    loop {
        let byte = *input.get(at)?;
        at += 1;
        if byte & 0x80 == 0 || at > 5 {
            break;
        }
    }
    input.get(at + 6).copied()
}
