//! The driver task: moves bytes between the transport and the [`Session`], sleeps until the
//! session's next deadline, hands events to the callers waiting for them, and reconnects.
//!
//! One task per client. Each wake it drains every pending command, reads what the socket
//! has, fires due timers, dispatches events, and writes everything the session encoded in one
//! buffer (the session coalesces packets, so a burst of publishes costs one write).
//!
//! The socket is always read: received messages go to the inbox, and the session is in
//! manual acknowledgement mode, so a QoS 1/2 message is acknowledged only when the application
//! takes it (or acknowledges it). A slow consumer therefore holds back the broker through MQTT
//! flow control, never by stalling the socket, and PINGRESP, acknowledgements of our own
//! publishes and DISCONNECT are never stuck behind unread messages.
//! The exceptions live in `intake` (driven from `pacing`): a pause of at most
//! `min(keep_alive / 4, 1 s)` while a burst fills the inbox; in MQTT 3.1.1 with a persistent
//! session, QoS 1/2 messages beyond the inbox's bound refused unacknowledged and fetched again
//! by a reconnect; with a clean 3.1.1 session, where refusing would lose them, reading stops
//! while QoS 1/2 messages wait for room, with the session's ping deadline suspended.
//!
//! With a durable store, the sync that makes a batch's records durable runs off the executor
//! (`store::sync`); the driver feeds the session nothing until it is done, then writes the
//! batch.

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_channel::oneshot;
use futures_io::AsyncWrite;
use futures_util::task::AtomicWaker;
use sansmqtt_proto::properties::{
    AckProperties, AuthProperties, SubscribeProperties, UnsubscribeProperties,
};
use sansmqtt_proto::{
    ByteString, ConnAck, Disconnect, ProtocolVersion, Publish, ReasonCode, SubscribeFilter,
};
use tracing::{debug, info, warn};

pub(crate) mod declared;
mod pacing;
mod reauth;

use super::auth::{AuthError, AuthExchange, Authenticator};
use super::error::ClientError;
use super::intake::{Intake, Intaken};
use super::queue::{Permit, Settled};
use super::reconnect::{self, Backoff, Jitter, Outcome, Policy, Reconnector, SplitMix64};
use super::store::{BackgroundSync, ClientStore};
use super::transport::{self, Runtime, Transport};
use super::uri::Target;
use super::{Acknowledgement, ApplicationMessage, ConnectionEvent, PublishAck, Shared, lock};
use sansmqtt_session::{
    AckToken, ConnectOptions, ConnectionError, ConnectionState, Event, Session, Token,
};

/// Size of the socket read buffer: large, so that a busy connection is drained in few reads.
/// One buffer per thread, shared by every driver polled on it (a read is handed to the
/// session at once, which copies what it keeps), so an idle client holds none.
const READ_BUF_SIZE: usize = 64 * 1024;

thread_local! {
    /// The read buffer of the drivers polled on this thread.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The waker the driver hands to the transport's `poll_read`: it records that the transport
/// signalled more to read, then wakes the driver task.
///
/// A pending read leaves this waker registered with the transport until it fires, so the
/// driver need not poll the read again before then. That matters on async-io (smol,
/// async-std), whose `poll_read` is a `recv` system call every time (failing with `EAGAIN`
/// when nothing came) plus, when pending, an `epoll_ctl` to re-arm the one-shot interest:
/// before this, every driver wake caused by the application (a publish, an acknowledgement)
/// paid both for nothing (measured: 0.3-0.7 fewer `recv` calls per message at QoS 1/2 on
/// smol). Tokio caches readiness, so there it saves only a little user time. It rests on the
/// `AsyncRead` contract (a pending read wakes the waker it was given once it can progress);
/// the TLS and WebSocket layers hand this waker down to the TCP stream's read.
#[derive(Default)]
struct ReadWake {
    /// The transport woke the read side since the driver last looked.
    ready: AtomicBool,
    /// The driver task's own waker.
    task: AtomicWaker,
}

impl Wake for ReadWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// How long closing a transport may take before it is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Everything needed to (re)open the connection.
#[derive(Clone)]
pub(crate) struct ConnectParams {
    /// The brokers, in the configured order; at least one.
    pub(crate) targets: Vec<Target>,
    pub(crate) tls: Option<transport::TlsConfig>,
    pub(crate) headers: Vec<(String, String)>,
    /// CONNECT options; a target's own credentials replace the configured ones.
    pub(crate) options: ConnectOptions,
    pub(crate) connect_timeout: Duration,
    pub(crate) failover: Failover,
    /// Started by the application's `reconnect()`: its attempts retry per
    /// `reconnect_retries` even with `auto_reconnect` off, as amqtt's `reconnect()` does.
    pub(crate) from_reconnect: bool,
    /// MQTT 5 with a fallback to 3.1.1 (`ClientConfig::fallback_to_v311`): the in-flight
    /// window to use once fallen back.
    pub(crate) fallback_window: Option<u16>,
    /// MQTT 5 enhanced authentication (`ClientConfig::authenticator`).
    pub(crate) authenticator: Option<Arc<dyn Authenticator>>,
    /// The proxy of each connection (`ClientConfig::proxy`, `proxy_from_env`).
    pub(crate) proxy: crate::proxy::ProxyChoice,
}

/// How reconnects walk the broker list (the rest of the policy, retries and the backoff cap,
/// are the driver's own settings).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failover {
    pub(crate) initial_interval: Duration,
    pub(crate) jitter: Jitter,
    pub(crate) shuffle: bool,
    pub(crate) follow_server_reference: bool,
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

/// A map keyed by the session's tokens.
type TokenMap<V> = HashMap<Token, V, std::hash::BuildHasherDefault<TokenHasher>>;

/// Hashes a [`Token`] with one multiplication. Tokens are numbered by the session, never
/// chosen by a peer, so the default hasher's resistance to chosen keys buys nothing here and
/// cost two hashes per publish (2% of the client's CPU at QoS 1 against a sink server).
#[derive(Default, Clone, Copy)]
struct TokenHasher(u64);

impl std::hash::Hasher for TokenHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A request from a client handle to the driver.
// A publish is moved once through the channel; boxing it to shrink the enum would cost an
// allocation per message.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    Publish {
        publish: Publish,
        /// The publish's share of the client's publish budget, returned when it completes
        /// (QoS 0: once its bytes are handed to the transport), with the completion slot its
        /// caller waits on (none for QoS 0, whose future completed when the message was
        /// accepted).
        permit: Permit,
        /// `Publishing::stored`: answered when the message is durable (`Event::Stored`).
        stored: Option<Reply<()>>,
    },
    /// The application took (or acknowledged) a received message.
    Ack(AckToken),
    Subscribe {
        filters: Vec<SubscribeFilter>,
        properties: SubscribeProperties,
        reply: Reply<Acknowledgement>,
    },
    Unsubscribe {
        filters: Vec<ByteString>,
        properties: UnsubscribeProperties,
        reply: Reply<Acknowledgement>,
    },
    Ping {
        reply: Reply<()>,
    },
    /// MQTT 5 re-authentication: from `reauthenticate` (with its caller) or a refresh
    /// schedule (with its generation).
    Reauthenticate {
        reply: Option<Reply<()>>,
        generation: Option<u64>,
    },
    Disconnect {
        /// MQTT 5 reason code and properties (3.1.1 sends an empty DISCONNECT).
        packet: Disconnect,
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
    /// Whether the command needs a connection and waits here for one during a reconnect.
    /// Publishes, subscribes and unsubscribes wait in the session instead (its queue, and
    /// its SUBSCRIBE / UNSUBSCRIBE sent at the next CONNACK), which keeps their order.
    fn waits_for_connection(&self) -> bool {
        matches!(self, Self::Ping { .. })
    }

    /// Whether the caller stopped waiting for the answer (dropped its future).
    fn is_abandoned(&self) -> bool {
        match self {
            Self::Ping { reply } => reply.is_canceled(),
            _ => false,
        }
    }

    /// Answers a command that arrived after the driver stopped: the caller retries on a new
    /// driver (`reconnect`) or learns there is no connection.
    pub(crate) fn refuse(self) {
        self.fail(ClientError::NotConnected);
    }

    /// Fails the command with `err`.
    fn fail(self, err: ClientError) {
        match self {
            Self::Publish { permit, stored, .. } => {
                if let Some(stored) = stored {
                    let _ = stored.send(Err(err.clone()));
                }
                permit.complete(Err(err));
            }
            Self::Ack(_) => {}
            Self::Subscribe { reply, .. } | Self::Unsubscribe { reply, .. } => {
                drop(reply.send(Err(err)));
            }
            Self::Ping { reply } | Self::Disconnect { reply, .. } => drop(reply.send(Err(err))),
            Self::Reconnect { reply, .. } => drop(reply.send(Err(err))),
            Self::Reauthenticate { reply, .. } => {
                if let Some(reply) = reply {
                    drop(reply.send(Err(err)));
                }
            }
            Self::Cancel => {}
        }
    }
}

/// A caller waiting for a command's completion event.
enum Waiter {
    /// A QoS 1/2 publish: its permit holds the caller's completion slot.
    Publish(Permit),
    Subscribe(Reply<Acknowledgement>),
    Unsubscribe(Reply<Acknowledgement>),
    Ping(Reply<()>),
}

impl Waiter {
    fn fail(self, err: ClientError) {
        // A dropped receiver means the caller stopped waiting: nothing to tell.
        match self {
            Self::Publish(permit) => permit.complete(Err(err)),
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

/// The quiet spell that makes a read "lone" (see [`AckDebt`]): half the interval of a steady
/// 1,000 msg/s flow, so that each of its packets counts as one.
const ACK_QUIET: Duration = Duration::from_micros(500);

/// The TCP acknowledgement of what the driver read. A write carries it. A wake that ends
/// without a write pushes it ([`Runtime::push_ack`]), because a broker with Nagle's
/// algorithm on (mosquitto's default) holds its next small packet until it comes: without
/// the push a steady publisher's every PUBACK waited for its next PUBLISH (one interval), a
/// burst's PUBACKs for the kernel's 40 ms delayed-ACK timer, and so did a QoS 0 subscriber's
/// next message.
///
/// When: at once if the data came after [`ACK_QUIET`] without a read (a lone packet, which
/// the broker may be waiting on); otherwise once reads have been quiet that long, on the
/// driver's timer. Reads in quick succession are a stream the kernel acknowledges by itself,
/// and pushing on every such wake cost 30-45% more CPU per message at full rate (and tripled
/// it for a QoS 0 subscriber). Rate limits measured from the last *push* were tried and
/// rebuilt the chain they were meant to break: the data a push releases arrives right after
/// it, inside the limit, so its own push waited again, and QoS 0 deliveries at
/// 1,000 msg/s took a millisecond each.
#[derive(Debug, Default)]
struct AckDebt {
    /// Data read since the last write or push.
    owed: bool,
    /// Whether the first such read came after a quiet spell.
    lone: bool,
    last_read: Option<Instant>,
}

impl AckDebt {
    fn read(&mut self, now: Instant) {
        if !self.owed {
            self.owed = true;
            self.lone = self
                .last_read
                .is_none_or(|at| now.saturating_duration_since(at) >= ACK_QUIET);
        }
        self.last_read = Some(now);
    }

    fn written(&mut self) {
        self.owed = false;
    }

    /// For a wake ending without a write: when to push, if anything is owed.
    fn due(&self, now: Instant) -> Option<Instant> {
        if !self.owed {
            return None;
        }
        match self.last_read {
            Some(at) if !self.lone => Some((at + ACK_QUIET).max(now)),
            _ => Some(now),
        }
    }

    fn pushed(&mut self) {
        self.owed = false;
    }
}

pub(crate) struct Driver<R: Runtime> {
    runtime: R,
    shared: Arc<Shared>,
    session: Session<ClientStore>,
    /// Shared with the parked copy the client keeps for a later `reconnect`.
    params: Arc<ConnectParams>,
    /// Commands taken from the queue and not yet applied.
    inbox: VecDeque<Command>,
    waiters: TokenMap<Waiter>,
    /// Budget permits of accepted QoS 0 publishes whose bytes are not handed to the transport
    /// yet, in token order (the session completes QoS 0 publishes in order). Kept out of
    /// `waiters`: no caller waits for them.
    qos0_permits: VecDeque<(Token, Permit)>,
    /// Callers of `Publishing::stored` waiting for their message to be durable.
    stored_waiters: TokenMap<Reply<()>>,
    /// Publishes completed in this wake, settled together when it ends (one lock, each
    /// waiting task woken once): see [`settle`](Self::settle).
    settling: Vec<Settled>,
    /// Scratch space for `settling`'s wakers.
    wakers: Vec<Waker>,
    /// The caller of `connect` / `reconnect`, answered at the next CONNACK or failure.
    connect_waiter: Option<Reply<ConnAck>>,
    /// The caller of `disconnect`, answered once DISCONNECT is written.
    disconnect_waiter: Option<Reply<()>>,
    /// Pings issued while no connection is up (a reconnect is under way): applied at the
    /// next CONNACK, failed when reconnecting gives up (amqtt makes every call wait for the
    /// connection). Subscribes and unsubscribes wait in the session.
    deferred: Vec<Command>,
    auto_reconnect: bool,
    /// A `reconnect()` of the application is under way (until CONNACK): its attempts retry
    /// whatever `auto_reconnect` says.
    retry_connect: bool,
    /// The CONNACK of the current connection: what `reconnect()` answers while connected.
    connack: Option<ConnAck>,
    /// A broker accepted MQTT 5 on this client: a later close before CONNACK is a flaky
    /// broker, not a 3.1.1-only one, and does not make the client fall back.
    v5_accepted: bool,
    /// The enhanced authentication exchange of the current connection attempt, with its
    /// method.
    auth: Option<(ByteString, Box<dyn AuthExchange>)>,
    /// A re-authentication under way (see [`reauth`]).
    reauth: Option<reauth::Pending>,
    /// Bumped by every accepted (re-)authentication: scheduled refreshes of older ones are
    /// dropped.
    reauth_generation: u64,
    reconnect_retries: Option<u32>,
    reconnect_max_interval: Duration,
    /// QoS 0 messages dropped by the inbox's overflow policy and not reported yet.
    dropped_unreported: u64,
    /// Received messages into the inbox, pausing reading while it is full (see `intake`).
    intake: Intake<R>,
    writing: Bytes,
    /// The store's sync of the next batch, run off the executor (see `store::sync`).
    syncing: BackgroundSync,
    /// Told by the transport when there is more to read (see [`ReadWake`]).
    read_wake: Arc<ReadWake>,
    /// `read_wake` as a waker, made once so that transports see the same waker every time.
    read_waker: Waker,
    /// The last read was pending, so `read_waker` is registered with the transport: no need
    /// to read again until it fires.
    read_armed: bool,
    /// Bounds how long a local close (DISCONNECT) may take to write out.
    drain_timer: Option<Pin<Box<R::Sleep>>>,
    needs_flush: bool,
    /// The TCP acknowledgement of data read since the last write.
    ack: AckDebt,
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
        session: Session<ClientStore>,
        params: Arc<ConnectParams>,
        connect_waiter: Reply<ConnAck>,
        auto_reconnect: bool,
        reconnect_retries: Option<u32>,
        reconnect_max_interval: Duration,
    ) -> Self {
        let retry_connect = params.from_reconnect;
        let read_wake = Arc::new(ReadWake::default());
        let read_waker = Waker::from(read_wake.clone());
        let intake = Intake::new(params.options.keep_alive);
        Self {
            runtime,
            shared,
            session,
            params,
            inbox: VecDeque::new(),
            waiters: TokenMap::default(),
            qos0_permits: VecDeque::new(),
            stored_waiters: TokenMap::default(),
            settling: Vec::new(),
            wakers: Vec::new(),
            connect_waiter: Some(connect_waiter),
            disconnect_waiter: None,
            deferred: Vec::new(),
            auto_reconnect,
            retry_connect,
            connack: None,
            v5_accepted: false,
            auth: None,
            reauth: None,
            reauth_generation: 0,
            reconnect_retries,
            reconnect_max_interval,
            dropped_unreported: 0,
            intake,
            writing: Bytes::new(),
            syncing: BackgroundSync::default(),
            read_wake,
            read_waker,
            read_armed: false,
            drain_timer: None,
            needs_flush: false,
            ack: AckDebt::default(),
            sleep: None,
            end: None,
            reached_connack: false,
        }
    }

    /// The driver task: runs connections until the client closes or reconnecting gives up,
    /// then stops.
    ///
    /// An `async` block holding the driver, not an `async fn` taking it by value: such a
    /// function's future keeps its argument twice (as passed, and moved into the body's
    /// local), which made every idle client's task 3.3 KiB larger.
    // Deliberately not `async fn` (see above): clippy's rewrite would undo the saving.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn run(mut self) -> impl Future<Output = ()> + Send {
        async move {
            let final_error = self.connections().await;
            self.shutdown(final_error);
        }
    }

    /// Runs connections until the client closes or reconnecting gives up; returns why it
    /// ended. Which broker comes next and how long to wait before it is the
    /// [`Reconnector`]'s business.
    async fn connections(&mut self) -> ClientError {
        let policy = Policy {
            backoff: Backoff {
                initial: self.params.failover.initial_interval,
                max: self.reconnect_max_interval,
                jitter: self.params.failover.jitter,
            },
            retries: self.reconnect_retries,
            grace: reconnect::STABLE_AFTER,
            shuffle: self.params.failover.shuffle,
        };
        let mut plan = Reconnector::new(
            self.params.targets.clone(),
            policy,
            Box::new(SplitMix64::from_random_state()),
        );
        let mut target = if self.retry_connect {
            plan.start_reconnect()
        } else {
            plan.start()
        };
        // What was declared before `connect` is applied before the first transport opens.
        if self.apply_declared().await {
            return ClientError::Closed;
        }
        loop {
            let started = self.runtime.now();
            let ended = self.connection(&target).await;
            match ended {
                Ended::Closed => break ClientError::Closed,
                Ended::Reconnect => {
                    // `reconnect()`: the current broker again, at once, schedule reset.
                    self.retry_connect = true;
                    target = plan.start_reconnect();
                    continue;
                }
                Ended::Lost(err) if self.falls_back(&err) => {
                    info!(%err, "the broker refused MQTT 5; connecting again with MQTT 3.1.1");
                    let window = self.params.fallback_window.unwrap_or(1);
                    if let Err(err) = self
                        .session
                        .set_protocol_version(ProtocolVersion::V311, window)
                    {
                        warn!(%err, "cannot fall back to MQTT 3.1.1");
                        break ClientError::from(err);
                    }
                    // The same broker at once: this was no failed attempt.
                    continue;
                }
                Ended::Lost(err) => {
                    if self.session.is_connected() {
                        // Cannot happen: a lost connection leaves the session disconnected.
                        warn!("session still connected after the connection ended");
                    }
                    self.shared
                        .status(ConnectionEvent::ConnectionLost(err.clone()));
                    if self.gives_up(&err) {
                        break err;
                    }
                    let outcome = Outcome {
                        connected: self.reached_connack.then(|| (started, self.runtime.now())),
                        reference: self.server_reference(&err, &target),
                    };
                    let Some(attempt) = plan.next(outcome) else {
                        warn!("giving up reconnecting");
                        break err;
                    };
                    // Shown without its password: this goes to the log and to every listener.
                    let uri = attempt.target.to_string();
                    info!(attempt = attempt.number, delay = ?attempt.delay, %uri, "reconnecting");
                    self.shared.status(ConnectionEvent::Reconnecting {
                        attempt: attempt.number,
                        delay: attempt.delay,
                        uri,
                    });
                    target = attempt.target;
                    if self.wait(attempt.delay).await {
                        break ClientError::Closed;
                    }
                }
            }
        }
    }

    /// The MQTT 5 Server Reference the connection ended with, when the application follows
    /// them, with whether the server moved for good.
    fn server_reference(&self, err: &ClientError, current: &Target) -> Option<(Target, bool)> {
        if !self.params.failover.follow_server_reference {
            return None;
        }
        let reference = self.session.server_reference()?;
        let Some(target) = reconnect::parse_reference(reference, current) else {
            warn!(%reference, "ignoring a Server Reference that is no broker address");
            return None;
        };
        let moved = matches!(
            err,
            ClientError::Connect(reason)
                | ClientError::ConnectionLost(ConnectionError::ServerDisconnected(reason))
                if reason.code == ReasonCode::ServerMoved
        );
        info!(%reference, moved, "following the server's reference");
        Some((target, moved))
    }

    /// One connection to `target`: open the transport, CONNECT, serve until it ends.
    async fn connection(&mut self, target: &Target) -> Ended {
        self.reached_connack = false;
        let deadline = self.runtime.now() + self.params.connect_timeout;
        let opened = {
            // On the heap, and only while opening: a TLS / WebSocket handshake future is
            // several KiB, and held inline it would size every idle client's task. Built
            // inside the `Box::pin` call: a local binding of it, even moved from, kept its
            // size reserved in this future's state for the whole connection.
            let mut open = Box::pin(timeout(
                &self.runtime,
                deadline,
                transport::open(
                    &self.runtime,
                    target,
                    self.params.tls.as_ref(),
                    &self.params.headers,
                    self.params.proxy.for_target(target),
                    self.params.options.keep_alive,
                ),
            ));
            let connect_waiter = &mut self.connect_waiter;
            poll_fn(|cx| {
                // The caller of `connect` gave up (dropped its future): so does the attempt.
                if connect_waiter
                    .as_mut()
                    .is_some_and(|waiter| waiter.poll_canceled(cx).is_ready())
                {
                    return Poll::Ready(None);
                }
                open.as_mut().poll(cx).map(Some)
            })
            .await
        };
        let transport = match opened {
            None => {
                debug!("connect cancelled by its caller");
                self.connect_waiter = None;
                return Ended::Closed;
            }
            Some(Some(Ok(transport))) => transport,
            Some(Some(Err(err))) => return self.connect_failed(err),
            Some(None) => return self.connect_failed(ClientError::Timeout),
        };
        if let Err(err) = self.send_connect(target, deadline) {
            return self.connect_failed(err);
        }
        self.serve(transport).await
    }

    /// Hands the session its CONNECT for `target`. Not inline in `connection`: the options
    /// (several hundred bytes) would be kept in the driver task's state for the whole
    /// connection.
    fn send_connect(&mut self, target: &Target, deadline: Instant) -> Result<(), ClientError> {
        // One budget for TCP, TLS, WebSocket and CONNACK together.
        let now = self.runtime.now();
        self.session
            .set_connect_timeout(deadline.saturating_duration_since(now));
        let mut options = self.params.options.clone();
        if let Some(username) = &target.username {
            options.username = Some(ByteString::from(username.as_str()));
        }
        if let Some(password) = &target.password {
            options.password = Some(password.to_bytes());
        }
        self.auth = None;
        if let Some(authenticator) = &self.params.authenticator
            && self.session.protocol_version().is_v5()
        {
            let method = ByteString::from(authenticator.method());
            let mut exchange = authenticator.start();
            options.properties.authentication_method = Some(method.clone());
            options.properties.authentication_data = exchange.initial_data();
            self.auth = Some((method, exchange));
        }
        self.session
            .connect(now, options)
            .map_err(ClientError::from)
    }

    fn connect_failed(&mut self, err: ClientError) -> Ended {
        warn!(%err, "connecting failed");
        if self.gives_up(&err)
            && let Some(waiter) = self.connect_waiter.take()
        {
            let _ = waiter.send(Err(err.clone()));
        }
        Ended::Lost(err)
    }

    /// Whether a failed or lost connection is tried again: `auto_reconnect`, or an
    /// application's `reconnect()` still waiting for its CONNACK.
    fn retries(&self) -> bool {
        self.auto_reconnect || self.retry_connect
    }

    /// Whether the connection ending with `err` ends the driver (and answers the caller of
    /// `connect` with it).
    fn gives_up(&self, err: &ClientError) -> bool {
        !self.falls_back(err) && (!self.retries() || reconnect::is_final(err))
    }

    /// Whether `err` is a broker refusing MQTT 5 and the client falls back to 3.1.1: an
    /// "unsupported protocol version" refusal, or the connection closed before any CONNACK.
    fn falls_back(&self, err: &ClientError) -> bool {
        if self.params.fallback_window.is_none()
            || self.reached_connack
            || !self.session.protocol_version().is_v5()
        {
            return false;
        }
        match err {
            ClientError::Connect(reason) => reason.code == ReasonCode::UnsupportedProtocolVersion,
            // A hang-up before CONNACK says "not MQTT 5" only while no broker has accepted
            // MQTT 5 on this client.
            ClientError::ConnectionLost(ConnectionError::TransportClosed) => !self.v5_accepted,
            ClientError::Io(err) => {
                !self.v5_accepted
                    && matches!(
                        err.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                    )
            }
            _ => false,
        }
    }

    /// Serves commands while waiting `delay` before a reconnect. Returns true if the client
    /// closed meanwhile.
    ///
    /// Publishes accepted here are queued; with a durable store they are recorded, and a
    /// sync off the executor makes them durable (`Publishing::stored` resolves) without a
    /// connection. While it runs no command is applied, as in `poll_serve`.
    async fn wait(&mut self, delay: Duration) -> bool {
        let mut sleep = Box::pin(self.runtime.sleep_until(self.runtime.now() + delay));
        let closed = poll_fn(|cx| {
            let polled = self.poll_wait(cx, &mut sleep);
            self.settle();
            polled
        })
        .await;
        // A sync still running holds records taken from the store; queued publishes recorded
        // after the last one are synced here (inline: the wait is over).
        self.syncing.finish(&mut self.session).await;
        self.session.sync_queued();
        while let Some(event) = self.session.poll_event() {
            self.dispatch(event);
        }
        self.settle();
        closed
    }

    /// One wake of [`wait`](Self::wait): `Ready(true)` if the client closed.
    fn poll_wait(&mut self, cx: &mut Context<'_>, sleep: &mut Pin<Box<R::Sleep>>) -> Poll<bool> {
        loop {
            match self.syncing.poll(cx, &mut self.session) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(true) => self.session.sync_queued(),
                Poll::Ready(false) => {}
            }
            while let Some(event) = self.session.poll_event() {
                self.dispatch(event);
            }
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
            if handles_gone || self.connect_cancelled(cx) {
                return Poll::Ready(true);
            }
            if self.syncing.start(&self.runtime, &mut self.session) {
                continue;
            }
            return sleep.as_mut().poll(cx).map(|()| false);
        }
    }

    async fn serve(&mut self, mut transport: Box<dyn Transport>) -> Ended {
        self.writing = Bytes::new();
        self.needs_flush = false;
        self.ack = AckDebt::default();
        self.read_armed = false;
        self.end = None;
        self.drain_timer = None;
        self.start_pacing();
        let ended = poll_fn(|cx| {
            let polled = self.poll_serve(cx, &mut transport);
            self.settle();
            polled
        })
        .await;
        self.syncing.finish(&mut self.session).await;
        self.intake
            .flush(&self.shared.inbox, &mut self.dropped_unreported);
        self.report_drops();
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

            // While the store syncs a batch's records the session takes nothing new; once it
            // is done the batch is taken out at once, before anything else records.
            match self.syncing.poll(cx, &mut self.session) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(true) => {
                    if self.writing.is_empty() {
                        self.writing = self.session.poll_transmit(now).unwrap_or_default();
                    }
                    // Publishes queued before CONNACK with nothing to send yet.
                    self.session.sync_queued();
                }
                Poll::Ready(false) => {}
            }

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
            if !self.session.is_connected() && self.connect_cancelled(cx) {
                // The caller of `connect` / `reconnect` gave up before CONNACK: abandon the
                // attempt, so that the next `connect` finds the client idle.
                debug!("connect cancelled by its caller");
                self.connect_waiter = None;
                self.end = Some(Ended::Closed);
                self.session.handle_transport_closed(now);
                progress = true;
            }

            let (reading, paced) = self.pace_reading(cx, now);
            progress |= paced;
            // Read on the first pass and whenever the transport signalled more since its last
            // pending read; otherwise that read is still registered and will wake the task.
            self.read_wake.task.register(cx.waker());
            let read_signalled = self.read_wake.ready.swap(false, Ordering::AcqRel);
            if reading && (!self.read_armed || read_signalled) {
                // The thread's read buffer; a fresh one in the (never expected) case that a
                // transport polls another driver on this thread from inside its read.
                progress |= READ_BUF.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut buf) => self.read_into(transport, now, &mut buf),
                    Err(_) => self.read_into(transport, now, &mut Vec::new()),
                });
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

            let lost = matches!(self.end, Some(Ended::Lost(_)));
            if lost && self.session.state() != ConnectionState::Connected {
                // The connection is over: bytes still unsent (a peer that stopped reading,
                // a link that is cut) must not hold up the loss report and the reconnect.
                // A final DISCONNECT the session queued gets one try below.
                self.writing = Bytes::new();
            }
            loop {
                if self.writing.is_empty() {
                    if self.syncing.start(&self.runtime, &mut self.session) {
                        progress = true;
                        break;
                    }
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
                        self.shared.stats.sent(n);
                        if n < self.writing.len() {
                            self.writing.advance(n);
                        } else {
                            // Written out: let the batch's buffer go now rather than hold it
                            // (a burst's, possibly large) until the next write.
                            self.writing = Bytes::new();
                        }
                        self.needs_flush = true;
                        self.ack.written();
                        progress = true;
                    }
                    Poll::Ready(Err(err)) => {
                        self.write_failed(now, err);
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            // A failed store sync in `poll_transmit` reports through events (the failed
            // publishes, the connection's end): dispatch them before the end is seen below.
            while let Some(event) = self.session.poll_event() {
                self.dispatch(event);
                progress = true;
            }
            if self.needs_flush && self.writing.is_empty() {
                match Pin::new(&mut **transport).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.needs_flush = false,
                    Poll::Ready(Err(err)) => self.write_failed(now, err),
                    Poll::Pending => {}
                }
            }

            if self.session.state() == ConnectionState::Disconnected {
                let lost = matches!(self.end, Some(Ended::Lost(_)) | None);
                let drained = self.writing.is_empty() && !self.needs_flush;
                // A local close (DISCONNECT) is written out, within a bound.
                let drain_expired = !lost && !drained && self.poll_drain_timer(cx);
                if lost || drained || drain_expired {
                    // A `disconnect` caller is answered by `shutdown`, once the session is
                    // parked, so that a `connect` right after it finds the client idle.
                    let ended =
                        self.end
                            .take()
                            .unwrap_or(Ended::Lost(ClientError::ConnectionLost(
                                ConnectionError::TransportClosed,
                            )));
                    self.report_drops();
                    self.shared.observe(&self.session);
                    return Poll::Ready(ended);
                }
            }
            if !progress {
                // The wake ends without a write: the acknowledgement of what it read is
                // pushed now or at the instant `AckDebt` names (the transport's flush does
                // it, below TLS and WebSocket).
                if let Some(at) = self.ack.due(now)
                    && self.writing.is_empty()
                {
                    if at <= now {
                        self.ack.pushed();
                        if let Poll::Ready(Err(err)) = Pin::new(&mut **transport).poll_flush(cx) {
                            self.write_failed(now, err);
                            continue;
                        }
                    } else if self.poll_sleep(cx, at) {
                        continue;
                    }
                }
                self.report_drops();
                self.shared.observe(&self.session);
                return Poll::Pending;
            }
        }
    }

    /// One read from the transport into `buf` (sized here on first use), handed to the
    /// session, which keeps only what it needs (an incomplete packet, received payloads).
    /// Returns whether anything happened.
    fn read_into(
        &mut self,
        transport: &mut Box<dyn Transport>,
        now: Instant,
        buf: &mut Vec<u8>,
    ) -> bool {
        if buf.len() < READ_BUF_SIZE {
            buf.resize(READ_BUF_SIZE, 0);
        }
        let mut cx = Context::from_waker(&self.read_waker);
        let read = Pin::new(&mut **transport).poll_read(&mut cx, buf);
        self.read_armed = read.is_pending();
        match read {
            Poll::Ready(Ok(0)) => {
                debug!("transport closed by the broker");
                self.session.handle_transport_closed(now);
                true
            }
            Poll::Ready(Ok(n)) => {
                self.shared.stats.received(n);
                self.session.handle_read(now, &buf[..n]);
                self.ack.read(now);
                true
            }
            Poll::Ready(Err(err)) => {
                debug!(%err, "transport read failed");
                self.end
                    .get_or_insert(Ended::Lost(transport::tls_io_error(err)));
                self.session.handle_transport_closed(now);
                true
            }
            Poll::Pending => false,
        }
    }

    /// Whether the caller of `connect` / `reconnect` dropped its future (registers for
    /// the notification otherwise).
    fn connect_cancelled(&mut self, cx: &mut Context<'_>) -> bool {
        self.connect_waiter
            .as_mut()
            .is_some_and(|waiter| waiter.poll_canceled(cx).is_ready())
    }

    /// Polls the bound on writing out a local close, arming it on first use.
    fn poll_drain_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let runtime = &self.runtime;
        let timer = self
            .drain_timer
            .get_or_insert_with(|| Box::pin(runtime.sleep_until(runtime.now() + CLOSE_TIMEOUT)));
        if timer.as_mut().poll(cx).is_ready() {
            debug!("DISCONNECT not written within the close timeout; closing anyway");
            return true;
        }
        false
    }

    /// Tells the application about QoS 0 messages the inbox dropped, once per batch.
    fn report_drops(&mut self) {
        if self.dropped_unreported > 0 {
            let count = std::mem::take(&mut self.dropped_unreported);
            warn!(
                count,
                "received QoS 0 messages dropped: the application is not keeping up"
            );
            self.shared
                .status(ConnectionEvent::MessagesDropped { count });
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
        if !self.session.is_connected() && command.waits_for_connection() {
            if !command.is_abandoned() {
                self.deferred.push(command);
            }
            return false;
        }
        match command {
            Command::Publish {
                publish,
                permit,
                stored,
            } => match (self.session.publish(now, publish), permit.slot().is_some()) {
                (Ok(token), true) => {
                    self.waiters.insert(token, Waiter::Publish(permit));
                    if let Some(stored) = stored {
                        self.stored_waiters.insert(token, stored);
                    }
                }
                (Ok(token), false) => {
                    // QoS 0 is stored nowhere: a `stored` waiter, if any, learns nothing more
                    // than the publish future did (accepted).
                    drop(stored);
                    self.qos0_permits.push_back((token, permit));
                }
                (Err(err), true) => {
                    let err = ClientError::from(err);
                    if let Some(stored) = stored {
                        let _ = stored.send(Err(err.clone()));
                    }
                    permit.complete(Err(err));
                }
                (Err(err), false) => {
                    // Checked against the last CONNACK at acceptance; what fails here (a
                    // newer CONNACK's limits) is reported, the caller having had its `Ok`.
                    drop(permit);
                    drop(stored);
                    self.shared.publish_refused(err.into());
                }
            },
            Command::Subscribe {
                filters,
                properties,
                reply,
            } => match self.session.subscribe(now, filters, properties) {
                Ok(token) => {
                    self.waiters.insert(token, Waiter::Subscribe(reply));
                }
                Err(err) => {
                    let _ = reply.send(Err(err.into()));
                }
            },
            Command::Unsubscribe {
                filters,
                properties,
                reply,
            } => {
                match self
                    .session
                    .unsubscribe_with_properties(now, filters, properties)
                {
                    Ok(token) => {
                        self.waiters.insert(token, Waiter::Unsubscribe(reply));
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err.into()));
                    }
                }
            }
            Command::Reauthenticate { reply, generation } => {
                self.start_reauth(now, reply, generation);
            }
            Command::Ping { reply } => match self.session.ping(now) {
                Ok(token) => {
                    self.waiters.insert(token, Waiter::Ping(reply));
                }
                Err(err) => {
                    let _ = reply.send(Err(err.into()));
                }
            },
            Command::Disconnect { packet, reply } => {
                self.end = Some(Ended::Closed);
                if self.session.disconnect(now, packet).is_err() {
                    // Not connected (e.g. between reconnect attempts): nothing to send.
                    let _ = reply.send(Ok(()));
                    return true;
                }
                self.disconnect_waiter = Some(reply);
            }
            Command::Reconnect { clean_start, reply } => {
                if self.session.is_connected() {
                    // amqtt: `reconnect()` on a live connection does nothing.
                    debug!("reconnect() while connected: nothing to do");
                    let connack = self.connack.clone().ok_or(ClientError::NotConnected);
                    let _ = reply.send(connack);
                    return false;
                }
                if let Some(clean_start) = clean_start {
                    Arc::make_mut(&mut self.params).options.clean_start = clean_start;
                }
                if let Some(previous) = self.connect_waiter.replace(reply) {
                    let _ = previous.send(Err(ClientError::Closed));
                }
                self.end = Some(Ended::Reconnect);
                if self.session.disconnect(now, Disconnect::default()).is_err() {
                    return true;
                }
            }
            Command::Ack(token) => {
                if let Err(err) = self.session.ack(now, token) {
                    debug!(%err, "acknowledgement not applied");
                }
            }
            Command::Cancel => {
                for command in self.deferred.drain(..) {
                    command.fail(ClientError::Closed);
                }
                for (_, waiter) in self.waiters.drain() {
                    waiter.fail(ClientError::Closed);
                }
                for (_, stored) in self.stored_waiters.drain() {
                    let _ = stored.send(Err(ClientError::Closed));
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
                if let Some((_, exchange)) = self.auth.as_mut()
                    && let Err(err) = exchange.on_success(properties.authentication_data.as_deref())
                {
                    self.auth_failed(err);
                    return;
                }
                self.schedule_refresh();
                info!(session_present, "connected");
                self.shared.stats.connected();
                self.reached_connack = true;
                // Publishes accepted from now on are checked against these limits.
                self.shared.acceptance.set(self.session.publish_limits());
                // The timer still armed for the CONNACK deadline would fire for nothing,
                // connect timeout after connecting: every idle client would wake once more.
                // The next poll arms the keep-alive deadline instead.
                self.sleep = None;
                self.v5_accepted |= self.session.protocol_version().is_v5();
                self.retry_connect = false;
                self.connack = Some(ConnAck {
                    session_present,
                    reason_code: ReasonCode::Success,
                    properties: (*properties).clone(),
                });
                // Calls that waited for the connection go out on it now.
                let now = self.runtime.now();
                for command in std::mem::take(&mut self.deferred) {
                    if !command.is_abandoned() {
                        self.apply(now, command);
                    }
                }
                self.shared
                    .status(ConnectionEvent::Connected { session_present });
                if let Some(waiter) = self.connect_waiter.take() {
                    let answered = waiter.send(Ok(ConnAck {
                        session_present,
                        reason_code: ReasonCode::Success,
                        properties: *properties,
                    }));
                    if answered.is_err() {
                        // The caller gave up just before CONNACK: the attempt is abandoned.
                        debug!("connect cancelled by its caller at CONNACK; disconnecting");
                        let _ = self
                            .session
                            .disconnect(self.runtime.now(), Disconnect::default());
                        self.end = Some(Ended::Closed);
                    }
                }
            }
            Event::Published {
                token,
                result,
                properties,
            } => self.published(token, result, properties.into_inner()),
            Event::Stored { token } => {
                if let Some(stored) = self.stored_waiters.remove(&token) {
                    let _ = stored.send(Ok(()));
                }
            }
            Event::Message(message) => {
                let message = ApplicationMessage::new(message.publish, message.ack);
                // A reply to a pending `request` goes to its caller, not to the inbox.
                if let Some(waiter) = self.shared.responses.waiter_for(&message) {
                    let ack = message.ack;
                    // A caller that gave up meanwhile drops the reply; it is acknowledged
                    // all the same.
                    let _ = waiter.send(message);
                    if let Some(token) = ack
                        && let Err(err) = self.session.ack(self.runtime.now(), token)
                    {
                        debug!(%err, "acknowledgement of a reply not applied");
                    }
                    return;
                }
                match self.intake.push(&self.runtime, &self.shared.inbox, message) {
                    Intaken::Kept => {}
                    Intaken::Dropped => self.dropped_unreported += 1,
                    Intaken::Refused(Some(token)) => {
                        if let Err(err) = self.session.refuse(self.runtime.now(), token) {
                            debug!(%err, "refusing a message failed");
                        }
                    }
                    Intaken::Refused(None) => {}
                }
            }
            Event::Subscribed {
                token,
                reason_codes,
                properties,
            } => {
                if let Some(Waiter::Subscribe(reply)) = self.waiters.remove(&token) {
                    let _ = reply.send(Ok(Acknowledgement::new(reason_codes, properties)));
                }
            }
            Event::Resubscribed { reason_codes } => {
                debug!(?reason_codes, "re-subscribed after session loss");
            }
            Event::Unsubscribed {
                token,
                reason_codes,
                properties,
            } => {
                if let Some(Waiter::Unsubscribe(reply)) = self.waiters.remove(&token) {
                    let _ = reply.send(Ok(Acknowledgement::new(reason_codes, properties)));
                }
            }
            Event::Pong { token } => {
                if let Some(Waiter::Ping(reply)) = self.waiters.remove(&token) {
                    let _ = reply.send(Ok(()));
                }
            }
            Event::Auth {
                reason_code,
                properties,
            } => {
                debug!(%reason_code, "AUTH from the broker");
                if reason_code == ReasonCode::Success {
                    self.reauth_succeeded(properties.authentication_data.as_deref());
                    return;
                }
                let Some((method, exchange)) = self.auth.as_mut() else {
                    return;
                };
                if reason_code != ReasonCode::ContinueAuthentication {
                    return;
                }
                let answer = exchange.on_challenge(properties.authentication_data.as_deref());
                match answer {
                    Ok(data) => {
                        let reply = AuthProperties {
                            authentication_method: Some(method.clone()),
                            authentication_data: data,
                            ..AuthProperties::default()
                        };
                        let now = self.runtime.now();
                        if let Err(err) =
                            self.session
                                .auth(now, ReasonCode::ContinueAuthentication, reply)
                        {
                            debug!(%err, "AUTH reply not sent");
                        }
                    }
                    Err(err) => self.auth_failed(err),
                }
            }
            Event::Disconnected { reason } => {
                info!(%reason, "disconnected");
                self.reauth_ended(&ClientError::ConnectionLost(reason.clone()));
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
                        if !self.gives_up(&err) {
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

    /// A publish completed: its caller learns the outcome; one recovered from the durable
    /// store (its caller died with an earlier process) is reported as a connection event.
    fn published(
        &mut self,
        token: Token,
        result: Result<ReasonCode, sansmqtt_session::PublishError>,
        properties: AckProperties,
    ) {
        if let Err(sansmqtt_session::PublishError::Expired) = result {
            self.shared
                .status(ConnectionEvent::PublishesExpired { count: 1 });
        }
        let refused = matches!(result, Err(sansmqtt_session::PublishError::Refused(_)));
        let result = result.map_err(ClientError::from);
        if !self.stored_waiters.is_empty()
            && let Some(stored) = self.stored_waiters.remove(&token)
        {
            // Completed (or failed) before a `Stored` event: QoS 0, or a store failure.
            let _ = stored.send(result.as_ref().map(|_| ()).map_err(Clone::clone));
        }
        if let Some(Waiter::Publish(permit)) = self.waiters.remove(&token) {
            // Room and outcome together, when this wake ends.
            let outcome = result.map(|code| PublishAck::new(code, properties));
            self.settling.push((permit, Some(outcome)));
            return;
        }
        // The usual case first: the oldest QoS 0 publish, handed to the transport (the
        // session completes them in order), with no lock taken for `recovered`.
        let oldest_qos0 = self
            .qos0_permits
            .front()
            .is_some_and(|(front, _)| *front == token);
        let recovered = if oldest_qos0 {
            None
        } else {
            lock(&self.shared.recovered).remove(&token)
        };
        if let Some(recovered) = recovered {
            self.shared.status(recovered.completed(result));
            return;
        }
        // A QoS 0 publish: handed to the transport (or failed). Tokens grow, so an earlier
        // entry still here could only be one the session dropped without an event: returning
        // its room too keeps the budget exact.
        match result {
            Err(err) if refused => self.shared.publish_refused(err),
            Err(err) => debug!(%err, "QoS 0 message not sent"),
            Ok(_) => {}
        }
        while let Some((front, _)) = self.qos0_permits.front()
            && *front <= token
        {
            if let Some((_, permit)) = self.qos0_permits.pop_front() {
                self.settling.push((permit, None));
            }
        }
    }

    /// Settles the publishes completed since the last call: their budget comes back and their
    /// callers are woken, under one lock for the whole batch. Called whenever the driver is
    /// about to yield (or stop), so no outcome waits for a later wake.
    fn settle(&mut self) {
        self.shared
            .budget
            .settle(&mut self.settling, &mut self.wakers);
    }

    /// The client's side of enhanced authentication failed: the connection ends ("not
    /// authorized"), with an error that is final.
    fn auth_failed(&mut self, err: AuthError) {
        warn!(%err, "enhanced authentication failed");
        self.reauth_ended(&ClientError::Auth(err.clone()));
        let disconnect = Disconnect {
            reason_code: ReasonCode::NotAuthorized,
            ..Disconnect::default()
        };
        if self
            .session
            .disconnect(self.runtime.now(), disconnect)
            .is_err()
        {
            self.session.handle_transport_closed(self.runtime.now());
        }
        self.end = Some(Ended::Lost(ClientError::Auth(err)));
    }

    /// The driver stops: everyone still waiting learns why, and the session is parked for a
    /// later `connect` / `reconnect`.
    fn shutdown(mut self, err: ClientError) {
        self.settle();
        for (_, waiter) in self.waiters.drain() {
            waiter.fail(err.clone());
        }
        for (_, stored) in self.stored_waiters.drain() {
            let _ = stored.send(Err(err.clone()));
        }
        for command in self.deferred.drain(..) {
            command.fail(err.clone());
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
        let now = self.runtime.now();
        for command in self.inbox.drain(..).chain(leftovers) {
            match command {
                // The application took a message: its acknowledgement goes to the parked
                // session (QoS 2 state must be recorded; QoS 1 from this connection is void).
                Command::Ack(token) => self.shared.ack(|| now, token),
                other => other.refuse(),
            }
        }
        // `deliver_message` callers waiting for a message that can no longer come re-check.
        self.shared.inbox.wake_all();
        self.shared.status(ConnectionEvent::Closed);
    }
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
    fn a_lone_read_is_acknowledged_at_once_and_a_stream_once_it_pauses() {
        #[allow(clippy::disallowed_methods)] // a fixed origin; time only moves by additions
        let t0 = Instant::now();
        let mut ack = AckDebt::default();
        assert_eq!(ack.due(t0), None, "nothing read, nothing owed");

        ack.read(t0);
        assert_eq!(ack.due(t0), Some(t0), "the first read: at once");
        ack.pushed();
        assert_eq!(ack.due(t0), None, "pushed: nothing owed");

        // Reads in quick succession: pushed once they pause for `ACK_QUIET`.
        let t1 = t0 + ACK_QUIET / 5;
        ack.read(t1);
        assert_eq!(
            ack.due(t1),
            Some(t1 + ACK_QUIET),
            "a stream: when it pauses"
        );
        let t2 = t1 + ACK_QUIET / 5;
        ack.read(t2);
        assert_eq!(
            ack.due(t2),
            Some(t2 + ACK_QUIET),
            "the pause counts from the last read"
        );
        let t3 = t2 + ACK_QUIET * 2;
        assert_eq!(ack.due(t3), Some(t3), "paused: now");
        ack.pushed();

        // What a push released arrives right after it, but after a quiet spell of reads.
        let t4 = t3 + Duration::from_micros(20);
        ack.read(t4);
        assert_eq!(
            ack.due(t4),
            Some(t4),
            "a lone read after the pause: at once"
        );
        ack.written();
        assert_eq!(ack.due(t4), None, "a write carried it");
    }
}
