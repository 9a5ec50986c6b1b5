//! amqtt fidelity: calls made during an automatic reconnect wait for it, `reconnect()` on a
//! live connection does nothing and counts its attempts as amqtt does, errors that cannot heal
//! end `connect()` at once whatever `reconnect_retries` says, and MQTT 5 against a broker
//! that only speaks 3.1.1.

use std::error::Error as _;

use super::failover::ScriptedCluster;
use super::*;

/// A client that reconnects quickly and forever.
fn reconnecting_forever() -> ClientConfig {
    ClientConfig::default()
        .auto_reconnect(true)
        .reconnect_retries(None)
        .reconnect_initial_interval(Duration::from_millis(50))
        .reconnect_max_interval(Duration::from_millis(200))
        .connect_timeout(BOUND)
}

/// Subscribe, unsubscribe and ping issued while the broker is down wait for the automatic
/// reconnect and complete on the new connection (amqtt makes every call wait), instead of
/// failing with `NotConnected`.
pub async fn calls_during_a_reconnect_wait_for_the_connection<R: Runtime + Default>() {
    let mut broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), reconnecting_forever()).await;
    let mut events = client.connection_events();
    subscribe(&client, "gone/t", QoS::AtLeastOnce).await;
    broker.kill();
    wait_for_event::<R, _>(&mut events, BOUND, "ConnectionLost", |event| {
        matches!(event, ConnectionEvent::ConnectionLost(_))
    })
    .await;

    let down = Duration::from_millis(400);
    let start = Instant::now();
    let calls = future::join3(
        client.subscribe([("wait/#", QoS::AtLeastOnce)]),
        client.unsubscribe(["gone/t"]),
        client.ping(),
    );
    let restart = async {
        sleep::<R>(down).await;
        broker.restart();
    };
    let ((subscribed, unsubscribed, pinged), ()) = with_timeout::<R, _>(
        Duration::from_secs(10),
        "calls made during the reconnect",
        future::join(calls, restart),
    )
    .await;
    assert!(
        start.elapsed() >= down,
        "the calls completed before the broker was back"
    );
    assert_eq!(
        subscribed.expect("subscribe during the reconnect"),
        [ReasonCode::GrantedQoS1]
    );
    unsubscribed.expect("unsubscribe during the reconnect");
    pinged.expect("ping during the reconnect");
    publish(&client, "wait/x", b"after", QoS::AtLeastOnce, false).await;
    let message = next_message(&client, "a message on the subscription made offline").await;
    assert_eq!(message.topic(), "wait/x");
}

/// When reconnecting gives up, the calls waiting for it fail with the reason (not
/// `NotConnected`), bounded by the retry schedule.
pub async fn calls_during_a_reconnect_fail_when_reconnecting_gives_up<R: Runtime + Default>() {
    let mut broker = Mosquitto::start();
    let config = reconnecting_forever().reconnect_retries(Some(1));
    let client = connected::<R>(&broker.uri(), config).await;
    let mut events = client.connection_events();
    broker.kill();
    wait_for_event::<R, _>(&mut events, BOUND, "ConnectionLost", |event| {
        matches!(event, ConnectionEvent::ConnectionLost(_))
    })
    .await;
    let (subscribed, pinged) = with_timeout::<R, _>(
        BOUND,
        "calls failing when reconnecting gives up",
        future::join(
            client.subscribe([("never/#", QoS::AtMostOnce)]),
            client.ping(),
        ),
    )
    .await;
    for result in [subscribed.map(drop), pinged] {
        let err = result.expect_err("no broker to answer");
        assert!(
            matches!(err, ClientError::Io(_)),
            "the reason reconnecting gave up (connection refused), got {err:?}"
        );
    }
    wait_for_event::<R, _>(&mut events, BOUND, "Closed", |event| {
        matches!(event, ConnectionEvent::Closed)
    })
    .await;
}

/// amqtt: `reconnect()` on a live connection does nothing and answers at once; ours used to
/// drop the connection and open a new one.
pub async fn reconnect_on_a_live_connection_does_nothing<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&client, "live/#", QoS::AtLeastOnce).await;
    let mut events = client.connection_events();
    let connack = with_timeout::<R, _>(BOUND, "reconnect", client.reconnect().into_future())
        .await
        .expect("reconnect on a live connection");
    assert_eq!(connack.reason_code, ReasonCode::Success);
    // Same connection: the subscription made on it still delivers, and nothing happened.
    publish(&client, "live/x", b"same", QoS::AtLeastOnce, false).await;
    next_message(&client, "a message on the unchanged connection").await;
    sleep::<R>(Duration::from_millis(200)).await;
    let seen: Vec<ConnectionEvent> =
        std::iter::from_fn(|| futures_util::FutureExt::now_or_never(events.next()).flatten())
            .collect();
    assert!(
        seen.is_empty(),
        "reconnect() changed the connection: {seen:?}"
    );
    // One connection is the broker's own readiness probe at start-up.
    let logins = broker.log().matches("New client connected").count();
    assert_eq!(logins, 1, "broker log:\n{}", broker.log());
}

/// amqtt's attempt counts, on a server that accepts the first connection and then closes
/// every later one before CONNACK (a transient failure): `reconnect()` makes
/// `reconnect_retries + 1` attempts even with `auto_reconnect` off, and `connect()` with
/// `auto_reconnect` makes one more (its own, then a reconnect's).
pub async fn reconnect_and_connect_retry_as_many_times_as_amqtt<R: Runtime + Default>() {
    let server = ScriptedCluster::start(
        |index| {
            if index == 0 {
                CONNACK_OK.to_vec()
            } else {
                Vec::new()
            }
        },
        Duration::ZERO,
    );
    let config = ClientConfig::default()
        .auto_reconnect(false)
        .reconnect_retries(Some(2))
        .reconnect_initial_interval(Duration::from_millis(20))
        .reconnect_max_interval(Duration::from_millis(50))
        .connect_timeout(BOUND);
    let client = MqttClient::<R>::new(None, config.clone());
    let mut events = client.connection_events();
    with_timeout::<R, _>(
        BOUND,
        "CONNACK",
        client.connect(server.uri.as_str()).into_future(),
    )
    .await
    .expect("the first connection is accepted");
    // The server closes it at once; without auto_reconnect the client stops.
    wait_for_event::<R, _>(&mut events, BOUND, "Closed", |event| {
        matches!(event, ConnectionEvent::Closed)
    })
    .await;
    let result = with_timeout::<R, _>(BOUND, "reconnect", client.reconnect().into_future()).await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(
        server.connects().len(),
        1 + 3,
        "reconnect(): 1 + reconnect_retries attempts"
    );

    let eager = MqttClient::<R>::new(None, config.auto_reconnect(true));
    let result = with_timeout::<R, _>(
        BOUND,
        "a failing connect",
        eager.connect(server.uri.as_str()).into_future(),
    )
    .await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(
        server.connects().len(),
        4 + 4,
        "connect(): its own attempt, then 1 + reconnect_retries"
    );
}

/// A certificate the TLS handshake rejects ends `connect()` at once even with retries
/// forever; a transient failure (refused TCP connection) keeps the backoff.
pub async fn rejected_certificate_is_final_even_with_retries_forever<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let config = reconnecting_forever().ca_file(certs.other_ca_file());
    let client = MqttClient::<R>::new(None, config);
    let mut events = client.connection_events();
    let start = Instant::now();
    let result = with_timeout::<R, _>(
        BOUND,
        "a connect with an untrusted certificate",
        client.connect(broker.tls_uri().as_str()).into_future(),
    )
    .await;
    let err = result.expect_err("the certificate is not trusted");
    assert!(
        matches!(err, ClientError::Tls(TlsError::Rustls(_)))
            && format!("{err:?}").contains("UnknownIssuer"),
        "{err:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    assert_closed_without_retry::<R, _>(&mut events, "a rejected certificate").await;

    // Transient: a closed port is tried again.
    let closed = format!("mqtt://127.0.0.1:{}", free_port());
    let client = MqttClient::<R>::new(None, reconnecting_forever().reconnect_retries(Some(1)));
    let mut events = client.connection_events();
    let result = with_timeout::<R, _>(
        BOUND,
        "a refused connect",
        client.connect(closed.as_str()).into_future(),
    )
    .await;
    assert!(matches!(result, Err(ClientError::Io(_))), "{result:?}");
    let (_, seen) = wait_for_event::<R, _>(&mut events, BOUND, "Closed", |event| {
        matches!(event, ConnectionEvent::Closed)
    })
    .await;
    let retries = seen
        .iter()
        .filter(|event| matches!(event, ConnectionEvent::Reconnecting { .. }))
        .count();
    assert_eq!(retries, 2, "a refused TCP connection is retried: {seen:?}");
}

/// nats-server speaks MQTT 3.1.1 only and answers an MQTT 5 CONNECT with `20 02 00 01`:
/// that is `UnsupportedProtocolVersion`, final even with retries forever; with the fallback
/// on, the client connects again with 3.1.1 at once and works.
pub async fn mqtt5_against_a_311_only_broker_refuses_or_falls_back<R: Runtime + Default>() {
    let nats = Nats::start();
    let v5 = reconnecting_forever().protocol_version(ProtocolVersion::V5);
    let client = MqttClient::<R>::new(None, v5.clone());
    let start = Instant::now();
    let result = with_timeout::<R, _>(
        BOUND,
        "an MQTT 5 connect to nats-server",
        client.connect(nats.mqtt_uri().as_str()).into_future(),
    )
    .await;
    assert!(
        matches!(&result, Err(ClientError::Connect(reason))
            if reason.code == ReasonCode::UnsupportedProtocolVersion),
        "{result:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );

    let client = MqttClient::<R>::new(None, v5.fallback_to_v311(true));
    let mut events = client.connection_events();
    with_timeout::<R, _>(
        BOUND,
        "a connect falling back to 3.1.1",
        client.connect(nats.mqtt_uri().as_str()).into_future(),
    )
    .await
    .expect("nats-server accepts MQTT 3.1.1");
    let (_, seen) = wait_for_event::<R, _>(&mut events, BOUND, "Connected", |event| {
        matches!(event, ConnectionEvent::Connected { .. })
    })
    .await;
    assert!(
        seen.is_empty(),
        "the fallback is no lost connection: {seen:?}"
    );
    subscribe(&client, "fallback/t", QoS::AtLeastOnce).await;
    publish(&client, "fallback/t", b"v311", QoS::AtLeastOnce, false).await;
    let message = next_message(&client, "a message over the 3.1.1 fallback").await;
    assert_eq!(&message.payload()[..], b"v311");
}

/// A broker that closes the connection on an MQTT 5 CONNECT without any CONNACK (as some
/// 3.1.1 brokers do): with the fallback, the second CONNECT is MQTT 3.1.1 (protocol level 4)
/// and is accepted.
pub async fn mqtt5_connect_closed_without_connack_falls_back_to_311<R: Runtime + Default>() {
    let levels = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding");
    let uri = format!(
        "mqtt://127.0.0.1:{}",
        listener.local_addr().expect("address").port()
    );
    let server = {
        let levels = levels.clone();
        thread::spawn(move || {
            let mut kept = Vec::new();
            for _ in 0..2 {
                let (mut stream, _) =
                    accept_within(&listener, BOUND).expect("the client never came");
                stream.set_read_timeout(Some(BOUND)).expect("read timeout");
                let (first, body) = read_packet(&mut stream).expect("reading CONNECT");
                assert_eq!(first, 0x10, "not a CONNECT");
                // Protocol name "MQTT" (2 + 4 bytes), then the level.
                let level = body[6];
                levels.lock().expect("levels").push(level);
                if level == 4 {
                    stream.write_all(&CONNACK_OK).expect("CONNACK");
                    kept.push(stream);
                }
            }
            kept
        })
    };
    let config = no_retry()
        .protocol_version(ProtocolVersion::V5)
        .fallback_to_v311(true);
    let client = MqttClient::<R>::new(None, config);
    let connack =
        with_timeout::<R, _>(BOUND, "CONNACK", client.connect(uri.as_str()).into_future()).await;
    assert!(connack.is_ok(), "{connack:?}");
    let _kept = join_thread::<R, _>(server).await;
    assert_eq!(*levels.lock().expect("levels"), [5, 4]);
}

/// A PUBACK answering a QoS 2 PUBLISH (RabbitMQ downgrades QoS 2 that way) is reported as
/// what it is: an acknowledgement of the wrong type for an identifier in flight, not one for
/// an unknown identifier.
pub async fn puback_for_a_qos2_publish_is_reported_as_an_unexpected_ack<R: Runtime + Default>() {
    let (uri, server) = scripted_server(|stream| {
        stream.write_all(&CONNACK_OK).expect("CONNACK");
        let (first, body) = read_packet(stream).expect("reading PUBLISH");
        assert_eq!(first & 0xF6, 0x34, "a QoS 2 PUBLISH");
        // Topic length, topic, then the packet identifier.
        let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let id = [body[2 + topic_len], body[3 + topic_len]];
        stream
            .write_all(&[0x40, 0x02, id[0], id[1]])
            .expect("PUBACK");
        wait_for_close(stream, BOUND)
    });
    let client = MqttClient::<R>::new(None, no_retry());
    let mut events = client.connection_events();
    with_timeout::<R, _>(BOUND, "CONNACK", client.connect(uri.as_str()).into_future())
        .await
        .expect("connect to the scripted server");
    let result = client
        .publish("rabbit/t", b"exactly once".to_vec())
        .qos(QoS::ExactlyOnce)
        .ack_timeout(BOUND)
        .await;
    let unexpected = |err: &ClientError| {
        matches!(
            err,
            ClientError::Protocol(ProtocolError::UnexpectedAck {
                packet: sansmqtt_client::proto::PacketType::PubAck,
                expected: sansmqtt_client::proto::PacketType::PubRec,
                ..
            })
        )
    };
    assert!(result.as_ref().is_err_and(&unexpected), "{result:?}");
    let err = result.expect_err("checked above");
    assert!(
        err.source().is_some_and(|cause| cause
            .to_string()
            .contains("PUBACK for packet identifier 1, which awaits PUBREC")),
        "{err}: {:?}",
        err.source().map(ToString::to_string)
    );
    let (event, _) = wait_for_event::<R, _>(&mut events, BOUND, "ConnectionLost", |event| {
        matches!(event, ConnectionEvent::ConnectionLost(_))
    })
    .await;
    assert!(
        matches!(&event, ConnectionEvent::ConnectionLost(err) if unexpected(err)),
        "{event:?}"
    );
    let closed = join_thread::<R, _>(server).await;
    assert!(closed.is_some(), "the client did not close the connection");
}

// ---- MQTT 5: topic aliases ------------------------------------------------------------------

/// An outgoing topic alias above the broker's Topic Alias Maximum (mosquitto: 10) is refused
/// locally with a typed error, and the connection stays up (sent, the broker would
/// disconnect with 0x94). Automatic aliasing works and survives a broker restart: aliases
/// are per connection, so the first publish on the new one carries the full topic again.
pub async fn topic_aliases_are_bounded_by_the_broker_and_reset_per_connection<
    R: Runtime + Default,
>() {
    let mut broker = Mosquitto::start();
    let config = reconnecting_forever()
        .protocol_version(ProtocolVersion::V5)
        .outgoing_topic_aliases(true);
    let client = connected::<R>(&broker.uri(), config).await;
    let mut events = client.connection_events();

    let properties = sansmqtt_client::PublishProperties {
        topic_alias: Some(11),
        ..Default::default()
    };
    let result = client
        .publish("alias/too-high", b"x".to_vec())
        .qos(QoS::AtLeastOnce)
        .properties(properties)
        .ack_timeout(BOUND)
        .await;
    assert!(
        matches!(
            result,
            Err(ClientError::Session(
                sansmqtt_client::SessionError::TopicAliasNotAllowed {
                    alias: 11,
                    maximum: 10
                }
            ))
        ),
        "{result:?}"
    );

    subscribe(&client, "alias/#", QoS::AtLeastOnce).await;
    for round in 0..2 {
        for i in 0..3 {
            let payload = format!("{round}-{i}").into_bytes();
            publish(&client, "alias/t", &payload, QoS::AtLeastOnce, false).await;
            let message = next_message(&client, "an aliased publish").await;
            assert_eq!(message.topic(), "alias/t");
            assert_eq!(&message.payload()[..], &payload[..]);
        }
        if round == 0 {
            broker.kill();
            broker.restart();
            wait_for_event::<R, _>(&mut events, Duration::from_secs(10), "Connected", |event| {
                matches!(event, ConnectionEvent::Connected { .. })
            })
            .await;
        }
    }
    let (lost, _) = with_timeout::<R, _>(BOUND, "the event stream", async {
        sleep::<R>(Duration::from_millis(100)).await;
        (
            std::iter::from_fn(|| futures_util::FutureExt::now_or_never(events.next()).flatten())
                .filter(|event| matches!(event, ConnectionEvent::ConnectionLost(_)))
                .count(),
            (),
        )
    })
    .await;
    assert_eq!(
        lost, 0,
        "the broker dropped the connection after the restart"
    );
}

/// The Topic Alias Maximum the client announces in CONNECT: none (0) by default, the
/// configured one otherwise. Read from the CONNECT bytes by a scripted server.
pub async fn announced_topic_alias_maximum_is_zero_unless_configured<R: Runtime + Default>() {
    for (config, expected) in [
        (no_retry(), None),
        (no_retry().topic_alias_maximum(5), Some(5u16)),
    ] {
        let (uri, server) = scripted_server_with_connect(|stream, _| {
            stream.write_all(&CONNACK_V5_OK).expect("CONNACK");
            wait_for_close(stream, BOUND)
        });
        let client = MqttClient::<R>::new(None, config.protocol_version(ProtocolVersion::V5));
        with_timeout::<R, _>(BOUND, "CONNACK", client.connect(uri.as_str()).into_future())
            .await
            .expect("connect");
        client.disconnect().await.expect("disconnect");
        let (connect, _) = join_thread::<R, _>(server).await;
        let properties = connect_properties(&connect);
        let announced = properties
            .iter()
            .find(|(id, _)| *id == 0x22)
            .map(|(_, value)| u16::from_be_bytes([value[0], value[1]]));
        assert_eq!(announced, expected, "CONNECT properties {properties:?}");
    }
}

/// An MQTT 5 CONNACK accepting, no session, no properties.
const CONNACK_V5_OK: [u8; 5] = [0x20, 0x03, 0x00, 0x00, 0x00];

/// A one-connection server like `scripted_server`, whose script also gets the CONNECT body.
pub(super) fn scripted_server_with_connect<T: Send + 'static>(
    script: impl FnOnce(&mut TcpStream, &[u8]) -> T + Send + 'static,
) -> (String, JoinHandle<(Vec<u8>, T)>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding");
    let port = listener.local_addr().expect("address").port();
    let handle = thread::spawn(move || {
        let (mut stream, _) = accept_within(&listener, BOUND).expect("the client never came");
        stream.set_read_timeout(Some(BOUND)).expect("read timeout");
        let (first, body) = read_packet(&mut stream).expect("reading CONNECT");
        assert_eq!(first, 0x10, "the first packet is not CONNECT");
        let result = script(&mut stream, &body);
        (body, result)
    });
    (format!("mqtt://127.0.0.1:{port}"), handle)
}

/// Reads a variable byte integer at `*at`.
pub(super) fn read_var_int(bytes: &[u8], at: &mut usize) -> usize {
    let mut value = 0;
    for shift in 0..4 {
        let byte = bytes[*at];
        *at += 1;
        value |= usize::from(byte & 0x7F) << (7 * shift);
        if byte & 0x80 == 0 {
            break;
        }
    }
    value
}

/// The properties of an MQTT 5 CONNECT body, as (identifier, raw value) pairs.
pub(super) fn connect_properties(connect: &[u8]) -> Vec<(u8, Vec<u8>)> {
    // Protocol name (2 + 4), level, flags, keep alive.
    properties_at(connect, 10)
}

/// The MQTT 5 properties starting (with their length) at `at` of a packet body, as
/// (identifier, raw value) pairs.
pub(super) fn properties_at(connect: &[u8], mut at: usize) -> Vec<(u8, Vec<u8>)> {
    let len = read_var_int(connect, &mut at);
    let end = at + len;
    let mut properties = Vec::new();
    let string_len =
        |bytes: &[u8], at: usize| usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
    while at < end {
        let id = connect[at];
        at += 1;
        let size = match id {
            0x17 | 0x19 => 1,
            0x21 | 0x22 => 2,
            0x11 | 0x27 => 4,
            0x15 | 0x16 => 2 + string_len(connect, at),
            0x26 => {
                let key = 2 + string_len(connect, at);
                key + 2 + string_len(connect, at + key)
            }
            other => panic!("unexpected CONNECT property {other:#x}"),
        };
        properties.push((id, connect[at..at + size].to_vec()));
        at += size;
    }
    properties
}

// ---- MQTT 5: subscription options and identifiers, will, CONNECT and DISCONNECT -----------

fn v5_client_config() -> ClientConfig {
    no_retry().protocol_version(ProtocolVersion::V5)
}

/// `publish(..).acknowledgement()` returns the whole final acknowledgement: mosquitto 5
/// answers a QoS 1 publish nobody subscribes to with a PUBACK saying "no matching
/// subscribers" (a success), one somebody subscribes to with `Success`; a QoS 2 flow ends
/// with its PUBCOMP, `Success` (the "no matching subscribers" was on the PUBREC).
pub async fn mqtt5_publish_acknowledgement_carries_the_final_ack<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), v5_client_config()).await;
    for (qos, code) in [
        (QoS::AtLeastOnce, ReasonCode::NoMatchingSubscribers),
        (QoS::ExactlyOnce, ReasonCode::Success),
    ] {
        let ack = with_timeout::<R, _>(
            BOUND,
            "the final acknowledgement",
            client.publish("ack/nobody", "x").qos(qos).acknowledgement(),
        )
        .await
        .expect("publish");
        assert_eq!(ack.reason_code, code, "{qos:?}");
    }
    subscribe(&client, "ack/somebody", QoS::AtLeastOnce).await;
    let ack = with_timeout::<R, _>(
        BOUND,
        "the final acknowledgement",
        client
            .publish("ack/somebody", "x")
            .qos(QoS::AtLeastOnce)
            .acknowledgement(),
    )
    .await
    .expect("publish");
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert_eq!(ack.reason_string(), None);
}

/// Subscription options and identifiers on mosquitto 5: no-local keeps our own messages
/// away, the subscription identifier comes back on every matching message, retain handling
/// "do not send" suppresses the retained message, retain-as-published keeps the RETAIN flag
/// of live messages; UNSUBSCRIBE with user properties; the whole SUBACK / UNSUBACK is returned.
pub async fn mqtt5_subscription_options_identifiers_and_acks<R: Runtime + Default>() {
    use sansmqtt_client::proto::properties::SubscriptionId;
    use sansmqtt_client::proto::{RetainHandling, SubscribeFilter};
    use sansmqtt_client::{SubscribeProperties, UnsubscribeProperties, UserProperty};

    let broker = Mosquitto::start();
    let me = connected::<R>(&broker.uri(), v5_client_config()).await;
    let other = connected::<R>(&broker.uri(), v5_client_config()).await;
    publish(&other, "opt/kept", b"retained", QoS::AtLeastOnce, true).await;

    let mut local = SubscribeFilter::new("opt/local", QoS::AtLeastOnce);
    local.options.no_local = true;
    let mut kept = SubscribeFilter::new("opt/kept", QoS::AtLeastOnce);
    kept.options.retain_handling = RetainHandling::DoNotSend;
    kept.options.retain_as_published = true;
    let properties = SubscribeProperties {
        subscription_identifier: SubscriptionId::new(7),
        user_properties: vec![UserProperty::new("purpose", "test")],
    };
    let ack = with_timeout::<R, _>(
        BOUND,
        "SUBACK",
        me.subscribe_with([local, kept], properties),
    )
    .await
    .expect("subscribe_with");
    assert_eq!(
        ack.reason_codes,
        [ReasonCode::GrantedQoS1, ReasonCode::GrantedQoS1]
    );
    assert_no_message(
        &me,
        Duration::from_millis(200),
        "retain handling: do not send",
    )
    .await;

    publish(&me, "opt/local", b"mine", QoS::AtLeastOnce, false).await;
    publish(&other, "opt/local", b"theirs", QoS::AtLeastOnce, false).await;
    let message = next_message(&me, "the other client's message").await;
    assert_eq!(
        &message.payload()[..],
        b"theirs",
        "no-local let our own through"
    );
    assert_eq!(message.subscription_identifiers().collect::<Vec<_>>(), [7]);

    publish(&other, "opt/kept", b"live", QoS::AtLeastOnce, true).await;
    let message = next_message(&me, "a live retained publish").await;
    assert_eq!(&message.payload()[..], b"live");
    assert!(message.retain(), "retain-as-published keeps the flag");
    assert_eq!(message.subscription_identifiers().collect::<Vec<_>>(), [7]);

    let properties = UnsubscribeProperties {
        user_properties: vec![UserProperty::new("purpose", "test")],
    };
    let ack = with_timeout::<R, _>(
        BOUND,
        "UNSUBACK",
        me.unsubscribe_with(["opt/local", "opt/none"], properties),
    )
    .await
    .expect("unsubscribe_with");
    assert_eq!(
        ack.reason_codes,
        [ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
    );
}

/// Will properties on mosquitto 5: the will waits for its delay interval (the session
/// outlives the connection) and carries its content type and user properties.
pub async fn mqtt5_will_properties_delay_and_content_type<R: Runtime + Default>() {
    use sansmqtt_client::{UserProperty, WillProperties};

    let broker = Mosquitto::start();
    let watcher = connected::<R>(&broker.uri(), v5_client_config()).await;
    subscribe(&watcher, "wills/#", QoS::AtLeastOnce).await;
    let mut proxy = Proxy::start(broker.port());
    let properties = WillProperties {
        will_delay_interval: Some(1),
        content_type: Some("text/plain".into()),
        user_properties: vec![UserProperty::new("reason", "test")],
        ..Default::default()
    };
    let config = v5_client_config()
        .session_expiry_interval(Duration::from_secs(60))
        .will(will("wills/delayed", b"gone a while", QoS::AtLeastOnce))
        .will_properties(properties);
    let doomed = connected::<R>(&proxy.uri(), config).await;
    with_timeout::<R, _>(BOUND, "PINGRESP through the proxy", doomed.ping())
        .await
        .expect("ping through the proxy");
    proxy.kill();
    let killed = Instant::now();
    assert_no_message(
        &watcher,
        Duration::from_millis(600),
        "the will waits its delay",
    )
    .await;
    let message = next_message(&watcher, "the delayed will").await;
    assert!(
        killed.elapsed() >= Duration::from_millis(900),
        "{:?}",
        killed.elapsed()
    );
    assert_eq!(&message.payload()[..], b"gone a while");
    assert_eq!(
        message.properties().content_type.as_deref(),
        Some("text/plain")
    );
    assert_eq!(
        message.properties().user_properties,
        [UserProperty::new("reason", "test")]
    );
    drop(doomed);
}

/// `disconnect().reason_code(..)` sends the MQTT 5 reason code: "disconnect with will message" (0x04)
/// makes mosquitto publish the will after a clean DISCONNECT.
pub async fn mqtt5_disconnect_with_reason_code_publishes_the_will<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let watcher = connected::<R>(&broker.uri(), v5_client_config()).await;
    subscribe(&watcher, "wills/#", QoS::AtLeastOnce).await;
    let config = v5_client_config().will(will("wills/asked", b"on purpose", QoS::AtLeastOnce));
    let client = connected::<R>(&broker.uri(), config).await;
    with_timeout::<R, _>(
        BOUND,
        "DISCONNECT 0x04",
        client
            .disconnect()
            .reason_code(ReasonCode::DisconnectWithWillMessage),
    )
    .await
    .expect("disconnect with a reason code");
    let message = next_message(&watcher, "the will asked for").await;
    assert_eq!(&message.payload()[..], b"on purpose");
}

/// CONNECT carries the configured MQTT 5 properties (user properties, request problem and
/// response information), read by a scripted server.
pub async fn mqtt5_connect_properties_are_sent<R: Runtime + Default>() {
    use sansmqtt_client::{ConnectProperties, UserProperty};

    let (uri, server) = scripted_server_with_connect(|stream, _| {
        stream.write_all(&CONNACK_V5_OK).expect("CONNACK");
        wait_for_close(stream, BOUND)
    });
    let properties = ConnectProperties {
        request_problem_information: Some(false),
        request_response_information: Some(true),
        user_properties: vec![UserProperty::new("app", "suite")],
        ..Default::default()
    };
    let client = MqttClient::<R>::new(None, v5_client_config().connect_properties(properties));
    with_timeout::<R, _>(BOUND, "CONNACK", client.connect(uri.as_str()).into_future())
        .await
        .expect("connect");
    client.disconnect().await.expect("disconnect");
    let (connect, _) = join_thread::<R, _>(server).await;
    let properties = connect_properties(&connect);
    let find = |id: u8| {
        properties
            .iter()
            .find(|(found, _)| *found == id)
            .map(|(_, value)| value.clone())
    };
    assert_eq!(
        find(0x17),
        Some(vec![0]),
        "request problem information: {properties:?}"
    );
    assert_eq!(
        find(0x19),
        Some(vec![1]),
        "request response information: {properties:?}"
    );
    assert_eq!(
        find(0x26),
        Some(b"\x00\x03app\x00\x05suite".to_vec()),
        "user property: {properties:?}"
    );
}

// ---- MQTT 5: request / response -------------------------------------------------------------

/// `request` against a responder on mosquitto 5: each of three concurrent requests gets its
/// own reply (matched by Correlation Data), replies never reach `deliver_message`, and a
/// request nobody answers times out.
pub async fn mqtt5_request_gets_its_own_reply<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let responder = connected::<R>(&broker.uri(), v5_client_config()).await;
    subscribe(&responder, "service/upper", QoS::AtLeastOnce).await;
    let requester = connected::<R>(&broker.uri(), v5_client_config()).await;

    let serve = async {
        for _ in 0..3 {
            let request = next_message(&responder, "a request").await;
            let reply = responder
                .respond(&request, request.payload().to_ascii_uppercase())
                .expect("the request names a response topic");
            reply.await.expect("publishing the reply");
        }
    };
    let ask = |text: &'static str| {
        requester
            .request("service/upper", text)
            .timeout(BOUND)
            .into_future()
    };
    let ((a, b, c), ()) = with_timeout::<R, _>(
        Duration::from_secs(10),
        "three requests and their replies",
        future::join(future::join3(ask("one"), ask("two"), ask("three")), serve),
    )
    .await;
    for (reply, expected) in [(a, &b"ONE"[..]), (b, b"TWO"), (c, b"THREE")] {
        let reply = reply.expect("a reply");
        assert_eq!(&reply.payload()[..], expected);
        assert_eq!(
            reply.topic(),
            format!("responses/{}", requester.client_id())
        );
    }
    assert_no_message(
        &requester,
        Duration::from_millis(100),
        "replies go to request()",
    )
    .await;

    let unanswered = requester
        .request("service/nobody", "hello?")
        .timeout(Duration::from_millis(300))
        .await;
    assert!(
        matches!(unanswered, Err(ClientError::Timeout)),
        "{unanswered:?}"
    );
}

/// A client that also serves its own request topic receives its request back, carrying the
/// request's own Correlation Data; `request` must not take that for the reply: a reply is
/// what arrives on the response topic.
pub async fn mqtt5_request_ignores_its_own_request_coming_back<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), v5_client_config()).await;
    subscribe(&client, "service/echo", QoS::AtLeastOnce).await;

    let serve = async {
        let request = next_message(&client, "its own request").await;
        assert_eq!(request.topic(), "service/echo");
        let reply = client
            .respond(&request, "REPLY")
            .expect("the request names a response topic");
        reply.await.expect("publishing the reply");
    };
    let ask = client
        .request("service/echo", "question")
        .timeout(BOUND)
        .into_future();
    let (reply, ()) = with_timeout::<R, _>(
        Duration::from_secs(10),
        "a request answered by the client itself",
        future::join(ask, serve),
    )
    .await;
    let reply = reply.expect("a reply");
    assert_eq!(&reply.payload()[..], b"REPLY", "the reply, not the request");
    assert_eq!(reply.topic(), format!("responses/{}", client.client_id()));
}

// ---- MQTT 5: enhanced authentication --------------------------------------------------------

/// How the scripted broker of the HMAC challenge behaves.
#[derive(Clone, Copy)]
enum Broker {
    /// Knows the key: checks the client's proof and proves itself.
    Honest(&'static [u8]),
    /// Does not know the key: accepts any proof and sends a made-up one.
    Impostor,
}

/// A binary property value (two-byte length, then the bytes) without its length.
fn binary(value: &[u8]) -> &[u8] {
    &value[2..]
}

/// An MQTT 5 packet `first` with `head` bytes, then properties method + data.
fn auth_packet(first: u8, head: &[u8], data: &[u8]) -> Vec<u8> {
    let method = crate::auth::METHOD.as_bytes();
    let mut properties = vec![0x15];
    properties.extend_from_slice(&u16::try_from(method.len()).expect("short").to_be_bytes());
    properties.extend_from_slice(method);
    properties.push(0x16);
    properties.extend_from_slice(&u16::try_from(data.len()).expect("short").to_be_bytes());
    properties.extend_from_slice(data);
    let mut body = head.to_vec();
    body.extend(var_int(properties.len()));
    body.extend(properties);
    let mut packet = vec![first];
    packet.extend(var_int(body.len()));
    packet.extend(body);
    packet
}

/// The broker's side of `HMAC-SHA256-CHALLENGE` (see `mqtt_test_support::auth`): returns
/// whether it accepted the client.
fn serve_hmac_challenge(stream: &mut TcpStream, connect: &[u8], broker: Broker) -> bool {
    use crate::auth::{METHOD, nonce, proof, verify};

    let properties = connect_properties(connect);
    let find = |properties: &[(u8, Vec<u8>)], id: u8| {
        properties
            .iter()
            .find(|(found, _)| *found == id)
            .map(|(_, value)| binary(value).to_vec())
            .unwrap_or_else(|| panic!("property {id:#x} missing: {properties:?}"))
    };
    assert_eq!(find(&properties, 0x15), METHOD.as_bytes(), "method");
    let client_nonce = find(&properties, 0x16);
    let server_nonce = nonce();
    stream
        .write_all(&auth_packet(0xF0, &[0x18], &server_nonce))
        .expect("AUTH challenge");
    let (first, body) = read_packet(stream).expect("reading the AUTH answer");
    assert_eq!(
        (first, body[0]),
        (0xF0, 0x18),
        "AUTH continue from the client"
    );
    let answer = find(&properties_at(&body, 1), 0x16);
    let (accepted, server_proof) = match broker {
        Broker::Honest(key) => (
            verify(key, b"client", &client_nonce, &server_nonce, &answer),
            proof(key, b"server", &server_nonce, &client_nonce),
        ),
        Broker::Impostor => (true, nonce().repeat(2)),
    };
    if accepted {
        stream
            .write_all(&auth_packet(0x20, &[0x00, 0x00], &server_proof))
            .expect("CONNACK");
    } else {
        // Not authorized, no properties.
        stream
            .write_all(&[0x20, 0x03, 0x00, 0x87, 0x00])
            .expect("CONNACK refusal");
    }
    wait_for_close(stream, BOUND);
    accepted
}

/// Enhanced authentication through the `Authenticator` hook against a scripted broker, with
/// the worked HMAC-SHA256 challenge/response: the right key connects; a wrong key is refused
/// by the broker (CONNACK "not authorized"); a broker that cannot prove it knows the key is
/// refused by the client (`ClientError::Auth`). Failures are final even with retries forever.
pub async fn mqtt5_enhanced_authentication_challenge_response<R: Runtime + Default>() {
    use crate::auth::HmacChallenge;

    const KEY: &[u8] = b"correct horse battery staple";
    for (client_key, broker) in [
        (KEY, Broker::Honest(KEY)),
        (&b"wrong key"[..], Broker::Honest(KEY)),
        (KEY, Broker::Impostor),
    ] {
        let (uri, server) = scripted_server_with_connect(move |stream, connect| {
            serve_hmac_challenge(stream, connect, broker)
        });
        let config = reconnecting_forever()
            .protocol_version(ProtocolVersion::V5)
            .authenticator(HmacChallenge::new(client_key));
        let client = MqttClient::<R>::new(None, config);
        let result = with_timeout::<R, _>(
            BOUND,
            "an enhanced-authentication connect",
            client.connect(uri.as_str()).into_future(),
        )
        .await;
        let honest = matches!(broker, Broker::Honest(_));
        match (client_key == KEY, honest) {
            (true, true) => {
                assert!(result.is_ok(), "{result:?}");
                client.disconnect().await.expect("disconnect");
            }
            (false, _) => assert!(
                matches!(&result, Err(ClientError::Connect(reason))
                    if reason.code == ReasonCode::NotAuthorized),
                "{result:?}"
            ),
            (true, false) => assert!(
                matches!(
                    &result,
                    Err(ClientError::Auth(
                        sansmqtt_client::AuthError::ServerUnverified
                    ))
                ),
                "{result:?}"
            ),
        }
        let (_, accepted) = join_thread::<R, _>(server).await;
        assert_eq!(accepted, client_key == KEY || !honest);
    }
}

/// Once a broker accepted MQTT 5, a later hang-up before CONNACK (a restarting broker) does
/// not make the client fall back to 3.1.1 for good: it reconnects with MQTT 5.
pub async fn mqtt5_fallback_is_not_taken_after_mqtt5_was_accepted<R: Runtime + Default>() {
    let levels = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding");
    let uri = format!(
        "mqtt://127.0.0.1:{}",
        listener.local_addr().expect("address").port()
    );
    let server = {
        let levels = levels.clone();
        thread::spawn(move || {
            let mut kept = Vec::new();
            for index in 0..3 {
                let (mut stream, _) =
                    accept_within(&listener, BOUND).expect("the client never came");
                stream.set_read_timeout(Some(BOUND)).expect("read timeout");
                let (first, body) = read_packet(&mut stream).expect("reading CONNECT");
                assert_eq!(first, 0x10, "not a CONNECT");
                let level = body[6];
                levels.lock().expect("levels").push(level);
                let connack: &[u8] = if level == 5 {
                    &CONNACK_V5_OK
                } else {
                    &CONNACK_OK
                };
                match index {
                    // Accepted, then dropped; then a hang-up before CONNACK.
                    0 => stream.write_all(connack).expect("CONNACK"),
                    1 => {}
                    _ => {
                        stream.write_all(connack).expect("CONNACK");
                        kept.push(stream);
                    }
                }
            }
            kept
        })
    };
    let config = reconnecting_forever()
        .reconnect_initial_interval(Duration::from_millis(20))
        .protocol_version(ProtocolVersion::V5)
        .fallback_to_v311(true);
    let client = MqttClient::<R>::new(None, config);
    let mut events = client.connection_events();
    with_timeout::<R, _>(BOUND, "CONNACK", client.connect(uri.as_str()).into_future())
        .await
        .expect("the first connection is accepted");
    wait_for_event::<R, _>(&mut events, BOUND, "Connected", |event| {
        matches!(event, ConnectionEvent::Connected { .. })
    })
    .await;
    wait_for_event::<R, _>(&mut events, BOUND, "Connected again", |event| {
        matches!(event, ConnectionEvent::Connected { .. })
    })
    .await;
    let _kept = join_thread::<R, _>(server).await;
    assert_eq!(*levels.lock().expect("levels"), [5, 5, 5]);
}
