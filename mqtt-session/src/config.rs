//! What a session is told up front ([`SessionConfig`]) and per connection ([`ConnectOptions`]).

use core::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use sansmqtt_proto::properties::ConnectProperties;
use sansmqtt_proto::{ProtocolVersion, Will};

/// How received QoS 1 and 2 messages are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckMode {
    /// PUBACK / PUBREC are queued when the message event is handed out by
    /// [`Session::poll_event`](crate::Session::poll_event): after delivery, not on receipt.
    #[default]
    Auto,
    /// The application acknowledges each message with [`Session::ack`](crate::Session::ack).
    Manual,
}

/// What happens to outgoing QoS 1/2 messages still in flight when the broker answers a
/// reconnect with "no session present" (a clean session, or a session the broker lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionLossPolicy {
    /// Send them again as new messages (DUP = 0). A QoS 2 message whose PUBREC had arrived is
    /// complete: the broker took ownership of it, so sending it again could duplicate it.
    #[default]
    Resend,
    /// Fail them with [`PublishError::SessionLost`](crate::PublishError::SessionLost).
    Fail,
}

/// What the session does when an MQTT 5 server sends more unacknowledged QoS 1/2 PUBLISHes
/// than the Receive Maximum the session announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReceiveMaximumExceeded {
    /// End the connection with DISCONNECT 0x93 (Receive Maximum exceeded), as MQTT 5.0 §3.3.4
    /// describes. The default: a session that holds at most what it announced.
    #[default]
    Disconnect,
    /// Take the message as if the window had room, and count it
    /// ([`Session::receive_maximum_overruns`](crate::Session::receive_maximum_overruns)).
    /// For servers known to overrun the window while otherwise sound (mosquitto 2.0 sends
    /// far beyond a client's Receive Maximum once acknowledgements and new messages
    /// interleave, and a disconnect loses every message a clean session had not taken).
    /// The Receive Maximum then bounds nothing: the caller must bound what it reads (stop
    /// reading while its own buffer of undelivered messages is full).
    Accept,
}

/// Session-wide settings; they hold for every connection of the session.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Protocol revision spoken on every connection.
    pub protocol_version: ProtocolVersion,
    /// Client identifier. Empty asks the server to assign one (MQTT 5 tells it in CONNACK;
    /// the session then uses the assigned one on reconnects).
    pub client_id: ByteString,
    /// Largest number of outgoing QoS 1/2 PUBLISH in flight; the server's receive maximum
    /// lowers it further. Later publishes wait in an ordered queue.
    pub max_inflight: u16,
    /// Largest number of publishes waiting behind the in-flight window; beyond it
    /// [`publish`](crate::Session::publish) fails with `QueueFull`, so memory stays bounded.
    pub max_queued: usize,
    /// Largest packet accepted from the server (also announced in MQTT 5 CONNECT).
    pub max_packet_size: u32,
    /// How many unacknowledged QoS 1/2 messages the server may send at once (MQTT 5 receive
    /// maximum, announced in CONNECT; exceeding it is a protocol error).
    pub receive_maximum: u16,
    /// What a server that exceeds `receive_maximum` meets (default: DISCONNECT 0x93).
    pub receive_maximum_exceeded: ReceiveMaximumExceeded,
    /// Highest topic alias accepted from the server (MQTT 5; 0 refuses aliases).
    pub topic_alias_maximum: u16,
    /// Replace repeated outgoing topics with topic aliases, within the server's maximum
    /// (MQTT 5).
    pub outgoing_topic_aliases: bool,
    /// When received messages are acknowledged.
    pub ack_mode: AckMode,
    /// What to do with in-flight messages when the server has no session for us.
    pub session_loss_policy: SessionLossPolicy,
    /// Subscribe again to every granted filter when the server has no session for us.
    pub resubscribe: bool,
    /// How long to wait for CONNACK after CONNECT.
    pub connect_timeout: Duration,
    /// How long to wait for PINGRESP (or any packet) after a PINGREQ before declaring the
    /// connection lost.
    pub ping_timeout: Duration,
    /// How long before the keep-alive period ends the PINGREQ goes out, so it reaches the
    /// server in time (amqtt's `ping_delay`). At most half the keep alive is taken off.
    pub ping_delay: Duration,
    /// Report [`Event::Stored`](crate::Event::Stored) when a QoS 1/2 publish has become
    /// durable in the store (off by default: one more event per message).
    pub report_stored: bool,
    /// Once the in-flight window is full, queued publishes move into it only when this many
    /// slots are free (at least 1, the default: refill as soon as one is). With a durable
    /// store every refill costs a sync, and refilling one slot per acknowledgement settles into
    /// a sync per message; refilling in steps of a quarter of the window keeps batches large
    /// (the silly-window avoidance of TCP).
    pub refill_batch: u16,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            protocol_version: ProtocolVersion::V311,
            client_id: ByteString::new(),
            max_inflight: 100,
            max_queued: 10_000,
            max_packet_size: 1024 * 1024,
            receive_maximum: 100,
            receive_maximum_exceeded: ReceiveMaximumExceeded::Disconnect,
            topic_alias_maximum: 16,
            outgoing_topic_aliases: false,
            ack_mode: AckMode::Auto,
            session_loss_policy: SessionLossPolicy::Resend,
            resubscribe: true,
            connect_timeout: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(10),
            ping_delay: Duration::ZERO,
            report_stored: false,
            refill_batch: 1,
        }
    }
}

impl SessionConfig {
    /// Defaults for `client_id` and `protocol_version`.
    pub fn new(client_id: impl Into<ByteString>, protocol_version: ProtocolVersion) -> Self {
        Self {
            client_id: client_id.into(),
            protocol_version,
            ..Self::default()
        }
    }
}

/// Settings of one CONNECT; a reconnect may change them (e.g. `clean_start`). Its `Debug`
/// output shows the password as `***`.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Clean Session (3.1.1) / Clean Start (5.0).
    pub clean_start: bool,
    /// Keep alive; zero turns keep-alive pings off. Sent in whole seconds (at most 65,535).
    pub keep_alive: Duration,
    /// Will message.
    pub will: Option<Will>,
    /// User name.
    pub username: Option<ByteString>,
    /// Password.
    pub password: Option<Bytes>,
    /// MQTT 5 session expiry interval in seconds (0: the session ends with the connection).
    pub session_expiry_interval: Option<u32>,
    /// Further MQTT 5 CONNECT properties (user properties, enhanced authentication method
    /// and data, request problem / response information). Receive maximum, maximum packet
    /// size and topic alias maximum come from [`SessionConfig`] and override these.
    pub properties: ConnectProperties,
}

impl core::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        /// Stands in for the password.
        struct Redacted;
        impl core::fmt::Debug for Redacted {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("***")
            }
        }
        // Destructured so that a new field cannot be forgotten here.
        let Self {
            clean_start,
            keep_alive,
            will,
            username,
            password,
            session_expiry_interval,
            properties,
        } = self;
        f.debug_struct("ConnectOptions")
            .field("clean_start", clean_start)
            .field("keep_alive", keep_alive)
            .field("will", will)
            .field("username", username)
            .field("password", &password.as_ref().map(|_| Redacted))
            .field("session_expiry_interval", session_expiry_interval)
            .field("properties", properties)
            .finish()
    }
}

impl ConnectOptions {
    /// Clean start with the given keep alive.
    pub fn new(keep_alive: Duration) -> Self {
        Self {
            clean_start: true,
            keep_alive,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password_and_the_authentication_data() {
        let mut options = ConnectOptions::new(Duration::from_secs(5));
        options.username = Some("alice".into());
        options.password = Some(Bytes::from_static(b"hunter2-probe"));
        options.properties.authentication_data = Some(Bytes::from_static(b"hunter2-probe"));
        let shown = format!("{options:?}");
        assert!(!shown.contains("hunter2-probe"), "{shown}");
        assert!(
            shown.contains("alice") && shown.contains("password: Some(***)"),
            "{shown}"
        );
    }
}
