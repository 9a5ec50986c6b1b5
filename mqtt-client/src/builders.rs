//! The builders the client's methods return ([`Connecting`], [`Reconnecting`],
//! [`Publishing`] (and its [`PublishFuture`] from `send_now`), [`Delivering`]): set options,
//! then `.await` them.
//!
//! Each builder is itself a [`Future`], so it also goes straight into combinators
//! (`join!`, `select`, a runtime's `timeout`). Nothing happens until the first poll: that is
//! when the connection starts, the message is queued for sending or the wait begins. Several
//! publishes polled in turn (as `join!` does) are therefore queued, and sent, in that order.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_channel::oneshot;
use sansmqtt_proto::ByteString;
use sansmqtt_proto::properties::PropertyBox;

use crate::driver::{self, Command, ConnectParams, Failover};
use crate::queue::Permit;
#[cfg(feature = "tls")]
use crate::tls::TlsOptions;
use crate::{
    ApplicationMessage, ClientError, ConnAck, MqttClient, Publish, PublishAck, PublishProperties,
    QoS, ReasonCode, Runtime, Shared, Target, UriError, lock,
};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Builder returned by [`MqttClient::connect`]; `.await` it (or poll it: it is a [`Future`])
/// for the broker's CONNACK. Its options are amqtt's `connect` arguments, for this connection
/// only; everything else is in [`ClientConfig`](crate::ClientConfig). It fails as
/// [`MqttClient::connect`] says.
///
/// ```no_run
/// # use sansmqtt_client::{ClientError, MqttClient, Runtime};
/// # async fn example<R: Runtime>(client: &MqttClient<R>) -> Result<(), ClientError> {
/// // amqtt: `await client.connect(uri, cleansession=False, cafile="ca.pem")`
/// client
///     .connect("wss://broker.example/mqtt")
///     .clean_session(false)
///     .ca_file("ca.pem")
///     .ca_path("/etc/ssl/certs")
///     .ca_data("-----BEGIN CERTIFICATE-----\n...")
///     .header("Authorization", "Bearer token")
///     .await?;
/// # Ok(())
/// # }
/// ```
#[must_use = "a connect builder does nothing until awaited"]
pub struct Connecting<'a, R: Runtime> {
    client: &'a MqttClient<R>,
    /// Empty: the configured URIs.
    uris: Vec<String>,
    clean_session: Option<bool>,
    #[cfg(feature = "tls")]
    tls: TlsOptions,
    headers: Vec<(String, String)>,
    /// The connection attempt, from the first poll on.
    started: Option<BoxFuture<'a, Result<ConnAck, ClientError>>>,
}

impl<'a, R: Runtime> Connecting<'a, R> {
    pub(crate) fn new(client: &'a MqttClient<R>, uris: Vec<String>) -> Self {
        #[cfg(feature = "tls")]
        let config = &client.inner.config;
        Self {
            client,
            uris,
            clean_session: None,
            #[cfg(feature = "tls")]
            tls: {
                let mut tls = TlsOptions::default();
                tls.ca_file.clone_from(&config.ca_file);
                tls.ca_path.clone_from(&config.ca_path);
                tls.ca_data.clone_from(&config.ca_data);
                tls.cert_file.clone_from(&config.cert_file);
                tls.key_file.clone_from(&config.key_file);
                tls.check_hostname = config.check_hostname;
                tls.verify_cert = config.verify_cert;
                tls
            },
            headers: Vec::new(),
            started: None,
        }
    }

    /// Clean Session (3.1.1) / Clean Start (5.0) for this connection (amqtt's
    /// `connect(cleansession=..)`). Default: [`ClientConfig::clean_session`](crate::ClientConfig::clean_session)
    /// (on). Turn it off, with a fixed client id, to resume the broker's session.
    pub fn clean_session(mut self, clean: bool) -> Self {
        self.clean_session = Some(clean);
        self
    }

    /// Trusts the CA certificates of this PEM file, for this connection (amqtt's
    /// `connect(cafile=..)`). Default: [`ClientConfig::ca_file`](crate::ClientConfig::ca_file)
    /// (none: the default roots). Set it in the configuration instead when every connection
    /// needs it; a [`ClientConfig::tls_config`](crate::ClientConfig::tls_config) replaces it.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls.ca_file = Some(path.into());
        self
    }

    /// Trusts the CA certificates of this directory's PEM files, for this connection
    /// (amqtt's `connect(capath=..)`). Default:
    /// [`ClientConfig::ca_path`](crate::ClientConfig::ca_path) (none).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn ca_path(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls.ca_path = Some(path.into());
        self
    }

    /// Trusts these PEM certificates, for this connection (amqtt's `connect(cadata=..)`).
    /// Default: [`ClientConfig::ca_data`](crate::ClientConfig::ca_data) (none). For
    /// certificates that come from a secret store rather than a file.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn ca_data(mut self, pem: impl Into<String>) -> Self {
        self.tls.ca_data = Some(pem.into());
        self
    }

    /// Adds an HTTP header to the WebSocket handshake of `ws://` and `wss://` (amqtt's
    /// `connect(additional_headers=..)`; other transports have no handshake to carry it).
    /// Default: none. Add one when a gateway in front of the broker wants it (an
    /// `Authorization`, a routing key).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The options, moved out for the connection attempt.
    fn take(&mut self) -> Self {
        Self {
            client: self.client,
            uris: std::mem::take(&mut self.uris),
            clean_session: self.clean_session,
            #[cfg(feature = "tls")]
            tls: std::mem::take(&mut self.tls),
            headers: std::mem::take(&mut self.headers),
            started: None,
        }
    }

    async fn run(self) -> Result<ConnAck, ClientError> {
        let client = self.client;
        let config = &client.inner.config;
        config.validate()?;
        let uris = if self.uris.is_empty() {
            config.all_uris()
        } else {
            self.uris
        };
        if uris.is_empty() {
            return Err(UriError::Missing.into());
        }
        let targets = uris
            .iter()
            .map(|uri| Target::parse(uri))
            .collect::<Result<Vec<_>, _>>()?;
        #[cfg(feature = "tls")]
        let tls = match (
            targets.iter().any(|target| target.scheme.is_tls()),
            &config.tls_config,
        ) {
            (false, _) => None,
            (true, Some(config)) => Some(config.clone()),
            (true, None) => Some(self.tls.client_config()?),
        };
        // `Target::parse` refused TLS schemes: no configuration is ever needed.
        #[cfg(not(feature = "tls"))]
        let tls = None;
        let options = client.connect_options(self.clean_session);
        let proxy = config.proxy_choice()?;
        let params = ConnectParams {
            proxy,
            targets,
            tls,
            headers: self.headers,
            options,
            connect_timeout: config.connect_timeout,
            failover: Failover {
                initial_interval: config.reconnect_initial_interval,
                jitter: config.reconnect_jitter,
                shuffle: config.shuffle_uris,
                follow_server_reference: config.follow_server_reference,
            },
            from_reconnect: false,
            authenticator: config.authenticator.clone(),
            fallback_window: (config.fallback_to_v311
                && config.protocol_version == sansmqtt_proto::ProtocolVersion::V5)
                .then(|| config.inflight_window(sansmqtt_proto::ProtocolVersion::V311)),
        };
        let rx = client.start_when_idle(params).await?;
        client.inner.shared.connack(rx).await
    }
}

impl<R: Runtime> Future for Connecting<'_, R> {
    type Output = Result<ConnAck, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.started.is_none() {
            let options = this.take();
            this.started = Some(Box::pin(options.run()));
        }
        match &mut this.started {
            Some(attempt) => attempt.as_mut().poll(cx),
            None => Poll::Ready(Err(ClientError::Closed)),
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Connecting<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connecting")
            .field("uris", &crate::secret::RedactedUris(&self.uris))
            .field("clean_session", &self.clean_session)
            .field("started", &self.started.is_some())
            .finish_non_exhaustive()
    }
}

/// Builder returned by [`MqttClient::reconnect`]; `.await` it (or poll it: it is a
/// [`Future`]) for the broker's CONNACK. It fails as [`MqttClient::reconnect`] says.
#[must_use = "a reconnect builder does nothing until awaited"]
pub struct Reconnecting<'a, R: Runtime> {
    client: &'a MqttClient<R>,
    clean_session: Option<bool>,
    /// The reconnection, from the first poll on.
    started: Option<BoxFuture<'a, Result<ConnAck, ClientError>>>,
}

impl<'a, R: Runtime> Reconnecting<'a, R> {
    pub(crate) fn new(client: &'a MqttClient<R>) -> Self {
        Self {
            client,
            clean_session: None,
            started: None,
        }
    }

    /// Clean Session / Clean Start for the new connection (amqtt's
    /// `reconnect(cleansession=..)`). Default: what the last `connect` used.
    pub fn clean_session(mut self, clean: bool) -> Self {
        self.clean_session = Some(clean);
        self
    }

    async fn run(
        client: &MqttClient<R>,
        clean_session: Option<bool>,
    ) -> Result<ConnAck, ClientError> {
        let running = client.inner.shared.commands.is_accepting();
        if running {
            let clean_start = clean_session;
            match client
                .call(|reply| Command::Reconnect { clean_start, reply })
                .await
            {
                // The driver stopped in between: start a new one below.
                Err(ClientError::NotConnected) => {}
                other => return other,
            }
        }
        let mut params = lock(&client.inner.shared.parked)
            .params
            .clone()
            .ok_or(ClientError::NotConnected)?;
        if let Some(clean) = clean_session {
            params.options.clean_start = clean;
        }
        params.from_reconnect = true;
        let rx = client.start_when_idle(params).await?;
        client.inner.shared.connack(rx).await
    }
}

impl<R: Runtime> Future for Reconnecting<'_, R> {
    type Output = Result<ConnAck, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let attempt = this
            .started
            .get_or_insert_with(|| Box::pin(Self::run(this.client, this.clean_session)));
        attempt.as_mut().poll(cx)
    }
}

impl<R: Runtime> std::fmt::Debug for Reconnecting<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconnecting")
            .field("clean_session", &self.clean_session)
            .field("started", &self.started.is_some())
            .finish_non_exhaustive()
    }
}

/// Builder returned by [`MqttClient::publish`]; `.await` it (or poll it: it is a [`Future`]).
/// The first poll queues the message for sending (or, when [`ClientConfig::max_queued`](crate::ClientConfig::max_queued) publishes
/// are pending, waits for room); the future then resolves when the QoS flow completes: at
/// once for QoS 0 (accepted is complete), at PUBACK / PUBCOMP for QoS 1 / 2, and fails as
/// [`MqttClient::publish`] says.
///
/// Awaiting it is the way to publish. Four other ends exist, each for a need the await cannot
/// meet:
///
/// | end | returns | the one thing only it does |
/// |---|---|---|
/// | `.await` | `Result<ReasonCode, _>` | waits for room, then for the QoS flow (amqtt's `publish`) |
/// | [`send_now`](Self::send_now) | `Result<PublishFuture, _>` at once | never waits for room: fails with `QueueFull` instead |
/// | [`start`](Self::start) | [`PublishFuture`] | queues now, and its future borrows nothing: keep, move or spawn it |
/// | [`acknowledgement`](Self::acknowledgement) | `Result<PublishAck, _>` | the MQTT 5 reason string and user properties of PUBACK / PUBCOMP |
/// | [`stored`](Self::stored) | `Result<PublishFuture, _>` | resolves at the durability point (the store synced it) |
///
/// ```no_run
/// # use sansmqtt_client::{ClientError, MqttClient, QoS, Runtime};
/// # async fn example<R: Runtime>(client: &MqttClient<R>) -> Result<(), ClientError> {
/// // The way: wait for room, then for PUBACK.
/// let code = client.publish("t", "a").qos(QoS::AtLeastOnce).await?;
/// // Never wait for room; the outcome may be awaited later, or dropped.
/// let outcome = client.publish("t", "b").send_now()?;
/// // Queue now; a future that borrows nothing, to keep or spawn.
/// let later = client.publish("t", "c").qos(QoS::AtLeastOnce).start();
/// // The broker's MQTT 5 reason string and user properties too.
/// let ack = client.publish("t", "d").qos(QoS::AtLeastOnce).acknowledgement().await?;
/// // Durable first (with `session_store`), then the acknowledgement.
/// let completion = client.publish("t", "e").qos(QoS::AtLeastOnce).stored().await?;
/// # let _ = (code, ack.reason_string());
/// outcome.await?;
/// later.await?;
/// completion.await?;
/// # Ok(())
/// # }
/// ```
#[must_use = "a publish builder does nothing until awaited"]
pub struct Publishing<'a, R: Runtime> {
    client: &'a MqttClient<R>,
    topic: ByteString,
    payload: Bytes,
    qos: Option<QoS>,
    retain: Option<bool>,
    ack_timeout: Option<Duration>,
    properties: PropertyBox<PublishProperties>,
    /// The publish, from the first poll on.
    started: Option<PublishFuture<R>>,
}

impl<'a, R: Runtime> Publishing<'a, R> {
    pub(crate) fn new(client: &'a MqttClient<R>, topic: ByteString, payload: Bytes) -> Self {
        Self {
            client,
            topic,
            payload,
            qos: None,
            retain: None,
            ack_timeout: None,
            properties: PropertyBox::none(),
            started: None,
        }
    }

    /// QoS (amqtt's `qos`). Default: the topic's
    /// ([`ClientConfig::topic`](crate::ClientConfig::topic)), else
    /// [`ClientConfig::default_qos`](crate::ClientConfig::default_qos) (QoS 0). QoS 1 / 2
    /// when the message must arrive at least / exactly once.
    pub fn qos(mut self, qos: QoS) -> Self {
        self.qos = Some(qos);
        self
    }

    /// Retain flag (amqtt's `retain`): the broker keeps the message for future subscribers.
    /// Default: the topic's, else
    /// [`ClientConfig::default_retain`](crate::ClientConfig::default_retain) (off).
    pub fn retain(mut self, retain: bool) -> Self {
        self.retain = Some(retain);
        self
    }

    /// Fail with [`ClientError::Timeout`] if the flow has not completed by then (amqtt's
    /// `ack_timeout`; counted from the first poll). Default: none (wait as long as the flow
    /// takes, through reconnects). If the message was still waiting for room in the queue, it is not
    /// sent; if it was accepted, it stays in flight (MQTT has no way to take it back) and may
    /// still be delivered.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = Some(timeout);
        self
    }

    /// MQTT 5 properties (message expiry, content type, response topic, correlation data,
    /// user properties, topic alias). Default: none. Ignored in MQTT 3.1.1.
    pub fn properties(mut self, properties: PublishProperties) -> Self {
        self.properties = properties.into();
        self
    }

    /// Queues the message now, without waiting for room: fails with
    /// [`ClientError::QueueFull`] when [`ClientConfig::max_queued`](crate::ClientConfig::max_queued) publishes (or
    /// `max_queued_bytes`) are already pending. The returned future reports the outcome and
    /// may be dropped: the message is sent anyway (fire and forget). On a builder that was
    /// already polled, returns its future as it is.
    ///
    /// The only end that never waits for room: for a loop that must not block (a sensor
    /// that drops a reading rather than fall behind).
    ///
    /// # Errors
    ///
    /// [`ClientError::QueueFull`]: the queue is full; nothing was sent. The returned future
    /// fails as [`MqttClient::publish`] says.
    pub fn send_now(mut self) -> Result<PublishFuture<R>, ClientError> {
        if let Some(started) = self.started.take() {
            return Ok(started);
        }
        let client = self.client;
        let (publish, ack_timeout) = self.take_publish();
        let permit = client
            .inner
            .shared
            .budget
            .try_acquire(publish_size(&publish))
            .ok_or(ClientError::QueueFull)?;
        let mut future = PublishFuture::new(client, publish, ack_timeout);
        future.submit(permit);
        Ok(future)
    }

    /// Starts the publish now (as [`start`](Self::start)) and resolves with the whole final
    /// acknowledgement: reason code, and the MQTT 5 reason string and user properties of the
    /// PUBACK / PUBCOMP (a rejection's are in [`ClientError::Rejected`]). QoS 0 resolves at
    /// acceptance with `Success` and no properties.
    ///
    /// The only end that returns what the broker attached to its acknowledgement (MQTT 5).
    ///
    /// # Errors
    ///
    /// As [`MqttClient::publish`] says.
    pub fn acknowledgement(self) -> Acknowledged<R> {
        Acknowledged(self.start())
    }

    /// Starts the publish now instead of at the first poll: the message is queued at once when
    /// fewer than [`ClientConfig::max_queued`](crate::ClientConfig::max_queued) publishes are
    /// pending (otherwise the returned future waits for room when polled). The future owns
    /// what it needs (no borrow of the client), so it can be kept, moved or spawned and
    /// awaited later; dropping it after the message was queued only stops waiting for the
    /// outcome. On a builder that was already polled, returns its future as it is.
    ///
    /// The only end whose future does not borrow the client and yet waits for room (where
    /// [`send_now`](Self::send_now) fails).
    ///
    /// # Errors
    ///
    /// The future fails as [`MqttClient::publish`] says.
    pub fn start(mut self) -> PublishFuture<R> {
        if let Some(started) = self.started.take() {
            return started;
        }
        let (publish, ack_timeout) = self.take_publish();
        let mut future = PublishFuture::new(self.client, publish, ack_timeout);
        future.try_submit();
        future
    }

    /// Starts the publish now (as [`start`](Self::start)) and waits only until the message
    /// is *stored*; returns the future of its completion.
    ///
    /// This is the durability point of a publish. With a durable store
    /// ([`ClientConfig::session_store`](crate::ClientConfig::session_store)), a QoS 1/2
    /// message whose `stored()` has resolved `Ok` survives a crash of the process: its record
    /// was synced to disk, before any byte of it was written to the socket, and a client
    /// restarted on the same store and client id sends it again (with DUP) and reports its
    /// outcome as [`ConnectionEvent::RecoveredPublish`](crate::ConnectionEvent::RecoveredPublish).
    /// A QoS 1/2 message accepted while the client has no connection (before the first
    /// CONNACK or between connections) is stored without one: its record is synced at once,
    /// and a client restarted on the store sends it (queued publishes are bounded by
    /// `max_queued` / `max_queued_bytes`, as always). One accepted before the first
    /// [`connect`](crate::MqttClient::connect) waits for `connect` to open the store: its
    /// `stored()` resolves once `connect` has been called (whether or not a broker answers),
    /// not before. While
    /// connected, a message waiting for room in the publish budget or in the in-flight window
    /// lives in memory only until it enters the window. With the memory store, "stored" is the same point (the message entered the in-flight
    /// window and was handed out), without the crash-safety. QoS 0 is stored nowhere: it
    /// resolves when the message is accepted, as its publish future does.
    ///
    /// Fails with [`ClientError::Store`] when the store cannot record or sync the message (a
    /// full disk, an I/O error): the message was not sent, and what was stored before is
    /// intact. The returned future resolves as awaiting the builder would.
    ///
    /// Cancellation: dropping it before the message was accepted cancels the publish, as
    /// dropping a [`PublishFuture`] does; after that the message is sent anyway.
    ///
    /// The only end that tells when a message will survive a crash of the process.
    ///
    /// # Errors
    ///
    /// What [`MqttClient::publish`] lists, when it happens before the durability point
    /// ([`ClientError::Store`] among them); once stored, the returned future reports the
    /// rest.
    pub fn stored(mut self) -> Storing<R> {
        let (tx, stored) = oneshot::channel();
        let future = match self.started.take() {
            // Already polled: it was submitted without a durability waiter.
            Some(future) => {
                drop(tx);
                future
            }
            None => {
                let (publish, ack_timeout) = self.take_publish();
                let mut future = PublishFuture::new(self.client, publish, ack_timeout);
                future.stored = Some(tx);
                future.try_submit();
                future
            }
        };
        Storing {
            future: Some(future),
            stored,
        }
    }

    /// The message, moved out of the builder.
    fn take_publish(&mut self) -> (Publish, Option<Duration>) {
        let topic = std::mem::take(&mut self.topic);
        let (default_qos, default_retain) = self.client.inner.config.publish_defaults(&topic);
        let publish = Publish {
            dup: false,
            qos: self.qos.unwrap_or(default_qos),
            retain: self.retain.unwrap_or(default_retain),
            topic,
            packet_id: None,
            properties: std::mem::take(&mut self.properties),
            payload: std::mem::take(&mut self.payload),
        };
        (publish, self.ack_timeout)
    }
}

impl<R: Runtime> Future for Publishing<'_, R> {
    type Output = Result<ReasonCode, ClientError>;

    /// The first poll hands the message to the driver when the publish budget has room, so
    /// publishes polled in turn (as `join!` does) are sent in that order, back to back;
    /// otherwise the future waits for room.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let future = match &mut this.started {
            Some(future) => future,
            None => {
                let (publish, ack_timeout) = this.take_publish();
                let mut future = PublishFuture::new(this.client, publish, ack_timeout);
                future.try_submit();
                this.started.insert(future)
            }
        };
        Pin::new(future).poll(cx)
    }
}

impl<R: Runtime> std::fmt::Debug for Publishing<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publishing")
            .field("topic", &self.topic)
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .field("started", &self.started.is_some())
            .finish_non_exhaustive()
    }
}

/// What a publish counts against [`ClientConfig::max_queued_bytes`](crate::ClientConfig::max_queued_bytes).
fn publish_size(publish: &Publish) -> usize {
    publish.topic.len() + publish.payload.len()
}

/// The future of a publish: waits for room in the publish budget (backpressure), then for
/// the flow's completion, with an optional timeout over both. It fails as
/// [`MqttClient::publish`] says.
///
/// Cancellation: dropping it while it waits for room cancels the publish (nothing is sent).
/// Once accepted (queued to the client), the message belongs to the client: dropping the
/// future only stops waiting for the outcome, and the message is still sent (MQTT has no way
/// to take back a message once it may have reached the broker).
#[must_use = "futures do nothing unless polled"]
pub struct PublishFuture<R: Runtime> {
    shared: Arc<Shared>,
    state: PublishState,
    timeout: Option<Pin<Box<R::Sleep>>>,
    /// `Publishing::stored`: answered by the driver at the durability point.
    stored: Option<driver::Reply<()>>,
}

/// The future returned by [`Publishing::stored`]: resolves at the publish's durability point
/// with the future of its completion. It fails as [`Publishing::stored`] says.
#[must_use = "futures do nothing unless polled"]
pub struct Storing<R: Runtime> {
    future: Option<PublishFuture<R>>,
    stored: oneshot::Receiver<Result<(), ClientError>>,
}

impl<R: Runtime> Future for Storing<R> {
    type Output = Result<PublishFuture<R>, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(future) = this.future.as_mut() else {
            return Poll::Ready(Err(ClientError::Closed));
        };
        if matches!(future.state, PublishState::Waiting { .. }) {
            // Still waiting for room in the publish budget: drive that (and its timeout).
            match future.poll_ack(cx) {
                Poll::Ready(Ok(ack)) => {
                    // Completed while being submitted (QoS 0 written at once).
                    future.state = PublishState::Completed(ack);
                    return Poll::Ready(this.future.take().ok_or(ClientError::Closed));
                }
                Poll::Ready(Err(err)) => {
                    this.future = None;
                    return Poll::Ready(Err(err));
                }
                Poll::Pending if matches!(future.state, PublishState::Waiting { .. }) => {
                    return Poll::Pending;
                }
                Poll::Pending => {}
            }
        }
        match Pin::new(&mut this.stored).poll(cx) {
            Poll::Ready(Ok(Ok(()))) => Poll::Ready(this.future.take().ok_or(ClientError::Closed)),
            Poll::Ready(Ok(Err(err))) => {
                this.future = None;
                Poll::Ready(Err(err))
            }
            // Nobody will answer (the driver stopped, or the builder had been polled before
            // `stored`): the message's own future tells what happened.
            Poll::Ready(Err(_)) => Poll::Ready(this.future.take().ok_or(ClientError::Closed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

enum PublishState {
    /// Waiting for room in the publish budget.
    Waiting {
        publish: Publish,
        listener: Option<event_listener::EventListener>,
    },
    /// Accepted (QoS 1/2): the driver answers on this channel.
    Sent(oneshot::Receiver<Result<PublishAck, ClientError>>),
    /// Finished (or failed before it was accepted).
    Done(Option<ClientError>),
    /// Completed while `Publishing::stored` was submitting it.
    Completed(PublishAck),
}

impl<R: Runtime> PublishFuture<R> {
    fn new(client: &MqttClient<R>, publish: Publish, ack_timeout: Option<Duration>) -> Self {
        let runtime = &client.inner.runtime;
        Self {
            shared: client.inner.shared.clone(),
            state: PublishState::Waiting {
                publish,
                listener: None,
            },
            timeout: ack_timeout
                .map(|timeout| Box::pin(runtime.sleep_until(runtime.now() + timeout))),
            stored: None,
        }
    }

    /// Queues the message with `permit`.
    fn submit(&mut self, permit: Permit) {
        let state = std::mem::replace(&mut self.state, PublishState::Done(None));
        let PublishState::Waiting { mut publish, .. } = state else {
            self.state = state;
            return;
        };
        // Acceptance is the moment to refuse what the server's last CONNACK forbids (and an
        // invalid topic): a QoS 0 publish completes here, so a later refusal could only be
        // reported as an event, with this call already answered `Ok`.
        if let Err(err) = self.shared.acceptance.check(&mut publish) {
            let err = ClientError::from(err);
            if let Some(stored) = self.stored.take() {
                let _ = stored.send(Err(err.clone()));
            }
            self.state = PublishState::Done(Some(err));
            return;
        }
        if publish.qos == QoS::AtMostOnce {
            // Complete on acceptance: nothing else can fail that the caller could act on (a
            // lost connection loses QoS 0 anyway; a later CONNACK's new limits are reported
            // as `ConnectionEvent::PublishRefused`).
            // QoS 0 is stored nowhere: a `stored()` caller is answered by this future.
            self.stored = None;
            self.state = if self.shared.commands.push(Command::Publish {
                publish,
                reply: None,
                permit,
                stored: None,
            }) {
                PublishState::Completed(PublishAck::success())
            } else {
                PublishState::Done(Some(ClientError::NotConnected))
            };
            return;
        }
        let (reply, rx) = oneshot::channel();
        self.state = if self.shared.commands.push(Command::Publish {
            publish,
            reply: Some(reply),
            permit,
            stored: self.stored.take(),
        }) {
            PublishState::Sent(rx)
        } else {
            PublishState::Done(Some(ClientError::NotConnected))
        };
    }

    /// Queues the message if the budget has room; true if it left the waiting state.
    fn try_submit(&mut self) -> bool {
        let PublishState::Waiting { publish, .. } = &self.state else {
            return true;
        };
        match self.shared.budget.try_acquire(publish_size(publish)) {
            Some(permit) => {
                self.submit(permit);
                true
            }
            None => false,
        }
    }
}

impl<R: Runtime> Future for PublishFuture<R> {
    type Output = Result<ReasonCode, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.poll_ack(cx)
            .map(|result| result.map(|ack| ack.reason_code))
    }
}

/// The future of [`Publishing::acknowledgement`]: a publish's whole final acknowledgement. It
/// fails as [`MqttClient::publish`] says.
#[must_use = "futures do nothing unless polled"]
pub struct Acknowledged<R: Runtime>(PublishFuture<R>);

impl<R: Runtime> Future for Acknowledged<R> {
    type Output = Result<PublishAck, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll_ack(cx)
    }
}

impl<R: Runtime> PublishFuture<R> {
    /// Drives the publish to its final acknowledgement, with its properties.
    fn poll_ack(&mut self, cx: &mut Context<'_>) -> Poll<Result<PublishAck, ClientError>> {
        let this = self;
        loop {
            match &mut this.state {
                PublishState::Done(err) => {
                    return Poll::Ready(Err(err.take().unwrap_or(ClientError::Closed)));
                }
                PublishState::Completed(ack) => {
                    let ack = std::mem::replace(ack, PublishAck::success());
                    this.state = PublishState::Done(None);
                    return Poll::Ready(Ok(ack));
                }
                PublishState::Sent(rx) => {
                    if let Poll::Ready(result) = Pin::new(rx).poll(cx) {
                        this.state = PublishState::Done(None);
                        return Poll::Ready(result.unwrap_or(Err(ClientError::Closed)));
                    }
                    break;
                }
                PublishState::Waiting { listener, .. } => match listener {
                    // Listen first, then retry: a permit returned in between is not missed.
                    None => {
                        *listener = Some(this.shared.budget.listen());
                        if !this.try_submit() {
                            continue;
                        }
                    }
                    Some(l) => {
                        if Pin::new(l).poll(cx).is_pending() {
                            break;
                        }
                        if let PublishState::Waiting { listener, .. } = &mut this.state {
                            *listener = None;
                        }
                        this.try_submit();
                    }
                },
            }
        }
        if let Some(timeout) = &mut this.timeout
            && timeout.as_mut().poll(cx).is_ready()
        {
            this.state = PublishState::Done(None);
            return Poll::Ready(Err(ClientError::Timeout));
        }
        Poll::Pending
    }
}

/// Builder returned by [`MqttClient::deliver_message`]; `.await` it (or poll it: it is a
/// [`Future`]) for the next message. It fails as [`MqttClient::deliver_message`] says.
#[must_use = "a deliver builder does nothing until awaited"]
pub struct Delivering<'a, R: Runtime> {
    client: &'a MqttClient<R>,
    timeout: Option<Duration>,
    /// The wait, from the first poll on.
    started: Option<BoxFuture<'a, Result<ApplicationMessage, ClientError>>>,
}

impl<'a, R: Runtime> Delivering<'a, R> {
    pub(crate) fn new(client: &'a MqttClient<R>) -> Self {
        Self {
            client,
            timeout: None,
            started: None,
        }
    }

    /// Fail with [`ClientError::Timeout`] if no message arrives in time (amqtt's
    /// `timeout_duration`; counted from the first poll). Default: wait as long as it takes.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    async fn run(
        client: &MqttClient<R>,
        timeout: Option<Duration>,
    ) -> Result<ApplicationMessage, ClientError> {
        let shared = &client.inner.shared;
        let runtime = &client.inner.runtime;
        let epoch = shared.cancel_epoch.load(Ordering::SeqCst);
        let deadline = timeout.map(|t| runtime.now() + t);
        loop {
            // Listen before checking, so a message or a cancel in between is not missed.
            let listener = shared.inbox.changed.listen();
            if shared.cancel_epoch.load(Ordering::SeqCst) != epoch {
                return Err(ClientError::Closed);
            }
            if let Some(message) = shared.take_message(|| runtime.now()) {
                return Ok(message);
            }
            // amqtt's `deliver_message` fails when the client is not connected: messages that
            // arrived before stay deliverable (above), but with no connection (and no
            // reconnect under way) none can come, so waiting would never end.
            if !shared.commands.is_accepting() {
                return Err(ClientError::NotConnected);
            }
            match deadline {
                Some(deadline) => {
                    if driver::timeout(runtime, deadline, listener).await.is_none() {
                        return Err(ClientError::Timeout);
                    }
                }
                None => listener.await,
            }
            // Woken by a message, `cancel_tasks` or the client stopping: the checks decide.
        }
    }
}

impl<R: Runtime> Future for Delivering<'_, R> {
    type Output = Result<ApplicationMessage, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let wait = this
            .started
            .get_or_insert_with(|| Box::pin(Self::run(this.client, this.timeout)));
        wait.as_mut().poll(cx)
    }
}

impl<R: Runtime> std::fmt::Debug for Delivering<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivering")
            .field("timeout", &self.timeout)
            .field("started", &self.started.is_some())
            .finish_non_exhaustive()
    }
}
