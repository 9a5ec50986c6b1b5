//! amqtt's subscriber example on Tokio (body in the crate's `subscriber`).
//!
//! `cargo run -p mqtt-examples --bin subscriber -- mqtt://127.0.0.1:1883/ [COUNT]`

#[tokio::main]
async fn main() -> Result<(), mqtt_tokio::ClientError> {
    mqtt_examples::init_logging("info");
    let count = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    mqtt_examples::subscriber::<mqtt_tokio::Tokio>(&mqtt_examples::uri_from_args(), count).await
}
