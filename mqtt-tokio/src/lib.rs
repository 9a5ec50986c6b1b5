//! An MQTT 3.1.1 / 5.0 client for Tokio: amqtt's `MQTTClient` API over TCP, TLS (rustls),
//! WebSocket and WebSocket over TLS.
//!
//! The protocol lives in the sans-IO [`sansmqtt_session`](crate::session) core and the client logic (driver,
//! reconnects, TLS and WebSocket set-up) in the runtime-neutral `sansmqtt_client`; this crate
//! re-exports all of it and only supplies Tokio's TCP, timer and spawn.
//!
//! ```no_run
//! use sansmqtt_tokio::{ClientConfig, MqttClient, QoS};
//!
//! # async fn run() -> Result<(), sansmqtt_tokio::ClientError> {
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
use std::time::Instant;

use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

pub use sansmqtt_client::*;

// `MqttClient`, `Connecting<'a>`, `Publishing<'a>`, ... with the runtime fixed; explicit items
// shadow the glob re-export above, so `sansmqtt_tokio::Publishing<'_>` names this runtime's builder.
sansmqtt_client::runtime_aliases!(Tokio);

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

    #[cfg(target_os = "linux")]
    fn push_ack(tcp: &Self::Tcp) -> io::Result<()> {
        sansmqtt_client::push_tcp_ack(tcp.get_ref())
    }

    /// quinn on Tokio's UDP sockets and timers (feature `quic`).
    #[cfg(feature = "quic")]
    fn quic_runtime(&self) -> Option<std::sync::Arc<dyn quinn::Runtime>> {
        Some(std::sync::Arc::new(quinn::TokioRuntime))
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

    fn spawn_blocking<T, F>(&self, work: F) -> impl Future<Output = T> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let task = tokio::task::spawn_blocking(work);
        async move {
            match task.await {
                Ok(done) => done,
                Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                // Cancelled: the runtime is shutting down, and with it the driver awaiting
                // this; there is nothing to hand back.
                Err(_) => std::future::pending().await,
            }
        }
    }
}

/// The README's examples (the crate's page on crates.io), compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
