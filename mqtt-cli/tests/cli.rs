//! The built `sansmqtt` binary against private brokers: a mosquitto per test (plain and TLS) and a
//! nats-server for `ws://`. Every child process runs under a deadline and is killed past it.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mqtt_test_support::{Certs, Mosquitto, Nats, QuicBroker, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_sansmqtt");
/// Longest any single command may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);

/// What a finished command left behind.
#[derive(Debug)]
struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    #[track_caller]
    fn assert_ok(&self) -> &Self {
        assert!(self.status.success(), "mqtt failed: {self:#?}");
        self
    }
}

/// Runs `mqtt ARGS` to completion with `stdin` as its input.
fn mqtt(args: &[&str], stdin: &[u8]) -> Outcome {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the mqtt binary starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    input.write_all(stdin).expect("writing stdin");
    drop(input);
    wait(child, args)
}

/// Waits for `child` under [`DEADLINE`], collecting its output.
fn wait(mut child: Child, args: &[&str]) -> Outcome {
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    wait_with(child, args, stdout, stderr)
}

fn wait_with(
    mut child: Child,
    args: &[&str],
    stdout: thread::JoinHandle<String>,
    stderr: thread::JoinHandle<String>,
) -> Outcome {
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for mqtt") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "mqtt {args:?} did not finish within {DEADLINE:?}; stderr: {}",
                stderr.join().unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    Outcome {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn drain(mut pipe: impl std::io::Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// A running `sansmqtt sub`, started with `-d` so that it says when its subscriptions are in.
struct Subscriber {
    child: Child,
    args: Vec<String>,
    stdout: thread::JoinHandle<String>,
    stderr: thread::JoinHandle<String>,
}

impl Subscriber {
    /// Starts `sansmqtt sub -d ARGS` and returns once the broker granted the subscriptions.
    fn start(args: &[&str]) -> Self {
        let mut all = vec!["sub", "-d"];
        all.extend_from_slice(args);
        let mut child = Command::new(BIN)
            .args(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the mqtt binary starts");
        let stdout = drain(child.stdout.take().expect("stdout is piped"));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stderr_pipe = child.stderr.take().expect("stderr is piped");
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                if line.contains("subscriptions granted") {
                    let _ = ready_tx.send(());
                }
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        let args: Vec<String> = all.iter().map(|s| (*s).to_owned()).collect();
        if ready_rx.recv_timeout(DEADLINE).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "mqtt {args:?} did not subscribe within {DEADLINE:?}; stderr: {}",
                stderr.join().unwrap_or_default()
            );
        }
        Self {
            child,
            args,
            stdout,
            stderr,
        }
    }

    /// Sends `signal` (a `kill` name such as `INT` or `KILL`) to the process.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    fn finish(self) -> Outcome {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        wait_with(self.child, &args, self.stdout, self.stderr)
    }
}

#[test]
fn publish_then_subscribe_round_trips_at_every_qos() {
    let broker = Mosquitto::start();
    let url = broker.uri();
    for qos in ["0", "1", "2"] {
        let topic = format!("cli/qos{qos}");
        let sub = Subscriber::start(&["-L", &url, "-t", "cli/#", "-q", qos, "-C", "1", "-v"]);
        let message = format!("hello at QoS {qos}");
        mqtt(
            &["pub", "-L", &url, "-t", &topic, "-m", &message, "-q", qos],
            b"",
        )
        .assert_ok();
        let out = sub.finish();
        out.assert_ok();
        assert_eq!(out.stdout, format!("{topic} {message}\n"));
    }
}

#[test]
fn websocket_round_trip_through_nats() {
    let nats = Nats::start();
    let url = nats.ws_uri();
    // nats-server's MQTT has no QoS 2.
    let sub = Subscriber::start(&["-L", &url, "-t", "ws/+", "-q", "1", "-C", "1"]);
    mqtt(
        &[
            "pub",
            "-L",
            &url,
            "-t",
            "ws/a",
            "-m",
            "over websocket",
            "-q",
            "1",
        ],
        b"",
    )
    .assert_ok();
    let out = sub.finish();
    out.assert_ok();
    assert_eq!(out.stdout, "over websocket\n");
}

#[test]
fn stdin_lines_become_messages() {
    let broker = Mosquitto::start();
    let url = broker.uri();
    let sub = Subscriber::start(&["-L", &url, "-t", "lines", "-q", "1", "-C", "4"]);
    mqtt(
        &["pub", "-L", &url, "-t", "lines", "-l", "-q", "1"],
        b"first\nsecond\r\n\nlast without newline",
    )
    .assert_ok();
    let out = sub.finish();
    out.assert_ok();
    assert_eq!(out.stdout, "first\nsecond\n\nlast without newline\n");
}

#[test]
fn retained_messages_are_kept_and_cleared() {
    let broker = Mosquitto::start();
    let url = broker.uri();
    mqtt(
        &[
            "pub", "-L", &url, "-t", "keep", "-m", "stored", "-r", "-q", "1",
        ],
        b"",
    )
    .assert_ok();
    let out = mqtt(
        &[
            "sub", "-L", &url, "-t", "keep", "-C", "1", "-W", "10", "-F", "%t %r %p",
        ],
        b"",
    );
    out.assert_ok();
    assert_eq!(out.stdout, "keep 1 stored\n");

    // An empty retained message clears it: nothing arrives, -W expires with status 7.
    mqtt(
        &["pub", "-L", &url, "-t", "keep", "-n", "-r", "-q", "1"],
        b"",
    )
    .assert_ok();
    let started = Instant::now();
    let out = mqtt(&["sub", "-L", &url, "-t", "keep", "-W", "0.5"], b"");
    assert_eq!(out.code(), 7, "{out:#?}");
    assert!(out.stdout.is_empty(), "{out:#?}");
    assert!(out.stderr.contains("timed out"), "{out:#?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn count_stops_after_that_many_messages() {
    let broker = Mosquitto::start();
    let url = broker.uri();
    let sub = Subscriber::start(&["-L", &url, "-t", "c", "-q", "1", "-C", "2", "-W", "10"]);
    mqtt(
        &[
            "pub", "-L", &url, "-t", "c", "-m", "x", "-q", "1", "--repeat", "5",
        ],
        b"",
    )
    .assert_ok();
    let out = sub.finish();
    out.assert_ok();
    assert_eq!(out.stdout, "x\nx\n");

    // -W without -C: a bounded listen that ends in a timeout after what arrived.
    let sub = Subscriber::start(&["-L", &url, "-t", "c", "-W", "3"]);
    mqtt(&["pub", "-L", &url, "-t", "c", "-m", "y"], b"").assert_ok();
    let out = sub.finish();
    assert_eq!(out.code(), 7, "{out:#?}");
    assert_eq!(out.stdout, "y\n");
    assert!(out.stderr.contains("1 message(s) received"), "{out:#?}");
}

#[test]
fn tls_with_a_ca_file() {
    let certs = Certs::generate();
    let broker = Mosquitto::builder().tls(&certs).start();
    let url = broker.tls_uri();
    let ca = certs.ca_file();
    let ca = ca.to_str().expect("UTF-8 path");
    let sub = Subscriber::start(&["-L", &url, "--cafile", ca, "-t", "secure", "-C", "1"]);
    mqtt(
        &[
            "pub", "-L", &url, "--cafile", ca, "-t", "secure", "-m", "over TLS", "-q", "2",
        ],
        b"",
    )
    .assert_ok();
    let out = sub.finish();
    out.assert_ok();
    assert_eq!(out.stdout, "over TLS\n");

    // -h/-p with --cafile means TLS too.
    let port = broker.tls_port().expect("TLS port").to_string();
    mqtt(
        &[
            "pub",
            "-h",
            "localhost",
            "-p",
            &port,
            "--cafile",
            ca,
            "-t",
            "x",
            "-m",
            "y",
        ],
        b"",
    )
    .assert_ok();

    // Without the CA the server certificate is not trusted: status 6.
    let out = mqtt(&["pub", "-L", &url, "-t", "secure", "-m", "x"], b"");
    assert_eq!(out.code(), 6, "{out:#?}");
    assert!(
        out.stderr.starts_with("mqtt: connecting to mqtts://"),
        "{out:#?}"
    );
    assert_eq!(out.stderr.lines().count(), 1, "one line: {out:#?}");
}

#[test]
fn quic_round_trip_and_untrusted_certificate() {
    let certs = Certs::generate();
    let broker = QuicBroker::start(&certs);
    let url = broker.uri();
    let ca = certs.ca_file();
    let ca = ca.to_str().expect("UTF-8 path");
    let sub = Subscriber::start(&["-L", &url, "--cafile", ca, "-t", "over/quic", "-C", "1"]);
    mqtt(
        &[
            "pub",
            "-L",
            &url,
            "--cafile",
            ca,
            "-t",
            "over/quic",
            "-m",
            "via QUIC",
            "-q",
            "1",
        ],
        b"",
    )
    .assert_ok();
    let out = sub.finish();
    out.assert_ok();
    assert_eq!(out.stdout, "via QUIC\n");

    // A CA that did not sign the broker's certificate: a TLS failure, status 6, as mqtts://.
    let other = certs.other_ca_file();
    let other = other.to_str().expect("UTF-8 path");
    let out = mqtt(
        &["pub", "-L", &url, "--cafile", other, "-t", "x", "-m", "x"],
        b"",
    );
    assert_eq!(out.code(), 6, "{out:#?}");
    assert!(
        out.stderr.starts_with("mqtt: connecting to quic://"),
        "{out:#?}"
    );
}

#[test]
fn tls_client_certificate_and_insecure() {
    let certs = Certs::generate();
    let path = |p: std::path::PathBuf| p.to_str().expect("UTF-8 path").to_owned();
    let (ca, cert, key) = (
        path(certs.ca_file()),
        path(certs.client_cert()),
        path(certs.client_key()),
    );
    let mutual = Mosquitto::builder().tls(&certs).mutual_tls(true).start();
    let url = mutual.tls_uri();
    mqtt(
        &[
            "pub", "-L", &url, "--cafile", &ca, "--cert", &cert, "--key", &key, "-t", "m", "-m",
            "x",
        ],
        b"",
    )
    .assert_ok();

    // A certificate for another host name: refused unless --insecure.
    let wrong_host = Mosquitto::builder()
        .tls(&certs)
        .tls_server_cert(certs.wrong_host_cert(), certs.wrong_host_key())
        .start();
    let url = wrong_host.tls_uri();
    let base = ["pub", "-L", &url, "--cafile", &ca, "-t", "w", "-m", "x"];
    let out = mqtt(&base, b"");
    assert_eq!(out.code(), 6, "{out:#?}");
    mqtt(&[&base[..], &["--insecure"]].concat(), b"").assert_ok();
}

#[test]
fn json_output_parses_back() {
    let broker = Mosquitto::start();
    let url = broker.uri();
    let dir = std::env::temp_dir().join(format!("mqtt-cli-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let binary = dir.join("payload.bin");
    std::fs::write(&binary, [0xff, 0x00, 0x10]).expect("write payload");

    let sub = Subscriber::start(&[
        "-L", &url, "-V", "5", "-t", "j/#", "-q", "2", "-C", "2", "-F", "json",
    ]);
    mqtt(
        &[
            "pub",
            "-L",
            &url,
            "-V",
            "5",
            "-t",
            "j/text",
            "-m",
            "héllo",
            "-q",
            "1",
            "--user-property",
            "origin",
            "cli",
            "--user-property",
            "origin",
            "again",
            "--content-type",
            "text/plain",
            "--response-topic",
            "j/reply",
            "--correlation-data",
            "req-1",
            "--message-expiry",
            "300",
        ],
        b"",
    )
    .assert_ok();
    let file = binary.to_str().expect("UTF-8 path");
    mqtt(
        &[
            "pub", "-L", &url, "-V", "5", "-t", "j/bin", "-f", file, "-q", "2",
        ],
        b"",
    )
    .assert_ok();
    let out = sub.finish();
    out.assert_ok();
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 2, "{out:#?}");

    let text = &lines[0];
    assert_eq!(text["topic"], "j/text");
    assert_eq!(text["qos"], 1);
    assert_eq!(text["retain"], false);
    assert_eq!(text["payload"], "héllo");
    assert_eq!(text["payload_encoding"], "utf-8");
    let props = &text["properties"];
    assert_eq!(props["content_type"], "text/plain");
    assert_eq!(props["response_topic"], "j/reply");
    assert_eq!(props["correlation_data"], "req-1");
    assert_eq!(
        props["user_properties"],
        serde_json::json!([["origin", "cli"], ["origin", "again"]])
    );
    let expiry = props["message_expiry_interval"].as_u64().expect("expiry");
    assert!((298..=300).contains(&expiry), "{expiry}");

    let binary = &lines[1];
    assert_eq!(binary["topic"], "j/bin");
    assert_eq!(binary["qos"], 2);
    assert_eq!(binary["payload"], "/wAQ");
    assert_eq!(binary["payload_encoding"], "base64");
    assert_eq!(binary["properties"], serde_json::json!({}));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn configuration_file_supplies_the_broker() {
    let broker = Mosquitto::start();
    let dir = std::env::temp_dir().join(format!("mqtt-cli-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("client.yaml");
    std::fs::write(
        &config,
        format!("uri: {}\nkeep_alive: 30\ndefault_qos: 1\n", broker.uri()),
    )
    .expect("write config");
    let config = config.to_str().expect("UTF-8 path");
    let sub = Subscriber::start(&[
        "--config", config, "-t", "conf", "-q", "2", "-C", "2", "-F", "%q %p",
    ]);
    // The configuration's default_qos applies unless -q says otherwise.
    let publish = ["pub", "--config", config, "-t", "conf"];
    mqtt(&[&publish[..], &["-m", "configured"]].concat(), b"").assert_ok();
    mqtt(
        &[&publish[..], &["-m", "explicit", "-q", "0"]].concat(),
        b"",
    )
    .assert_ok();
    let out = sub.finish();
    out.assert_ok();
    assert_eq!(out.stdout, "1 configured\n0 explicit\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn failures_have_distinct_exit_statuses() {
    // Usage: bad URL, bad option, unknown config format, MQTT 5 option on 3.1.1.
    let out = mqtt(
        &["pub", "-L", "http://localhost/", "-t", "a", "-m", "x"],
        b"",
    );
    assert_eq!(out.code(), 2, "{out:#?}");
    assert!(out.stderr.contains("unsupported scheme"), "{out:#?}");
    let out = mqtt(&["pub", "-t", "a"], b"");
    assert_eq!(out.code(), 2, "{out:#?}");
    assert_eq!(out.stderr.lines().count(), 1, "one line: {out:#?}");
    assert_eq!(mqtt(&["sub", "-t", "a", "-q", "3"], b"").code(), 2);
    assert_eq!(
        mqtt(&["pub", "-t", "a", "-m", "x", "--config", "c.ini"], b"").code(),
        2
    );
    let out = mqtt(&["pub", "-t", "a", "-m", "x", "--content-type", "t"], b"");
    assert_eq!(out.code(), 2, "{out:#?}");
    assert!(out.stderr.contains("-V 5"), "{out:#?}");
    assert_eq!(mqtt(&["sub", "-t", "a/#/b"], b"").code(), 2);

    // Refused: nothing listens on a port that was just free.
    let port = free_port().to_string();
    let out = mqtt(
        &["pub", "-h", "127.0.0.1", "-p", &port, "-t", "a", "-m", "x"],
        b"",
    );
    assert_eq!(out.code(), 3, "{out:#?}");
    assert!(
        out.stderr.contains(&format!("mqtt://127.0.0.1:{port}")),
        "{out:#?}"
    );
    assert_eq!(out.stderr.lines().count(), 1, "one line: {out:#?}");

    // The broker refuses the login.
    let broker = Mosquitto::builder().users(&[("alice", "secret")]).start();
    let port = broker.port().to_string();
    let base = ["pub", "-h", "127.0.0.1", "-p", &port, "-t", "a", "-m", "x"];
    let out = mqtt(&[&base[..], &["-u", "alice", "-P", "wrong"]].concat(), b"");
    assert_eq!(out.code(), 4, "{out:#?}");
    mqtt(&[&base[..], &["-u", "alice", "-P", "secret"]].concat(), b"").assert_ok();
}

/// `-dd` prints the client's trace (every packet) on stderr: the password, given in the URL
/// or with `-P`, right or wrong, shows nowhere in it, nor in the error messages.
#[test]
fn debug_output_never_shows_the_password() {
    const SECRET: &str = "Zq7cliSecretProbePw";
    let broker = Mosquitto::builder().users(&[("alice", SECRET)]).start();
    let url = format!("mqtt://alice:{SECRET}@127.0.0.1:{}", broker.port());
    let wrong_url = format!("mqtt://alice:{SECRET}Wrong@127.0.0.1:{}", broker.port());
    let port = broker.port().to_string();
    let dead = format!("mqtt://alice:{SECRET}@127.0.0.1:{}", free_port());
    let runs = [
        (
            vec!["pub", "-dd", "-L", &url, "-t", "a", "-m", "x", "-q", "1"],
            0,
        ),
        (
            vec!["pub", "-dd", "-L", &wrong_url, "-t", "a", "-m", "x"],
            4,
        ),
        (
            vec![
                "pub",
                "-dd",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-u",
                "alice",
                "-P",
                SECRET,
                "-t",
                "a",
                "-m",
                "x",
            ],
            0,
        ),
        (vec!["sub", "-dd", "-L", &dead, "-t", "a", "-C", "1"], 3),
    ];
    for (args, code) in runs {
        let out = mqtt(&args, b"");
        assert_eq!(out.code(), code, "{out:#?}");
        assert!(
            out.stderr.contains("-out-> Connect") || code == 3,
            "no packet trace: {out:#?}"
        );
        for text in [&out.stdout, &out.stderr] {
            assert!(
                !text.contains(SECRET),
                "the password shows in the output of {args:?}:\n{text}"
            );
        }
    }
}

#[test]
fn help_documents_examples_and_exit_statuses() {
    for command in [
        &["--help"][..],
        &["pub", "--help"],
        &["sub", "--help"],
        &["bench", "--help"],
    ] {
        let out = mqtt(command, b"");
        out.assert_ok();
        assert!(out.stdout.contains("Examples:"), "{command:?}");
        assert!(out.stdout.contains("Exit status:"), "{command:?}");
    }
}

#[test]
fn bench_at_qos1_loses_nothing() {
    let broker = Mosquitto::start();
    let out = mqtt(
        &[
            "bench",
            "-L",
            &broker.uri(),
            "--publishers",
            "3",
            "--subscribers",
            "2",
            "-q",
            "1",
            "--count",
            "300",
            "--size",
            "32",
            "--json",
        ],
        b"",
    );
    out.assert_ok();
    let summary: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON summary");
    assert_eq!(summary["connections"]["connected"], 5, "{summary:#}");
    assert_eq!(summary["published"], 900, "{summary:#}");
    assert_eq!(summary["publish_errors"], 0, "{summary:#}");
    // Every subscriber (on bench/+) gets every message.
    assert_eq!(summary["expected"], 1800, "{summary:#}");
    assert_eq!(summary["received"], 1800, "{summary:#}");
    assert_eq!(summary["lost"], 0, "{summary:#}");
    assert_eq!(summary["latency_us"]["count"], 1800, "{summary:#}");
    let p50 = summary["latency_us"]["p50"].as_u64().expect("p50");
    let p99 = summary["latency_us"]["p99"].as_u64().expect("p99");
    assert!(0 < p50 && p50 <= p99, "{summary:#}");
    // The clients' own counters: 900 PUBLISH out (at least 32 bytes of payload each) and
    // 1,800 in, nothing left in flight, no reconnect.
    let clients = &summary["client_stats"];
    assert_eq!(clients["clients"], 5, "{summary:#}");
    let sent = clients["bytes_sent"].as_u64().expect("bytes_sent");
    let received = clients["bytes_received"].as_u64().expect("bytes_received");
    assert!(sent >= 900 * 32 && received >= 1800 * 32, "{summary:#}");
    for gauge in ["publishes_in_flight", "queued_publishes", "reconnects"] {
        assert_eq!(clients[gauge], 0, "{gauge}: {summary:#}");
    }
    // Status lines go to stderr, plain when it is not a terminal.
    assert!(!out.stderr.contains('\u{1b}'), "{out:#?}");
}

#[test]
fn manual_ack_acknowledges_only_what_reached_stdout() {
    let broker = Mosquitto::start();
    let url = broker.uri();
    let session = [
        "-L",
        &url,
        "-c",
        "-i",
        "cli-manual-ack",
        "-q",
        "1",
        "-t",
        "acked",
    ];
    // A persistent session with the subscription, then a message for it while offline.
    mqtt(&[&["sub"][..], &session, &["-C", "0"]].concat(), b"").assert_ok();
    mqtt(
        &["pub", "-L", &url, "-t", "acked", "-m", "once", "-q", "1"],
        b"",
    )
    .assert_ok();

    // Standard output is closed: the message cannot be written, so it is not acknowledged.
    let mut child = Command::new(BIN)
        .args(
            [
                &["sub"][..],
                &session,
                &["--manual-ack", "-C", "1", "-W", "10"],
            ]
            .concat(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the mqtt binary starts");
    drop(child.stdout.take());
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    let out = wait_with(
        child,
        &["sub", "--manual-ack"],
        drain(std::io::empty()),
        stderr,
    );
    out.assert_ok();

    // So the broker sends it again; this time it is printed and acknowledged...
    let args = [
        &["sub"][..],
        &session,
        &["--manual-ack", "-C", "1", "-W", "10"],
    ]
    .concat();
    let out = mqtt(&args, b"");
    out.assert_ok();
    assert_eq!(out.stdout, "once\n");
    // ...and not sent a third time.
    let out = mqtt(
        &[&["sub"][..], &session, &["--manual-ack", "-W", "1"]].concat(),
        b"",
    );
    assert_eq!(out.code(), 7, "{out:#?}");
    assert!(out.stdout.is_empty(), "{out:#?}");
}

#[test]
fn ctrl_c_disconnects_cleanly_so_the_will_stays_unpublished() {
    let broker = Mosquitto::start();
    let url = broker.uri();
    let watch = |topic: &str, wait: &str| {
        Subscriber::start(&["-L", &url, "-t", topic, "-C", "1", "-W", wait])
    };

    // Killed outright: the broker publishes the will.
    let watcher = watch("wills/crash", "10");
    let crashing = Subscriber::start(&[
        "-L",
        &url,
        "-t",
        "x",
        "--will-topic",
        "wills/crash",
        "--will-payload",
        "gone",
    ]);
    crashing.signal("KILL");
    let _ = crashing.finish();
    let out = watcher.finish();
    out.assert_ok();
    assert_eq!(out.stdout, "gone\n");

    // Ctrl-C: DISCONNECT first, status 0, no will.
    let watcher = watch("wills/polite", "1");
    let polite = Subscriber::start(&[
        "-L",
        &url,
        "-t",
        "x",
        "--will-topic",
        "wills/polite",
        "--will-payload",
        "gone",
    ]);
    polite.signal("INT");
    polite.finish().assert_ok();
    let out = watcher.finish();
    assert_eq!(out.code(), 7, "no will expected: {out:#?}");
    assert!(out.stdout.is_empty(), "{out:#?}");
}

/// Runs `sansmqtt ARGS` with extra environment variables.
fn mqtt_env(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    for name in [
        "ALL_PROXY",
        "all_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        if !env.iter().any(|(set, _)| *set == name) {
            command.env_remove(name);
        }
    }
    wait(command.spawn().expect("the mqtt binary starts"), args)
}

#[test]
fn proxy_option_and_environment_reach_the_broker_without_printing_the_password() {
    const SECRET: &str = "cli-pr0xy-S3CRET";
    let broker = Mosquitto::start();
    let proxy = mqtt_test_support::Socks5Proxy::with_credentials("alice", SECRET);
    let url = format!("mqtt://localhost:{}", broker.port());
    let publish = ["pub", "-L", &url, "-t", "p/x", "-m", "hi", "-q", "1", "-dd"];
    let out = mqtt_env(&[&publish[..], &["--proxy", &proxy.url()]].concat(), &[]);
    out.assert_ok();
    assert!(!format!("{out:?}").contains(SECRET), "{out:#?}");
    let out = mqtt_env(
        &[&publish[..], &["--proxy-from-env"]].concat(),
        &[("ALL_PROXY", &proxy.url())],
    );
    out.assert_ok();
    assert!(!format!("{out:?}").contains(SECRET), "{out:#?}");
    assert_eq!(
        proxy
            .log()
            .matches(&format!("connected to localhost:{}", broker.port()))
            .count(),
        2,
        "both went through the proxy: {}",
        proxy.log()
    );
    // NO_PROXY sends it direct, and without --proxy-from-env the variables are ignored.
    mqtt_env(
        &[&publish[..], &["--proxy-from-env"]].concat(),
        &[("ALL_PROXY", &proxy.url()), ("NO_PROXY", "localhost")],
    )
    .assert_ok();
    mqtt_env(&publish, &[("ALL_PROXY", &proxy.url())]).assert_ok();
    assert_eq!(
        proxy.log().matches("connected to").count(),
        2,
        "{}",
        proxy.log()
    );

    // Wrong proxy credentials: a refused login; a bad proxy URL: a usage error.
    let wrong = format!("socks5://alice:{SECRET}x@127.0.0.1:{}", proxy.port());
    let out = mqtt_env(&[&publish[..], &["--proxy", &wrong]].concat(), &[]);
    assert_eq!(out.code(), 4, "{out:#?}");
    assert!(!format!("{out:?}").contains(SECRET), "{out:#?}");
    let out = mqtt_env(
        &[&publish[..], &["--proxy", &format!("ftp://u:{SECRET}@h")]].concat(),
        &[],
    );
    assert_eq!(out.code(), 2, "{out:#?}");
    assert!(!format!("{out:?}").contains(SECRET), "{out:#?}");
}

#[test]
fn scram_auth_method_logs_in_without_sending_the_password() {
    const PASSWORD: &str = "cli-scram-S3CRET";
    for method in ["SCRAM-SHA-256", "SCRAM-SHA-1"] {
        let (uri, server) = mqtt_test_support::suite::scram_broker(method, PASSWORD);
        let args = [
            "pub",
            "-L",
            &uri,
            "-V",
            "5",
            "--auth-method",
            method,
            "-u",
            "user",
            "-P",
            PASSWORD,
            "-t",
            "a",
            "-m",
            "x",
            "-dd",
        ];
        let out = mqtt_env(&args, &[]);
        out.assert_ok();
        let (connect, accepted) = server.join().expect("the scripted broker");
        assert!(accepted, "{method}");
        let connect = String::from_utf8_lossy(&connect);
        assert!(
            !connect.contains(PASSWORD),
            "the password went out in CONNECT"
        );
        assert!(!format!("{out:?}").contains(PASSWORD), "{out:#?}");
    }
    // MQTT 3.1.1, an unknown method, or no password: usage errors.
    for extra in [
        &["--auth-method", "SCRAM-SHA-256", "-u", "u", "-P", "p"][..],
        &["-V", "5", "--auth-method", "PLAIN", "-u", "u", "-P", "p"],
        &["-V", "5", "--auth-method", "SCRAM-SHA-256", "-u", "u"],
    ] {
        let out = mqtt_env(&[&["pub", "-t", "a", "-m", "x"][..], extra].concat(), &[]);
        assert_eq!(out.code(), 2, "{extra:?}: {out:#?}");
    }
}
