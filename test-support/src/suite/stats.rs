//! `MqttClient::stats` against a real broker: the counters match the traffic the test made.

use sansmqtt_client::ClientStats;

use super::*;

/// Polls `client.stats()` until `done` holds (the gauges are copied at the end of the
/// connection task's wake, a moment after a publish future completes), or fails with the
/// last snapshot.
async fn stats_until<R: Runtime + Default>(
    client: &MqttClient<R>,
    what: &str,
    done: impl Fn(&ClientStats) -> bool,
) -> ClientStats {
    let deadline = Instant::now() + BOUND;
    loop {
        let stats = client.stats();
        if done(&stats) {
            return stats;
        }
        assert!(Instant::now() < deadline, "{what}: {stats:#?}");
        sleep::<R>(Duration::from_millis(5)).await;
    }
}

/// N QoS 1 publishes add exactly N PUBLISH packets to `bytes_sent` and N PUBACKs to
/// `bytes_received`; received messages not yet taken are waiting and in flight (their PUBACK
/// withheld); a ping sets the round-trip time; a broker restart counts one reconnect.
pub async fn stats_match_the_traffic<R: Runtime + Default>() {
    const N: usize = 100;
    const TOPIC: &str = "stats/t";
    const PAYLOAD: [u8; 100] = [7; 100];
    // Type byte, remaining length (one byte up to 127), topic with its length, packet id.
    let remaining = 2 + TOPIC.len() + 2 + PAYLOAD.len();
    let publish_size = 1 + if remaining > 127 { 2 } else { 1 } + remaining;
    let puback_size = 4;

    let mut broker = Mosquitto::start();
    let config = ClientConfig::default()
        .keep_alive(Duration::from_secs(60))
        .reconnect_retries(None)
        .reconnect_initial_interval(Duration::from_millis(20))
        .reconnect_max_interval(Duration::from_millis(100))
        .connect_timeout(BOUND);
    let client = connected::<R>(&broker.uri(), config).await;
    let start = stats_until(&client, "CONNECT and CONNACK counted", |s| {
        s.bytes_sent > 0 && s.bytes_received >= 4
    })
    .await;
    assert_eq!(start.reconnects, 0, "{start:#?}");
    assert_eq!(start.last_ping_rtt, None, "{start:#?}");

    let publishes = (0..N).map(|_| {
        client
            .publish(TOPIC, &PAYLOAD[..])
            .qos(QoS::AtLeastOnce)
            .into_future()
    });
    for result in with_timeout::<R, _>(BOUND, "PUBACKs", future::join_all(publishes)).await {
        assert!(
            matches!(result, Ok(code) if code.is_success()),
            "{result:?}"
        );
    }
    let after = stats_until(&client, "nothing in flight", |s| {
        s.publishes_in_flight == 0 && s.queued_publishes == 0
    })
    .await;
    assert_eq!(
        after.bytes_sent - start.bytes_sent,
        (N * publish_size) as u64,
        "{N} PUBLISH of {publish_size} bytes: {after:#?}"
    );
    assert_eq!(
        after.bytes_received - start.bytes_received,
        (N * puback_size) as u64,
        "{N} PUBACK: {after:#?}"
    );
    assert_eq!(after.queued_bytes, 0, "{after:#?}");

    // Our own messages come back and wait, unacknowledged, until taken.
    subscribe(&client, TOPIC, QoS::AtLeastOnce).await;
    publish(&client, TOPIC, &PAYLOAD, QoS::AtLeastOnce, false).await;
    let waiting = stats_until(&client, "the message waits", |s| s.messages_waiting == 1).await;
    assert_eq!(
        waiting.messages_in_flight, 1,
        "PUBACK withheld: {waiting:#?}"
    );
    next_message(&client, "our message").await;
    stats_until(&client, "acknowledged once taken", |s| {
        s.messages_waiting == 0 && s.messages_in_flight == 0
    })
    .await;

    with_timeout::<R, _>(BOUND, "PINGRESP", client.ping())
        .await
        .expect("ping");
    let pinged = stats_until(&client, "a ping RTT", |s| s.last_ping_rtt.is_some()).await;
    assert!(
        pinged.last_ping_rtt < Some(BOUND),
        "round trip: {pinged:#?}"
    );

    let mut events = client.connection_events();
    broker.restart();
    wait_for_event::<R, _>(&mut events, BOUND, "the reconnect", |event| {
        matches!(event, ConnectionEvent::Connected { .. })
    })
    .await;
    let end = stats_until(&client, "one reconnect", |s| s.reconnects == 1).await;
    assert_eq!(end.messages_dropped, 0, "{end:#?}");
    with_timeout::<R, _>(BOUND, "DISCONNECT", client.disconnect())
        .await
        .expect("disconnect");
}
