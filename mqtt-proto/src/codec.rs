//! Wire primitives (MQTT 5.0 section 1.5, MQTT 3.1.1 section 1.5) and the framing entry point.
//!
//! Readers take `&mut Bytes` holding exactly one packet body, so a string or binary field is
//! a reference-counted slice of the received buffer instead of a copy. Every reader checks the
//! remaining length first: `Buf`'s getters panic on short input, and peer bytes must never
//! cause a panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::error::{DecodeError, EncodeError};
use crate::packet::{FixedHeader, Packet, PacketType};
use crate::qos::{PacketId, ProtocolVersion};

/// The largest packet MQTT can express: a 5-byte fixed header around the largest remaining
/// length, 268,435,455 bytes (four variable-byte-integer digits).
pub const MAX_PACKET_SIZE: u32 = 1 + 4 + MAX_VAR_INT;

/// Largest value of a variable byte integer (MQTT 5.0 1.5.5).
pub(crate) const MAX_VAR_INT: u32 = 268_435_455;

/// Decodes the next packet from `buf`.
///
/// Returns `Ok(None)` while the packet is incomplete, leaving `buf` untouched; on success,
/// removes exactly that packet's bytes from the front of `buf`. A packet whose fixed header
/// announces more than `max_packet_size` bytes (counting the fixed header) is rejected before
/// its body is buffered. After an error the connection must be closed; the buffer then holds
/// no meaningful position (a packet whose body was malformed has already been taken out).
pub fn decode(
    buf: &mut BytesMut,
    version: ProtocolVersion,
    max_packet_size: u32,
) -> Result<Option<Packet>, DecodeError> {
    let Some(header) = FixedHeader::parse(buf, version)? else {
        return Ok(None);
    };
    let size = header.packet_len();
    if size > max_packet_size as usize {
        return Err(DecodeError::PacketTooLarge {
            size,
            max: max_packet_size,
        });
    }
    if buf.len() < size {
        return Ok(None);
    }
    // A short acknowledgement (a packet identifier alone: Success, no properties) is most of
    // what a publisher reads; it is parsed in place rather than sliced off the buffer, which
    // would cost a reference-count round trip for four bytes.
    if header.remaining_len == 2 {
        let id = u16::from_be_bytes([buf[header.header_len], buf[header.header_len + 1]]);
        if let Some(packet) = Packet::short_ack(header.packet_type, id)? {
            buf.advance(size);
            return Ok(Some(packet));
        }
    }
    let mut body = buf.split_to(size).freeze();
    body.advance(header.header_len);
    Packet::decode_body(header, body, version).map(Some)
}

// ---- variable byte integer -------------------------------------------------------------

/// Bytes needed to encode `value` as a variable byte integer.
pub(crate) const fn var_int_len(value: u32) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

pub(crate) fn put_var_int<B: BufMut>(buf: &mut B, mut value: u32) {
    debug_assert!(
        value <= MAX_VAR_INT,
        "callers check the range before encoding"
    );
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if value == 0 {
            return;
        }
    }
}

/// Parses a variable byte integer from the front of `bytes` without consuming it.
/// `Ok(None)` means more bytes are needed; the result carries the value and its length.
pub(crate) fn parse_var_int(
    bytes: &[u8],
    require_minimal: bool,
) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if i == 4 {
            // [MQTT-1.5.5] at most four bytes.
            return Err(DecodeError::MalformedVarInt);
        }
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // [MQTT-1.5.5-1] (MQTT 5) the minimum number of bytes: a last byte of 0 after a
            // continuation byte adds nothing.
            if require_minimal && i > 0 && byte == 0 {
                return Err(DecodeError::NonMinimalVarInt);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 4 {
        return Err(DecodeError::MalformedVarInt);
    }
    Ok(None)
}

/// Reads a variable byte integer inside a packet body (MQTT 5 only, so always minimal).
pub(crate) fn read_var_int(buf: &mut Bytes, packet: PacketType) -> Result<u32, DecodeError> {
    match parse_var_int(buf, true)? {
        Some((value, len)) => {
            buf.advance(len);
            Ok(value)
        }
        None => Err(DecodeError::Truncated(packet)),
    }
}

// ---- fixed-size integers ---------------------------------------------------------------

pub(crate) fn read_u8(buf: &mut Bytes, packet: PacketType) -> Result<u8, DecodeError> {
    if buf.remaining() < 1 {
        return Err(DecodeError::Truncated(packet));
    }
    Ok(buf.get_u8())
}

pub(crate) fn read_u16(buf: &mut Bytes, packet: PacketType) -> Result<u16, DecodeError> {
    if buf.remaining() < 2 {
        return Err(DecodeError::Truncated(packet));
    }
    Ok(buf.get_u16())
}

pub(crate) fn read_u32(buf: &mut Bytes, packet: PacketType) -> Result<u32, DecodeError> {
    if buf.remaining() < 4 {
        return Err(DecodeError::Truncated(packet));
    }
    Ok(buf.get_u32())
}

/// Reads a packet identifier that the packet requires to be non-zero ([MQTT-2.3.1-1]).
pub(crate) fn read_packet_id(buf: &mut Bytes, packet: PacketType) -> Result<PacketId, DecodeError> {
    PacketId::new(read_u16(buf, packet)?).ok_or(DecodeError::ZeroPacketId(packet))
}

// ---- binary data and strings -----------------------------------------------------------

/// Reads Binary Data (MQTT 5.0 1.5.6): a two-byte length and that many bytes, sliced.
pub(crate) fn read_binary(buf: &mut Bytes, packet: PacketType) -> Result<Bytes, DecodeError> {
    let len = usize::from(read_u16(buf, packet)?);
    if buf.remaining() < len {
        return Err(DecodeError::LengthMismatch(packet));
    }
    Ok(buf.split_to(len))
}

/// Reads a UTF-8 Encoded String (MQTT 5.0 1.5.4).
pub(crate) fn read_string(buf: &mut Bytes, packet: PacketType) -> Result<ByteString, DecodeError> {
    let raw = read_binary(buf, packet)?;
    // [MQTT-1.5.4-2] U+0000 is forbidden. Checked on the raw bytes: a zero byte in UTF-8 only
    // ever encodes U+0000.
    if contains_nul(&raw) {
        return Err(DecodeError::NullCharacter);
    }
    // [MQTT-1.5.4-1] well-formed UTF-8, which also excludes encoded surrogates U+D800..U+DFFF.
    ByteString::try_from(raw).map_err(|_| DecodeError::InvalidUtf8)
}

/// Length on the wire of a binary field, refusing what does not fit its two-byte prefix.
pub(crate) fn binary_len(data: &[u8]) -> Result<usize, EncodeError> {
    if data.len() > usize::from(u16::MAX) {
        return Err(EncodeError::FieldTooLong(data.len()));
    }
    Ok(2 + data.len())
}

/// Length on the wire of a string field; refuses U+0000 ([MQTT-1.5.4-2]) and overlong strings.
pub(crate) fn string_len(s: &str) -> Result<usize, EncodeError> {
    if contains_nul(s.as_bytes()) {
        return Err(EncodeError::NullCharacter);
    }
    binary_len(s.as_bytes())
}

/// Whether `bytes` holds a zero byte, eight bytes at a time: MQTT strings are mostly short,
/// where this beats a call to `memchr`.
pub(crate) fn contains_nul(bytes: &[u8]) -> bool {
    let Some(last) = bytes.last_chunk::<8>() else {
        return bytes.contains(&0);
    };
    let (words, _) = bytes.as_chunks::<8>();
    // The last eight bytes cover the tail the whole words leave; re-reading some is harmless.
    words
        .iter()
        .chain([last])
        .any(|word| has_zero_byte(u64::from_ne_bytes(*word)))
}

/// Whether any byte of `word` is zero.
pub(crate) const fn has_zero_byte(word: u64) -> bool {
    zero_byte_mask(word) != 0
}

/// The high bit of every zero byte of `word`, plus possibly some above a zero byte:
/// subtracting 1 from every byte sets the high bit of a zero byte, and a byte can only be
/// flagged wrongly through the borrow of a zero byte below it. So the mask is non-zero
/// exactly when a byte is zero.
pub(crate) const fn zero_byte_mask(word: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    word.wrapping_sub(ONES) & !word & HIGHS
}

/// Writes a length-prefixed field whose length was checked by [`binary_len`].
pub(crate) fn put_binary<B: BufMut>(buf: &mut B, data: &[u8]) {
    debug_assert!(
        data.len() <= usize::from(u16::MAX),
        "length checked by binary_len"
    );
    buf.put_u16(data.len() as u16);
    buf.put_slice(data);
}

/// Fails with the trailing-bytes error when a packet body was not fully consumed.
pub(crate) fn expect_end(buf: &Bytes, packet: PacketType) -> Result<(), DecodeError> {
    if buf.has_remaining() {
        return Err(DecodeError::TrailingBytes(packet, buf.remaining()));
    }
    Ok(())
}

/// Checks an encoded body length against the largest remaining length.
pub(crate) fn check_body_len(len: usize) -> Result<usize, EncodeError> {
    if len > MAX_VAR_INT as usize {
        return Err(EncodeError::PacketTooLarge(len));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_int_boundaries_round_trip() {
        for value in [
            0,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            MAX_VAR_INT,
        ] {
            let mut buf = BytesMut::new();
            put_var_int(&mut buf, value);
            assert_eq!(buf.len(), var_int_len(value));
            assert_eq!(parse_var_int(&buf, true), Ok(Some((value, buf.len()))));
        }
    }

    #[test]
    fn var_int_over_four_bytes_is_malformed() {
        assert_eq!(
            parse_var_int(&[0xff, 0xff, 0xff, 0xff, 0x01], false),
            Err(DecodeError::MalformedVarInt)
        );
        assert_eq!(
            parse_var_int(&[0x80, 0x80, 0x80, 0x80], false),
            Err(DecodeError::MalformedVarInt)
        );
    }

    #[test]
    fn var_int_partial_needs_more() {
        assert_eq!(parse_var_int(&[0x80, 0x80], true), Ok(None));
        assert_eq!(parse_var_int(&[], true), Ok(None));
    }

    #[test]
    fn non_minimal_var_int_is_rejected_only_when_required() {
        assert_eq!(
            parse_var_int(&[0x80, 0x00], true),
            Err(DecodeError::NonMinimalVarInt)
        );
        assert_eq!(parse_var_int(&[0x80, 0x00], false), Ok(Some((0, 2))));
    }
}
