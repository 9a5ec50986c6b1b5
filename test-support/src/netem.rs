//! A link emulator for tests: two network namespaces joined by a relay that forwards IP
//! packets with delay, jitter, loss, reordering and full cuts.
//!
//! This kernel has no `netem` qdisc, and a TCP proxy would hide loss from TCP (it terminates
//! the connection), so the emulation happens at the IP layer:
//!
//! ```text
//!  namespace A (broker)            test process (root namespace)          namespace B (clients)
//!  10.77.0.1 ── tun "..a" ──fd──>  reader A→B ─> delay queue ─> writer  ──fd──> tun "..b" ── 10.77.0.2
//!            <─────────────fd───  writer  <─ delay queue <─ reader B→A <──fd──
//! ```
//!
//! Each TUN device is created by this process (through the `tun` crate, which does the
//! `TUNSETIFF` ioctl) and then moved into its namespace with `ip link set .. netns ..`; the
//! file descriptor stays attached to it, so the relay threads in the test process see every
//! packet either namespace sends to the other and write it into the other side as if it had
//! arrived on a wire. Both ends are point-to-point (`peer`) addresses, so no bridge, veth
//! or forwarding is involved, and the namespaces share nothing with the host's loopback.
//!
//! Per direction, a reader thread decides each packet's fate (cut: dropped; loss: dropped with
//! the given probability; reordering: sent at once, overtaking the queue, with the given
//! probability; otherwise delivered after `delay ± jitter`, never before the packet queued
//! before it, as a FIFO path with variable queueing delay would), and a writer thread writes
//! packets when they are due.
//!
//! Processes run in a namespace with [`NetemLink::command_in_a`] (`ip netns exec`), and code
//! of the test itself with [`NetemLink::run_in_b`], which moves a fresh thread into the
//! namespace (`setns`): every socket that thread opens lives in namespace B.
//!
//! Needs root (or `CAP_NET_ADMIN`), `/dev/net/tun` and iproute2's `ip`; without them
//! [`NetemLink::create`] panics saying what is missing.

use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::process::find_binary;

/// Address of namespace A's end of the link.
const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Address of namespace B's end of the link.
const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// How often a blocked reader looks at the stop flag.
const READ_POLL: Duration = Duration::from_millis(50);
/// Distinguishes the links of one process.
static LINKS: AtomicU64 = AtomicU64::new(0);

/// What the link does to packets, in each direction independently.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkConditions {
    /// One-way delay.
    pub delay: Duration,
    /// Uniform variation of the delay: each packet waits `delay ± jitter` (but never
    /// overtakes the packet before it, except when reordered).
    pub jitter: Duration,
    /// Probability in `[0, 1]` that a packet is dropped.
    pub loss: f64,
    /// Probability in `[0, 1]` that a packet is sent at once, ahead of the delayed ones.
    pub reorder: f64,
}

impl LinkConditions {
    /// A delay with jitter, nothing lost or reordered.
    pub fn delay(delay: Duration, jitter: Duration) -> Self {
        Self {
            delay,
            jitter,
            ..Self::default()
        }
    }

    /// The same conditions with a loss probability.
    #[must_use]
    pub fn loss(mut self, loss: f64) -> Self {
        self.loss = loss;
        self
    }

    /// The same conditions with a reordering probability.
    #[must_use]
    pub fn reorder(mut self, reorder: f64) -> Self {
        self.reorder = reorder;
        self
    }
}

/// Packet counts of a link since it was created, both directions together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets delivered to the other side.
    pub forwarded: u64,
    /// Packets dropped by the loss probability.
    pub lost: u64,
    /// Packets dropped because the link was cut (including those queued at the cut).
    pub cut: u64,
    /// Packets sent ahead of the queue.
    pub reordered: u64,
}

#[derive(Default)]
struct Counters {
    forwarded: AtomicU64,
    lost: AtomicU64,
    cut: AtomicU64,
    reordered: AtomicU64,
}

struct State {
    conditions: LinkConditions,
    cut: bool,
}

/// A packet waiting for its time.
struct Delayed {
    due: Instant,
    seq: u64,
    packet: Vec<u8>,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Reversed: `BinaryHeap` is a max-heap and the earliest packet must come out first.
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// One direction's queue between its reader and its writer.
#[derive(Default)]
struct Queue {
    heap: Mutex<BinaryHeap<Delayed>>,
    wake: Condvar,
}

/// Two network namespaces joined by an emulated link; see the module documentation.
///
/// Dropping it stops the relay, closes the TUN devices and deletes both namespaces (kill the
/// processes started in them first).
pub struct NetemLink {
    ns_a: String,
    ns_b: String,
    dev_a: String,
    dev_b: String,
    /// Namespace B's current address (moved by [`move_b_address`](Self::move_b_address)).
    addr_b: Mutex<Ipv4Addr>,
    state: Arc<Mutex<State>>,
    queues: [Arc<Queue>; 2],
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for NetemLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetemLink")
            .field("ns_a", &self.ns_a)
            .field("ns_b", &self.ns_b)
            .finish_non_exhaustive()
    }
}

/// Runs `ip ARGS`, panicking with its output on failure.
fn ip(args: &[&str]) {
    let program = find_binary("ip", "install iproute2 (`apt-get install -y iproute2`)");
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running `ip {}` failed: {e}", args.join(" ")));
    assert!(
        output.status.success(),
        "`ip {}` failed ({}): {}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl NetemLink {
    /// Creates both namespaces, the TUN devices and the relay, with a perfect link (no
    /// delay, no loss) to start with.
    ///
    /// # Panics
    ///
    /// Without root, `/dev/net/tun` or iproute2 (the message says which), or if a step fails.
    pub fn create() -> Self {
        if let Err(err) = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
        {
            panic!(
                "the link emulator needs /dev/net/tun and root (CAP_NET_ADMIN) to create TUN \
                 devices and network namespaces; opening /dev/net/tun failed: {err}"
            );
        }
        let n = LINKS.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}x{n}", std::process::id());
        let ns_a = format!("mqtt-netem-{id}-a");
        let ns_b = format!("mqtt-netem-{id}-b");
        // Interface names have at most 15 bytes.
        let dev_a = format!("mqn{id}a");
        let dev_b = format!("mqn{id}b");
        assert!(dev_a.len() <= 15, "interface name {dev_a} too long");
        ip(&["netns", "add", &ns_a]);
        ip(&["netns", "add", &ns_b]);
        // From here on, `Drop` cleans up whatever a failing step leaves behind.
        let mut link = Self {
            ns_a,
            ns_b,
            dev_a: dev_a.clone(),
            dev_b: dev_b.clone(),
            addr_b: Mutex::new(ADDR_B),
            state: Arc::new(Mutex::new(State {
                conditions: LinkConditions::default(),
                cut: false,
            })),
            queues: [Arc::default(), Arc::default()],
            counters: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        let tun_a = Arc::new(open_tun(&dev_a));
        let tun_b = Arc::new(open_tun(&dev_b));
        for (dev, ns, local, peer) in [
            (&dev_a, &link.ns_a, ADDR_A, ADDR_B),
            (&dev_b, &link.ns_b, ADDR_B, ADDR_A),
        ] {
            ip(&["link", "set", dev, "netns", ns]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{local}/32"),
                "peer",
                &format!("{peer}/32"),
                "dev",
                dev,
            ]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        link.start_direction(0, tun_a.clone(), tun_b.clone(), 0xa2b);
        link.start_direction(1, tun_b, tun_a, 0xb2a);
        link
    }

    /// Starts the reader and writer of one direction, `from` → `to`.
    fn start_direction(
        &mut self,
        index: usize,
        from: Arc<tun::Device>,
        to: Arc<tun::Device>,
        seed: u64,
    ) {
        let queue = self.queues[index].clone();
        let reader = {
            let queue = queue.clone();
            let state = self.state.clone();
            let counters = self.counters.clone();
            let stop = self.stop.clone();
            thread::spawn(move || {
                let mut rng = seed;
                let mut seq = 0u64;
                let mut last_due = Instant::now();
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::SeqCst) {
                    let len = match from.recv_timeout(&mut buf, READ_POLL) {
                        Ok(len) => len,
                        Err(err) if err.kind() == std::io::ErrorKind::TimedOut => continue,
                        Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(err) => panic!("reading a TUN device failed: {err}"),
                    };
                    let now = Instant::now();
                    let (conditions, cut) = {
                        let state = state.lock().expect("link state");
                        (state.conditions, state.cut)
                    };
                    if cut {
                        counters.cut.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if unit(&mut rng) < conditions.loss {
                        counters.lost.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let due = if unit(&mut rng) < conditions.reorder {
                        counters.reordered.fetch_add(1, Ordering::Relaxed);
                        now
                    } else {
                        let spread = conditions.jitter.mul_f64(2.0 * unit(&mut rng));
                        let delay = (conditions.delay + spread).saturating_sub(conditions.jitter);
                        last_due = last_due.max(now + delay);
                        last_due
                    };
                    seq += 1;
                    queue.heap.lock().expect("queue").push(Delayed {
                        due,
                        seq,
                        packet: buf[..len].to_vec(),
                    });
                    queue.wake.notify_one();
                }
            })
        };
        let writer = {
            let counters = self.counters.clone();
            let stop = self.stop.clone();
            thread::spawn(move || {
                let mut heap = queue.heap.lock().expect("queue");
                while !stop.load(Ordering::SeqCst) {
                    let now = Instant::now();
                    let wait = match heap.peek() {
                        Some(first) if first.due <= now => {
                            let Some(Delayed { packet, .. }) = heap.pop() else {
                                continue;
                            };
                            drop(heap);
                            // A packet the stack rejects (e.g. the device went down) is lost,
                            // as on a wire.
                            if to.send(&packet).is_ok() {
                                counters.forwarded.fetch_add(1, Ordering::Relaxed);
                            }
                            heap = queue.heap.lock().expect("queue");
                            continue;
                        }
                        Some(first) => first.due - now,
                        None => READ_POLL,
                    };
                    heap = queue.wake.wait_timeout(heap, wait).expect("queue").0;
                }
            })
        };
        self.threads.push(reader);
        self.threads.push(writer);
    }

    /// Changes the conditions from now on (packets already queued keep their time).
    pub fn set(&self, conditions: LinkConditions) {
        self.state.lock().expect("link state").conditions = conditions;
    }

    /// Cuts the link: every packet, including those queued, is dropped until
    /// [`restore`](Self::restore).
    pub fn cut(&self) {
        self.state.lock().expect("link state").cut = true;
        for queue in &self.queues {
            let mut heap = queue.heap.lock().expect("queue");
            self.counters
                .cut
                .fetch_add(heap.len() as u64, Ordering::Relaxed);
            heap.clear();
        }
    }

    /// Ends a [`cut`](Self::cut).
    pub fn restore(&self) {
        self.state.lock().expect("link state").cut = false;
    }

    /// Packet counts so far.
    pub fn stats(&self) -> LinkStats {
        let c = &self.counters;
        LinkStats {
            forwarded: c.forwarded.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
            cut: c.cut.load(Ordering::Relaxed),
            reordered: c.reordered.load(Ordering::Relaxed),
        }
    }

    /// Namespace A's name (`ip netns exec NAME ...`).
    pub fn ns_a(&self) -> &str {
        &self.ns_a
    }

    /// Namespace B's name.
    pub fn ns_b(&self) -> &str {
        &self.ns_b
    }

    /// Namespace A's address on the link.
    pub fn addr_a(&self) -> Ipv4Addr {
        ADDR_A
    }

    /// Namespace B's address on the link: `10.77.0.2` until
    /// [`move_b_address`](Self::move_b_address) moves it.
    pub fn addr_b(&self) -> Ipv4Addr {
        *self.addr_b.lock().expect("address lock")
    }

    /// Gives namespace B a new address (`10.77.0.3`, then `.4`, ...) and takes the old one
    /// away, as when a device moves to another network: namespace A routes the new address
    /// over the link, B's route to A now names the new address as its source, and the old
    /// address is deleted. A socket bound to the unspecified address sends from the new
    /// address from now on; a connection bound to the old one (TCP) can neither send nor
    /// receive any more. Returns the new address.
    ///
    /// # Panics
    ///
    /// If an `ip` command fails.
    pub fn move_b_address(&self) -> Ipv4Addr {
        let mut current = self.addr_b.lock().expect("address lock");
        let old = *current;
        let [a, b, c, d] = old.octets();
        let new = Ipv4Addr::new(a, b, c, d.checked_add(1).expect("addresses left"));
        let (new_host, old_host, peer) = (
            format!("{new}/32"),
            format!("{old}/32"),
            format!("{ADDR_A}/32"),
        );
        ip(&[
            "-n",
            &self.ns_a,
            "route",
            "add",
            &new_host,
            "dev",
            &self.dev_a,
        ]);
        ip(&[
            "-n",
            &self.ns_b,
            "addr",
            "add",
            &new_host,
            "dev",
            &self.dev_b,
        ]);
        ip(&[
            "-n",
            &self.ns_b,
            "route",
            "replace",
            &peer,
            "dev",
            &self.dev_b,
            "src",
            &new.to_string(),
        ]);
        if old == ADDR_B {
            ip(&[
                "-n",
                &self.ns_b,
                "addr",
                "del",
                &old_host,
                "peer",
                &peer,
                "dev",
                &self.dev_b,
            ]);
        } else {
            ip(&[
                "-n",
                &self.ns_b,
                "addr",
                "del",
                &old_host,
                "dev",
                &self.dev_b,
            ]);
        }
        *current = new;
        new
    }

    /// A command that runs `program` in namespace A (`ip netns exec`, which execs it: the
    /// child's pid is the program's).
    pub fn command_in_a(&self, program: impl Into<PathBuf>) -> Command {
        let mut command = Command::new(find_binary("ip", "install iproute2"));
        command
            .args(["netns", "exec", &self.ns_a])
            .arg(program.into());
        command
    }

    /// Runs `f` on a new thread that has entered namespace B: every socket it opens (a
    /// current-thread async runtime built inside `f`, say) lives there and reaches
    /// namespace A only through the emulated link.
    ///
    /// # Panics
    ///
    /// If entering the namespace fails, or with `f`'s panic.
    pub fn run_in_b<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        run_in(&self.ns_b, f)
    }

    /// Like [`run_in_b`](Self::run_in_b), in namespace A (where the brokers are): a client
    /// there reaches them without crossing the emulated link.
    ///
    /// # Panics
    ///
    /// If entering the namespace fails, or with `f`'s panic.
    pub fn run_in_a<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        run_in(&self.ns_a, f)
    }
}

/// Runs `f` on a new thread that entered network namespace `ns`.
fn run_in<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/var/run/netns/{ns}");
    let ns = File::open(&path).unwrap_or_else(|e| panic!("opening {path} failed: {e}"));
    thread::scope(|scope| {
        let handle = scope.spawn(move || {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("entering network namespace {path} failed: {e}"));
            f()
        });
        match handle.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

impl Drop for NetemLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for queue in &self.queues {
            queue.wake.notify_all();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        // The devices went with their last descriptor; the namespaces go now.
        for ns in [&self.ns_a, &self.ns_b] {
            let _ = Command::new(find_binary("ip", "install iproute2"))
                .args(["netns", "del", ns])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Creates a layer-3 TUN device (no packet information header: packets are bare IP); it is
/// configured with
/// `ip` once moved into its namespace.
fn open_tun(name: &str) -> tun::Device {
    let mut config = tun::Configuration::default();
    config.tun_name(name).layer(tun::Layer::L3);
    config.platform_config(|platform| {
        // Addresses and state are set with `ip` inside the namespace, not here.
        platform.ensure_root_privileges(false);
    });
    tun::create(&config).unwrap_or_else(|e| {
        panic!("creating TUN device {name} failed (needs root and /dev/net/tun): {e}")
    })
}

/// SplitMix64 step mapped to `[0, 1)`: the relay's own reproducible randomness.
fn unit(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}
