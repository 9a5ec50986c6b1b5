//! amqtt's publisher example: three messages at QoS 0, 1 and 2 on `a/b`, first awaited
//! together (pipelined: all three PUBLISH go out before any acknowledgement), then one after
//! the other. Run with `RUST_LOG=debug` to see the packet order of both flows.
//!
//! `cargo run -p mqtt-examples --bin publisher -- mqtt://127.0.0.1:1883/`

use mqtt_tokio::{ClientConfig, ClientError, MqttClient, QoS};
use tracing::info;

/// The three publishes awaited together (amqtt's `test_coro`).
async fn concurrent(uri: &str) -> Result<(), ClientError> {
    let client = MqttClient::new(None, ClientConfig::default());
    client.connect(uri).await?;
    let (a, b, c) = tokio::join!(
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
    );
    a?;
    b?;
    c?;
    info!("messages published");
    client.disconnect().await
}

/// The three publishes one after the other (amqtt's `test_coro2`).
async fn sequential(uri: &str) -> Result<(), ClientError> {
    let client = MqttClient::new(None, ClientConfig::default());
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

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    mqtt_examples::init_logging("debug");
    let uri = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mqtt://127.0.0.1:1883/".into());
    concurrent(&uri).await?;
    sequential(&uri).await
}
