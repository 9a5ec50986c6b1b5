//! The many-connection mode's load phase (`--connections N --load-secs S`, ours only): after
//! the idle measurement, every one of the N connections publishes one QoS 1 message a second
//! for S seconds (connection `i` at `i / N` into each second), and one subscriber per broker (subscribed to `load/#` at QoS 1) counts what
//! arrives. Reports messages lost (published, never received), duplicates, and the publish
//! latency (issue to PUBACK) percentiles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sansmqtt_client::proto::QoS;
use sansmqtt_client::{ClientConfig, MqttClient, Runtime};

use crate::modes::Fields;
use crate::{Options, PROGRESS};

/// Seconds a load run may take: one bit per second and connection.
const MAX_SECS: u64 = 64;

/// Runs the load phase on `clients` (connection `i` on `uris[i % uris.len()]`).
pub(crate) async fn load_ours<R: Runtime + Default>(
    options: &Options,
    clients: &[MqttClient<R>],
    uris: &[String],
) -> Result<Fields, String> {
    let runtime = R::default();
    let secs = options.load_secs.min(MAX_SECS);
    // Bit `t` of `seen[i]`: second `t`'s message of connection `i` arrived.
    let seen: Arc<Vec<AtomicU64>> =
        Arc::new((0..clients.len()).map(|_| AtomicU64::new(0)).collect());
    let duplicates = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let mut subscribers = Vec::with_capacity(uris.len());
    for uri in uris {
        let subscriber = MqttClient::<R>::new(
            None,
            ClientConfig::default()
                .keep_alive(Duration::from_secs(60))
                .auto_reconnect(false)
                .message_buffer(1 << 16),
        );
        subscriber
            .connect(uri.as_str())
            .await
            .map_err(|err| format!("load subscriber connect: {err}"))?;
        subscriber
            .subscribe([("load/#", QoS::AtLeastOnce)])
            .await
            .map_err(|err| format!("load subscribe: {err}"))?;
        let (seen, duplicates, received) = (seen.clone(), duplicates.clone(), received.clone());
        let messages = subscriber.messages();
        runtime.spawn(async move {
            let mut messages = std::pin::pin!(messages);
            while let Some(message) = messages.next().await {
                let Some((i, t)) = parse(message.payload()) else {
                    continue;
                };
                let bit = 1u64 << t;
                if let Some(slot) = seen.get(i)
                    && slot.fetch_or(bit, Ordering::Relaxed) & bit != 0
                {
                    duplicates.fetch_add(1, Ordering::Relaxed);
                }
                received.fetch_add(1, Ordering::Relaxed);
                PROGRESS.fetch_add(1, Ordering::Relaxed);
            }
        });
        subscribers.push(subscriber);
    }
    let latencies = Arc::new(Mutex::new(
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
            .map_err(|err| format!("histogram: {err}"))?,
    ));
    let failed = Arc::new(AtomicU64::new(0));
    let completed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    // Connection `i` publishes at `i / N` into every second, so the load is even.
    let gap = Duration::from_secs(1) / u32::try_from(clients.len().max(1)).unwrap_or(u32::MAX);
    for t in 0..secs {
        let second = start + Duration::from_secs(t);
        for (i, client) in clients.iter().enumerate() {
            let due = second + gap * u32::try_from(i).unwrap_or(u32::MAX);
            if due > Instant::now() + Duration::from_millis(1) {
                runtime.sleep_until(due).await;
            }
            let issued = Instant::now();
            let future = client
                .publish(format!("load/{i}"), format!("{i} {t}"))
                .qos(QoS::AtLeastOnce)
                .start();
            let (latencies, failed, completed) =
                (latencies.clone(), failed.clone(), completed.clone());
            runtime.spawn(async move {
                if future.await.is_ok() {
                    let nanos = u64::try_from(issued.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    crate::lock(&latencies).saturating_record(nanos.max(1));
                    completed.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                PROGRESS.fetch_add(1, Ordering::Relaxed);
            });
        }
    }
    // Stragglers: until everything arrived, or 10 s after the last second.
    let expected = clients.len() as u64 * secs;
    let deadline = start + Duration::from_secs(secs + 10);
    while (received.load(Ordering::Relaxed) < expected
        || completed.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < expected)
        && Instant::now() < deadline
    {
        runtime
            .sleep_until(Instant::now() + Duration::from_millis(100))
            .await;
    }
    let arrived: u64 = seen
        .iter()
        .map(|s| u64::from(s.load(Ordering::Relaxed).count_ones()))
        .sum();
    for subscriber in &subscribers {
        let _ = subscriber.disconnect().await;
    }
    let histogram = crate::lock(&latencies);
    let mut fields = Fields::new();
    fields.insert("load_secs".into(), secs as f64);
    fields.insert("load_published".into(), expected as f64);
    fields.insert(
        "load_acknowledged".into(),
        completed.load(Ordering::Relaxed) as f64,
    );
    fields.insert("load_failed".into(), failed.load(Ordering::Relaxed) as f64);
    fields.insert("load_lost".into(), expected.saturating_sub(arrived) as f64);
    fields.insert(
        "load_duplicates".into(),
        duplicates.load(Ordering::Relaxed) as f64,
    );
    for (name, q) in [("p50", 0.5), ("p99", 0.99), ("p999", 0.999)] {
        fields.insert(
            format!("load_publish_{name}_us"),
            histogram.value_at_quantile(q) as f64 / 1000.0,
        );
    }
    fields.insert(
        "load_publish_max_us".into(),
        histogram.max() as f64 / 1000.0,
    );
    Ok(fields)
}

/// `"<connection> <second>"`.
fn parse(payload: &[u8]) -> Option<(usize, u32)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (i, t) = text.split_once(' ')?;
    let t: u32 = t.parse().ok()?;
    (u64::from(t) < MAX_SECS).then_some((i.parse().ok()?, t))
}
