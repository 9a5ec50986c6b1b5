//! Runnable examples live in `src/bin/`: `demo` (the README's main command), and amqtt's two
//! documented examples, `subscriber` and `publisher`, each for Tokio and for async-std
//! (`subscriber_async_std`, `publisher_async_std`).
//!
//! The examples' bodies are written once here, generic over the runtime: the client API is
//! the same on both, so the binaries only pick a runtime and call in.
#![allow(clippy::print_stdout)]

use mqtt_client::proto::QoS;
use mqtt_client::{ClientConfig, ClientError, MqttClient, Runtime};
use tracing::info;
use tracing_subscriber::EnvFilter;

/// Logs to stderr at `default_level` unless `RUST_LOG` says otherwise: `debug` shows every
/// packet in and out, as amqtt's example log does.
pub fn init_logging(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The broker URI from the first argument, or a local default.
pub fn uri_from_args() -> String {
    std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mqtt://127.0.0.1:1883/".into())
}

/// amqtt's subscriber: subscribe to `$SYS/broker/uptime` (QoS 1) and `$SYS/broker/load/#`
/// (QoS 2), print `count` messages, unsubscribe, disconnect.
pub async fn subscriber<R: Runtime + Default>(uri: &str, count: usize) -> Result<(), ClientError> {
    let client = MqttClient::<R>::new(None, ClientConfig::default());
    client.connect(uri).await?;
    client
        .subscribe([
            ("$SYS/broker/uptime", QoS::AtLeastOnce),
            ("$SYS/broker/load/#", QoS::ExactlyOnce),
        ])
        .await?;
    for i in 1..=count {
        let message = client.deliver_message().await?;
        let packet = message.publish_packet();
        println!("{i}:  {} => {:?}", packet.topic, packet.payload);
    }
    client
        .unsubscribe(["$SYS/broker/uptime", "$SYS/broker/load/#"])
        .await?;
    client.disconnect().await
}

/// amqtt's `test_coro`: three publishes at QoS 0, 1 and 2 awaited together, so all three
/// PUBLISH go out before any acknowledgement comes back.
pub async fn publish_concurrently<R: Runtime + Default>(uri: &str) -> Result<(), ClientError> {
    let client = MqttClient::<R>::new(None, ClientConfig::default());
    client.connect(uri).await?;
    let (a, b, c) = futures_util::future::join3(
        client
            .publish("a/b", "TEST MESSAGE WITH QOS_0")
            .into_future(),
        client
            .publish("a/b", "TEST MESSAGE WITH QOS_1")
            .qos(QoS::AtLeastOnce)
            .into_future(),
        client
            .publish("a/b", "TEST MESSAGE WITH QOS_2")
            .qos(QoS::ExactlyOnce)
            .into_future(),
    )
    .await;
    a?;
    b?;
    c?;
    info!("messages published");
    client.disconnect().await
}

/// amqtt's `test_coro2`: the same three publishes, one after the other.
pub async fn publish_sequentially<R: Runtime + Default>(uri: &str) -> Result<(), ClientError> {
    let client = MqttClient::<R>::new(None, ClientConfig::default());
    client.connect(uri).await?;
    client
        .publish("a/b", "TEST MESSAGE WITH QOS_0")
        .qos(QoS::AtMostOnce)
        .await?;
    client
        .publish("a/b", "TEST MESSAGE WITH QOS_1")
        .qos(QoS::AtLeastOnce)
        .await?;
    client
        .publish("a/b", "TEST MESSAGE WITH QOS_2")
        .qos(QoS::ExactlyOnce)
        .await?;
    info!("messages published");
    client.disconnect().await
}
