//! An MQTT 3.1.1 / 5.0 client for Tokio: amqtt's `MQTTClient` API over TCP, TLS (rustls),
//! WebSocket and WebSocket over TLS.
//!
//! The protocol lives in the sans-IO [`mqtt_session`](crate::session) core and the client logic (driver,
//! reconnects, TLS and WebSocket set-up) in the runtime-neutral `mqtt_client`; this crate
//! re-exports all of it and only supplies Tokio's TCP, timer and spawn.
//!
//! ```no_run
//! use mqtt_tokio::{ClientConfig, MqttClient, QoS};
//!
//! # async fn run() -> Result<(), mqtt_tokio::ClientError> {
//! let client = MqttClient::new(None, ClientConfig::default());
//! client.connect("mqtt://127.0.0.1:1883/").await?;
//! client.subscribe([("a/#", QoS::AtLeastOnce)]).await?;
//! client.publish("a/b", "hello").qos(QoS::ExactlyOnce).await?;
//! let message = client.deliver_message().await?;
//! println!("{} => {:?}", message.topic(), message.payload());
//! client.disconnect().await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::future::Future;
use std::io;
use std::time::Instant;

use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

pub use mqtt_client::*;

/// The client on Tokio.
pub type MqttClient = mqtt_client::MqttClient<Tokio>;

/// Tokio's TCP, timer and spawn. Spawning uses the ambient runtime (`tokio::spawn`), so
/// clients are created and connected from within a Tokio runtime.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

impl Runtime for Tokio {
    type Tcp = Compat<TcpStream>;
    type Sleep = tokio::time::Sleep;

    async fn connect_tcp(&self, host: String, port: u16) -> io::Result<Self::Tcp> {
        Ok(TcpStream::connect((host.as_str(), port)).await?.compat())
    }

    fn set_nodelay(tcp: &Self::Tcp) -> io::Result<()> {
        tcp.get_ref().set_nodelay(true)
    }

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
        tokio::time::sleep_until(deadline.into())
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(tokio::spawn(future));
    }
}
