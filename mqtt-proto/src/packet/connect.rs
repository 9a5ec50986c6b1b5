//! CONNECT (MQTT 5.0 3.1, MQTT 3.1.1 3.1).

use bytes::{BufMut, Bytes};
use bytestring::ByteString;

use super::{PacketType, sealed::Body, v5_only};
use crate::codec::{
    binary_len, put_binary, read_binary, read_string, read_u8, read_u16, string_len,
};
use crate::error::{DecodeError, EncodeError};
use crate::properties::{ConnectProperties, WillProperties};
use crate::qos::{ProtocolVersion, QoS};
use crate::topic::validate_topic_name;

const PROTOCOL_NAME: &str = "MQTT";

const USERNAME: u8 = 0b1000_0000;
const PASSWORD: u8 = 0b0100_0000;
const WILL_RETAIN: u8 = 0b0010_0000;
const WILL_QOS_SHIFT: u8 = 3;
const WILL_FLAG: u8 = 0b0000_0100;
const CLEAN_START: u8 = 0b0000_0010;
const RESERVED: u8 = 0b0000_0001;

/// The first packet a client sends. The protocol version is not a field: the codec that
/// encodes or decodes it decides, and decoding rejects a level other than the codec's.
///
/// Its `Debug` output shows the password as `***`: packets are logged at debug level, and a
/// password must never reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Connect {
    /// Clean Session (3.1.1) / Clean Start (5.0): discard any session the server kept.
    pub clean_start: bool,
    /// Keep alive in seconds; 0 turns the mechanism off.
    pub keep_alive: u16,
    /// Client identifier; may be empty to ask the server to assign one.
    pub client_id: ByteString,
    /// Message the server publishes if the connection ends without DISCONNECT.
    pub will: Option<Will>,
    /// User name.
    pub username: Option<ByteString>,
    /// Password (binary data).
    pub password: Option<Bytes>,
    /// MQTT 5 properties.
    pub properties: ConnectProperties,
}

/// The will message of a CONNECT (MQTT 5.0 3.1.2.5 to 3.1.2.7, 3.1.3.2 to 3.1.3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Topic to publish on.
    pub topic: ByteString,
    /// Payload to publish.
    pub payload: Bytes,
    /// QoS to publish with.
    pub qos: QoS,
    /// Whether the will is retained.
    pub retain: bool,
    /// MQTT 5 will properties.
    pub properties: WillProperties,
}

impl Will {
    /// A QoS 0, non-retained will.
    pub fn new(topic: impl Into<ByteString>, payload: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            payload: payload.into(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: WillProperties::default(),
        }
    }
}

impl core::fmt::Debug for Connect {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let Self {
            clean_start,
            keep_alive,
            client_id,
            will,
            username,
            password,
            properties,
        } = self;
        f.debug_struct("Connect")
            .field("clean_start", clean_start)
            .field("keep_alive", keep_alive)
            .field("client_id", client_id)
            .field("will", will)
            .field("username", username)
            .field("password", &password.as_ref().map(|_| crate::Redacted))
            .field("properties", properties)
            .finish()
    }
}

impl Connect {
    /// A clean-start CONNECT for `client_id` with a 60 second keep alive.
    pub fn new(client_id: impl Into<ByteString>) -> Self {
        Self {
            clean_start: true,
            keep_alive: 60,
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        }
    }

    pub(crate) fn decode(buf: &mut Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        const P: PacketType = PacketType::Connect;
        // [MQTT-3.1.2-1] the protocol name is "MQTT".
        if read_string(buf, P)? != PROTOCOL_NAME {
            return Err(DecodeError::InvalidProtocolName);
        }
        // [MQTT-3.1.2-2] a level this codec was not set up for is refused.
        let level = read_u8(buf, P)?;
        if level != version.level() {
            return Err(DecodeError::UnsupportedProtocolLevel(level));
        }
        let flags = read_u8(buf, P)?;
        // [MQTT-3.1.2-3] the reserved flag is 0.
        if flags & RESERVED != 0 {
            return Err(DecodeError::InvalidConnectFlags(flags));
        }
        let will_flag = flags & WILL_FLAG != 0;
        let will_qos_bits = (flags >> WILL_QOS_SHIFT) & 0b11;
        // [MQTT-3.1.2-14] will QoS 3 is invalid.
        let will_qos = QoS::try_from(will_qos_bits)?;
        let will_retain = flags & WILL_RETAIN != 0;
        // [MQTT-3.1.2-11] / [MQTT-3.1.2-13] / [MQTT-3.1.2-15]: without a will, will QoS and
        // will retain are 0.
        if !will_flag && (will_qos_bits != 0 || will_retain) {
            return Err(DecodeError::InvalidConnectFlags(flags));
        }
        let has_username = flags & USERNAME != 0;
        let has_password = flags & PASSWORD != 0;
        // [MQTT-3.1.2-22] (3.1.1 only): a password needs a user name. MQTT 5 lifted this.
        if !version.is_v5() && has_password && !has_username {
            return Err(DecodeError::InvalidConnectFlags(flags));
        }
        let keep_alive = read_u16(buf, P)?;
        let properties = if version.is_v5() {
            ConnectProperties::decode(buf, P)?
        } else {
            ConnectProperties::default()
        };
        // [MQTT-3.1.3-1] payload order: client id, will properties, will topic, will payload,
        // user name, password.
        let client_id = read_string(buf, P)?;
        let will = if will_flag {
            let properties = if version.is_v5() {
                WillProperties::decode(buf, P)?
            } else {
                WillProperties::default()
            };
            let topic = read_string(buf, P)?;
            validate_topic_name(&topic)?;
            let payload = read_binary(buf, P)?;
            Some(Will {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = has_username.then(|| read_string(buf, P)).transpose()?;
        let password = has_password.then(|| read_binary(buf, P)).transpose()?;
        Ok(Self {
            clean_start: flags & CLEAN_START != 0,
            keep_alive,
            client_id,
            will,
            username,
            password,
            properties,
        })
    }

    fn connect_flags(&self) -> u8 {
        let mut flags = 0;
        if self.username.is_some() {
            flags |= USERNAME;
        }
        if self.password.is_some() {
            flags |= PASSWORD;
        }
        if let Some(will) = &self.will {
            flags |= WILL_FLAG | ((will.qos as u8) << WILL_QOS_SHIFT);
            if will.retain {
                flags |= WILL_RETAIN;
            }
        }
        if self.clean_start {
            flags |= CLEAN_START;
        }
        flags
    }
}

impl Body for Connect {
    fn packet_type(&self) -> PacketType {
        PacketType::Connect
    }

    fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        v5_only(self.properties.is_empty(), "CONNECT properties", version)?;
        if !version.is_v5() && self.password.is_some() && self.username.is_none() {
            return Err(EncodeError::PasswordWithoutUsername);
        }
        // Protocol name (6), level (1), flags (1), keep alive (2).
        let mut len = 10 + string_len(&self.client_id)?;
        if version.is_v5() {
            len += self.properties.wire_len()?;
        }
        if let Some(will) = &self.will {
            v5_only(will.properties.is_empty(), "will properties", version)?;
            validate_topic_name(&will.topic)?;
            if version.is_v5() {
                len += will.properties.wire_len()?;
            }
            len += string_len(&will.topic)? + binary_len(&will.payload)?;
        }
        if let Some(username) = &self.username {
            len += string_len(username)?;
        }
        if let Some(password) = &self.password {
            len += binary_len(password)?;
        }
        Ok(len)
    }

    fn encode_body<B: BufMut>(&self, version: ProtocolVersion, buf: &mut B) {
        put_binary(buf, PROTOCOL_NAME.as_bytes());
        buf.put_u8(version.level());
        buf.put_u8(self.connect_flags());
        buf.put_u16(self.keep_alive);
        if version.is_v5() {
            self.properties.encode(buf);
        }
        put_binary(buf, self.client_id.as_bytes());
        if let Some(will) = &self.will {
            if version.is_v5() {
                will.properties.encode(buf);
            }
            put_binary(buf, will.topic.as_bytes());
            put_binary(buf, &will.payload);
        }
        if let Some(username) = &self.username {
            put_binary(buf, username.as_bytes());
        }
        if let Some(password) = &self.password {
            put_binary(buf, password);
        }
    }
}
