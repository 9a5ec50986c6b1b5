//! A private mosquitto broker.

use std::ffi::OsString;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::certs::Certs;
use crate::free_ports;
use crate::process::{BrokerProcess, find_binary, read, temp_dir, write_file};

/// How many sets of fresh ports a first start tries before giving up.
const START_ATTEMPTS: usize = 5;

/// Debian's `mosquitto` package has both `mosquitto` and `mosquitto_passwd`.
const MOSQUITTO_HINT: &str = "install it with `apt-get install -y mosquitto`";

/// PEM contents for the TLS listener, copied into the broker's own directory at
/// start so that the broker does not depend on the [`Certs`] staying alive.
#[derive(Debug, Clone)]
struct TlsFiles {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

/// Configures and starts a private [`Mosquitto`] broker.
///
/// ```no_run
/// use mqtt_test_support::{Certs, Mosquitto};
///
/// let certs = Certs::generate();
/// let broker = Mosquitto::builder()
///     .users(&[("alice", "secret")])
///     .tls(&certs)
///     .persistence(true)
///     .start();
/// println!("{} {}", broker.uri(), broker.tls_uri());
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `start()` is called"]
pub struct MosquittoBuilder {
    persistence: bool,
    users: Vec<(String, String)>,
    tls: Option<TlsFiles>,
    server_cert_override: Option<(String, String)>,
    mutual_tls: bool,
    max_packet_size: Option<u32>,
    extra_config: String,
    /// Network namespace and address to listen on, instead of 127.0.0.1.
    netns: Option<(String, Ipv4Addr)>,
}

/// The plain port of a broker in its own network namespace: everything there is free.
const NETNS_PORT: u16 = 18830;

impl MosquittoBuilder {
    /// Runs the broker in network namespace `ns` (with `ip netns exec`), listening on
    /// `address:18830` only, e.g. the A side of a [`NetemLink`](crate::NetemLink). Readiness
    /// is then judged from the log alone, since the port cannot be reached from here.
    pub fn netns(mut self, ns: &str, address: Ipv4Addr) -> Self {
        self.netns = Some((ns.to_owned(), address));
        self
    }

    /// Enables persistence into the instance's own directory
    /// ([`Mosquitto::persistence_dir`]), kept across [`BrokerProcess::restart`](crate::BrokerProcess::restart).
    ///
    /// The broker is configured with `autosave_on_changes true` and
    /// `autosave_interval 1`, so it writes its database after every change to
    /// sessions, subscriptions, retained messages or queued messages, on its
    /// next main-loop iteration (normally within a millisecond of sending the
    /// acknowledgement). What a test can rely on:
    ///
    /// - after [`BrokerProcess::stop`](crate::BrokerProcess::stop) (SIGTERM) everything is saved;
    /// - after [`BrokerProcess::kill`](crate::BrokerProcess::kill) (SIGKILL), state that had been acknowledged
    ///   (SUBACK, PUBACK, ...) at least ~100 ms before the kill is saved; a
    ///   change acknowledged right before the kill may be lost, exactly as with
    ///   a real crash.
    ///
    /// Without persistence every restart starts from an empty broker.
    pub fn persistence(mut self, enabled: bool) -> Self {
        self.persistence = enabled;
        self
    }

    /// Requires these username/password pairs (written with `mosquitto_passwd`)
    /// and disallows anonymous clients, on every listener.
    ///
    /// A failed login gets CONNACK return code 5 (not authorized). An empty
    /// slice leaves anonymous access on.
    pub fn users(mut self, users: &[(&str, &str)]) -> Self {
        self.users = users
            .iter()
            .map(|(user, password)| ((*user).to_owned(), (*password).to_owned()))
            .collect();
        self
    }

    /// Adds a TLS listener on another free port, serving
    /// [`Certs::server_cert`] (for `localhost` and `127.0.0.1`) with
    /// [`Certs::ca_file`] as the CA.
    ///
    /// # Panics
    ///
    /// If the certificate files cannot be read.
    pub fn tls(mut self, certs: &Certs) -> Self {
        self.tls = Some(TlsFiles {
            ca_pem: read(&certs.ca_file()),
            cert_pem: read(&certs.server_cert()),
            key_pem: read(&certs.server_key()),
        });
        self
    }

    /// Requires clients on the TLS listener to present a certificate signed by
    /// the CA (`require_certificate true`), e.g. [`Certs::client_cert`].
    /// Needs [`tls`](Self::tls).
    pub fn mutual_tls(mut self, required: bool) -> Self {
        self.mutual_tls = required;
        self
    }

    /// Serves this certificate and key on the TLS listener instead of
    /// [`Certs::server_cert`], e.g. [`Certs::expired_cert`],
    /// [`Certs::wrong_host_cert`] or [`Certs::other_ca_server_cert`]
    /// (mosquitto starts with any of them; checking them is the client's job).
    /// Needs [`tls`](Self::tls), which still provides the CA.
    ///
    /// # Panics
    ///
    /// If the files cannot be read.
    pub fn tls_server_cert(mut self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.server_cert_override = Some((read(cert.as_ref()), read(key.as_ref())));
        self
    }

    /// Sets `max_packet_size`: the broker disconnects a client that sends a
    /// larger packet (and, for MQTT 5 clients, announces the limit in CONNACK).
    pub fn max_packet_size(mut self, bytes: u32) -> Self {
        self.max_packet_size = Some(bytes);
        self
    }

    /// Appends raw lines to `mosquitto.conf`. They come after the listener
    /// blocks: global options may go here, but listener options would apply
    /// to the last listener (the TLS one if any), so a test needing its own
    /// listener should add a `listener PORT 127.0.0.1` line with a
    /// [`free_port`](crate::free_port) first. Never add a listener without an
    /// address or port (it would collide with the system broker on 1883).
    pub fn extra_config(mut self, config: &str) -> Self {
        self.extra_config.push_str(config);
        self.extra_config.push('\n');
        self
    }

    /// Writes the configuration, starts mosquitto and waits (up to 5 s) until
    /// all its listeners accept connections.
    ///
    /// # Panics
    ///
    /// If `mosquitto` or `mosquitto_passwd` is not installed, if the options
    /// are inconsistent ([`mutual_tls`](Self::mutual_tls) or
    /// [`tls_server_cert`](Self::tls_server_cert) without
    /// [`tls`](Self::tls)), or if the broker does not start; the panic message
    /// includes the broker's log.
    pub fn start(self) -> Mosquitto {
        assert!(
            self.tls.is_some() || !(self.mutual_tls || self.server_cert_override.is_some()),
            "MosquittoBuilder: mutual_tls() and tls_server_cert() need tls(&certs) as well"
        );
        let program = find_binary("mosquitto", MOSQUITTO_HINT);
        let dir = temp_dir("mqtt-test-mosquitto-");
        let conf = self.write_files(dir.path());
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let [mut port, tls_port] = free_ports::<2>();
            let tls_port = self.tls.as_ref().map(|_| tls_port);
            let mut host = Ipv4Addr::LOCALHOST;
            let mut program = program.clone();
            let mut args = vec![OsString::from("-c"), conf.clone().into_os_string()];
            if let Some((ns, address)) = &self.netns {
                port = NETNS_PORT;
                host = *address;
                args.splice(
                    0..0,
                    ["netns", "exec", ns.as_str()]
                        .map(OsString::from)
                        .into_iter()
                        .chain([program.into_os_string()]),
                );
                program = find_binary("ip", "install iproute2");
            }
            write_file(&conf, &self.config(dir.path(), host, port, tls_port));
            let ports = std::iter::once(port).chain(tls_port).collect();
            let mut process = BrokerProcess::new(
                "mosquitto",
                program,
                args,
                dir.path().join("mosquitto.log"),
                ports,
                " running",
            );
            if self.netns.is_some() {
                process = process.without_port_probe();
            }
            match process.try_start() {
                Ok(()) => {
                    return Mosquitto {
                        process,
                        host,
                        port,
                        tls_port,
                        dir,
                    };
                }
                Err(busy) => last_log = busy.log,
            }
        }
        panic!("mosquitto found no free ports in {START_ATTEMPTS} attempts; last log:\n{last_log}");
    }

    /// Writes password file, TLS files and persistence directory; returns the
    /// path of the config file to write.
    fn write_files(&self, dir: &Path) -> PathBuf {
        if !self.users.is_empty() {
            let passwd = find_binary("mosquitto_passwd", MOSQUITTO_HINT);
            let file = dir.join("passwd");
            write_file(&file, "");
            for (user, password) in &self.users {
                let output = Command::new(&passwd)
                    .arg("-b")
                    .arg(&file)
                    .arg(user)
                    .arg(password)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap_or_else(|e| panic!("running {} failed: {e}", passwd.display()));
                assert!(
                    output.status.success(),
                    "mosquitto_passwd -b {} {user} ... failed ({}): {}{}",
                    file.display(),
                    output.status,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
        if let Some(tls) = &self.tls {
            let (cert, key) = self
                .server_cert_override
                .clone()
                .unwrap_or_else(|| (tls.cert_pem.clone(), tls.key_pem.clone()));
            write_file(&dir.join("ca.pem"), &tls.ca_pem);
            write_file(&dir.join("server.pem"), &cert);
            write_file(&dir.join("server.key"), &key);
        }
        if self.persistence {
            let persist = dir.join("persist");
            fs::create_dir(&persist)
                .unwrap_or_else(|e| panic!("creating {} failed: {e}", persist.display()));
        }
        dir.join("mosquitto.conf")
    }

    fn config(&self, dir: &Path, host: Ipv4Addr, port: u16, tls_port: Option<u16>) -> String {
        let d = dir.display();
        let mut conf = String::new();
        let mut line = |text: String| {
            conf.push_str(&text);
            conf.push('\n');
        };
        line("# Written by mqtt-test-support for one test; not the system broker.".into());
        // Mosquitto drops root privileges to the `mosquitto` user by default,
        // which could not write to this root-owned temp dir. Ignored when not root.
        line("user root".into());
        line("per_listener_settings false".into());
        line("log_dest stderr".into());
        for kind in ["error", "warning", "notice", "information"] {
            line(format!("log_type {kind}"));
        }
        line("log_timestamp true".into());
        line("connection_messages true".into());
        if self.users.is_empty() {
            line("allow_anonymous true".into());
        } else {
            line("allow_anonymous false".into());
            line(format!("password_file {d}/passwd"));
        }
        if self.persistence {
            line("persistence true".into());
            line(format!("persistence_location {d}/persist/"));
            line("persistence_file mosquitto.db".into());
            line("autosave_on_changes true".into());
            line("autosave_interval 1".into());
        } else {
            line("persistence false".into());
        }
        if let Some(max) = self.max_packet_size {
            line(format!("max_packet_size {max}"));
        }
        line(format!("listener {port} {host}"));
        if let Some(tls_port) = tls_port {
            line(format!("listener {tls_port} {host}"));
            line(format!("cafile {d}/ca.pem"));
            line(format!("certfile {d}/server.pem"));
            line(format!("keyfile {d}/server.key"));
            line(format!("require_certificate {}", self.mutual_tls));
        }
        if !self.extra_config.is_empty() {
            conf.push_str("# extra_config\n");
            conf.push_str(&self.extra_config);
        }
        conf
    }
}

/// A private mosquitto broker listening on free ports of 127.0.0.1, with its
/// own temporary directory (config, log, password file, certificates,
/// persistence).
///
/// Dropping it kills the broker (continuing it first if paused) and deletes
/// the directory.
#[derive(Debug)]
pub struct Mosquitto {
    // Declared before `dir` so the process is killed before its directory goes.
    process: BrokerProcess,
    host: Ipv4Addr,
    port: u16,
    tls_port: Option<u16>,
    dir: TempDir,
}

impl Mosquitto {
    /// A builder with the defaults: one plain listener, anonymous access, no
    /// persistence.
    pub fn builder() -> MosquittoBuilder {
        MosquittoBuilder::default()
    }

    /// Starts a broker with the defaults (see [`builder`](Self::builder)).
    ///
    /// # Panics
    ///
    /// As [`MosquittoBuilder::start`].
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// The plain MQTT port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port on 127.0.0.1, if [`MosquittoBuilder::tls`] was used.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// `mqtt://127.0.0.1:PORT` (the namespace's address with [`MosquittoBuilder::netns`]).
    pub fn uri(&self) -> String {
        format!("mqtt://{}:{}", self.host, self.port)
    }

    /// `mqtts://localhost:TLSPORT` (the listener is bound to 127.0.0.1 only, or to the
    /// namespace's address with [`MosquittoBuilder::netns`]; the certificate is also valid
    /// for `127.0.0.1`).
    ///
    /// # Panics
    ///
    /// If the broker has no TLS listener.
    pub fn tls_uri(&self) -> String {
        let port = self
            .tls_port
            .expect("Mosquitto::tls_uri: this broker was started without MosquittoBuilder::tls");
        format!("mqtts://localhost:{port}")
    }

    /// The instance's temporary directory (`mosquitto.conf`, `mosquitto.log`, ...).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The persistence directory (it exists only with
    /// [`MosquittoBuilder::persistence`]).
    pub fn persistence_dir(&self) -> PathBuf {
        self.dir.path().join("persist")
    }
}

/// The process control API (`kill`, `stop`, `restart`, `pause`, `resume`, `pid`, `log`).
impl std::ops::Deref for Mosquitto {
    type Target = BrokerProcess;

    fn deref(&self) -> &BrokerProcess {
        &self.process
    }
}

impl std::ops::DerefMut for Mosquitto {
    fn deref_mut(&mut self) -> &mut BrokerProcess {
        &mut self.process
    }
}
