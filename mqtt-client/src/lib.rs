//! The runtime-neutral async MQTT client: amqtt's `MQTTClient` API in Rust, over any
//! [`Runtime`], on the sans-IO [`sansmqtt_session`] core.
//!
//! Everything here needs only `futures` traits: the driver task that moves bytes between a
//! transport and the [`Session`], reconnects, TLS (rustls) and WebSocket
//! (tungstenite) set-up, configuration. A runtime adapter implements [`Runtime`] (TCP connect,
//! a timer, spawn), names the client type and re-exports everything here:
//! `pub type MqttClient = sansmqtt_client::MqttClient<Tokio>;`. Applications use an adapter,
//! `sansmqtt-tokio` or `sansmqtt-async-std`, not this crate directly.
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
//! - `metrics`: [`MqttClient::stats`]'s numbers also as counters and gauges of the `metrics`
//!   facade (`mqtt_client_bytes_sent_total`, `mqtt_client_publishes_in_flight`, ...,
//!   labelled `client_id`), registered with the recorder installed when the client is created.
//! - `scram`: SCRAM-SHA-1 / SCRAM-SHA-256 MQTT 5 enhanced authentication (`Scram`), on
//!   RustCrypto's `sha1`, `sha2`, `hmac` and `pbkdf2`.
//!
//! # One way per task
//!
//! | task | the way | the alternatives, each for one reason |
//! |---|---|---|
//! | connect | [`MqttClient::connect`]`(uri)` (amqtt's), `connect(None)` for the configured [`uri`](ClientConfig::uri) then [`uris`](ClientConfig::uris) (failover) | [`reconnect`](MqttClient::reconnect): the last broker and session again |
//! | publish | [`MqttClient::publish`]`(..).await` (amqtt's) | [`Publishing`]'s `send_now`, `start`, `acknowledgement`, `stored`: see there; [`request`](MqttClient::request) / [`respond`](MqttClient::respond): MQTT 5 request / response |
//! | configure TLS | the [`ClientConfig`] options (`ca_file`, `cert_file`, ... amqtt's keys) | [`Connecting`]'s `ca_file` / `ca_path` / `ca_data` (amqtt's `connect` arguments); [`ClientConfig::tls_config`], a ready `rustls::ClientConfig` for what the options cannot say (custom verifier, in-memory keys, ALPN), which replaces them |
//! | receive | [`MqttClient::deliver_message`] (amqtt's) | [`MqttClient::messages`]: the same queue as a `Stream` |
//! | subscribe | [`MqttClient::subscribe`] (amqtt's) | [`subscribe_with`](MqttClient::subscribe_with): MQTT 5 properties and the whole SUBACK; [`subscribe_shared`](MqttClient::subscribe_shared): a consumer group |
//!
//! # Before the first connect
//!
//! Publishes, subscribes and unsubscribes made before the first [`MqttClient::connect`] are
//! accepted (publishes within [`ClientConfig::max_queued`] / `max_queued_bytes`, subscribes and
//! unsubscribes within `max_queued` requests) and applied when `connect` starts the client: at
//! the first CONNACK the subscriptions go out first, then the publishes in acceptance order.
//! With a durable store a QoS 1/2 publish's [`Publishing::stored`] resolves once `connect` has
//! opened the store. Pings, `reauthenticate` and `deliver_message` need a started client and
//! fail with [`ClientError::NotConnected`]; `disconnect` or `cancel_tasks` before any
//! `connect` fail what was declared with [`ClientError::Closed`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod doc_lists;
mod auth;
mod base64;
mod builders;
mod config;
mod drain;
mod driver;
mod error;
mod events;
mod inbox;
mod intake;
mod limits;
mod payload;
mod proxy;
mod queue;
#[cfg(feature = "quic")]
mod quic;
mod reconnect;
mod request;
#[cfg(feature = "scram")]
mod scram;
mod secret;
mod shared;
mod stats;
pub mod store;
#[cfg(feature = "tls")]
mod tls;
mod token;
mod transport;
mod uri;
mod v5;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_channel::oneshot;
use futures_util::Stream;
use sansmqtt_proto::{ByteString, PacketId, Will};
use tracing::debug;

pub use auth::{AuthError, AuthExchange, Authenticator};
pub use builders::{
    Acknowledged, Connecting, Delivering, PublishFuture, Publishing, Reconnecting, Storing,
};
pub use config::{ClientConfig, Overflow, TopicConfig, WillConfig};
pub use drain::Disconnecting;
#[cfg(feature = "tls")]
pub use error::TlsError;
pub use error::{ClientError, ConfigError, UriError};
pub use events::{ConnectionEvents, EVENT_BUFFER};
pub use payload::{ApplicationMessage, IntoUri, Payload, PayloadError};
pub use proxy::{Proxy, ProxyError, ProxyKind, ProxyRefusal};
#[cfg(feature = "quic")]
#[cfg_attr(docsrs, doc(cfg(feature = "quic")))]
pub use quic::QuicError;
#[cfg(feature = "quic")]
#[cfg_attr(docsrs, doc(cfg(feature = "quic")))]
/// quinn, re-exported for [`Runtime::quic_runtime`] implementations.
pub use quinn;
pub use reconnect::Jitter;
pub use request::Requesting;
#[cfg(feature = "scram")]
#[cfg_attr(docsrs, doc(cfg(feature = "scram")))]
pub use scram::{DEFAULT_MIN_ITERATIONS, MAX_ITERATIONS, Scram, ScramError};
pub use secret::Secret;
pub use shared::SharedSubscription;
pub use stats::ClientStats;
pub use store::{ClientStore, FileStore, StoreError};
pub use token::{AuthToken, TokenAuth, TokenProvider};
#[cfg(target_os = "linux")]
pub use transport::push_tcp_ack;
pub use transport::{Runtime, Transport};
pub use uri::{Scheme, Target};
pub use v5::{Acknowledgement, PublishAck};

use driver::{Command, ConnectParams, Driver, Reply};

// The protocol types that appear in the client's API, under the client's own name.
pub use sansmqtt_proto::properties::{
    AckProperties, ConnectProperties, DisconnectProperties, PublishProperties, SubscribeProperties,
    UnsubscribeProperties, UserProperty, WillProperties,
};
pub use sansmqtt_proto::topic::IntoTopic;
pub use sansmqtt_proto::{ConnAck, ProtocolVersion, Publish, QoS, ReasonCode, SubscribeFilter};
pub use sansmqtt_session::{
    ConnectionError, ProtocolError, PublishError, ServerReason, SessionError,
};

use inbox::Inbox;

/// Names every runtime-generic public type with the runtime fixed, for an adapter crate:
/// `sansmqtt_client::runtime_aliases!(Tokio);` defines `MqttClient`, `Connecting<'a>`,
/// `Reconnecting<'a>`, `Disconnecting<'a>`, `Publishing<'a>`, `Delivering<'a>`,
/// `PublishFuture`, `Storing`, `Acknowledged` and `Messages`.
/// Next to `pub use sansmqtt_client::*;` these explicit items shadow the generic ones, so users of
/// the adapter write `sansmqtt_tokio::Publishing<'_>`.
#[macro_export]
macro_rules! runtime_aliases {
    ($runtime:ident) => {
        #[doc = concat!("The client on ", stringify!($runtime), ".")]
        pub type MqttClient = $crate::MqttClient<$runtime>;
        #[doc = concat!("Builder returned by `MqttClient::connect`, on ", stringify!($runtime), ".")]
        pub type Connecting<'a> = $crate::Connecting<'a, $runtime>;
        #[doc = concat!("Builder returned by `MqttClient::reconnect`, on ", stringify!($runtime), ".")]
        pub type Reconnecting<'a> = $crate::Reconnecting<'a, $runtime>;
        #[doc = concat!("Builder returned by `MqttClient::disconnect`, on ", stringify!($runtime), ".")]
        pub type Disconnecting<'a> = $crate::Disconnecting<'a, $runtime>;
        #[doc = concat!("Builder returned by `MqttClient::publish`, on ", stringify!($runtime), ".")]
        pub type Publishing<'a> = $crate::Publishing<'a, $runtime>;
        #[doc = concat!("Builder returned by `MqttClient::deliver_message`, on ", stringify!($runtime), ".")]
        pub type Delivering<'a> = $crate::Delivering<'a, $runtime>;
        #[doc = concat!("The future `Publishing::send_now` and `Publishing::start` return, on ", stringify!($runtime), ".")]
        pub type PublishFuture = $crate::PublishFuture<$runtime>;
        #[doc = concat!("The future `Publishing::stored` returns (the durability point), on ", stringify!($runtime), ".")]
        pub type Storing = $crate::Storing<$runtime>;
        #[doc = concat!("The future `Publishing::acknowledgement` returns (the whole final acknowledgement), on ", stringify!($runtime), ".")]
        pub type Acknowledged = $crate::Acknowledged<$runtime>;
        #[doc = concat!("The stream returned by `MqttClient::messages`, on ", stringify!($runtime), ".")]
        pub type Messages = $crate::Messages<$runtime>;
    };
}

use queue::{CommandQueue, PublishBudget};
/// The codec, re-exported so users need one dependency.
pub use sansmqtt_proto as proto;
/// The sans-IO session the client drives, for users who need its types.
pub use sansmqtt_session as session;

/// Everything a user of an adapter crate needs, re-exported by `sansmqtt-tokio` and
/// `sansmqtt-async-std` so both present the same names.
pub mod prelude {
    #[cfg(feature = "tls")]
    pub use super::TlsError;
    pub use super::{
        ApplicationMessage, ClientConfig, ClientError, ConnectionEvent, IntoTopic, IntoUri, Jitter,
        Payload, PayloadError, Runtime, ServerReason, TopicConfig, UriError, WillConfig,
    };
    pub use sansmqtt_proto::properties::{PublishProperties, UserProperty};
    pub use sansmqtt_proto::{ConnAck, ProtocolVersion, QoS, ReasonCode};
}

use sansmqtt_session::{
    AckMode, AckToken, ConnectOptions, ReceiveMaximumExceeded, Session, SessionConfig,
    SessionStore, Token,
};

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
    /// A reconnect attempt is about to start, after `delay`.
    Reconnecting {
        /// 1 for the first attempt after a loss (or after a failed first connect); counts
        /// every attempt on every URI until a connection stays up.
        attempt: u32,
        /// How long the client waits before this attempt: the round's backoff (with jitter)
        /// for the first URI of a round, zero for the next URIs of the same round.
        delay: Duration,
        /// The broker URI this attempt goes to, with its password (if any) shown as `***`
        /// (`mqtt://user:***@host:1883`).
        uri: String,
    },
    /// Received QoS 0 messages were dropped because the application had
    /// [`message_buffer`](ClientConfig::message_buffer) messages waiting (see
    /// [`Overflow`]). Reported at most once per batch of reads.
    MessagesDropped {
        /// Messages dropped since the last such event.
        count: u64,
    },
    /// Outgoing messages were dropped unsent because their MQTT 5 message expiry interval
    /// ran out while they waited for a connection or for room in the in-flight window. Each
    /// one's publish also fails with
    /// [`PublishError::Expired`] (a QoS 0 publish,
    /// complete at acceptance, learns it only here).
    PublishesExpired {
        /// Messages expired (reported as they expire).
        count: u64,
    },
    /// The client stopped: after `disconnect`, or when reconnecting gave up.
    Closed,
    /// This listener fell more than [`EVENT_BUFFER`] events behind: `count` events, the oldest
    /// it had not taken, were dropped. The events after this one are the newest, in order.
    Missed {
        /// Events dropped since this listener last took one.
        count: u64,
    },
    /// A publish whose call had already completed (QoS 0 completes at acceptance) was refused
    /// when it came to be sent, and was not sent: the limits of a CONNACK received after it
    /// was accepted forbid it (a smaller Maximum Packet Size, retain or QoS no longer
    /// available). What the last CONNACK forbids is refused by the call itself. Counted by
    /// [`ClientStats::publishes_refused`].
    PublishRefused(ClientError),
    /// The broker accepted an MQTT 5 re-authentication on the live connection (started by
    /// [`MqttClient::reauthenticate`] or by a refresh schedule, see
    /// [`AuthExchange::refresh_after`]). A refused one ends the connection:
    /// [`ConnectionLost`](Self::ConnectionLost) with the broker's DISCONNECT reason.
    Reauthenticated,
    /// A publish recovered from the durable session store (sent by an earlier process that
    /// stopped before its flow completed) has completed: its caller is gone, so this is the
    /// only place its outcome shows.
    RecoveredPublish(RecoveredPublish),
    /// A publish recovered from the durable session store that an earlier process had
    /// accepted but not sent (it was queued: no connection, or no room in the window) has
    /// completed, or failed before it was sent (its MQTT 5 expiry ran out, a broker's limits
    /// refused it). Like [`RecoveredPublish`](Self::RecoveredPublish), its caller is gone;
    /// it never had a packet identifier in the earlier process, hence a variant of its own.
    RecoveredQueuedPublish(RecoveredQueuedPublish),
}

/// The outcome of a queued publish recovered from the durable session store
/// ([`ConnectionEvent::RecoveredQueuedPublish`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecoveredQueuedPublish {
    /// Its topic.
    pub topic: ByteString,
    /// Its QoS.
    pub qos: QoS,
    /// The final acknowledgement's reason code, or why it failed.
    pub result: Result<ReasonCode, ClientError>,
}

/// A publish recovered from the durable store, waiting for its outcome to be reported.
#[derive(Debug)]
enum Recovered {
    /// In flight when the earlier process stopped.
    Flight(RecoveredPublish),
    /// Queued, not yet sent, when the earlier process stopped.
    Queued(RecoveredQueuedPublish),
}

impl Recovered {
    /// The event that reports its outcome.
    fn completed(self, result: Result<ReasonCode, ClientError>) -> ConnectionEvent {
        match self {
            Self::Flight(mut flight) => {
                tracing::debug!(
                    packet_id = flight.packet_id.get(),
                    "recovered publish completed"
                );
                flight.result = result;
                ConnectionEvent::RecoveredPublish(flight)
            }
            Self::Queued(mut queued) => {
                tracing::debug!("recovered queued publish completed");
                queued.result = result;
                ConnectionEvent::RecoveredQueuedPublish(queued)
            }
        }
    }
}

/// The outcome of a publish recovered from the durable session store
/// ([`ConnectionEvent::RecoveredPublish`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecoveredPublish {
    /// The packet identifier it was (re-)sent with.
    pub packet_id: PacketId,
    /// Its topic.
    pub topic: ByteString,
    /// Its QoS.
    pub qos: QoS,
    /// The final acknowledgement's reason code, or why it failed.
    pub result: Result<ReasonCode, ClientError>,
}

/// State shared between the handles and the driver task.
pub(crate) struct Shared {
    /// Received messages the application has not taken.
    inbox: Inbox,
    /// Acknowledge messages only when the application says so.
    manual_acks: bool,
    /// The bound on accepted, unfinished publishes.
    budget: Arc<PublishBudget>,
    /// Every `connection_events` listener, each with its bounded queue.
    events: events::EventHub,
    /// Counters the driver updates for `stats`.
    stats: stats::Stats,
    /// The session and connection parameters while no driver runs.
    parked: Mutex<Parked>,
    /// Commands for the running driver.
    commands: CommandQueue,
    /// Bumped by `cancel_tasks`; `deliver_message` calls started before fail with `Closed`
    /// (they are woken through the inbox's listeners).
    cancel_epoch: AtomicU64,
    /// Notified when a driver parks its session and stops.
    parked_event: event_listener::Event,
    /// How many drivers have stopped: a client that stopped (disconnected or gave up) ends
    /// its message streams, one that never ran does not.
    stops: AtomicU64,
    /// Publishes recovered from the durable store whose completion is still to be reported.
    recovered: Mutex<std::collections::HashMap<Token, Recovered>>,
    /// The durable store's counters, once it is open.
    store_monitor: Mutex<Option<store::FileStoreMonitor>>,
    /// MQTT 5 requests waiting for their reply (`request`).
    responses: request::Responses,
    /// The last CONNACK's limits, checked when a publish is accepted.
    acceptance: limits::Acceptance,
    /// Publishes refused after their caller was answered (`ClientStats::publishes_refused`).
    refused: AtomicU64,
}

#[derive(Default)]
struct Parked {
    /// Boxed: a session is parked only while no driver runs, and inline its 1.5 KiB would
    /// sit empty in every connected client's shared state.
    session: Option<Box<Session<ClientStore>>>,
    /// Shared with the running driver (which copies them only to change them): a second
    /// copy in every connected client was 1 KiB.
    params: Option<Arc<ConnectParams>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind; keep going with it.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// Takes the oldest received message; unless acknowledgements are manual, its
    /// acknowledgement goes out now: the application has it.
    /// `now` is read only if the acknowledgement has to go to a parked session: the usual
    /// path (a driver runs, or QoS 0) reads no clock per message.
    fn take_message(&self, now: impl FnOnce() -> std::time::Instant) -> Option<ApplicationMessage> {
        let message = self.inbox.pop()?;
        if !self.manual_acks
            && let Some(token) = message.ack
        {
            self.ack(now, token);
        }
        // A driver waiting for room (a read pause, a bounded 3.1.1 inbox) sees the
        // acknowledgement queued before it looks.
        self.inbox.room.wake();
        Some(message)
    }

    /// Hands an acknowledgement to the session: through the running driver, or straight to
    /// the parked session when none runs (a QoS 2 acknowledgement must not be lost: the
    /// broker's re-sent PUBLISH is answered with PUBREC only once it is recorded).
    fn ack(&self, now: impl FnOnce() -> std::time::Instant, token: AckToken) {
        if self.commands.push(Command::Ack(token)) {
            return;
        }
        // `start` and `park` move the session and open / close the queue under this lock,
        // so holding it, either a driver accepts the command or the session is parked.
        let mut parked = lock(&self.parked);
        if self.commands.push(Command::Ack(token)) {
            return;
        }
        if let Some(session) = parked.session.as_mut()
            && let Err(err) = session.ack(now(), token)
        {
            debug!(%err, "acknowledgement not applied");
        }
    }

    /// A publish whose caller was answered already (QoS 0 completes at acceptance) was
    /// refused when it came to be sent: counted, logged and reported, never silent.
    fn publish_refused(&self, err: ClientError) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%err, "accepted QoS 0 message refused by the session, not sent");
        self.status(ConnectionEvent::PublishRefused(err));
    }

    fn status(&self, event: ConnectionEvent) {
        self.events.send(&event);
    }

    /// The driver stops: its session is parked for the next one and the command queue
    /// closed, atomically for `start` (which takes the same locks in the same order). Returns
    /// the commands that were still queued.
    fn park(&self, session: Session<ClientStore>, params: Arc<ConnectParams>) -> VecDeque<Command> {
        let leftovers = {
            let mut parked = lock(&self.parked);
            parked.session = Some(Box::new(session));
            parked.params = Some(params);
            self.commands.close()
        };
        self.stops.fetch_add(1, Ordering::SeqCst);
        self.parked_event.notify(usize::MAX);
        leftovers
    }

    /// Whether the client ran and has stopped (no driver serves it now): nothing more will
    /// be received until the application connects again.
    fn is_stopped(&self) -> bool {
        self.stops.load(Ordering::SeqCst) > 0 && !self.commands.is_accepting()
    }

    /// Waits for the driver's answer to a connect or reconnect. If the caller drops this
    /// future before the answer, the attempt is marked abandoned: the driver gives it up, and
    /// a `connect` issued meanwhile waits for it to stop instead of failing with
    /// `AlreadyConnected`.
    async fn connack(
        &self,
        rx: oneshot::Receiver<Result<ConnAck, ClientError>>,
    ) -> Result<ConnAck, ClientError> {
        struct Waiting<'a> {
            shared: &'a Shared,
            rx: Option<oneshot::Receiver<Result<ConnAck, ClientError>>>,
        }
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                // An answer already delivered means the attempt finished, not abandoned.
                if let Some(mut rx) = self.rx.take()
                    && !matches!(rx.try_recv(), Ok(Some(_)))
                {
                    self.shared.commands.abandon();
                }
            }
        }
        let mut waiting = Waiting {
            shared: self,
            rx: Some(rx),
        };
        let result = match &mut waiting.rx {
            Some(rx) => rx.await.unwrap_or(Err(ClientError::Closed)),
            None => Err(ClientError::Closed),
        };
        waiting.rx = None;
        result
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
    /// A client with `client_id` (`None`: a random one, as amqtt does) and `config` (amqtt's
    /// `MQTTClient(client_id, config)`). Nothing
    /// happens until [`connect`](Self::connect). An id held in a `String` is given as
    /// `Some(&id)` (the parameter stays `Option<&str>` so that a bare `None` needs no type
    /// annotation).
    pub fn new(client_id: Option<&str>, config: ClientConfig) -> Self {
        Self::with_runtime(client_id, config, R::default())
    }
}

impl<R: Runtime> MqttClient<R> {
    /// Like [`new`](Self::new), with an explicit runtime handle: for a runtime type without
    /// `Default`, or to run the client on a particular runtime instance.
    pub fn with_runtime(client_id: Option<&str>, config: ClientConfig, runtime: R) -> Self {
        let client_id = client_id.map_or_else(random_client_id, ByteString::from);
        let inbox = Inbox::new(config.message_buffer, config.overflow);
        let manual_acks = config.manual_acks;
        let stats = stats::Stats::new(&client_id);
        let budget = Arc::new(PublishBudget::new(
            config.max_queued,
            config.max_queued_bytes,
        ));
        let declared_limit = config.max_queued;
        Self {
            inner: Arc::new(Inner {
                runtime,
                config,
                client_id,
                shared: Arc::new(Shared {
                    inbox,
                    manual_acks,
                    budget,
                    events: events::EventHub::default(),
                    stats,
                    parked: Mutex::new(Parked::default()),
                    commands: CommandQueue::new(declared_limit),
                    cancel_epoch: AtomicU64::new(0),
                    parked_event: event_listener::Event::new(),
                    stops: AtomicU64::new(0),
                    recovered: Mutex::new(std::collections::HashMap::new()),
                    store_monitor: Mutex::new(None),
                    responses: request::Responses::new(),
                    acceptance: limits::Acceptance::default(),
                    refused: AtomicU64::new(0),
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

    /// The durable session store's counters (syncs, compactions, log size), once `connect`
    /// has opened it; `None` with the memory store.
    pub fn store_stats(&self) -> Option<store::FileStoreStats> {
        lock(&self.inner.shared.store_monitor)
            .as_ref()
            .map(store::FileStoreMonitor::stats)
    }

    /// Connects to `uri` (amqtt's `connect(uri)`): `mqtt://`, `mqtts://`, `ws://`, `wss://`
    /// or `quic://`, with optional `user:password@` (which wins over the configured
    /// credentials). `None` uses the configured URIs: [`uri`](ClientConfig::uri) (amqtt's
    /// key), then [`uris`](ClientConfig::uris), failing over along them; a list of brokers is
    /// configured there, with the options that govern the walk. A builder: `.clean_session(..)`,
    /// `.ca_file(..)`, `.ca_path(..)`, `.ca_data(..)`, `.header(..)` (amqtt's `connect`
    /// arguments), then `.await` for the broker's CONNACK.
    ///
    /// ```no_run
    /// # use sansmqtt_client::{ClientError, MqttClient, Runtime};
    /// # async fn example<R: Runtime>(client: &MqttClient<R>) -> Result<(), ClientError> {
    /// let connack = client.connect("mqtts://broker.example:8883/").clean_session(false).await?;
    /// println!("session present: {}", connack.session_present);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    #[doc = connect_errors!()]
    pub fn connect(&self, uri: impl IntoUri) -> Connecting<'_, R> {
        let uris = uri.into_option().map(|uri| vec![uri]).unwrap_or_default();
        Connecting::new(self, uris)
    }

    /// Publishes `payload` on `topic`. The payload is any [`Payload`] form (`&[u8]`, `b"..."`,
    /// `&str`, `&String` are copied once; `Vec<u8>`, `String`, `Bytes` are moved without a
    /// copy), the topic any [`IntoTopic`] string (`&str`, `String`, `&String`). amqtt's
    /// `publish(topic, message, qos, retain, ack_timeout)`. A builder: `.qos(..)`,
    /// `.retain(..)`, `.ack_timeout(..)`, `.properties(..)`, then `.await` (the way to
    /// publish; [`Publishing`] lists the four other ends of the builder, each for one need);
    /// it resolves when the QoS flow completes (QoS 0: when
    /// *accepted* into the client's bounded outgoing queue; QoS 1: at PUBACK; QoS 2: at
    /// PUBCOMP) with the final acknowledgement's reason code (`Success` for QoS 0).
    ///
    /// QoS 0 completes at acceptance so that a loop of `publish(..).await` does not pay one
    /// write (one syscall, one TCP segment) per message: the messages pile up in the queue
    /// and the connection task writes all of them at its next wake, in one write.
    ///
    /// Acceptance is where a message is refused, at every QoS: an invalid topic, and whatever
    /// the broker's last CONNACK forbids (a packet larger than its Maximum Packet Size,
    /// retain not available, a QoS above its maximum, a topic alias above its maximum) fail
    /// the call with [`ClientError::InvalidTopic`] or [`ClientError::Session`]; nothing is
    /// sent. Only a CONNACK that arrives after acceptance (a reconnect to a broker with
    /// smaller limits) can refuse a message later: a QoS 1/2 publish's future then fails, a
    /// QoS 0 one (already answered) is reported as [`ConnectionEvent::PublishRefused`] and
    /// counted in [`ClientStats::publishes_refused`]. A QoS 0 message that a lost
    /// connection takes with it is dropped, as QoS 0 allows. The message keeps
    /// its room in the queue until its bytes are handed to the transport, so
    /// [`ClientConfig::max_queued`] still bounds what a fast QoS 0 publisher can pile up.
    ///
    /// The message is *accepted* when it is queued to the client: at once if fewer than
    /// [`ClientConfig::max_queued`] publishes are pending, otherwise once room appears
    /// (backpressure: the future waits). [`Publishing::send_now`] queues without waiting or
    /// fails with [`ClientError::QueueFull`].
    ///
    /// Before the first [`connect`](Self::connect) a publish is accepted too (same bound) and
    /// waits for it: `connect` queues it in the session, and it goes out on the first
    /// connection, in acceptance order, after the subscriptions declared before `connect`
    /// (see [`subscribe`](Self::subscribe)). Its future resolves with its acknowledgement on
    /// that connection; with a durable store, [`Publishing::stored`] resolves once `connect`
    /// has opened the store and synced the record. [`disconnect`](Self::disconnect) or
    /// [`cancel_tasks`](Self::cancel_tasks) before any `connect`, or dropping every handle,
    /// fail it with [`ClientError::Closed`] (nothing was sent). After a `disconnect` of a
    /// connected client, publishes fail with [`ClientError::NotConnected`] until the next
    /// `connect` / `reconnect`.
    ///
    /// Cancellation: dropping the future before the message is accepted sends nothing. After
    /// it, the message belongs to the client and is sent (and re-sent after reconnects) even
    /// if the future is dropped; dropping only stops waiting for the outcome. For the same
    /// reason [`ClientError::Timeout`] from `.ack_timeout(..)` and [`ClientError::Closed`] from
    /// a `disconnect` or `cancel_tasks` do not mean "not delivered": an application that
    /// publishes again after them may deliver the message twice.
    ///
    /// The builder is a future that queues the message on its first poll, so publishes
    /// joined together go out in the order they are polled, pipelined on the connection:
    ///
    /// ```no_run
    /// # use sansmqtt_client::{ClientError, MqttClient, QoS, Runtime};
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
    ///
    /// # Errors
    ///
    #[doc = publish_errors!()]
    pub fn publish(&self, topic: impl IntoTopic, payload: impl Into<Payload>) -> Publishing<'_, R> {
        Publishing::new(self, topic.into_topic(), payload.into().into_bytes())
    }

    /// Subscribes to topic filters, e.g. `[("a/#", QoS::AtLeastOnce)]` (amqtt's
    /// `subscribe`); returns the SUBACK codes, one per filter: the granted QoS, or why the
    /// broker refused that filter.
    ///
    /// Without a connection the SUBSCRIBE waits and goes out at the next CONNACK, so this
    /// resolves then. That holds before the first [`connect`](Self::connect) as well:
    /// subscriptions can be declared first (poll the future, e.g. in a `join!` with
    /// `connect`, or spawn it), and at the first CONNACK they are sent before the publishes
    /// accepted before `connect`, so a client that subscribes to its own topic receives what
    /// it published. At most [`ClientConfig::max_queued`] subscribes and unsubscribes wait for
    /// the first `connect`; beyond that this fails with [`ClientError::QueueFull`]. A
    /// subscription is recorded in the durable store (if any) when `connect` applies it, and is
    /// re-subscribed after a session loss like any other. `disconnect` /
    /// [`cancel_tasks`](Self::cancel_tasks) before any `connect`, or dropping every handle,
    /// fail it with [`ClientError::Closed`].
    ///
    /// ```no_run
    /// # use sansmqtt_client::{ClientError, MqttClient, QoS, Runtime};
    /// # async fn example<R: Runtime>(client: &MqttClient<R>) -> Result<(), ClientError> {
    /// let granted = client
    ///     .subscribe([("sensors/#", QoS::AtLeastOnce), ("alerts", QoS::ExactlyOnce)])
    ///     .await?;
    /// assert_eq!(granted.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    #[doc = subscribe_errors!()]
    pub async fn subscribe<I, F>(&self, topics: I) -> Result<Vec<ReasonCode>, ClientError>
    where
        I: IntoIterator<Item = F>,
        F: Into<SubscribeFilter>,
    {
        self.subscribe_with(topics, SubscribeProperties::default())
            .await
            .map(|ack| ack.reason_codes)
    }

    /// Unsubscribes from topic filters (amqtt's `unsubscribe`); returns the UNSUBACK codes
    /// (empty in MQTT 3.1.1).
    ///
    /// # Errors
    ///
    #[doc = subscribe_errors!()]
    pub async fn unsubscribe<I, T>(&self, topics: I) -> Result<Vec<ReasonCode>, ClientError>
    where
        I: IntoIterator<Item = T>,
        T: IntoTopic,
    {
        self.unsubscribe_with(topics, UnsubscribeProperties::default())
            .await
            .map(|ack| ack.reason_codes)
    }

    /// The next received message (amqtt's `deliver_message`; [`messages`](Self::messages)
    /// is the same queue as a `Stream`). A builder: `.timeout(..)` (amqtt's
    /// `timeout_duration`), then `.await`.
    ///
    /// A QoS 1/2 message is acknowledged to the broker when this hands it out (unless
    /// [`ClientConfig::manual_acks`] is on: then by [`ack`](Self::ack)). A message the
    /// application has not taken is never acknowledged, so after a crash or a disconnect the
    /// broker sends it again on the next connection of a persistent session. Cancellation:
    /// dropping the future before it resolves takes no message.
    ///
    /// ```no_run
    /// # use sansmqtt_client::{ClientError, MqttClient, Runtime};
    /// # async fn example<R: Runtime>(client: &MqttClient<R>) -> Result<(), ClientError> {
    /// # use std::time::Duration;
    /// let message = client.deliver_message().timeout(Duration::from_secs(5)).await?;
    /// println!("{} => {:?}", message.topic(), message.payload());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// - [`ClientError::Timeout`]: `.timeout(..)` passed with no message.
    /// - [`ClientError::NotConnected`]: no message is waiting and no connection task runs
    ///   (nor a reconnect is under way) that could bring one. That includes the time before
    ///   the first [`connect`](Self::connect), even with subscriptions declared: as in amqtt,
    ///   a call that cannot be answered until the application itself calls `connect` fails at
    ///   once rather than wait (a single task that awaited it before connecting would wait
    ///   forever). Call it once `connect` has started, or take [`messages`](Self::messages),
    ///   which does wait for the first `connect`.
    /// - [`ClientError::Closed`]: [`cancel_tasks`](Self::cancel_tasks) was called while it
    ///   waited.
    pub fn deliver_message(&self) -> Delivering<'_, R> {
        Delivering::new(self)
    }

    /// Received messages as a stream: for `while let`, `select!` and stream combinators,
    /// which `deliver_message` (amqtt's) cannot feed. Streams and `deliver_message` share one
    /// queue: each message goes to exactly one of them.
    ///
    /// The stream ends (yields `None`) once the client has stopped, after
    /// [`disconnect`](Self::disconnect) or when reconnecting gave up (the final error is in
    /// [`connection_events`](Self::connection_events)), and every message received before
    /// has been yielded. It does not end while an automatic reconnect is under way, nor
    /// before the first [`connect`](Self::connect): a stream taken first waits for it. A
    /// stream polled while the client is stopped ends at once; after a later `connect` or
    /// `reconnect`, take a new one. A QoS 1/2 message is acknowledged
    /// when the stream yields it (or, with [`ClientConfig::manual_acks`], when
    /// [`ack`](Self::ack) is called). The stream does not keep the connection alive: when
    /// every client handle is dropped, the client disconnects.
    ///
    /// ```no_run
    /// # use sansmqtt_client::{MqttClient, Runtime};
    /// # async fn example<R: Runtime>(client: &MqttClient<R>) {
    /// use futures_util::StreamExt;
    ///
    /// let mut messages = std::pin::pin!(client.messages());
    /// while let Some(message) = messages.next().await {
    ///     println!("{} => {} bytes", message.topic(), message.payload().len());
    /// }
    /// # }
    /// ```
    pub fn messages(&self) -> Messages<R> {
        Messages {
            shared: self.inner.shared.clone(),
            runtime: self.inner.runtime.clone(),
            listener: None,
        }
    }

    /// Acknowledges a received QoS 1/2 message (PUBACK / PUBREC) with
    /// [`ClientConfig::manual_acks`]; without it, messages are acknowledged when handed out
    /// and this does nothing. Acknowledgements may be given in any order: they go out in the
    /// order the messages arrived, as MQTT requires, so one unacknowledged message holds back
    /// the acknowledgements of those after it. A message from an earlier connection is not
    /// acknowledged (QoS 1: the broker sends it again; QoS 2: its state is kept, and the
    /// broker's re-sent PUBLISH is answered). Never acknowledging a message keeps one of the
    /// broker's in-flight slots until the connection ends.
    pub fn ack(&self, message: &ApplicationMessage) {
        if let (true, Some(token)) = (self.inner.shared.manual_acks, message.ack) {
            self.inner.shared.ack(|| self.inner.runtime.now(), token);
        }
    }

    /// A snapshot of the client's statistics: publishes and messages in flight, queued
    /// publishes and bytes, messages waiting and dropped, reconnects, bytes sent and received,
    /// and the last ping's round-trip time. Cheap (a few atomic loads and two short locks):
    /// call it as often as a status line needs. With the `metrics` feature the same numbers
    /// are also exported through the `metrics` facade (see [`ClientStats`]). The one place
    /// for these numbers: messages waiting (`messages_waiting`), dropped
    /// (`messages_dropped`), publishes queued (`queued_publishes`), refused after
    /// acceptance (`publishes_refused`).
    pub fn stats(&self) -> ClientStats {
        self.inner.shared.snapshot()
    }

    /// Connection status changes from now on, as a stream that ends when every handle of the
    /// client is dropped. Each listener holds at most [`EVENT_BUFFER`] undelivered events: one
    /// that falls further behind loses its oldest events and is told how many with
    /// [`ConnectionEvent::Missed`], so a listener that stops polling costs bounded memory.
    pub fn connection_events(&self) -> ConnectionEvents {
        self.inner.shared.events.listen()
    }

    /// Sends PINGREQ and waits for PINGRESP (amqtt's `ping`). The client pings by itself to
    /// keep the connection alive; call this to measure or check the link now.
    ///
    /// # Errors
    ///
    /// - [`ClientError::NotConnected`]: no connection task runs (before `connect`, after
    ///   `disconnect`, or once reconnecting gave up). During an automatic reconnect the call
    ///   waits for the connection instead.
    /// - [`ClientError::ConnectionLost`]: the connection ended before the PINGRESP (a ping
    ///   is not carried over to the next connection).
    /// - [`ClientError::Closed`]: `disconnect`, `cancel_tasks` or dropping every handle
    ///   ended the wait.
    #[doc = concat!("- ", ended_errors!())]
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.call(|reply| Command::Ping { reply }).await
    }

    /// Re-authenticates on the live MQTT 5 connection: sends AUTH "re-authenticate" (0x19)
    /// with a fresh exchange of the configured [`Authenticator`] (e.g. a new token), answers
    /// the broker's challenges, and completes when the broker accepts (AUTH success, whose
    /// data the exchange checks). Traffic goes on meanwhile.
    ///
    /// # Errors
    ///
    /// - [`ClientError::ConnectionLost`] with the broker's DISCONNECT reason when it refuses
    ///   (the client then reconnects as configured, authenticating afresh);
    /// - [`ClientError::Auth`]: the exchange refused the broker's data (the connection
    ///   ends), [`AuthError::NotConfigured`] without an authenticator,
    ///   [`AuthError::InProgress`] while another one runs;
    /// - [`ClientError::NotConnected`] between connections, [`ClientError::Session`] on
    ///   MQTT 3.1.1.
    pub async fn reauthenticate(&self) -> Result<(), ClientError> {
        self.call(|reply| Command::Reauthenticate {
            reply: Some(reply),
            generation: None,
        })
        .await
    }

    /// Reconnects to the last broker (after a lost connection or a `disconnect`), retrying
    /// per the configuration (amqtt's `reconnect`). A builder: `.clean_session(..)`, then
    /// `.await`. On a live connection it does nothing and returns that connection's CONNACK.
    ///
    /// ```no_run
    /// # use sansmqtt_client::{ClientError, MqttClient, Runtime};
    /// # async fn example<R: Runtime>(client: &MqttClient<R>) -> Result<(), ClientError> {
    /// client.disconnect().await?;
    /// // Later: the same broker, the same session (queued QoS 1/2 messages go out again).
    /// let connack = client.reconnect().clean_session(false).await?;
    /// # let _ = connack;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// - [`ClientError::NotConnected`]: the client never connected (there is no last
    ///   broker).
    /// - [`ClientError::Closed`]: a later `reconnect` took over this one, or `disconnect`,
    ///   `cancel_tasks` or dropping every handle ended it.
    /// - Otherwise what [`connect`](Self::connect) fails with once the connection is
    ///   attempted: [`Proxy`](ClientError::Proxy), `Tls`, [`Store`](ClientError::Store),
    ///   [`AlreadyConnected`](ClientError::AlreadyConnected),
    ///   [`Connect`](ClientError::Connect), [`Timeout`](ClientError::Timeout),
    ///   [`Io`](ClientError::Io), `WebSocket`, `Quic`,
    ///   [`ConnectionLost`](ClientError::ConnectionLost),
    ///   [`Protocol`](ClientError::Protocol), [`Auth`](ClientError::Auth) (the URI and the
    ///   configuration were checked by the first `connect`).
    pub fn reconnect(&self) -> Reconnecting<'_, R> {
        Reconnecting::new(self)
    }

    /// Fails every pending operation (publishes, subscribes, pings and `deliver_message`
    /// calls) with [`ClientError::Closed`] (amqtt's `cancel_tasks`); the connection itself
    /// stays up. Before the first [`connect`](Self::connect), the publishes, subscribes and
    /// unsubscribes declared so far are dropped unsent.
    pub fn cancel_tasks(&self) {
        self.inner
            .shared
            .cancel_epoch
            .fetch_add(1, Ordering::SeqCst);
        self.inner.shared.inbox.wake_all();
        // No driver, nothing pending: nothing to cancel.
        let _ = self.inner.shared.commands.push(Command::Cancel);
    }

    fn send(&self, command: Command) -> Result<(), ClientError> {
        self.inner.shared.commands.offer(command)
    }

    async fn call<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.send(command(reply))?;
        rx.await.unwrap_or(Err(ClientError::Closed))
    }

    /// [`start`](Self::start), first waiting (within the connect timeout) for a driver whose
    /// connect attempt was abandoned to stop.
    async fn start_when_idle(
        &self,
        params: ConnectParams,
    ) -> Result<oneshot::Receiver<Result<ConnAck, ClientError>>, ClientError> {
        let shared = &self.inner.shared;
        let runtime = &self.inner.runtime;
        let deadline = runtime.now() + self.inner.config.connect_timeout;
        loop {
            let parked = shared.parked_event.listen();
            match self.start(params.clone()) {
                Err(ClientError::AlreadyConnected) if shared.commands.is_abandoned() => {
                    driver::timeout(runtime, deadline, parked)
                        .await
                        .ok_or(ClientError::Timeout)?;
                }
                other => return other,
            }
        }
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
        let session = match parked.session.take() {
            Some(session) => *session,
            // The first start opens the store (no driver can be using it: the queue was
            // closed until just now). If that fails, the client stays idle.
            None => match self.new_session() {
                Ok(session) => session,
                Err(err) => {
                    // What was declared before this first `connect` waits for the next one.
                    for command in self.inner.shared.commands.abort_open() {
                        command.refuse();
                    }
                    return Err(err);
                }
            },
        };
        let (reply, rx) = oneshot::channel();
        let params = Arc::new(params);
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

    /// The first session of this client: over the durable store when one is configured
    /// (resuming what it holds), else in memory.
    fn new_session(&self) -> Result<Session<ClientStore>, ClientError> {
        let config = &self.inner.config;
        let mut session_config =
            SessionConfig::new(self.inner.client_id.clone(), config.protocol_version);
        session_config.max_inflight = config.inflight_window(config.protocol_version);
        session_config.receive_maximum = config.announced_receive_maximum();
        // A broker that overruns the window (mosquitto 2.0) is served, not disconnected: the
        // intake's read pause bounds what the client holds (see `intake`).
        session_config.receive_maximum_exceeded = ReceiveMaximumExceeded::Accept;
        session_config.topic_alias_maximum = config.topic_alias_maximum;
        session_config.outgoing_topic_aliases = config.outgoing_topic_aliases;
        // Acknowledged when the application takes a message (or acknowledges it), not
        // when the driver reads it: see `Shared::take_message`.
        session_config.ack_mode = AckMode::Manual;
        // The client's publish budget is the bound; the session never refuses below it
        // (`validate` refused 0 before any connection).
        session_config.max_queued = config.max_queued;
        session_config.max_packet_size = config.max_packet_size;
        session_config.connect_timeout = config.connect_timeout;
        session_config.ping_delay = config.ping_delay;
        // The wait for PINGRESP: one keep-alive period, and at least 1 s for an explicit
        // `ping` with keep-alive off (0). Derived, not an option of its own.
        session_config.ping_timeout = config.keep_alive.max(Duration::from_secs(1));
        // `Publishing::stored` resolves on `Event::Stored`.
        session_config.report_stored = true;
        if config.session_store.is_some() {
            // Each refill of the window costs an fsync: refill in quarters of the window.
            session_config.refill_batch = (session_config.max_inflight / 4).max(1);
        }
        let store = match &config.session_store {
            Some(dir) => {
                let store = FileStore::open(dir)?;
                *lock(&self.inner.shared.store_monitor) = Some(store.monitor());
                ClientStore::File(store)
            }
            None => ClientStore::default(),
        };
        let flights = store.outgoing_in_order();
        if !flights.is_empty() {
            tracing::info!(
                inflight = flights.len(),
                "resuming publishes from the session store"
            );
            let mut recovered = lock(&self.inner.shared.recovered);
            for (packet_id, flight) in flights {
                recovered.insert(
                    flight.token,
                    Recovered::Flight(RecoveredPublish {
                        packet_id,
                        topic: flight.publish.topic,
                        qos: flight.publish.qos,
                        result: Err(ClientError::Closed),
                    }),
                );
            }
        }
        let queued = store.queued_in_order();
        if !queued.is_empty() {
            tracing::info!(
                queued = queued.len(),
                "resuming queued publishes from the session store"
            );
            let mut recovered = lock(&self.inner.shared.recovered);
            for (_, token, publish) in queued {
                recovered.insert(
                    token,
                    Recovered::Queued(RecoveredQueuedPublish {
                        topic: publish.topic,
                        qos: publish.qos,
                        result: Err(ClientError::Closed),
                    }),
                );
            }
        }
        Ok(Session::with_store(session_config, store))
    }

    /// CONNECT options from the configuration; a URI's own credentials replace these per
    /// connection attempt.
    fn connect_options(&self, clean_session: Option<bool>) -> ConnectOptions {
        let config = &self.inner.config;
        let mut options = ConnectOptions::new(config.keep_alive);
        options.clean_start = clean_session.unwrap_or(config.clean_session);
        options.username = config.username.clone().map(ByteString::from);
        options.password = config.password.as_ref().map(Secret::to_bytes);
        options.will = config.will.as_ref().map(|will| Will {
            topic: ByteString::from(will.topic.as_str()),
            payload: Bytes::from(will.message.clone()),
            qos: will.qos,
            retain: will.retain,
            properties: config.will_properties.clone(),
        });
        options.session_expiry_interval = config.session_expiry_secs();
        options.properties = config.connect_properties.clone();
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

/// The stream returned by [`MqttClient::messages`].
#[must_use = "streams do nothing unless polled"]
pub struct Messages<R: Runtime> {
    shared: Arc<Shared>,
    runtime: R,
    listener: Option<event_listener::EventListener>,
}

impl<R: Runtime> std::fmt::Debug for Messages<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messages").finish_non_exhaustive()
    }
}

// Nothing in `Messages` is ever pinned in place; the runtime handle is only cloned from.
impl<R: Runtime> Unpin for Messages<R> {}

impl<R: Runtime> Stream for Messages<R> {
    type Item = ApplicationMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(message) = this.shared.take_message(|| this.runtime.now()) {
                this.listener = None;
                return Poll::Ready(Some(message));
            }
            // Checked after the inbox: a stopped driver pushes nothing more, so what it
            // received is all there is, and it has been handed out.
            if this.listener.is_some() && this.shared.is_stopped() {
                this.listener = None;
                return Poll::Ready(None);
            }
            match &mut this.listener {
                // Listen, then look again: a message pushed in between is not missed.
                None => this.listener = Some(this.shared.inbox.changed.listen()),
                Some(listener) => {
                    if Pin::new(listener).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.listener = None;
                }
            }
        }
    }
}

/// The README's examples (the crate's page on crates.io), compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
