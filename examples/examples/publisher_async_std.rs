//! amqtt's publisher on async-std: three messages at QoS 0, 1 and 2 awaited together (all
//! three PUBLISH go out before any acknowledgement comes back), then the same three one after
//! the other.
//!
//! `cargo run -p mqtt-examples --example publisher_async_std -- [URI]`

use sansmqtt_async_std::{ClientConfig, ClientError, MqttClient, QoS};
use tracing::info;

fn main() -> Result<(), ClientError> {
    tracing_subscriber::fmt().with_env_filter("debug").init();
    let uri = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mqtt://127.0.0.1:1883/".into());

    async_std::task::block_on(async {
        // amqtt's `test_coro`: the builders are futures, joined like any other.
        let client = MqttClient::new(None, ClientConfig::default());
        client.connect(uri.as_str()).await?;
        let (a, b, c) = futures_util::future::join3(
            client.publish("a/b", "TEST MESSAGE WITH QOS_0"),
            client
                .publish("a/b", "TEST MESSAGE WITH QOS_1")
                .qos(QoS::AtLeastOnce),
            client
                .publish("a/b", "TEST MESSAGE WITH QOS_2")
                .qos(QoS::ExactlyOnce),
        )
        .await;
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
    })
}
