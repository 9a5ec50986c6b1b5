//! SCRAM-SHA-1 / SCRAM-SHA-256 ([`Scram`](sansmqtt_client::Scram)) against a scripted
//! MQTT 5 broker whose server side is computed independently, with *ring*'s PBKDF2 and HMAC.

use std::collections::BTreeSet;
use std::future::IntoFuture;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::{digest, hmac, pbkdf2};
use sansmqtt_client::proto::{ProtocolVersion, QoS, ReasonCode};
use sansmqtt_client::session::ConnectionError;
use sansmqtt_client::{
    AuthError, AuthToken, ClientConfig, ClientError, ConnectionEvent, MqttClient, Runtime, Scram,
    ScramError, TokenAuth, TokenProvider,
};

use super::amqtt::{connect_properties, properties_at, scripted_server_with_connect};
use super::{
    BOUND, accept_within, join_thread, read_packet, var_int, wait_for_close, with_timeout,
};

/// How the scripted SCRAM broker behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScramBroker {
    /// Knows the password: checks the client's proof, proves itself.
    Honest,
    /// Accepts any proof and sends a made-up server signature.
    WrongSignature,
    /// Answers with a nonce that does not start with the client's.
    ForeignNonce,
}

/// The hash of a mechanism, in *ring*'s terms.
#[derive(Clone, Copy)]
struct RingHash {
    method: &'static str,
    pbkdf2: pbkdf2::Algorithm,
    hmac: hmac::Algorithm,
    digest: &'static digest::Algorithm,
    len: usize,
}

const SHA1: RingHash = RingHash {
    method: "SCRAM-SHA-1",
    pbkdf2: pbkdf2::PBKDF2_HMAC_SHA1,
    hmac: hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
    digest: &digest::SHA1_FOR_LEGACY_USE_ONLY,
    len: 20,
};

const SHA256: RingHash = RingHash {
    method: "SCRAM-SHA-256",
    pbkdf2: pbkdf2::PBKDF2_HMAC_SHA256,
    hmac: hmac::HMAC_SHA256,
    digest: &digest::SHA256,
    len: 32,
};

fn mac(hash: RingHash, key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hash.hmac, key), data)
        .as_ref()
        .to_vec()
}

/// An MQTT 5 packet with `head`, then the properties method + data.
fn packet_with_auth(first: u8, head: &[u8], method: &str, data: &[u8]) -> Vec<u8> {
    let mut properties = vec![0x15];
    properties.extend_from_slice(&u16::try_from(method.len()).expect("short").to_be_bytes());
    properties.extend_from_slice(method.as_bytes());
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

/// The Authentication Data (0x16) among `properties`.
fn auth_data(properties: &[(u8, Vec<u8>)]) -> String {
    let raw = properties
        .iter()
        .find(|(id, _)| *id == 0x16)
        .map(|(_, value)| value[2..].to_vec())
        .expect("Authentication Data");
    String::from_utf8(raw).expect("SCRAM messages are UTF-8")
}

/// The broker's side of SCRAM with `password`: returns whether it accepted the client.
fn serve_scram(
    stream: &mut TcpStream,
    connect: &[u8],
    hash: RingHash,
    password: &str,
    behaviour: ScramBroker,
) -> bool {
    let properties = connect_properties(connect);
    let method = properties
        .iter()
        .find(|(id, _)| *id == 0x15)
        .map(|(_, value)| String::from_utf8_lossy(&value[2..]).into_owned());
    assert_eq!(
        method.as_deref(),
        Some(hash.method),
        "Authentication Method"
    );
    let client_first = auth_data(&properties);
    let bare = client_first
        .strip_prefix("n,,")
        .expect("gs2 header n,, (no channel binding)");
    let client_nonce = bare
        .split(',')
        .find_map(|attribute| attribute.strip_prefix("r="))
        .expect("client nonce");
    assert!(
        client_nonce.len() >= 16,
        "a nonce of some length: {client_nonce}"
    );
    let server_nonce = STANDARD.encode(crate::auth::nonce());
    let salt = crate::auth::nonce();
    let iterations = 4096u32;
    let combined = match behaviour {
        ScramBroker::ForeignNonce => format!("x{server_nonce}"),
        _ => format!("{client_nonce}{server_nonce}"),
    };
    let server_first = format!("r={combined},s={},i={iterations}", STANDARD.encode(salt));
    stream
        .write_all(&packet_with_auth(
            0xF0,
            &[0x18],
            hash.method,
            server_first.as_bytes(),
        ))
        .expect("AUTH with server-first");
    let Ok((first, body)) = read_packet(stream) else {
        // The client refused the server-first message and hung up.
        return false;
    };
    if first == 0xE0 {
        wait_for_close(stream, BOUND);
        return false;
    }
    assert_eq!(
        (first, body[0]),
        (0xF0, 0x18),
        "AUTH continue from the client"
    );
    let client_final = auth_data(&properties_at(&body, 1));
    let (without_proof, proof) = client_final.rsplit_once(",p=").expect("a proof");
    assert_eq!(without_proof, format!("c=biws,r={combined}"));
    let mut salted = vec![0u8; hash.len];
    pbkdf2::derive(
        hash.pbkdf2,
        std::num::NonZeroU32::new(iterations).expect("non-zero"),
        &salt,
        password.as_bytes(),
        &mut salted,
    );
    let auth_message = format!("{bare},{server_first},{without_proof}");
    let stored_key = digest::digest(hash.digest, &mac(hash, &salted, b"Client Key"));
    let client_signature = mac(hash, stored_key.as_ref(), auth_message.as_bytes());
    let proof = STANDARD.decode(proof).expect("base64 proof");
    let client_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let accepted = behaviour != ScramBroker::Honest
        || digest::digest(hash.digest, &client_key).as_ref() == stored_key.as_ref();
    if !accepted {
        stream
            .write_all(&[0x20, 0x03, 0x00, 0x87, 0x00])
            .expect("CONNACK refusal");
        wait_for_close(stream, BOUND);
        return false;
    }
    let mut server_signature = mac(
        hash,
        &mac(hash, &salted, b"Server Key"),
        auth_message.as_bytes(),
    );
    if behaviour == ScramBroker::WrongSignature {
        server_signature[0] ^= 1;
    }
    let server_final = format!("v={}", STANDARD.encode(server_signature));
    stream
        .write_all(&packet_with_auth(
            0x20,
            &[0x00, 0x00],
            hash.method,
            server_final.as_bytes(),
        ))
        .expect("CONNACK");
    wait_for_close(stream, BOUND);
    true
}

/// A one-connection MQTT 5 broker serving `method` (`SCRAM-SHA-1` or `SCRAM-SHA-256`) for
/// any user with `password`, for tests outside this suite (the CLI's): its URI, and a handle
/// whose result says whether it accepted the client.
///
/// # Panics
///
/// For another method.
pub fn scram_broker(method: &str, password: &'static str) -> (String, JoinHandle<(Vec<u8>, bool)>) {
    let hash = match method {
        "SCRAM-SHA-1" => SHA1,
        "SCRAM-SHA-256" => SHA256,
        other => panic!("no scripted broker for {other}"),
    };
    scripted_server_with_connect(move |stream, connect| {
        serve_scram(stream, connect, hash, password, ScramBroker::Honest)
    })
}

/// SCRAM-SHA-1 and SCRAM-SHA-256 through the `Authenticator` hook against the scripted
/// broker: the right password connects; a wrong one is refused by the broker; a broker whose
/// server signature is wrong, or whose nonce does not extend the client's, is refused by the
/// client. Every failure is final even with retries forever.
pub async fn scram_against_a_scripted_broker<R: Runtime + Default>() {
    const PASSWORD: &str = "pencil and paper";
    for hash in [SHA1, SHA256] {
        for (password, behaviour) in [
            (PASSWORD, ScramBroker::Honest),
            ("wrong password", ScramBroker::Honest),
            (PASSWORD, ScramBroker::WrongSignature),
            (PASSWORD, ScramBroker::ForeignNonce),
        ] {
            let what = format!(
                "{} {behaviour:?} password ok: {}",
                hash.method,
                password == PASSWORD
            );
            let (uri, server) = scripted_server_with_connect(move |stream, connect| {
                serve_scram(stream, connect, hash, PASSWORD, behaviour)
            });
            let scram = Scram::by_name(hash.method, "user", password).expect("a SCRAM method");
            let config = super::no_retry()
                .auto_reconnect(true)
                .reconnect_retries(None)
                .protocol_version(ProtocolVersion::V5)
                .authenticator(scram);
            let client = MqttClient::<R>::new(None, config);
            let result = with_timeout::<R, _>(
                BOUND,
                "a SCRAM connect",
                client.connect(uri.as_str()).into_future(),
            )
            .await;
            match (password == PASSWORD, behaviour) {
                (true, ScramBroker::Honest) => {
                    assert!(result.is_ok(), "{what}: {result:?}");
                    client.disconnect().await.expect("disconnect");
                }
                (false, _) => assert!(
                    matches!(&result, Err(ClientError::Connect(reason))
                        if reason.code == ReasonCode::NotAuthorized),
                    "{what}: {result:?}"
                ),
                (true, ScramBroker::WrongSignature) => assert!(
                    matches!(&result, Err(ClientError::Auth(AuthError::ServerUnverified))),
                    "{what}: {result:?}"
                ),
                (true, ScramBroker::ForeignNonce) => match &result {
                    Err(ClientError::Auth(AuthError::Failed(err))) => assert_eq!(
                        err.downcast_ref::<ScramError>(),
                        Some(&ScramError::NonceMismatch),
                        "{what}"
                    ),
                    other => panic!("{what}: {other:?}"),
                },
            }
            let (_, accepted) = join_thread::<R, _>(server).await;
            assert_eq!(
                accepted,
                password == PASSWORD && behaviour != ScramBroker::ForeignNonce,
                "{what}"
            );
        }
    }
}

// ---- re-authentication ----------------------------------------------------------------------

/// The Authentication Method of the token tests.
const TOKEN_METHOD: &str = "TEST-TOKEN";

/// Hands out `token-1`, `token-2`, ... each valid for `lifetime`.
#[derive(Debug)]
struct CountingTokens {
    issued: std::sync::atomic::AtomicU32,
    lifetime: Option<Duration>,
}

impl TokenProvider for CountingTokens {
    fn token(&self) -> Result<AuthToken, AuthError> {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(AuthToken::new(
            format!("token-{n}").into_bytes(),
            self.lifetime,
        ))
    }
}

/// What the re-authentication broker saw.
#[derive(Debug, Default)]
struct ReauthLog {
    /// The token of each CONNECT and each AUTH 0x19, in order.
    tokens: Vec<String>,
    /// Distinct QoS 1 payloads acknowledged.
    payloads: BTreeSet<Vec<u8>>,
}

/// An MQTT 5 broker for the re-authentication tests: accepts up to `connections`
/// connections one after the other, each CONNECT with any token; acknowledges every QoS 1
/// PUBLISH; answers AUTH 0x19 with AUTH success, or with DISCONNECT "not authorized" when
/// `refuse` says so for its token.
fn reauth_broker(
    connections: usize,
    refuse: impl Fn(&str) -> bool + Send + 'static,
) -> (String, Arc<Mutex<ReauthLog>>, JoinHandle<()>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding");
    let uri = format!(
        "mqtt://127.0.0.1:{}",
        listener.local_addr().expect("address").port()
    );
    let log = Arc::new(Mutex::new(ReauthLog::default()));
    let handle = {
        let log = log.clone();
        thread::spawn(move || {
            for _ in 0..connections {
                let Some((mut stream, _)) = accept_within(&listener, Duration::from_secs(10))
                else {
                    return;
                };
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("read timeout");
                serve_reauth(&mut stream, &log, &refuse);
            }
        })
    };
    (uri, log, handle)
}

/// One connection of [`reauth_broker`], until the client or the broker ends it.
fn serve_reauth(stream: &mut TcpStream, log: &Mutex<ReauthLog>, refuse: &dyn Fn(&str) -> bool) {
    let Ok((0x10, connect)) = read_packet(stream) else {
        return;
    };
    let token = auth_data(&connect_properties(&connect));
    lock(log).tokens.push(token);
    stream
        .write_all(&[0x20, 0x03, 0x00, 0x00, 0x00])
        .expect("CONNACK");
    while let Ok((first, body)) = read_packet(stream) {
        match first >> 4 {
            3 => {
                assert_eq!(first & 0x06, 0x02, "QoS 1 publishes only");
                let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                let id = [body[2 + topic_len], body[3 + topic_len]];
                let mut at = 4 + topic_len;
                let properties = super::amqtt::read_var_int(&body, &mut at);
                lock(log).payloads.insert(body[at + properties..].to_vec());
                stream
                    .write_all(&[0x40, 0x02, id[0], id[1]])
                    .expect("PUBACK");
            }
            15 => {
                assert_eq!(body[0], 0x19, "AUTH re-authenticate from the client");
                let token = auth_data(&properties_at(&body, 1));
                let refused = refuse(&token);
                lock(log).tokens.push(token);
                if refused {
                    // DISCONNECT "not authorized" with a reason string.
                    let reason = b"token refused";
                    let mut packet = vec![
                        0xE0,
                        0,
                        0x87,
                        3 + u8::try_from(reason.len()).expect("short"),
                        0x1F,
                        0,
                    ];
                    packet.push(u8::try_from(reason.len()).expect("short"));
                    packet.extend_from_slice(reason);
                    packet[1] = u8::try_from(packet.len() - 2).expect("short");
                    stream.write_all(&packet).expect("DISCONNECT");
                    wait_for_close(stream, BOUND);
                    return;
                }
                stream
                    .write_all(&packet_with_auth(0xF0, &[0x00], TOKEN_METHOD, b""))
                    .expect("AUTH success");
            }
            12 => stream.write_all(&[0xD0, 0x00]).expect("PINGRESP"),
            14 => return,
            other => panic!("unexpected packet type {other}"),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Publishes `count` QoS 1 messages one after the other on `client`, counting completions
/// in `done`; returns the failures.
async fn publish_stream<R: Runtime + Default>(
    client: &MqttClient<R>,
    count: usize,
    done: &AtomicUsize,
) -> Vec<String> {
    let mut failures = Vec::new();
    for n in 0..count {
        let result = client
            .publish("reauth/stream", format!("m{n}").into_bytes())
            .qos(QoS::AtLeastOnce)
            .into_future()
            .await;
        if let Err(err) = result {
            failures.push(format!("m{n}: {err:?}"));
        }
        done.fetch_add(1, Ordering::SeqCst);
        if n % 20 == 0 {
            super::sleep::<R>(Duration::from_millis(5)).await;
        }
    }
    failures
}

/// Re-authenticates once `done` publishes completed (so the stream is flowing); returns the
/// outcome and how many publishes had completed by then.
async fn reauthenticate_midway<R: Runtime + Default>(
    client: &MqttClient<R>,
    done: &AtomicUsize,
) -> (Result<(), ClientError>, usize) {
    while done.load(Ordering::SeqCst) < 50 {
        super::sleep::<R>(Duration::from_millis(1)).await;
    }
    let result = client.reauthenticate().await;
    (result, done.load(Ordering::SeqCst))
}

/// `reauthenticate()` on a live MQTT 5 connection while QoS 1 messages flow: the broker
/// gets a fresh token in AUTH 0x19 and accepts; then the token's lifetime makes the client
/// refresh on its own before expiry; no message is lost.
pub async fn reauthentication_refreshes_the_token_while_qos1_traffic_flows<R: Runtime + Default>() {
    const COUNT: usize = 300;
    let (uri, log, server) = reauth_broker(1, |_| false);
    let done = AtomicUsize::new(0);
    let tokens = CountingTokens {
        issued: 0.into(),
        lifetime: Some(Duration::from_millis(1500)),
    };
    let config = super::no_retry()
        .protocol_version(ProtocolVersion::V5)
        .authenticator(TokenAuth::new(TOKEN_METHOD, tokens));
    let client = MqttClient::<R>::new(None, config);
    let mut events = client.connection_events();
    with_timeout::<R, _>(BOUND, "CONNACK", client.connect(uri.as_str()).into_future())
        .await
        .expect("connect");
    let (failures, reauth) = with_timeout::<R, _>(
        Duration::from_secs(20),
        "publishing while re-authenticating",
        futures_util::future::join(
            publish_stream(&client, COUNT, &done),
            reauthenticate_midway(&client, &done),
        ),
    )
    .await;
    let (reauth, done_by_then) = reauth;
    assert!(reauth.is_ok(), "{reauth:?}");
    assert!(done_by_then < COUNT, "the stream was still flowing");
    assert!(failures.is_empty(), "lost publishes: {failures:?}");
    // The scheduled refresh, about a second after each accepted token.
    let deadline = Instant::now() + Duration::from_secs(5);
    while lock(&log).tokens.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no scheduled refresh: {:?}",
            lock(&log).tokens
        );
        super::sleep::<R>(Duration::from_millis(20)).await;
    }
    client.disconnect().await.expect("disconnect");
    join_thread::<R, _>(server).await;
    let log = lock(&log);
    assert_eq!(
        log.tokens[..3],
        ["token-1", "token-2", "token-3"],
        "{:?}",
        log.tokens
    );
    assert_eq!(
        log.payloads.len(),
        COUNT,
        "every message reached the broker once"
    );
    let mut reauthenticated = 0;
    while let Some(Some(event)) =
        futures_util::FutureExt::now_or_never(futures_util::StreamExt::next(&mut events))
    {
        reauthenticated += usize::from(matches!(event, ConnectionEvent::Reauthenticated));
    }
    assert!(
        reauthenticated >= 2,
        "{reauthenticated} Reauthenticated events"
    );
}

/// A broker refusing the re-authentication (DISCONNECT "not authorized"): `reauthenticate`
/// fails with that reason; the client reconnects with a fresh token and the QoS 1 messages
/// in flight complete: none lost.
pub async fn a_refused_reauthentication_reports_the_disconnect_and_loses_nothing<
    R: Runtime + Default,
>() {
    const COUNT: usize = 300;
    let (uri, log, server) = reauth_broker(2, |token| token == "token-2");
    let done = AtomicUsize::new(0);
    let tokens = CountingTokens {
        issued: 0.into(),
        lifetime: None,
    };
    let config = ClientConfig::default()
        .connect_timeout(BOUND)
        .reconnect_initial_interval(Duration::from_millis(50))
        .reconnect_retries(None)
        .protocol_version(ProtocolVersion::V5)
        .authenticator(TokenAuth::new(TOKEN_METHOD, tokens));
    let client = MqttClient::<R>::new(None, config);
    with_timeout::<R, _>(BOUND, "CONNACK", client.connect(uri.as_str()).into_future())
        .await
        .expect("connect");
    let (failures, reauth) = with_timeout::<R, _>(
        Duration::from_secs(20),
        "publishing across a refused re-authentication",
        futures_util::future::join(
            publish_stream(&client, COUNT, &done),
            reauthenticate_midway(&client, &done),
        ),
    )
    .await;
    let (reauth, done_by_then) = reauth;
    assert!(done_by_then < COUNT, "the stream was still flowing");
    match &reauth {
        Err(ClientError::ConnectionLost(ConnectionError::ServerDisconnected(reason))) => {
            assert_eq!(reason.code, ReasonCode::NotAuthorized);
            assert_eq!(reason.reason_string.as_deref(), Some("token refused"));
        }
        other => panic!("{other:?}"),
    }
    assert!(failures.is_empty(), "lost publishes: {failures:?}");
    client.disconnect().await.expect("disconnect");
    join_thread::<R, _>(server).await;
    let log = lock(&log);
    assert_eq!(
        log.tokens,
        ["token-1", "token-2", "token-3"],
        "a fresh token on reconnect"
    );
    assert_eq!(
        log.payloads.len(),
        COUNT,
        "every message reached the broker"
    );
}
