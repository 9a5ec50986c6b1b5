//! A broker child process: spawning, readiness, signals, log.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a broker gets to open all its ports.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// How many times a restart on the same ports is attempted when a port is busy.
const RESTART_ATTEMPTS: usize = 20;
/// Pause between two restart attempts.
const RESTART_BACKOFF: Duration = Duration::from_millis(100);

/// Finds an executable on `PATH` or in the usual `sbin` directories, or panics
/// with `install_hint`.
pub(crate) fn find_binary(name: &str, install_hint: &str) -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let sbin_dirs = ["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from);
    path_dirs
        .into_iter()
        .chain(sbin_dirs)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| {
            panic!("{name} not found (searched PATH and /usr/local/sbin, /usr/sbin, /sbin): {install_hint}")
        })
}

/// Why a start attempt failed in a way that a retry may fix.
#[derive(Debug)]
pub(crate) struct PortBusy {
    /// The log written by the failed attempt.
    pub(crate) log: String,
}

/// A running broker process and everything needed to start it again: the control API every
/// broker here shares ([`Mosquitto`](crate::Mosquitto) and [`Nats`](crate::Nats) dereference
/// to it), so `broker.kill()`, `broker.pause()` ... work on either.
#[derive(Debug)]
pub struct BrokerProcess {
    name: &'static str,
    program: PathBuf,
    args: Vec<OsString>,
    log_path: PathBuf,
    ports: Vec<u16>,
    ready_marker: &'static str,
    child: Option<Child>,
    paused: bool,
    /// Whether readiness includes connecting to the ports on 127.0.0.1 (not possible for a
    /// broker in another network namespace).
    probe_ports: bool,
}

impl BrokerProcess {
    /// Describes a process; nothing is spawned yet.
    ///
    /// It counts as ready once every port in `ports` accepts TCP connections on
    /// 127.0.0.1 and its log (stdout and stderr go to `log_path`) contains
    /// `ready_marker`.
    pub(crate) fn new(
        name: &'static str,
        program: PathBuf,
        args: Vec<OsString>,
        log_path: PathBuf,
        ports: Vec<u16>,
        ready_marker: &'static str,
    ) -> Self {
        Self {
            name,
            program,
            args,
            log_path,
            ports,
            ready_marker,
            child: None,
            paused: false,
            probe_ports: true,
        }
    }

    /// Readiness is the log marker alone: the ports are not reachable from here (the
    /// process runs in another network namespace).
    pub(crate) fn without_port_probe(mut self) -> Self {
        self.probe_ports = false;
        self
    }

    /// Spawns the process and waits until it is ready.
    ///
    /// Returns `Err` if the process exited early because a port was in use;
    /// panics with the log on any other failure.
    pub(crate) fn try_start(&mut self) -> Result<(), PortBusy> {
        assert!(
            self.child.is_none(),
            "{} is already running (kill it before starting it again)",
            self.name
        );
        let log_offset = fs::metadata(&self.log_path).map_or(0, |meta| meta.len());
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap_or_else(|e| panic!("opening {} failed: {e}", self.log_path.display()));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cloning the log file handle failed: {e}"));
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {} failed: {e}", self.program.display()));
        self.child = Some(child);
        self.paused = false;
        self.wait_ready(log_offset)
    }

    /// Spawns the process, retrying for a while if a port is still busy.
    pub(crate) fn start_retrying(&mut self) {
        let mut last = String::new();
        for _ in 0..RESTART_ATTEMPTS {
            match self.try_start() {
                Ok(()) => return,
                Err(busy) => last = busy.log,
            }
            thread::sleep(RESTART_BACKOFF);
        }
        panic!(
            "{} could not bind its ports {:?} after {RESTART_ATTEMPTS} attempts; last log:\n{last}",
            self.name, self.ports
        );
    }

    fn wait_ready(&mut self, log_offset: u64) -> Result<(), PortBusy> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let exited = self
                .child
                .as_mut()
                .expect("wait_ready is only called with a child")
                .try_wait()
                .unwrap_or_else(|e| panic!("polling the {} process failed: {e}", self.name));
            if let Some(status) = exited {
                self.child = None;
                let log = read_log_from(&self.log_path, log_offset);
                if log.to_ascii_lowercase().contains("address already in use") {
                    return Err(PortBusy { log });
                }
                panic!(
                    "{} exited during start-up ({status}); log {}:\n{log}",
                    self.name,
                    self.log_path.display()
                );
            }
            // The marker first: it is written only after every listener is
            // bound, so the probes below rarely run more than once.
            if read_log_from(&self.log_path, log_offset).contains(self.ready_marker)
                && (!self.probe_ports || self.ports.iter().all(|&port| accepts(port)))
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "{} did not become ready on ports {:?} within {READY_TIMEOUT:?}; log {}:\n{}",
                    self.name,
                    self.ports,
                    self.log_path.display(),
                    read_log_from(&self.log_path, log_offset)
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The process id, if it is running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the broker with SIGKILL (after SIGCONT if paused) and waits for it to exit,
    /// like a crash. No-op if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.paused {
                // SIGKILL works on a stopped process too; continuing it first
                // just keeps the process table tidy.
                let _ = send_signal(child.id(), "CONT");
                self.paused = false;
            }
            // `kill` fails only if the child was already reaped, which
            // `self.child` being `Some` rules out; ignore it anyway.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the broker cleanly with SIGTERM (after SIGCONT if paused) and waits for it to
    /// exit; a broker with persistence saves its full state first. No-op if it is not running.
    ///
    /// # Panics
    ///
    /// If it has not exited within 5 s (it is then killed).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.paused {
            self.signal_checked(child.id(), "CONT");
            self.paused = false;
        }
        self.signal_checked(child.id(), "TERM");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "{} did not exit within {READY_TIMEOUT:?} of SIGTERM; killed it. Log:\n{}",
                        self.name,
                        self.log()
                    );
                }
            }
        }
    }

    /// Starts the broker again on the same ports with the same configuration and storage,
    /// killing it first (SIGKILL) if it is still running. Retries for about two seconds while
    /// a port is still busy.
    ///
    /// # Panics
    ///
    /// If it cannot be started.
    pub fn restart(&mut self) {
        self.kill();
        self.start_retrying();
    }

    /// Freezes the broker with SIGSTOP: connections stay open (and new ones complete the TCP
    /// handshake in the kernel) but nothing is answered.
    ///
    /// # Panics
    ///
    /// If it is not running.
    pub fn pause(&mut self) {
        let pid = self.running_pid("pause");
        self.signal_checked(pid, "STOP");
        self.paused = true;
    }

    /// Continues a paused broker with SIGCONT.
    ///
    /// # Panics
    ///
    /// If it is not running.
    pub fn resume(&mut self) {
        let pid = self.running_pid("resume");
        self.signal_checked(pid, "CONT");
        self.paused = false;
    }

    /// Everything the broker logged so far, across restarts.
    pub fn log(&self) -> String {
        read_log_from(&self.log_path, 0)
    }

    fn running_pid(&self, action: &str) -> u32 {
        self.pid()
            .unwrap_or_else(|| panic!("cannot {action} {}: it is not running", self.name))
    }

    fn signal_checked(&self, pid: u32, signal: &str) {
        if let Err(e) = send_signal(pid, signal) {
            panic!(
                "sending SIG{signal} to {} (pid {pid}) failed: {e}",
                self.name
            );
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends a signal with the `kill` command (no `unsafe` needed).
fn send_signal(pid: u32, signal: &str) -> Result<(), String> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("running `kill` failed: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`kill -{signal} {pid}` exited with {status}"))
    }
}

/// Whether 127.0.0.1:`port` accepts a TCP connection.
fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

fn read_log_from(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).map_or(bytes.len(), |o| o.min(bytes.len()));
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Creates a file, panicking with its path on failure.
pub(crate) fn write_file(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("writing {} failed: {e}", path.display()));
}

/// Creates a temporary directory for one broker instance.
pub(crate) fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .unwrap_or_else(|e| panic!("creating a temporary directory failed: {e}"))
}

/// Reads a text file, panicking with its path on failure.
pub(crate) fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {} failed: {e}", path.display()))
}
