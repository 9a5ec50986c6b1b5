//! A worker that acknowledges each QoS 1 job only after processing it (manual acks), with a
//! bounded inbox for a slow consumer: subscribe to `jobs/#` on a persistent session, take
//! COUNT jobs, "process" each for 50 ms, acknowledge it, disconnect.
//!
//! If the process dies between taking a job and `ack`, the broker sends the job again to the
//! next client with the same id: nothing is lost. QoS 0 messages arriving while
//! `message_buffer` messages wait are dropped by the `Overflow` policy and counted.
//!
//! `cargo run -p mqtt-examples --example manual_acks_tokio -- [URI] [COUNT]`
//! (then, in another shell: `sansmqtt pub -t jobs/1 -m work -q 1 -L mqtt://127.0.0.1:1883`)
#![allow(clippy::print_stdout)]

use std::time::Duration;

use futures_util::StreamExt;
use sansmqtt_tokio::{ClientConfig, ClientError, ConnectionEvent, MqttClient, Overflow, QoS};

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    tracing_subscriber::fmt::init();
    let mut args = std::env::args().skip(1);
    let uri = args
        .next()
        .unwrap_or_else(|| "mqtt://127.0.0.1:1883/".into());
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);

    let config = ClientConfig::default()
        // Acknowledge with `client.ack(&message)`, not when the message is handed out.
        .manual_acks(true)
        // A persistent session: unacknowledged jobs wait at the broker across restarts.
        .clean_session(false)
        // At most 64 received messages wait for the application; beyond that, QoS 1/2
        // messages stay at the broker (flow control) and QoS 0 ones are dropped...
        .message_buffer(64)
        // ... oldest first, so the freshest readings win.
        .overflow(Overflow::DropOldest);
    let client = MqttClient::new(Some("manual-acks-worker"), config);

    // Drops are reported as events (and counted in `stats().messages_dropped`).
    let mut events = client.connection_events();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let ConnectionEvent::MessagesDropped { count } = event {
                println!("{count} QoS 0 messages dropped: the worker is too slow");
            }
        }
    });

    client.connect(uri.as_str()).await?;
    client.subscribe([("jobs/#", QoS::AtLeastOnce)]).await?;
    for _ in 0..count {
        let job = client.deliver_message().await?;
        tokio::time::sleep(Duration::from_millis(50)).await; // the work
        // Acknowledgements may be given in any order; they leave in arrival order.
        client.ack(&job);
        println!("done: {} ({} bytes)", job.topic(), job.payload().len());
    }
    println!(
        "{} still waiting, {} dropped",
        client.stats().messages_waiting,
        client.stats().messages_dropped
    );
    client.disconnect().await
}
