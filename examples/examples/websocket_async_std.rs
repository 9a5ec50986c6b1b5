//! MQTT over WebSocket on async-std: connect to a `ws://` (or `wss://`) broker, subscribe to
//! a topic, publish to it and receive the message back.
//!
//! `cargo run -p mqtt-examples --example websocket_async_std -- [URI]`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use sansmqtt_async_std::{ClientConfig, ClientError, MqttClient, QoS};

fn main() -> Result<(), ClientError> {
    tracing_subscriber::fmt::init();
    let uri = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8080/mqtt".into());

    async_std::task::block_on(async {
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
    })
}
