//! UNSUBSCRIBE (MQTT 5.0 3.10, MQTT 3.1.1 3.10).

use alloc::vec::Vec;

use bytes::{Buf, BufMut, Bytes};
use bytestring::ByteString;

use super::{PacketType, sealed::Body, v5_only};
use crate::codec::{put_binary, read_packet_id, read_string, string_len};
use crate::error::{DecodeError, EncodeError};
use crate::properties::UnsubscribeProperties;
use crate::qos::{PacketId, ProtocolVersion};
use crate::topic::validate_topic_filter;

/// A request to remove subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Identifier the UNSUBACK will carry.
    pub packet_id: PacketId,
    /// At least one filter ([MQTT-3.10.3-2]), exactly as subscribed.
    pub filters: Vec<ByteString>,
    /// MQTT 5 properties.
    pub properties: UnsubscribeProperties,
}

impl Unsubscribe {
    /// An UNSUBSCRIBE for `filters`.
    pub fn new(packet_id: PacketId, filters: Vec<ByteString>) -> Self {
        Self {
            packet_id,
            filters,
            properties: UnsubscribeProperties::default(),
        }
    }

    pub(crate) fn decode(buf: &mut Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        const P: PacketType = PacketType::Unsubscribe;
        let packet_id = read_packet_id(buf, P)?;
        let properties = if version.is_v5() {
            UnsubscribeProperties::decode(buf, P)?
        } else {
            UnsubscribeProperties::default()
        };
        let mut filters = Vec::new();
        while buf.has_remaining() {
            let filter = read_string(buf, P)?;
            validate_topic_filter(&filter)?;
            filters.push(filter);
        }
        // [MQTT-3.10.3-2] at least one topic filter.
        if filters.is_empty() {
            return Err(DecodeError::EmptyPayload(P));
        }
        Ok(Self {
            packet_id,
            filters,
            properties,
        })
    }
}

impl Body for Unsubscribe {
    fn packet_type(&self) -> PacketType {
        PacketType::Unsubscribe
    }

    fn flags(&self) -> u8 {
        // [MQTT-3.10.1-1]
        0b0010
    }

    fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        v5_only(
            self.properties.is_empty(),
            "UNSUBSCRIBE properties",
            version,
        )?;
        if self.filters.is_empty() {
            return Err(EncodeError::EmptyPayload(PacketType::Unsubscribe));
        }
        let mut len = 2;
        if version.is_v5() {
            len += self.properties.wire_len()?;
        }
        for filter in &self.filters {
            validate_topic_filter(filter)?;
            len += string_len(filter)?;
        }
        Ok(len)
    }

    fn encode_body<B: BufMut>(&self, version: ProtocolVersion, buf: &mut B) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.encode(buf);
        }
        for filter in &self.filters {
            put_binary(buf, filter.as_bytes());
        }
    }
}
