//! The application's flow through the client (issue 21): every payload and string type the
//! calls take, streams that end, the graceful drain, and refusals that reach the caller.

use bytes::{Bytes, BytesMut};
use sansmqtt_client::Payload;
use sansmqtt_client::session::SessionError;

use super::*;

/// Every payload form `publish` takes compiles, and each arrives byte for byte; topics,
/// filters and URIs as `&str`, `String` and `&String` compile and work. That this function
/// compiles is half the test.
pub async fn publish_takes_every_payload_and_topic_form<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let uri: String = broker.uri();
    // Connect with `&String`, `String` and `&str`.
    let subscriber = MqttClient::<R>::new(None, no_retry());
    with_timeout::<R, _>(
        BOUND,
        "connect(&String)",
        subscriber.connect(&uri).into_future(),
    )
    .await
    .expect("connect with &String");
    let publisher =
        MqttClient::<R>::new(Some(&format!("{}-pub", subscriber.client_id())), no_retry());
    with_timeout::<R, _>(
        BOUND,
        "connect(String)",
        publisher.connect(uri.clone()).into_future(),
    )
    .await
    .expect("connect with String");
    let third = MqttClient::<R>::new(None, no_retry());
    with_timeout::<R, _>(
        BOUND,
        "connect(&str)",
        third.connect(uri.as_str()).into_future(),
    )
    .await
    .expect("connect with &str");
    third.disconnect().await.expect("disconnect");

    // Subscribe with `&String`, `String` and `&str` filters.
    let filter = String::from("forms/#");
    with_timeout::<R, _>(BOUND, "SUBACK", async {
        subscriber.subscribe([(&filter, QoS::AtLeastOnce)]).await?;
        subscriber
            .subscribe([(filter.clone(), QoS::AtLeastOnce)])
            .await?;
        subscriber
            .subscribe([(filter.as_str(), QoS::AtLeastOnce)])
            .await
    })
    .await
    .expect("subscribe with every filter form");

    let topic = String::from("forms/t");
    let buf = [b'a', b'b', b'c', b'd'];
    let vec = b"vec".to_vec();
    let text = String::from("string");
    let bytes = Bytes::from_static(b"bytes");
    let borrowed_text = format!("borrowed {}", 1);
    let mut bytes_mut = BytesMut::new();
    bytes_mut.extend_from_slice(b"bytes-mut");
    let expected: Vec<&[u8]> = vec![
        b"ab",
        b"array",
        b"borrowed 1",
        b"string",
        b"vec",
        b"bytes",
        b"bytes",
        b"vec",
        b"string",
        b"bytes-mut",
    ];
    let results = with_timeout::<R, _>(BOUND, "the publishes", async {
        vec![
            // &[u8] (a slice of a local buffer), &[u8; N], &str (not 'static).
            publisher
                .publish(&topic, &buf[..2])
                .qos(QoS::AtLeastOnce)
                .await,
            publisher
                .publish(&topic, b"array")
                .qos(QoS::AtLeastOnce)
                .await,
            publisher
                .publish(topic.as_str(), borrowed_text.as_str())
                .qos(QoS::AtLeastOnce)
                .await,
            // &String, &Vec<u8>, &Bytes (borrowed, the caller keeps them).
            publisher.publish(&topic, &text).qos(QoS::AtLeastOnce).await,
            publisher.publish(&topic, &vec).qos(QoS::AtLeastOnce).await,
            publisher
                .publish(&topic, &bytes)
                .qos(QoS::AtLeastOnce)
                .await,
            // Bytes, Vec<u8>, String, BytesMut (moved, not copied); the topic as `String`.
            publisher
                .publish(topic.clone(), bytes.clone())
                .qos(QoS::AtLeastOnce)
                .await,
            publisher
                .publish(topic.clone(), vec.clone())
                .qos(QoS::AtLeastOnce)
                .await,
            publisher
                .publish(topic.clone(), text.clone())
                .qos(QoS::AtLeastOnce)
                .await,
            publisher
                .publish(topic.clone(), bytes_mut)
                .qos(QoS::AtLeastOnce)
                .await,
        ]
    })
    .await;
    for (i, result) in results.into_iter().enumerate() {
        assert!(
            matches!(result, Ok(ReasonCode::Success)),
            "publish #{i}: {result:?}"
        );
    }
    for (i, payload) in expected.iter().enumerate() {
        let message = next_message(&subscriber, "a published form").await;
        assert_eq!(message.topic(), topic, "topic of message #{i}");
        assert_eq!(&message.payload()[..], *payload, "payload of message #{i}");
        assert!(message.matches("forms/+"), "{message:?} matches forms/+");
        assert!(!message.matches("other/#"), "{message:?} matches other/#");
    }
    // A `Payload` can be made ahead and passed on.
    let payload = Payload::from(&buf);
    publisher.publish(&topic, payload).await.expect("a Payload");
    let message = next_message(&subscriber, "the Payload").await;
    assert_eq!(message.payload_str().expect("UTF-8"), "abcd");

    // Unsubscribe with `&String`.
    with_timeout::<R, _>(BOUND, "UNSUBACK", subscriber.unsubscribe([&filter]))
        .await
        .expect("unsubscribe with &String");
    for client in [&subscriber, &publisher] {
        with_timeout::<R, _>(BOUND, "DISCONNECT", client.disconnect())
            .await
            .expect("disconnect");
    }
}

/// `payload_str` checks UTF-8 and says so with a typed error.
pub async fn payload_str_refuses_invalid_utf8<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&client, "utf8/#", QoS::AtMostOnce).await;
    publish(&client, "utf8/bad", &[0xff, 0xfe], QoS::AtMostOnce, false).await;
    let message = next_message(&client, "the non-UTF-8 message").await;
    assert!(
        matches!(
            message.payload_str(),
            Err(sansmqtt_client::PayloadError::Utf8(_))
        ),
        "{:?}",
        message.payload_str()
    );
    client.disconnect().await.expect("disconnect");
}

/// `payload_json` (feature `json`) parses into the caller's type, and says why it could not.
pub async fn payload_json_reads_a_typed_value<R: Runtime + Default>() {
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Reading {
        sensor: String,
        celsius: f32,
    }
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&client, "json/#", QoS::AtMostOnce).await;
    publish(
        &client,
        "json/ok",
        br#"{"sensor":"t1","celsius":21.5}"#,
        QoS::AtMostOnce,
        false,
    )
    .await;
    publish(
        &client,
        "json/bad",
        br#"{"sensor":"t1"}"#,
        QoS::AtMostOnce,
        false,
    )
    .await;
    let good = next_message(&client, "the JSON message").await;
    assert_eq!(
        good.payload_json::<Reading>().expect("a Reading"),
        Reading {
            sensor: "t1".into(),
            celsius: 21.5
        }
    );
    let bad = next_message(&client, "the incomplete JSON message").await;
    let err = bad.payload_json::<Reading>();
    assert!(
        matches!(err, Err(sansmqtt_client::PayloadError::Json(_))),
        "{err:?}"
    );
    client.disconnect().await.expect("disconnect");
}

// ---- streams end ----------------------------------------------------------------------------

/// Publishes `count` QoS 1 messages on `topic` from `client` to itself and waits until they
/// all wait in its inbox.
async fn fill_inbox<R: Runtime + Default>(client: &MqttClient<R>, topic: &str, count: usize) {
    subscribe(client, topic, QoS::AtLeastOnce).await;
    for i in 0..count {
        publish(
            client,
            topic,
            format!("{i}").as_bytes(),
            QoS::AtLeastOnce,
            false,
        )
        .await;
    }
    let deadline = Instant::now() + BOUND;
    while client.stats().messages_waiting < count {
        assert!(Instant::now() < deadline, "{count} messages did not arrive");
        sleep::<R>(Duration::from_millis(5)).await;
    }
}

/// Drains `stream` to its end within `bound`; the payloads it yielded.
async fn collect_until_end<R: Runtime + Default, S: Stream<Item = ApplicationMessage> + Unpin>(
    stream: &mut S,
    bound: Duration,
    what: &str,
) -> Vec<String> {
    with_timeout::<R, _>(bound, what, async {
        let mut payloads = Vec::new();
        while let Some(message) = stream.next().await {
            payloads.push(message.payload_str().expect("UTF-8").to_owned());
        }
        payloads
    })
    .await
}

/// `while let Some(m) = stream.next().await` ends after `disconnect()`, once every message
/// received before it has been yielded; `deliver_message` then fails with `NotConnected`.
pub async fn messages_stream_ends_after_disconnect<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    let mut stream = client.messages();
    fill_inbox(&client, "end/disconnect", 3).await;
    with_timeout::<R, _>(BOUND, "DISCONNECT", client.disconnect())
        .await
        .expect("disconnect");
    let payloads = collect_until_end::<R, _>(&mut stream, BOUND, "the stream's end").await;
    assert_eq!(
        payloads,
        ["0", "1", "2"],
        "messages received before the disconnect"
    );
    let next = client.deliver_message().timeout(BOUND).await;
    assert!(matches!(next, Err(ClientError::NotConnected)), "{next:?}");
}

/// A stream taken before the first `connect` waits for it (it does not end at once), and
/// ends when the client gives up reconnecting after the broker died, having yielded what
/// arrived before.
pub async fn messages_stream_ends_when_reconnecting_gives_up<R: Runtime + Default>() {
    let mut broker = Mosquitto::start();
    let config = ClientConfig::default()
        .auto_reconnect(true)
        .reconnect_retries(Some(2))
        .reconnect_initial_interval(Duration::from_millis(20))
        .reconnect_max_interval(Duration::from_millis(50))
        .connect_timeout(BOUND);
    let client = MqttClient::<R>::new(None, config);
    let mut stream = client.messages();
    // Not connected yet: the stream waits.
    let early = matches!(
        future::select(
            stream.next(),
            Box::pin(sleep::<R>(Duration::from_millis(100)))
        )
        .await,
        Either::Left(_)
    );
    assert!(!early, "a stream taken before connect ended or yielded");
    with_timeout::<R, _>(BOUND, "CONNACK", client.connect(broker.uri()).into_future())
        .await
        .expect("connect");
    let mut events = client.connection_events();
    fill_inbox(&client, "end/gave-up", 2).await;
    broker.kill();
    let payloads = collect_until_end::<R, _>(
        &mut stream,
        Duration::from_secs(10),
        "the stream's end after giving up",
    )
    .await;
    assert_eq!(
        payloads,
        ["0", "1"],
        "messages received before the broker died"
    );
    let (_, seen) = wait_for_event::<R, _>(&mut events, BOUND, "Closed", |event| {
        matches!(event, ConnectionEvent::Closed)
    })
    .await;
    let attempts = seen
        .iter()
        .filter(|event| matches!(event, ConnectionEvent::Reconnecting { .. }))
        .count();
    assert!(
        (1..=3).contains(&attempts),
        "the client retried (a bounded number of times) before giving up: {seen:?}"
    );
}

/// With auto-reconnect, a broker restart does not end the stream: it yields what is
/// published after the reconnect.
pub async fn messages_stream_survives_a_broker_restart<R: Runtime + Default>() {
    let mut broker = Mosquitto::start();
    let config = ClientConfig::default()
        .auto_reconnect(true)
        .reconnect_retries(None)
        .reconnect_initial_interval(Duration::from_millis(50))
        .reconnect_max_interval(Duration::from_millis(200))
        .connect_timeout(BOUND);
    let client = connected::<R>(&broker.uri(), config).await;
    let mut events = client.connection_events();
    let mut stream = client.messages();
    subscribe(&client, "end/restart", QoS::AtLeastOnce).await;
    let restart = async {
        broker.kill();
        wait_for_event::<R, _>(&mut events, BOUND, "ConnectionLost", |event| {
            matches!(event, ConnectionEvent::ConnectionLost(_))
        })
        .await;
        sleep::<R>(Duration::from_millis(300)).await;
        broker.restart();
        wait_for_event::<R, _>(&mut events, Duration::from_secs(10), "Connected", |event| {
            matches!(event, ConnectionEvent::Connected { .. })
        })
        .await;
    };
    // The stream is polled through the whole outage: it must neither end nor yield.
    match future::select(stream.next(), std::pin::pin!(restart)).await {
        Either::Left((item, _)) => panic!("the stream yielded {item:?} during the outage"),
        Either::Right(((), _)) => {}
    }
    // The restarted broker has no session: subscribe again, then the stream yields.
    subscribe(&client, "end/restart", QoS::AtLeastOnce).await;
    publish(&client, "end/restart", b"after", QoS::AtLeastOnce, false).await;
    let message = with_timeout::<R, _>(BOUND, "a message after the restart", stream.next())
        .await
        .expect("the stream ended across a broker restart");
    assert_eq!(&message.payload()[..], b"after");
    client.disconnect().await.expect("disconnect");
    assert!(
        with_timeout::<R, _>(BOUND, "the stream's end", stream.next())
            .await
            .is_none(),
        "the stream goes on after disconnect"
    );
}

// ---- graceful drain -------------------------------------------------------------------------

/// `disconnect().drain(..)` lets 1,000 accepted QoS 1 publishes complete before DISCONNECT:
/// every publish future resolves with its PUBACK (not `Closed`) and a subscriber counts all
/// 1,000. `closed()` waits for the connection task's end and resolves once it has ended.
pub async fn drain_completes_every_accepted_publish_before_disconnect<R: Runtime + Default>() {
    const COUNT: usize = 1_000;
    let broker = Mosquitto::builder()
        .extra_config("max_queued_messages 10000")
        .start();
    let subscriber = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&subscriber, "drain/all", QoS::AtLeastOnce).await;
    let publisher = connected::<R>(&broker.uri(), no_retry().max_queued(2 * COUNT)).await;
    let closed = matches!(
        future::select(
            Box::pin(publisher.closed()),
            Box::pin(sleep::<R>(Duration::from_millis(50)))
        )
        .await,
        Either::Left(_)
    );
    assert!(!closed, "closed() resolved on a live connection");
    let outcomes: Vec<_> = (0..COUNT)
        .map(|i| {
            publisher
                .publish("drain/all", format!("{i}"))
                .qos(QoS::AtLeastOnce)
                .start()
        })
        .collect();
    let pending = publisher.stats().queued_publishes;
    assert!(
        pending > 0,
        "every publish completed before the drain began"
    );

    with_timeout::<R, _>(
        Duration::from_secs(30),
        "the drain",
        publisher.disconnect().drain(Duration::from_secs(20)),
    )
    .await
    .unwrap_or_else(|err| panic!("the drain of {pending} publishes failed: {err:?}"));
    with_timeout::<R, _>(BOUND, "closed() after the drain", publisher.closed()).await;
    assert_eq!(
        publisher.stats().queued_publishes,
        0,
        "publishes left after the drain"
    );
    let outcomes =
        with_timeout::<R, _>(BOUND, "the publish futures", future::join_all(outcomes)).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        assert!(
            matches!(outcome, Ok(ReasonCode::Success)),
            "publish #{i} ended with {outcome:?}"
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < COUNT {
        let message = next_message(&subscriber, "a drained message").await;
        let i: usize = message
            .payload_str()
            .expect("UTF-8")
            .parse()
            .expect("a number");
        seen.insert(i);
    }
    assert_eq!(seen.len(), COUNT);
    subscriber.disconnect().await.expect("disconnect");
}

/// A drain cut off by its timeout (the broker is SIGSTOPped, so no PUBACK comes) returns
/// within the timeout plus a small margin, disconnects anyway, and reports how many publishes
/// did not complete; their futures fail with `Closed`.
pub async fn drain_timeout_reports_the_unfinished_publishes<R: Runtime + Default>() {
    const COUNT: usize = 50;
    let mut broker = Mosquitto::start();
    let publisher = connected::<R>(&broker.uri(), no_retry()).await;
    broker.pause();
    let outcomes: Vec<_> = (0..COUNT)
        .map(|i| {
            publisher
                .publish("drain/stuck", format!("{i}"))
                .qos(QoS::AtLeastOnce)
                .start()
        })
        .collect();
    let timeout = Duration::from_millis(500);
    let start = Instant::now();
    let result = with_timeout::<R, _>(
        Duration::from_secs(10),
        "a drain against a stopped broker",
        publisher.disconnect().drain(timeout),
    )
    .await;
    let elapsed = start.elapsed();
    assert!(
        matches!(result, Err(ClientError::DrainTimeout { unfinished: COUNT })),
        "{result:?}"
    );
    assert!(
        elapsed >= timeout && elapsed < timeout + Duration::from_secs(1),
        "the drain took {elapsed:?} for a timeout of {timeout:?}"
    );
    with_timeout::<R, _>(BOUND, "closed() after the drain", publisher.closed()).await;
    let outcomes =
        with_timeout::<R, _>(BOUND, "the publish futures", future::join_all(outcomes)).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        assert!(
            matches!(outcome, Err(ClientError::Closed)),
            "publish #{i} ended with {outcome:?}"
        );
    }
    broker.resume();
}

// ---- refusals reach the caller --------------------------------------------------------------

/// An MQTT 5 client connected to `broker`.
async fn connected_v5<R: Runtime + Default>(broker: &Mosquitto) -> MqttClient<R> {
    connected::<R>(
        &broker.uri(),
        no_retry().protocol_version(ProtocolVersion::V5),
    )
    .await
}

/// Awaits a publish that is to be refused at once.
async fn call<R: Runtime + Default>(
    publishing: sansmqtt_client::Publishing<'_, R>,
) -> Result<ReasonCode, ClientError> {
    with_timeout::<R, _>(BOUND, "a refused publish", publishing.into_future()).await
}

/// The session error a publish failed with.
fn session_error(result: Result<ReasonCode, ClientError>) -> SessionError {
    match result {
        Err(ClientError::Session(err)) => err,
        other => panic!("expected a refusal by the session, got {other:?}"),
    }
}

/// Against mosquitto with `max_packet_size`, a publish larger than the Maximum Packet Size
/// its CONNACK announced fails at once with `PacketTooLarge`, at QoS 0 too (it used to
/// return `Ok` and be dropped); one that fits goes through, and the connection stays up.
pub async fn publish_over_the_maximum_packet_size_fails_the_call<R: Runtime + Default>() {
    let broker = Mosquitto::builder().max_packet_size(200).start();
    let client = connected_v5::<R>(&broker).await;
    subscribe(&client, "limits/size", QoS::AtLeastOnce).await;
    for qos in all_qos() {
        let result = with_timeout::<R, _>(
            BOUND,
            "an oversized publish",
            client
                .publish("limits/size", vec![0u8; 500])
                .qos(qos)
                .into_future(),
        )
        .await;
        assert!(
            matches!(
                session_error(result),
                SessionError::PacketTooLarge { max: 200, size } if size > 500
            ),
            "at {qos:?}"
        );
    }
    // `send_now` refuses the same way.
    let sent_now = client
        .publish("limits/size", vec![0u8; 500])
        .send_now()
        .expect("room in the queue");
    assert!(matches!(
        session_error(sent_now.await),
        SessionError::PacketTooLarge { .. }
    ));
    publish(&client, "limits/size", &[1u8; 100], QoS::AtMostOnce, false).await;
    let message = next_message(&client, "the message that fits").await;
    assert_eq!(message.payload().len(), 100);
    with_timeout::<R, _>(BOUND, "a ping", client.ping())
        .await
        .expect("the connection is still up");
    assert_eq!(
        client.stats().publishes_refused,
        0,
        "refused by the calls, not later"
    );
    client.disconnect().await.expect("disconnect");
}

/// Against mosquitto with `retain_available false` and `max_qos 1`: a retained publish fails
/// with `RetainNotSupported`, QoS 2 with `QoSNotSupported`, a topic alias above the broker's
/// maximum with `TopicAliasNotAllowed` and a wildcard topic with `InvalidTopic`, all at QoS 0
/// too; nothing of it reaches the broker (a subscriber sees only the valid message).
pub async fn publish_forbidden_by_the_connack_fails_the_call<R: Runtime + Default>() {
    let broker = Mosquitto::builder()
        .extra_config("retain_available false\nmax_qos 1\nmax_topic_alias 4")
        .start();
    let client = connected_v5::<R>(&broker).await;
    subscribe(&client, "limits/#", QoS::AtLeastOnce).await;
    let retained = call::<R>(client.publish("limits/r", "x").retain(true)).await;
    assert_eq!(session_error(retained), SessionError::RetainNotSupported);
    let qos2 = call::<R>(client.publish("limits/q", "x").qos(QoS::ExactlyOnce)).await;
    assert_eq!(
        session_error(qos2),
        SessionError::QoSNotSupported {
            requested: QoS::ExactlyOnce,
            maximum: QoS::AtLeastOnce
        }
    );
    let alias = sansmqtt_client::PublishProperties {
        topic_alias: Some(5),
        ..Default::default()
    };
    let aliased = call::<R>(client.publish("limits/a", "x").properties(alias)).await;
    assert_eq!(
        session_error(aliased),
        SessionError::TopicAliasNotAllowed {
            alias: 5,
            maximum: 4
        }
    );
    let wild = call::<R>(client.publish("limits/+", "x")).await;
    assert!(
        matches!(wild, Err(ClientError::InvalidTopic(_))),
        "{wild:?}"
    );
    publish(&client, "limits/ok", b"ok", QoS::AtMostOnce, false).await;
    let message = next_message(&client, "the valid message").await;
    assert_eq!(message.topic(), "limits/ok");
    assert_no_message(
        &client,
        Duration::from_millis(200),
        "only the valid message",
    )
    .await;
    client.disconnect().await.expect("disconnect");
}

/// A QoS 0 publish accepted under one broker's limits and refused by the next connection's
/// (it fails over to a broker with a smaller Maximum Packet Size before the message was
/// sent) is counted and reported as `ConnectionEvent::PublishRefused`, not dropped silently;
/// a QoS 1 publish refused the same way fails its own future.
pub async fn publish_refused_after_acceptance_is_counted_and_reported<R: Runtime + Default>() {
    let mut unlimited = Mosquitto::start();
    let small_port = free_port();
    let small_uri = format!("mqtt://127.0.0.1:{small_port}");
    let config = ClientConfig::default()
        .protocol_version(ProtocolVersion::V5)
        .auto_reconnect(true)
        .reconnect_retries(None)
        .reconnect_initial_interval(Duration::from_millis(300))
        .reconnect_max_interval(Duration::from_millis(300))
        .connect_timeout(BOUND)
        .uris([unlimited.uri(), small_uri.clone()]);
    let client = MqttClient::<R>::new(None, config);
    with_timeout::<R, _>(BOUND, "CONNACK", client.connect(None).into_future())
        .await
        .expect("connect to the unlimited broker");
    let mut events = client.connection_events();
    unlimited.kill();
    wait_for_event::<R, _>(&mut events, BOUND, "ConnectionLost", |event| {
        matches!(event, ConnectionEvent::ConnectionLost(_))
    })
    .await;
    // Accepted under the last CONNACK (no limit): the QoS 0 call succeeds.
    let qos0 = client.publish("limits/later", vec![0u8; 500]).await;
    assert!(matches!(qos0, Ok(ReasonCode::Success)), "{qos0:?}");
    let qos1 = client
        .publish("limits/later", vec![0u8; 500])
        .qos(QoS::AtLeastOnce)
        .start();
    let _small = Mosquitto::builder()
        .max_packet_size(200)
        .extra_config(&format!("listener {small_port} 127.0.0.1"))
        .start();
    let (event, seen) = wait_for_event::<R, _>(
        &mut events,
        Duration::from_secs(10),
        "PublishRefused",
        |event| matches!(event, ConnectionEvent::PublishRefused(_)),
    )
    .await;
    assert!(
        matches!(
            &event,
            ConnectionEvent::PublishRefused(ClientError::Session(SessionError::PacketTooLarge {
                max: 200,
                ..
            }))
        ),
        "{event:?} after {seen:?}"
    );
    assert_eq!(client.stats().publishes_refused, 1);
    let qos1 = with_timeout::<R, _>(BOUND, "the QoS 1 publish", qos1).await;
    assert!(matches!(
        session_error(qos1),
        SessionError::PacketTooLarge { max: 200, .. }
    ));
    client.disconnect().await.expect("disconnect");
}
