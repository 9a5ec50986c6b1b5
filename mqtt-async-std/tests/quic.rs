//! The QUIC suite (`mqtt_test_support::quic_suite!`) over `quic://` against mqtt5's broker, each
//! test run by smol's executor (quinn on async-io). Needs this crate's `quic` feature.

/// Runs one test with `smol::block_on`.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    mqtt_test_support::init_test_tracing();
    smol::block_on(future)
}

mqtt_test_support::quic_suite!(sansmqtt_async_std::AsyncIo, block_on);
