//! SUBACK (MQTT 5.0 3.9, MQTT 3.1.1 3.9).

use alloc::vec::Vec;

use bytes::{Buf, BufMut, Bytes};

use super::{PacketType, sealed::Body, v5_only};
use crate::codec::{read_packet_id, read_u8};
use crate::error::{DecodeError, EncodeError};
use crate::properties::AckProperties;
use crate::qos::{PacketId, ProtocolVersion};
use crate::reason::ReasonCode;

/// The server's answer to SUBSCRIBE: one code per filter, in order ([MQTT-3.9.3-1]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Identifier of the SUBSCRIBE.
    pub packet_id: PacketId,
    /// Granted QoS or failure per filter; 3.1.1 return codes map to `Success`,
    /// `GrantedQoS1`, `GrantedQoS2` and `UnspecifiedError`.
    pub reason_codes: Vec<ReasonCode>,
    /// MQTT 5 properties.
    pub properties: AckProperties,
}

impl SubAck {
    pub(crate) fn decode(buf: &mut Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        const P: PacketType = PacketType::SubAck;
        let packet_id = read_packet_id(buf, P)?;
        let properties = if version.is_v5() {
            AckProperties::decode(buf, P)?
        } else {
            AckProperties::default()
        };
        let mut reason_codes = Vec::with_capacity(buf.remaining());
        while buf.has_remaining() {
            let byte = read_u8(buf, P)?;
            reason_codes.push(ReasonCode::decode(byte, P, version).ok_or(
                DecodeError::InvalidReasonCode {
                    packet: P,
                    code: byte,
                },
            )?);
        }
        if reason_codes.is_empty() {
            return Err(DecodeError::EmptyPayload(P));
        }
        Ok(Self {
            packet_id,
            reason_codes,
            properties,
        })
    }
}

impl Body for SubAck {
    fn packet_type(&self) -> PacketType {
        PacketType::SubAck
    }

    fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        v5_only(self.properties.is_empty(), "SUBACK properties", version)?;
        if self.reason_codes.is_empty() {
            return Err(EncodeError::EmptyPayload(PacketType::SubAck));
        }
        if let Some(bad) = self
            .reason_codes
            .iter()
            .find(|code| code.encode(PacketType::SubAck, version).is_none())
        {
            return Err(EncodeError::InvalidReasonCode {
                packet: PacketType::SubAck,
                code: bad.as_u8(),
            });
        }
        let props = if version.is_v5() {
            self.properties.wire_len()?
        } else {
            0
        };
        Ok(2 + props + self.reason_codes.len())
    }

    fn encode_body<B: BufMut>(&self, version: ProtocolVersion, buf: &mut B) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.encode(buf);
        }
        for code in &self.reason_codes {
            buf.put_u8(code.encode(PacketType::SubAck, version).unwrap_or(0x80));
        }
    }
}
