//! amqtt's subscriber example on async-std (body in the crate's `subscriber`).
//!
//! `cargo run -p mqtt-examples --bin subscriber_async_std -- mqtt://127.0.0.1:1883/ [COUNT]`

fn main() -> Result<(), mqtt_async_std::ClientError> {
    mqtt_examples::init_logging("info");
    let count = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    async_std::task::block_on(mqtt_examples::subscriber::<mqtt_async_std::AsyncIo>(
        &mqtt_examples::uri_from_args(),
        count,
    ))
}
