//! PUBLISH (MQTT 5.0 3.3, MQTT 3.1.1 3.3).

use bytes::{BufMut, Bytes};
use bytestring::ByteString;

use super::{Packet, PacketType, sealed::Body, v5_only};
use crate::codec::{put_binary, read_binary, read_packet_id};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{PropertyBox, PublishProperties};
use crate::qos::{PacketId, ProtocolVersion, QoS};
use crate::topic::{self, TopicError, validate_topic_name};

/// An application message. After decoding, `topic` and `payload` are slices of the receive
/// buffer, not copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Re-delivery of an earlier attempt.
    pub dup: bool,
    /// Delivery guarantee.
    pub qos: QoS,
    /// Whether the server keeps the message for future subscribers.
    pub retain: bool,
    /// Topic name; empty only in MQTT 5 with a topic alias.
    pub topic: ByteString,
    /// Present exactly when `qos` is 1 or 2.
    pub packet_id: Option<PacketId>,
    /// MQTT 5 properties, allocated only when one is set (see [`PropertyBox`]).
    pub properties: PropertyBox<PublishProperties>,
    /// Application payload.
    pub payload: Bytes,
}

impl Publish {
    /// A QoS 0, non-retained message.
    pub fn new(topic: impl Into<ByteString>, payload: impl Into<Bytes>) -> Self {
        Self {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: topic.into(),
            packet_id: None,
            properties: PropertyBox::none(),
            payload: payload.into(),
        }
    }

    /// Sets QoS 1 or 2 with its packet identifier.
    #[must_use]
    pub fn with_qos(mut self, qos: QoS, packet_id: PacketId) -> Self {
        self.qos = qos;
        self.packet_id = (qos != QoS::AtMostOnce).then_some(packet_id);
        self
    }

    /// Sets the retain flag.
    #[must_use]
    pub fn with_retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// Decodes a PUBLISH body (everything after the fixed header) into the finished packet.
    ///
    /// It returns the `Packet` itself, built in one expression at the end: returning a
    /// `Publish` that the caller then wrapped cost a copy of the freshly written fields
    /// through the stack (a store-forwarding stall), about 10% of a 64-byte round trip.
    #[inline] // one caller, `codec::decode`
    pub(crate) fn decode_packet(
        flags: u8,
        mut body: Bytes,
        version: ProtocolVersion,
    ) -> Result<Packet, DecodeError> {
        let buf = &mut body;
        let dup = flags & 0b1000 != 0;
        let qos = QoS::try_from((flags >> 1) & 0b11)?;
        let retain = flags & 0b0001 != 0;
        // [MQTT-3.3.1-2] DUP must be 0 for QoS 0 messages.
        if dup && qos == QoS::AtMostOnce {
            return Err(DecodeError::DupWithQoS0);
        }
        // The topic's bytes are scanned once, for U+0000 ([MQTT-1.5.4-2]) and for wildcards
        // ([MQTT-3.3.2-2]) together, instead of once per rule.
        let raw = read_binary(buf, PacketType::Publish)?;
        let topic_flags = topic::scan(&raw);
        if topic_flags & topic::NUL != 0 {
            return Err(DecodeError::NullCharacter);
        }
        // [MQTT-1.5.4-1] well-formed UTF-8.
        let topic = ByteString::try_from(raw).map_err(|_| DecodeError::InvalidUtf8)?;
        // [MQTT-2.2.1-2] / [MQTT-2.3.1-5]: a packet identifier only for QoS 1 and 2.
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            _ => Some(read_packet_id(buf, PacketType::Publish)?),
        };
        let properties: PropertyBox<PublishProperties> = if version.is_v5() {
            PropertyBox::decode(buf, PacketType::Publish)?
        } else {
            PropertyBox::none()
        };
        if topic.is_empty() {
            // MQTT 5 3.3.2.3.4: an empty name stands for the topic alias's topic.
            if !version.is_v5() {
                return Err(DecodeError::InvalidTopic(TopicError::Empty));
            }
            if properties.topic_alias.is_none() {
                return Err(DecodeError::MissingTopic);
            }
        } else if topic_flags & topic::WILDCARD != 0 {
            return Err(DecodeError::InvalidTopic(TopicError::WildcardInTopicName));
        }
        Ok(Packet::Publish(Self {
            dup,
            qos,
            retain,
            topic,
            packet_id,
            properties,
            // The rest of the body: no trailing-bytes check applies.
            payload: body,
        }))
    }
}

/// [MQTT-3.3.2-1] a valid topic name without wildcards ([MQTT-3.3.2-2]); in MQTT 5 an empty
/// name stands for the topic alias's topic (3.3.2.3.4), so it needs an alias.
#[inline]
fn check_topic(
    topic: &str,
    properties: &PublishProperties,
    version: ProtocolVersion,
) -> Result<(), TopicError> {
    if topic.is_empty() && version.is_v5() && properties.topic_alias.is_some() {
        return Ok(());
    }
    validate_topic_name(topic)
}

impl Body for Publish {
    fn packet_type(&self) -> PacketType {
        PacketType::Publish
    }

    fn flags(&self) -> u8 {
        (u8::from(self.dup) << 3) | ((self.qos as u8) << 1) | u8::from(self.retain)
    }

    #[inline]
    fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        v5_only(self.properties.is_empty(), "PUBLISH properties", version)?;
        let id_len = match (self.qos, self.packet_id) {
            (QoS::AtMostOnce, None) => 0,
            (QoS::AtMostOnce, Some(_)) => return Err(EncodeError::PacketIdWithQoS0),
            (_, Some(_)) => 2,
            (_, None) => return Err(EncodeError::MissingPacketId),
        };
        if self.dup && self.qos == QoS::AtMostOnce {
            return Err(EncodeError::DupWithQoS0);
        }
        check_topic(&self.topic, &self.properties, version)?;
        let props = match (version.is_v5(), self.properties.is_empty()) {
            (false, _) => 0,
            // The usual case: only the one-byte length 0.
            (true, true) => 1,
            (true, false) => self.properties.wire_len()?,
        };
        // `check_topic` passed, so the topic is empty or a valid topic name: it has no U+0000
        // and fits the length prefix, which is all `string_len` would check again.
        Ok(2 + self.topic.len() + id_len + props + self.payload.len())
    }

    fn encode_body<B: BufMut>(&self, version: ProtocolVersion, buf: &mut B) {
        put_binary(buf, self.topic.as_bytes());
        if let Some(id) = self.packet_id {
            buf.put_u16(id.get());
        }
        if version.is_v5() {
            if self.properties.is_empty() {
                buf.put_u8(0);
            } else {
                self.properties.encode(buf);
            }
        }
        buf.put_slice(&self.payload);
    }
}
