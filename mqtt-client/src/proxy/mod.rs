//! Reaching the broker through a SOCKS5 (RFC 1928 / 1929) or HTTP CONNECT proxy.
//!
//! The tunnel is opened on the runtime's raw TCP stream to the proxy; TLS and the WebSocket
//! handshake then run end to end through it, exactly as on a direct connection, so the
//! proxy sees only the broker's host name and port and opaque bytes (for `mqtts` and `wss`,
//! TLS records). The handshakes are sans-IO state machines ([`socks5`], [`http`]) driven by
//! [`tunnel`] over any `futures-io` stream.

mod env;
mod http;
mod socks5;

use std::fmt;
use std::io;
use std::sync::Arc;

use futures_io::{AsyncRead, AsyncWrite};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use percent_encoding::percent_decode_str;
use tracing::debug;

pub(crate) use env::EnvProxies;

use crate::secret::Secret;
use crate::uri::Target;

/// The kind of proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyKind {
    /// SOCKS5 (`socks5://` or `socks5h://`, default port 1080). The broker's host name is
    /// always sent to the proxy to resolve (both spellings behave as curl's `socks5h`): a
    /// client behind a proxy often cannot resolve outside names itself.
    Socks5,
    /// An HTTP proxy's CONNECT tunnel (`http://`, default port 80).
    Http,
}

/// A proxy's user name and password, both [`Secret`]s: printed as `***`, never as
/// themselves (a proxy user name identifies an account as much as a password does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) username: Secret,
    pub(crate) password: Secret,
}

/// A proxy the client connects through: set with
/// [`ClientConfig::proxy`](crate::ClientConfig::proxy) or read from the environment with
/// [`ClientConfig::proxy_from_env`](crate::ClientConfig::proxy_from_env).
///
/// Its credentials (`socks5://user:password@host:1080`, percent-encoded in the URL) are
/// secrets: `Debug` prints `***` for them, and no log, event or error carries them.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    credentials: Option<Credentials>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl Proxy {
    /// Parses a proxy URL: `socks5://[user:password@]host[:port]` (also `socks5h://`) or
    /// `http://[user:password@]host[:port]`. User name and password are percent-decoded.
    ///
    /// # Errors
    ///
    /// [`ProxyError::InvalidUrl`] for anything else (another scheme, no host, a path, a
    /// password without a user name); the error never repeats the URL, which may hold a
    /// password.
    pub fn parse(url: &str) -> Result<Self, ProxyError> {
        let parsed = url::Url::parse(url).map_err(|_| ProxyError::InvalidUrl("not a URL"))?;
        let (kind, default_port) = match parsed.scheme() {
            "socks5" | "socks5h" => (ProxyKind::Socks5, 1080),
            "http" => (ProxyKind::Http, 80),
            _ => {
                return Err(ProxyError::InvalidUrl(
                    "unsupported scheme: use socks5://, socks5h:// or http://",
                ));
            }
        };
        let host = match parsed.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => return Err(ProxyError::InvalidUrl("no host")),
        };
        if host.is_empty() {
            return Err(ProxyError::InvalidUrl("no host"));
        }
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
            return Err(ProxyError::InvalidUrl("a proxy URL has no path or query"));
        }
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| ProxyError::InvalidUrl("user name or password is not UTF-8"))
        };
        let credentials = match (parsed.username(), parsed.password()) {
            ("", None) => None,
            ("", Some(_)) => return Err(ProxyError::InvalidUrl("a password without a user name")),
            (user, password) => Some(Credentials {
                username: Secret::from(decode(user)?),
                password: Secret::from(password.map(decode).transpose()?.unwrap_or_default()),
            }),
        };
        Ok(Self {
            kind,
            host,
            port: parsed.port().unwrap_or(default_port),
            credentials,
        })
    }

    /// SOCKS5 or HTTP CONNECT.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's host name or IP address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the proxy URL carries a user name (and password).
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }
}

impl std::str::FromStr for Proxy {
    type Err = ProxyError;

    fn from_str(url: &str) -> Result<Self, ProxyError> {
        Self::parse(url)
    }
}

/// What a proxy answered when it would not open the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyRefusal {
    /// A SOCKS5 reply code (RFC 1928 §6): 1 general failure, 2 not allowed by ruleset,
    /// 3 network unreachable, 4 host unreachable, 5 connection refused, 6 TTL expired,
    /// 7 command not supported, 8 address type not supported.
    Socks5(u8),
    /// An HTTP status code other than 2xx (and other than 407 and 401, which are
    /// [`ProxyError::AuthRequired`] / [`ProxyError::AuthFailed`]).
    Http(u16),
}

impl ProxyRefusal {
    /// Whether the refusal is the proxy's policy or a malformed request, which fail the same
    /// way on every attempt (SOCKS5 2, 7, 8; HTTP 4xx but 408 and 429), rather than the
    /// broker being unreachable from the proxy at the moment (SOCKS5 1, 3-6; HTTP 5xx),
    /// which a reconnect may get past.
    pub fn is_final(self) -> bool {
        match self {
            Self::Socks5(code) => matches!(code, 2 | 7 | 8) || code > 8,
            Self::Http(status) => (400..500).contains(&status) && !matches!(status, 408 | 429),
        }
    }
}

impl fmt::Display for ProxyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Socks5(code) => {
                let meaning = match code {
                    1 => "general failure",
                    2 => "connection not allowed by ruleset",
                    3 => "network unreachable",
                    4 => "host unreachable",
                    5 => "connection refused",
                    6 => "TTL expired",
                    7 => "command not supported",
                    8 => "address type not supported",
                    _ => "unassigned code",
                };
                write!(f, "SOCKS5 reply {code} ({meaning})")
            }
            Self::Http(status) => write!(f, "HTTP status {status}"),
        }
    }
}

/// Why the tunnel through a proxy could not be opened.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The proxy URL (configured, or from an environment variable) is unusable.
    #[error("invalid proxy URL: {0}")]
    InvalidUrl(&'static str),
    /// No TCP connection to the proxy (refused, unreachable, name not resolved). Retried by
    /// reconnects.
    #[error("proxy unreachable")]
    Unreachable(#[source] Arc<io::Error>),
    /// The proxy wants credentials and none were configured (SOCKS5 "no acceptable method",
    /// HTTP 407, or 401 as tinyproxy answers). Final.
    #[error("the proxy requires authentication")]
    AuthRequired,
    /// The proxy rejected the configured credentials. Final.
    #[error("proxy authentication failed")]
    AuthFailed,
    /// The proxy would not connect to the broker, with its reply code. Final when
    /// [`ProxyRefusal::is_final`] says so (the proxy's policy), retried otherwise.
    #[error("the proxy refused the connection to the broker: {0}")]
    Refused(ProxyRefusal),
    /// The connection to the proxy broke during the handshake. Retried by reconnects.
    #[error("connection to the proxy lost during its handshake")]
    Io(#[source] Arc<io::Error>),
    /// The proxy answered something that is not the protocol configured (e.g. `socks5://`
    /// pointing at an HTTP proxy). Final.
    #[error("proxy protocol error: {0}")]
    Protocol(&'static str),
    /// A SOCKS5 user name or password is longer than 255 bytes. Final.
    #[error("proxy user name or password longer than SOCKS5 allows (255 bytes)")]
    CredentialsTooLong,
}

impl ProxyError {
    /// Whether trying again cannot help: the URL, the credentials, the proxy's policy or
    /// protocol are wrong, not the network.
    pub(crate) fn is_final(&self) -> bool {
        match self {
            Self::Unreachable(_) | Self::Io(_) => false,
            Self::Refused(refusal) => refusal.is_final(),
            _ => true,
        }
    }
}

/// What a handshake wants after taking the proxy's bytes.
#[derive(Debug)]
pub(crate) enum Next {
    /// Send these bytes, then read again.
    Send(Vec<u8>),
    /// Read again.
    Continue,
    /// The tunnel is open.
    Done,
}

/// The proxies a connection may use: the configured one, or (when asked for) those of the
/// environment, read when `connect` starts.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProxyChoice {
    pub(crate) configured: Option<Proxy>,
    pub(crate) env: Option<EnvProxies>,
}

impl ProxyChoice {
    /// The configured proxy, else the environment's for `target` (honouring `NO_PROXY`).
    pub(crate) fn for_target(&self, target: &Target) -> Option<&Proxy> {
        self.configured
            .as_ref()
            .or_else(|| self.env.as_ref()?.for_target(target))
    }
}

/// Opens the tunnel to `host:port` through `proxy` on `stream`, a fresh connection to the
/// proxy. On success the stream carries the broker's bytes.
pub(crate) async fn tunnel<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    proxy: &Proxy,
    host: &str,
    port: u16,
) -> Result<(), ProxyError> {
    let credentials = proxy.credentials.as_ref();
    match proxy.kind {
        ProxyKind::Socks5 => drive(stream, socks5::Socks5::new(credentials, host, port)).await,
        ProxyKind::Http => drive(stream, http::HttpConnect::new(credentials, host, port)).await,
    }?;
    debug!(proxy = %proxy.host, proxy_port = proxy.port, kind = ?proxy.kind, %host, port, "proxy tunnel open");
    Ok(())
}

/// A proxy handshake as a sans-IO state machine.
pub(crate) trait Handshake {
    /// The first bytes to send.
    fn start(&self) -> Vec<u8>;
    /// How many bytes to read before calling [`receive`](Self::receive).
    fn needs(&self) -> usize;
    /// Takes exactly [`needs`](Self::needs) bytes from the proxy.
    fn receive(&mut self, input: &[u8]) -> Result<Next, ProxyError>;
}

/// Sends the handshake's first bytes, then reads what it needs and sends what it answers
/// until the tunnel is open.
async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mut handshake: impl Handshake,
) -> Result<(), ProxyError> {
    let io_error = |err: io::Error| ProxyError::Io(Arc::new(err));
    stream
        .write_all(&handshake.start())
        .await
        .map_err(io_error)?;
    stream.flush().await.map_err(io_error)?;
    // The longest read: a SOCKS5 reply's domain name (255 bytes) and port.
    let mut buffer = [0u8; 260];
    loop {
        let input = buffer
            .get_mut(..handshake.needs())
            .ok_or(ProxyError::Protocol("oversized proxy reply"))?;
        stream.read_exact(input).await.map_err(io_error)?;
        match handshake.receive(input)? {
            Next::Send(bytes) => {
                stream.write_all(&bytes).await.map_err(io_error)?;
                stream.flush().await.map_err(io_error)?;
            }
            Next::Continue => {}
            Next::Done => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn urls_parse_with_defaults_and_decoded_credentials() {
        let proxy = Proxy::parse("socks5://us%40er:p%3Ass@proxy.lan").unwrap();
        assert_eq!(
            (proxy.kind(), proxy.host(), proxy.port()),
            (ProxyKind::Socks5, "proxy.lan", 1080)
        );
        let credentials = proxy.credentials.as_ref().unwrap();
        assert_eq!(
            (credentials.username.expose(), credentials.password.expose()),
            (&b"us@er"[..], &b"p:ss"[..])
        );
        let proxy = Proxy::parse("http://[::1]:3128/").unwrap();
        assert_eq!(
            (proxy.kind(), proxy.host(), proxy.port()),
            (ProxyKind::Http, "::1", 3128)
        );
        assert!(!proxy.has_credentials());
        assert_eq!(
            Proxy::parse("socks5h://h").unwrap().kind(),
            ProxyKind::Socks5
        );
        assert_eq!(Proxy::parse("http://h").unwrap().port(), 80);
    }

    #[test]
    fn bad_urls_are_refused_without_repeating_them() {
        for url in [
            "https://user:SECRET-1@h",
            "socks4://h",
            "not a url SECRET-1",
            "http://user:SECRET-1@h/path",
            "socks5://:SECRET-1@h",
        ] {
            let err = Proxy::parse(url).unwrap_err();
            assert!(matches!(err, ProxyError::InvalidUrl(_)), "{url}: {err:?}");
            assert!(!format!("{err} {err:?}").contains("SECRET-1"), "{url}");
        }
    }

    #[test]
    fn debug_never_prints_the_credentials() {
        let proxy = Proxy::parse("socks5://SECRET-USER:SECRET-PASS@h:1").unwrap();
        let printed = format!("{proxy:?} {:?}", proxy.credentials);
        assert!(!printed.contains("SECRET"), "{printed}");
        assert!(printed.contains("***"), "{printed}");
    }

    #[test]
    fn policy_refusals_are_final_network_ones_are_not() {
        for (refusal, fin) in [
            (ProxyRefusal::Socks5(1), false),
            (ProxyRefusal::Socks5(2), true),
            (ProxyRefusal::Socks5(4), false),
            (ProxyRefusal::Socks5(5), false),
            (ProxyRefusal::Socks5(7), true),
            (ProxyRefusal::Http(403), true),
            (ProxyRefusal::Http(400), true),
            (ProxyRefusal::Http(408), false),
            (ProxyRefusal::Http(500), false),
            (ProxyRefusal::Http(503), false),
        ] {
            assert_eq!(refusal.is_final(), fin, "{refusal}");
        }
        assert!(ProxyError::AuthFailed.is_final());
        assert!(ProxyError::AuthRequired.is_final());
        assert!(
            !ProxyError::Unreachable(Arc::new(io::ErrorKind::ConnectionRefused.into())).is_final()
        );
    }

    #[test]
    fn the_configured_proxy_wins_over_the_environment() {
        let env =
            EnvProxies::read(|name| (name == "ALL_PROXY").then(|| "http://env:1".into())).unwrap();
        let target = Target::parse("mqtt://b").unwrap();
        let choice = ProxyChoice {
            configured: Some(Proxy::parse("socks5://conf:2").unwrap()),
            env: Some(env.clone()),
        };
        assert_eq!(choice.for_target(&target).unwrap().host(), "conf");
        let choice = ProxyChoice {
            configured: None,
            env: Some(env),
        };
        assert_eq!(choice.for_target(&target).unwrap().host(), "env");
        assert!(ProxyChoice::default().for_target(&target).is_none());
    }
}
