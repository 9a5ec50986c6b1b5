//! MQTT 5 request / response: [`MqttClient::request`] publishes a request carrying a Response
//! Topic and Correlation Data and waits for the message that answers it;
//! [`MqttClient::respond`] answers a request on the responder's side.
//!
//! Replies are routed by the driver before they reach the inbox: a message whose Correlation
//! Data names a pending request goes to that request's caller (and is acknowledged at once),
//! so `deliver_message` and `messages()` never see it, and concurrent requests each get their
//! own reply.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_channel::oneshot;
use sansmqtt_proto::properties::PublishProperties;
use sansmqtt_proto::{ByteString, QoS};

use crate::builders::Publishing;
use crate::{ApplicationMessage, ClientError, IntoTopic, MqttClient, Payload, Runtime, lock};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Requests waiting for their reply, and the response topics subscribed to.
pub(crate) struct Responses {
    /// Correlation Data of each pending request, with the response topic its reply must
    /// arrive on and where the reply goes.
    pending: Mutex<HashMap<Bytes, (ByteString, oneshot::Sender<ApplicationMessage>)>>,
    /// How many requests are pending: received messages skip the lock when none is.
    count: AtomicU64,
    /// Response topics this client subscribed to (the session re-subscribes them after a
    /// session loss).
    subscribed: Mutex<HashSet<ByteString>>,
    /// Makes Correlation Data unique within the client.
    next: AtomicU64,
    /// Makes it unique across clients and restarts of one client id.
    salt: u64,
}

impl Responses {
    pub(crate) fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x0072_6571_7565_7374);
        Self {
            pending: Mutex::new(HashMap::new()),
            count: AtomicU64::new(0),
            subscribed: Mutex::new(HashSet::new()),
            next: AtomicU64::new(0),
            salt: hasher.finish(),
        }
    }

    /// The caller of the pending request that `message` answers, if any (taken: a request
    /// gets one reply). A reply is a message with the request's Correlation Data *on its
    /// response topic*: a client that also subscribes to its own request topic receives its
    /// request back, with the same Correlation Data, and must not take it for the reply.
    pub(crate) fn waiter_for(
        &self,
        message: &ApplicationMessage,
    ) -> Option<oneshot::Sender<ApplicationMessage>> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let correlation = message.properties().correlation_data.as_ref()?;
        let mut pending = lock(&self.pending);
        match pending.get(correlation) {
            Some((topic, _)) if topic.as_ref() as &str == message.topic() => {}
            _ => return None,
        }
        let (_, waiter) = pending.remove(correlation)?;
        drop(pending);
        self.count.fetch_sub(1, Ordering::AcqRel);
        Some(waiter)
    }

    fn correlation(&self) -> Bytes {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut data = Vec::with_capacity(16);
        data.extend_from_slice(&self.salt.to_be_bytes());
        data.extend_from_slice(&n.to_be_bytes());
        Bytes::from(data)
    }

    fn register(
        &self,
        correlation: Bytes,
        response_topic: ByteString,
    ) -> oneshot::Receiver<ApplicationMessage> {
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(correlation, (response_topic, tx));
        self.count.fetch_add(1, Ordering::AcqRel);
        rx
    }

    fn forget(&self, correlation: &Bytes) {
        if lock(&self.pending).remove(correlation).is_some() {
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Removes a pending request when its future ends or is dropped.
struct Pending<'a> {
    responses: &'a Responses,
    correlation: Bytes,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.responses.forget(&self.correlation);
    }
}

/// Builder returned by [`MqttClient::request`]; `.await` it (or poll it: it is a [`Future`])
/// for the reply. It fails as [`MqttClient::request`] says.
#[must_use = "a request does nothing until awaited"]
pub struct Requesting<'a, R: Runtime> {
    client: &'a MqttClient<R>,
    topic: ByteString,
    payload: Bytes,
    qos: QoS,
    timeout: Duration,
    response_topic: Option<ByteString>,
    properties: PublishProperties,
    started: Option<BoxFuture<'a, Result<ApplicationMessage, ClientError>>>,
}

impl<'a, R: Runtime> Requesting<'a, R> {
    /// QoS of the request (the reply subscription is QoS 1). Default: QoS 1; QoS 0 when a
    /// lost request may simply be asked again after the timeout.
    pub fn qos(mut self, qos: QoS) -> Self {
        self.qos = qos;
        self
    }

    /// How long to wait for the reply (from the first poll, subscribing and publishing
    /// included); then [`ClientError::Timeout`]. Default: 10 s. Raise it for a responder
    /// that takes longer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The topic the reply is to be published on (it must be one this client may subscribe
    /// to). Default: `responses/<client id>`. Set it when the broker's access rules allow
    /// replies only on topics of their own.
    pub fn response_topic(mut self, topic: impl IntoTopic) -> Self {
        self.response_topic = Some(topic.into_topic());
        self
    }

    /// Further properties of the request (user properties, content type, message expiry);
    /// its Response Topic and Correlation Data are set by the request. Default: none.
    pub fn properties(mut self, properties: PublishProperties) -> Self {
        self.properties = properties;
        self
    }

    async fn run(
        client: &'a MqttClient<R>,
        topic: ByteString,
        payload: Bytes,
        qos: QoS,
        timeout: Duration,
        response_topic: Option<ByteString>,
        mut properties: PublishProperties,
    ) -> Result<ApplicationMessage, ClientError> {
        let runtime = &client.inner.runtime;
        let deadline = runtime.now() + timeout;
        let responses = &client.inner.shared.responses;
        let response_topic = response_topic
            .unwrap_or_else(|| ByteString::from(format!("responses/{}", client.client_id())));
        let subscribed = lock(&responses.subscribed).contains(&response_topic);
        if !subscribed {
            let subscribe = client.subscribe([(response_topic.clone(), QoS::AtLeastOnce)]);
            let codes = crate::driver::timeout(runtime, deadline, subscribe)
                .await
                .ok_or(ClientError::Timeout)??;
            if let Some(code) = codes.first().filter(|code| !code.is_success()) {
                return Err(ClientError::Rejected(sansmqtt_session::ServerReason::new(
                    *code,
                )));
            }
            lock(&responses.subscribed).insert(response_topic.clone());
        }
        let correlation = responses.correlation();
        let reply = responses.register(correlation.clone(), response_topic.clone());
        let _pending = Pending {
            responses,
            correlation: correlation.clone(),
        };
        properties.response_topic = Some(response_topic);
        properties.correlation_data = Some(correlation);
        let publish = client
            .publish(topic, payload)
            .qos(qos)
            .properties(properties);
        crate::driver::timeout(runtime, deadline, publish)
            .await
            .ok_or(ClientError::Timeout)??;
        crate::driver::timeout(runtime, deadline, reply)
            .await
            .ok_or(ClientError::Timeout)?
            .map_err(|_| ClientError::Closed)
    }
}

impl<R: Runtime> Future for Requesting<'_, R> {
    type Output = Result<ApplicationMessage, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let started = this.started.get_or_insert_with(|| {
            Box::pin(Self::run(
                this.client,
                std::mem::take(&mut this.topic),
                std::mem::take(&mut this.payload),
                this.qos,
                this.timeout,
                this.response_topic.take(),
                std::mem::take(&mut this.properties),
            ))
        });
        started.as_mut().poll(cx)
    }
}

impl<R: Runtime> std::fmt::Debug for Requesting<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requesting")
            .field("topic", &self.topic)
            .field("qos", &self.qos)
            .field("timeout", &self.timeout)
            .field("started", &self.started.is_some())
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> MqttClient<R> {
    /// MQTT 5 request / response: publishes `payload` on `topic` with a Response Topic
    /// (`responses/<client id>` unless `.response_topic(..)` says otherwise, subscribed to on
    /// first use) and a unique Correlation Data, and resolves with the first message that
    /// carries the same Correlation Data, within `.timeout(..)` (10 s by default) or
    /// [`ClientError::Timeout`]. The reply is not seen by `deliver_message` / `messages()`.
    /// Concurrent requests each get their own reply. The responder answers with
    /// [`respond`](Self::respond) (or by publishing on the request's response topic with its
    /// correlation data, as any MQTT 5 client can).
    ///
    /// ```no_run
    /// # use sansmqtt_client::{ClientError, MqttClient, Runtime};
    /// # async fn example<R: Runtime>(client: &MqttClient<R>) -> Result<(), ClientError> {
    /// # use std::time::Duration;
    /// let reply = client
    ///     .request("service/time", "now?")
    ///     .timeout(Duration::from_secs(2))
    ///     .await?;
    /// println!("the time is {:?}", reply.payload());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Cancellation: dropping the future stops waiting; a reply arriving later is
    /// acknowledged and dropped.
    ///
    /// It exists beside `publish` because it waits for a reply message, not for an
    /// acknowledgement, and routes that reply past `deliver_message`.
    ///
    /// # Errors
    ///
    /// - [`ClientError::Timeout`]: no reply within `.timeout(..)` (the subscription and the
    ///   publish count against it).
    /// - [`ClientError::Rejected`]: the broker refused the response topic's subscription, or
    ///   (MQTT 5, QoS 1/2) the request.
    /// - [`ClientError::Closed`]: the client stopped before the reply came, or
    ///   `cancel_tasks` / `disconnect` ended a wait.
    /// - What [`subscribe`](Self::subscribe) fails with (the response topic's
    ///   subscription, on first use), and what [`publish`](Self::publish) fails with (the
    ///   request).
    pub fn request(&self, topic: impl IntoTopic, payload: impl Into<Payload>) -> Requesting<'_, R> {
        Requesting {
            client: self,
            topic: topic.into_topic(),
            payload: payload.into().into_bytes(),
            qos: QoS::AtLeastOnce,
            timeout: Duration::from_secs(10),
            response_topic: None,
            properties: PublishProperties::default(),
            started: None,
        }
    }

    /// Answers a request (a message with a Response Topic): a publish of `payload` on the
    /// request's response topic with its Correlation Data, as a [`Publishing`] builder
    /// (`.qos(..)`, then `.await`, failing as [`publish`](Self::publish) says). `None` when
    /// the message asked for no response. It exists beside `publish` to copy the request's
    /// response topic and correlation data, which MQTT 5 requires of a reply.
    ///
    /// ```no_run
    /// # use sansmqtt_client::{ClientError, MqttClient, Runtime};
    /// # async fn example<R: Runtime>(client: &MqttClient<R>) -> Result<(), ClientError> {
    /// let request = client.deliver_message().await?;
    /// if let Some(reply) = client.respond(&request, request.payload().to_ascii_uppercase()) {
    ///     reply.await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn respond(
        &self,
        request: &ApplicationMessage,
        payload: impl Into<Payload>,
    ) -> Option<Publishing<'_, R>> {
        let request = request.properties();
        let topic = request.response_topic.clone()?;
        let properties = PublishProperties {
            correlation_data: request.correlation_data.clone(),
            ..PublishProperties::default()
        };
        Some(self.publish(topic, payload).properties(properties))
    }
}
