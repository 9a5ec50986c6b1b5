//! One type per control packet, with decode and encode side by side in the packet's file.
//!
//! Packet types are plain data with public fields; validation happens at the decode and encode
//! boundary. Encode any of them with [`Encode::encode`], or wrap them in [`Packet`].

mod ack;
mod auth;
mod connack;
mod connect;
mod disconnect;
mod ping;
mod publish;
mod suback;
mod subscribe;
mod unsuback;
mod unsubscribe;

use alloc::boxed::Box;
use core::fmt;

use bytes::{BufMut, Bytes};

pub use ack::{PubAck, PubComp, PubRec, PubRel};
pub use auth::Auth;
pub use connack::ConnAck;
pub use connect::{Connect, Will};
pub use disconnect::Disconnect;
pub use ping::{PingReq, PingResp};
pub use publish::Publish;
pub use suback::SubAck;
pub use subscribe::{RetainHandling, Subscribe, SubscribeFilter, SubscriptionOptions};
pub use unsuback::UnsubAck;
pub use unsubscribe::Unsubscribe;

use crate::codec::{check_body_len, expect_end, parse_var_int, put_var_int, var_int_len};
use crate::error::{DecodeError, EncodeError};
use crate::qos::{PacketId, ProtocolVersion};

/// The control packet type, the high nibble of the first byte (MQTT 5.0 2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)] // the names are the specification's
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    Auth = 15,
}

impl PacketType {
    /// The type for a first-byte high nibble in `version`; 0 is reserved, and 15 is AUTH only
    /// in MQTT 5 (reserved in 3.1.1, 2.2.1).
    pub const fn from_nibble(nibble: u8, version: ProtocolVersion) -> Option<Self> {
        Some(match nibble {
            1 => Self::Connect,
            2 => Self::ConnAck,
            3 => Self::Publish,
            4 => Self::PubAck,
            5 => Self::PubRec,
            6 => Self::PubRel,
            7 => Self::PubComp,
            8 => Self::Subscribe,
            9 => Self::SubAck,
            10 => Self::Unsubscribe,
            11 => Self::UnsubAck,
            12 => Self::PingReq,
            13 => Self::PingResp,
            14 => Self::Disconnect,
            15 if version.is_v5() => Self::Auth,
            _ => return None,
        })
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "CONNECT",
            Self::ConnAck => "CONNACK",
            Self::Publish => "PUBLISH",
            Self::PubAck => "PUBACK",
            Self::PubRec => "PUBREC",
            Self::PubRel => "PUBREL",
            Self::PubComp => "PUBCOMP",
            Self::Subscribe => "SUBSCRIBE",
            Self::SubAck => "SUBACK",
            Self::Unsubscribe => "UNSUBSCRIBE",
            Self::UnsubAck => "UNSUBACK",
            Self::PingReq => "PINGREQ",
            Self::PingResp => "PINGRESP",
            Self::Disconnect => "DISCONNECT",
            Self::Auth => "AUTH",
        })
    }
}

/// A parsed fixed header (MQTT 5.0 2.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FixedHeader {
    pub(crate) packet_type: PacketType,
    pub(crate) flags: u8,
    pub(crate) remaining_len: usize,
    pub(crate) header_len: usize,
}

impl FixedHeader {
    /// Parses the fixed header at the front of `bytes` without consuming anything.
    /// Type and flags are checked as soon as the first byte is there, so garbage is rejected
    /// without waiting for more input.
    #[inline]
    pub(crate) fn parse(
        bytes: &[u8],
        version: ProtocolVersion,
    ) -> Result<Option<Self>, DecodeError> {
        let Some(&first) = bytes.first() else {
            return Ok(None);
        };
        let nibble = first >> 4;
        let flags = first & 0x0f;
        let packet_type = PacketType::from_nibble(nibble, version)
            .ok_or(DecodeError::InvalidPacketType(nibble))?;
        check_flags(packet_type, flags)?;
        // MQTT 3.1.1 has no minimal-encoding rule for the remaining length; MQTT 5 does
        // ([MQTT-1.5.5-1]).
        let Some((remaining, len)) = parse_var_int(&bytes[1..], version.is_v5())? else {
            return Ok(None);
        };
        Ok(Some(Self {
            packet_type,
            flags,
            remaining_len: remaining as usize,
            header_len: 1 + len,
        }))
    }

    /// The whole packet's size: fixed header plus remaining length.
    pub(crate) const fn packet_len(&self) -> usize {
        self.header_len + self.remaining_len
    }
}

/// Fixed header flags (MQTT 5.0 2.1.3, MQTT 3.1.1 2.2.2).
fn check_flags(packet: PacketType, flags: u8) -> Result<(), DecodeError> {
    let ok = match packet {
        // PUBLISH flags are DUP, QoS, RETAIN; QoS 3 is checked here so it fails early
        // ([MQTT-3.3.1-4]).
        PacketType::Publish => (flags >> 1) & 0b11 != 0b11,
        // [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1]: these must be 0b0010.
        PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => flags == 0b0010,
        // [MQTT-2.2.2-1] (3.1.1) / [MQTT-2.1.3-1]: reserved flags must be as specified (0).
        _ => flags == 0,
    };
    if ok {
        Ok(())
    } else if packet == PacketType::Publish {
        Err(DecodeError::InvalidQoS(3))
    } else {
        Err(DecodeError::InvalidHeaderFlags { packet, flags })
    }
}

/// How one packet type reads and writes its variable header and payload.
/// Sealed: the set of MQTT packets is closed.
pub(crate) mod sealed {
    use super::*;

    pub trait Body: Sized {
        /// The packet type this body belongs to.
        fn packet_type(&self) -> PacketType;
        /// Fixed header flags when encoding.
        fn flags(&self) -> u8 {
            0
        }
        /// Length of the body in `version`, validating everything encoding relies on.
        fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError>;
        /// Writes the body; only called after `body_len` succeeded.
        fn encode_body<B: BufMut>(&self, version: ProtocolVersion, buf: &mut B);
    }
}

/// Encoding for every packet type and for [`Packet`].
pub trait Encode: sealed::Body {
    /// Writes the whole packet, fixed header included, for `version`. Returns the number of
    /// bytes written. On error nothing has been written.
    fn encode<B: BufMut>(
        &self,
        version: ProtocolVersion,
        buf: &mut B,
    ) -> Result<usize, EncodeError> {
        let body = check_body_len(self.body_len(version)?)?;
        buf.put_u8(((self.packet_type() as u8) << 4) | self.flags());
        put_var_int(buf, body as u32);
        self.encode_body(version, buf);
        Ok(1 + var_int_len(body as u32) + body)
    }

    /// The number of bytes [`Encode::encode`] would write.
    fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        let body = check_body_len(self.body_len(version)?)?;
        Ok(1 + var_int_len(body as u32) + body)
    }
}

impl<T: sealed::Body> Encode for T {}

/// Any MQTT control packet.
///
/// The packets sent once per connection or on errors (CONNECT, CONNACK, DISCONNECT, AUTH) are
/// boxed, so that a `Packet` stays the size of the common ones (PUBLISH and the acks) and
/// moving it is cheap; `From` wraps any packet type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // each variant carries the packet of the same name
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(Box<ConnAck>),
    Publish(Publish),
    PubAck(PubAck),
    PubRec(PubRec),
    PubRel(PubRel),
    PubComp(PubComp),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq(PingReq),
    PingResp(PingResp),
    Disconnect(Box<Disconnect>),
    Auth(Box<Auth>),
}

macro_rules! dispatch {
    ($self:expr, $p:ident => $e:expr) => {
        match $self {
            Packet::Connect($p) => $e,
            Packet::ConnAck($p) => $e,
            Packet::Publish($p) => $e,
            Packet::PubAck($p) => $e,
            Packet::PubRec($p) => $e,
            Packet::PubRel($p) => $e,
            Packet::PubComp($p) => $e,
            Packet::Subscribe($p) => $e,
            Packet::SubAck($p) => $e,
            Packet::Unsubscribe($p) => $e,
            Packet::UnsubAck($p) => $e,
            Packet::PingReq($p) => $e,
            Packet::PingResp($p) => $e,
            Packet::Disconnect($p) => $e,
            Packet::Auth($p) => $e,
        }
    };
}

impl Packet {
    /// This packet's type.
    pub fn packet_type(&self) -> PacketType {
        sealed::Body::packet_type(self)
    }

    /// Decodes a body whose fixed header was parsed; `body` holds exactly the remaining length.
    #[inline] // one caller, `codec::decode`: inlined, the packet is not moved once more
    pub(crate) fn decode_body(
        header: FixedHeader,
        mut body: Bytes,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let buf = &mut body;
        let packet = match header.packet_type {
            PacketType::Connect => Self::Connect(Box::new(Connect::decode(buf, version)?)),
            PacketType::ConnAck => Self::ConnAck(Box::new(ConnAck::decode(buf, version)?)),
            // Takes the body: its payload is the rest of it.
            PacketType::Publish => return Publish::decode_packet(header.flags, body, version),
            PacketType::PubAck => Self::PubAck(PubAck::decode(buf, version)?),
            PacketType::PubRec => Self::PubRec(PubRec::decode(buf, version)?),
            PacketType::PubRel => Self::PubRel(PubRel::decode(buf, version)?),
            PacketType::PubComp => Self::PubComp(PubComp::decode(buf, version)?),
            PacketType::Subscribe => Self::Subscribe(Subscribe::decode(buf, version)?),
            PacketType::SubAck => Self::SubAck(SubAck::decode(buf, version)?),
            PacketType::Unsubscribe => Self::Unsubscribe(Unsubscribe::decode(buf, version)?),
            PacketType::UnsubAck => Self::UnsubAck(UnsubAck::decode(buf, version)?),
            PacketType::PingReq => Self::PingReq(PingReq),
            PacketType::PingResp => Self::PingResp(PingResp),
            PacketType::Disconnect => Self::Disconnect(Box::new(Disconnect::decode(buf, version)?)),
            PacketType::Auth => Self::Auth(Box::new(Auth::decode(buf, version)?)),
        };
        expect_end(buf, header.packet_type)?;
        Ok(packet)
    }
}

impl Packet {
    /// The acknowledgement of `packet_type` whose whole body is the packet identifier `id`
    /// (MQTT 5 then means Success without properties); `Ok(None)` for the other types.
    #[inline]
    pub(crate) fn short_ack(packet_type: PacketType, id: u16) -> Result<Option<Self>, DecodeError> {
        let id = || PacketId::new(id).ok_or(DecodeError::ZeroPacketId(packet_type));
        Ok(Some(match packet_type {
            PacketType::PubAck => Self::PubAck(PubAck::new(id()?)),
            PacketType::PubRec => Self::PubRec(PubRec::new(id()?)),
            PacketType::PubRel => Self::PubRel(PubRel::new(id()?)),
            PacketType::PubComp => Self::PubComp(PubComp::new(id()?)),
            _ => return Ok(None),
        }))
    }
}

impl sealed::Body for Packet {
    fn packet_type(&self) -> PacketType {
        dispatch!(self, p => p.packet_type())
    }
    fn flags(&self) -> u8 {
        dispatch!(self, p => p.flags())
    }
    fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        dispatch!(self, p => p.body_len(version))
    }
    fn encode_body<B: BufMut>(&self, version: ProtocolVersion, buf: &mut B) {
        dispatch!(self, p => p.encode_body(version, buf));
    }
}

macro_rules! impl_from {
    ($($name:ident),*) => {
        $(impl From<$name> for Packet {
            fn from(packet: $name) -> Self {
                Self::$name(packet)
            }
        })*
    };
}

impl_from!(
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    PingReq,
    PingResp
);

macro_rules! impl_from_boxed {
    ($($name:ident),*) => {
        $(impl From<$name> for Packet {
            fn from(packet: $name) -> Self {
                Self::$name(Box::new(packet))
            }
        })*
    };
}

impl_from_boxed!(Connect, ConnAck, Disconnect, Auth);

/// Refuses a non-empty MQTT 5 property set when encoding MQTT 3.1.1, which has no place for it.
pub(crate) fn v5_only(
    empty: bool,
    what: &'static str,
    version: ProtocolVersion,
) -> Result<(), EncodeError> {
    if !empty && !version.is_v5() {
        return Err(EncodeError::NotInVersion { what, version });
    }
    Ok(())
}
