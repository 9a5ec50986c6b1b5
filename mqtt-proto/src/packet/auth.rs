//! AUTH (MQTT 5.0 3.15): the enhanced authentication exchange. It does not exist in 3.1.1,
//! where packet type 15 is reserved.

use bytes::{Buf, BufMut, Bytes};

use super::{PacketType, sealed::Body};
use crate::codec::read_u8;
use crate::error::{DecodeError, EncodeError};
use crate::properties::AuthProperties;
use crate::qos::ProtocolVersion;
use crate::reason::ReasonCode;

/// One step of enhanced authentication (or re-authentication).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// `Success`, `ContinueAuthentication` or `ReAuthenticate`.
    pub reason_code: ReasonCode,
    /// Method and data of the exchange.
    pub properties: AuthProperties,
}

impl Auth {
    pub(crate) fn decode(buf: &mut Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        // MQTT 5.0 3.15.2.1: remaining length 0 means Success with no properties.
        if !buf.has_remaining() {
            return Ok(Self::default());
        }
        let byte = read_u8(buf, PacketType::Auth)?;
        let reason_code = ReasonCode::decode(byte, PacketType::Auth, version).ok_or(
            DecodeError::InvalidReasonCode {
                packet: PacketType::Auth,
                code: byte,
            },
        )?;
        let properties = if buf.has_remaining() {
            AuthProperties::decode(buf, PacketType::Auth)?
        } else {
            AuthProperties::default()
        };
        Ok(Self {
            reason_code,
            properties,
        })
    }
}

impl Body for Auth {
    fn packet_type(&self) -> PacketType {
        PacketType::Auth
    }

    fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        if !version.is_v5() {
            return Err(EncodeError::NotInVersion {
                what: "AUTH",
                version,
            });
        }
        if !self.reason_code.is_valid_for(PacketType::Auth) {
            return Err(EncodeError::InvalidReasonCode {
                packet: PacketType::Auth,
                code: self.reason_code.as_u8(),
            });
        }
        Ok(match (self.reason_code, self.properties.is_empty()) {
            (ReasonCode::Success, true) => 0,
            _ => 1 + self.properties.wire_len()?,
        })
    }

    fn encode_body<B: BufMut>(&self, _: ProtocolVersion, buf: &mut B) {
        if self.reason_code == ReasonCode::Success && self.properties.is_empty() {
            return;
        }
        buf.put_u8(self.reason_code.as_u8());
        self.properties.encode(buf);
    }
}
