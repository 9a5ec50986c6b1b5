//! [`ClientConfig`]: the options of amqtt's client configuration, typed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use sansmqtt_proto::{ProtocolVersion, QoS};

use crate::reconnect::Jitter;

/// The will message: published by the broker if the connection ends without DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
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
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct TopicConfig {
    /// QoS used when a publish on this topic does not set one.
    #[cfg_attr(feature = "serde", serde(default, with = "serde_impl::opt_qos"))]
    pub qos: Option<QoS>,
    /// Retain flag used when a publish on this topic does not set one.
    #[cfg_attr(feature = "serde", serde(default))]
    pub retain: Option<bool>,
}

/// Client configuration. `Default` gives amqtt's defaults; every field has a builder method.
///
/// With the `serde` feature it deserializes from amqtt's client configuration documents
/// unchanged (durations in seconds): besides the field names below it accepts amqtt's
/// spellings `cleansession`, `connection_timeout`, `cafile`, `capath`, `cadata`, `certfile`
/// and `keyfile`, and amqtt's `broker` section (also spelled `connection`) holding `uri`,
/// `cafile`, `capath` and `cadata`. A key it does not know is an error that names it, so a
/// misspelled option is never silently ignored; a key given both at the top level and in
/// `broker` is an error too.
///
/// ```yaml
/// # amqtt's documented example loads as it is:
/// keep_alive: 10
/// cleansession: true
/// reconnect_retries: -1        # negative: forever
/// will:
///   topic: will/messages
///   message: "client ABC has disconnected"
///   qos: 1
/// broker:
///   uri: mqtt://localhost:1883
///   cafile: /path/to/ca/file
/// ```
// No `PartialEq`: a rustls configuration (`tls_config`) has no meaningful equality.
// `remote = "Self"`: the derive writes an inherent `deserialize`, wrapped by the
// `Deserialize` impl below, which folds amqtt's `broker` section into the fields.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(default, deny_unknown_fields, remote = "Self")
)]
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
    /// Clean Session / Clean Start (amqtt: `cleansession`).
    #[cfg_attr(feature = "serde", serde(alias = "cleansession"))]
    pub clean_session: bool,
    /// Will message.
    pub will: Option<WillConfig>,
    /// Default broker URI.
    pub uri: Option<String>,
    /// CA certificates (PEM file).
    #[cfg_attr(feature = "serde", serde(alias = "cafile"))]
    pub ca_file: Option<PathBuf>,
    /// CA certificates (directory of PEM files).
    #[cfg_attr(feature = "serde", serde(alias = "capath"))]
    pub ca_path: Option<PathBuf>,
    /// CA certificates (PEM text).
    #[cfg_attr(feature = "serde", serde(alias = "cadata"))]
    pub ca_data: Option<String>,
    /// Client certificate (PEM) for mutual TLS.
    #[cfg_attr(feature = "serde", serde(alias = "certfile"))]
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM).
    #[cfg_attr(feature = "serde", serde(alias = "keyfile"))]
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
    /// With `protocol_version` 5.0: when a broker refuses MQTT 5 (a 3.1.1-only broker answers
    /// "unacceptable protocol version", reported as
    /// [`ReasonCode::UnsupportedProtocolVersion`](sansmqtt_proto::ReasonCode::UnsupportedProtocolVersion))
    /// or closes the connection without any CONNACK, connect again at once with MQTT 3.1.1,
    /// and keep speaking 3.1.1 for the rest of this client's life (as `mosquitto_pub` users
    /// switch `-V`). Off by default: the refusal is then the error of `connect`.
    pub fallback_to_v311: bool,
    /// Time allowed for TCP, TLS, WebSocket and CONNACK together (amqtt:
    /// `connection_timeout`).
    #[cfg_attr(
        feature = "serde",
        serde(alias = "connection_timeout", with = "serde_impl::secs")
    )]
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
    /// Received messages the client holds for `deliver_message` / `messages` (default 1,024).
    /// QoS 1/2 messages beyond this are held back by flow control (they are acknowledged only
    /// when the application takes them, and MQTT 5 announces this as the Receive Maximum
    /// unless [`receive_maximum`](Self::receive_maximum) says otherwise).
    ///
    /// **Bursts of QoS 0 are not dropped.** When a QoS 0 message finds the buffer full, the
    /// client pauses reading the socket and resumes as soon as the application has taken
    /// enough messages for those already read (at most one socket read, 64 KiB, is held beyond
    /// this bound meanwhile). The pause lasts at most `min(keep_alive / 4, 1 s)` (1 s with
    /// keep-alive off), well inside the keep-alive budget. Only an application still stalled
    /// at the end of the pause meets [`overflow`](Self::overflow): the messages held are
    /// dropped by it (counted, reported), reading resumes at full speed so that PINGRESP and
    /// acknowledgements keep flowing, and QoS 0 messages beyond the buffer are dropped at once
    /// until the application has drained it to half; then a burst may pause reading again.
    /// Raise the buffer for consumers that stall for longer than the pause but must not lose
    /// QoS 0 messages; lower it to bound memory.
    ///
    /// **MQTT 3.1.1 bounds QoS 1/2 here too**, since it cannot announce a Receive Maximum and
    /// a broker without an in-flight limit (mosquitto's `max_inflight_messages 0`) sends
    /// whether or not earlier messages were acknowledged. With a persistent session
    /// (`clean_session(false)`), once `message_buffer` QoS 1/2 messages wait, the client stops
    /// taking more by withholding their acknowledgements (never by not reading the socket):
    /// it drops them unacknowledged, and every later QoS 1/2 message of that connection too
    /// (acknowledgements go out in arrival order); once the application has taken what it
    /// holds, the client reconnects at once and the broker sends them again. QoS 1 messages
    /// may then arrive twice, as QoS 1 allows; QoS 2 messages still arrive once. With a clean
    /// session a dropped message would be lost, so QoS 1/2 are not bounded there.
    pub message_buffer: usize,
    /// What happens to a QoS 0 message that arrives when `message_buffer` messages wait and
    /// the read pause (see [`message_buffer`](Self::message_buffer)) has run out.
    pub overflow: Overflow,
    /// MQTT 5 Receive Maximum announced to the broker: how many unacknowledged QoS 1/2
    /// messages it may send at once. `None`: `message_buffer` (at most 65,535).
    pub receive_maximum: Option<u16>,
    /// MQTT 5 Topic Alias Maximum announced to the broker: how many topic aliases it may use
    /// in the messages it sends us. 0 (the default) announces none: the broker then always
    /// sends full topic names.
    pub topic_alias_maximum: u16,
    /// MQTT 5: replace repeated topics of outgoing publishes with topic aliases, up to the
    /// Topic Alias Maximum the broker announced (the first topics published get the aliases).
    /// Aliases belong to one connection: after a reconnect the full topic goes out again
    /// first. A publish that sets its own alias
    /// ([`PublishProperties::topic_alias`](sansmqtt_proto::properties::PublishProperties)) above
    /// the broker's maximum is refused with
    /// [`SessionError::TopicAliasNotAllowed`](sansmqtt_session::SessionError::TopicAliasNotAllowed).
    pub outgoing_topic_aliases: bool,
    /// Acknowledge received QoS 1/2 messages only when the application calls
    /// [`MqttClient::ack`](crate::MqttClient::ack) (after processing them). Off: a message is
    /// acknowledged when `deliver_message` / `messages` hands it out.
    pub manual_acks: bool,
    /// Per-topic publish defaults.
    pub topics: HashMap<String, TopicConfig>,
    /// MQTT 5 session expiry interval in seconds.
    pub session_expiry_interval: Option<u32>,
    /// Directory of a durable session store ([`FileStore`](crate::store::FileStore)): in-flight
    /// QoS 1/2 messages survive a crash of the process and are resumed by the next client
    /// with the same client id and store (use `clean_session(false)`). `None`: in memory.
    pub session_store: Option<PathBuf>,
    /// Further MQTT 5 CONNECT properties: user properties, request problem information,
    /// request response information (the CONNACK's `response_information` then comes back
    /// in the `ConnAck` that `connect` returns). Receive Maximum, Maximum Packet Size, Topic
    /// Alias Maximum and the session expiry come from the options above. Not loaded from
    /// documents.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub connect_properties: sansmqtt_proto::properties::ConnectProperties,
    /// MQTT 5 enhanced authentication: the method and its challenge/response exchange
    /// (see [`Authenticator`](crate::Authenticator)). Not loaded from documents.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub authenticator: Option<std::sync::Arc<dyn crate::Authenticator>>,
    /// MQTT 5 properties of the will: delay interval, message expiry, content type, payload
    /// format, response topic, correlation data, user properties. Not loaded from documents.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub will_properties: sansmqtt_proto::properties::WillProperties,
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
    /// The proxy every connection goes through: a SOCKS5 or HTTP CONNECT proxy (see
    /// [`Proxy::parse`](crate::Proxy::parse) for the URL forms). `None` (the default):
    /// direct connections, or the environment's proxies with
    /// [`proxy_from_env`](Self::proxy_from_env). Set it when the broker is reachable only
    /// through a proxy; a configured proxy wins over the environment. Documents give it as
    /// a URL string (`proxy: "socks5://user:pass@host:1080"`), checked at load.
    #[cfg_attr(feature = "serde", serde(with = "serde_impl::proxy"))]
    pub proxy: Option<crate::Proxy>,
    /// Read the proxy from the conventional environment variables at each `connect` when
    /// no [`proxy`](Self::proxy) is configured: `https_proxy` for `mqtts`/`wss` brokers,
    /// `http_proxy` for `mqtt`/`ws` ones, else `all_proxy` (each also upper case), skipping
    /// the hosts `no_proxy` lists. Off by default, so that a variable set for other
    /// programs never reroutes a client that did not ask for it.
    pub proxy_from_env: bool,
    /// The error of a [`proxy`](Self::proxy) URL that did not parse, reported by `connect`.
    #[cfg_attr(feature = "serde", serde(skip))]
    proxy_error: Option<crate::ProxyError>,
    /// amqtt's `broker` / `connection` section while a document is loaded; folded into the
    /// fields above by the `Deserialize` impl, so always `None` afterwards.
    #[cfg(feature = "serde")]
    #[serde(rename = "broker", alias = "connection")]
    amqtt_broker: Option<serde_impl::BrokerSection>,
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
            fallback_to_v311: false,
            connect_timeout: Duration::from_secs(10),
            max_inflight: None,
            max_queued: 10_000,
            max_queued_bytes: 64 * 1024 * 1024,
            max_packet_size: 1024 * 1024,
            message_buffer: 1024,
            overflow: Overflow::DropNewest,
            receive_maximum: None,
            topic_alias_maximum: 0,
            outgoing_topic_aliases: false,
            manual_acks: false,
            topics: HashMap::new(),
            session_expiry_interval: None,
            session_store: None,
            connect_properties: sansmqtt_proto::properties::ConnectProperties::default(),
            will_properties: sansmqtt_proto::properties::WillProperties::default(),
            authenticator: None,
            uris: Vec::new(),
            shuffle_uris: false,
            reconnect_initial_interval: Duration::from_secs(1),
            reconnect_jitter: Jitter::default(),
            follow_server_reference: false,
            proxy: None,
            proxy_from_env: false,
            proxy_error: None,
            #[cfg(feature = "serde")]
            amqtt_broker: None,
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
    /// Sets `fallback_to_v311`.
    fallback_to_v311: bool => fallback_to_v311,
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
    /// Sets the MQTT 5 Topic Alias Maximum announced to the broker.
    topic_alias_maximum: u16 => topic_alias_maximum,
    /// Sets `outgoing_topic_aliases`.
    outgoing_topic_aliases: bool => outgoing_topic_aliases,
    /// Sets `manual_acks`.
    manual_acks: bool => manual_acks,
    /// Sets the MQTT 5 session expiry interval.
    session_expiry_interval: u32 => Some(session_expiry_interval),
    /// Keeps in-flight state in a durable store in this directory (see `session_store`).
    session_store: impl Into<PathBuf> => Some(session_store.into()),
    /// Sets the further MQTT 5 CONNECT properties.
    connect_properties: sansmqtt_proto::properties::ConnectProperties => connect_properties,
    /// Sets the MQTT 5 will properties.
    will_properties: sansmqtt_proto::properties::WillProperties => will_properties,
    /// Sets the MQTT 5 enhanced authentication method.
    authenticator: impl crate::Authenticator => Some(std::sync::Arc::new(authenticator)),
    /// Sets `shuffle_uris`.
    shuffle_uris: bool => shuffle_uris,
    /// Sets `reconnect_initial_interval`.
    reconnect_initial_interval: Duration => reconnect_initial_interval,
    /// Sets `reconnect_jitter`.
    reconnect_jitter: Jitter => reconnect_jitter,
    /// Sets `follow_server_reference`.
    follow_server_reference: bool => follow_server_reference,
    /// Sets `proxy_from_env`.
    proxy_from_env: bool => proxy_from_env,
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

    /// Connects through the proxy at `url`: `socks5://[user:password@]host[:port]` or
    /// `http://[user:password@]host[:port]` (see [`proxy`](Self::proxy)). A URL that does
    /// not parse makes `connect` fail with [`ProxyError::InvalidUrl`](crate::ProxyError),
    /// as an invalid broker URI does; [`Proxy::parse`](crate::Proxy::parse) checks one
    /// earlier.
    #[must_use]
    pub fn proxy(mut self, url: &str) -> Self {
        match crate::Proxy::parse(url) {
            Ok(proxy) => {
                self.proxy = Some(proxy);
                self.proxy_error = None;
            }
            Err(err) => {
                self.proxy = None;
                self.proxy_error = Some(err);
            }
        }
        self
    }

    /// The proxies for `connect`: the configured one, else (when asked for) the
    /// environment's, read now.
    pub(crate) fn proxy_choice(&self) -> Result<crate::proxy::ProxyChoice, crate::ProxyError> {
        if let Some(err) = &self.proxy_error {
            return Err(err.clone());
        }
        let env = match (&self.proxy, self.proxy_from_env) {
            (None, true) => Some(crate::proxy::EnvProxies::read(|name| {
                std::env::var(name).ok()
            })?),
            _ => None,
        };
        Ok(crate::proxy::ProxyChoice {
            configured: self.proxy.clone(),
            env,
        })
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

    /// MQTT 5 with a fallback to 3.1.1 when the broker refuses MQTT 5 (see
    /// [`fallback_to_v311`](Self::fallback_to_v311)): amqtt users' `auto` choice.
    #[must_use]
    pub fn auto_protocol_version(self) -> Self {
        self.protocol_version(ProtocolVersion::V5)
            .fallback_to_v311(true)
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
impl<'de> serde::Deserialize<'de> for ClientConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The inherent `deserialize` the derive wrote (`remote = "Self"`).
        let mut config = Self::deserialize(deserializer)?;
        if let Some(broker) = config.amqtt_broker.take() {
            broker.fold_into(&mut config)?;
        }
        Ok(config)
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    //! amqtt's config shapes: seconds as numbers, QoS as 0/1/2, versions as "3.1.1"/"5.0",
    //! the `broker` section.

    use std::path::PathBuf;

    use super::ClientConfig;

    /// amqtt's `broker` (or `connection`) section: where the broker is and which CAs to trust.
    #[derive(Debug, Clone, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct BrokerSection {
        uri: Option<String>,
        #[serde(alias = "ca_file")]
        cafile: Option<PathBuf>,
        #[serde(alias = "ca_path")]
        capath: Option<PathBuf>,
        #[serde(alias = "ca_data")]
        cadata: Option<String>,
    }

    impl BrokerSection {
        /// Moves the section's settings into `config`; one also given at the top level is an
        /// error (which of the two was meant cannot be guessed).
        pub(super) fn fold_into<E: serde::de::Error>(
            self,
            config: &mut ClientConfig,
        ) -> Result<(), E> {
            fn put<T, E: serde::de::Error>(
                slot: &mut Option<T>,
                value: Option<T>,
                key: &str,
            ) -> Result<(), E> {
                if let Some(value) = value {
                    if slot.is_some() {
                        return Err(E::custom(format!(
                            "`{key}` is given both at the top level and in the `broker` section"
                        )));
                    }
                    *slot = Some(value);
                }
                Ok(())
            }
            put(&mut config.uri, self.uri, "uri")?;
            put(&mut config.ca_file, self.cafile, "cafile")?;
            put(&mut config.ca_path, self.capath, "capath")?;
            put(&mut config.ca_data, self.cadata, "cadata")?;
            Ok(())
        }
    }

    pub(super) mod proxy {
        use serde::{Deserialize, Deserializer};

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<crate::Proxy>, D::Error> {
            Option::<String>::deserialize(deserializer)?
                .map(|url| crate::Proxy::parse(&url).map_err(serde::de::Error::custom))
                .transpose()
        }
    }

    pub(super) mod secs {
        use serde::{Deserialize, Deserializer};
        use std::time::Duration;

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            let secs = f64::deserialize(d)?;
            Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
        }
    }

    pub(super) mod qos {
        use sansmqtt_proto::QoS;
        use serde::{Deserialize, Deserializer};

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<QoS, D::Error> {
            let value = u8::deserialize(d)?;
            QoS::from_u8(value).ok_or_else(|| serde::de::Error::custom("QoS must be 0, 1 or 2"))
        }
    }

    pub(super) mod opt_qos {
        use sansmqtt_proto::QoS;
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
        use sansmqtt_proto::ProtocolVersion;
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
