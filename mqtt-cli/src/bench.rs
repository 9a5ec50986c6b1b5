//! `sansmqtt bench`: N publishing and M subscribing connections from one process, a target rate per
//! publisher, publish-to-delivery latency from a timestamp in every payload, a status line
//! every second and a summary (text or `--json`).
//!
//! Phases: subscribers connect and subscribe, then publishers connect (both spread over
//! `--ramp-up`, at most `--connect-concurrency` at a time), then every publisher publishes
//! until `--duration` or `--count`, then the subscribers get `--drain` to receive what is
//! still on its way. "Expected" deliveries are computed from which subscriber filters match
//! which publisher topics and how many publishes completed, so "lost" means what it says.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{BufMut as _, Bytes, BytesMut};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use sansmqtt_tokio::{ClientError, ConnectionEvent, MqttClient, QoS};
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::args::BenchArgs;
use crate::connect::Connection;
use crate::error::{CliError, OptionError, Stage};

/// Payload header: publish time (ns since the run's start), publisher index, sequence number.
pub(crate) const HEADER: usize = 8 + 4 + 8;

/// Publishes each publisher has handed to its client and not yet seen completed. The client
/// queues them and keeps its own in-flight window on the wire (`--inflight`).
const PIPELINE: usize = 256;

/// Runs `sansmqtt bench`.
pub(crate) async fn run(args: BenchArgs) -> Result<(), CliError> {
    let plan = Plan::new(&args)?;
    let nofile = raise_nofile_limit();
    let conn = Connection::from_args(&args.conn)?;
    let prefix = args
        .conn
        .client_id
        .clone()
        .unwrap_or_else(|| format!("mqtt-bench-{}", std::process::id()));
    let stats = Arc::new(Stats::new(plan.publishers));
    let status = Status::start(stats.clone(), plan.connections());
    if let Some(limit) = nofile
        && (plan.connections() as u64) + 32 > limit
    {
        status.note(&format!(
            "warning: {} connections but only {limit} file descriptors (ulimit -n)",
            plan.connections()
        ));
    }

    // Which publishers each subscriber hears from, computed while connecting.
    let fanout = {
        let plan = plan.clone();
        tokio::task::spawn_blocking(move || plan.fanout())
    };

    let mut pacer = Pacer::new(&plan, args.ramp_up);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Ctrl-C ends the run early, still with a summary: connecting stops, publishing stops,
    // draining is cut to a second.
    let (interrupt_tx, interrupt) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = interrupt_tx.send(true);
        }
    });

    // Phase 1: subscribers.
    status.phase("connecting");
    let sub_config = conn.config.clone();
    let mut connecting = JoinSet::new();
    for j in 0..plan.subscribers {
        let client = MqttClient::new(Some(&format!("{prefix}-s{j}")), sub_config.clone());
        let (conn, stats, filter, qos) = (conn.clone(), stats.clone(), plan.filter(j), plan.qos);
        let start_at = pacer.next();
        let permits = pacer.permits.clone();
        connecting.spawn(async move {
            tokio::time::sleep_until(start_at.into()).await;
            let _permit = permits.acquire_owned().await;
            let up = async {
                conn.connect(&client).await?;
                client
                    .subscribe([(filter.as_str(), qos)])
                    .await
                    .map_err(|err| CliError::client("subscribing", Stage::Connected, err))
            };
            match up.await {
                Ok(codes) if codes.iter().all(|c| c.is_success()) => {
                    stats.connected();
                    Some(client)
                }
                Ok(codes) => {
                    stats.connect_failed(CliError::SubscribeRefused {
                        filter,
                        code: codes
                            .into_iter()
                            .find(|c| !c.is_success())
                            .unwrap_or_default(),
                    });
                    None
                }
                Err(err) => {
                    stats.connect_failed(err);
                    None
                }
            }
        });
    }
    let mut receivers = JoinSet::new();
    while let Some(joined) = next_or_interrupt(&mut connecting, &interrupt).await {
        if let Ok(Some(client)) = joined {
            receivers.spawn(receive(client, stats.clone(), stop_rx.clone()));
        }
    }

    // Phase 2: publishers.
    // Publishers receive nothing.
    let mut pub_config = conn.config.clone().message_buffer(1);
    if let Some(inflight) = args.inflight {
        pub_config = pub_config.max_inflight(inflight);
    }
    let mut connecting = JoinSet::new();
    for i in 0..plan.publishers {
        let client = MqttClient::new(Some(&format!("{prefix}-p{i}")), pub_config.clone());
        let (conn, stats) = (conn.clone(), stats.clone());
        let start_at = pacer.next();
        let permits = pacer.permits.clone();
        connecting.spawn(async move {
            tokio::time::sleep_until(start_at.into()).await;
            let _permit = permits.acquire_owned().await;
            match conn.connect(&client).await {
                Ok(_) => {
                    stats.connected();
                    Some((i, client))
                }
                Err(err) => {
                    stats.connect_failed(err);
                    None
                }
            }
        });
    }
    let mut publishers = Vec::new();
    while let Some(joined) = next_or_interrupt(&mut connecting, &interrupt).await {
        if let Ok(Some(publisher)) = joined {
            publishers.push(publisher);
        }
    }
    let connect_time = stats.start.elapsed();
    if stats.up.load(Ordering::Relaxed) == 0 {
        status.finish();
        let err = stats.take_first_error();
        return Err(err.unwrap_or(CliError::InvalidOption(OptionError::NothingToRun)));
    }

    // Phase 3: publishing.
    status.phase("publishing");
    let publish_start = Instant::now();
    let mut publishing = JoinSet::new();
    for (i, client) in publishers {
        let job = PublishJob {
            index: i,
            topic: plan.topic(i),
            qos: plan.qos,
            size: plan.size,
            rate: plan.rate,
            stop: plan.stop,
            window: PIPELINE,
            start: publish_start,
            interrupt: interrupt.clone(),
            // Publishers spread their slots over the period instead of all publishing at
            // the same instant: N publishers at R msg/s load the broker evenly at N*R msg/s.
            phase: i as f64 / plan.publishers as f64,
        };
        publishing.spawn(job.run(client, stats.clone()));
    }
    let mut clients = Vec::new();
    while let Some(joined) = publishing.join_next().await {
        if let Ok(client) = joined {
            clients.push(client);
        }
    }
    let publish_time = publish_start.elapsed();

    // Phase 4: draining.
    status.phase("draining");
    let fanout = fanout.await.unwrap_or_default();
    let expected: u64 = stats
        .per_publisher
        .iter()
        .zip(&fanout)
        .map(|(sent, subs)| sent.load(Ordering::Relaxed) * subs)
        .sum();
    // After Ctrl-C only a short drain, for what is already on its way.
    let drain = if *interrupt.borrow() {
        args.drain.min(Duration::from_secs(1))
    } else {
        args.drain
    };
    let drain_end = Instant::now() + drain;
    while stats.unique() < expected && Instant::now() < drain_end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let receive_time = publish_start.elapsed();

    // Measured before the connections close.
    let memory = Memory::read();
    status.phase("closing");
    let _ = stop_tx.send(true);
    while let Some(joined) = receivers.join_next().await {
        if let Ok(client) = joined {
            clients.push(client);
        }
    }
    // Every client is still connected: their own counters, summed.
    let client_stats = ClientTotals::sum(clients.iter().map(MqttClient::stats));
    let mut closing: FuturesUnordered<_> = clients
        .iter()
        .map(|c| async move { c.disconnect().await })
        .collect();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while closing.next().await.is_some() {}
    })
    .await;
    drop(closing);
    status.finish();

    let summary = Summary::new(
        &plan,
        &stats,
        expected,
        nofile,
        memory,
        Times {
            connect: connect_time,
            publish: publish_time,
            receive: receive_time,
        },
        client_stats,
    );
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &summary)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        summary.write_text(&mut out)
    };
    written.map_err(CliError::Output)
}

/// When the run stops publishing.
#[derive(Debug, Clone, Copy)]
enum Stop {
    After(Duration),
    Count(u64),
}

/// The validated options.
#[derive(Debug, Clone)]
struct Plan {
    publishers: usize,
    subscribers: usize,
    topic: String,
    sub_topic: String,
    qos: QoS,
    size: usize,
    rate: f64,
    stop: Stop,
    concurrency: usize,
}

impl Plan {
    fn new(args: &BenchArgs) -> Result<Self, CliError> {
        if args.size < HEADER {
            return Err(OptionError::PayloadTooSmall { min: HEADER }.into());
        }
        if !(args.rate.is_finite() && args.rate >= 0.0) {
            return Err(OptionError::BadRate.into());
        }
        if args.publishers + args.subscribers == 0 {
            return Err(OptionError::NothingToRun.into());
        }
        let sub_topic = args
            .sub_topic
            .clone()
            .unwrap_or_else(|| args.topic.replace("%i", "+"));
        let plan = Self {
            publishers: args.publishers,
            subscribers: args.subscribers,
            topic: args.topic.clone(),
            sub_topic,
            qos: args.qos,
            size: args.size,
            rate: args.rate,
            stop: match (args.count, args.duration) {
                (Some(count), _) => Stop::Count(count),
                (None, duration) => Stop::After(duration.unwrap_or(Duration::from_secs(10))),
            },
            concurrency: args.connect_concurrency.max(1),
        };
        let topic = plan.topic(0);
        sansmqtt_tokio::proto::topic::validate_topic_name(&topic)
            .map_err(|source| CliError::InvalidTopic { topic, source })?;
        let filter = plan.filter(0);
        sansmqtt_tokio::proto::topic::validate_topic_filter(&filter).map_err(|source| {
            CliError::InvalidTopic {
                topic: filter,
                source,
            }
        })?;
        Ok(plan)
    }

    fn connections(&self) -> usize {
        self.publishers + self.subscribers
    }

    fn topic(&self, i: usize) -> String {
        self.topic.replace("%i", &i.to_string())
    }

    fn filter(&self, j: usize) -> String {
        self.sub_topic.replace("%i", &j.to_string())
    }

    /// For each publisher, how many subscribers' filters match its topic. Filters without
    /// wildcards are counted through a map, so `bench/%i` against `bench/%i` stays linear.
    fn fanout(&self) -> Vec<u64> {
        let mut exact: HashMap<String, u64> = HashMap::new();
        let mut wildcard: HashMap<String, u64> = HashMap::new();
        for j in 0..self.subscribers {
            let filter = self.filter(j);
            let map = if filter.contains(['+', '#']) {
                &mut wildcard
            } else {
                &mut exact
            };
            *map.entry(filter).or_default() += 1;
        }
        (0..self.publishers)
            .map(|i| {
                let topic = self.topic(i);
                exact.get(&topic).copied().unwrap_or(0)
                    + wildcard
                        .iter()
                        .filter(|(filter, _)| sansmqtt_tokio::proto::topic::matches(filter, &topic))
                        .map(|(_, n)| n)
                        .sum::<u64>()
            })
            .collect()
    }
}

/// Spreads connection starts over the ramp-up and limits how many are under way at once.
struct Pacer {
    start: Instant,
    step: Duration,
    next: u32,
    permits: Arc<Semaphore>,
}

impl Pacer {
    fn new(plan: &Plan, ramp_up: Duration) -> Self {
        let total = u32::try_from(plan.connections().max(1)).unwrap_or(u32::MAX);
        Self {
            start: Instant::now(),
            step: ramp_up / total,
            next: 0,
            permits: Arc::new(Semaphore::new(plan.concurrency)),
        }
    }

    fn next(&mut self) -> Instant {
        let at = self.start + self.step * self.next;
        self.next += 1;
        at
    }
}

/// Counters shared by every task, read by the status line and the summary.
struct Stats {
    start: Instant,
    up: AtomicU64,
    peak: AtomicU64,
    connect_errors: AtomicU64,
    lost: AtomicU64,
    sent: AtomicU64,
    per_publisher: Vec<AtomicU64>,
    publish_errors: AtomicU64,
    received: AtomicU64,
    duplicates: AtomicU64,
    /// QoS 0 messages the subscribers' clients dropped because their buffers were full.
    overflow: AtomicU64,
    latency: Mutex<Latency>,
    first_error: Mutex<Option<CliError>>,
}

/// Latency histograms in microseconds: since the last status line, and the whole run.
struct Latency {
    interval: Histogram<u64>,
    total: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 1 h at 3 significant digits; values beyond are clamped by `saturating_record`.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits are valid"))
    })
}

impl Stats {
    fn new(publishers: usize) -> Self {
        Self {
            start: Instant::now(),
            up: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            connect_errors: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            per_publisher: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
            publish_errors: AtomicU64::new(0),
            received: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            overflow: AtomicU64::new(0),
            latency: Mutex::new(Latency {
                interval: histogram(),
                total: histogram(),
            }),
            first_error: Mutex::new(None),
        }
    }

    fn connected(&self) {
        let up = self.up.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(up, Ordering::Relaxed);
    }

    fn connect_failed(&self, err: CliError) {
        self.connect_errors.fetch_add(1, Ordering::Relaxed);
        self.remember(err);
    }

    fn remember(&self, err: CliError) {
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        first.get_or_insert(err);
    }

    fn take_first_error(&self) -> Option<CliError> {
        self.first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn first_error_text(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(ToString::to_string)
    }

    fn connection_lost(&self) {
        self.lost.fetch_add(1, Ordering::Relaxed);
        self.up.fetch_sub(1, Ordering::Relaxed);
    }

    /// Deliveries that were not duplicates.
    fn unique(&self) -> u64 {
        self.received.load(Ordering::Relaxed) - self.duplicates.load(Ordering::Relaxed)
    }

    fn record_latency(&self, micros: u64) {
        let mut latency = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        latency.interval.saturating_record(micros.max(1));
        latency.total.saturating_record(micros.max(1));
    }

    fn nanos_since_start(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// One subscriber: counts deliveries, duplicates and latency until told to stop.
async fn receive(
    client: MqttClient,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) -> MqttClient {
    let mut messages = std::pin::pin!(client.messages());
    let mut events = client.connection_events();
    // Next expected sequence number per publisher: anything below is a duplicate.
    let mut next_seq: HashMap<u32, u64> = HashMap::new();
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { break };
                let now = stats.nanos_since_start();
                stats.received.fetch_add(1, Ordering::Relaxed);
                let Some((sent_at, publisher, seq)) = parse_header(message.payload()) else {
                    continue;
                };
                let next = next_seq.entry(publisher).or_default();
                if seq < *next {
                    stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                *next = seq + 1;
                stats.record_latency(now.saturating_sub(sent_at) / 1_000);
            }
            event = events.next() => {
                if let Some(ConnectionEvent::ConnectionLost(err)) = event {
                    stats.connection_lost();
                    stats.remember(CliError::client("subscriber connection", Stage::Connected, err));
                    break;
                }
            }
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
    stats
        .overflow
        .fetch_add(client.stats().messages_dropped, Ordering::Relaxed);
    client
}

/// The next finished connect task, or `None` when all are done or Ctrl-C was pressed (the
/// rest are then aborted).
async fn next_or_interrupt<T: 'static>(
    tasks: &mut JoinSet<T>,
    interrupt: &watch::Receiver<bool>,
) -> Option<Result<T, tokio::task::JoinError>> {
    let mut interrupt = interrupt.clone();
    tokio::select! {
        joined = tasks.join_next() => joined,
        _ = interrupt.wait_for(|stop| *stop) => {
            tasks.abort_all();
            None
        }
    }
}

fn parse_header(payload: &[u8]) -> Option<(u64, u32, u64)> {
    let header = payload.get(..HEADER)?;
    let (sent_at, rest) = header.split_at(8);
    let (publisher, seq) = rest.split_at(4);
    Some((
        u64::from_be_bytes(sent_at.try_into().ok()?),
        u32::from_be_bytes(publisher.try_into().ok()?),
        u64::from_be_bytes(seq.try_into().ok()?),
    ))
}

/// One publisher's work.
struct PublishJob {
    index: usize,
    topic: String,
    qos: QoS,
    size: usize,
    rate: f64,
    stop: Stop,
    window: usize,
    start: Instant,
    /// Set by Ctrl-C.
    interrupt: watch::Receiver<bool>,
    /// Offset of this publisher's slots, as a fraction of the period.
    phase: f64,
}

impl PublishJob {
    async fn run(mut self, client: MqttClient, stats: Arc<Stats>) -> MqttClient {
        let topic = sansmqtt_tokio::proto::ByteString::from(self.topic.as_str());
        let period = (self.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / self.rate));
        let publisher = u32::try_from(self.index).unwrap_or(u32::MAX);
        let mut pending = FuturesUnordered::new();
        let settle = |result: Option<Result<_, ClientError>>| match result {
            Some(Ok(_)) => {
                stats.sent.fetch_add(1, Ordering::Relaxed);
                stats.per_publisher[self.index].fetch_add(1, Ordering::Relaxed);
            }
            Some(Err(err)) => {
                stats.publish_errors.fetch_add(1, Ordering::Relaxed);
                stats.remember(CliError::client("publishing", Stage::Connected, err));
            }
            None => {}
        };
        let mut seq: u64 = 0;
        loop {
            match self.stop {
                Stop::Count(count) if seq >= count => break,
                Stop::After(duration) if self.start.elapsed() >= duration => break,
                _ if *self.interrupt.borrow() => break,
                _ => {}
            }
            if let Some(period) = period {
                let due = self.start + period.mul_f64(seq as f64 + self.phase);
                let due = match self.stop {
                    Stop::After(duration) => due.min(self.start + duration),
                    Stop::Count(_) => due,
                };
                // Wait for the slot, settling acknowledgements meanwhile.
                loop {
                    tokio::select! {
                        () = tokio::time::sleep_until(due.into()) => break,
                        _ = self.interrupt.wait_for(|stop| *stop) => break,
                        Some(result) = pending.next(), if !pending.is_empty() => settle(Some(result)),
                    }
                }
                if let Stop::After(duration) = self.stop
                    && self.start.elapsed() >= duration
                {
                    break;
                }
            }
            while pending.len() >= self.window {
                settle(pending.next().await);
            }
            let mut payload = BytesMut::with_capacity(self.size);
            payload.put_u64(stats.nanos_since_start());
            payload.put_u32(publisher);
            payload.put_u64(seq);
            payload.resize(self.size, 0);
            let publish = client
                .publish(topic.clone(), Bytes::from(payload))
                .qos(self.qos)
                .start();
            pending.push(publish);
            seq += 1;
            if pending.len() >= self.window / 2 {
                // Give the driver a turn: with no rate limit, QoS 0 would otherwise queue
                // publishes faster than the socket drains them.
                tokio::task::yield_now().await;
            }
        }
        while !pending.is_empty() {
            settle(pending.next().await);
        }
        client
    }
}

/// Raises the soft limit on open files to the hard limit (each connection is a socket).
/// Returns the limit in force, if the platform has one.
fn raise_nofile_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(err) => {
            tracing::warn!(%err, "cannot raise the open file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// Resident memory of this process (Linux `/proc`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct Memory {
    /// Now, in KiB.
    rss_kib: Option<u64>,
    /// Peak, in KiB.
    peak_rss_kib: Option<u64>,
}

impl Memory {
    fn read() -> Self {
        let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
            return Self::default();
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse().ok())
        };
        Self {
            rss_kib: field("VmRSS:"),
            peak_rss_kib: field("VmHWM:"),
        }
    }
}

/// The once-a-second status line: indicatif on a terminal, plain lines otherwise (stderr).
struct Status {
    shared: Arc<StatusShared>,
    task: tokio::task::JoinHandle<()>,
}

struct StatusShared {
    phase: Mutex<&'static str>,
    bar: Option<indicatif::ProgressBar>,
}

impl Status {
    fn start(stats: Arc<Stats>, target: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}") {
                bar.set_style(style);
            }
            bar
        });
        let shared = Arc::new(StatusShared {
            phase: Mutex::new("starting"),
            bar,
        });
        let task = tokio::spawn({
            let shared = shared.clone();
            async move {
                let mut ticks = tokio::time::interval(Duration::from_secs(1));
                ticks.tick().await;
                let (mut sent, mut received) = (0, 0);
                loop {
                    ticks.tick().await;
                    let now_sent = stats.sent.load(Ordering::Relaxed);
                    let now_received = stats.received.load(Ordering::Relaxed);
                    let (p50, p99) = {
                        let mut latency =
                            stats.latency.lock().unwrap_or_else(PoisonError::into_inner);
                        let values = (
                            latency.interval.value_at_quantile(0.5),
                            latency.interval.value_at_quantile(0.99),
                        );
                        latency.interval.reset();
                        values
                    };
                    let phase = *shared.phase.lock().unwrap_or_else(PoisonError::into_inner);
                    let line = format!(
                        "[{:>4}s] {phase:<10} conns {}/{target} | out {}/s | in {}/s | p50 {} p99 {} | errors {}",
                        stats.start.elapsed().as_secs(),
                        stats.up.load(Ordering::Relaxed),
                        now_sent - sent,
                        now_received - received,
                        millis(p50),
                        millis(p99),
                        stats.connect_errors.load(Ordering::Relaxed)
                            + stats.publish_errors.load(Ordering::Relaxed)
                            + stats.lost.load(Ordering::Relaxed),
                    );
                    (sent, received) = (now_sent, now_received);
                    shared.update(line);
                }
            }
        });
        Self { shared, task }
    }

    fn phase(&self, phase: &'static str) {
        *self
            .shared
            .phase
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = phase;
    }

    fn note(&self, line: &str) {
        self.shared.show(line);
    }

    fn finish(&self) {
        self.task.abort();
        if let Some(bar) = &self.shared.bar {
            bar.finish_and_clear();
        }
    }
}

impl StatusShared {
    /// The live line: redrawn in place on a terminal, a new line otherwise.
    fn update(&self, line: String) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(line);
                bar.tick();
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
        }
    }

    /// A line that stays (above the live line on a terminal).
    fn show(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
        }
    }
}

impl Drop for Status {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Microseconds as milliseconds with two decimals, `-` for nothing measured.
fn millis(micros: u64) -> String {
    if micros == 0 {
        "-".to_owned()
    } else {
        format!("{:.2}ms", micros as f64 / 1000.0)
    }
}

struct Times {
    connect: Duration,
    publish: Duration,
    receive: Duration,
}

/// The final report; `--json` prints it as is.
#[derive(Debug, Serialize)]
struct Summary {
    publishers: usize,
    subscribers: usize,
    qos: u8,
    payload_size: usize,
    /// Target messages per second per publisher; 0 for unlimited.
    rate_per_publisher: f64,
    connections: Connections,
    /// Publishes completed (QoS 0: accepted by the client; QoS 1/2: acknowledged).
    published: u64,
    publish_errors: u64,
    publish_seconds: f64,
    publish_rate: f64,
    /// Deliveries the subscribers should get: completed publishes times matching subscribers.
    expected: u64,
    /// Deliveries, duplicates included.
    received: u64,
    duplicates: u64,
    /// `expected` minus unique deliveries (never negative).
    lost: u64,
    /// QoS 0 messages the subscribing clients dropped, their buffers full (part of `lost`).
    client_overflow: u64,
    receive_rate: f64,
    latency_us: LatencySummary,
    memory: Memory,
    nofile_limit: Option<u64>,
    first_error: Option<String>,
    /// The clients' own statistics (`MqttClient::stats`), summed over every client at the end
    /// of the run, before they disconnect.
    client_stats: ClientTotals,
}

/// [`sansmqtt_tokio::ClientStats`] summed over the run's clients.
#[derive(Debug, Default, Serialize)]
struct ClientTotals {
    clients: usize,
    bytes_sent: u64,
    bytes_received: u64,
    reconnects: u64,
    messages_dropped: u64,
    /// Gauges at the end of the run: what was still in flight, queued or waiting.
    publishes_in_flight: usize,
    messages_in_flight: usize,
    queued_publishes: usize,
    queued_bytes: usize,
    messages_waiting: usize,
    /// The largest last-ping round trip among the clients that pinged, in microseconds.
    max_ping_rtt_us: Option<u64>,
}

impl ClientTotals {
    fn sum(all: impl Iterator<Item = sansmqtt_tokio::ClientStats>) -> Self {
        let mut totals = Self::default();
        for s in all {
            totals.clients += 1;
            totals.bytes_sent += s.bytes_sent;
            totals.bytes_received += s.bytes_received;
            totals.reconnects += s.reconnects;
            totals.messages_dropped += s.messages_dropped;
            totals.publishes_in_flight += s.publishes_in_flight;
            totals.messages_in_flight += s.messages_in_flight;
            totals.queued_publishes += s.queued_publishes;
            totals.queued_bytes += s.queued_bytes;
            totals.messages_waiting += s.messages_waiting;
            let rtt = s
                .last_ping_rtt
                .map(|rtt| u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX));
            totals.max_ping_rtt_us = totals.max_ping_rtt_us.max(rtt);
        }
        totals
    }
}

#[derive(Debug, Serialize)]
struct Connections {
    target: usize,
    /// Connections that completed CONNECT (and SUBSCRIBE for subscribers).
    connected: u64,
    /// Most connections up at the same time.
    peak: u64,
    failed: u64,
    /// Connections lost while the run was going on.
    lost: u64,
    /// Time to open all of them.
    seconds: f64,
}

#[derive(Debug, Serialize)]
struct LatencySummary {
    count: u64,
    min: u64,
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
    mean: f64,
}

impl Summary {
    fn new(
        plan: &Plan,
        stats: &Stats,
        expected: u64,
        nofile_limit: Option<u64>,
        memory: Memory,
        times: Times,
        client_stats: ClientTotals,
    ) -> Self {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let latency = stats.latency.lock().unwrap_or_else(PoisonError::into_inner);
        let total = &latency.total;
        let per_second = |count: u64, time: Duration| {
            let secs = time.as_secs_f64();
            if secs > 0.0 { count as f64 / secs } else { 0.0 }
        };
        let failed = load(&stats.connect_errors);
        Self {
            publishers: plan.publishers,
            subscribers: plan.subscribers,
            qos: plan.qos as u8,
            payload_size: plan.size,
            rate_per_publisher: plan.rate,
            connections: Connections {
                target: plan.connections(),
                connected: (plan.connections() as u64).saturating_sub(failed),
                peak: load(&stats.peak),
                failed,
                lost: load(&stats.lost),
                seconds: times.connect.as_secs_f64(),
            },
            published: load(&stats.sent),
            publish_errors: load(&stats.publish_errors),
            publish_seconds: times.publish.as_secs_f64(),
            publish_rate: per_second(load(&stats.sent), times.publish),
            expected,
            received: load(&stats.received),
            duplicates: load(&stats.duplicates),
            lost: expected.saturating_sub(stats.unique()),
            client_overflow: load(&stats.overflow),
            receive_rate: per_second(load(&stats.received), times.receive),
            latency_us: LatencySummary {
                count: total.len(),
                min: if total.is_empty() { 0 } else { total.min() },
                p50: total.value_at_quantile(0.5),
                p90: total.value_at_quantile(0.9),
                p99: total.value_at_quantile(0.99),
                max: total.max(),
                mean: total.mean(),
            },
            memory,
            nofile_limit,
            first_error: stats.first_error_text(),
            client_stats,
        }
    }

    fn write_text(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let c = &self.connections;
        let l = &self.latency_us;
        writeln!(
            out,
            "sansmqtt bench: {} publishers, {} subscribers, QoS {}, {}-byte payloads, {}",
            self.publishers,
            self.subscribers,
            self.qos,
            self.payload_size,
            if self.rate_per_publisher > 0.0 {
                format!("{} msg/s per publisher", self.rate_per_publisher)
            } else {
                "unlimited rate".to_owned()
            }
        )?;
        writeln!(
            out,
            "connections  {} of {} in {:.1} s (peak {}), {} failed, {} lost, open file limit {}",
            c.connected,
            c.target,
            c.seconds,
            c.peak,
            c.failed,
            c.lost,
            self.nofile_limit
                .map_or_else(|| "unknown".to_owned(), |n| n.to_string())
        )?;
        writeln!(
            out,
            "published    {} in {:.1} s ({:.0} msg/s), {} errors",
            self.published, self.publish_seconds, self.publish_rate, self.publish_errors
        )?;
        writeln!(
            out,
            "received     {} of {} expected ({:.0} msg/s), {} lost ({} dropped by full client buffers), {} duplicates",
            self.received,
            self.expected,
            self.receive_rate,
            self.lost,
            self.client_overflow,
            self.duplicates
        )?;
        writeln!(
            out,
            "latency      p50 {}  p90 {}  p99 {}  max {}  ({} samples)",
            millis(l.p50),
            millis(l.p90),
            millis(l.p99),
            millis(l.max),
            l.count
        )?;
        if let (Some(rss), Some(peak)) = (self.memory.rss_kib, self.memory.peak_rss_kib) {
            writeln!(
                out,
                "memory       RSS {:.1} MiB (peak {:.1} MiB)",
                rss as f64 / 1024.0,
                peak as f64 / 1024.0
            )?;
        }
        let t = &self.client_stats;
        writeln!(
            out,
            "clients      {:.1} MB sent, {:.1} MB received, {} reconnects, {} dropped",
            t.bytes_sent as f64 / 1e6,
            t.bytes_received as f64 / 1e6,
            t.reconnects,
            t.messages_dropped
        )?;
        if let Some(err) = &self.first_error {
            writeln!(out, "first error  {err}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(publishers: usize, subscribers: usize, topic: &str, sub: Option<&str>) -> Plan {
        Plan {
            publishers,
            subscribers,
            topic: topic.into(),
            sub_topic: sub.map_or_else(|| topic.replace("%i", "+"), Into::into),
            qos: QoS::AtLeastOnce,
            size: 64,
            rate: 0.0,
            stop: Stop::Count(1),
            concurrency: 1,
        }
    }

    #[test]
    fn fanout_counts_matching_subscribers_per_publisher() {
        // Every subscriber on bench/+ hears every publisher.
        assert_eq!(plan(3, 2, "bench/%i", None).fanout(), vec![2, 2, 2]);
        // Paired: subscriber j hears publisher j only; publisher 2 has nobody.
        assert_eq!(
            plan(3, 2, "bench/%i", Some("bench/%i")).fanout(),
            vec![1, 1, 0]
        );
        assert_eq!(plan(2, 1, "a/%i", Some("b/#")).fanout(), vec![0, 0]);
    }

    #[test]
    fn the_header_round_trips() {
        let mut payload = BytesMut::new();
        payload.put_u64(123_456);
        payload.put_u32(7);
        payload.put_u64(42);
        payload.resize(64, 0);
        assert_eq!(parse_header(&payload), Some((123_456, 7, 42)));
        assert_eq!(parse_header(b"short"), None);
    }
}
