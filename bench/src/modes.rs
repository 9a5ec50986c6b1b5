//! The benchmark's other modes: latency at a fixed offered rate, and many idle connections.
//! Each runs in a child process (like the throughput runs) and reports `key=value` fields.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use sansmqtt_client::proto::ByteString;
use sansmqtt_client::{ClientConfig, MqttClient, Runtime};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::{Options, PROGRESS, qos_of, rumqttc_qos, usage};

/// What a child reports: field name to value, printed as `key=value` (and as JSON by the
/// parent).
pub(crate) type Fields = BTreeMap<String, f64>;

/// Latencies in nanoseconds, 3 significant digits, up to 60 s.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

fn record(histogram: &Mutex<Histogram<u64>>, latency: Duration) {
    let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
    crate::lock(histogram).saturating_record(nanos.max(1));
}

/// p50 / p99 / p99.9 / max in microseconds, under `prefix`.
fn percentiles(fields: &mut Fields, prefix: &str, histogram: &Histogram<u64>) {
    fields.insert(format!("{prefix}_count"), histogram.len() as f64);
    for (name, q) in [("p50", 0.50), ("p99", 0.99), ("p999", 0.999)] {
        fields.insert(
            format!("{prefix}_{name}_us"),
            histogram.value_at_quantile(q) as f64 / 1000.0,
        );
    }
    fields.insert(format!("{prefix}_max_us"), histogram.max() as f64 / 1000.0);
}

/// The payload of a message due at `due`: that time (nanoseconds since `epoch`) in the first
/// 8 bytes, padded to `size`.
fn stamped_payload(epoch: Instant, due: Instant, size: usize) -> Vec<u8> {
    let nanos = u64::try_from(due.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX);
    let mut payload = vec![0xA5; size.max(8)];
    payload[..8].copy_from_slice(&nanos.to_le_bytes());
    payload
}

/// Publish-to-delivery latency of a message carrying a send stamp.
fn delivery_latency(epoch: Instant, payload: &[u8]) -> Option<Duration> {
    let stamp: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    let sent = Duration::from_nanos(u64::from_le_bytes(stamp));
    Some(epoch.elapsed().saturating_sub(sent))
}

/// How many messages a latency run offers, and the gap between two.
fn schedule(options: &Options) -> (u64, Duration) {
    let rate = options.rate.max(1);
    let n = ((rate as f64) * options.latency_secs).ceil().max(1.0) as u64;
    (n, Duration::from_nanos(1_000_000_000 / rate))
}

/// The offered schedule's clock: a thread of its own that sleeps until each message is due
/// and then sends the instant it woke, the message's issue time. Both latencies count from
/// that instant, so a client that keeps its caller from taking the next tick (rumqttc's
/// bounded request channel) is charged for the wait (no coordinated omission), and the
/// clock's own lateness is not charged to anyone.
///
/// The runtimes' timers cannot be that clock: Tokio's wheel ticks in milliseconds and rounds
/// each deadline up, and its park rounds the remaining time up once more, so at 1,000 msg/s
/// a Tokio issuer woke every 2.1-2.4 ms and issued messages in pairs (seen in a packet
/// capture, for ours and rumqttc alike); half of them were then late by up to a millisecond
/// at issue, and that phase, random per run, decided the p50. A thread's `sleep` is the
/// kernel's high-resolution timer, the same for every client and runtime; what each client
/// pays on top is its runtime's cross-thread wake, which is part of a real application's
/// cost too.
fn start_clock(epoch: Instant, n: u64, gap: Duration) -> UnboundedReceiver<Instant> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for i in 0..n {
            let due = epoch + gap * u32::try_from(i).unwrap_or(u32::MAX);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if tx.send(Instant::now()).is_err() {
                return;
            }
        }
    });
    rx
}

/// Latency at a fixed offered rate, our client: one publisher and one subscriber client.
/// Message `i` is due at `start + i * gap` (open loop: a late completion does not delay the
/// next issue); it counts as issued when the schedule's clock fired for it (see
/// [`start_clock`]). The publish latency runs to the future's completion (QoS 0:
/// acceptance), the delivery latency to the subscriber's receipt.
pub(crate) async fn latency_ours<R: Runtime + Default>(
    options: &Options,
) -> Result<Fields, String> {
    let level = options.qos[0];
    let qos = qos_of(level);
    let (n, gap) = schedule(options);
    let runtime = R::default();
    let config = ClientConfig::default()
        .keep_alive(Duration::from_secs(60))
        .max_inflight(options.inflight)
        .auto_reconnect(false);
    let uri = format!("mqtt://127.0.0.1:{}", options.port);
    let publisher = MqttClient::<R>::new(None, config.clone());
    let subscriber = MqttClient::<R>::new(None, config);
    for client in [&publisher, &subscriber] {
        client
            .connect(uri.as_str())
            .await
            .map_err(|err| format!("connect failed: {err}"))?;
    }
    subscriber
        .subscribe([(options.topic.as_str(), qos)])
        .await
        .map_err(|err| format!("subscribe failed: {err}"))?;
    let topic = ByteString::from(options.topic.as_str());
    let publish_hist = Mutex::new(histogram());
    let delivery_hist = Mutex::new(histogram());
    let epoch = Instant::now();
    let deadline = epoch + gap * u32::try_from(n).unwrap_or(u32::MAX) + Duration::from_secs(10);
    let before = usage();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut clock = start_clock(epoch, n, gap);
    let issuer = async {
        while let Some(issued) = clock.recv().await {
            let future = publisher
                .publish(
                    topic.clone(),
                    stamped_payload(epoch, issued, options.payload),
                )
                .qos(qos)
                .start();
            if tx.send((issued, future)).is_err() {
                return Err("completion collector gone".to_owned());
            }
        }
        drop(tx);
        Ok(())
    };
    let completer = async {
        let mut completed = 0u64;
        while let Some((issued, future)) = rx.recv().await {
            future
                .await
                .map_err(|err| format!("publish {completed} failed: {err}"))?;
            record(&publish_hist, issued.elapsed());
            completed += 1;
            PROGRESS.fetch_add(1, Ordering::Relaxed);
        }
        Ok::<u64, String>(completed)
    };
    let receiver = async {
        let mut messages = std::pin::pin!(subscriber.messages());
        let mut received = 0u64;
        while received < n {
            let next = mqtt_client_timeout(&runtime, deadline, messages.next()).await;
            let Some(Some(message)) = next else {
                break;
            };
            if let Some(latency) = delivery_latency(epoch, message.payload()) {
                record(&delivery_hist, latency);
            }
            received += 1;
            PROGRESS.fetch_add(1, Ordering::Relaxed);
        }
        received
    };
    let (issued, completed, received) =
        futures_util::future::join3(issuer, completer, receiver).await;
    let elapsed = epoch.elapsed();
    let after = usage();
    issued?;
    let completed = completed?;
    let _ = publisher.disconnect().await;
    let _ = subscriber.disconnect().await;
    let mut fields = latency_fields(n, completed, received, elapsed, before, after);
    percentiles(&mut fields, "publish", &crate::lock(&publish_hist));
    percentiles(&mut fields, "delivery", &crate::lock(&delivery_hist));
    Ok(fields)
}

/// `future` until `deadline`; `None` on timeout.
async fn mqtt_client_timeout<R: Runtime, F: std::future::Future>(
    runtime: &R,
    deadline: Instant,
    future: F,
) -> Option<F::Output> {
    let sleep = runtime.sleep_until(deadline);
    match futures_util::future::select(std::pin::pin!(future), std::pin::pin!(sleep)).await {
        futures_util::future::Either::Left((output, _)) => Some(output),
        futures_util::future::Either::Right(_) => None,
    }
}

fn latency_fields(
    offered: u64,
    completed: u64,
    received: u64,
    elapsed: Duration,
    before: crate::Usage,
    after: crate::Usage,
) -> Fields {
    let mut fields = Fields::new();
    fields.insert("offered".into(), offered as f64);
    fields.insert("completed".into(), completed as f64);
    fields.insert("received".into(), received as f64);
    fields.insert("secs".into(), elapsed.as_secs_f64());
    fields.insert(
        "user_us".into(),
        after.user_us.saturating_sub(before.user_us) as f64,
    );
    fields.insert(
        "sys_us".into(),
        after.sys_us.saturating_sub(before.sys_us) as f64,
    );
    fields
}

/// The same latency run with rumqttc: a publisher and a subscriber `AsyncClient`, each with
/// its event loop on its own task, latencies counted as for ours.
/// The publish latency runs from the `publish` call to the
/// PUBACK / PUBCOMP carrying the packet id rumqttc gave the message (learnt from its
/// `Outgoing::Publish` event, which comes in issue order); QoS 0: to `Outgoing::Publish`.
pub(crate) async fn latency_rumqttc(options: &Options) -> Result<Fields, String> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet};

    let level = options.qos[0];
    let qos = rumqttc_qos(level);
    let (n, gap) = schedule(options);
    let connect = |suffix: &str| {
        let mut mqtt_options = MqttOptions::new(
            format!("rumqttc-lat-{}-{suffix}", std::process::id()),
            "127.0.0.1",
            options.port,
        );
        mqtt_options
            .set_keep_alive(Duration::from_secs(60))
            .set_inflight(options.inflight)
            .set_clean_session(true);
        AsyncClient::new(mqtt_options, options.rumqttc_cap)
    };
    let (publisher, mut pub_loop) = connect("pub");
    let (subscriber, mut sub_loop) = connect("sub");
    for event_loop in [&mut pub_loop, &mut sub_loop] {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                Ok(_) => {}
                Err(err) => return Err(format!("rumqttc connect failed: {err}")),
            }
        }
    }
    subscriber
        .subscribe(options.topic.as_str(), qos)
        .await
        .map_err(|err| format!("rumqttc subscribe failed: {err}"))?;
    loop {
        match sub_loop.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => break,
            Ok(_) => {}
            Err(err) => return Err(format!("rumqttc subscribe failed: {err}")),
        }
    }
    let publish_hist = Arc::new(Mutex::new(histogram()));
    let delivery_hist = Arc::new(Mutex::new(histogram()));
    let issued_at: Arc<Mutex<VecDeque<Instant>>> = Arc::default();
    let epoch = Instant::now();
    let deadline = epoch + gap * u32::try_from(n).unwrap_or(u32::MAX) + Duration::from_secs(10);
    let before = usage();

    let issuer = tokio::spawn({
        let issued_at = issued_at.clone();
        let topic = options.topic.clone();
        let size = options.payload;
        let mut clock = start_clock(epoch, n, gap);
        async move {
            // The same clock as for ours (see `start_clock`).
            while let Some(issued) = clock.recv().await {
                crate::lock(&issued_at).push_back(issued);
                publisher
                    .publish(
                        topic.as_str(),
                        qos,
                        false,
                        stamped_payload(epoch, issued, size),
                    )
                    .await
                    .map_err(|err| format!("rumqttc publish failed: {err}"))?;
            }
            Ok::<AsyncClient, String>(publisher)
        }
    });
    let completer = tokio::spawn({
        let publish_hist = publish_hist.clone();
        async move {
            let mut by_id: HashMap<u16, Instant> = HashMap::new();
            let mut completed = 0u64;
            while completed < n {
                let polled = tokio::time::timeout_at(deadline.into(), pub_loop.poll()).await;
                let event = match polled {
                    Err(_) => break,
                    Ok(Err(err)) => return Err(format!("rumqttc event loop failed: {err}")),
                    Ok(Ok(event)) => event,
                };
                let done = match event {
                    Event::Outgoing(Outgoing::Publish(pkid)) => {
                        let issued = crate::lock(&issued_at).pop_front();
                        match (issued, level) {
                            (Some(issued), 0) => Some(issued),
                            (Some(issued), _) => {
                                by_id.insert(pkid, issued);
                                None
                            }
                            (None, _) => None,
                        }
                    }
                    Event::Incoming(Packet::PubAck(ack)) if level == 1 => by_id.remove(&ack.pkid),
                    Event::Incoming(Packet::PubComp(comp)) if level == 2 => {
                        by_id.remove(&comp.pkid)
                    }
                    _ => None,
                };
                if let Some(issued) = done {
                    record(&publish_hist, issued.elapsed());
                    completed += 1;
                    PROGRESS.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok((completed, pub_loop))
        }
    });
    let receiver = tokio::spawn({
        let delivery_hist = delivery_hist.clone();
        async move {
            let mut received = 0u64;
            while received < n {
                match tokio::time::timeout_at(deadline.into(), sub_loop.poll()).await {
                    Err(_) => break,
                    Ok(Err(err)) => return Err(format!("rumqttc event loop failed: {err}")),
                    Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => {
                        if let Some(latency) = delivery_latency(epoch, &publish.payload) {
                            record(&delivery_hist, latency);
                        }
                        received += 1;
                        PROGRESS.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Ok(_)) => {}
                }
            }
            Ok::<u64, String>(received)
        }
    });
    let joined = |err: tokio::task::JoinError| format!("rumqttc task failed: {err}");
    let _publisher = issuer.await.map_err(joined)??;
    let (completed, _pub_loop) = completer.await.map_err(joined)??;
    let received = receiver.await.map_err(joined)??;
    let elapsed = epoch.elapsed();
    let after = usage();
    let mut fields = latency_fields(n, completed, received, elapsed, before, after);
    percentiles(&mut fields, "publish", &crate::lock(&publish_hist));
    percentiles(&mut fields, "delivery", &crate::lock(&delivery_hist));
    Ok(fields)
}

// ---------------------------------------------------------------------------------------------
// Many idle connections.
// ---------------------------------------------------------------------------------------------

/// Raises this process's open-file limit to its hard limit (children and the broker
/// inherit it). Returns the new soft limit.
pub(crate) fn raise_nofile() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 0,
    }
}

/// The brokers' ports of a many-connection child: `--ports`, else `--port`.
fn idle_ports(options: &Options) -> Vec<u16> {
    if options.ports.is_empty() {
        vec![options.port]
    } else {
        options.ports.clone()
    }
}

/// Connections opened at once while setting up (the broker's listen backlog is finite).
const CONNECT_BATCH: usize = 200;

/// Idle phase after every connection is up, before the measured idle interval.
const SETTLE: Duration = Duration::from_secs(2);

fn idle_fields(
    connections: usize,
    base_kib: u64,
    connect_secs: f64,
    before: crate::Usage,
    after: crate::Usage,
    idle: Duration,
) -> Fields {
    let resident = mqtt_test_support::rss::resident_kib().unwrap_or(0);
    let mut fields = Fields::new();
    fields.insert("connections".into(), connections as f64);
    fields.insert("base_rss_kib".into(), base_kib as f64);
    fields.insert("rss_kib".into(), resident as f64);
    fields.insert(
        "rss_per_conn_kib".into(),
        resident.saturating_sub(base_kib) as f64 / connections.max(1) as f64,
    );
    fields.insert("connect_secs".into(), connect_secs);
    fields.insert(
        "connects_per_sec".into(),
        connections as f64 / connect_secs.max(1e-9),
    );
    let cpu = (after.user_us + after.sys_us).saturating_sub(before.user_us + before.sys_us);
    fields.insert("idle_secs".into(), idle.as_secs_f64());
    fields.insert(
        "idle_cpu_ms_per_s".into(),
        cpu as f64 / 1000.0 / idle.as_secs_f64(),
    );
    fields
}

/// `connections` idle clients of ours, then `idle` of doing nothing; reports resident memory
/// per connection (growth over the process before the first connection) and the CPU the
/// process spent while idle.
pub(crate) async fn idle_ours<R: Runtime + Default>(options: &Options) -> Result<Fields, String> {
    let runtime = R::default();
    let base = mqtt_test_support::rss::resident_kib().unwrap_or(0);
    let config = ClientConfig::default()
        .keep_alive(Duration::from_secs(60))
        .auto_reconnect(false);
    let uris: Vec<String> = idle_ports(options)
        .iter()
        .map(|port| format!("mqtt://127.0.0.1:{port}"))
        .collect();
    let started = Instant::now();
    let mut clients: Vec<MqttClient<R>> = Vec::with_capacity(options.connections);
    while clients.len() < options.connections {
        let batch = CONNECT_BATCH.min(options.connections - clients.len());
        let fresh: Vec<MqttClient<R>> = (0..batch)
            .map(|_| MqttClient::<R>::new(None, config.clone()))
            .collect();
        let first = clients.len();
        let results = futures_util::future::join_all(
            fresh
                .iter()
                .enumerate()
                .map(|(i, c)| c.connect(uris[(first + i) % uris.len()].as_str())),
        )
        .await;
        for result in results {
            result.map_err(|err| format!("connect {} failed: {err}", clients.len()))?;
        }
        clients.extend(fresh);
        PROGRESS.fetch_add(1, Ordering::Relaxed);
    }
    let connect_secs = started.elapsed().as_secs_f64();
    runtime.sleep_until(Instant::now() + SETTLE).await;
    let before = usage();
    let idle = Duration::from_secs_f64(options.idle_secs);
    let idle_end = Instant::now() + idle;
    while Instant::now() < idle_end {
        // Idle in 1 s steps, telling the watchdog this child is alive.
        runtime
            .sleep_until((Instant::now() + Duration::from_secs(1)).min(idle_end))
            .await;
        PROGRESS.fetch_add(1, Ordering::Relaxed);
    }
    let after = usage();
    let mut fields = idle_fields(clients.len(), base, connect_secs, before, after, idle);
    if options.load_secs > 0 {
        fields.extend(crate::load::load_ours(options, &clients, &uris).await?);
    }
    for client in &clients {
        let _ = client.disconnect().await;
    }
    Ok(fields)
}

/// The same with rumqttc: one `AsyncClient` and one event-loop task per connection.
pub(crate) async fn idle_rumqttc(options: &Options) -> Result<Fields, String> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet};

    let base = mqtt_test_support::rss::resident_kib().unwrap_or(0);
    let ports = idle_ports(options);
    let connected = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut clients = Vec::with_capacity(options.connections);
    let mut tasks = Vec::with_capacity(options.connections);
    for i in 0..options.connections {
        let mut mqtt_options = MqttOptions::new(
            format!("rumqttc-idle-{}-{i}", std::process::id()),
            "127.0.0.1",
            ports[i % ports.len()],
        );
        mqtt_options.set_keep_alive(Duration::from_secs(60));
        let (client, mut event_loop) = AsyncClient::new(mqtt_options, 10);
        let counter = connected.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    // rumqttc reconnects on the next poll; a refused connect under load is
                    // retried after a pause.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }));
        clients.push(client);
        // Same pacing as ours: a batch, then wait for it.
        if (i + 1) % CONNECT_BATCH == 0 || i + 1 == options.connections {
            let want = (i + 1) as u64;
            let limit = Instant::now() + Duration::from_secs(60);
            while connected.load(Ordering::Relaxed) < want {
                if Instant::now() > limit {
                    return Err(format!(
                        "only {} of {want} rumqttc connections up after 60 s",
                        connected.load(Ordering::Relaxed)
                    ));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            PROGRESS.fetch_add(1, Ordering::Relaxed);
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(SETTLE).await;
    let before = usage();
    let idle = Duration::from_secs_f64(options.idle_secs);
    let idle_end = Instant::now() + idle;
    while Instant::now() < idle_end {
        tokio::time::sleep_until(
            (Instant::now() + Duration::from_secs(1))
                .min(idle_end)
                .into(),
        )
        .await;
        PROGRESS.fetch_add(1, Ordering::Relaxed);
    }
    let after = usage();
    let fields = idle_fields(clients.len(), base, connect_secs, before, after, idle);
    for task in tasks {
        task.abort();
    }
    Ok(fields)
}
