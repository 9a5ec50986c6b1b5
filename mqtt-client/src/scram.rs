//! SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677) over MQTT 5 enhanced authentication,
//! as ready [`Authenticator`]s (feature `scram`).
//!
//! The messages travel as Authentication Data, the way brokers that serve SCRAM over MQTT 5
//! (EMQX) expect: CONNECT carries the client-first message, the broker's AUTH "continue"
//! (0x18) the server-first message, the client's AUTH answer the client-final message, and
//! the CONNACK the server-final message, whose signature the client checks: a broker that
//! does not know the password (or its salted form) cannot pass itself off as the real one.
//!
//! Channel binding is not used (gs2 header `n,,`). The client nonce is 18 bytes from the
//! operating system's CSPRNG, base64-encoded.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::auth::{AuthError, AuthExchange, Authenticator};
use crate::base64;
use crate::secret::Secret;

/// The gs2 header: no channel binding, no authorization identity.
const GS2_HEADER: &str = "n,,";
/// The fewest PBKDF2 iterations accepted from a server by default (RFC 7677 §4's minimum).
pub const DEFAULT_MIN_ITERATIONS: u32 = 4096;
/// The most PBKDF2 iterations accepted from a server: a bound on the work a hostile server
/// can make the client do (about a second for SHA-256 on a small machine).
pub const MAX_ITERATIONS: u32 = 1_000_000;
/// Random bytes in a client nonce.
const NONCE_BYTES: usize = 18;

/// The hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    fn method(self) -> &'static str {
        match self {
            Self::Sha1 => "SCRAM-SHA-1",
            Self::Sha256 => "SCRAM-SHA-256",
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            // HMAC takes a key of any length.
            let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
                unreachable!("HMAC accepts every key length")
            };
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Self::Sha1 => run::<Hmac<Sha1>>(key, data),
            Self::Sha256 => run::<Hmac<Sha256>>(key, data),
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => Sha1::digest(data).to_vec(),
            Self::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// `Hi(password, salt, i)`: PBKDF2 with HMAC and one output block.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha1 => {
                let mut out = vec![0; 20];
                pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out);
                out
            }
            Self::Sha256 => {
                let mut out = vec![0; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
        }
    }
}

/// Why a SCRAM exchange failed on the client's side (the source of
/// [`AuthError::Failed`]); a malformed server message is [`AuthError::Malformed`] and a
/// wrong server signature [`AuthError::ServerUnverified`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScramError {
    /// The server's nonce does not start with the client's: a replayed or forged message.
    #[error("the server nonce does not extend the client nonce")]
    NonceMismatch,
    /// The server asked for fewer iterations than the configured minimum, or more than
    /// [`MAX_ITERATIONS`].
    #[error("the server asked for {0} PBKDF2 iterations, outside the accepted range")]
    Iterations(u32),
    /// The server reported an error in its final message (`e=`).
    #[error("the server refused: {0}")]
    Server(String),
    /// The password holds a character SASLprep prohibits (an ASCII control character).
    #[error("the password holds a character SASLprep prohibits")]
    ProhibitedCharacter,
    /// The operating system's random source failed.
    #[error("no random nonce: the OS random source failed")]
    Random,
}

impl From<ScramError> for AuthError {
    fn from(err: ScramError) -> Self {
        Self::Failed(Arc::new(err))
    }
}

/// A SCRAM mechanism with a user name and password, for
/// [`ClientConfig::authenticator`](crate::ClientConfig::authenticator) (MQTT 5 only).
///
/// The password is prepared with SASLprep (RFC 4013) as far as this implementation goes:
/// fully for ASCII passwords (which are used as they are, with control characters refused);
/// for others, non-ASCII spaces become U+0020 and the characters SASLprep maps to nothing
/// are removed, but no Unicode normalization (NFKC) is applied, so a non-ASCII password
/// must already be in NFKC form. The password is never printed (`Debug` shows `***`).
#[derive(Clone)]
pub struct Scram {
    hash: Hash,
    username: String,
    password: Secret,
    min_iterations: u32,
}

impl fmt::Debug for Scram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scram")
            .field("method", &self.hash.method())
            .field("username", &self.username)
            .field("password", &self.password)
            .field("min_iterations", &self.min_iterations)
            .finish()
    }
}

impl Scram {
    /// `SCRAM-SHA-256` (RFC 7677): the one to use unless the broker offers only SHA-1.
    pub fn sha256(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::new(Hash::Sha256, username.into(), password.into())
    }

    /// `SCRAM-SHA-1` (RFC 5802), for brokers that offer no SHA-256.
    pub fn sha1(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::new(Hash::Sha1, username.into(), password.into())
    }

    /// The mechanism named `method` (`SCRAM-SHA-1` or `SCRAM-SHA-256`, any case), or `None`.
    pub fn by_name(
        method: &str,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Option<Self> {
        let hash = match method.to_ascii_uppercase().as_str() {
            "SCRAM-SHA-1" => Hash::Sha1,
            "SCRAM-SHA-256" => Hash::Sha256,
            _ => return None,
        };
        Some(Self::new(hash, username.into(), password.into()))
    }

    /// The fewest PBKDF2 iterations accepted from the server (default
    /// [`DEFAULT_MIN_ITERATIONS`], 4096). Lower it only for a server known to use fewer: a
    /// server that asks for few iterations makes a recorded exchange cheaper to attack. A
    /// count of 0 is refused whatever this says (PBKDF2 needs at least one iteration), so
    /// `min_iterations(0)` accepts the same counts as `min_iterations(1)`.
    #[must_use]
    pub fn min_iterations(mut self, iterations: u32) -> Self {
        self.min_iterations = iterations;
        self
    }

    fn new(hash: Hash, username: String, password: String) -> Self {
        Self {
            hash,
            username,
            password: Secret::from(password),
            min_iterations: DEFAULT_MIN_ITERATIONS,
        }
    }

    /// An exchange with the given client nonce (random in [`Authenticator::start`], fixed in
    /// the RFCs' test vectors).
    fn exchange(&self, client_nonce: Result<String, ScramError>) -> ScramExchange {
        let state = client_nonce.map(|nonce| {
            let bare = format!("n={},r={nonce}", escape_username(&self.username));
            State::Started { nonce, bare }
        });
        ScramExchange {
            scram: self.clone(),
            state: state.unwrap_or_else(State::Failed),
        }
    }
}

impl Authenticator for Scram {
    fn method(&self) -> &str {
        self.hash.method()
    }

    fn start(&self) -> Box<dyn AuthExchange> {
        Box::new(self.exchange(random_nonce()))
    }
}

/// A fresh client nonce: 18 CSPRNG bytes, base64 (printable, no comma).
fn random_nonce() -> Result<String, ScramError> {
    let mut bytes = [0u8; NONCE_BYTES];
    getrandom::fill(&mut bytes).map_err(|_| ScramError::Random)?;
    Ok(base64::encode(&bytes))
}

/// `saslname`: `=` and `,` escaped (RFC 5802 §5.1).
fn escape_username(username: &str) -> String {
    username.replace('=', "=3D").replace(',', "=2C")
}

/// SASLprep (RFC 4013) as far as described on [`Scram`].
fn saslprep(password: &str) -> Result<String, ScramError> {
    if password.is_ascii() {
        return if password.bytes().any(|b| b.is_ascii_control()) {
            Err(ScramError::ProhibitedCharacter)
        } else {
            Ok(password.to_owned())
        };
    }
    let mut prepared = String::with_capacity(password.len());
    for c in password.chars() {
        match c {
            // RFC 3454 C.1.2, non-ASCII space characters: mapped to SPACE.
            '\u{00A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200B}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}' => prepared.push(' '),
            // B.1, commonly mapped to nothing.
            '\u{00AD}'
            | '\u{034F}'
            | '\u{1806}'
            | '\u{180B}'..='\u{180D}'
            | '\u{200C}'
            | '\u{200D}'
            | '\u{2060}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}' => {}
            // C.2.1 / C.2.2, control characters: prohibited.
            c if c.is_control() => return Err(ScramError::ProhibitedCharacter),
            c => prepared.push(c),
        }
    }
    Ok(prepared)
}

/// Where one exchange is.
enum State {
    /// Sent the client-first message (`bare` is it without the gs2 header).
    Started {
        nonce: String,
        bare: String,
    },
    /// Sent the client-final message; the server must prove it knows `server_signature`.
    Proved {
        server_signature: Vec<u8>,
    },
    /// The exchange cannot go on (e.g. no random nonce): every step fails with this.
    Failed(ScramError),
    Finished,
}

/// One connection attempt's SCRAM exchange.
struct ScramExchange {
    scram: Scram,
    state: State,
}

impl AuthExchange for ScramExchange {
    fn initial_data(&mut self) -> Option<Bytes> {
        match &self.state {
            State::Started { bare, .. } => Some(Bytes::from(format!("{GS2_HEADER}{bare}"))),
            _ => None,
        }
    }

    fn on_challenge(&mut self, data: Option<&[u8]>) -> Result<Option<Bytes>, AuthError> {
        let (nonce, bare) = match std::mem::replace(&mut self.state, State::Finished) {
            State::Started { nonce, bare } => (nonce, bare),
            State::Failed(err) => return Err(err.into()),
            _ => return Err(AuthError::UnexpectedStep),
        };
        let server_first = data
            .and_then(|data| std::str::from_utf8(data).ok())
            .ok_or(AuthError::Malformed)?;
        let (final_message, server_signature) = self.client_final(&nonce, &bare, server_first)?;
        self.state = State::Proved { server_signature };
        Ok(Some(Bytes::from(final_message)))
    }

    fn on_success(&mut self, data: Option<&[u8]>) -> Result<(), AuthError> {
        let expected = match std::mem::replace(&mut self.state, State::Finished) {
            State::Proved { server_signature } => server_signature,
            State::Failed(err) => return Err(err.into()),
            _ => return Err(AuthError::UnexpectedStep),
        };
        let server_final = data
            .and_then(|data| std::str::from_utf8(data).ok())
            .ok_or(AuthError::ServerUnverified)?;
        if let Some(error) = server_final.strip_prefix("e=") {
            return Err(ScramError::Server(error.to_owned()).into());
        }
        let signature = server_final
            .strip_prefix("v=")
            .map(|v| v.split(',').next().unwrap_or_default())
            .and_then(base64::decode)
            .ok_or(AuthError::Malformed)?;
        if constant_time_eq(&signature, &expected) {
            Ok(())
        } else {
            Err(AuthError::ServerUnverified)
        }
    }
}

impl ScramExchange {
    /// The client-final message for `server_first`, and the server signature to expect.
    fn client_final(
        &self,
        nonce: &str,
        bare: &str,
        server_first: &str,
    ) -> Result<(String, Vec<u8>), AuthError> {
        let (combined, salt, iterations) = parse_server_first(server_first)?;
        if !combined.starts_with(nonce) || combined.len() == nonce.len() {
            return Err(ScramError::NonceMismatch.into());
        }
        if iterations == 0 || !(self.scram.min_iterations..=MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramError::Iterations(iterations).into());
        }
        let hash = self.scram.hash;
        // Built from a `String`, so always UTF-8; `None` cannot happen.
        let password = self.scram.password.expose_str().unwrap_or_default();
        let password = saslprep(password)?;
        let salted = hash.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        let stored_key = hash.digest(&client_key);
        // "biws" is base64("n,,").
        let without_proof = format!("c={},r={combined}", base64::encode(GS2_HEADER.as_bytes()));
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let client_signature = hash.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(key, signature)| key ^ signature)
            .collect();
        let server_key = hash.hmac(&salted, b"Server Key");
        let server_signature = hash.hmac(&server_key, auth_message.as_bytes());
        Ok((
            format!("{without_proof},p={}", base64::encode(&proof)),
            server_signature,
        ))
    }
}

/// `r=NONCE,s=SALT,i=ITERATIONS[,extensions]` (a mandatory extension `m=` is refused).
fn parse_server_first(message: &str) -> Result<(&str, Vec<u8>, u32), AuthError> {
    let mut attributes = message.split(',');
    let mut next = |name: &str| {
        attributes
            .next()
            .and_then(|attribute| attribute.strip_prefix(name))
            .ok_or(AuthError::Malformed)
    };
    if message.starts_with("m=") {
        return Err(AuthError::Malformed);
    }
    let nonce = next("r=")?;
    let salt = base64::decode(next("s=")?).ok_or(AuthError::Malformed)?;
    let iterations = next("i=")?.parse().map_err(|_| AuthError::Malformed)?;
    Ok((nonce, salt, iterations))
}

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Runs `scram` with `nonce` against the scripted server messages; returns the client's
    /// messages and the outcome of checking `server_final`.
    fn run(
        scram: &Scram,
        nonce: &str,
        server_first: &str,
        server_final: &str,
    ) -> (String, String, Result<(), AuthError>) {
        let mut exchange = scram.exchange(Ok(nonce.to_owned()));
        let first = exchange.initial_data().unwrap();
        let last = exchange
            .on_challenge(Some(server_first.as_bytes()))
            .unwrap()
            .unwrap();
        let outcome = exchange.on_success(Some(server_final.as_bytes()));
        (
            String::from_utf8(first.to_vec()).unwrap(),
            String::from_utf8(last.to_vec()).unwrap(),
            outcome,
        )
    }

    /// RFC 5802 §5, the SCRAM-SHA-1 example.
    #[test]
    fn rfc_5802_sha1_test_vector() {
        let (first, last, outcome) = run(
            &Scram::sha1("user", "pencil"),
            "fyko+d2lbbFgONRv9qkxdawL",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        );
        assert_eq!(first, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(
            last,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        assert!(outcome.is_ok(), "{outcome:?}");
    }

    /// RFC 7677 §3, the SCRAM-SHA-256 example.
    #[test]
    fn rfc_7677_sha256_test_vector() {
        let (first, last, outcome) = run(
            &Scram::sha256("user", "pencil"),
            "rOprNGfwEbeRWgbNEkqO",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        );
        assert_eq!(first, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        assert_eq!(
            last,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert!(outcome.is_ok(), "{outcome:?}");
    }

    #[test]
    fn a_wrong_server_signature_is_refused() {
        let (_, _, outcome) = run(
            &Scram::sha256("user", "pencil"),
            "rOprNGfwEbeRWgbNEkqO",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        );
        assert!(
            matches!(outcome, Err(AuthError::ServerUnverified)),
            "{outcome:?}"
        );
    }

    #[test]
    fn a_server_nonce_that_does_not_extend_the_clients_is_refused() {
        let scram = Scram::sha256("user", "pencil");
        for server_first in [
            "r=someone-elses-nonce,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            // Equal is no extension either: the server added no randomness.
            "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        ] {
            let mut exchange = scram.exchange(Ok("rOprNGfwEbeRWgbNEkqO".into()));
            let result = exchange.on_challenge(Some(server_first.as_bytes()));
            let Err(AuthError::Failed(err)) = result else {
                panic!("{server_first}: {:?}", result.map(|_| ()));
            };
            assert_eq!(
                err.downcast_ref::<ScramError>(),
                Some(&ScramError::NonceMismatch)
            );
        }
    }

    #[test]
    fn iteration_counts_outside_the_range_are_refused() {
        for (scram, iterations) in [
            (Scram::sha256("u", "p"), 4095),
            (Scram::sha256("u", "p"), MAX_ITERATIONS + 1),
            (Scram::sha256("u", "p").min_iterations(10_000), 4096),
        ] {
            let mut exchange = scram.exchange(Ok("abc".into()));
            let first = format!("r=abcdef,s=QSXCR+Q6sek8bf92,i={iterations}");
            let result = exchange.on_challenge(Some(first.as_bytes()));
            assert!(matches!(result, Err(AuthError::Failed(_))), "{iterations}");
        }
    }

    #[test]
    fn malformed_server_messages_and_steps_out_of_order_are_refused() {
        let scram = Scram::sha256("u", "p");
        for bad in [
            "",
            "r=abcdef",
            "s=x,r=abcdef,i=4096",
            "r=abcdef,s=!!,i=4096",
            "m=x,r=abcdef,s=QSXCR+Q6sek8bf92,i=4096",
        ] {
            let mut exchange = scram.exchange(Ok("abc".into()));
            let result = exchange.on_challenge(Some(bad.as_bytes()));
            assert!(matches!(result, Err(AuthError::Malformed)), "{bad:?}");
        }
        // A CONNACK before any challenge: the server skipped the proof.
        let mut exchange = scram.exchange(Ok("abc".into()));
        assert!(matches!(
            exchange.on_success(Some(b"v=AAAA")),
            Err(AuthError::UnexpectedStep)
        ));
        // `e=` in the final message is the server's error.
        let (_, _, outcome) = run(
            &Scram::sha1("user", "pencil"),
            "fyko+d2lbbFgONRv9qkxdawL",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            "e=invalid-proof",
        );
        assert!(matches!(outcome, Err(AuthError::Failed(_))), "{outcome:?}");
    }

    #[test]
    fn user_names_are_escaped_and_passwords_prepared() {
        let mut exchange = Scram::sha256("a=b,c", "p").exchange(Ok("n".into()));
        assert_eq!(&exchange.initial_data().unwrap()[..], b"n,,n=a=3Db=2Cc,r=n");
        assert_eq!(saslprep("pencil").unwrap(), "pencil");
        assert_eq!(saslprep("I\u{00AD}X").unwrap(), "IX");
        assert_eq!(saslprep("a\u{00A0}b").unwrap(), "a b");
        assert_eq!(saslprep("a\u{7}b"), Err(ScramError::ProhibitedCharacter));
        assert_eq!(
            saslprep("\u{00E9}t\u{0007}"),
            Err(ScramError::ProhibitedCharacter)
        );
    }

    #[test]
    fn nonces_are_random_and_the_password_is_never_printed() {
        let a = random_nonce().unwrap();
        let b = random_nonce().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 24);
        assert!(!a.contains(','));
        let scram = Scram::sha256("user", "SECRET-PASSWORD");
        assert!(!format!("{scram:?}").contains("SECRET"));
    }
}
