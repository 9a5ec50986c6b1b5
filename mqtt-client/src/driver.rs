//! The driver task: moves bytes between the transport and the [`Session`], sleeps until the
//! session's next deadline, hands events to the callers waiting for them, and reconnects.
//!
//! One task per client. Each wake it drains every pending command, reads what the socket
//! has, fires due timers, dispatches events, and writes everything the session encoded in one
//! buffer (the session coalesces packets, so a burst of publishes costs one write).

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_channel::oneshot;
use futures_io::AsyncWrite;
use mqtt_proto::properties::SubscribeProperties;
use mqtt_proto::{ByteString, ConnAck, Disconnect, Publish, ReasonCode, SubscribeFilter};
use tracing::{debug, info, warn};

use super::error::ClientError;
use super::transport::{self, Runtime, Transport};
use super::uri::Target;
use super::{ApplicationMessage, ConnectionEvent, Shared};
use mqtt_session::{ConnectOptions, ConnectionError, ConnectionState, Event, Session, Token};

/// Size of the socket read buffer: large enough that a busy connection is drained in few
/// reads, small enough to stay cheap per client.
const READ_CHUNK: usize = 64 * 1024;

/// How long closing a transport may take before it is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Everything needed to (re)open the connection.
#[derive(Clone)]
pub(crate) struct ConnectParams {
    pub(crate) target: Target,
    pub(crate) tls: Option<transport::TlsConfig>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) options: ConnectOptions,
    pub(crate) connect_timeout: Duration,
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

/// A request from a client handle to the driver.
// A publish is moved once through the channel; boxing it to shrink the enum would cost an
// allocation per message.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    Publish {
        publish: Publish,
        reply: Reply<ReasonCode>,
    },
    Subscribe {
        filters: Vec<SubscribeFilter>,
        reply: Reply<Vec<ReasonCode>>,
    },
    Unsubscribe {
        filters: Vec<ByteString>,
        reply: Reply<Vec<ReasonCode>>,
    },
    Ping {
        reply: Reply<()>,
    },
    Disconnect {
        reply: Reply<()>,
    },
    Reconnect {
        clean_start: Option<bool>,
        reply: Reply<ConnAck>,
    },
    /// Fail every pending operation (amqtt's `cancel_tasks`); the connection stays up.
    Cancel,
}

impl Command {
    /// Answers a command that arrived after the driver stopped: the caller retries on a new
    /// driver (`reconnect`) or learns there is no connection.
    fn refuse(self) {
        let err = ClientError::NotConnected;
        match self {
            Self::Publish { reply, .. } => drop(reply.send(Err(err))),
            Self::Subscribe { reply, .. } | Self::Unsubscribe { reply, .. } => {
                drop(reply.send(Err(err)));
            }
            Self::Ping { reply } | Self::Disconnect { reply } => drop(reply.send(Err(err))),
            Self::Reconnect { reply, .. } => drop(reply.send(Err(err))),
            Self::Cancel => {}
        }
    }
}

/// A caller waiting for a command's completion event.
enum Waiter {
    Publish(Reply<ReasonCode>),
    Subscribe(Reply<Vec<ReasonCode>>),
    Unsubscribe(Reply<Vec<ReasonCode>>),
    Ping(Reply<()>),
}

impl Waiter {
    fn fail(self, err: ClientError) {
        // A dropped receiver means the caller stopped waiting: nothing to tell.
        match self {
            Self::Publish(reply) => drop(reply.send(Err(err))),
            Self::Subscribe(reply) | Self::Unsubscribe(reply) => drop(reply.send(Err(err))),
            Self::Ping(reply) => drop(reply.send(Err(err))),
        }
    }
}

/// How a connection ended.
enum Ended {
    /// The client asked to stop (disconnect, every handle dropped).
    Closed,
    /// The client asked for a fresh connection.
    Reconnect,
    /// The connection failed or was lost.
    Lost(ClientError),
}

pub(crate) struct Driver<R: Runtime> {
    runtime: R,
    shared: Arc<Shared>,
    session: Session,
    params: ConnectParams,
    /// Commands taken from the queue and not yet applied.
    inbox: VecDeque<Command>,
    waiters: HashMap<Token, Waiter>,
    /// The caller of `connect` / `reconnect`, answered at the next CONNACK or failure.
    connect_waiter: Option<Reply<ConnAck>>,
    /// The caller of `disconnect`, answered once DISCONNECT is written.
    disconnect_waiter: Option<Reply<()>>,
    auto_reconnect: bool,
    reconnect_retries: Option<u32>,
    reconnect_max_interval: Duration,
    /// Messages waiting for room in the delivery channel; while any wait, the socket is not
    /// read, so a slow consumer slows the broker down instead of growing memory.
    backlog: VecDeque<ApplicationMessage>,
    delivering: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    read_buf: Box<[u8]>,
    writing: Bytes,
    needs_flush: bool,
    sleep: Option<(Instant, Pin<Box<R::Sleep>>)>,
    end: Option<Ended>,
    /// Whether the current connection got as far as CONNACK: the retry count starts over
    /// after a connection that worked.
    reached_connack: bool,
}

impl<R: Runtime> Driver<R> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        runtime: R,
        shared: Arc<Shared>,
        session: Session,
        params: ConnectParams,
        connect_waiter: Reply<ConnAck>,
        auto_reconnect: bool,
        reconnect_retries: Option<u32>,
        reconnect_max_interval: Duration,
    ) -> Self {
        Self {
            runtime,
            shared,
            session,
            params,
            inbox: VecDeque::new(),
            waiters: HashMap::new(),
            connect_waiter: Some(connect_waiter),
            disconnect_waiter: None,
            auto_reconnect,
            reconnect_retries,
            reconnect_max_interval,
            backlog: VecDeque::new(),
            delivering: None,
            read_buf: vec![0; READ_CHUNK].into_boxed_slice(),
            writing: Bytes::new(),
            needs_flush: false,
            sleep: None,
            end: None,
            reached_connack: false,
        }
    }

    /// Runs connections until the client closes or reconnecting gives up.
    pub(crate) async fn run(mut self) {
        let mut attempt: u32 = 0;
        let final_error = loop {
            let ended = self.connection().await;
            match ended {
                Ended::Closed => break ClientError::Closed,
                Ended::Reconnect => {
                    attempt = 0;
                    continue;
                }
                Ended::Lost(err) => {
                    let refused = matches!(err, ClientError::Connect(_));
                    if self.session.is_connected() {
                        // Cannot happen: a lost connection leaves the session disconnected.
                        warn!("session still connected after the connection ended");
                    }
                    self.shared
                        .status(ConnectionEvent::ConnectionLost(err.clone()));
                    if !self.auto_reconnect || refused {
                        break err;
                    }
                    if self.reached_connack {
                        attempt = 0;
                    }
                    attempt += 1;
                    if self.reconnect_retries.is_some_and(|max| attempt > max) {
                        warn!(attempts = attempt - 1, "giving up reconnecting");
                        break err;
                    }
                    let delay = backoff(attempt, self.reconnect_max_interval);
                    info!(attempt, ?delay, "reconnecting");
                    self.shared
                        .status(ConnectionEvent::Reconnecting { attempt });
                    if self.wait(delay).await {
                        break ClientError::Closed;
                    }
                }
            }
        };
        self.shutdown(final_error);
    }

    /// One connection: open the transport, CONNECT, serve until it ends.
    async fn connection(&mut self) -> Ended {
        self.reached_connack = false;
        let deadline = self.runtime.now() + self.params.connect_timeout;
        let open = transport::open(
            &self.runtime,
            &self.params.target,
            self.params.tls.as_ref(),
            &self.params.headers,
        );
        let transport = match timeout(&self.runtime, deadline, open).await {
            Some(Ok(transport)) => transport,
            Some(Err(err)) => return self.connect_failed(err),
            None => return self.connect_failed(ClientError::Timeout),
        };
        // One budget for TCP, TLS, WebSocket and CONNACK together.
        let now = self.runtime.now();
        self.session
            .set_connect_timeout(deadline.saturating_duration_since(now));
        if let Err(err) = self.session.connect(now, self.params.options.clone()) {
            return self.connect_failed(err.into());
        }
        self.serve(transport).await
    }

    fn connect_failed(&mut self, err: ClientError) -> Ended {
        warn!(%err, "connecting failed");
        if (!self.auto_reconnect || matches!(err, ClientError::Connect(_)))
            && let Some(waiter) = self.connect_waiter.take()
        {
            let _ = waiter.send(Err(err.clone()));
        }
        Ended::Lost(err)
    }

    /// Serves commands while waiting `delay` before a reconnect. Returns true if the client
    /// closed meanwhile.
    async fn wait(&mut self, delay: Duration) -> bool {
        let mut sleep = Box::pin(self.runtime.sleep_until(self.runtime.now() + delay));
        poll_fn(|cx| {
            let handles_gone = self.shared.commands.take(cx, &mut self.inbox);
            while let Some(command) = self.inbox.pop_front() {
                self.apply(self.runtime.now(), command);
                match self.end.take() {
                    Some(Ended::Closed) => return Poll::Ready(true),
                    // `reconnect()` while waiting: try right away.
                    Some(Ended::Reconnect) => return Poll::Ready(false),
                    other => self.end = other,
                }
            }
            if handles_gone {
                return Poll::Ready(true);
            }
            sleep.as_mut().poll(cx).map(|()| false)
        })
        .await
    }

    async fn serve(&mut self, mut transport: Box<dyn Transport>) -> Ended {
        self.writing = Bytes::new();
        self.needs_flush = false;
        self.end = None;
        let ended = poll_fn(|cx| self.poll_serve(cx, &mut transport)).await;
        // Closing (TLS close_notify, WebSocket close frame) is best effort and bounded: the
        // session has already moved on, and a dead peer must not hold up a reconnect.
        let deadline = self.runtime.now() + CLOSE_TIMEOUT;
        let close = poll_fn(|cx| Pin::new(&mut transport).poll_close(cx));
        let _ = timeout(&self.runtime, deadline, close).await;
        ended
    }

    fn poll_serve(
        &mut self,
        cx: &mut Context<'_>,
        transport: &mut Box<dyn Transport>,
    ) -> Poll<Ended> {
        loop {
            let now = self.runtime.now();
            let mut progress = false;

            let handles_gone = self.shared.commands.take(cx, &mut self.inbox);
            while let Some(command) = self.inbox.pop_front() {
                progress = true;
                if self.apply(now, command) {
                    break;
                }
            }
            if handles_gone && !matches!(self.end, Some(Ended::Closed)) {
                debug!("all client handles dropped, disconnecting");
                let _ = self.session.disconnect(now, Disconnect::default());
                self.end = Some(Ended::Closed);
                progress = true;
            }

            if let Some(delivering) = &mut self.delivering
                && delivering.as_mut().poll(cx).is_ready()
            {
                self.delivering = None;
                self.flush_backlog();
                progress = true;
            }

            let reading = matches!(
                self.session.state(),
                ConnectionState::Connecting | ConnectionState::Connected
            );
            if reading && self.delivering.is_none() {
                match Pin::new(&mut **transport).poll_read(cx, &mut self.read_buf) {
                    Poll::Ready(Ok(0)) => {
                        debug!("transport closed by the broker");
                        self.session.handle_transport_closed(now);
                        progress = true;
                    }
                    Poll::Ready(Ok(n)) => {
                        self.session.handle_read(now, &self.read_buf[..n]);
                        progress = true;
                    }
                    Poll::Ready(Err(err)) => {
                        debug!(%err, "transport read failed");
                        self.end
                            .get_or_insert(Ended::Lost(transport::tls_io_error(err)));
                        self.session.handle_transport_closed(now);
                        progress = true;
                    }
                    Poll::Pending => {}
                }
            }

            if let Some(deadline) = self.session.poll_timeout() {
                if deadline <= now {
                    self.session.handle_timeout(now);
                    progress = true;
                } else if self.poll_sleep(cx, deadline) {
                    progress = true;
                }
            }

            while let Some(event) = self.session.poll_event() {
                self.dispatch(event);
                progress = true;
            }

            loop {
                if self.writing.is_empty() {
                    match self.session.poll_transmit(now) {
                        Some(bytes) => self.writing = bytes,
                        None => break,
                    }
                }
                match Pin::new(&mut **transport).poll_write(cx, &self.writing) {
                    Poll::Ready(Ok(0)) => {
                        self.write_failed(now, std::io::ErrorKind::WriteZero.into());
                        break;
                    }
                    Poll::Ready(Ok(n)) => {
                        self.writing.advance(n);
                        self.needs_flush = true;
                        progress = true;
                    }
                    Poll::Ready(Err(err)) => {
                        self.write_failed(now, err);
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            if self.needs_flush && self.writing.is_empty() {
                match Pin::new(&mut **transport).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.needs_flush = false,
                    Poll::Ready(Err(err)) => self.write_failed(now, err),
                    Poll::Pending => {}
                }
            }

            if self.session.state() == ConnectionState::Disconnected
                && self.writing.is_empty()
                && !self.needs_flush
            {
                // A `disconnect` caller is answered by `shutdown`, once the session is parked, so
                // that a `connect` right after it finds the client idle.
                let ended = self
                    .end
                    .take()
                    .unwrap_or(Ended::Lost(ClientError::ConnectionLost(
                        ConnectionError::TransportClosed,
                    )));
                return Poll::Ready(ended);
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    fn write_failed(&mut self, now: Instant, err: std::io::Error) {
        debug!(%err, "transport write failed");
        self.writing = Bytes::new();
        self.needs_flush = false;
        self.end
            .get_or_insert(Ended::Lost(transport::tls_io_error(err)));
        self.session.handle_transport_closed(now);
    }

    /// Polls the timer for `deadline`, creating it only when the deadline moved earlier or
    /// the last one fired: keep-alive deadlines move on every write, and a timer per write
    /// would cost an allocation each. A timer that fires early just leads to a spurious (and
    /// harmless) `handle_timeout`.
    fn poll_sleep(&mut self, cx: &mut Context<'_>, deadline: Instant) -> bool {
        let rearm = match &self.sleep {
            Some((at, _)) => deadline < *at,
            None => true,
        };
        if rearm {
            self.sleep = Some((deadline, Box::pin(self.runtime.sleep_until(deadline))));
        }
        let Some((_, sleep)) = &mut self.sleep else {
            return false;
        };
        if sleep.as_mut().poll(cx).is_ready() {
            self.sleep = None;
            self.session.handle_timeout(self.runtime.now());
            return true;
        }
        false
    }

    /// Applies one command. Returns true when the driver must stop serving commands now.
    fn apply(&mut self, now: Instant, command: Command) -> bool {
        match command {
            Command::Publish { publish, reply } => match self.session.publish(now, publish) {
                Ok(token) => {
                    self.waiters.insert(token, Waiter::Publish(reply));
                }
                Err(err) => {
                    let _ = reply.send(Err(err.into()));
                }
            },
            Command::Subscribe { filters, reply } => {
                match self
                    .session
                    .subscribe(now, filters, SubscribeProperties::default())
                {
                    Ok(token) => {
                        self.waiters.insert(token, Waiter::Subscribe(reply));
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err.into()));
                    }
                }
            }
            Command::Unsubscribe { filters, reply } => {
                match self.session.unsubscribe(now, filters) {
                    Ok(token) => {
                        self.waiters.insert(token, Waiter::Unsubscribe(reply));
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err.into()));
                    }
                }
            }
            Command::Ping { reply } => match self.session.ping(now) {
                Ok(token) => {
                    self.waiters.insert(token, Waiter::Ping(reply));
                }
                Err(err) => {
                    let _ = reply.send(Err(err.into()));
                }
            },
            Command::Disconnect { reply } => {
                self.end = Some(Ended::Closed);
                if self.session.disconnect(now, Disconnect::default()).is_err() {
                    // Not connected (e.g. between reconnect attempts): nothing to send.
                    let _ = reply.send(Ok(()));
                    return true;
                }
                self.disconnect_waiter = Some(reply);
            }
            Command::Reconnect { clean_start, reply } => {
                if let Some(clean_start) = clean_start {
                    self.params.options.clean_start = clean_start;
                }
                if let Some(previous) = self.connect_waiter.replace(reply) {
                    let _ = previous.send(Err(ClientError::Closed));
                }
                self.end = Some(Ended::Reconnect);
                if self.session.disconnect(now, Disconnect::default()).is_err() {
                    return true;
                }
            }
            Command::Cancel => {
                for (_, waiter) in self.waiters.drain() {
                    waiter.fail(ClientError::Closed);
                }
                if let Some(waiter) = self.connect_waiter.take() {
                    let _ = waiter.send(Err(ClientError::Closed));
                }
            }
        }
        false
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Connected {
                session_present,
                properties,
            } => {
                info!(session_present, "connected");
                self.reached_connack = true;
                self.shared
                    .status(ConnectionEvent::Connected { session_present });
                if let Some(waiter) = self.connect_waiter.take() {
                    let _ = waiter.send(Ok(ConnAck {
                        session_present,
                        reason_code: ReasonCode::Success,
                        properties: *properties,
                    }));
                }
            }
            Event::Published { token, result } => {
                if let Some(Waiter::Publish(reply)) = self.waiters.remove(&token) {
                    let _ = reply.send(result.map_err(ClientError::from));
                }
            }
            Event::Message(message) => self.deliver(ApplicationMessage::new(message.publish)),
            Event::Subscribed {
                token,
                reason_codes,
                ..
            } => {
                if let Some(Waiter::Subscribe(reply)) = self.waiters.remove(&token) {
                    let _ = reply.send(Ok(reason_codes));
                }
            }
            Event::Resubscribed { reason_codes } => {
                debug!(?reason_codes, "re-subscribed after session loss");
            }
            Event::Unsubscribed {
                token,
                reason_codes,
            } => {
                if let Some(Waiter::Unsubscribe(reply)) = self.waiters.remove(&token) {
                    let _ = reply.send(Ok(reason_codes));
                }
            }
            Event::Pong { token } => {
                if let Some(Waiter::Ping(reply)) = self.waiters.remove(&token) {
                    let _ = reply.send(Ok(()));
                }
            }
            Event::Auth { reason_code, .. } => {
                debug!(%reason_code, "AUTH from the broker");
            }
            Event::Disconnected { reason } => {
                info!(%reason, "disconnected");
                // Pings die with their connection; publishes and subscriptions live on in the
                // session and complete after a reconnect.
                let pings: Vec<Token> = self
                    .waiters
                    .iter()
                    .filter(|(_, waiter)| matches!(waiter, Waiter::Ping(_)))
                    .map(|(token, _)| *token)
                    .collect();
                for token in pings {
                    if let Some(waiter) = self.waiters.remove(&token) {
                        waiter.fail(ClientError::ConnectionLost(reason.clone()));
                    }
                }
                if !matches!(reason, ConnectionError::Local) {
                    // A transport error seen first (e.g. a TLS alert) says more than the
                    // session's "transport closed".
                    let err = match &self.end {
                        Some(Ended::Lost(err)) => err.clone(),
                        _ => ClientError::from(reason),
                    };
                    if let Some(waiter) = self.connect_waiter.take() {
                        if self.auto_reconnect && !matches!(err, ClientError::Connect(_)) {
                            self.connect_waiter = Some(waiter);
                        } else {
                            let _ = waiter.send(Err(err.clone()));
                        }
                    }
                    self.end.get_or_insert(Ended::Lost(err));
                }
            }
            other => debug!(?other, "session event the client does not use"),
        }
    }

    fn deliver(&mut self, message: ApplicationMessage) {
        if self.delivering.is_some() {
            self.backlog.push_back(message);
            return;
        }
        match self.shared.messages_tx.try_send(message) {
            Ok(()) => {}
            Err(async_channel::TrySendError::Full(message)) => {
                let tx = self.shared.messages_tx.clone();
                self.delivering = Some(Box::pin(async move {
                    // Closed only when the client is gone: the message has nowhere to go.
                    let _ = tx.send(message).await;
                }));
            }
            Err(async_channel::TrySendError::Closed(_)) => {}
        }
    }

    fn flush_backlog(&mut self) {
        while self.delivering.is_none() {
            let Some(message) = self.backlog.pop_front() else {
                return;
            };
            self.deliver(message);
        }
    }

    /// The driver stops: everyone still waiting learns why, and the session is parked for a
    /// later `connect` / `reconnect`.
    fn shutdown(mut self, err: ClientError) {
        for (_, waiter) in self.waiters.drain() {
            waiter.fail(err.clone());
        }
        for message in self.backlog.drain(..) {
            let _ = self.shared.messages_tx.try_send(message);
        }
        // Park first and stop accepting commands under the same lock, answer after: a caller
        // woken by `disconnect` may `connect` at once and must find the session parked.
        let leftovers = self.shared.park(self.session, self.params);
        if let Some(waiter) = self.disconnect_waiter.take() {
            let _ = waiter.send(Ok(()));
        }
        if let Some(waiter) = self.connect_waiter.take() {
            let _ = waiter.send(Err(err));
        }
        for command in self.inbox.drain(..).chain(leftovers) {
            command.refuse();
        }
        // `deliver_message` callers waiting for a message that can no longer come re-check.
        self.shared.cancel.notify(usize::MAX);
        self.shared.status(ConnectionEvent::Closed);
    }
}

/// Exponential backoff: 1 s, 2 s, 4 s, ... capped at `max`.
fn backoff(attempt: u32, max: Duration) -> Duration {
    let exp = attempt.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exp).min(max)
}

/// Runs `future` until `deadline`; `None` on timeout.
pub(crate) async fn timeout<R: Runtime, F: Future>(
    runtime: &R,
    deadline: Instant,
    future: F,
) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut sleep = std::pin::pin!(runtime.sleep_until(deadline));
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        sleep.as_mut().poll(cx).map(|()| None)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(10);
        let delays: Vec<u64> = (1..=6).map(|a| backoff(a, max).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
    }
}
