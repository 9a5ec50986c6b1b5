//! The two error families of the codec: what was wrong in received bytes ([`DecodeError`]) and
//! what the specification forbids sending ([`EncodeError`]).

use crate::packet::PacketType;
use crate::properties::PropertyId;
use crate::topic::TopicError;

/// Received bytes are not a well-formed MQTT packet. Every variant is a reason to close the
/// connection (MQTT 5 reason code 0x81 Malformed Packet or 0x82 Protocol Error); see
/// [`DecodeError::is_protocol_error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A variable byte integer (remaining length, property length, subscription identifier)
    /// continues past its fourth byte.
    #[error("variable byte integer longer than 4 bytes")]
    MalformedVarInt,
    /// MQTT 5 requires the minimum number of bytes for a variable byte integer.
    #[error("variable byte integer not minimally encoded")]
    NonMinimalVarInt,
    /// The packet, by its fixed header, is larger than the configured maximum.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max}")]
    PacketTooLarge {
        /// Total packet size announced by the fixed header.
        size: usize,
        /// The configured maximum.
        max: u32,
    },
    /// Packet type 0, or 15 (AUTH) outside MQTT 5.
    #[error("reserved or unsupported packet type {0}")]
    InvalidPacketType(u8),
    /// The low nibble of the fixed header holds flags the specification reserves.
    #[error("invalid fixed header flags {flags:#06b} for {packet}")]
    InvalidHeaderFlags {
        /// Which packet carried the flags.
        packet: PacketType,
        /// The four flag bits as received.
        flags: u8,
    },
    /// A QoS field holds 3.
    #[error("invalid QoS {0}")]
    InvalidQoS(u8),
    /// DUP set on a QoS 0 PUBLISH.
    #[error("DUP flag set on a QoS 0 PUBLISH")]
    DupWithQoS0,
    /// Packet identifier 0 where a non-zero one is required.
    #[error("packet identifier 0 in {0}")]
    ZeroPacketId(PacketType),
    /// The packet ends before a field it announces.
    #[error("{0} ends before its last field")]
    Truncated(PacketType),
    /// Bytes remain after the last field the remaining length allows for.
    #[error("{0} has {1} unexpected trailing bytes")]
    TrailingBytes(PacketType, usize),
    /// A length field points past the end of the packet.
    #[error("length field in {0} disagrees with the remaining length")]
    LengthMismatch(PacketType),
    /// A string is not valid UTF-8 (this includes encoded surrogates).
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A string contains U+0000.
    #[error("string contains U+0000")]
    NullCharacter,
    /// A topic name or filter breaks the topic rules.
    #[error("invalid topic")]
    InvalidTopic(#[from] TopicError),
    /// CONNECT does not name the protocol "MQTT".
    #[error("protocol name is not \"MQTT\"")]
    InvalidProtocolName,
    /// CONNECT announces a protocol level other than the codec's.
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolLevel(u8),
    /// CONNECT flags are inconsistent or use the reserved bit.
    #[error("invalid CONNECT flags {0:#010b}")]
    InvalidConnectFlags(u8),
    /// CONNACK acknowledge flags use reserved bits, or claim a session on a refused connection.
    #[error("invalid CONNACK flags {0:#010b}")]
    InvalidConnAckFlags(u8),
    /// Subscription options use reserved bits or retain handling 3.
    #[error("invalid subscription options {0:#010b}")]
    InvalidSubscriptionOptions(u8),
    /// Subscription options with retain handling 3.
    #[error("retain handling 3 in subscription options")]
    InvalidRetainHandling,
    /// SUBSCRIBE, SUBACK, UNSUBSCRIBE without a single entry.
    #[error("{0} has no entries")]
    EmptyPayload(PacketType),
    /// A reason code that this packet may not carry.
    #[error("reason code {code:#04x} is not valid in {packet}")]
    InvalidReasonCode {
        /// Which packet carried it.
        packet: PacketType,
        /// The code as received.
        code: u8,
    },
    /// A property identifier this crate does not know.
    #[error("unknown property identifier {0:#x}")]
    UnknownProperty(u32),
    /// A known property in a packet that may not carry it.
    #[error("property {property:?} is not allowed in {packet}")]
    PropertyNotAllowed {
        /// The property.
        property: PropertyId,
        /// The packet it appeared in.
        packet: PacketType,
    },
    /// A property that may appear once appeared again.
    #[error("property {0:?} appears more than once")]
    DuplicateProperty(PropertyId),
    /// A property value outside its allowed range (e.g. receive maximum 0).
    #[error("invalid value for property {0:?}")]
    InvalidPropertyValue(PropertyId),
    /// A PUBLISH without a topic name and without a topic alias.
    #[error("PUBLISH has neither a topic name nor a topic alias")]
    MissingTopic,
    /// No Local set on a shared subscription ([MQTT-3.8.3-4]).
    #[error("no local option set on a shared subscription")]
    NoLocalOnSharedSubscription,
}

impl DecodeError {
    /// Whether MQTT 5 classifies this as a Protocol Error (0x82) rather than a Malformed Packet
    /// (0x81): the bytes parse, but break a rule about what a packet may say.
    pub fn is_protocol_error(&self) -> bool {
        matches!(
            self,
            // A property not valid for its packet type is a Malformed Packet (MQTT 5.0
            // 2.2.2.2), so `PropertyNotAllowed` is not listed. A SUBSCRIBE or UNSUBSCRIBE
            // without payload is a Protocol Error (MQTT 5.0 3.8.3, 3.10.3).
            Self::DuplicateProperty(_)
                | Self::EmptyPayload(PacketType::Subscribe | PacketType::Unsubscribe)
                | Self::InvalidPropertyValue(_)
                | Self::UnsupportedProtocolLevel(_)
                | Self::InvalidProtocolName
                | Self::MissingTopic
                | Self::NoLocalOnSharedSubscription
                | Self::InvalidRetainHandling
                | Self::InvalidPacketType(_)
        )
    }
}

/// The caller asked to encode something the specification forbids; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A QoS 0 PUBLISH with a packet identifier ([MQTT-2.2.1-2]).
    #[error("QoS 0 PUBLISH must not carry a packet identifier")]
    PacketIdWithQoS0,
    /// A QoS 1 or 2 PUBLISH without a packet identifier ([MQTT-2.2.1-3]).
    #[error("QoS 1 and 2 PUBLISH need a packet identifier")]
    MissingPacketId,
    /// DUP on a QoS 0 PUBLISH ([MQTT-3.3.1-2]).
    #[error("DUP must be 0 for QoS 0")]
    DupWithQoS0,
    /// A string or binary field longer than 65,535 bytes.
    #[error("field of {0} bytes exceeds the 65535 byte limit")]
    FieldTooLong(usize),
    /// A string contains U+0000 ([MQTT-1.5.4-2]).
    #[error("string contains U+0000")]
    NullCharacter,
    /// The packet would exceed the largest remaining length, 268,435,455 bytes.
    #[error("packet body of {0} bytes exceeds the largest remaining length")]
    PacketTooLarge(usize),
    /// A topic name or filter breaks the topic rules.
    #[error("invalid topic")]
    InvalidTopic(#[from] TopicError),
    /// SUBSCRIBE, SUBACK or UNSUBSCRIBE without entries ([MQTT-3.8.3-3], [MQTT-3.10.3-2]).
    #[error("{0} needs at least one entry")]
    EmptyPayload(PacketType),
    /// The packet or a field of it does not exist in the chosen protocol version.
    #[error("{what} is not part of {version}")]
    NotInVersion {
        /// What could not be encoded.
        what: &'static str,
        /// The version it was encoded for.
        version: crate::ProtocolVersion,
    },
    /// A reason code that this packet may not carry in this version.
    #[error("reason code {code:#04x} is not valid in {packet}")]
    InvalidReasonCode {
        /// The packet.
        packet: PacketType,
        /// The code.
        code: u8,
    },
    /// A property value the specification forbids (e.g. topic alias 0).
    #[error("invalid value for property {0:?}")]
    InvalidPropertyValue(PropertyId),
    /// A CONNACK refusing the connection cannot claim a session ([MQTT-3.2.2-4] 3.1.1,
    /// [MQTT-3.2.2-6] 5.0).
    #[error("session present on a refused connection")]
    SessionPresentOnRefusal,
    /// MQTT 3.1.1 forbids a password without a user name ([MQTT-3.1.2-22]).
    #[error("password without user name")]
    PasswordWithoutUsername,
    /// No Local set on a shared subscription ([MQTT-3.8.3-4]).
    #[error("no local option set on a shared subscription")]
    NoLocalOnSharedSubscription,
}
