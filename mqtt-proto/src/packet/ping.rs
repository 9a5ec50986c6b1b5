//! PINGREQ and PINGRESP (MQTT 5.0 3.12, 3.13): a fixed header and nothing else.

use bytes::BufMut;

use super::{PacketType, sealed::Body};
use crate::error::EncodeError;
use crate::qos::ProtocolVersion;

/// PINGREQ: keep-alive probe from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PingReq;

/// PINGRESP: the server's answer to PINGREQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PingResp;

impl Body for PingReq {
    fn packet_type(&self) -> PacketType {
        PacketType::PingReq
    }
    fn body_len(&self, _: ProtocolVersion) -> Result<usize, EncodeError> {
        Ok(0)
    }
    fn encode_body<B: BufMut>(&self, _: ProtocolVersion, _: &mut B) {}
}

impl Body for PingResp {
    fn packet_type(&self) -> PacketType {
        PacketType::PingResp
    }
    fn body_len(&self, _: ProtocolVersion) -> Result<usize, EncodeError> {
        Ok(0)
    }
    fn encode_body<B: BufMut>(&self, _: ProtocolVersion, _: &mut B) {}
}
