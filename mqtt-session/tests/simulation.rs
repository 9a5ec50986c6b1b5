//! Deterministic simulation: the session against a model broker over a network that delays,
//! chunks and cuts, on a virtual clock, one seed per run. See `sim/mod.rs`.
//!
//! A failing seed names itself; replay it with a trace:
//! `SIM_SEED=123 cargo test -p sansmqtt-session --test simulation first_half -- --nocapture`.
//! The full 10,000 seeds run with `--features slow-tests` (best with `--release`);
//! `SIM_SEEDS=200000` runs that many instead.
#![allow(clippy::unwrap_used)]

mod sim;

use std::ops::Range;

/// Seeds per half: 4,000 in all in the normal suite (about 11 s in debug on two cores),
/// 10,000 with `slow-tests`.
const QUICK_SEEDS: u64 = 2_000;
const SLOW_SEEDS: u64 = 5_000;

fn replay_seed() -> Option<u64> {
    let seed = std::env::var("SIM_SEED").ok()?;
    Some(seed.trim().parse().expect("SIM_SEED is a number"))
}

/// Seeds `[per * n, per * (n + 1))`; `SIM_SEEDS=N` overrides the total, to hunt further.
fn half(n: usize) -> Range<u64> {
    let per = match std::env::var("SIM_SEEDS") {
        Ok(total) => total.trim().parse::<u64>().expect("SIM_SEEDS is a number") / 2,
        Err(_) if cfg!(feature = "slow-tests") => SLOW_SEEDS,
        Err(_) => QUICK_SEEDS,
    };
    per * n as u64..per * (n as u64 + 1)
}

/// Runs `seeds` and prints coverage totals (shown with `--nocapture`). With `SIM_SEED` set,
/// replays that one seed with a trace of every step instead (in the first half).
#[allow(clippy::print_stderr)]
fn run_range(seeds: Range<u64>, first: bool) {
    if let Some(seed) = replay_seed() {
        if first {
            replay(seed);
        }
        return;
    }
    let mut total = sim::Stats::default();
    let mut worst = 0;
    for seed in seeds.clone() {
        let stats = sim::run_seed(seed).unwrap_or_else(|why| panic!("{why}"));
        worst = worst.max(stats.steps);
        total.steps += stats.steps;
        total.virtual_time += stats.virtual_time;
        total.connections += stats.connections;
        total.cuts += stats.cuts;
        total.session_losses += stats.session_losses;
        total.client_messages += stats.client_messages;
        total.broker_messages += stats.broker_messages;
        total.received += stats.received;
        total.crashes += stats.crashes;
        total.store_failures += stats.store_failures;
        total.torn_records += stats.torn_records;
    }
    eprintln!("seeds {seeds:?}: {total:#?}\nmost steps in one run: {worst}");
}

/// Seeds 0..2,000; the second half runs 2,000..4,000 (with `slow-tests`, 0..10,000 split the
/// same way), one test each so two cores share them. Even seeds speak MQTT 3.1.1, odd seeds
/// MQTT 5.0; one pair in four loses sessions (clean-start reconnects).
#[test]
fn simulation_first_half() {
    run_range(half(0), true);
}

#[test]
fn simulation_second_half() {
    run_range(half(1), false);
}

/// Replays `seed` with a trace of every step.
#[allow(clippy::print_stderr)]
fn replay(seed: u64) {
    let scenario = sim::Scenario::from_seed(seed);
    eprintln!("{scenario:#?}");
    let mut run = sim::Sim::new(scenario, true);
    let result = run.drive();
    for line in run.trace() {
        eprintln!("{line}");
    }
    match result {
        Ok(stats) => eprintln!("seed {seed} passed: {stats:?}"),
        Err(why) => panic!("seed {seed}: {why}"),
    }
}

/// Seeds that found the session reusing state of a session the broker had discarded (fixed
/// in `Session::on_connack`): a clean-start connection ended, the broker answered the next
/// CONNECT with a new session whose CONNACK was lost, and the CONNACK after that said
/// "session present" about that new, empty session. The session re-sent PUBREL for flows
/// the new session never saw, and never re-subscribed.
#[test]
fn regression_seeds() {
    for seed in [22, 2374] {
        if let Err(why) = sim::run_seed(seed) {
            panic!("{why}");
        }
    }
}

/// The same bug, scripted against the model broker ([MQTT-3.1.2-6]: state of a clean
/// session must not be reused in a later session).
#[test]
fn regression_session_replaced_while_its_connack_was_lost() {
    use std::time::{Duration, Instant};

    use sansmqtt_proto::{ProtocolVersion, Publish, QoS, SubscribeFilter};
    use sansmqtt_session::{ConnectOptions, Event, Session, SessionConfig};
    use sim::broker::{Broker, BrokerConfig, OutMsg};

    /// One link between `session` and `broker`: moves bytes both ways until both are quiet,
    /// unless `drop_from_broker`, which loses what the broker sends.
    struct Link {
        id: u64,
        delivered: u64,
    }
    impl Link {
        fn pump(
            &mut self,
            now: Instant,
            session: &mut Session,
            broker: &mut Broker,
            drop_from_broker: bool,
        ) -> Vec<Event> {
            let mut events = Vec::new();
            loop {
                let mut progressed = false;
                while let Some(event) = session.poll_event() {
                    events.push(event);
                    progressed = true;
                }
                while let Some(bytes) = session.poll_transmit(now) {
                    broker.handle_read(now, self.id, &bytes);
                    progressed = true;
                }
                while let Some((_, bytes)) = broker.poll_transmit() {
                    progressed = true;
                    if !drop_from_broker {
                        self.delivered += bytes.len() as u64;
                        broker.client_received(self.id, self.delivered);
                        session.handle_read(now, &bytes);
                    }
                }
                if !progressed {
                    return events;
                }
            }
        }
    }

    let version = ProtocolVersion::V311;
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut broker = Broker::new(BrokerConfig {
        version,
        receive_maximum: None,
        topic_alias_maximum: 0,
        aliases_out: false,
        server_keep_alive: None,
        out_window: 10,
        keep_alive_slack: Duration::ZERO,
        round_trip: Duration::ZERO,
    });
    let mut session = Session::new(SessionConfig::new("c", version));
    let resume = || {
        let mut options = ConnectOptions::new(Duration::ZERO);
        options.clean_start = false;
        options
    };

    // Connection 1, clean session: subscribe, then a QoS 2 publish whose PUBCOMP is lost.
    let mut link = Link {
        id: 1,
        delivered: 0,
    };
    broker.open(now, 1);
    session
        .connect(now, ConnectOptions::new(Duration::ZERO))
        .unwrap();
    link.pump(now, &mut session, &mut broker, false);
    let filter = SubscribeFilter::new("t/#", QoS::ExactlyOnce);
    session
        .subscribe(now, vec![filter], Default::default())
        .unwrap();
    link.pump(now, &mut session, &mut broker, false);
    let publish = Publish {
        qos: QoS::ExactlyOnce,
        ..Publish::new("t/1", "m")
    };
    session.publish(now, publish).unwrap();
    // PUBLISH -> PUBREC -> PUBREL arrive; the PUBCOMP is lost with the connection.
    let _ = session
        .poll_transmit(now)
        .map(|b| broker.handle_read(now, 1, &b));
    let (_, rec) = broker.poll_transmit().unwrap();
    link.delivered += rec.len() as u64;
    broker.client_received(1, link.delivered);
    session.handle_read(now, &rec);
    let _ = session
        .poll_transmit(now)
        .map(|b| broker.handle_read(now, 1, &b));
    broker.closed(1); // A clean session ends here: the broker discards it.
    session.handle_transport_closed(now);
    while session.poll_event().is_some() {}

    // Connection 2: the broker creates a new session; its CONNACK is lost.
    let mut link = Link {
        id: 2,
        delivered: 0,
    };
    broker.open(now, 2);
    session.connect(now, resume()).unwrap();
    link.pump(now, &mut session, &mut broker, true);
    broker.closed(2);
    session.handle_transport_closed(now);
    while session.poll_event().is_some() {}

    // Connection 3: "session present" names the new session, which knows nothing of ours.
    let mut link = Link {
        id: 3,
        delivered: 0,
    };
    broker.open(now, 3);
    session.connect(now, resume()).unwrap();
    let events = link.pump(now, &mut session, &mut broker, false);
    assert_eq!(broker.connacks.last(), Some(&true));
    assert_eq!(
        broker.violation, None,
        "the session reused the discarded session's flows"
    );
    assert!(
        matches!(
            events.first(),
            Some(Event::Connected {
                session_present: false,
                ..
            })
        ),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Resubscribed { .. })),
        "{events:?}"
    );
    // Subscribed again: a message for the client arrives.
    let msg = OutMsg {
        topic: "t/2".into(),
        payload: "back".into(),
        qos: QoS::ExactlyOnce,
    };
    assert!(broker.originate("c", msg));
    let events = link.pump(now, &mut session, &mut broker, false);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Message(m) if m.publish.payload == "back")),
        "{events:?}"
    );
    assert_eq!(broker.violation, None);
}
