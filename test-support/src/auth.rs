//! A worked MQTT 5 enhanced authentication method: an HMAC-SHA256 challenge/response with
//! mutual proof, both sides, for the client's [`Authenticator`] hook and the scripted broker
//! that tests it (mosquitto 2.0 has no enhanced-authentication plugin here).
//!
//! The method, `HMAC-SHA256-CHALLENGE`, with a key both sides share:
//! 1. CONNECT: Authentication Data = the client's 16-byte random nonce `c`.
//! 2. AUTH 0x18 (broker): Authentication Data = the broker's 16-byte random nonce `s`.
//! 3. AUTH 0x18 (client): Authentication Data = `HMAC(key, "client" | c | s)`.
//! 4. CONNACK success (broker, once it checked 3): Authentication Data =
//!    `HMAC(key, "server" | s | c)`, which the client checks, so a broker that does not know
//!    the key cannot pass itself off as the real one.
//!
//! Fresh nonces on both sides keep a recorded exchange from being replayed; the labels keep
//! the client's proof from being reflected as the broker's. (SCRAM-SHA-256, RFC 7677, adds a
//! salted, iterated password hash so the broker need not store the password; the message flow
//! through the hook is the same.)

use bytes::Bytes;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use sansmqtt_client::{AuthError, AuthExchange, Authenticator};

/// The method's name, sent as the Authentication Method.
pub const METHOD: &str = "HMAC-SHA256-CHALLENGE";

/// Length of each side's nonce.
pub const NONCE_LEN: usize = 16;

/// A fresh random nonce.
pub fn nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .expect("the system random source works");
    nonce
}

/// `HMAC-SHA256(key, label | first | second)`.
pub fn proof(key: &[u8], label: &[u8], first: &[u8], second: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut context = hmac::Context::with_key(&key);
    context.update(label);
    context.update(first);
    context.update(second);
    context.sign().as_ref().to_vec()
}

/// Whether `candidate` is `HMAC-SHA256(key, label | first | second)`, compared in constant
/// time.
pub fn verify(key: &[u8], label: &[u8], first: &[u8], second: &[u8], candidate: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let message = [label, first, second].concat();
    hmac::verify(&key, &message, candidate).is_ok()
}

/// The client side: give it to `ClientConfig::authenticator`.
#[derive(Clone)]
pub struct HmacChallenge {
    key: Vec<u8>,
}

impl HmacChallenge {
    /// The method with the shared `key`.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }
}

impl std::fmt::Debug for HmacChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("HmacChallenge").finish_non_exhaustive()
    }
}

impl Authenticator for HmacChallenge {
    fn method(&self) -> &str {
        METHOD
    }

    fn start(&self) -> Box<dyn AuthExchange> {
        Box::new(Exchange {
            key: self.key.clone(),
            client_nonce: nonce(),
            server_nonce: None,
        })
    }
}

/// One connection attempt of [`HmacChallenge`].
struct Exchange {
    key: Vec<u8>,
    client_nonce: [u8; NONCE_LEN],
    server_nonce: Option<Vec<u8>>,
}

impl AuthExchange for Exchange {
    fn initial_data(&mut self) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(&self.client_nonce))
    }

    fn on_challenge(&mut self, data: Option<&[u8]>) -> Result<Option<Bytes>, AuthError> {
        if self.server_nonce.is_some() {
            // The method has one challenge.
            return Err(AuthError::UnexpectedStep);
        }
        let server_nonce = data
            .filter(|nonce| nonce.len() == NONCE_LEN)
            .ok_or(AuthError::Malformed)?;
        let answer = proof(&self.key, b"client", &self.client_nonce, server_nonce);
        self.server_nonce = Some(server_nonce.to_vec());
        Ok(Some(Bytes::from(answer)))
    }

    fn on_success(&mut self, data: Option<&[u8]>) -> Result<(), AuthError> {
        let server_nonce = self
            .server_nonce
            .as_deref()
            .ok_or(AuthError::UnexpectedStep)?;
        let server_proof = data.ok_or(AuthError::ServerUnverified)?;
        if verify(
            &self.key,
            b"server",
            server_nonce,
            &self.client_nonce,
            server_proof,
        ) {
            Ok(())
        } else {
            Err(AuthError::ServerUnverified)
        }
    }
}
