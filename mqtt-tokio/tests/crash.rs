//! Crash tests of the durable session store with real processes: this test binary re-runs
//! itself as a child client (`CRASH_ROLE` set), which the parent kills with SIGKILL and
//! restarts on the same store, against a private mosquitto with persistence on.
//!
//! - `publisher_survives_sigkill`: the child publishes numbered QoS 1 and QoS 2 messages and
//!   prints each one whose `publish(..).stored()` resolved (the documented durability point);
//!   the parent kills it at random points and restarts it from the next number. Every stored
//!   message must reach the subscriber, and no QoS 2 message twice.
//! - `subscriber_exactly_once_across_sigkill`: the child subscribes at QoS 2 through a proxy
//!   that withholds the child's PUBRECs (or the broker's PUBRELs); the parent kills it between
//!   PUBREC and PUBREL and restarts it: the broker re-sends, and the child's application must
//!   see each message exactly once across restarts.
//!
//! - `a_store_is_locked_by_one_process_and_freed_by_its_death`: a child holds a store; the
//!   parent's client on the same directory is refused with `StoreError::Locked` naming the
//!   directory and the child's pid; once the child is SIGKILLed the parent opens it.
//!
//! - `subscriptions_come_back_after_a_sigkill_without_resubscribing`: a child subscribes and
//!   is SIGKILLed; a new child on the same store, against a broker that has no session for
//!   it, receives messages on that subscription without subscribing itself.
//!
//! - `offline_publishes_survive_a_sigkill_before_the_first_connection`: a child that never
//!   reached a broker publishes QoS 1 and QoS 2 messages, waits for `stored()`, and is
//!   SIGKILLed; a new child on the same store and id connects to a broker and sends them (QoS 2
//!   exactly once, QoS 1 at least once); a third one, after that one's SIGKILL, sends none again.
//!
//! A custom harness (`harness = false`): the children need their own `main`.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use mqtt_test_support::Mosquitto;
use sansmqtt_tokio::{ClientConfig, ClientError, ConnectionEvent, MqttClient, QoS, StoreError};

/// Messages the publisher sends in all: even numbers at QoS 1, odd at QoS 2 (the issue's
/// 20,000 + 20,000).
const PUBLISH_TOTAL: u64 = 40_000;
/// SIGKILLs of the publisher before the run that is left to finish.
const PUBLISHER_KILLS: usize = 20;
/// `stored()` futures the publisher keeps outstanding: the batch one fsync covers.
const PIPELINE: usize = 2_000;
/// Rounds of the subscriber test and messages per round.
const SUB_ROUNDS: usize = 6;
const SUB_BATCH: usize = 40;
const PREFIX: &str = "CRASH ";
/// Mosquitto with persistence on, but saving its database every 10 minutes rather than after
/// every change (the test-support default), which would make the broker the bottleneck; no
/// limit on messages queued or in flight towards a subscriber, which would drop some.
const BROKER_CONFIG: &str = "max_queued_messages 0\nmax_inflight_messages 0\nautosave_on_changes false\nautosave_interval 600\n";

fn main() -> std::process::ExitCode {
    mqtt_test_support::init_test_tracing();
    // A child process: its role names the function it runs.
    if let Ok(role) = std::env::var("CRASH_ROLE") {
        let child: fn() = match role.as_str() {
            "publisher" => publisher_child,
            "subscriber" => subscriber_child,
            "holder" => holder_child,
            "restorer" => restorer_child,
            "offline" => offline_child,
            other => panic!("unknown CRASH_ROLE {other:?}"),
        };
        child();
        return std::process::ExitCode::SUCCESS;
    }
    // libtest's command line (`--list`, `--exact`, filters, `--ignored`), so that
    // `cargo test -- --list` and nextest list these tests without running them.
    let mut args = libtest_mimic::Arguments::from_args();
    // One at a time: each kills processes and loads the machine.
    args.test_threads = Some(1);
    let tests = [
        (
            "subscriptions_come_back_after_a_sigkill_without_resubscribing",
            subscriptions_come_back_after_a_sigkill_without_resubscribing as fn(),
        ),
        (
            "offline_publishes_survive_a_sigkill_before_the_first_connection",
            offline_publishes_survive_a_sigkill_before_the_first_connection,
        ),
        (
            "a_store_is_locked_by_one_process_and_freed_by_its_death",
            a_store_is_locked_by_one_process_and_freed_by_its_death,
        ),
        ("publisher_survives_sigkill", publisher_survives_sigkill),
        (
            "publish_on_a_full_disk_fails_with_a_typed_error",
            publish_on_a_full_disk_fails_with_a_typed_error,
        ),
        (
            "subscriber_exactly_once_across_sigkill",
            subscriber_exactly_once_across_sigkill,
        ),
    ]
    .map(|(name, test)| {
        libtest_mimic::Trial::test(name, move || {
            test();
            Ok(())
        })
    });
    libtest_mimic::run(&args, tests.into()).exit_code()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child needs {name}"))
}

/// A fresh store directory on the real disk (the target directory, not a tmpfs), so fsync
/// means what it means in production.
fn store_dir(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Small seeded generator for kill times; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::env::var("CRASH_SEED").ok().map_or_else(
            || {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            },
            |s| s.parse().unwrap(),
        );
        eprintln!("CRASH_SEED={seed}");
        Self(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A child process and the `CRASH ` lines of its stdout, as they come.
struct ChildProc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl ChildProc {
    fn spawn(role: &str, vars: &[(&str, String)]) -> Self {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .env("CRASH_ROLE", role)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix(PREFIX)
                    && tx.send(rest.to_owned()).is_err()
                {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The next line, within `timeout`.
    fn line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// SIGKILL, then every line it had written.
    fn kill(mut self) -> Vec<String> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let lines = std::mem::replace(&mut self.lines, mpsc::channel().1);
        // The reader thread ends at EOF; what the child wrote before dying is all there.
        let mut rest = Vec::new();
        while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
            rest.push(line);
        }
        rest
    }
}

impl Drop for ChildProc {
    /// A failing test must not leave its child running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- publisher ----------------------------------------------------------------------------

fn publisher_child() {
    let uri = env("CRASH_URI");
    let store = env("CRASH_STORE");
    let start: u64 = env("CRASH_START").parse().unwrap();
    let incarnation = env("CRASH_INCARNATION");
    runtime().block_on(async move {
        let mut config = ClientConfig::default()
            .clean_session(false)
            .max_inflight(1_000)
            .reconnect_retries(None);
        if std::env::var("CRASH_NO_STORE").is_err() {
            config = config.session_store(store);
        }
        let client = MqttClient::new(Some("crash-publisher"), config);
        let mut events = client.connection_events();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                if let ConnectionEvent::RecoveredPublish(recovered) = event {
                    println!(
                        "{PREFIX}recovered {} {}",
                        recovered.topic,
                        recovered.result.is_ok()
                    );
                }
            }
        });
        client.connect(uri.as_str()).await.unwrap();
        println!("{PREFIX}connected");
        let began = Instant::now();
        let mut stored = FuturesOrdered::new();
        let mut completions = Vec::new();
        let mut next = start;
        while next < PUBLISH_TOTAL || !stored.is_empty() {
            while next < PUBLISH_TOTAL && stored.len() < PIPELINE {
                let k = next;
                let qos = if k.is_multiple_of(2) {
                    QoS::AtLeastOnce
                } else {
                    QoS::ExactlyOnce
                };
                let storing = client
                    .publish(format!("crash/{k}"), format!("{incarnation}:{k}"))
                    .qos(qos)
                    .stored()
                    .into_future();
                stored.push_back(async move { (k, storing.await) });
                next += 1;
            }
            let (k, result) = stored.next().await.unwrap();
            match result {
                Ok(done) => {
                    // The durability point: from here the message survives a SIGKILL.
                    println!("{PREFIX}stored {k}");
                    completions.push(done);
                }
                Err(err) => panic!("publish {k} failed: {err}"),
            }
        }
        for result in futures_util::future::join_all(completions).await {
            result.unwrap();
        }
        println!("{PREFIX}complete");
        eprintln!(
            "publisher: {} messages from {start} in {:.1?}, store {:?}",
            PUBLISH_TOTAL - start,
            began.elapsed(),
            client.store_stats()
        );
        client.disconnect().await.unwrap();
    });
}

fn publisher_survives_sigkill() {
    let broker = Mosquitto::builder()
        .persistence(true)
        .extra_config(BROKER_CONFIG)
        .start();
    let uri = broker.uri();
    let store = store_dir("crash-publisher");
    let rt = runtime();
    let received: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let subscriber = rt.block_on(async {
        let client = MqttClient::new(Some("crash-counter"), ClientConfig::default());
        client.connect(uri.as_str()).await.unwrap();
        client
            .subscribe([("crash/#", QoS::ExactlyOnce)])
            .await
            .unwrap();
        let messages = client.messages();
        let received = received.clone();
        tokio::spawn(async move {
            let mut messages = std::pin::pin!(messages);
            while let Some(message) = messages.next().await {
                let payload = String::from_utf8(message.payload().to_vec()).unwrap();
                *received.lock().unwrap().entry(payload).or_default() += 1;
            }
        });
        client
    });

    let mut rng = Rng::new();
    let mut next = 0u64;
    let mut stored = BTreeSet::new();
    let mut recovered = Vec::new();
    let started = Instant::now();
    let vars = |start: u64, incarnation: usize| {
        vec![
            ("CRASH_URI", uri.clone()),
            ("CRASH_STORE", store.display().to_string()),
            ("CRASH_START", start.to_string()),
            ("CRASH_INCARNATION", incarnation.to_string()),
        ]
    };
    let note = |line: &str, stored: &mut BTreeSet<u64>, recovered: &mut Vec<String>| {
        if let Some(k) = line.strip_prefix("stored ") {
            stored.insert(k.parse::<u64>().unwrap());
        } else if let Some(r) = line.strip_prefix("recovered ") {
            recovered.push(r.to_owned());
        }
    };
    let kills = std::env::var("CRASH_KILLS").map_or(PUBLISHER_KILLS, |k| k.parse().unwrap());
    for incarnation in 0..kills {
        let child = ChildProc::spawn("publisher", &vars(next, incarnation));
        // Killed once it has stored a random number of messages: mid-stream, with stored
        // messages in flight, commands queued and a batch possibly half written.
        let target = 100 + rng.below(1_700) as usize;
        let mut early = Vec::new();
        let mut stored_now = 0;
        while stored_now < target {
            let Some(line) = child.line(Duration::from_secs(20)) else {
                panic!("publisher {incarnation} went silent after {stored_now} messages")
            };
            stored_now += usize::from(line.starts_with("stored "));
            early.push(line);
        }
        let lines = child.kill();
        for l in early.iter().chain(&lines) {
            note(l, &mut stored, &mut recovered);
        }
        assert!(
            !lines.iter().any(|l| l == "complete"),
            "the publisher finished before kill {incarnation}: too few messages for the kills"
        );
        // Stored lines come in publish order: every number below the last was stored.
        if let Some(&last) = stored.last() {
            next = last + 1;
        }
        eprintln!(
            "kill {incarnation}: {} stored so far, resuming at {next}",
            stored.len()
        );
    }
    let child = ChildProc::spawn("publisher", &vars(next, PUBLISHER_KILLS));
    let mut complete = false;
    while let Some(line) = child.line(Duration::from_secs(60)) {
        if line == "complete" {
            complete = true;
            break;
        }
        note(&line, &mut stored, &mut recovered);
    }
    assert!(complete, "the last publisher did not complete its messages");
    drop(child.kill());
    let published_in = started.elapsed();

    // Every message stored in some run arrives (all of 0..TOTAL were stored in one run or
    // another); a QoS 2 message (odd number) published once arrives once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let missing = loop {
        let received = received.lock().unwrap();
        let arrived: BTreeSet<u64> = received
            .keys()
            .map(|p| p.split_once(':').unwrap().1.parse().unwrap())
            .collect();
        let missing: Vec<u64> = stored.difference(&arrived).copied().collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        drop(received);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(stored.len() as u64, PUBLISH_TOTAL);
    assert!(
        missing.is_empty(),
        "{} stored messages never arrived, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let received = received.lock().unwrap();
    let twice: Vec<(&String, &u32)> = received
        .iter()
        .filter(|(payload, count)| {
            let k: u64 = payload.split_once(':').unwrap().1.parse().unwrap();
            k % 2 == 1 && **count > 1
        })
        .collect();
    assert!(
        twice.is_empty(),
        "QoS 2 messages delivered twice: {twice:?}"
    );
    let failed: Vec<&String> = recovered.iter().filter(|r| r.ends_with("false")).collect();
    assert!(failed.is_empty(), "recovered publishes failed: {failed:?}");
    assert!(
        !recovered.is_empty(),
        "no kill left a stored message in flight: the recovery path was not exercised"
    );
    let duplicates_q1: u32 = received.values().map(|c| c - 1).sum();
    eprintln!(
        "{} messages, {PUBLISHER_KILLS} kills, {} recovered from the store and completed, \
         {duplicates_q1} QoS 1 re-deliveries, in {published_in:.1?}",
        PUBLISH_TOTAL,
        recovered.len()
    );
    drop(received);
    rt.block_on(subscriber.disconnect()).unwrap();
    let _ = std::fs::remove_dir_all(&store);
}

// ---- subscriber ---------------------------------------------------------------------------

fn subscriber_child() {
    let uri = env("CRASH_URI");
    let store = env("CRASH_STORE");
    runtime().block_on(async move {
        let config = ClientConfig::default()
            .session_store(store)
            .clean_session(false)
            .reconnect_retries(None);
        let client = MqttClient::new(Some("crash-subscriber"), config);
        // Reconnects within one run are part of the context a failure is replayed from.
        let mut events = client.connection_events();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                println!("{PREFIX}event {event:?}");
            }
        });
        let connack = client.connect(uri.as_str()).await.unwrap();
        if !connack.session_present {
            client
                .subscribe([("exactly/#", QoS::ExactlyOnce)])
                .await
                .unwrap();
        }
        println!("{PREFIX}connected");
        let mut messages = std::pin::pin!(client.messages());
        while let Some(message) = messages.next().await {
            // The application's record of what it processed: the parent reads it from the
            // pipe, which survives this process.
            let payload = String::from_utf8(message.payload().to_vec()).unwrap();
            println!("{PREFIX}got {payload}");
        }
    });
}

/// What the proxy withholds on the connections it accepts from now on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Withhold {
    Nothing,
    /// PUBREC from the client: the broker re-sends the PUBLISH (DUP) after a reconnect.
    PubRec,
    /// PUBREL from the broker: the broker re-sends the PUBREL after a reconnect.
    PubRel,
}

/// What the proxy saw of one QoS 2 message (named by its payload) on every connection.
#[derive(Clone, Copy, Default, Debug)]
struct Flow {
    /// PUBRECs the client sent for it that the proxy dropped / forwarded. A PUBREC from the
    /// client is the client's promise that the message is recorded as received (write-ahead:
    /// its record is durable before the PUBREC's bytes leave).
    pubrec_withheld: u32,
    pubrec_passed: u32,
    /// PUBRELs the broker sent for it that the proxy dropped / forwarded: the broker has
    /// the client's PUBREC.
    pubrel_withheld: u32,
    pubrel_passed: u32,
    /// PUBCOMPs the client sent: the flow is over at the broker once one is forwarded.
    pubcomp: u32,
}

/// Everything the proxy saw, by message: the kill condition reads it, and a failure prints
/// the trace of the messages concerned.
struct Ledger {
    /// Packet identifier -> payload of the latest QoS 2 PUBLISH the broker sent with it. The
    /// broker reuses an identifier only after its flow completed, so the acknowledgements
    /// that name an identifier always belong to the latest PUBLISH with it.
    ids: HashMap<u16, String>,
    flows: HashMap<String, Flow>,
    /// One line per packet of a QoS 2 flow: connection, time, direction, what, id, payload.
    trace: Vec<String>,
    started: Instant,
    dup_publish: u64,
}

impl Ledger {
    fn new() -> Self {
        Self {
            ids: HashMap::new(),
            flows: HashMap::new(),
            trace: Vec::new(),
            started: Instant::now(),
            dup_publish: 0,
        }
    }

    /// Notes one packet of connection `conn`; returns whether the proxy drops it.
    fn packet(&mut self, conn: u64, mode: Withhold, to_broker: bool, packet: &[u8]) -> bool {
        let (kind, flags) = (packet[0] >> 4, packet[0] & 0x0f);
        let body = &packet[fixed_header_len(packet)..];
        let id = |at: usize| {
            body.get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        let (what, id) = match (kind, to_broker) {
            (3, false) if (flags >> 1) & 3 == 2 => {
                let topic_len = usize::from(id(0).unwrap());
                let packet_id = id(2 + topic_len).unwrap();
                let payload = String::from_utf8_lossy(&body[4 + topic_len..]).into_owned();
                let dup = flags & 0x08 != 0;
                self.dup_publish += u64::from(dup);
                self.ids.insert(packet_id, payload);
                (if dup { "PUBLISH dup" } else { "PUBLISH" }, packet_id)
            }
            (5, true) => ("PUBREC", id(0).unwrap()),
            (6, false) => ("PUBREL", id(0).unwrap()),
            (7, true) => ("PUBCOMP", id(0).unwrap()),
            _ => return false,
        };
        let drop = match what {
            "PUBREC" => mode == Withhold::PubRec,
            "PUBREL" => mode == Withhold::PubRel,
            _ => false,
        };
        let payload = self.ids.get(&id).cloned().unwrap_or_default();
        let flow = self.flows.entry(payload.clone()).or_default();
        match (what, drop) {
            ("PUBREC", true) => flow.pubrec_withheld += 1,
            ("PUBREC", false) => flow.pubrec_passed += 1,
            ("PUBREL", true) => flow.pubrel_withheld += 1,
            ("PUBREL", false) => flow.pubrel_passed += 1,
            ("PUBCOMP", _) => flow.pubcomp += 1,
            _ => {}
        }
        self.trace.push(format!(
            "conn {conn} {:>6} ms {} {what} id {id} {payload}{}",
            self.started.elapsed().as_millis(),
            if to_broker { "->broker" } else { "<-broker" },
            if drop { " (withheld)" } else { "" },
        ));
        drop
    }

    /// Packets withheld so far in `mode` (PUBRECs or PUBRELs).
    fn withheld(&self, mode: Withhold) -> u64 {
        self.flows
            .values()
            .map(|f| match mode {
                Withhold::PubRec => u64::from(f.pubrec_withheld),
                Withhold::PubRel => u64::from(f.pubrel_withheld),
                Withhold::Nothing => 0,
            })
            .sum()
    }

    fn flow(&self, payload: &str) -> Flow {
        self.flows.get(payload).copied().unwrap_or_default()
    }

    /// The trace lines of `payloads`' flows.
    fn trace_of<'a>(&'a self, payloads: &'a [&String]) -> impl Iterator<Item = &'a String> {
        self.trace.iter().filter(|line| {
            payloads
                .iter()
                .any(|p| line.ends_with(p.as_str()) || line.contains(&format!("{p} ")))
        })
    }
}

/// Length of an MQTT fixed header: the type byte and the remaining length's bytes.
fn fixed_header_len(packet: &[u8]) -> usize {
    1 + packet[1..].iter().position(|b| b & 0x80 == 0).unwrap() + 1
}

/// A TCP proxy in front of the broker that understands MQTT framing well enough to drop one
/// packet type per direction, and notes every QoS 2 packet in its [`Ledger`].
struct Proxy {
    port: u16,
    mode: Arc<Mutex<Withhold>>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(broker_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(Withhold::Nothing));
        let ledger = Arc::new(Mutex::new(Ledger::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, l, s) = (mode.clone(), ledger.clone(), stop.clone());
        std::thread::spawn(move || {
            for (conn, client) in (1u64..).zip(listener.incoming()) {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let broker = TcpStream::connect(("127.0.0.1", broker_port)).unwrap();
                let mode = *m.lock().unwrap();
                l.lock()
                    .unwrap()
                    .trace
                    .push(format!("conn {conn} accepted, {mode:?} withheld"));
                let (l1, l2) = (l.clone(), l.clone());
                let (client2, broker2) = (client.try_clone().unwrap(), broker.try_clone().unwrap());
                std::thread::spawn(move || {
                    pump(client, broker, |packet| {
                        l1.lock().unwrap().packet(conn, mode, true, packet)
                    });
                });
                std::thread::spawn(move || {
                    pump(broker2, client2, |packet| {
                        l2.lock().unwrap().packet(conn, mode, false, packet)
                    });
                });
            }
        });
        Self {
            port,
            mode,
            ledger,
            stop,
        }
    }

    fn set(&self, mode: Withhold) {
        *self.mode.lock().unwrap() = mode;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies whole MQTT packets from `from` to `to`, dropping those `drop(packet)` names.
fn pump(mut from: TcpStream, mut to: TcpStream, mut drop: impl FnMut(&[u8]) -> bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            // Fixed header: type/flags byte, then a variable-length remaining length.
            let mut len = 0usize;
            let mut shift = 0;
            let mut at = 1;
            let complete = loop {
                let Some(&byte) = buf.get(at) else {
                    break false;
                };
                len |= usize::from(byte & 0x7f) << shift;
                shift += 7;
                at += 1;
                if byte & 0x80 == 0 {
                    break true;
                }
            };
            if !complete || buf.len() < at + len {
                break;
            }
            let packet: Vec<u8> = buf.drain(..at + len).collect();
            if !drop(&packet) && to.write_all(&packet).is_err() {
                return;
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// The messages of `round` the child's application printed.
fn batch_printed(lines: &[String], round: usize) -> usize {
    let prefix = format!("got r{round}-");
    lines.iter().filter(|l| l.starts_with(&prefix)).count()
}

/// The messages `mode` must have caught in `round` before the kill: those whose PUBREC the
/// client sent and the proxy withheld (so the client recorded them as received), or whose
/// PUBREL the broker sent and the proxy withheld (so the broker has the client's PUBREC):
/// this round's, and after a PUBREC round, the last round's, which the broker re-sent at
/// the connect. Returns those not caught yet.
fn not_yet_caught(ledger: &Ledger, mode: Withhold, round: usize) -> Vec<String> {
    let rounds = match mode {
        Withhold::PubRel if round > 0 => round - 1..=round,
        _ => round..=round,
    };
    rounds
        .flat_map(|r| (0..SUB_BATCH).map(move |i| format!("r{r}-{i}")))
        .filter(|payload| {
            let flow = ledger.flow(payload);
            match mode {
                Withhold::PubRec => flow.pubrec_withheld == 0,
                _ => flow.pubrel_withheld == 0,
            }
        })
        .collect()
}

fn subscriber_exactly_once_across_sigkill() {
    let broker = Mosquitto::builder()
        .persistence(true)
        .extra_config(BROKER_CONFIG)
        .start();
    let proxy = Proxy::start(broker.port());
    let proxy_uri = format!("mqtt://127.0.0.1:{}", proxy.port);
    let store = store_dir("crash-subscriber");
    eprintln!(
        "subscriber test: broker port {}, proxy port {}, store {}",
        broker.port(),
        proxy.port,
        store.display()
    );
    let vars = vec![
        ("CRASH_URI", proxy_uri),
        ("CRASH_STORE", store.display().to_string()),
    ];
    let rt = runtime();
    let publisher = rt.block_on(async {
        let client = MqttClient::new(Some("crash-source"), ClientConfig::default());
        client.connect(broker.uri().as_str()).await.unwrap();
        client
    });

    // What the application printed, in order, with the run that printed it.
    let mut seen: Vec<(usize, String)> = Vec::new();
    let mut child_lines: Vec<(usize, String)> = Vec::new();
    let record = |run: usize,
                  lines: Vec<String>,
                  seen: &mut Vec<(usize, String)>,
                  child_lines: &mut Vec<(usize, String)>| {
        for line in lines {
            if let Some(payload) = line.strip_prefix("got ") {
                seen.push((run, payload.to_owned()));
            }
            child_lines.push((run, line));
        }
    };
    let mut sent = Vec::new();
    for round in 0..SUB_ROUNDS {
        let mode = if round % 2 == 0 {
            Withhold::PubRec
        } else {
            Withhold::PubRel
        };
        proxy.set(mode);
        let withheld_before = {
            let mut ledger = proxy.ledger.lock().unwrap();
            ledger
                .trace
                .push(format!("round {round}: {mode:?} withheld"));
            ledger.withheld(mode)
        };
        let child = ChildProc::spawn("subscriber", &vars);
        let mut lines = Vec::new();
        loop {
            let line = child
                .line(Duration::from_secs(20))
                .expect("subscriber child did not connect");
            let connected = line == "connected";
            lines.push(line);
            if connected {
                break;
            }
        }
        let batch: Vec<String> = (0..SUB_BATCH).map(|i| format!("r{round}-{i}")).collect();
        rt.block_on(async {
            for payload in &batch {
                publisher
                    .publish("exactly/x", payload.clone())
                    .qos(QoS::ExactlyOnce)
                    .await
                    .unwrap();
            }
        });
        sent.extend(batch);
        // The kill comes between PUBREC and PUBREL of every message in play, and after the
        // application printed each: the proxy withheld this message's PUBREC (so the client
        // had recorded it as received) or its PUBREL (so the broker had the PUBREC). Counting
        // withheld packets instead is not enough: a PUBREL the broker re-sends (after a
        // reconnect of the child) counts twice, and the kill can then come after a message
        // was printed but before its PUBREC left: its re-delivery is then the documented
        // behaviour (see docs/decisions.md), not an exactly-once violation.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut counted_early = false;
        loop {
            let (missing, withheld) = {
                let ledger = proxy.ledger.lock().unwrap();
                let withheld = ledger.withheld(mode) - withheld_before;
                (not_yet_caught(&ledger, mode, round), withheld)
            };
            let printed = batch_printed(&lines, round);
            if missing.is_empty() && printed >= SUB_BATCH {
                break;
            }
            // The rule this test used to kill by (a count of withheld packets): say when it
            // would have killed too early, with which messages not acknowledged.
            let expected = match (mode, round) {
                (Withhold::PubRel, r) if r > 0 => 2 * SUB_BATCH as u64,
                _ => SUB_BATCH as u64,
            };
            if !counted_early && withheld >= expected && printed >= SUB_BATCH {
                counted_early = true;
                eprintln!(
                    "round {round}: {withheld} packets withheld, so counting would kill now, \
                     but {} messages are not caught between PUBREC and PUBREL: {missing:?}",
                    missing.len()
                );
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: {} messages not caught between PUBREC and PUBREL ({:?}), \
                 {printed} printed",
                missing.len(),
                &missing[..missing.len().min(8)]
            );
            if let Some(line) = child.line(Duration::from_millis(20)) {
                lines.push(line);
            }
        }
        lines.extend(child.kill());
        record(round, lines, &mut seen, &mut child_lines);
        eprintln!("round {round} ({mode:?}): killed between PUBREC and PUBREL");
    }
    // A last run with nothing withheld settles every flow: it ends once every message was
    // printed and the client's PUBCOMP of each went to the broker (nothing is left to re-send).
    proxy.set(Withhold::Nothing);
    proxy
        .ledger
        .lock()
        .unwrap()
        .trace
        .push("last run: nothing withheld".into());
    let child = ChildProc::spawn("subscriber", &vars);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let settled = {
            let ledger = proxy.ledger.lock().unwrap();
            sent.iter().all(|p| ledger.flow(p).pubcomp > 0)
        };
        let printed: BTreeSet<&str> = seen
            .iter()
            .map(|(_, p)| p.as_str())
            .chain(lines.iter().filter_map(|l: &String| l.strip_prefix("got ")))
            .collect();
        if settled && sent.iter().all(|p| printed.contains(p.as_str())) || Instant::now() > deadline
        {
            break;
        }
        if let Some(line) = child.line(Duration::from_millis(100)) {
            lines.push(line);
        }
    }
    // Time for a duplicate to show up.
    while let Some(line) = child.line(Duration::from_millis(300)) {
        lines.push(line);
    }
    lines.extend(child.kill());
    record(SUB_ROUNDS, lines, &mut seen, &mut child_lines);

    let mut count: HashMap<&String, u32> = HashMap::new();
    for (_, payload) in &seen {
        *count.entry(payload).or_default() += 1;
    }
    let missing: Vec<&String> = sent.iter().filter(|p| !count.contains_key(*p)).collect();
    let twice: Vec<&String> = sent.iter().filter(|p| count.get(*p) > Some(&1)).collect();
    if !missing.is_empty() || !twice.is_empty() {
        // The context to replay the failure from: what each run printed and did, and every
        // packet of the messages concerned as the proxy saw it.
        let ledger = proxy.ledger.lock().unwrap();
        let concerned: Vec<&String> = missing.iter().chain(&twice).copied().collect();
        eprintln!("--- child runs (run {SUB_ROUNDS} is the last, settling one) ---");
        for (run, line) in &child_lines {
            if !line.starts_with("got ") || concerned.iter().any(|p| line.ends_with(p.as_str())) {
                eprintln!("run {run}: {line}");
            }
        }
        eprintln!("--- proxy trace of {concerned:?} ---");
        for line in ledger
            .trace
            .iter()
            .filter(|l| l.contains("accepted") || l.starts_with("round") || l.starts_with("last"))
            .chain(ledger.trace_of(&concerned))
        {
            eprintln!("{line}");
        }
    }
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    {
        let ledger = proxy.ledger.lock().unwrap();
        let open: Vec<&String> = sent
            .iter()
            .filter(|p| ledger.flow(p).pubcomp == 0)
            .collect();
        assert!(open.is_empty(), "flows never completed: {open:?}");
        let dups = ledger.dup_publish;
        assert!(
            dups >= (SUB_BATCH * SUB_ROUNDS.div_ceil(2)) as u64,
            "the broker re-sent only {dups} PUBLISH with DUP: the store's dedupe was not exercised"
        );
        eprintln!(
            "{} messages over {SUB_ROUNDS} kills between PUBREC and PUBREL, each seen once; \
             {dups} re-sent PUBLISH (DUP) recognised from the store",
            sent.len()
        );
    }
    rt.block_on(publisher.disconnect()).unwrap();
    drop(proxy);
    let _ = std::fs::remove_dir_all(&store);
}

// ---- full disk ----------------------------------------------------------------------------

/// A small tmpfs, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = store_dir("full-disk");
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "mounting a {size} tmpfs at {} failed: this test needs root (CI runs as root)",
            dir.display()
        );
        Self(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The store's disk fills up: the publish whose record cannot be synced fails with
/// `ClientError::Store(StoreError::Full)` and is never sent; every message stored before it
/// was delivered, and the store still opens with what it held.
fn publish_on_a_full_disk_fails_with_a_typed_error() {
    let disk = SmallDisk::mount("256k");
    let store = disk.0.join("store");
    let broker = Mosquitto::builder()
        .persistence(true)
        .extra_config(BROKER_CONFIG)
        .start();
    let uri = broker.uri();
    let rt = runtime();
    let received: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    rt.block_on(async {
        let counter = MqttClient::new(Some("full-counter"), ClientConfig::default());
        counter.connect(uri.as_str()).await.unwrap();
        counter
            .subscribe([("full/#", QoS::AtLeastOnce)])
            .await
            .unwrap();
        let messages = counter.messages();
        let sink = received.clone();
        tokio::spawn(async move {
            let mut messages = std::pin::pin!(messages);
            while let Some(message) = messages.next().await {
                let k = String::from_utf8(message.payload()[..8].to_vec()).unwrap();
                sink.lock().unwrap().insert(k.trim().parse().unwrap());
            }
        });

        let config = ClientConfig::default()
            .session_store(store.clone())
            .clean_session(false)
            .reconnect_retries(Some(0));
        let client = MqttClient::new(Some("full-publisher"), config);
        client.connect(uri.as_str()).await.unwrap();
        let mut completed = Vec::new();
        let mut failed = None;
        for k in 0..1_000u64 {
            // 8 digits, then 16 KiB of filler: the log outgrows 256 KiB after about 15.
            let mut payload = format!("{k:<8}").into_bytes();
            payload.resize(16 * 1024, b'x');
            let stored = client
                .publish(format!("full/{k}"), payload)
                .qos(QoS::AtLeastOnce)
                .stored()
                .await;
            match stored {
                Ok(done) => {
                    done.await.unwrap();
                    completed.push(k);
                }
                Err(ClientError::Store(StoreError::Full)) => {
                    failed = Some(k);
                    break;
                }
                Err(other) => panic!("publish {k}: expected a full store, got {other}"),
            }
        }
        let failed = failed.expect("the 256 KiB disk never filled up");
        assert!(!completed.is_empty());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let received = received.lock().unwrap().clone();
        for k in &completed {
            assert!(received.contains(k), "stored message {k} never arrived");
        }
        assert!(
            !received.contains(&failed),
            "message {failed} failed in the store but was sent"
        );
        let _ = client.disconnect().await;
        client.closed().await;
        eprintln!(
            "{} messages stored and delivered, message {failed} failed with a full store",
            completed.len()
        );
    });
    // The store's lock goes with its session, which the connection task owns: shutting the
    // runtime down drops every task, so the store is closed before it is opened again here
    // (without this, a task still winding down held the lock: `StoreError::Locked`).
    drop(rt);
    // What was synced is intact: the store opens (recovering a torn tail if any).
    let reopened = sansmqtt_tokio::FileStore::open(&store).unwrap();
    eprintln!("store reopened: {:?}", reopened.stats());
    drop(reopened);
    drop(disk);
}

// ---- the store's lock ---------------------------------------------------------------------

/// Holds a store (connected, so its session is open on it) until it is killed.
fn holder_child() {
    let uri = env("CRASH_URI");
    let store = env("CRASH_STORE");
    runtime().block_on(async move {
        let config = ClientConfig::default()
            .session_store(store)
            .clean_session(false);
        let client = MqttClient::new(Some("lock-holder"), config);
        client.connect(uri.as_str()).await.unwrap();
        println!("{PREFIX}holding");
        std::future::pending::<()>().await;
    });
}

fn a_store_is_locked_by_one_process_and_freed_by_its_death() {
    let broker = Mosquitto::builder().start();
    let uri = broker.uri();
    let store = store_dir("lock");
    let holder = ChildProc::spawn(
        "holder",
        &[
            ("CRASH_URI", uri.clone()),
            ("CRASH_STORE", store.display().to_string()),
        ],
    );
    assert_eq!(
        holder.line(Duration::from_secs(20)).as_deref(),
        Some("holding")
    );
    let holder_pid = holder.child.id();
    let rt = runtime();
    rt.block_on(async {
        let config = ClientConfig::default()
            .session_store(store.clone())
            .clean_session(false);
        let client = MqttClient::new(Some("lock-second"), config.clone());
        match client.connect(uri.as_str()).await {
            Err(ClientError::Store(StoreError::Locked { dir, pid })) => {
                assert_eq!(dir, store);
                assert_eq!(pid, Some(holder_pid));
            }
            other => panic!("a second process opened a held store: {other:?}"),
        }
        // The lock goes with the process: no clean-up after a SIGKILL.
        holder.kill();
        let client = MqttClient::new(Some("lock-second"), config);
        client.connect(uri.as_str()).await.unwrap();
        client.disconnect().await.unwrap();
    });
    eprintln!("second process refused while the holder lived, admitted after its SIGKILL");
}

// ---- subscriptions kept in the store ------------------------------------------------------

/// Subscribes (with `CRASH_SUBSCRIBE`) or only connects, then prints every message.
fn restorer_child() {
    let uri = env("CRASH_URI");
    let store = env("CRASH_STORE");
    runtime().block_on(async move {
        let config = ClientConfig::default()
            .session_store(store)
            .clean_session(false);
        let client = MqttClient::new(Some("restorer"), config);
        client.connect(uri.as_str()).await.unwrap();
        if std::env::var("CRASH_SUBSCRIBE").is_ok() {
            client
                .subscribe([("restore/#", QoS::AtLeastOnce)])
                .await
                .unwrap();
            println!("{PREFIX}subscribed");
        } else {
            println!("{PREFIX}connected");
        }
        let mut messages = std::pin::pin!(client.messages());
        while let Some(message) = messages.next().await {
            println!("{PREFIX}got {}", String::from_utf8_lossy(message.payload()));
        }
    });
}

fn subscriptions_come_back_after_a_sigkill_without_resubscribing() {
    let store = store_dir("restore");
    let first = Mosquitto::builder().start();
    let vars = |uri: String| {
        vec![
            ("CRASH_URI", uri),
            ("CRASH_STORE", store.display().to_string()),
        ]
    };
    let mut with_subscribe = vars(first.uri());
    with_subscribe.push(("CRASH_SUBSCRIBE", "1".to_owned()));
    let child = ChildProc::spawn("restorer", &with_subscribe);
    assert_eq!(
        child.line(Duration::from_secs(20)).as_deref(),
        Some("subscribed")
    );
    child.kill();
    // A broker that never saw this client: CONNACK says there is no session.
    drop(first);
    let second = Mosquitto::builder().start();
    let child = ChildProc::spawn("restorer", &vars(second.uri()));
    assert_eq!(
        child.line(Duration::from_secs(20)).as_deref(),
        Some("connected")
    );
    let rt = runtime();
    let uri = second.uri();
    let mut got = BTreeSet::new();
    rt.block_on(async {
        let publisher = MqttClient::new(Some("restore-publisher"), ClientConfig::default());
        publisher.connect(uri.as_str()).await.unwrap();
        // The re-subscription goes out right after CONNACK; publish until it is in place.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut k = 0u64;
        while got.len() < 5 && Instant::now() < deadline {
            publisher
                .publish(format!("restore/{k}"), k.to_string())
                .qos(QoS::AtLeastOnce)
                .await
                .unwrap();
            k += 1;
            while let Some(line) = child.line(Duration::from_millis(100)) {
                got.insert(line);
            }
        }
        publisher.disconnect().await.unwrap();
    });
    assert!(
        got.len() >= 5,
        "the restarted client received {got:?}: its subscription was not restored"
    );
    eprintln!(
        "the restarted client received {} messages without subscribing",
        got.len()
    );
}

// ---- publishes accepted while offline -----------------------------------------------------

/// Messages of each QoS the offline publisher sends.
const OFFLINE_EACH: u64 = 300;

/// With `CRASH_PUBLISH`: publishes `OFFLINE_EACH` QoS 1 and QoS 2 messages while its broker
/// (`CRASH_URI`) is unreachable, prints "stored" once every `stored()` resolved, and waits to be
/// killed. Without: connects and prints "connected" once the broker accepted it.
fn offline_child() {
    let uri = env("CRASH_URI");
    let store = env("CRASH_STORE");
    runtime().block_on(async move {
        let config = ClientConfig::default()
            .session_store(store)
            .clean_session(false)
            .auto_reconnect(true)
            .reconnect_retries(None)
            .reconnect_max_interval(Duration::from_millis(200));
        let client = MqttClient::new(Some("offline-publisher"), config);
        let mut status = client.connection_events();
        let connecting = tokio::spawn({
            let client = client.clone();
            async move { client.connect(uri.as_str()).await }
        });
        if std::env::var("CRASH_PUBLISH").is_err() {
            connecting.await.unwrap().unwrap();
            println!("{PREFIX}connected");
            // Report what it recovered, for the parent's log.
            while let Some(event) = status.next().await {
                eprintln!("offline child: {event:?}");
            }
            return;
        }
        // The driver accepts publishes once `connect` has started it (it keeps retrying).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match client
                .publish("offline/probe", "x")
                .qos(QoS::AtMostOnce)
                .await
            {
                Ok(_) => break,
                Err(ClientError::NotConnected) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(err) => panic!("the offline client accepts no publish: {err}"),
            }
        }
        let mut stored = FuturesOrdered::new();
        for k in 0..2 * OFFLINE_EACH {
            let qos = if k % 2 == 0 {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            };
            let storing = client
                .publish(format!("offline/{k}"), k.to_string())
                .qos(qos)
                .stored();
            stored.push_back(async move { (k, storing.await) });
        }
        while let Some((k, result)) = stored.next().await {
            if let Err(err) = result {
                panic!("offline publish {k} not stored: {err}");
            }
        }
        assert!(
            !connecting.is_finished(),
            "the publisher connected: the test needs it offline"
        );
        println!("{PREFIX}stored");
        std::future::pending::<()>().await;
    });
}

fn offline_publishes_survive_a_sigkill_before_the_first_connection() {
    let store = store_dir("offline");
    // A port nobody listens on: the first child never reaches a broker.
    let unreachable = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("mqtt://127.0.0.1:{}", listener.local_addr().unwrap().port())
    };
    let vars = |uri: String| {
        vec![
            ("CRASH_URI", uri),
            ("CRASH_STORE", store.display().to_string()),
        ]
    };
    let mut publishing = vars(unreachable);
    publishing.push(("CRASH_PUBLISH", "1".to_owned()));
    let child = ChildProc::spawn("offline", &publishing);
    assert_eq!(
        child.line(Duration::from_secs(60)).as_deref(),
        Some("stored"),
        "the offline publisher did not report its messages stored"
    );
    child.kill();

    let broker = Mosquitto::builder().extra_config(BROKER_CONFIG).start();
    let uri = broker.uri();
    let rt = runtime();
    let counts = Arc::new(Mutex::new(HashMap::<u64, u64>::new()));
    let subscriber = rt.block_on(async {
        let subscriber = MqttClient::new(Some("offline-subscriber"), ClientConfig::default());
        subscriber.connect(uri.as_str()).await.unwrap();
        subscriber
            .subscribe([("offline/#", QoS::ExactlyOnce)])
            .await
            .unwrap();
        let counts = counts.clone();
        let messages = subscriber.clone();
        tokio::spawn(async move {
            let mut messages = std::pin::pin!(messages.messages());
            while let Some(message) = messages.next().await {
                let k: u64 = String::from_utf8_lossy(message.payload()).parse().unwrap();
                *counts.lock().unwrap().entry(k).or_default() += 1;
            }
        });
        subscriber
    });
    let total = 2 * OFFLINE_EACH as usize;
    let wait_for = |what: &str, done: &dyn Fn(&HashMap<u64, u64>) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(&counts.lock().unwrap()) {
            assert!(
                Instant::now() < deadline,
                "{what}: {} of {total} messages arrived",
                counts.lock().unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // Same id, same store, a broker now: the recovered queue goes out.
    let resumed = ChildProc::spawn("offline", &vars(uri.clone()));
    assert_eq!(
        resumed.line(Duration::from_secs(20)).as_deref(),
        Some("connected")
    );
    wait_for("after the restart", &|counts| counts.len() >= total);
    // Time for duplicates to show, then kill it: its flows are done or nearly so.
    std::thread::sleep(Duration::from_secs(1));
    resumed.kill();
    let after_first = counts.lock().unwrap().clone();

    // A third process on the store: what the second one sent must not go out again as new
    // messages (a queued record left beside its flight would be).
    let again = ChildProc::spawn("offline", &vars(uri));
    assert_eq!(
        again.line(Duration::from_secs(20)).as_deref(),
        Some("connected")
    );
    std::thread::sleep(Duration::from_secs(2));
    again.kill();
    rt.block_on(async { subscriber.disconnect().await.unwrap() });

    let counts = counts.lock().unwrap().clone();
    let missing: Vec<u64> = (0..2 * OFFLINE_EACH)
        .filter(|k| !counts.contains_key(k))
        .collect();
    assert!(missing.is_empty(), "offline publishes lost: {missing:?}");
    let twice: Vec<(u64, u64)> = counts
        .iter()
        .filter(|(k, n)| *k % 2 == 1 && **n > 1)
        .map(|(k, n)| (*k, *n))
        .collect();
    assert!(
        twice.is_empty(),
        "QoS 2 messages delivered more than once: {twice:?}"
    );
    let duplicates = |counts: &HashMap<u64, u64>| -> u64 {
        counts
            .iter()
            .filter(|(k, _)| *k % 2 == 0)
            .map(|(_, n)| n - 1)
            .sum()
    };
    eprintln!(
        "{total} offline publishes stored before any connection, SIGKILLed, sent by the next \
         process: QoS 2 each exactly once; QoS 1 duplicates {} after the restart, {} more after \
         a second SIGKILL and restart",
        duplicates(&after_first),
        duplicates(&counts) - duplicates(&after_first)
    );
}
