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
//!
//! One file per concern, each an `impl Driver` of its own: `lifecycle` (connect, fallback,
//! the reconnect plan and the waits between attempts), `command` (what the handles ask),
//! `dispatch` (what the session says), `io` (the serve loop: read, write, the TCP
//! acknowledgement push), `pacing` (the read pauses of the inbox's bounds), `declared`
//! (commands given before the first connect) and `reauth` (MQTT 5 re-authentication). This
//! file keeps the state they share and the end of the task.

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

mod command;
pub(crate) mod declared;
mod dispatch;
mod io;
mod lifecycle;
mod pacing;
mod reauth;

use command::Waiter;
pub(crate) use command::{Command, Reply};
use io::{AckDebt, ReadWake};

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
