//! A publisher whose QoS 1 messages survive a crash of its own process: a durable session
//! store in STORE_DIR, `publish(..).stored()` as the durability point, and the outcome of
//! publishes recovered from an earlier run. Kill it (`kill -9`) and start it again: every
//! message reported "stored" reaches the broker.
//!
//! Also shows the publish calls' cancellation rules: `send_now` (fire and forget, refused when
//! the queue is full), `ack_timeout` (the outcome is unknown when it fires), and a disconnect
//! that first drains what was accepted.
//!
//! `cargo run -p mqtt-examples --example durable_store_tokio -- [URI] [STORE_DIR] [COUNT]`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use futures_util::StreamExt;
use sansmqtt_tokio::{ClientConfig, ClientError, ConnectionEvent, MqttClient, QoS};

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    tracing_subscriber::fmt::init();
    let mut args = std::env::args().skip(1);
    let uri = args
        .next()
        .unwrap_or_else(|| "mqtt://127.0.0.1:1883/".into());
    let dir = args.next().unwrap_or_else(|| {
        std::env::temp_dir()
            .join("sansmqtt-store")
            .display()
            .to_string()
    });
    let count: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);

    let config = ClientConfig::default()
        .session_store(dir.as_str())
        // The store resumes the broker's session: same client id, no clean session.
        .clean_session(false);
    let client = MqttClient::new(Some("durable-publisher"), config);

    // Publishes an earlier process left in flight complete here (their callers are gone).
    let mut events = client.connection_events();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let ConnectionEvent::RecoveredPublish(recovered) = event {
                println!(
                    "recovered {} (id {}): {:?}",
                    recovered.topic, recovered.packet_id, recovered.result
                );
            }
        }
    });

    client.connect(uri.as_str()).await?;
    for i in 0..count {
        // Resolves once the message's record is synced to disk, before any byte of it is
        // written to the socket; returns the future of its PUBACK.
        let acked = client
            .publish("durable/numbers", i.to_string())
            .qos(QoS::AtLeastOnce)
            .stored()
            .await?;
        println!("stored {i}");
        // Dropping `acked` would not cancel anything: the message belongs to the client now.
        acked.await?;
    }

    // Fire and forget: queued at once or refused with `QueueFull`; the future may be dropped.
    drop(client.publish("durable/last", "bye").send_now()?);
    // A deadline for the whole QoS flow; on `Timeout` the message may still be delivered.
    match client
        .publish("durable/last", "checked")
        .qos(QoS::AtLeastOnce)
        .ack_timeout(Duration::from_secs(5))
        .await
    {
        Err(ClientError::Timeout) => println!("no PUBACK within 5 s: outcome unknown"),
        other => println!("last publish: {other:?}"),
    }
    // Wait (at most 5 s) until the fire-and-forget publish went out, then disconnect.
    client.disconnect().drain(Duration::from_secs(5)).await
}
