//! The proxy suite (`mqtt_test_support::connectivity`) against real proxies (`microsocks`,
//! `tinyproxy`) and brokers, on async-std's executor and on smol's.

/// Runs one test with `async_std::task::block_on`.
fn async_std_block_on<F: std::future::Future>(future: F) -> F::Output {
    mqtt_test_support::init_test_tracing();
    async_std::task::block_on(future)
}

/// Runs one test with `smol::block_on`.
fn smol_block_on<F: std::future::Future>(future: F) -> F::Output {
    mqtt_test_support::init_test_tracing();
    smol::block_on(future)
}

mod async_std_executor {
    mqtt_test_support::connectivity_suite!(sansmqtt_async_std::AsyncIo, super::async_std_block_on);
}

mod smol_executor {
    mqtt_test_support::connectivity_suite!(sansmqtt_async_std::AsyncIo, super::smol_block_on);
}
