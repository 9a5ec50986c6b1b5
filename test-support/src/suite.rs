//! The client integration suite, written once and run by every runtime adapter.
//!
//! Each test is a `pub async fn NAME<R: Runtime + Default>()`: generic over the runtime, it
//! creates clients with `MqttClient::<R>::new(..)`, sleeps with `R::default().sleep_until(..)`
//! and never names a runtime. An adapter instantiates the whole suite as plain `#[test]`s with
//! [`client_suite!`](crate::client_suite) and a `block_on` of its own:
//!
//! ```text
//! // mqtt-tokio/tests/broker.rs
//! fn block_on<F: std::future::Future>(f: F) -> F::Output {
//!     tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
//!         .expect("building a runtime").block_on(f)
//! }
//! mqtt_test_support::client_suite!(sansmqtt_tokio::Tokio, block_on);
//! ```
//!
//! (Shown as text: this crate cannot depend on the adapters that depend on it.)
//!
//! Every test starts its own private broker(s) on free loopback ports, so tests run in
//! parallel. Every wait is bounded (`deliver_message().timeout(..)` or [`with_timeout`]): a bug
//! fails the test with a message instead of hanging it. Scripted servers (the will proxy, the
//! hostile servers, the fake WebSocket server) use blocking `std::net` sockets on their own
//! threads, which keeps the suite free of any runtime's APIs.

use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use futures_util::future::{self, Either};
use futures_util::{Stream, StreamExt};
use sansmqtt_client::proto::{DecodeError, ProtocolVersion, QoS, ReasonCode};
use sansmqtt_client::session::{ConnectionError, ProtocolError};
use sansmqtt_client::{
    ApplicationMessage, ClientConfig, ClientError, ConfigError, ConnectionEvent, MqttClient,
    Runtime, TlsError, UriError, WillConfig,
};

use crate::{Certs, Mosquitto, Nats, free_port};

mod amqtt;
mod declared;
mod enhanced_auth;
mod events;
mod failover;
mod flow;
#[cfg(feature = "quic")]
mod quic;
mod stats;
pub use amqtt::*;
pub use declared::*;
pub use enhanced_auth::*;
pub use events::*;
pub use failover::*;
pub use flow::*;
#[cfg(feature = "quic")]
pub use quic::*;
pub use stats::*;

/// Instantiates every test of [`suite`](crate::suite) as a plain `#[test]` for one runtime:
/// `client_suite!(RuntimeType, block_on_function)`. `block_on` runs a future to completion
/// on a fresh runtime (one per test).
#[macro_export]
macro_rules! client_suite {
    ($runtime:ty, $block_on:path) => {
        $crate::client_suite!(@tests $runtime, $block_on, [
            qos0_round_trip,
            qos1_round_trip,
            qos2_round_trip,
            client_receives_its_own_publish_at_every_qos,
            concurrent_publishes_at_every_qos_all_complete,
            joined_publishes_are_sent_in_the_order_they_are_polled,
            a_publish_never_polled_sends_nothing,
            the_driver_reads_only_when_the_transport_signals_data,
            a_broker_with_nagle_on_does_not_hold_each_puback_for_the_next_publish,
            a_burst_against_a_nagle_broker_does_not_wait_for_the_delayed_ack_timer,
            sequential_qos0_publishes_complete_on_acceptance_and_all_arrive,
            retained_message_is_delivered_to_a_later_subscriber_with_retain_flag,
            will_is_published_when_the_connection_dies_without_disconnect,
            will_is_published_when_the_client_goes_silent_past_keep_alive,
            will_is_not_published_after_a_clean_disconnect,
            credentials_from_config_are_accepted,
            credentials_from_uri_are_accepted,
            wrong_password_is_refused_with_not_authorized,
            refused_connection_is_final_even_with_auto_reconnect,
            tls_with_ca_file,
            tls_with_ca_data,
            tls_with_ca_path,
            mutual_tls_with_client_certificate,
            mutual_tls_without_client_certificate_is_rejected,
            tls_unknown_ca_is_rejected,
            tls_wrong_host_is_rejected,
            tls_wrong_host_is_accepted_without_hostname_check,
            tls_expired_certificate_is_rejected,
            tls_without_certificate_verification_accepts_any_certificate,
            tls_with_a_ready_rustls_config_and_in_memory_client_certificate,
            tls_config_in_client_config_replaces_the_ca_options,
            websocket_qos0_and_qos1_round_trip_with_extra_header,
            websocket_handshake_sends_path_subprotocol_and_extra_headers,
            websocket_over_tls_round_trip,
            persistent_session_receives_messages_published_while_offline,
            persistent_session_resumes_in_a_new_client_with_the_same_id,
            clean_session_discards_the_offline_queue,
            broker_kill_and_restart_loses_no_qos1_message,
            keep_alive_detects_a_paused_broker,
            deliver_message_times_out_on_an_idle_subscription,
            ping_succeeds,
            unsubscribe_stops_delivery,
            cancel_tasks_fails_a_pending_deliver_message_with_closed,
            reconnect_after_disconnect_works,
            reconnect_right_after_disconnect_works,
            connect_right_after_disconnect_works,
            messages_stream_yields_messages,
            invalid_uris_are_rejected_naming_the_problem,
            connect_to_a_closed_port_fails_fast_with_io_error,
            out_of_range_options_fail_connect_naming_the_option,
            deliver_message_without_a_connection_fails_but_keeps_received_messages,
            mqtt5_qos1_and_qos2_round_trip,
            hostile_malformed_remaining_length_fails_connect_with_protocol_error,
            hostile_connack_with_reserved_flags_fails_connect_with_protocol_error,
            hostile_connack_with_wrong_length_fails_connect_with_protocol_error,
            hostile_puback_for_unknown_packet_id_closes_the_connection,
            hostile_oversize_packet_is_rejected_from_its_header,
            hostile_silent_server_times_out_connect,
            hostile_silent_tls_server_times_out_connect,
            mqtt5_refusal_keeps_reason_string_and_user_properties,
            // flow.rs
            publish_takes_every_payload_and_topic_form,
            payload_str_refuses_invalid_utf8,
            payload_json_reads_a_typed_value,
            messages_stream_ends_after_disconnect,
            messages_stream_ends_when_reconnecting_gives_up,
            messages_stream_survives_a_broker_restart,
            drain_completes_every_accepted_publish_before_disconnect,
            drain_timeout_reports_the_unfinished_publishes,
            publish_over_the_maximum_packet_size_fails_the_call,
            publish_forbidden_by_the_connack_fails_the_call,
            publish_refused_after_acceptance_is_counted_and_reported,
            // declared.rs
            subscribe_and_publish_before_connect_arrive_on_the_first_connection,
            disconnect_before_connect_fails_what_was_declared_with_closed,
            file_store_publishes_before_connect_are_stored_once_connect_opens_the_store,
            file_store_queued_publish_expiry_counts_from_acceptance_across_processes,
            // failover.rs
            refusing_nodes_get_bounded_attempts_with_backoff_per_round,
            connections_dropped_right_after_connack_back_off,
            server_reference_in_a_connack_refusal_is_followed_only_when_allowed,
            server_moved_disconnect_fails_over_to_the_reference,
            connect_none_walks_the_configured_uris,
            failover_to_a_broker_without_the_session_resubscribes_and_resends,
            // events.rs
            a_listener_that_never_polls_stays_bounded_and_learns_what_it_missed,
            // stats.rs
            stats_match_the_traffic,
            // amqtt.rs
            calls_during_a_reconnect_wait_for_the_connection,
            calls_during_a_reconnect_fail_when_reconnecting_gives_up,
            reconnect_on_a_live_connection_does_nothing,
            reconnect_and_connect_retry_as_many_times_as_amqtt,
            rejected_certificate_is_final_even_with_retries_forever,
            mqtt5_against_a_311_only_broker_refuses_or_falls_back,
            mqtt5_connect_closed_without_connack_falls_back_to_311,
            mqtt5_fallback_is_not_taken_after_mqtt5_was_accepted,
            puback_for_a_qos2_publish_is_reported_as_an_unexpected_ack,
            topic_aliases_are_bounded_by_the_broker_and_reset_per_connection,
            announced_topic_alias_maximum_is_zero_unless_configured,
            mqtt5_subscription_options_identifiers_and_acks,
            mqtt5_publish_acknowledgement_carries_the_final_ack,
            mqtt5_will_properties_delay_and_content_type,
            mqtt5_disconnect_with_reason_code_publishes_the_will,
            mqtt5_connect_properties_are_sent,
            mqtt5_request_gets_its_own_reply,
            mqtt5_request_ignores_its_own_request_coming_back,
            mqtt5_enhanced_authentication_challenge_response,
        ]);
    };
    (@tests $runtime:ty, $block_on:path, [$($name:ident),* $(,)?]) => {
        $(
            #[test]
            fn $name() {
                $block_on($crate::suite::$name::<$runtime>())
            }
        )*
    };
}

// ---- helpers ---------------------------------------------------------------------------------

/// Generous bound for things that take milliseconds when they work.
pub(crate) const BOUND: Duration = Duration::from_secs(5);

/// Sleeps on the runtime's timer.
pub async fn sleep<R: Runtime + Default>(duration: Duration) {
    R::default().sleep_until(Instant::now() + duration).await;
}

/// Runs `future` for at most `bound`; panics naming `what` if it takes longer.
pub async fn with_timeout<R: Runtime + Default, F: Future>(
    bound: Duration,
    what: &str,
    future: F,
) -> F::Output {
    let future = std::pin::pin!(future);
    let timer = std::pin::pin!(R::default().sleep_until(Instant::now() + bound));
    match future::select(future, timer).await {
        Either::Left((output, _)) => output,
        Either::Right(((), _)) => panic!("timed out after {bound:?} waiting for {what}"),
    }
}

/// A configuration that fails instead of retrying, so errors surface at once.
pub(crate) fn no_retry() -> ClientConfig {
    ClientConfig::default()
        .auto_reconnect(false)
        .connect_timeout(BOUND)
}

/// A client connected to `uri`.
pub(crate) async fn connected<R: Runtime + Default>(
    uri: &str,
    config: ClientConfig,
) -> MqttClient<R> {
    connected_as(None, uri, config).await
}

/// A client with `client_id` connected to `uri`.
pub(crate) async fn connected_as<R: Runtime + Default>(
    client_id: Option<&str>,
    uri: &str,
    config: ClientConfig,
) -> MqttClient<R> {
    let client = MqttClient::<R>::new(client_id, config);
    let connack = with_timeout::<R, _>(BOUND, "CONNACK", client.connect(uri).into_future()).await;
    if let Err(err) = connack {
        panic!("connecting to {uri} failed: {err:?}");
    }
    client
}

/// Connects a fresh client expecting failure; returns the error and how long it took.
async fn connect_err<R: Runtime + Default>(
    uri: &str,
    config: ClientConfig,
) -> (ClientError, Duration) {
    let client = MqttClient::<R>::new(None, config);
    let start = Instant::now();
    let result = with_timeout::<R, _>(
        Duration::from_secs(10),
        "a failing connect",
        client.connect(uri).into_future(),
    )
    .await;
    match result {
        Ok(connack) => panic!("connecting to {uri} succeeded ({connack:?}), expected an error"),
        Err(err) => (err, start.elapsed()),
    }
}

/// The next message, within [`BOUND`].
pub(crate) async fn next_message<R: Runtime + Default>(
    client: &MqttClient<R>,
    what: &str,
) -> ApplicationMessage {
    match client.deliver_message().timeout(BOUND).await {
        Ok(message) => message,
        Err(err) => panic!("waiting for {what}: {err:?}"),
    }
}

/// Asserts that no message arrives within `quiet`.
pub(crate) async fn assert_no_message<R: Runtime + Default>(
    client: &MqttClient<R>,
    quiet: Duration,
    why: &str,
) {
    match client.deliver_message().timeout(quiet).await {
        Err(ClientError::Timeout) => {}
        Ok(message) => panic!("{why}: unexpected message {message:?}"),
        Err(err) => panic!("{why}: deliver_message failed with {err:?} instead of Timeout"),
    }
}

/// Subscribes and checks the broker granted what was asked.
pub(crate) async fn subscribe<R: Runtime + Default>(
    client: &MqttClient<R>,
    filter: &str,
    qos: QoS,
) {
    let codes = with_timeout::<R, _>(BOUND, "SUBACK", client.subscribe([(filter, qos)])).await;
    match codes {
        Ok(codes) => assert_eq!(
            codes,
            [ReasonCode::granted(qos)],
            "SUBACK codes for {filter} at {qos:?}"
        ),
        Err(err) => panic!("subscribing to {filter} failed: {err:?}"),
    }
}

/// Publishes and waits for the QoS flow to complete.
pub(crate) async fn publish<R: Runtime + Default>(
    client: &MqttClient<R>,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    retain: bool,
) {
    let result = client
        .publish(topic.to_owned(), payload.to_vec())
        .qos(qos)
        .retain(retain)
        .ack_timeout(BOUND)
        .await;
    match result {
        Ok(code) => assert!(code.is_success(), "publish on {topic}: {code:?}"),
        Err(err) => panic!("publish on {topic} at {qos:?} failed: {err:?}"),
    }
}

fn assert_message(
    message: &ApplicationMessage,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    retain: bool,
) {
    assert_eq!(message.topic(), topic, "topic of {message:?}");
    assert_eq!(&message.payload()[..], payload, "payload of {message:?}");
    assert_eq!(message.qos(), qos, "QoS of {message:?}");
    assert_eq!(message.retain(), retain, "retain flag of {message:?}");
    assert_eq!(
        message.packet_id().is_some(),
        qos != QoS::AtMostOnce,
        "packet id of {message:?}"
    );
}

/// Waits (within `bound`) for a connection event matching `wanted`; returns it and every event
/// seen before it.
pub(crate) async fn wait_for_event<R, S>(
    events: &mut S,
    bound: Duration,
    what: &str,
    wanted: impl Fn(&ConnectionEvent) -> bool,
) -> (ConnectionEvent, Vec<ConnectionEvent>)
where
    R: Runtime + Default,
    S: Stream<Item = ConnectionEvent> + Unpin,
{
    let deadline = Instant::now() + bound;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timer = R::default().sleep_until(Instant::now() + left);
        match future::select(events.next(), std::pin::pin!(timer)).await {
            Either::Left((Some(event), _)) => {
                if wanted(&event) {
                    return (event, seen);
                }
                seen.push(event);
            }
            Either::Left((None, _)) => {
                panic!("connection events ended while waiting for {what}; seen: {seen:?}")
            }
            Either::Right(_) => {
                panic!("no {what} within {bound:?}; connection events seen: {seen:?}")
            }
        }
    }
}

/// Waits for `Closed` and asserts no reconnect was attempted before it: `what` failed for
/// good.
pub(crate) async fn assert_closed_without_retry<R, S>(events: &mut S, what: &str)
where
    R: Runtime + Default,
    S: Stream<Item = ConnectionEvent> + Unpin,
{
    let (_, seen) = wait_for_event::<R, _>(events, BOUND, "Closed", |event| {
        matches!(event, ConnectionEvent::Closed)
    })
    .await;
    assert!(
        !seen
            .iter()
            .any(|event| matches!(event, ConnectionEvent::Reconnecting { .. })),
        "{what} was retried: {seen:?}"
    );
}

/// Waits for a helper thread without blocking the runtime (the client's driver may need
/// this very thread to close the connection the helper is watching), then joins it.
async fn join_thread<R: Runtime + Default, T>(handle: JoinHandle<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !handle.is_finished() {
        assert!(Instant::now() < deadline, "a helper thread did not finish");
        sleep::<R>(Duration::from_millis(5)).await;
    }
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn all_qos() -> [QoS; 3] {
    [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
}

// ---- 1. QoS 0 / 1 / 2 -----------------------------------------------------------------------

async fn round_trip<R: Runtime + Default>(qos: QoS) {
    let broker = Mosquitto::start();
    let subscriber = connected::<R>(&broker.uri(), no_retry()).await;
    let publisher = connected::<R>(&broker.uri(), no_retry()).await;
    let topic = format!("suite/qos{}", qos as u8);
    subscribe(&subscriber, &topic, qos).await;
    let payload = format!("payload at {qos:?}").into_bytes();
    publish(&publisher, &topic, &payload, qos, false).await;
    let message = next_message(&subscriber, "the published message").await;
    assert_message(&message, &topic, &payload, qos, false);
    assert!(!message.dup(), "first delivery flagged DUP: {message:?}");
    assert_no_message(&subscriber, Duration::from_millis(200), "delivered once").await;
    for client in [&subscriber, &publisher] {
        with_timeout::<R, _>(BOUND, "DISCONNECT", client.disconnect())
            .await
            .expect("disconnect");
    }
}

/// QoS 0 publish to a QoS 0 subscriber: topic, payload, QoS and retain flag arrive intact.
pub async fn qos0_round_trip<R: Runtime + Default>() {
    round_trip::<R>(QoS::AtMostOnce).await;
}

/// QoS 1 publish to a QoS 1 subscriber.
pub async fn qos1_round_trip<R: Runtime + Default>() {
    round_trip::<R>(QoS::AtLeastOnce).await;
}

/// QoS 2 publish to a QoS 2 subscriber, delivered exactly once.
pub async fn qos2_round_trip<R: Runtime + Default>() {
    round_trip::<R>(QoS::ExactlyOnce).await;
}

/// A client subscribed to its own topic receives what it publishes, at every QoS.
pub async fn client_receives_its_own_publish_at_every_qos<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&client, "own/#", QoS::ExactlyOnce).await;
    for qos in all_qos() {
        let topic = format!("own/{}", qos as u8);
        let payload = format!("to myself at {qos:?}").into_bytes();
        publish(&client, &topic, &payload, qos, false).await;
        let message = next_message(&client, "my own publish").await;
        assert_message(&message, &topic, &payload, qos, false);
    }
}

// ---- 2. pipelined publishes -----------------------------------------------------------------

/// Three publishes (QoS 0, 1, 2) awaited together all complete, and all three arrive.
pub async fn concurrent_publishes_at_every_qos_all_complete<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let subscriber = connected::<R>(&broker.uri(), no_retry()).await;
    let publisher = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&subscriber, "a/b", QoS::ExactlyOnce).await;
    let q0 = publisher
        .publish("a/b", &b"TEST MESSAGE WITH QOS_0"[..])
        .qos(QoS::AtMostOnce)
        .into_future();
    let q1 = publisher
        .publish("a/b", &b"TEST MESSAGE WITH QOS_1"[..])
        .qos(QoS::AtLeastOnce)
        .into_future();
    let q2 = publisher
        .publish("a/b", &b"TEST MESSAGE WITH QOS_2"[..])
        .qos(QoS::ExactlyOnce)
        .into_future();
    let (r0, r1, r2) = with_timeout::<R, _>(BOUND, "three publishes", async {
        futures_util::join!(q0, q1, q2)
    })
    .await;
    for (qos, result) in [(0, r0), (1, r1), (2, r2)] {
        match result {
            Ok(code) => assert!(code.is_success(), "QoS {qos} publish: {code:?}"),
            Err(err) => panic!("QoS {qos} publish failed: {err:?}"),
        }
    }
    let mut received = BTreeMap::new();
    for _ in 0..3 {
        let message = next_message(&subscriber, "one of three publishes").await;
        received.insert(message.qos() as u8, message.payload().clone());
    }
    for qos in 0..3u8 {
        let expected = format!("TEST MESSAGE WITH QOS_{qos}");
        assert_eq!(
            received.get(&qos).map(|p| &p[..]),
            Some(expected.as_bytes()),
            "message at QoS {qos}; received {received:?}"
        );
    }
}

// ---- 3. retained ----------------------------------------------------------------------------

/// Publishes are futures that queue their message on the first poll: joined together they
/// reach the broker in the order `join` polls them, which is the order they are listed.
pub async fn joined_publishes_are_sent_in_the_order_they_are_polled<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let subscriber = connected::<R>(&broker.uri(), no_retry()).await;
    let publisher = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&subscriber, "order", QoS::AtLeastOnce).await;
    let publishes: Vec<_> = (0..20)
        .map(|i| {
            publisher
                .publish("order", format!("{i}"))
                .qos(QoS::AtLeastOnce)
        })
        .collect();
    let results = with_timeout::<R, _>(BOUND, "20 joined publishes", async {
        future::join_all(publishes).await
    })
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for i in 0..20 {
        let message = next_message(&subscriber, "a joined publish").await;
        assert_eq!(
            message.payload().as_ref(),
            format!("{i}").as_bytes(),
            "message {i} out of order"
        );
    }
}

/// Nothing happens until a builder is polled: a publish created and dropped sends nothing.
pub async fn a_publish_never_polled_sends_nothing<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let subscriber = connected::<R>(&broker.uri(), no_retry()).await;
    let publisher = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&subscriber, "lazy", QoS::AtLeastOnce).await;
    let never = publisher
        .publish("lazy", "never sent")
        .qos(QoS::AtLeastOnce);
    drop(never);
    publish(&publisher, "lazy", b"sent", QoS::AtLeastOnce, false).await;
    let message = next_message(&subscriber, "the polled publish").await;
    assert_eq!(message.payload().as_ref(), b"sent");
    assert_no_message(
        &subscriber,
        Duration::from_millis(300),
        "after the polled publish",
    )
    .await;
}

/// Reads of the connection's transport counted by outcome, for
/// [`the_driver_reads_only_when_the_transport_signals_data`], and acknowledgements pushed,
/// for [`a_broker_with_nagle_on_does_not_hold_each_puback_for_the_next_publish`]. One set of
/// counters per test binary: the two tests may run at once, and each one's bounds hold with
/// the other's counts mixed in (pushes are bounded from below only; the other test's reads
/// come one pending per successful one, inside the read test's ratio).
static READS_READY: AtomicU64 = AtomicU64::new(0);
static READS_PENDING: AtomicU64 = AtomicU64::new(0);
static ACK_PUSHES: AtomicU64 = AtomicU64::new(0);

/// The runtime `R` with the outcome of every `poll_read` on its TCP streams counted, and
/// every [`Runtime::push_ack`].
#[derive(Debug, Clone, Copy, Default)]
struct CountingIo<R>(R);

/// A TCP stream whose reads are counted in [`READS_READY`] / [`READS_PENDING`].
struct CountedTcp<T>(T);

impl<T: futures_util::AsyncRead + Unpin> futures_util::AsyncRead for CountedTcp<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let read = Pin::new(&mut self.0).poll_read(cx, buf);
        let counter = if read.is_pending() {
            &READS_PENDING
        } else {
            &READS_READY
        };
        counter.fetch_add(1, Ordering::Relaxed);
        read
    }
}

impl<T: futures_util::AsyncWrite + Unpin> futures_util::AsyncWrite for CountedTcp<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

impl<R: Runtime + Default> Runtime for CountingIo<R> {
    type Tcp = CountedTcp<R::Tcp>;
    type Sleep = R::Sleep;

    fn connect_tcp(
        &self,
        host: String,
        port: u16,
    ) -> impl Future<Output = std::io::Result<Self::Tcp>> + Send {
        let connecting = self.0.connect_tcp(host, port);
        async move { connecting.await.map(CountedTcp) }
    }

    fn set_nodelay(tcp: &Self::Tcp) -> std::io::Result<()> {
        R::set_nodelay(&tcp.0)
    }

    fn push_ack(tcp: &Self::Tcp) -> std::io::Result<()> {
        ACK_PUSHES.fetch_add(1, Ordering::Relaxed);
        R::push_ack(&tcp.0)
    }

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
        self.0.sleep_until(deadline)
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.0.spawn(future);
    }

    fn spawn_blocking<T, F>(&self, work: F) -> impl Future<Output = T> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.0.spawn_blocking(work)
    }
}

/// The driver reads its transport when the transport signalled data (and once at the start),
/// not on every wake: a wake for a publish or an acknowledgement of the application leaves the
/// pending read registered. On async-io a needless read is a `recv` failing with `EAGAIN`
/// plus an `epoll_ctl`. Sequential QoS 1 publishes, each answered by one PUBACK: before this,
/// every publish cost three pending reads (two in the wake that wrote it, one after its
/// PUBACK) for its one successful read.
pub async fn the_driver_reads_only_when_the_transport_signals_data<R: Runtime + Default>() {
    const PUBLISHES: u64 = 200;
    let broker = Mosquitto::start();
    let client = connected::<CountingIo<R>>(&broker.uri(), no_retry()).await;
    let ready_before = READS_READY.load(Ordering::Relaxed);
    let pending_before = READS_PENDING.load(Ordering::Relaxed);
    for i in 0..PUBLISHES {
        publish(
            &client,
            "reads/q1",
            i.to_string().as_bytes(),
            QoS::AtLeastOnce,
            false,
        )
        .await;
    }
    let ready = READS_READY.load(Ordering::Relaxed) - ready_before;
    let pending = READS_PENDING.load(Ordering::Relaxed) - pending_before;
    // Each PUBACK wake: one read that returns it, one that finds nothing more (and, rarely, a
    // wake for data a read had already taken).
    assert!(ready >= PUBLISHES / 2, "only {ready} successful reads");
    assert!(
        pending <= ready + ready / 2 + 10,
        "{pending} pending reads for {ready} successful ones over {PUBLISHES} publishes"
    );
}

/// mosquitto's stock `set_tcp_nodelay false` holds a small packet while its previous one is
/// unacknowledged, and the kernel delays a client's TCP acknowledgement to ride on its next
/// segment: once two PUBACKs have gone out back to back, each PUBACK waits for the client's
/// next PUBLISH to acknowledge the one before, so a publisher at a steady 1,000 msg/s saw every
/// completion take a millisecond (the benchmark's latency mode; with the push, 0.12 ms). The
/// driver pushes the acknowledgement (`Runtime::push_ack`, `TCP_QUICKACK` on Linux) when a
/// wake ends without a write: once per PUBACK for paced publishes.
pub async fn a_broker_with_nagle_on_does_not_hold_each_puback_for_the_next_publish<
    R: Runtime + Default,
>() {
    const SEQUENTIAL: u64 = 50;
    let broker = Mosquitto::start();
    let client = connected::<CountingIo<R>>(&broker.uri(), no_retry()).await;
    let before = ACK_PUSHES.load(Ordering::Relaxed);
    for i in 0..SEQUENTIAL {
        publish(
            &client,
            "push/q1",
            i.to_string().as_bytes(),
            QoS::AtLeastOnce,
            false,
        )
        .await;
        // A pause, so that the next PUBLISH cannot be the segment carrying the
        // acknowledgement (on a multi-threaded executor it could be written in the same wake).
        sleep::<CountingIo<R>>(Duration::from_millis(2)).await;
    }
    let sequential = ACK_PUSHES.load(Ordering::Relaxed) - before;
    assert!(
        sequential >= SEQUENTIAL - 2,
        "{sequential} acknowledgements pushed for {SEQUENTIAL} sequential publishes"
    );
}

/// The other half of the Nagle interaction (see the test above): a burst of publishes makes
/// the broker send the first PUBACK and hold the rest until it is acknowledged, while the
/// driver still has publishes in flight. Without a push the rest waited for the kernel's
/// delayed-ACK timer: a burst of 10 took 41.5-42.1 ms in every round, against 0.2-1.2 ms
/// with it. The bound sits between the two with a wide margin on both sides (the timer is
/// 40 ms at its shortest); the median of 8 rounds keeps one slow round on a loaded machine
/// from deciding.
pub async fn a_burst_against_a_nagle_broker_does_not_wait_for_the_delayed_ack_timer<
    R: Runtime + Default,
>() {
    const BURST: usize = 10;
    const ROUNDS: usize = 8;
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    let mut took = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        // Sequential publishes first: the kernel then treats the connection as interactive
        // and delays its acknowledgements, as on any busy connection.
        for i in 0..20 {
            let payload = format!("{round}/{i}");
            publish(
                &client,
                "burst/q1",
                payload.as_bytes(),
                QoS::AtLeastOnce,
                false,
            )
            .await;
        }
        sleep::<R>(Duration::from_millis(5)).await;
        let started = Instant::now();
        let burst = futures_util::future::join_all((0..BURST).map(|i| {
            client
                .publish("burst/q1", i.to_string())
                .qos(QoS::AtLeastOnce)
                .ack_timeout(BOUND)
                .into_future()
        }));
        let results = with_timeout::<R, _>(BOUND, "a burst of publishes", burst).await;
        took.push(started.elapsed());
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }
    took.sort();
    let median = took[ROUNDS / 2];
    assert!(
        median < Duration::from_millis(20),
        "a burst of {BURST} QoS 1 publishes took {median:?} (median; sorted: {took:?}): the \
         broker's PUBACKs waited for our delayed acknowledgement"
    );
}

/// A QoS 0 publish completes when accepted into the outgoing queue, not when written: up to
/// `max_queued` sequential publishes are complete at their first poll, before the connection
/// task has run at all. Every message still arrives, in order, and an invalid topic is still
/// reported to the caller.
pub async fn sequential_qos0_publishes_complete_on_acceptance_and_all_arrive<
    R: Runtime + Default,
>() {
    const QUEUED: usize = 64;
    const TOTAL: usize = 500;
    let broker = Mosquitto::start();
    let subscriber = connected::<R>(&broker.uri(), no_retry()).await;
    let publisher = connected::<R>(&broker.uri(), no_retry().max_queued(QUEUED)).await;
    subscribe(&subscriber, "seq/q0", QoS::AtMostOnce).await;
    for i in 0..QUEUED {
        // One poll, no await: the driver cannot have written anything in between.
        let first_poll = futures_util::FutureExt::now_or_never(
            publisher
                .publish("seq/q0", i.to_string().into_bytes())
                .qos(QoS::AtMostOnce)
                .into_future(),
        );
        match first_poll {
            Some(Ok(code)) => assert_eq!(code, ReasonCode::Success),
            Some(Err(err)) => panic!("QoS 0 publish {i} failed: {err:?}"),
            None => panic!("QoS 0 publish {i} was not complete at acceptance"),
        }
    }
    with_timeout::<R, _>(BOUND, "the sequential QoS 0 loop", async {
        for i in QUEUED..TOTAL {
            let result = publisher
                .publish("seq/q0", i.to_string().into_bytes())
                .qos(QoS::AtMostOnce)
                .await;
            assert!(result.is_ok(), "QoS 0 publish {i} failed: {result:?}");
        }
    })
    .await;
    for i in 0..TOTAL {
        let message = next_message(&subscriber, "a sequential QoS 0 message").await;
        assert_eq!(message.payload().as_ref(), i.to_string().as_bytes());
    }
    let invalid = publisher
        .publish("seq/+", "wildcards are for filters")
        .qos(QoS::AtMostOnce)
        .await;
    assert!(
        matches!(invalid, Err(ClientError::InvalidTopic(_))),
        "a QoS 0 publish to a wildcard topic: {invalid:?}"
    );
}

/// A retained message reaches a subscriber that arrives later, flagged `retain`; a live
/// subscriber gets it without the flag.
pub async fn retained_message_is_delivered_to_a_later_subscriber_with_retain_flag<
    R: Runtime + Default,
>() {
    let broker = Mosquitto::start();
    let live = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&live, "retained/t", QoS::AtLeastOnce).await;
    let publisher = connected::<R>(&broker.uri(), no_retry()).await;
    publish(&publisher, "retained/t", b"kept", QoS::AtLeastOnce, true).await;
    let message = next_message(&live, "the live copy").await;
    assert_message(&message, "retained/t", b"kept", QoS::AtLeastOnce, false);

    let later = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&later, "retained/#", QoS::AtLeastOnce).await;
    let message = next_message(&later, "the retained message").await;
    assert_message(&message, "retained/t", b"kept", QoS::AtLeastOnce, true);
}

// ---- 4. will --------------------------------------------------------------------------------

/// A TCP proxy on a free loopback port, forwarding to `127.0.0.1:upstream`, that a test can
/// silence or kill to make a connection die without DISCONNECT.
struct Proxy {
    port: u16,
    stop: Arc<AtomicBool>,
    silent: Arc<AtomicBool>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(upstream: u16) -> Self {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding the proxy listener");
        let port = listener.local_addr().expect("proxy address").port();
        listener
            .set_nonblocking(true)
            .expect("making the proxy listener non-blocking");
        let stop = Arc::new(AtomicBool::new(false));
        let silent = Arc::new(AtomicBool::new(false));
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (stop, silent, sockets) = (stop.clone(), silent.clone(), sockets.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream))
                            else {
                                continue;
                            };
                            let _ = client.set_nonblocking(false);
                            let clones = (
                                client.try_clone().expect("cloning a proxy socket"),
                                server.try_clone().expect("cloning a proxy socket"),
                            );
                            let mut all = sockets.lock().expect("proxy sockets");
                            all.push(client.try_clone().expect("cloning a proxy socket"));
                            all.push(server.try_clone().expect("cloning a proxy socket"));
                            drop(all);
                            pump(client, clones.1, silent.clone());
                            pump(server, clones.0, silent.clone());
                        }
                        Err(err) if err.kind() == ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        Self {
            port,
            stop,
            silent,
            sockets,
            acceptor: Some(acceptor),
        }
    }

    fn uri(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Stops forwarding in both directions but keeps every socket open: each side sees a
    /// silent peer.
    fn go_silent(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }

    /// Closes every connection (both sides) and stops accepting.
    fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for socket in self.sockets.lock().expect("proxy sockets").drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies `from` to `to` on a thread until `from` ends; while `silent`, drops what it reads.
/// The end of `from` is not passed on: only [`Proxy::kill`] closes connections.
fn pump(mut from: TcpStream, mut to: TcpStream, silent: Arc<AtomicBool>) {
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if !silent.load(Ordering::SeqCst) && to.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

fn will(topic: &str, message: &[u8], qos: QoS) -> WillConfig {
    WillConfig {
        topic: topic.to_owned(),
        message: message.to_vec(),
        qos,
        retain: false,
    }
}

/// A client with a will, connected through a proxy; the watcher subscribed to the will topic.
async fn will_setup<R: Runtime + Default>(
    broker: &Mosquitto,
) -> (Proxy, MqttClient<R>, MqttClient<R>) {
    let watcher = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&watcher, "wills/#", QoS::AtLeastOnce).await;
    let proxy = Proxy::start(broker.port());
    let config = no_retry().keep_alive(Duration::from_secs(1)).will(will(
        "wills/doomed",
        b"doomed client is gone",
        QoS::AtLeastOnce,
    ));
    let doomed = connected_as::<R>(Some("doomed"), &proxy.uri(), config).await;
    with_timeout::<R, _>(BOUND, "PINGRESP through the proxy", doomed.ping())
        .await
        .expect("ping through the proxy");
    (proxy, doomed, watcher)
}

/// The broker publishes the will when the client's connection dies without DISCONNECT.
pub async fn will_is_published_when_the_connection_dies_without_disconnect<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let (mut proxy, doomed, watcher) = will_setup::<R>(&broker).await;
    assert_no_message(&watcher, Duration::from_millis(200), "no will while alive").await;
    proxy.kill();
    let message = next_message(&watcher, "the will").await;
    assert_message(
        &message,
        "wills/doomed",
        b"doomed client is gone",
        QoS::AtLeastOnce,
        false,
    );
    drop(doomed);
}

/// A client that falls silent (its packets no longer reach the broker) is dropped by the
/// broker once the keep alive it announced in CONNECT (1 s) expires, and its will is
/// published.
///
/// mosquitto 2.0 checks keep alives only every 5 s, so the will comes 1.5 to ~6.5 s after
/// the client went silent; the announced keep alive is checked in the broker's log.
pub async fn will_is_published_when_the_client_goes_silent_past_keep_alive<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let (proxy, doomed, watcher) = will_setup::<R>(&broker).await;
    let log = broker.log();
    assert!(
        log.contains("as doomed (p2, c1, k1)"),
        "CONNECT did not announce keep alive 1 s:\n{log}"
    );
    proxy.go_silent();
    let message = match watcher
        .deliver_message()
        .timeout(Duration::from_secs(10))
        .await
    {
        Ok(message) => message,
        Err(err) => panic!(
            "no will ({err:?}) after the client went silent; broker log:\n{}",
            broker.log()
        ),
    };
    assert_message(
        &message,
        "wills/doomed",
        b"doomed client is gone",
        QoS::AtLeastOnce,
        false,
    );
    let log = broker.log();
    assert!(
        log.contains("Client doomed has exceeded timeout"),
        "the will came for another reason than keep-alive expiry:\n{log}"
    );
    drop(doomed);
}

/// A clean DISCONNECT discards the will.
pub async fn will_is_not_published_after_a_clean_disconnect<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let (mut proxy, doomed, watcher) = will_setup::<R>(&broker).await;
    with_timeout::<R, _>(BOUND, "DISCONNECT", doomed.disconnect())
        .await
        .expect("disconnect");
    sleep::<R>(Duration::from_millis(100)).await;
    proxy.kill();
    assert_no_message(
        &watcher,
        Duration::from_millis(500),
        "will after DISCONNECT",
    )
    .await;
}

// ---- 5. username / password -----------------------------------------------------------------

fn broker_with_alice() -> Mosquitto {
    Mosquitto::builder().users(&[("alice", "secret")]).start()
}

/// `ClientConfig::username` / `password` log in.
pub async fn credentials_from_config_are_accepted<R: Runtime + Default>() {
    let broker = broker_with_alice();
    let config = no_retry().username("alice").password("secret");
    let client = connected::<R>(&broker.uri(), config).await;
    subscribe(&client, "alice/#", QoS::AtLeastOnce).await;
    publish(&client, "alice/x", b"hi", QoS::AtLeastOnce, false).await;
    next_message(&client, "alice's own message").await;
}

/// `mqtt://user:password@host:port` logs in, and wins over the configuration.
pub async fn credentials_from_uri_are_accepted<R: Runtime + Default>() {
    let broker = broker_with_alice();
    let uri = format!("mqtt://alice:secret@127.0.0.1:{}", broker.port());
    let client = connected::<R>(&uri, no_retry()).await;
    with_timeout::<R, _>(BOUND, "PINGRESP", client.ping())
        .await
        .expect("ping");
    let config = no_retry().username("alice").password("wrong");
    connected::<R>(&uri, config).await;
}

/// A wrong password (and no credentials at all) gets CONNACK return code 5, not authorized.
pub async fn wrong_password_is_refused_with_not_authorized<R: Runtime + Default>() {
    let broker = broker_with_alice();
    let config = no_retry().username("alice").password("wrong");
    let (err, _) = connect_err::<R>(&broker.uri(), config).await;
    assert!(
        matches!(
            err,
            ClientError::Connect(ref reason)
                if matches!(reason.code, ReasonCode::NotAuthorized | ReasonCode::BadUserNameOrPassword)
        ),
        "wrong password: {err:?}"
    );
    let (err, _) = connect_err::<R>(&broker.uri(), no_retry()).await;
    assert!(
        matches!(
            err,
            ClientError::Connect(ref reason)
                if matches!(reason.code, ReasonCode::NotAuthorized | ReasonCode::BadUserNameOrPassword)
        ),
        "no credentials: {err:?}"
    );
}

/// A refusal is final: with auto-reconnect on and unlimited retries the connect still fails
/// at once and the client closes, without a reconnect attempt.
pub async fn refused_connection_is_final_even_with_auto_reconnect<R: Runtime + Default>() {
    let broker = broker_with_alice();
    let config = ClientConfig::default()
        .auto_reconnect(true)
        .reconnect_retries(None)
        .reconnect_max_interval(Duration::from_millis(100))
        .username("alice")
        .password("wrong");
    let client = MqttClient::<R>::new(None, config);
    let mut events = client.connection_events();
    let start = Instant::now();
    let result = with_timeout::<R, _>(
        BOUND,
        "a refused connect",
        client.connect(broker.uri().as_str()).into_future(),
    )
    .await;
    assert!(
        matches!(&result, Err(ClientError::Connect(reason)) if reason.code == ReasonCode::NotAuthorized),
        "refused connect: {result:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    assert_closed_without_retry::<R, _>(&mut events, "a refused connection").await;
    // Nothing retries in the background either.
    sleep::<R>(Duration::from_millis(300)).await;
    let logins = broker.log().matches("New connection from").count();
    // One connection is the broker's own readiness probe at start-up.
    assert!(
        logins == 2,
        "broker saw {logins} refused logins:\n{}",
        broker.log()
    );
}

// ---- 6. TLS ---------------------------------------------------------------------------------

async fn assert_tls_round_trip<R: Runtime + Default>(client: &MqttClient<R>) {
    subscribe(client, "tls/#", QoS::ExactlyOnce).await;
    publish(client, "tls/x", b"secret", QoS::ExactlyOnce, false).await;
    let message = next_message(client, "a message over TLS").await;
    assert_message(&message, "tls/x", b"secret", QoS::ExactlyOnce, false);
}

/// `mqtts://localhost` trusting the CA from `ca_file`.
pub async fn tls_with_ca_file<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let client = MqttClient::<R>::new(None, no_retry());
    with_timeout::<R, _>(
        BOUND,
        "TLS connect",
        client
            .connect(broker.tls_uri().as_str())
            .ca_file(certs.ca_file())
            .into_future(),
    )
    .await
    .expect("TLS connect with ca_file");
    assert_tls_round_trip(&client).await;
}

/// The CA as PEM text (`ca_data`).
pub async fn tls_with_ca_data<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let client = MqttClient::<R>::new(None, no_retry());
    with_timeout::<R, _>(
        BOUND,
        "TLS connect",
        client
            .connect(broker.tls_uri().as_str())
            .ca_data(certs.ca_pem())
            .into_future(),
    )
    .await
    .expect("TLS connect with ca_data");
    assert_tls_round_trip(&client).await;
}

/// A directory holding `ca.pem` (`ca_path`).
pub async fn tls_with_ca_path<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let dir = tempfile::tempdir().expect("a temporary CA directory");
    std::fs::copy(certs.ca_file(), dir.path().join("ca.pem")).expect("copying ca.pem");
    std::fs::write(dir.path().join("README"), "not a certificate").expect("writing README");
    let client = MqttClient::<R>::new(None, no_retry());
    with_timeout::<R, _>(
        BOUND,
        "TLS connect",
        client
            .connect(broker.tls_uri().as_str())
            .ca_path(dir.path())
            .into_future(),
    )
    .await
    .expect("TLS connect with ca_path");
    assert_tls_round_trip(&client).await;
}

/// A broker requiring client certificates accepts `cert_file` / `key_file`.
pub async fn mutual_tls_with_client_certificate<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder().tls(&certs).mutual_tls(true).start();
    let config = no_retry()
        .ca_file(certs.ca_file())
        .cert_file(certs.client_cert())
        .key_file(certs.client_key());
    let client = connected::<R>(&broker.tls_uri(), config).await;
    assert_tls_round_trip(&client).await;
}

/// Without a client certificate the mutual-TLS broker ends the connection; connect fails.
pub async fn mutual_tls_without_client_certificate_is_rejected<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder().tls(&certs).mutual_tls(true).start();
    let (err, _) = connect_err::<R>(&broker.tls_uri(), no_retry().ca_file(certs.ca_file())).await;
    // TLS 1.3 finishes the client's side of the handshake before the server checks the
    // client certificate: the refusal arrives as an alert (Tls) or a closed socket.
    assert!(
        matches!(
            err,
            ClientError::Tls(_) | ClientError::Io(_) | ClientError::ConnectionLost(_)
        ),
        "no client certificate: {err:?}"
    );
}

/// A rustls configuration built by the application: roots from PEM text, the client
/// certificate and key read into memory, ALPN offered.
fn ready_rustls_config(certs: &Certs) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(certs.ca_pem().as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let chain = CertificateDer::pem_file_iter(certs.client_cert())
        .expect("client certificate")
        .collect::<Result<Vec<_>, _>>()
        .expect("client certificate PEM");
    let key = PrivateKeyDer::from_pem_file(certs.client_key()).expect("client key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client certificate and key");
    config.alpn_protocols = vec![b"mqtt".to_vec()];
    Arc::new(config)
}

/// `ClientConfig::tls_config`: a ready rustls configuration (in-memory client certificate,
/// ALPN) is used as given, with no CA option set, against a broker requiring client
/// certificates.
pub async fn tls_with_a_ready_rustls_config_and_in_memory_client_certificate<
    R: Runtime + Default,
>() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder().tls(&certs).mutual_tls(true).start();
    let client = MqttClient::<R>::new(None, no_retry().tls_config(ready_rustls_config(&certs)));
    with_timeout::<R, _>(
        BOUND,
        "TLS connect with a ready rustls config",
        client.connect(broker.tls_uri().as_str()),
    )
    .await
    .expect("TLS connect with tls_config");
    assert_tls_round_trip(&client).await;
}

/// `ClientConfig::tls_config` wins over the CA options: a CA file of another authority is
/// configured too, and the connection still succeeds with the ready configuration's roots.
pub async fn tls_config_in_client_config_replaces_the_ca_options<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder().tls(&certs).mutual_tls(true).start();
    let config = no_retry()
        .ca_file(certs.other_ca_file())
        .tls_config(ready_rustls_config(&certs));
    let client = connected::<R>(&broker.tls_uri(), config).await;
    assert_tls_round_trip(&client).await;
}

async fn assert_tls_rejected<R: Runtime + Default>(
    uri: &str,
    config: ClientConfig,
    expected: &str,
) {
    let (err, elapsed) = connect_err::<R>(uri, config).await;
    let detail = format!("{err:?}");
    assert!(
        matches!(err, ClientError::Tls(TlsError::Rustls(_))) && detail.contains(expected),
        "expected a TLS error mentioning {expected}, got {detail}"
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "TLS refusal took {elapsed:?}"
    );
}

/// A server certificate from a CA the client does not trust is refused.
pub async fn tls_unknown_ca_is_rejected<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let config = no_retry().ca_file(certs.other_ca_file());
    assert_tls_rejected::<R>(&broker.tls_uri(), config, "UnknownIssuer").await;
}

/// A certificate for another host name is refused.
pub async fn tls_wrong_host_is_rejected<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder()
        .tls(&certs)
        .tls_server_cert(certs.wrong_host_cert(), certs.wrong_host_key())
        .start();
    let config = no_retry().ca_file(certs.ca_file());
    assert_tls_rejected::<R>(&broker.tls_uri(), config, "NotValidForName").await;
}

/// With `check_hostname(false)` the same wrong-host certificate is accepted (the chain is
/// still verified).
pub async fn tls_wrong_host_is_accepted_without_hostname_check<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder()
        .tls(&certs)
        .tls_server_cert(certs.wrong_host_cert(), certs.wrong_host_key())
        .start();
    let config = no_retry().ca_file(certs.ca_file()).check_hostname(false);
    let client = connected::<R>(&broker.tls_uri(), config).await;
    assert_tls_round_trip(&client).await;
    // Turning the host check off does not turn the chain check off.
    let config = no_retry()
        .ca_file(certs.other_ca_file())
        .check_hostname(false);
    assert_tls_rejected::<R>(&broker.tls_uri(), config, "UnknownIssuer").await;
}

/// An expired server certificate is refused.
pub async fn tls_expired_certificate_is_rejected<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder()
        .tls(&certs)
        .tls_server_cert(certs.expired_cert(), certs.expired_key())
        .start();
    let config = no_retry().ca_file(certs.ca_file());
    assert_tls_rejected::<R>(&broker.tls_uri(), config, "Expired").await;
}

/// `verify_cert(false)` (amqtt's `verify_cert: false`) accepts a certificate no configured CA
/// signed, for another host name; with it on (the default) the same connection is refused.
pub async fn tls_without_certificate_verification_accepts_any_certificate<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder()
        .tls(&certs)
        .tls_server_cert(certs.wrong_host_cert(), certs.wrong_host_key())
        .start();
    let config = no_retry().ca_file(certs.other_ca_file());
    assert_tls_rejected::<R>(&broker.tls_uri(), config.clone(), "UnknownIssuer").await;
    let client = connected::<R>(&broker.tls_uri(), config.verify_cert(false)).await;
    assert_tls_round_trip(&client).await;
}

// ---- 7. WebSocket ---------------------------------------------------------------------------

/// `ws://127.0.0.1:P/mqtt` against nats-server, with an extra handshake header: QoS 0 and 1
/// round trips (nats-server's MQTT has no QoS 2).
pub async fn websocket_qos0_and_qos1_round_trip_with_extra_header<R: Runtime + Default>() {
    let nats = Nats::start();
    let uri = nats.ws_uri();
    let subscriber = MqttClient::<R>::new(None, no_retry());
    with_timeout::<R, _>(
        BOUND,
        "WebSocket connect",
        subscriber
            .connect(uri.as_str())
            .header("X-Test", "1")
            .into_future(),
    )
    .await
    .expect("ws connect");
    let publisher = connected::<R>(&uri, no_retry()).await;
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let topic = format!("ws/{}", qos as u8);
        subscribe(&subscriber, &topic, qos).await;
        let payload = format!("over websocket at {qos:?}").into_bytes();
        publish(&publisher, &topic, &payload, qos, false).await;
        let message = next_message(&subscriber, "a message over WebSocket").await;
        assert_message(&message, &topic, &payload, qos, false);
    }
    with_timeout::<R, _>(BOUND, "PINGRESP over WebSocket", subscriber.ping())
        .await
        .expect("ping over ws");
}

/// The handshake asks for the URI's path with subprotocol `mqtt` and carries extra headers
/// (checked with a scripted HTTP server that answers 403).
pub async fn websocket_handshake_sends_path_subprotocol_and_extra_headers<R: Runtime + Default>() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding");
    let port = listener.local_addr().expect("address").port();
    let server = thread::spawn(move || {
        let (mut stream, _) = accept_within(&listener, BOUND).expect("no WebSocket handshake");
        stream.set_read_timeout(Some(BOUND)).expect("read timeout");
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let _ = stream.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
        String::from_utf8_lossy(&request).to_ascii_lowercase()
    });
    let client = MqttClient::<R>::new(None, no_retry());
    let result = with_timeout::<R, _>(
        BOUND,
        "a refused WebSocket handshake",
        client
            .connect(format!("ws://127.0.0.1:{port}/mqtt/path?q=1").as_str())
            .header("X-Test", "1")
            .header("Authorization", "Bearer x")
            .into_future(),
    )
    .await;
    assert!(
        matches!(result, Err(ClientError::WebSocket(_))),
        "refused handshake: {result:?}"
    );
    let request = join_thread::<R, _>(server).await;
    for line in [
        "get /mqtt/path?q=1 http/1.1",
        "sec-websocket-protocol: mqtt",
        "x-test: 1",
        "authorization: bearer x",
        "upgrade: websocket",
    ] {
        assert!(
            request.contains(line),
            "no {line:?} in the handshake:\n{request}"
        );
    }
}

/// `wss://localhost:P/mqtt` with `ca_file`.
pub async fn websocket_over_tls_round_trip<R: Runtime + Default>() {
    let certs = Certs::generate();
    let nats = Nats::start_tls(&certs);
    let client = MqttClient::<R>::new(None, no_retry());
    with_timeout::<R, _>(
        BOUND,
        "WSS connect",
        client
            .connect(nats.wss_uri().as_str())
            .ca_file(certs.ca_file())
            .into_future(),
    )
    .await
    .expect("wss connect");
    subscribe(&client, "wss/#", QoS::AtLeastOnce).await;
    publish(&client, "wss/x", b"over wss", QoS::AtLeastOnce, false).await;
    let message = next_message(&client, "a message over WSS").await;
    assert_message(&message, "wss/x", b"over wss", QoS::AtLeastOnce, false);
    // An untrusted CA fails the handshake here too.
    let (err, _) =
        connect_err::<R>(&nats.wss_uri(), no_retry().ca_file(certs.other_ca_file())).await;
    assert!(
        matches!(err, ClientError::Tls(_)),
        "wss with an unknown CA: {err:?}"
    );
}

// ---- 8. persistent sessions -----------------------------------------------------------------

/// Disconnects and waits until the client reports `Closed`.
///
/// `disconnect()` alone resolves before the client is ready for `reconnect()`: see
/// [`reconnect_right_after_disconnect_works`]. Tests about something else wait for `Closed`.
async fn disconnect_until_closed<R: Runtime + Default>(client: &MqttClient<R>) {
    let mut events = client.connection_events();
    with_timeout::<R, _>(BOUND, "DISCONNECT", client.disconnect())
        .await
        .expect("disconnect");
    wait_for_event::<R, _>(&mut events, BOUND, "Closed after disconnect", |event| {
        matches!(event, ConnectionEvent::Closed)
    })
    .await;
}

async fn publish_offline_batch<R: Runtime + Default>(broker: &Mosquitto, count: usize) {
    let publisher = connected::<R>(&broker.uri(), no_retry()).await;
    for i in 0..count {
        publish(
            &publisher,
            "offline/t",
            format!("offline {i}").as_bytes(),
            QoS::AtLeastOnce,
            false,
        )
        .await;
    }
    with_timeout::<R, _>(BOUND, "DISCONNECT", publisher.disconnect())
        .await
        .expect("disconnect");
}

async fn receive_offline_batch<R: Runtime + Default>(client: &MqttClient<R>, count: usize) {
    let mut payloads = Vec::new();
    for _ in 0..count {
        let message = next_message(client, "a message queued while offline").await;
        assert_eq!(message.qos(), QoS::AtLeastOnce);
        payloads.push(String::from_utf8_lossy(message.payload()).into_owned());
    }
    let expected: Vec<String> = (0..count).map(|i| format!("offline {i}")).collect();
    assert_eq!(
        payloads, expected,
        "messages queued while offline, in order"
    );
}

/// A persistent session keeps its subscription; QoS 1 messages published while the client
/// is away arrive after `reconnect().clean_session(false)`.
pub async fn persistent_session_receives_messages_published_while_offline<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = MqttClient::<R>::new(Some("persistent-a"), no_retry().clean_session(false));
    let connack = with_timeout::<R, _>(
        BOUND,
        "CONNACK",
        client.connect(broker.uri().as_str()).into_future(),
    )
    .await
    .expect("first connect");
    assert!(!connack.session_present, "a brand-new session was present");
    subscribe(&client, "offline/#", QoS::AtLeastOnce).await;
    disconnect_until_closed(&client).await;

    publish_offline_batch::<R>(&broker, 5).await;

    let connack = with_timeout::<R, _>(
        BOUND,
        "reconnect",
        client.reconnect().clean_session(false).into_future(),
    )
    .await
    .expect("reconnect");
    assert!(connack.session_present, "session not resumed: {connack:?}");
    receive_offline_batch(&client, 5).await;
}

/// A new client with the same client id and clean session off resumes the session.
pub async fn persistent_session_resumes_in_a_new_client_with_the_same_id<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let config = no_retry().clean_session(false);
    let first = connected_as::<R>(Some("persistent-b"), &broker.uri(), config.clone()).await;
    subscribe(&first, "offline/#", QoS::AtLeastOnce).await;
    with_timeout::<R, _>(BOUND, "DISCONNECT", first.disconnect())
        .await
        .expect("disconnect");
    drop(first);

    publish_offline_batch::<R>(&broker, 5).await;

    let second = MqttClient::<R>::new(Some("persistent-b"), config);
    let connack = with_timeout::<R, _>(
        BOUND,
        "CONNACK",
        second.connect(broker.uri().as_str()).into_future(),
    )
    .await
    .expect("connect of the second client");
    assert!(connack.session_present, "session not resumed: {connack:?}");
    receive_offline_batch(&second, 5).await;
}

/// Reconnecting with a clean session drops what the broker queued for the old one.
pub async fn clean_session_discards_the_offline_queue<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = connected_as::<R>(
        Some("persistent-c"),
        &broker.uri(),
        no_retry().clean_session(false),
    )
    .await;
    subscribe(&client, "offline/#", QoS::AtLeastOnce).await;
    disconnect_until_closed(&client).await;
    publish_offline_batch::<R>(&broker, 3).await;
    let connack = with_timeout::<R, _>(
        BOUND,
        "clean reconnect",
        client.reconnect().clean_session(true).into_future(),
    )
    .await
    .expect("clean reconnect");
    assert!(
        !connack.session_present,
        "clean session was present: {connack:?}"
    );
    assert_no_message(&client, Duration::from_millis(300), "clean session").await;
}

// ---- 9. broker crash and restart ------------------------------------------------------------

/// mosquitto (persistence on) is SIGKILLed mid-stream while QoS 1 publishes are in flight,
/// and restarted. A persistent subscriber and a persistent publisher, both auto-reconnecting,
/// lose nothing: every publish resolves Ok and every message arrives (duplicates allowed).
///
/// Phases: 0..80 acknowledged; the broker is frozen (SIGSTOP) so 80..140 are written but
/// never read; it is killed while frozen (so it cannot act on them), 140..170 are published
/// while it is down, it restarts, and 170..200 follow.
pub async fn broker_kill_and_restart_loses_no_qos1_message<R: Runtime + Default>() {
    const N: usize = 200;
    let mut broker = Mosquitto::builder().persistence(true).start();
    let config = ClientConfig::default()
        .clean_session(false)
        .auto_reconnect(true)
        .reconnect_retries(None)
        .reconnect_max_interval(Duration::from_millis(200))
        .keep_alive(Duration::from_secs(5));
    let subscriber = connected_as::<R>(Some("crash-sub"), &broker.uri(), config.clone()).await;
    let mut sub_events = subscriber.connection_events();
    subscribe(&subscriber, "crash/#", QoS::AtLeastOnce).await;
    let publisher = connected_as::<R>(Some("crash-pub"), &broker.uri(), config).await;
    let mut pub_events = publisher.connection_events();
    // Let the subscription reach the persistence file (autosave on changes).
    sleep::<R>(Duration::from_millis(300)).await;

    let send = |i: usize| {
        publisher
            .publish("crash/t", format!("{i}").into_bytes())
            .qos(QoS::AtLeastOnce)
            .into_future()
    };
    let first: Vec<_> = (0..80).map(send).collect();
    let results =
        with_timeout::<R, _>(BOUND, "the first 80 PUBACKs", future::join_all(first)).await;
    for (i, result) in results.into_iter().enumerate() {
        assert!(
            matches!(result, Ok(code) if code.is_success()),
            "publish {i}: {result:?}"
        );
    }
    // Acknowledged at least ~100 ms before the crash, so saved.
    sleep::<R>(Duration::from_millis(300)).await;

    broker.pause();
    let mut pending: Vec<_> = (80..140).map(send).collect();
    sleep::<R>(Duration::from_millis(100)).await;
    // SIGKILL while stopped: the broker never runs again, so it cannot acknowledge 80..140
    // without saving them. (`Mosquitto::kill` sends SIGCONT first, which would let it.)
    let pid = broker.pid().expect("broker pid");
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stdin(Stdio::null())
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -KILL {pid}: {status}");
    broker.kill(); // reaps it

    pending.extend((140..170).map(send));
    sleep::<R>(Duration::from_millis(300)).await;
    broker.restart();
    pending.extend((170..N).map(send));

    let results = with_timeout::<R, _>(
        Duration::from_secs(20),
        "publishes across the crash",
        future::join_all(pending),
    )
    .await;
    for (i, result) in results.into_iter().enumerate() {
        assert!(
            matches!(result, Ok(code) if code.is_success()),
            "publish {}: {result:?}",
            i + 80
        );
    }

    let mut seen = vec![0u32; N];
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.contains(&0) {
        let left = deadline.saturating_duration_since(Instant::now());
        match subscriber.deliver_message().timeout(left).await {
            Ok(message) => {
                let text = String::from_utf8_lossy(message.payload()).into_owned();
                let i: usize = text.parse().expect("numeric payload");
                seen[i] += 1;
            }
            Err(err) => {
                let missing: Vec<usize> = (0..N).filter(|&i| seen[i] == 0).collect();
                panic!(
                    "{err:?} with {} messages missing: {missing:?}\nbroker log:\n{}",
                    missing.len(),
                    broker.log()
                );
            }
        }
    }
    // Both clients noticed the crash and came back with their sessions.
    for (name, events) in [
        ("subscriber", &mut sub_events),
        ("publisher", &mut pub_events),
    ] {
        let (event, before) = wait_for_event::<R, _>(events, BOUND, "reconnection", |event| {
            matches!(event, ConnectionEvent::Connected { .. })
        })
        .await;
        // Persistence kept both sessions across the crash.
        assert!(
            matches!(
                event,
                ConnectionEvent::Connected {
                    session_present: true
                }
            ),
            "{name} reconnected as {event:?}"
        );
        assert!(
            before
                .iter()
                .any(|event| matches!(event, ConnectionEvent::ConnectionLost(_))),
            "{name} reconnected without losing the connection first: {before:?}"
        );
    }
}

// ---- 10. keep-alive -------------------------------------------------------------------------

/// With keep alive 1 s, a broker frozen by SIGSTOP is declared lost within a few seconds:
/// `ConnectionLost` in `connection_events()`, and a ping fails.
pub async fn keep_alive_detects_a_paused_broker<R: Runtime + Default>() {
    let mut broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry().keep_alive(Duration::from_secs(1))).await;
    let mut events = client.connection_events();
    with_timeout::<R, _>(BOUND, "PINGRESP", client.ping())
        .await
        .expect("ping while the broker runs");
    broker.pause();
    let paused_at = Instant::now();
    let ping = with_timeout::<R, _>(BOUND, "a ping to a frozen broker", client.ping()).await;
    assert!(
        matches!(
            ping,
            Err(ClientError::ConnectionLost(
                ConnectionError::KeepAliveTimeout
            ))
        ),
        "ping to a frozen broker: {ping:?}"
    );
    let (event, _) = wait_for_event::<R, _>(&mut events, BOUND, "ConnectionLost", |event| {
        matches!(event, ConnectionEvent::ConnectionLost(_))
    })
    .await;
    let detected = paused_at.elapsed();
    assert!(
        matches!(
            event,
            ConnectionEvent::ConnectionLost(ClientError::ConnectionLost(
                ConnectionError::KeepAliveTimeout
            ))
        ),
        "loss reported as {event:?}"
    );
    assert!(
        detected < Duration::from_secs(4),
        "detected after {detected:?}"
    );
    let ping = with_timeout::<R, _>(BOUND, "a ping after the loss", client.ping()).await;
    assert!(ping.is_err(), "ping after the loss: {ping:?}");
    broker.resume();
    with_timeout::<R, _>(BOUND, "reconnect", client.reconnect().into_future())
        .await
        .expect("reconnect after resume");
    with_timeout::<R, _>(BOUND, "PINGRESP", client.ping())
        .await
        .expect("ping after resume");
}

// ---- 11. deliver_message timeout ------------------------------------------------------------

/// `deliver_message().timeout(200 ms)` on an idle subscription fails with `Timeout` after
/// about 200 ms.
pub async fn deliver_message_times_out_on_an_idle_subscription<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&client, "idle/#", QoS::AtLeastOnce).await;
    let start = Instant::now();
    let result = with_timeout::<R, _>(
        BOUND,
        "deliver_message with a timeout",
        client
            .deliver_message()
            .timeout(Duration::from_millis(200))
            .into_future(),
    )
    .await;
    let elapsed = start.elapsed();
    assert!(matches!(result, Err(ClientError::Timeout)), "{result:?}");
    assert!(
        elapsed >= Duration::from_millis(190) && elapsed < Duration::from_millis(1000),
        "timed out after {elapsed:?}"
    );
}

// ---- 12. API surface ------------------------------------------------------------------------

/// `ping()` gets its PINGRESP.
pub async fn ping_succeeds<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    for _ in 0..3 {
        with_timeout::<R, _>(BOUND, "PINGRESP", client.ping())
            .await
            .expect("ping");
    }
}

/// After `unsubscribe` nothing more arrives on the filter.
pub async fn unsubscribe_stops_delivery<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&client, "unsub/#", QoS::AtLeastOnce).await;
    publish(&client, "unsub/x", b"before", QoS::AtLeastOnce, false).await;
    next_message(&client, "a message before unsubscribing").await;
    let codes = with_timeout::<R, _>(BOUND, "UNSUBACK", client.unsubscribe(["unsub/#"]))
        .await
        .expect("unsubscribe");
    assert!(
        codes.is_empty(),
        "3.1.1 UNSUBACK carries no codes: {codes:?}"
    );
    publish(&client, "unsub/x", b"after", QoS::AtLeastOnce, false).await;
    assert_no_message(&client, Duration::from_millis(300), "after unsubscribe").await;
}

/// `cancel_tasks()` fails a pending `deliver_message()` with `Closed`; the connection stays up.
pub async fn cancel_tasks_fails_a_pending_deliver_message_with_closed<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    let canceller = client.clone();
    let (result, ()) = with_timeout::<R, _>(
        BOUND,
        "a cancelled deliver_message",
        future::join(
            client.deliver_message().timeout(BOUND).into_future(),
            async {
                sleep::<R>(Duration::from_millis(100)).await;
                canceller.cancel_tasks();
            },
        ),
    )
    .await;
    assert!(matches!(result, Err(ClientError::Closed)), "{result:?}");
    with_timeout::<R, _>(BOUND, "PINGRESP after cancel_tasks", client.ping())
        .await
        .expect("the connection stays up after cancel_tasks");
    subscribe(&client, "after/cancel", QoS::AtLeastOnce).await;
    publish(
        &client,
        "after/cancel",
        b"still works",
        QoS::AtLeastOnce,
        false,
    )
    .await;
    next_message(&client, "a message after cancel_tasks").await;
}

/// `reconnect()` after `disconnect()` opens a working connection again.
pub async fn reconnect_after_disconnect_works<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    let mut events = client.connection_events();
    with_timeout::<R, _>(BOUND, "DISCONNECT", client.disconnect())
        .await
        .expect("disconnect");
    wait_for_event::<R, _>(&mut events, BOUND, "Closed", |event| {
        matches!(event, ConnectionEvent::Closed)
    })
    .await;
    let ping = with_timeout::<R, _>(BOUND, "ping while disconnected", client.ping()).await;
    assert!(matches!(ping, Err(ClientError::NotConnected)), "{ping:?}");
    with_timeout::<R, _>(BOUND, "reconnect", client.reconnect().into_future())
        .await
        .expect("reconnect");
    wait_for_event::<R, _>(&mut events, BOUND, "Connected", |event| {
        matches!(event, ConnectionEvent::Connected { .. })
    })
    .await;
    subscribe(&client, "again/#", QoS::ExactlyOnce).await;
    publish(&client, "again/x", b"back", QoS::ExactlyOnce, false).await;
    let message = next_message(&client, "a message after reconnect").await;
    assert_message(&message, "again/x", b"back", QoS::ExactlyOnce, false);
}

/// `reconnect()` awaited right after `disconnect()` returned works: the client is ready for
/// a new connection as soon as `disconnect()` resolves.
pub async fn reconnect_right_after_disconnect_works<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    for round in 0..20 {
        with_timeout::<R, _>(BOUND, "DISCONNECT", client.disconnect())
            .await
            .expect("disconnect");
        let result =
            with_timeout::<R, _>(BOUND, "reconnect", client.reconnect().into_future()).await;
        assert!(result.is_ok(), "reconnect in round {round}: {result:?}");
    }
}

/// `connect()` awaited right after `disconnect()` returned works.
pub async fn connect_right_after_disconnect_works<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    for round in 0..20 {
        with_timeout::<R, _>(BOUND, "DISCONNECT", client.disconnect())
            .await
            .expect("disconnect");
        let result = with_timeout::<R, _>(
            BOUND,
            "connect",
            client.connect(broker.uri().as_str()).into_future(),
        )
        .await;
        assert!(result.is_ok(), "connect in round {round}: {result:?}");
    }
}

/// `messages()` yields received messages in order.
pub async fn messages_stream_yields_messages<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&client, "stream/#", QoS::AtLeastOnce).await;
    for i in 0..3 {
        publish(
            &client,
            "stream/x",
            format!("{i}").as_bytes(),
            QoS::AtLeastOnce,
            false,
        )
        .await;
    }
    let mut stream = Box::pin(client.messages());
    for i in 0..3 {
        let message = with_timeout::<R, _>(BOUND, "a message from the stream", stream.next())
            .await
            .expect("the stream ended");
        assert_eq!(&message.payload()[..], format!("{i}").as_bytes());
    }
}

/// An error and its causes (`source()` chain), joined as a reporter prints them.
fn error_report(err: &dyn std::error::Error) -> String {
    let mut report = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        report.push_str(": ");
        report.push_str(&cause.to_string());
        source = cause.source();
    }
    report
}

/// Bad URIs fail with `InvalidUri` naming the problem.
pub async fn invalid_uris_are_rejected_naming_the_problem<R: Runtime + Default>() {
    let client = MqttClient::<R>::new(None, no_retry());
    let err = client.connect("http://x").await;
    assert!(
        matches!(&err, Err(ClientError::InvalidUri(UriError::UnsupportedScheme(s))) if s == "http"),
        "http://x: {err:?}"
    );
    let message = error_report(&err.expect_err("checked above"));
    assert!(
        message.contains("http"),
        "error message {message:?} does not name the scheme"
    );
    let err = client.connect("not a uri").await;
    assert!(
        matches!(err, Err(ClientError::InvalidUri(UriError::Parse(_)))),
        "not a uri: {err:?}"
    );
    let err = client.connect("mqtt://:1883").await;
    assert!(
        matches!(err, Err(ClientError::InvalidUri(_))),
        "mqtt://:1883: {err:?}"
    );
    let err = client.connect(None::<&str>).await;
    assert!(
        matches!(err, Err(ClientError::InvalidUri(UriError::Missing))),
        "no URI: {err:?}"
    );
}

/// An option out of range is refused by `connect`, naming the option, before any
/// connection is opened (setters no longer clamp silently).
pub async fn out_of_range_options_fail_connect_naming_the_option<R: Runtime + Default>() {
    // A listener that only counts: any connection attempt would wait in its backlog.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let uri = format!(
        "mqtt://127.0.0.1:{}",
        listener.local_addr().expect("address").port()
    );
    for (config, option) in [
        (no_retry().message_buffer(0), "message_buffer"),
        (no_retry().max_inflight(0), "max_inflight"),
        (no_retry().max_queued(0), "max_queued"),
        (no_retry().receive_maximum(0), "receive_maximum"),
        (no_retry().max_packet_size(0), "max_packet_size"),
        (
            no_retry().keep_alive(Duration::from_secs(70_000)),
            "keep_alive",
        ),
        // Sent in whole seconds, 0.5 s would turn keep-alive off: refused, not truncated.
        (
            no_retry().keep_alive(Duration::from_millis(500)),
            "keep_alive",
        ),
        (
            no_retry().reconnect_jitter(sansmqtt_client::Jitter::Spread { percent: 150 }),
            "reconnect_jitter",
        ),
    ] {
        let (err, _) = connect_err::<R>(&uri, config).await;
        assert!(
            matches!(
                &err,
                ClientError::InvalidConfig(
                    ConfigError::TooSmall { option: o, .. }
                        | ConfigError::TooLarge { option: o, .. }
                        | ConfigError::BelowOneSecond { option: o, .. }
                ) if *o == option
            ),
            "{option}: {err:?}"
        );
    }
    match listener.accept() {
        Err(err) if err.kind() == ErrorKind::WouldBlock => {}
        other => panic!("an invalid configuration opened a connection: {other:?}"),
    }
}

/// Connecting to a closed port fails at once with `Io` when auto-reconnect is off.
pub async fn connect_to_a_closed_port_fails_fast_with_io_error<R: Runtime + Default>() {
    let port = free_port();
    let (err, elapsed) = connect_err::<R>(&format!("mqtt://127.0.0.1:{port}"), no_retry()).await;
    assert!(matches!(err, ClientError::Io(_)), "closed port: {err:?}");
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
}

// ---- 13. MQTT 5 -----------------------------------------------------------------------------

/// MQTT 5 QoS 1 and 2 round trips against mosquitto.
pub async fn mqtt5_qos1_and_qos2_round_trip<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let config = no_retry().protocol_version(ProtocolVersion::V5);
    let subscriber = connected::<R>(&broker.uri(), config.clone()).await;
    let publisher = connected::<R>(&broker.uri(), config).await;
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let topic = format!("v5/{}", qos as u8);
        subscribe(&subscriber, &topic, qos).await;
        let payload = format!("MQTT 5 at {qos:?}").into_bytes();
        publish(&publisher, &topic, &payload, qos, false).await;
        let message = next_message(&subscriber, "an MQTT 5 message").await;
        assert_message(&message, &topic, &payload, qos, false);
    }
    let codes = with_timeout::<R, _>(BOUND, "UNSUBACK", subscriber.unsubscribe(["v5/1"]))
        .await
        .expect("unsubscribe");
    assert_eq!(codes, [ReasonCode::Success], "MQTT 5 UNSUBACK codes");
    with_timeout::<R, _>(BOUND, "DISCONNECT", subscriber.disconnect())
        .await
        .expect("disconnect");
}

// ---- 14. hostile servers --------------------------------------------------------------------

/// CONNACK, accepted, no session.
const CONNACK_OK: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

fn accept_within(
    listener: &TcpListener,
    bound: Duration,
) -> Option<(TcpStream, std::net::SocketAddr)> {
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let deadline = Instant::now() + bound;
    loop {
        match listener.accept() {
            Ok((stream, addr)) => {
                stream.set_nonblocking(false).expect("blocking stream");
                return Some((stream, addr));
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(2));
            }
            Err(_) => return None,
        }
    }
}

/// Reads one MQTT packet: `(first byte, body)`.
fn read_packet(stream: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte)?;
    let first = byte[0];
    let mut len = 0usize;
    for shift in 0..4 {
        stream.read_exact(&mut byte)?;
        len |= usize::from(byte[0] & 0x7F) << (7 * shift);
        if byte[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    Ok((first, body))
}

/// Waits until the peer closes the connection; returns how long that took, or `None` if it
/// stayed open for `bound`.
fn wait_for_close(stream: &mut TcpStream, bound: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    let mut buf = [0u8; 4096];
    while start.elapsed() < bound {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// A one-connection server: accepts, reads CONNECT, hands the stream to `script`, whose
/// result the test collects with `join`.
fn scripted_server<T: Send + 'static>(
    script: impl FnOnce(&mut TcpStream) -> T + Send + 'static,
) -> (String, JoinHandle<T>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding");
    let port = listener.local_addr().expect("address").port();
    let handle = thread::spawn(move || {
        let (mut stream, _) = accept_within(&listener, BOUND).expect("the client never came");
        stream.set_read_timeout(Some(BOUND)).expect("read timeout");
        let (first, _) = read_packet(&mut stream).expect("reading CONNECT");
        assert_eq!(first, 0x10, "the first packet is not CONNECT");
        script(&mut stream)
    });
    (format!("mqtt://127.0.0.1:{port}"), handle)
}

/// Serves `reply` after CONNECT and expects the connect to fail with a protocol error.
async fn connect_fails_with_protocol_error<R: Runtime + Default>(
    reply: &'static [u8],
) -> ProtocolError {
    let (uri, server) = scripted_server(move |stream| {
        stream.write_all(reply).expect("writing the reply");
        wait_for_close(stream, BOUND)
    });
    let (err, elapsed) = connect_err::<R>(&uri, no_retry()).await;
    let closed = join_thread::<R, _>(server).await;
    assert!(
        closed.is_some(),
        "the client kept the connection open after {err:?}"
    );
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    match err {
        ClientError::Protocol(err) => err,
        other => panic!("reply {reply:02x?}: expected Protocol(_), got {other:?}"),
    }
}

/// An MQTT 5 CONNACK refusing with a reason string and a user property: `Connect` carries
/// both, and its message shows the reason string.
pub async fn mqtt5_refusal_keeps_reason_string_and_user_properties<R: Runtime + Default>() {
    // CONNACK: flags 0, reason 0x87 (not authorized), properties: reason string "go away",
    // user property ("realm", "lab").
    let mut properties = vec![0x1F, 0x00, 0x07];
    properties.extend_from_slice(b"go away");
    properties.extend_from_slice(&[0x26, 0x00, 0x05]);
    properties.extend_from_slice(b"realm");
    properties.extend_from_slice(&[0x00, 0x03]);
    properties.extend_from_slice(b"lab");
    let mut body = vec![0x00, 0x87, u8::try_from(properties.len()).expect("short")];
    body.extend_from_slice(&properties);
    let mut connack = vec![0x20, u8::try_from(body.len()).expect("short")];
    connack.extend_from_slice(&body);
    let (uri, server) = scripted_server(move |stream| {
        stream.write_all(&connack).expect("writing CONNACK");
        wait_for_close(stream, BOUND)
    });
    let config = no_retry().protocol_version(ProtocolVersion::V5);
    let (err, _) = connect_err::<R>(&uri, config).await;
    join_thread::<R, _>(server).await;
    let ClientError::Connect(reason) = &err else {
        panic!("expected Connect, got {err:?}");
    };
    assert_eq!(reason.code, ReasonCode::NotAuthorized);
    assert_eq!(reason.reason_string.as_deref(), Some("go away"));
    assert_eq!(
        reason
            .user_properties
            .iter()
            .map(|p| (&*p.name, &*p.value))
            .collect::<Vec<_>>(),
        [("realm", "lab")]
    );
    assert!(err.to_string().contains("go away"), "{err}");
}

/// A remaining length continuing past four bytes is malformed: connect fails with
/// `Protocol(Decode(MalformedVarInt))`.
pub async fn hostile_malformed_remaining_length_fails_connect_with_protocol_error<
    R: Runtime + Default,
>() {
    let err = connect_fails_with_protocol_error::<R>(&[0x20, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).await;
    assert!(
        matches!(err, ProtocolError::Decode(DecodeError::MalformedVarInt)),
        "{err:?}"
    );
}

/// CONNACK with reserved acknowledge flags set is malformed.
pub async fn hostile_connack_with_reserved_flags_fails_connect_with_protocol_error<
    R: Runtime + Default,
>() {
    let err = connect_fails_with_protocol_error::<R>(&[0x20, 0x02, 0xFE, 0x00]).await;
    assert!(
        matches!(
            err,
            ProtocolError::Decode(DecodeError::InvalidConnAckFlags(_))
        ),
        "{err:?}"
    );
    // Reserved bits in the fixed header are malformed too.
    let err = connect_fails_with_protocol_error::<R>(&[0x21, 0x02, 0x00, 0x00]).await;
    assert!(
        matches!(
            err,
            ProtocolError::Decode(DecodeError::InvalidHeaderFlags { .. })
        ),
        "{err:?}"
    );
}

/// CONNACK with a remaining length other than 2 (3.1.1) is malformed.
pub async fn hostile_connack_with_wrong_length_fails_connect_with_protocol_error<
    R: Runtime + Default,
>() {
    let err = connect_fails_with_protocol_error::<R>(&[0x20, 0x03, 0x00, 0x00, 0x00]).await;
    assert!(matches!(err, ProtocolError::Decode(_)), "{err:?}");
    let err = connect_fails_with_protocol_error::<R>(&[0x20, 0x01, 0x00]).await;
    assert!(matches!(err, ProtocolError::Decode(_)), "{err:?}");
}

/// A PUBACK for a packet id the client never used breaks the protocol: the client closes
/// the connection and reports it, without panicking.
pub async fn hostile_puback_for_unknown_packet_id_closes_the_connection<R: Runtime + Default>() {
    let (uri, server) = scripted_server(|stream| {
        stream.write_all(&CONNACK_OK).expect("CONNACK");
        thread::sleep(Duration::from_millis(50));
        stream.write_all(&[0x40, 0x02, 0x00, 0x07]).expect("PUBACK");
        wait_for_close(stream, BOUND)
    });
    let client = MqttClient::<R>::new(None, no_retry());
    let mut events = client.connection_events();
    with_timeout::<R, _>(BOUND, "CONNACK", client.connect(uri.as_str()).into_future())
        .await
        .expect("connect to the scripted server");
    let (event, _) = wait_for_event::<R, _>(&mut events, BOUND, "ConnectionLost", |event| {
        matches!(event, ConnectionEvent::ConnectionLost(_))
    })
    .await;
    assert!(
        matches!(
            event,
            ConnectionEvent::ConnectionLost(ClientError::Protocol(
                ProtocolError::UnknownPacketId { id: 7, .. }
            ))
        ),
        "{event:?}"
    );
    let closed = join_thread::<R, _>(server).await;
    assert!(closed.is_some(), "the client did not close the connection");
    wait_for_event::<R, _>(&mut events, BOUND, "Closed", |event| {
        matches!(event, ConnectionEvent::Closed)
    })
    .await;
}

/// Encodes an MQTT variable byte integer.
fn var_int(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = u8::try_from(value % 128).expect("below 128");
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            return out;
        }
    }
}

/// A PUBLISH announcing 100 MB (over the default 1 MiB `max_packet_size`) is refused from
/// its fixed header: `Protocol(Decode(PacketTooLarge))`, the connection closed at once
/// instead of waiting for (and buffering) the body.
pub async fn hostile_oversize_packet_is_rejected_from_its_header<R: Runtime + Default>() {
    const ANNOUNCED: usize = 100 * 1024 * 1024;
    let (uri, server) = scripted_server(|stream| {
        stream.write_all(&CONNACK_OK).expect("CONNACK");
        thread::sleep(Duration::from_millis(50));
        let mut header = vec![0x30];
        header.extend(var_int(ANNOUNCED));
        // The start of a plausible body: topic "big", then payload bytes.
        header.extend([0x00, 0x03, b'b', b'i', b'g']);
        header.extend([0xAB; 1024]);
        stream.write_all(&header).expect("PUBLISH header");
        wait_for_close(stream, BOUND)
    });
    let client = MqttClient::<R>::new(None, no_retry());
    let mut events = client.connection_events();
    with_timeout::<R, _>(BOUND, "CONNACK", client.connect(uri.as_str()).into_future())
        .await
        .expect("connect to the scripted server");
    let (event, _) = wait_for_event::<R, _>(&mut events, BOUND, "ConnectionLost", |event| {
        matches!(event, ConnectionEvent::ConnectionLost(_))
    })
    .await;
    assert!(
        matches!(
            &event,
            ConnectionEvent::ConnectionLost(ClientError::Protocol(ProtocolError::Decode(
                DecodeError::PacketTooLarge { size, max: 1_048_576 }
            ))) if *size >= ANNOUNCED
        ),
        "{event:?}"
    );
    let closed = join_thread::<R, _>(server).await;
    match closed {
        Some(after) => assert!(after < Duration::from_secs(1), "closed after {after:?}"),
        None => panic!("the client kept reading an oversize packet"),
    }
}

/// A server that accepts TCP and never answers the TLS handshake: connect fails with
/// `Timeout` after `connect_timeout` (500 ms).
pub async fn hostile_silent_tls_server_times_out_connect<R: Runtime + Default>() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding");
    let port = listener.local_addr().expect("address").port();
    let server = thread::spawn(move || {
        let (mut stream, _) = accept_within(&listener, BOUND).expect("the client never came");
        wait_for_close(&mut stream, BOUND)
    });
    let certs = Certs::generate();
    let config = no_retry()
        .connect_timeout(Duration::from_millis(500))
        .ca_file(certs.ca_file());
    let (err, elapsed) = connect_err::<R>(&format!("mqtts://127.0.0.1:{port}"), config).await;
    let closed = join_thread::<R, _>(server).await;
    assert!(
        matches!(err, ClientError::Timeout),
        "silent TLS server: {err:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_millis(1500),
        "gave up after {elapsed:?}"
    );
    assert!(closed.is_some(), "the client left the connection open");
}

/// A server that accepts TCP and never answers CONNECT: connect fails with `Timeout` after
/// `connect_timeout` (500 ms).
pub async fn hostile_silent_server_times_out_connect<R: Runtime + Default>() {
    let (uri, server) = scripted_server(|stream| wait_for_close(stream, BOUND));
    let config = no_retry().connect_timeout(Duration::from_millis(500));
    let (err, elapsed) = connect_err::<R>(&uri, config).await;
    let closed = join_thread::<R, _>(server).await;
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_millis(1500),
        "gave up after {elapsed:?}"
    );
    assert!(closed.is_some(), "the client left the connection open");
    assert!(
        matches!(err, ClientError::Timeout),
        "silent server: {err:?}"
    );
}

/// amqtt's `deliver_message` fails when the client is not connected. Here: before any connect,
/// and after `disconnect` once the messages that had arrived are delivered; a caller already
/// waiting when the connection is closed is woken with the error too.
pub async fn deliver_message_without_a_connection_fails_but_keeps_received_messages<
    R: Runtime + Default,
>() {
    let client = MqttClient::<R>::new(None, no_retry());
    let result = client.deliver_message().timeout(BOUND).await;
    assert!(
        matches!(result, Err(ClientError::NotConnected)),
        "before connect: {result:?}"
    );

    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&client, "kept/#", QoS::AtLeastOnce).await;
    publish(&client, "kept/x", b"arrived", QoS::AtLeastOnce, false).await;
    // Wait until the message is in the client's queue, then close the connection.
    let waiter = client.clone();
    let first = next_message(&waiter, "the first message").await;
    assert_message(&first, "kept/x", b"arrived", QoS::AtLeastOnce, false);
    publish(&client, "kept/y", b"also arrived", QoS::AtLeastOnce, false).await;
    R::default()
        .sleep_until(R::default().now() + Duration::from_millis(200))
        .await;
    with_timeout::<R, _>(BOUND, "DISCONNECT", client.disconnect())
        .await
        .expect("disconnect");
    let kept = client.deliver_message().timeout(BOUND).await;
    assert!(
        matches!(&kept, Ok(message) if message.topic() == "kept/y"),
        "a message received before the disconnect is still delivered: {kept:?}"
    );
    let after = client.deliver_message().timeout(BOUND).await;
    assert!(
        matches!(after, Err(ClientError::NotConnected)),
        "after disconnect: {after:?}"
    );

    // A caller waiting while the connection is closed is woken with the error.
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    let waiting = client.clone();
    let (result, disconnected) = futures_util::join!(
        async move { waiting.deliver_message().timeout(BOUND).await },
        async {
            R::default()
                .sleep_until(R::default().now() + Duration::from_millis(100))
                .await;
            client.disconnect().await
        }
    );
    disconnected.expect("disconnect");
    assert!(
        matches!(result, Err(ClientError::NotConnected)),
        "a waiting caller: {result:?}"
    );
}
