//! Heap held by an idle connected client (issue 24: at most 8 KiB per idle connection), counted
//! by a counting global allocator rather than read from the resident set, so the figure is
//! exact and free of the allocator's fragmentation and of other tests' threads: `CLIENTS`
//! clients connect to a private mosquitto, and the growth of the live heap over those
//! connections (the driver tasks, the clients' shared state, the sockets' user-space side) is
//! divided by their number. Kernel socket buffers are not process memory and not counted.
//!
//! It also reports the size of the driver task's future (the part of each connection that is
//! fixed at compile time), measured by a runtime that wraps Tokio's and records what it is
//! asked to spawn.
#![allow(clippy::print_stderr)] // the figures are the test's report

use std::alloc::System;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mqtt_test_support::Mosquitto;
use sansmqtt_client::{ClientConfig, MqttClient, Runtime};
use sansmqtt_tokio::Tokio;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Live heap bytes of the process, counted by the instrumented allocator.
fn live() -> isize {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize + stats.bytes_reallocated
}

/// The largest future spawned through [`Probe`]: the driver task.
static SPAWNED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Tokio, recording the size of every future it spawns.
#[derive(Debug, Clone, Copy, Default)]
struct Probe;

impl Runtime for Probe {
    type Tcp = <Tokio as Runtime>::Tcp;
    type Sleep = <Tokio as Runtime>::Sleep;

    async fn connect_tcp(&self, host: String, port: u16) -> io::Result<Self::Tcp> {
        Tokio.connect_tcp(host, port).await
    }

    fn set_nodelay(tcp: &Self::Tcp) -> io::Result<()> {
        Tokio::set_nodelay(tcp)
    }

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
        Tokio.sleep_until(deadline)
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        SPAWNED_BYTES.fetch_max(std::mem::size_of_val(&future), Ordering::Relaxed);
        Tokio.spawn(future);
    }
}

/// Clients measured: enough that a shared cost (the runtime's, the broker's) vanishes.
const CLIENTS: usize = 500;

/// Issue 24's bound on memory per idle connection.
const BOUND: usize = 8 * 1024;

#[test]
fn an_idle_connection_holds_at_most_8_kib_of_heap() {
    mqtt_test_support::init_test_tracing();
    let broker = Mosquitto::builder()
        .extra_config("max_connections -1")
        .start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building a Tokio runtime");
    let per_client = runtime.block_on(async {
        let config = ClientConfig::default()
            .keep_alive(Duration::from_secs(60))
            .auto_reconnect(false);
        // One client first: what is allocated once per process (thread-locals, the tracing
        // subscriber's state) is not a connection's.
        let warm = MqttClient::<Probe>::new(None, config.clone());
        warm.connect(broker.uri().as_str())
            .await
            .expect("connecting the first client");
        let mut clients = Vec::with_capacity(CLIENTS);
        let before = live();
        for _ in 0..CLIENTS {
            clients.push(MqttClient::<Probe>::new(None, config.clone()));
        }
        let created = live();
        for client in &clients {
            client
                .connect(broker.uri().as_str())
                .await
                .expect("connecting a client");
        }
        // Let every driver settle into its idle wait (CONNACK handled, buffers released).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = live();
        let per_client = (after - before) as usize / CLIENTS;
        eprintln!(
            "heap per client: {} bytes before connecting, {} more once connected and idle",
            (created - before) as usize / CLIENTS,
            (after - created) as usize / CLIENTS
        );
        for client in &clients {
            let _ = client.disconnect().await;
        }
        let _ = warm.disconnect().await;
        per_client
    });
    let task = SPAWNED_BYTES.load(Ordering::Relaxed);
    eprintln!("heap per idle connection: {per_client} bytes; driver task future: {task} bytes");
    assert!(
        per_client <= BOUND,
        "an idle connection holds {per_client} bytes of heap (driver task future {task} \
         bytes), over the {BOUND}-byte bound"
    );
}
