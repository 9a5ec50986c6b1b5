//! Examples of the MQTT client crates, written as an application would write them: each file
//! in `examples/` is one program for one runtime, using that adapter's own `MqttClient`.
//!
//! - `subscriber_tokio`, `subscriber_async_std`: amqtt's subscriber (`$SYS` topics);
//! - `publisher_tokio`, `publisher_async_std`: amqtt's publisher (QoS 0, 1 and 2, awaited
//!   together, then one after the other);
//! - `tls_tokio`, `tls_async_std`: `mqtts://` with a CA file (or the system's roots);
//! - `websocket_tokio`, `websocket_async_std`: `ws://` / `wss://`, a message there and back;
//! - `blocking_session`: the sans-IO session over a blocking `std::net::TcpStream`, no runtime.
//!
//! `cargo run -p mqtt-examples --example subscriber_tokio -- mqtt://127.0.0.1:1883/`
//!
//! The `demo` binary (`src/bin/demo.rs`) is the README's main command. This library holds its
//! logging set-up and its private broker ([`broker`]).

pub mod broker;

use tracing_subscriber::EnvFilter;

/// Logs to stderr at `default_level` unless `RUST_LOG` says otherwise.
pub fn init_logging(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The workspace README's Rust examples, compiled as doctests of this crate (`cargo test -p
/// mqtt-examples --doc`), so a change to the client's API that breaks them fails the tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
