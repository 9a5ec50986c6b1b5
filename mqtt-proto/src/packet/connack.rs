//! CONNACK (MQTT 5.0 3.2, MQTT 3.1.1 3.2).

use bytes::{BufMut, Bytes};

use super::{PacketType, sealed::Body, v5_only};
use crate::codec::read_u8;
use crate::error::{DecodeError, EncodeError};
use crate::properties::ConnAckProperties;
use crate::qos::ProtocolVersion;
use crate::reason::ReasonCode;

/// The server's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the server resumed a session it kept for this client.
    pub session_present: bool,
    /// Outcome; MQTT 3.1.1 return codes are mapped onto these (see [`ReasonCode`]).
    pub reason_code: ReasonCode,
    /// MQTT 5 properties.
    pub properties: ConnAckProperties,
}

impl ConnAck {
    /// An accepting CONNACK.
    pub fn new(session_present: bool) -> Self {
        Self {
            session_present,
            reason_code: ReasonCode::Success,
            properties: ConnAckProperties::default(),
        }
    }

    pub(crate) fn decode(buf: &mut Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let flags = read_u8(buf, PacketType::ConnAck)?;
        // [MQTT-3.2.2-1] bits 7-1 of the acknowledge flags are reserved and 0.
        if flags & 0xfe != 0 {
            return Err(DecodeError::InvalidConnAckFlags(flags));
        }
        let session_present = flags & 1 != 0;
        let byte = read_u8(buf, PacketType::ConnAck)?;
        if version.is_v5() && byte == 0x01 && buf.is_empty() {
            // A 3.1.1-only server refusing our MQTT 5 CONNECT answers in its own version:
            // return code 1, "unacceptable protocol version", and no properties (MQTT 5.0
            // 3.1.2.2 foresees such servers). Report what it means rather than a malformed
            // MQTT 5 CONNACK.
            return Ok(Self {
                session_present,
                reason_code: ReasonCode::UnsupportedProtocolVersion,
                properties: ConnAckProperties::default(),
            });
        }
        let reason_code = ReasonCode::decode(byte, PacketType::ConnAck, version).ok_or(
            DecodeError::InvalidReasonCode {
                packet: PacketType::ConnAck,
                code: byte,
            },
        )?;
        // [MQTT-3.2.2-4] (3.1.1) / [MQTT-3.2.2-6] (5.0): a refusal has session present 0.
        if session_present && !reason_code.is_success() {
            return Err(DecodeError::InvalidConnAckFlags(flags));
        }
        let properties = if version.is_v5() {
            ConnAckProperties::decode(buf, PacketType::ConnAck)?
        } else {
            ConnAckProperties::default()
        };
        Ok(Self {
            session_present,
            reason_code,
            properties,
        })
    }
}

impl Body for ConnAck {
    fn packet_type(&self) -> PacketType {
        PacketType::ConnAck
    }

    fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        v5_only(self.properties.is_empty(), "CONNACK properties", version)?;
        // [MQTT-3.2.2-4] (3.1.1) / [MQTT-3.2.2-6] (5.0): a refusal has session present 0.
        if self.session_present && !self.reason_code.is_success() {
            return Err(EncodeError::SessionPresentOnRefusal);
        }
        if self
            .reason_code
            .encode(PacketType::ConnAck, version)
            .is_none()
        {
            return Err(EncodeError::InvalidReasonCode {
                packet: PacketType::ConnAck,
                code: self.reason_code.as_u8(),
            });
        }
        if version.is_v5() {
            Ok(2 + self.properties.wire_len()?)
        } else {
            Ok(2)
        }
    }

    fn encode_body<B: BufMut>(&self, version: ProtocolVersion, buf: &mut B) {
        buf.put_u8(u8::from(self.session_present));
        buf.put_u8(
            self.reason_code
                .encode(PacketType::ConnAck, version)
                .unwrap_or(0x80),
        );
        if version.is_v5() {
            self.properties.encode(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::BytesMut;

    use super::*;
    use crate::Packet;

    #[test]
    fn a_311_refusal_of_an_mqtt5_connect_reads_as_unsupported_protocol_version() {
        // What nats-server (MQTT 3.1.1 only) answers to an MQTT 5 CONNECT.
        let mut buf = BytesMut::from(&[0x20, 0x02, 0x00, 0x01][..]);
        let packet = crate::decode(&mut buf, ProtocolVersion::V5, 1024)
            .unwrap()
            .unwrap();
        let Packet::ConnAck(connack) = packet else {
            panic!("not a CONNACK: {packet:?}");
        };
        assert_eq!(connack.reason_code, ReasonCode::UnsupportedProtocolVersion);
        assert!(!connack.session_present);
        // Any other MQTT 5 CONNACK with a 3.1.1 code stays malformed.
        let mut buf = BytesMut::from(&[0x20, 0x02, 0x00, 0x02][..]);
        assert!(crate::decode(&mut buf, ProtocolVersion::V5, 1024).is_err());
    }
}
