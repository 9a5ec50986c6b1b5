//! DISCONNECT (MQTT 5.0 3.14, MQTT 3.1.1 3.14).

use bytes::{Buf, BufMut, Bytes};

use super::{PacketType, sealed::Body, v5_only};
use crate::codec::read_u8;
use crate::error::{DecodeError, EncodeError};
use crate::properties::DisconnectProperties;
use crate::qos::ProtocolVersion;
use crate::reason::ReasonCode;

/// The last packet of a connection. MQTT 3.1.1 DISCONNECT is empty and sent by clients only;
/// in MQTT 5 either side may send it with a reason.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// Why; `Success` is Normal Disconnection.
    pub reason_code: ReasonCode,
    /// MQTT 5 properties.
    pub properties: DisconnectProperties,
}

impl Disconnect {
    /// A DISCONNECT with `reason_code` and no properties.
    pub fn new(reason_code: ReasonCode) -> Self {
        Self {
            reason_code,
            properties: DisconnectProperties::default(),
        }
    }

    pub(crate) fn decode(buf: &mut Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        // MQTT 5.0 3.14.2.1: remaining length 0 means Normal Disconnection; with 1 there are
        // no properties. MQTT 3.1.1 DISCONNECT has no body (trailing bytes are rejected).
        if !version.is_v5() || !buf.has_remaining() {
            return Ok(Self::default());
        }
        let byte = read_u8(buf, PacketType::Disconnect)?;
        let reason_code = ReasonCode::decode(byte, PacketType::Disconnect, version).ok_or(
            DecodeError::InvalidReasonCode {
                packet: PacketType::Disconnect,
                code: byte,
            },
        )?;
        let properties = if buf.has_remaining() {
            DisconnectProperties::decode(buf, PacketType::Disconnect)?
        } else {
            DisconnectProperties::default()
        };
        Ok(Self {
            reason_code,
            properties,
        })
    }
}

impl Body for Disconnect {
    fn packet_type(&self) -> PacketType {
        PacketType::Disconnect
    }

    fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        if !version.is_v5() {
            v5_only(self.properties.is_empty(), "DISCONNECT properties", version)?;
            if self.reason_code != ReasonCode::Success {
                return Err(EncodeError::NotInVersion {
                    what: "DISCONNECT reason code",
                    version,
                });
            }
            return Ok(0);
        }
        if !self.reason_code.is_valid_for(PacketType::Disconnect) {
            return Err(EncodeError::InvalidReasonCode {
                packet: PacketType::Disconnect,
                code: self.reason_code.as_u8(),
            });
        }
        Ok(match (self.reason_code, self.properties.is_empty()) {
            (ReasonCode::Success, true) => 0,
            (_, true) => 1,
            (_, false) => 1 + self.properties.wire_len()?,
        })
    }

    fn encode_body<B: BufMut>(&self, version: ProtocolVersion, buf: &mut B) {
        if !version.is_v5() {
            return;
        }
        match (self.reason_code, self.properties.is_empty()) {
            (ReasonCode::Success, true) => {}
            (_, true) => buf.put_u8(self.reason_code.as_u8()),
            (_, false) => {
                buf.put_u8(self.reason_code.as_u8());
                self.properties.encode(buf);
            }
        }
    }
}
