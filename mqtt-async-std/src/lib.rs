//! An MQTT 3.1.1 / 5.0 client for the async-io stack (async-std and smol): amqtt's
//! `MQTTClient` API over TCP, TLS (rustls), WebSocket and WebSocket over TLS.
//!
//! The protocol lives in the sans-IO [`sansmqtt_session`](crate::session) core and the client logic (driver,
//! reconnects, TLS and WebSocket set-up) in the runtime-neutral `sansmqtt_client`; this crate
//! re-exports all of it and only supplies async-net's TCP, async-io's timer and a spawn. The same client works under
//! async-std's and smol's executors: the connection's task runs on smol's global executor, and
//! I/O and timers run on async-io's reactor, which both executors share. An application
//! running its own tasks on smol's global executor too (`smol::spawn`) saves a cross-thread
//! wake per batch of messages.
//!
//! ```no_run
//! use sansmqtt_async_std::{ClientConfig, MqttClient, QoS};
//!
//! # fn main() -> Result<(), sansmqtt_async_std::ClientError> {
//! smol::block_on(async {
//!     let client = MqttClient::new(None, ClientConfig::default());
//!     client.connect("mqtt://127.0.0.1:1883/").await?;
//!     client.publish("a/b", "hello").qos(QoS::AtLeastOnce).await?;
//!     client.disconnect().await
//! })
//! # }
//! ```
//!
//! # Entry points
//!
//! Everything starts from [`MqttClient`] (this crate's alias of the runtime-neutral client),
//! created with [`MqttClient::new`] from a [`ClientConfig`]:
//!
//! - [`MqttClient::connect`] returns a [`Connecting`] builder (`.clean_session(..)`,
//!   `.ca_file(..)`, `.header(..)`: amqtt's `connect` arguments), resolving to the broker's
//!   [`ConnAck`]; everything else, TLS included, is set in the [`ClientConfig`];
//! - [`MqttClient::publish`] returns a [`Publishing`] builder (`.qos(..)`, `.retain(..)`,
//!   `.ack_timeout(..)`, `.properties(..)`, `.send_now()` for a [`PublishFuture`] without
//!   waiting for room), resolving to the final acknowledgement's [`ReasonCode`];
//! - [`MqttClient::subscribe`] / [`MqttClient::unsubscribe`] take topic filters
//!   ([`SubscribeFilter`] or `(filter, QoS)` pairs);
//! - [`MqttClient::deliver_message`] returns a [`Delivering`] builder (`.timeout(..)`) for the
//!   next [`ApplicationMessage`]; [`MqttClient::messages`] is the same queue as a stream
//!   ([`Messages`]); with [`ClientConfig::manual_acks`], [`MqttClient::ack`] acknowledges;
//! - [`MqttClient::connection_events`] reports [`ConnectionEvent`]s;
//! - [`MqttClient::ping`], [`MqttClient::disconnect`] (a [`Disconnecting`] builder:
//!   `.drain(timeout)` lets accepted publishes complete first), [`MqttClient::closed`],
//!   [`MqttClient::reconnect`] (a [`Reconnecting`] builder) and [`MqttClient::cancel_tasks`].
//!
//! Every builder is a [`Future`]: `.await` it, or hand it to `join!`,
//! `select` or a timeout. Failures are [`ClientError`]s; their causes are reached through
//! [`std::error::Error::source`], and what the broker said comes as a [`ServerReason`].
//! The protocol types are re-exported ([`proto`]), and so is the sans-IO [`session`] for
//! code that drives a [`session::Session`] itself.
//!
//! # Cargo features
//!
//! The client's features, forwarded: `tls` (rustls, default), `ws` (tungstenite, default),
//! the crypto provider `ring` (default) or `aws-lc-rs`, the CA roots used when none is
//! configured, `native-roots` (the system's, default) or `webpki-roots` (Mozilla's, compiled
//! in), `serde` (load a [`ClientConfig`] from documents), `metrics` (the numbers of
//! `MqttClient::stats` through the `metrics` facade) and `quic` (`quic://` through quinn on
//! this runtime, off by default). `default-features = false` leaves
//! plain `mqtt://` over TCP with no TLS or WebSocket crate; `mqtts://` and `ws://` then fail
//! with [`UriError::FeatureDisabled`]. A process-wide default rustls crypto provider, when
//! installed, is used instead of the feature's; a ready `rustls::ClientConfig` can be handed
//! over with [`Connecting::tls_config`] or [`ClientConfig::tls_config`] (feature `tls`).
//!
// The methods as shown on this crate's alias pages (`MqttClient`, `Connecting`), so that the
// links stay in this crate's docs rather than lead to sansmqtt-client's generic types.
//! [`Connecting::tls_config`]: Connecting#method.tls_config
//! [`MqttClient::ack`]: MqttClient#method.ack
//! [`MqttClient::cancel_tasks`]: MqttClient#method.cancel_tasks
//! [`MqttClient::connect`]: MqttClient#method.connect
//! [`MqttClient::connection_events`]: MqttClient#method.connection_events
//! [`MqttClient::deliver_message`]: MqttClient#method.deliver_message
//! [`MqttClient::disconnect`]: MqttClient#method.disconnect
//! [`MqttClient::messages`]: MqttClient#method.messages
//! [`MqttClient::new`]: MqttClient#method.new
//! [`MqttClient::ping`]: MqttClient#method.ping
//! [`MqttClient::publish`]: MqttClient#method.publish
//! [`MqttClient::reconnect`]: MqttClient#method.reconnect
//! [`MqttClient::subscribe`]: MqttClient#method.subscribe
//! [`MqttClient::unsubscribe`]: MqttClient#method.unsubscribe
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use async_net::TcpStream;

pub use sansmqtt_client::*;

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

    #[cfg(target_os = "linux")]
    fn push_ack(tcp: &Self::Tcp) -> io::Result<()> {
        sansmqtt_client::push_tcp_ack(tcp)
    }

    /// quinn on async-io's (smol's) UDP sockets and timers (feature `quic`).
    #[cfg(feature = "quic")]
    fn quic_runtime(&self) -> Option<std::sync::Arc<dyn quinn::Runtime>> {
        Some(std::sync::Arc::new(quinn::SmolRuntime))
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

    fn spawn_blocking<T, F>(&self, work: F) -> impl Future<Output = T> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        smol::unblock(work)
    }
}

// `MqttClient`, `Connecting<'a>`, `Publishing<'a>`, ... with the runtime fixed; explicit items
// shadow the glob re-export above, so `sansmqtt_async_std::Publishing<'_>` names this runtime's builder.
sansmqtt_client::runtime_aliases!(AsyncIo);

/// The README's examples (the crate's page on crates.io), compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
