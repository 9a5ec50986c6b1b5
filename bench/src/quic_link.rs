//! `--quic-link`: MQTT over QUIC against MQTT over TCP + TLS on an emulated link, every run a
//! JSON record (`"kind":"quic_lossy"`, `"kind":"quic_disruption"`), then the tables (median
//! [min-max] over the rounds).
//!
//! The set-up and the measurements are `mqtt_test_support::quic_link`'s, the same code the
//! `quic_netem` test runs once and asserts on: a `NetemLink` (two network namespaces joined
//! by a relay over TUN devices), mosquitto (`mqtts://`) and mqtt5's broker (`mqtts://` and
//! `quic://`) in namespace A, the clients (ours, on Tokio) in namespace B.
//!
//! - Lossy link: 50 ms ± 10 ms one way, 0 %, 2 % and 5 % loss; 300 QoS 1 messages, 20 in
//!   flight, to the client's own subscription: connect time, msgs/s, p99.
//! - Disruptions: a 20 msgs/s QoS 1 stream from B, a subscriber in A, keep-alive 30 s,
//!   through a 2 s, 10 s and 35 s cut (35 s: past QUIC's 30 s idle timeout, inside
//!   mosquitto's 45 s keep-alive grace) and a change of B's address: reconnects, messages
//!   lost and duplicated, longest gap between deliveries, restore to first delivery.
//!
//! Needs root (network namespaces, TUN devices), `/dev/net/tun`, iproute2 and mosquitto;
//! without root it stops at once saying so. `--rounds R` (default 3), `--json FILE`,
//! `--quic-link-part lossy|disruption` for one half, `--quic-link-transports
//! quic/mqtt5,...` for some of `mqtts/mosq`, `mqtts/mqtt5`, `quic/mqtt5`. About 25 minutes
//! with 3 rounds.

use std::time::Duration;

use mqtt_test_support::quic_link::{
    self, DisruptedRun, Disruption, LinkBed, LossyRun, StreamPlan, disruption_comparison,
    lossy_comparison, tokio_block_on,
};
use sansmqtt_tokio::Tokio;

use crate::{Options, json_record};

/// Messages per lossy run, and how many are in flight at once.
const LOSSY: (usize, usize) = (300, 20);

/// Runs the comparison; `part` selects one half (`None`: both).
pub(crate) fn quic_link_main(options: &Options, part: Option<&str>) -> Result<(), String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(
            "--quic-link needs root: it creates network namespaces and TUN devices \
                    (run it with sudo, or as root in a container with CAP_NET_ADMIN and \
                    /dev/net/tun)"
                .into(),
        );
    }
    let (lossy, disruptions) = match part {
        None => (true, true),
        Some("lossy") => (true, false),
        Some("disruption") => (false, true),
        Some(other) => {
            return Err(format!(
                "--quic-link-part: expected lossy or disruption, got {other:?}"
            ));
        }
    };
    let rounds = options.rounds;
    let bed = LinkBed::start();
    let transports: Vec<_> = bed
        .transports()
        .into_iter()
        .filter(|t| {
            options.quic_link_transports.is_empty()
                || options.quic_link_transports.iter().any(|n| n == t.name)
        })
        .collect();
    if transports.is_empty() {
        return Err(format!(
            "--quic-link-transports: none of {:?} is mqtts/mosq, mqtts/mqtt5 or quic/mqtt5",
            options.quic_link_transports
        ));
    }
    let mut tables = String::new();
    if lossy {
        println!(
            "quic-link: lossy link, {} QoS 1 messages, {} in flight, {rounds} round(s)",
            LOSSY.0, LOSSY.1
        );
        let runs = lossy_comparison::<Tokio>(
            &bed,
            &transports,
            &[0.0, 0.02, 0.05],
            rounds,
            LOSSY,
            tokio_block_on,
            |run| lossy_record(options, run),
        );
        tables.push_str(&quic_link::lossy_table(&runs));
        tables.push('\n');
    }
    if disruptions {
        let plan = StreamPlan::default();
        println!(
            "quic-link: disruptions, {} QoS 1 msgs/s, keep-alive {:?}, {rounds} round(s)",
            plan.rate, plan.keep_alive
        );
        let cuts = [2, 10, 35].map(|s| Disruption::Cut(Duration::from_secs(s)));
        let all: Vec<Disruption> = cuts.into_iter().chain([Disruption::MoveAddress]).collect();
        let runs = disruption_comparison::<Tokio>(
            &bed,
            &transports,
            &all,
            rounds,
            plan,
            tokio_block_on,
            |run| {
                disruption_record(options, plan, run);
            },
        );
        tables.push_str(&quic_link::disruption_table(&runs));
    }
    println!("{tables}");
    Ok(())
}

fn millis(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn lossy_record(options: &Options, run: &LossyRun) {
    let f = &run.figures;
    println!(
        "  {:>3.0}% {:<11} round {}: connect {:.0} ms, {:.0} msgs/s, p99 {:.0} ms",
        run.loss * 100.0,
        run.transport,
        run.round,
        f.connect.as_secs_f64() * 1000.0,
        f.per_second,
        f.p99.as_secs_f64() * 1000.0
    );
    json_record(
        options,
        &[
            ("kind", "quic_lossy".to_owned()),
            ("transport", run.transport.to_owned()),
            ("loss", run.loss.to_string()),
            ("delay_ms", "50".to_owned()),
            ("jitter_ms", "10".to_owned()),
            ("round", run.round.to_string()),
            ("messages", LOSSY.0.to_string()),
            ("window", LOSSY.1.to_string()),
            ("connect_ms", millis(f.connect)),
            ("msgs_per_s", format!("{:.1}", f.per_second)),
            ("p99_ms", millis(f.p99)),
            ("received", f.received.to_string()),
            ("duplicated", f.duplicated.to_string()),
        ],
    );
}

fn disruption_record(options: &Options, plan: StreamPlan, run: &DisruptedRun) {
    let f = &run.figures;
    println!(
        "  {:<12} {:<11} round {}: {} reconnect(s), {} lost, {} dup, longest gap {:.2} s, \
         to first delivery {}",
        run.disruption.name(),
        run.transport,
        run.round,
        f.reconnects,
        f.lost,
        f.duplicated,
        f.longest_gap.as_secs_f64(),
        f.to_first_delivery.map_or_else(
            || "never".to_owned(),
            |d| format!("{:.2} s", d.as_secs_f64())
        )
    );
    let (disruption, cut_s) = match run.disruption {
        Disruption::Cut(d) => ("cut", d.as_secs().to_string()),
        Disruption::MoveAddress => ("move_address", "null".to_owned()),
    };
    json_record(
        options,
        &[
            ("kind", "quic_disruption".to_owned()),
            ("transport", run.transport.to_owned()),
            ("disruption", disruption.to_owned()),
            ("cut_s", cut_s),
            ("round", run.round.to_string()),
            ("rate", plan.rate.to_string()),
            ("keep_alive_s", plan.keep_alive.as_secs().to_string()),
            ("published", f.published.to_string()),
            ("lost", f.lost.to_string()),
            ("duplicated", f.duplicated.to_string()),
            ("reconnects", f.reconnects.to_string()),
            ("connection_losses", f.losses.to_string()),
            ("subscriber_reconnects", f.subscriber_reconnects.to_string()),
            ("longest_gap_ms", millis(f.longest_gap)),
            (
                "to_first_delivery_ms",
                f.to_first_delivery
                    .map_or_else(|| "null".to_owned(), millis),
            ),
        ],
    );
}
