//! The secret scan: a client given a unique password (in URIs and in its configuration), MQTT 5
//! authentication data and a TLS client key runs through a connect, a refused connect,
//! reconnects and TLS failures, while every log line at TRACE (every target, `tracing` and
//! `log`) is captured; then the logs, `Debug` of every public value the test touched and
//! `Display` of every error are searched for the secrets.
//!
//! The capture is a process-wide subscriber ([`capture_logs`]): the client's driver runs on
//! runtime threads, which a scoped subscriber would not see. So each adapter runs this from a
//! test binary of its own (`tests/secrets.rs`), where nothing else logs.
//!
//! ```text
//! // mqtt-tokio/tests/secrets.rs
//! #[test]
//! fn no_secret_is_ever_printed() {
//!     let logs = mqtt_test_support::secrets::capture_logs();
//!     block_on(mqtt_test_support::secrets::no_secret_is_ever_printed::<Tokio>(logs));
//! }
//! ```

use std::fmt::Debug;
use std::future::IntoFuture;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sansmqtt_client::proto::{ProtocolVersion, QoS};
use sansmqtt_client::{
    ClientConfig, ClientError, ConnectProperties, ConnectionEvent, MqttClient, Runtime, Target,
};

use crate::suite::{sleep, with_timeout};
use crate::{Certs, Mosquitto, free_port};

/// Everything the process logged since [`capture_logs`] was first called.
#[derive(Clone)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// The captured text so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.0)).into_owned()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Appends what it is given to the capture.
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `log` records (rustls and tungstenite log through `log`) into the same capture.
struct LogBridge(Arc<Mutex<Vec<u8>>>);

impl log::Log for LogBridge {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!(
            "{} {}: {}\n",
            record.level(),
            record.target(),
            record.args()
        );
        lock(&self.0).extend_from_slice(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs, once per process, a global `tracing` subscriber at TRACE for every target and a
/// `log` logger at TRACE, both writing into one buffer, and returns that buffer.
///
/// # Panics
///
/// If another global subscriber or logger was installed first (the scan would then miss lines).
pub fn capture_logs() -> CapturedLogs {
    static CAPTURE: OnceLock<CapturedLogs> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let writer = buffer.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
                .with_ansi(false)
                .with_writer(move || Sink(writer.clone()))
                .finish();
            // Not `SubscriberInitExt::try_init`: with tracing-subscriber's `tracing-log`
            // feature (turned on by other members of a workspace build) it also installs
            // `LogTracer` as the `log` logger, and the bridge below must be that logger.
            tracing::subscriber::set_global_default(subscriber)
                .expect("the secret scan needs its own global tracing subscriber");
            log::set_boxed_logger(Box::new(LogBridge(buffer.clone())))
                .expect("the secret scan needs its own global logger");
            log::set_max_level(log::LevelFilter::Trace);
            CapturedLogs(buffer)
        })
        .clone()
}

/// Runs `f` with a subscriber at TRACE for this thread only and returns what it logged: for
/// synchronous code (loading a configuration), where no other thread is involved.
pub fn thread_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_ansi(false)
        .with_writer(move || Sink(writer.clone()))
        .finish();
    let output = {
        let _scope = tracing_subscriber::util::SubscriberInitExt::set_default(subscriber);
        f()
    };
    let text = String::from_utf8_lossy(&lock(&buffer)).into_owned();
    (output, text)
}

/// What the test printed: `Debug` of every public value it touched, `Display` of errors.
#[derive(Default)]
struct Printed(String);

impl Printed {
    fn debug(&mut self, what: &str, value: &impl Debug) {
        self.0.push_str(&format!("{what}: {value:?}\n{value:#?}\n"));
    }

    fn error(&mut self, what: &str, err: &ClientError) {
        self.debug(what, err);
        // The whole chain, as an error reporter prints it.
        let mut cause: Option<&dyn std::error::Error> = Some(err);
        while let Some(err) = cause {
            self.0.push_str(&format!("{what}: {err}\n"));
            cause = err.source();
        }
    }
}

/// A password that occurs nowhere by chance: letters and digits only, so it reads the same
/// percent-encoded in a URI.
fn unique_secret() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("Zq{}x{nanos:x}Pw", std::process::id())
}

/// Every form in which `secret` could leak: as text, as a `Debug` byte list, as hex, and as
/// the base64 of HTTP Basic authentication (`alice:secret`).
fn leak_forms(secret: &[u8]) -> Vec<String> {
    // As a `Debug` byte list, decimal (`{:?}`) and hex (`{:x?}`).
    let mut forms = vec![
        format!("{secret:?}").trim_matches(['[', ']']).to_owned(),
        format!("{secret:x?}").trim_matches(['[', ']']).to_owned(),
    ];
    let mut basic = b"alice:".to_vec();
    basic.extend_from_slice(secret);
    // The middle of the encoding: independent of how the user name's bytes align.
    let encoded = base64(&basic);
    forms.push(encoded[8..encoded.len() - 4].to_owned());
    forms.push(secret.iter().map(|b| format!("{b:02x}")).collect());
    if let Ok(text) = std::str::from_utf8(secret) {
        forms.push(text.to_owned());
    }
    forms
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A line from the middle of the client key's PEM body: key material that must never show.
fn key_material(certs: &Certs) -> String {
    let pem = std::fs::read_to_string(certs.client_key()).expect("reading the client key");
    let lines: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!lines.is_empty(), "client key without a body:\n{pem}");
    lines[lines.len() / 2].to_owned()
}

/// Runs every path that handles a secret and asserts the secrets appear nowhere in what was
/// logged or printed.
pub async fn no_secret_is_ever_printed<R: Runtime + Default>(logs: CapturedLogs) {
    // The leak forms' own encoder, checked against known values.
    for (plain, encoded) in [
        (&b"alice:pw"[..], "YWxpY2U6cHc="),
        (b"alice:pwx", "YWxpY2U6cHd4"),
        (b"alice:p", "YWxpY2U6cA=="),
    ] {
        assert_eq!(base64(plain), encoded);
    }
    let secret = unique_secret();
    let certs = Certs::generate();
    let key = key_material(&certs);
    let mut printed = Printed::default();
    let mut broker = Mosquitto::builder()
        .users(&[("alice", secret.as_str())])
        .tls(&certs)
        .mutual_tls(true)
        .start();
    let with_secret = |uri: &str| uri.replacen("://", &format!("://alice:{secret}@"), 1);
    let good_uri = with_secret(&broker.uri());
    // Nothing listens here: every attempt on it fails and is logged.
    let dead_uri = with_secret(&format!("mqtt://127.0.0.1:{}", free_port()));

    connect_publish_and_reconnect::<R>(&mut broker, &secret, &good_uri, &dead_uri, &mut printed)
        .await;
    refused_connects::<R>(&broker, &secret, &mut printed).await;
    tls_paths::<R>(&broker, &certs, &secret, &with_secret, &mut printed).await;
    websocket::<R>(&with_secret, &mut printed).await;
    proxies::<R>(&broker, &secret, &mut printed).await;

    let logs = logs.text();
    // The scan means something only if the secrets' paths were logged.
    // ` rustls::`: lines from `log` (the TLS handshake) are captured too.
    for expected in [
        "tungstenite::handshake::client: Request",
        // A WebSocket connection was made, so its frames (CONNECT, password included) went
        // through the framing every log line here is scanned for.
        "WebSocket connected",
        "reconnecting",
        "-out->",
        "alice:***@",
        "connection refused",
        " rustls::",
    ] {
        assert!(
            logs.contains(expected),
            "no log line with {expected:?}: the capture does not see the client's logs"
        );
    }
    for (name, text) in [("the logs", &logs), ("printed values", &printed.0)] {
        for form in leak_forms(secret.as_bytes()).iter().chain([&key]) {
            if let Some(at) = text.find(form.as_str()) {
                let from = text[..at].rfind('\n').map_or(0, |n| n + 1);
                let to = text[at..].find('\n').map_or(text.len(), |n| at + n);
                panic!(
                    "a secret appears in {name}: {:?}",
                    &text[from..to.min(from + 2000)]
                );
            }
        }
    }
}

/// A connect through the configured URIs (the good one, then a dead one), traffic, the broker
/// killed (reconnects walk both URIs), restarted (reconnected), disconnect.
async fn connect_publish_and_reconnect<R: Runtime + Default>(
    broker: &mut Mosquitto,
    secret: &str,
    good_uri: &str,
    dead_uri: &str,
    printed: &mut Printed,
) {
    let config = ClientConfig::default()
        .uri(good_uri)
        .uris([dead_uri])
        .username("alice")
        .password(secret)
        .reconnect_retries(None)
        .reconnect_initial_interval(Duration::from_millis(50))
        .reconnect_max_interval(Duration::from_millis(200))
        .connect_timeout(Duration::from_secs(2));
    printed.debug("config", &config);
    for uri in [good_uri, dead_uri] {
        let target = Target::parse(uri).expect("a valid URI");
        printed.debug("target", &target);
        printed.0.push_str(&format!("target: {target}\n"));
    }
    let client = MqttClient::<R>::new(Some("secret-scan"), config);
    let mut events = client.connection_events();
    printed.debug("client", &client);
    printed.debug("client config", client.config());
    printed.debug("connecting", &client.connect(None));
    printed.debug("reconnecting", &client.reconnect());
    let connack = with_timeout::<R, _>(
        crate::suite::BOUND,
        "CONNACK",
        client.connect(None).into_future(),
    )
    .await
    .expect("connecting with the right password");
    printed.debug("connack", &connack);
    let codes = client
        .subscribe([("scan/#", QoS::AtLeastOnce)])
        .await
        .expect("subscribe");
    printed.debug("suback", &codes);
    let publishing = client.publish("scan/t", "payload").qos(QoS::AtLeastOnce);
    printed.debug("publishing", &publishing);
    let ack = publishing.await.expect("publish");
    printed.debug("puback", &ack);
    let message = client
        .deliver_message()
        .timeout(crate::suite::BOUND)
        .await
        .expect("own message");
    printed.debug("message", &message);

    broker.kill();
    // Attempts go to both URIs (the dead one fails at once) until the broker is back.
    let deadline = Instant::now() + crate::suite::BOUND;
    let mut reconnect_uris = Vec::new();
    while reconnect_uris.len() < 3 {
        assert!(Instant::now() < deadline, "too few reconnect attempts");
        if let Some(event) = next_event::<R>(&mut events).await {
            printed.debug("event", &event);
            if let ConnectionEvent::Reconnecting { uri, .. } = &event {
                reconnect_uris.push(uri.clone());
            }
        }
    }
    assert!(
        reconnect_uris.iter().all(|uri| uri.contains("alice:***@")),
        "reconnect events show the URI without its password: {reconnect_uris:?}"
    );
    broker.restart();
    loop {
        assert!(
            Instant::now() < deadline + crate::suite::BOUND,
            "no reconnect"
        );
        if let Some(event) = next_event::<R>(&mut events).await {
            printed.debug("event", &event);
            if matches!(event, ConnectionEvent::Connected { .. }) {
                break;
            }
        }
    }
    client.disconnect().await.expect("disconnect");
    while let Some(event) = next_event::<R>(&mut events).await {
        printed.debug("event", &event);
    }
    // Publishing after the end: an error to print.
    let err = client.publish("scan/t", "late").await.expect_err("closed");
    printed.error("publish after disconnect", &err);
}

/// The next connection event within 100 ms.
async fn next_event<R: Runtime + Default>(
    events: &mut (impl futures_util::Stream<Item = ConnectionEvent> + Unpin),
) -> Option<ConnectionEvent> {
    use futures_util::StreamExt;
    let timer = std::pin::pin!(sleep::<R>(Duration::from_millis(100)));
    match futures_util::future::select(events.next(), timer).await {
        futures_util::future::Either::Left((event, _)) => event,
        futures_util::future::Either::Right(_) => None,
    }
}

/// A wrong password in the URI (the right one in the configuration), a right password with
/// MQTT 5 authentication data the broker does not know, and a URI that does not parse.
async fn refused_connects<R: Runtime + Default>(
    broker: &Mosquitto,
    secret: &str,
    printed: &mut Printed,
) {
    let wrong = format!("mqtt://alice:{secret}Wrong@127.0.0.1:{}", broker.port());
    let config = ClientConfig::default()
        .password(secret)
        .auto_reconnect(false);
    let client = MqttClient::<R>::new(None, config);
    let mut events = client.connection_events();
    let err = client
        .connect(wrong.as_str())
        .await
        .expect_err("wrong password");
    printed.error("wrong password", &err);
    while let Some(event) = next_event::<R>(&mut events).await {
        printed.debug("event", &event);
    }

    let properties = ConnectProperties {
        authentication_method: Some("X-SCAN".into()),
        authentication_data: Some(secret.as_bytes().to_vec().into()),
        ..ConnectProperties::default()
    };
    let config = ClientConfig::default()
        .protocol_version(ProtocolVersion::V5)
        .username("alice")
        .password(secret)
        .connect_properties(properties)
        .auto_reconnect(false);
    printed.debug("MQTT 5 config", &config);
    let client = MqttClient::<R>::new(None, config);
    let result = client.connect(broker.uri().as_str()).await;
    match result {
        Ok(connack) => printed.debug("MQTT 5 connack", &connack),
        Err(err) => printed.error("MQTT 5 authentication data", &err),
    }

    let unparsable = format!("mqtt://alice:{secret}@");
    let err = MqttClient::<R>::new(None, ClientConfig::default())
        .connect(unparsable.as_str())
        .await
        .expect_err("no host");
    printed.error("unparsable URI", &err);
}

/// A WebSocket connection with the password in its URI (tungstenite logs its handshake
/// request at trace level).
async fn websocket<R: Runtime + Default>(
    with_secret: &dyn Fn(&str) -> String,
    printed: &mut Printed,
) {
    let nats = crate::Nats::start();
    let uri = with_secret(&nats.ws_uri());
    let client = MqttClient::<R>::new(None, ClientConfig::default().auto_reconnect(false));
    let connack = with_timeout::<R, _>(
        crate::suite::BOUND,
        "a WebSocket CONNACK",
        client.connect(uri.as_str()).into_future(),
    )
    .await
    .expect("connecting over WebSocket");
    printed.debug("WebSocket connack", &connack);
    client.disconnect().await.expect("disconnect");
}

/// Through a SOCKS5 proxy whose password is the secret, and an HTTP proxy refusing it.
async fn proxies<R: Runtime + Default>(broker: &Mosquitto, secret: &str, printed: &mut Printed) {
    let uri = broker.uri();
    let socks = crate::Socks5Proxy::with_credentials("alice", secret);
    let config = ClientConfig::default()
        .username("alice")
        .password(secret)
        .proxy(socks.url())
        .auto_reconnect(false);
    printed.debug("proxy config", &config);
    let client = MqttClient::<R>::new(None, config);
    let connack = with_timeout::<R, _>(
        crate::suite::BOUND,
        "a CONNACK through SOCKS5",
        client.connect(uri.as_str()).into_future(),
    )
    .await
    .expect("connecting through the SOCKS5 proxy");
    printed.debug("proxy connack", &connack);
    client.disconnect().await.expect("disconnect");

    let http = crate::HttpProxy::builder()
        .credentials("alice", "another-password")
        .start();
    let refused = http
        .url()
        .replacen("://", &format!("://alice:{secret}@"), 1);
    let config = ClientConfig::default()
        .proxy(&refused)
        .auto_reconnect(false);
    printed.debug("HTTP proxy config", &config);
    let err = with_timeout::<R, _>(
        crate::suite::BOUND,
        "an HTTP proxy refusal",
        MqttClient::<R>::new(None, config)
            .connect(uri.as_str())
            .into_future(),
    )
    .await
    .expect_err("wrong proxy password");
    printed.error("HTTP proxy refusal", &err);
}

/// Mutual TLS with the client key, then the same with a CA that does not sign the server's
/// certificate, with retries (the failure is final).
async fn tls_paths<R: Runtime + Default>(
    broker: &Mosquitto,
    certs: &Certs,
    secret: &str,
    with_secret: &dyn Fn(&str) -> String,
    printed: &mut Printed,
) {
    let uri = with_secret(&broker.tls_uri());
    let config = ClientConfig::default()
        .password(secret)
        .ca_file(certs.ca_file())
        .cert_file(certs.client_cert())
        .key_file(certs.client_key())
        .auto_reconnect(false);
    let client = MqttClient::<R>::new(None, config.clone());
    let connack = client
        .connect(uri.as_str())
        .await
        .expect("mutual TLS with the right CA");
    printed.debug("TLS connack", &connack);
    client.disconnect().await.expect("disconnect");

    let config = config
        .ca_file(certs.other_ca_file())
        .auto_reconnect(true)
        .reconnect_retries(None);
    printed.debug("TLS config", &config);
    let client = MqttClient::<R>::new(None, config);
    let mut events = client.connection_events();
    let connecting = client.connect(uri.as_str());
    printed.debug("TLS connecting", &connecting);
    let err = with_timeout::<R, _>(
        crate::suite::BOUND,
        "a TLS refusal",
        connecting.into_future(),
    )
    .await
    .expect_err("unknown CA");
    assert!(matches!(err, ClientError::Tls(_)), "wrong CA: {err:?}");
    printed.error("TLS wrong CA", &err);
    while let Some(event) = next_event::<R>(&mut events).await {
        printed.debug("event", &event);
    }
}
