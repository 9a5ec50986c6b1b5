//! An MQTT 3.1.1 / 5.0 client for the async-io stack (async-std and smol): amqtt's
//! `MQTTClient` API over TCP, TLS (rustls), WebSocket and WebSocket over TLS.
//!
//! The protocol lives in the sans-IO [`mqtt_session`](crate::session) core and the client logic (driver,
//! reconnects, TLS and WebSocket set-up) in the runtime-neutral `mqtt_client`; this crate
//! re-exports all of it and only supplies async-net's TCP, async-io's timer and a spawn. The same client works under
//! async-std's and smol's executors: the connection's task runs on smol's global executor, and
//! I/O and timers run on async-io's reactor, which both executors share. An application
//! running its own tasks on smol's global executor too (`smol::spawn`) saves a cross-thread
//! wake per batch of messages.
//!
//! ```no_run
//! use mqtt_async_std::{ClientConfig, MqttClient, QoS};
//!
//! # fn main() -> Result<(), mqtt_async_std::ClientError> {
//! smol::block_on(async {
//!     let client = MqttClient::new(None, ClientConfig::default());
//!     client.connect("mqtt://127.0.0.1:1883/").await?;
//!     client.publish("a/b", "hello").qos(QoS::AtLeastOnce).await?;
//!     client.disconnect().await
//! })
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use async_net::TcpStream;

pub use mqtt_client::*;

/// async-net's TCP, async-io's timer, smol's global executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncIo;

/// An async-io timer as a `Future<Output = ()>`.
#[derive(Debug)]
pub struct Sleep(async_io::Timer);

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

impl Runtime for AsyncIo {
    type Tcp = TcpStream;
    type Sleep = Sleep;

    fn connect_tcp(
        &self,
        host: String,
        port: u16,
    ) -> impl Future<Output = io::Result<Self::Tcp>> + Send {
        TcpStream::connect((host, port))
    }

    fn set_nodelay(tcp: &Self::Tcp) -> io::Result<()> {
        tcp.set_nodelay(true)
    }

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
        Sleep(async_io::Timer::at(deadline))
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        smol::spawn(future).detach();
    }
}

/// The client on async-std / smol.
pub type MqttClient = mqtt_client::MqttClient<AsyncIo>;
