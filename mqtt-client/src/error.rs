//! [`ClientError`]: every way a client operation can fail, in variants a caller can act on.
//!
//! A wrapped cause is reached through [`std::error::Error::source`] and is not repeated in
//! the wrapper's message, so an error reporter walking the chain prints each cause once:
//! `connection lost` / `protocol error` / `malformed packet` / `...`. What the server said
//! (a [`ServerReason`]: reason code, MQTT 5 reason string and user properties) is data of the
//! error, not a cause, and is part of its message.

use std::io;
use std::sync::Arc;

use sansmqtt_proto::topic::TopicError;

use sansmqtt_session::{
    ConnectionError, ProtocolError, PublishError, ServerReason, SessionError, StoreError,
};

use crate::Scheme;

/// Why a URI cannot be used to reach a broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// Not a URI at all.
    #[error("cannot parse URI")]
    Parse(#[from] url::ParseError),
    /// A scheme other than `mqtt`, `mqtts`, `ws` and `wss`.
    #[error("unsupported scheme {0:?}: use mqtt, mqtts, ws, wss or quic")]
    UnsupportedScheme(String),
    /// No host name or address.
    #[error("URI has no host")]
    MissingHost,
    /// User name or password is not valid percent-encoded UTF-8.
    #[error("user name or password is not valid UTF-8")]
    InvalidCredentials,
    /// `connect` was called without a URI and the configuration has none either.
    #[error("no URI given and none configured")]
    Missing,
    /// The scheme needs a Cargo feature this build does not have (`tls` for `mqtts` and
    /// `wss`, `ws` for `ws` and `wss`).
    #[error(
        "{scheme:?} needs the `{feature}` feature of sansmqtt-client, which is off in this build"
    )]
    FeatureDisabled {
        /// The URI's transport.
        scheme: Scheme,
        /// The Cargo feature to turn on.
        feature: &'static str,
    },
}

/// A [`ClientConfig`](crate::ClientConfig) option out of its range
/// ([`ClientConfig::validate`](crate::ClientConfig::validate)): reported instead of clamped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The option is below its minimum.
    #[error("`{option}` must be at least {min}, not {value}")]
    TooSmall {
        /// The option's name (its `ClientConfig` field).
        option: &'static str,
        /// The value given.
        value: u64,
        /// The smallest value allowed.
        min: u64,
    },
    /// The option is above its maximum.
    #[error("`{option}` must be at most {max}, not {value}")]
    TooLarge {
        /// The option's name (its `ClientConfig` field).
        option: &'static str,
        /// The value given.
        value: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// A time the protocol carries in whole seconds is below one second but not zero: sent
    /// as 0 it would mean something else (for `keep_alive`: keep-alive off).
    #[error(
        "`{option}` is sent in whole seconds: {value:?} would be sent as 0; give 0 or at least 1 s"
    )]
    BelowOneSecond {
        /// The option's name (its `ClientConfig` field).
        option: &'static str,
        /// The value given.
        value: std::time::Duration,
    },
}

/// Why TLS could not be set up or the server's certificate was refused.
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file (or CA directory) could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What went wrong.
        source: Arc<io::Error>,
    },
    /// A PEM source held no certificate (or no private key).
    #[error("no {what} found in {source_name}")]
    Missing {
        /// "certificate" or "private key".
        what: &'static str,
        /// Where it was looked for.
        source_name: String,
    },
    /// PEM data is malformed.
    #[error("invalid PEM in {0}")]
    Pem(String),
    /// rustls refused the configuration or the peer (unknown CA, wrong host, expired, ...).
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    /// The certificate verifier could not be built from the roots.
    #[error("cannot build the certificate verifier")]
    Verifier(#[source] rustls::client::VerifierBuilderError),
    /// The host is neither a DNS name nor an IP address usable for TLS.
    #[error("invalid server name {0:?}")]
    ServerName(String),
    /// No crypto provider: neither the `ring` nor the `aws-lc-rs` feature is on and the
    /// application installed no process-wide default `rustls::crypto::CryptoProvider`.
    #[error(
        "no rustls crypto provider: enable the `ring` or `aws-lc-rs` feature or install a process default"
    )]
    NoCryptoProvider,
    /// No CA is configured and neither the `native-roots` nor the `webpki-roots` feature is
    /// on, so no server certificate could be trusted.
    #[error(
        "no CA configured and no default roots: set ca_file / ca_path / ca_data or enable `native-roots` or `webpki-roots`"
    )]
    NoRoots,
}

/// The one error type of the client API.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The broker URI is unusable.
    #[error("invalid broker URI")]
    InvalidUri(#[from] UriError),
    /// A configuration option is out of range (`connect` checks
    /// [`ClientConfig::validate`](crate::ClientConfig::validate) first).
    #[error("invalid configuration")]
    InvalidConfig(#[from] ConfigError),
    /// The broker refused the connection: CONNACK's return / reason code, with the MQTT 5
    /// reason string and user properties it carried.
    #[error("connection refused: {0}")]
    Connect(ServerReason),
    /// A socket operation failed.
    #[error("I/O error")]
    Io(#[source] Arc<io::Error>),
    /// TLS set-up or handshake failed.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    #[error("TLS error")]
    Tls(#[from] TlsError),
    /// The tunnel through the proxy could not be opened
    /// ([`ClientConfig::proxy`](crate::ClientConfig::proxy)).
    #[error("proxy error")]
    Proxy(#[from] crate::ProxyError),
    /// The WebSocket handshake or framing failed.
    #[cfg(feature = "ws")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ws")))]
    #[error("WebSocket error")]
    WebSocket(#[source] Arc<async_tungstenite::tungstenite::Error>),
    /// The operation did not complete in time. For a publish that was already accepted, the
    /// message is still in flight and may be delivered: see
    /// [`MqttClient::publish`](crate::MqttClient::publish).
    #[error("timed out")]
    Timeout,
    /// The client is not connected (and the operation cannot wait for a reconnect).
    #[error("not connected")]
    NotConnected,
    /// `connect` while a connection is already up.
    #[error("already connected")]
    AlreadyConnected,
    /// The connection was lost and not re-established; the operation's outcome is unknown.
    /// The source says why (a server DISCONNECT carries its [`ServerReason`]).
    #[error("connection lost")]
    ConnectionLost(#[source] ConnectionError),
    /// The broker broke the protocol.
    #[error("protocol error")]
    Protocol(#[source] ProtocolError),
    /// A topic name or filter is invalid.
    #[error("invalid topic")]
    InvalidTopic(#[from] TopicError),
    /// The broker rejected the message: the MQTT 5 PUBACK / PUBREC reason code, with the
    /// reason string and user properties it carried.
    #[error("publish rejected: {0}")]
    Rejected(ServerReason),
    /// The session refused the command (limits announced by the server, full queue, ...).
    #[error(transparent)]
    Session(SessionError),
    /// A publish failed in a way none of the variants above names (a newer session error).
    #[error("publish failed")]
    Publish(#[source] PublishError),
    /// The broker lost the session while the message was in flight, and the configuration
    /// says not to send it again.
    #[error("the broker's session was lost while the message was in flight")]
    SessionLost,
    /// [`ClientConfig::max_queued`](crate::ClientConfig::max_queued) publishes (or
    /// `max_queued_bytes`) are pending and the publish was asked not to wait
    /// ([`Publishing::send_now`](crate::Publishing::send_now)). Nothing was sent.
    #[error("publish queue full")]
    QueueFull,
    /// MQTT 5 enhanced authentication failed on the client's side (the broker's challenge or
    /// proof was not acceptable); a refusal by the broker is [`Connect`](Self::Connect).
    #[error("enhanced authentication failed")]
    Auth(#[source] crate::AuthError),
    /// The client was closed (`disconnect`, `cancel_tasks`, or every handle dropped). A publish
    /// failing with it may still be delivered (its message stays in the session).
    #[error("client closed")]
    Closed,
    /// [`Disconnecting::drain`](crate::Disconnecting::drain): the timeout passed before every
    /// accepted publish completed, and the client disconnected anyway. The publishes cut off
    /// failed with [`Closed`](Self::Closed); QoS 1/2 ones stay in the session and are sent
    /// again by a later `connect` / `reconnect` with a persistent session.
    #[error("disconnected with {unfinished} publishes unfinished when the drain timed out")]
    DrainTimeout {
        /// Publishes accepted and not completed when the timeout passed: queued, or in
        /// flight awaiting their acknowledgement.
        unfinished: usize,
    },
    /// The session store (`session_store`) could not be opened, or could not record or sync
    /// a message (e.g. [`StoreError::Full`]): that message was not sent; what the store
    /// held before is intact.
    #[error("session store: {0}")]
    Store(StoreError),
    /// A `quic://` connection failed at the QUIC layer (feature `quic`): see
    /// [`QuicError`](crate::QuicError) for the cases. A failed handshake because of a refused
    /// certificate is [`QuicError::Handshake`](crate::QuicError::Handshake).
    #[cfg(feature = "quic")]
    #[error("QUIC error")]
    Quic(#[source] crate::QuicError),
}

impl From<StoreError> for ClientError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

impl From<io::Error> for ClientError {
    fn from(err: io::Error) -> Self {
        Self::Io(Arc::new(err))
    }
}

#[cfg(feature = "ws")]
impl From<async_tungstenite::tungstenite::Error> for ClientError {
    fn from(err: async_tungstenite::tungstenite::Error) -> Self {
        Self::WebSocket(Arc::new(err))
    }
}

impl From<SessionError> for ClientError {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::InvalidTopic(topic) => Self::InvalidTopic(topic),
            SessionError::NotConnected => Self::NotConnected,
            SessionError::Store(err) => Self::Store(err),
            other => Self::Session(other),
        }
    }
}

impl From<PublishError> for ClientError {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::Rejected(code) => Self::Rejected(*code),
            PublishError::SessionLost => Self::SessionLost,
            PublishError::ConnectionLost => Self::ConnectionLost(ConnectionError::TransportClosed),
            PublishError::Refused(err) => err.into(),
            PublishError::Store(err) => Self::Store(err),
            other => Self::Publish(other),
        }
    }
}

impl From<ConnectionError> for ClientError {
    fn from(err: ConnectionError) -> Self {
        match err {
            ConnectionError::Refused(code) => Self::Connect(code),
            ConnectionError::Protocol(err) => Self::Protocol(err),
            ConnectionError::Local => Self::Closed,
            ConnectionError::ConnAckTimeout => Self::Timeout,
            ConnectionError::Store(err) => Self::Store(err),
            other => Self::ConnectionLost(other),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::error::Error;

    use sansmqtt_proto::properties::UserProperty;
    use sansmqtt_proto::{DecodeError, ReasonCode};

    use super::*;
    use crate::Target;

    /// Each level's message, from the error down its `source()` chain.
    fn chain(err: &(dyn Error + 'static)) -> Vec<String> {
        let mut levels = vec![err.to_string()];
        let mut source = err.source();
        while let Some(cause) = source {
            levels.push(cause.to_string());
            source = cause.source();
        }
        levels
    }

    /// Walks the chain, checks no level repeats its cause's message, and returns the levels.
    fn printed_once(err: ClientError) -> Vec<String> {
        let levels = chain(&err);
        for pair in levels.windows(2) {
            assert!(
                !pair[0].contains(&pair[1]),
                "{:?} prints its cause {:?} again",
                pair[0],
                pair[1]
            );
        }
        levels
    }

    #[test]
    fn io_errors_are_a_source() {
        let err = ClientError::from(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "refused by peer",
        ));
        assert_eq!(printed_once(err), ["I/O error", "refused by peer"]);
    }

    #[test]
    fn protocol_errors_keep_their_decode_cause() {
        let err = ClientError::from(ConnectionError::Protocol(ProtocolError::Decode(
            DecodeError::MalformedVarInt,
        )));
        assert!(matches!(err, ClientError::Protocol(_)));
        let levels = printed_once(err.clone());
        assert_eq!(
            levels,
            [
                "protocol error",
                "malformed packet",
                "variable byte integer longer than 4 bytes"
            ]
        );
        // The typed cause is reachable, not only its text.
        let source = err.source().unwrap();
        assert!(matches!(
            source.downcast_ref::<ProtocolError>(),
            Some(ProtocolError::Decode(DecodeError::MalformedVarInt))
        ));
    }

    #[test]
    fn a_lost_connection_names_why() {
        let reason = ServerReason::with_properties(
            ReasonCode::ServerShuttingDown,
            Some("maintenance".into()),
            vec![UserProperty::new("back", "10m")],
        );
        let err = ClientError::from(ConnectionError::ServerDisconnected(reason.clone()));
        let levels = printed_once(err.clone());
        assert_eq!(levels.len(), 2, "{levels:?}");
        assert_eq!(levels[0], "connection lost");
        assert!(levels[1].contains("maintenance"), "{levels:?}");
        let cause = err.source().unwrap().downcast_ref::<ConnectionError>();
        assert_eq!(cause, Some(&ConnectionError::ServerDisconnected(reason)));
    }

    #[test]
    fn refusals_and_rejections_keep_the_servers_diagnostics() {
        let reason = ServerReason::with_properties(
            ReasonCode::NotAuthorized,
            Some("user alice may not connect".into()),
            vec![UserProperty::new("realm", "lab")],
        );
        let err = ClientError::from(ConnectionError::Refused(reason.clone()));
        assert!(
            matches!(&err, ClientError::Connect(r) if *r == reason),
            "{err:?}"
        );
        let levels = printed_once(err);
        assert_eq!(levels.len(), 1, "the reason is data, not a cause");
        assert!(
            levels[0].contains("user alice may not connect"),
            "{levels:?}"
        );

        let err = ClientError::from(PublishError::Rejected(Box::new(reason.clone())));
        assert!(
            matches!(&err, ClientError::Rejected(r) if *r == reason),
            "{err:?}"
        );
        assert!(printed_once(err)[0].contains("user alice may not connect"));
    }

    #[test]
    fn uri_errors_keep_the_parser_cause() {
        let err = ClientError::from(Target::parse("not a uri").unwrap_err());
        let levels = printed_once(err);
        assert_eq!(levels[..2], ["invalid broker URI", "cannot parse URI"]);
        assert_eq!(levels.len(), 3, "the url crate's own message: {levels:?}");
    }

    #[test]
    fn topic_and_session_errors_are_printed_once() {
        let err = ClientError::from(SessionError::InvalidTopic(TopicError::Empty));
        assert_eq!(
            printed_once(err),
            [
                "invalid topic",
                "a topic must be at least one character long"
            ]
        );
        let err = ClientError::Publish(PublishError::Refused(SessionError::QueueFull));
        assert_eq!(
            printed_once(err),
            ["publish failed", "publish queue is full"]
        );
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_errors_keep_their_cause() {
        let err = ClientError::from(TlsError::Read {
            path: "/nonexistent/ca.pem".into(),
            source: Arc::new(io::Error::new(io::ErrorKind::NotFound, "no such file")),
        });
        assert_eq!(
            printed_once(err),
            [
                "TLS error",
                "cannot read /nonexistent/ca.pem",
                "no such file"
            ]
        );
        let err = ClientError::from(TlsError::Rustls(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        )));
        let levels = printed_once(err);
        assert_eq!(levels.len(), 2, "{levels:?}");
        assert!(levels[1].contains("UnknownIssuer"), "{levels:?}");
    }

    #[cfg(feature = "ws")]
    #[test]
    fn websocket_errors_are_a_source() {
        let err = ClientError::from(async_tungstenite::tungstenite::Error::ConnectionClosed);
        let levels = printed_once(err);
        assert_eq!(levels.len(), 2, "{levels:?}");
        assert_eq!(levels[0], "WebSocket error");
    }
}
