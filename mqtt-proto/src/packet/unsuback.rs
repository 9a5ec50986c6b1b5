//! UNSUBACK (MQTT 5.0 3.11, MQTT 3.1.1 3.11).

use alloc::vec::Vec;

use bytes::{BufMut, Bytes};

use super::{PacketType, sealed::Body, v5_only};
use crate::codec::read_packet_id;
use crate::error::{DecodeError, EncodeError};
use crate::properties::AckProperties;
use crate::qos::{PacketId, ProtocolVersion};
use crate::reason::{self, ReasonCode};

/// The server's answer to UNSUBSCRIBE. MQTT 3.1.1 UNSUBACK carries no codes, so
/// `reason_codes` is empty there; in MQTT 5 it has one code per filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Identifier of the UNSUBSCRIBE.
    pub packet_id: PacketId,
    /// One code per filter (MQTT 5 only).
    pub reason_codes: Vec<ReasonCode>,
    /// MQTT 5 properties.
    pub properties: AckProperties,
}

impl UnsubAck {
    pub(crate) fn decode(buf: &mut Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        const P: PacketType = PacketType::UnsubAck;
        let packet_id = read_packet_id(buf, P)?;
        if !version.is_v5() {
            return Ok(Self {
                packet_id,
                reason_codes: Vec::new(),
                properties: AckProperties::default(),
            });
        }
        let properties = AckProperties::decode(buf, P)?;
        let reason_codes = reason::decode_list(buf, P, version)?;
        Ok(Self {
            packet_id,
            reason_codes,
            properties,
        })
    }
}

impl Body for UnsubAck {
    fn packet_type(&self) -> PacketType {
        PacketType::UnsubAck
    }

    fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        if !version.is_v5() {
            v5_only(self.properties.is_empty(), "UNSUBACK properties", version)?;
            v5_only(
                self.reason_codes.is_empty(),
                "UNSUBACK reason codes",
                version,
            )?;
            return Ok(2);
        }
        reason::check_list(&self.reason_codes, PacketType::UnsubAck, version)?;
        Ok(2 + self.properties.wire_len()? + self.reason_codes.len())
    }

    fn encode_body<B: BufMut>(&self, version: ProtocolVersion, buf: &mut B) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.encode(buf);
            for code in &self.reason_codes {
                buf.put_u8(code.as_u8());
            }
        }
    }
}
