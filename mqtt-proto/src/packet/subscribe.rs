//! SUBSCRIBE (MQTT 5.0 3.8, MQTT 3.1.1 3.8).

use alloc::vec::Vec;

use bytes::{Buf, BufMut, Bytes};
use bytestring::ByteString;

use super::{PacketType, sealed::Body, v5_only};
use crate::codec::{put_binary, read_packet_id, read_string, read_u8, string_len};
use crate::error::{DecodeError, EncodeError};
use crate::properties::SubscribeProperties;
use crate::qos::{PacketId, ProtocolVersion, QoS};
use crate::topic::{IntoTopic, parse_shared, validate_topic_filter};

/// When the server sends retained messages for a new subscription (MQTT 5.0 3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum RetainHandling {
    /// Send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// Send them only if the subscription did not exist before.
    SendAtSubscribeIfNew = 1,
    /// Do not send retained messages.
    DoNotSend = 2,
}

/// The options byte of one subscription. Only `qos` exists in MQTT 3.1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS the server may use for matching messages.
    pub qos: QoS,
    /// Do not receive one's own publications (MQTT 5).
    pub no_local: bool,
    /// Keep the RETAIN flag of forwarded messages as published (MQTT 5).
    pub retain_as_published: bool,
    /// Retained message handling (MQTT 5).
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    fn to_byte(self) -> u8 {
        (self.qos as u8)
            | (u8::from(self.no_local) << 2)
            | (u8::from(self.retain_as_published) << 3)
            | ((self.retain_handling as u8) << 4)
    }

    fn from_byte(byte: u8, version: ProtocolVersion) -> Result<Self, DecodeError> {
        // [MQTT-3.8.3-4] (3.1.1): bits 7-2 are reserved and 0.
        // [MQTT-3.8.3-5] (5.0): bits 7-6 are reserved and 0; retain handling 3 is a protocol
        // error (3.8.3.1).
        let reserved = if version.is_v5() {
            0b1100_0000
        } else {
            0b1111_1100
        };
        if byte & reserved != 0 {
            return Err(DecodeError::InvalidSubscriptionOptions(byte));
        }
        let qos = QoS::try_from(byte & 0b11)?;
        let retain_handling = match (byte >> 4) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendAtSubscribeIfNew,
            2 => RetainHandling::DoNotSend,
            // MQTT 5.0 3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3."
            _ => return Err(DecodeError::InvalidRetainHandling),
        };
        Ok(Self {
            qos,
            no_local: byte & 0b0100 != 0,
            retain_as_published: byte & 0b1000 != 0,
            retain_handling,
        })
    }
}

impl From<QoS> for SubscriptionOptions {
    fn from(qos: QoS) -> Self {
        Self {
            qos,
            ..Self::default()
        }
    }
}

/// One topic filter with its options.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscribeFilter {
    /// The topic filter, possibly with wildcards or a `$share/` prefix.
    pub filter: ByteString,
    /// Its options.
    pub options: SubscriptionOptions,
}

impl SubscribeFilter {
    /// A filter with default options at `qos`.
    pub fn new(filter: impl Into<ByteString>, qos: QoS) -> Self {
        Self {
            filter: filter.into(),
            options: qos.into(),
        }
    }
}

impl<T: IntoTopic> From<(T, QoS)> for SubscribeFilter {
    /// `("a/#", QoS::AtLeastOnce)`: the shape amqtt's `subscribe` takes (the filter as any
    /// [`IntoTopic`] string: `&str`, `String`, `&String`, ...).
    fn from((filter, qos): (T, QoS)) -> Self {
        Self::new(filter.into_topic(), qos)
    }
}

/// A request to add subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Identifier the SUBACK will carry.
    pub packet_id: PacketId,
    /// At least one filter ([MQTT-3.8.3-3]).
    pub filters: Vec<SubscribeFilter>,
    /// MQTT 5 properties.
    pub properties: SubscribeProperties,
}

impl Subscribe {
    /// A SUBSCRIBE for `filters`.
    pub fn new(packet_id: PacketId, filters: Vec<SubscribeFilter>) -> Self {
        Self {
            packet_id,
            filters,
            properties: SubscribeProperties::default(),
        }
    }

    pub(crate) fn decode(buf: &mut Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        const P: PacketType = PacketType::Subscribe;
        let packet_id = read_packet_id(buf, P)?;
        let properties = if version.is_v5() {
            SubscribeProperties::decode(buf, P)?
        } else {
            SubscribeProperties::default()
        };
        let mut filters = Vec::new();
        while buf.has_remaining() {
            let filter = read_string(buf, P)?;
            validate_topic_filter(&filter)?;
            let options = SubscriptionOptions::from_byte(read_u8(buf, P)?, version)?;
            if options.no_local && parse_shared(&filter)?.is_some() {
                return Err(DecodeError::NoLocalOnSharedSubscription);
            }
            filters.push(SubscribeFilter { filter, options });
        }
        // [MQTT-3.8.3-3] at least one topic filter.
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

impl Body for Subscribe {
    fn packet_type(&self) -> PacketType {
        PacketType::Subscribe
    }

    fn flags(&self) -> u8 {
        // [MQTT-3.8.1-1]
        0b0010
    }

    fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        v5_only(self.properties.is_empty(), "SUBSCRIBE properties", version)?;
        if self.filters.is_empty() {
            return Err(EncodeError::EmptyPayload(PacketType::Subscribe));
        }
        let mut len = 2;
        if version.is_v5() {
            len += self.properties.wire_len()?;
        }
        for entry in &self.filters {
            validate_topic_filter(&entry.filter)?;
            let v5_options = entry.options.to_byte() & !0b11 != 0;
            v5_only(!v5_options, "subscription options other than QoS", version)?;
            // [MQTT-3.8.3-4] (5.0): the decoder refuses this, so the encoder must too.
            if entry.options.no_local && parse_shared(&entry.filter)?.is_some() {
                return Err(EncodeError::NoLocalOnSharedSubscription);
            }
            len += string_len(&entry.filter)? + 1;
        }
        Ok(len)
    }

    fn encode_body<B: BufMut>(&self, version: ProtocolVersion, buf: &mut B) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.encode(buf);
        }
        for entry in &self.filters {
            put_binary(buf, entry.filter.as_bytes());
            buf.put_u8(entry.options.to_byte());
        }
    }
}
