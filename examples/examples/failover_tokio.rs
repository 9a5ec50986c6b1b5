//! Reconnects and failover: a client that knows two brokers (a cluster's nodes), walks them in
//! rounds with a jittered exponential backoff, retries forever, and prints every connection
//! event; a publisher loop that keeps going through a lost connection (its calls wait for the
//! next connection). Stop a broker while it runs to watch it fail over.
//!
//! `cargo run -p mqtt-examples --example failover_tokio -- [URI_A] [URI_B]`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use futures_util::StreamExt;
use sansmqtt_tokio::{ClientConfig, ClientError, ConnectionEvent, Jitter, MqttClient, QoS};

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    tracing_subscriber::fmt::init();
    let mut args = std::env::args().skip(1);
    let a = args
        .next()
        .unwrap_or_else(|| "mqtt://127.0.0.1:1883/".into());
    let b = args
        .next()
        .unwrap_or_else(|| "mqtt://127.0.0.1:1884/".into());

    let config = ClientConfig::default()
        .uris([a, b])
        // `None`: never give up (amqtt spells it `reconnect_retries: -1`).
        .reconnect_retries(None)
        .reconnect_initial_interval(Duration::from_millis(500))
        .reconnect_max_interval(Duration::from_secs(10))
        .reconnect_jitter(Jitter::Spread { percent: 25 })
        // Keep the session on the broker, so in-flight QoS 1 messages are re-sent.
        .clean_session(false);
    let client = MqttClient::new(Some("failover-example"), config);

    let mut events = client.connection_events();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                ConnectionEvent::Connected { session_present } => {
                    println!("connected (session present: {session_present})");
                }
                ConnectionEvent::ConnectionLost(err) => println!("connection lost: {err}"),
                ConnectionEvent::Reconnecting {
                    attempt,
                    delay,
                    uri,
                } => println!("attempt {attempt} to {uri} in {delay:?}"),
                ConnectionEvent::Closed => println!("closed"),
                other => println!("{other:?}"),
            }
        }
    });

    // `None`: the configured URIs, in order.
    client.connect(None).await?;
    for i in 0..60 {
        // Waits through a reconnect; fails only when reconnecting gives up.
        client
            .publish("failover/tick", i.to_string())
            .qos(QoS::AtLeastOnce)
            .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    client.disconnect().await
}
