//! The secret scan (`mqtt_test_support::secrets`) on Tokio: a test binary of its own, because
//! it installs the process-wide log capture.

#[test]
fn no_secret_is_ever_printed() {
    let logs = mqtt_test_support::secrets::capture_logs();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a Tokio runtime")
        .block_on(mqtt_test_support::secrets::no_secret_is_ever_printed::<
            sansmqtt_tokio::Tokio,
        >(logs));
}
