//! The same QoS 1 stream over `mqtts://` (mosquitto, and mqtt5's broker) and over `quic://`
//! (mqtt5's broker)
//! through the link emulator ([`NetemLink`]) at 50 ms ± 10 ms one way, with 0 %, 2 % and 5 %
//! loss: connect time (TCP + TLS + CONNECT, or QUIC + CONNECT), messages per second and p99
//! publish-to-delivery latency, side by side. Both brokers run in namespace A, the client in
//! namespace B. Needs root, `/dev/net/tun` and this crate's `quic` feature; fails without.
//!
//! Every message must arrive (counted at the application); the figures are printed:
//! `cargo test -p sansmqtt-tokio --features quic --test quic_netem -- --nocapture`. They are
//! measurements of a shared machine, not a benchmark: read them as ratios within one run.

// The measurements are this test's output.
#![allow(clippy::print_stderr)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use mqtt_test_support::{Certs, LinkConditions, Mosquitto, NetemLink, QuicBroker};
use sansmqtt_tokio::{ClientConfig, MqttClient, QoS};

/// Runs per condition and transport (the median is shown, with the range).
const REPEATS: usize = 3;
/// Messages per run.
const MESSAGES: usize = 300;
/// Publishes in flight at once.
const WINDOW: usize = 20;

/// What one run measured.
struct Figures {
    connect: Duration,
    per_second: f64,
    p99: Duration,
}

async fn run(uri: &str, ca: &Path) -> Figures {
    let config = ClientConfig::default()
        .ca_file(ca)
        // The test certificate names localhost / 127.0.0.1, not namespace A's address.
        .check_hostname(false)
        .connect_timeout(Duration::from_secs(20))
        .keep_alive(Duration::from_secs(30));
    let client = MqttClient::new(None, config);
    let started = Instant::now();
    client.connect(uri).await.expect("connect across the link");
    let connect = started.elapsed();
    client
        .subscribe([("cmp/#", QoS::AtLeastOnce)])
        .await
        .expect("subscribe");
    let sent = Arc::new(Mutex::new(vec![None::<Instant>; MESSAGES]));
    let start = Instant::now();
    let publishing = stream::iter(0..MESSAGES)
        .map(|i| {
            sent.lock().expect("lock")[i] = Some(Instant::now());
            let index = u32::try_from(i).expect("small index");
            client
                .publish("cmp/x", index.to_be_bytes().to_vec())
                .qos(QoS::AtLeastOnce)
                .ack_timeout(Duration::from_secs(60))
        })
        .buffer_unordered(WINDOW)
        .for_each(|result| {
            result.expect("publish");
            async {}
        });
    let receiving = async {
        let mut latencies = vec![None; MESSAGES];
        let mut distinct = 0;
        while distinct < MESSAGES {
            let message = client
                .deliver_message()
                .timeout(Duration::from_secs(60))
                .await
                .unwrap_or_else(|err| panic!("{distinct}/{MESSAGES} arrived, then {err:?}"));
            let index = u32::from_be_bytes(message.payload()[..4].try_into().expect("4 bytes"));
            let index = usize::try_from(index).expect("index");
            if latencies[index].is_none() {
                let sent_at = sent.lock().expect("lock")[index].expect("sent before received");
                latencies[index] = Some(sent_at.elapsed());
                distinct += 1;
            }
        }
        (start.elapsed(), latencies)
    };
    let ((), (elapsed, latencies)) = futures_util::join!(publishing, receiving);
    let mut latencies: Vec<Duration> = latencies.into_iter().map(Option::unwrap).collect();
    latencies.sort();
    let _ = client.disconnect().await;
    Figures {
        connect,
        per_second: MESSAGES as f64 / elapsed.as_secs_f64(),
        p99: latencies[MESSAGES * 99 / 100],
    }
}

/// "median [min-max]" of the values.
fn spread(values: impl Iterator<Item = f64>) -> String {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    format!(
        "{:.0} [{:.0}-{:.0}]",
        values[values.len() / 2],
        values[0],
        values[values.len() - 1]
    )
}

#[test]
fn qos1_stream_over_mqtts_and_quic_on_a_lossy_link() {
    mqtt_test_support::init_test_tracing();
    let link = NetemLink::create();
    let certs = Certs::generate();
    let mosquitto = Mosquitto::builder()
        .netns(link.ns_a(), link.addr_a())
        .tls(&certs)
        .extra_config("max_inflight_messages 100")
        .start();
    let mqtts = format!(
        "mqtts://{}:{}",
        link.addr_a(),
        mosquitto.tls_port().expect("TLS port")
    );
    let quic_broker = QuicBroker::start_in_netns(&certs, link.ns_a(), link.addr_a());
    let quic = quic_broker.uri();
    let mqtt5_tls = quic_broker.tls_uri();
    let ca = certs.ca_file();
    eprintln!("median [min-max] of {REPEATS} runs, {MESSAGES} QoS 1 messages, {WINDOW} in flight");
    eprintln!("loss  transport        connect_ms         msgs_per_s         p99_ms");
    for loss in [0.0, 0.02, 0.05] {
        link.set(
            LinkConditions::delay(Duration::from_millis(50), Duration::from_millis(10)).loss(loss),
        );
        for (name, uri) in [
            ("mqtts/mosq", &mqtts),
            ("mqtts/mqtt5", &mqtt5_tls),
            ("quic/mqtt5", &quic),
        ] {
            let runs: Vec<Figures> = (0..REPEATS)
                .map(|_| {
                    link.run_in_b(|| {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("building a Tokio runtime")
                            .block_on(run(uri, &ca))
                    })
                })
                .collect();
            let connect = spread(runs.iter().map(|f| f.connect.as_secs_f64() * 1000.0));
            let rate = spread(runs.iter().map(|f| f.per_second));
            let p99 = spread(runs.iter().map(|f| f.p99.as_secs_f64() * 1000.0));
            eprintln!(
                "{:>3.0}%  {name:<12}  {connect:>17}  {rate:>17}  {p99:>17}",
                loss * 100.0
            );
        }
    }
    drop(quic_broker);
    drop(mosquitto);
}
