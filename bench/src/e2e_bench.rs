#![allow(clippy::print_stdout, clippy::print_stderr)]
//! End-to-end throughput / CPU / memory benchmark: our client (on Tokio and on async-std/smol)
//! against rumqttc 0.25, through a sink server, rumqttd and a private mosquitto on 127.0.0.1.
//!
//! ```text
//! cargo run --release -p mqtt-bench --bin e2e_bench -- \
//!     [--suite] [--broker sink,rumqttd,mosquitto|all] [--sink-threads T] \
//!     [--messages N] [--qos0-messages N] [--qos 0|1|2|all] [--payload BYTES] \
//!     [--mode pub,pubsub,seq|all] [--inflight 100] [--rounds R] \
//!     [--harness ordered|unordered] [--window W] [--tokio-threads T] \
//!     [--rumqttc-cap C] [--rumqttc-nodelay] \
//!     [--impls ours-tokio,ours-smol,rumqttc[,ours-tokio-nagle,ours-smol-nagle]]
//! ```
//!
//! Defaults: mosquitto only, N = 50,000 (QoS 0: 4 N), all QoS, modes `pub` and `pubsub`,
//! 64-byte payload, in-flight 100, 3 rounds (about 70 s on 2 cores). `--suite` is every cell
//! of issue 24: the three brokers, the three modes, every QoS, 5 rounds (unless `--rounds`),
//! with targets and the protocol core's floor in the table (see bench/README.md).
//!
//! Brokers (`--broker`, see `brokers.rs`): `sink`, a minimal server that acknowledges and
//! echoes and nothing else (`sink.rs`), run as this program's child (`--serve sink`);
//! `rumqttd`, the multi-threaded Rust broker, embedded in this program's child (`--serve
//! rumqttd`); `mosquitto`, private, configured as below. Each is a process of its own, its CPU
//! sampled around every run.
//!
//! For every broker, the parent starts it once and, for every (mode, QoS), runs each
//! implementation in turn (the order rotates every round), `R` rounds, every run in a child
//! process (this
//! program re-executed with `--child IMPL ...`). The child connects (and subscribes), then
//! measures wall time and its own `getrusage(RUSAGE_SELF)` CPU (user + system, all threads)
//! over the measured part only, and reports its peak RSS and its voluntary context switches
//! over the measured part (`sleeps`: how often a thread blocked and was woken again, shown
//! per message in each run's line and in the JSON; wake-ups are most of the kernel time at
//! QoS 1/2, and counting them separates a change in batching from the machine's load); it
//! prints one
//! `E2E_RESULT key=value ...` line that the parent parses. The parent also samples
//! the broker's CPU (from `/proc/PID/stat`) around each run. The table shows the medians.
//! (Linux splits a process's CPU time into user and system by tick sampling: the sum is
//! exact, the user share is approximate on short runs.)
//!
//! - `pub`: publish N messages as fast as the in-flight window allows; done when the last one
//!   completed (QoS 0, ours: accepted into the client's queue, rumqttc: written to the socket;
//!   QoS 1: PUBACK; QoS 2: PUBCOMP).
//! - `pubsub`: the same client is also subscribed to the topic at the same QoS; done when the
//!   N publishes completed and all N messages came back (at QoS 0 our client's
//!   `message_buffer` is raised to N so that none is dropped).
//! - `seq` (QoS 0 only): `pub` with `--window 1` for ours, the amqtt-style loop.
//! - `--window 1`: the amqtt-style loop, each of our publishes awaited before the next is
//!   issued: at QoS 0 it completes at acceptance, at QoS 1/2 at its acknowledgement (one round
//!   trip per message). rumqttc's publisher always awaits `AsyncClient::publish`, which
//!   completes when the request is in its channel, so its QoS 1/2 loop stays pipelined up to
//!   the in-flight window: `--window 1` compares like with like at QoS 0 only.
//! - `--latency 1000,20000`: instead of throughput, latency at fixed offered rates (open loop:
//!   message `i` is due at `i / rate`), a publisher and a subscriber client in one process;
//!   hdrhistogram percentiles of issue -> completion and issue -> delivery. The schedule's
//!   clock is a thread of its own sleeping until each message is due (not the runtime's
//!   timer: Tokio's millisecond wheel woke a 1 ms schedule every 2.1-2.4 ms); a message counts
//!   as issued when that clock fired for it, so a client that makes its caller wait is
//!   charged for the wait.
//! - `--connections N`: N idle connections per implementation; resident memory per connection
//!   and idle CPU of the process (RLIMIT_NOFILE raised, the broker with `max_connections -1`).
//! - `--mosquitto-pub`: `mosquitto_pub -l` in `pub` mode as a third reference.
//! - `--json FILE`: every run as one JSON object per line.
//! - `--quic-link [--quic-link-part lossy|disruption] [--quic-link-transports T,T]` (root):
//!   `quic://` against `mqtts://`
//!   on an emulated link (loss; cuts; an address change), see `quic_link.rs`.
//! - `--qos0-drain`: in `pub` at QoS 0, the clock stops only when the broker acknowledges a
//!   QoS 1 marker sent after the N messages (it has read them all), for both clients;
//!   otherwise QoS 0 "done" is ours: accepted, rumqttc: written, and up to `max_queued`
//!   messages (plus the socket buffer) may still be on their way.
//!
//! Our client: `ClientConfig::max_inflight = inflight`, and the application keeps up to
//! `inflight` publish futures outstanding (`--window W` for another number; the session
//! queues what exceeds `max_inflight`, at most 10,000). By default they are awaited in issue
//! order from a `VecDeque` (`--harness ordered`); `--harness unordered` uses a
//! `FuturesUnordered`, which costs about 0.15 us more per message in the benchmark itself.
//! rumqttc: `MqttOptions::set_inflight(inflight)`, a publisher task calling
//! `AsyncClient::publish` (request channel capacity `--rumqttc-cap`, default 10 as in
//! rumqttc's examples) and the main task polling the `EventLoop`, counting PubAck / PubComp
//! (QoS 0: `Outgoing::Publish`) and incoming publishes. rumqttc keeps its default socket
//! options (Nagle on; `--rumqttc-nodelay` sets TCP_NODELAY as our adapters do).
//!
//! Both use a 60 s keep-alive, 127.0.0.1 and a 16-byte topic (fresh per run). Tokio runs as a
//! current-thread runtime (`--tokio-threads N` for a multi-thread one), for ours and for
//! rumqttc alike; the smol adapter runs its connection task on smol's global executor and the
//! benchmark under `smol::block_on`. The broker gets `max_inflight_messages = inflight` and
//! no queue limit, so that `pubsub` loses nothing at QoS 0 (mosquitto drops QoS 0 messages
//! beyond 1000 queued by default) and both directions use the same window.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use mqtt_test_support::Mosquitto;
use sansmqtt_client::proto::{ByteString, QoS};
use sansmqtt_client::{ClientConfig, MqttClient, Runtime};

mod brokers;
mod load;
mod modes;
mod quic_link;
mod report;
mod sink;

use brokers::{Broker, BrokerKind};

/// Locks a mutex, ignoring poisoning (a panicking child exits anyway).
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The prefix of the one machine-readable line a child prints.
const RESULT_TAG: &str = "E2E_RESULT";

/// A child that makes no progress (no ack, no message) for this long gives up.
const STALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Bumped on every completed publish and every received message; watched by the watchdog.
static PROGRESS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Impl {
    OursTokio,
    OursSmol,
    Rumqttc,
    /// Ours on Tokio with TCP_NODELAY cleared again (Nagle on, as rumqttc's default).
    OursTokioNagle,
    /// Ours on async-io with TCP_NODELAY cleared again.
    OursSmolNagle,
    /// `mosquitto_pub -l` (parent only, `--mosquitto-pub`).
    MosquittoPub,
}

impl Impl {
    const ALL: [Self; 5] = [
        Self::OursTokio,
        Self::OursSmol,
        Self::Rumqttc,
        Self::OursTokioNagle,
        Self::OursSmolNagle,
    ];
    const DEFAULT: [Self; 3] = [Self::OursTokio, Self::OursSmol, Self::Rumqttc];

    fn name(self) -> &'static str {
        match self {
            Self::OursTokio => "ours-tokio",
            Self::OursSmol => "ours-smol",
            Self::Rumqttc => "rumqttc",
            Self::OursTokioNagle => "ours-tokio-nagle",
            Self::OursSmolNagle => "ours-smol-nagle",
            Self::MosquittoPub => "mosquitto_pub",
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|i| i.name() == s)
            .ok_or_else(|| format!("unknown implementation {s:?}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Pub,
    PubSub,
    /// `pub` with each of our publishes awaited before the next (`--window 1`), QoS 0 only:
    /// the amqtt-style `loop { publish(..).await }`.
    Seq,
}

impl Mode {
    const ALL: [Self; 3] = [Self::Pub, Self::PubSub, Self::Seq];

    fn name(self) -> &'static str {
        match self {
            Self::Pub => "pub",
            Self::PubSub => "pubsub",
            Self::Seq => "seq",
        }
    }

    /// A comma-separated list of `pub`, `pubsub`, `seq`; `all` for the three.
    fn parse(s: &str) -> Result<Vec<Self>, String> {
        if s == "all" {
            return Ok(Self::ALL.to_vec());
        }
        s.split(',')
            .map(|name| {
                Self::ALL
                    .into_iter()
                    .find(|m| m.name() == name)
                    .ok_or_else(|| {
                        format!("--mode: expected pub, pubsub, seq or all, got {name:?}")
                    })
            })
            .collect()
    }

    /// Whether the cell exists: `seq` is a QoS 0 cell (at QoS 1/2 rumqttc's `publish` does not
    /// wait for the acknowledgement, so the two loops would not be the same program).
    fn runs_at(self, level: u8) -> bool {
        self != Self::Seq || level == 0
    }
}

fn qos_of(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn rumqttc_qos(level: u8) -> rumqttc::QoS {
    match level {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

/// Options shared by the parent and (forwarded on the command line) the children.
#[derive(Debug, Clone)]
struct Options {
    messages: u64,
    qos0_messages: u64,
    qos: Vec<u8>,
    payload: usize,
    modes: Vec<Mode>,
    inflight: u16,
    rounds: usize,
    tokio_threads: usize,
    rumqttc_cap: usize,
    rumqttc_nodelay: bool,
    /// Our publish futures outstanding at once (0: all N issued at once); default `inflight`.
    window: Option<u64>,
    /// Our publish futures awaited in issue order (`VecDeque`) instead of `FuturesUnordered`.
    ordered: bool,
    /// Run the benchmark future as a spawned task (`--spawn-bench`).
    spawn_bench: bool,
    /// Implementations to compare (parent only).
    impls: Vec<Impl>,
    /// Child only: which implementation to run.
    child: Option<Impl>,
    /// Child only: the broker's port and the topic.
    port: u16,
    topic: String,
    /// Latency mode: offered rates (parent), the one rate of a child run.
    rates: Vec<u64>,
    rate: u64,
    /// Latency mode: seconds of offered load per run.
    latency_secs: f64,
    /// Many-connection mode: idle connections per run (0: not this mode).
    connections: usize,
    /// Many-connection mode: measured idle seconds.
    idle_secs: f64,
    /// Many-connection mode: private mosquittos the connections are spread over (each one's
    /// open-file limit binds it too).
    connection_brokers: usize,
    /// Many-connection mode: seconds of 1 QoS 1 message per second on every connection after
    /// the idle measurement (ours only; 0: none).
    load_secs: u64,
    /// Many-connection child: the brokers' ports (connection `i` goes to `ports[i % len]`).
    ports: Vec<u16>,
    /// Every run's result as one JSON object per line, appended to this file.
    json: Option<String>,
    /// Also run `mosquitto_pub -l` in `pub` mode (when installed).
    mosquitto_pub: bool,
    /// `pub` at QoS 0: stop the clock only when the broker acknowledged a QoS 1 marker sent
    /// after the N messages, i.e. when it has read them all.
    qos0_drain: bool,
    /// The broker sets TCP_NODELAY on client sockets (`set_tcp_nodelay true`; mosquitto's
    /// default is false: Nagle holds a small packet while an earlier one is unacknowledged).
    broker_nodelay: bool,
    /// The brokers to run every cell against, in this order.
    brokers: Vec<brokers::BrokerKind>,
    /// The sink server's Tokio worker threads (1: current-thread runtime).
    sink_threads: usize,
    /// Server child only: `--serve sink|rumqttd`.
    serve: Option<String>,
    /// `--quic-link`: QUIC against TCP + TLS on an emulated link (`quic_link.rs`).
    quic_link: bool,
    /// `--quic-link-part lossy|disruption`: one half of it.
    quic_link_part: Option<String>,
    /// `--quic-link-transports a,b`: some of its transports (empty: all).
    quic_link_transports: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            messages: 50_000,
            qos0_messages: 200_000,
            qos: vec![0, 1, 2],
            payload: 64,
            modes: vec![Mode::Pub, Mode::PubSub],
            inflight: 100,
            rounds: 3,
            tokio_threads: 1,
            rumqttc_cap: 10,
            rumqttc_nodelay: false,
            window: None,
            ordered: true,
            spawn_bench: false,
            impls: Impl::DEFAULT.to_vec(),
            child: None,
            port: 0,
            topic: String::new(),
            rates: Vec::new(),
            rate: 0,
            latency_secs: 5.0,
            connections: 0,
            idle_secs: 10.0,
            connection_brokers: 1,
            load_secs: 0,
            ports: Vec::new(),
            json: None,
            mosquitto_pub: false,
            qos0_drain: false,
            broker_nodelay: false,
            brokers: vec![brokers::BrokerKind::Mosquitto],
            sink_threads: 1,
            serve: None,
            quic_link: false,
            quic_link_part: None,
            quic_link_transports: Vec::new(),
        }
    }
}

fn parse_num<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    value
        .parse()
        .map_err(|_| format!("{flag}: cannot parse {value:?}"))
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options::default();
    let mut qos0_set = false;
    let mut rounds_set = false;
    let mut suite = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--messages" | "-n" => options.messages = parse_num(&flag, args.next())?,
            "--qos0-messages" => {
                options.qos0_messages = parse_num(&flag, args.next())?;
                qos0_set = true;
            }
            "--qos" => {
                let value: String = parse_num(&flag, args.next())?;
                options.qos = match value.as_str() {
                    "all" => vec![0, 1, 2],
                    "0" => vec![0],
                    "1" => vec![1],
                    "2" => vec![2],
                    _ => return Err(format!("--qos: expected 0, 1, 2 or all, got {value:?}")),
                };
            }
            "--payload" => options.payload = parse_num(&flag, args.next())?,
            "--mode" => options.modes = Mode::parse(&parse_num::<String>(&flag, args.next())?)?,
            "--inflight" => options.inflight = parse_num(&flag, args.next())?,
            "--rounds" => {
                options.rounds = parse_num(&flag, args.next())?;
                rounds_set = true;
            }
            "--tokio-threads" => options.tokio_threads = parse_num(&flag, args.next())?,
            "--rumqttc-cap" => options.rumqttc_cap = parse_num(&flag, args.next())?,
            "--rumqttc-nodelay" => options.rumqttc_nodelay = true,
            "--spawn-bench" => options.spawn_bench = true,
            "--window" => options.window = Some(parse_num(&flag, args.next())?),
            "--harness" => {
                options.ordered = match parse_num::<String>(&flag, args.next())?.as_str() {
                    "ordered" => true,
                    "unordered" => false,
                    other => {
                        return Err(format!(
                            "--harness: expected ordered or unordered, got {other:?}"
                        ));
                    }
                };
            }
            "--impls" => {
                let list: String = parse_num(&flag, args.next())?;
                options.impls = list.split(',').map(Impl::parse).collect::<Result<_, _>>()?;
                if options.impls.is_empty() {
                    return Err("--impls: empty list".into());
                }
            }
            "--child" => {
                options.child = Some(Impl::parse(&parse_num::<String>(&flag, args.next())?)?);
            }
            "--port" => options.port = parse_num(&flag, args.next())?,
            "--latency" => {
                let list: String = parse_num(&flag, args.next())?;
                options.rates = list
                    .split(',')
                    .map(|r| parse_num::<u64>("--latency", Some(r.to_owned())))
                    .collect::<Result<_, _>>()?;
            }
            "--rate" => options.rate = parse_num(&flag, args.next())?,
            "--latency-secs" => options.latency_secs = parse_num(&flag, args.next())?,
            "--connections" => options.connections = parse_num(&flag, args.next())?,
            "--idle-secs" => options.idle_secs = parse_num(&flag, args.next())?,
            "--load-secs" => options.load_secs = parse_num(&flag, args.next())?,
            "--connection-brokers" => {
                options.connection_brokers = parse_num::<usize>(&flag, args.next())?.max(1);
            }
            "--ports" => {
                let list: String = parse_num(&flag, args.next())?;
                options.ports = list
                    .split(',')
                    .map(|p| parse_num::<u16>("--ports", Some(p.to_owned())))
                    .collect::<Result<_, _>>()?;
            }
            "--json" => options.json = Some(parse_num(&flag, args.next())?),
            "--mosquitto-pub" => options.mosquitto_pub = true,
            "--qos0-drain" => options.qos0_drain = true,
            "--broker-nodelay" => options.broker_nodelay = true,
            "--topic" => options.topic = parse_num(&flag, args.next())?,
            "--broker" => {
                options.brokers =
                    brokers::BrokerKind::parse_list(&parse_num::<String>(&flag, args.next())?)?;
            }
            "--sink-threads" => options.sink_threads = parse_num(&flag, args.next())?,
            "--serve" => options.serve = Some(parse_num(&flag, args.next())?),
            "--quic-link" => options.quic_link = true,
            "--quic-link-part" => {
                options.quic_link = true;
                options.quic_link_part = Some(parse_num(&flag, args.next())?);
            }
            "--quic-link-transports" => {
                options.quic_link = true;
                let list: String = parse_num(&flag, args.next())?;
                options.quic_link_transports = list.split(',').map(str::to_owned).collect();
            }
            "--suite" => {
                // Every cell of issue 24: three brokers, three modes, every QoS.
                options.brokers = brokers::BrokerKind::ALL.to_vec();
                options.modes = Mode::ALL.to_vec();
                options.qos = vec![0, 1, 2];
                if !rounds_set {
                    options.rounds = 5;
                }
                // rumqttc at its best: with Nagle on (its default) it stalls on the delayed
                // ACK against a server that sets TCP_NODELAY (sink, rumqttd: `pubsub` QoS 1 at
                // 2-4k msgs/s), which would flatter our ratios.
                options.rumqttc_nodelay = true;
                suite = true;
            }
            "--help" | "-h" => {
                println!(
                    "usage: e2e_bench [--messages N] [--qos0-messages N] [--qos 0|1|2|all] \
                     [--payload BYTES] [--mode pub,pubsub,seq|all] [--inflight 100] [--rounds R] \
                     [--broker sink,rumqttd,mosquitto|all] [--sink-threads T] [--suite] \
                     [--tokio-threads T] [--rumqttc-cap C] [--rumqttc-nodelay] [--window W] \
                     [--impls ours-tokio,ours-smol,rumqttc,ours-tokio-nagle,ours-smol-nagle] \
                     [--latency RATE,RATE [--latency-secs S]] \
                     [--connections N [--idle-secs S] [--connection-brokers K] [--load-secs S]] [--mosquitto-pub] [--json FILE] [--broker-nodelay] [--qos0-drain] \
                     [--quic-link [--quic-link-part lossy|disruption] [--quic-link-transports T,T]] (root)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if options.child.is_none() && !qos0_set {
        // QoS 0 is several times faster: more messages for a comparable run time.
        options.qos0_messages = options.messages.saturating_mul(4);
    }
    if options.messages == 0 || options.qos0_messages == 0 || options.rounds == 0 {
        return Err("--messages, --qos0-messages and --rounds must be positive".into());
    }
    if suite && rounds_set && options.rounds < 5 {
        eprintln!(
            "e2e_bench: --suite with fewer than 5 rounds: medians of {} only",
            options.rounds
        );
    }
    options.sink_threads = options.sink_threads.max(1);
    options.inflight = options.inflight.max(1);
    options.tokio_threads = options.tokio_threads.max(1);
    options.rumqttc_cap = options.rumqttc_cap.max(1);
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("e2e_bench: {err}");
            return ExitCode::from(2);
        }
    };
    let result = match (&options.serve, options.child) {
        (Some(kind), _) => brokers::serve(kind, &options),
        (None, Some(imp)) => child_main(imp, &options),
        (None, None) => parent_main(&options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("e2e_bench: {err}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child: one client, one run.
// ---------------------------------------------------------------------------------------------

/// CPU time, peak RSS and sleeps of this process (all threads).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    pub(crate) user_us: u64,
    pub(crate) sys_us: u64,
    max_rss_kib: u64,
    /// Voluntary context switches: how often a thread blocked (in `epoll_wait`, on a futex)
    /// and had to be woken again. Each costs a wake-up in the kernel, on loopback mostly
    /// charged to the broker's write that woke it, and is the main kernel cost that CPU
    /// time alone does not explain.
    sleeps: u64,
}

pub(crate) fn usage() -> Usage {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage(RUSAGE_SELF) failed");
    let micros = |tv: nix::sys::time::TimeVal| {
        u64::try_from(tv.tv_sec()).unwrap_or(0) * 1_000_000
            + u64::try_from(tv.tv_usec()).unwrap_or(0)
    };
    Usage {
        user_us: micros(usage.user_time()),
        sys_us: micros(usage.system_time()),
        // Linux reports ru_maxrss in KiB.
        max_rss_kib: u64::try_from(usage.max_rss()).unwrap_or(0),
        sleeps: u64::try_from(usage.voluntary_context_switches()).unwrap_or(0),
    }
}

/// What the measured part of a run did.
#[derive(Debug, Clone, Copy, Default)]
struct Outcome {
    completed: u64,
    received: u64,
}

/// A measured run: the outcome, the wall time and the CPU over the measured part.
struct Measured {
    outcome: Outcome,
    elapsed: Duration,
    before: Usage,
    after: Usage,
}

/// A child's benchmark run as a spawnable future.
type BoxedRun = std::pin::Pin<Box<dyn Future<Output = Result<Measured, String>> + Send>>;

fn child_main(imp: Impl, options: &Options) -> Result<(), String> {
    spawn_watchdog();
    if options.rate > 0 || options.connections > 0 {
        let fields = child_mode(imp, options)?;
        let mut line = format!("{RESULT_TAG} impl={}", imp.name());
        for (key, value) in &fields {
            let _ = write!(line, " {key}={value}");
        }
        println!("{line}");
        return Ok(());
    }
    let measured = if options.spawn_bench {
        // The benchmark as a spawned task instead of the runtime's root (block_on) future.
        let tokio = |options: &Options, run: fn(Options) -> BoxedRun| {
            let rt = tokio_runtime(options)?;
            let task = rt.spawn(run(options.clone()));
            rt.block_on(task)
                .map_err(|err| format!("benchmark task failed: {err}"))?
        };
        let smol = |options: &Options, run: fn(Options) -> BoxedRun| {
            smol::block_on(smol::spawn(run(options.clone())))
        };
        match imp {
            Impl::OursTokio => tokio(options, |o| {
                Box::pin(async move { run_ours::<sansmqtt_tokio::Tokio>(&o).await })
            }),
            Impl::OursTokioNagle => tokio(options, |o| {
                Box::pin(async move { run_ours::<TokioNagle>(&o).await })
            }),
            Impl::Rumqttc => tokio(options, |o| Box::pin(async move { run_rumqttc(&o).await })),
            Impl::OursSmol => smol(options, |o| {
                Box::pin(async move { run_ours::<sansmqtt_async_std::AsyncIo>(&o).await })
            }),
            Impl::OursSmolNagle => smol(options, |o| {
                Box::pin(async move { run_ours::<SmolNagle>(&o).await })
            }),
            Impl::MosquittoPub => Err("mosquitto_pub is run by the parent".to_owned()),
        }
    } else {
        match imp {
            Impl::OursTokio => {
                tokio_runtime(options)?.block_on(run_ours::<sansmqtt_tokio::Tokio>(options))
            }
            Impl::OursSmol => smol::block_on(run_ours::<sansmqtt_async_std::AsyncIo>(options)),
            Impl::Rumqttc => tokio_runtime(options)?.block_on(run_rumqttc(options)),
            Impl::OursTokioNagle => {
                tokio_runtime(options)?.block_on(run_ours::<TokioNagle>(options))
            }
            Impl::OursSmolNagle => smol::block_on(run_ours::<SmolNagle>(options)),
            Impl::MosquittoPub => Err("mosquitto_pub is run by the parent".to_owned()),
        }
    }?;
    let end = usage();
    let Measured {
        outcome,
        elapsed,
        before,
        after,
    } = measured;
    println!(
        "{RESULT_TAG} impl={} completed={} received={} secs={:.6} user_us={} sys_us={} \
         max_rss_kib={} sleeps={}",
        imp.name(),
        outcome.completed,
        outcome.received,
        elapsed.as_secs_f64(),
        after.user_us.saturating_sub(before.user_us),
        after.sys_us.saturating_sub(before.sys_us),
        end.max_rss_kib,
        after.sleeps.saturating_sub(before.sleeps),
    );
    Ok(())
}

/// A latency (`--rate`) or many-connection (`--connections`) child run.
fn child_mode(imp: Impl, options: &Options) -> Result<modes::Fields, String> {
    if options.connections > 0 {
        modes::raise_nofile();
        return match imp {
            Impl::OursTokio | Impl::OursTokioNagle => {
                tokio_runtime(options)?.block_on(modes::idle_ours::<sansmqtt_tokio::Tokio>(options))
            }
            Impl::OursSmol | Impl::OursSmolNagle => {
                smol::block_on(modes::idle_ours::<sansmqtt_async_std::AsyncIo>(options))
            }
            Impl::Rumqttc => tokio_runtime(options)?.block_on(modes::idle_rumqttc(options)),
            Impl::MosquittoPub => Err("mosquitto_pub is run by the parent".to_owned()),
        };
    }
    match imp {
        Impl::OursTokio => {
            tokio_runtime(options)?.block_on(modes::latency_ours::<sansmqtt_tokio::Tokio>(options))
        }
        Impl::OursTokioNagle => {
            tokio_runtime(options)?.block_on(modes::latency_ours::<TokioNagle>(options))
        }
        Impl::OursSmol => {
            smol::block_on(modes::latency_ours::<sansmqtt_async_std::AsyncIo>(options))
        }
        Impl::OursSmolNagle => smol::block_on(modes::latency_ours::<SmolNagle>(options)),
        Impl::Rumqttc => tokio_runtime(options)?.block_on(modes::latency_rumqttc(options)),
        Impl::MosquittoPub => Err("mosquitto_pub is run by the parent".to_owned()),
    }
}

/// Exits the child if it stops making progress (a lost message at QoS 0, a stuck broker).
fn spawn_watchdog() {
    std::thread::spawn(|| {
        let mut last = PROGRESS.load(Ordering::Relaxed);
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = PROGRESS.load(Ordering::Relaxed);
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() > STALL_TIMEOUT {
                eprintln!(
                    "e2e_bench child: no progress for {STALL_TIMEOUT:?} \
                     ({now} completions + receptions so far), giving up"
                );
                std::process::exit(3);
            }
        }
    });
}

fn tokio_runtime(options: &Options) -> Result<tokio::runtime::Runtime, String> {
    let mut builder = if options.tokio_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(options.tokio_threads);
        builder
    };
    builder
        .enable_all()
        .build()
        .map_err(|err| format!("building the Tokio runtime failed: {err}"))
}

fn messages_for(options: &Options, qos: u8) -> u64 {
    if qos == 0 {
        options.qos0_messages
    } else {
        options.messages
    }
}

/// The child's own QoS and mode travel as `--qos` / `--mode` with a single value.
fn child_qos_mode(options: &Options) -> (u8, Mode) {
    (options.qos[0], options.modes[0])
}

async fn run_ours<R: Runtime + Default>(options: &Options) -> Result<Measured, String> {
    let (level, mode) = child_qos_mode(options);
    let qos = qos_of(level);
    let n = messages_for(options, level);
    let config = ClientConfig::default()
        .keep_alive(Duration::from_secs(60))
        .max_inflight(options.inflight)
        .auto_reconnect(false)
        .max_packet_size(u32::try_from(options.payload + 1024).unwrap_or(u32::MAX));
    // `pubsub` counts every message: received QoS 0 messages wait in the client until the
    // benchmark takes them instead of being dropped beyond the default 1024 (rumqttc hands
    // each one to its event loop's caller, so it has no such bound to hit). The publisher
    // and the receiver share one task, and a QoS 0 publisher runs until `max_queued`.
    let config = if mode == Mode::PubSub && level == 0 {
        config.message_buffer(usize::try_from(n).unwrap_or(usize::MAX))
    } else {
        config
    };
    let client = MqttClient::<R>::new(None, config);
    let uri = format!("mqtt://127.0.0.1:{}", options.port);
    client
        .connect(uri.as_str())
        .await
        .map_err(|err| format!("connect failed: {err}"))?;
    let topic = ByteString::from(options.topic.as_str());
    if mode == Mode::PubSub {
        client
            .subscribe([(options.topic.as_str(), qos)])
            .await
            .map_err(|err| format!("subscribe failed: {err}"))?;
    }
    let payload: &'static [u8] = Vec::leak(vec![0xA5; options.payload]);
    let window = match options.window {
        // `seq`: each publish awaited before the next.
        _ if mode == Mode::Seq => 1,
        None => usize::from(options.inflight),
        Some(0) => usize::MAX,
        Some(w) => usize::try_from(w).unwrap_or(usize::MAX),
    };

    let before = usage();
    let start = Instant::now();
    let publish = || client.publish(topic.clone(), payload).qos(qos);
    let ordered = options.ordered;
    let publisher = async {
        let mut issued = 0u64;
        let mut completed = 0u64;
        if ordered {
            // Awaited in issue order: one waker registration at a time, no task per future.
            // `start` queues each publish as it is issued, filling the window.
            let mut pending = VecDeque::with_capacity(window.min(1 << 16));
            while completed < n {
                while issued < n && pending.len() < window {
                    pending.push_back(publish().start());
                    issued += 1;
                }
                let Some(oldest) = pending.front_mut() else {
                    return Err("publish window empty before the end".into());
                };
                if let Err(err) = oldest.await {
                    return Err(format!("publish {completed} failed: {err}"));
                }
                pending.pop_front();
                completed += 1;
                PROGRESS.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            let mut pending = FuturesUnordered::new();
            while completed < n {
                while issued < n && pending.len() < window {
                    pending.push(publish());
                    issued += 1;
                }
                match pending.next().await {
                    Some(Ok(_)) => {
                        completed += 1;
                        PROGRESS.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Err(err)) => return Err(format!("publish {completed} failed: {err}")),
                    None => return Err("publish window empty before the end".into()),
                }
            }
        }
        Ok(completed)
    };
    let receiver = async {
        if mode != Mode::PubSub {
            return Ok(0);
        }
        let mut messages = std::pin::pin!(client.messages());
        let mut received = 0u64;
        while received < n {
            if messages.next().await.is_none() {
                return Err(format!("message stream ended after {received}"));
            }
            received += 1;
            PROGRESS.fetch_add(1, Ordering::Relaxed);
        }
        Ok(received)
    };
    let (completed, received) = futures_util::future::join(publisher, receiver).await;
    if options.qos0_drain && level == 0 && mode != Mode::PubSub {
        // The broker has read every message once it acknowledges one sent after them.
        client
            .publish(topic.clone(), payload)
            .qos(QoS::AtLeastOnce)
            .await
            .map_err(|err| format!("drain marker failed: {err}"))?;
    }
    let elapsed = start.elapsed();
    let after = usage();
    let outcome = Outcome {
        completed: completed?,
        received: received?,
    };
    let _ = client.disconnect().await;
    Ok(Measured {
        outcome,
        elapsed,
        before,
        after,
    })
}

async fn run_rumqttc(options: &Options) -> Result<Measured, String> {
    use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Outgoing, Packet};

    let (level, mode) = child_qos_mode(options);
    let qos = rumqttc_qos(level);
    let n = messages_for(options, level);
    let client_id = format!("rumqttc-bench-{}", std::process::id());
    let mut mqtt_options = MqttOptions::new(client_id, "127.0.0.1", options.port);
    let max_packet = (options.payload + 1024).max(10 * 1024);
    mqtt_options
        .set_keep_alive(Duration::from_secs(60))
        .set_inflight(options.inflight)
        .set_clean_session(true)
        .set_max_packet_size(max_packet, max_packet);
    let (client, mut eventloop) = AsyncClient::new(mqtt_options, options.rumqttc_cap);
    if options.rumqttc_nodelay {
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
    }
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => break,
            Ok(_) => {}
            Err(err) => return Err(format!("rumqttc connect failed: {err}")),
        }
    }
    if mode == Mode::PubSub {
        client
            .subscribe(options.topic.as_str(), qos)
            .await
            .map_err(|err| format!("rumqttc subscribe failed: {err}"))?;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => break,
                Ok(_) => {}
                Err(err) => return Err(format!("rumqttc subscribe failed: {err}")),
            }
        }
    }
    let payload = vec![0xA5u8; options.payload];
    let topic = options.topic.clone();
    let drain = options.qos0_drain && level == 0 && mode != Mode::PubSub;

    let before = usage();
    let start = Instant::now();
    let publisher = tokio::spawn({
        let client = client.clone();
        async move {
            for _ in 0..n {
                client
                    .publish(topic.as_str(), qos, false, payload.clone())
                    .await
                    .map_err(|err| format!("rumqttc publish failed: {err}"))?;
            }
            if drain {
                client
                    .publish(topic.as_str(), rumqttc::QoS::AtLeastOnce, false, payload)
                    .await
                    .map_err(|err| format!("rumqttc drain marker failed: {err}"))?;
            }
            Ok::<(), String>(())
        }
    });
    let mut outcome = Outcome::default();
    let want_received = if mode == Mode::PubSub { n } else { 0 };
    let mut drained = !drain;
    while outcome.completed < n || outcome.received < want_received || !drained {
        let event = eventloop
            .poll()
            .await
            .map_err(|err| format!("rumqttc event loop failed: {err}"))?;
        match event {
            Event::Outgoing(Outgoing::Publish(_)) if level == 0 => outcome.completed += 1,
            Event::Incoming(Packet::PubAck(_)) if level == 1 => outcome.completed += 1,
            Event::Incoming(Packet::PubAck(_)) if drain => drained = true,
            Event::Incoming(Packet::PubComp(_)) if level == 2 => outcome.completed += 1,
            Event::Incoming(Packet::Publish(_)) => outcome.received += 1,
            _ => continue,
        }
        PROGRESS.fetch_add(1, Ordering::Relaxed);
    }
    let elapsed = start.elapsed();
    let after = usage();
    match publisher.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => return Err(err),
        Err(err) => return Err(format!("rumqttc publisher task failed: {err}")),
    }
    // Best effort: DISCONNECT, then let the event loop write it.
    if client.disconnect().await.is_ok() {
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await {
                Ok(Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_)) | Err(_) => break,
                Ok(Ok(_)) => {}
            }
        }
    }
    Ok(Measured {
        outcome,
        elapsed,
        before,
        after,
    })
}

/// Our Tokio adapter with Nagle's algorithm back on (the adapters set TCP_NODELAY): shows what
/// kernel-side coalescing would buy. Everything else is `sansmqtt_tokio::Tokio`.
#[derive(Debug, Clone, Copy, Default)]
struct TokioNagle;

impl Runtime for TokioNagle {
    type Tcp = <sansmqtt_tokio::Tokio as Runtime>::Tcp;
    type Sleep = <sansmqtt_tokio::Tokio as Runtime>::Sleep;

    fn connect_tcp(
        &self,
        host: String,
        port: u16,
    ) -> impl Future<Output = io::Result<Self::Tcp>> + Send {
        sansmqtt_tokio::Tokio.connect_tcp(host, port)
    }

    fn set_nodelay(tcp: &Self::Tcp) -> io::Result<()> {
        tcp.get_ref().set_nodelay(false)
    }

    fn push_ack(tcp: &Self::Tcp) -> io::Result<()> {
        sansmqtt_tokio::Tokio::push_ack(tcp)
    }

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
        sansmqtt_tokio::Tokio.sleep_until(deadline)
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        sansmqtt_tokio::Tokio.spawn(future);
    }
}

/// Our async-io adapter with Nagle's algorithm back on.
#[derive(Debug, Clone, Copy, Default)]
struct SmolNagle;

impl Runtime for SmolNagle {
    type Tcp = <sansmqtt_async_std::AsyncIo as Runtime>::Tcp;
    type Sleep = <sansmqtt_async_std::AsyncIo as Runtime>::Sleep;

    fn connect_tcp(
        &self,
        host: String,
        port: u16,
    ) -> impl Future<Output = io::Result<Self::Tcp>> + Send {
        sansmqtt_async_std::AsyncIo.connect_tcp(host, port)
    }

    fn set_nodelay(tcp: &Self::Tcp) -> io::Result<()> {
        tcp.set_nodelay(false)
    }

    fn push_ack(tcp: &Self::Tcp) -> io::Result<()> {
        sansmqtt_async_std::AsyncIo::push_ack(tcp)
    }

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
        sansmqtt_async_std::AsyncIo.sleep_until(deadline)
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        sansmqtt_async_std::AsyncIo.spawn(future);
    }
}

// ---------------------------------------------------------------------------------------------
// Parent: the broker, the child processes, the table.
// ---------------------------------------------------------------------------------------------

/// One child's result.
#[derive(Debug, Clone, Copy)]
struct Sample {
    msgs_per_sec: f64,
    cpu_us_per_msg: f64,
    user_share: f64,
    rss_mib: f64,
    broker_us_per_msg: Option<f64>,
    /// The client's voluntary context switches per message (see [`Usage::sleeps`]).
    sleeps_per_msg: Option<f64>,
}

/// Every throughput run's sample, per (broker, mode, QoS, implementation).
type Results = BTreeMap<(BrokerKind, Mode, u8, Impl), Vec<Sample>>;

fn parent_main(options: &Options) -> Result<(), String> {
    if options.quic_link {
        return quic_link::quic_link_main(options, options.quic_link_part.as_deref());
    }
    if !options.rates.is_empty() {
        return latency_main(options);
    }
    if options.connections > 0 {
        return idle_main(options);
    }
    println!(
        "e2e_bench: brokers {}; payload {} B, in-flight {}, {} round(s); N = {} (QoS 0: {}); \
         tokio {}; our window {}; rumqttc request channel {}, nodelay {}; sink threads {}",
        options
            .brokers
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join(","),
        options.payload,
        options.inflight,
        options.rounds,
        options.messages,
        options.qos0_messages,
        if options.tokio_threads <= 1 {
            "current-thread".to_owned()
        } else {
            format!("multi-thread x{}", options.tokio_threads)
        },
        match options.window {
            None => format!("{} (= in-flight)", options.inflight),
            Some(0) => "all N".to_owned(),
            Some(w) => w.to_string(),
        },
        options.rumqttc_cap,
        options.rumqttc_nodelay,
        options.sink_threads,
    );
    let mut results = Results::new();
    let mut run_id = 0u32;
    let started = Instant::now();
    for &kind in &options.brokers {
        let broker = Broker::start(kind, options)?;
        println!(
            "{} (pid {:?}) on 127.0.0.1:{}",
            kind.name(),
            broker.pid(),
            broker.port()
        );
        for &mode in &options.modes {
            for &level in &options.qos {
                if !mode.runs_at(level) {
                    continue;
                }
                for round in 0..options.rounds {
                    // Alternate the implementations, and rotate who goes first each round.
                    let mut order = options.impls.clone();
                    let len = order.len();
                    order.rotate_left(round % len);
                    for imp in order {
                        run_id += 1;
                        let cell = Cell {
                            broker: &broker,
                            mode,
                            level,
                            round,
                            imp,
                        };
                        if let Some(sample) = measure_cell(options, &cell, run_id) {
                            results
                                .entry((kind, mode, level, imp))
                                .or_default()
                                .push(sample);
                        }
                    }
                }
            }
        }
        if kind == BrokerKind::Mosquitto
            && options.mosquitto_pub
            && options.modes.contains(&Mode::Pub)
        {
            mosquitto_pub_runs(options, &broker, &mut results);
        }
    }
    println!("\nall runs took {:.1} s\n", started.elapsed().as_secs_f64());
    report::print_tables(options, &results);
    Ok(())
}

/// One run of one cell.
struct Cell<'a> {
    broker: &'a Broker,
    mode: Mode,
    level: u8,
    round: usize,
    imp: Impl,
}

/// Runs `cell` in a child, prints its line and records its JSON; `None` when it failed.
fn measure_cell(options: &Options, cell: &Cell<'_>, run_id: u32) -> Option<Sample> {
    let Cell {
        broker,
        mode,
        level,
        round,
        imp,
    } = *cell;
    let n = messages_for(options, level);
    // 16 bytes, fresh per run so no stray message of an earlier run counts.
    let topic = format!("e2e/bench/{run_id:06}");
    debug_assert_eq!(topic.len(), 16);
    let broker_before = broker.pid().and_then(process_cpu_us);
    let sample = run_child(options, imp, mode, level, n, broker.port(), &topic);
    let broker_after = broker.pid().and_then(process_cpu_us);
    let mut sample = match sample {
        Ok(sample) => sample,
        Err(err) => {
            println!(
                "  {:<9} {:<6} qos{} round {} {:<16} FAILED: {err}",
                broker.kind.name(),
                mode.name(),
                level,
                round + 1,
                imp.name()
            );
            return None;
        }
    };
    if let (Some(b), Some(a)) = (broker_before, broker_after) {
        sample.broker_us_per_msg = Some(a.saturating_sub(b) as f64 / n as f64);
    }
    println!(
        "  {:<9} {:<6} qos{} round {} {:<16} {:>10.0} msg/s {:>7.2} us/msg CPU (user {:>3.0}%) \
         {:>5.2} sleeps/msg {:>6.1} MiB RSS  broker {}",
        broker.kind.name(),
        mode.name(),
        level,
        round + 1,
        imp.name(),
        sample.msgs_per_sec,
        sample.cpu_us_per_msg,
        sample.user_share * 100.0,
        sample.sleeps_per_msg.unwrap_or(f64::NAN),
        sample.rss_mib,
        sample
            .broker_us_per_msg
            .map_or_else(|| "?".to_owned(), |b| format!("{b:.2} us/msg")),
    );
    let optional = |v: Option<f64>| v.map_or_else(|| "null".to_owned(), |v| v.to_string());
    json_record(
        options,
        &[
            ("kind", "throughput".to_owned()),
            ("broker", broker.kind.name().to_owned()),
            ("mode", mode.name().to_owned()),
            ("qos", level.to_string()),
            ("round", (round + 1).to_string()),
            ("impl", imp.name().to_owned()),
            ("messages", n.to_string()),
            ("payload", options.payload.to_string()),
            ("inflight", options.inflight.to_string()),
            (
                "window",
                if mode == Mode::Seq {
                    "1".to_owned()
                } else {
                    options
                        .window
                        .unwrap_or(u64::from(options.inflight))
                        .to_string()
                },
            ),
            ("msgs_per_sec", sample.msgs_per_sec.to_string()),
            ("cpu_us_per_msg", sample.cpu_us_per_msg.to_string()),
            ("user_share", sample.user_share.to_string()),
            ("sleeps_per_msg", optional(sample.sleeps_per_msg)),
            ("rss_mib", sample.rss_mib.to_string()),
            ("broker_us_per_msg", optional(sample.broker_us_per_msg)),
        ],
    );
    Some(sample)
}

/// mosquitto_pub, the broker's own command-line client, publishing N lines from stdin
/// (`-l`, one message per line, payload = the line) with `-M inflight`: its wall time from
/// start to exit (connect included) and its CPU from `getrusage(RUSAGE_CHILDREN)`.
fn mosquitto_pub_runs(options: &Options, broker: &Broker, results: &mut Results) {
    const MOSQUITTO_PUB: &str = "/usr/bin/mosquitto_pub";
    if !std::path::Path::new(MOSQUITTO_PUB).exists() {
        println!("mosquitto_pub: {MOSQUITTO_PUB} not installed, not measured");
        return;
    }
    let line = "m".repeat(options.payload);
    for &level in &options.qos {
        let n = messages_for(options, level);
        let mut input = String::with_capacity((options.payload + 1) * n as usize);
        for _ in 0..n {
            input.push_str(&line);
            input.push('\n');
        }
        for round in 0..options.rounds {
            let topic = format!("e2e/mospub/{level}{round:03}");
            let children_before = children_cpu_us();
            let broker_before = broker.pid().and_then(process_cpu_us);
            let start = Instant::now();
            let run = (|| {
                use std::io::Write as _;
                let mut child = Command::new(MOSQUITTO_PUB)
                    .args(["-h", "127.0.0.1", "-p", &broker.port().to_string()])
                    .args(["-t", &topic, "-q", &level.to_string(), "-l"])
                    .args(["-M", &options.inflight.to_string(), "-k", "60"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()?;
                if let Some(mut stdin) = child.stdin.take() {
                    stdin.write_all(input.as_bytes())?;
                }
                child.wait()
            })();
            let secs = start.elapsed().as_secs_f64();
            let broker_after = broker.pid().and_then(process_cpu_us);
            let cpu = children_cpu_us().saturating_sub(children_before);
            match run {
                Ok(status) if status.success() => {
                    let sample = Sample {
                        msgs_per_sec: n as f64 / secs,
                        cpu_us_per_msg: cpu as f64 / n as f64,
                        user_share: f64::NAN,
                        rss_mib: f64::NAN,
                        broker_us_per_msg: broker_before
                            .zip(broker_after)
                            .map(|(b, a)| a.saturating_sub(b) as f64 / n as f64),
                        sleeps_per_msg: None,
                    };
                    println!(
                        "  pub    qos{level} round {} mosquitto_pub    {:>10.0} msg/s {:>7.2} us/msg CPU",
                        round + 1,
                        sample.msgs_per_sec,
                        sample.cpu_us_per_msg
                    );
                    json_record(
                        options,
                        &[
                            ("kind", "throughput".to_owned()),
                            ("mode", "pub".to_owned()),
                            ("qos", level.to_string()),
                            ("round", (round + 1).to_string()),
                            ("impl", "mosquitto_pub".to_owned()),
                            ("messages", n.to_string()),
                            ("msgs_per_sec", sample.msgs_per_sec.to_string()),
                            ("cpu_us_per_msg", sample.cpu_us_per_msg.to_string()),
                        ],
                    );
                    results
                        .entry((BrokerKind::Mosquitto, Mode::Pub, level, Impl::MosquittoPub))
                        .or_default()
                        .push(sample);
                }
                Ok(status) => println!("  mosquitto_pub qos{level}: exited with {status}"),
                Err(err) => println!("  mosquitto_pub qos{level}: {err}"),
            }
        }
    }
}

/// CPU (user + system) of this process's waited-for children, microseconds.
fn children_cpu_us() -> u64 {
    use nix::sys::resource::{UsageWho, getrusage};
    let Ok(usage) = getrusage(UsageWho::RUSAGE_CHILDREN) else {
        return 0;
    };
    let micros = |tv: nix::sys::time::TimeVal| {
        u64::try_from(tv.tv_sec()).unwrap_or(0) * 1_000_000
            + u64::try_from(tv.tv_usec()).unwrap_or(0)
    };
    micros(usage.user_time()) + micros(usage.system_time())
}

/// Appends one JSON object (numbers bare, other values quoted) to `--json FILE`.
fn json_record(options: &Options, fields: &[(&str, String)]) {
    let Some(path) = &options.json else {
        return;
    };
    let mut line = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        let _ = write!(line, "\"{key}\":");
        let numeric = value.parse::<f64>().is_ok_and(f64::is_finite)
            || matches!(value.as_str(), "null" | "true" | "false");
        if numeric {
            line.push_str(value);
        } else {
            line.push('"');
            for c in value.chars() {
                match c {
                    '"' => line.push_str("\\\""),
                    '\\' => line.push_str("\\\\"),
                    c if (c as u32) < 0x20 => {
                        let _ = write!(line, "\\u{:04x}", c as u32);
                    }
                    c => line.push(c),
                }
            }
            line.push('"');
        }
    }
    line.push_str("}\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| io::Write::write_all(&mut file, line.as_bytes()));
    if let Err(err) = written {
        eprintln!("e2e_bench: writing {path}: {err}");
    }
}

/// Runs one child with `args` and returns its result fields.
fn child_fields(
    exe: &std::path::Path,
    imp: Impl,
    args: &[String],
) -> Result<BTreeMap<String, f64>, String> {
    let output = Command::new(exe)
        .args(["--child", imp.name()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|err| format!("starting the child failed: {err}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "child exited with {}: {}",
            output.status,
            stdout.trim()
        ));
    }
    let line = stdout
        .lines()
        .find(|line| line.starts_with(RESULT_TAG))
        .ok_or_else(|| format!("no {RESULT_TAG} line in the child's output: {stdout:?}"))?;
    Ok(line
        .split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse::<f64>().ok()?)))
        .collect())
}

/// Latency at fixed offered rates: every (QoS, rate), each implementation in turn per round.
fn latency_main(options: &Options) -> Result<(), String> {
    let broker = Mosquitto::builder()
        .extra_config(&format!(
            "max_inflight_messages {}\nmax_queued_messages 0\nset_tcp_nodelay {}",
            options.inflight, options.broker_nodelay
        ))
        .start();
    let exe = std::env::current_exe().map_err(|err| format!("current_exe failed: {err}"))?;
    println!(
        "e2e_bench latency: mosquitto on 127.0.0.1:{}; payload {} B, in-flight {}, {} s per run, \
         {} round(s); publisher and subscriber are two clients in one process",
        broker.port(),
        options.payload,
        options.inflight,
        options.latency_secs,
        options.rounds
    );
    let mut results: BTreeMap<(u8, u64, Impl), Vec<BTreeMap<String, f64>>> = BTreeMap::new();
    let mut run_id = 0u32;
    for &level in &options.qos {
        for &rate in &options.rates {
            for round in 0..options.rounds {
                let mut order = options.impls.clone();
                let len = order.len();
                order.rotate_left(round % len);
                for imp in order {
                    run_id += 1;
                    let topic = format!("e2e/latncy/{run_id:06}");
                    let args: Vec<String> = [
                        "--qos",
                        &level.to_string(),
                        "--rate",
                        &rate.to_string(),
                        "--latency-secs",
                        &options.latency_secs.to_string(),
                        "--payload",
                        &options.payload.to_string(),
                        "--inflight",
                        &options.inflight.to_string(),
                        "--tokio-threads",
                        &options.tokio_threads.to_string(),
                        "--rumqttc-cap",
                        &options.rumqttc_cap.to_string(),
                        "--port",
                        &broker.port().to_string(),
                        "--topic",
                        &topic,
                    ]
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect();
                    let broker_before = broker.pid().and_then(process_cpu_us);
                    match child_fields(&exe, imp, &args) {
                        Ok(mut fields) => {
                            if let (Some(b), Some(a)) =
                                (broker_before, broker.pid().and_then(process_cpu_us))
                            {
                                fields.insert("broker_cpu_us".into(), a.saturating_sub(b) as f64);
                            }
                            let get = |k: &str| fields.get(k).copied().unwrap_or(f64::NAN);
                            println!(
                                "  qos{level} {rate:>6}/s round {} {:<12} publish p50 {:>8.1} p99 \
                                 {:>8.1} us  delivery p50 {:>8.1} p99 {:>8.1} us  ({} of {} \
                                 received)",
                                round + 1,
                                imp.name(),
                                get("publish_p50_us"),
                                get("publish_p99_us"),
                                get("delivery_p50_us"),
                                get("delivery_p99_us"),
                                get("received"),
                                get("offered"),
                            );
                            let mut record = vec![
                                ("kind", "latency".to_owned()),
                                ("qos", level.to_string()),
                                ("rate", rate.to_string()),
                                ("round", (round + 1).to_string()),
                                ("impl", imp.name().to_owned()),
                            ];
                            let owned: Vec<(String, String)> = fields
                                .iter()
                                .map(|(k, v)| (k.clone(), v.to_string()))
                                .collect();
                            record.extend(owned.iter().map(|(k, v)| (k.as_str(), v.clone())));
                            json_record(options, &record);
                            results.entry((level, rate, imp)).or_default().push(fields);
                        }
                        Err(err) => println!(
                            "  qos{level} {rate}/s round {} {} FAILED: {err}",
                            round + 1,
                            imp.name()
                        ),
                    }
                }
            }
        }
    }
    println!(
        "\nmedians of {} round(s), microseconds; publish = issue to completion (QoS 0: \
         ours accepted, rumqttc written), delivery = issue to receipt at the subscriber; x = ours / \
         rumqttc",
        options.rounds
    );
    println!(
        "{:<3} {:>6} {:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7}",
        "qos",
        "rate",
        "impl",
        "pub p50",
        "pub p99",
        "pub p999",
        "del p50",
        "del p99",
        "del p999",
        "p50 x",
        "p99 x",
        "dp50 x",
        "dp99 x"
    );
    let med = |runs: &[BTreeMap<String, f64>], key: &str| {
        report::median(runs.iter().filter_map(|f| f.get(key).copied()).collect())
    };
    for &level in &options.qos {
        for &rate in &options.rates {
            let reference = results.get(&(level, rate, Impl::Rumqttc));
            for &imp in &options.impls {
                let Some(runs) = results.get(&(level, rate, imp)) else {
                    continue;
                };
                let ratio = |key: &str| match reference {
                    Some(r) if imp != Impl::Rumqttc => {
                        format!("{:.2}", med(runs, key) / med(r, key))
                    }
                    _ => "-".to_owned(),
                };
                println!(
                    "{:<3} {:>6} {:<12} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7} {:>7} {:>7} {:>7}",
                    level,
                    rate,
                    imp.name(),
                    med(runs, "publish_p50_us"),
                    med(runs, "publish_p99_us"),
                    med(runs, "publish_p999_us"),
                    med(runs, "delivery_p50_us"),
                    med(runs, "delivery_p99_us"),
                    med(runs, "delivery_p999_us"),
                    ratio("publish_p50_us"),
                    ratio("publish_p99_us"),
                    ratio("delivery_p50_us"),
                    ratio("delivery_p99_us"),
                );
            }
        }
    }
    drop(broker);
    Ok(())
}

/// Many idle connections: N connections per implementation and round, RSS per connection
/// and idle CPU of the client process and of the broker.
fn idle_main(options: &Options) -> Result<(), String> {
    let nofile = modes::raise_nofile();
    // Started after raising the limit: the brokers inherit it. The open-file limit binds each
    // broker too, so many connections are spread over several (`--connection-brokers K`).
    let brokers: Vec<Mosquitto> = (0..options.connection_brokers)
        .map(|_| {
            // No queue limit: with the default 1000, the load phase's subscriber (one per
            // broker, 19,000 / K messages a second) has QoS 1 messages dropped by the broker.
            Mosquitto::builder()
                .extra_config("max_connections -1\nmax_queued_messages 0")
                .start()
        })
        .collect();
    let ports = brokers
        .iter()
        .map(|b| b.port().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let exe = std::env::current_exe().map_err(|err| format!("current_exe failed: {err}"))?;
    println!(
        "e2e_bench connections: {} mosquitto(s) on 127.0.0.1:{ports} (max_connections -1), \
         RLIMIT_NOFILE {nofile}; {} connections per run, {} s idle, {} round(s)",
        brokers.len(),
        options.connections,
        options.idle_secs,
        options.rounds
    );
    let mut results: BTreeMap<Impl, Vec<BTreeMap<String, f64>>> = BTreeMap::new();
    for round in 0..options.rounds {
        let mut order = options.impls.clone();
        let len = order.len();
        order.rotate_left(round % len);
        for imp in order {
            let args: Vec<String> = [
                "--connections",
                &options.connections.to_string(),
                "--idle-secs",
                &options.idle_secs.to_string(),
                "--tokio-threads",
                &options.tokio_threads.to_string(),
                "--ports",
                &ports,
                "--load-secs",
                &options.load_secs.to_string(),
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            // The broker's idle CPU is sampled over the child's whole run (connects included)
            // and, separately, not at all: mosquitto's own idle cost is not ours to judge.
            match child_fields(&exe, imp, &args) {
                Ok(fields) => {
                    let get = |k: &str| fields.get(k).copied().unwrap_or(f64::NAN);
                    println!(
                        "  round {} {:<12} {:>6} conns in {:>5.2} s ({:>6.0}/s): {:>7.1} KiB/conn \
                         RSS, idle CPU {:>6.2} ms/s",
                        round + 1,
                        imp.name(),
                        get("connections"),
                        get("connect_secs"),
                        get("connects_per_sec"),
                        get("rss_per_conn_kib"),
                        get("idle_cpu_ms_per_s"),
                    );
                    if fields.contains_key("load_published") {
                        println!(
                            "    load {} s: {} published, {} acknowledged, {} failed, {} lost, {} \
                             duplicates; publish latency p50 {:.0} p99 {:.0} p99.9 {:.0} max {:.0} \
                             us",
                            get("load_secs"),
                            get("load_published"),
                            get("load_acknowledged"),
                            get("load_failed"),
                            get("load_lost"),
                            get("load_duplicates"),
                            get("load_publish_p50_us"),
                            get("load_publish_p99_us"),
                            get("load_publish_p999_us"),
                            get("load_publish_max_us"),
                        );
                    }
                    let mut record = vec![
                        ("kind", "connections".to_owned()),
                        ("round", (round + 1).to_string()),
                        ("impl", imp.name().to_owned()),
                    ];
                    let owned: Vec<(String, String)> = fields
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_string()))
                        .collect();
                    record.extend(owned.iter().map(|(k, v)| (k.as_str(), v.clone())));
                    json_record(options, &record);
                    results.entry(imp).or_default().push(fields);
                }
                Err(err) => println!("  round {} {} FAILED: {err}", round + 1, imp.name()),
            }
        }
    }
    let med = |runs: &[BTreeMap<String, f64>], key: &str| {
        report::median(runs.iter().filter_map(|f| f.get(key).copied()).collect())
    };
    println!(
        "\nmedians of {} round(s); x = ours / rumqttc (goals: memory <= 8 KiB per connection, \
         connect rate >= 1.5x)",
        options.rounds
    );
    println!(
        "{:<12} {:>8} {:>12} {:>10} {:>10} {:>14} {:>9} {:>8} {:>8}",
        "impl",
        "conns",
        "KiB/conn",
        "connect s",
        "conn/s",
        "idle CPU ms/s",
        "mem x",
        "rate x",
        "CPU x"
    );
    let reference = results.get(&Impl::Rumqttc);
    for &imp in &options.impls {
        let Some(runs) = results.get(&imp) else {
            continue;
        };
        let ratio = |key: &str| match reference {
            Some(r) if imp != Impl::Rumqttc => format!("{:.2}", med(runs, key) / med(r, key)),
            _ => "-".to_owned(),
        };
        println!(
            "{:<12} {:>8.0} {:>12.1} {:>10.2} {:>10.0} {:>14.2} {:>9} {:>8} {:>8}",
            imp.name(),
            med(runs, "connections"),
            med(runs, "rss_per_conn_kib"),
            med(runs, "connect_secs"),
            med(runs, "connects_per_sec"),
            med(runs, "idle_cpu_ms_per_s"),
            ratio("rss_per_conn_kib"),
            ratio("connects_per_sec"),
            ratio("idle_cpu_ms_per_s"),
        );
    }
    drop(brokers);
    Ok(())
}

fn run_child(
    options: &Options,
    imp: Impl,
    mode: Mode,
    level: u8,
    n: u64,
    port: u16,
    topic: &str,
) -> Result<Sample, String> {
    let exe = std::env::current_exe().map_err(|err| format!("current_exe failed: {err}"))?;
    let output = Command::new(exe)
        .args(["--child", imp.name()])
        .args(["--mode", mode.name()])
        .args(["--qos", &level.to_string()])
        .args(["--messages", &n.to_string()])
        .args(["--qos0-messages", &n.to_string()])
        .args(["--payload", &options.payload.to_string()])
        .args(["--inflight", &options.inflight.to_string()])
        .args(["--tokio-threads", &options.tokio_threads.to_string()])
        .args(["--rumqttc-cap", &options.rumqttc_cap.to_string()])
        .args(if options.rumqttc_nodelay {
            &["--rumqttc-nodelay"][..]
        } else {
            &[][..]
        })
        .args(
            options
                .window
                .map(|w| vec!["--window".to_owned(), w.to_string()])
                .unwrap_or_default(),
        )
        .args([
            "--harness",
            if options.ordered {
                "ordered"
            } else {
                "unordered"
            },
        ])
        .args(if options.qos0_drain {
            &["--qos0-drain"][..]
        } else {
            &[][..]
        })
        .args(if options.spawn_bench {
            &["--spawn-bench"][..]
        } else {
            &[][..]
        })
        .args(["--port", &port.to_string()])
        .args(["--topic", topic])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|err| format!("starting the child failed: {err}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "child exited with {}: {}",
            output.status,
            stdout.trim()
        ));
    }
    let line = stdout
        .lines()
        .find(|line| line.starts_with(RESULT_TAG))
        .ok_or_else(|| format!("no {RESULT_TAG} line in the child's output: {stdout:?}"))?;
    let fields: BTreeMap<&str, &str> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let get = |key: &str| -> Result<f64, String> {
        fields
            .get(key)
            .ok_or_else(|| format!("{key} missing in {line:?}"))?
            .parse::<f64>()
            .map_err(|_| format!("{key} unparsable in {line:?}"))
    };
    let completed = get("completed")?;
    let received = get("received")?;
    let secs = get("secs")?;
    let user = get("user_us")?;
    let sys = get("sys_us")?;
    let n = n as f64;
    if completed < n || (mode == Mode::PubSub && received < n) {
        return Err(format!("incomplete run: {line}"));
    }
    Ok(Sample {
        msgs_per_sec: n / secs,
        cpu_us_per_msg: (user + sys) / n,
        user_share: if user + sys > 0.0 {
            user / (user + sys)
        } else {
            0.0
        },
        rss_mib: get("max_rss_kib")? / 1024.0,
        broker_us_per_msg: None,
        sleeps_per_msg: Some(get("sleeps")? / n),
    })
}

/// User + system CPU of a process, from `/proc/PID/stat` (clock ticks of 10 ms on Linux).
fn process_cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every mainstream Linux configuration.
    Some((utime + stime) * 10_000)
}
