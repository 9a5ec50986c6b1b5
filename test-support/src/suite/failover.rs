//! Failover and reconnect backoff against scripted servers: broker lists walked in rounds,
//! bounded attempt rates against servers that refuse everyone, the grace rule for
//! connections dropped right after CONNACK, and MQTT 5 Server References.
//!
//! The scripted servers accept any number of connections on their own thread and record
//! when each CONNECT arrived, so the tests check the client's schedule from the server's side
//! (real sockets, real timers) as well as from its `Reconnecting` events.

use futures_util::FutureExt;
use sansmqtt_client::Jitter;

use super::*;

/// An MQTT 5 CONNACK refusing with `reason`, carrying a Server Reference when given.
fn connack_v5(reason: u8, reference: Option<&str>) -> Vec<u8> {
    let mut properties = Vec::new();
    if let Some(reference) = reference {
        properties.push(0x1C);
        let len = u16::try_from(reference.len()).expect("short reference");
        properties.extend_from_slice(&len.to_be_bytes());
        properties.extend_from_slice(reference.as_bytes());
    }
    let mut body = vec![0x00, reason];
    body.extend(var_int(properties.len()));
    body.extend(properties);
    let mut packet = vec![0x20];
    packet.extend(var_int(body.len()));
    packet.extend(body);
    packet
}

/// An MQTT 5 DISCONNECT with `reason` and a Server Reference.
fn disconnect_v5(reason: u8, reference: &str) -> Vec<u8> {
    let mut packet = connack_v5(reason, Some(reference));
    // Same layout as the CONNACK minus its flags byte.
    packet.remove(2);
    packet[0] = 0xE0;
    packet[1] -= 1;
    packet
}

/// A server taking any number of connections: for each, it reads CONNECT, records when, and
/// writes what `reply` returns for the connection's index, then closes it after `linger`.
pub(super) struct ScriptedCluster {
    pub(super) uri: String,
    connects: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedCluster {
    pub(super) fn start(
        reply: impl Fn(usize) -> Vec<u8> + Send + 'static,
        linger: Duration,
    ) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let uri = format!(
            "mqtt://127.0.0.1:{}",
            listener.local_addr().expect("address").port()
        );
        let connects = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let connects = connects.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let mut stream = match listener.accept() {
                        Ok((stream, _)) => stream,
                        Err(err) if err.kind() == ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(1));
                            continue;
                        }
                        Err(err) => panic!("accept failed: {err}"),
                    };
                    stream.set_nonblocking(false).expect("blocking stream");
                    stream.set_read_timeout(Some(BOUND)).expect("read timeout");
                    // A client that gives up mid-handshake is not a CONNECT.
                    let Ok((0x10, _)) = read_packet(&mut stream) else {
                        continue;
                    };
                    let index = {
                        let mut connects = connects.lock().expect("connects");
                        connects.push(Instant::now());
                        connects.len() - 1
                    };
                    let _ = stream.write_all(&reply(index));
                    if !linger.is_zero() {
                        thread::sleep(linger);
                    }
                    let _ = stream.shutdown(Shutdown::Both);
                }
            })
        };
        Self {
            uri,
            connects,
            stop,
            thread: Some(thread),
        }
    }

    pub(super) fn connects(&self) -> Vec<Instant> {
        self.connects.lock().expect("connects").clone()
    }
}

impl Drop for ScriptedCluster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Every `Reconnecting` event in `events`, as (attempt, delay, uri).
fn reconnecting(events: &[ConnectionEvent]) -> Vec<(u32, Duration, String)> {
    events
        .iter()
        .filter_map(|event| match event {
            ConnectionEvent::Reconnecting {
                attempt,
                delay,
                uri,
            } => Some((*attempt, *delay, uri.clone())),
            _ => None,
        })
        .collect()
}

/// Collects connection events for `window` while `connect(None)` runs over the configured
/// URIs; the connect must still be pending at the end (the client retries forever).
async fn events_while_connecting<R: Runtime + Default>(
    client: &MqttClient<R>,
    window: Duration,
) -> Vec<ConnectionEvent> {
    let mut events = client.connection_events();
    let connect = client.connect(None).into_future();
    let timer = sleep::<R>(window);
    match future::select(connect, std::pin::pin!(timer)).await {
        Either::Left((result, _)) => {
            panic!("connect ended ({result:?}) though the client retries forever")
        }
        Either::Right(_) => {}
    }
    client.cancel_tasks();
    let mut seen = Vec::new();
    while let Some(Some(event)) = events.next().now_or_never() {
        seen.push(event);
    }
    seen
}

/// The most rounds a schedule starting at `initial`, doubling to `max`, with every delay at
/// its jitter minimum (75%), can start within `window` (the first connect's round included).
fn max_rounds(initial: Duration, max: Duration, window: Duration) -> usize {
    let mut at = Duration::ZERO;
    let mut rounds = 1;
    let mut nominal = initial;
    loop {
        at += nominal.min(max).mul_f64(0.75);
        if at > window {
            return rounds;
        }
        rounds += 1;
        nominal = nominal.saturating_mul(2);
    }
}

/// Two nodes that refuse every CONNECT with "server unavailable" (a refusal that can heal):
/// the client walks the list in rounds, trying the second node at once after the first and
/// waiting the round's backoff (±25% jitter) before starting over; the attempt count in 3 s
/// stays within what the schedule allows, so there is no hot loop.
pub async fn refusing_nodes_get_bounded_attempts_with_backoff_per_round<R: Runtime + Default>() {
    const INITIAL: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_millis(400);
    const WINDOW: Duration = Duration::from_secs(3);
    // CONNACK return code 3: server unavailable.
    let a = ScriptedCluster::start(|_| vec![0x20, 0x02, 0x00, 0x03], Duration::ZERO);
    let b = ScriptedCluster::start(|_| vec![0x20, 0x02, 0x00, 0x03], Duration::ZERO);
    let config = ClientConfig::default()
        .auto_reconnect(true)
        .reconnect_retries(None)
        .reconnect_initial_interval(INITIAL)
        .reconnect_max_interval(MAX)
        .connect_timeout(BOUND)
        .uris([&a.uri, &b.uri]);
    let client = MqttClient::<R>::new(None, config);
    let started = Instant::now();
    let events = events_while_connecting(&client, WINDOW).await;
    let window = started.elapsed();
    let attempts = reconnecting(&events);

    // From the client's side: the list alternates, the first URI of a round waits the
    // round's jittered delay, the second goes at once.
    assert!(attempts.len() >= 10, "too few attempts: {attempts:?}");
    let mut nominal = INITIAL;
    for (i, (number, delay, uri)) in attempts.iter().enumerate() {
        assert_eq!(*number as usize, i + 1, "attempt numbers: {attempts:?}");
        let (expected_uri, first_of_round) = if i % 2 == 0 {
            (&b.uri, false)
        } else {
            (&a.uri, true)
        };
        assert!(
            uri.trim_end_matches('/') == expected_uri,
            "attempt {number} went to {uri}: {attempts:?}"
        );
        if first_of_round {
            let capped = nominal.min(MAX);
            assert!(
                *delay >= capped.mul_f64(0.75) && *delay <= capped.mul_f64(1.25).min(MAX),
                "attempt {number}: delay {delay:?} outside {capped:?} ±25%: {attempts:?}"
            );
            nominal = nominal.saturating_mul(2);
        } else {
            assert_eq!(*delay, Duration::ZERO, "attempt {number}: {attempts:?}");
        }
    }

    // From the servers' side: one CONNECT per node per round, never more often than the
    // jitter minimum allows.
    let at_a = a.connects();
    let at_b = b.connects();
    let rounds = max_rounds(INITIAL, MAX, window);
    assert!(
        at_a.len() <= rounds && at_b.len() <= rounds,
        "{} + {} CONNECTs in {window:?}, at most {rounds} rounds allowed",
        at_a.len(),
        at_b.len()
    );
    for pair in at_a.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= INITIAL.mul_f64(0.75) - Duration::from_millis(5),
            "node a saw two CONNECTs {gap:?} apart"
        );
    }
    // The rate the schedule settles at: one round per 300..400 ms, i.e. at most 200 rounds
    // (400 CONNECTs over two nodes) per minute however long the refusals go on.
    let last_gaps: Vec<Duration> = at_a.windows(2).rev().take(3).map(|p| p[1] - p[0]).collect();
    assert!(
        last_gaps
            .iter()
            .all(|gap| *gap >= MAX.mul_f64(0.75) - Duration::from_millis(5)),
        "the steady rate is above one round per {:?}: {last_gaps:?}",
        MAX.mul_f64(0.75)
    );
}

/// A node that accepts the connection (CONNACK 0) and drops it at once does not make a hot
/// loop either: a connection that did not stay up counts as a failed attempt, so the delays
/// keep doubling instead of starting over.
pub async fn connections_dropped_right_after_connack_back_off<R: Runtime + Default>() {
    let server = ScriptedCluster::start(|_| CONNACK_OK.to_vec(), Duration::from_millis(20));
    let config = ClientConfig::default()
        .auto_reconnect(true)
        .reconnect_retries(None)
        .reconnect_initial_interval(Duration::from_millis(100))
        .reconnect_max_interval(Duration::from_secs(1))
        .reconnect_jitter(Jitter::None)
        .connect_timeout(BOUND);
    let client = MqttClient::<R>::new(None, config);
    let mut events = client.connection_events();
    with_timeout::<R, _>(
        BOUND,
        "CONNACK",
        client.connect(server.uri.as_str()).into_future(),
    )
    .await
    .expect("the first connect is accepted");
    sleep::<R>(Duration::from_millis(2000)).await;
    client.cancel_tasks();
    let mut seen = Vec::new();
    while let Some(Some(event)) = events.next().now_or_never() {
        seen.push(event);
    }
    let delays: Vec<u128> = reconnecting(&seen)
        .iter()
        .map(|(_, delay, _)| delay.as_millis())
        .collect();
    assert!(
        delays.len() >= 3 && delays.starts_with(&[100, 200, 400]),
        "delays after short-lived connections: {delays:?}; events: {seen:?}"
    );
    let connects = server.connects().len();
    assert!((4..=6).contains(&connects), "{connects} connections in 2 s");
}

/// MQTT 5: a CONNACK refusing with "use another server" (0x9C) and a Server Reference sends
/// the client to the referenced broker when `follow_server_reference` is on; with it off the
/// client keeps to its own list and gives up after its retries.
pub async fn server_reference_in_a_connack_refusal_is_followed_only_when_allowed<
    R: Runtime + Default,
>() {
    let broker = Mosquitto::start();
    let reference = format!("127.0.0.1:{}", broker.port());
    let redirecting = {
        let reference = reference.clone();
        ScriptedCluster::start(move |_| connack_v5(0x9C, Some(&reference)), Duration::ZERO)
    };
    let config = ClientConfig::default()
        .protocol_version(ProtocolVersion::V5)
        .auto_reconnect(true)
        .reconnect_retries(Some(1))
        .reconnect_initial_interval(Duration::from_millis(50))
        .connect_timeout(BOUND);

    let client = MqttClient::<R>::new(None, config.clone().follow_server_reference(true));
    let mut events = client.connection_events();
    with_timeout::<R, _>(
        BOUND,
        "CONNACK via the reference",
        client.connect(redirecting.uri.as_str()).into_future(),
    )
    .await
    .expect("the referenced broker accepts");
    let (_, before) = wait_for_event::<R, _>(&mut events, BOUND, "Connected", |event| {
        matches!(event, ConnectionEvent::Connected { .. })
    })
    .await;
    assert_eq!(
        reconnecting(&before),
        [(1, Duration::ZERO, format!("mqtt://{reference}"))],
        "events: {before:?}"
    );
    subscribe(&client, "redirect/t", QoS::AtLeastOnce).await;
    publish(&client, "redirect/t", b"here", QoS::AtLeastOnce, false).await;
    let message = next_message(&client, "a message through the referenced broker").await;
    assert_eq!(&message.payload()[..], b"here");
    assert_eq!(redirecting.connects().len(), 1);

    let stubborn = MqttClient::<R>::new(None, config);
    let (err, _) = {
        let start = Instant::now();
        let result = with_timeout::<R, _>(
            BOUND,
            "a refused connect",
            stubborn.connect(redirecting.uri.as_str()).into_future(),
        )
        .await;
        (result.expect_err("no broker accepts"), start.elapsed())
    };
    assert!(
        matches!(&err, ClientError::Connect(reason) if reason.code == ReasonCode::UseAnotherServer),
        "{err:?}"
    );
    // The first client's connect, then the stubborn one's: its first connect and the
    // reconnect (one round plus one retry round, as amqtt counts), all at the redirecting
    // server.
    assert_eq!(redirecting.connects().len(), 4);
}

/// MQTT 5: a DISCONNECT "server moved" (0x9D) with a Server Reference on a working
/// connection: the client reconnects to the reference (at once: the connection counts as an
/// attempt, not a round) and carries on there.
pub async fn server_moved_disconnect_fails_over_to_the_reference<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let reference = format!("127.0.0.1:{}", broker.port());
    let moving = {
        let reference = reference.clone();
        ScriptedCluster::start(
            move |_| {
                let mut bytes = vec![0x20, 0x03, 0x00, 0x00, 0x00];
                bytes.extend(disconnect_v5(0x9D, &reference));
                bytes
            },
            Duration::from_millis(50),
        )
    };
    let config = ClientConfig::default()
        .protocol_version(ProtocolVersion::V5)
        .auto_reconnect(true)
        .reconnect_retries(None)
        .reconnect_initial_interval(Duration::from_millis(50))
        .follow_server_reference(true)
        .connect_timeout(BOUND);
    let client = MqttClient::<R>::new(None, config);
    let mut events = client.connection_events();
    with_timeout::<R, _>(
        BOUND,
        "CONNACK",
        client.connect(moving.uri.as_str()).into_future(),
    )
    .await
    .expect("the moving server accepts first");
    wait_for_event::<R, _>(&mut events, BOUND, "Connected", |event| {
        matches!(event, ConnectionEvent::Connected { .. })
    })
    .await;
    let (event, before) = wait_for_event::<R, _>(&mut events, BOUND, "Connected again", |event| {
        matches!(event, ConnectionEvent::Connected { .. })
    })
    .await;
    assert!(
        before.iter().any(|event| matches!(
            event,
            ConnectionEvent::ConnectionLost(ClientError::ConnectionLost(
                ConnectionError::ServerDisconnected(reason)
            )) if reason.code == ReasonCode::ServerMoved
        )),
        "{before:?}"
    );
    let attempts = reconnecting(&before);
    assert_eq!(attempts.len(), 1, "{before:?} then {event:?}");
    assert_eq!(attempts[0].2, format!("mqtt://{reference}"));
    subscribe(&client, "moved/t", QoS::AtLeastOnce).await;
    publish(&client, "moved/t", b"moved", QoS::AtLeastOnce, false).await;
    let message = next_message(&client, "a message on the new server").await;
    assert_eq!(&message.payload()[..], b"moved");
    assert_eq!(moving.connects().len(), 1, "went back to the old server");
}

/// `connect(None)` walks the configured URIs (`uri` then `uris`): a closed port first, then a
/// working broker, tried at once in the same round.
pub async fn connect_none_walks_the_configured_uris<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let closed = format!("mqtt://127.0.0.1:{}", free_port());
    let config = ClientConfig::default()
        .uri(&closed)
        .uris([broker.uri()])
        .auto_reconnect(true)
        .reconnect_retries(Some(1))
        .connect_timeout(BOUND);
    let client = MqttClient::<R>::new(None, config);
    let mut events = client.connection_events();
    with_timeout::<R, _>(BOUND, "CONNACK", client.connect(None).into_future())
        .await
        .expect("the second URI accepts");
    let (_, before) = wait_for_event::<R, _>(&mut events, BOUND, "Connected", |event| {
        matches!(event, ConnectionEvent::Connected { .. })
    })
    .await;
    assert_eq!(
        reconnecting(&before),
        [(1, Duration::ZERO, broker.uri())],
        "{before:?}"
    );
    publish(&client, "walk/t", b"x", QoS::AtLeastOnce, false).await;
}

/// A persistent session fails over to a broker that never saw it (two independent brokers,
/// the first SIGKILLed): CONNACK says no session, so the client subscribes again by itself
/// and the publishes that were in flight on the dead broker complete on the new one.
pub async fn failover_to_a_broker_without_the_session_resubscribes_and_resends<
    R: Runtime + Default,
>() {
    let mut first = Mosquitto::start();
    let second = Mosquitto::start();
    let uris = [first.uri(), second.uri()];
    let config = ClientConfig::default()
        .clean_session(false)
        .auto_reconnect(true)
        .reconnect_retries(None)
        .reconnect_initial_interval(Duration::from_millis(50))
        .reconnect_max_interval(Duration::from_millis(200))
        .connect_timeout(BOUND)
        .uris(uris.iter().cloned());
    let subscriber = MqttClient::<R>::new(Some("fo-sub"), config.clone());
    let publisher = MqttClient::<R>::new(Some("fo-pub"), config);
    for client in [&subscriber, &publisher] {
        with_timeout::<R, _>(BOUND, "CONNACK", client.connect(None).into_future())
            .await
            .expect("the first broker accepts");
    }
    subscribe(&subscriber, "fo/#", QoS::AtLeastOnce).await;
    let mut sub_events = subscriber.connection_events();

    // Publishes in flight on a frozen broker, which then dies without answering.
    first.pause();
    let pending: Vec<_> = (0..20)
        .map(|i| {
            publisher
                .publish("fo/inflight", format!("{i}").into_bytes())
                .qos(QoS::AtLeastOnce)
                .into_future()
        })
        .collect();
    sleep::<R>(Duration::from_millis(100)).await;
    first.kill();

    let (event, before) =
        wait_for_event::<R, _>(&mut sub_events, BOUND, "Connected elsewhere", |event| {
            matches!(event, ConnectionEvent::Connected { .. })
        })
        .await;
    assert!(
        matches!(
            event,
            ConnectionEvent::Connected {
                session_present: false
            }
        ),
        "{event:?}"
    );
    assert_eq!(
        reconnecting(&before).last().map(|(_, _, uri)| uri.clone()),
        Some(second.uri()),
        "{before:?}"
    );
    let results = with_timeout::<R, _>(
        BOUND,
        "in-flight publishes on the new broker",
        future::join_all(pending),
    )
    .await;
    for (i, result) in results.into_iter().enumerate() {
        assert!(
            matches!(result, Ok(code) if code.is_success()),
            "publish {i}: {result:?}"
        );
    }
    // The subscription was renewed on the new broker: a message published there arrives.
    // The renewal races with this publish, so publish until one arrives (bounded).
    let deadline = Instant::now() + BOUND;
    'renewed: loop {
        assert!(
            Instant::now() < deadline,
            "no message through the renewed subscription"
        );
        publish(&publisher, "fo/after", b"after", QoS::AtLeastOnce, false).await;
        while let Ok(message) = subscriber
            .deliver_message()
            .timeout(Duration::from_millis(200))
            .await
        {
            if message.topic() == "fo/after" {
                assert_eq!(&message.payload()[..], b"after");
                break 'renewed;
            }
        }
    }
}
