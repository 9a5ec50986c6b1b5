//! The lossless QoS 0 burst (`mqtt_test_support::delivery`) on a Tokio runtime with one worker
//! thread, where the consumer task and the driver share the thread (the delivery suite in
//! `broker.rs` runs it on two).

use mqtt_test_support::delivery::a_burst_of_100000_qos0_messages_to_a_counting_subscriber_loses_none as burst;

#[test]
fn a_qos0_burst_loses_nothing_on_one_worker_thread() {
    mqtt_test_support::init_test_tracing();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("building a Tokio runtime")
        .block_on(burst::<sansmqtt_tokio::Tokio>());
}

#[test]
fn a_qos0_burst_loses_nothing_on_a_current_thread_runtime() {
    mqtt_test_support::init_test_tracing();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building a Tokio runtime")
        .block_on(burst::<sansmqtt_tokio::Tokio>());
}
