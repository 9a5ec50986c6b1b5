//! amqtt's subscriber example: subscribe to `$SYS/broker/uptime` (QoS 1) and
//! `$SYS/broker/load/#` (QoS 2), print the messages that arrive, unsubscribe, disconnect.
//!
//! `cargo run -p mqtt-examples --bin subscriber -- mqtt://127.0.0.1:1883/ [COUNT]`
#![allow(clippy::print_stdout)]

use mqtt_tokio::{ClientConfig, ClientError, MqttClient, QoS};

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    mqtt_examples::init_logging("info");
    let uri = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mqtt://127.0.0.1:1883/".into());
    let count: usize = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);

    let client = MqttClient::new(None, ClientConfig::default());
    client.connect(uri.as_str()).await?;
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
    client.disconnect().await?;
    Ok(())
}
