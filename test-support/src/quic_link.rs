//! MQTT over QUIC against MQTT over TCP + TLS on an emulated link, measured: the code shared
//! by `mqtt-tokio/tests/quic_netem.rs` (which asserts that no QoS 1 message is lost and
//! prints the figures) and the benchmark (`e2e_bench --quic-link`, which writes them as JSON
//! records). Nothing here asserts on time: it counts and measures, the callers decide.
//!
//! [`LinkBed`] is the set-up: a [`NetemLink`], mosquitto (`mqtts://`) and mqtt5's broker
//! (`mqtts://` and `quic://`, the same broker over both) in namespace A. Two experiments run
//! over it, each from a client in namespace B:
//!
//! - [`lossy_stream`]: a window of QoS 1 messages to the client's own subscription at a
//!   given delay, jitter and loss: connect time, messages per second, p99 latency.
//! - [`disrupted_stream`]: a paced QoS 1 stream (publisher in B, subscriber in A, so only
//!   the publisher's path crosses the link) through a [`Disruption`]: the link cut for a
//!   while, or B's address changed under the connection. Counted: reconnects, messages lost
//!   and duplicated at the application; measured: the longest gap between deliveries and
//!   the time from the end of the disruption to the next delivery.
//!
//! The clients run on whatever executor the caller's [`BlockOn`] provides (a Tokio
//! current-thread runtime for `sansmqtt-tokio`), one per thread, each thread in the
//! namespace it needs.

use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use futures_util::future::FutureExt as _;
use futures_util::{StreamExt, stream};
use sansmqtt_client::proto::QoS;
use sansmqtt_client::{ClientConfig, ConnectionEvent, MqttClient, Runtime};

use crate::{Certs, LinkConditions, Mosquitto, NetemLink, QuicBroker};

/// Runs a future to completion on an executor the client's runtime works on (for
/// `sansmqtt-tokio`: a Tokio current-thread runtime built for the call). Results come out
/// through what the future borrows.
pub type BlockOn = for<'a> fn(Pin<Box<dyn Future<Output = ()> + 'a>>);

/// A [`BlockOn`] for `sansmqtt-tokio`: a Tokio current-thread runtime built for the call
/// (each client thread enters its own namespace, so each has its own runtime).
///
/// # Panics
///
/// If the runtime cannot be built.
pub fn tokio_block_on(future: Pin<Box<dyn Future<Output = ()> + '_>>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building a Tokio runtime")
        .block_on(future);
}

/// One transport to one broker: its name in the tables (`quic/mqtt5`) and its URI.
#[derive(Debug, Clone)]
pub struct Transport {
    /// `scheme/broker`: `mqtts/mosq`, `mqtts/mqtt5` or `quic/mqtt5`.
    pub name: &'static str,
    /// The broker's URI as seen from namespace B.
    pub uri: String,
}

/// The emulated link and the brokers behind it: mosquitto (TLS listener) and mqtt5 (QUIC
/// and TLS listeners), both in namespace A, with a throw-away CA. Dropping it stops the
/// brokers and deletes the namespaces.
pub struct LinkBed {
    // Field order is drop order: the brokers go before the namespaces they run in.
    quic_broker: QuicBroker,
    mosquitto: Mosquitto,
    link: NetemLink,
    certs: Certs,
}

impl std::fmt::Debug for LinkBed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkBed")
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl LinkBed {
    /// Creates the link (perfect to start with) and starts both brokers in namespace A.
    ///
    /// # Panics
    ///
    /// Without root, `/dev/net/tun`, iproute2 or mosquitto (the message says which).
    pub fn start() -> Self {
        let link = NetemLink::create();
        let certs = Certs::generate();
        let mosquitto = Mosquitto::builder()
            .netns(link.ns_a(), link.addr_a())
            .tls(&certs)
            .extra_config("max_inflight_messages 100")
            .start();
        let quic_broker = QuicBroker::start_in_netns(&certs, link.ns_a(), link.addr_a());
        Self {
            quic_broker,
            mosquitto,
            link,
            certs,
        }
    }

    /// The link, to change its conditions.
    pub fn link(&self) -> &NetemLink {
        &self.link
    }

    /// The CA file the clients trust.
    pub fn ca_file(&self) -> PathBuf {
        self.certs.ca_file()
    }

    /// The three transports compared: `mqtts/mosq`, `mqtts/mqtt5`, `quic/mqtt5`.
    pub fn transports(&self) -> Vec<Transport> {
        let mosquitto = format!(
            "mqtts://{}:{}",
            self.link.addr_a(),
            self.mosquitto.tls_port().expect("mosquitto's TLS port")
        );
        vec![
            Transport {
                name: "mqtts/mosq",
                uri: mosquitto,
            },
            Transport {
                name: "mqtts/mqtt5",
                uri: self.quic_broker.tls_uri(),
            },
            Transport {
                name: "quic/mqtt5",
                uri: self.quic_broker.uri(),
            },
        ]
    }
}

/// The client configuration of every experiment: the bed's CA, no host name check (the
/// test certificate names `localhost`, not namespace A's address), room for slow handshakes.
fn client_config(ca: &Path, keep_alive: Duration) -> ClientConfig {
    ClientConfig::default()
        .ca_file(ca)
        .check_hostname(false)
        .connect_timeout(Duration::from_secs(20))
        .keep_alive(keep_alive)
}

/// What one [`lossy_stream`] run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamFigures {
    /// From `connect` called to CONNACK (TCP + TLS + CONNECT, or QUIC + CONNECT).
    pub connect: Duration,
    /// Messages per second, from the first publish to the last message received.
    pub per_second: f64,
    /// 99th percentile of publish-to-delivery latency.
    pub p99: Duration,
    /// Distinct messages received (every one that was published, or the run panics).
    pub received: usize,
    /// Messages received more than once.
    pub duplicated: usize,
}

/// Publishes `messages` QoS 1 messages, `window` at a time, to a subscription of the same
/// client, and measures. Run it in namespace B.
///
/// # Panics
///
/// If connecting, subscribing or a publish fails, or if no message arrives for 60 s.
pub async fn lossy_stream<R: Runtime + Default>(
    uri: &str,
    ca: &Path,
    messages: usize,
    window: usize,
) -> StreamFigures {
    let client = MqttClient::<R>::new(None, client_config(ca, Duration::from_secs(30)));
    let started = Instant::now();
    client.connect(uri).await.expect("connect across the link");
    let connect = started.elapsed();
    client
        .subscribe([("cmp/#", QoS::AtLeastOnce)])
        .await
        .expect("subscribe");
    let sent = Arc::new(Mutex::new(vec![None::<Instant>; messages]));
    let start = Instant::now();
    let publishing = stream::iter(0..messages)
        .map(|i| {
            sent.lock().expect("lock")[i] = Some(Instant::now());
            client
                .publish("cmp/x", index_payload(i))
                .qos(QoS::AtLeastOnce)
                .ack_timeout(Duration::from_secs(60))
        })
        .buffer_unordered(window)
        .for_each(|result| {
            result.expect("publish");
            async {}
        });
    let receiving = async {
        let mut latencies = vec![None; messages];
        let (mut distinct, mut duplicated) = (0, 0);
        while distinct < messages {
            let message = client
                .deliver_message()
                .timeout(Duration::from_secs(60))
                .await
                .unwrap_or_else(|err| panic!("{distinct}/{messages} arrived, then {err:?}"));
            let index = payload_index(message.payload());
            if latencies[index].is_none() {
                let sent_at = sent.lock().expect("lock")[index].expect("sent before received");
                latencies[index] = Some(sent_at.elapsed());
                distinct += 1;
            } else {
                duplicated += 1;
            }
        }
        (start.elapsed(), latencies, duplicated)
    };
    let ((), (elapsed, latencies, duplicated)) = futures_util::join!(publishing, receiving);
    let mut latencies: Vec<Duration> = latencies.into_iter().flatten().collect();
    latencies.sort();
    let _ = client.disconnect().await;
    StreamFigures {
        connect,
        per_second: messages as f64 / elapsed.as_secs_f64(),
        p99: latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)],
        received: latencies.len(),
        duplicated,
    }
}

/// The lossy-link comparison's conditions: 50 ms ± 10 ms one way, with `loss`.
pub fn lossy_conditions(loss: f64) -> LinkConditions {
    LinkConditions::delay(Duration::from_millis(50), Duration::from_millis(10)).loss(loss)
}

/// One [`lossy_stream`] run in the comparison: which transport, which loss, which round.
#[derive(Debug, Clone)]
pub struct LossyRun {
    /// The transport's name.
    pub transport: &'static str,
    /// Loss probability per packet, each way.
    pub loss: f64,
    /// 1-based.
    pub round: usize,
    /// The figures.
    pub figures: StreamFigures,
}

/// The lossy-link comparison: for each loss in `losses`, each of `transports` (usually
/// [`LinkBed::transports`]), `rounds` runs of [`lossy_stream`] from namespace B. `each` sees
/// every run as it ends (to write it out); all runs are returned for [`lossy_table`].
pub fn lossy_comparison<R: Runtime + Default>(
    bed: &LinkBed,
    transports: &[Transport],
    losses: &[f64],
    rounds: usize,
    (messages, window): (usize, usize),
    block_on: BlockOn,
    mut each: impl FnMut(&LossyRun),
) -> Vec<LossyRun> {
    let ca = bed.ca_file();
    let mut runs = Vec::new();
    for &loss in losses {
        bed.link().set(lossy_conditions(loss));
        for transport in transports {
            for round in 1..=rounds {
                let figures = bed.link().run_in_b(|| {
                    let mut out = None;
                    block_on(Box::pin(async {
                        out = Some(lossy_stream::<R>(&transport.uri, &ca, messages, window).await);
                    }));
                    out.expect("the run completed")
                });
                let run = LossyRun {
                    transport: transport.name,
                    loss,
                    round,
                    figures,
                };
                each(&run);
                runs.push(run);
            }
        }
    }
    bed.link().set(LinkConditions::default());
    runs
}

/// The comparison as a table: per loss and transport, median [min-max] of connect time,
/// messages per second and p99.
pub fn lossy_table(runs: &[LossyRun]) -> String {
    let mut table = String::from(
        "| loss | transport   | connect ms     | msgs/s        | p99 ms        |\n\
         |------|-------------|----------------|---------------|---------------|\n",
    );
    let mut cells: Vec<(u64, &str)> = Vec::new();
    for run in runs {
        let key = (loss_key(run.loss), run.transport);
        if !cells.contains(&key) {
            cells.push(key);
        }
    }
    for (loss, transport) in cells {
        let of = |f: fn(&StreamFigures) -> f64| {
            spread(
                runs.iter()
                    .filter(|r| loss_key(r.loss) == loss && r.transport == transport)
                    .map(|r| f(&r.figures)),
            )
        };
        let _ = writeln!(
            table,
            "| {:>2} % | {transport:<11} | {:<14} | {:<13} | {:<13} |",
            loss / 10,
            of(|f| f.connect.as_secs_f64() * 1000.0),
            of(|f| f.per_second),
            of(|f| f.p99.as_secs_f64() * 1000.0),
        );
    }
    table
}

/// Loss in tenths of a percent, to group runs.
fn loss_key(loss: f64) -> u64 {
    (loss * 1000.0).round() as u64
}

/// What happens to the link in a [`disrupted_stream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruption {
    /// Every packet is dropped, both ways, for this long; then the link works again.
    Cut(Duration),
    /// Namespace B's address changes under the connection
    /// ([`NetemLink::move_b_address`]): a QUIC client's socket, bound to the unspecified
    /// address, sends from the new one (the broker sees the connection migrate); a TCP
    /// connection stays bound to the old one.
    MoveAddress,
}

impl Disruption {
    /// `cut 2s`, `move address`.
    pub fn name(&self) -> String {
        match self {
            Self::Cut(d) => format!("cut {}s", d.as_secs()),
            Self::MoveAddress => "move address".to_owned(),
        }
    }

    fn length(&self) -> Duration {
        match self {
            Self::Cut(d) => *d,
            Self::MoveAddress => Duration::ZERO,
        }
    }
}

/// The stream of a [`disrupted_stream`]: its pace, its keep-alive and how long it runs
/// around the disruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPlan {
    /// Messages per second.
    pub rate: u32,
    /// MQTT keep-alive of both clients.
    pub keep_alive: Duration,
    /// Publishing before the disruption starts.
    pub before: Duration,
    /// Publishing after the disruption ended.
    pub after: Duration,
}

impl Default for StreamPlan {
    /// 20 messages/s, keep-alive 30 s, 3 s before, 5 s after.
    fn default() -> Self {
        Self {
            rate: 20,
            keep_alive: Duration::from_secs(30),
            before: Duration::from_secs(3),
            after: Duration::from_secs(5),
        }
    }
}

impl StreamPlan {
    fn messages(&self, disruption: Disruption) -> usize {
        let secs = (self.before + disruption.length() + self.after).as_secs_f64();
        (secs * f64::from(self.rate)).round() as usize
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(1) / self.rate.max(1)
    }
}

/// What one [`disrupted_stream`] counted and measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisruptionFigures {
    /// Messages published (every publish completed: QoS 1 acknowledged).
    pub published: usize,
    /// Published messages the subscriber never received.
    pub lost: usize,
    /// Deliveries of a message already received.
    pub duplicated: usize,
    /// The publisher's reconnects (`Connected` events after the first).
    pub reconnects: u64,
    /// The publisher's `ConnectionLost` events.
    pub losses: u64,
    /// The subscriber's reconnects (its path does not cross the link: expected 0).
    pub subscriber_reconnects: u64,
    /// The longest time between two deliveries (the stream's own interval when nothing
    /// happened).
    pub longest_gap: Duration,
    /// From the end of the disruption (the link restored, the address moved) to the first
    /// delivery after it; `None` if nothing arrived after it.
    pub to_first_delivery: Option<Duration>,
}

/// The disrupted-stream experiment: a subscriber in namespace A (next to the broker), a
/// publisher in namespace B publishing `plan.rate` QoS 1 messages a second (open loop: each
/// one at its time, whatever the link does) for `plan.before`, the disruption, and
/// `plan.after`; then it waits until every publish completed and the subscriber has every
/// message (or has received nothing for two keep-alives and a minute). Both clients
/// reconnect forever, backoff between 1 s and 2 s.
///
/// # Panics
///
/// If either client cannot connect or subscribe, or a publish fails.
pub fn disrupted_stream<R: Runtime + Default>(
    bed: &LinkBed,
    transport: &Transport,
    disruption: Disruption,
    plan: StreamPlan,
    block_on: BlockOn,
) -> DisruptionFigures {
    static TRIALS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = TRIALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let topic = format!("trial/{}/{n}", std::process::id());
    let messages = plan.messages(disruption);
    let ca = bed.ca_file();
    let link = bed.link();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<Instant>();
    thread::scope(|scope| {
        let subscriber = scope.spawn(|| {
            link.run_in_a(|| {
                let mut out = None;
                block_on(Box::pin(async {
                    out = Some(
                        subscribe_and_count::<R>(
                            &transport.uri,
                            &ca,
                            &topic,
                            messages,
                            plan,
                            ready_tx,
                        )
                        .await,
                    );
                }));
                out.expect("the subscriber completed")
            })
        });
        if ready_rx.recv().is_err() {
            // The subscriber failed: its panic says why.
            join(subscriber);
            unreachable!("the subscriber ended without being ready");
        }
        let publisher = scope.spawn(|| {
            link.run_in_b(|| {
                let mut out = None;
                block_on(Box::pin(async {
                    out = Some(
                        publish_paced::<R>(&transport.uri, &ca, &topic, messages, plan, started_tx)
                            .await,
                    );
                }));
                out.expect("the publisher completed")
            })
        });
        let ended = started_rx.recv().ok().map(|started| {
            thread::sleep((started + plan.before).saturating_duration_since(Instant::now()));
            match disruption {
                Disruption::Cut(length) => {
                    link.cut();
                    thread::sleep(length);
                    link.restore();
                }
                Disruption::MoveAddress => {
                    link.move_b_address();
                }
            }
            Instant::now()
        });
        let (reconnects, losses) = join(publisher);
        let (arrivals, duplicated, subscriber_reconnects) = join(subscriber);
        let ended = ended.expect("the publisher started");
        let mut times: Vec<Instant> = arrivals.iter().flatten().copied().collect();
        times.sort();
        DisruptionFigures {
            published: messages,
            lost: arrivals.iter().filter(|a| a.is_none()).count(),
            duplicated,
            reconnects,
            losses,
            subscriber_reconnects,
            longest_gap: times
                .windows(2)
                .map(|w| w[1] - w[0])
                .max()
                .unwrap_or_default(),
            to_first_delivery: times.iter().find(|&&t| t >= ended).map(|&t| t - ended),
        }
    })
}

fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn index_payload(i: usize) -> Vec<u8> {
    u32::try_from(i)
        .expect("small index")
        .to_be_bytes()
        .to_vec()
}

fn payload_index(payload: &[u8]) -> usize {
    let bytes: [u8; 4] = payload[..4].try_into().expect("4-byte index");
    usize::try_from(u32::from_be_bytes(bytes)).expect("index")
}

/// A client that reconnects forever, quickly: the experiment measures the transport, not
/// the backoff.
fn persistent_config(ca: &Path, plan: StreamPlan) -> ClientConfig {
    client_config(ca, plan.keep_alive)
        .auto_reconnect(true)
        .reconnect_retries(None)
        .reconnect_initial_interval(Duration::from_secs(1))
        .reconnect_max_interval(Duration::from_secs(2))
}

/// (reconnects, `ConnectionLost` events) among the events received so far.
fn count_events(events: &mut sansmqtt_client::ConnectionEvents) -> (u64, u64) {
    let (mut connected, mut lost) = (0u64, 0u64);
    while let Some(Some(event)) = events.next().now_or_never() {
        match event {
            ConnectionEvent::Connected { .. } => connected += 1,
            ConnectionEvent::ConnectionLost(_) => lost += 1,
            _ => {}
        }
    }
    (connected.saturating_sub(1), lost)
}

/// The subscriber: every message's first arrival, the duplicates, its own reconnects.
async fn subscribe_and_count<R: Runtime + Default>(
    uri: &str,
    ca: &Path,
    topic: &str,
    messages: usize,
    plan: StreamPlan,
    ready: mpsc::Sender<()>,
) -> (Vec<Option<Instant>>, usize, u64) {
    let client = MqttClient::<R>::new(None, persistent_config(ca, plan));
    let mut events = client.connection_events();
    client.connect(uri).await.expect("the subscriber connects");
    client
        .subscribe([(topic, QoS::AtLeastOnce)])
        .await
        .expect("subscribe");
    let _ = ready.send(());
    let stall = plan.keep_alive * 2 + Duration::from_secs(60);
    let mut arrivals = vec![None; messages];
    let (mut distinct, mut duplicated) = (0, 0);
    // After the last new message, a second more for late duplicates.
    while let Ok(message) = client
        .deliver_message()
        .timeout(if distinct < messages {
            stall
        } else {
            Duration::from_secs(1)
        })
        .await
    {
        let slot = &mut arrivals[payload_index(message.payload())];
        if slot.is_none() {
            *slot = Some(Instant::now());
            distinct += 1;
        } else {
            duplicated += 1;
        }
    }
    let (reconnects, _) = count_events(&mut events);
    let _ = client.disconnect().await;
    (arrivals, duplicated, reconnects)
}

/// The publisher: `messages` QoS 1 publishes, one every `1 / rate` s; returns once all
/// completed, with its (reconnects, losses).
async fn publish_paced<R: Runtime + Default>(
    uri: &str,
    ca: &Path,
    topic: &str,
    messages: usize,
    plan: StreamPlan,
    started: mpsc::Sender<Instant>,
) -> (u64, u64) {
    let runtime = R::default();
    let client = MqttClient::<R>::new(None, persistent_config(ca, plan));
    let mut events = client.connection_events();
    client.connect(uri).await.expect("the publisher connects");
    let start = Instant::now();
    let _ = started.send(start);
    let interval = plan.interval();
    stream::iter(0..messages)
        .then(|i| {
            let due = start + interval * u32::try_from(i).expect("small index");
            runtime.sleep_until(due).map(move |()| i)
        })
        .map(|i| {
            client
                .publish(topic, index_payload(i))
                .qos(QoS::AtLeastOnce)
                .ack_timeout(Duration::from_secs(600))
        })
        .buffer_unordered(messages.max(1))
        .for_each(|result| {
            result.expect("publish");
            async {}
        })
        .await;
    let counts = count_events(&mut events);
    let _ = client.disconnect().await;
    counts
}

/// One [`disrupted_stream`] run in the comparison.
#[derive(Debug, Clone)]
pub struct DisruptedRun {
    /// The transport's name.
    pub transport: &'static str,
    /// What happened to the link.
    pub disruption: Disruption,
    /// 1-based.
    pub round: usize,
    /// The figures.
    pub figures: DisruptionFigures,
}

/// For each disruption, each of `transports`, `rounds` runs of [`disrupted_stream`] on a
/// perfect link. An address move is not undone: the link keeps B's newest address, which
/// the next connections use. `each` sees every run as it ends.
pub fn disruption_comparison<R: Runtime + Default>(
    bed: &LinkBed,
    transports: &[Transport],
    disruptions: &[Disruption],
    rounds: usize,
    plan: StreamPlan,
    block_on: BlockOn,
    mut each: impl FnMut(&DisruptedRun),
) -> Vec<DisruptedRun> {
    bed.link().set(LinkConditions::default());
    let mut runs = Vec::new();
    for &disruption in disruptions {
        for transport in transports {
            for round in 1..=rounds {
                let figures = disrupted_stream::<R>(bed, transport, disruption, plan, block_on);
                let run = DisruptedRun {
                    transport: transport.name,
                    disruption,
                    round,
                    figures,
                };
                each(&run);
                runs.push(run);
            }
        }
    }
    runs
}

/// The disruption comparison as a table: per disruption and transport, the reconnects, lost
/// and duplicated messages (sums over the runs) and median [min-max] of the longest gap and
/// of the time to the first delivery after the disruption.
pub fn disruption_table(runs: &[DisruptedRun]) -> String {
    let mut table = String::from(
        "| disruption   | transport   | runs | reconnects | lost | dup | longest gap s    | restore → delivery s |\n\
         |--------------|-------------|------|------------|------|-----|------------------|----------------------|\n",
    );
    let mut cells: Vec<(Disruption, &str)> = Vec::new();
    for run in runs {
        let key = (run.disruption, run.transport);
        if !cells.contains(&key) {
            cells.push(key);
        }
    }
    for (disruption, transport) in cells {
        let cell: Vec<&DisruptedRun> = runs
            .iter()
            .filter(|r| r.disruption == disruption && r.transport == transport)
            .collect();
        let sum =
            |f: fn(&DisruptionFigures) -> u64| -> u64 { cell.iter().map(|r| f(&r.figures)).sum() };
        let reconnects: Vec<String> = cell
            .iter()
            .map(|r| r.figures.reconnects.to_string())
            .collect();
        let _ = writeln!(
            table,
            "| {:<12} | {transport:<11} | {:>4} | {:<10} | {:>4} | {:>3} | {:<16} | {:<20} |",
            disruption.name(),
            cell.len(),
            reconnects.join(","),
            sum(|f| f.lost as u64),
            sum(|f| f.duplicated as u64),
            spread_precise(cell.iter().map(|r| r.figures.longest_gap.as_secs_f64())),
            spread_precise(cell.iter().map(|r| {
                r.figures
                    .to_first_delivery
                    .map_or(f64::NAN, |d| d.as_secs_f64())
            })),
        );
    }
    table
}

/// "median [min-max]" of the values, no decimals.
pub fn spread(values: impl Iterator<Item = f64>) -> String {
    spread_with(values, 0)
}

/// "median [min-max]" with one decimal (seconds).
fn spread_precise(values: impl Iterator<Item = f64>) -> String {
    spread_with(values, 1)
}

fn spread_with(values: impl Iterator<Item = f64>, decimals: usize) -> String {
    let mut values: Vec<f64> = values.collect();
    if values.is_empty() {
        return "-".to_owned();
    }
    values.sort_by(f64::total_cmp);
    format!(
        "{:.d$} [{:.d$}-{:.d$}]",
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
        d = decimals
    )
}
