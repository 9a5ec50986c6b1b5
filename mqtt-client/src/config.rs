//! [`ClientConfig`]: the options of amqtt's client configuration, typed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use mqtt_proto::{ProtocolVersion, QoS};

use crate::reconnect::Jitter;

/// The will message: published by the broker if the connection ends without DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
pub struct WillConfig {
    /// Topic to publish on.
    pub topic: String,
    /// Payload.
    #[cfg_attr(feature = "serde", serde(with = "serde_impl::bytes"))]
    pub message: Vec<u8>,
    /// QoS.
    #[cfg_attr(feature = "serde", serde(default, with = "serde_impl::qos"))]
    pub qos: QoS,
    /// Retain flag.
    #[cfg_attr(feature = "serde", serde(default))]
    pub retain: bool,
}

/// What happens to a received QoS 0 message when the client already holds
/// [`ClientConfig::message_buffer`] messages the application has not taken. Either way the
/// drop is counted ([`MqttClient::dropped_messages`](crate::MqttClient::dropped_messages)) and
/// reported ([`ConnectionEvent::MessagesDropped`](crate::ConnectionEvent::MessagesDropped)).
/// QoS 1/2 messages are never dropped: flow control holds them back at the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Overflow {
    /// Drop the message that just arrived (what was buffered first is delivered first).
    #[default]
    DropNewest,
    /// Drop the oldest buffered QoS 0 message to make room (the freshest data wins, as for
    /// sensor readings); if every buffered message is QoS 1/2, the new one is dropped.
    DropOldest,
}

/// Per-topic publish defaults (amqtt's `topics` section).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
pub struct TopicConfig {
    /// QoS used when a publish on this topic does not set one.
    #[cfg_attr(feature = "serde", serde(default, with = "serde_impl::opt_qos"))]
    pub qos: Option<QoS>,
    /// Retain flag used when a publish on this topic does not set one.
    #[cfg_attr(feature = "serde", serde(default))]
    pub retain: Option<bool>,
}

/// Client configuration. `Default` gives amqtt's defaults; every field has a builder method.
/// With the `serde` feature it deserializes from the same shape as amqtt's dict config
/// (durations in seconds).
// No `PartialEq`: a rustls configuration (`tls_config`) has no meaningful equality.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
#[non_exhaustive]
pub struct ClientConfig {
    /// Keep alive announced in CONNECT.
    #[cfg_attr(feature = "serde", serde(with = "serde_impl::secs"))]
    pub keep_alive: Duration,
    /// How long before the keep-alive deadline the PINGREQ is sent.
    #[cfg_attr(feature = "serde", serde(with = "serde_impl::secs"))]
    pub ping_delay: Duration,
    /// QoS of publishes that set none.
    #[cfg_attr(feature = "serde", serde(with = "serde_impl::qos"))]
    pub default_qos: QoS,
    /// Retain flag of publishes that set none.
    pub default_retain: bool,
    /// Reconnect automatically when the connection is lost.
    pub auto_reconnect: bool,
    /// Reconnect attempts before giving up; `None` tries forever (amqtt: a negative number).
    #[cfg_attr(feature = "serde", serde(with = "serde_impl::retries"))]
    pub reconnect_retries: Option<u32>,
    /// Cap of the exponential backoff between reconnect attempts.
    #[cfg_attr(feature = "serde", serde(with = "serde_impl::secs"))]
    pub reconnect_max_interval: Duration,
    /// Clean Session / Clean Start.
    pub clean_session: bool,
    /// Will message.
    pub will: Option<WillConfig>,
    /// Default broker URI.
    pub uri: Option<String>,
    /// CA certificates (PEM file).
    pub ca_file: Option<PathBuf>,
    /// CA certificates (directory of PEM files).
    pub ca_path: Option<PathBuf>,
    /// CA certificates (PEM text).
    pub ca_data: Option<String>,
    /// Client certificate (PEM) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM).
    pub key_file: Option<PathBuf>,
    /// Verify the server certificate's host name.
    pub check_hostname: bool,
    /// A ready rustls configuration for `mqtts://` and `wss://` (custom verifier, in-memory
    /// client certificate, ALPN, session resumption); when set, the CA and certificate
    /// options above are not used. Not loaded from documents.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    #[cfg_attr(feature = "serde", serde(skip))]
    pub tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// User name (the URI's user name wins).
    pub username: Option<String>,
    /// Password (the URI's password wins).
    pub password: Option<String>,
    /// MQTT 3.1.1 (default) or 5.0.
    #[cfg_attr(feature = "serde", serde(with = "serde_impl::version"))]
    pub protocol_version: ProtocolVersion,
    /// Time allowed for TCP, TLS, WebSocket and CONNACK together.
    #[cfg_attr(feature = "serde", serde(with = "serde_impl::secs"))]
    pub connect_timeout: Duration,
    /// Outgoing QoS 1/2 messages in flight at once. `None` (the default) picks what the broker
    /// can take: in MQTT 5 the Receive Maximum the broker announces in CONNACK; in MQTT 3.1.1,
    /// which cannot announce one, 20, the quota of mosquitto's default configuration
    /// (`max_inflight_messages`). A 3.1.1 broker silently drops a QoS 2 PUBLISH beyond its
    /// quota while still answering PUBREC, so a window above the broker's quota loses
    /// messages that are reported as delivered: raise it only to what the broker allows.
    pub max_inflight: Option<u16>,
    /// Publishes accepted and not yet completed (queued, being written or in flight), QoS 0
    /// included (a QoS 0 publish's future completes at acceptance, but the message holds its
    /// room until its bytes are handed to the transport). When reached, `publish(..).await` waits for room (backpressure) and
    /// [`Publishing::send_now`](crate::Publishing::send_now) fails with
    /// [`ClientError::QueueFull`](crate::ClientError::QueueFull).
    pub max_queued: usize,
    /// Payload and topic bytes of those publishes; the same backpressure applies. A single
    /// publish larger than this is still accepted when nothing else is queued.
    pub max_queued_bytes: usize,
    /// Largest packet accepted from the broker.
    pub max_packet_size: u32,
    /// Received messages the client holds for `deliver_message` / `messages`. The socket is
    /// always read; QoS 1/2 messages beyond this are held back by flow control (they are
    /// acknowledged only when the application takes them, and MQTT 5 announces this as the
    /// Receive Maximum unless [`receive_maximum`](Self::receive_maximum) says otherwise);
    /// QoS 0 messages beyond it are dropped by [`overflow`](Self::overflow).
    pub message_buffer: usize,
    /// What happens to a QoS 0 message that arrives when `message_buffer` messages wait.
    pub overflow: Overflow,
    /// MQTT 5 Receive Maximum announced to the broker: how many unacknowledged QoS 1/2
    /// messages it may send at once. `None`: `message_buffer` (at most 65,535).
    pub receive_maximum: Option<u16>,
    /// Acknowledge received QoS 1/2 messages only when the application calls
    /// [`MqttClient::ack`](crate::MqttClient::ack) (after processing them). Off: a message is
    /// acknowledged when `deliver_message` / `messages` hands it out.
    pub manual_acks: bool,
    /// Per-topic publish defaults.
    pub topics: HashMap<String, TopicConfig>,
    /// MQTT 5 session expiry interval in seconds.
    pub session_expiry_interval: Option<u32>,
    /// Broker URIs for failover (a cluster's nodes), tried in order (or shuffled, see
    /// `shuffle_uris`) by `connect(None)` and by every reconnect. `uri`, if set, comes first.
    pub uris: Vec<String>,
    /// Walk the URI list in a random order, drawn once per client, so a fleet of clients
    /// spreads over a cluster.
    pub shuffle_uris: bool,
    /// Delay before the first reconnect round; it doubles each round up to
    /// `reconnect_max_interval`.
    #[cfg_attr(feature = "serde", serde(with = "serde_impl::secs"))]
    pub reconnect_initial_interval: Duration,
    /// Randomness applied to every reconnect delay (default ±25%).
    #[cfg_attr(feature = "serde", serde(with = "serde_impl::jitter"))]
    pub reconnect_jitter: Jitter,
    /// Follow an MQTT 5 Server Reference sent with a CONNACK refusal or a DISCONNECT with
    /// reason "use another server" (0x9C) or "server moved" (0x9D). Off by default: a
    /// server could otherwise send the client anywhere.
    pub follow_server_reference: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(10),
            ping_delay: Duration::from_secs(1),
            default_qos: QoS::AtMostOnce,
            default_retain: false,
            auto_reconnect: true,
            reconnect_retries: Some(2),
            reconnect_max_interval: Duration::from_secs(10),
            clean_session: true,
            will: None,
            uri: None,
            ca_file: None,
            ca_path: None,
            ca_data: None,
            cert_file: None,
            key_file: None,
            check_hostname: true,
            #[cfg(feature = "tls")]
            tls_config: None,
            username: None,
            password: None,
            protocol_version: ProtocolVersion::V311,
            connect_timeout: Duration::from_secs(10),
            max_inflight: None,
            max_queued: 10_000,
            max_queued_bytes: 64 * 1024 * 1024,
            max_packet_size: 1024 * 1024,
            message_buffer: 1024,
            overflow: Overflow::DropNewest,
            receive_maximum: None,
            manual_acks: false,
            topics: HashMap::new(),
            session_expiry_interval: None,
            uris: Vec::new(),
            shuffle_uris: false,
            reconnect_initial_interval: Duration::from_secs(1),
            reconnect_jitter: Jitter::default(),
            follow_server_reference: false,
        }
    }
}

macro_rules! builders {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty => $value:expr ),* $(,)?) => {
        impl ClientConfig {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name(mut self, $name: $ty) -> Self {
                    self.$name = $value;
                    self
                }
            )*
        }
    };
}

builders! {
    /// Sets `keep_alive`.
    keep_alive: Duration => keep_alive,
    /// Sets `ping_delay`.
    ping_delay: Duration => ping_delay,
    /// Sets `default_qos`.
    default_qos: QoS => default_qos,
    /// Sets `default_retain`.
    default_retain: bool => default_retain,
    /// Sets `auto_reconnect`.
    auto_reconnect: bool => auto_reconnect,
    /// Sets `reconnect_retries` (`None`: forever).
    reconnect_retries: Option<u32> => reconnect_retries,
    /// Sets `reconnect_max_interval`.
    reconnect_max_interval: Duration => reconnect_max_interval,
    /// Sets `clean_session`.
    clean_session: bool => clean_session,
    /// Sets the will.
    will: WillConfig => Some(will),
    /// Sets the default URI.
    uri: &str => Some(uri.to_owned()),
    /// Sets `ca_file`.
    ca_file: impl Into<PathBuf> => Some(ca_file.into()),
    /// Sets `ca_path`.
    ca_path: impl Into<PathBuf> => Some(ca_path.into()),
    /// Sets `ca_data`.
    ca_data: &str => Some(ca_data.to_owned()),
    /// Sets `cert_file`.
    cert_file: impl Into<PathBuf> => Some(cert_file.into()),
    /// Sets `key_file`.
    key_file: impl Into<PathBuf> => Some(key_file.into()),
    /// Sets `check_hostname`.
    check_hostname: bool => check_hostname,
    /// Sets the user name.
    username: &str => Some(username.to_owned()),
    /// Sets the password.
    password: &str => Some(password.to_owned()),
    /// Sets the protocol version.
    protocol_version: ProtocolVersion => protocol_version,
    /// Sets `connect_timeout`.
    connect_timeout: Duration => connect_timeout,
    /// Sets `max_inflight` (at least 1).
    max_inflight: u16 => Some(max_inflight.max(1)),
    /// Sets `max_queued` (at least 1).
    max_queued: usize => max_queued.max(1),
    /// Sets `max_queued_bytes`.
    max_queued_bytes: usize => max_queued_bytes,
    /// Sets `max_packet_size`.
    max_packet_size: u32 => max_packet_size,
    /// Sets `message_buffer` (at least 1).
    message_buffer: usize => message_buffer.max(1),
    /// Sets `overflow`.
    overflow: Overflow => overflow,
    /// Sets the MQTT 5 Receive Maximum announced to the broker (at least 1).
    receive_maximum: u16 => Some(receive_maximum.max(1)),
    /// Sets `manual_acks`.
    manual_acks: bool => manual_acks,
    /// Sets the MQTT 5 session expiry interval.
    session_expiry_interval: u32 => Some(session_expiry_interval),
    /// Sets `shuffle_uris`.
    shuffle_uris: bool => shuffle_uris,
    /// Sets `reconnect_initial_interval`.
    reconnect_initial_interval: Duration => reconnect_initial_interval,
    /// Sets `reconnect_jitter`.
    reconnect_jitter: Jitter => reconnect_jitter,
    /// Sets `follow_server_reference`.
    follow_server_reference: bool => follow_server_reference,
}

impl ClientConfig {
    /// Sets `tls_config`: a ready rustls configuration used as given.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    #[must_use]
    pub fn tls_config(mut self, tls_config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.tls_config = Some(tls_config);
        self
    }

    /// Sets the broker URIs for failover (see the `uris` field).
    #[must_use]
    pub fn uris<I, S>(mut self, uris: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.uris = uris.into_iter().map(Into::into).collect();
        self
    }

    /// Every configured broker URI: `uri` first, then `uris` (duplicates dropped).
    pub(crate) fn all_uris(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for uri in self.uri.iter().chain(&self.uris) {
            if !all.contains(uri) {
                all.push(uri.clone());
            }
        }
        all
    }

    /// Adds per-topic publish defaults.
    #[must_use]
    pub fn topic(mut self, topic: &str, config: TopicConfig) -> Self {
        self.topics.insert(topic.to_owned(), config);
        self
    }

    /// The in-flight window for `version` (see [`max_inflight`](Self::max_inflight)).
    pub(crate) fn inflight_window(&self, version: ProtocolVersion) -> u16 {
        match (self.max_inflight, version) {
            (Some(window), _) => window.max(1),
            (None, ProtocolVersion::V311) => 20,
            // MQTT 5: the broker's Receive Maximum lowers this when the session applies it.
            (None, _) => u16::MAX,
        }
    }

    /// The Receive Maximum announced in MQTT 5 CONNECT.
    pub(crate) fn announced_receive_maximum(&self) -> u16 {
        self.receive_maximum
            .unwrap_or_else(|| u16::try_from(self.message_buffer).unwrap_or(u16::MAX))
            .max(1)
    }

    /// The QoS and retain flag a publish on `topic` gets when it sets neither.
    pub(crate) fn publish_defaults(&self, topic: &str) -> (QoS, bool) {
        let per_topic = self.topics.get(topic);
        (
            per_topic.and_then(|t| t.qos).unwrap_or(self.default_qos),
            per_topic
                .and_then(|t| t.retain)
                .unwrap_or(self.default_retain),
        )
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    //! amqtt's config shapes: seconds as numbers, QoS as 0/1/2, versions as "3.1.1"/"5.0".

    pub(super) mod secs {
        use serde::{Deserialize, Deserializer};
        use std::time::Duration;

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            let secs = f64::deserialize(d)?;
            Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
        }
    }

    pub(super) mod qos {
        use mqtt_proto::QoS;
        use serde::{Deserialize, Deserializer};

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<QoS, D::Error> {
            let value = u8::deserialize(d)?;
            QoS::from_u8(value).ok_or_else(|| serde::de::Error::custom("QoS must be 0, 1 or 2"))
        }
    }

    pub(super) mod opt_qos {
        use mqtt_proto::QoS;
        use serde::{Deserialize, Deserializer};

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<QoS>, D::Error> {
            Option::<u8>::deserialize(d)?
                .map(|v| {
                    QoS::from_u8(v).ok_or_else(|| serde::de::Error::custom("QoS must be 0, 1 or 2"))
                })
                .transpose()
        }
    }

    pub(super) mod version {
        use mqtt_proto::ProtocolVersion;
        use serde::{Deserialize, Deserializer};

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<ProtocolVersion, D::Error> {
            match String::deserialize(d)?.as_str() {
                "3.1.1" | "4" | "v311" => Ok(ProtocolVersion::V311),
                "5" | "5.0" | "v5" => Ok(ProtocolVersion::V5),
                other => Err(serde::de::Error::custom(format!(
                    "unsupported protocol version {other:?}"
                ))),
            }
        }
    }

    pub(super) mod retries {
        use serde::{Deserialize, Deserializer};

        /// amqtt's convention: a negative count (or none) retries forever.
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<u32>, D::Error> {
            Ok(Option::<i64>::deserialize(d)?.and_then(|n| u32::try_from(n).ok()))
        }
    }

    pub(super) mod jitter {
        use crate::reconnect::Jitter;
        use serde::{Deserialize, Deserializer};

        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Percent(u8),
            Name(String),
        }

        /// `"none"`, `"full"`, or a percentage for a ±spread (`25`).
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Jitter, D::Error> {
            match Raw::deserialize(d)? {
                Raw::Percent(0) => Ok(Jitter::None),
                Raw::Percent(percent) if percent <= 100 => Ok(Jitter::Spread { percent }),
                Raw::Percent(percent) => Err(serde::de::Error::custom(format!(
                    "reconnect_jitter {percent}% is above 100%"
                ))),
                Raw::Name(name) => match name.as_str() {
                    "none" => Ok(Jitter::None),
                    "full" => Ok(Jitter::Full),
                    other => Err(serde::de::Error::custom(format!(
                        "reconnect_jitter must be \"none\", \"full\" or a percentage, not {other:?}"
                    ))),
                },
            }
        }
    }

    pub(super) mod bytes {
        use serde::{Deserialize, Deserializer};

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            Ok(String::deserialize(d)?.into_bytes())
        }
    }
}
