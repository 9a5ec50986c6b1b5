//! Reason codes (MQTT 5.0 section 2.4) and their MQTT 3.1.1 counterparts.
//!
//! One type serves both versions: MQTT 3.1.1 CONNACK return codes and SUBACK return codes are
//! mapped onto the MQTT 5 code with the same meaning, so application code reads
//! `ReasonCode::NotAuthorized` whichever version the connection speaks.

use alloc::vec::Vec;
use core::fmt;

use bytes::{Buf, Bytes};

use crate::codec::read_u8;
use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::qos::{ProtocolVersion, QoS};

/// An MQTT 5 reason code. Code 0x00 means Success, Normal Disconnection or Granted QoS 0
/// depending on the packet; see the associated constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
#[repr(u8)]
#[allow(missing_docs)] // the names are the specification's
pub enum ReasonCode {
    #[default]
    Success = 0x00,
    GrantedQoS1 = 0x01,
    GrantedQoS2 = 0x02,
    DisconnectWithWillMessage = 0x04,
    NoMatchingSubscribers = 0x10,
    NoSubscriptionExisted = 0x11,
    ContinueAuthentication = 0x18,
    ReAuthenticate = 0x19,
    UnspecifiedError = 0x80,
    MalformedPacket = 0x81,
    ProtocolError = 0x82,
    ImplementationSpecificError = 0x83,
    UnsupportedProtocolVersion = 0x84,
    ClientIdentifierNotValid = 0x85,
    BadUserNameOrPassword = 0x86,
    NotAuthorized = 0x87,
    ServerUnavailable = 0x88,
    ServerBusy = 0x89,
    Banned = 0x8A,
    ServerShuttingDown = 0x8B,
    BadAuthenticationMethod = 0x8C,
    KeepAliveTimeout = 0x8D,
    SessionTakenOver = 0x8E,
    TopicFilterInvalid = 0x8F,
    TopicNameInvalid = 0x90,
    PacketIdentifierInUse = 0x91,
    PacketIdentifierNotFound = 0x92,
    ReceiveMaximumExceeded = 0x93,
    TopicAliasInvalid = 0x94,
    PacketTooLarge = 0x95,
    MessageRateTooHigh = 0x96,
    QuotaExceeded = 0x97,
    AdministrativeAction = 0x98,
    PayloadFormatInvalid = 0x99,
    RetainNotSupported = 0x9A,
    QoSNotSupported = 0x9B,
    UseAnotherServer = 0x9C,
    ServerMoved = 0x9D,
    SharedSubscriptionsNotSupported = 0x9E,
    ConnectionRateExceeded = 0x9F,
    MaximumConnectTime = 0xA0,
    SubscriptionIdentifiersNotSupported = 0xA1,
    WildcardSubscriptionsNotSupported = 0xA2,
}

// Which codes each packet may carry (MQTT 5.0 table 2-6 and the packet sections).
const CONNACK: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
const PUBACK_PUBREC: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_PUBCOMP: &[u8] = &[0x00, 0x92];
const SUBACK: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
const UNSUBACK: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH: &[u8] = &[0x00, 0x18, 0x19];

impl ReasonCode {
    /// 0x00 in DISCONNECT.
    pub const NORMAL_DISCONNECTION: Self = Self::Success;
    /// 0x00 in SUBACK.
    pub const GRANTED_QOS_0: Self = Self::Success;

    /// The code for its wire value, if the specification defines it.
    pub const fn from_u8(code: u8) -> Option<Self> {
        Some(match code {
            0x00 => Self::Success,
            0x01 => Self::GrantedQoS1,
            0x02 => Self::GrantedQoS2,
            0x04 => Self::DisconnectWithWillMessage,
            0x10 => Self::NoMatchingSubscribers,
            0x11 => Self::NoSubscriptionExisted,
            0x18 => Self::ContinueAuthentication,
            0x19 => Self::ReAuthenticate,
            0x80 => Self::UnspecifiedError,
            0x81 => Self::MalformedPacket,
            0x82 => Self::ProtocolError,
            0x83 => Self::ImplementationSpecificError,
            0x84 => Self::UnsupportedProtocolVersion,
            0x85 => Self::ClientIdentifierNotValid,
            0x86 => Self::BadUserNameOrPassword,
            0x87 => Self::NotAuthorized,
            0x88 => Self::ServerUnavailable,
            0x89 => Self::ServerBusy,
            0x8A => Self::Banned,
            0x8B => Self::ServerShuttingDown,
            0x8C => Self::BadAuthenticationMethod,
            0x8D => Self::KeepAliveTimeout,
            0x8E => Self::SessionTakenOver,
            0x8F => Self::TopicFilterInvalid,
            0x90 => Self::TopicNameInvalid,
            0x91 => Self::PacketIdentifierInUse,
            0x92 => Self::PacketIdentifierNotFound,
            0x93 => Self::ReceiveMaximumExceeded,
            0x94 => Self::TopicAliasInvalid,
            0x95 => Self::PacketTooLarge,
            0x96 => Self::MessageRateTooHigh,
            0x97 => Self::QuotaExceeded,
            0x98 => Self::AdministrativeAction,
            0x99 => Self::PayloadFormatInvalid,
            0x9A => Self::RetainNotSupported,
            0x9B => Self::QoSNotSupported,
            0x9C => Self::UseAnotherServer,
            0x9D => Self::ServerMoved,
            0x9E => Self::SharedSubscriptionsNotSupported,
            0x9F => Self::ConnectionRateExceeded,
            0xA0 => Self::MaximumConnectTime,
            0xA1 => Self::SubscriptionIdentifiersNotSupported,
            0xA2 => Self::WildcardSubscriptionsNotSupported,
            _ => return None,
        })
    }

    /// The wire value.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Codes below 0x80 report success ([MQTT-2.4]: "Reason Code values of 0x80 or greater
    /// indicate failure").
    pub const fn is_success(self) -> bool {
        (self as u8) < 0x80
    }

    /// The granted QoS of a successful SUBACK entry.
    pub const fn granted_qos(self) -> Option<QoS> {
        match self {
            Self::Success => Some(QoS::AtMostOnce),
            Self::GrantedQoS1 => Some(QoS::AtLeastOnce),
            Self::GrantedQoS2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }

    /// The SUBACK success code granting `qos`.
    pub const fn granted(qos: QoS) -> Self {
        match qos {
            QoS::AtMostOnce => Self::Success,
            QoS::AtLeastOnce => Self::GrantedQoS1,
            QoS::ExactlyOnce => Self::GrantedQoS2,
        }
    }

    /// Whether MQTT 5 allows this code in `packet`.
    pub fn is_valid_for(self, packet: PacketType) -> bool {
        let table = match packet {
            PacketType::ConnAck => CONNACK,
            PacketType::PubAck | PacketType::PubRec => PUBACK_PUBREC,
            PacketType::PubRel | PacketType::PubComp => PUBREL_PUBCOMP,
            PacketType::SubAck => SUBACK,
            PacketType::UnsubAck => UNSUBACK,
            PacketType::Disconnect => DISCONNECT,
            PacketType::Auth => AUTH,
            _ => return false,
        };
        table.contains(&(self as u8))
    }

    /// Decodes a reason code byte of `packet` in `version`, mapping MQTT 3.1.1 CONNACK and
    /// SUBACK return codes onto their MQTT 5 equivalents. `None` if the byte is not allowed.
    pub(crate) fn decode(byte: u8, packet: PacketType, version: ProtocolVersion) -> Option<Self> {
        if version.is_v5() {
            return Self::from_u8(byte).filter(|code| code.is_valid_for(packet));
        }
        match (packet, byte) {
            // MQTT 3.1.1 3.2.2.3, table 3.1.
            (PacketType::ConnAck, 0) => Some(Self::Success),
            (PacketType::ConnAck, 1) => Some(Self::UnsupportedProtocolVersion),
            (PacketType::ConnAck, 2) => Some(Self::ClientIdentifierNotValid),
            (PacketType::ConnAck, 3) => Some(Self::ServerUnavailable),
            (PacketType::ConnAck, 4) => Some(Self::BadUserNameOrPassword),
            (PacketType::ConnAck, 5) => Some(Self::NotAuthorized),
            // MQTT 3.1.1 3.9.3: 0x00, 0x01, 0x02 granted, 0x80 failure [MQTT-3.9.3-2].
            (PacketType::SubAck, 0) => Some(Self::Success),
            (PacketType::SubAck, 1) => Some(Self::GrantedQoS1),
            (PacketType::SubAck, 2) => Some(Self::GrantedQoS2),
            (PacketType::SubAck, 0x80) => Some(Self::UnspecifiedError),
            _ => None,
        }
    }

    /// The byte to send for this code in `packet` under `version`; `None` if it has no
    /// counterpart there (e.g. `QuotaExceeded` in an MQTT 3.1.1 CONNACK).
    pub(crate) fn encode(self, packet: PacketType, version: ProtocolVersion) -> Option<u8> {
        if version.is_v5() {
            return self.is_valid_for(packet).then_some(self as u8);
        }
        match (packet, self) {
            (PacketType::ConnAck, Self::Success) => Some(0),
            (PacketType::ConnAck, Self::UnsupportedProtocolVersion) => Some(1),
            (PacketType::ConnAck, Self::ClientIdentifierNotValid) => Some(2),
            (PacketType::ConnAck, Self::ServerUnavailable) => Some(3),
            (PacketType::ConnAck, Self::BadUserNameOrPassword) => Some(4),
            (PacketType::ConnAck, Self::NotAuthorized) => Some(5),
            (PacketType::SubAck, Self::Success) => Some(0),
            (PacketType::SubAck, Self::GrantedQoS1) => Some(1),
            (PacketType::SubAck, Self::GrantedQoS2) => Some(2),
            (PacketType::SubAck, Self::UnspecifiedError) => Some(0x80),
            _ => None,
        }
    }
}

/// Reads the rest of a SUBACK or UNSUBACK body: one reason code per byte, at least one, since
/// there is one per filter of the request ([MQTT-3.9.3-1], [MQTT-3.11.3-1]).
pub(crate) fn decode_list(
    buf: &mut Bytes,
    packet: PacketType,
    version: ProtocolVersion,
) -> Result<Vec<ReasonCode>, DecodeError> {
    let mut codes = Vec::with_capacity(buf.remaining());
    while buf.has_remaining() {
        let byte = read_u8(buf, packet)?;
        codes.push(
            ReasonCode::decode(byte, packet, version)
                .ok_or(DecodeError::InvalidReasonCode { packet, code: byte })?,
        );
    }
    if codes.is_empty() {
        return Err(DecodeError::EmptyPayload(packet));
    }
    Ok(codes)
}

/// Checks a SUBACK or UNSUBACK code list before encoding: at least one code, each one valid
/// for `packet` in `version`.
pub(crate) fn check_list(
    codes: &[ReasonCode],
    packet: PacketType,
    version: ProtocolVersion,
) -> Result<(), EncodeError> {
    if codes.is_empty() {
        return Err(EncodeError::EmptyPayload(packet));
    }
    match codes
        .iter()
        .find(|code| code.encode(packet, version).is_none())
    {
        Some(bad) => Err(EncodeError::InvalidReasonCode {
            packet,
            code: bad.as_u8(),
        }),
        None => Ok(()),
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({:#04x})", self, *self as u8)
    }
}
