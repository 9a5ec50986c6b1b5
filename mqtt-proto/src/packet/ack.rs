//! PUBACK, PUBREC, PUBREL and PUBCOMP (MQTT 5.0 3.4 to 3.7): the same shape, one packet
//! identifier and, in MQTT 5, an optional reason code and properties.

use bytes::{Buf, BufMut, Bytes};

use super::{PacketType, sealed::Body, v5_only};
use crate::codec::{read_packet_id, read_u8};
use crate::error::{DecodeError, EncodeError};
use crate::properties::AckProperties;
use crate::qos::{PacketId, ProtocolVersion};
use crate::reason::ReasonCode;

/// Decoded fields shared by the four acknowledgement packets.
fn decode_ack(
    buf: &mut Bytes,
    version: ProtocolVersion,
    packet: PacketType,
) -> Result<(PacketId, ReasonCode, AckProperties), DecodeError> {
    let packet_id = read_packet_id(buf, packet)?;
    // MQTT 5.0 3.4.2.1: reason code and property length may be omitted (remaining length 2
    // means Success, no properties); a lone reason code means no properties.
    if !version.is_v5() || !buf.has_remaining() {
        return Ok((packet_id, ReasonCode::Success, AckProperties::default()));
    }
    let byte = read_u8(buf, packet)?;
    let reason = ReasonCode::decode(byte, packet, version)
        .ok_or(DecodeError::InvalidReasonCode { packet, code: byte })?;
    let properties = if buf.has_remaining() {
        AckProperties::decode(buf, packet)?
    } else {
        AckProperties::default()
    };
    Ok((packet_id, reason, properties))
}

fn ack_body_len(
    reason: ReasonCode,
    properties: &AckProperties,
    version: ProtocolVersion,
    packet: PacketType,
) -> Result<usize, EncodeError> {
    if !version.is_v5() {
        v5_only(properties.is_empty(), "acknowledgement properties", version)?;
        if reason != ReasonCode::Success {
            return Err(EncodeError::InvalidReasonCode {
                packet,
                code: reason.as_u8(),
            });
        }
        return Ok(2);
    }
    if reason.encode(packet, version).is_none() {
        return Err(EncodeError::InvalidReasonCode {
            packet,
            code: reason.as_u8(),
        });
    }
    // The shortest form the specification allows: it is what brokers send and expect.
    Ok(match (reason, properties.is_empty()) {
        (ReasonCode::Success, true) => 2,
        (_, true) => 3,
        (_, false) => 3 + properties.wire_len()?,
    })
}

fn encode_ack<B: BufMut>(
    packet_id: PacketId,
    reason: ReasonCode,
    properties: &AckProperties,
    version: ProtocolVersion,
    buf: &mut B,
) {
    buf.put_u16(packet_id.get());
    if !version.is_v5() {
        return;
    }
    match (reason, properties.is_empty()) {
        (ReasonCode::Success, true) => {}
        (_, true) => buf.put_u8(reason.as_u8()),
        (_, false) => {
            buf.put_u8(reason.as_u8());
            properties.encode(buf);
        }
    }
}

macro_rules! ack_packet {
    ($(#[$meta:meta])* $name:ident, $ty:expr, $flags:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// Identifier of the flow this packet belongs to.
            pub packet_id: PacketId,
            /// Outcome (MQTT 5); always `Success` in MQTT 3.1.1.
            pub reason_code: ReasonCode,
            /// MQTT 5 properties.
            pub properties: AckProperties,
        }

        impl $name {
            /// A successful acknowledgement of `packet_id`.
            pub fn new(packet_id: PacketId) -> Self {
                Self {
                    packet_id,
                    reason_code: ReasonCode::Success,
                    properties: AckProperties::default(),
                }
            }

            pub(crate) fn decode(buf: &mut Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
                let (packet_id, reason_code, properties) = decode_ack(buf, version, $ty)?;
                Ok(Self { packet_id, reason_code, properties })
            }
        }

        impl Body for $name {
            fn packet_type(&self) -> PacketType {
                $ty
            }
            fn flags(&self) -> u8 {
                $flags
            }
            fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
                ack_body_len(self.reason_code, &self.properties, version, $ty)
            }
            fn encode_body<B: BufMut>(&self, version: ProtocolVersion, buf: &mut B) {
                encode_ack(self.packet_id, self.reason_code, &self.properties, version, buf);
            }
        }
    };
}

ack_packet!(
    /// PUBACK: the receiver's answer to a QoS 1 PUBLISH.
    PubAck, PacketType::PubAck, 0
);
ack_packet!(
    /// PUBREC: first answer to a QoS 2 PUBLISH.
    PubRec, PacketType::PubRec, 0
);
ack_packet!(
    /// PUBREL: the sender's release after PUBREC. Fixed header flags are 0b0010
    /// ([MQTT-3.6.1-1]).
    PubRel, PacketType::PubRel, 0b0010
);
ack_packet!(
    /// PUBCOMP: completes the QoS 2 flow.
    PubComp, PacketType::PubComp, 0
);
