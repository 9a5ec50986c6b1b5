//! Runnable examples live in `src/bin/`: `demo` (the README's main command), `subscriber` and
//! `publisher` (amqtt's two documented examples). This library only holds what they share.

use tracing_subscriber::EnvFilter;

/// Logs to stderr at `default_level` unless `RUST_LOG` says otherwise: `debug` shows every
/// packet in and out, as amqtt's example log does.
pub fn init_logging(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
