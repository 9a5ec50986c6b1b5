//! The sans-IO session with no async runtime: one blocking `std::net::TcpStream`, the session's
//! deadline as the read timeout. Subscribes to `demo/#`, publishes three messages at QoS 2,
//! prints them as they come back, disconnects.
//!
//! `cargo run -p mqtt-examples --example blocking_session -- [HOST:PORT]`
#![allow(clippy::print_stdout)]

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sansmqtt_proto::{Disconnect, ProtocolVersion, Publish, QoS, ReasonCode, SubscribeFilter};
use sansmqtt_session::{ConnectOptions, Event, Session, SessionConfig};

fn main() -> io::Result<()> {
    tracing_subscriber::fmt::init();
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1883".into());
    let mut stream = TcpStream::connect(&address)?;
    let mut session = Session::new(SessionConfig::new("blocking-demo", ProtocolVersion::V311));
    session
        .connect(Instant::now(), ConnectOptions::new(Duration::from_secs(30)))
        .map_err(io::Error::other)?;

    let mut buf = [0u8; 4096];
    let mut received = 0;
    while received < 3 {
        // Outputs first: events (handing out a message queues its acknowledgement), then bytes.
        while let Some(event) = session.poll_event() {
            match event {
                Event::Connected { .. } => {
                    let now = Instant::now();
                    let filter = SubscribeFilter::new("demo/#", QoS::ExactlyOnce);
                    session
                        .subscribe(now, vec![filter], Default::default())
                        .map_err(io::Error::other)?;
                    for i in 0..3 {
                        let message = Publish::new("demo/blocking", format!("hello {i}"));
                        let message = Publish {
                            qos: QoS::ExactlyOnce,
                            ..message
                        };
                        session.publish(now, message).map_err(io::Error::other)?;
                    }
                }
                Event::Message(message) => {
                    received += 1;
                    let publish = &message.publish;
                    println!("{} => {:?}", publish.topic, publish.payload);
                }
                Event::Disconnected { reason } => return Err(io::Error::other(reason)),
                _ => {}
            }
        }
        while let Some(bytes) = session.poll_transmit(Instant::now()) {
            stream.write_all(&bytes)?;
        }
        // Block in `read` until bytes arrive or the session's next deadline passes.
        let timeout = session
            .poll_timeout()
            .map(|at| at.saturating_duration_since(Instant::now()));
        stream.set_read_timeout(timeout.map(|t| t.max(Duration::from_millis(1))))?;
        match stream.read(&mut buf) {
            Ok(0) => session.handle_transport_closed(Instant::now()),
            Ok(n) => session.handle_read(Instant::now(), &buf[..n]),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                session.handle_timeout(Instant::now());
            }
            Err(err) => return Err(err),
        }
    }
    session
        .disconnect(Instant::now(), Disconnect::new(ReasonCode::Success))
        .map_err(io::Error::other)?;
    while let Some(bytes) = session.poll_transmit(Instant::now()) {
        stream.write_all(&bytes)?;
    }
    Ok(())
}
