//! The QUIC suite (`mqtt_test_support::quic_suite!`) over `quic://` against mqtt5's broker, each
//! test on a fresh multi-threaded Tokio runtime. Needs this crate's `quic` feature.

/// Runs one test on a fresh two-worker Tokio runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    mqtt_test_support::init_test_tracing();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a Tokio runtime")
        .block_on(future)
}

mqtt_test_support::quic_suite!(sansmqtt_tokio::Tokio, block_on);
