//! [`ClientConfig`]: the options of amqtt's client configuration, typed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use sansmqtt_proto::{ProtocolVersion, QoS};

use crate::error::ConfigError;
use crate::reconnect::Jitter;
use crate::secret::{RedactedUris, Secret, redacted_uri};

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
/// drop is counted ([`ClientStats::messages_dropped`](crate::ClientStats::messages_dropped)) and
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
/// and `keyfile`, amqtt's `connection` section (also spelled `broker`, its older name)
/// holding `uri`, `cafile`, `capath`, `cadata`, `certfile` and `keyfile`, and amqtt's
/// `plugins` section, which is ignored with a warning in the log (its Python classes have no
/// meaning here). A key it does not know is an error that names it, so a misspelled option
/// is never silently ignored; a key given both at the top level and in `connection` is an
/// error too, and so is a `certfile` without its `keyfile` (or the reverse).
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
// `Debug` is written out (below) to show URIs without their passwords.
#[derive(Clone)]
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
    /// Verify the server's certificate at all (amqtt's `verify_cert`). Default: on. Off, any
    /// certificate is accepted from anyone for any name (`check_hostname` then does nothing):
    /// the link is encrypted but the server is not authenticated. Turn it off only for a test
    /// broker with a throw-away certificate; to trust a private CA, set `ca_file` instead.
    pub verify_cert: bool,
    /// A ready rustls configuration for `mqtts://` and `wss://` (custom verifier, in-memory
    /// client certificate, ALPN, session resumption); when set, the CA and certificate
    /// options above are not used. Not loaded from documents.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    #[cfg_attr(feature = "serde", serde(skip))]
    pub tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// User name (the URI's user name wins).
    pub username: Option<String>,
    /// Password (the URI's password wins). Never printed: see [`Secret`].
    pub password: Option<Secret>,
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
    /// may then arrive twice, as QoS 1 allows; QoS 2 messages still arrive once.
    ///
    /// With a **clean session** (3.1.1, `clean_session(true)`) a dropped message would be
    /// lost, and withholding acknowledgements does not slow a broker that has no in-flight
    /// limit, so there the client **stops reading the socket** once `message_buffer` QoS 1/2
    /// messages wait and another arrives: that message (and the rest of the same read, at
    /// most 64 KiB) waits in the client, and reading resumes as soon as the application has
    /// taken one. (QoS 0 messages keep the burst pause and overflow policy above; a broker
    /// whose in-flight window is below `message_buffer` never causes this pause.) TCP flow
    /// control holds the broker back meanwhile. This pause has no
    /// time bound: during it the client's own PINGRESP deadline is suspended (no PINGRESP can
    /// be read) while keep-alive PINGREQs still go out, so the broker keeps the connection;
    /// a broker that dies meanwhile is noticed once the application takes messages again (or
    /// when a write fails). Nothing is lost and nothing is received twice. Control packets
    /// (PINGRESP, acknowledgements of the client's own publishes) wait behind the unread
    /// messages during the pause; so while the application waits for an answer to its own
    /// request (a QoS 1/2 publish's acknowledgement, a SUBACK, a `ping`), the client reads
    /// on, holding what it reads (in order, nothing dropped): an application that awaits its
    /// publish before taking the next message (a request/response loop) cannot deadlock, and
    /// the bound gives way for as long as such a request is outstanding.
    ///
    /// **MQTT 5** bounds QoS 1/2 by the Receive Maximum, announced from this value, so a
    /// broker that keeps to flow control never fills the buffer with them. One that overruns
    /// the window (mosquitto 2.0 does, by hundreds, once acknowledgements and new messages
    /// interleave) is served rather than disconnected (counted in
    /// [`ClientStats::receive_maximum_overruns`](crate::ClientStats::receive_maximum_overruns),
    /// logged once at WARN) and meets the same read pause as a clean 3.1.1 session.
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
    /// MQTT 5 session expiry interval: how long the broker keeps the session once the
    /// connection ends, sent in whole seconds (`Duration::MAX`, or anything from 4,294,967,295
    /// seconds on, means never). `None`: the session ends with the connection.
    #[cfg_attr(feature = "serde", serde(with = "serde_impl::opt_secs"))]
    pub session_expiry_interval: Option<Duration>,
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
    /// amqtt's `plugins` section (Python classes to load): accepted so amqtt's documents
    /// load, reported as ignored by the `Deserialize` impl, always `None` afterwards.
    #[cfg(feature = "serde")]
    #[serde(rename = "plugins")]
    amqtt_plugins: Option<serde::de::IgnoredAny>,
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
            verify_cert: true,
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
            #[cfg(feature = "serde")]
            amqtt_plugins: None,
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured so that a new field cannot be forgotten here. The URIs may carry a
        // password (`user:pw@`); `password` and the authentication data print as `***`.
        let Self {
            keep_alive,
            ping_delay,
            default_qos,
            default_retain,
            auto_reconnect,
            reconnect_retries,
            reconnect_max_interval,
            clean_session,
            will,
            uri,
            ca_file,
            ca_path,
            ca_data,
            cert_file,
            key_file,
            check_hostname,
            verify_cert,
            #[cfg(feature = "tls")]
            tls_config,
            username,
            password,
            protocol_version,
            fallback_to_v311,
            connect_timeout,
            max_inflight,
            max_queued,
            max_queued_bytes,
            max_packet_size,
            message_buffer,
            overflow,
            receive_maximum,
            topic_alias_maximum,
            outgoing_topic_aliases,
            manual_acks,
            topics,
            session_expiry_interval,
            session_store,
            connect_properties,
            authenticator,
            will_properties,
            uris,
            shuffle_uris,
            reconnect_initial_interval,
            reconnect_jitter,
            follow_server_reference,
            proxy,
            proxy_from_env,
            proxy_error,
            #[cfg(feature = "serde")]
                amqtt_broker: _,
            #[cfg(feature = "serde")]
                amqtt_plugins: _,
        } = self;
        let mut out = f.debug_struct("ClientConfig");
        out.field("keep_alive", keep_alive)
            .field("ping_delay", ping_delay)
            .field("default_qos", default_qos)
            .field("default_retain", default_retain)
            .field("auto_reconnect", auto_reconnect)
            .field("reconnect_retries", reconnect_retries)
            .field("reconnect_max_interval", reconnect_max_interval)
            .field("clean_session", clean_session)
            .field("will", will)
            .field("uri", &uri.as_deref().map(redacted_uri))
            .field("ca_file", ca_file)
            .field("ca_path", ca_path)
            .field("ca_data", ca_data)
            .field("cert_file", cert_file)
            .field("key_file", key_file)
            .field("check_hostname", check_hostname)
            .field("verify_cert", verify_cert);
        #[cfg(feature = "tls")]
        out.field(
            "tls_config",
            &tls_config.as_ref().map(|_| "rustls::ClientConfig"),
        );
        out.field("username", username)
            .field("password", password)
            .field("protocol_version", protocol_version)
            .field("fallback_to_v311", fallback_to_v311)
            .field("connect_timeout", connect_timeout)
            .field("max_inflight", max_inflight)
            .field("max_queued", max_queued)
            .field("max_queued_bytes", max_queued_bytes)
            .field("max_packet_size", max_packet_size)
            .field("message_buffer", message_buffer)
            .field("overflow", overflow)
            .field("receive_maximum", receive_maximum)
            .field("topic_alias_maximum", topic_alias_maximum)
            .field("outgoing_topic_aliases", outgoing_topic_aliases)
            .field("manual_acks", manual_acks)
            .field("topics", topics)
            .field("session_expiry_interval", session_expiry_interval)
            .field("session_store", session_store)
            .field("connect_properties", connect_properties)
            .field("authenticator", authenticator)
            .field("will_properties", will_properties)
            .field("uris", &RedactedUris(uris))
            .field("shuffle_uris", shuffle_uris)
            .field("reconnect_initial_interval", reconnect_initial_interval)
            .field("reconnect_jitter", reconnect_jitter)
            .field("follow_server_reference", follow_server_reference)
            // `Proxy` shows its credentials as `***`; its error never holds the URL.
            .field("proxy", proxy)
            .field("proxy_from_env", proxy_from_env)
            .field("proxy_error", proxy_error)
            .finish()
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
    /// Sets [`keep_alive`](Self::keep_alive), announced in CONNECT: the broker drops a client
    /// silent for 1.5 times this, and the client pings when idle. Default 10 s (amqtt's);
    /// 0 turns keep-alive off; sent in whole seconds, at most 65,535 s (more, or a non-zero
    /// value below 1 s, fails `connect` with [`ConfigError`]). Raise it to save traffic on
    /// idle links, lower it to notice a dead link sooner.
    keep_alive: Duration => keep_alive,
    /// Sets [`ping_delay`](Self::ping_delay): how long before the keep-alive deadline the
    /// PINGREQ goes out. Default 1 s; at most half the keep alive is taken off, so with a
    /// keep alive of 1 s the ping goes out after 0.5 s. Raise it on links whose round trip
    /// is longer.
    ping_delay: Duration => ping_delay,
    /// Sets [`default_qos`](Self::default_qos), for publishes that set none (amqtt's
    /// `default_qos`). Default QoS 0. Raise it when most of the application's messages must
    /// arrive.
    default_qos: QoS => default_qos,
    /// Sets [`default_retain`](Self::default_retain), for publishes that set none (amqtt's
    /// `default_retain`). Default off. Turn it on when every message is a current state that
    /// a new subscriber should get at once.
    default_retain: bool => default_retain,
    /// Sets [`auto_reconnect`](Self::auto_reconnect). Default on (amqtt's); turn it off when
    /// the application handles a lost connection itself (a command-line tool, a test).
    auto_reconnect: bool => auto_reconnect,
    /// Sets [`reconnect_retries`](Self::reconnect_retries): attempts per loss before giving
    /// up. Default `Some(2)` (amqtt's); `None` retries forever, as a long-running service wants.
    reconnect_retries: Option<u32> => reconnect_retries,
    /// Sets [`reconnect_max_interval`](Self::reconnect_max_interval), the cap of the backoff:
    /// every delay, the first one included, is at most this. Default 10 s. Lower it to come back sooner after long outages, at the price of more
    /// attempts against a broker that is down.
    reconnect_max_interval: Duration => reconnect_max_interval,
    /// Sets [`clean_session`](Self::clean_session). Default on: the broker forgets the
    /// session. Turn it off (with a fixed client id) to receive QoS 1/2 messages published
    /// while offline.
    clean_session: bool => clean_session,
    /// Sets the [`will`](Self::will), published by the broker if the connection ends without
    /// DISCONNECT. Default none. Set it so that others learn when this client dies.
    will: WillConfig => Some(will),
    /// Sets [`uri`](Self::uri) (amqtt's `uri` key), used by `connect(None)` and reconnects,
    /// before [`uris`](Self::uris). Default none: `connect` then needs a URI. Set it when the
    /// broker's address belongs in the configuration rather than in the code.
    uri: impl Into<String> => Some(uri.into()),
    /// Sets [`ca_file`](Self::ca_file) (amqtt's `cafile`): trust the CAs in this PEM file
    /// instead of the default roots. Default none. Set it for a broker with a private CA.
    ca_file: impl Into<PathBuf> => Some(ca_file.into()),
    /// Sets [`ca_path`](Self::ca_path) (amqtt's `capath`): trust the CAs in this directory's
    /// PEM files. Default none. Set it when the private CAs are kept as a directory (as
    /// `/etc/ssl/certs` is).
    ca_path: impl Into<PathBuf> => Some(ca_path.into()),
    /// Sets [`ca_data`](Self::ca_data) (amqtt's `cadata`): trust these PEM certificates.
    /// Default none. Set it when they come from a secret store rather than a file.
    ca_data: impl Into<String> => Some(ca_data.into()),
    /// Sets [`cert_file`](Self::cert_file) (amqtt's `certfile`), the client certificate for
    /// mutual TLS (with [`key_file`](Self::key_file)). Default none. Set it when the broker
    /// authenticates clients by certificate.
    cert_file: impl Into<PathBuf> => Some(cert_file.into()),
    /// Sets [`key_file`](Self::key_file) (amqtt's `keyfile`), the private key of
    /// `cert_file`. Default none; set it with `cert_file`.
    key_file: impl Into<PathBuf> => Some(key_file.into()),
    /// Sets [`check_hostname`](Self::check_hostname). Default on. Turn it off only for a
    /// broker whose certificate names another host (the chain is still verified).
    check_hostname: bool => check_hostname,
    /// Sets [`verify_cert`](Self::verify_cert). Default on; off accepts any server
    /// certificate: for test brokers only.
    verify_cert: bool => verify_cert,
    /// Sets the user name sent in CONNECT. Default none; a URI's user name wins. Set it when
    /// the broker requires a login.
    username: impl Into<String> => Some(username.into()),
    /// Sets the password (a `&str`, `String` or bytes), never printed. Default none; a URI's
    /// password wins. Set it with the user name.
    password: impl Into<Secret> => Some(password.into()),
    /// Sets [`protocol_version`](Self::protocol_version). Default 3.1.1 (amqtt's); choose
    /// 5.0 for reason codes, properties and flow control (with
    /// [`fallback_to_v311`](Self::fallback_to_v311) when the broker may be 3.1.1-only).
    protocol_version: ProtocolVersion => protocol_version,
    /// Sets [`fallback_to_v311`](Self::fallback_to_v311). Default off. Turn it on, with
    /// `protocol_version(ProtocolVersion::V5)`, when the broker may speak only 3.1.1.
    fallback_to_v311: bool => fallback_to_v311,
    /// Sets [`connect_timeout`](Self::connect_timeout): TCP, TLS, WebSocket and CONNACK
    /// together. Default 10 s. Raise it for slow links or brokers under load.
    connect_timeout: Duration => connect_timeout,
    /// Sets [`max_inflight`](Self::max_inflight): outgoing QoS 1/2 publishes awaiting their
    /// acknowledgement at once. Default: what the broker takes (see the field). At least 1
    /// (0 fails `connect` with [`ConfigError`]). Raise it only as far as the broker's quota.
    max_inflight: u16 => Some(max_inflight),
    /// Sets [`max_queued`](Self::max_queued): accepted, unfinished publishes before
    /// `publish` waits. Default 10,000. At least 1 (0 fails `connect` with [`ConfigError`]).
    /// Lower it to bound memory tighter; raise it for bursts larger than that.
    max_queued: usize => max_queued,
    /// Sets [`max_queued_bytes`](Self::max_queued_bytes): topic and payload bytes of those
    /// publishes. Default 64 MiB. Lower it on small devices.
    max_queued_bytes: usize => max_queued_bytes,
    /// Sets [`max_packet_size`](Self::max_packet_size): the largest packet accepted from the
    /// broker (and announced to it in MQTT 5). Default 1 MiB. At least 2 (0 or 1 fails
    /// `connect` with [`ConfigError`]). Raise it for larger messages.
    max_packet_size: u32 => max_packet_size,
    /// Sets [`message_buffer`](Self::message_buffer): received messages held for the
    /// application. Default 1,024. At least 1 (0 fails `connect` with [`ConfigError`]). Raise
    /// it for bursty QoS 0 traffic the application drains slowly.
    message_buffer: usize => message_buffer,
    /// Sets [`overflow`](Self::overflow): which QoS 0 message is dropped when the buffer is
    /// full. Default [`Overflow::DropNewest`]; [`Overflow::DropOldest`] for readings where the
    /// freshest matters.
    overflow: Overflow => overflow,
    /// Sets the MQTT 5 [`receive_maximum`](Self::receive_maximum) announced to the broker.
    /// Default: `message_buffer` (at most 65,535). At least 1 (0 fails `connect` with
    /// [`ConfigError`]). Lower it to take fewer unacknowledged messages at once than the
    /// buffer holds.
    receive_maximum: u16 => Some(receive_maximum),
    /// Sets the MQTT 5 [`topic_alias_maximum`](Self::topic_alias_maximum) announced to the
    /// broker. Default 0 (none). Raise it to let the broker shorten repeated topics.
    topic_alias_maximum: u16 => topic_alias_maximum,
    /// Sets [`outgoing_topic_aliases`](Self::outgoing_topic_aliases). Default off. Turn it on
    /// for many publishes on a few long topics (MQTT 5).
    outgoing_topic_aliases: bool => outgoing_topic_aliases,
    /// Sets [`manual_acks`](Self::manual_acks). Default off. Turn it on to acknowledge a QoS
    /// 1/2 message only once it is processed, so a crash before that gets it again.
    manual_acks: bool => manual_acks,
    /// Sets the MQTT 5 [`session_expiry_interval`](Self::session_expiry_interval): how long
    /// the broker keeps the session after the connection ends, in whole seconds (at most
    /// 4,294,967,295 s; `Duration::MAX` means never expires). Default none (ends with the
    /// connection). Set it with `clean_session(false)` to receive what was published offline.
    session_expiry_interval: Duration => Some(session_expiry_interval),
    /// Sets [`session_store`](Self::session_store): keep in-flight QoS 1/2 state in a durable
    /// store in this directory. Default none (in memory). Set it when messages must survive a
    /// crash of the process.
    session_store: impl Into<PathBuf> => Some(session_store.into()),
    /// Sets the further MQTT 5 [`connect_properties`](Self::connect_properties). Default none.
    /// Set them for user properties on CONNECT or to ask for response or problem
    /// information.
    connect_properties: sansmqtt_proto::properties::ConnectProperties => connect_properties,
    /// Sets the MQTT 5 [`will_properties`](Self::will_properties). Default none. Set them to
    /// delay the will or to give it an expiry, a content type or user properties.
    will_properties: sansmqtt_proto::properties::WillProperties => will_properties,
    /// Sets the MQTT 5 enhanced authentication method ([`authenticator`](Self::authenticator)).
    /// Default none: user name and password only. Set it for a broker that wants enhanced
    /// authentication (SCRAM, tokens).
    authenticator: impl crate::Authenticator => Some(std::sync::Arc::new(authenticator)),
    /// Sets [`shuffle_uris`](Self::shuffle_uris). Default off. Turn it on for a fleet of
    /// clients sharing one list of cluster nodes.
    shuffle_uris: bool => shuffle_uris,
    /// Sets [`reconnect_initial_interval`](Self::reconnect_initial_interval), the first
    /// backoff (capped, as every delay, at `reconnect_max_interval`). Default 1 s. Lower it
    /// to come back sooner after a short loss.
    reconnect_initial_interval: Duration => reconnect_initial_interval,
    /// Sets [`reconnect_jitter`](Self::reconnect_jitter). Default ±25%, so that clients
    /// dropped together do not come back together; a spread above 100% fails `connect`
    /// with [`ConfigError`]. [`Jitter::None`] for a single client whose timing matters.
    reconnect_jitter: Jitter => reconnect_jitter,
    /// Sets [`follow_server_reference`](Self::follow_server_reference). Default off; turn it
    /// on for brokers that redirect clients (MQTT 5) when you trust them to.
    follow_server_reference: bool => follow_server_reference,
    /// Sets [`proxy_from_env`](Self::proxy_from_env). Default off; turn it on to honour
    /// `https_proxy` / `http_proxy` / `all_proxy` / `no_proxy` as other tools do.
    proxy_from_env: bool => proxy_from_env,
}

impl ClientConfig {
    /// Sets [`tls_config`](Self::tls_config): a ready rustls configuration (a
    /// `rustls::ClientConfig` or an `Arc` of one), used as given for `mqtts://`, `wss://` and
    /// `quic://`; the CA and certificate options are then not used. Default none: the client
    /// builds one from those options. Set it for what they cannot say: a custom verifier, a
    /// client certificate held in memory, ALPN, session resumption. The only way to hand over
    /// a rustls configuration (`connect` has none of its own).
    ///
    /// ```no_run
    /// # fn example(rustls_config: rustls::ClientConfig) {
    /// use sansmqtt_client::ClientConfig;
    ///
    /// let config = ClientConfig::default().tls_config(rustls_config);
    /// # let _ = config;
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    #[must_use]
    pub fn tls_config(
        mut self,
        tls_config: impl Into<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Self {
        self.tls_config = Some(tls_config.into());
        self
    }

    /// Connects through the proxy at `url`: `socks5://[user:password@]host[:port]` or
    /// `http://[user:password@]host[:port]` (see [`proxy`](Self::proxy)). Default none:
    /// direct connections. Set it when the broker is reachable only through a proxy. A URL
    /// that does not parse makes `connect` fail with
    /// [`ProxyError::InvalidUrl`](crate::ProxyError), as an invalid broker URI does;
    /// [`Proxy::parse`](crate::Proxy::parse) checks one earlier.
    #[must_use]
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        match crate::Proxy::parse(&url.into()) {
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

    /// Sets [`uris`](Self::uris), the brokers to fail over between (a cluster's nodes),
    /// walked by `connect(None)` and every reconnect after [`uri`](Self::uri). Default
    /// none. The one place for a list of brokers: `connect(uri)` takes one.
    ///
    /// ```no_run
    /// # use sansmqtt_client::{ClientConfig, ClientError, MqttClient, Runtime};
    /// # async fn example<R: Runtime + Default>() -> Result<(), ClientError> {
    /// let config = ClientConfig::default()
    ///     .uris(["mqtt://node-a:1883", "mqtt://node-b:1883"])
    ///     .shuffle_uris(true);
    /// let client = MqttClient::<R>::new(None, config);
    /// client.connect(None).await?;
    /// # Ok(())
    /// # }
    /// ```
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

    /// Adds per-topic publish defaults (amqtt's `topics` section): a publish on exactly
    /// `topic` that sets no QoS or retain flag takes them from `config`. Default none.
    #[must_use]
    pub fn topic(mut self, topic: impl Into<String>, config: TopicConfig) -> Self {
        self.topics.insert(topic.into(), config);
        self
    }

    /// Checks the options a setter cannot refuse: values out of range are an error that
    /// names them, never silently clamped. `connect` calls it (failing with
    /// [`ClientError::InvalidConfig`](crate::ClientError::InvalidConfig)), and so does loading
    /// a document (the `serde` feature).
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn at_least(option: &'static str, value: u64, min: u64) -> Result<(), ConfigError> {
            if value < min {
                return Err(ConfigError::TooSmall { option, value, min });
            }
            Ok(())
        }
        at_least("max_queued", self.max_queued as u64, 1)?;
        at_least("message_buffer", self.message_buffer as u64, 1)?;
        at_least("max_packet_size", u64::from(self.max_packet_size), 2)?;
        if let Some(window) = self.max_inflight {
            at_least("max_inflight", u64::from(window), 1)?;
        }
        if let Some(maximum) = self.receive_maximum {
            at_least("receive_maximum", u64::from(maximum), 1)?;
        }
        // CONNECT carries the keep alive as 16-bit whole seconds.
        let max_keep_alive = u64::from(u16::MAX);
        if self.keep_alive.as_secs() > max_keep_alive {
            return Err(ConfigError::TooLarge {
                option: "keep_alive",
                value: self.keep_alive.as_secs(),
                max: max_keep_alive,
            });
        }
        if !self.keep_alive.is_zero() && self.keep_alive < Duration::from_secs(1) {
            return Err(ConfigError::BelowOneSecond {
                option: "keep_alive",
                value: self.keep_alive,
            });
        }
        if let Jitter::Spread { percent } = self.reconnect_jitter
            && percent > 100
        {
            return Err(ConfigError::TooLarge {
                option: "reconnect_jitter",
                value: u64::from(percent),
                max: 100,
            });
        }
        Ok(())
    }

    /// The session expiry interval as CONNECT carries it: whole seconds, `u32::MAX` (never
    /// expires, MQTT 5.0 3.1.2.11.2) for anything as long or longer.
    pub(crate) fn session_expiry_secs(&self) -> Option<u32> {
        self.session_expiry_interval
            .map(|expiry| u32::try_from(expiry.as_secs()).unwrap_or(u32::MAX))
    }

    /// The in-flight window for `version` (see [`max_inflight`](Self::max_inflight)).
    pub(crate) fn inflight_window(&self, version: ProtocolVersion) -> u16 {
        match (self.max_inflight, version) {
            // 0 is refused by `validate` before any connection.
            (Some(window), _) => window,
            (None, ProtocolVersion::V311) => 20,
            // MQTT 5: the broker's Receive Maximum lowers this when the session applies it.
            (None, _) => u16::MAX,
        }
    }

    /// The Receive Maximum announced in MQTT 5 CONNECT: `receive_maximum`, else
    /// `message_buffer` up to the largest the property can carry (both at least 1, as
    /// `validate` checked before any connection).
    pub(crate) fn announced_receive_maximum(&self) -> u16 {
        self.receive_maximum
            .unwrap_or_else(|| u16::try_from(self.message_buffer).unwrap_or(u16::MAX))
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
        config.validate().map_err(serde::de::Error::custom)?;
        if let Some(broker) = config.amqtt_broker.take() {
            broker.fold_into(&mut config)?;
        }
        if config.amqtt_plugins.take().is_some() {
            tracing::warn!(
                "the configuration's `plugins` section (amqtt's Python plugins) is ignored"
            );
        }
        // amqtt's rule: a client certificate without its key (or the reverse) is a mistake,
        // not a request for no client certificate.
        if config.cert_file.is_some() != config.key_file.is_some() {
            return Err(serde::de::Error::custom(
                "`certfile` and `keyfile` go together: give both or neither",
            ));
        }
        Ok(config)
    }
}

#[cfg(feature = "serde")]
mod serde_impl;
