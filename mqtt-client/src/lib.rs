//! The runtime-neutral async MQTT client: amqtt's `MQTTClient` API in Rust, over any
//! [`Runtime`], on the sans-IO [`mqtt_session`] core.
//!
//! Everything here needs only `futures` traits: the driver task that moves bytes between a
//! transport and the [`Session`], reconnects, TLS (rustls) and WebSocket
//! (tungstenite) set-up, configuration. A runtime adapter implements [`Runtime`] (TCP connect,
//! a timer, spawn), names the client type and re-exports everything here:
//! `pub type MqttClient = mqtt_client::MqttClient<Tokio>;`. Applications use an adapter,
//! `mqtt-tokio` or `mqtt-async-std`, not this crate directly.
//!
//! # Cargo features
//!
//! - `tls` (default): `mqtts://` and `wss://` through rustls. A build without it refuses those
//!   URIs with [`UriError::FeatureDisabled`].
//! - `ws` (default): `ws://` and `wss://` through tungstenite.
//! - `ring` (default) / `aws-lc-rs`: the rustls crypto provider. A process-wide default
//!   provider installed by the application (`rustls::crypto::CryptoProvider::install_default`)
//!   wins; with both features on, aws-lc-rs is used.
//! - `native-roots` (default) / `webpki-roots`: the CA certificates trusted when none is
//!   configured: the operating system's, or Mozilla's compiled in (both when both are on).
//! - `serde`: `serde::Deserialize` for [`ClientConfig`].
//!
//! A ready `rustls::ClientConfig` (custom verifier, in-memory client certificate, ALPN,
//! session resumption) replaces all TLS options: [`Connecting::tls_config`] or
//! [`ClientConfig::tls_config`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builders;
mod config;
mod driver;
mod error;
mod queue;
#[cfg(feature = "tls")]
mod tls;
mod transport;
mod uri;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_channel::{mpsc, oneshot};
use futures_util::Stream;
use mqtt_proto::properties::WillProperties;
use mqtt_proto::{ByteString, PacketId, Will};

pub use builders::{Connecting, Delivering, Publishing, Reconnecting};
pub use config::{ClientConfig, TopicConfig, WillConfig};
#[cfg(feature = "tls")]
pub use error::TlsError;
pub use error::{ClientError, UriError};
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use tls::TlsOptions;
pub use transport::{Runtime, Transport};
pub use uri::{Scheme, Target};

use driver::{Command, ConnectParams, Driver, Reply};

// The protocol types that appear in the client's API, under the client's own name.
pub use mqtt_proto::properties::{PublishProperties, SubscribeProperties, UserProperty};
pub use mqtt_proto::{ConnAck, ProtocolVersion, Publish, QoS, ReasonCode, SubscribeFilter};
pub use mqtt_session::{ConnectionError, ProtocolError, PublishError, ServerReason, SessionError};

/// The codec, re-exported so users need one dependency.
pub use mqtt_proto as proto;
/// The sans-IO session the client drives, for users who need its types.
pub use mqtt_session as session;
use queue::CommandQueue;

/// Everything a user of an adapter crate needs, re-exported by `mqtt-tokio` and
/// `mqtt-async-std` so both present the same names.
pub mod prelude {
    #[cfg(feature = "tls")]
    pub use super::TlsError;
    pub use super::{
        ApplicationMessage, ClientConfig, ClientError, ConnectionEvent, Runtime, ServerReason,
        TopicConfig, UriError, WillConfig,
    };
    pub use mqtt_proto::properties::{PublishProperties, UserProperty};
    pub use mqtt_proto::{ConnAck, ProtocolVersion, QoS, ReasonCode};
}

use mqtt_session::{ConnectOptions, Session, SessionConfig};

/// A received message (amqtt's `ApplicationMessage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationMessage {
    publish: Publish,
}

impl ApplicationMessage {
    fn new(publish: Publish) -> Self {
        Self { publish }
    }

    /// The topic it was published on.
    pub fn topic(&self) -> &str {
        &self.publish.topic
    }

    /// The payload.
    pub fn payload(&self) -> &Bytes {
        &self.publish.payload
    }

    /// The QoS it was delivered with.
    pub fn qos(&self) -> QoS {
        self.publish.qos
    }

    /// Whether it is a retained message.
    pub fn retain(&self) -> bool {
        self.publish.retain
    }

    /// Whether the broker flagged it as a re-delivery.
    pub fn dup(&self) -> bool {
        self.publish.dup
    }

    /// The packet identifier (QoS 1 and 2).
    pub fn packet_id(&self) -> Option<PacketId> {
        self.publish.packet_id
    }

    /// MQTT 5 properties.
    pub fn properties(&self) -> &PublishProperties {
        &self.publish.properties
    }

    /// The decoded PUBLISH packet (amqtt's `message.publish_packet`).
    pub fn publish_packet(&self) -> &Publish {
        &self.publish
    }

    /// The PUBLISH packet, by value.
    pub fn into_publish(self) -> Publish {
        self.publish
    }
}

/// What happens to the connection, as seen by [`MqttClient::connection_events`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// CONNACK accepted a connection.
    Connected {
        /// Whether the broker resumed a session.
        session_present: bool,
    },
    /// The connection ended unexpectedly (or could not be opened).
    ConnectionLost(ClientError),
    /// A reconnect attempt is about to start.
    Reconnecting {
        /// 1 for the first attempt after a loss.
        attempt: u32,
    },
    /// The client stopped: after `disconnect`, or when reconnecting gave up.
    Closed,
}

/// State shared between the handles and the driver task.
pub(crate) struct Shared {
    messages_tx: async_channel::Sender<ApplicationMessage>,
    messages_rx: async_channel::Receiver<ApplicationMessage>,
    status: Mutex<Vec<mpsc::UnboundedSender<ConnectionEvent>>>,
    /// The session and connection parameters while no driver runs.
    parked: Mutex<Parked>,
    /// Commands for the running driver.
    commands: CommandQueue,
    /// Bumped by `cancel_tasks`; `deliver_message` calls started before fail with `Closed`.
    cancel_epoch: AtomicU64,
    cancel: event_listener::Event,
}

#[derive(Default)]
struct Parked {
    session: Option<Session>,
    params: Option<ConnectParams>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind; keep going with it.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn status(&self, event: ConnectionEvent) {
        lock(&self.status).retain(|tx| tx.unbounded_send(event.clone()).is_ok());
    }

    /// The driver stops: its session is parked for the next one and the command queue
    /// closed, atomically for `start` (which takes the same locks in the same order). Returns
    /// the commands that were still queued.
    fn park(&self, session: Session, params: ConnectParams) -> VecDeque<Command> {
        let mut parked = lock(&self.parked);
        parked.session = Some(session);
        parked.params = Some(params);
        self.commands.close()
    }
}

struct Inner<R: Runtime> {
    runtime: R,
    config: ClientConfig,
    client_id: ByteString,
    shared: Arc<Shared>,
}

/// An MQTT client: amqtt's `MQTTClient` API. A cheap `Clone` handle: clones share one
/// connection and can be used from many tasks at once; publishes awaited together are
/// pipelined on the wire.
pub struct MqttClient<R: Runtime> {
    inner: Arc<Inner<R>>,
}

impl<R: Runtime> Drop for Inner<R> {
    fn drop(&mut self) {
        // The last handle is gone: the driver disconnects and stops.
        self.shared.commands.handles_dropped();
    }
}

impl<R: Runtime> Clone for MqttClient<R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<R: Runtime> std::fmt::Debug for MqttClient<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttClient")
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime + Default> MqttClient<R> {
    /// A client with `client_id` (`None`: a random one, as amqtt does) and `config`. Nothing
    /// happens until [`connect`](Self::connect).
    pub fn new(client_id: Option<&str>, config: ClientConfig) -> Self {
        Self::with_runtime(client_id, config, R::default())
    }
}

impl<R: Runtime> MqttClient<R> {
    /// Like [`new`](Self::new), with an explicit runtime handle.
    pub fn with_runtime(client_id: Option<&str>, config: ClientConfig, runtime: R) -> Self {
        let client_id = client_id.map_or_else(random_client_id, ByteString::from);
        let (messages_tx, messages_rx) = async_channel::bounded(config.message_buffer.max(1));
        Self {
            inner: Arc::new(Inner {
                runtime,
                config,
                client_id,
                shared: Arc::new(Shared {
                    messages_tx,
                    messages_rx,
                    status: Mutex::new(Vec::new()),
                    parked: Mutex::new(Parked::default()),
                    commands: CommandQueue::default(),
                    cancel_epoch: AtomicU64::new(0),
                    cancel: event_listener::Event::new(),
                }),
            }),
        }
    }

    /// The client identifier.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Connects to `uri` (`mqtt://`, `mqtts://`, `ws://`, `wss://`; `None` uses the configured
    /// URI). A builder: `.clean_session(..)`, `.ca_file(..)`, `.ca_path(..)`, `.ca_data(..)`,
    /// `.header(..)`, then `.await` for the broker's CONNACK.
    ///
    /// ```no_run
    /// # use mqtt_client::{ClientError, MqttClient, Runtime};
    /// # async fn example<R: Runtime>(client: &MqttClient<R>) -> Result<(), ClientError> {
    /// let connack = client.connect("mqtts://broker.example:8883/").clean_session(false).await?;
    /// println!("session present: {}", connack.session_present);
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect<'a>(&'a self, uri: impl Into<Option<&'a str>>) -> Connecting<'a, R> {
        Connecting::new(self, uri.into())
    }

    /// Publishes `payload` on `topic`. A builder: `.qos(..)`, `.retain(..)`, `.ack_timeout(..)`,
    /// `.properties(..)`, then `.await`; it resolves when the QoS flow completes (QoS 0: when
    /// written to the socket) with the final acknowledgement's reason code.
    ///
    /// The builder is a future that queues the message on its first poll, so publishes
    /// joined together go out in the order they are polled, pipelined on the connection:
    ///
    /// ```no_run
    /// # use mqtt_client::{ClientError, MqttClient, QoS, Runtime};
    /// # async fn example<R: Runtime>(client: &MqttClient<R>) -> Result<(), ClientError> {
    /// client.publish("sensors/t1", "21.5").qos(QoS::AtLeastOnce).retain(true).await?;
    /// let (a, b) = futures_util::future::join(
    ///     client.publish("log", "first").qos(QoS::ExactlyOnce),
    ///     client.publish("log", "second").qos(QoS::ExactlyOnce),
    /// )
    /// .await;
    /// a?;
    /// b?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn publish(
        &self,
        topic: impl Into<ByteString>,
        payload: impl Into<Bytes>,
    ) -> Publishing<'_, R> {
        Publishing::new(self, topic.into(), payload.into())
    }

    /// Subscribes to topic filters, e.g. `[("a/#", QoS::AtLeastOnce)]`; returns the SUBACK
    /// codes, one per filter.
    ///
    /// ```no_run
    /// # use mqtt_client::{ClientError, MqttClient, QoS, Runtime};
    /// # async fn example<R: Runtime>(client: &MqttClient<R>) -> Result<(), ClientError> {
    /// let granted = client
    ///     .subscribe([("sensors/#", QoS::AtLeastOnce), ("alerts", QoS::ExactlyOnce)])
    ///     .await?;
    /// assert_eq!(granted.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn subscribe<I, F>(&self, topics: I) -> Result<Vec<ReasonCode>, ClientError>
    where
        I: IntoIterator<Item = F>,
        F: Into<SubscribeFilter>,
    {
        let filters = topics.into_iter().map(Into::into).collect();
        self.request(|reply| Command::Subscribe { filters, reply })
            .await
    }

    /// Unsubscribes from topic filters; returns the UNSUBACK codes (empty in MQTT 3.1.1).
    pub async fn unsubscribe<I, T>(&self, topics: I) -> Result<Vec<ReasonCode>, ClientError>
    where
        I: IntoIterator<Item = T>,
        T: Into<ByteString>,
    {
        let filters = topics.into_iter().map(Into::into).collect();
        self.request(|reply| Command::Unsubscribe { filters, reply })
            .await
    }

    /// The next received message. A builder: `.timeout(..)` makes it fail with
    /// [`ClientError::Timeout`] instead of waiting forever. Fails with
    /// [`ClientError::NotConnected`] when no message is waiting and the client has no connection
    /// (nor a reconnect under way) that could bring one.
    ///
    /// ```no_run
    /// # use mqtt_client::{ClientError, MqttClient, Runtime};
    /// # async fn example<R: Runtime>(client: &MqttClient<R>) -> Result<(), ClientError> {
    /// # use std::time::Duration;
    /// let message = client.deliver_message().timeout(Duration::from_secs(5)).await?;
    /// println!("{} => {:?}", message.topic(), message.payload());
    /// # Ok(())
    /// # }
    /// ```
    pub fn deliver_message(&self) -> Delivering<'_, R> {
        Delivering::new(self)
    }

    /// Received messages as a stream. Streams and `deliver_message` share one queue: each
    /// message goes to exactly one of them.
    ///
    /// ```no_run
    /// # use mqtt_client::{MqttClient, Runtime};
    /// # async fn example<R: Runtime>(client: &MqttClient<R>) {
    /// use futures_util::StreamExt;
    ///
    /// let mut messages = std::pin::pin!(client.messages());
    /// while let Some(message) = messages.next().await {
    ///     println!("{} => {} bytes", message.topic(), message.payload().len());
    /// }
    /// # }
    /// ```
    pub fn messages(&self) -> impl Stream<Item = ApplicationMessage> + Send + 'static {
        self.inner.shared.messages_rx.clone()
    }

    /// Connection status changes from now on.
    pub fn connection_events(
        &self,
    ) -> impl Stream<Item = ConnectionEvent> + Send + Unpin + 'static {
        let (tx, rx) = mpsc::unbounded();
        lock(&self.inner.shared.status).push(tx);
        rx
    }

    /// Sends PINGREQ and waits for PINGRESP.
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.request(|reply| Command::Ping { reply }).await
    }

    /// Sends DISCONNECT and closes the connection. Pending QoS 1/2 publishes stay in the
    /// session and are sent again by a later `reconnect` with a persistent session.
    pub async fn disconnect(&self) -> Result<(), ClientError> {
        match self.request(|reply| Command::Disconnect { reply }).await {
            Err(ClientError::NotConnected | ClientError::Closed) => Ok(()),
            other => other,
        }
    }

    /// Reconnects to the last broker (after a lost connection or a `disconnect`), retrying
    /// per the configuration. A builder: `.clean_session(..)`, then `.await`.
    ///
    /// ```no_run
    /// # use mqtt_client::{ClientError, MqttClient, Runtime};
    /// # async fn example<R: Runtime>(client: &MqttClient<R>) -> Result<(), ClientError> {
    /// client.disconnect().await?;
    /// // Later: the same broker, the same session (queued QoS 1/2 messages go out again).
    /// let connack = client.reconnect().clean_session(false).await?;
    /// # let _ = connack;
    /// # Ok(())
    /// # }
    /// ```
    pub fn reconnect(&self) -> Reconnecting<'_, R> {
        Reconnecting::new(self)
    }

    /// Fails every pending operation (publishes, subscribes, pings and `deliver_message`
    /// calls) with [`ClientError::Closed`]; the connection itself stays up.
    pub fn cancel_tasks(&self) {
        self.inner
            .shared
            .cancel_epoch
            .fetch_add(1, Ordering::SeqCst);
        self.inner.shared.cancel.notify(usize::MAX);
        // No driver, nothing pending: nothing to cancel.
        let _ = self.inner.shared.commands.push(Command::Cancel);
    }

    fn send(&self, command: Command) -> Result<(), ClientError> {
        if self.inner.shared.commands.push(command) {
            Ok(())
        } else {
            Err(ClientError::NotConnected)
        }
    }

    async fn request<T>(
        &self,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.send(command(reply))?;
        rx.await.unwrap_or(Err(ClientError::Closed))
    }

    /// Starts a driver over `session` (a new one unless one is parked).
    fn start(
        &self,
        params: ConnectParams,
    ) -> Result<oneshot::Receiver<Result<ConnAck, ClientError>>, ClientError> {
        let mut parked = lock(&self.inner.shared.parked);
        if !self.inner.shared.commands.open() {
            return Err(ClientError::AlreadyConnected);
        }
        let config = &self.inner.config;
        let session = parked.session.take().unwrap_or_else(|| {
            let mut session_config =
                SessionConfig::new(self.inner.client_id.clone(), config.protocol_version);
            session_config.max_inflight = config.max_inflight.max(1);
            session_config.receive_maximum = config.max_inflight.max(1);
            session_config.max_packet_size = config.max_packet_size;
            session_config.connect_timeout = config.connect_timeout;
            session_config.ping_delay = config.ping_delay;
            session_config.ping_timeout = config.keep_alive.max(Duration::from_secs(1));
            Session::new(session_config)
        });
        let (reply, rx) = oneshot::channel();
        let driver = Driver::new(
            self.inner.runtime.clone(),
            self.inner.shared.clone(),
            session,
            params.clone(),
            reply,
            config.auto_reconnect,
            config.reconnect_retries,
            config.reconnect_max_interval,
        );
        parked.params = Some(params);
        drop(parked);
        self.inner.runtime.spawn(driver.run());
        Ok(rx)
    }

    fn connect_options(&self, target: &Target, clean_session: Option<bool>) -> ConnectOptions {
        let config = &self.inner.config;
        let mut options = ConnectOptions::new(config.keep_alive);
        options.clean_start = clean_session.unwrap_or(config.clean_session);
        options.username = target
            .username
            .clone()
            .or_else(|| config.username.clone())
            .map(ByteString::from);
        options.password = target
            .password
            .clone()
            .or_else(|| config.password.clone())
            .map(Bytes::from);
        options.will = config.will.as_ref().map(|will| Will {
            topic: ByteString::from(will.topic.as_str()),
            payload: Bytes::from(will.message.clone()),
            qos: will.qos,
            retain: will.retain,
            properties: WillProperties::default(),
        });
        options.session_expiry_interval = config.session_expiry_interval;
        options
    }
}

/// A random client identifier: 23 characters from the set every server must accept
/// ([MQTT-3.1.3-5]), seeded from the standard library's per-process random hasher keys.
fn random_client_id() -> ByteString {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    // Wall-clock time only adds entropy to the hasher's random keys; nothing depends on it.
    #[allow(clippy::disallowed_methods)]
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    let mut state = hasher.finish();
    let mut id = String::from("mqtt-rs-");
    for _ in 0..15 {
        // xorshift64: cheap spreading of the seed over the characters.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        id.push(char::from(
            ALPHABET[(state % ALPHABET.len() as u64) as usize],
        ));
    }
    ByteString::from(id)
}
