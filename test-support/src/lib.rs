//! Dev-only helpers for the integration tests of the MQTT client crates.
//!
//! Every broker started here is private to the test that started it: it runs
//! from its own temporary directory (config, log, password file, certificates,
//! persistence or JetStream store) and listens only on free loopback ports
//! chosen at start-up. Nothing here ever talks to a broker already running on
//! the machine (such as a system mosquitto on 1883 or nats-server on 4222).
//!
//! - [`Certs`]: a throw-away CA with server, client, expired, wrong-host and
//!   unknown-CA certificates, generated with rcgen in a few milliseconds.
//! - [`Mosquitto`] / [`MosquittoBuilder`]: a `mosquitto` 2.x broker with optional
//!   password file, persistence, TLS listener (optionally mutual TLS) and
//!   packet-size limit; it can be killed, restarted on the same ports, paused
//!   and resumed.
//! - [`Nats`] / [`NatsBuilder`]: a `nats-server` 2.9+ serving MQTT over TCP and
//!   MQTT over WebSocket (plain, or TLS with [`NatsBuilder::tls`]).
//! - [`NatsCluster`]: three nats-server nodes routed together on loopback, JetStream
//!   clustered, each with its own MQTT port, for failover tests.
//! - [`NetemLink`]: two network namespaces joined by a relay over TUN devices that delays,
//!   jitters, drops, reorders and cuts IP packets (this kernel has no `netem` qdisc).
//! - [`suite`] / [`client_suite!`]: the client integration suite, generic over
//!   the runtime, that every adapter crate runs unchanged.
//! - [`Socks5Proxy`] (`microsocks`), [`DanteProxy`] (`danted`, with destination rules) and
//!   [`HttpProxy`] (`tinyproxy`): private proxies, with or without credentials; [`connectivity`] / [`connectivity_suite!`]: every transport
//!   through each of them, and their refusals.
//! - `QuicBroker` (feature `quic`): the `mqtt5` crate's broker with a QUIC listener, in
//!   process on a runtime thread of its own, and `UdpRelay` to cut its link; the QUIC suite
//!   (`quic_suite!`) runs over it. `quic_link` (feature `quic`): QUIC against TCP + TLS on
//!   a [`NetemLink`] (loss, cuts, an address change), measured for the netem test and the
//!   benchmark alike.
//! - [`secrets`]: the secret scan, run by each adapter from a test binary of its own.
//! - [`delivery`] / [`delivery_suite!`]: delivery guarantees at the application and
//!   liveness under faults (slow consumers, stopped brokers, cancelled calls), the same way.
//!
//! The broker binaries are looked up on `PATH` and in the `sbin` directories.
//! When one is missing the helpers panic with an install hint: a test that needs
//! a broker never passes silently without one.
//!
//! Everything here panics with a descriptive message instead of returning
//! errors: it is test support, and a clear panic is the most useful failure.

pub mod auth;
mod certs;
pub mod connectivity;
pub mod delivery;
mod mosquitto;
mod nats;
mod netem;
mod process;
mod proxies;
#[cfg(feature = "quic")]
mod quic_broker;
#[cfg(feature = "quic")]
pub mod quic_link;
pub mod rss;
pub mod secrets;
pub mod suite;

use std::net::{Ipv4Addr, TcpListener};

pub use certs::Certs;
pub use mosquitto::{Mosquitto, MosquittoBuilder};
pub use nats::{Nats, NatsBuilder, NatsCluster};
pub use netem::{LinkConditions, LinkStats, NetemLink};
pub use process::BrokerProcess;
pub use proxies::{DanteProxy, HttpProxy, HttpProxyBuilder, Socks5Proxy};
#[cfg(feature = "quic")]
pub use quic_broker::{QuicBroker, UdpRelay};

/// Sends `tracing` output to the test harness's captured output, filtered by `RUST_LOG`
/// (e.g. `RUST_LOG=sansmqtt_session=debug` shows every packet). Safe to call from every test.
pub fn init_test_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Returns a TCP port on `127.0.0.1` that was free a moment ago.
///
/// The port is found by binding `127.0.0.1:0`, reading the port the kernel
/// chose and closing the socket again, so another process could in principle
/// take it before the caller binds it. The brokers in this crate allocate their
/// ports together through the same mechanism and retry with fresh ports if one
/// turns out to be taken.
///
/// # Panics
///
/// If no loopback port can be bound.
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// Returns `N` distinct free loopback ports, holding all of them bound until
/// every one is chosen so the kernel cannot hand out the same port twice.
pub(crate) fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .expect("binding 127.0.0.1:0 to find a free port failed")
        })
        .collect();
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener
            .local_addr()
            .expect("reading the local address of a bound listener failed")
            .port();
    }
    ports
}
