//! Fire-and-forget QoS 0 publishing at full speed against a SIGSTOPped broker for 20 s: what
//! the publisher can queue is bounded (`ClientConfig::max_queued`), so resident memory levels
//! off instead of growing with the flood. Its own test binary, so the memory figures are this
//! scenario's alone.

// The figures are the report of this test (`--nocapture` shows them).
#![allow(clippy::print_stderr)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mqtt_test_support::Mosquitto;
use mqtt_test_support::rss::RssSampler;
use sansmqtt_tokio::{ClientConfig, ClientError, MqttClient, QoS};

#[test]
fn fire_and_forget_qos0_against_a_stopped_broker_keeps_memory_bounded() {
    mqtt_test_support::init_test_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a Tokio runtime");
    let mut broker = Mosquitto::start();
    let sampler = RssSampler::start(Duration::from_millis(250));
    let (accepted, refused) = runtime.block_on(async {
        let client = MqttClient::new(
            None,
            ClientConfig::default()
                .keep_alive(Duration::from_secs(2))
                .reconnect_retries(None)
                .reconnect_max_interval(Duration::from_secs(1)),
        );
        client
            .connect(broker.uri().as_str())
            .await
            .expect("connect");
        broker.pause();
        let accepted = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let payload = bytes_of(256);
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            // The future is dropped at once: fire and forget.
            match client
                .publish("stalled/flood", payload.clone())
                .qos(QoS::AtMostOnce)
                .send_now()
            {
                Ok(_) => accepted.fetch_add(1, Ordering::Relaxed),
                Err(ClientError::QueueFull) => {
                    refused.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                    0
                }
                Err(err) => panic!("publish failed with {err:?} instead of QueueFull"),
            };
            assert!(client.stats().queued_publishes <= client.config().max_queued);
        }
        broker.resume();
        (
            accepted.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed),
        )
    });
    let rss = sampler.stop();
    eprintln!("stalled broker: {accepted} accepted, {refused} refused (QueueFull); {rss}");
    assert!(
        refused > 0,
        "the queue never filled against a stopped broker"
    );
    let growth = rss.growth_after(Duration::from_secs(5));
    assert!(
        growth < 16 * 1024,
        "resident memory grew by {growth} KiB while the queue was full ({rss})"
    );
    assert!(rss.peak_kib < 256 * 1024, "peak resident memory {rss}");
}

fn bytes_of(n: usize) -> Vec<u8> {
    vec![b'x'; n]
}
