//! amqtt's publisher example on Tokio: three messages at QoS 0, 1 and 2, first awaited together
//! (pipelined), then one after the other. `RUST_LOG=debug` (the default here) shows the packet
//! order of both flows, as in amqtt's documentation.
//!
//! `cargo run -p mqtt-examples --bin publisher -- mqtt://127.0.0.1:1883/`

use mqtt_tokio::Tokio;

#[tokio::main]
async fn main() -> Result<(), mqtt_tokio::ClientError> {
    mqtt_examples::init_logging("debug");
    let uri = mqtt_examples::uri_from_args();
    mqtt_examples::publish_concurrently::<Tokio>(&uri).await?;
    mqtt_examples::publish_sequentially::<Tokio>(&uri).await
}
