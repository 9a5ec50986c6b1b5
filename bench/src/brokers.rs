//! The brokers a benchmark runs against (`--broker sink,rumqttd,mosquitto`), each a process of
//! its own so that its CPU is sampled apart from the clients':
//!
//! - `sink`: this program re-run as `--serve sink` (see `sink.rs`);
//! - `rumqttd`: rumqttd 0.20 (crates.io, without TLS and WebSocket) embedded in this program
//!   re-run as `--serve rumqttd`: one MQTT 3.1.1 listener on 127.0.0.1, its network thread and
//!   its router thread, `max_inflight_count` = the benchmark's in-flight window;
//! - `mosquitto`: a private mosquitto from `mqtt-test-support`, configured as before (the
//!   window as `max_inflight_messages`, no queue limit).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mqtt_test_support::Mosquitto;

use crate::Options;
use crate::sink::{self, LISTENING_TAG};

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum BrokerKind {
    Sink,
    Rumqttd,
    Mosquitto,
}

impl BrokerKind {
    pub(crate) const ALL: [Self; 3] = [Self::Sink, Self::Rumqttd, Self::Mosquitto];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Sink => "sink",
            Self::Rumqttd => "rumqttd",
            Self::Mosquitto => "mosquitto",
        }
    }

    pub(crate) fn parse_list(list: &str) -> Result<Vec<Self>, String> {
        if list == "all" {
            return Ok(Self::ALL.to_vec());
        }
        list.split(',')
            .map(|name| {
                Self::ALL
                    .into_iter()
                    .find(|b| b.name() == name)
                    .ok_or_else(|| format!("--broker: unknown broker {name:?}"))
            })
            .collect()
    }
}

/// A running broker; stopped when dropped.
pub(crate) struct Broker {
    pub(crate) kind: BrokerKind,
    port: u16,
    pid: Option<u32>,
    mosquitto: Option<Mosquitto>,
    child: Option<Child>,
}

impl Broker {
    pub(crate) fn start(kind: BrokerKind, options: &Options) -> Result<Self, String> {
        if kind == BrokerKind::Mosquitto {
            let mosquitto = Mosquitto::builder()
                // Broker → client window as large as ours, and no queue limit: with the
                // default 1000 queued messages mosquitto drops QoS 0 messages (and queues QoS
                // 1/2 ones) when the subscriber lags the publisher in `pubsub`.
                .extra_config(&format!(
                    "max_inflight_messages {}\nmax_queued_messages 0\nset_tcp_nodelay {}",
                    options.inflight, options.broker_nodelay
                ))
                .start();
            return Ok(Self {
                kind,
                port: mosquitto.port(),
                pid: mosquitto.pid(),
                mosquitto: Some(mosquitto),
                child: None,
            });
        }
        let exe = std::env::current_exe().map_err(|err| format!("current_exe failed: {err}"))?;
        let mut child = Command::new(exe)
            .args(["--serve", kind.name()])
            .args(["--inflight", &options.inflight.to_string()])
            .args(["--sink-threads", &options.sink_threads.to_string()])
            .args(["--payload", &options.payload.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|err| format!("starting the {} server failed: {err}", kind.name()))?;
        let stdout = child.stdout.take().ok_or("no stdout of the server child")?;
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let port = read
            .ok()
            .and_then(|_| {
                line.trim()
                    .strip_prefix(LISTENING_TAG)?
                    .trim()
                    .strip_prefix("port=")
            })
            .and_then(|p| p.parse::<u16>().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the {} server did not report its port: {line:?}",
                kind.name()
            ));
        };
        Ok(Self {
            kind,
            port,
            pid: Some(child.id()),
            mosquitto: None,
            child: Some(child),
        })
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(self.mosquitto.take());
    }
}

/// `--serve sink|rumqttd`: runs that server until killed.
pub(crate) fn serve(kind: &str, options: &Options) -> Result<(), String> {
    match kind {
        "sink" => sink::serve(
            0,
            sink::SinkOptions {
                threads: options.sink_threads,
                inflight: usize::from(options.inflight),
            },
        ),
        "rumqttd" => serve_rumqttd(options),
        other => Err(format!("--serve: expected sink or rumqttd, got {other:?}")),
    }
}

/// rumqttd on a free port of 127.0.0.1; prints the port once it accepts connections.
fn serve_rumqttd(options: &Options) -> Result<(), String> {
    use std::collections::HashMap;

    // rumqttd binds the address itself: take a free port and hand it over.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|err| format!("no free port: {err}"))?
        .port();
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: (options.payload + 1024).max(20 * 1024),
        max_inflight_count: usize::from(options.inflight),
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "v4-bench".to_owned(),
        listen,
        tls: None,
        // rumqttd's sample configuration waits 1 ms between accepted connections; the
        // benchmark opens one or two per run.
        next_connection_delay_ms: 0,
        connections,
    };
    let router = rumqttd::RouterConfig {
        max_connections: 10_010,
        max_outgoing_packet_count: 200,
        max_segment_size: 100 * 1024 * 1024,
        max_segment_count: 10,
        ..Default::default()
    };
    let config = rumqttd::Config {
        id: 0,
        router,
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Default::default()
    };
    let mut broker = rumqttd::Broker::new(config);
    std::thread::spawn(move || {
        if let Err(err) = broker.start() {
            eprintln!("rumqttd: {err}");
            std::process::exit(1);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(listen).is_err() {
        if Instant::now() > deadline {
            return Err("rumqttd did not listen within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{LISTENING_TAG} port={port}");
        let _ = stdout.flush();
    }
    loop {
        std::thread::park();
    }
}
