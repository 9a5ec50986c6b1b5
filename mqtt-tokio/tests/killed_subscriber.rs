//! A subscriber process with a persistent session is killed with SIGKILL while it holds unread
//! QoS 1 and QoS 2 messages; a new process with the same client id receives every one of them,
//! each QoS 2 message exactly once. Nothing unread was acknowledged, so the broker still owns
//! them.
//!
//! The test binary is its own child: run with `MQTT_TEST_CHILD=subscriber` it becomes the
//! subscriber that is killed (hence `harness = false`).

// The child reports readiness on stdout; the parent's figures go to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mqtt_test_support::Mosquitto;
use sansmqtt_tokio::{ClientConfig, MqttClient, QoS};

const EACH: u32 = 100;
const CLIENT_ID: &str = "killed-subscriber";

fn main() -> std::process::ExitCode {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("building a Tokio runtime")
    };
    if std::env::var("MQTT_TEST_CHILD").as_deref() == Ok("subscriber") {
        let uri = std::env::args()
            .nth(1)
            .expect("the child needs the broker URI");
        runtime().block_on(child(&uri));
        return std::process::ExitCode::SUCCESS;
    }
    mqtt_test_support::init_test_tracing();
    // libtest's command line (`--list`, `--exact`, filters, `--ignored`), so that
    // `cargo test -- --list` and nextest list this test without running it.
    let args = libtest_mimic::Arguments::from_args();
    let test = libtest_mimic::Trial::test(
        "killed_subscriber_with_unread_messages_loses_nothing",
        move || {
            runtime().block_on(parent());
            Ok(())
        },
    );
    libtest_mimic::run(&args, vec![test]).exit_code()
}

fn persistent() -> ClientConfig {
    ClientConfig::default()
        .clean_session(false)
        .auto_reconnect(false)
}

/// Subscribes with a persistent session, says so, and never reads a message.
async fn child(uri: &str) {
    let client = MqttClient::new(Some(CLIENT_ID), persistent());
    client.connect(uri).await.expect("child connect");
    client
        .subscribe([
            ("unread/1", QoS::AtLeastOnce),
            ("unread/2", QoS::ExactlyOnce),
        ])
        .await
        .expect("child subscribe");
    println!("ready");
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

async fn parent() {
    let broker = Mosquitto::builder()
        .extra_config("max_queued_messages 0")
        .start();
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .arg(broker.uri())
        .env("MQTT_TEST_CHILD", "subscriber")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the subscriber child");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("child stdout"))
        .read_line(&mut ready)
        .expect("reading the child's readiness");
    assert_eq!(ready.trim(), "ready", "the subscriber child did not start");

    let publisher = MqttClient::new(None, ClientConfig::default());
    publisher
        .connect(broker.uri().as_str())
        .await
        .expect("publisher connect");
    for i in 0..EACH {
        publisher
            .publish("unread/1", format!("q1 {i}"))
            .qos(QoS::AtLeastOnce)
            .await
            .expect("QoS 1 publish");
        publisher
            .publish("unread/2", format!("q2 {i}"))
            .qos(QoS::ExactlyOnce)
            .await
            .expect("QoS 2 publish");
    }
    // Let the child receive (and hold, unread) what the broker's window lets through.
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().expect("SIGKILL the subscriber");
    let status = child.wait().expect("reaping the subscriber");
    assert!(!status.success(), "the subscriber was killed: {status}");

    let restarted = MqttClient::new(Some(CLIENT_ID), persistent());
    let started = Instant::now();
    let connack = restarted
        .connect(broker.uri().as_str())
        .await
        .expect("the restarted subscriber connects");
    assert!(connack.session_present, "the persistent session is resumed");
    let mut seen: BTreeMap<(QoS, u32), u32> = BTreeMap::new();
    while seen.len() < 2 * EACH as usize {
        let message = match restarted
            .deliver_message()
            .timeout(Duration::from_secs(5))
            .await
        {
            Ok(message) => message,
            Err(err) => panic!(
                "after the restart {} of {} messages, then {err:?}",
                seen.len(),
                2 * EACH
            ),
        };
        let text = String::from_utf8_lossy(message.payload()).into_owned();
        let n: u32 = text
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected payload {text:?}"));
        *seen.entry((message.qos(), n)).or_default() += 1;
    }
    if let Ok(message) = restarted
        .deliver_message()
        .timeout(Duration::from_millis(300))
        .await
    {
        let text = String::from_utf8_lossy(message.payload()).into_owned();
        panic!("a message beyond the set, or a duplicate: {text:?}");
    }
    assert!(seen.values().all(|&n| n == 1), "each message exactly once");
    eprintln!(
        "killed subscriber: all {} unread messages arrived after the restart in {:?}",
        2 * EACH,
        started.elapsed()
    );
}
