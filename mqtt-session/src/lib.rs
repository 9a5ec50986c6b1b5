//! A sans-IO MQTT 3.1.1 / 5.0 client: the whole protocol as a state machine that takes bytes,
//! timer ticks and commands, and gives back bytes to send, events and its next deadline.
//!
//! It never touches a socket and never reads a clock (`now` is always an argument), so it
//! runs under any runtime, in a blocking loop, on an embedded target's own event loop, or in
//! a deterministic simulation. The async client (`sansmqtt-client`, with its Tokio and
//! async-std adapters) is one driver around it.
//!
//! The loop every driver runs: feed input (`handle_read`, `handle_timeout`,
//! `handle_transport_closed`) or a command, then drain `poll_event`, `poll_transmit` and
//! `poll_timeout`. Here it is over a blocking [`std::net::TcpStream`]:
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//! use std::time::{Duration, Instant};
//!
//! use sansmqtt_proto::{ProtocolVersion, Publish, QoS, SubscribeFilter};
//! use sansmqtt_session::{ConnectOptions, Event, Session, SessionConfig};
//!
//! # fn main() -> std::io::Result<()> {
//! let mut stream = TcpStream::connect("127.0.0.1:1883")?;
//! let mut session = Session::new(SessionConfig::new("blocking-demo", ProtocolVersion::V311));
//! session.connect(Instant::now(), ConnectOptions::new(Duration::from_secs(30))).unwrap();
//!
//! let mut buf = [0u8; 4096];
//! let mut subscribed = false;
//! let mut received = 0;
//! while received < 3 {
//!     // D. outputs: events first (handing out a message queues its ack), then bytes.
//!     while let Some(event) = session.poll_event() {
//!         match event {
//!             Event::Connected { .. } if !subscribed => {
//!                 let now = Instant::now();
//!                 session.subscribe(now, vec![SubscribeFilter::new("demo/#", QoS::AtLeastOnce)],
//!                                   Default::default()).unwrap();
//!                 for i in 0..3 {
//!                     let msg = Publish::new("demo/blocking", format!("hello {i}"));
//!                     session.publish(now, Publish { qos: QoS::ExactlyOnce, ..msg }).unwrap();
//!                 }
//!                 subscribed = true;
//!             }
//!             Event::Message(message) => {
//!                 received += 1;
//!                 println!("{} => {:?}", message.publish.topic, message.publish.payload);
//!             }
//!             Event::Disconnected { reason } => panic!("connection lost: {reason}"),
//!             _ => {}
//!         }
//!     }
//!     while let Some(bytes) = session.poll_transmit(Instant::now()) {
//!         stream.write_all(&bytes)?;
//!     }
//!     // Sleep in `read` until the session's next deadline at the latest.
//!     let timeout = session.poll_timeout().map(|at| at.saturating_duration_since(Instant::now()));
//!     stream.set_read_timeout(timeout.map(|t| t.max(Duration::from_millis(1))))?;
//!     match stream.read(&mut buf) {
//!         Ok(0) => session.handle_transport_closed(Instant::now()),
//!         Ok(n) => session.handle_read(Instant::now(), &buf[..n]),
//!         Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
//!             session.handle_timeout(Instant::now())
//!         }
//!         Err(e) => return Err(e),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod error;
mod event;
mod ids;
mod session;
pub mod store;
mod timer;

pub use config::{AckMode, ConnectOptions, SessionConfig, SessionLossPolicy};
pub use error::{ConnectionError, ProtocolError, PublishError, ServerReason, SessionError};
pub use event::{AckToken, Event, Message, Token};
pub use session::{ConnectionState, ServerLimits, Session};
pub use store::{MemoryStore, SessionStore, StoreError};

/// The codec this session is built on, re-exported so users need one dependency.
pub use sansmqtt_proto as proto;

/// The README's examples (the crate's page on crates.io), compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
