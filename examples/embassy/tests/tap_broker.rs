//! The embassy example against a private mosquitto over a TAP device, in a network namespace
//! of its own (needs root, like the link-emulator tests): messages are counted at both ends,
//! and the link is cut in the middle (the broker's address is taken off the TAP device, so
//! the device's packets go unanswered) until the device's keep-alive declares the connection
//! lost and it reconnects with its persistent session.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Messages the device publishes at each QoS.
const COUNT: usize = 10;
/// Messages the test publishes to the device at each QoS (half before the cut, half during).
const EXPECT: usize = 10;
const BROKER: &str = "192.168.69.1";

fn require(program: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let path = Path::new(dir).join(program);
        if path.exists() {
            return path;
        }
    }
    panic!("{program} not found: install {package}");
}

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .unwrap();
    assert_eq!(
        uid, "0",
        "this test creates a network namespace and a TAP device: run it as root"
    );
}

/// A network namespace with `tap0` (192.168.69.1/24) and the processes started in it; all
/// removed on drop.
struct Namespace {
    name: String,
    ip: PathBuf,
    children: Vec<Child>,
}

impl Namespace {
    fn create() -> Self {
        let ns = Self {
            name: format!("smqtt-emb-{}", std::process::id()),
            ip: require("ip", "iproute2"),
            children: Vec::new(),
        };
        ns.run(&["netns", "add", &ns.name], false);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns.exec(&["ip", "tuntap", "add", "name", "tap0", "mode", "tap"]);
        ns.exec(&["ip", "link", "set", "tap0", "up"]);
        ns.exec(&["ip", "addr", "add", &format!("{BROKER}/24"), "dev", "tap0"]);
        ns
    }

    /// Runs `ip ARGS` (in the namespace when `inside`), failing the test if it fails.
    fn run(&self, args: &[&str], inside: bool) {
        let mut command = Command::new(&self.ip);
        if inside {
            command.args(["netns", "exec", &self.name]);
        }
        let output = command.args(args).output().unwrap();
        assert!(
            output.status.success(),
            "ip {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Runs a command inside the namespace and waits for it.
    fn exec(&self, args: &[&str]) {
        self.run(args, true);
    }

    /// A command that runs `program` inside the namespace.
    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(&self.ip);
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    fn spawn(&mut self, mut command: Command) -> usize {
        self.children.push(command.spawn().unwrap());
        self.children.len() - 1
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new(&self.ip)
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Collects a child's stdout lines, forwarding each to `tx` too.
fn collect(child: &mut Child, tx: Option<mpsc::Sender<String>>) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let out = BufReader::new(child.stdout.take().unwrap());
    let sink = Arc::clone(&lines);
    thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            println!("  | {line}");
            sink.lock().unwrap().push(line.clone());
            if let Some(tx) = &tx {
                let _ = tx.send(line);
            }
        }
    });
    lines
}

fn wait_for(rx: &mpsc::Receiver<String>, prefix: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => return line,
            Ok(_) => {}
            Err(_) => panic!("no {prefix:?} line from the device within {within:?}"),
        }
    }
}

/// Publishes `payloads` to `topic` at `qos` through the broker's loopback (unaffected by cuts).
fn publish(ns: &Namespace, mosquitto_pub: &Path, topic: &str, qos: u8, payloads: &[String]) {
    let mut child = ns
        .command(mosquitto_pub)
        .args(["-h", "127.0.0.1", "-t", topic, "-q", &qos.to_string(), "-l"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for payload in payloads {
        writeln!(stdin, "{payload}").unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success(), "mosquitto_pub failed");
}

/// Publishes messages `range` to the device at each QoS: `in-q<qos>-<i>` to `emb/in/q<qos>`.
fn publish_inbound(ns: &Namespace, mosquitto_pub: &Path, range: std::ops::Range<usize>) {
    for q in 0..3u8 {
        let payloads: Vec<String> = range.clone().map(|i| format!("in-q{q}-{i}")).collect();
        publish(ns, mosquitto_pub, &format!("emb/in/q{q}"), q, &payloads);
    }
}

fn field(result: &str, name: &str) -> usize {
    result
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} missing from {result:?}"))
        .parse()
        .unwrap()
}

#[test]
fn embassy_device_publishes_and_receives_at_every_qos_across_a_cut_link() {
    require_root();
    let mosquitto = require("mosquitto", "mosquitto");
    let mosquitto_sub = require("mosquitto_sub", "mosquitto-clients");
    let mosquitto_pub = require("mosquitto_pub", "mosquitto-clients");
    let mut ns = Namespace::create();

    let dir = std::env::temp_dir().join(&ns.name);
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        "listener 1883 0.0.0.0\nallow_anonymous true\npersistence false\n",
    )
    .unwrap();
    let mut broker = ns.command(&mosquitto);
    broker.arg("-c").arg(&conf).stdout(Stdio::null());
    ns.spawn(broker);
    // Up once a publish over loopback succeeds.
    let started = Instant::now();
    while !ns
        .command(&mosquitto_pub)
        .args(["-h", "127.0.0.1", "-t", "probe", "-m", "up"])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "mosquitto did not start"
        );
        thread::sleep(Duration::from_millis(100));
    }

    // The broker's end: every message the device publishes, as "topic payload".
    let mut sub = ns.command(&mosquitto_sub);
    sub.args(["-h", "127.0.0.1", "-t", "emb/out/#", "-q", "2", "-v"])
        .stdout(Stdio::piped());
    let sub = ns.spawn(sub);
    let at_broker = collect(&mut ns.children[sub], None);
    thread::sleep(Duration::from_millis(300));

    // The device.
    let (tx, rx) = mpsc::channel();
    let mut device = ns.command(Path::new(env!("CARGO_BIN_EXE_sansmqtt-embassy-example")));
    device
        .args(["--tap", "tap0", "--broker", &format!("{BROKER}:1883")])
        .args([
            "--count",
            &COUNT.to_string(),
            "--expect",
            &EXPECT.to_string(),
        ])
        .args(["--interval-ms", "1500", "--keep-alive-secs", "1"])
        .args(["--deadline-secs", "120"])
        .stdout(Stdio::piped());
    let device = ns.spawn(device);
    let device_lines = collect(&mut ns.children[device], Some(tx));
    wait_for(&rx, "SUBSCRIBED", Duration::from_secs(30));

    publish_inbound(&ns, &mosquitto_pub, 0..EXPECT / 2);
    thread::sleep(Duration::from_secs(3));

    // Cut: the broker's address leaves the TAP device; the device's segments go unanswered
    // (no reset), so only its keep-alive can tell.
    ns.exec(&["ip", "addr", "del", &format!("{BROKER}/24"), "dev", "tap0"]);
    publish_inbound(&ns, &mosquitto_pub, EXPECT / 2..EXPECT);
    wait_for(&rx, "DISCONNECTED", Duration::from_secs(20));
    thread::sleep(Duration::from_secs(2));
    ns.exec(&["ip", "addr", "add", &format!("{BROKER}/24"), "dev", "tap0"]);

    let result = wait_for(&rx, "RESULT", Duration::from_secs(100));
    let status = ns.children[device].wait().unwrap();
    thread::sleep(Duration::from_secs(1));
    assert!(status.success(), "device exited with {status}");

    // The device's end.
    assert_eq!(field(&result, "completed_q0"), COUNT);
    assert_eq!(field(&result, "completed_q1"), COUNT);
    assert_eq!(field(&result, "completed_q2"), COUNT);
    assert_eq!(field(&result, "received_q1"), EXPECT, "every QoS 1 message");
    assert_eq!(field(&result, "received_q2"), EXPECT, "every QoS 2 message");
    assert_eq!(field(&result, "duplicates_q2"), 0, "QoS 2 delivered once");
    assert!(field(&result, "received_q0") <= EXPECT);
    assert!(
        field(&result, "connections") >= 2,
        "a reconnect after the cut"
    );
    assert!(
        field(&result, "resent") >= 1,
        "publishes in flight at the cut were re-sent: {result}"
    );
    let lines = device_lines.lock().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("CONNECTED 2 session_present=true")),
        "the second connection resumed the session: {lines:?}"
    );

    // The broker's end.
    let at_broker = at_broker.lock().unwrap();
    let mut per_qos: [Vec<&str>; 3] = Default::default();
    for line in at_broker.iter() {
        let (topic, payload) = line.split_once(' ').unwrap();
        let q: usize = topic.strip_prefix("emb/out/q").unwrap().parse().unwrap();
        per_qos[q].push(payload);
    }
    let distinct = |q: usize| per_qos[q].iter().collect::<BTreeSet<_>>().len();
    assert_eq!(distinct(1), COUNT, "every QoS 1 message reached the broker");
    assert_eq!(per_qos[2].len(), COUNT, "every QoS 2 message, once");
    assert_eq!(distinct(2), COUNT);
    assert!(per_qos[0].len() <= COUNT);
    println!(
        "device: {result}; broker: {} QoS 0, {} QoS 1 ({} distinct), {} QoS 2",
        per_qos[0].len(),
        per_qos[1].len(),
        distinct(1),
        per_qos[2].len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
