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
//!
//! # Without std
//!
//! With `default-features = false` the crate is `#![no_std]` and needs only `alloc` (and
//! atomics for `bytes`). Nothing else changes but time: every `now` and every deadline is an
//! [`Instant`], a trait the session is generic over. With the `std` feature (on by default)
//! the default is `std::time::Instant`, which is why the examples here never name it; without
//! it, name the type: [`core::time::Duration`] read as the time since an origin you pick
//! (boot, say) works out of the box, and a newtype around your platform's instant works once
//! it implements [`Instant`]. Code written that way compiles unchanged when another crate in
//! the build turns `std` on. [`StoreError::other`] carries a storage error of any kind.
//!
//! # Driving it from another stack
//!
//! On embassy (`embassy-net`'s `TcpSocket`), RTIC with smoltcp, an RTOS socket API or mio, the
//! loop is the one above, in quinn-proto's order:
//!
//! 1. **Feed bytes**: whatever the socket gave, to [`handle_read`](Session::handle_read); a
//!    closed or failed socket to [`handle_transport_closed`](Session::handle_transport_closed).
//! 2. **Feed time**: when woken at the deadline, [`handle_timeout`](Session::handle_timeout)
//!    (an early or spurious call does nothing).
//! 3. **Drain transmits**: [`poll_transmit_into`](Session::poll_transmit_into) into the
//!    device's transmit buffer until it returns 0, writing each chunk in order (a chunk may
//!    end mid-packet; the next call continues it). It allocates nothing per call;
//!    [`poll_transmit`](Session::poll_transmit) hands out a `Bytes` instead.
//! 4. **Drain events**: [`poll_event`](Session::poll_event) until `None`. Handing out a
//!    message queues its acknowledgement, and commands issued in answer to events queue
//!    packets, so repeat 3 and 4 until both are empty.
//! 5. **Sleep until the next deadline**: [`poll_timeout`](Session::poll_timeout), or until
//!    the socket has data, whichever comes first (embassy: `select` of the socket's `read`
//!    and `Timer::at`; smoltcp: the interface's `poll_delay` capped by the deadline; an RTOS:
//!    `recv` with a timeout of deadline minus now; mio: `Poll::poll` with that timeout).
//!
//! `examples/embassy` in the repository runs this loop on an embassy executor over
//! `embassy-net` and a Linux TAP device, against mosquitto, across a cut link. The same loop,
//! against a platform reduced to a byte stream and a clock:
//!
//! ```
//! use core::time::Duration;
//!
//! use sansmqtt_session::{MemoryStore, Session};
//!
//! /// What a device provides.
//! trait Platform {
//!     /// Time since boot.
//!     fn now(&self) -> Duration;
//!     /// Bytes received: `Some(0)` when the peer closed, `None` when nothing arrived.
//!     fn recv(&mut self, buf: &mut [u8]) -> Option<usize>;
//!     /// Writes all of `bytes`.
//!     fn send(&mut self, bytes: &[u8]);
//!     /// Sleeps until `deadline` or until data arrives.
//!     fn wait(&mut self, deadline: Option<Duration>);
//! }
//!
//! fn run(session: &mut Session<MemoryStore, Duration>, device: &mut impl Platform) {
//!     let (mut rx, mut tx) = ([0u8; 512], [0u8; 512]);
//!     loop {
//!         // 1. bytes in
//!         match device.recv(&mut rx) {
//!             Some(0) => session.handle_transport_closed(device.now()),
//!             Some(n) => session.handle_read(device.now(), &rx[..n]),
//!             None => {}
//!         }
//!         // 2. time in
//!         session.handle_timeout(device.now());
//!         loop {
//!             // 3. bytes out, through the fixed buffer
//!             loop {
//!                 let n = session.poll_transmit_into(device.now(), &mut tx);
//!                 if n == 0 {
//!                     break;
//!                 }
//!                 device.send(&tx[..n]);
//!             }
//!             // 4. events out (acknowledgements they queue go out on the next pass)
//!             if session.pending_events() == 0 {
//!                 break;
//!             }
//!             while let Some(_event) = session.poll_event() {
//!                 // deliver messages, complete publishes, reconnect on `Disconnected`, ...
//!             }
//!         }
//!         // 5. sleep
//!         device.wait(session.poll_timeout());
//!     }
//! }
//! ```
//!
//! # Memory
//!
//! Measured by a counting allocator (`tests/heap.rs`, 64-bit Linux, a 16-byte client id, the
//! [`MemoryStore`], 16-byte topics and 64-byte payloads that the application owns and the
//! session references): the `Session` value itself is 1,248 bytes; its heap is 640 bytes
//! connected and idle (MQTT 3.1.1; 672 with MQTT 5), and about 4.1 KB with 10 QoS 1 and 10
//! QoS 2 publishes in flight, most of it the store's table of 104-byte flights indexed by
//! packet identifier (grown by doubling: 32 slots for 20 flights). A steady publish loop at any
//! QoS through `poll_transmit_into` allocates nothing per message: buffers and tables are
//! reused.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

mod config;
mod error;
mod event;
mod ids;
mod session;
pub mod store;
mod time;
mod timer;

pub use config::{
    AckMode, ConnectOptions, ReceiveMaximumExceeded, SessionConfig, SessionLossPolicy,
};
pub use error::{ConnectionError, ProtocolError, PublishError, ServerReason, SessionError};
pub use event::{AckToken, Event, Message, Token};
pub use session::{ConnectionState, PublishLimits, ServerLimits, Session};
pub use store::{MemoryStore, SessionStore, StoreError};
#[cfg(not(feature = "std"))]
pub use time::NoDefaultInstant;
pub use time::{DefaultInstant, Instant};

/// The codec this session is built on, re-exported so users need one dependency.
pub use sansmqtt_proto as proto;

/// The README's examples (the crate's page on crates.io), compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
