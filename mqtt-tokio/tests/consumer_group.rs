//! Consumer groups with real processes: four worker processes share one subscription
//! (`$share/workers/cg/jobs`, through `subscribe_shared`) and take a QoS 1 stream of 100,000
//! messages from a private mosquitto, while one worker is SIGKILLed (and started again on its
//! persistent session) and another is slow.
//!
//! - Every message is processed: the union of what the workers recorded is all 100,000.
//! - Duplicates only where the kill allows them: a message recorded twice was recorded by the
//!   killed worker before the kill and handed to it again (DUP set) on its next connection,
//!   and the duplicates are exactly the last messages it recorded (it acknowledges in arrival
//!   order, so what it held unacknowledged at its death is a tail of its records).
//! - The slow worker's share shrinks instead of the stream stalling: mosquitto hands the
//!   members of a group messages in strict turn, whatever their backlog, so a member that falls
//!   behind steps out of the group (UNSUBSCRIBE) while it works off what it holds and joins
//!   again when it has caught up. Its share ends well below a fair quarter, and the stream
//!   completes within the run's deadline.
//!
//! Workers acknowledge manually (`manual_acks`), after recording a message, in batches of 10:
//! "recorded" is a line written to the parent's pipe before the PUBACK can leave. Workers 0 (killed) and 1
//! (slow) speak MQTT 3.1.1 (mosquitto's form of shared subscriptions), 2 and 3 MQTT 5.
//!
//! A custom harness (`harness = false`): the workers are this binary re-run with `CG_ROLE`;
//! libtest's command line comes from `libtest-mimic`.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mqtt_test_support::Mosquitto;
use sansmqtt_tokio::{ClientConfig, ClientError, MqttClient, ProtocolVersion, QoS};

/// Messages in the stream.
const TOTAL: u64 = 100_000;
/// The group and the topic.
const GROUP: &str = "workers";
const TOPIC: &str = "cg/jobs";
/// Workers; worker `KILLED` is killed once, worker `SLOW` sleeps per message.
const WORKERS: usize = 4;
const KILLED: usize = 0;
const SLOW: usize = 1;
/// The slow worker's time per message.
const SLOW_DELAY: Duration = Duration::from_millis(2);
/// Workers acknowledge what they recorded in batches of this many (or when no message came
/// for `CAUGHT_UP`), so a worker killed mid-stream holds recorded, unacknowledged messages.
const ACK_BATCH: usize = 10;
/// The killed worker dies once it has recorded this many messages.
const KILL_AFTER: usize = 3_000;
/// The broker's in-flight window per MQTT 3.1.1 client (mosquitto's `max_inflight_messages`,
/// its default).
const BROKER_INFLIGHT: usize = 20;
/// The MQTT 5 members' Receive Maximum and inbox.
const V5_WINDOW: u16 = 10_000;
/// A worker steps out of the group when it is the bottleneck: the message it takes is older
/// than `BEHIND`, its own inbox holds `BEHIND_BACKLOG` more, and its own work per message
/// (a moving average) exceeds `SLOW_WORK` (so a worker that is only descheduled for a moment
/// on a loaded machine, or behind a slow broker, stays). It joins again when a message is
/// younger than `CAUGHT_UP` or none came for that long. (If every member stepped out at once,
/// mosquitto would drop the messages published meanwhile: a group with no member has no
/// subscriber.)
const BEHIND: Duration = Duration::from_millis(200);
const BEHIND_BACKLOG: usize = 10;
const SLOW_WORK: Duration = Duration::from_micros(500);
const CAUGHT_UP: Duration = Duration::from_millis(50);
/// The whole stream must be processed within this.
const DEADLINE: Duration = Duration::from_secs(50);

fn main() -> std::process::ExitCode {
    mqtt_test_support::init_test_tracing();
    if let Ok(role) = std::env::var("CG_ROLE") {
        assert_eq!(role, "worker", "unknown CG_ROLE");
        worker();
        return std::process::ExitCode::SUCCESS;
    }
    // libtest's command line (`--list`, `--exact`, filters), as the other custom harnesses.
    let mut args = libtest_mimic::Arguments::from_args();
    args.test_threads = Some(1);
    let tests = vec![libtest_mimic::Trial::test(
        "shared_subscription_survives_a_killed_and_a_slow_worker",
        || {
            shared_subscription_survives_a_killed_and_a_slow_worker();
            Ok(())
        },
    )];
    libtest_mimic::run(&args, tests).exit_code()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

// ---------------------------------------------------------------------------------------------
// Worker process.
// ---------------------------------------------------------------------------------------------

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("worker needs {name}"))
}

/// One member of the group: records each message on stdout (`<seq> <dup>`), then
/// acknowledges it; steps out of the group while it is behind (see [`BEHIND`]).
fn worker() {
    let id: usize = env("CG_ID").parse().unwrap();
    let uri = env("CG_URI");
    let delay = Duration::from_micros(env("CG_DELAY_US").parse().unwrap());
    let version = if id >= 2 {
        ProtocolVersion::V5
    } else {
        ProtocolVersion::V311
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let config = ClientConfig::default()
            .protocol_version(version)
            .manual_acks(true)
            .clean_session(false)
            // MQTT 5: the session outlives the connection (3.1.1: as long as the broker runs).
            .session_expiry_interval(Duration::from_secs(600))
            // MQTT 5: mosquitto 2.0.11 sends one message more than the Receive Maximum once
            // the window has been full (seen with 20: after 21 acknowledgements it sent 21
            // more), which the client answers with DISCONNECT 0x93. A window far beyond what
            // a fast member ever holds keeps the fast MQTT 5 members clear of it.
            .receive_maximum(V5_WINDOW)
            .message_buffer(usize::from(V5_WINDOW))
            .auto_reconnect(false);
        let client = MqttClient::new(Some(&format!("cg-worker-{id}")), config);
        client.connect(uri.as_str()).await.unwrap();
        let granted = client
            .subscribe_shared(GROUP, TOPIC, QoS::AtLeastOnce)
            .await
            .unwrap();
        assert_eq!(granted, QoS::AtLeastOnce);
        println!("READY");
        let mut joined = true;
        // Moving average of the work per message, in microseconds.
        let mut work_us = 0.0f64;
        // Recorded, not yet acknowledged: acknowledged in batches, as an application that
        // commits its work in batches does.
        let mut held = Vec::with_capacity(ACK_BATCH);
        loop {
            let message = match client.deliver_message().timeout(CAUGHT_UP).await {
                Ok(message) => message,
                Err(ClientError::Timeout) => {
                    for message in held.drain(..) {
                        client.ack(&message);
                    }
                    if !joined {
                        client
                            .subscribe_shared(GROUP, TOPIC, QoS::AtLeastOnce)
                            .await
                            .unwrap();
                        joined = true;
                        println!("JOIN");
                    }
                    continue;
                }
                Err(err) => panic!("worker {id}: {err}"),
            };
            let text = std::str::from_utf8(message.payload()).unwrap();
            let (seq, sent) = text.split_once(' ').unwrap();
            let age = Duration::from_millis(now_ms().saturating_sub(sent.parse().unwrap()));
            let work_started = Instant::now();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            // Recorded (a line in the parent's pipe) before it is acknowledged.
            println!("{seq} {}", u8::from(message.dup()));
            held.push(message);
            if held.len() >= ACK_BATCH {
                for message in held.drain(..) {
                    client.ack(&message);
                }
            }
            work_us = 0.9 * work_us + 0.1 * work_started.elapsed().as_micros() as f64;
            let slow = work_us > SLOW_WORK.as_micros() as f64;
            if joined && slow && age > BEHIND && client.stats().messages_waiting >= BEHIND_BACKLOG {
                client
                    .unsubscribe([sansmqtt_tokio::SharedSubscription::new(GROUP, TOPIC).unwrap()])
                    .await
                    .unwrap();
                joined = false;
                println!("LEAVE");
            } else if !joined && age < CAUGHT_UP {
                client
                    .subscribe_shared(GROUP, TOPIC, QoS::AtLeastOnce)
                    .await
                    .unwrap();
                joined = true;
                println!("JOIN");
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Parent.
// ---------------------------------------------------------------------------------------------

/// One recorded message: which worker, which run of it, whether DUP was set.
#[derive(Debug, Clone, Copy)]
struct Record {
    worker: usize,
    incarnation: usize,
    dup: bool,
}

#[derive(Default)]
struct Ledger {
    /// Every record of every sequence number, in the order the parent read them.
    records: HashMap<u64, Vec<Record>>,
    per_worker: [usize; WORKERS],
    leaves: usize,
    joins: usize,
}

/// A running worker and the thread reading its records.
struct Worker {
    child: Child,
    reader: Option<std::thread::JoinHandle<()>>,
}

fn spawn_worker(id: usize, incarnation: usize, uri: &str, ledger: &Arc<Mutex<Ledger>>) -> Worker {
    let delay = if id == SLOW {
        SLOW_DELAY
    } else {
        Duration::ZERO
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("CG_ROLE", "worker")
        .env("CG_ID", id.to_string())
        .env("CG_URI", uri)
        .env("CG_DELAY_US", delay.as_micros().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let ledger = ledger.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut ledger = ledger.lock().unwrap();
            match line.as_str() {
                "READY" => {
                    let _ = ready_tx.send(());
                }
                "LEAVE" => ledger.leaves += 1,
                "JOIN" => ledger.joins += 1,
                _ => {
                    let parsed = line
                        .split_once(' ')
                        .and_then(|(seq, dup)| Some((seq.parse::<u64>().ok()?, dup == "1")));
                    // Anything else is the worker's tracing output (`RUST_LOG`).
                    let Some((seq, dup)) = parsed else {
                        eprintln!("worker {id}: {line}");
                        continue;
                    };
                    let record = Record {
                        worker: id,
                        incarnation,
                        dup,
                    };
                    ledger.records.entry(seq).or_default().push(record);
                    ledger.per_worker[id] += 1;
                }
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("worker {id} did not subscribe within 10 s"));
    Worker {
        child,
        reader: Some(reader),
    }
}

impl Worker {
    /// SIGKILL, then wait until every line it wrote has been read.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn shared_subscription_survives_a_killed_and_a_slow_worker() {
    // No queue limit: mosquitto would drop QoS 1 messages queued for a member beyond 1000.
    let broker = Mosquitto::builder()
        .extra_config(&format!(
            "max_queued_messages 0\nmax_inflight_messages {BROKER_INFLIGHT}"
        ))
        .start();
    let uri = broker.uri();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|id| spawn_worker(id, 0, &uri, &ledger))
        .collect();

    // The publisher: its own thread, 100 QoS 1 publishes in flight.
    let started = Instant::now();
    let publisher = {
        let uri = uri.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let client = MqttClient::new(
                    Some("cg-publisher"),
                    ClientConfig::default().max_inflight(100),
                );
                client.connect(uri.as_str()).await.unwrap();
                let mut pending: std::collections::VecDeque<sansmqtt_tokio::PublishFuture> =
                    std::collections::VecDeque::new();
                for seq in 0..TOTAL {
                    if pending.len() >= 100 {
                        let oldest = pending.pop_front().unwrap();
                        oldest.await.unwrap();
                    }
                    let payload = format!("{seq} {}", now_ms());
                    pending.push_back(client.publish(TOPIC, payload).qos(QoS::AtLeastOnce).start());
                }
                for future in pending {
                    future.await.unwrap();
                }
                client.disconnect().await.unwrap();
            });
            Instant::now()
        })
    };

    // Kill the worker mid-stream, start it again on its session.
    let kill_deadline = Instant::now() + Duration::from_secs(30);
    while ledger.lock().unwrap().per_worker[KILLED] < KILL_AFTER {
        assert!(
            Instant::now() < kill_deadline,
            "worker {KILLED} recorded fewer than {KILL_AFTER} messages in 30 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    workers[KILLED].kill();
    let killed_records: Vec<u64> = {
        let ledger = ledger.lock().unwrap();
        ledger
            .records
            .iter()
            .filter(|(_, r)| r.iter().any(|r| r.worker == KILLED))
            .map(|(seq, _)| *seq)
            .collect()
    };
    eprintln!(
        "killed worker {KILLED} after {} records ({:.1?} in)",
        killed_records.len(),
        started.elapsed()
    );
    std::thread::sleep(Duration::from_millis(500));
    workers[KILLED] = spawn_worker(KILLED, 1, &uri, &ledger);

    let published_at = publisher.join().unwrap();
    eprintln!("published {TOTAL} in {:.1?}", published_at - started);
    let deadline = started + DEADLINE;
    loop {
        let done = ledger.lock().unwrap().records.len() as u64;
        if done == TOTAL {
            break;
        }
        if Instant::now() > deadline {
            let log = broker.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "the stream stalled: {done} of {TOTAL} messages processed after {DEADLINE:?}; \
                 per worker {:?}; broker log (last lines, newest first):\n{}",
                ledger.lock().unwrap().per_worker,
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let finished = started.elapsed();
    for worker in &mut workers {
        worker.kill();
    }
    let ledger = ledger.lock().unwrap();
    eprintln!(
        "processed {TOTAL} in {finished:.1?} (publishing took {:.1?}); per worker {:?}; slow \
         worker left the group {} times, joined again {} times",
        published_at - started,
        ledger.per_worker,
        ledger.leaves,
        ledger.joins,
    );

    // Every message, each processed once, but for the killed worker's unacknowledged ones.
    assert!((0..TOTAL).all(|seq| ledger.records.contains_key(&seq)));
    // Duplicates of the killed worker's unacknowledged tail (first seen before the kill, seen
    // again flagged DUP after the restart), and QoS 1 re-deliveries to the restarted worker
    // itself: mosquitto 2.0.11, resuming the session, has been seen to send a queued message
    // and then re-send it with DUP on the same connection (at least once allows it; it was seen
    // once in CI under load). Any other duplicate fails.
    let mut duplicates = 0;
    let mut resumed_redeliveries = 0;
    for (seq, records) in &ledger.records {
        if records.len() == 1 {
            continue;
        }
        assert_eq!(
            records.len(),
            2,
            "message {seq} processed 3 times or more: {records:?}"
        );
        let (first, again) = (records[0], records[1]);
        assert!(
            first.worker == KILLED && again.worker == KILLED && again.incarnation == 1 && again.dup,
            "message {seq} duplicated other than by the killed worker's redelivery: {records:?}"
        );
        if first.incarnation == 0 {
            duplicates += 1;
        } else {
            resumed_redeliveries += 1;
        }
    }
    eprintln!("re-deliveries within the resumed session: {resumed_redeliveries}");
    // The killed worker received its messages in publish order and acknowledged them in that
    // order: the ones it held unacknowledged when it died are the last it recorded, so the
    // duplicates must be exactly a tail of its records.
    let mut before_kill: Vec<u64> = ledger
        .records
        .iter()
        .filter(|(_, r)| r[0].worker == KILLED && r[0].incarnation == 0)
        .map(|(seq, _)| *seq)
        .collect();
    before_kill.sort_unstable();
    let tail = &before_kill[before_kill.len() - duplicates..];
    assert!(
        tail.iter().all(|seq| ledger.records[seq].len() == 2),
        "the duplicates are not the last messages the killed worker recorded: {tail:?}"
    );
    // How many depends on the broker's window at the kill, which in mosquitto 2.0.11 drifts
    // above `max_inflight_messages` (up to 140 redeliveries seen with 20), so it is reported,
    // not bounded: the tail property above is what "held unacknowledged" means.
    eprintln!("{duplicates} duplicate(s), all redeliveries to the killed worker");

    // The slow worker's share shrank: well under a fair quarter.
    let slow_share = ledger.per_worker[SLOW] as f64 / TOTAL as f64;
    assert!(
        slow_share < 0.125,
        "the slow worker processed {:.1}% of the stream: its share did not shrink",
        slow_share * 100.0
    );
    assert!(
        ledger.leaves >= 1,
        "the slow worker never stepped out of the group"
    );
    drop(broker);
}
