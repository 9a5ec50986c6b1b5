//! Ending a connection: [`MqttClient::disconnect`] and its builder [`Disconnecting`] (the
//! MQTT 5 reason and properties, and a graceful drain of accepted publishes before the
//! DISCONNECT), and [`MqttClient::closed`], the end of the connection task.
//!
//! The drain needs nothing from the connection task: every accepted publish holds a share of
//! the client's publish budget until its outcome is known (QoS 0 handed to the transport,
//! QoS 1/2 acknowledged, or failed), so "drained" is the budget being empty.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use sansmqtt_proto::properties::DisconnectProperties;
use sansmqtt_proto::{Disconnect, ReasonCode};

use crate::driver::{self, Command};
use crate::{ClientError, MqttClient, Runtime};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Builder returned by [`MqttClient::disconnect`]; `.await` it (or poll it: it is a
/// [`Future`]). Awaited as it is, it sends DISCONNECT at once, as `disconnect` always did. It
/// fails as [`MqttClient::disconnect`] says.
#[must_use = "a disconnect builder does nothing until awaited"]
pub struct Disconnecting<'a, R: Runtime> {
    client: &'a MqttClient<R>,
    packet: Disconnect,
    drain: Option<Duration>,
    /// The disconnect, from the first poll on.
    started: Option<BoxFuture<'a, Result<(), ClientError>>>,
}

impl<'a, R: Runtime> Disconnecting<'a, R> {
    pub(crate) fn new(client: &'a MqttClient<R>) -> Self {
        Self {
            client,
            packet: Disconnect::default(),
            drain: None,
            started: None,
        }
    }

    /// Waits, for at most `timeout`, until every accepted publish has completed (queued ones
    /// sent, QoS 1/2 ones acknowledged: what [`ClientStats::queued_publishes`](crate::ClientStats::queued_publishes) counts), then
    /// disconnects. Publishes accepted while the drain waits are waited for too, so stop
    /// publishing first. If the timeout passes first, the client disconnects anyway and the
    /// call fails with [`ClientError::DrainTimeout`], saying how many did not complete.
    /// Default: no drain (pending publishes fail with [`ClientError::Closed`]).
    ///
    /// Use it to shut down without losing what was just published: a QoS 0 message still in
    /// the queue is sent, and a QoS 1/2 publish's future resolves with its acknowledgement
    /// instead of `Closed`. A drain during an automatic reconnect waits for the connection.
    pub fn drain(mut self, timeout: Duration) -> Self {
        self.drain = Some(timeout);
        self
    }

    /// MQTT 5 reason code of the DISCONNECT, e.g. [`ReasonCode::DisconnectWithWillMessage`]
    /// to have the broker publish the will anyway. Default: `Success` (normal disconnection,
    /// will discarded). MQTT 3.1.1 sends its plain DISCONNECT.
    pub fn reason_code(mut self, code: ReasonCode) -> Self {
        self.packet.reason_code = code;
        self
    }

    /// MQTT 5 properties of the DISCONNECT (session expiry interval, reason string, user
    /// properties). Default: none.
    pub fn properties(mut self, properties: DisconnectProperties) -> Self {
        self.packet.properties = properties;
        self
    }

    async fn run(
        client: &MqttClient<R>,
        drain: Option<Duration>,
        packet: Disconnect,
    ) -> Result<(), ClientError> {
        let shared = &client.inner.shared;
        let mut unfinished = 0;
        if let Some(timeout) = drain {
            let runtime = &client.inner.runtime;
            let deadline = runtime.now() + timeout;
            if driver::timeout(runtime, deadline, shared.budget.idle())
                .await
                .is_none()
            {
                unfinished = shared.budget.in_use();
                tracing::warn!(unfinished, "drain timed out; disconnecting");
            }
        }
        match client
            .call(|reply| Command::Disconnect { packet, reply })
            .await
        {
            Err(ClientError::NotConnected | ClientError::Closed) | Ok(()) => {}
            Err(other) => return Err(other),
        }
        match unfinished {
            0 => Ok(()),
            unfinished => Err(ClientError::DrainTimeout { unfinished }),
        }
    }
}

impl<R: Runtime> Future for Disconnecting<'_, R> {
    type Output = Result<(), ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let started = this.started.get_or_insert_with(|| {
            let packet = std::mem::take(&mut this.packet);
            Box::pin(Self::run(this.client, this.drain, packet))
        });
        started.as_mut().poll(cx)
    }
}

impl<R: Runtime> std::fmt::Debug for Disconnecting<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disconnecting")
            .field("reason_code", &self.packet.reason_code)
            .field("drain", &self.drain)
            .field("started", &self.started.is_some())
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> MqttClient<R> {
    /// Sends DISCONNECT and closes the connection (amqtt's `disconnect()`). A builder: `.drain(timeout)` first lets
    /// accepted publishes complete, `.reason_code(..)` and `.properties(..)` set the MQTT 5
    /// DISCONNECT; then `.await`.
    ///
    /// Without a drain, publishes still pending fail with [`ClientError::Closed`], but their
    /// messages stay in the session: QoS 1/2 ones are sent again by a later `connect` /
    /// `reconnect` of this client with a persistent session, so publishing them again would
    /// duplicate them. Received messages not yet taken stay deliverable (and
    /// [`messages`](Self::messages) ends after them); unless taken, they are not acknowledged.
    ///
    /// # Errors
    ///
    /// Only [`ClientError::DrainTimeout`], with [`drain`](Disconnecting::drain), when the
    /// timeout passed first (the client disconnected anyway). A client that is not connected
    /// has nothing to close and returns `Ok`. Before the first [`connect`](Self::connect) it
    /// fails what was declared (publishes, subscribes) with [`ClientError::Closed`], unsent; a
    /// drain then waits for publishes that no connection will take, so it times out.
    ///
    /// ```no_run
    /// # use sansmqtt_client::{ClientError, MqttClient, QoS, Runtime};
    /// # async fn example<R: Runtime>(client: &MqttClient<R>) -> Result<(), ClientError> {
    /// use std::time::Duration;
    ///
    /// let _ = client.publish("log", "bye").qos(QoS::AtLeastOnce).start();
    /// // Let it (and any other accepted publish) complete, for up to 5 s, then disconnect.
    /// client.disconnect().drain(Duration::from_secs(5)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn disconnect(&self) -> Disconnecting<'_, R> {
        Disconnecting::new(self)
    }

    /// Resolves when the client's connection task has ended: after
    /// [`disconnect`](Self::disconnect) (by any handle), or when reconnecting gave up. At once
    /// when no task runs (before `connect`, or after it ended). The reason is reported by
    /// [`connection_events`](Self::connection_events) (`ConnectionLost`, then `Closed`).
    ///
    /// Use it to wait for a client that another task disconnects, or to learn that the client
    /// gave up while nothing else is awaiting it.
    pub async fn closed(&self) {
        let shared = &self.inner.shared;
        loop {
            // Listen first, then look: a stop in between is not missed.
            let stopped = shared.parked_event.listen();
            if !shared.commands.is_accepting() {
                return;
            }
            stopped.await;
        }
    }
}
