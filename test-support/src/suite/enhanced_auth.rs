//! SCRAM-SHA-1 / SCRAM-SHA-256 ([`Scram`](sansmqtt_client::Scram)) against a scripted
//! MQTT 5 broker whose server side is computed independently, with *ring*'s PBKDF2 and HMAC.

use std::future::IntoFuture;
use std::io::Write;
use std::net::TcpStream;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::{digest, hmac, pbkdf2};
use sansmqtt_client::proto::{ProtocolVersion, ReasonCode};
use sansmqtt_client::{AuthError, ClientError, MqttClient, Runtime, Scram, ScramError};

use super::amqtt::{connect_properties, properties_at, scripted_server_with_connect};
use super::{BOUND, join_thread, read_packet, var_int, wait_for_close, with_timeout};

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
