//! The proxy suite (`mqtt_test_support::connectivity`) against real proxies (`microsocks`,
//! `tinyproxy`) and brokers, on Tokio.

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

mqtt_test_support::connectivity_suite!(sansmqtt_tokio::Tokio, block_on);
