//! Failover across a 3-node nats-server cluster (routes on loopback, JetStream clustered,
//! the MQTT session streams and consumers replicated on all three nodes, each node with its
//! own MQTT port): a publisher and a subscriber with persistent sessions on different nodes
//! stream QoS 1 messages while the node each is connected to is killed with SIGKILL and
//! restarted, one after the other. Both fail over along their URI lists and carry on with
//! their sessions; nothing is lost.
//!
//! Failover times and duplicates are printed to stderr:
//! `cargo test -p sansmqtt-tokio --test cluster -- --nocapture`.

// The measurements are this test's output.
#![allow(clippy::print_stderr)]

use std::future::IntoFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use mqtt_test_support::NatsCluster;
use sansmqtt_tokio::{ClientConfig, ConnectionEvent, MqttClient, QoS};

const MESSAGES: usize = 10_000;
/// Publishes in flight from the test at once (the client's window is `max_inflight`).
const CONCURRENCY: usize = 200;
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// A node stays down this long before it is restarted.
const DOWN: Duration = Duration::from_secs(2);

type EventLog = Arc<Mutex<Vec<(Instant, ConnectionEvent)>>>;

fn config() -> ClientConfig {
    ClientConfig::default()
        .clean_session(false)
        .keep_alive(KEEP_ALIVE)
        .auto_reconnect(true)
        .reconnect_retries(None)
        .reconnect_initial_interval(Duration::from_millis(200))
        .reconnect_max_interval(Duration::from_secs(2))
        // A node whose JetStream peers are electing a new leader holds CONNECT for up to
        // 4 s before giving up: let it answer.
        .connect_timeout(Duration::from_secs(6))
        .max_inflight(100)
        .message_buffer(MESSAGES)
}

fn record_events(client: &MqttClient) -> EventLog {
    let log = EventLog::default();
    let mut events = client.connection_events();
    let sink = log.clone();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            sink.lock().expect("events").push((Instant::now(), event));
        }
    });
    log
}

/// Kill time → first `Connected` after it, with the `Reconnecting` attempts in between.
/// The stream can finish before the last failover does (a fast run publishes everything
/// before the second node is back), so this waits for the reconnect, within `bound`.
fn failover(log: &EventLog, killed_at: Instant, bound: Duration) -> (Duration, Vec<String>) {
    let connected_after_kill = |log: &EventLog| {
        log.lock().expect("events").iter().any(|(at, event)| {
            *at >= killed_at && matches!(event, ConnectionEvent::Connected { .. })
        })
    };
    while !connected_after_kill(log) && killed_at.elapsed() < bound {
        thread::sleep(Duration::from_millis(20));
    }
    let log = log.lock().expect("events");
    let after: Vec<&(Instant, ConnectionEvent)> =
        log.iter().filter(|(at, _)| *at >= killed_at).collect();
    let back = after
        .iter()
        .find(|(_, event)| matches!(event, ConnectionEvent::Connected { .. }))
        .unwrap_or_else(|| panic!("never reconnected after the kill: {after:?}"));
    let attempts = after
        .iter()
        .take_while(|(at, _)| *at <= back.0)
        .filter_map(|(_, event)| match event {
            ConnectionEvent::Reconnecting {
                attempt,
                delay,
                uri,
            } => Some(format!("#{attempt} {uri} after {delay:.2?}")),
            _ => None,
        })
        .collect();
    assert!(
        matches!(
            back.1,
            ConnectionEvent::Connected {
                session_present: true
            }
        ),
        "the session did not survive the node: {:?}",
        back.1
    );
    (back.0 - killed_at, attempts)
}

/// The URI a client is connected to now, from its events: the URI of the last attempt
/// before its last `Connected` (`first` if it never reconnected).
fn current_uri(log: &EventLog, first: &str) -> String {
    let mut trying = first.to_owned();
    let mut current = first.to_owned();
    for (_, event) in log.lock().expect("events").iter() {
        match event {
            ConnectionEvent::Reconnecting { uri, .. } => trying = uri.clone(),
            ConnectionEvent::Connected { .. } => current = trying.clone(),
            _ => {}
        }
    }
    current
}

/// Waits (blocking, on the controller thread) until `count` reaches `at_least`.
fn wait_count(count: &AtomicUsize, at_least: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::SeqCst) < at_least {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn qos1_stream_survives_sigkill_of_each_clients_node_in_a_nats_cluster() {
    mqtt_test_support::init_test_tracing();
    let mut cluster = NatsCluster::start(3);
    let uris = cluster.mqtt_uris();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a Tokio runtime");

    let unique = Arc::new(AtomicUsize::new(0));
    // The subscriber starts on node 0, the publisher on node 1; each walks the rest of the
    // list so that they end up on node 2, the one never killed.
    let sub_uris = [uris[0].clone(), uris[2].clone(), uris[1].clone()];
    let pub_uris = [uris[1].clone(), uris[2].clone(), uris[0].clone()];
    let (subscriber, publisher, sub_events, pub_events, counts) = runtime.block_on(async {
        let subscriber = MqttClient::new(Some("cluster-sub"), config().uris(sub_uris.clone()));
        let publisher = MqttClient::new(Some("cluster-pub"), config().uris(pub_uris.clone()));
        let sub_events = record_events(&subscriber);
        let pub_events = record_events(&publisher);
        for client in [&subscriber, &publisher] {
            tokio::time::timeout(Duration::from_secs(20), client.connect(None).into_future())
                .await
                .expect("CONNACK within 20 s")
                .expect("connect to the cluster");
        }
        let codes = tokio::time::timeout(
            Duration::from_secs(20),
            subscriber.subscribe([("cluster/t", QoS::AtLeastOnce)]),
        )
        .await
        .expect("SUBACK within 20 s")
        .expect("subscribe");
        assert!(codes.iter().all(|code| code.is_success()), "{codes:?}");
        let counts = Arc::new(Mutex::new(vec![0u32; MESSAGES]));
        {
            let counts = counts.clone();
            let unique = unique.clone();
            let mut messages = Box::pin(subscriber.messages());
            tokio::spawn(async move {
                while let Some(message) = messages.next().await {
                    let i: usize = String::from_utf8_lossy(message.payload())
                        .parse()
                        .expect("numeric payload");
                    let mut counts = counts.lock().expect("counts");
                    counts[i] += 1;
                    if counts[i] == 1 {
                        unique.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        (subscriber, publisher, sub_events, pub_events, counts)
    });

    // The controller kills and restarts the node each client is on while the stream flows
    // (a client may have moved before: nats-server also drops clients while its JetStream
    // peers elect leaders).
    let start = Instant::now();
    let controller = {
        let unique = unique.clone();
        let (sub_log, pub_log) = (sub_events.clone(), pub_events.clone());
        let (sub_first, pub_first) = (sub_uris[0].clone(), pub_uris[0].clone());
        thread::spawn(move || {
            let node_of = |cluster: &NatsCluster, uri: &str| {
                cluster
                    .mqtt_uris()
                    .iter()
                    .position(|node| node == uri)
                    .unwrap_or_else(|| panic!("{uri} is no node of the cluster"))
            };
            wait_count(&unique, MESSAGES / 4, "a quarter of the stream");
            let sub_node = node_of(&cluster, &current_uri(&sub_log, &sub_first));
            // Timed before the kill: the client sees its socket close before `kill` returns.
            let sub_killed = Instant::now();
            cluster.node_mut(sub_node).kill();
            thread::sleep(DOWN);
            cluster.node_mut(sub_node).restart();
            // Let the restarted node catch up before its quorum is needed again.
            wait_count(&unique, MESSAGES / 2, "half of the stream");
            thread::sleep(Duration::from_secs(3));
            let pub_node = node_of(&cluster, &current_uri(&pub_log, &pub_first));
            let pub_killed = Instant::now();
            cluster.node_mut(pub_node).kill();
            thread::sleep(DOWN);
            cluster.node_mut(pub_node).restart();
            eprintln!(
                "nats cluster: the subscriber's node {sub_node} killed at {:.2}s, the \
                 publisher's node {pub_node} at {:.2}s (nodes {:?})",
                (sub_killed - start).as_secs_f64(),
                (pub_killed - start).as_secs_f64(),
                cluster.mqtt_uris()
            );
            (cluster, sub_killed, pub_killed)
        })
    };

    runtime.block_on(async {
        let results: Vec<_> = stream::iter(0..MESSAGES)
            .map(|i| {
                publisher
                    .publish("cluster/t", i.to_string().into_bytes())
                    .qos(QoS::AtLeastOnce)
                    .into_future()
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (i, result) in results.iter().enumerate() {
            assert!(
                matches!(result, Ok(code) if code.is_success()),
                "publish {i}: {result:?}"
            );
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        while unique.load(Ordering::SeqCst) < MESSAGES {
            if Instant::now() > deadline {
                let counts = counts.lock().expect("counts");
                let missing: Vec<usize> = (0..MESSAGES).filter(|&i| counts[i] == 0).collect();
                panic!(
                    "{} of {MESSAGES} messages never arrived, e.g. {:?}",
                    missing.len(),
                    &missing[..missing.len().min(20)]
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let elapsed = start.elapsed();
    let (cluster, sub_killed, pub_killed) = match controller.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let duplicates: u32 = counts
        .lock()
        .expect("counts")
        .iter()
        .map(|&c| c.saturating_sub(1))
        .sum();
    eprintln!(
        "nats cluster: {MESSAGES} QoS 1 messages in {elapsed:.2?} ({:.0} msg/s) across two \
         node kills; 0 lost, {duplicates} duplicates",
        MESSAGES as f64 / elapsed.as_secs_f64()
    );
    for (name, log, killed_at) in [
        ("subscriber", &sub_events, sub_killed),
        ("publisher", &pub_events, pub_killed),
    ] {
        // Keep alive plus the backoff cap, plus up to two CONNECTs (one per other node) that
        // a node holds while its JetStream peers elect new leaders (nats-server gives up on
        // them after 4 s; our connect timeout is 6 s) before a node answers. Measured: 2 ms
        // to 9 s.
        let bound = KEEP_ALIVE + Duration::from_secs(2) + 2 * Duration::from_secs(6);
        let (took, attempts) = failover(log, killed_at, bound);
        for (at, event) in log.lock().expect("events").iter() {
            let at = at.saturating_duration_since(start).as_secs_f64();
            eprintln!("nats cluster: {name} at {at:.2}s: {event:?}");
        }
        eprintln!(
            "nats cluster: {name} failed over in {took:.2?}; attempts: {}",
            attempts.join(", ")
        );
        assert!(
            !attempts.is_empty(),
            "{name} reconnected without an attempt"
        );
        assert!(took < bound, "{name} took {took:?} to fail over");
    }
    runtime.block_on(async {
        for client in [&subscriber, &publisher] {
            let _ = tokio::time::timeout(Duration::from_secs(5), client.disconnect()).await;
        }
    });
    drop(cluster);
}
