//! The session's error families: [`SessionError`] (a command cannot be carried out now),
//! [`ProtocolError`] (the server broke the protocol), [`ConnectionError`] (why a connection
//! ended) and [`PublishError`] (why one publish did not complete).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use bytestring::ByteString;
use sansmqtt_proto::properties::UserProperty;
use sansmqtt_proto::topic::TopicError;
use sansmqtt_proto::{DecodeError, EncodeError, PacketType, QoS, ReasonCode};

use crate::store::StoreError;
/// The server's verdict in a refusing CONNACK, a DISCONNECT or a negative acknowledgement:
/// the reason code and, in MQTT 5, the optional reason string and user properties that came
/// with it (diagnostics the server chose to send).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerReason {
    /// The reason code (MQTT 3.1.1 return codes are mapped to their MQTT 5 equivalents).
    pub code: ReasonCode,
    /// The Reason String property: a human-readable diagnostic.
    pub reason_string: Option<ByteString>,
    /// The User Property pairs of the packet.
    pub user_properties: Vec<UserProperty>,
}

impl ServerReason {
    /// A bare reason code, with no reason string or user properties.
    pub fn new(code: ReasonCode) -> Self {
        Self::with_properties(code, None, Vec::new())
    }

    /// A reason code with the diagnostics from the packet's properties.
    pub fn with_properties(
        code: ReasonCode,
        reason_string: Option<ByteString>,
        user_properties: Vec<UserProperty>,
    ) -> Self {
        Self {
            code,
            reason_string,
            user_properties,
        }
    }
}

impl From<ReasonCode> for ServerReason {
    fn from(code: ReasonCode) -> Self {
        Self::new(code)
    }
}

impl fmt::Display for ServerReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(reason) = &self.reason_string {
            write!(f, " ({reason:?})")?;
        }
        Ok(())
    }
}

/// A command was refused; nothing was queued or sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The command needs a connection (or a connection attempt) and there is none.
    #[error("not connected")]
    NotConnected,
    /// `connect` while a connection is up or being set up.
    #[error("already connected or connecting")]
    AlreadyConnected,
    /// A topic name or filter is invalid.
    #[error("invalid topic")]
    InvalidTopic(#[from] TopicError),
    /// The server's CONNACK limited the QoS it accepts.
    #[error("QoS {requested:?} exceeds the server's maximum {maximum:?}")]
    QoSNotSupported {
        /// Asked for.
        requested: QoS,
        /// What the server supports.
        maximum: QoS,
    },
    /// The server's CONNACK said it does not support retained messages.
    #[error("the server does not support retained messages")]
    RetainNotSupported,
    /// The packet exceeds the server's maximum packet size.
    #[error("packet of {size} bytes exceeds the server's maximum of {max}")]
    PacketTooLarge {
        /// Encoded size.
        size: usize,
        /// The server's limit.
        max: u32,
    },
    /// The queue behind the in-flight window is full ([`SessionConfig::max_queued`](crate::SessionConfig::max_queued)).
    #[error("publish queue is full")]
    QueueFull,
    /// No packet identifier is free (65,535 flows in flight).
    #[error("no free packet identifier")]
    PacketIdsExhausted,
    /// SUBSCRIBE / UNSUBSCRIBE without filters.
    #[error("no topic filters given")]
    NoFilters,
    /// MQTT 5: the publish carries a topic alias of 0 or above the Topic Alias Maximum the
    /// server announced ([MQTT-3.3.2-8], [MQTT-3.3.2-9]); sent, it would make the server
    /// disconnect with "topic alias invalid" (0x94). Nothing was sent.
    #[error("topic alias {alias} is not allowed: the server accepts aliases 1 to {maximum}")]
    TopicAliasNotAllowed {
        /// The alias asked for.
        alias: u16,
        /// The server's Topic Alias Maximum (0: no aliases).
        maximum: u16,
    },
    /// The feature needs MQTT 5.
    #[error("{0} needs MQTT 5")]
    RequiresV5(&'static str),
    /// The acknowledgement token does not name a message awaiting acknowledgement.
    #[error("unknown or stale acknowledgement token")]
    UnknownAckToken,
    /// The packet cannot be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The session store could not record the message; it was not sent.
    #[error("session store: {0}")]
    Store(#[from] StoreError),
}

/// The server broke the protocol; the connection is closed (MQTT 5: with a DISCONNECT
/// carrying [`ProtocolError::reason_code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Received bytes are not a well-formed packet.
    #[error("malformed packet")]
    Decode(#[from] DecodeError),
    /// A packet a server may not send, or not at this point (e.g. PUBLISH before CONNACK).
    #[error("unexpected {0} from the server")]
    UnexpectedPacket(PacketType),
    /// An acknowledgement for a packet identifier with no matching flow.
    #[error("{packet} for unknown packet identifier {id}")]
    UnknownPacketId {
        /// The acknowledgement.
        packet: PacketType,
        /// Its identifier.
        id: u16,
    },
    /// An acknowledgement of the wrong type for a packet identifier that is in flight, e.g.
    /// PUBACK for a QoS 2 PUBLISH (RabbitMQ answers QoS 2 that way: it downgrades to QoS 1).
    #[error("{packet} for packet identifier {id}, which awaits {expected}")]
    UnexpectedAck {
        /// The acknowledgement received.
        packet: PacketType,
        /// Its identifier.
        id: u16,
        /// The acknowledgement the flow of that identifier awaits.
        expected: PacketType,
    },
    /// SUBACK / UNSUBACK with a different number of codes than filters sent.
    #[error("{packet} carries {got} codes for {expected} filters")]
    AckCountMismatch {
        /// The acknowledgement.
        packet: PacketType,
        /// Filters sent.
        expected: usize,
        /// Codes received.
        got: usize,
    },
    /// A topic alias of 0, above our maximum, or unknown on this connection.
    #[error("invalid topic alias {0}")]
    TopicAliasInvalid(u16),
    /// More unacknowledged QoS 1/2 messages than our receive maximum.
    #[error("server exceeded the receive maximum")]
    ReceiveMaximumExceeded,
    /// AUTH without enhanced authentication in play.
    #[error("AUTH without enhanced authentication")]
    UnexpectedAuth,
}

impl ProtocolError {
    /// The MQTT 5 DISCONNECT reason code for this error.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::Decode(DecodeError::PacketTooLarge { .. }) => ReasonCode::PacketTooLarge,
            Self::Decode(err) if err.is_protocol_error() => ReasonCode::ProtocolError,
            Self::Decode(_) => ReasonCode::MalformedPacket,
            Self::TopicAliasInvalid(_) => ReasonCode::TopicAliasInvalid,
            Self::ReceiveMaximumExceeded => ReasonCode::ReceiveMaximumExceeded,
            Self::UnexpectedPacket(_)
            | Self::UnknownPacketId { .. }
            | Self::UnexpectedAck { .. }
            | Self::AckCountMismatch { .. }
            | Self::UnexpectedAuth => ReasonCode::ProtocolError,
        }
    }
}

/// Why a connection ended. Reported once per connection, in
/// [`Event::Disconnected`](crate::Event::Disconnected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The server refused the connection in CONNACK.
    #[error("connection refused: {0}")]
    Refused(ServerReason),
    /// No CONNACK within the connect timeout.
    #[error("no CONNACK within the connect timeout")]
    ConnAckTimeout,
    /// No PINGRESP (nor any other packet) within the ping timeout.
    #[error("keep-alive timeout: no answer to PINGREQ")]
    KeepAliveTimeout,
    /// The server sent DISCONNECT (MQTT 5).
    #[error("server disconnected: {0}")]
    ServerDisconnected(ServerReason),
    /// The server broke the protocol.
    #[error("protocol error")]
    Protocol(#[from] ProtocolError),
    /// The transport closed or failed underneath the session.
    #[error("transport closed")]
    TransportClosed,
    /// The application asked for the disconnect.
    #[error("disconnected by the client")]
    Local,
    /// The session store failed to record or sync state a packet committed to; the
    /// connection was closed without sending that packet.
    #[error("session store failed: {0}")]
    Store(StoreError),
}

/// Why one publish did not complete successfully.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The server refused the message (MQTT 5 PUBACK / PUBREC reason code 0x80 or above).
    #[error("rejected by the server: {0}")]
    Rejected(Box<ServerReason>),
    /// The server lost the session while the message was in flight and the session's
    /// [`SessionLossPolicy`](crate::SessionLossPolicy) is `Fail`.
    #[error("the server's session was lost while the message was in flight")]
    SessionLost,
    /// A QoS 0 message was still unsent when the connection closed.
    #[error("connection closed before the message was sent")]
    ConnectionLost,
    /// A queued message became unsendable after the server announced its limits.
    #[error(transparent)]
    Refused(#[from] SessionError),
    /// The session store could not make the message durable; it was not sent.
    #[error("session store: {0}")]
    Store(StoreError),
    /// Its MQTT 5 message expiry interval ran out while it waited in the queue (for a
    /// connection or for room in the in-flight window); it was not sent.
    #[error("the message expired before it could be sent")]
    Expired,
}
