//! What `publish` takes and what a received message offers: [`Payload`] (any byte or string
//! buffer, copied only when borrowed), [`IntoUri`] (a broker URI that may be left
//! out), and the typed views of a received payload ([`ApplicationMessage::payload_str`],
//! `payload_json`).

use bytes::{Bytes, BytesMut};
use sansmqtt_proto::PacketId;
use sansmqtt_session::AckToken;

use crate::{Publish, PublishProperties, QoS};

/// A message payload, as [`MqttClient::publish`](crate::MqttClient::publish) takes it
/// (`impl Into<Payload>`): `&[u8]`, `&[u8; N]`, `&str`, `&String`, `&Vec<u8>` are copied once;
/// `Vec<u8>`, `String`, `Bytes`, `BytesMut` and `&Bytes` are taken without copying the bytes
/// (a `Vec` or `String` becomes the buffer the packet is written from; `&Bytes` costs a
/// reference count). A `'static` payload goes without a copy as
/// `Bytes::from_static(b"..")`.
///
/// ```
/// use sansmqtt_client::Payload;
///
/// let reading = 21.5_f32;
/// let text = format!("{reading}");
/// let buf = [1u8, 2, 3, 4];
/// for payload in [
///     Payload::from(&buf[..2]),   // a borrowed slice: copied
///     Payload::from(b"raw"),      // a byte string literal: copied
///     Payload::from(&text),       // &String: copied
///     Payload::from(text),        // String: moved, no copy
///     Payload::from(vec![0u8; 8]), // Vec<u8>: moved, no copy
/// ] {
///     assert!(!payload.as_bytes().is_empty());
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payload(Bytes);

impl Payload {
    /// The bytes, as they will be sent.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The bytes, by value.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl From<Payload> for Bytes {
    fn from(payload: Payload) -> Self {
        payload.0
    }
}

/// Owned buffers: moved into the packet, never copied.
macro_rules! payload_owned {
    ($($ty:ty),*) => {
        $(impl From<$ty> for Payload {
            fn from(value: $ty) -> Self {
                Self(Bytes::from(value))
            }
        })*
    };
}

payload_owned!(Bytes, Vec<u8>, String, Box<[u8]>);

impl From<BytesMut> for Payload {
    fn from(value: BytesMut) -> Self {
        Self(value.freeze())
    }
}

impl From<&Bytes> for Payload {
    fn from(value: &Bytes) -> Self {
        Self(value.clone())
    }
}

/// Borrowed bytes: copied once (the message outlives the borrow: it waits in a queue, and
/// QoS 1/2 is kept until acknowledged).
impl From<&[u8]> for Payload {
    fn from(value: &[u8]) -> Self {
        Self(Bytes::copy_from_slice(value))
    }
}

impl<const N: usize> From<&[u8; N]> for Payload {
    fn from(value: &[u8; N]) -> Self {
        Self(Bytes::copy_from_slice(value))
    }
}

impl<const N: usize> From<[u8; N]> for Payload {
    fn from(value: [u8; N]) -> Self {
        Self(Bytes::copy_from_slice(&value))
    }
}

impl From<&str> for Payload {
    fn from(value: &str) -> Self {
        Self(Bytes::copy_from_slice(value.as_bytes()))
    }
}

impl From<&Vec<u8>> for Payload {
    fn from(value: &Vec<u8>) -> Self {
        Self(Bytes::copy_from_slice(value))
    }
}

impl From<&String> for Payload {
    fn from(value: &String) -> Self {
        Self(Bytes::copy_from_slice(value.as_bytes()))
    }
}

/// The broker URI [`MqttClient::connect`](crate::MqttClient::connect) takes: `&str`, `String`
/// or `&String`, or `None` for the configured URIs (`Some(&str)` works too). Only one `Option`
/// type implements it, so that a bare `None` needs no type annotation.
pub trait IntoUri {
    /// The string, if one was given.
    fn into_option(self) -> Option<String>;
}

impl IntoUri for Option<&str> {
    fn into_option(self) -> Option<String> {
        self.map(str::to_owned)
    }
}

impl IntoUri for &str {
    fn into_option(self) -> Option<String> {
        Some(self.to_owned())
    }
}

impl IntoUri for String {
    fn into_option(self) -> Option<String> {
        Some(self)
    }
}

impl IntoUri for &String {
    fn into_option(self) -> Option<String> {
        Some(self.clone())
    }
}

/// A received message (amqtt's `ApplicationMessage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationMessage {
    publish: Publish,
    /// How to acknowledge it (QoS 1/2); `None` for QoS 0.
    pub(crate) ack: Option<AckToken>,
}

impl ApplicationMessage {
    pub(crate) fn new(publish: Publish, ack: Option<AckToken>) -> Self {
        Self { publish, ack }
    }

    /// The topic it was published on.
    pub fn topic(&self) -> &str {
        &self.publish.topic
    }

    /// The payload.
    pub fn payload(&self) -> &Bytes {
        &self.publish.payload
    }

    /// The QoS it was delivered with.
    pub fn qos(&self) -> QoS {
        self.publish.qos
    }

    /// Whether it is a retained message.
    pub fn retain(&self) -> bool {
        self.publish.retain
    }

    /// Whether the broker flagged it as a re-delivery.
    pub fn dup(&self) -> bool {
        self.publish.dup
    }

    /// The packet identifier (QoS 1 and 2).
    pub fn packet_id(&self) -> Option<PacketId> {
        self.publish.packet_id
    }

    /// MQTT 5 properties.
    pub fn properties(&self) -> &PublishProperties {
        &self.publish.properties
    }

    /// The decoded PUBLISH packet (amqtt's `message.publish_packet`).
    pub fn publish_packet(&self) -> &Publish {
        &self.publish
    }

    /// The PUBLISH packet, by value.
    pub fn into_publish(self) -> Publish {
        self.publish
    }
}

/// Why a payload could not be read as the type asked for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The payload is not valid UTF-8 ([`ApplicationMessage::payload_str`]).
    #[error("payload is not UTF-8")]
    Utf8(#[from] std::str::Utf8Error),
    /// The payload is not JSON of the type asked for (`payload_json`, feature `json`).
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    #[error("payload is not the JSON expected")]
    Json(#[from] serde_json::Error),
}

impl ApplicationMessage {
    /// The payload as text, checked to be UTF-8 (MQTT does not require it: a payload is bytes
    /// unless its MQTT 5 Payload Format Indicator says otherwise).
    pub fn payload_str(&self) -> Result<&str, PayloadError> {
        Ok(std::str::from_utf8(self.payload())?)
    }

    /// The payload parsed as JSON into `T` (feature `json`).
    ///
    /// ```
    /// # #[cfg(feature = "json")]
    /// # fn example(message: &sansmqtt_client::ApplicationMessage) -> Result<(), sansmqtt_client::PayloadError> {
    /// #[derive(serde::Deserialize)]
    /// struct Reading { celsius: f32 }
    /// let reading: Reading = message.payload_json()?;
    /// # let _ = reading.celsius;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn payload_json<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<T, PayloadError> {
        Ok(serde_json::from_slice(self.payload())?)
    }

    /// Whether this message's topic matches the topic filter `filter` (wildcards `+` and `#`,
    /// and the rule that a filter starting with a wildcard matches no `$` topic), e.g. to
    /// route messages of several subscriptions arriving on one stream. An invalid filter
    /// matches nothing.
    pub fn matches(&self, filter: &str) -> bool {
        sansmqtt_proto::topic::validate_topic_filter(filter).is_ok()
            && sansmqtt_proto::topic::matches(filter, self.topic())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Publish, QoS};

    #[test]
    fn owned_payloads_are_moved_not_copied() {
        let vec = vec![7u8; 100];
        let at = vec.as_ptr();
        assert_eq!(Payload::from(vec).as_bytes().as_ptr(), at, "Vec<u8>");
        let string = "x".repeat(100);
        let at = string.as_ptr();
        assert_eq!(Payload::from(string).as_bytes().as_ptr(), at, "String");
        let bytes = Bytes::from(vec![1u8; 100]);
        let at = bytes.as_ptr();
        assert_eq!(Payload::from(&bytes).as_bytes().as_ptr(), at, "&Bytes");
        assert_eq!(Payload::from(bytes).as_bytes().as_ptr(), at, "Bytes");
        let mut buf = BytesMut::with_capacity(100);
        buf.extend_from_slice(&[3; 100]);
        let at = buf.as_ptr();
        assert_eq!(Payload::from(buf).as_bytes().as_ptr(), at, "BytesMut");
    }

    #[test]
    fn borrowed_payloads_are_copied_with_their_content() {
        let buf = [1u8, 2, 3];
        assert_eq!(
            Payload::from(&buf[..2]).into_bytes(),
            Bytes::from_static(&[1, 2])
        );
        assert_eq!(
            Payload::from(&buf).into_bytes(),
            Bytes::from_static(&[1, 2, 3])
        );
        assert_eq!(
            Payload::from(buf).into_bytes(),
            Bytes::from_static(&[1, 2, 3])
        );
        let text = String::from("hi");
        assert_eq!(Payload::from(&text).into_bytes(), Bytes::from_static(b"hi"));
        assert_eq!(
            Payload::from(text.as_str()).into_bytes(),
            Bytes::from_static(b"hi")
        );
        assert_eq!(
            Payload::from(&vec![9u8]).into_bytes(),
            Bytes::from_static(&[9])
        );
    }

    fn message(topic: &str, payload: &'static [u8]) -> ApplicationMessage {
        let publish = Publish::new(topic, Bytes::from_static(payload));
        ApplicationMessage::new(
            Publish {
                qos: QoS::AtMostOnce,
                ..publish
            },
            None,
        )
    }

    #[test]
    fn matches_applies_wildcards_and_the_dollar_rule() {
        let m = message("sport/tennis/player1", b"");
        assert!(m.matches("sport/#"));
        assert!(m.matches("sport/+/player1"));
        assert!(m.matches("sport/tennis/player1"));
        assert!(!m.matches("sport/+"));
        assert!(
            !m.matches("sport/tennis/player1/#/x"),
            "an invalid filter matches nothing"
        );
        let sys = message("$SYS/uptime", b"");
        assert!(!sys.matches("#"));
        assert!(!sys.matches("+/uptime"));
        assert!(sys.matches("$SYS/#"));
    }

    #[test]
    fn payload_str_checks_utf8() {
        assert_eq!(
            message("t", "grüße".as_bytes()).payload_str().ok(),
            Some("grüße")
        );
        assert!(matches!(
            message("t", &[0xc3]).payload_str(),
            Err(PayloadError::Utf8(_))
        ));
    }
}
