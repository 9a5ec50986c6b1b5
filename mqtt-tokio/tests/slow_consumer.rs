//! A subscriber that reads nothing for 60 s while a publisher floods it at QoS 0 and QoS 1
//! stays connected, keeps its memory bounded, and then receives every QoS 1 message
//! (`mqtt_test_support::delivery::slow_consumer_scenario`, here with the full minute and the
//! process's resident memory sampled). Its own test binary, so the memory figures are this
//! scenario's alone.

// The figures are the report of this test (`--nocapture` shows them).
#![allow(clippy::print_stderr)]

use std::time::Duration;

use mqtt_test_support::delivery::slow_consumer_scenario;
use mqtt_test_support::rss::RssSampler;

#[test]
fn slow_consumer_for_a_minute_keeps_memory_bounded_and_loses_no_qos1_message() {
    mqtt_test_support::init_test_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a Tokio runtime");
    let sampler = RssSampler::start(Duration::from_millis(250));
    let report = runtime.block_on(slow_consumer_scenario::<sansmqtt_tokio::Tokio>(
        Duration::from_secs(60),
    ));
    let rss = sampler.stop();
    eprintln!("slow consumer: {report:?}; resident memory: {rss}");
    // Growth over the last three quarters of the flood: a bounded client levels off.
    let growth = rss.growth_after(Duration::from_secs(15));
    assert!(
        growth < 16 * 1024,
        "resident memory grew by {growth} KiB during the flood ({rss})"
    );
    assert!(rss.peak_kib < 256 * 1024, "peak resident memory {rss}");
}
