//! SUBACK (MQTT 5.0 3.9, MQTT 3.1.1 3.9).

use alloc::vec::Vec;

use bytes::{BufMut, Bytes};

use super::{PacketType, sealed::Body, v5_only};
use crate::codec::read_packet_id;
use crate::error::{DecodeError, EncodeError};
use crate::properties::AckProperties;
use crate::qos::{PacketId, ProtocolVersion};
use crate::reason::{self, ReasonCode};

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
        let reason_codes = reason::decode_list(buf, P, version)?;
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
        reason::check_list(&self.reason_codes, PacketType::SubAck, version)?;
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
