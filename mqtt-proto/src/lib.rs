//! Zero-copy codec for every MQTT 3.1.1 and 5.0 packet, with strict validation against the
//! specifications, and topic name / filter validation and matching.
//!
//! The crate does no I/O. Decoding is incremental: hand [`decode`] a [`BytesMut`] holding
//! whatever has arrived from the network; it returns `Ok(None)` until one whole packet is
//! there, and never consumes more than one packet. Strings and payloads of the decoded packet
//! are [`Bytes`] slices of that buffer, not copies.
//!
//! ```
//! use bytes::BytesMut;
//! use sansmqtt_proto::{decode, Encode, Packet, PacketId, ProtocolVersion, Publish, QoS};
//!
//! let publish = Publish::new("sensors/1/temp", "21.5").with_qos(QoS::AtLeastOnce, PacketId::new(7).unwrap());
//! let mut wire = BytesMut::new();
//! publish.encode(ProtocolVersion::V5, &mut wire).unwrap();
//!
//! // Feed the bytes in two pieces, as a socket might.
//! let mut input = BytesMut::new();
//! input.extend_from_slice(&wire[..5]);
//! assert_eq!(decode(&mut input, ProtocolVersion::V5, 1024).unwrap(), None);
//! input.extend_from_slice(&wire[5..]);
//! let packet = decode(&mut input, ProtocolVersion::V5, 1024).unwrap().unwrap();
//! assert_eq!(packet, Packet::Publish(publish));
//! assert!(input.is_empty());
//! ```
//!
//! Features: `std` (default) implements `std::error::Error` for the error types; without it
//! the crate is `no_std` and needs only `alloc`.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod codec;
mod error;
pub mod packet;
pub mod properties;
mod qos;
pub mod reason;
pub mod topic;

pub use bytes::{Bytes, BytesMut};
pub use bytestring::ByteString;
pub use codec::{MAX_PACKET_SIZE, decode};
pub use error::{DecodeError, EncodeError};
pub use packet::*;
pub use qos::{PacketId, ProtocolVersion, QoS};
pub use reason::ReasonCode;

/// Stands in for a secret (a password, authentication data) in `Debug` output: packets are
/// logged, secrets must never be.
pub(crate) struct Redacted;

impl core::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("***")
    }
}

/// The README's examples (the crate's page on crates.io), compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
