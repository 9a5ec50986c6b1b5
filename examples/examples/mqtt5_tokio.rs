//! MQTT 5 on Tokio: subscription options and a subscription identifier, publish properties
//! (content type, user properties, message expiry), outgoing topic aliases, the whole PUBACK,
//! and request/response with `request` and `respond` between two clients.
//!
//! `cargo run -p mqtt-examples --example mqtt5_tokio -- [URI]`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use sansmqtt_tokio::proto::properties::{SubscriptionId, UserProperty};
use sansmqtt_tokio::proto::{ByteString, RetainHandling};
use sansmqtt_tokio::{
    ClientConfig, ClientError, MqttClient, ProtocolVersion, PublishProperties, QoS,
    SubscribeFilter, SubscribeProperties,
};

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    tracing_subscriber::fmt::init();
    let uri = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mqtt://127.0.0.1:1883/".into());

    let config = ClientConfig::default()
        .protocol_version(ProtocolVersion::V5)
        // Replace repeated topics with aliases, up to what the broker allows.
        .outgoing_topic_aliases(true);
    let client = MqttClient::new(None, config);
    let connack = client.connect(uri.as_str()).await?;
    println!("broker limits: {:?}", connack.properties);

    // Subscription options and an identifier every matching message will carry.
    let mut filter = SubscribeFilter::new("mqtt5/readings/#", QoS::AtLeastOnce);
    filter.options.retain_handling = RetainHandling::DoNotSend;
    let properties = SubscribeProperties {
        subscription_identifier: SubscriptionId::new(7),
        ..SubscribeProperties::default()
    };
    let suback = client.subscribe_with([filter], properties).await?;
    println!("granted: {:?}", suback.reason_codes);

    let properties = PublishProperties {
        content_type: Some(ByteString::from("application/json")),
        message_expiry_interval: Some(30),
        user_properties: vec![UserProperty::new("unit", "celsius")],
        ..PublishProperties::default()
    };
    // The whole acknowledgement: reason code, reason string, user properties.
    let ack = client
        .publish("mqtt5/readings/t1", r#"{"t": 21.5}"#)
        .qos(QoS::AtLeastOnce)
        .properties(properties)
        .acknowledgement()
        .await?;
    println!("PUBACK: {ack:?}");

    let reading = client.deliver_message().await?;
    println!(
        "{} ({:?}), subscription ids {:?}",
        reading.topic(),
        reading.properties().content_type,
        reading.subscription_identifiers().collect::<Vec<_>>()
    );

    // Request/response: a second client answers requests on `mqtt5/time`. (One client cannot
    // be both: its own request, matching its subscription, would come back as the "reply".)
    let responder = MqttClient::new(
        None,
        ClientConfig::default().protocol_version(ProtocolVersion::V5),
    );
    responder.connect(uri.as_str()).await?;
    responder
        .subscribe([("mqtt5/time", QoS::AtLeastOnce)])
        .await?;
    tokio::spawn(async move {
        while let Ok(request) = responder.deliver_message().await {
            if let Some(reply) = responder.respond(&request, "twelve o'clock") {
                let _ = reply.await;
            }
        }
    });
    let reply = client
        .request("mqtt5/time", "now?")
        .timeout(Duration::from_secs(5))
        .await?;
    println!("reply: {:?}", reply.payload());
    client.disconnect().await
}
