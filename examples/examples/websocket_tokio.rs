//! MQTT over WebSocket on Tokio: connect to a `ws://` (or `wss://`) broker, subscribe to a
//! topic, publish to it and receive the message back.
//!
//! `cargo run -p mqtt-examples --example websocket_tokio -- [URI]`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use sansmqtt_tokio::{ClientConfig, ClientError, MqttClient, QoS};

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    tracing_subscriber::fmt::init();
    let uri = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8080/mqtt".into());

    let client = MqttClient::new(None, ClientConfig::default());
    // Extra handshake headers, e.g. for a proxy's authentication.
    client
        .connect(uri.as_str())
        .header("User-Agent", "mqtt-examples")
        .await?;
    client.subscribe([("ws/echo", QoS::AtLeastOnce)]).await?;
    client
        .publish("ws/echo", "over a WebSocket")
        .qos(QoS::AtLeastOnce)
        .await?;
    let message = client
        .deliver_message()
        .timeout(Duration::from_secs(5))
        .await?;
    println!("{} => {:?}", message.topic(), message.payload());
    client.disconnect().await
}
