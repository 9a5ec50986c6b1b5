//! Publishes and subscriptions declared before the first `connect` (issue 23).

use std::collections::BTreeSet;
use std::future::IntoFuture;
use std::task::Poll;

use futures_util::future::{self, Either, join_all};
use sansmqtt_client::proto::{QoS, ReasonCode};
use sansmqtt_client::{ClientConfig, ClientError, ConnectionEvent, MqttClient, Runtime};

use super::{BOUND, connected, no_retry, subscribe, wait_for_event, with_timeout};
use crate::{Mosquitto, free_port};

/// The number at the end of a payload `"... n"`.
fn number(payload: &[u8]) -> u32 {
    std::str::from_utf8(payload)
        .ok()
        .and_then(|text| text.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("payload {payload:?} carries no number"))
}

/// A client subscribes to its own topic and publishes 100 messages at each QoS, all before
/// `connect`: everything is accepted, `connect` applies it, the SUBSCRIBE goes out before the
/// publishes, and the client receives every message (counted, each QoS in acceptance order).
/// Pings and `deliver_message` still need a started client.
pub async fn subscribe_and_publish_before_connect_arrive_on_the_first_connection<
    R: Runtime + Default,
>() {
    const EACH: u32 = 100;
    let broker = Mosquitto::start();
    let client = MqttClient::<R>::new(None, no_retry());

    let mut subscribing = Box::pin(client.subscribe([("declared/#", QoS::ExactlyOnce)]));
    assert!(
        futures_util::poll!(subscribing.as_mut()).is_pending(),
        "a subscribe before connect waits for the connection"
    );
    let qos = |i: u32| match i % 3 {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    };
    let publishes: Vec<_> = (0..3 * EACH)
        .map(|i| {
            client
                .publish(format!("declared/{}", i % 3), format!("m {i}"))
                .qos(qos(i))
                .start()
        })
        .collect();
    assert_eq!(client.stats().queued_publishes, (3 * EACH) as usize);
    let ping = with_timeout::<R, _>(BOUND, "ping before connect", client.ping()).await;
    assert!(matches!(ping, Err(ClientError::NotConnected)), "{ping:?}");
    let early = client.deliver_message().timeout(BOUND).await;
    assert!(
        matches!(early, Err(ClientError::NotConnected)),
        "deliver_message before connect: {early:?}"
    );

    let connack = with_timeout::<R, _>(
        BOUND,
        "CONNACK",
        client.connect(broker.uri().as_str()).into_future(),
    )
    .await
    .expect("connect");
    assert!(!connack.session_present);
    let granted = with_timeout::<R, _>(BOUND, "the declared SUBACK", subscribing)
        .await
        .expect("the declared subscription");
    assert_eq!(granted, [ReasonCode::GrantedQoS2]);
    for (i, result) in with_timeout::<R, _>(BOUND, "the declared publishes", join_all(publishes))
        .await
        .into_iter()
        .enumerate()
    {
        assert!(result.is_ok(), "publish {i}: {result:?}");
    }

    let mut seen = BTreeSet::new();
    let mut last = [None::<u32>; 3];
    while seen.len() < (3 * EACH) as usize {
        let message = match client.deliver_message().timeout(BOUND).await {
            Ok(message) => message,
            Err(err) => panic!(
                "{} of {} declared messages arrived, then: {err:?}",
                seen.len(),
                3 * EACH
            ),
        };
        let n = number(message.payload());
        assert!(seen.insert(n), "message {n} arrived twice");
        let lane = (n % 3) as usize;
        assert!(
            last[lane].is_none_or(|before| before < n),
            "message {n} arrived after {:?} of the same QoS",
            last[lane]
        );
        last[lane] = Some(n);
    }
    assert_eq!(seen.len(), (3 * EACH) as usize);
}

/// Publishes and subscribes declared before a `connect` that never came fail with `Closed`
/// at `disconnect` (nothing is sent, the budget is free again), and the client still
/// connects afterwards. A subscribe beyond `max_queued` waiting requests fails with
/// `QueueFull`.
pub async fn disconnect_before_connect_fails_what_was_declared_with_closed<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = MqttClient::<R>::new(None, no_retry().max_queued(2));
    let mut first = Box::pin(client.subscribe([("gone/a", QoS::AtLeastOnce)]));
    let mut second = Box::pin(client.subscribe([("gone/b", QoS::AtLeastOnce)]));
    assert!(futures_util::poll!(first.as_mut()).is_pending());
    assert!(futures_util::poll!(second.as_mut()).is_pending());
    let third = client.subscribe([("gone/c", QoS::AtLeastOnce)]).await;
    assert!(matches!(third, Err(ClientError::QueueFull)), "{third:?}");
    let publish = client
        .publish("gone/p", "never")
        .qos(QoS::AtLeastOnce)
        .start();
    assert_eq!(client.stats().queued_publishes, 1);
    with_timeout::<R, _>(BOUND, "disconnect before connect", client.disconnect())
        .await
        .expect("disconnect before connect");
    for result in [first.await, second.await] {
        assert!(matches!(result, Err(ClientError::Closed)), "{result:?}");
    }
    let publish = publish.await;
    assert!(matches!(publish, Err(ClientError::Closed)), "{publish:?}");
    assert_eq!(client.stats().queued_publishes, 0);

    // Nothing of it reached the broker: a watcher subscribed to everything sees only what
    // the client publishes after connecting.
    let watcher = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&watcher, "gone/#", QoS::AtLeastOnce).await;
    with_timeout::<R, _>(
        BOUND,
        "CONNACK",
        client.connect(broker.uri().as_str()).into_future(),
    )
    .await
    .expect("connect after a disconnect before connect");
    with_timeout::<R, _>(
        BOUND,
        "PUBACK",
        client
            .publish("gone/after", "after")
            .qos(QoS::AtLeastOnce)
            .into_future(),
    )
    .await
    .expect("publish after connect");
    let message = match watcher.deliver_message().timeout(BOUND).await {
        Ok(message) => message,
        Err(err) => panic!("the watcher got nothing: {err:?}"),
    };
    assert_eq!(message.topic(), "gone/after");
}

/// A client with a durable store publishes 25 QoS 1 and 25 QoS 2 messages before
/// `connect`: `stored()` cannot resolve before `connect` opens the store, and resolves after
/// it although no broker answers (the address refuses connections). A new client on the same
/// store and id then sends all of them to a real broker, where a subscriber counts each once,
/// and reports each one's outcome as `ConnectionEvent::RecoveredQueuedPublish`.
pub async fn file_store_publishes_before_connect_are_stored_once_connect_opens_the_store<
    R: Runtime + Default,
>() {
    // 2 x EACH outcome events and Connected fit in one listener's buffer (`EVENT_BUFFER`).
    const EACH: u32 = 25;
    let dir = tempfile::Builder::new()
        .prefix("declared-store")
        .tempdir()
        .expect("a temporary directory");
    let store = dir.path().join("session");
    let config = ClientConfig::default()
        .session_store(&store)
        .clean_session(false)
        .connect_timeout(BOUND)
        .reconnect_initial_interval(std::time::Duration::from_millis(50))
        .reconnect_max_interval(std::time::Duration::from_millis(200));
    {
        let client = MqttClient::<R>::new(Some("declared-durable"), config.clone());
        let mut events = client.connection_events();
        let mut stored: Vec<_> = (0..2 * EACH)
            .map(|i| {
                let qos = if i % 2 == 0 {
                    QoS::AtLeastOnce
                } else {
                    QoS::ExactlyOnce
                };
                Box::pin(
                    client
                        .publish("durable/q", format!("d {i}"))
                        .qos(qos)
                        .stored(),
                )
            })
            .collect();
        for storing in &mut stored {
            assert!(
                futures_util::poll!(storing.as_mut()).is_pending(),
                "stored() before connect"
            );
        }
        assert!(client.store_stats().is_none(), "no store before connect");
        // No broker at this address: the client keeps trying, and stores meanwhile.
        let nowhere = format!("mqtt://127.0.0.1:{}", free_port());
        let connecting = Box::pin(client.connect(nowhere.as_str()).into_future());
        let all_stored = Box::pin(join_all(stored));
        let results = match with_timeout::<R, _>(
            BOUND,
            "stored() after connect",
            future::select(connecting, all_stored),
        )
        .await
        {
            Either::Right((results, _connecting)) => results,
            Either::Left((connack, _)) => panic!("connected to nowhere: {connack:?}"),
        };
        let mut futures = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(future) => futures.push(future),
                Err(err) => panic!("stored() of message {i} failed: {err:?}"),
            }
        }
        assert!(client.store_stats().is_some(), "connect opened the store");
        // It never connected.
        while let Poll::Ready(Some(event)) =
            futures_util::poll!(futures_util::StreamExt::next(&mut events))
        {
            assert!(
                !matches!(event, ConnectionEvent::Connected { .. }),
                "connected to nowhere"
            );
        }
        // The connect future was dropped: the client stops. What was stored stays stored.
        with_timeout::<R, _>(BOUND, "the client to stop", client.closed()).await;
        drop(futures);
    }

    let broker = Mosquitto::start();
    let subscriber = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&subscriber, "durable/q", QoS::ExactlyOnce).await;
    let client = MqttClient::<R>::new(Some("declared-durable"), config);
    let mut events = client.connection_events();
    with_timeout::<R, _>(
        BOUND,
        "CONNACK of the restarted client",
        client.connect(broker.uri().as_str()).into_future(),
    )
    .await
    .expect("connect of the restarted client");
    let receive = async {
        let mut seen = BTreeSet::new();
        let mut duplicates = 0;
        while seen.len() < (2 * EACH) as usize {
            let message = match subscriber.deliver_message().timeout(BOUND).await {
                Ok(message) => message,
                Err(err) => panic!(
                    "{} of {} stored messages arrived, then: {err:?}",
                    seen.len(),
                    2 * EACH
                ),
            };
            let n = number(message.payload());
            if !seen.insert(n) {
                assert_eq!(
                    message.qos(),
                    QoS::AtLeastOnce,
                    "QoS 2 message {n} arrived twice"
                );
                duplicates += 1;
            }
        }
        duplicates
    };
    // Their callers died with the first client: each outcome is reported as an event (taken
    // as they come: a listener holds at most `EVENT_BUFFER` of them).
    let reported = async {
        for k in 0..2 * EACH {
            let (event, _) = wait_for_event::<R, _>(
                &mut events,
                BOUND,
                &format!("RecoveredQueuedPublish {k}"),
                |event| matches!(event, ConnectionEvent::RecoveredQueuedPublish(_)),
            )
            .await;
            match event {
                ConnectionEvent::RecoveredQueuedPublish(recovered) => {
                    assert!(recovered.result.is_ok(), "outcome {k}: {recovered:?}");
                    assert_eq!(recovered.topic, "durable/q");
                }
                other => unreachable!("{other:?}"),
            }
        }
    };
    let (duplicates, ()) = future::join(receive, reported).await;
    assert_eq!(duplicates, 0, "QoS 1 duplicates");
}

/// The MQTT 5 message expiry interval of a publish queued while offline counts from its
/// acceptance, across processes: a client with a durable store and no broker accepts two QoS 1
/// messages, one that expires in 1 s and one in 120 s, and stops once both are stored. After
/// 1.5 s a new client on the same store connects: the expired one is dropped unsent and
/// reported as `RecoveredQueuedPublish` with `PublishError::Expired`, the other arrives with
/// what was left of its interval (at most 119 s, as a server forwarding it would say).
pub async fn file_store_queued_publish_expiry_counts_from_acceptance_across_processes<
    R: Runtime + Default,
>() {
    use sansmqtt_client::proto::ProtocolVersion;
    use sansmqtt_client::proto::properties::PublishProperties;

    let dir = tempfile::Builder::new()
        .prefix("declared-expiry")
        .tempdir()
        .expect("a temporary directory");
    let config = ClientConfig::default()
        .protocol_version(ProtocolVersion::V5)
        .session_store(dir.path().join("session"))
        .clean_session(false)
        .session_expiry_interval(std::time::Duration::from_secs(300))
        .connect_timeout(BOUND)
        .reconnect_initial_interval(std::time::Duration::from_millis(50))
        .reconnect_max_interval(std::time::Duration::from_millis(200));
    let expiring = |secs| PublishProperties {
        message_expiry_interval: Some(secs),
        ..PublishProperties::default()
    };
    {
        let client = MqttClient::<R>::new(Some("declared-expiry"), config.clone());
        let short = client
            .publish("expiry/q", "short 1")
            .qos(QoS::AtLeastOnce)
            .properties(expiring(1))
            .stored();
        let long = client
            .publish("expiry/q", "long 120")
            .qos(QoS::AtLeastOnce)
            .properties(expiring(120))
            .stored();
        let nowhere = format!("mqtt://127.0.0.1:{}", free_port());
        let connecting = Box::pin(client.connect(nowhere.as_str()).into_future());
        let both = Box::pin(future::join(short, long));
        let (short, long) =
            match with_timeout::<R, _>(BOUND, "stored()", future::select(connecting, both)).await {
                Either::Right((both, _connecting)) => both,
                Either::Left((connack, _)) => panic!("connected to nowhere: {connack:?}"),
            };
        let futures = (
            short.expect("stored() of the short one"),
            long.expect("stored() of the long one"),
        );
        with_timeout::<R, _>(BOUND, "the client to stop", client.closed()).await;
        drop(futures);
    }
    // Longer than the short one's interval, counted from its acceptance.
    super::sleep::<R>(std::time::Duration::from_millis(1500)).await;

    let broker = Mosquitto::start();
    let subscriber = connected::<R>(
        &broker.uri(),
        no_retry().protocol_version(ProtocolVersion::V5),
    )
    .await;
    subscribe(&subscriber, "expiry/q", QoS::AtLeastOnce).await;
    let client = MqttClient::<R>::new(Some("declared-expiry"), config);
    let mut events = client.connection_events();
    with_timeout::<R, _>(
        BOUND,
        "CONNACK of the restarted client",
        client.connect(broker.uri().as_str()).into_future(),
    )
    .await
    .expect("connect of the restarted client");
    let message = match subscriber.deliver_message().timeout(BOUND).await {
        Ok(message) => message,
        Err(err) => panic!("the long-lived message did not arrive: {err:?}"),
    };
    assert_eq!(&message.payload()[..], b"long 120");
    let left = message
        .properties()
        .message_expiry_interval
        .expect("the forwarded message keeps an expiry interval");
    assert!(left <= 119, "{left} s left after at least 1.5 s of 120 s");
    let mut outcomes = Vec::new();
    for k in 0..2 {
        let (event, _) = wait_for_event::<R, _>(
            &mut events,
            BOUND,
            &format!("RecoveredQueuedPublish {k}"),
            |event| matches!(event, ConnectionEvent::RecoveredQueuedPublish(_)),
        )
        .await;
        if let ConnectionEvent::RecoveredQueuedPublish(recovered) = event {
            outcomes.push(recovered.result);
        }
    }
    assert!(
        outcomes.iter().any(|outcome| matches!(
            outcome,
            Err(ClientError::Publish(sansmqtt_client::PublishError::Expired))
        )),
        "the expired one is reported: {outcomes:?}"
    );
    assert!(
        outcomes.iter().any(Result::is_ok),
        "the other one is acknowledged: {outcomes:?}"
    );
    // The expired one never reaches the broker.
    super::assert_no_message(
        &subscriber,
        std::time::Duration::from_millis(500),
        "the expired message",
    )
    .await;
}
