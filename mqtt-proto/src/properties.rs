//! MQTT 5 properties (MQTT 5.0 section 2.2.2), typed per packet.
//!
//! Each packet has its own property struct holding exactly the properties the specification
//! allows in it, so a misplaced property is a decode error rather than a silently ignored
//! field. All fields are public plain data; `Default` is "no properties". Under MQTT 3.1.1
//! property structs must be empty: encoding refuses to drop them silently.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::num::NonZeroU32;

use bytes::{Buf, BufMut, Bytes};
use bytestring::ByteString;

use crate::codec::{
    MAX_VAR_INT, binary_len, put_binary, put_var_int, read_binary, read_string, read_u8, read_u16,
    read_u32, read_var_int, string_len, var_int_len,
};
use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::qos::QoS;

/// Identifier of an MQTT 5 property (MQTT 5.0 table 2-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
#[allow(missing_docs)] // the names are the specification's
pub enum PropertyId {
    PayloadFormatIndicator = 0x01,
    MessageExpiryInterval = 0x02,
    ContentType = 0x03,
    ResponseTopic = 0x08,
    CorrelationData = 0x09,
    SubscriptionIdentifier = 0x0B,
    SessionExpiryInterval = 0x11,
    AssignedClientIdentifier = 0x12,
    ServerKeepAlive = 0x13,
    AuthenticationMethod = 0x15,
    AuthenticationData = 0x16,
    RequestProblemInformation = 0x17,
    WillDelayInterval = 0x18,
    RequestResponseInformation = 0x19,
    ResponseInformation = 0x1A,
    ServerReference = 0x1C,
    ReasonString = 0x1F,
    ReceiveMaximum = 0x21,
    TopicAliasMaximum = 0x22,
    TopicAlias = 0x23,
    MaximumQoS = 0x24,
    RetainAvailable = 0x25,
    UserProperty = 0x26,
    MaximumPacketSize = 0x27,
    WildcardSubscriptionAvailable = 0x28,
    SubscriptionIdentifierAvailable = 0x29,
    SharedSubscriptionAvailable = 0x2A,
}

impl PropertyId {
    /// The property for a wire identifier, if it is one the specification defines.
    pub const fn from_u32(id: u32) -> Option<Self> {
        Some(match id {
            0x01 => Self::PayloadFormatIndicator,
            0x02 => Self::MessageExpiryInterval,
            0x03 => Self::ContentType,
            0x08 => Self::ResponseTopic,
            0x09 => Self::CorrelationData,
            0x0B => Self::SubscriptionIdentifier,
            0x11 => Self::SessionExpiryInterval,
            0x12 => Self::AssignedClientIdentifier,
            0x13 => Self::ServerKeepAlive,
            0x15 => Self::AuthenticationMethod,
            0x16 => Self::AuthenticationData,
            0x17 => Self::RequestProblemInformation,
            0x18 => Self::WillDelayInterval,
            0x19 => Self::RequestResponseInformation,
            0x1A => Self::ResponseInformation,
            0x1C => Self::ServerReference,
            0x1F => Self::ReasonString,
            0x21 => Self::ReceiveMaximum,
            0x22 => Self::TopicAliasMaximum,
            0x23 => Self::TopicAlias,
            0x24 => Self::MaximumQoS,
            0x25 => Self::RetainAvailable,
            0x26 => Self::UserProperty,
            0x27 => Self::MaximumPacketSize,
            0x28 => Self::WildcardSubscriptionAvailable,
            0x29 => Self::SubscriptionIdentifierAvailable,
            0x2A => Self::SharedSubscriptionAvailable,
            _ => return None,
        })
    }
}

/// Payload Format Indicator values (MQTT 5.0 3.3.2.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum PayloadFormat {
    /// Unspecified bytes.
    #[default]
    Unspecified = 0,
    /// UTF-8 encoded character data.
    Utf8 = 1,
}

/// A user property: a name/value pair of UTF-8 strings. Order and duplicates are significant
/// ([MQTT-3.3.2-18]), so they are kept in a `Vec`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserProperty {
    /// The name.
    pub name: ByteString,
    /// The value.
    pub value: ByteString,
}

impl UserProperty {
    /// A user property from anything string-like.
    pub fn new(name: impl Into<ByteString>, value: impl Into<ByteString>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A subscription identifier: 1 to 268,435,455 ([MQTT-3.8.2.1.2]: 0 is a protocol error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(NonZeroU32);

impl SubscriptionId {
    /// The identifier for `value`, or `None` when it is 0 or above 268,435,455.
    pub const fn new(value: u32) -> Option<Self> {
        if value > MAX_VAR_INT {
            return None;
        }
        match NonZeroU32::new(value) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// The identifier's value.
    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

/// How one property value is read and written. Implemented per wire data type
/// (MQTT 5.0 1.5: byte, two/four byte integer, variable byte integer, string, binary, pair).
pub(crate) trait Value: Sized {
    fn decode(buf: &mut Bytes, id: PropertyId, packet: PacketType) -> Result<Self, DecodeError>;
    /// Encoded length of the value alone, checking what the spec forbids.
    fn len(&self, id: PropertyId) -> Result<usize, EncodeError>;
    fn encode<B: BufMut>(&self, buf: &mut B);
}

/// Byte properties that are booleans must hold 0 or 1 (e.g. MQTT 5.0 3.1.2.11.7, request problem
/// information, retain available); anything else is a protocol error.
impl Value for bool {
    fn decode(buf: &mut Bytes, id: PropertyId, packet: PacketType) -> Result<Self, DecodeError> {
        match read_u8(buf, packet)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::InvalidPropertyValue(id)),
        }
    }
    fn len(&self, _: PropertyId) -> Result<usize, EncodeError> {
        Ok(1)
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(u8::from(*self));
    }
}

impl Value for PayloadFormat {
    fn decode(buf: &mut Bytes, id: PropertyId, packet: PacketType) -> Result<Self, DecodeError> {
        match read_u8(buf, packet)? {
            0 => Ok(Self::Unspecified),
            1 => Ok(Self::Utf8),
            _ => Err(DecodeError::InvalidPropertyValue(id)),
        }
    }
    fn len(&self, _: PropertyId) -> Result<usize, EncodeError> {
        Ok(1)
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(*self as u8);
    }
}

/// Maximum QoS is the only QoS-valued property; it may only be 0 or 1 (MQTT
/// 5.0 3.2.2.3.4: "It is a Protocol Error to include Maximum QoS ... other than 0 or 1").
impl Value for QoS {
    fn decode(buf: &mut Bytes, id: PropertyId, packet: PacketType) -> Result<Self, DecodeError> {
        match read_u8(buf, packet)? {
            0 => Ok(Self::AtMostOnce),
            1 => Ok(Self::AtLeastOnce),
            _ => Err(DecodeError::InvalidPropertyValue(id)),
        }
    }
    fn len(&self, id: PropertyId) -> Result<usize, EncodeError> {
        if *self == Self::ExactlyOnce {
            return Err(EncodeError::InvalidPropertyValue(id));
        }
        Ok(1)
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(*self as u8);
    }
}

/// Two byte integers. Receive Maximum and Topic Alias may not be 0 (MQTT 5.0 3.1.2.11.3,
/// 3.3.2.3.4 [MQTT-3.3.2-8]); Topic Alias Maximum and Server Keep Alive may.
impl Value for u16 {
    fn decode(buf: &mut Bytes, id: PropertyId, packet: PacketType) -> Result<Self, DecodeError> {
        let value = read_u16(buf, packet)?;
        if value == 0 && matches!(id, PropertyId::ReceiveMaximum | PropertyId::TopicAlias) {
            return Err(DecodeError::InvalidPropertyValue(id));
        }
        Ok(value)
    }
    fn len(&self, id: PropertyId) -> Result<usize, EncodeError> {
        if *self == 0 && matches!(id, PropertyId::ReceiveMaximum | PropertyId::TopicAlias) {
            return Err(EncodeError::InvalidPropertyValue(id));
        }
        Ok(2)
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(*self);
    }
}

/// Four byte integers. Maximum Packet Size may not be 0 (MQTT 5.0 3.1.2.11.4).
impl Value for u32 {
    fn decode(buf: &mut Bytes, id: PropertyId, packet: PacketType) -> Result<Self, DecodeError> {
        let value = read_u32(buf, packet)?;
        if value == 0 && id == PropertyId::MaximumPacketSize {
            return Err(DecodeError::InvalidPropertyValue(id));
        }
        Ok(value)
    }
    fn len(&self, id: PropertyId) -> Result<usize, EncodeError> {
        if *self == 0 && id == PropertyId::MaximumPacketSize {
            return Err(EncodeError::InvalidPropertyValue(id));
        }
        Ok(4)
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32(*self);
    }
}

impl Value for SubscriptionId {
    fn decode(buf: &mut Bytes, id: PropertyId, packet: PacketType) -> Result<Self, DecodeError> {
        Self::new(read_var_int(buf, packet)?).ok_or(DecodeError::InvalidPropertyValue(id))
    }
    fn len(&self, _: PropertyId) -> Result<usize, EncodeError> {
        Ok(var_int_len(self.get()))
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        put_var_int(buf, self.get());
    }
}

impl Value for ByteString {
    fn decode(buf: &mut Bytes, _: PropertyId, packet: PacketType) -> Result<Self, DecodeError> {
        read_string(buf, packet)
    }
    fn len(&self, _: PropertyId) -> Result<usize, EncodeError> {
        string_len(self)
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        put_binary(buf, self.as_bytes());
    }
}

impl Value for Bytes {
    fn decode(buf: &mut Bytes, _: PropertyId, packet: PacketType) -> Result<Self, DecodeError> {
        read_binary(buf, packet)
    }
    fn len(&self, _: PropertyId) -> Result<usize, EncodeError> {
        binary_len(self)
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        put_binary(buf, self);
    }
}

impl Value for UserProperty {
    fn decode(buf: &mut Bytes, _: PropertyId, packet: PacketType) -> Result<Self, DecodeError> {
        let name = read_string(buf, packet)?;
        let value = read_string(buf, packet)?;
        Ok(Self { name, value })
    }
    fn len(&self, _: PropertyId) -> Result<usize, EncodeError> {
        Ok(string_len(&self.name)? + string_len(&self.value)?)
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        put_binary(buf, self.name.as_bytes());
        put_binary(buf, self.value.as_bytes());
    }
}

/// A property slot in a property struct: `Option<T>` for properties allowed once,
/// `Vec<T>` for those that may repeat (user property; subscription identifier in PUBLISH).
pub(crate) trait Slot {
    /// The empty value, usable in a `static` (see [`PropertySet::empty`]).
    const EMPTY: Self;
    fn decode_into(
        &mut self,
        buf: &mut Bytes,
        id: PropertyId,
        packet: PacketType,
    ) -> Result<(), DecodeError>;
    fn len(&self, id: PropertyId) -> Result<usize, EncodeError>;
    fn encode<B: BufMut>(&self, id: PropertyId, buf: &mut B);
    fn is_empty(&self) -> bool;
}

impl<T: Value> Slot for Option<T> {
    const EMPTY: Self = None;
    fn decode_into(
        &mut self,
        buf: &mut Bytes,
        id: PropertyId,
        packet: PacketType,
    ) -> Result<(), DecodeError> {
        // MQTT 5.0 2.2.2.2: including a single-valued property more than once is a Protocol
        // Error (stated per property, e.g. MQTT 5.0 3.1.2.11.2 for the session expiry interval).
        if self.is_some() {
            return Err(DecodeError::DuplicateProperty(id));
        }
        *self = Some(T::decode(buf, id, packet)?);
        Ok(())
    }
    fn len(&self, id: PropertyId) -> Result<usize, EncodeError> {
        match self {
            // Every property identifier fits one byte of variable byte integer.
            Some(value) => Ok(1 + value.len(id)?),
            None => Ok(0),
        }
    }
    fn encode<B: BufMut>(&self, id: PropertyId, buf: &mut B) {
        if let Some(value) = self {
            buf.put_u8(id as u8);
            value.encode(buf);
        }
    }
    fn is_empty(&self) -> bool {
        self.is_none()
    }
}

impl<T: Value> Slot for Vec<T> {
    const EMPTY: Self = Self::new();
    fn decode_into(
        &mut self,
        buf: &mut Bytes,
        id: PropertyId,
        packet: PacketType,
    ) -> Result<(), DecodeError> {
        self.push(T::decode(buf, id, packet)?);
        Ok(())
    }
    fn len(&self, id: PropertyId) -> Result<usize, EncodeError> {
        self.iter()
            .try_fold(0, |acc, value| Ok(acc + 1 + value.len(id)?))
    }
    fn encode<B: BufMut>(&self, id: PropertyId, buf: &mut B) {
        for value in self {
            buf.put_u8(id as u8);
            value.encode(buf);
        }
    }
    fn is_empty(&self) -> bool {
        self.is_empty()
    }
}

/// MQTT 5.0 3.1.2.11.10, 3.2.2.3.18, 3.15.2.2.3: "It is a Protocol Error to include
/// Authentication Data if there is no Authentication Method."
fn auth_data_needs_method(
    method: Option<&ByteString>,
    data: Option<&Bytes>,
) -> Result<(), PropertyId> {
    if data.is_some() && method.is_none() {
        return Err(PropertyId::AuthenticationData);
    }
    Ok(())
}

/// [MQTT-3.3.2-14] (and 3.1.3.2.5 for the will): a Response Topic is a topic name, so it has
/// no wildcards (and is not empty).
fn response_topic_is_a_name(topic: Option<&ByteString>) -> Result<(), PropertyId> {
    match topic {
        Some(topic) if crate::topic::validate_topic_name(topic).is_err() => {
            Err(PropertyId::ResponseTopic)
        }
        _ => Ok(()),
    }
}

fn connect_rules(p: &ConnectProperties) -> Result<(), PropertyId> {
    auth_data_needs_method(
        p.authentication_method.as_ref(),
        p.authentication_data.as_ref(),
    )
}

fn connack_rules(p: &ConnAckProperties) -> Result<(), PropertyId> {
    auth_data_needs_method(
        p.authentication_method.as_ref(),
        p.authentication_data.as_ref(),
    )
}

fn auth_rules(p: &AuthProperties) -> Result<(), PropertyId> {
    auth_data_needs_method(
        p.authentication_method.as_ref(),
        p.authentication_data.as_ref(),
    )
}

fn will_rules(p: &WillProperties) -> Result<(), PropertyId> {
    response_topic_is_a_name(p.response_topic.as_ref())
}

fn publish_rules(p: &PublishProperties) -> Result<(), PropertyId> {
    response_topic_is_a_name(p.response_topic.as_ref())
}

mod sealed {
    use super::{Bytes, DecodeError, PacketType};

    /// What [`super::PropertyBox`] needs from a set beyond the public trait; sealed, because
    /// only this crate's property sets have a wire format.
    pub trait Set: Sized {
        fn decode(buf: &mut Bytes, packet: PacketType) -> Result<Self, DecodeError>;
    }
}

/// A typed set of MQTT 5 properties (one per packet type; implemented by this crate only).
pub trait PropertySet: sealed::Set + Default + 'static {
    /// The shared empty set, what a [`PropertyBox`] holding nothing reads as.
    fn empty() -> &'static Self;
    /// Whether no property is set.
    fn is_empty(&self) -> bool;
}

/// A property set kept out of line, allocated only once a property is set.
///
/// Most messages carry no properties, and a PUBLISH is moved several times between the socket
/// and the application; an inline [`PublishProperties`] (160 bytes) tripled the size of
/// [`Publish`](crate::Publish). This is one pointer instead. Reads go through `Deref` (an empty
/// box reads as the shared empty set, without allocating), writes through `DerefMut`, which
/// allocates the set on first use:
///
/// ```
/// use sansmqtt_proto::Publish;
///
/// let mut publish = Publish::new("a/b", "hi");
/// assert_eq!(publish.properties.topic_alias, None); // no allocation
/// publish.properties.topic_alias = Some(3); // allocates the set
/// assert_eq!(publish.properties.topic_alias, Some(3));
/// ```
#[derive(Clone)]
pub struct PropertyBox<T: PropertySet>(Option<Box<T>>);

impl<T: PropertySet> PropertyBox<T> {
    /// No properties; allocates nothing.
    pub const fn none() -> Self {
        Self(None)
    }

    /// Holds `set`; an empty set is not allocated.
    pub fn new(set: T) -> Self {
        if set.is_empty() {
            Self(None)
        } else {
            Self(Some(Box::new(set)))
        }
    }

    /// The set, by value.
    pub fn into_inner(self) -> T {
        self.0.map_or_else(T::default, |set| *set)
    }

    /// Drops every property (and the allocation).
    pub fn clear(&mut self) {
        self.0 = None;
    }

    /// Whether no property is set; answered without reading the set when nothing was
    /// allocated (the usual case on the PUBLISH path).
    pub fn is_empty(&self) -> bool {
        self.0.as_deref().is_none_or(T::is_empty)
    }

    /// Decodes a property length and the properties; the usual zero length allocates nothing.
    pub(crate) fn decode(buf: &mut Bytes, packet: PacketType) -> Result<Self, DecodeError> {
        if buf.first() == Some(&0) {
            buf.advance(1);
            return Ok(Self(None));
        }
        <T as sealed::Set>::decode(buf, packet).map(Self::new)
    }
}

impl<T: PropertySet> Default for PropertyBox<T> {
    fn default() -> Self {
        Self::none()
    }
}

impl<T: PropertySet> core::ops::Deref for PropertyBox<T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self.0.as_deref() {
            Some(set) => set,
            None => T::empty(),
        }
    }
}

impl<T: PropertySet> core::ops::DerefMut for PropertyBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.get_or_insert_with(Box::default)
    }
}

impl<T: PropertySet> From<T> for PropertyBox<T> {
    fn from(set: T) -> Self {
        Self::new(set)
    }
}

impl<T: PropertySet + PartialEq> PartialEq for PropertyBox<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: PropertySet + Eq> Eq for PropertyBox<T> {}

impl<T: PropertySet + PartialEq> PartialEq<T> for PropertyBox<T> {
    fn eq(&self, other: &T) -> bool {
        **self == *other
    }
}

impl<T: PropertySet + core::fmt::Debug> core::fmt::Debug for PropertyBox<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        (**self).fmt(f)
    }
}

/// Defines a property struct: its fields, and the decode / length / encode functions that
/// accept exactly those properties.
macro_rules! property_set {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $id:ident, )*
        }
        $( rules: $rules:path )?
    ) => {
        $(#[$meta])*
        ///
        /// Its `Debug` output shows authentication data as `***`.
        #[derive(Clone, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                let mut out = f.debug_struct(stringify!($name));
                $(
                    // Authentication data is a secret (a password, a SCRAM proof, a token).
                    if PropertyId::$id == PropertyId::AuthenticationData
                        && !Slot::is_empty(&self.$field)
                    {
                        out.field(stringify!($field), &Some(crate::Redacted));
                    } else {
                        out.field(stringify!($field), &self.$field);
                    }
                )*
                out.finish()
            }
        }

        impl $name {
            /// Whether no property is set (the struct equals its `Default`).
            pub fn is_empty(&self) -> bool {
                true $( && Slot::is_empty(&self.$field) )*
            }

            /// Decodes the property length and the properties (MQTT 5.0 2.2.2).
            pub(crate) fn decode(buf: &mut Bytes, packet: PacketType) -> Result<Self, DecodeError> {
                let len = read_var_int(buf, packet)? as usize;
                if buf.remaining() < len {
                    return Err(DecodeError::LengthMismatch(packet));
                }
                let mut out = Self::default();
                if len == 0 {
                    return Ok(out);
                }
                let mut props = buf.split_to(len);
                while props.has_remaining() {
                    let raw = read_var_int(&mut props, packet)?;
                    let Some(id) = PropertyId::from_u32(raw) else {
                        return Err(DecodeError::UnknownProperty(raw));
                    };
                    match id {
                        $( PropertyId::$id => Slot::decode_into(&mut out.$field, &mut props, id, packet)?, )*
                        #[allow(unreachable_patterns)]
                        other => return Err(DecodeError::PropertyNotAllowed { property: other, packet }),
                    }
                }
                out.check_rules().map_err(DecodeError::InvalidPropertyValue)?;
                Ok(out)
            }

            /// Rules between properties of the set (e.g. authentication data needs a method);
            /// the property breaking one is returned.
            fn check_rules(&self) -> Result<(), PropertyId> {
                $( return $rules(self); )?
                #[allow(unreachable_code)]
                Ok(())
            }

            /// Length of the properties without their length prefix.
            pub(crate) fn content_len(&self) -> Result<usize, EncodeError> {
                Ok(0 $( + Slot::len(&self.$field, PropertyId::$id)? )*)
            }

            /// Length on the wire, length prefix included.
            pub(crate) fn wire_len(&self) -> Result<usize, EncodeError> {
                // The usual case: only the one-byte length 0.
                if self.is_empty() {
                    return Ok(1);
                }
                self.check_rules().map_err(EncodeError::InvalidPropertyValue)?;
                let len = self.content_len()?;
                if len > MAX_VAR_INT as usize {
                    return Err(EncodeError::PacketTooLarge(len));
                }
                Ok(var_int_len(len as u32) + len)
            }

            /// Writes the properties; `wire_len` has validated them.
            pub(crate) fn encode<B: BufMut>(&self, buf: &mut B) {
                if self.is_empty() {
                    buf.put_u8(0);
                    return;
                }
                // The length was validated by `wire_len`; recomputing is cheap for the usual
                // empty or small sets and avoids carrying a cache in plain-data structs.
                let len = self.content_len().unwrap_or(0);
                put_var_int(buf, len as u32);
                $( Slot::encode(&self.$field, PropertyId::$id, buf); )*
            }
        }

        impl sealed::Set for $name {
            fn decode(buf: &mut Bytes, packet: PacketType) -> Result<Self, DecodeError> {
                Self::decode(buf, packet)
            }
        }

        impl PropertySet for $name {
            fn empty() -> &'static Self {
                static EMPTY: $name = $name { $( $field: Slot::EMPTY, )* };
                &EMPTY
            }

            fn is_empty(&self) -> bool {
                Self::is_empty(self)
            }
        }
    };
}

property_set! {
    /// CONNECT properties (MQTT 5.0 3.1.2.11).
    ConnectProperties {
        /// Seconds the server keeps the session after the connection closes; 0xFFFFFFFF = never expires.
        session_expiry_interval: Option<u32> = SessionExpiryInterval,
        /// How many QoS 1/2 PUBLISH the client accepts in flight.
        receive_maximum: Option<u16> = ReceiveMaximum,
        /// Largest packet the client accepts.
        maximum_packet_size: Option<u32> = MaximumPacketSize,
        /// Highest topic alias the client accepts from the server.
        topic_alias_maximum: Option<u16> = TopicAliasMaximum,
        /// Asks the server for response information in CONNACK.
        request_response_information: Option<bool> = RequestResponseInformation,
        /// Whether the server may send reason strings and user properties on failures.
        request_problem_information: Option<bool> = RequestProblemInformation,
        /// Application-defined name/value pairs.
        user_properties: Vec<UserProperty> = UserProperty,
        /// Name of the enhanced authentication method.
        authentication_method: Option<ByteString> = AuthenticationMethod,
        /// Authentication data of that method.
        authentication_data: Option<Bytes> = AuthenticationData,
    }
    rules: connect_rules
}

property_set! {
    /// Will properties, carried in the CONNECT payload (MQTT 5.0 3.1.3.2).
    WillProperties {
        /// Seconds the server waits before publishing the will.
        will_delay_interval: Option<u32> = WillDelayInterval,
        /// Whether the will payload is UTF-8.
        payload_format_indicator: Option<PayloadFormat> = PayloadFormatIndicator,
        /// Lifetime of the will message in seconds.
        message_expiry_interval: Option<u32> = MessageExpiryInterval,
        /// MIME-like content type of the payload.
        content_type: Option<ByteString> = ContentType,
        /// Topic for a response (request/response pattern).
        response_topic: Option<ByteString> = ResponseTopic,
        /// Correlates a response with its request.
        correlation_data: Option<Bytes> = CorrelationData,
        /// Application-defined name/value pairs.
        user_properties: Vec<UserProperty> = UserProperty,
    }
    rules: will_rules
}

property_set! {
    /// CONNACK properties (MQTT 5.0 3.2.2.3).
    ConnAckProperties {
        /// Session expiry the server applies, overriding the client's request.
        session_expiry_interval: Option<u32> = SessionExpiryInterval,
        /// How many QoS 1/2 PUBLISH the server accepts in flight (default 65,535).
        receive_maximum: Option<u16> = ReceiveMaximum,
        /// Highest QoS the server supports (0 or 1; absent means 2).
        maximum_qos: Option<QoS> = MaximumQoS,
        /// Whether the server supports retained messages (absent means yes).
        retain_available: Option<bool> = RetainAvailable,
        /// Largest packet the server accepts.
        maximum_packet_size: Option<u32> = MaximumPacketSize,
        /// Client identifier the server assigned when the client sent an empty one.
        assigned_client_identifier: Option<ByteString> = AssignedClientIdentifier,
        /// Highest topic alias the server accepts from the client (absent means 0).
        topic_alias_maximum: Option<u16> = TopicAliasMaximum,
        /// Human-readable diagnostic.
        reason_string: Option<ByteString> = ReasonString,
        /// Application-defined name/value pairs.
        user_properties: Vec<UserProperty> = UserProperty,
        /// Whether wildcard subscriptions are supported (absent means yes).
        wildcard_subscription_available: Option<bool> = WildcardSubscriptionAvailable,
        /// Whether subscription identifiers are supported (absent means yes).
        subscription_identifier_available: Option<bool> = SubscriptionIdentifierAvailable,
        /// Whether shared subscriptions are supported (absent means yes).
        shared_subscription_available: Option<bool> = SharedSubscriptionAvailable,
        /// Keep alive the server imposes, overriding the client's.
        server_keep_alive: Option<u16> = ServerKeepAlive,
        /// Basis for response topics, when requested.
        response_information: Option<ByteString> = ResponseInformation,
        /// Another server to use.
        server_reference: Option<ByteString> = ServerReference,
        /// Name of the enhanced authentication method.
        authentication_method: Option<ByteString> = AuthenticationMethod,
        /// Authentication data of that method.
        authentication_data: Option<Bytes> = AuthenticationData,
    }
    rules: connack_rules
}

property_set! {
    /// PUBLISH properties (MQTT 5.0 3.3.2.3).
    PublishProperties {
        /// Whether the payload is UTF-8.
        payload_format_indicator: Option<PayloadFormat> = PayloadFormatIndicator,
        /// Lifetime of the message in seconds.
        message_expiry_interval: Option<u32> = MessageExpiryInterval,
        /// Topic alias standing for the topic name on this connection.
        topic_alias: Option<u16> = TopicAlias,
        /// Topic for a response (request/response pattern).
        response_topic: Option<ByteString> = ResponseTopic,
        /// Correlates a response with its request.
        correlation_data: Option<Bytes> = CorrelationData,
        /// Application-defined name/value pairs.
        user_properties: Vec<UserProperty> = UserProperty,
        /// Identifiers of the subscriptions that matched (server to client only).
        subscription_identifiers: Vec<SubscriptionId> = SubscriptionIdentifier,
        /// MIME-like content type of the payload.
        content_type: Option<ByteString> = ContentType,
    }
    rules: publish_rules
}

property_set! {
    /// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK
    /// (MQTT 5.0 3.4.2.2, 3.5.2.2, 3.6.2.2, 3.7.2.2, 3.9.2.1, 3.11.2.1).
    AckProperties {
        /// Human-readable diagnostic.
        reason_string: Option<ByteString> = ReasonString,
        /// Application-defined name/value pairs.
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

property_set! {
    /// SUBSCRIBE properties (MQTT 5.0 3.8.2.1).
    SubscribeProperties {
        /// Identifier the server attaches to messages matching these subscriptions.
        subscription_identifier: Option<SubscriptionId> = SubscriptionIdentifier,
        /// Application-defined name/value pairs.
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

property_set! {
    /// UNSUBSCRIBE properties (MQTT 5.0 3.10.2.1).
    UnsubscribeProperties {
        /// Application-defined name/value pairs.
        user_properties: Vec<UserProperty> = UserProperty,
    }
}

property_set! {
    /// DISCONNECT properties (MQTT 5.0 3.14.2.2).
    DisconnectProperties {
        /// New session expiry (client to server only).
        session_expiry_interval: Option<u32> = SessionExpiryInterval,
        /// Human-readable diagnostic.
        reason_string: Option<ByteString> = ReasonString,
        /// Application-defined name/value pairs.
        user_properties: Vec<UserProperty> = UserProperty,
        /// Another server to use (server to client only).
        server_reference: Option<ByteString> = ServerReference,
    }
}

property_set! {
    /// AUTH properties (MQTT 5.0 3.15.2.2).
    AuthProperties {
        /// Name of the authentication method.
        authentication_method: Option<ByteString> = AuthenticationMethod,
        /// Authentication data of that method.
        authentication_data: Option<Bytes> = AuthenticationData,
        /// Human-readable diagnostic.
        reason_string: Option<ByteString> = ReasonString,
        /// Application-defined name/value pairs.
        user_properties: Vec<UserProperty> = UserProperty,
    }
    rules: auth_rules
}
