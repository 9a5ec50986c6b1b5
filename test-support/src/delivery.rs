//! The delivery and liveness suite: what the QoS promise means at the *application*, under slow
//! consumers, request/response loops, stopped brokers and cancelled calls. Written once, generic
//! over the runtime, instantiated by each adapter with [`delivery_suite!`](crate::delivery_suite)
//! exactly as [`client_suite!`](crate::client_suite) is.
//!
//! Messages are counted where the application sees them (`deliver_message`), never inside the
//! client. Where a test needs the broker to hold more than mosquitto's default per-client queue
//! (`max_queued_messages 1000`), it says so and raises that limit: the broker's own queue
//! policy is not what these tests examine.

use std::collections::{BTreeMap, BTreeSet};
use std::future::IntoFuture;
use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::join_all;
use sansmqtt_client::proto::QoS;
use sansmqtt_client::{ClientConfig, ClientError, ConnectionEvent, MqttClient, Overflow, Runtime};

use crate::Mosquitto;
use crate::suite::{
    BOUND, assert_no_message, connected, connected_as, next_message, no_retry, publish, sleep,
    subscribe, wait_for_event, with_timeout,
};

/// Instantiates every test of [`delivery`](crate::delivery) as a plain `#[test]` for one
/// runtime: `delivery_suite!(RuntimeType, block_on_function)`.
#[macro_export]
macro_rules! delivery_suite {
    ($runtime:ty, $block_on:path) => {
        $crate::delivery_suite!(@tests $runtime, $block_on, [
            request_response_handler_answers_a_burst_of_10000_qos1_requests,
            publishing_to_an_unread_own_subscription_gets_every_puback_quickly,
            slow_consumer_stays_connected_and_receives_every_qos1_message,
            unread_messages_of_a_stopped_persistent_subscriber_arrive_after_restart,
            manual_acks_given_out_of_order_acknowledge_only_the_arrival_prefix,
            qos2_with_defaults_against_a_stock_mosquitto_loses_nothing,
            broker_stopped_during_a_qos0_flood_is_detected_and_memory_stays_bounded,
            dropped_connect_to_a_silent_broker_leaves_the_client_free_to_connect,
            send_now_fails_with_queue_full_when_the_budget_is_used_up,
            a_burst_of_100000_qos0_messages_to_a_counting_subscriber_loses_none,
            a_queued_publish_whose_expiry_ran_out_is_dropped_and_reported,
            a_311_inbox_holds_at_most_its_bound_against_an_unlimited_broker_and_loses_nothing,
            a_clean_311_subscriber_that_stops_taking_holds_at_most_its_bound_and_loses_nothing,
            a_slow_mqtt5_subscriber_served_beyond_its_receive_maximum_loses_nothing,
        ]);
    };
    (@tests $runtime:ty, $block_on:path, [$($name:ident),* $(,)?]) => {
        $(
            #[test]
            fn $name() {
                $block_on($crate::delivery::$name::<$runtime>())
            }
        )*
    };
}

/// A mosquitto whose per-client queue is unlimited, so that messages held back by our flow
/// control wait at the broker instead of being dropped by its queue limit.
fn broker_with_unlimited_queue() -> Mosquitto {
    Mosquitto::builder()
        .extra_config("max_queued_messages 0")
        .start()
}

fn number(payload: &[u8]) -> u32 {
    std::str::from_utf8(payload)
        .ok()
        .and_then(|text| text.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("payload {payload:?} carries no number"))
}

// ---- application-level acknowledgement ------------------------------------------------------

/// The bridge / RPC pattern: `deliver_message`, then `publish(reply).qos(1).await`, in a loop.
/// Fed 10,000 QoS 1 requests over three seconds, it answers every one (it used to deadlock once
/// the delivery buffer filled, because the driver stopped reading and the reply's PUBACK sat
/// behind unread requests).
pub async fn request_response_handler_answers_a_burst_of_10000_qos1_requests<
    R: Runtime + Default,
>() {
    const REQUESTS: u32 = 10_000;
    let broker = broker_with_unlimited_queue();
    let handler = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&handler, "rpc/request", QoS::AtLeastOnce).await;
    let requester = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&requester, "rpc/reply", QoS::AtLeastOnce).await;

    let serving = handler.clone();
    R::default().spawn(async move {
        while let Ok(request) = serving.deliver_message().await {
            let reply = format!("reply {}", number(request.payload()));
            if serving
                .publish("rpc/reply", reply)
                .qos(QoS::AtLeastOnce)
                .await
                .is_err()
            {
                break;
            }
        }
    });

    // 10,000 requests in 30 slices over three seconds, each slice pipelined.
    let start = Instant::now();
    let slices = 30;
    for slice in 0..slices {
        let sends = (slice * REQUESTS / slices..(slice + 1) * REQUESTS / slices).map(|i| {
            requester
                .publish("rpc/request", format!("request {i}"))
                .qos(QoS::AtLeastOnce)
                .into_future()
        });
        for result in join_all(sends).await {
            result.expect("request publish");
        }
        let due = start + Duration::from_millis(100) * (slice + 1);
        sleep::<R>(due.saturating_duration_since(Instant::now())).await;
    }
    let mut answered = BTreeSet::new();
    while answered.len() < REQUESTS as usize {
        let reply = match requester.deliver_message().timeout(BOUND).await {
            Ok(reply) => reply,
            Err(err) => panic!(
                "after {} of {REQUESTS} replies the handler went quiet: {err:?}",
                answered.len()
            ),
        };
        answered.insert(number(reply.payload()));
    }
    assert_eq!(answered.len(), REQUESTS as usize);
    handler
        .ping()
        .await
        .expect("the handler is still connected");
}

/// A client publishing QoS 1 to a topic it subscribes to, and never reading, gets each PUBACK
/// at once: its unread copies are held back by flow control, not by a stalled socket.
pub async fn publishing_to_an_unread_own_subscription_gets_every_puback_quickly<
    R: Runtime + Default,
>() {
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&client, "self/echo", QoS::AtLeastOnce).await;
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for batch in 0..30 {
        let batch_start = Instant::now();
        let sends = (0..100).map(|i| {
            client
                .publish("self/echo", format!("echo {}", batch * 100 + i))
                .qos(QoS::AtLeastOnce)
                .ack_timeout(BOUND)
                .into_future()
        });
        for result in join_all(sends).await {
            result.expect("PUBACK for a publish to our own unread subscription");
        }
        slowest = slowest.max(batch_start.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(1),
        "a batch of 100 PUBACKs took {slowest:?} (3,000 in {:?})",
        start.elapsed()
    );
    with_timeout::<R, _>(BOUND, "PINGRESP", client.ping())
        .await
        .expect("ping while 3,000 of our own messages sit unread");
    assert!(
        client.stats().messages_waiting > 0,
        "the copies should be waiting unread"
    );
}

/// What [`slow_consumer_scenario`] measured.
#[derive(Debug, Clone)]
pub struct SlowConsumerReport {
    /// QoS 1 messages published (and all received).
    pub qos1: u32,
    /// QoS 0 messages published.
    pub qos0_sent: u32,
    /// QoS 0 messages received by the application.
    pub qos0_received: u32,
    /// QoS 0 messages the client dropped (its own count).
    pub qos0_dropped: u64,
    /// Messages waiting in the client at the end of the pause (bounded by the buffer and the
    /// broker's in-flight window).
    pub pending_at_end_of_pause: usize,
}

/// A subscriber with a small buffer reads nothing for `pause` while a publisher floods it at
/// QoS 0 and QoS 1. It must stay connected the whole time (keep-alive 1 s), answer a ping while
/// not reading, keep at most `message_buffer` QoS 0 messages, count and report the QoS 0 drops,
/// and, once it reads, receive every QoS 1 message. Returns the figures.
pub async fn slow_consumer_scenario<R: Runtime + Default>(pause: Duration) -> SlowConsumerReport {
    const BUFFER: usize = 200;
    let broker = broker_with_unlimited_queue();
    let subscriber = connected_as::<R>(
        Some("slow-consumer"),
        &broker.uri(),
        no_retry()
            .keep_alive(Duration::from_secs(1))
            .message_buffer(BUFFER)
            .overflow(Overflow::DropNewest),
    )
    .await;
    let mut events = subscriber.connection_events();
    subscribe(&subscriber, "flood/q1", QoS::AtLeastOnce).await;
    subscribe(&subscriber, "flood/q0", QoS::AtMostOnce).await;
    let publisher = connected::<R>(&broker.uri(), no_retry()).await;

    let start = Instant::now();
    let mut qos1 = 0u32;
    let mut qos0_sent = 0u32;
    let mut pinged = false;
    while start.elapsed() < pause {
        let q1 = (0..50).map(|i| {
            publisher
                .publish("flood/q1", format!("q1 {}", qos1 + i))
                .qos(QoS::AtLeastOnce)
                .into_future()
        });
        let q0 = (0..200).map(|i| {
            publisher
                .publish("flood/q0", format!("q0 {}", qos0_sent + i))
                .qos(QoS::AtMostOnce)
                .into_future()
        });
        let (r1, r0) = futures_util::future::join(join_all(q1), join_all(q0)).await;
        assert!(
            r1.iter().chain(&r0).all(Result::is_ok),
            "flood publish failed"
        );
        qos1 += 50;
        qos0_sent += 200;
        if !pinged && start.elapsed() > pause / 2 {
            // Control packets are not stuck behind the unread messages.
            with_timeout::<R, _>(BOUND, "PINGRESP while not reading", subscriber.ping())
                .await
                .expect("ping while the application reads nothing");
            pinged = true;
        }
        sleep::<R>(Duration::from_millis(50)).await;
    }
    let pending_at_end_of_pause = subscriber.stats().messages_waiting;
    assert!(
        pending_at_end_of_pause <= BUFFER + 20,
        "{pending_at_end_of_pause} messages held: the buffer is {BUFFER} plus the broker's window"
    );

    // Now read everything.
    let mut seen_q1 = BTreeSet::new();
    let mut qos0_received = 0u32;
    while seen_q1.len() < qos1 as usize {
        let message = match subscriber.deliver_message().timeout(BOUND).await {
            Ok(message) => message,
            Err(err) => panic!(
                "{} of {qos1} QoS 1 messages arrived, then: {err:?}",
                seen_q1.len()
            ),
        };
        if message.qos() == QoS::AtLeastOnce {
            seen_q1.insert(number(message.payload()));
        } else {
            qos0_received += 1;
        }
    }
    while let Ok(message) = subscriber
        .deliver_message()
        .timeout(Duration::from_millis(300))
        .await
    {
        if message.qos() == QoS::AtMostOnce {
            qos0_received += 1;
        }
    }
    let qos0_dropped = subscriber.stats().messages_dropped;
    assert!(
        qos0_dropped > 0,
        "a {BUFFER}-message buffer cannot hold {qos0_sent} unread QoS 0 messages"
    );
    assert!(
        u64::from(qos0_received) + qos0_dropped <= u64::from(qos0_sent),
        "received {qos0_received} + dropped {qos0_dropped} > sent {qos0_sent}"
    );
    // The whole time: no loss, and every drop reported.
    let mut reported = 0;
    loop {
        let quiet = std::pin::pin!(sleep::<R>(Duration::from_millis(100)));
        let next = futures_util::future::select(events.next(), quiet).await;
        match next {
            futures_util::future::Either::Left((Some(event), _)) => match event {
                ConnectionEvent::MessagesDropped { count } => reported += count,
                ConnectionEvent::ConnectionLost(err) => {
                    panic!("the slow consumer lost its connection: {err:?}")
                }
                _ => {}
            },
            _ => break,
        }
    }
    assert_eq!(reported, qos0_dropped, "every drop is reported");
    SlowConsumerReport {
        qos1,
        qos0_sent,
        qos0_received,
        qos0_dropped,
        pending_at_end_of_pause,
    }
}

/// 100,000 QoS 0 messages published as fast as possible to a subscriber in the same process
/// whose application only counts them (`messages()`, default settings), through a stock
/// mosquitto: none is lost. The driver reads far ahead of a consumer task that has not been
/// scheduled yet; it used to drop 1-6% of such a burst at the full `message_buffer`. Now it
/// pauses reading until the consumer makes room (see `message_buffer`'s docs).
pub async fn a_burst_of_100000_qos0_messages_to_a_counting_subscriber_loses_none<
    R: Runtime + Default,
>() {
    const TOTAL: u64 = 100_000;
    let broker = Mosquitto::start();
    let subscriber = connected_as::<R>(Some("burst-counter"), &broker.uri(), no_retry()).await;
    subscribe(&subscriber, "burst/q0", QoS::AtMostOnce).await;
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = counted.clone();
    let messages = subscriber.messages();
    R::default().spawn(async move {
        let mut messages = std::pin::pin!(messages);
        while messages.next().await.is_some() {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let publisher = connected_as::<R>(Some("burst-publisher"), &broker.uri(), no_retry()).await;
    let began = Instant::now();
    for i in 0..TOTAL {
        let sent = publisher
            .publish("burst/q0", format!("q0 {i}"))
            .qos(QoS::AtMostOnce)
            .await;
        assert!(sent.is_ok(), "publish {i}: {sent:?}");
    }
    let published = began.elapsed();
    // Every message is counted, or the count stops moving for two seconds.
    let mut last = (0, Instant::now());
    loop {
        let now = counted.load(std::sync::atomic::Ordering::Relaxed);
        if now == TOTAL {
            break;
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(2) {
            break;
        }
        sleep::<R>(Duration::from_millis(20)).await;
    }
    let received = counted.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        subscriber.stats().messages_dropped,
        0,
        "the client dropped messages of a burst its consumer kept up with ({received} counted, \
         published in {published:?})"
    );
    assert_eq!(
        received, TOTAL,
        "messages lost in a {TOTAL}-message burst (published in {published:?})"
    );
}

/// MQTT 5: a publish whose message expiry interval runs out while it waits for a connection
/// is not sent: its future fails with `PublishError::Expired` and
/// `ConnectionEvent::PublishesExpired` reports it; one without expiry, queued beside it, is
/// sent once the broker is back.
pub async fn a_queued_publish_whose_expiry_ran_out_is_dropped_and_reported<R: Runtime + Default>() {
    let mut broker = Mosquitto::start();
    let client = connected::<R>(
        &broker.uri(),
        ClientConfig::default()
            .protocol_version(sansmqtt_client::proto::ProtocolVersion::V5)
            .keep_alive(Duration::from_secs(1))
            .connect_timeout(Duration::from_secs(1))
            .reconnect_retries(None)
            .reconnect_max_interval(Duration::from_millis(500)),
    )
    .await;
    let mut events = client.connection_events();
    broker.kill();
    wait_for_event::<R, _>(&mut events, BOUND, "ConnectionLost", |e| {
        matches!(e, ConnectionEvent::ConnectionLost(_))
    })
    .await;
    let properties = sansmqtt_client::proto::properties::PublishProperties {
        message_expiry_interval: Some(1),
        ..Default::default()
    };
    let expiring = client
        .publish("expiry/short", "gone")
        .qos(QoS::AtLeastOnce)
        .properties(properties)
        .start();
    let lasting = client
        .publish("expiry/none", "kept")
        .qos(QoS::AtLeastOnce)
        .start();
    sleep::<R>(Duration::from_millis(2_500)).await;
    broker.restart();
    let expired = with_timeout::<R, _>(BOUND, "the expired publish's outcome", expiring).await;
    assert!(
        matches!(
            expired,
            Err(ClientError::Publish(sansmqtt_client::PublishError::Expired))
        ),
        "{expired:?}"
    );
    let kept = with_timeout::<R, _>(BOUND, "the lasting publish's PUBACK", lasting).await;
    assert!(kept.is_ok(), "{kept:?}");
    wait_for_event::<R, _>(&mut events, BOUND, "PublishesExpired", |e| {
        matches!(e, ConnectionEvent::PublishesExpired { count: 1 })
    })
    .await;
}

/// MQTT 3.1.1 (no Receive Maximum) against a mosquitto with no in-flight limit, which sends
/// every queued message whether or not earlier ones were acknowledged: a persistent-session
/// subscriber that reads nothing for a while holds at most `message_buffer` QoS 1/2 messages
/// (it refuses the rest, unacknowledged, while still reading the socket), and once it reads
/// it receives every message (the refused ones come again after the reconnect it makes).
pub async fn a_311_inbox_holds_at_most_its_bound_against_an_unlimited_broker_and_loses_nothing<
    R: Runtime + Default,
>() {
    const BUFFER: usize = 100;
    const TOTAL: u32 = 2_000;
    let broker = Mosquitto::builder()
        .extra_config("max_inflight_messages 0\nmax_queued_messages 0\n")
        .start();
    let subscriber = connected_as::<R>(
        Some("bounded-311"),
        &broker.uri(),
        ClientConfig::default()
            .protocol_version(sansmqtt_client::proto::ProtocolVersion::V311)
            .clean_session(false)
            .message_buffer(BUFFER),
    )
    .await;
    subscribe(&subscriber, "bounded/q", QoS::ExactlyOnce).await;
    let publisher = connected::<R>(&broker.uri(), no_retry()).await;
    // Even numbers at QoS 1, odd at QoS 2.
    let sent = join_all((0..TOTAL).map(|i| {
        let qos = if i % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        publisher
            .publish("bounded/q", format!("q {i}"))
            .qos(qos)
            .into_future()
    }))
    .await;
    assert!(sent.iter().all(Result::is_ok), "a publish failed");
    // The broker has sent everything it could; the subscriber has read nothing.
    sleep::<R>(Duration::from_secs(1)).await;
    let held = subscriber.stats().messages_waiting;
    assert!(
        held <= BUFFER,
        "{held} messages held, the bound is {BUFFER}"
    );
    let mut seen = BTreeSet::new();
    let mut most_held = held;
    while seen.len() < TOTAL as usize {
        let message = match subscriber.deliver_message().timeout(BOUND).await {
            Ok(message) => message,
            Err(err) => panic!("{} of {TOTAL} messages arrived, then: {err:?}", seen.len()),
        };
        let n = number(message.payload());
        // QoS 1 may come twice (a refused message's successors are re-sent); QoS 2 never.
        assert!(
            seen.insert(n) || message.qos() == QoS::AtLeastOnce,
            "QoS 2 message {n} delivered twice"
        );
        most_held = most_held.max(subscriber.stats().messages_waiting);
    }
    assert!(
        most_held <= BUFFER,
        "{most_held} messages held, the bound is {BUFFER}"
    );
}

/// The clean-session counterpart: MQTT 3.1.1 with `clean_session(true)` against a mosquitto
/// with no in-flight limit. Refusing messages would lose them there (a reconnect starts a new
/// session), so the client stops reading once `message_buffer` messages wait. While the
/// application takes nothing and 20,000 QoS 1 messages are published, the messages waiting
/// stay within the bound (and those unacknowledged within the bound plus one socket read),
/// the connection survives three keep-alive periods of the pause (PINGREQs still go out; the
/// client's own ping deadline is suspended), and once the application takes messages again it
/// receives all 20,000, none twice.
pub async fn a_clean_311_subscriber_that_stops_taking_holds_at_most_its_bound_and_loses_nothing<
    R: Runtime + Default,
>() {
    const BUFFER: usize = 100;
    const TOTAL: u32 = 20_000;
    const TOPIC: &str = "paced/q";
    // A 3.1.1 PUBLISH of "p 19999" on TOPIC at QoS 1: fixed header 2, topic 2 + 7, packet id
    // 2, payload at least 3. One 64 KiB read carries at most this many.
    const PER_READ: usize = 64 * 1024 / (2 + 2 + TOPIC.len() + 2 + 3);
    // The figures are reported at INFO (`RUST_LOG=mqtt_test_support=info`).
    crate::init_test_tracing();
    let keep_alive = Duration::from_secs(2);
    let broker = Mosquitto::builder()
        .extra_config("max_inflight_messages 0\nmax_queued_messages 0\n")
        .start();
    let subscriber = connected::<R>(
        &broker.uri(),
        no_retry()
            .protocol_version(sansmqtt_client::proto::ProtocolVersion::V311)
            .clean_session(true)
            .keep_alive(keep_alive)
            .message_buffer(BUFFER),
    )
    .await;
    let mut events = subscriber.connection_events();
    subscribe(&subscriber, TOPIC, QoS::AtLeastOnce).await;
    let publisher = connected::<R>(&broker.uri(), no_retry()).await;

    let mut most_waiting = 0;
    let mut most_unacknowledged = 0;
    let mut sample = |subscriber: &MqttClient<R>| {
        let stats = subscriber.stats();
        most_waiting = most_waiting.max(subscriber.stats().messages_waiting);
        most_unacknowledged = most_unacknowledged.max(stats.messages_in_flight);
    };
    let sends = join_all((0..TOTAL).map(|i| {
        publisher
            .publish(TOPIC, format!("p {i}"))
            .qos(QoS::AtLeastOnce)
            .into_future()
    }));
    let mut sends = std::pin::pin!(sends);
    // The application takes nothing while everything is published and acknowledged by the
    // broker, and then for three keep-alive periods more.
    let sent = loop {
        let tick = std::pin::pin!(sleep::<R>(Duration::from_millis(20)));
        match futures_util::future::select(sends.as_mut(), tick).await {
            futures_util::future::Either::Left((sent, _)) => break sent,
            futures_util::future::Either::Right(((), _)) => sample(&subscriber),
        }
    };
    assert!(sent.iter().all(Result::is_ok), "a publish failed");
    let stalled_until = Instant::now() + 3 * keep_alive;
    while Instant::now() < stalled_until {
        sample(&subscriber);
        sleep::<R>(Duration::from_millis(20)).await;
    }
    sample(&subscriber);
    assert_eq!(
        subscriber.stats().messages_waiting,
        BUFFER,
        "the stalled application holds a full buffer"
    );

    let mut seen = BTreeSet::new();
    let mut duplicates = 0u32;
    while seen.len() < TOTAL as usize {
        let message = match subscriber.deliver_message().timeout(BOUND).await {
            Ok(message) => message,
            Err(err) => panic!("{} of {TOTAL} messages arrived, then: {err:?}", seen.len()),
        };
        if !seen.insert(number(message.payload())) {
            duplicates += 1;
        }
        sample(&subscriber);
    }
    tracing::info!(
        most_waiting,
        most_unacknowledged,
        duplicates,
        "clean 3.1.1 bound {BUFFER}: {TOTAL} received"
    );
    assert!(
        most_waiting <= BUFFER,
        "{most_waiting} messages waited, the bound is {BUFFER}"
    );
    assert!(
        most_unacknowledged <= BUFFER + PER_READ,
        "{most_unacknowledged} messages unacknowledged, the bound is {BUFFER} plus one read \
         ({PER_READ})"
    );
    // No reconnect (a clean session would have lost what the broker had not delivered).
    assert_eq!(subscriber.stats().reconnects, 0);
    while let std::task::Poll::Ready(Some(event)) =
        futures_util::poll!(futures_util::StreamExt::next(&mut events))
    {
        assert!(
            !matches!(event, ConnectionEvent::ConnectionLost(_)),
            "the connection was lost: {event:?}"
        );
    }
    assert_eq!(duplicates, 0, "QoS 1 duplicates without a reconnect");
}

/// mosquitto 2.0 sends an MQTT 5 subscriber far more unacknowledged QoS 1 messages than the
/// Receive Maximum it announced once acknowledgements and new messages interleave (a slow
/// consumer). MQTT 5 suggests DISCONNECT 0x93 for that, which lost 2,973 of 3,000 messages of
/// this scenario's clean session (the broker forgets them); the client serves the broker
/// instead, counts the overrun and bounds what it holds by `message_buffer` with the read
/// pause. A clean MQTT 5 subscriber announcing 50 (its `message_buffer`) takes 5,000 QoS 1
/// messages slowly while a publisher floods them: every message arrives once, the connection
/// is never lost, and no more than 50 messages wait for the application at any sample.
/// mosquitto's queue is unlimited so that its own queue policy drops nothing.
pub async fn a_slow_mqtt5_subscriber_served_beyond_its_receive_maximum_loses_nothing<
    R: Runtime + Default,
>() {
    const BUFFER: usize = 50;
    const TOTAL: u32 = 5_000;
    const TOPIC: &str = "overrun/q";
    crate::init_test_tracing();
    let broker = broker_with_unlimited_queue();
    let subscriber = connected::<R>(
        &broker.uri(),
        no_retry()
            .protocol_version(sansmqtt_client::proto::ProtocolVersion::V5)
            .clean_session(true)
            .message_buffer(BUFFER),
    )
    .await;
    let mut events = subscriber.connection_events();
    subscribe(&subscriber, TOPIC, QoS::AtLeastOnce).await;
    let publisher = connected::<R>(&broker.uri(), no_retry().max_inflight(100)).await;
    let sends = join_all((0..TOTAL).map(|i| {
        publisher
            .publish(TOPIC, format!("p {i}"))
            .qos(QoS::AtLeastOnce)
            .into_future()
    }));
    let mut sends = std::pin::pin!(sends);
    let mut seen = BTreeSet::new();
    let mut duplicates = 0u32;
    let mut most_waiting = 0;
    let mut sent = None;
    while seen.len() < TOTAL as usize {
        // The publisher's futures are polled beside the slow consumer.
        if sent.is_none()
            && let std::task::Poll::Ready(results) = futures_util::poll!(sends.as_mut())
        {
            sent = Some(results);
        }
        let message = match subscriber
            .deliver_message()
            .timeout(Duration::from_millis(200))
            .await
        {
            Ok(message) => message,
            Err(ClientError::Timeout) if sent.is_none() => continue,
            Err(err) => panic!("{} of {TOTAL} messages arrived, then: {err:?}", seen.len()),
        };
        most_waiting = most_waiting.max(subscriber.stats().messages_waiting);
        if !seen.insert(number(message.payload())) {
            duplicates += 1;
        }
        // Slower than the flood: a few milliseconds every few messages.
        if seen.len() % 8 == 0 {
            sleep::<R>(Duration::from_millis(2)).await;
        }
    }
    let sent = match sent {
        Some(sent) => sent,
        None => with_timeout::<R, _>(BOUND, "the publishes", sends).await,
    };
    assert!(sent.iter().all(Result::is_ok), "a publish failed");
    let stats = subscriber.stats();
    tracing::info!(
        overruns = stats.receive_maximum_overruns,
        most_waiting,
        duplicates,
        "MQTT 5 Receive Maximum {BUFFER}: {TOTAL} received"
    );
    assert_eq!(stats.reconnects, 0, "the subscriber reconnected");
    while let std::task::Poll::Ready(Some(event)) =
        futures_util::poll!(futures_util::StreamExt::next(&mut events))
    {
        assert!(
            !matches!(event, ConnectionEvent::ConnectionLost(_)),
            "the connection was lost: {event:?}"
        );
    }
    assert!(
        most_waiting <= BUFFER,
        "{most_waiting} messages waited, the bound is {BUFFER}"
    );
    assert_eq!(duplicates, 0, "QoS 1 duplicates without a reconnect");
}

/// [`slow_consumer_scenario`] with an eight-second pause (eight keep-alive periods).
pub async fn slow_consumer_stays_connected_and_receives_every_qos1_message<R: Runtime + Default>() {
    slow_consumer_scenario::<R>(Duration::from_secs(8)).await;
}

/// A persistent subscriber holding unread QoS 1 and QoS 2 messages disconnects, then
/// connects again: its application receives every message, the ones taken before the stop
/// included, and each QoS 2 message exactly once. (Unread messages were never acknowledged, so
/// the broker sends them again; the session's QoS 2 state keeps a re-sent one from being
/// delivered twice. Across processes that state needs a durable store.)
pub async fn unread_messages_of_a_stopped_persistent_subscriber_arrive_after_restart<
    R: Runtime + Default,
>() {
    const EACH: u32 = 60;
    let broker = broker_with_unlimited_queue();
    let client = connected_as::<R>(
        Some("unread-sub"),
        &broker.uri(),
        no_retry().clean_session(false),
    )
    .await;
    subscribe(&client, "unread/1", QoS::AtLeastOnce).await;
    subscribe(&client, "unread/2", QoS::ExactlyOnce).await;
    let publisher = connected::<R>(&broker.uri(), no_retry()).await;
    for i in 0..EACH {
        publish(
            &publisher,
            "unread/1",
            format!("q1 {i}").as_bytes(),
            QoS::AtLeastOnce,
            false,
        )
        .await;
        publish(
            &publisher,
            "unread/2",
            format!("q2 {i}").as_bytes(),
            QoS::ExactlyOnce,
            false,
        )
        .await;
    }
    // The application takes a few, then the client stops with the rest unread.
    let mut seen: BTreeMap<(QoS, u32), u32> = BTreeMap::new();
    for _ in 0..7 {
        let message = next_message(&client, "a message before the stop").await;
        *seen
            .entry((message.qos(), number(message.payload())))
            .or_default() += 1;
    }
    let deadline = Instant::now() + BOUND;
    while client.stats().messages_waiting == 0 && Instant::now() < deadline {
        sleep::<R>(Duration::from_millis(10)).await;
    }
    assert!(
        client.stats().messages_waiting > 0,
        "unread messages held at the stop"
    );
    with_timeout::<R, _>(BOUND, "DISCONNECT", client.disconnect())
        .await
        .expect("disconnect");

    with_timeout::<R, _>(
        BOUND,
        "CONNACK",
        client
            .connect(broker.uri().as_str())
            .clean_session(false)
            .into_future(),
    )
    .await
    .expect("connect again with the persistent session");
    while seen.len() < 2 * EACH as usize {
        let message = match client.deliver_message().timeout(BOUND).await {
            Ok(message) => message,
            Err(err) => panic!(
                "after the restart {} of {} distinct messages, then {err:?}",
                seen.len(),
                2 * EACH
            ),
        };
        *seen
            .entry((message.qos(), number(message.payload())))
            .or_default() += 1;
    }
    // QoS 1 copies re-sent by the broker may follow (at least once); no QoS 2 one may.
    while let Ok(message) = client
        .deliver_message()
        .timeout(Duration::from_millis(300))
        .await
    {
        *seen
            .entry((message.qos(), number(message.payload())))
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 2 * EACH as usize, "nothing beyond the set");
    for ((qos, n), times) in &seen {
        if *qos == QoS::ExactlyOnce {
            assert_eq!(*times, 1, "QoS 2 message {n} seen {times} times");
        }
    }
}

/// With manual acknowledgement, acknowledging the 2nd and 1st of five QoS 1 messages (in that
/// order) acknowledges exactly those two: a new connection of the persistent session gets the
/// other three again, and not the first two.
pub async fn manual_acks_given_out_of_order_acknowledge_only_the_arrival_prefix<
    R: Runtime + Default,
>() {
    let broker = Mosquitto::start();
    let config = || no_retry().clean_session(false).manual_acks(true);
    let first = connected_as::<R>(Some("manual-acks"), &broker.uri(), config()).await;
    subscribe(&first, "manual/t", QoS::AtLeastOnce).await;
    let publisher = connected::<R>(&broker.uri(), no_retry()).await;
    for i in 0..5 {
        publish(
            &publisher,
            "manual/t",
            format!("m {i}").as_bytes(),
            QoS::AtLeastOnce,
            false,
        )
        .await;
    }
    let mut messages = Vec::new();
    for _ in 0..5 {
        messages.push(next_message(&first, "a manually acknowledged message").await);
    }
    first.ack(&messages[1]);
    first.ack(&messages[0]);
    // The acknowledgement of message 4 may not overtake 2 and 3: it is held back.
    first.ack(&messages[4]);
    with_timeout::<R, _>(BOUND, "PINGRESP", first.ping())
        .await
        .expect("ping: the acks above were written before it");
    with_timeout::<R, _>(BOUND, "DISCONNECT", first.disconnect())
        .await
        .expect("disconnect");
    drop(first);

    let second = connected_as::<R>(Some("manual-acks"), &broker.uri(), config()).await;
    let mut again = Vec::new();
    for _ in 0..3 {
        let message = next_message(&second, "an unacknowledged message, sent again").await;
        again.push(number(message.payload()));
        second.ack(&message);
    }
    again.sort_unstable();
    assert_eq!(again, [2, 3, 4], "re-delivered after the restart");
    assert_no_message(
        &second,
        Duration::from_millis(300),
        "0 and 1 were acknowledged",
    )
    .await;
}

// ---- liveness and bounds --------------------------------------------------------------------

/// 2,000 QoS 2 messages with the default configuration against a mosquitto left at its stock
/// settings (20 incoming QoS 2 flows per client): every one arrives, exactly once. With a
/// window above the broker's quota, 3.1.1 brokers drop the excess while acknowledging it.
pub async fn qos2_with_defaults_against_a_stock_mosquitto_loses_nothing<R: Runtime + Default>() {
    const COUNT: u32 = 2_000;
    let broker = Mosquitto::start();
    let subscriber = connected::<R>(&broker.uri(), ClientConfig::default()).await;
    subscribe(&subscriber, "qos2/defaults", QoS::ExactlyOnce).await;
    let publisher = connected::<R>(&broker.uri(), ClientConfig::default()).await;
    let sends = (0..COUNT).map(|i| {
        publisher
            .publish("qos2/defaults", format!("m {i}"))
            .qos(QoS::ExactlyOnce)
            .into_future()
    });
    let receive = async {
        let mut seen = BTreeMap::<u32, u32>::new();
        while seen.len() < COUNT as usize {
            match subscriber.deliver_message().timeout(BOUND).await {
                Ok(message) => *seen.entry(number(message.payload())).or_default() += 1,
                Err(err) => panic!("{} of {COUNT} QoS 2 messages, then {err:?}", seen.len()),
            }
        }
        seen
    };
    let (results, seen) = futures_util::future::join(join_all(sends), receive).await;
    assert!(results.iter().all(Result::is_ok), "every publish completes");
    assert_no_message(&subscriber, Duration::from_millis(300), "no duplicate").await;
    assert!(
        seen.values().all(|&n| n == 1),
        "QoS 2 delivered exactly once"
    );
}

/// A broker SIGSTOPped under a QoS 0 flood: the loss is reported within keep-alive x 1.5 plus
/// a margin even though the socket's send buffer is full (the unsent bytes are dropped, not
/// waited for), reconnect attempts begin while the broker is still stopped, and what the
/// publisher queues stays within the configured bound.
pub async fn broker_stopped_during_a_qos0_flood_is_detected_and_memory_stays_bounded<
    R: Runtime + Default,
>() {
    const MAX_QUEUED: usize = 2_000;
    let mut broker = Mosquitto::start();
    let keep_alive = Duration::from_secs(2);
    let client = connected::<R>(
        &broker.uri(),
        ClientConfig::default()
            .keep_alive(keep_alive)
            .connect_timeout(Duration::from_secs(1))
            .reconnect_retries(None)
            .reconnect_max_interval(Duration::from_secs(1))
            .max_queued(MAX_QUEUED),
    )
    .await;
    let mut events = client.connection_events();
    let flooding = client.clone();
    R::default().spawn(async move {
        let payload = vec![b'x'; 512];
        // Fire and forget at full speed: `send_now` either queues or says the queue is full.
        loop {
            match flooding.publish("flood/stop", payload.clone()).send_now() {
                Ok(_) => {}
                Err(ClientError::QueueFull) => sleep::<R>(Duration::from_millis(1)).await,
                Err(_) => break,
            }
        }
    });
    sleep::<R>(Duration::from_millis(500)).await;
    broker.pause();
    let stopped = Instant::now();
    let (_, seen) = wait_for_event::<R, _>(&mut events, keep_alive * 3, "ConnectionLost", |e| {
        matches!(e, ConnectionEvent::ConnectionLost(_))
    })
    .await;
    let detected = stopped.elapsed();
    assert!(
        detected <= keep_alive * 3 / 2 + Duration::from_secs(1),
        "loss detected after {detected:?} (keep-alive {keep_alive:?}); events before: {seen:?}"
    );
    wait_for_event::<R, _>(&mut events, BOUND, "Reconnecting", |e| {
        matches!(e, ConnectionEvent::Reconnecting { .. })
    })
    .await;
    // Still stopped: the flood keeps the queue full, never beyond its bound.
    for _ in 0..10 {
        assert!(client.stats().queued_publishes <= MAX_QUEUED);
        sleep::<R>(Duration::from_millis(100)).await;
    }
    broker.resume();
    wait_for_event::<R, _>(&mut events, Duration::from_secs(10), "Connected", |e| {
        matches!(e, ConnectionEvent::Connected { .. })
    })
    .await;
    client.cancel_tasks();
}

/// `connect` to a broker that never answers, abandoned after 300 ms (its future dropped),
/// leaves the client idle: connecting to a real broker right after succeeds at once.
pub async fn dropped_connect_to_a_silent_broker_leaves_the_client_free_to_connect<
    R: Runtime + Default,
>() {
    let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a silent listener");
    let silent_uri = format!(
        "mqtt://127.0.0.1:{}",
        silent.local_addr().expect("local address").port()
    );
    let broker = Mosquitto::start();
    let client = MqttClient::<R>::new(
        None,
        ClientConfig::default()
            .connect_timeout(Duration::from_secs(30))
            .reconnect_retries(None),
    );
    let give_up = std::pin::pin!(sleep::<R>(Duration::from_millis(300)));
    let attempt =
        futures_util::future::select(client.connect(silent_uri.as_str()).into_future(), give_up)
            .await;
    let gave_up = matches!(attempt, futures_util::future::Either::Right(_));
    drop(attempt);
    assert!(gave_up, "a silent broker cannot accept a connection");
    let start = Instant::now();
    let connack = with_timeout::<R, _>(
        BOUND,
        "CONNACK",
        client.connect(broker.uri().as_str()).into_future(),
    )
    .await;
    assert!(
        connack.is_ok(),
        "connect after a dropped attempt: {connack:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "connected only after {:?}",
        start.elapsed()
    );
    drop(silent);
}

/// `send_now` fails with `QueueFull` while `max_queued` publishes are pending (here: queued
/// behind a stopped broker), and `publish(..).await` waits instead; once room appears the
/// waiting publish completes.
pub async fn send_now_fails_with_queue_full_when_the_budget_is_used_up<R: Runtime + Default>() {
    let mut broker = Mosquitto::start();
    let client = connected::<R>(
        &broker.uri(),
        no_retry()
            .max_queued(10)
            .max_inflight(5)
            .keep_alive(Duration::from_secs(30)),
    )
    .await;
    broker.pause();
    let pending: Vec<_> = (0..10)
        .map(|i| {
            client
                .publish("budget/t", format!("m {i}"))
                .qos(QoS::AtLeastOnce)
                .send_now()
                .expect("room for ten")
        })
        .collect();
    assert_eq!(client.stats().queued_publishes, 10);
    let full = client.publish("budget/t", "one too many").send_now();
    assert!(
        matches!(full, Err(ClientError::QueueFull)),
        "{:?}",
        full.err()
    );
    let waiting = client
        .publish("budget/t", "waits for room")
        .qos(QoS::AtLeastOnce)
        .into_future();
    broker.resume();
    let (results, last) = futures_util::future::join(
        with_timeout::<R, _>(BOUND, "the ten PUBACKs", join_all(pending)),
        with_timeout::<R, _>(BOUND, "the waiting publish", waiting),
    )
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(last.is_ok(), "{last:?}");
    assert_eq!(client.stats().queued_publishes, 0);
}
