//! The builders the client's methods return ([`Connecting`], [`Reconnecting`],
//! [`Publishing`] with its [`PublishFuture`], [`Delivering`]): set options, then `.await`.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_channel::oneshot;
use mqtt_proto::ByteString;

use crate::driver::{self, Command, ConnectParams};
use crate::{
    ApplicationMessage, ClientError, ConnAck, MqttClient, Publish, PublishProperties, QoS,
    ReasonCode, Runtime, Target, TlsOptions, UriError, lock,
};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Builder returned by [`MqttClient::connect`]; `.await` it.
#[must_use = "a connect builder does nothing until awaited"]
pub struct Connecting<'a, R: Runtime> {
    pub(crate) client: &'a MqttClient<R>,
    pub(crate) uri: Option<&'a str>,
    pub(crate) clean_session: Option<bool>,
    pub(crate) tls: TlsOptions,
    pub(crate) headers: Vec<(String, String)>,
}

impl<'a, R: Runtime> Connecting<'a, R> {
    /// Clean Session / Clean Start for this connection.
    pub fn clean_session(mut self, clean: bool) -> Self {
        self.clean_session = Some(clean);
        self
    }

    /// Trusted CA certificates from a PEM file.
    pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls.ca_file = Some(path.into());
        self
    }

    /// Trusted CA certificates from a directory of PEM files.
    pub fn ca_path(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls.ca_path = Some(path.into());
        self
    }

    /// Trusted CA certificates as PEM text.
    pub fn ca_data(mut self, pem: impl Into<String>) -> Self {
        self.tls.ca_data = Some(pem.into());
        self
    }

    /// An extra HTTP header for the WebSocket handshake.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    async fn run(self) -> Result<ConnAck, ClientError> {
        let client = self.client;
        let uri = self
            .uri
            .map(str::to_owned)
            .or_else(|| client.inner.config.uri.clone())
            .ok_or(UriError::Missing)?;
        let target = Target::parse(&uri)?;
        let tls = if target.scheme.is_tls() {
            Some(self.tls.client_config()?)
        } else {
            None
        };
        let options = client.connect_options(&target, self.clean_session);
        let params = ConnectParams {
            target,
            tls,
            headers: self.headers,
            options,
            connect_timeout: client.inner.config.connect_timeout,
        };
        let rx = client.start(params)?;
        rx.await.unwrap_or(Err(ClientError::Closed))
    }
}

impl<'a, R: Runtime> IntoFuture for Connecting<'a, R> {
    type Output = Result<ConnAck, ClientError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// Builder returned by [`MqttClient::reconnect`]; `.await` it.
#[must_use = "a reconnect builder does nothing until awaited"]
pub struct Reconnecting<'a, R: Runtime> {
    pub(crate) client: &'a MqttClient<R>,
    pub(crate) clean_session: Option<bool>,
}

impl<'a, R: Runtime> Reconnecting<'a, R> {
    /// Clean Session / Clean Start for the new connection.
    pub fn clean_session(mut self, clean: bool) -> Self {
        self.clean_session = Some(clean);
        self
    }

    async fn run(self) -> Result<ConnAck, ClientError> {
        let client = self.client;
        let running = client.inner.shared.commands.is_accepting();
        if running {
            let clean_start = self.clean_session;
            match client
                .request(|reply| Command::Reconnect { clean_start, reply })
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
        if let Some(clean) = self.clean_session {
            params.options.clean_start = clean;
        }
        let rx = client.start(params)?;
        rx.await.unwrap_or(Err(ClientError::Closed))
    }
}

impl<'a, R: Runtime> IntoFuture for Reconnecting<'a, R> {
    type Output = Result<ConnAck, ClientError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// Builder returned by [`MqttClient::publish`]; `.await` it.
#[must_use = "a publish builder does nothing until awaited"]
pub struct Publishing<'a, R: Runtime> {
    pub(crate) client: &'a MqttClient<R>,
    pub(crate) topic: ByteString,
    pub(crate) payload: Bytes,
    pub(crate) qos: Option<QoS>,
    pub(crate) retain: Option<bool>,
    pub(crate) ack_timeout: Option<Duration>,
    pub(crate) properties: PublishProperties,
}

impl<R: Runtime> Publishing<'_, R> {
    /// QoS (default: the topic's or the client's `default_qos`).
    pub fn qos(mut self, qos: QoS) -> Self {
        self.qos = Some(qos);
        self
    }

    /// Retain flag (default: the topic's or the client's `default_retain`).
    pub fn retain(mut self, retain: bool) -> Self {
        self.retain = Some(retain);
        self
    }

    /// Fail with [`ClientError::Timeout`] if the flow has not completed by then. The message
    /// stays in flight: MQTT has no way to take it back.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = Some(timeout);
        self
    }

    /// MQTT 5 properties.
    pub fn properties(mut self, properties: PublishProperties) -> Self {
        self.properties = properties;
        self
    }
}

impl<R: Runtime> IntoFuture for Publishing<'_, R> {
    type Output = Result<ReasonCode, ClientError>;
    type IntoFuture = PublishFuture<R>;

    /// Hands the message to the driver right away, so publishes awaited together are sent in
    /// the order they were created, back to back.
    fn into_future(self) -> PublishFuture<R> {
        let (default_qos, default_retain) = self.client.inner.config.publish_defaults(&self.topic);
        let publish = Publish {
            dup: false,
            qos: self.qos.unwrap_or(default_qos),
            retain: self.retain.unwrap_or(default_retain),
            topic: self.topic,
            packet_id: None,
            properties: self.properties,
            payload: self.payload,
        };
        let (reply, rx) = oneshot::channel();
        let state = match self.client.send(Command::Publish { publish, reply }) {
            Ok(()) => Ok(rx),
            Err(err) => Err(Some(err)),
        };
        let timeout = self.ack_timeout.map(|timeout| {
            Box::pin(
                self.client
                    .inner
                    .runtime
                    .sleep_until(self.client.inner.runtime.now() + timeout),
            )
        });
        PublishFuture { state, timeout }
    }
}

/// The future of a publish: waits for the flow's completion, with an optional timeout.
#[must_use = "futures do nothing unless polled"]
pub struct PublishFuture<R: Runtime> {
    state: Result<oneshot::Receiver<Result<ReasonCode, ClientError>>, Option<ClientError>>,
    timeout: Option<Pin<Box<R::Sleep>>>,
}

impl<R: Runtime> Future for PublishFuture<R> {
    type Output = Result<ReasonCode, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let rx = match &mut this.state {
            Ok(rx) => rx,
            Err(err) => return Poll::Ready(Err(err.take().unwrap_or(ClientError::Closed))),
        };
        if let Poll::Ready(result) = Pin::new(rx).poll(cx) {
            return Poll::Ready(result.unwrap_or(Err(ClientError::Closed)));
        }
        if let Some(timeout) = &mut this.timeout
            && timeout.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(ClientError::Timeout));
        }
        Poll::Pending
    }
}

/// Builder returned by [`MqttClient::deliver_message`]; `.await` it.
#[must_use = "a deliver builder does nothing until awaited"]
pub struct Delivering<'a, R: Runtime> {
    pub(crate) client: &'a MqttClient<R>,
    pub(crate) timeout: Option<Duration>,
}

impl<'a, R: Runtime> Delivering<'a, R> {
    /// Fail with [`ClientError::Timeout`] if no message arrives in time.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    async fn run(self) -> Result<ApplicationMessage, ClientError> {
        let shared = &self.client.inner.shared;
        let epoch = shared.cancel_epoch.load(Ordering::SeqCst);
        let deadline = self.timeout.map(|t| self.client.inner.runtime.now() + t);
        loop {
            let listener = shared.cancel.listen();
            if shared.cancel_epoch.load(Ordering::SeqCst) != epoch {
                return Err(ClientError::Closed);
            }
            match shared.messages_rx.try_recv() {
                Ok(message) => return Ok(message),
                Err(async_channel::TryRecvError::Closed) => return Err(ClientError::Closed),
                Err(async_channel::TryRecvError::Empty) => {}
            }
            // amqtt's `deliver_message` fails when the client is not connected: messages that
            // arrived before stay deliverable (above), but with no connection (and no
            // reconnect under way) none can come, so waiting would never end.
            if !shared.commands.is_accepting() {
                return Err(ClientError::NotConnected);
            }
            let receive = async {
                let recv = std::pin::pin!(shared.messages_rx.recv());
                let listener = std::pin::pin!(listener);
                match futures_util::future::select(recv, listener).await {
                    futures_util::future::Either::Left((message, _)) => {
                        Some(message.map_err(|_| ClientError::Closed))
                    }
                    futures_util::future::Either::Right(_) => None,
                }
            };
            let outcome = match deadline {
                Some(deadline) => {
                    match driver::timeout(&self.client.inner.runtime, deadline, receive).await {
                        Some(outcome) => outcome,
                        None => return Err(ClientError::Timeout),
                    }
                }
                None => receive.await,
            };
            if let Some(result) = outcome {
                return result;
            }
            // Woken by `cancel_tasks` or by the client stopping: the checks above decide.
        }
    }
}

impl<'a, R: Runtime> IntoFuture for Delivering<'a, R> {
    type Output = Result<ApplicationMessage, ClientError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
