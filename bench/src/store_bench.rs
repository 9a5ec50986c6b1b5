//! Publish throughput with the durable file store against the memory store, through one
//! private mosquitto in the same run, and the number of fsyncs per 1,000 messages.
//!
//! ```text
//! cargo run --release -p mqtt-bench --bin store_bench -- [MESSAGES] [CONCURRENCY]
//! ```
//!
//! Each case publishes MESSAGES messages of 64 bytes with CONCURRENCY publishes awaited at
//! once (default 20,000 and 1,000), on a fresh client id; the rate counts from the first
//! publish to the last completion (PUBACK / PUBCOMP). The store lives in the target
//! directory, on the real disk.
//!
//! ```text
//! store_bench file URI QOS MESSAGES CONCURRENCY
//! ```
//!
//! runs the file store alone against the broker at URI and prints `rate <msg/s> fsyncs
//! <per 1,000 messages>`: the form `bench/paho_store.sh` uses to compare it with Paho C's file
//! persistence through one broker.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use mqtt_test_support::Mosquitto;
use sansmqtt_tokio::{ClientConfig, MqttClient, QoS};

struct Outcome {
    rate: f64,
    syncs_per_1000: Option<f64>,
}

async fn run(
    uri: &str,
    qos: QoS,
    store: Option<PathBuf>,
    messages: usize,
    concurrency: usize,
) -> Outcome {
    let mut config = ClientConfig::default()
        .max_inflight(u16::MAX)
        .connect_timeout(Duration::from_secs(10));
    if let Some(dir) = &store {
        let _ = std::fs::remove_dir_all(dir);
        config = config.session_store(dir.clone());
    }
    let client = MqttClient::new(None, config);
    client.connect(uri).await.unwrap();
    let syncs_before = client.store_stats().map_or(0, |s| s.syncs);
    let payload = bytes_of(64);
    let started = Instant::now();
    let mut pending: FuturesUnordered<sansmqtt_tokio::PublishFuture> = FuturesUnordered::new();
    for i in 0..messages {
        if pending.len() >= concurrency {
            pending.next().await.unwrap().unwrap();
        }
        pending.push(
            client
                .publish(format!("bench/store/{}", i % 16), payload.clone())
                .qos(qos)
                .start(),
        );
    }
    while let Some(result) = pending.next().await {
        result.unwrap();
    }
    let elapsed = started.elapsed();
    let syncs = client.store_stats().map(|s| s.syncs - syncs_before);
    client.disconnect().await.unwrap();
    if let Some(dir) = &store {
        let _ = std::fs::remove_dir_all(dir);
    }
    Outcome {
        rate: messages as f64 / elapsed.as_secs_f64(),
        syncs_per_1000: syncs.map(|s| s as f64 * 1000.0 / messages as f64),
    }
}

fn bytes_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

/// `file URI QOS MESSAGES CONCURRENCY`: the file store alone, one line of figures.
fn file_only(mut args: impl Iterator<Item = String>) {
    let uri = args.next().expect("URI");
    let qos = match args.next().as_deref() {
        Some("1") => QoS::AtLeastOnce,
        Some("2") => QoS::ExactlyOnce,
        other => panic!("QoS 1 or 2, not {other:?}"),
    };
    let messages: usize = args.next().expect("MESSAGES").parse().unwrap();
    let concurrency: usize = args.next().expect("CONCURRENCY").parse().unwrap();
    let store = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/store-bench")
        .join(std::process::id().to_string());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let file = rt.block_on(run(&uri, qos, Some(store), messages, concurrency));
    println!(
        "rate {:.0} fsyncs {:.2}",
        file.rate,
        file.syncs_per_1000.unwrap_or(f64::NAN)
    );
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("file") {
        args.next();
        return file_only(args);
    }
    let messages: usize = args.next().map_or(20_000, |a| a.parse().unwrap());
    let concurrency: usize = args.next().map_or(1_000, |a| a.parse().unwrap());
    let broker = Mosquitto::builder()
        .persistence(true)
        .extra_config("max_inflight_messages 0\nmax_queued_messages 0\n")
        .start();
    let uri = broker.uri();
    let store = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/store-bench")
        .join(std::process::id().to_string());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{messages} messages of 64 bytes, {concurrency} publishes awaited at once, mosquitto with persistence"
    );
    println!(
        "{:<6} {:>14} {:>14} {:>8} {:>18}",
        "QoS", "memory msg/s", "file msg/s", "ratio", "fsyncs/1000 msgs"
    );
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        rt.block_on(async {
            // Warm-up: connection set-up and the broker's first allocations out of the way.
            run(&uri, qos, None, messages / 10, concurrency).await;
            let memory = run(&uri, qos, None, messages, concurrency).await;
            let file = run(&uri, qos, Some(store.clone()), messages, concurrency).await;
            println!(
                "{:<6} {:>14.0} {:>14.0} {:>8.2} {:>18.1}",
                qos as u8,
                memory.rate,
                file.rate,
                file.rate / memory.rate,
                file.syncs_per_1000.unwrap_or(f64::NAN)
            );
        });
    }
}
