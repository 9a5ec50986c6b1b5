//! The enterprise-connectivity suite, generic over the runtime like [`suite`](crate::suite):
//! SCRAM against a scripted broker, and every transport
//! (`mqtt`, `mqtts`, `ws`, `wss`) through a real SOCKS5 proxy (`microsocks`) and a real HTTP
//! CONNECT proxy (`tinyproxy`), with and without proxy credentials, and the proxies'
//! refusals. An adapter instantiates it with
//! [`connectivity_suite!`](crate::connectivity_suite)`(RuntimeType, block_on)`.
//!
//! The broker URIs name `localhost`, so the host name travels to the proxy (remote
//! resolution), and each test checks in the proxy's own log that the proxy did connect to
//! the broker.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use sansmqtt_client::proto::QoS;
use sansmqtt_client::{
    ClientConfig, ClientError, ConnectionEvent, MqttClient, ProxyError, ProxyRefusal, Runtime,
};

use crate::suite::{BOUND, next_message, no_retry, publish, subscribe, with_timeout};
pub use crate::suite::{
    a_refused_reauthentication_reports_the_disconnect_and_loses_nothing,
    reauthentication_refreshes_the_token_while_qos1_traffic_flows, scram_against_a_scripted_broker,
};
use crate::{BrokerProcess, Certs, DanteProxy, HttpProxy, Mosquitto, Nats, Socks5Proxy, free_port};

/// Instantiates every test of [`connectivity`](crate::connectivity) as a plain `#[test]`.
#[macro_export]
macro_rules! connectivity_suite {
    ($runtime:ty, $block_on:path) => {
        $crate::connectivity_suite!(@tests $runtime, $block_on, [
            every_transport_through_a_socks5_proxy,
            every_transport_through_a_socks5_proxy_with_credentials,
            every_transport_through_dante,
            socks5_proxy_denying_the_destination_is_final,
            every_transport_through_an_http_proxy,
            every_transport_through_an_http_proxy_with_credentials,
            socks5_wrong_or_missing_credentials_are_final,
            http_wrong_or_missing_credentials_are_final,
            http_proxy_denying_the_destination_is_final,
            socks5_proxy_that_cannot_reach_the_broker_is_retried,
            an_unreachable_proxy_is_retried,
            an_invalid_proxy_url_fails_connect,
            a_silent_or_foreign_proxy_fails_in_bounded_time,
            scram_against_a_scripted_broker,
            reauthentication_refreshes_the_token_while_qos1_traffic_flows,
            a_refused_reauthentication_reports_the_disconnect_and_loses_nothing,
        ]);
    };
    (@tests $runtime:ty, $block_on:path, [$($name:ident),* $(,)?]) => {
        $(
            #[test]
            fn $name() {
                $block_on($crate::connectivity::$name::<$runtime>());
            }
        )*
    };
}

/// A unique string standing for a proxy password: it must never be printed.
const SECRET: &str = "pr0xy-S3CRET-7f3a";

/// The four brokers' URIs, all naming `localhost`, and the CA that signs their certificates.
struct Brokers {
    certs: Certs,
    mosquitto: Mosquitto,
    ws: Nats,
    wss: Nats,
}

impl Brokers {
    fn start() -> Self {
        let certs = Certs::generate();
        let mosquitto = Mosquitto::builder().tls(&certs).start();
        let ws = Nats::start();
        let wss = Nats::start_tls(&certs);
        Self {
            certs,
            mosquitto,
            ws,
            wss,
        }
    }

    /// `(uri, port)` of each transport.
    fn transports(&self) -> [(String, u16); 4] {
        let ws_port = self
            .ws
            .ws_uri()
            .rsplit(':')
            .next()
            .map(port_of)
            .unwrap_or(0);
        let wss_port = self
            .wss
            .wss_uri()
            .rsplit(':')
            .next()
            .map(port_of)
            .unwrap_or(0);
        let tls_port = self.mosquitto.tls_port().expect("TLS listener");
        [
            (
                format!("mqtt://localhost:{}", self.mosquitto.port()),
                self.mosquitto.port(),
            ),
            (format!("mqtts://localhost:{tls_port}"), tls_port),
            (format!("ws://localhost:{ws_port}/mqtt"), ws_port),
            (format!("wss://localhost:{wss_port}/mqtt"), wss_port),
        ]
    }

    fn ports(&self) -> Vec<u16> {
        self.transports().iter().map(|(_, port)| *port).collect()
    }
}

/// The port at the start of `"PORT/mqtt"` (or `"PORT"`).
fn port_of(tail: &str) -> u16 {
    tail.split('/')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {tail:?}"))
}

/// Connects through the proxy at `proxy_url` to each transport, round-trips a QoS 1 message
/// and checks the proxy's log names the broker it connected to.
async fn round_trip_every_transport<R: Runtime + Default>(
    proxy_url: &str,
    proxy: &BrokerProcess,
    brokers: &Brokers,
    log_line: impl Fn(u16) -> String,
) {
    for (uri, port) in brokers.transports() {
        let config = no_retry().proxy(proxy_url).ca_file(brokers.certs.ca_file());
        let client = MqttClient::<R>::new(None, config);
        let mut events = client.connection_events();
        let connack = with_timeout::<R, _>(
            BOUND,
            "CONNACK through the proxy",
            client.connect(uri.as_str()).into_future(),
        )
        .await;
        if let Err(err) = connack {
            panic!(
                "{uri} through the proxy: {err:?}\nproxy log:\n{}",
                proxy.log()
            );
        }
        let topic = format!("proxied/{port}");
        subscribe(&client, &topic, QoS::AtLeastOnce).await;
        publish(&client, &topic, uri.as_bytes(), QoS::AtLeastOnce, false).await;
        let message = next_message(&client, "the message through the proxy").await;
        assert_eq!(&message.payload()[..], uri.as_bytes(), "{uri}");
        with_timeout::<R, _>(BOUND, "DISCONNECT", client.disconnect())
            .await
            .expect("disconnect");
        let line = log_line(port);
        assert!(
            proxy.log().contains(&line),
            "{uri}: the proxy's log has no {line:?}: the connection did not go through it\n{}",
            proxy.log()
        );
        // Nothing the client reports carries the proxy password.
        let mut printed = format!("{:?}", client.config());
        while let Some(Some(event)) = events.next().now_or_never() {
            printed.push_str(&format!("{event:?}"));
        }
        assert!(
            !printed.contains(SECRET),
            "the proxy password was printed: {printed}"
        );
    }
}

fn microsocks_line(port: u16) -> String {
    format!("connected to localhost:{port}")
}

fn tinyproxy_line(port: u16) -> String {
    format!("CONNECT localhost:{port} HTTP/1.1")
}

/// `mqtt`, `mqtts`, `ws` and `wss` through `microsocks` without authentication.
pub async fn every_transport_through_a_socks5_proxy<R: Runtime + Default>() {
    let brokers = Brokers::start();
    let proxy = Socks5Proxy::start();
    round_trip_every_transport::<R>(&proxy.url(), &proxy, &brokers, microsocks_line).await;
}

/// The same through `microsocks` requiring a user name and password (RFC 1929).
pub async fn every_transport_through_a_socks5_proxy_with_credentials<R: Runtime + Default>() {
    let brokers = Brokers::start();
    let proxy = Socks5Proxy::with_credentials("alice", SECRET);
    round_trip_every_transport::<R>(&proxy.url(), &proxy, &brokers, microsocks_line).await;
}

/// `mqtt`, `mqtts`, `ws` and `wss` through Dante's SOCKS5 server (which logs the address it
/// resolved the name to).
pub async fn every_transport_through_dante<R: Runtime + Default>() {
    let brokers = Brokers::start();
    let proxy = DanteProxy::start(&[free_port()]);
    round_trip_every_transport::<R>(&proxy.url(), &proxy, &brokers, |port| {
        format!(" 127.0.0.1.{port}\n")
    })
    .await;
}

/// Dante denying the broker's port by rule answers SOCKS5 reply 2 ("connection not allowed by
/// ruleset"): refused with that code, final.
pub async fn socks5_proxy_denying_the_destination_is_final<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let proxy = DanteProxy::start(&[broker.port()]);
    let uri = format!("mqtt://localhost:{}", broker.port());
    assert_final::<R>(&uri, &proxy.url(), |err| {
        matches!(err, ProxyError::Refused(ProxyRefusal::Socks5(2)))
    })
    .await;
}

/// `mqtt`, `mqtts`, `ws` and `wss` through `tinyproxy`'s CONNECT without authentication.
pub async fn every_transport_through_an_http_proxy<R: Runtime + Default>() {
    let brokers = Brokers::start();
    let proxy = HttpProxy::builder().connect_ports(&brokers.ports()).start();
    round_trip_every_transport::<R>(&proxy.url(), &proxy, &brokers, tinyproxy_line).await;
}

/// The same through `tinyproxy` requiring Basic proxy authentication.
pub async fn every_transport_through_an_http_proxy_with_credentials<R: Runtime + Default>() {
    let brokers = Brokers::start();
    let proxy = HttpProxy::builder()
        .credentials("alice", SECRET)
        .connect_ports(&brokers.ports())
        .start();
    round_trip_every_transport::<R>(&proxy.url(), &proxy, &brokers, tinyproxy_line).await;
}

/// Connects with retries forever and expects `expected` at once (no retry), with the
/// proxy password nowhere in the error.
async fn assert_final<R: Runtime + Default>(
    uri: &str,
    proxy_url: &str,
    expected: impl Fn(&ProxyError) -> bool,
) {
    let config = ClientConfig::default()
        .reconnect_retries(None)
        .reconnect_initial_interval(Duration::from_millis(50))
        .connect_timeout(BOUND)
        .proxy(proxy_url);
    let client = MqttClient::<R>::new(None, config);
    let mut events = client.connection_events();
    let start = Instant::now();
    let result = with_timeout::<R, _>(
        BOUND,
        "a refused connect",
        client.connect(uri).into_future(),
    )
    .await;
    match &result {
        Err(ClientError::Proxy(err)) if expected(err) => {}
        other => panic!("{uri} through the proxy: {other:?}"),
    }
    let printed = format!(
        "{result:?} {}",
        result
            .as_ref()
            .map(|_| String::new())
            .unwrap_or_else(|e| chain(e))
    );
    assert!(!printed.contains(SECRET), "{printed}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "a final refusal is not retried"
    );
    while let Some(Some(event)) = events.next().now_or_never() {
        assert!(
            !matches!(event, ConnectionEvent::Reconnecting { .. }),
            "a final refusal is not retried: {event:?}"
        );
    }
}

/// Every message of `err`'s source chain.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// `microsocks` with credentials: a wrong password is [`ProxyError::AuthFailed`], none at
/// all [`ProxyError::AuthRequired`]; both final even with retries forever.
pub async fn socks5_wrong_or_missing_credentials_are_final<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let proxy = Socks5Proxy::with_credentials("alice", "right-password");
    let uri = format!("mqtt://localhost:{}", broker.port());
    let wrong = format!("socks5://alice:{SECRET}@127.0.0.1:{}", proxy.port());
    assert_final::<R>(&uri, &wrong, |err| matches!(err, ProxyError::AuthFailed)).await;
    let none = format!("socks5://127.0.0.1:{}", proxy.port());
    assert_final::<R>(&uri, &none, |err| matches!(err, ProxyError::AuthRequired)).await;
}

/// `tinyproxy` with Basic authentication: 407 with wrong credentials is
/// [`ProxyError::AuthFailed`], without any [`ProxyError::AuthRequired`]; both final.
pub async fn http_wrong_or_missing_credentials_are_final<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let proxy = HttpProxy::builder()
        .credentials("alice", "right-password")
        .start();
    let uri = format!("mqtt://localhost:{}", broker.port());
    let wrong = format!("http://alice:{SECRET}@127.0.0.1:{}", proxy.port());
    assert_final::<R>(&uri, &wrong, |err| matches!(err, ProxyError::AuthFailed)).await;
    let none = format!("http://127.0.0.1:{}", proxy.port());
    assert_final::<R>(&uri, &none, |err| matches!(err, ProxyError::AuthRequired)).await;
}

/// `tinyproxy` allowing CONNECT to other ports only answers 403: refused with that code,
/// final.
pub async fn http_proxy_denying_the_destination_is_final<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let other_port = free_port();
    let proxy = HttpProxy::builder().connect_ports(&[other_port]).start();
    let uri = format!("mqtt://localhost:{}", broker.port());
    assert_final::<R>(&uri, &proxy.url(), |err| {
        matches!(err, ProxyError::Refused(ProxyRefusal::Http(403)))
    })
    .await;
}

/// A SOCKS5 proxy answering "connection refused" (5) for a broker that is down is typed
/// with the code, and retried: the broker may come back.
pub async fn socks5_proxy_that_cannot_reach_the_broker_is_retried<R: Runtime + Default>() {
    let proxy = Socks5Proxy::start();
    let closed = free_port();
    let config = ClientConfig::default()
        .reconnect_retries(Some(1))
        .reconnect_initial_interval(Duration::from_millis(50))
        .reconnect_jitter(sansmqtt_client::Jitter::None)
        .proxy(proxy.url());
    let client = MqttClient::<R>::new(None, config);
    let mut events = client.connection_events();
    let uri = format!("mqtt://localhost:{closed}");
    let result = with_timeout::<R, _>(
        BOUND,
        "connect to a closed port",
        client.connect(uri.as_str()).into_future(),
    )
    .await;
    assert!(
        matches!(
            result,
            Err(ClientError::Proxy(ProxyError::Refused(
                ProxyRefusal::Socks5(5)
            )))
        ),
        "{result:?}"
    );
    let mut retried = false;
    while let Some(Some(event)) = events.next().now_or_never() {
        retried |= matches!(event, ConnectionEvent::Reconnecting { .. });
    }
    assert!(retried, "a broker unreachable from the proxy is retried");
}

/// No proxy listening: [`ProxyError::Unreachable`], retried.
pub async fn an_unreachable_proxy_is_retried<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let config = ClientConfig::default()
        .reconnect_retries(Some(1))
        .reconnect_initial_interval(Duration::from_millis(50))
        .reconnect_jitter(sansmqtt_client::Jitter::None)
        .proxy(format!("socks5://alice:{SECRET}@127.0.0.1:{}", free_port()));
    let client = MqttClient::<R>::new(None, config);
    let mut events = client.connection_events();
    let result = with_timeout::<R, _>(
        BOUND,
        "connect without a proxy",
        client.connect(broker.uri().as_str()).into_future(),
    )
    .await;
    let err = match result {
        Err(ClientError::Proxy(err @ ProxyError::Unreachable(_))) => err,
        other => panic!("{other:?}"),
    };
    assert!(!chain(&err).contains(SECRET));
    let mut retried = false;
    while let Some(Some(event)) = events.next().now_or_never() {
        retried |= matches!(event, ConnectionEvent::Reconnecting { .. });
    }
    assert!(retried, "an unreachable proxy is retried");
}

/// A proxy URL that does not parse fails `connect` without touching the network, naming
/// the problem but not the URL.
pub async fn an_invalid_proxy_url_fails_connect<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = MqttClient::<R>::new(
        None,
        no_retry().proxy(format!("https://alice:{SECRET}@proxy:443")),
    );
    let result = with_timeout::<R, _>(
        BOUND,
        "connect",
        client.connect(broker.uri().as_str()).into_future(),
    )
    .await;
    match &result {
        Err(ClientError::Proxy(err @ ProxyError::InvalidUrl(_))) => {
            assert!(!chain(err).contains(SECRET));
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{:?}", client.config()).contains(SECRET));
}

/// A proxy that accepts and never answers makes `connect` time out within
/// `connect_timeout` (the handshake is inside that budget); one that answers with something
/// that is not SOCKS5 is a protocol error, final.
pub async fn a_silent_or_foreign_proxy_fails_in_bounded_time<R: Runtime + Default>() {
    use std::io::{Read, Write};

    let broker = Mosquitto::start();
    for (answer, scheme) in [
        (None, "socks5"),
        (None, "http"),
        (Some(&b"HTTP/1.1 200 OK\r\n\r\n"[..]), "socks5"),
    ] {
        let listener =
            std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).expect("binding");
        let port = listener.local_addr().expect("address").port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("the client never came");
            stream
                .set_read_timeout(Some(Duration::from_secs(3)))
                .expect("read timeout");
            let mut greeting = [0u8; 3];
            let _ = stream.read(&mut greeting);
            if let Some(answer) = answer {
                let _ = stream.write_all(answer);
            }
            // Hold the connection until the client gives up.
            let mut rest = [0u8; 64];
            while matches!(stream.read(&mut rest), Ok(n) if n > 0) {}
        });
        let config = no_retry()
            .connect_timeout(Duration::from_millis(500))
            .proxy(format!("{scheme}://127.0.0.1:{port}"));
        let client = MqttClient::<R>::new(None, config);
        let start = Instant::now();
        let result = with_timeout::<R, _>(
            BOUND,
            "connect through a hostile proxy",
            client.connect(broker.uri().as_str()).into_future(),
        )
        .await;
        match answer {
            None => assert!(
                matches!(result, Err(ClientError::Timeout)),
                "{scheme}: {result:?}"
            ),
            Some(_) => assert!(
                matches!(result, Err(ClientError::Proxy(ProxyError::Protocol(_)))),
                "{result:?}"
            ),
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "bounded: {:?}",
            start.elapsed()
        );
        drop(client);
        let _ = server.join();
    }
}
