//! A private MQTT-over-QUIC broker: the broker of the `mqtt5` crate (LabOverWire's, from
//! crates.io; nobody here wrote it), run in-process on a Tokio runtime of its own on its own
//! thread, with only a QUIC listener on a free loopback UDP port. It serves MQTT on the first
//! bidirectional stream a client opens (the single-stream mode), TLS 1.3, ALPN `mqtt`.
//!
//! A UDP relay ([`UdpRelay`]) sits between client and broker when a test needs to cut the
//! link: the QUIC equivalent of the suite's TCP proxy.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use mqtt5::broker::config::{QuicConfig, ServerDeliveryStrategy, TlsConfig};
use mqtt5::broker::{BrokerConfig, BrokerShutdownHandle, MqttBroker, StorageConfig};

use crate::Certs;

/// An mqtt5 broker with a QUIC listener and an `mqtts://` listener (the same broker over
/// TCP + TLS, for comparisons) on `127.0.0.1`, private to the test. Stopped when
/// dropped; [`stop`](Self::stop) and [`restart`](Self::restart) keep its port and its
/// persisted sessions.
pub struct QuicBroker {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    storage: tempfile::TempDir,
    port: u16,
    tls_port: u16,
    /// Network namespace and address to serve in (`start_in_netns`).
    netns: Option<(String, Ipv4Addr)>,
    running: Option<(BrokerShutdownHandle, JoinHandle<()>)>,
}

impl QuicBroker {
    /// Starts a broker presenting `certs`' server certificate (for `localhost` and
    /// `127.0.0.1`), accepting anonymous clients.
    pub fn start(certs: &Certs) -> Self {
        Self::launch(certs, None)
    }

    /// Like [`start`](Self::start), and every client must present a certificate signed by
    /// `certs`' CA (mutual TLS).
    pub fn start_mutual_tls(certs: &Certs) -> Self {
        Self::launch(certs, Some(certs.ca_file()))
    }

    /// Like [`start`](Self::start), serving from network namespace `ns` (its thread enters
    /// it) on `address`, e.g. a [`NetemLink`](crate::NetemLink)'s namespace A. The
    /// certificate names `localhost` / `127.0.0.1` only: clients turn `check_hostname` off.
    pub fn start_in_netns(certs: &Certs, ns: &str, address: Ipv4Addr) -> Self {
        Self::launch_with(certs, None, Some((ns.to_owned(), address)))
    }

    fn launch(certs: &Certs, client_ca: Option<PathBuf>) -> Self {
        Self::launch_with(certs, client_ca, None)
    }

    fn launch_with(
        certs: &Certs,
        client_ca: Option<PathBuf>,
        netns: Option<(String, Ipv4Addr)>,
    ) -> Self {
        let mut broker = Self {
            cert: certs.server_cert(),
            key: certs.server_key(),
            client_ca,
            storage: tempfile::tempdir().expect("creating the broker's storage directory"),
            port: 0,
            tls_port: 0,
            netns,
            running: None,
        };
        broker.restart();
        broker
    }

    /// `quic://127.0.0.1:PORT` (the namespace's address with
    /// [`start_in_netns`](Self::start_in_netns)).
    pub fn uri(&self) -> String {
        format!("quic://{}:{}", self.host(), self.port)
    }

    /// `mqtts://HOST:PORT`: the same broker over TCP + TLS, same certificate.
    pub fn tls_uri(&self) -> String {
        format!("mqtts://{}:{}", self.host(), self.tls_port)
    }

    fn host(&self) -> Ipv4Addr {
        self.netns
            .as_ref()
            .map_or(Ipv4Addr::LOCALHOST, |(_, address)| *address)
    }

    /// The UDP port of the QUIC listener.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the broker (its run loop ends, its runtime and sockets are dropped).
    pub fn stop(&mut self) {
        if let Some((shutdown, thread)) = self.running.take() {
            shutdown.shutdown();
            thread.join().expect("the mqtt5 broker thread panicked");
        }
    }

    /// Starts the broker again on the same port (the first start picks a free one).
    ///
    /// # Panics
    /// If the broker cannot be configured or bound.
    pub fn restart(&mut self) {
        self.stop();
        let mut quic = QuicConfig::new(self.cert.clone(), self.key.clone())
            .with_bind_address(SocketAddr::from((self.host(), self.port)));
        if let Some(ca) = &self.client_ca {
            quic = quic.with_ca_file(ca.clone()).with_require_client_cert(true);
        }
        let mut tls = TlsConfig::new(self.cert.clone(), self.key.clone());
        tls.bind_addresses = vec![SocketAddr::from((self.host(), self.tls_port))];
        let mut storage = StorageConfig::default();
        storage.base_dir = self.storage.path().to_owned();
        let config = BrokerConfig::default()
            .with_bind_addresses(Vec::new())
            .with_storage(storage)
            .with_tls(tls)
            .with_quic(quic)
            // Everything on the client's one stream. mqtt5's default (`PerTopic`) sends
            // PUBLISHes to the client on streams the broker opens, one per topic, which a
            // single-stream client (EMQX's and NanoMQ's default mode, and ours) never reads.
            .with_server_delivery_strategy(ServerDeliveryStrategy::ControlOnly);
        let (tx, rx) = std::sync::mpsc::channel();
        let ns = self
            .netns
            .as_ref()
            .map(|(ns, _)| format!("/var/run/netns/{ns}"));
        let thread = thread::Builder::new()
            .name("mqtt5-quic-broker".into())
            .spawn(move || {
                if let Some(path) = ns {
                    let file = std::fs::File::open(&path)
                        .unwrap_or_else(|e| panic!("opening {path} failed: {e}"));
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                        .unwrap_or_else(|e| panic!("entering network namespace {path}: {e}"));
                }
                run(config, &tx);
            })
            .expect("spawning the broker thread");
        let (shutdown, addr, tls_addr) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the mqtt5 broker did not start (see the thread's panic above)");
        self.port = addr.port();
        self.tls_port = tls_addr.port();
        self.running = Some((shutdown, thread));
    }
}

type Started = (BrokerShutdownHandle, SocketAddr, SocketAddr);

fn run(config: BrokerConfig, started: &std::sync::mpsc::Sender<Started>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("building the broker's Tokio runtime");
    runtime.block_on(async {
        let mut broker = MqttBroker::with_config(config)
            .await
            .expect("starting the mqtt5 broker");
        let addr = broker.quic_local_addr().expect("the broker's QUIC address");
        let tls_addr = broker.tls_local_addr().expect("the broker's TLS address");
        let _ = started.send((broker.shutdown_handle(), addr, tls_addr));
        // A failing broker fails the test when `stop` joins this thread.
        broker
            .run()
            .await
            .expect("the mqtt5 broker stopped with an error");
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

impl Drop for QuicBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A UDP relay on a loopback port that forwards datagrams to `127.0.0.1:upstream` and the
/// answers back to the latest client address. [`go_silent`](Self::go_silent) drops every
/// datagram both ways (a cut link), [`restore`](Self::restore) forwards again.
pub struct UdpRelay {
    port: u16,
    silent: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl UdpRelay {
    /// Starts relaying to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> Self {
        let front = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding the relay");
        let back = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding the relay");
        back.connect((Ipv4Addr::LOCALHOST, upstream))
            .expect("connecting the relay upstream");
        for socket in [&front, &back] {
            socket
                .set_read_timeout(Some(Duration::from_millis(50)))
                .expect("relay read timeout");
        }
        let port = front.local_addr().expect("relay address").port();
        let silent = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let client = Arc::new(std::sync::Mutex::new(None::<SocketAddr>));
        let front = Arc::new(front);
        let back = Arc::new(back);
        let up = {
            let (front, back, client) = (front.clone(), back.clone(), client.clone());
            let (silent, stop) = (silent.clone(), stop.clone());
            thread::spawn(move || {
                let mut buf = vec![0; 65536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = front.recv_from(&mut buf) {
                        *client.lock().expect("relay lock") = Some(from);
                        if !silent.load(Ordering::Relaxed) {
                            let _ = back.send(&buf[..n]);
                        }
                    }
                }
            })
        };
        let down = {
            let (silent, stop) = (silent.clone(), stop.clone());
            thread::spawn(move || {
                let mut buf = vec![0; 65536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = back.recv(&mut buf) {
                        let to = *client.lock().expect("relay lock");
                        if let (Some(to), false) = (to, silent.load(Ordering::Relaxed)) {
                            let _ = front.send_to(&buf[..n], to);
                        }
                    }
                }
            })
        };
        Self {
            port,
            silent,
            stop,
            threads: vec![up, down],
        }
    }

    /// `quic://127.0.0.1:PORT` of the relay.
    pub fn uri(&self) -> String {
        format!("quic://127.0.0.1:{}", self.port)
    }

    /// Drops every datagram from now on, both ways.
    pub fn go_silent(&self) {
        self.silent.store(true, Ordering::Relaxed);
    }

    /// Forwards datagrams again.
    pub fn restore(&self) {
        self.silent.store(false, Ordering::Relaxed);
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
