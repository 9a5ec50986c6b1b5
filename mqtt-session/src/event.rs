//! What the session reports: [`Event`]s, and the tokens that tie them to commands.

use alloc::boxed::Box;
use alloc::vec::Vec;

use sansmqtt_proto::properties::{AckProperties, AuthProperties, ConnAckProperties, PropertyBox};
use sansmqtt_proto::{PacketId, Publish, QoS, ReasonCode};

use crate::error::{ConnectionError, PublishError};

/// Names one command (publish, subscribe, unsubscribe, ping); its completion event carries
/// the same token. Tokens are unique for the life of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub(crate) u64);

impl Token {
    /// The token's number, for logs and for stores that persist flights.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The token numbered `n` (from [`get`](Self::get)): for a durable
    /// [`SessionStore`](crate::SessionStore) restoring the flights it recorded.
    pub fn from_raw(n: u64) -> Self {
        Self(n)
    }
}

/// Acknowledges one received QoS 1/2 message in [`AckMode::Manual`](crate::AckMode::Manual)
/// with [`Session::ack`](crate::Session::ack).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AckToken {
    pub(crate) packet_id: PacketId,
    pub(crate) qos: QoS,
    /// The connection the message arrived on: a QoS 1 acknowledgement only makes sense there
    /// (the server re-sends unacknowledged QoS 1 messages on the next connection).
    pub(crate) connection: u64,
    /// The server session the message belongs to. After a session loss a new message may
    /// reuse the identifier of an unacknowledged old one; the old acknowledgement must not
    /// acknowledge the new message.
    pub(crate) session: u64,
}

impl AckToken {
    /// The packet identifier of the message.
    pub fn packet_id(&self) -> PacketId {
        self.packet_id
    }
}

/// A message received from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The PUBLISH as received, with an MQTT 5 topic alias already resolved into `topic`.
    pub publish: Publish,
    /// Present for QoS 1/2 in manual acknowledgement mode.
    pub ack: Option<AckToken>,
}

/// Something the application or adapter must know. Drain with
/// [`Session::poll_event`](crate::Session::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// CONNACK accepted the connection.
    Connected {
        /// Whether the server resumed our stored session. False also when the server reports
        /// a session present that may be a newer one: a CONNECT that could start one (clean
        /// start, or after ours ended with its connection) went unanswered.
        session_present: bool,
        /// MQTT 5 CONNACK properties (limits, assigned client id, server keep alive ...).
        properties: Box<ConnAckProperties>,
    },
    /// A publish command finished: QoS 0 when its bytes were handed to the transport, QoS 1 at
    /// PUBACK, QoS 2 at PUBCOMP (or a failing PUBREC).
    Published {
        /// The command's token.
        token: Token,
        /// Reason code of the final acknowledgement (`Success` for QoS 0), or why it failed.
        result: Result<ReasonCode, PublishError>,
        /// MQTT 5 properties (reason string, user properties) of a successful final
        /// acknowledgement (PUBACK, PUBCOMP); empty for QoS 0, MQTT 3.1.1 and failures (a
        /// rejection carries them in [`PublishError::Rejected`]). Out of line (one pointer,
        /// nothing allocated when empty): this event comes once per message.
        properties: PropertyBox<AckProperties>,
    },
    /// A QoS 1/2 publish is durable: its record was synced in the store before its first
    /// bytes were handed out. Follows [`publish`](crate::Session::publish) once the message has
    /// entered the in-flight window; its [`Event::Published`] comes later. Reported only with
    /// [`SessionConfig::report_stored`](crate::SessionConfig::report_stored). With a durable
    /// store this is the point from which the message survives a crash of the process.
    Stored {
        /// The publish command's token.
        token: Token,
    },
    /// A message arrived.
    Message(Message),
    /// SUBACK arrived: one code per filter, in order.
    Subscribed {
        /// The command's token.
        token: Token,
        /// Granted QoS or failure per filter.
        reason_codes: Vec<ReasonCode>,
        /// MQTT 5 properties (reason string, user properties).
        properties: AckProperties,
    },
    /// The session subscribed again after the server lost its session
    /// ([`SessionConfig::resubscribe`](crate::SessionConfig::resubscribe)).
    Resubscribed {
        /// Granted QoS or failure per filter, in the order of the filters re-sent.
        reason_codes: Vec<ReasonCode>,
    },
    /// UNSUBACK arrived (MQTT 3.1.1: `reason_codes` is empty).
    Unsubscribed {
        /// The command's token.
        token: Token,
        /// One code per filter (MQTT 5).
        reason_codes: Vec<ReasonCode>,
        /// MQTT 5 properties (reason string, user properties).
        properties: AckProperties,
    },
    /// PINGRESP arrived for a [`ping`](crate::Session::ping) command.
    Pong {
        /// The command's token.
        token: Token,
    },
    /// The server sent AUTH (MQTT 5 enhanced authentication): `ContinueAuthentication` asks
    /// for the next step, answered with [`Session::auth`](crate::Session::auth); `Success`
    /// ends a re-authentication.
    Auth {
        /// The step.
        reason_code: ReasonCode,
        /// Method, data and diagnostics of the server's AUTH (boxed: the set is large and the
        /// event rare, and every event is moved at the size of the largest).
        properties: Box<AuthProperties>,
    },
    /// The connection ended. The adapter closes the transport once `poll_transmit` is drained;
    /// the session keeps its state for the next [`connect`](crate::Session::connect).
    Disconnected {
        /// Why.
        reason: ConnectionError,
    },
}
