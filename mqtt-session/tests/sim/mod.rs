//! Deterministic simulation of `sansmqtt-session` against a model broker over a faulty network,
//! all on one virtual clock and driven by one seed.
//!
//! - [`rng`]: SplitMix64, so a seed replays a run exactly.
//! - [`network`]: byte streams with seeded delays, random chunking and cuts at any byte.
//! - [`broker`]: a model broker on sansmqtt-proto that keeps persistent sessions, runs QoS 1/2
//!   both ways, originates its own messages and checks the rules a client must follow.
//! - [`Sim`]: the driver. `step` advances the clock to the earliest of the session's
//!   `poll_timeout`, the network's next delivery, the broker's keep-alive deadline and the next
//!   scheduled command or fault; `drive` steps until every message is settled, within a bound.
//!
//! During the run the broker checks the client's protocol (packet identifiers, PUBREL,
//! receive maximum, keep alive) and the driver checks the session's bounds after every input.
//! After the run the delivery guarantees are checked: QoS 1 at least once, QoS 2 exactly
//! once, in both directions, and one `Published` per publish. In session-loss seeds a message
//! in flight when a session is lost is exempt from exactly-once (and, towards the client,
//! from at-least-once when the broker discarded it); every other message is held to both.

pub(crate) mod broker;
pub(crate) mod network;
pub(crate) mod rng;
pub(crate) mod store;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sansmqtt_proto::{
    ByteString, Disconnect, ProtocolVersion, Publish, QoS, ReasonCode, SubscribeFilter,
};
use sansmqtt_session::{
    AckMode, AckToken, ConnectOptions, ConnectionError, ConnectionState, Event, PublishError,
    Session, SessionConfig, SessionError, SessionLossPolicy, Token,
};

use broker::{Broker, BrokerConfig, OutMsg};
use network::{Delivery, Dir, NetConfig, Network};
use rng::Rng;
use sansmqtt_session::SessionStore as _;
use sansmqtt_session::store::IncomingState;
use store::{SimStore, StoreFaults};

const CLIENT_ID: &str = "sim-client";
/// The client subscribes to what it publishes (`c2b`) and to what the broker originates (`b2c`).
const MAIN_FILTERS: [&str; 2] = ["sim/c2b/#", "sim/b2c/#"];
/// Subscribed and unsubscribed now and then; nothing is published there.
const EXTRA_FILTER: &str = "sim/extra/#";
/// Largest packet the session accepts; the broker's packets are far smaller.
const MAX_PACKET: u32 = 2048;
/// Every processed input counts as a step; a run needs a few thousand.
const MAX_STEPS: u64 = 400_000;
/// Virtual time after which a run that has not settled counts as hung.
const MAX_VIRTUAL_TIME: Duration = Duration::from_secs(3_600);

/// Everything about one run, drawn from its seed.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    pub(crate) seed: u64,
    pub(crate) version: ProtocolVersion,
    /// Some reconnects use clean start, so the broker's session is lost now and then.
    pub(crate) session_loss: bool,
    pub(crate) client_messages: usize,
    pub(crate) broker_messages: usize,
    pub(crate) commands: usize,
    pub(crate) faults: usize,
    /// Commands and faults happen within `[0, active)`; afterwards the network is reliable.
    pub(crate) active: Duration,
    pub(crate) keep_alive: Duration,
    pub(crate) net: NetConfig,
    pub(crate) broker: BrokerConfig,
    pub(crate) config: SessionConfig,
    /// Injected store failures (one seed in four; none otherwise).
    pub(crate) store_faults: StoreFaults,
    /// Crashes of the client process, each recovered from the store with a torn tail.
    pub(crate) crashes: usize,
}

impl Scenario {
    /// Even seeds speak MQTT 3.1.1, odd seeds MQTT 5.0; one seed pair in four loses sessions.
    pub(crate) fn from_seed(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let version = if seed.is_multiple_of(2) {
            ProtocolVersion::V311
        } else {
            ProtocolVersion::V5
        };
        let session_loss = (seed / 2) % 4 == 3;
        let slow = rng.percent(8);
        let net = if slow {
            let min = rng.range(100, 600);
            NetConfig {
                min_delay: Duration::from_millis(min),
                max_delay: Duration::from_millis(min + rng.range(0, 1200)),
                max_chunk: rng.range_usize(1, 200),
            }
        } else {
            let min = rng.range(0, 20);
            NetConfig {
                min_delay: Duration::from_millis(min),
                max_delay: Duration::from_millis(min + rng.range(0, 150)),
                max_chunk: match rng.below(10) {
                    0 => 1,
                    1..=3 => rng.range_usize(2, 16),
                    4..=7 => rng.range_usize(16, 256),
                    _ => 4096,
                },
            }
        };
        let keep_alive = match rng.below(10) {
            0 => Duration::ZERO,
            1..=3 => Duration::from_secs(1),
            _ => Duration::from_secs(rng.range(2, 10)),
        };
        let v5 = version.is_v5();
        let mut config = SessionConfig::new(CLIENT_ID, version);
        config.max_inflight = rng.range(1, 20) as u16;
        config.max_queued = rng.range_usize(1, 64);
        config.max_packet_size = MAX_PACKET;
        if v5 && rng.percent(70) {
            config.receive_maximum = rng.range(1, 20) as u16;
        }
        config.topic_alias_maximum = if rng.percent(30) { 0 } else { 16 };
        config.outgoing_topic_aliases = rng.percent(50);
        config.ack_mode = if rng.percent(50) {
            AckMode::Manual
        } else {
            AckMode::Auto
        };
        config.session_loss_policy = if session_loss && rng.percent(50) {
            SessionLossPolicy::Fail
        } else {
            SessionLossPolicy::Resend
        };
        config.resubscribe = true;
        config.connect_timeout = Duration::from_secs(10);
        // Long enough for the slowest round trip: a keep-alive timeout is a failure here.
        config.ping_timeout =
            (net.max_delay * 2 + Duration::from_secs(1)).max(rng.millis(2_000, 10_000));
        config.ping_delay = rng.millis(0, 1_000);
        let broker = BrokerConfig {
            version,
            receive_maximum: (v5 && rng.percent(70)).then(|| rng.range(1, 20) as u16),
            topic_alias_maximum: if rng.percent(50) {
                rng.range(1, 4) as u16
            } else {
                0
            },
            aliases_out: rng.percent(50),
            server_keep_alive: (v5 && rng.percent(20)).then(|| rng.range(1, 5) as u16),
            out_window: rng.range(1, 20) as u16,
            keep_alive_slack: net.max_delay - net.min_delay + Duration::from_millis(50),
            round_trip: net.max_delay * 2,
        };
        // Drawn last, so the rest of each seed's scenario is what it was before stores could fail.
        let faulty_store = rng.percent(25);
        let store_faults = if faulty_store {
            StoreFaults {
                mutation_permille: rng.range(0, 20),
                sync_permille: rng.range(0, 60),
            }
        } else {
            StoreFaults::default()
        };
        // A crashed process forgets its granted subscriptions, which a session loss would
        // need to renew: crashes happen in seeds without session loss.
        let crashes = if faulty_store && !session_loss {
            rng.range_usize(1, 4)
        } else {
            0
        };
        if faulty_store {
            config.refill_batch = rng.range(1, 6) as u16;
        }
        Self {
            store_faults,
            crashes,
            seed,
            version,
            session_loss,
            client_messages: rng.range_usize(5, 150),
            broker_messages: rng.range_usize(0, 60),
            commands: rng.range_usize(0, 8),
            faults: if rng.percent(10) {
                0
            } else {
                rng.range_usize(1, 16)
            },
            active: Duration::from_millis(rng.range(2_000, 30_000)),
            keep_alive,
            net,
            broker,
            config,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Cut now; a random prefix of what is travelling still arrives.
    Cut,
    /// Cut once this many more bytes arrive in one direction.
    CutAfter(Dir, u64),
    /// The broker restarts and stays down for a while.
    BrokerRestart(Duration),
    /// The client disconnects on its own.
    ClientDisconnect,
    /// Cut, and reconnect with clean start (session loss).
    CleanReconnect,
    /// The client process crashes and restarts on what its store recovers.
    ClientCrash,
}

#[derive(Debug, Clone, Copy)]
enum Command {
    Ping,
    Subscribe,
    Unsubscribe,
}

#[derive(Debug)]
enum Action {
    Publish(usize),
    Originate(usize),
    Command(Command),
    Fault(Fault),
    Reconnect,
    /// The client learns that `link` is gone.
    TransportClosed(u64),
    /// The application acknowledges, in the process that received the message.
    Ack(AckToken, u32),
    /// The application takes the oldest message it has not taken yet.
    Take,
}

/// One message the client publishes.
#[derive(Debug)]
struct ClientPub {
    topic: ByteString,
    retain: bool,
    payload: Bytes,
    qos: QoS,
    token: Option<Token>,
    results: Vec<Result<ReasonCode, PublishError>>,
    /// Sessions the broker discarded while it was unfinished.
    losses: u32,
    /// Session losses the client saw (CONNACK without our session) while it was unfinished.
    client_losses: u32,
    /// Died with a crashed process before its record was durable: never sent.
    died: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    Publish(usize),
    MainSubscribe,
    Subscribe,
    Unsubscribe,
    Ping,
}

#[derive(Debug, Default)]
struct Received {
    count: usize,
    topic: ByteString,
    qos: Option<QoS>,
}

/// What a run did, for the curious.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) steps: u64,
    pub(crate) virtual_time: Duration,
    pub(crate) connections: u64,
    pub(crate) cuts: u64,
    pub(crate) session_losses: u32,
    pub(crate) client_messages: usize,
    pub(crate) broker_messages: usize,
    pub(crate) received: usize,
    pub(crate) crashes: u32,
    pub(crate) store_failures: u64,
    pub(crate) torn_records: u64,
}

pub(crate) struct Sim {
    sc: Scenario,
    rng: Rng,
    start: Instant,
    now: Instant,
    session: Session<SimStore>,
    /// Incremented by every crash of the client process.
    process: u32,
    net: Network,
    broker: Broker,
    schedule: BTreeMap<(Instant, u64), Action>,
    next_seq: u64,
    /// The link the client is attached to (possibly already cut, unknown to the client).
    client_link: Option<u64>,
    reconnect_scheduled: bool,
    broker_down_until: Option<Instant>,
    next_clean: bool,
    early_cuts_left: u32,
    ever_connected: bool,
    seen_discards: u32,
    main_token: Option<Token>,
    main_granted: bool,
    pubs: Vec<ClientPub>,
    pending_pubs: VecDeque<usize>,
    broker_msgs: Vec<(OutMsg, bool)>,
    tokens: HashMap<Token, TokenKind>,
    completions: HashMap<Token, u32>,
    received: HashMap<Bytes, Received>,
    /// Manual mode: messages handed out by the session and not yet taken by the application,
    /// which takes them late (like a slow consumer of the async client's inbox) and
    /// acknowledges each after its own random delay, so acknowledgements come in random order.
    app_inbox: VecDeque<(Publish, Option<AckToken>)>,
    /// Messages the application took whose acknowledgement is still to come.
    app_unacked: usize,
    /// Messages to the client that a session loss may deliver twice or not at all.
    exposed: HashMap<Bytes, usize>,
    failure: Option<String>,
    trace: Option<Vec<String>>,
    stats: Stats,
}

impl Sim {
    pub(crate) fn new(sc: Scenario, trace: bool) -> Self {
        let mut rng = Rng::new(sc.seed ^ 0x5151_5151);
        // The one clock reading of the simulation: only offsets from it matter, so runs stay
        // deterministic.
        #[allow(clippy::disallowed_methods)]
        let start = Instant::now();
        let net = Network::new(sc.net.clone(), rng.fork());
        let mut broker = Broker::new(sc.broker.clone());
        broker.client_may_repeat_pubrel = sc.store_faults.mutation_permille > 0
            || sc.store_faults.sync_permille > 0
            || sc.crashes > 0;
        if trace {
            broker.notes = Some(Vec::new());
        }
        let store = SimStore::new(sc.store_faults, Rng::new(sc.seed ^ 0x0057_04E5));
        let session = Session::with_store(sc.config.clone(), store);
        let mut sim = Self {
            rng,
            start,
            now: start,
            session,
            process: 0,
            net,
            broker,
            schedule: BTreeMap::new(),
            next_seq: 0,
            client_link: None,
            reconnect_scheduled: false,
            broker_down_until: None,
            next_clean: false,
            early_cuts_left: 3,
            ever_connected: false,
            seen_discards: 0,
            main_token: None,
            main_granted: false,
            pubs: Vec::new(),
            pending_pubs: VecDeque::new(),
            broker_msgs: Vec::new(),
            tokens: HashMap::new(),
            completions: HashMap::new(),
            received: HashMap::new(),
            app_inbox: VecDeque::new(),
            app_unacked: 0,
            exposed: HashMap::new(),
            failure: None,
            trace: trace.then(Vec::new),
            stats: Stats::default(),
            sc,
        };
        sim.plan();
        sim
    }

    /// Draws every command and fault of the run and puts it on the schedule.
    fn plan(&mut self) {
        let active = self.sc.active.as_millis() as u64;
        for i in 0..self.sc.client_messages {
            let qos = match self.rng.below(10) {
                0 => QoS::AtMostOnce,
                1..=4 => QoS::AtLeastOnce,
                _ => QoS::ExactlyOnce,
            };
            self.pubs.push(ClientPub {
                topic: format!("sim/c2b/{}", self.rng.below(4)).into(),
                retain: self.rng.percent(10),
                payload: Bytes::from(format!("c{i}")),
                qos,
                token: None,
                results: Vec::new(),
                losses: 0,
                client_losses: 0,
                died: false,
            });
            let at = self.rng.millis(0, active);
            self.at(at, Action::Publish(i));
        }
        for i in 0..self.sc.broker_messages {
            let qos = if self.rng.percent(50) {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            };
            let msg = OutMsg {
                topic: format!("sim/b2c/{}", self.rng.below(3)).into(),
                payload: Bytes::from(format!("b{i}")),
                qos,
            };
            self.broker_msgs.push((msg, false));
            let at = self.rng.millis(0, active);
            self.at(at, Action::Originate(i));
        }
        for _ in 0..self.sc.commands {
            let command = match self.rng.below(3) {
                0 => Command::Ping,
                1 => Command::Subscribe,
                _ => Command::Unsubscribe,
            };
            let at = self.rng.millis(0, active);
            self.at(at, Action::Command(command));
        }
        for _ in 0..self.sc.faults {
            let fault = match self.rng.below(20) {
                0..=6 => Fault::Cut,
                7..=11 => {
                    let dir = if self.rng.percent(50) {
                        Dir::ToBroker
                    } else {
                        Dir::ToClient
                    };
                    Fault::CutAfter(dir, self.rng.range(0, 400))
                }
                12..=14 => Fault::BrokerRestart(self.rng.millis(0, 1500)),
                15..=17 => Fault::ClientDisconnect,
                _ if self.sc.session_loss => Fault::CleanReconnect,
                _ => Fault::Cut,
            };
            let at = self.rng.millis(0, active);
            self.at(at, Action::Fault(fault));
        }
        self.next_clean = self.sc.session_loss && self.rng.percent(50);
        self.at(Duration::ZERO, Action::Reconnect);
        self.reconnect_scheduled = true;
        for _ in 0..self.sc.crashes {
            let at = self.rng.millis(0, active);
            self.at(at, Action::Fault(Fault::ClientCrash));
        }
    }

    fn at(&mut self, after: Duration, action: Action) {
        self.next_seq += 1;
        self.schedule
            .insert((self.now + after, self.next_seq), action);
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = self.trace.as_mut() {
            let t = self.now - self.start;
            for note in self
                .broker
                .notes
                .iter_mut()
                .flat_map(|notes| notes.drain(..))
            {
                trace.push(format!("{:>10.3} {note}", t.as_secs_f64()));
            }
            trace.push(format!("{:>10.3} {}", t.as_secs_f64(), line()));
        }
    }

    fn fail(&mut self, why: String) {
        if self.failure.is_none() {
            self.failure = Some(why);
        }
    }

    /// The trace of a replayed run.
    pub(crate) fn trace(&self) -> &[String] {
        self.trace.as_deref().unwrap_or_default()
    }

    // ---- driving ----------------------------------------------------------------------------

    /// Runs to completion, then checks the delivery guarantees.
    pub(crate) fn drive(&mut self) -> Result<Stats, String> {
        while !self.done() {
            if self.stats.steps >= MAX_STEPS || self.now - self.start > MAX_VIRTUAL_TIME {
                return Err(format!(
                    "no termination after {} steps, {:?} virtual: {}",
                    self.stats.steps,
                    self.now - self.start,
                    self.progress()
                ));
            }
            self.step()?;
        }
        self.final_checks()?;
        self.stats.virtual_time = self.now - self.start;
        self.stats.client_messages = self.pubs.len();
        self.stats.broker_messages = self.broker_msgs.len();
        self.stats.received = self.received.values().map(|r| r.count).sum();
        Ok(self.stats)
    }

    /// Advances the clock to the earliest deadline and processes everything due then.
    pub(crate) fn step(&mut self) -> Result<(), String> {
        let next = [
            self.session.poll_timeout(),
            self.net.next_time(self.now),
            self.schedule.keys().next().map(|(at, _)| *at),
            self.broker.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            return Err(format!("idle before done: {}", self.progress()));
        };
        self.now = self.now.max(next);
        loop {
            self.stats.steps += 1;
            if self.stats.steps >= MAX_STEPS {
                return Err(format!(
                    "no termination after {} steps, {:?} virtual: {}",
                    self.stats.steps,
                    self.now - self.start,
                    self.progress()
                ));
            }
            if let Some(delivery) = self.net.pop(self.now) {
                self.on_delivery(delivery);
            } else if let Some(entry) = self
                .schedule
                .first_entry()
                .filter(|entry| entry.key().0 <= self.now)
            {
                let action = entry.remove();
                self.on_action(action);
            } else if self.session.poll_timeout().is_some_and(|at| at <= self.now) {
                self.log(|| "client timeout".into());
                self.session.handle_timeout(self.now);
                self.after_client_input();
            } else if self.broker.poll_timeout().is_some_and(|at| at <= self.now) {
                self.broker.handle_timeout(self.now);
                self.pump_broker();
            } else {
                break;
            }
            self.try_publish_pending();
            self.check_invariants()?;
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.schedule.is_empty()
            && self.pending_pubs.is_empty()
            && self.pubs.iter().all(|p| p.died || !p.results.is_empty())
            && self.tokens.iter().all(|(token, kind)| {
                matches!(kind, TokenKind::Publish(_) | TokenKind::Ping)
                    || self.completions.contains_key(token)
            })
            && self.session.state() == ConnectionState::Connected
            && self.session.inflight_len() == 0
            && self.session.queued_len() == 0
            && self.broker.drained(CLIENT_ID)
    }

    fn progress(&self) -> String {
        let unfinished = self
            .pubs
            .iter()
            .filter(|p| !p.died && p.results.is_empty())
            .count();
        format!(
            "state {:?}, {} unfinished publishes ({} not yet issued), inflight {}, queued {}, \
             broker drained {}, {} scheduled, {} bytes on the wire, main granted {}",
            self.session.state(),
            unfinished,
            self.pending_pubs.len(),
            self.session.inflight_len(),
            self.session.queued_len(),
            self.broker.drained(CLIENT_ID),
            self.schedule.len(),
            self.net.pending_bytes(),
            self.main_granted,
        )
    }

    fn on_delivery(&mut self, delivery: Delivery) {
        match delivery {
            Delivery::Bytes {
                link,
                dir: Dir::ToBroker,
                bytes,
                ..
            } => {
                self.log(|| format!("link {link}: {} bytes -> broker", bytes.len()));
                self.broker.handle_read(self.now, link, &bytes);
                self.pump_broker();
            }
            Delivery::Bytes {
                link,
                dir: Dir::ToClient,
                bytes,
                delivered,
            } => {
                self.log(|| format!("link {link}: {} bytes -> client", bytes.len()));
                self.broker.client_received(link, delivered);
                if self.client_link == Some(link) {
                    self.session.handle_read(self.now, &bytes);
                    self.after_client_input();
                }
            }
            Delivery::Cut { link } => {
                self.log(|| format!("link {link}: cut at an armed byte offset"));
                self.link_gone(link);
            }
            Delivery::Closed { link } => {
                self.log(|| format!("link {link}: closed by the client, broker sees it"));
                self.broker.closed(link);
            }
        }
    }

    /// The link was cut: the broker drops the connection now, the client learns a little later.
    fn link_gone(&mut self, link: u64) {
        self.stats.cuts += 1;
        self.broker.closed(link);
        if self.client_link == Some(link) {
            let delay = self.rng.millis(0, 300);
            self.at(delay, Action::TransportClosed(link));
        }
    }

    fn on_action(&mut self, action: Action) {
        self.log(|| format!("{action:?}"));
        match action {
            Action::Publish(i) => self.pending_pubs.push_back(i),
            Action::Originate(i) => {
                let msg = self.broker_msgs[i].0.clone();
                if self.broker.originate(CLIENT_ID, msg) {
                    self.broker_msgs[i].1 = true;
                    self.pump_broker();
                } else {
                    // Not subscribed (yet): the broker's application tries again later.
                    let delay = self.rng.millis(50, 500);
                    self.at(delay, Action::Originate(i));
                }
            }
            Action::Command(command) => self.command(command),
            Action::Fault(fault) => self.fault(fault),
            Action::Reconnect => self.reconnect(),
            Action::TransportClosed(link) => {
                if self.client_link == Some(link) {
                    self.client_link = None;
                    self.session.handle_transport_closed(self.now);
                    self.schedule_reconnect();
                    self.after_client_input();
                }
            }
            Action::Take => {
                if let Some((publish, ack)) = self.app_inbox.pop_front() {
                    self.app_receives(&publish);
                    if let Some(token) = ack {
                        self.app_unacked += 1;
                        let delay = self.rng.millis(0, 300);
                        self.at(delay, Action::Ack(token, self.process));
                    }
                }
            }
            // Owed by a process that crashed: gone with it.
            Action::Ack(_, process) if process != self.process => {}
            Action::Ack(token, _) => {
                self.app_unacked -= 1;
                let result = self.session.ack(self.now, token);
                match result {
                    Ok(()) => {}
                    // The store could not record it: the connection closes, and the session
                    // acknowledges when the broker sends the message again.
                    Err(SessionError::Store(_)) if self.faulty_store() => {}
                    // The server's session was lost with the message: nothing to acknowledge.
                    Err(SessionError::UnknownAckToken) if self.sc.session_loss => {}
                    Err(err) => self.fail(format!("ack {token:?} refused: {err}")),
                }
                self.after_client_input();
            }
        }
    }

    fn command(&mut self, command: Command) {
        let now = self.now;
        let (result, kind) = match command {
            Command::Ping => (self.session.ping(now), TokenKind::Ping),
            Command::Subscribe => (
                self.session.subscribe(
                    now,
                    vec![SubscribeFilter::new(EXTRA_FILTER, QoS::AtLeastOnce)],
                    Default::default(),
                ),
                TokenKind::Subscribe,
            ),
            Command::Unsubscribe => (
                self.session
                    .unsubscribe(now, vec![ByteString::from_static(EXTRA_FILTER)]),
                TokenKind::Unsubscribe,
            ),
        };
        match result {
            Ok(token) => {
                self.tokens.insert(token, kind);
            }
            Err(SessionError::NotConnected) => {}
            Err(err) => self.fail(format!("{command:?} refused: {err}")),
        }
        self.after_client_input();
    }

    fn fault(&mut self, fault: Fault) {
        match fault {
            Fault::Cut => self.cut(true),
            Fault::CutAfter(dir, bytes) => self.net.arm_cut(dir, bytes),
            Fault::BrokerRestart(down) => {
                self.cut(false);
                self.broker.restart();
                self.broker_down_until = Some(self.now + down);
            }
            Fault::ClientDisconnect => {
                if self.session.is_connected() {
                    let result = self.session.disconnect(self.now, Disconnect::default());
                    if let Err(err) = result {
                        self.fail(format!("disconnect refused: {err}"));
                    }
                    self.after_client_input();
                }
            }
            Fault::CleanReconnect => {
                self.next_clean = true;
                self.cut(true);
            }
            Fault::ClientCrash => self.crash(),
        }
    }

    fn faulty_store(&self) -> bool {
        self.sc.store_faults.mutation_permille > 0
            || self.sc.store_faults.sync_permille > 0
            || self.sc.crashes > 0
    }

    /// The client process dies and a new one starts on what the store recovers: flows whose
    /// records were durable go on under their tokens, everything else of the old process is
    /// gone (queued publishes, pending commands, acknowledgements the application owed).
    fn crash(&mut self) {
        self.stats.crashes += 1;
        self.process += 1;
        if let Some(link) = self.client_link.take() {
            self.log(|| format!("link {link}: the client process dies"));
            self.net.client_close(link);
        }
        // Messages handed out but not yet taken, and acknowledgements owed, die too.
        self.app_inbox.clear();
        self.app_unacked = 0;
        let store = self.session.store_mut().crash_and_recover();
        let survivors: HashSet<Token> = store.tokens().into_iter().collect();
        self.log(|| format!("restart with {} flows recovered", survivors.len()));
        self.session = Session::with_store(self.sc.config.clone(), store);
        for p in &mut self.pubs {
            let Some(token) = p.token else { continue };
            if survivors.contains(&token) {
                // Completed, but its removal was not durable: it completes once more.
                p.results.clear();
                self.completions.remove(&token);
            } else {
                // The new process numbers its tokens afresh: the old one is forgotten.
                p.died |= p.results.is_empty();
                p.token = None;
            }
        }
        // Tokens of the old process: each must have completed as it should; the new process
        // numbers its tokens after the recovered ones, so the old ones are forgotten.
        let old: Vec<(Token, TokenKind)> = self
            .tokens
            .iter()
            .filter(|(token, _)| !survivors.contains(token))
            .map(|(token, kind)| (*token, *kind))
            .collect();
        for (token, kind) in old {
            let n = self.completions.remove(&token).unwrap_or(0);
            self.tokens.remove(&token);
            let died = matches!(kind, TokenKind::Publish(i) if self.pubs[i].died);
            if n > 1 || (n == 0 && !died && kind != TokenKind::Ping && !self.command_may_die(kind))
            {
                self.fail(format!(
                    "{kind:?} {token:?} completed {n} times before a crash"
                ));
            }
        }
        if !self.main_granted {
            self.main_token = None;
        } else {
            // The broker keeps the subscription; nothing answers to this token any more.
            self.main_token = Some(Token::from_raw(u64::MAX));
        }
        // A QoS 2 message may reach the new process once more only if the broker will send
        // its PUBLISH again (it has no PUBREC) and the recovered store does not know it as
        // received (no durable PUBREC state): the old process's application may have taken
        // it before that state was durable. Once the PUBREC state is durable, a re-sent
        // PUBLISH is a duplicate and must not be handed out again.
        for (id, payload) in self.broker.awaiting_pubrec(CLIENT_ID) {
            if self.session.store().incoming(id) != Some(IncomingState::AwaitingPubRel) {
                *self.exposed.entry(payload).or_default() += 1;
            }
        }
        self.schedule_reconnect();
    }

    /// Commands other than publishes die with the process that made them.
    fn command_may_die(&self, kind: TokenKind) -> bool {
        matches!(
            kind,
            TokenKind::Subscribe | TokenKind::Unsubscribe | TokenKind::MainSubscribe
        )
    }

    fn cut(&mut self, partial: bool) {
        let Some(link) = self.net.link() else {
            return;
        };
        for delivery in self.net.cut(partial) {
            self.on_delivery(delivery);
        }
        self.log(|| format!("link {link}: cut"));
        self.link_gone(link);
    }

    fn schedule_reconnect(&mut self) {
        if !self.reconnect_scheduled {
            self.reconnect_scheduled = true;
            let delay = self.rng.millis(0, 800);
            self.at(delay, Action::Reconnect);
        }
    }

    fn reconnect(&mut self) {
        self.reconnect_scheduled = false;
        if self.client_link.is_some() {
            return;
        }
        if self.net.link().is_some() {
            // The previous link is still draining the client's last bytes.
            self.reconnect_scheduled = true;
            self.at(Duration::from_millis(20), Action::Reconnect);
            return;
        }
        if let Some(until) = self.broker_down_until.filter(|until| *until > self.now) {
            // Connection refused: try again later.
            self.reconnect_scheduled = true;
            let delay = until - self.now + self.rng.millis(0, 300);
            self.at(delay, Action::Reconnect);
            return;
        }
        let link = self.net.open();
        self.stats.connections += 1;
        self.broker.open(self.now, link);
        self.client_link = Some(link);
        let mut options = ConnectOptions::new(self.sc.keep_alive);
        options.clean_start = std::mem::take(&mut self.next_clean);
        if self.sc.version.is_v5() {
            options.session_expiry_interval = Some(u32::MAX);
        }
        let clean = options.clean_start;
        self.log(|| format!("link {link}: connect, clean start {clean}"));
        if let Err(err) = self.session.connect(self.now, options) {
            self.fail(format!("connect refused: {err}"));
        }
        if self.early_cuts_left > 0 && self.rng.percent(10) {
            // Cut in the middle of the CONNECT / CONNACK exchange.
            self.early_cuts_left -= 1;
            let dir = if self.rng.percent(50) {
                Dir::ToBroker
            } else {
                Dir::ToClient
            };
            let bytes = self.rng.range(0, 80);
            self.net.arm_cut(dir, bytes);
        }
        self.after_client_input();
    }

    // ---- the client's run loop --------------------------------------------------------------

    /// After every input or command: drain events, then bytes, until both are empty.
    fn after_client_input(&mut self) {
        // pending_events is bounded by what one input can produce.
        let bound = usize::from(self.sc.config.max_inflight)
            + self.sc.config.max_queued
            + self.sc.net.max_chunk
            + 8;
        if self.session.pending_events() > bound {
            let n = self.session.pending_events();
            self.fail(format!(
                "{n} pending events after one input (bound {bound})"
            ));
        }
        loop {
            let mut progressed = false;
            while let Some(event) = self.session.poll_event() {
                progressed = true;
                self.on_event(event);
            }
            while let Some(bytes) = self.session.poll_transmit(self.now) {
                progressed = true;
                self.log(|| format!("client sends {} bytes", bytes.len()));
                if let Some(link) = self.client_link {
                    self.net.send(self.now, link, Dir::ToBroker, &bytes);
                }
            }
            // A failed store sync in `poll_transmit` reports through events.
            if !progressed && self.session.pending_events() == 0 {
                break;
            }
        }
        if self.session.state() == ConnectionState::Disconnected
            && let Some(link) = self.client_link.take()
        {
            // The session ended the connection itself: close the transport.
            self.log(|| format!("link {link}: client closes"));
            self.net.client_close(link);
            self.session.handle_transport_closed(self.now);
            self.schedule_reconnect();
        }
    }

    fn pump_broker(&mut self) {
        self.log(String::new);
        while let Some((link, bytes)) = self.broker.poll_transmit() {
            self.log(|| format!("broker sends {} bytes", bytes.len()));
            self.net.send(self.now, link, Dir::ToClient, &bytes);
        }
    }

    fn on_event(&mut self, event: Event) {
        self.log(|| format!("event {event:?}"));
        match event {
            Event::Connected {
                session_present, ..
            } => {
                // The session reports "not present" for a session the broker created after
                // discarding ours, when the CONNACK saying so was lost.
                let said = self.broker.connacks.last().copied();
                if said != Some(session_present) && !(said == Some(true) && self.sc.session_loss) {
                    self.fail(format!(
                        "Connected {{ session_present: {session_present} }} but the broker said {said:?}"
                    ));
                }
                if !session_present && self.ever_connected {
                    if !self.sc.session_loss {
                        self.fail("the broker lost the session without clean start".into());
                    }
                    self.stats.session_losses += 1;
                    for p in &mut self.pubs {
                        if p.token.is_some() && p.results.is_empty() {
                            p.client_losses += 1;
                        }
                    }
                    if said == Some(true) {
                        // The client restarts its flows while the broker kept them: what
                        // the broker has in flight may now arrive twice.
                        for payload in self.broker.inflight_payloads(CLIENT_ID) {
                            *self.exposed.entry(payload).or_default() += 1;
                        }
                        self.broker.forget_client_flows(CLIENT_ID);
                    }
                }
                self.ever_connected = true;
                if self.main_token.is_none() {
                    let filters = MAIN_FILTERS
                        .iter()
                        .map(|f| SubscribeFilter::new(*f, QoS::ExactlyOnce))
                        .collect();
                    match self
                        .session
                        .subscribe(self.now, filters, Default::default())
                    {
                        Ok(token) => {
                            self.main_token = Some(token);
                            self.tokens.insert(token, TokenKind::MainSubscribe);
                        }
                        // A store failure closed the connection right after CONNACK: the
                        // next connection subscribes.
                        Err(SessionError::NotConnected) if self.faulty_store() => {}
                        Err(err) => self.fail(format!("subscribe refused: {err}")),
                    }
                }
            }
            Event::Published { token, result, .. } => {
                self.complete(token);
                match self.tokens.get(&token) {
                    Some(TokenKind::Publish(i)) => self.pubs[*i].results.push(result),
                    other => self.fail(format!("Published for {token:?} ({other:?})")),
                }
            }
            Event::Message(message) => {
                if self.sc.config.ack_mode == AckMode::Manual {
                    // Counted when the application takes it, not when the session hands it out.
                    self.app_inbox.push_back((message.publish, message.ack));
                    let delay = self.rng.millis(0, 500);
                    self.at(delay, Action::Take);
                } else {
                    self.app_receives(&message.publish);
                }
            }
            Event::Subscribed {
                token,
                reason_codes,
                ..
            } => {
                self.complete(token);
                if Some(token) == self.main_token {
                    if reason_codes != [ReasonCode::GrantedQoS2, ReasonCode::GrantedQoS2] {
                        self.fail(format!("main subscription answered {reason_codes:?}"));
                    }
                    self.main_granted = true;
                }
            }
            Event::Resubscribed { reason_codes } => {
                if !self.sc.session_loss || reason_codes.iter().any(|c| !c.is_success()) {
                    self.fail(format!("unexpected Resubscribed {reason_codes:?}"));
                }
            }
            Event::Unsubscribed { token, .. } | Event::Pong { token } => self.complete(token),
            Event::Disconnected { reason } => match reason {
                ConnectionError::TransportClosed | ConnectionError::Local => {}
                ConnectionError::Store(_) if self.faulty_store() => {
                    self.stats.store_failures += 1;
                }
                other => self.fail(format!("connection ended: {other}")),
            },
            other => self.fail(format!("unexpected event {other:?}")),
        }
    }

    fn complete(&mut self, token: Token) {
        *self.completions.entry(token).or_default() += 1;
        if self.completions[&token] > 1 {
            self.fail(format!("{token:?} completed twice"));
        }
        if !self.tokens.contains_key(&token) {
            self.fail(format!("completion for unknown {token:?}"));
        }
    }

    /// Publishes what is due, once the main subscription stands, while the queue has room.
    fn try_publish_pending(&mut self) {
        if !self.main_granted {
            return;
        }
        while let Some(&i) = self.pending_pubs.front() {
            let p = &self.pubs[i];
            let mut publish = Publish::new(p.topic.clone(), p.payload.clone());
            publish.qos = p.qos;
            publish.retain = p.retain;
            match self.session.publish(self.now, publish) {
                Ok(token) => {
                    self.pending_pubs.pop_front();
                    self.pubs[i].token = Some(token);
                    self.tokens.insert(token, TokenKind::Publish(i));
                    self.log(|| format!("publish c{i} -> {token:?}"));
                }
                Err(SessionError::QueueFull) => break,
                Err(SessionError::Store(err)) if self.faulty_store() => {
                    // Not recorded, not sent: the caller learns it at once.
                    self.pending_pubs.pop_front();
                    self.pubs[i].results.push(Err(PublishError::Store(err)));
                    self.log(|| format!("publish c{i} refused by the store"));
                }
                Err(err) => {
                    self.fail(format!("publish refused: {err}"));
                    break;
                }
            }
        }
        self.after_client_input();
    }

    // ---- checks -------------------------------------------------------------------------------

    /// The application has a message: this is where delivery is counted.
    fn app_receives(&mut self, publish: &Publish) {
        let entry = self.received.entry(publish.payload.clone()).or_default();
        entry.count += 1;
        entry.topic = publish.topic.clone();
        let differs = entry.qos.is_some_and(|q| q != publish.qos);
        entry.qos = Some(publish.qos);
        if differs {
            let why = format!("{:?} arrived with differing QoS", publish.payload);
            self.fail(why);
        }
    }

    fn check_invariants(&mut self) -> Result<(), String> {
        if self.broker.discards > self.seen_discards {
            // The broker lost the session: what was in flight may be delivered once more.
            let n = self.broker.discards - self.seen_discards;
            self.seen_discards = self.broker.discards;
            for p in &mut self.pubs {
                if p.token.is_some() && p.results.is_empty() {
                    p.losses += n;
                }
            }
        }
        if let Some(why) = self.broker.violation.take() {
            return Err(format!("broker: {why}"));
        }
        if let Some(why) = self.failure.take() {
            return Err(why);
        }
        let store = self.session.store();
        self.stats.torn_records = store.torn_records;
        let cfg = &self.sc.config;
        let s = &self.session;
        if s.inflight_len() > usize::from(cfg.max_inflight) {
            return Err(format!("inflight {} > max_inflight", s.inflight_len()));
        }
        if let Some(max) = self
            .sc
            .broker
            .receive_maximum
            .filter(|_| self.sc.version.is_v5())
            && s.inflight_len() > usize::from(max)
        {
            return Err(format!(
                "inflight {} > receive maximum {max}",
                s.inflight_len()
            ));
        }
        if s.queued_len() > cfg.max_queued {
            return Err(format!("queued {} > max_queued", s.queued_len()));
        }
        let buffered = MAX_PACKET as usize + self.sc.net.max_chunk;
        if s.buffered_len() > buffered {
            return Err(format!("buffered {} > {buffered}", s.buffered_len()));
        }
        // Unacknowledged messages held by the application are bounded by flow control: the
        // broker's window towards us (and our MQTT 5 Receive Maximum).
        let held = self
            .app_inbox
            .iter()
            .filter(|(_, ack)| ack.is_some())
            .count()
            + self.app_unacked;
        let mut window = usize::from(self.sc.broker.out_window);
        if self.sc.version.is_v5() {
            window = window.min(usize::from(cfg.receive_maximum));
        }
        // Messages of earlier connections may still be held: the broker sends them again.
        let bound = window * (1 + self.stats.connections as usize);
        if held > bound {
            return Err(format!(
                "application holds {held} unacknowledged messages > {bound}"
            ));
        }
        if s.pending_events() > 0 {
            return Err(format!("{} events left undrained", s.pending_events()));
        }
        if s.packet_ids_in_use() > usize::from(cfg.max_inflight) + 2 + self.sc.commands {
            return Err(format!("{} packet ids in use", s.packet_ids_in_use()));
        }
        Ok(())
    }

    fn final_checks(&mut self) -> Result<(), String> {
        self.check_invariants()?;
        let mut out = String::new();
        let mut app: HashMap<&Bytes, usize> = HashMap::new();
        for msg in &self.broker.app {
            *app.entry(&msg.payload).or_default() += 1;
            let sent = self.pubs.iter().find(|p| p.payload == msg.payload);
            if !sent.is_some_and(|p| p.topic == msg.topic && p.qos == msg.qos) {
                let _ = writeln!(out, "broker received {msg:?}, not what the client sent");
            }
        }
        let fail_policy = self.sc.config.session_loss_policy == SessionLossPolicy::Fail;
        // Client -> broker.
        for p in &self.pubs {
            let name = String::from_utf8_lossy(&p.payload);
            let got = app.get(&p.payload).copied().unwrap_or(0);
            if p.died {
                // Never durable, so never handed out (QoS 0 may have been).
                if got > usize::from(p.qos == QoS::AtMostOnce) {
                    let _ = writeln!(
                        out,
                        "{name}: died unsent with a crash but delivered {got} times"
                    );
                }
                continue;
            }
            let [result] = p.results.as_slice() else {
                let _ = writeln!(out, "{name}: {} Published events", p.results.len());
                continue;
            };
            let lost_session = matches!(result, Err(PublishError::SessionLost));
            if matches!(result, Err(PublishError::Store(_))) {
                // The store could not make it durable: it must not have been sent.
                if p.qos != QoS::AtMostOnce && got > 0 {
                    let _ = writeln!(out, "{name}: failed in the store but delivered {got} times");
                }
                continue;
            }
            // A session loss while in flight may deliver it once more: the resend after a
            // loss is a new message to the broker.
            let most = 1 + p.losses.max(p.client_losses) as usize;
            if lost_session && !(fail_policy && p.client_losses > 0) {
                let _ = writeln!(out, "{name}: SessionLost without a session loss");
                continue;
            }
            match (p.qos, result) {
                (QoS::AtMostOnce, Ok(_) | Err(PublishError::ConnectionLost)) => {
                    if got > 1 {
                        let _ = writeln!(out, "{name}: QoS 0 delivered {got} times");
                    }
                }
                (QoS::AtLeastOnce, Ok(code)) if code.is_success() => {
                    if got == 0 {
                        let _ = writeln!(out, "{name}: QoS 1 acknowledged but never delivered");
                    }
                }
                (QoS::ExactlyOnce, Ok(code)) if code.is_success() => {
                    if got == 0 || got > most {
                        let _ = writeln!(out, "{name}: QoS 2 delivered {got} times");
                    }
                }
                (QoS::AtLeastOnce | QoS::ExactlyOnce, Err(PublishError::SessionLost)) => {
                    if p.qos == QoS::ExactlyOnce && got > most {
                        let _ = writeln!(out, "{name}: QoS 2 delivered {got} times");
                    }
                }
                (qos, result) => {
                    let _ = writeln!(out, "{name}: {qos:?} finished with {result:?}");
                }
            }
            if !self.sc.session_loss
                && p.qos != QoS::AtMostOnce
                && !self.broker.routed.iter().any(|m| m.payload == p.payload)
            {
                let _ = writeln!(out, "{name}: never routed back to the subscriber");
            }
        }
        // Broker -> client, routed and originated alike.
        let mut routed: HashMap<&Bytes, (usize, &OutMsg)> = HashMap::new();
        for msg in &self.broker.routed {
            routed.entry(&msg.payload).or_insert((0, msg)).0 += 1;
        }
        for (payload, (times, msg)) in &routed {
            let name = String::from_utf8_lossy(payload);
            let got = self.received.get(*payload);
            let count = got.map_or(0, |r| r.count);
            let discarded = self.broker.discarded.contains(payload);
            let exposed = self.exposed.get(*payload).copied().unwrap_or(0);
            if let Some(r) = got
                && (r.topic != msg.topic || r.qos != Some(msg.qos))
            {
                let _ = writeln!(out, "{name}: arrived as {:?} {:?}", r.topic, r.qos);
            }
            let ok = match msg.qos {
                QoS::AtMostOnce => count <= *times,
                QoS::AtLeastOnce => discarded || count >= 1,
                QoS::ExactlyOnce if exposed > 0 => count <= *times + exposed,
                QoS::ExactlyOnce if discarded => count <= *times,
                QoS::ExactlyOnce => count == *times,
            };
            if !ok {
                let _ = writeln!(
                    out,
                    "{name}: {:?} routed {times} time(s), received {count} time(s)",
                    msg.qos
                );
            }
        }
        for payload in self.received.keys() {
            if !routed.contains_key(payload) {
                let _ = writeln!(out, "{payload:?} received but never sent");
            }
        }
        if !self.sc.session_loss {
            for (msg, originated) in &self.broker_msgs {
                if !originated {
                    let _ = writeln!(out, "{:?} never originated", msg.payload);
                }
            }
        }
        for (token, kind) in &self.tokens {
            let n = self.completions.get(token).copied().unwrap_or(0);
            let ok = match kind {
                TokenKind::Ping => n <= 1,
                _ => n == 1,
            };
            if !ok {
                let _ = writeln!(out, "{kind:?} {token:?} completed {n} times");
            }
        }
        if out.is_empty() { Ok(()) } else { Err(out) }
    }
}

/// Runs one seed; the error names the seed and how to replay it.
pub(crate) fn run_seed(seed: u64) -> Result<Stats, String> {
    let scenario = Scenario::from_seed(seed);
    let mut sim = Sim::new(scenario.clone(), false);
    sim.drive().map_err(|why| {
        format!(
            "seed {seed}: {why}\n  scenario: {scenario:?}\n  replay: SIM_SEED={seed} cargo test -p sansmqtt-session --test simulation replay -- --nocapture"
        )
    })
}
