//! [`ClientError`]: every way a client operation can fail, in variants a caller can act on.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use mqtt_proto::ReasonCode;
use mqtt_proto::topic::TopicError;

use mqtt_session::{ConnectionError, ProtocolError, PublishError, SessionError, StoreError};

/// Why a URI cannot be used to reach a broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// Not a URI at all.
    #[error("cannot parse URI: {0}")]
    Parse(#[from] url::ParseError),
    /// A scheme other than `mqtt`, `mqtts`, `ws` and `wss`.
    #[error("unsupported scheme {0:?}: use mqtt, mqtts, ws or wss")]
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
}

/// Why TLS could not be set up or the server's certificate was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file (or CA directory) could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
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
    /// The host is neither a DNS name nor an IP address usable for TLS.
    #[error("invalid server name {0:?}")]
    ServerName(String),
}

/// The one error type of the client API.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The broker URI is unusable.
    #[error("invalid URI: {0}")]
    InvalidUri(#[from] UriError),
    /// The broker refused the connection (CONNACK return / reason code).
    #[error("connection refused: {0}")]
    Connect(ReasonCode),
    /// A socket operation failed.
    #[error("I/O error: {0}")]
    Io(Arc<io::Error>),
    /// TLS set-up or handshake failed.
    #[error("TLS error: {0}")]
    Tls(#[from] TlsError),
    /// The WebSocket handshake or framing failed.
    #[error("WebSocket error: {0}")]
    WebSocket(Arc<async_tungstenite::tungstenite::Error>),
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
    #[error("connection lost: {0}")]
    ConnectionLost(ConnectionError),
    /// The broker broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(ProtocolError),
    /// A topic name or filter is invalid.
    #[error("invalid topic: {0}")]
    InvalidTopic(#[from] TopicError),
    /// The broker rejected the message (MQTT 5 reason code).
    #[error("publish rejected: {0}")]
    Rejected(ReasonCode),
    /// The session refused the command (limits announced by the server, full queue, ...).
    #[error(transparent)]
    Session(SessionError),
    /// A publish failed in a way none of the variants above names (a newer session error).
    #[error("publish failed: {0}")]
    Publish(PublishError),
    /// The broker lost the session while the message was in flight, and the configuration
    /// says not to send it again.
    #[error("the broker's session was lost while the message was in flight")]
    SessionLost,
    /// [`ClientConfig::max_queued`](crate::ClientConfig::max_queued) publishes (or
    /// `max_queued_bytes`) are pending and the publish was asked not to wait
    /// ([`Publishing::send_now`](crate::Publishing::send_now)). Nothing was sent.
    #[error("publish queue full")]
    QueueFull,
    /// The client was closed (`disconnect`, `cancel_tasks`, or every handle dropped). A publish
    /// failing with it may still be delivered (its message stays in the session).
    #[error("client closed")]
    Closed,
    /// The session store (`session_store`) could not be opened, or could not record or sync
    /// a message (e.g. [`StoreError::Full`]): that message was not sent; what the store
    /// held before is intact.
    #[error("session store: {0}")]
    Store(StoreError),
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
            PublishError::Rejected(code) => Self::Rejected(code),
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
