//! A private nats-server serving MQTT over TCP and over WebSocket.

use std::ffi::OsString;
use std::path::Path;

use tempfile::TempDir;

use crate::certs::Certs;
use crate::free_ports;
use crate::process::{BrokerProcess, find_binary, read, temp_dir, write_file};

/// How many sets of fresh ports a first start tries before giving up.
const START_ATTEMPTS: usize = 5;

/// Configures and starts a private [`Nats`] server.
///
/// ```no_run
/// use mqtt_test_support::{Certs, Nats};
///
/// let certs = Certs::generate();
/// let nats = Nats::builder().tls(&certs).start();
/// println!("{} {}", nats.mqtt_uri(), nats.wss_uri());
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `start()` is called"]
pub struct NatsBuilder {
    /// Server certificate and key PEM for the WebSocket listener.
    tls: Option<(String, String)>,
    extra_config: String,
}

impl NatsBuilder {
    /// Serves the WebSocket listener over TLS with [`Certs::server_cert`]
    /// (for `localhost` and `127.0.0.1`), instead of plain WebSocket.
    ///
    /// nats-server has a single WebSocket listener, so one instance serves
    /// either `ws://` or `wss://`; start two instances to test both. The MQTT
    /// TCP listener stays plain.
    ///
    /// # Panics
    ///
    /// If the certificate files cannot be read.
    pub fn tls(mut self, certs: &Certs) -> Self {
        self.tls = Some((read(&certs.server_cert()), read(&certs.server_key())));
        self
    }

    /// Appends raw lines to the top level of the server configuration, e.g.
    /// `"max_payload: 65536"`. Blocks already written (`jetstream`, `mqtt`,
    /// `websocket`) must not be repeated.
    pub fn extra_config(mut self, config: &str) -> Self {
        self.extra_config.push_str(config);
        self.extra_config.push('\n');
        self
    }

    /// Writes the configuration, starts nats-server and waits (up to 5 s)
    /// until its client, MQTT and WebSocket listeners accept connections.
    ///
    /// # Panics
    ///
    /// If `nats-server` is not installed or does not start; the panic message
    /// includes its log.
    pub fn start(self) -> Nats {
        let program = find_binary(
            "nats-server",
            "install it with `apt-get install -y nats-server`",
        );
        let dir = temp_dir("mqtt-test-nats-");
        if let Some((cert, key)) = &self.tls {
            write_file(&dir.path().join("server.pem"), cert);
            write_file(&dir.path().join("server.key"), key);
        }
        let conf = dir.path().join("nats.conf");
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let [client_port, mqtt_port, ws_port] = free_ports::<3>();
            write_file(
                &conf,
                &self.config(dir.path(), client_port, mqtt_port, ws_port),
            );
            let mut process = BrokerProcess::new(
                "nats-server",
                program.clone(),
                vec![OsString::from("-c"), conf.clone().into_os_string()],
                dir.path().join("nats.log"),
                vec![client_port, mqtt_port, ws_port],
                "Server is ready",
            );
            match process.try_start() {
                Ok(()) => {
                    return Nats {
                        process,
                        client_port,
                        mqtt_port,
                        ws_port,
                        ws_tls: self.tls.is_some(),
                        dir,
                    };
                }
                Err(busy) => last_log = busy.log,
            }
        }
        panic!(
            "nats-server found no free ports in {START_ATTEMPTS} attempts; last log:\n{last_log}"
        );
    }

    fn config(&self, dir: &Path, client_port: u16, mqtt_port: u16, ws_port: u16) -> String {
        let d = dir.display();
        let websocket_security = if self.tls.is_some() {
            format!("tls {{ cert_file: \"{d}/server.pem\", key_file: \"{d}/server.key\" }}")
        } else {
            "no_tls: true".to_owned()
        };
        format!(
            "# Written by mqtt-test-support for one test; not the system server.\n\
             listen: \"127.0.0.1:{client_port}\"\n\
             server_name: \"test-{client_port}\"\n\
             jetstream {{ store_dir: \"{d}/js\" }}\n\
             mqtt {{ listen: \"127.0.0.1:{mqtt_port}\" }}\n\
             websocket {{\n  listen: \"127.0.0.1:{ws_port}\"\n  {websocket_security}\n}}\n\
             {}",
            self.extra_config
        )
    }
}

/// A private nats-server (2.9+) with JetStream, serving MQTT 3.1.1 over TCP and
/// over WebSocket (path `/mqtt`) on free ports of 127.0.0.1, with its own
/// temporary directory (config, log, JetStream store).
///
/// The WebSocket listener is plain ([`Nats::start`]) or TLS
/// ([`Nats::start_tls`]), never both in one instance. MQTT sessions live in
/// JetStream and survive [`restart`](crate::BrokerProcess::restart). Dropping it kills the
/// server (continuing it first if paused) and deletes the directory.
#[derive(Debug)]
pub struct Nats {
    // Declared before `dir` so the process is killed before its directory goes.
    process: BrokerProcess,
    client_port: u16,
    mqtt_port: u16,
    ws_port: u16,
    ws_tls: bool,
    dir: TempDir,
}

impl Nats {
    /// A builder; the default is a plain WebSocket listener.
    pub fn builder() -> NatsBuilder {
        NatsBuilder::default()
    }

    /// Starts a server with plain MQTT and plain WebSocket listeners.
    ///
    /// # Panics
    ///
    /// As [`NatsBuilder::start`].
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// Starts a server with a plain MQTT listener and a TLS WebSocket
    /// listener serving [`Certs::server_cert`].
    ///
    /// # Panics
    ///
    /// As [`NatsBuilder::start`].
    pub fn start_tls(certs: &Certs) -> Self {
        Self::builder().tls(certs).start()
    }

    /// The NATS client port on 127.0.0.1.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// The MQTT (TCP) port on 127.0.0.1.
    pub fn mqtt_port(&self) -> u16 {
        self.mqtt_port
    }

    /// The WebSocket port on 127.0.0.1 (TLS if started with [`Nats::start_tls`]).
    pub fn ws_port(&self) -> u16 {
        self.ws_port
    }

    /// Whether the WebSocket listener uses TLS.
    pub fn ws_tls(&self) -> bool {
        self.ws_tls
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn mqtt_uri(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.mqtt_port)
    }

    /// `ws://127.0.0.1:PORT/mqtt`.
    ///
    /// # Panics
    ///
    /// If the WebSocket listener uses TLS (use [`wss_uri`](Self::wss_uri)).
    pub fn ws_uri(&self) -> String {
        assert!(
            !self.ws_tls,
            "Nats::ws_uri: this server serves WebSocket over TLS; use wss_uri()"
        );
        format!("ws://127.0.0.1:{}/mqtt", self.ws_port)
    }

    /// `wss://localhost:PORT/mqtt`.
    ///
    /// # Panics
    ///
    /// If the WebSocket listener is plain (start with [`Nats::start_tls`]).
    pub fn wss_uri(&self) -> String {
        assert!(
            self.ws_tls,
            "Nats::wss_uri: this server serves plain WebSocket; start it with Nats::start_tls"
        );
        format!("wss://localhost:{}/mqtt", self.ws_port)
    }

    /// `nats://127.0.0.1:PORT`, the NATS protocol port.
    pub fn nats_uri(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }

    /// The instance's temporary directory (`nats.conf`, `nats.log`, `js/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The process control API (`kill`, `stop`, `restart`, `pause`, `resume`, `pid`, `log`).
impl std::ops::Deref for Nats {
    type Target = BrokerProcess;

    fn deref(&self) -> &BrokerProcess {
        &self.process
    }
}

impl std::ops::DerefMut for Nats {
    fn deref_mut(&mut self) -> &mut BrokerProcess {
        &mut self.process
    }
}

/// Three (or more) nats-server nodes routed together on loopback as one cluster, JetStream
/// clustered, each node with its own MQTT port, the MQTT streams and consumers replicated on
/// every node (`stream_replicas` / `consumer_replicas`), so an MQTT session outlives the node
/// it was made on.
///
/// ```no_run
/// use mqtt_test_support::NatsCluster;
///
/// let mut cluster = NatsCluster::start(3);
/// let uris = cluster.mqtt_uris();
/// cluster.node_mut(0).kill();
/// cluster.node_mut(0).restart();
/// ```
///
/// Nodes are [`BrokerProcess`]es: `kill` (SIGKILL), `restart` (same ports, same JetStream
/// store), `log`. Dropping the cluster kills every node and deletes the directory.
#[derive(Debug)]
pub struct NatsCluster {
    // Declared before `dir` so the processes are killed before their directory goes.
    nodes: Vec<BrokerProcess>,
    mqtt_ports: Vec<u16>,
    dir: TempDir,
}

/// How long a new cluster gets to elect its JetStream metadata leader.
const CLUSTER_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

impl NatsCluster {
    /// Starts `size` nodes (at least 3 for a quorum that survives one node) and waits until
    /// every node runs and the cluster has a JetStream metadata leader.
    ///
    /// # Panics
    ///
    /// If `nats-server` is missing, a node does not start (the message includes its log), or
    /// no leader is elected within 20 s.
    pub fn start(size: usize) -> Self {
        assert!(size >= 1, "a cluster needs a node");
        let program = find_binary(
            "nats-server",
            "install it with `apt-get install -y nats-server`",
        );
        let dir = temp_dir("mqtt-test-nats-cluster-");
        let mut last_log = String::new();
        'attempt: for _ in 0..START_ATTEMPTS {
            // Client, route and MQTT port per node, all held until chosen.
            let ports: Vec<u16> = (0..size).flat_map(|_| free_ports::<3>()).collect();
            let route_urls: Vec<String> = (0..size)
                .map(|i| format!("\"nats-route://127.0.0.1:{}\"", ports[3 * i + 1]))
                .collect();
            let replicas = size.min(3);
            let mut nodes = Vec::new();
            for i in 0..size {
                let [client_port, route_port, mqtt_port] =
                    [ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]];
                let node_dir = dir.path().join(format!("n{i}"));
                std::fs::create_dir_all(&node_dir)
                    .unwrap_or_else(|e| panic!("creating {} failed: {e}", node_dir.display()));
                let conf = node_dir.join("nats.conf");
                let d = node_dir.display();
                write_file(
                    &conf,
                    &format!(
                        "# Written by mqtt-test-support for one test; not the system server.\n\
                         listen: \"127.0.0.1:{client_port}\"\n\
                         server_name: \"n{i}\"\n\
                         jetstream {{ store_dir: \"{d}/js\" }}\n\
                         cluster {{\n  name: \"mqtt-test\"\n  listen: \"127.0.0.1:{route_port}\"\n  \
                         routes: [{}]\n}}\n\
                         mqtt {{\n  listen: \"127.0.0.1:{mqtt_port}\"\n  \
                         stream_replicas: {replicas}\n  consumer_replicas: {replicas}\n}}\n",
                        route_urls.join(", ")
                    ),
                );
                let mut process = BrokerProcess::new(
                    "nats-server",
                    program.clone(),
                    vec![OsString::from("-c"), conf.into_os_string()],
                    node_dir.join("nats.log"),
                    vec![client_port, mqtt_port],
                    "Server is ready",
                );
                if let Err(busy) = process.try_start() {
                    last_log = busy.log;
                    continue 'attempt;
                }
                nodes.push(process);
            }
            let cluster = Self {
                nodes,
                mqtt_ports: (0..size).map(|i| ports[3 * i + 2]).collect(),
                dir,
            };
            cluster.wait_for_leader();
            return cluster;
        }
        panic!(
            "nats-server cluster found no free ports in {START_ATTEMPTS} attempts; last log:\n{last_log}"
        );
    }

    /// Waits until some node's log names a JetStream metadata leader.
    fn wait_for_leader(&self) {
        let deadline = std::time::Instant::now() + CLUSTER_READY_TIMEOUT;
        while std::time::Instant::now() < deadline {
            if self
                .nodes
                .iter()
                .any(|node| node.log().contains("metadata leader"))
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let logs: Vec<String> = self.nodes.iter().map(BrokerProcess::log).collect();
        panic!(
            "the nats-server cluster elected no JetStream leader within {CLUSTER_READY_TIMEOUT:?}; logs:\n{}",
            logs.join("\n----\n")
        );
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no node (never: `start` needs one).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i` (0-based).
    pub fn node(&self, i: usize) -> &BrokerProcess {
        &self.nodes[i]
    }

    /// Node `i`, to kill, restart, pause ...
    pub fn node_mut(&mut self, i: usize) -> &mut BrokerProcess {
        &mut self.nodes[i]
    }

    /// `mqtt://127.0.0.1:PORT` of node `i`.
    pub fn mqtt_uri(&self, i: usize) -> String {
        format!("mqtt://127.0.0.1:{}", self.mqtt_ports[i])
    }

    /// Every node's MQTT URI, in node order.
    pub fn mqtt_uris(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.mqtt_uri(i)).collect()
    }

    /// The cluster's directory (`n0/nats.conf`, `n0/nats.log`, `n0/js/`, ...).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
