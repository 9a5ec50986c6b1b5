//! The command line: clap definitions, spelled as mosquitto_pub/sub and amqtt_pub/sub users
//! expect, and the small value parsers they need.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};
use sansmqtt_tokio::{ProtocolVersion, QoS};

use crate::error::exit_status_help;

/// `sansmqtt`: publish, subscribe and benchmark MQTT from the shell.
#[derive(Debug, Parser)]
#[command(
    name = "sansmqtt",
    version,
    about = "Publish, subscribe and benchmark MQTT 3.1.1 / 5.0 brokers (mqtt, mqtts, ws, wss, quic)",
    after_help = TOP_HELP,
    disable_help_subcommand = true
)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Publish one message, a message per stdin line, or a file
    #[command(disable_help_flag = true, after_help = PUB_HELP)]
    Pub(PubArgs),
    /// Subscribe to topic filters and print what arrives
    #[command(disable_help_flag = true, after_help = SUB_HELP)]
    Sub(SubArgs),
    /// Load test: N publishers and M subscribers, rate, latency percentiles
    #[command(disable_help_flag = true, after_help = BENCH_HELP)]
    Bench(BenchArgs),
}

const TOP_HELP: &str = concat!(
    "Examples:
  sansmqtt pub -t sensors/1 -m 21.5 -q 1
  sansmqtt sub -t 'sensors/#' -v -C 10
  sansmqtt bench --publishers 10 --subscribers 1 --rate 100 --duration 10s

Run `mqtt <COMMAND> --help` for each command's options.

",
    exit_status_help!()
);

const PUB_HELP: &str = concat!(
    "Examples:
  sansmqtt pub -t greetings -m hello
  sansmqtt pub -L mqtts://user:secret@broker.example:8883 --cafile ca.pem -t a/b -m hi -q 2 -r
  sansmqtt pub -L quic://broker.example:14567 --cafile ca.pem -t a/b -m hi -q 1
  tail -f app.log | sansmqtt pub -t logs/app -l -q 1
  sansmqtt pub -t cmd/reply -V 5 -m ok --user-property origin cli --content-type text/plain
  sansmqtt pub -t tick -m beat --repeat 10 --interval 500ms
  sansmqtt pub -t retained/topic -n -r           # clear a retained message

",
    exit_status_help!()
);

const SUB_HELP: &str = concat!(
    "Output formats (-F/--format):
  plain     the payload (with -v: topic, a space, the payload), one message per line
  json      one JSON object per line: topic, qos, retain, properties, payload
            (UTF-8 text, or base64 with \"payload_encoding\": \"base64\")
  TEMPLATE  anything else: %t topic, %p payload, %x payload as hex, %q QoS, %r retain (0/1),
            %l payload length, %% a percent sign; \\n, \\t and \\\\ are escapes

Examples:
  sansmqtt sub -t 'sensors/#' -v
  sansmqtt sub -t a/b -t c/d -q 1 -C 1 -W 5s         # first message, or exit 7 after 5 s
  sansmqtt sub -L ws://localhost:8080/mqtt -t '#' -F json | jq .payload
  sansmqtt sub -t 'logs/+' -F '%t [%q] %p'

",
    exit_status_help!()
);

const BENCH_HELP: &str = concat!(
    "Each publisher publishes on the topic pattern with %i replaced by its index; each
subscriber subscribes to --sub-topic (%i: its index), by default the pattern with %i
replaced by `+` (every subscriber receives every message). Payloads carry a timestamp:
latency is measured from the publish call to the delivery to a subscriber.
A status line is shown every second (on stderr); the summary goes to stdout.

Examples:
  sansmqtt bench --publishers 10 --subscribers 1 -q 1 --rate 1000 --duration 10s
  sansmqtt bench --publishers 1 --subscribers 0 --count 100000 --size 1024   # raw publish rate
  sansmqtt bench --publishers 5000 --subscribers 5000 --sub-topic bench/%i --rate 1 \\
             --ramp-up 20s --duration 30s --json          # 10,000 connections

",
    exit_status_help!()
);

/// Connection options shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConnArgs {
    /// Broker URL (the help text shows its shape).
    #[arg(
        short = 'L',
        long,
        value_name = "URL",
        help_heading = "Connection",
        help = "Broker URL: mqtt[s]://[user[:password]@]host[:port] or ws[s]://host[:port]/path"
    )]
    pub(crate) url: Option<String>,
    /// Broker host [default: localhost]
    #[arg(short = 'h', long, conflicts_with = "url", help_heading = "Connection")]
    pub(crate) host: Option<String>,
    /// Broker port [default: 1883, or 8883 with a TLS option]
    #[arg(short = 'p', long, conflicts_with = "url", help_heading = "Connection")]
    pub(crate) port: Option<u16>,
    /// User name (a user name in the URL wins)
    #[arg(short = 'u', long, help_heading = "Connection")]
    pub(crate) username: Option<String>,
    /// Password (a password in the URL wins)
    #[arg(short = 'P', long, visible_alias = "pw", help_heading = "Connection")]
    pub(crate) password: Option<String>,
    /// Client identifier [default: random; bench: the prefix of each client's id]
    #[arg(
        short = 'i',
        long = "id",
        visible_alias = "client-id",
        value_name = "ID",
        help_heading = "Connection"
    )]
    pub(crate) client_id: Option<String>,
    /// Keep alive, in seconds
    #[arg(
        short = 'k',
        long = "keepalive",
        visible_alias = "keep-alive",
        value_name = "SECS",
        help_heading = "Connection"
    )]
    pub(crate) keep_alive: Option<u16>,
    /// MQTT version: 5 or 311 (also mqttv5, mqttv311, 5.0, 3.1.1) [default: 311]
    #[arg(
        short = 'V',
        long = "protocol-version",
        value_name = "VERSION",
        value_parser = parse_version,
        help_heading = "Connection"
    )]
    pub(crate) protocol_version: Option<ProtocolVersion>,
    /// Persistent session: clean session (clean start) off, as mosquitto's -c
    #[arg(
        short = 'c',
        long = "disable-clean-session",
        visible_alias = "no-clean-session",
        help_heading = "Connection"
    )]
    pub(crate) persistent: bool,
    /// Clean session on, the default (amqtt_pub's spelling)
    #[arg(
        long = "clean-session",
        conflicts_with = "persistent",
        help_heading = "Connection"
    )]
    pub(crate) clean_session: bool,
    /// MQTT 5 session expiry interval, in seconds
    #[arg(
        short = 'x',
        long = "session-expiry",
        value_name = "SECS",
        help_heading = "Connection"
    )]
    pub(crate) session_expiry: Option<u32>,
    /// Time allowed for TCP, TLS, WebSocket and CONNACK together (e.g. 5s, 500ms) [default: 10s]
    #[arg(long = "connect-timeout", value_name = "DURATION", value_parser = parse_duration, help_heading = "Connection")]
    pub(crate) connect_timeout: Option<Duration>,
    /// Extra HTTP header for the WebSocket handshake, "Name: value" (repeatable)
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header, help_heading = "Connection")]
    pub(crate) headers: Vec<(String, String)>,
    /// SOCKS5 or HTTP CONNECT proxy (the help text shows its shape).
    #[arg(
        long,
        value_name = "URL",
        help_heading = "Connection",
        help = "SOCKS5 or HTTP CONNECT proxy: socks5://[user:password@]host[:port] or http://[user:password@]host[:port] (TLS and WebSocket run through its tunnel)"
    )]
    pub(crate) proxy: Option<String>,
    /// Take the proxy from all_proxy / https_proxy / http_proxy, honouring no_proxy (as curl)
    #[arg(
        long = "proxy-from-env",
        conflicts_with = "proxy",
        help_heading = "Connection"
    )]
    pub(crate) proxy_from_env: bool,
    /// MQTT 5 enhanced authentication with -u/-P: SCRAM-SHA-256 or SCRAM-SHA-1 (the password
    /// is then never sent, and the broker must prove it knows it)
    #[arg(
        long = "auth-method",
        value_name = "METHOD",
        help_heading = "Connection"
    )]
    pub(crate) auth_method: Option<String>,
    /// Client configuration file: the ClientConfig document (amqtt's keys), YAML, JSON or TOML
    /// by extension; command-line options override it, and its auto_reconnect applies (without
    /// it the tool does not reconnect)
    #[arg(long = "config", value_name = "FILE", help_heading = "Connection")]
    pub(crate) config: Option<PathBuf>,

    /// Trusted CA certificates, PEM file (implies TLS with -h/-p)
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub(crate) cafile: Option<PathBuf>,
    /// Trusted CA certificates, directory of PEM files (implies TLS with -h/-p)
    #[arg(long, value_name = "DIR", help_heading = "TLS")]
    pub(crate) capath: Option<PathBuf>,
    /// Trusted CA certificates, PEM text (implies TLS with -h/-p)
    #[arg(long = "ca-data", value_name = "PEM", help_heading = "TLS")]
    pub(crate) ca_data: Option<String>,
    /// Client certificate for mutual TLS, PEM file
    #[arg(long, value_name = "FILE", requires = "key", help_heading = "TLS")]
    pub(crate) cert: Option<PathBuf>,
    /// Client private key, PEM file
    #[arg(long, value_name = "FILE", requires = "cert", help_heading = "TLS")]
    pub(crate) key: Option<PathBuf>,
    /// Do not check that the server certificate names the host
    #[arg(long, help_heading = "TLS")]
    pub(crate) insecure: bool,

    /// Will topic: published by the broker if the connection ends without DISCONNECT
    #[arg(long = "will-topic", value_name = "TOPIC", help_heading = "Will")]
    pub(crate) will_topic: Option<String>,
    /// Will payload [default: empty]
    #[arg(
        long = "will-payload",
        visible_alias = "will-message",
        value_name = "TEXT",
        requires = "will_topic",
        help_heading = "Will"
    )]
    pub(crate) will_payload: Option<String>,
    /// Will QoS
    #[arg(long = "will-qos", value_name = "QOS", value_parser = parse_qos, requires = "will_topic", help_heading = "Will")]
    pub(crate) will_qos: Option<QoS>,
    /// Retain the will
    #[arg(long = "will-retain", requires = "will_topic", help_heading = "Will")]
    pub(crate) will_retain: bool,

    /// Debug output (tracing) on stderr; -dd for every packet
    #[arg(short = 'd', long = "debug", action = ArgAction::Count, help_heading = "Output")]
    pub(crate) debug: u8,
    /// Print help (-h is the host, as in mosquitto_pub/sub)
    #[arg(long, action = ArgAction::Help, help_heading = "Output")]
    help: Option<bool>,
}

/// `sansmqtt pub`.
#[derive(Debug, Args)]
pub(crate) struct PubArgs {
    /// Connection options.
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// Topic to publish on
    #[arg(short = 't', long, value_name = "TOPIC")]
    pub(crate) topic: String,
    /// Where the payload comes from.
    #[command(flatten)]
    pub(crate) source: PayloadSource,
    /// Quality of service: 0, 1 or 2 [default: the configuration's, else 0]
    #[arg(short = 'q', long, value_name = "QOS", value_parser = parse_qos)]
    pub(crate) qos: Option<QoS>,
    /// Ask the broker to retain the message [default: the configuration's, else no]
    #[arg(short = 'r', long)]
    pub(crate) retain: bool,
    /// Publish the message(s) N times
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) repeat: u64,
    /// Pause between repeats (e.g. 1s, 250ms, 0.5)
    #[arg(long, visible_alias = "repeat-delay", value_name = "DURATION", default_value = "0", value_parser = parse_duration)]
    pub(crate) interval: Duration,
    /// MQTT 5 user property (repeatable)
    #[arg(long = "user-property", num_args = 2, value_names = ["KEY", "VALUE"], help_heading = "MQTT 5 properties (need -V 5)")]
    pub(crate) user_property: Vec<String>,
    /// Message expiry interval, in seconds
    #[arg(
        long = "message-expiry",
        visible_alias = "expiry",
        value_name = "SECS",
        help_heading = "MQTT 5 properties (need -V 5)"
    )]
    pub(crate) message_expiry: Option<u32>,
    /// Content type of the payload (e.g. application/json)
    #[arg(
        long = "content-type",
        value_name = "TYPE",
        help_heading = "MQTT 5 properties (need -V 5)"
    )]
    pub(crate) content_type: Option<String>,
    /// Response topic (request/response)
    #[arg(
        long = "response-topic",
        value_name = "TOPIC",
        help_heading = "MQTT 5 properties (need -V 5)"
    )]
    pub(crate) response_topic: Option<String>,
    /// Correlation data (request/response)
    #[arg(
        long = "correlation-data",
        value_name = "DATA",
        help_heading = "MQTT 5 properties (need -V 5)"
    )]
    pub(crate) correlation_data: Option<String>,
}

/// Exactly one payload source for `pub`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct PayloadSource {
    /// The payload
    #[arg(short = 'm', long = "message", value_name = "TEXT")]
    pub(crate) message: Option<String>,
    /// Send the contents of a file as the payload
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
    /// Read stdin, send each line as a message (without its newline)
    #[arg(short = 'l', long = "stdin-line", conflicts_with_all = ["repeat", "interval"])]
    pub(crate) lines: bool,
    /// Send an empty payload
    #[arg(short = 'n', long = "null-message")]
    pub(crate) null: bool,
    /// Read all of stdin, send it as one message
    #[arg(short = 's', long = "stdin-file")]
    pub(crate) stdin: bool,
}

/// `sansmqtt sub`.
#[derive(Debug, Args)]
pub(crate) struct SubArgs {
    /// Connection options.
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// Topic filter to subscribe to (repeatable)
    #[arg(short = 't', long = "topic", value_name = "FILTER", required = true)]
    pub(crate) topics: Vec<String>,
    /// Maximum quality of service: 0, 1 or 2
    #[arg(short = 'q', long, value_name = "QOS", default_value = "0", value_parser = parse_qos)]
    pub(crate) qos: QoS,
    /// Exit (status 0) after this many messages
    #[arg(short = 'C', long = "count", value_name = "N")]
    pub(crate) count: Option<u64>,
    /// Give up after this long (e.g. 5, 5s, 1500ms): exit status 7
    #[arg(short = 'W', long = "timeout", value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) timeout: Option<Duration>,
    /// Print the topic before each payload (plain format)
    #[arg(short = 'v', long)]
    pub(crate) verbose: bool,
    /// Output format: plain, json, or a template (see below)
    #[arg(short = 'F', long, value_name = "FORMAT", default_value = "plain")]
    pub(crate) format: String,
    /// No newline after each message
    #[arg(short = 'N', long = "no-newline")]
    pub(crate) no_newline: bool,
    /// Do not print retained messages (sent because a retained message was stored)
    #[arg(short = 'R', long = "no-retained")]
    pub(crate) no_retained: bool,
    /// Acknowledge each QoS 1/2 message only after it was written to stdout
    #[arg(long = "manual-ack")]
    pub(crate) manual_ack: bool,
}

/// `sansmqtt bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Connection options.
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    /// Publishing connections
    #[arg(long, visible_alias = "pubs", value_name = "N", default_value_t = 1)]
    pub(crate) publishers: usize,
    /// Subscribing connections
    #[arg(long, visible_alias = "subs", value_name = "M", default_value_t = 1)]
    pub(crate) subscribers: usize,
    /// Topic pattern of publisher i (%i: its index)
    #[arg(short = 't', long, value_name = "PATTERN", default_value = "bench/%i")]
    pub(crate) topic: String,
    /// Filter of subscriber i (%i: its index) [default: the topic pattern, %i as +]
    #[arg(long = "sub-topic", value_name = "PATTERN")]
    pub(crate) sub_topic: Option<String>,
    /// Quality of service of publishes and subscriptions
    #[arg(short = 'q', long, value_name = "QOS", default_value = "0", value_parser = parse_qos)]
    pub(crate) qos: QoS,
    /// Payload size in bytes (at least 20: timestamp, publisher and sequence number)
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = 64)]
    pub(crate) size: usize,
    /// Messages per second per publisher; 0: as fast as possible
    #[arg(short = 'r', long, value_name = "MSGS", default_value_t = 0.0)]
    pub(crate) rate: f64,
    /// How long to publish [default: 10s unless --count]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "count")]
    pub(crate) duration: Option<Duration>,
    /// Messages per publisher (instead of --duration)
    #[arg(short = 'n', long, value_name = "N")]
    pub(crate) count: Option<u64>,
    /// Spread opening the connections over this long
    #[arg(long = "ramp-up", value_name = "DURATION", default_value = "0", value_parser = parse_duration)]
    pub(crate) ramp_up: Duration,
    /// Connections being opened at the same time, at most
    #[arg(long = "connect-concurrency", value_name = "N", default_value_t = 100)]
    pub(crate) connect_concurrency: usize,
    /// QoS 1/2 publishes in flight per publisher [default: the broker's Receive Maximum in
    /// MQTT 5, 20 in MQTT 3.1.1 (mosquitto's default quota)]
    #[arg(long, value_name = "N")]
    pub(crate) inflight: Option<u16>,
    /// After publishing, wait this long at most for the last deliveries
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub(crate) drain: Duration,
    /// Print the summary as JSON (stdout)
    #[arg(long)]
    pub(crate) json: bool,
}

/// Parses a QoS: 0, 1 or 2.
pub(crate) fn parse_qos(s: &str) -> Result<QoS, String> {
    s.parse::<u8>()
        .ok()
        .and_then(QoS::from_u8)
        .ok_or_else(|| format!("QoS must be 0, 1 or 2, not {s:?}"))
}

/// Parses a protocol version the ways mosquitto and amqtt users write it.
pub(crate) fn parse_version(s: &str) -> Result<ProtocolVersion, String> {
    match s.to_ascii_lowercase().as_str() {
        "5" | "5.0" | "v5" | "mqttv5" => Ok(ProtocolVersion::V5),
        "311" | "3.1.1" | "4" | "v311" | "mqttv311" => Ok(ProtocolVersion::V311),
        _ => Err(format!(
            "unsupported protocol version {s:?}: use 5 or 311 (MQTT 3.1 is not supported)"
        )),
    }
}

/// Parses a duration: a number of seconds (`5`, `0.5`) or a number with a unit (`250ms`, `2s`,
/// `1m`, `1h`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: use e.g. 5, 1.5s, 250ms, 2m"))?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?}: use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Parses a WebSocket header, `Name: value`.
pub(crate) fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        // The text itself is not repeated: a header often carries a token.
        .ok_or_else(|| "a header must look like \"Name: value\" (no colon found)".to_owned())?;
    let name = name.trim();
    if name.is_empty() {
        return Err("a header has no name before its colon".to_owned());
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_take_seconds_or_units() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3 fortnights").is_err());
    }

    #[test]
    fn versions_in_mosquitto_and_amqtt_spellings() {
        for v in ["5", "mqttv5", "5.0"] {
            assert_eq!(parse_version(v), Ok(ProtocolVersion::V5));
        }
        for v in ["311", "mqttv311", "3.1.1"] {
            assert_eq!(parse_version(v), Ok(ProtocolVersion::V311));
        }
        assert!(parse_version("31").is_err());
    }

    #[test]
    fn headers_split_at_the_first_colon() {
        assert_eq!(
            parse_header("Authorization: Bearer a:b"),
            Ok(("Authorization".into(), "Bearer a:b".into()))
        );
        assert!(parse_header("no colon").is_err());
    }

    #[test]
    fn mosquitto_spellings_parse() {
        let cli = Cli::try_parse_from([
            "sansmqtt", "pub", "-h", "broker", "-p", "1884", "-t", "a/b", "-m", "x", "-q", "2",
            "-r", "-c", "-i", "me", "-k", "30", "-V", "mqttv5", "-u", "user", "-P", "pw",
        ])
        .expect("parses");
        let Command::Pub(args) = cli.command else {
            panic!("not pub")
        };
        assert_eq!(args.conn.host.as_deref(), Some("broker"));
        assert_eq!(args.conn.port, Some(1884));
        assert_eq!(args.qos, Some(QoS::ExactlyOnce));
        assert!(args.retain && args.conn.persistent);
        assert_eq!(args.conn.protocol_version, Some(ProtocolVersion::V5));
    }

    #[test]
    fn pub_needs_exactly_one_payload_source() {
        assert!(Cli::try_parse_from(["sansmqtt", "pub", "-t", "a"]).is_err());
        assert!(Cli::try_parse_from(["sansmqtt", "pub", "-t", "a", "-m", "x", "-n"]).is_err());
        assert!(Cli::try_parse_from(["sansmqtt", "pub", "-t", "a", "-l"]).is_ok());
    }
}
