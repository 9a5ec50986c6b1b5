//! amqtt's subscriber on Tokio: subscribe to `$SYS/broker/uptime` (QoS 1) and
//! `$SYS/broker/load/#` (QoS 2), print COUNT messages, unsubscribe, disconnect.
//!
//! `cargo run -p mqtt-examples --example subscriber_tokio -- [URI] [COUNT]`
#![allow(clippy::print_stdout)]

use sansmqtt_tokio::{ClientConfig, ClientError, MqttClient, QoS};

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    tracing_subscriber::fmt::init();
    let mut args = std::env::args().skip(1);
    let uri = args
        .next()
        .unwrap_or_else(|| "mqtt://127.0.0.1:1883/".into());
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);

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
        println!("{i}:  {} => {:?}", message.topic(), message.payload());
    }
    client
        .unsubscribe(["$SYS/broker/uptime", "$SYS/broker/load/#"])
        .await?;
    client.disconnect().await
}
