//! The secret scan (`mqtt_test_support::secrets`) on async-std and on smol: a test binary of
//! its own, because it installs the process-wide log capture (shared by both tests; each
//! scans for its own secret).

use mqtt_test_support::secrets::{capture_logs, no_secret_is_ever_printed};
use sansmqtt_async_std::AsyncIo;

#[test]
fn no_secret_is_ever_printed_on_async_std() {
    let logs = capture_logs();
    async_std::task::block_on(no_secret_is_ever_printed::<AsyncIo>(logs));
}

#[test]
fn no_secret_is_ever_printed_on_smol() {
    let logs = capture_logs();
    smol::block_on(no_secret_is_ever_printed::<AsyncIo>(logs));
}
