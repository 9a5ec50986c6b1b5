//! amqtt's publisher example on async-std (bodies in the crate's `publish_concurrently` and
//! `publish_sequentially`).
//!
//! `cargo run -p mqtt-examples --bin publisher_async_std -- mqtt://127.0.0.1:1883/`

use mqtt_async_std::AsyncIo;

fn main() -> Result<(), mqtt_async_std::ClientError> {
    mqtt_examples::init_logging("debug");
    let uri = mqtt_examples::uri_from_args();
    async_std::task::block_on(async {
        mqtt_examples::publish_concurrently::<AsyncIo>(&uri).await?;
        mqtt_examples::publish_sequentially::<AsyncIo>(&uri).await
    })
}
