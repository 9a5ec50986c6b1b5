//! Decodes arbitrary bytes as an MQTT 5.0 stream: packet after packet until the input is
//! exhausted (`Ok(None)`) or an error. Decoding must never panic, must consume bytes for every
//! packet and none on `Ok(None)`, and every decoded packet must re-encode to bytes that decode
//! to the same packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_proto::{BytesMut, Encode, MAX_PACKET_SIZE, Packet, ProtocolVersion, decode};

const VERSION: ProtocolVersion = ProtocolVersion::V5;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match decode(&mut buf, VERSION, MAX_PACKET_SIZE) {
            Ok(Some(packet)) => {
                assert!(buf.len() < before, "a decoded packet consumes bytes");
                check_round_trip(&packet);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "Ok(None) consumes nothing");
                break;
            }
            Err(_) => break,
        }
    }
});

/// A decoded packet is valid, so it must encode, and decode back to itself from exactly the
/// bytes written.
fn check_round_trip(packet: &Packet) {
    let mut encoded = BytesMut::new();
    let written = packet
        .encode(VERSION, &mut encoded)
        .unwrap_or_else(|err| panic!("decoded {packet:?} does not encode: {err}"));
    assert_eq!(written, encoded.len());
    assert_eq!(packet.encoded_len(VERSION).ok(), Some(written));
    let again = decode(&mut encoded, VERSION, MAX_PACKET_SIZE)
        .unwrap_or_else(|err| panic!("re-encoded {packet:?} does not decode: {err}"));
    assert_eq!(again.as_ref(), Some(packet));
    assert!(
        encoded.is_empty(),
        "the re-encoded packet is consumed whole"
    );
}
