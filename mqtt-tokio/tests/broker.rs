//! The shared client suites (`mqtt_test_support::suite` and `::delivery`) against real brokers, on Tokio.
//!
//! `RUST_LOG=sansmqtt_session=debug cargo test -p sansmqtt-tokio --test broker -- NAME` shows the
//! client's packet trace for one test.

use std::future::Future;

/// Runs one test on a fresh multi-threaded Tokio runtime.
fn block_on<F: Future>(future: F) -> F::Output {
    mqtt_test_support::init_test_tracing();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a Tokio runtime")
        .block_on(future)
}

mqtt_test_support::client_suite!(sansmqtt_tokio::Tokio, block_on);
mqtt_test_support::delivery_suite!(sansmqtt_tokio::Tokio, block_on);
