//! MQTT over TLS on Tokio: connect to an `mqtts://` broker trusting CA_FILE (or, without it,
//! the system's CA certificates), publish one message at QoS 1, disconnect.
//!
//! `cargo run -p mqtt-examples --example tls_tokio -- [URI] [CA_FILE]`
//!
//! A client certificate comes from `ClientConfig::cert_file` / `key_file`; a ready
//! `rustls::ClientConfig` (custom verifier, ALPN, in-memory keys) from `ClientConfig::tls_config`.
#![allow(clippy::print_stdout)]

use sansmqtt_tokio::{ClientConfig, ClientError, MqttClient, QoS};

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    tracing_subscriber::fmt::init();
    let mut args = std::env::args().skip(1);
    let uri = args
        .next()
        .unwrap_or_else(|| "mqtts://127.0.0.1:8883/".into());
    let ca_file = args.next();

    let client = MqttClient::new(None, ClientConfig::default());
    let mut connect = client.connect(uri.as_str());
    if let Some(ca_file) = ca_file {
        connect = connect.ca_file(ca_file);
    }
    let connack = connect.await?;
    println!(
        "connected over TLS (session present: {})",
        connack.session_present
    );
    let code = client
        .publish("tls/hello", "sent over TLS")
        .qos(QoS::AtLeastOnce)
        .await?;
    println!("published: {code}");
    client.disconnect().await
}
