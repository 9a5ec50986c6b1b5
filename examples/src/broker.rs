//! The demo's private broker: a mosquitto child process when the binary is installed, else an
//! embedded rumqttd running inside the demo's own process, so the demo needs nothing but a Rust
//! toolchain.
//!
//! Either listens on a free loopback port only, accepts anonymous clients and keeps nothing on
//! disk after the demo ends.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where mosquitto is looked for besides `PATH`: Debian installs it in `/usr/sbin`, which is
/// not on a normal user's `PATH`.
const SBIN_DIRS: [&str; 3] = ["/usr/sbin", "/usr/local/sbin", "/sbin"];
/// How long a started broker may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Fresh ports tried when another process takes the chosen one first.
const START_ATTEMPTS: usize = 5;

/// Why the demo's broker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No free loopback port could be found, or the broker's files could not be written.
    #[error("preparing the broker: {0}")]
    Io(#[from] io::Error),
    /// mosquitto exited or never accepted connections, on every port tried.
    #[error("mosquitto ({binary}) did not start; its log: {log}")]
    Mosquitto {
        /// The binary that was run.
        binary: PathBuf,
        /// What it wrote before giving up.
        log: String,
    },
    /// The embedded broker did not accept connections in time.
    #[error("the embedded rumqttd broker did not start: {0}")]
    Embedded(String),
}

/// A broker the demo started; stopped (mosquitto) when dropped.
#[derive(Debug)]
pub struct DemoBroker {
    address: SocketAddr,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// A child process and its temporary directory.
    Mosquitto { child: Child, dir: PathBuf },
    /// rumqttd's threads in this process: they end with it.
    Embedded,
}

impl DemoBroker {
    /// Starts mosquitto when [`find_mosquitto`] finds it, else an embedded rumqttd.
    ///
    /// # Errors
    ///
    /// When the chosen broker does not accept connections on a loopback port.
    pub fn start() -> Result<Self, BrokerError> {
        match find_mosquitto() {
            Some(binary) => Self::mosquitto(&binary),
            None => Self::embedded(),
        }
    }

    /// Starts mosquitto from `binary` on a free loopback port.
    ///
    /// # Errors
    ///
    /// When it does not accept connections on any of several ports.
    pub fn mosquitto(binary: &Path) -> Result<Self, BrokerError> {
        let dir = std::env::temp_dir().join(format!("sansmqtt-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("mosquitto.conf");
        let log = dir.join("mosquitto.log");
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            std::fs::write(
                &config,
                format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
            )?;
            let mut child = Command::new(binary)
                .arg("-c")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?)
                .spawn()?;
            let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            if wait_ready(address, || matches!(child.try_wait(), Ok(Some(_)))) {
                let kind = Kind::Mosquitto { child, dir };
                return Ok(Self { address, kind });
            }
            // Most likely the port was taken between choosing and binding it: try another.
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        Err(BrokerError::Mosquitto {
            binary: binary.to_owned(),
            log,
        })
    }

    /// Starts rumqttd inside this process, serving MQTT 3.1.1 on a free loopback port.
    ///
    /// # Errors
    ///
    /// When it does not accept connections in time.
    pub fn embedded() -> Result<Self, BrokerError> {
        let port = free_port()?;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let config = rumqttd_config(address);
        let mut broker = rumqttd::Broker::new(config);
        let thread = std::thread::Builder::new()
            .name("rumqttd".into())
            .spawn(move || broker.start().map_err(|err| err.to_string()))?;
        if wait_ready(address, || thread.is_finished()) {
            return Ok(Self {
                address,
                kind: Kind::Embedded,
            });
        }
        let why = match thread.is_finished().then(|| thread.join()) {
            Some(Ok(Err(err))) => err,
            Some(Err(_)) => "its thread panicked".to_owned(),
            _ => format!("no connection accepted on {address} within {READY_TIMEOUT:?}"),
        };
        Err(BrokerError::Embedded(why))
    }

    /// The `mqtt://` URI of the broker.
    pub fn uri(&self) -> String {
        format!("mqtt://{}", self.address)
    }
}

impl fmt::Display for DemoBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Mosquitto { .. } => write!(f, "private mosquitto at {}", self.uri()),
            Kind::Embedded => write!(
                f,
                "embedded rumqttd at {} (no mosquitto binary found)",
                self.uri()
            ),
        }
    }
}

impl Drop for DemoBroker {
    fn drop(&mut self) {
        if let Kind::Mosquitto { child, dir } = &mut self.kind {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The mosquitto binary on `PATH` or in the `sbin` directories, if there is one.
pub fn find_mosquitto() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join("mosquitto"))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A loopback port that was free a moment ago.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Waits until `address` accepts a TCP connection; false when `gave_up` says the broker is gone
/// or the time is out.
fn wait_ready(address: SocketAddr, mut gave_up: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < READY_TIMEOUT {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return true;
        }
        if gave_up() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// One MQTT 3.1.1 listener on `address`, anonymous, with limits far above the demo's load.
fn rumqttd_config(address: SocketAddr) -> rumqttd::Config {
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 5_000,
        max_payload_size: 1 << 20,
        max_inflight_count: 1_000,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "demo".to_owned(),
        listen: address,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 100,
            max_outgoing_packet_count: 1_000,
            max_segment_size: 1 << 20,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("demo".to_owned(), server)])),
        ..Default::default()
    }
}
