//! Private proxies from Debian's packages: [`Socks5Proxy`] (`microsocks`), [`DanteProxy`]
//! (`danted`) and [`HttpProxy`] (`tinyproxy`), each on a free loopback port with its own directory, killed on drop.

use std::ffi::OsString;
use std::fmt::Write as _;

use tempfile::TempDir;

use crate::free_port;
use crate::process::{BrokerProcess, find_binary, temp_dir, write_file};

/// How many fresh ports a start tries before giving up.
const START_ATTEMPTS: usize = 5;

/// A private SOCKS5 proxy (`microsocks`) on a free port of 127.0.0.1.
///
/// Started with credentials it offers only username/password authentication (RFC 1929)
/// and answers a client offering none with "no acceptable method".
#[derive(Debug)]
pub struct Socks5Proxy {
    process: BrokerProcess,
    port: u16,
    credentials: Option<(String, String)>,
    _dir: TempDir,
}

impl Socks5Proxy {
    /// Starts a SOCKS5 proxy without authentication.
    ///
    /// # Panics
    ///
    /// If `microsocks` is not installed or does not start.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts a SOCKS5 proxy that requires `user` and `password`.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn with_credentials(user: &str, password: &str) -> Self {
        Self::start_with(Some((user.to_owned(), password.to_owned())))
    }

    fn start_with(credentials: Option<(String, String)>) -> Self {
        let program = find_binary(
            "microsocks",
            "install it with `apt-get install -y microsocks`",
        );
        let dir = temp_dir("mqtt-test-microsocks-");
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let mut args: Vec<OsString> = ["-i", "127.0.0.1", "-p"]
                .into_iter()
                .map(OsString::from)
                .collect();
            args.push(port.to_string().into());
            if let Some((user, password)) = &credentials {
                args.extend(["-u".into(), user.into(), "-P".into(), password.into()]);
            }
            // microsocks logs nothing when it is up: readiness is its port accepting.
            let mut process = BrokerProcess::new(
                "microsocks",
                program.clone(),
                args,
                dir.path().join("microsocks.log"),
                vec![port],
                "",
            );
            match process.try_start() {
                Ok(()) => {
                    return Self {
                        process,
                        port,
                        credentials,
                        _dir: dir,
                    };
                }
                Err(busy) => last_log = busy.log,
            }
        }
        panic!("microsocks found no free port in {START_ATTEMPTS} attempts; last log:\n{last_log}");
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `socks5://127.0.0.1:PORT`, with the proxy's credentials if it has any.
    pub fn url(&self) -> String {
        proxy_url("socks5", self.port, self.credentials.as_ref())
    }
}

/// The process control API (`kill`, `pause`, `log`, ...).
impl std::ops::Deref for Socks5Proxy {
    type Target = BrokerProcess;

    fn deref(&self) -> &BrokerProcess {
        &self.process
    }
}

/// Configures and starts a private [`HttpProxy`].
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `start()` is called"]
pub struct HttpProxyBuilder {
    credentials: Option<(String, String)>,
    connect_ports: Vec<u16>,
}

impl HttpProxyBuilder {
    /// Requires Basic proxy authentication with `user` and `password` (`BasicAuth`).
    pub fn credentials(mut self, user: &str, password: &str) -> Self {
        self.credentials = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// Allows CONNECT only to these ports (`ConnectPort`); by default every port is allowed.
    /// A CONNECT to another port is answered 403.
    pub fn connect_ports(mut self, ports: &[u16]) -> Self {
        self.connect_ports = ports.to_vec();
        self
    }

    /// Writes the configuration and starts `tinyproxy` in the foreground.
    ///
    /// # Panics
    ///
    /// If `tinyproxy` is not installed or does not start.
    pub fn start(self) -> HttpProxy {
        let program = find_binary(
            "tinyproxy",
            "install it with `apt-get install -y tinyproxy`",
        );
        let dir = temp_dir("mqtt-test-tinyproxy-");
        let conf = dir.path().join("tinyproxy.conf");
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            write_file(&conf, &self.config(port));
            let mut process = BrokerProcess::new(
                "tinyproxy",
                program.clone(),
                vec!["-d".into(), "-c".into(), conf.clone().into_os_string()],
                dir.path().join("tinyproxy.log"),
                vec![port],
                "Starting main loop",
            );
            match process.try_start() {
                Ok(()) => {
                    return HttpProxy {
                        process,
                        port,
                        credentials: self.credentials,
                        _dir: dir,
                    };
                }
                Err(busy) => last_log = busy.log,
            }
        }
        panic!("tinyproxy found no free port in {START_ATTEMPTS} attempts; last log:\n{last_log}");
    }

    fn config(&self, port: u16) -> String {
        let mut conf = String::from("# Written by mqtt-test-support for one test.\n");
        let _ = writeln!(conf, "Port {port}");
        conf.push_str("Listen 127.0.0.1\nTimeout 600\nMaxClients 100\nLogLevel Info\n");
        conf.push_str("DisableViaHeader Yes\n");
        if let Some((user, password)) = &self.credentials {
            let _ = writeln!(conf, "BasicAuth {user} {password}");
        }
        for port in &self.connect_ports {
            let _ = writeln!(conf, "ConnectPort {port}");
        }
        conf
    }
}

/// A private HTTP proxy (`tinyproxy`) serving CONNECT on a free port of 127.0.0.1.
#[derive(Debug)]
pub struct HttpProxy {
    process: BrokerProcess,
    port: u16,
    credentials: Option<(String, String)>,
    _dir: TempDir,
}

impl HttpProxy {
    /// A builder: no authentication, every port allowed.
    pub fn builder() -> HttpProxyBuilder {
        HttpProxyBuilder::default()
    }

    /// Starts a proxy with the defaults.
    ///
    /// # Panics
    ///
    /// As [`HttpProxyBuilder::start`].
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, with the proxy's credentials if it has any.
    pub fn url(&self) -> String {
        proxy_url("http", self.port, self.credentials.as_ref())
    }
}

/// The process control API (`kill`, `pause`, `log`, ...).
impl std::ops::Deref for HttpProxy {
    type Target = BrokerProcess;

    fn deref(&self) -> &BrokerProcess {
        &self.process
    }
}

fn proxy_url(scheme: &str, port: u16, credentials: Option<&(String, String)>) -> String {
    match credentials {
        Some((user, password)) => format!("{scheme}://{user}:{password}@127.0.0.1:{port}"),
        None => format!("{scheme}://127.0.0.1:{port}"),
    }
}

/// A private SOCKS5 proxy from Dante (`danted`) on a free port of 127.0.0.1, without
/// authentication, that can deny destinations by rule: the way to get a SOCKS5 policy
/// refusal (reply 2, "connection not allowed by ruleset") from a real proxy.
#[derive(Debug)]
pub struct DanteProxy {
    process: BrokerProcess,
    port: u16,
    _dir: TempDir,
}

impl DanteProxy {
    /// Starts `danted` passing every destination except 127.0.0.1 on `denied_ports`.
    ///
    /// # Panics
    ///
    /// If `danted` is not installed or does not start.
    pub fn start(denied_ports: &[u16]) -> Self {
        let program = find_binary(
            "danted",
            "install it with `apt-get install -y dante-server`",
        );
        let dir = temp_dir("mqtt-test-dante-");
        let conf = dir.path().join("danted.conf");
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let mut text = String::from("# Written by mqtt-test-support for one test.\n");
            let _ = writeln!(text, "logoutput: stderr\ninternal: 127.0.0.1 port = {port}");
            text.push_str("external: 127.0.0.1\nclientmethod: none\nsocksmethod: none\n");
            // Root only drops to `nobody` for what needs no privilege.
            text.push_str("user.privileged: root\nuser.unprivileged: nobody\n");
            text.push_str("client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }\n");
            for denied in denied_ports {
                let _ = writeln!(
                    text,
                    "socks block {{ from: 0.0.0.0/0 to: 127.0.0.1/32 port = {denied} log: connect error }}"
                );
            }
            text.push_str("socks pass { from: 0.0.0.0/0 to: 0.0.0.0/0 log: connect error }\n");
            write_file(&conf, &text);
            let mut process = BrokerProcess::new(
                "danted",
                program.clone(),
                vec![
                    "-f".into(),
                    conf.clone().into_os_string(),
                    "-p".into(),
                    dir.path().join("danted.pid").into_os_string(),
                    // One process serving the clients besides the main one: enough for tests.
                    "-N".into(),
                    "1".into(),
                ],
                dir.path().join("danted.log"),
                vec![port],
                " running",
            );
            match process.try_start() {
                Ok(()) => {
                    return Self {
                        process,
                        port,
                        _dir: dir,
                    };
                }
                Err(busy) => last_log = busy.log,
            }
        }
        panic!("danted found no free port in {START_ATTEMPTS} attempts; last log:\n{last_log}");
    }

    /// `socks5://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        proxy_url("socks5", self.port, None)
    }
}

/// The process control API (`kill`, `pause`, `log`, ...).
impl std::ops::Deref for DanteProxy {
    type Target = BrokerProcess;

    fn deref(&self) -> &BrokerProcess {
        &self.process
    }
}
