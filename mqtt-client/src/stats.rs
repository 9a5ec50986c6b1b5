//! Live statistics: [`ClientStats`] snapshots from [`MqttClient::stats`](crate::MqttClient::stats),
//! and with the `metrics` feature the same numbers through the `metrics` facade.
//!
//! The driver adds the bytes of each read and each write (one relaxed atomic add per system
//! call, never per message) and copies the session's gauges once per wake; everything else is
//! read from the state the handles already share (the publish budget, the inbox).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use sansmqtt_session::{Session, SessionStore};

use crate::Shared;

/// A snapshot of a client's counters and gauges ([`MqttClient::stats`](crate::MqttClient::stats)).
/// Counters (`bytes_*`, `reconnects`, `messages_dropped`, `publishes_refused`) count from the
/// client's creation;
/// gauges are the state at the connection task's last wake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Outgoing QoS 1/2 publishes sent and not yet acknowledged (PUBACK / PUBCOMP).
    pub publishes_in_flight: usize,
    /// Incoming QoS 1/2 messages not yet acknowledged (the application has not taken them, or
    /// with manual acks not acknowledged them) or, for QoS 2, not yet released by the broker.
    pub messages_in_flight: usize,
    /// Publishes accepted and not completed, QoS 0 included until written (see
    /// [`ClientConfig::max_queued`](crate::ClientConfig::max_queued)).
    pub queued_publishes: usize,
    /// Topic and payload bytes of those publishes (see
    /// [`ClientConfig::max_queued_bytes`](crate::ClientConfig::max_queued_bytes)).
    pub queued_bytes: usize,
    /// Received messages waiting for the application (`deliver_message` / `messages`).
    pub messages_waiting: usize,
    /// Received QoS 0 messages dropped because the application did not keep up (see
    /// [`Overflow`](crate::Overflow)).
    pub messages_dropped: u64,
    /// Accepted publishes refused when they came to be sent, after their call had completed
    /// (QoS 0 refused by a later CONNACK's limits; each also reported as
    /// [`ConnectionEvent::PublishRefused`](crate::ConnectionEvent::PublishRefused)).
    pub publishes_refused: u64,
    /// Connections accepted by a broker after the first one (automatic reconnects, failovers,
    /// and `reconnect` / `connect` calls after a disconnect).
    pub reconnects: u64,
    /// MQTT bytes handed to the transport (before TLS and WebSocket framing).
    pub bytes_sent: u64,
    /// MQTT bytes read from the transport (after TLS and WebSocket framing).
    pub bytes_received: u64,
    /// QoS 1/2 messages an MQTT 5 broker sent beyond the Receive Maximum the client
    /// announced. The client takes them (mosquitto 2.0 overruns the window once
    /// acknowledgements and new messages interleave, and ending the connection for it, as
    /// MQTT 5 suggests, would lose what a clean session had not delivered); `message_buffer`
    /// still bounds what it holds, by pausing reading (see
    /// [`ClientConfig::message_buffer`](crate::ClientConfig::message_buffer)). 0 with a
    /// broker that keeps to flow control.
    pub receive_maximum_overruns: u64,
    /// Round-trip time of the last answered PINGREQ (keep-alive or
    /// [`ping`](crate::MqttClient::ping)); `None` until one is answered.
    pub last_ping_rtt: Option<Duration>,
}

/// `last_ping_rtt` as stored: microseconds, or this for none.
const NO_RTT: u64 = u64::MAX;

/// The counters the driver updates.
pub(crate) struct Stats {
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    connections: AtomicU64,
    publishes_in_flight: AtomicUsize,
    messages_in_flight: AtomicUsize,
    receive_maximum_overruns: AtomicU64,
    ping_rtt_micros: AtomicU64,
    #[cfg(feature = "metrics")]
    metrics: export::Handles,
}

impl Stats {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(client_id: &str) -> Self {
        Self {
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            publishes_in_flight: AtomicUsize::new(0),
            messages_in_flight: AtomicUsize::new(0),
            receive_maximum_overruns: AtomicU64::new(0),
            ping_rtt_micros: AtomicU64::new(NO_RTT),
            #[cfg(feature = "metrics")]
            metrics: export::Handles::new(client_id),
        }
    }

    /// `n` bytes were handed to the transport.
    pub(crate) fn sent(&self, n: usize) {
        self.bytes_sent.fetch_add(n as u64, Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.bytes_sent.increment(n as u64);
    }

    /// `n` bytes were read from the transport.
    pub(crate) fn received(&self, n: usize) {
        self.bytes_received.fetch_add(n as u64, Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.bytes_received.increment(n as u64);
    }

    /// A broker accepted a connection (CONNACK).
    pub(crate) fn connected(&self) {
        let before = self.connections.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        if before > 0 {
            self.metrics.reconnects.increment(1);
        }
        let _ = before;
    }
}

impl Shared {
    /// Copies the session's gauges (once per driver wake), and with the `metrics` feature
    /// publishes every gauge.
    pub(crate) fn observe<S: SessionStore>(&self, session: &Session<S>) {
        let stats = &self.stats;
        stats
            .publishes_in_flight
            .store(session.inflight_len(), Relaxed);
        stats
            .messages_in_flight
            .store(session.incoming_inflight_len(), Relaxed);
        let overruns = session.receive_maximum_overruns();
        let before = stats.receive_maximum_overruns.swap(overruns, Relaxed);
        if before == 0 && overruns > 0 {
            tracing::warn!(
                "the broker sends more unacknowledged QoS 1/2 messages than the Receive Maximum \
                 announced ({}); taking them (counted in stats().receive_maximum_overruns) and \
                 bounding them by message_buffer",
                session.config().receive_maximum
            );
        }
        if let Some((sent, answered)) = session.last_ping() {
            let rtt = answered.saturating_duration_since(sent);
            let micros = u64::try_from(rtt.as_micros()).unwrap_or(NO_RTT - 1);
            stats.ping_rtt_micros.store(micros, Relaxed);
        }
        #[cfg(feature = "metrics")]
        stats.metrics.publish(&self.snapshot());
    }

    /// The current numbers.
    pub(crate) fn snapshot(&self) -> ClientStats {
        let stats = &self.stats;
        let rtt = stats.ping_rtt_micros.load(Relaxed);
        ClientStats {
            publishes_in_flight: stats.publishes_in_flight.load(Relaxed),
            messages_in_flight: stats.messages_in_flight.load(Relaxed),
            queued_publishes: self.budget.in_use(),
            queued_bytes: self.budget.bytes_in_use(),
            messages_waiting: self.inbox.len(),
            messages_dropped: self.inbox.dropped(),
            publishes_refused: self.refused.load(Relaxed),
            receive_maximum_overruns: stats.receive_maximum_overruns.load(Relaxed),
            reconnects: stats.connections.load(Relaxed).saturating_sub(1),
            bytes_sent: stats.bytes_sent.load(Relaxed),
            bytes_received: stats.bytes_received.load(Relaxed),
            last_ping_rtt: (rtt != NO_RTT).then(|| Duration::from_micros(rtt)),
        }
    }
}

#[cfg(feature = "metrics")]
mod export {
    //! The `metrics` facade: handles registered once per client (labelled with its client id)
    //! with the recorder installed at that moment, so a recorder must be installed before the
    //! client is created.

    use metrics::{Counter, Gauge, counter, gauge};

    use super::ClientStats;

    pub(super) struct Handles {
        pub(super) bytes_sent: Counter,
        pub(super) bytes_received: Counter,
        pub(super) reconnects: Counter,
        messages_dropped: Counter,
        publishes_refused: Counter,
        receive_maximum_overruns: Counter,
        publishes_in_flight: Gauge,
        messages_in_flight: Gauge,
        queued_publishes: Gauge,
        queued_bytes: Gauge,
        messages_waiting: Gauge,
        ping_rtt: Gauge,
    }

    impl Handles {
        pub(super) fn new(client_id: &str) -> Self {
            let id = client_id.to_owned();
            Self {
                bytes_sent: counter!("mqtt_client_bytes_sent_total", "client_id" => id.clone()),
                bytes_received: counter!("mqtt_client_bytes_received_total", "client_id" => id.clone()),
                reconnects: counter!("mqtt_client_reconnects_total", "client_id" => id.clone()),
                messages_dropped: counter!("mqtt_client_messages_dropped_total", "client_id" => id.clone()),
                publishes_refused: counter!("mqtt_client_publishes_refused_total", "client_id" => id.clone()),
                receive_maximum_overruns: counter!("mqtt_client_receive_maximum_overruns_total", "client_id" => id.clone()),
                publishes_in_flight: gauge!("mqtt_client_publishes_in_flight", "client_id" => id.clone()),
                messages_in_flight: gauge!("mqtt_client_messages_in_flight", "client_id" => id.clone()),
                queued_publishes: gauge!("mqtt_client_queued_publishes", "client_id" => id.clone()),
                queued_bytes: gauge!("mqtt_client_queued_bytes", "client_id" => id.clone()),
                messages_waiting: gauge!("mqtt_client_messages_waiting", "client_id" => id.clone()),
                ping_rtt: gauge!("mqtt_client_ping_rtt_seconds", "client_id" => id),
            }
        }

        /// The gauges and the counters kept elsewhere, from a snapshot.
        pub(super) fn publish(&self, stats: &ClientStats) {
            self.messages_dropped.absolute(stats.messages_dropped);
            self.publishes_refused.absolute(stats.publishes_refused);
            self.receive_maximum_overruns
                .absolute(stats.receive_maximum_overruns);
            self.publishes_in_flight
                .set(stats.publishes_in_flight as f64);
            self.messages_in_flight.set(stats.messages_in_flight as f64);
            self.queued_publishes.set(stats.queued_publishes as f64);
            self.queued_bytes.set(stats.queued_bytes as f64);
            self.messages_waiting.set(stats.messages_waiting as f64);
            if let Some(rtt) = stats.last_ping_rtt {
                self.ping_rtt.set(rtt.as_secs_f64());
            }
        }
    }
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::AtomicU64;
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    use super::*;

    /// Keeps every metric as an atomic, by name (the label is checked on registration).
    #[derive(Default)]
    struct Values(Mutex<HashMap<String, Arc<AtomicU64>>>);

    impl Values {
        fn slot(&self, key: &Key) -> Arc<AtomicU64> {
            let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
            assert_eq!(labels, [("client_id", "c1")], "{key:?}");
            let mut map = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(key.name().to_owned()).or_default().clone()
        }

        fn get(&self, name: &str) -> u64 {
            let map = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.get(name)
                .map_or_else(|| panic!("{name} not registered"), |v| v.load(Relaxed))
        }
    }

    impl Recorder for Values {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.slot(key))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.slot(key))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn the_numbers_reach_the_metrics_facade() {
        let values = Values::default();
        let stats = metrics::with_local_recorder(&values, || Stats::new("c1"));
        stats.sent(100);
        stats.sent(20);
        stats.received(7);
        stats.connected();
        assert_eq!(
            values.get("mqtt_client_reconnects_total"),
            0,
            "the first connection"
        );
        stats.connected();
        stats.metrics.publish(&ClientStats {
            publishes_in_flight: 3,
            messages_dropped: 5,
            last_ping_rtt: Some(Duration::from_millis(250)),
            ..ClientStats::default()
        });
        assert_eq!(values.get("mqtt_client_bytes_sent_total"), 120);
        assert_eq!(values.get("mqtt_client_bytes_received_total"), 7);
        assert_eq!(values.get("mqtt_client_reconnects_total"), 1);
        assert_eq!(values.get("mqtt_client_messages_dropped_total"), 5);
        let gauge = |name| f64::from_bits(values.get(name));
        assert_eq!(gauge("mqtt_client_publishes_in_flight"), 3.0);
        assert_eq!(gauge("mqtt_client_queued_bytes"), 0.0);
        assert_eq!(gauge("mqtt_client_ping_rtt_seconds"), 0.25);
    }
}
