//! QoS 1 and QoS 2 over a real TCP path with delay, jitter, loss, reordering and a 20 s link
//! cut, through the link emulator of `mqtt-test-support` ([`NetemLink`]: two network
//! namespaces joined through TUN devices by a relay that delays, drops and reorders IP
//! packets; this kernel has no `netem` qdisc).
//!
//! A private mosquitto runs in namespace A (`ip netns exec`); both clients run in namespace B
//! on a thread that entered it (`setns`) with a current-thread Tokio runtime, so every socket
//! they open crosses the emulated link. Needs root and `/dev/net/tun` (CI runs as root);
//! without them the test fails saying so.
//!
//! Measurements (throughput per condition, loss detection and reconnect times) are printed
//! to stderr: `cargo test -p sansmqtt-tokio --test netem -- --nocapture`.

// The measurements are this test's output.
#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use mqtt_test_support::{LinkConditions, Mosquitto, NetemLink};
use sansmqtt_tokio::{ClientConfig, ConnectionEvent, MqttClient, QoS};

/// Keep alive of both clients: a dead link must be noticed within about twice this.
const KEEP_ALIVE: Duration = Duration::from_secs(4);
/// How long the link stays cut.
const CUT: Duration = Duration::from_secs(20);
/// Publishes in flight from the test at once (the client's window is `max_inflight`).
const CONCURRENCY: usize = 300;

/// Messages received, by (phase, QoS) then index: how many times each arrived.
type Received = Arc<Mutex<HashMap<(String, u8), Vec<u32>>>>;

fn config() -> ClientConfig {
    ClientConfig::default()
        .clean_session(false)
        .keep_alive(KEEP_ALIVE)
        .auto_reconnect(true)
        .reconnect_retries(None)
        .reconnect_initial_interval(Duration::from_millis(250))
        .reconnect_max_interval(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(3))
        .max_inflight(100)
        .message_buffer(10_000)
}

fn topic(qos: QoS) -> &'static str {
    match qos {
        QoS::AtLeastOnce => "netem/q1",
        _ => "netem/q2",
    }
}

/// Publishes `n` messages of `phase` at `qos`, `CONCURRENCY` at a time; every one must
/// complete.
async fn publish_all(client: &MqttClient, phase: &str, qos: QoS, n: usize) {
    let results: Vec<_> = stream::iter(0..n)
        .map(|i| {
            client
                .publish(topic(qos), format!("{phase}:{i}").into_bytes())
                .qos(qos)
                .into_future()
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (i, result) in results.iter().enumerate() {
        assert!(
            matches!(result, Ok(code) if code.is_success()),
            "{phase} publish {i} at {qos:?}: {result:?}"
        );
    }
}

/// Waits (up to `bound`) until every index of (`phase`, `qos`) below `n` arrived; returns the
/// number of duplicates. QoS 2 must have none.
async fn wait_received(
    received: &Received,
    phase: &str,
    qos: QoS,
    n: usize,
    bound: Duration,
) -> u32 {
    let key = (phase.to_owned(), qos as u8);
    let deadline = Instant::now() + bound;
    loop {
        let (missing, duplicates) = {
            let map = received.lock().expect("received");
            let counts = map.get(&key).cloned().unwrap_or_default();
            let missing: Vec<usize> = (0..n)
                .filter(|&i| counts.get(i).copied().unwrap_or(0) == 0)
                .collect();
            let duplicates: u32 = counts.iter().map(|&c| c.saturating_sub(1)).sum();
            (missing, duplicates)
        };
        if qos == QoS::ExactlyOnce {
            assert_eq!(duplicates, 0, "{phase}: QoS 2 messages delivered twice");
        }
        if missing.is_empty() {
            return duplicates;
        }
        assert!(
            Instant::now() < deadline,
            "{phase} at {qos:?}: {} of {n} messages missing after {bound:?}, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(20)]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One phase: `n` QoS 1 then `n` QoS 2 messages; prints and returns the rates.
async fn stream_phase(
    publisher: &MqttClient,
    received: &Received,
    phase: &str,
    n: usize,
    bound: Duration,
) {
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let start = Instant::now();
        publish_all(publisher, phase, qos, n).await;
        let duplicates = wait_received(received, phase, qos, n, bound).await;
        let elapsed = start.elapsed();
        eprintln!(
            "netem {phase}: {n} messages at {qos:?} in {elapsed:.2?} = {:.0} msg/s end to end, \
             {duplicates} duplicates",
            n as f64 / elapsed.as_secs_f64()
        );
    }
}

/// Records each client's connection events with the time they happened.
fn record_events(client: &MqttClient) -> Arc<Mutex<Vec<(Instant, ConnectionEvent)>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut events = client.connection_events();
    let sink = log.clone();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            sink.lock().expect("events").push((Instant::now(), event));
        }
    });
    log
}

fn first_after(
    log: &Mutex<Vec<(Instant, ConnectionEvent)>>,
    after: Instant,
    wanted: impl Fn(&ConnectionEvent) -> bool,
) -> Option<Instant> {
    log.lock()
        .expect("events")
        .iter()
        .find(|(at, event)| *at >= after && wanted(event))
        .map(|(at, _)| *at)
}

async fn scenario(link: &NetemLink, uri: &str) {
    let subscriber = MqttClient::new(Some("netem-sub"), config());
    let publisher = MqttClient::new(Some("netem-pub"), config());
    let sub_events = record_events(&subscriber);
    let pub_events = record_events(&publisher);
    for client in [&subscriber, &publisher] {
        tokio::time::timeout(Duration::from_secs(10), client.connect(uri).into_future())
            .await
            .expect("CONNACK across the link within 10 s")
            .expect("connect across the link");
    }
    let codes = tokio::time::timeout(
        Duration::from_secs(10),
        subscriber.subscribe([
            ("netem/q1", QoS::AtLeastOnce),
            ("netem/q2", QoS::ExactlyOnce),
        ]),
    )
    .await
    .expect("SUBACK within 10 s")
    .expect("subscribe");
    assert!(codes.iter().all(|code| code.is_success()), "{codes:?}");

    let received: Received = Arc::default();
    {
        let received = received.clone();
        let mut messages = Box::pin(subscriber.messages());
        tokio::spawn(async move {
            while let Some(message) = messages.next().await {
                let text = String::from_utf8_lossy(message.payload()).into_owned();
                let (phase, index) = text.split_once(':').expect("phase:index payload");
                let index: usize = index.parse().expect("numeric index");
                let mut map = received.lock().expect("received");
                let counts = map
                    .entry((phase.to_owned(), message.qos() as u8))
                    .or_default();
                if counts.len() <= index {
                    counts.resize(index + 1, 0);
                }
                counts[index] += 1;
            }
        });
    }

    // 1. 50 ms ± 10 ms each way.
    link.set(LinkConditions::delay(
        Duration::from_millis(50),
        Duration::from_millis(10),
    ));
    stream_phase(
        &publisher,
        &received,
        "delay",
        2_000,
        Duration::from_secs(30),
    )
    .await;

    // 2. The same plus 5% loss and 25% reordering, each way.
    let before = link.stats();
    link.set(
        LinkConditions::delay(Duration::from_millis(50), Duration::from_millis(10))
            .loss(0.05)
            .reorder(0.25),
    );
    stream_phase(
        &publisher,
        &received,
        "loss",
        5_000,
        Duration::from_secs(60),
    )
    .await;
    let after = link.stats();
    eprintln!(
        "netem loss phase: {} packets forwarded, {} lost, {} reordered",
        after.forwarded - before.forwarded,
        after.lost - before.lost,
        after.reordered - before.reordered
    );
    assert!(after.lost > before.lost, "the link lost nothing: {after:?}");

    // 3. Back to delay only; the link is cut for 20 s in the middle of a stream.
    link.set(LinkConditions::delay(
        Duration::from_millis(50),
        Duration::from_millis(10),
    ));
    const N: usize = 3_000;
    let cut_phase = async {
        let q1 = publish_all(&publisher, "cut", QoS::AtLeastOnce, N);
        let q2 = publish_all(&publisher, "cut", QoS::ExactlyOnce, N);
        futures_util::future::join(q1, q2).await;
    };
    let cutter = async {
        // Mid-stream: once some of the messages arrived.
        let start = Instant::now();
        loop {
            let got = received
                .lock()
                .expect("received")
                .get(&("cut".to_owned(), 1))
                .map_or(0, |counts| counts.iter().filter(|&&c| c > 0).count());
            if got >= N / 4 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the cut stream does not flow"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        link.cut();
        let cut_at = Instant::now();
        tokio::time::sleep(CUT).await;
        link.restore();
        (cut_at, Instant::now())
    };
    let stream_start = Instant::now();
    let ((), (cut_at, restored_at)) = futures_util::future::join(cut_phase, cutter).await;
    let mut duplicates = 0;
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        duplicates += wait_received(&received, "cut", qos, N, Duration::from_secs(60)).await;
    }
    let total = stream_start.elapsed();
    eprintln!(
        "netem cut: {N} QoS 1 + {N} QoS 2 messages with a {CUT:?} cut in {total:.2?} \
         ({:.0} msg/s overall, {:.0} msg/s outside the cut), {duplicates} QoS 1 duplicates",
        (2 * N) as f64 / total.as_secs_f64(),
        (2 * N) as f64 / total.saturating_sub(CUT).as_secs_f64()
    );

    // Both clients noticed within their keep-alive bound (PINGREQ after at most one keep
    // alive of silence, declared lost one keep alive later) and came back after the restore.
    let bound = KEEP_ALIVE * 2 + Duration::from_secs(1);
    for (name, log) in [("subscriber", &sub_events), ("publisher", &pub_events)] {
        let lost = first_after(log, cut_at, |event| {
            matches!(event, ConnectionEvent::ConnectionLost(_))
        })
        .unwrap_or_else(|| {
            panic!(
                "{name} never noticed the cut: {:?}",
                log.lock().expect("events")
            )
        });
        let noticed = lost - cut_at;
        let back = first_after(log, restored_at, |event| {
            matches!(event, ConnectionEvent::Connected { .. })
        })
        .unwrap_or_else(|| {
            panic!(
                "{name} never reconnected: {:?}",
                log.lock().expect("events")
            )
        });
        let attempts: Vec<String> = log
            .lock()
            .expect("events")
            .iter()
            .filter(|(at, _)| *at >= cut_at && *at <= back)
            .filter_map(|(_, event)| match event {
                ConnectionEvent::Reconnecting { attempt, delay, .. } => {
                    Some(format!("#{attempt} after {delay:.2?}"))
                }
                _ => None,
            })
            .collect();
        eprintln!(
            "netem cut: {name} noticed after {noticed:.2?} (bound {bound:?}), reconnected \
             {:.2?} after the restore; attempts: {}",
            back - restored_at,
            attempts.join(", ")
        );
        assert!(noticed <= bound, "{name} noticed the cut after {noticed:?}");
        assert!(
            attempts.len() >= 2,
            "{name} made {} attempts during a {CUT:?} cut",
            attempts.len()
        );
        // A connect attempt takes at most connect_timeout (3 s), then at most the backoff
        // cap (2 s) before the next.
        assert!(
            back - restored_at <= Duration::from_secs(8),
            "{name} came back {:?} after the restore",
            back - restored_at
        );
    }
    for client in [&subscriber, &publisher] {
        let _ = tokio::time::timeout(Duration::from_secs(5), client.disconnect()).await;
    }
}

/// See the module docs. About two minutes: the delay, loss and cut phases in sequence.
#[test]
fn qos1_and_qos2_survive_delay_loss_reordering_and_a_link_cut() {
    mqtt_test_support::init_test_tracing();
    let link = NetemLink::create();
    let broker = Mosquitto::builder()
        .netns(link.ns_a(), link.addr_a())
        // Keep every queued message for the offline clients during the cut, and let the
        // broker keep as many messages in flight as the clients do.
        .extra_config("max_queued_messages 0\nmax_inflight_messages 100")
        .start();
    let uri = broker.uri();
    link.run_in_b(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building a Tokio runtime")
            .block_on(scenario(&link, &uri));
    });
    drop(broker);
}
