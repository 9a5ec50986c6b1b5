//! The suite's scenarios over `quic://` against a real MQTT-over-QUIC broker (mqtt5's, see
//! [`QuicBroker`]): QoS 0/1/2 round trips in MQTT 3.1.1 and 5, wills, keep-alive over a cut
//! link, reconnects after a broker restart, mutual TLS, a ready rustls configuration, refused
//! certificates and failover lists mixing `quic://` with `mqtts://` (feature `quic`).

use sansmqtt_client::QuicError;

use super::*;
use crate::{QuicBroker, UdpRelay};

/// Instantiates every test of the QUIC suite as a plain `#[test]` for one runtime:
/// `quic_suite!(RuntimeType, block_on_function)`; the adapter's `quic` feature must be on.
#[macro_export]
macro_rules! quic_suite {
    ($runtime:ty, $block_on:path) => {
        $crate::client_suite!(@tests $runtime, $block_on, [
            quic_qos0_qos1_qos2_round_trips,
            quic_mqtt5_round_trips_at_every_qos,
            quic_will_is_published_when_the_link_goes_silent_past_keep_alive,
            quic_will_is_not_published_after_a_clean_disconnect,
            quic_keep_alive_detects_a_cut_link_and_reconnects_when_it_returns,
            quic_reconnects_after_a_broker_restart_and_keeps_the_session,
            quic_mutual_tls_with_client_certificate,
            quic_mutual_tls_without_client_certificate_is_rejected,
            quic_with_a_ready_rustls_config,
            quic_unknown_ca_is_rejected_in_the_handshake,
            quic_failover_falls_back_to_mqtts_when_udp_gets_no_answer,
            quic_failover_from_a_closed_mqtts_port_to_quic,
        ]);
    };
}

/// A configuration trusting `certs`' CA, without retries.
fn quic_config(certs: &Certs) -> ClientConfig {
    no_retry().ca_file(certs.ca_file())
}

/// Subscribes at every QoS and checks each publish comes back at its QoS.
async fn assert_round_trips<R: Runtime + Default>(client: &MqttClient<R>, prefix: &str) {
    for qos in all_qos() {
        let filter = format!("{prefix}/{}/#", qos as u8);
        subscribe(client, &filter, qos).await;
        let topic = format!("{prefix}/{}/x", qos as u8);
        publish(client, &topic, b"over quic", qos, false).await;
        let message = next_message(client, "a message over QUIC").await;
        assert_message(&message, &topic, b"over quic", qos, false);
    }
}

/// QoS 0, 1 and 2 publishes round-trip over QUIC (MQTT 3.1.1).
pub async fn quic_qos0_qos1_qos2_round_trips<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = QuicBroker::start(&certs);
    let client = connected::<R>(&broker.uri(), quic_config(&certs)).await;
    assert_round_trips(&client, "quic").await;
    with_timeout::<R, _>(BOUND, "ping", client.ping())
        .await
        .expect("PINGRESP over QUIC");
    with_timeout::<R, _>(BOUND, "DISCONNECT", client.disconnect())
        .await
        .expect("disconnect");
}

/// The same in MQTT 5.
pub async fn quic_mqtt5_round_trips_at_every_qos<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = QuicBroker::start(&certs);
    let config = quic_config(&certs).protocol_version(ProtocolVersion::V5);
    let client = connected::<R>(&broker.uri(), config).await;
    assert_round_trips(&client, "quic5").await;
}

/// A client with a will (keep alive 1 s) through a UDP relay, and a watcher on the broker.
async fn quic_will_setup<R: Runtime + Default>(
    certs: &Certs,
    broker: &QuicBroker,
) -> (UdpRelay, MqttClient<R>, MqttClient<R>) {
    let watcher = connected::<R>(&broker.uri(), quic_config(certs)).await;
    subscribe(&watcher, "wills/#", QoS::AtLeastOnce).await;
    let relay = UdpRelay::start(broker.port());
    let config = quic_config(certs)
        .keep_alive(Duration::from_secs(1))
        .will(will(
            "wills/doomed",
            b"doomed client is gone",
            QoS::AtLeastOnce,
        ));
    let doomed = connected_as::<R>(Some("doomed"), &relay.uri(), config).await;
    with_timeout::<R, _>(BOUND, "PINGRESP through the relay", doomed.ping())
        .await
        .expect("ping through the relay");
    (relay, doomed, watcher)
}

/// The link to a client with a will goes silent: the broker drops it once its keep alive
/// (1 s) expires and publishes the will.
pub async fn quic_will_is_published_when_the_link_goes_silent_past_keep_alive<
    R: Runtime + Default,
>() {
    let certs = Certs::generate();
    let broker = QuicBroker::start(&certs);
    let (relay, doomed, watcher) = quic_will_setup::<R>(&certs, &broker).await;
    assert_no_message(&watcher, Duration::from_millis(300), "no will while alive").await;
    relay.go_silent();
    let message = match watcher
        .deliver_message()
        .timeout(Duration::from_secs(10))
        .await
    {
        Ok(message) => message,
        Err(err) => panic!("no will ({err:?}) after the QUIC link went silent"),
    };
    assert_message(
        &message,
        "wills/doomed",
        b"doomed client is gone",
        QoS::AtLeastOnce,
        false,
    );
    drop(doomed);
}

/// A clean DISCONNECT over QUIC reaches the broker before the connection closes: no will.
pub async fn quic_will_is_not_published_after_a_clean_disconnect<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = QuicBroker::start(&certs);
    let (_relay, doomed, watcher) = quic_will_setup::<R>(&certs, &broker).await;
    with_timeout::<R, _>(BOUND, "DISCONNECT", doomed.disconnect())
        .await
        .expect("disconnect");
    drop(doomed);
    assert_no_message(&watcher, Duration::from_secs(3), "no will after DISCONNECT").await;
}

/// The link goes silent under a connected client (keep alive 1 s, auto-reconnect): its
/// keep-alive reports the connection lost; once the link returns it reconnects by itself and
/// its persistent subscription delivers again.
pub async fn quic_keep_alive_detects_a_cut_link_and_reconnects_when_it_returns<
    R: Runtime + Default,
>() {
    let certs = Certs::generate();
    let broker = QuicBroker::start(&certs);
    let relay = UdpRelay::start(broker.port());
    let config = ClientConfig::default()
        .ca_file(certs.ca_file())
        .keep_alive(Duration::from_secs(1))
        .connect_timeout(Duration::from_secs(2))
        .reconnect_initial_interval(Duration::from_millis(200))
        .clean_session(false);
    let client = connected_as::<R>(Some("roamer"), &relay.uri(), config).await;
    subscribe(&client, "roam/#", QoS::AtLeastOnce).await;
    let mut events = client.connection_events();
    relay.go_silent();
    wait_for_event::<R, _>(&mut events, Duration::from_secs(6), "ConnectionLost", |e| {
        matches!(e, ConnectionEvent::ConnectionLost(_))
    })
    .await;
    relay.restore();
    wait_for_event::<R, _>(&mut events, Duration::from_secs(15), "Connected", |e| {
        matches!(e, ConnectionEvent::Connected { .. })
    })
    .await;
    let publisher = connected::<R>(&broker.uri(), quic_config(&certs)).await;
    publish(&publisher, "roam/x", b"back", QoS::AtLeastOnce, false).await;
    let message = next_message(&client, "a message after the link returned").await;
    assert_message(&message, "roam/x", b"back", QoS::AtLeastOnce, false);
}

/// The broker stops and starts again on the same port: the client reconnects over QUIC by
/// itself, the broker resumes its session, and a QoS 1 message published meanwhile by a
/// client that connected later arrives.
pub async fn quic_reconnects_after_a_broker_restart_and_keeps_the_session<R: Runtime + Default>() {
    let certs = Certs::generate();
    let mut broker = QuicBroker::start(&certs);
    let config = ClientConfig::default()
        .ca_file(certs.ca_file())
        .connect_timeout(Duration::from_secs(2))
        .reconnect_initial_interval(Duration::from_millis(200))
        .clean_session(false);
    let client = connected_as::<R>(Some("survivor"), &broker.uri(), config).await;
    subscribe(&client, "restart/#", QoS::AtLeastOnce).await;
    let mut events = client.connection_events();
    broker.stop();
    wait_for_event::<R, _>(
        &mut events,
        Duration::from_secs(10),
        "ConnectionLost",
        |e| matches!(e, ConnectionEvent::ConnectionLost(_)),
    )
    .await;
    broker.restart();
    let (event, _) =
        wait_for_event::<R, _>(&mut events, Duration::from_secs(15), "Connected", |e| {
            matches!(e, ConnectionEvent::Connected { .. })
        })
        .await;
    assert!(
        matches!(
            event,
            ConnectionEvent::Connected {
                session_present: true
            }
        ),
        "the restarted broker did not resume the session: {event:?}"
    );
    let publisher = connected::<R>(&broker.uri(), quic_config(&certs)).await;
    publish(&publisher, "restart/x", b"after", QoS::AtLeastOnce, false).await;
    let message = next_message(&client, "a message after the restart").await;
    assert_message(&message, "restart/x", b"after", QoS::AtLeastOnce, false);
}

/// Mutual TLS over QUIC with the client certificate from files.
pub async fn quic_mutual_tls_with_client_certificate<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = QuicBroker::start_mutual_tls(&certs);
    let config = quic_config(&certs)
        .cert_file(certs.client_cert())
        .key_file(certs.client_key());
    let client = connected::<R>(&broker.uri(), config).await;
    assert_round_trips(&client, "mtls").await;
}

/// Without a client certificate the mutual-TLS broker refuses the connection with a TLS
/// alert. In TLS 1.3 the client's side of the handshake is complete before the broker checks
/// its certificate, so the refusal closes the connection under the MQTT stream: a
/// `QuicError::Connection` carrying the crypto error, never a generic I/O error.
pub async fn quic_mutual_tls_without_client_certificate_is_rejected<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = QuicBroker::start_mutual_tls(&certs);
    let (err, _) = connect_err::<R>(&broker.uri(), quic_config(&certs)).await;
    let is_crypto = |code: sansmqtt_client::quinn::TransportErrorCode| {
        (0x100..0x200).contains(&u64::from(code))
    };
    assert!(
        matches!(
            &err,
            ClientError::Quic(QuicError::Handshake(lost) | QuicError::Connection(lost))
                if matches!(lost, sansmqtt_client::quinn::ConnectionError::ConnectionClosed(close)
                    if is_crypto(close.error_code))
        ),
        "{err:?}"
    );
}

/// The application's own rustls configuration (in-memory CA and client certificate) is used
/// for QUIC too; the client adds ALPN `mqtt` when it names none.
pub async fn quic_with_a_ready_rustls_config<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = QuicBroker::start_mutual_tls(&certs);
    let config = no_retry().tls_config(ready_rustls_config(&certs));
    let client = connected::<R>(&broker.uri(), config).await;
    assert_round_trips(&client, "ready").await;
}

/// A broker certificate from an unknown CA fails the handshake, typed as such.
pub async fn quic_unknown_ca_is_rejected_in_the_handshake<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = QuicBroker::start(&certs);
    let config = no_retry().ca_file(certs.other_ca_file());
    let (err, _) = connect_err::<R>(&broker.uri(), config).await;
    assert!(
        matches!(err, ClientError::Quic(QuicError::Handshake(_))),
        "{err:?}"
    );
}

/// A failover list whose QUIC broker never answers (UDP blocked: nothing listens on the
/// port) falls back to `mqtts://` within the connect timeout.
pub async fn quic_failover_falls_back_to_mqtts_when_udp_gets_no_answer<R: Runtime + Default>() {
    let certs = Certs::generate();
    let tls_broker = Mosquitto::builder().tls(&certs).start();
    let blocked = format!("quic://127.0.0.1:{}", free_udp_port());
    let config = ClientConfig::default()
        .ca_file(certs.ca_file())
        .uri(&blocked)
        .uris([tls_broker.tls_uri()])
        .reconnect_retries(Some(1))
        .connect_timeout(Duration::from_secs(2));
    let client = MqttClient::<R>::new(None, config);
    with_timeout::<R, _>(
        Duration::from_secs(10),
        "CONNACK over mqtts after QUIC",
        client.connect(None).into_future(),
    )
    .await
    .expect("the mqtts:// broker accepts");
    assert_tls_round_trip(&client).await;
}

/// The other way round: a closed `mqtts://` port first, then the QUIC broker.
pub async fn quic_failover_from_a_closed_mqtts_port_to_quic<R: Runtime + Default>() {
    let certs = Certs::generate();
    let broker = QuicBroker::start(&certs);
    let closed = format!("mqtts://127.0.0.1:{}", free_port());
    let config = ClientConfig::default()
        .ca_file(certs.ca_file())
        .uri(&closed)
        .uris([broker.uri()])
        .reconnect_retries(Some(1))
        .connect_timeout(BOUND);
    let client = MqttClient::<R>::new(None, config);
    with_timeout::<R, _>(
        BOUND,
        "CONNACK over QUIC",
        client.connect(None).into_future(),
    )
    .await
    .expect("the quic:// broker accepts");
    assert_round_trips(&client, "failover").await;
}

/// A loopback UDP port nothing listens on (a moment ago).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|socket| socket.local_addr())
        .expect("binding a UDP port")
        .port()
}
