//! [`CliError`]: every way a command fails, each mapped to a documented exit status.

use std::io;
use std::path::PathBuf;

use sansmqtt_tokio::{ClientError, ProxyError, QuicError, ReasonCode, UriError, quinn};

/// Exit statuses, as `--help` documents them (kept in one place so code and text agree).
pub(crate) mod exit {
    /// Everything worked.
    pub(crate) const OK: u8 = 0;
    /// A failure no other status names (publish rejected, I/O error, ...).
    pub(crate) const FAILURE: u8 = 1;
    /// Bad options, URL, topic or configuration file.
    pub(crate) const USAGE: u8 = 2;
    /// The broker could not be reached (connection refused, DNS, network, WebSocket upgrade).
    pub(crate) const UNREACHABLE: u8 = 3;
    /// The broker refused the login (bad user name or password, not authorized, banned).
    pub(crate) const AUTH: u8 = 4;
    /// The broker refused the connection for another reason (protocol version, client id, ...).
    pub(crate) const REFUSED: u8 = 5;
    /// TLS failed (untrusted certificate, wrong host name, unreadable CA or key file, ...).
    pub(crate) const TLS: u8 = 6;
    /// Something took too long: connecting, an acknowledgement, or `sub -W`.
    pub(crate) const TIMEOUT: u8 = 7;
    /// The connection was lost after it had been established.
    pub(crate) const LOST: u8 = 8;
}

/// The `Exit status` section of every `--help`, as a literal so `concat!` can use it.
macro_rules! exit_status_help {
    () => {
        "Exit status:
  0  success
  1  other failure (publish rejected by the broker, I/O error, ...)
  2  usage error: bad option, URL, topic or configuration file
  3  broker unreachable: connection refused, unknown host, network or WebSocket upgrade failure
  4  broker refused the login: bad user name or password, not authorized, banned
  5  broker refused the connection for another reason: protocol version, client id, busy, ...
  6  TLS failure: untrusted or expired certificate, wrong host name, unreadable CA/cert/key
  7  timeout: connecting, waiting for an acknowledgement, or sub -W expiring
  8  connection lost after it was established"
    };
}
pub(crate) use exit_status_help;

/// Why a configuration file could not be parsed, per format.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigFormatError {
    /// YAML syntax or shape.
    #[error(transparent)]
    Yaml(#[from] serde_yaml_ng::Error),
    /// JSON syntax or shape.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// TOML syntax or shape.
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
}

/// Which step of a command an error happened in; it decides between "unreachable" and "lost".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Opening the connection (TCP, TLS, WebSocket, CONNECT/CONNACK).
    Connect,
    /// After CONNACK: subscribing, publishing, receiving.
    Connected,
}

/// A command's failure: one line on stderr and an exit status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The broker URL does not parse or names an unsupported scheme.
    #[error("invalid broker URL {url:?}: {source}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why it is unusable.
        source: UriError,
    },
    /// The configuration file could not be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The configuration file is not a valid client configuration.
    #[error("invalid configuration file {}: {source}", path.display())]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        source: ConfigFormatError,
    },
    /// The configuration file's extension names no supported format.
    #[error(
        "configuration file {}: unknown format (use .yaml, .yml, .json or .toml)",
        path.display()
    )]
    ConfigExtension {
        /// The file.
        path: PathBuf,
    },
    /// An MQTT 5-only option was given for an MQTT 3.1.1 connection.
    #[error("{option} needs MQTT 5: add -V 5")]
    NeedsV5 {
        /// The option.
        option: &'static str,
    },
    /// The `--proxy` URL is unusable (the message never repeats it: it may hold a password).
    #[error("invalid --proxy: {0}")]
    BadProxy(#[source] sansmqtt_tokio::ProxyError),
    /// `--auth-method` names no supported method, or lacks `-u` / `-P`.
    #[error("--auth-method {0:?}: use SCRAM-SHA-256 or SCRAM-SHA-1, with -u and -P")]
    BadAuthMethod(String),
    /// Options that make no sense together or a value out of range.
    #[error("{0}")]
    InvalidOption(#[from] OptionError),
    /// A topic name or filter is not valid MQTT.
    #[error("invalid topic {topic:?}: {source}")]
    InvalidTopic {
        /// The topic as given.
        topic: String,
        /// What is wrong with it.
        source: sansmqtt_tokio::proto::topic::TopicError,
    },
    /// An input file (or stdin) could not be read.
    #[error("cannot read {what}: {source}")]
    Input {
        /// The file name, or "standard input".
        what: String,
        /// The I/O error.
        source: io::Error,
    },
    /// Writing to standard output failed (other than the reader going away).
    #[error("cannot write to standard output: {0}")]
    Output(io::Error),
    /// The client library reported an error at `stage` while doing `action`.
    #[error("{action}: {source}")]
    Client {
        /// What the command was doing ("connecting to mqtt://...", "publishing", ...).
        action: String,
        /// When it happened.
        stage: Stage,
        /// The client's error.
        source: ClientError,
    },
    /// The broker refused a subscription.
    #[error("the broker refused the subscription to {filter:?}: {code}")]
    SubscribeRefused {
        /// The filter.
        filter: String,
        /// SUBACK's reason code.
        code: ReasonCode,
    },
    /// `sub -W` expired.
    #[error("timed out after {0:?}, {1} message(s) received")]
    SubTimeout(std::time::Duration, u64),
}

/// Option values the parser accepted one by one but that do not work together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OptionError {
    /// `bench --size` below the header the latency measurement needs.
    #[error("--size must be at least {min} bytes (the benchmark header)")]
    PayloadTooSmall {
        /// The header size.
        min: usize,
    },
    /// `bench` with neither publishers nor subscribers.
    #[error("bench needs at least one publisher or subscriber")]
    NothingToRun,
    /// `bench --rate` is negative or not a number.
    #[error("--rate must be a finite number of messages per second, 0 for unlimited")]
    BadRate,
    /// A `-F` template uses a placeholder that does not exist.
    #[error("unknown placeholder {0} in the format template: use %t %p %x %q %r %l or %%")]
    TemplatePlaceholder(String),
}

impl CliError {
    /// A client error at `stage` of `action`.
    pub(crate) fn client(action: impl Into<String>, stage: Stage, source: ClientError) -> Self {
        Self::Client {
            action: action.into(),
            stage,
            source,
        }
    }

    /// The exit status for this error (see `exit_status_help!`).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::BadUrl { .. }
            | Self::ConfigRead { .. }
            | Self::ConfigParse { .. }
            | Self::ConfigExtension { .. }
            | Self::NeedsV5 { .. }
            | Self::BadProxy(_)
            | Self::BadAuthMethod(_)
            | Self::InvalidOption(_)
            | Self::InvalidTopic { .. } => exit::USAGE,
            Self::Input { .. } | Self::Output(_) | Self::SubscribeRefused { .. } => exit::FAILURE,
            Self::SubTimeout(..) => exit::TIMEOUT,
            Self::Client { stage, source, .. } => client_exit_code(*stage, source),
        }
    }
}

/// The exit status for a client error seen at `stage`.
pub(crate) fn client_exit_code(stage: Stage, err: &ClientError) -> u8 {
    match err {
        ClientError::InvalidUri(_) | ClientError::InvalidTopic(_) => exit::USAGE,
        ClientError::Connect(reason) => match reason.code {
            ReasonCode::BadUserNameOrPassword
            | ReasonCode::NotAuthorized
            | ReasonCode::BadAuthenticationMethod
            | ReasonCode::Banned => exit::AUTH,
            _ => exit::REFUSED,
        },
        ClientError::Tls(_) => exit::TLS,
        ClientError::Quic(err) => quic_exit_code(stage, err),
        // A proxy refusing the credentials or an enhanced authentication failing is a refused
        // login; a proxy that cannot be reached, or cannot reach the broker, an unreachable one.
        ClientError::Auth(_)
        | ClientError::Proxy(ProxyError::AuthFailed | ProxyError::AuthRequired) => exit::AUTH,
        ClientError::Proxy(ProxyError::InvalidUrl(_)) => exit::USAGE,
        ClientError::Proxy(_) if stage == Stage::Connect => exit::UNREACHABLE,
        ClientError::Timeout => exit::TIMEOUT,
        ClientError::Io(_) | ClientError::WebSocket(_) if stage == Stage::Connect => {
            exit::UNREACHABLE
        }
        ClientError::Io(_)
        | ClientError::WebSocket(_)
        | ClientError::ConnectionLost(_)
        | ClientError::NotConnected => exit::LOST,
        _ => exit::FAILURE,
    }
}

/// QUIC: a TLS alert (refused certificate, no common ALPN) is a TLS failure like `mqtts://`'s;
/// a broker that cannot be reached or is lost is what it would be over TCP.
fn quic_exit_code(stage: Stage, err: &QuicError) -> u8 {
    let tls_alert = |lost: &quinn::ConnectionError| match lost {
        quinn::ConnectionError::ConnectionClosed(close) => is_crypto(close.error_code),
        quinn::ConnectionError::TransportError(error) => is_crypto(error.code),
        _ => false,
    };
    match err {
        QuicError::NoTls13(_) => exit::TLS,
        QuicError::Handshake(lost) | QuicError::Connection(lost) if tls_alert(lost) => exit::TLS,
        QuicError::Proxy => exit::USAGE,
        _ if stage == Stage::Connect => exit::UNREACHABLE,
        _ => exit::LOST,
    }
}

/// QUIC's CRYPTO_ERROR range (RFC 9000 §20.1): 0x100 plus the TLS alert.
fn is_crypto(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_refusals_are_told_apart_from_other_refusals() {
        let auth = ClientError::Connect(ReasonCode::BadUserNameOrPassword.into());
        let busy = ClientError::Connect(ReasonCode::ServerBusy.into());
        assert_eq!(client_exit_code(Stage::Connect, &auth), exit::AUTH);
        assert_eq!(client_exit_code(Stage::Connect, &busy), exit::REFUSED);
    }

    #[test]
    fn socket_errors_mean_unreachable_before_connack_and_lost_after() {
        let err = || ClientError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(client_exit_code(Stage::Connect, &err()), exit::UNREACHABLE);
        assert_eq!(client_exit_code(Stage::Connected, &err()), exit::LOST);
        assert_eq!(
            client_exit_code(Stage::Connected, &ClientError::Timeout),
            exit::TIMEOUT
        );
    }
}
