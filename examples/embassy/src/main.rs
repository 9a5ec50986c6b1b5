//! The sans-IO session on an embassy executor, over embassy-net (smoltcp) and a Linux TAP
//! device: what a firmware's MQTT task looks like, run on Linux so that CI can drive it against
//! a real mosquitto. No Tokio and no std networking in the MQTT path: the session is built
//! without std, time is `embassy_time::Instant` as a `Duration` since boot, and every byte goes
//! out through a fixed transmit buffer.
//!
//! It publishes `--count` messages at each of QoS 0, 1 and 2 to `emb/out/q<qos>` (one of each
//! every `--interval-ms`, longer than the keep-alive so that pings go out between them),
//! subscribes to `emb/in/#` at QoS 2, and reconnects with its persistent
//! session whenever the connection is lost (keep-alive pings detect a cut link). It exits 0
//! once every publish completed and `--expect` distinct messages arrived at QoS 1 and at QoS 2,
//! printing one `RESULT` line with its counts; 1 if `--deadline-secs` passes first.
//!
//! ```text
//! sansmqtt-embassy-example --tap tap0 --broker 192.168.69.1:1883 --count 30 --expect 20
//! ```
#![allow(clippy::print_stdout)]

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};

use embassy_executor::{Executor, Spawner};
use embassy_futures::select::{Either, select};
use embassy_net::tcp::TcpSocket;
use embassy_net::{Config, Ipv4Cidr, Stack, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use embassy_time::{Instant as EmbassyInstant, Timer, with_timeout};
use sansmqtt_session::proto::{Disconnect, ProtocolVersion, Publish, QoS, SubscribeFilter};
use sansmqtt_session::{ConnectOptions, Event, MemoryStore, Session, SessionConfig, Token};
use static_cell::StaticCell;

/// The session a device runs: no std, time as a `Duration` since boot.
type DeviceSession = Session<MemoryStore, Duration>;

/// Command-line settings.
#[derive(Debug, Clone)]
struct Args {
    tap: String,
    broker: SocketAddrV4,
    address: Ipv4Addr,
    count: u32,
    expect: usize,
    interval: Duration,
    keep_alive: Duration,
    deadline: Duration,
}

impl Args {
    fn parse() -> Self {
        let mut args = Self {
            tap: "tap0".into(),
            broker: SocketAddrV4::new(Ipv4Addr::new(192, 168, 69, 1), 1883),
            address: Ipv4Addr::new(192, 168, 69, 2),
            count: 30,
            expect: 20,
            interval: Duration::from_millis(1500),
            keep_alive: Duration::from_secs(1),
            deadline: Duration::from_secs(90),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next().unwrap_or_else(|| usage(&flag));
            match flag.as_str() {
                "--tap" => args.tap = value,
                "--broker" => args.broker = parse(&flag, &value),
                "--address" => args.address = parse(&flag, &value),
                "--count" => args.count = parse(&flag, &value),
                "--expect" => args.expect = parse(&flag, &value),
                "--interval-ms" => {
                    args.interval = Duration::from_millis(parse(&flag, &value));
                }
                "--keep-alive-secs" => {
                    args.keep_alive = Duration::from_secs(parse(&flag, &value));
                }
                "--deadline-secs" => {
                    args.deadline = Duration::from_secs(parse(&flag, &value));
                }
                _ => usage(&flag),
            }
        }
        args
    }
}

fn parse<T: core::str::FromStr>(flag: &str, value: &str) -> T {
    value.parse().unwrap_or_else(|_| usage(flag))
}

fn usage(flag: &str) -> ! {
    eprintln!(
        "bad or incomplete flag {flag}; flags: --tap --broker --address --count --expect \
         --interval-ms --keep-alive-secs --deadline-secs"
    );
    std::process::exit(2)
}

/// The device's clock, as the session takes it.
fn now() -> Duration {
    Duration::from_micros(EmbassyInstant::now().as_micros())
}

/// A session deadline on embassy's clock.
fn at(deadline: Duration) -> EmbassyInstant {
    EmbassyInstant::from_micros(u64::try_from(deadline.as_micros()).unwrap_or(u64::MAX))
}

/// What the run has seen so far.
#[derive(Debug, Default)]
struct Tally {
    /// Publishes made, per QoS.
    published: [u32; 3],
    /// Publishes completed (`Event::Published` with `Ok`), per QoS.
    completed: [u32; 3],
    /// QoS of each publish not yet completed.
    pending: BTreeMap<Token, usize>,
    /// Distinct payloads received, per QoS of the topic they came on.
    received: [BTreeSet<String>; 3],
    /// Deliveries of a payload already received, per QoS.
    duplicates: [u32; 3],
    connections: u32,
    /// Flights in the window when a connection came up again: what the session re-sent.
    resent: usize,
    subscribed: bool,
}

impl Tally {
    fn done(&self, args: &Args) -> bool {
        self.completed.iter().all(|&n| n == args.count)
            && self.received[1].len() >= args.expect
            && self.received[2].len() >= args.expect
    }

    fn report(&self) -> String {
        format!(
            "RESULT completed_q0={} completed_q1={} completed_q2={} received_q0={} \
             received_q1={} received_q2={} duplicates_q1={} duplicates_q2={} connections={} \
             resent={}",
            self.completed[0],
            self.completed[1],
            self.completed[2],
            self.received[0].len(),
            self.received[1].len(),
            self.received[2].len(),
            self.duplicates[1],
            self.duplicates[2],
            self.connections,
            self.resent
        )
    }
}

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn mqtt_task(stack: Stack<'static>, args: Args) {
    stack.wait_config_up().await;
    let mut config = SessionConfig::new("sansmqtt-embassy", ProtocolVersion::V311);
    config.ping_timeout = args.keep_alive;
    config.connect_timeout = Duration::from_secs(5);
    let mut session: DeviceSession = Session::new(config);
    let mut tally = Tally::default();
    let mut next_publish = now();
    let (mut rx, mut tx) = ([0u8; 2048], [0u8; 2048]);
    let (mut socket_rx, mut socket_tx) = ([0u8; 4096], [0u8; 4096]);
    loop {
        let mut socket = TcpSocket::new(stack, &mut socket_rx, &mut socket_tx);
        let connect = with_timeout(
            embassy_time::Duration::from_secs(3),
            socket.connect(args.broker),
        );
        if !matches!(connect.await, Ok(Ok(()))) {
            println!("CONNECT-FAILED");
            socket.abort();
            Timer::after_millis(500).await;
            continue;
        }
        // A persistent session (clean session off in 3.1.1: one started clean would end with
        // its first connection), so after a reconnect the broker and the session re-send
        // what was in flight and the broker delivers what it queued meanwhile.
        let mut options = ConnectOptions::new(args.keep_alive);
        options.clean_start = false;
        session.connect(now(), options).expect("disconnected");
        run_connection(
            &mut session,
            &mut socket,
            &mut tally,
            &args,
            &mut next_publish,
            (&mut rx, &mut tx),
        )
        .await;
        socket.abort();
        let _ = socket.flush().await;
        if tally.done(&args) {
            println!("{}", tally.report());
            std::process::exit(0);
        }
    }
}

/// One connection, driven in quinn-proto's order until the session reports it over: feed
/// bytes, feed time, drain transmits, drain events, sleep until the next deadline.
async fn run_connection(
    session: &mut DeviceSession,
    socket: &mut TcpSocket<'_>,
    tally: &mut Tally,
    args: &Args,
    next_publish: &mut Duration,
    (rx, tx): (&mut [u8], &mut [u8]),
) {
    loop {
        if now() > args.deadline {
            println!("{}", tally.report());
            println!("DEADLINE");
            std::process::exit(1);
        }
        // Commands: when due, one more message at each QoS.
        if session.is_connected() && now() >= *next_publish {
            for (q, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
                .into_iter()
                .enumerate()
            {
                let n = tally.published[q];
                if n < args.count {
                    let publish = Publish {
                        qos,
                        ..Publish::new(format!("emb/out/q{q}"), format!("q{q}-{n}"))
                    };
                    let token = session.publish(now(), publish).expect("publish accepted");
                    tally.pending.insert(token, q);
                    tally.published[q] += 1;
                }
            }
            *next_publish = now() + args.interval;
        }
        // Drain transmits and events until both are empty.
        loop {
            loop {
                let n = session.poll_transmit_into(now(), tx);
                if n == 0 {
                    break;
                }
                if !write_all(socket, &tx[..n]).await {
                    session.handle_transport_closed(now());
                }
            }
            if session.pending_events() == 0 {
                break;
            }
            while let Some(event) = session.poll_event() {
                if !on_event(session, tally, event) {
                    return;
                }
            }
        }
        if tally.done(args) {
            let _ = session.disconnect(now(), Disconnect::default());
            loop {
                let n = session.poll_transmit_into(now(), tx);
                if n == 0 || !write_all(socket, &tx[..n]).await {
                    break;
                }
            }
            return;
        }
        // Sleep until data, the session's deadline or the next publish.
        let wake = session
            .poll_timeout()
            .map_or(*next_publish, |deadline| deadline.min(*next_publish));
        match select(socket.read(rx), Timer::at(at(wake))).await {
            Either::First(Ok(0) | Err(_)) => session.handle_transport_closed(now()),
            Either::First(Ok(n)) => session.handle_read(now(), &rx[..n]),
            Either::Second(()) => {}
        }
        session.handle_timeout(now());
    }
}

/// Handles one event; `false` once the connection is over.
fn on_event(session: &mut DeviceSession, tally: &mut Tally, event: Event) -> bool {
    match event {
        Event::Connected {
            session_present, ..
        } => {
            tally.connections += 1;
            if tally.connections > 1 {
                tally.resent += session.inflight_len();
            }
            println!(
                "CONNECTED {} session_present={session_present} inflight={}",
                tally.connections,
                session.inflight_len()
            );
            if !tally.subscribed {
                let filter = SubscribeFilter::new("emb/in/#", QoS::ExactlyOnce);
                session
                    .subscribe(now(), vec![filter], Default::default())
                    .expect("subscribe accepted");
            }
        }
        Event::Subscribed { .. } => {
            tally.subscribed = true;
            println!("SUBSCRIBED");
        }
        Event::Message(message) => {
            let topic = message.publish.topic.to_string();
            let q = match topic.as_str() {
                "emb/in/q0" => 0,
                "emb/in/q1" => 1,
                "emb/in/q2" => 2,
                _ => return true,
            };
            let payload = String::from_utf8_lossy(&message.publish.payload).into_owned();
            if !tally.received[q].insert(payload) {
                tally.duplicates[q] += 1;
            }
        }
        Event::Published { token, result, .. } => {
            if let Some(q) = tally.pending.remove(&token) {
                match result {
                    Ok(_) => tally.completed[q] += 1,
                    Err(err) => println!("PUBLISH-FAILED q{q}: {err}"),
                }
            }
        }
        Event::Disconnected { reason } => {
            println!("DISCONNECTED {reason}");
            return false;
        }
        _ => {}
    }
    true
}

/// Writes all of `bytes`; `false` if the socket failed.
async fn write_all(socket: &mut TcpSocket<'_>, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        match socket.write(bytes).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => bytes = &bytes[n..],
        }
    }
    true
}

#[embassy_executor::task]
async fn main_task(spawner: Spawner, args: Args) {
    let device = TunTapDevice::new(&args.tap).expect("open the TAP device (as root)");
    let config = Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(args.address, 24),
        dns_servers: heapless::Vec::new(),
        gateway: None,
    });
    static RESOURCES: StaticCell<StackResources<2>> = StaticCell::new();
    // The seed picks TCP initial sequence numbers and local ports: any per-run value will do.
    let seed = std::process::id().into();
    let (stack, runner) =
        embassy_net::new(device, config, RESOURCES.init(StackResources::new()), seed);
    spawner.spawn(net_task(runner).expect("spawn the network task"));
    spawner.spawn(mqtt_task(stack, args).expect("spawn the MQTT task"));
}

static EXECUTOR: StaticCell<Executor> = StaticCell::new();

fn main() {
    let args = Args::parse();
    let executor = EXECUTOR.init(Executor::new());
    executor.run(|spawner| {
        spawner.spawn(main_task(spawner, args).expect("spawn the main task"));
    });
}
