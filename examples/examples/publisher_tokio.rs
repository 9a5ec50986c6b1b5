//! amqtt's publisher on Tokio: three messages at QoS 0, 1 and 2 awaited together (all three
//! PUBLISH go out before any acknowledgement comes back), then the same three one after the
//! other.
//!
//! `cargo run -p mqtt-examples --example publisher_tokio -- [URI]`

use sansmqtt_tokio::{ClientConfig, ClientError, MqttClient, QoS};
use tracing::info;

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    tracing_subscriber::fmt().with_env_filter("debug").init();
    let uri = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mqtt://127.0.0.1:1883/".into());

    // amqtt's `test_coro`: the builders are futures, joined like any other.
    let client = MqttClient::new(None, ClientConfig::default());
    client.connect(uri.as_str()).await?;
    let (a, b, c) = tokio::join!(
        client.publish("a/b", "TEST MESSAGE WITH QOS_0"),
        client
            .publish("a/b", "TEST MESSAGE WITH QOS_1")
            .qos(QoS::AtLeastOnce),
        client
            .publish("a/b", "TEST MESSAGE WITH QOS_2")
            .qos(QoS::ExactlyOnce),
    );
    a?;
    b?;
    c?;
    info!("messages published");
    client.disconnect().await?;

    // amqtt's `test_coro2`: one after the other.
    let client = MqttClient::new(None, ClientConfig::default());
    client.connect(uri.as_str()).await?;
    for (payload, qos) in [
        ("TEST MESSAGE WITH QOS_0", QoS::AtMostOnce),
        ("TEST MESSAGE WITH QOS_1", QoS::AtLeastOnce),
        ("TEST MESSAGE WITH QOS_2", QoS::ExactlyOnce),
    ] {
        client.publish("a/b", payload).qos(qos).await?;
    }
    info!("messages published");
    client.disconnect().await
}
