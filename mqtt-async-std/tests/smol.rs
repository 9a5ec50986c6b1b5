//! The shared client suites (`mqtt_test_support::suite` and `::delivery`) against real brokers, each test run by
//! smol's executor.

/// Runs one test with `smol::block_on`.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    mqtt_test_support::init_test_tracing();
    smol::block_on(future)
}

mqtt_test_support::client_suite!(sansmqtt_async_std::AsyncIo, block_on);
mqtt_test_support::delivery_suite!(sansmqtt_async_std::AsyncIo, block_on);
