//! RFC 6455 framing for the client side of an MQTT WebSocket, sans-IO: [`Decoder`] turns
//! the server's bytes into [`Event`]s, [`encode`] appends one masked client frame.
//!
//! Our own code rather than tungstenite's because tungstenite logs every frame, payload in
//! hex, at TRACE, and a frame carries CONNECT with its password. Binary payloads are handed
//! on as they arrive, never reassembled: MQTT over WebSocket is a byte stream
//! ([MQTT-6.0.0-2]), so fragmentation needs only opcode bookkeeping and a peer cannot make
//! us buffer a large message. Only control frames (at most 125 bytes) are buffered whole.

use bytes::{Buf, Bytes, BytesMut};

/// Opcodes (RFC 6455 §5.2).
pub(crate) const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
pub(crate) const BINARY: u8 = 0x2;
pub(crate) const CLOSE: u8 = 0x8;
pub(crate) const PING: u8 = 0x9;
pub(crate) const PONG: u8 = 0xA;

/// The largest control-frame payload (RFC 6455 §5.5).
const MAX_CONTROL: u64 = 125;

/// A framing violation by the server: the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// RSV1-3 set without an extension that defines them (none is negotiated).
    #[error("WebSocket frame with reserved bits set")]
    ReservedBits,
    /// A server frame was masked (RFC 6455 §5.1 forbids it).
    #[error("masked WebSocket frame from the server")]
    Masked,
    /// An opcode RFC 6455 reserves.
    #[error("WebSocket frame with reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A text frame: MQTT travels in binary frames only ([MQTT-6.0.0-1]).
    #[error("text frame on an MQTT WebSocket")]
    Text,
    /// A control frame longer than 125 bytes or fragmented.
    #[error("malformed WebSocket control frame")]
    Control,
    /// A continuation with no message to continue, or a new message inside a fragmented one.
    #[error("WebSocket fragments out of order")]
    Fragments,
    /// A 64-bit length with its top bit set.
    #[error("WebSocket frame length out of range")]
    Length,
}

/// What the server's bytes said.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// Bytes of the MQTT stream (part or all of a binary frame's payload).
    Data(Bytes),
    /// A ping with its payload, to be answered by a pong carrying the same.
    Ping(Bytes),
    /// A pong (nothing to do).
    Pong,
    /// The server closes the connection.
    Close,
}

/// Where the decoder is within the server's frames.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Awaiting a frame header.
    Header,
    /// Inside a data frame's payload with this many bytes left; `fin` is the frame's.
    Data { remaining: u64, fin: bool },
}

/// Decodes the server's frames.
#[derive(Debug)]
pub(crate) struct Decoder {
    state: State,
    /// Inside a fragmented binary message (its last frame had FIN clear).
    in_message: bool,
}

impl Decoder {
    pub(crate) fn new() -> Self {
        Self {
            state: State::Header,
            in_message: false,
        }
    }

    /// The next event from `buf` (consumed as used), or `None` if `buf` needs more bytes.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, FrameError> {
        loop {
            match self.state {
                State::Data { remaining, fin } => {
                    if remaining == 0 {
                        self.state = State::Header;
                        self.in_message = !fin;
                        continue;
                    }
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(buf.len());
                    self.state = State::Data {
                        remaining: remaining - n as u64,
                        fin,
                    };
                    return Ok(Some(Event::Data(buf.split_to(n).freeze())));
                }
                State::Header => {
                    let Some((header_len, fin, opcode, len)) = parse_header(buf)? else {
                        return Ok(None);
                    };
                    if opcode >= CLOSE {
                        let payload_len = len as usize; // at most 125, checked
                        if buf.len() < header_len + payload_len {
                            return Ok(None);
                        }
                        buf.advance(header_len);
                        let payload = buf.split_to(payload_len).freeze();
                        return Ok(Some(match opcode {
                            PING => Event::Ping(payload),
                            PONG => Event::Pong,
                            _ => Event::Close,
                        }));
                    }
                    match (opcode, self.in_message) {
                        (BINARY, false) | (CONTINUATION, true) => {}
                        _ => return Err(FrameError::Fragments),
                    }
                    buf.advance(header_len);
                    self.state = State::Data {
                        remaining: len,
                        fin,
                    };
                }
            }
        }
    }
}

/// A complete, valid header at the start of `buf`: (its length, FIN, opcode, payload
/// length), or `None` if incomplete.
fn parse_header(buf: &[u8]) -> Result<Option<(usize, bool, u8, u64)>, FrameError> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    if b0 & 0x70 != 0 {
        return Err(FrameError::ReservedBits);
    }
    if b1 & 0x80 != 0 {
        return Err(FrameError::Masked);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    match opcode {
        TEXT => return Err(FrameError::Text),
        CONTINUATION | BINARY | CLOSE | PING | PONG => {}
        other => return Err(FrameError::ReservedOpcode(other)),
    }
    let (header_len, len) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (4, u64::from(u16::from_be_bytes([b[0], b[1]]))),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let len = u64::from_be_bytes(b.try_into().unwrap_or([0xFF; 8]));
                if len >> 63 != 0 {
                    return Err(FrameError::Length);
                }
                (10, len)
            }
            None => return Ok(None),
        },
        short => (2, u64::from(short)),
    };
    if opcode >= CLOSE && (!fin || len > MAX_CONTROL) {
        return Err(FrameError::Control);
    }
    Ok(Some((header_len, fin, opcode, len)))
}

/// Appends one final client frame (`opcode`, `payload` masked with `mask`) to `out`.
pub(crate) fn encode(opcode: u8, payload: &[u8], mask: [u8; 4], out: &mut BytesMut) {
    out.reserve(14 + payload.len());
    out.extend_from_slice(&[0x80 | opcode]);
    match payload.len() {
        n if n < 126 => out.extend_from_slice(&[0x80 | n as u8]),
        n if n <= usize::from(u16::MAX) => {
            out.extend_from_slice(&[0x80 | 126]);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.extend_from_slice(&[0x80 | 127]);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, byte) in out[start..].iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn decode_all(input: &[u8]) -> Result<Vec<Event>, FrameError> {
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::new();
        let mut events = Vec::new();
        // Byte by byte: every split point must work.
        for &byte in input {
            buf.extend_from_slice(&[byte]);
            while let Some(event) = decoder.decode(&mut buf)? {
                events.push(event);
            }
        }
        Ok(events)
    }

    fn data(events: &[Event]) -> Vec<u8> {
        let mut out = Vec::new();
        for event in events {
            if let Event::Data(bytes) = event {
                out.extend_from_slice(bytes);
            }
        }
        out
    }

    #[test]
    fn client_frames_are_masked_with_the_right_length_form() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = BytesMut::new();
            encode(BINARY, &payload, [1, 2, 3, 4], &mut out);
            assert_eq!(out[0], 0x82);
            assert_eq!(out[1] & 0x80, 0x80, "masked");
            let (header, key) = match out[1] & 0x7F {
                126 => (8, &out[4..8]),
                127 => (14, &out[10..14]),
                short => {
                    assert_eq!(usize::from(short), len);
                    (6, &out[2..6])
                }
            };
            assert_eq!(key, [1, 2, 3, 4]);
            assert_eq!(out.len(), header + len);
            let unmasked: Vec<u8> = out[header..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(unmasked, payload);
        }
    }

    #[test]
    fn fragmented_binary_messages_and_control_frames_interleave() {
        let mut input = vec![0x02, 3, b'a', b'b', b'c']; // binary, FIN clear
        input.extend([0x89, 2, b'h', b'i']); // ping between fragments
        input.extend([0x00, 0]); // empty continuation
        input.extend([0x80, 126, 0, 2, b'd', b'e']); // final continuation, 16-bit length
        input.extend([0x8A, 0]); // pong
        input.extend([0x82, 127, 0, 0, 0, 0, 0, 0, 0, 1, b'f']); // binary, 64-bit length
        input.extend([0x88, 2, 0x03, 0xE8]); // close 1000
        let events = decode_all(&input).unwrap();
        assert_eq!(data(&events), b"abcdef");
        assert!(events.contains(&Event::Ping(Bytes::from_static(b"hi"))));
        assert!(events.contains(&Event::Pong));
        assert_eq!(events.last(), Some(&Event::Close));
    }

    #[test]
    fn malformed_frames_are_refused() {
        for (input, error) in [
            (&[0xC2, 0][..], FrameError::ReservedBits),
            (&[0x92, 0], FrameError::ReservedBits),
            (&[0x82, 0x81, 0, 0, 0, 0, 0], FrameError::Masked),
            (&[0x81, 1, b'x'], FrameError::Text),
            (&[0x83, 0], FrameError::ReservedOpcode(3)),
            (&[0x8B, 0], FrameError::ReservedOpcode(0xB)),
            (&[0x80, 0], FrameError::Fragments),
            (&[0x02, 0, 0x82, 0], FrameError::Fragments),
            (&[0x09, 0], FrameError::Control),
            (&[0x89, 126, 0, 126], FrameError::Control),
            (&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0], FrameError::Length),
        ] {
            assert_eq!(decode_all(input).unwrap_err(), error, "{input:x?}");
        }
    }

    #[test]
    fn a_huge_announced_length_allocates_nothing_up_front() {
        let mut decoder = Decoder::new();
        let mut buf =
            BytesMut::from(&[0x82, 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 7][..]);
        assert_eq!(
            decoder.decode(&mut buf).unwrap(),
            Some(Event::Data(Bytes::from_static(&[7])))
        );
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    }
}
