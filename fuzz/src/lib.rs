//! Checks shared by the decoder fuzz targets.

use sansmqtt_proto::{BytesMut, Encode, MAX_PACKET_SIZE, Packet, ProtocolVersion, decode};

/// Decodes `data` as a stream of `version` packets, packet after packet until the input is
/// exhausted (`Ok(None)`) or an error. Decoding must never panic, must consume bytes for every
/// packet and none on `Ok(None)`, and every decoded packet must re-encode to bytes that decode
/// to the same packet.
pub fn decode_stream(data: &[u8], version: ProtocolVersion) {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match decode(&mut buf, version, MAX_PACKET_SIZE) {
            Ok(Some(packet)) => {
                assert!(buf.len() < before, "a decoded packet consumes bytes");
                check_round_trip(&packet, version);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "Ok(None) consumes nothing");
                break;
            }
            Err(_) => break,
        }
    }
}

/// A decoded packet is valid, so it must encode, and decode back to itself from exactly the
/// bytes written.
fn check_round_trip(packet: &Packet, version: ProtocolVersion) {
    let mut encoded = BytesMut::new();
    let written = packet
        .encode(version, &mut encoded)
        .unwrap_or_else(|err| panic!("decoded {packet:?} does not encode: {err}"));
    assert_eq!(written, encoded.len());
    assert_eq!(packet.encoded_len(version).ok(), Some(written));
    let again = decode(&mut encoded, version, MAX_PACKET_SIZE)
        .unwrap_or_else(|err| panic!("re-encoded {packet:?} does not decode: {err}"));
    assert_eq!(again.as_ref(), Some(packet));
    assert!(
        encoded.is_empty(),
        "the re-encoded packet is consumed whole"
    );
}
