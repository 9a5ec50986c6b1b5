//! Round trip of whatever decodes: the first input byte picks the protocol version, the rest is
//! decoded once. A decoded packet must encode with `encoded_len` equal to the bytes written,
//! decode back to the same packet from exactly those bytes, and encode to the same bytes again
//! (encoding is canonical, so decode∘encode is a fixed point after one step).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sansmqtt_proto::{BytesMut, Encode, MAX_PACKET_SIZE, ProtocolVersion, decode};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let version = if selector & 1 == 0 {
        ProtocolVersion::V311
    } else {
        ProtocolVersion::V5
    };
    let mut input = BytesMut::from(rest);
    let Ok(Some(packet)) = decode(&mut input, version, MAX_PACKET_SIZE) else {
        return;
    };

    let expected_len = packet
        .encoded_len(version)
        .unwrap_or_else(|err| panic!("decoded {packet:?} has no encoded length: {err}"));
    let mut encoded = BytesMut::new();
    let written = packet
        .encode(version, &mut encoded)
        .unwrap_or_else(|err| panic!("decoded {packet:?} does not encode: {err}"));
    assert_eq!(written, encoded.len(), "encode reports the bytes it wrote");
    assert_eq!(expected_len, written, "encoded_len matches encode");

    let canonical = encoded.clone().freeze();
    let again = decode(&mut encoded, version, MAX_PACKET_SIZE)
        .unwrap_or_else(|err| panic!("re-encoded {packet:?} does not decode: {err}"))
        .unwrap_or_else(|| panic!("re-encoded {packet:?} is incomplete"));
    assert_eq!(again, packet);
    assert!(
        encoded.is_empty(),
        "the re-encoded packet is consumed whole"
    );

    let mut reencoded = BytesMut::new();
    again
        .encode(version, &mut reencoded)
        .unwrap_or_else(|err| panic!("{again:?} does not encode a second time: {err}"));
    assert_eq!(reencoded.freeze(), canonical, "encoding is deterministic");
});
