//! MQTT over QUIC against MQTT over TCP + TLS through the link emulator ([`NetemLink`]),
//! counted at the application: the same QoS 1 stream over `mqtts://` (mosquitto, and mqtt5's
//! broker) and over `quic://` (mqtt5's broker), brokers in namespace A, clients in namespace
//! B. Needs root, `/dev/net/tun`, mosquitto and this crate's `quic` feature; fails without.
//!
//! - At 50 ms ± 10 ms one way with 0 %, 2 % and 5 % loss, every message arrives.
//! - Through a 2 s and a 10 s cut of the link, and a change of the client's address under
//!   the connection, no QoS 1 message is lost.
//!
//! The measurement code is `mqtt_test_support::quic_link`, shared with the benchmark
//! (`e2e_bench --quic-link`, which repeats every case and writes JSON). The figures are
//! printed (`-- --nocapture`) as one run's measurements on a shared machine; nothing here
//! asserts on time.
//!
//! [`NetemLink`]: mqtt_test_support::NetemLink

// The measurements are this test's output.
#![allow(clippy::print_stderr)]

use std::time::Duration;

use mqtt_test_support::quic_link::{
    self, Disruption, LinkBed, StreamPlan, disruption_comparison, lossy_comparison, tokio_block_on,
};
use sansmqtt_tokio::Tokio;

/// Messages per lossy run, and how many are in flight at once.
const LOSSY: (usize, usize) = (300, 20);

#[test]
fn qos1_stream_over_mqtts_and_quic_on_a_lossy_link() {
    mqtt_test_support::init_test_tracing();
    let bed = LinkBed::start();
    let runs = lossy_comparison::<Tokio>(
        &bed,
        &bed.transports(),
        &[0.0, 0.02, 0.05],
        1,
        LOSSY,
        tokio_block_on,
        |_| {},
    );
    for run in &runs {
        assert_eq!(
            run.figures.received, LOSSY.0,
            "{} at {} loss: every message arrives",
            run.transport, run.loss
        );
    }
    eprintln!(
        "{} QoS 1 messages, {} in flight, 50 ms ± 10 ms one way; one run each:\n{}",
        LOSSY.0,
        LOSSY.1,
        quic_link::lossy_table(&runs)
    );
}

#[test]
fn qos1_stream_through_link_cuts_and_an_address_change_loses_nothing() {
    mqtt_test_support::init_test_tracing();
    let bed = LinkBed::start();
    let disruptions = [
        Disruption::Cut(Duration::from_secs(2)),
        Disruption::Cut(Duration::from_secs(10)),
        Disruption::MoveAddress,
    ];
    // The client's default keep-alive (10 s): a TCP connection left behind by the address
    // change is given up within about two keep-alives, which keeps the test short.
    let plan = StreamPlan {
        keep_alive: Duration::from_secs(10),
        ..StreamPlan::default()
    };
    let transports = bed.transports();
    let runs = disruption_comparison::<Tokio>(
        &bed,
        &transports,
        &disruptions,
        1,
        plan,
        tokio_block_on,
        |run| {
            eprintln!("{run:?}");
        },
    );
    eprintln!(
        "{} QoS 1 messages/s, keep-alive {:?}, perfect link but for the disruption; one run \
         each:\n{}",
        plan.rate,
        plan.keep_alive,
        quic_link::disruption_table(&runs)
    );
    for run in &runs {
        assert_eq!(
            run.figures.lost,
            0,
            "{} through {}: no QoS 1 message lost",
            run.transport,
            run.disruption.name()
        );
    }
}
