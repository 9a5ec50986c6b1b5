//! MQTT over TLS on async-std: connect to an `mqtts://` broker trusting CA_FILE (or, without
//! it, the system's CA certificates), publish one message at QoS 1, disconnect.
//!
//! `cargo run -p mqtt-examples --example tls_async_std -- [URI] [CA_FILE]`
//!
//! A client certificate comes from `ClientConfig::cert_file` / `key_file`; a ready
//! `rustls::ClientConfig` (custom verifier, ALPN, in-memory keys) from `ClientConfig::tls_config`.
#![allow(clippy::print_stdout)]

use sansmqtt_async_std::{ClientConfig, ClientError, MqttClient, QoS};

fn main() -> Result<(), ClientError> {
    tracing_subscriber::fmt::init();
    let mut args = std::env::args().skip(1);
    let uri = args
        .next()
        .unwrap_or_else(|| "mqtts://127.0.0.1:8883/".into());
    // The CA can also live in the configuration, as amqtt's `cafile`.
    let config = match args.next() {
        Some(ca_file) => ClientConfig::default().ca_file(ca_file),
        None => ClientConfig::default(),
    };

    async_std::task::block_on(async {
        let client = MqttClient::new(None, config);
        let connack = client.connect(uri.as_str()).await?;
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
    })
}
