//! The README's main command: messages at QoS 0, 1 and 2 through a real broker.
//!
//! Without an argument it starts a private broker on a free loopback port: mosquitto when the
//! binary is installed (on `PATH` or in an `sbin` directory; stopped at the end), else rumqttd
//! embedded in this process, so a machine with only a Rust toolchain runs the demo too. With a URI (`mqtt://`, `mqtts://`, `ws://`, `wss://`) it uses that broker.
//! A subscriber and a publisher client share the broker: the publisher sends a batch at each
//! QoS, concurrently, and the subscriber receives and counts them.
//!
//! `cargo run -p mqtt-examples --bin demo [-- URI [MESSAGES_PER_QOS]]`
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use mqtt_examples::broker::DemoBroker;
use sansmqtt_tokio::{ClientConfig, ClientError, MqttClient, QoS};

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    // The embedded rumqttd logs each connection that closes before CONNECT (the readiness
    // probe) as an error: it speaks only when `RUST_LOG` asks.
    mqtt_examples::init_logging("warn,rumqttd=off");
    let mut args = std::env::args().skip(1);
    let given_uri = args.next();
    let per_qos: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);

    // A private broker unless a URI was given.
    let (uri, broker) = match given_uri {
        Some(uri) => {
            println!("broker: {uri}");
            (uri, None)
        }
        None => {
            let broker = DemoBroker::start().unwrap_or_else(|err| {
                eprintln!("{err}");
                std::process::exit(1)
            });
            println!("broker: {broker}");
            (broker.uri(), Some(broker))
        }
    };

    let topic_root = format!("demo/{}", std::process::id());
    let subscriber = MqttClient::new(Some("demo-subscriber"), ClientConfig::default());
    subscriber.connect(uri.as_str()).await?;
    let filter = format!("{topic_root}/#");
    let granted = subscriber
        .subscribe([(filter.as_str(), QoS::ExactlyOnce)])
        .await?;
    println!("subscribed to {filter}: {granted:?}");

    let publisher = MqttClient::new(Some("demo-publisher"), ClientConfig::default());
    publisher.connect(uri.as_str()).await?;

    let started = Instant::now();
    let mut sends = Vec::new();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for i in 0..per_qos {
            let topic = format!("{topic_root}/qos{}", qos as u8);
            let payload = format!("message {i} at QoS {}", qos as u8);
            sends.push(publisher.publish(topic, payload).qos(qos).into_future());
        }
    }
    // All publishes in flight together: pipelined on one connection.
    try_join_all(sends).await?;
    println!(
        "published {} messages in {:?}",
        3 * per_qos,
        started.elapsed()
    );

    let mut received: BTreeMap<String, usize> = BTreeMap::new();
    let expected = 3 * per_qos;
    let mut total = 0;
    while total < expected {
        match subscriber
            .deliver_message()
            .timeout(Duration::from_secs(5))
            .await
        {
            Ok(message) => {
                total += 1;
                *received.entry(message.topic().to_owned()).or_default() += 1;
                if total <= 3 || total == expected {
                    println!(
                        "received #{total}: {} (QoS {}) => {}",
                        message.topic(),
                        message.qos() as u8,
                        String::from_utf8_lossy(message.payload())
                    );
                }
            }
            // QoS 0 may be dropped by a broker under load; QoS 1 and 2 may not.
            Err(ClientError::Timeout) => break,
            Err(err) => return Err(err),
        }
    }
    for (topic, count) in &received {
        println!("{topic}: {count} received");
    }
    let reliable: usize = received
        .iter()
        .filter(|(topic, _)| !topic.ends_with("qos0"))
        .map(|(_, n)| n)
        .sum();
    println!(
        "{total}/{expected} messages received in {:?}; QoS 1 and 2: {reliable}/{}",
        started.elapsed(),
        2 * per_qos
    );

    publisher.disconnect().await?;
    subscriber.unsubscribe([filter.as_str()]).await?;
    subscriber.disconnect().await?;
    // Stops a mosquitto child, which `exit` below would leave running.
    drop(broker);
    if reliable != 2 * per_qos {
        eprintln!("QoS 1/2 messages went missing");
        std::process::exit(1);
    }
    Ok(())
}
