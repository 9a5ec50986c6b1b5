//! The throughput tables: medians and spreads per cell, ratios against rumqttc measured in the
//! same run, issue 24's targets per broker, and the protocol core's floor.

use std::fmt::Write as _;

use crate::brokers::BrokerKind;
use crate::{Impl, Mode, Options, Results, Sample, json_record};

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// (max - min) / median.
fn spread(values: &[f64]) -> f64 {
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    (max - min) / median(values.to_vec())
}

/// Median of every column, plus the spreads of throughput and CPU.
struct Summary {
    msgs_per_sec: f64,
    spread: f64,
    cpu_us_per_msg: f64,
    cpu_spread: f64,
    user_share: f64,
    rss_mib: f64,
    broker_us_per_msg: f64,
    runs: usize,
}

fn summarize(samples: &[Sample]) -> Summary {
    let rates: Vec<f64> = samples.iter().map(|s| s.msgs_per_sec).collect();
    let cpus: Vec<f64> = samples.iter().map(|s| s.cpu_us_per_msg).collect();
    Summary {
        msgs_per_sec: median(rates.clone()),
        spread: spread(&rates),
        cpu_us_per_msg: median(cpus.clone()),
        cpu_spread: spread(&cpus),
        user_share: median(samples.iter().map(|s| s.user_share).collect()),
        rss_mib: median(samples.iter().map(|s| s.rss_mib).collect()),
        broker_us_per_msg: median(samples.iter().filter_map(|s| s.broker_us_per_msg).collect()),
        runs: samples.len(),
    }
}

/// Issue 24's targets for one cell, ours against rumqttc in the same run.
struct Targets {
    /// msgs/s ratio at least.
    rate: f64,
    /// Client CPU per message ratio at most.
    cpu: Option<f64>,
    /// Broker CPU per message ratio at most.
    broker: Option<f64>,
}

fn targets(broker: BrokerKind, mode: Mode, level: u8) -> Targets {
    match broker {
        BrokerKind::Sink => Targets {
            rate: match (mode, level) {
                (Mode::Pub, 0) => 4.0,
                (Mode::Pub, 1) => 3.0,
                (Mode::Pub, _) => 2.5,
                (Mode::Seq | Mode::PubSub, _) => 2.0,
            },
            cpu: Some(0.25),
            broker: None,
        },
        BrokerKind::Rumqttd => Targets {
            rate: 1.3,
            cpu: None,
            broker: None,
        },
        BrokerKind::Mosquitto => Targets {
            rate: 1.0,
            cpu: None,
            broker: Some(1.0),
        },
    }
}

/// The protocol core's own cost per message, microseconds, quoted from docs/decisions.md
/// (criterion, an earlier and quieter session than any run of this benchmark): the flows
/// benchmark (`mqtt-session/benches/flows.rs`: encode, session bookkeeping, decode of the
/// acknowledgement; outgoing QoS 1 140 ns, QoS 2 190 ns, incoming QoS 1 112 ns, QoS 2 159 ns)
/// and, at QoS 0, which that benchmark does not cover, the codec benchmark (a 64 B PUBLISH:
/// encode 16 ns, encode + decode 53 ns). `pubsub` pays the outgoing and the incoming flow.
fn floor_us(mode: Mode, level: u8) -> f64 {
    match (mode, level) {
        (Mode::Pub | Mode::Seq, 0) => 0.016,
        (Mode::PubSub, 0) => 0.053,
        (_, 1) if mode == Mode::PubSub => 0.140 + 0.112,
        (_, 1) => 0.140,
        (Mode::PubSub, _) => 0.190 + 0.159,
        _ => 0.190,
    }
}

pub(crate) fn print_tables(options: &Options, results: &Results) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "medians of {} interleaved round(s); CPU = client process user+sys over the measured \
         part, per message published (pubsub: published and received back), user = its \
         user-mode share; spread = (max-min)/median (msgs/s, CPU); broker = broker process CPU \
         us per message (10 ms ticks); x = ours / rumqttc in the same run; floor x = CPU per \
         message / the protocol core's own cost (criterion, quoted)",
        options.rounds
    );
    let mut misses = Vec::new();
    for &broker in &options.brokers {
        let _ = writeln!(out, "\nbroker: {}", broker.name());
        let _ = writeln!(
            out,
            "{:<6} {:<3} {:<16} {:>10} {:>6} {:>10} {:>6} {:>5} {:>7} {:>8} {:>8} {:>7} {:>8} \
             {:>7}  targets",
            "mode",
            "qos",
            "impl",
            "msgs/s",
            "spread",
            "CPU us/msg",
            "spread",
            "user",
            "RSS MiB",
            "broker",
            "msgs/s x",
            "CPU x",
            "broker x",
            "floor x"
        );
        for &mode in &options.modes {
            for &level in &options.qos {
                if mode.runs_at(level) {
                    cell_rows(
                        options,
                        results,
                        (broker, mode, level),
                        &mut out,
                        &mut misses,
                    );
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "\ntargets (ours / rumqttc): sink: msgs/s >= 4x (pub QoS 0), 3x (pub QoS 1), 2.5x (pub \
         QoS 2), 2x (seq, pubsub), client CPU/msg <= 0.25x; rumqttd: msgs/s >= 1.3x; \
         mosquitto: msgs/s >= 1.0x, broker CPU/msg <= 1.0x"
    );
    if misses.is_empty() {
        let _ = writeln!(out, "all targets met");
    } else {
        let _ = writeln!(out, "targets missed: {}", misses.join("; "));
    }
    print!("{out}");
}

/// The rows of one (broker, mode, QoS) cell, and its JSON summary records.
fn cell_rows(
    options: &Options,
    results: &Results,
    (broker, mode, level): (BrokerKind, Mode, u8),
    out: &mut String,
    misses: &mut Vec<String>,
) {
    let reference = results
        .get(&(broker, mode, level, Impl::Rumqttc))
        .filter(|s| !s.is_empty())
        .map(|s| summarize(s));
    let mut impls = options.impls.clone();
    if results.contains_key(&(broker, mode, level, Impl::MosquittoPub)) {
        impls.push(Impl::MosquittoPub);
    }
    for imp in impls {
        let Some(samples) = results
            .get(&(broker, mode, level, imp))
            .filter(|s| !s.is_empty())
        else {
            let _ = writeln!(
                out,
                "{:<6} {:<3} {:<16} (no result)",
                mode.name(),
                level,
                imp.name()
            );
            continue;
        };
        let s = summarize(samples);
        let floor = if imp == Impl::MosquittoPub {
            f64::NAN
        } else {
            s.cpu_us_per_msg / floor_us(mode, level)
        };
        let mut json = vec![
            ("kind", "cell".to_owned()),
            ("broker", broker.name().to_owned()),
            ("mode", mode.name().to_owned()),
            ("qos", level.to_string()),
            ("impl", imp.name().to_owned()),
            ("runs", s.runs.to_string()),
            ("msgs_per_sec", s.msgs_per_sec.to_string()),
            ("msgs_per_sec_spread", s.spread.to_string()),
            ("cpu_us_per_msg", s.cpu_us_per_msg.to_string()),
            ("cpu_spread", s.cpu_spread.to_string()),
            ("broker_us_per_msg", s.broker_us_per_msg.to_string()),
            ("floor_us_per_msg", floor_us(mode, level).to_string()),
            ("floor_ratio", floor.to_string()),
        ];
        let (rate_x, cpu_x, broker_x, verdict) = match &reference {
            Some(r) if imp != Impl::Rumqttc && imp != Impl::MosquittoPub => {
                let rate_x = s.msgs_per_sec / r.msgs_per_sec;
                let cpu_x = s.cpu_us_per_msg / r.cpu_us_per_msg;
                let broker_x = s.broker_us_per_msg / r.broker_us_per_msg;
                let t = targets(broker, mode, level);
                let mut verdict = Vec::new();
                let mut miss = false;
                let mut check = |name: &str, ok: bool| {
                    verdict.push(format!("{name} {}", if ok { "ok" } else { "MISS" }));
                    miss |= !ok;
                };
                check("rate", rate_x >= t.rate);
                if let Some(max) = t.cpu {
                    check("CPU", cpu_x <= max);
                }
                // No broker sample (NaN) is no miss.
                if let Some(max) = t.broker {
                    check("broker", broker_x.is_nan() || broker_x <= max);
                }
                if miss {
                    misses.push(format!(
                        "{} {} qos{} {}",
                        broker.name(),
                        mode.name(),
                        level,
                        imp.name()
                    ));
                }
                json.push(("msgs_per_sec_ratio", rate_x.to_string()));
                json.push(("cpu_ratio", cpu_x.to_string()));
                json.push(("broker_ratio", broker_x.to_string()));
                json.push(("targets_met", (!miss).to_string()));
                (
                    format!("{rate_x:.2}"),
                    format!("{cpu_x:.3}"),
                    format!("{broker_x:.2}"),
                    verdict.join(", "),
                )
            }
            _ => (
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
                String::new(),
            ),
        };
        json_record(options, &json);
        let _ = writeln!(
            out,
            "{:<6} {:<3} {:<16} {:>10.0} {:>5.0}% {:>10.2} {:>5.0}% {:>4.0}% {:>7.1} {:>8.2} \
             {:>8} {:>7} {:>8} {:>7.1}  {}{}",
            mode.name(),
            level,
            imp.name(),
            s.msgs_per_sec,
            s.spread * 100.0,
            s.cpu_us_per_msg,
            s.cpu_spread * 100.0,
            s.user_share * 100.0,
            s.rss_mib,
            s.broker_us_per_msg,
            rate_x,
            cpu_x,
            broker_x,
            floor,
            verdict,
            if s.runs < options.rounds {
                format!(" ({} of {} runs ok)", s.runs, options.rounds)
            } else {
                String::new()
            },
        );
    }
}
