//! Malformed input and forbidden output: one test per rule, each naming the exact error.
//!
//! Statement ids are cited as `[MQTT-x.y.z-n]` with the version they belong to where the two
//! specifications number the same rule differently (the same id often means different rules in
//! 3.1.1 and 5.0).
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use sansmqtt_proto::properties::{
    AckProperties, ConnAckProperties, ConnectProperties, PropertyId, PublishProperties,
    UserProperty,
};
use sansmqtt_proto::topic::TopicError;
use sansmqtt_proto::{
    Auth, ConnAck, Connect, DecodeError, Disconnect, Encode, EncodeError, MAX_PACKET_SIZE, Packet,
    PacketId, PacketType, PingReq, ProtocolVersion, PubAck, Publish, QoS, ReasonCode, SubAck,
    Subscribe, SubscribeFilter, SubscriptionOptions, Unsubscribe, decode,
};

use ProtocolVersion::{V5, V311};

// ---- helpers ----------------------------------------------------------------------------

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn id(value: u16) -> PacketId {
    PacketId::new(value).unwrap()
}

/// A packet with first byte `first` and `body`, whose remaining length fits one byte.
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let len = u8::try_from(body.len()).unwrap();
    assert!(len < 128, "helper only writes one-byte remaining lengths");
    cat(&[&[first, len], body])
}

/// Prefixes `properties` with their one-byte property length.
fn props(properties: &[u8]) -> Vec<u8> {
    let len = u8::try_from(properties.len()).unwrap();
    assert!(len < 128, "helper only writes one-byte property lengths");
    cat(&[&[len], properties])
}

/// MQTT 5 CONNECT for client id "c", clean start, keep alive 60, with `properties`.
fn v5_connect(properties: &[u8]) -> Vec<u8> {
    frame(
        0x10,
        &cat(&[
            &[0x00, 0x04],
            b"MQTT",
            &[0x05, 0b0000_0010, 0x00, 0x3C],
            &props(properties),
            &[0x00, 0x01],
            b"c",
        ]),
    )
}

/// MQTT 3.1.1 CONNECT with `flags` followed by `payload` (client id first).
fn v311_connect(level: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    frame(
        0x10,
        &cat(&[&[0x00, 0x04], b"MQTT", &[level, flags, 0x00, 0x3C], payload]),
    )
}

/// MQTT 5 QoS 0 PUBLISH to "a" with `properties` and an empty payload.
fn v5_publish(properties: &[u8]) -> Vec<u8> {
    frame(0x30, &cat(&[&[0x00, 0x01], b"a", &props(properties)]))
}

/// MQTT 5 CONNACK (Success) with `properties`.
fn v5_connack(properties: &[u8]) -> Vec<u8> {
    frame(0x20, &cat(&[&[0x00, 0x00], &props(properties)]))
}

/// MQTT 5 SUBSCRIBE with `properties` for the filter "a" at QoS 0.
fn v5_subscribe(properties: &[u8]) -> Vec<u8> {
    frame(
        0x82,
        &cat(&[
            &[0x00, 0x01],
            &props(properties),
            &[0x00, 0x01],
            b"a",
            &[0x00],
        ]),
    )
}

/// Decodes `bytes` as one packet and returns the error it must produce.
#[track_caller]
fn decode_error(version: ProtocolVersion, bytes: &[u8]) -> DecodeError {
    let mut input = BytesMut::from(bytes);
    match decode(&mut input, version, MAX_PACKET_SIZE) {
        Err(err) => err,
        Ok(result) => panic!("{bytes:02x?} decoded to {result:?} under {version}"),
    }
}

#[track_caller]
fn assert_malformed(version: ProtocolVersion, bytes: &[u8], expected: DecodeError) {
    assert_eq!(decode_error(version, bytes), expected, "under {version}");
}

#[track_caller]
fn assert_malformed_in_both(bytes: &[u8], expected: DecodeError) {
    assert_malformed(V311, bytes, expected.clone());
    assert_malformed(V5, bytes, expected);
}

#[track_caller]
fn assert_decodes(version: ProtocolVersion, bytes: &[u8], expected: impl Into<Packet>) {
    let mut input = BytesMut::from(bytes);
    let packet = decode(&mut input, version, MAX_PACKET_SIZE).unwrap();
    assert_eq!(packet, Some(expected.into()));
    assert!(input.is_empty());
}

/// Encodes `packet`, which must fail without writing anything, and returns the error.
#[track_caller]
fn encode_error(version: ProtocolVersion, packet: impl Into<Packet>) -> EncodeError {
    let packet = packet.into();
    let mut buf = BytesMut::from(&b"before"[..]);
    let err = packet
        .encode(version, &mut buf)
        .expect_err("encoding must fail");
    assert_eq!(&buf[..], b"before", "a failed encode wrote bytes");
    assert_eq!(packet.encoded_len(version), Err(err.clone()));
    err
}

// ---- fixed header -----------------------------------------------------------------------

#[test]
fn remaining_length_over_four_bytes_is_malformed() {
    // MQTT 5.0 1.5.5 / MQTT 3.1.1 2.2.3: at most four bytes.
    assert_malformed_in_both(
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        DecodeError::MalformedVarInt,
    );
}

#[test]
fn fourth_remaining_length_byte_with_continuation_bit_is_malformed() {
    // Rejected as soon as the fourth byte is seen, without waiting for a fifth.
    assert_malformed_in_both(
        &[0x30, 0x80, 0x80, 0x80, 0x80],
        DecodeError::MalformedVarInt,
    );
    assert_malformed_in_both(
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF],
        DecodeError::MalformedVarInt,
    );
}

#[test]
fn v5_non_minimal_remaining_length_is_malformed() {
    // [MQTT-1.5.5-1] (5.0): the minimum number of bytes.
    assert_malformed(V5, &[0x30, 0x80, 0x00], DecodeError::NonMinimalVarInt);
    assert_malformed(V5, &[0xC0, 0x80, 0x00], DecodeError::NonMinimalVarInt);
    assert_malformed(
        V5,
        &[0x30, 0x84, 0x00, 0x00, 0x01, b'a', 0x00],
        DecodeError::NonMinimalVarInt,
    );
    assert_malformed(V5, &[0x30, 0xFF, 0x80, 0x00], DecodeError::NonMinimalVarInt);
}

#[test]
fn v311_non_minimal_remaining_length_is_accepted() {
    // MQTT 3.1.1 has no minimal-encoding rule: 0x80 0x00 is 0, 0x83 0x00 is 3.
    assert_decodes(V311, &[0xC0, 0x80, 0x00], PingReq);
    assert_decodes(
        V311,
        &[0x30, 0x83, 0x00, 0x00, 0x01, b'a'],
        Publish::new("a", ""),
    );
}

#[test]
fn packet_over_maximum_size_is_rejected_from_the_fixed_header_alone() {
    // The buffer holds only the fixed header: the body is never waited for.
    let mut input = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    assert_eq!(
        decode(&mut input, V5, 1024),
        Err(DecodeError::PacketTooLarge {
            size: 5 + 268_435_455,
            max: 1024
        })
    );
    // Remaining length 1024 (0x80 0x08) makes a packet of 1027 bytes.
    let mut input = BytesMut::from(&[0x30, 0x80, 0x08][..]);
    assert_eq!(
        decode(&mut input, V311, 1026),
        Err(DecodeError::PacketTooLarge {
            size: 1027,
            max: 1026
        })
    );
    let mut input = BytesMut::from(&[0x30, 0x80, 0x08][..]);
    assert_eq!(decode(&mut input, V311, 1027), Ok(None));
    // Two-byte header: remaining length 127, 129 bytes.
    let mut input = BytesMut::from(&[0x30, 0x7F][..]);
    assert_eq!(
        decode(&mut input, V5, 100),
        Err(DecodeError::PacketTooLarge {
            size: 129,
            max: 100
        })
    );
}

#[test]
fn reserved_packet_type_0_is_malformed() {
    // MQTT 5.0 table 2-1 / MQTT 3.1.1 table 2.1: type 0 is reserved. The first byte suffices.
    assert_malformed_in_both(&[0x00], DecodeError::InvalidPacketType(0));
    assert_malformed_in_both(&[0x00, 0x00], DecodeError::InvalidPacketType(0));
}

#[test]
fn packet_type_15_is_reserved_in_v311() {
    // MQTT 3.1.1 table 2.1: 15 is reserved; it is AUTH only in 5.0.
    assert_malformed(V311, &[0xF0, 0x00], DecodeError::InvalidPacketType(15));
}

#[test]
fn connack_with_reserved_header_flags_is_malformed() {
    // [MQTT-2.2.2-1] (3.1.1) / [MQTT-2.1.3-1] (5.0): reserved flags must be as listed.
    let expected = DecodeError::InvalidHeaderFlags {
        packet: PacketType::ConnAck,
        flags: 0b0001,
    };
    assert_malformed_in_both(&[0x21, 0x02, 0x00, 0x00], expected.clone());
    // Checked on the first byte, before the remaining length arrives.
    assert_malformed_in_both(&[0x21], expected);
}

#[test]
fn puback_with_reserved_header_flags_is_malformed() {
    assert_malformed_in_both(
        &[0x42, 0x02, 0x00, 0x01],
        DecodeError::InvalidHeaderFlags {
            packet: PacketType::PubAck,
            flags: 0b0010,
        },
    );
}

#[test]
fn pingreq_with_reserved_header_flags_is_malformed() {
    assert_malformed_in_both(
        &[0xC8, 0x00],
        DecodeError::InvalidHeaderFlags {
            packet: PacketType::PingReq,
            flags: 0b1000,
        },
    );
}

#[test]
fn disconnect_with_reserved_header_flags_is_malformed() {
    assert_malformed_in_both(
        &[0xE1, 0x00],
        DecodeError::InvalidHeaderFlags {
            packet: PacketType::Disconnect,
            flags: 0b0001,
        },
    );
}

#[test]
fn subscribe_with_header_flags_other_than_0010_is_malformed() {
    // [MQTT-3.8.1-1]
    for flags in [0b0000, 0b0011, 0b0110, 0b1010] {
        let bytes = cat(&[&[0x80 | flags, 0x06, 0x00, 0x01, 0x00, 0x01], b"a", &[0x00]]);
        assert_malformed_in_both(
            &bytes,
            DecodeError::InvalidHeaderFlags {
                packet: PacketType::Subscribe,
                flags,
            },
        );
    }
}

#[test]
fn pubrel_with_header_flags_0_is_malformed() {
    // [MQTT-3.6.1-1]
    assert_malformed_in_both(
        &[0x60, 0x02, 0x00, 0x01],
        DecodeError::InvalidHeaderFlags {
            packet: PacketType::PubRel,
            flags: 0,
        },
    );
}

#[test]
fn every_other_reserved_header_flag_value_is_malformed() {
    // All types but PUBLISH: flags 0b0010 for PUBREL, SUBSCRIBE, UNSUBSCRIBE, 0 for the rest.
    for nibble in 1u8..=15 {
        if nibble == 3 {
            continue;
        }
        let valid = if matches!(nibble, 6 | 8 | 10) {
            0b0010
        } else {
            0
        };
        for flags in (0u8..16).filter(|&f| f != valid) {
            let first = (nibble << 4) | flags;
            let err = decode_error(V5, &[first]);
            assert!(
                matches!(err, DecodeError::InvalidHeaderFlags { flags: f, .. } if f == flags),
                "{first:#04x}: {err:?}"
            );
        }
    }
}

// ---- PUBLISH ----------------------------------------------------------------------------

#[test]
fn publish_with_qos_3_is_malformed() {
    // [MQTT-3.3.1-4]
    assert_malformed_in_both(
        &[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01],
        DecodeError::InvalidQoS(3),
    );
    assert_malformed_in_both(&[0x3F], DecodeError::InvalidQoS(3));
}

#[test]
fn publish_with_dup_on_qos_0_is_malformed() {
    // [MQTT-3.3.1-2]
    assert_malformed(
        V311,
        &[0x38, 0x03, 0x00, 0x01, b'a'],
        DecodeError::DupWithQoS0,
    );
    assert_malformed(
        V5,
        &[0x38, 0x04, 0x00, 0x01, b'a', 0x00],
        DecodeError::DupWithQoS0,
    );
}

#[test]
fn publish_qos1_with_packet_id_0_is_malformed() {
    // [MQTT-2.3.1-1] (3.1.1) / [MQTT-2.2.1-3] (5.0): a non-zero packet identifier.
    let expected = DecodeError::ZeroPacketId(PacketType::Publish);
    assert_malformed(
        V311,
        &[0x32, 0x05, 0x00, 0x01, b'a', 0x00, 0x00],
        expected.clone(),
    );
    assert_malformed(
        V5,
        &[0x32, 0x06, 0x00, 0x01, b'a', 0x00, 0x00, 0x00],
        expected.clone(),
    );
    assert_malformed(V311, &[0x34, 0x05, 0x00, 0x01, b'a', 0x00, 0x00], expected);
}

#[test]
fn puback_with_packet_id_0_is_malformed() {
    assert_malformed_in_both(
        &[0x40, 0x02, 0x00, 0x00],
        DecodeError::ZeroPacketId(PacketType::PubAck),
    );
}

#[test]
fn subscribe_with_packet_id_0_is_malformed() {
    assert_malformed(
        V311,
        &[0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b'a', 0x00],
        DecodeError::ZeroPacketId(PacketType::Subscribe),
    );
    assert_malformed(
        V5,
        &[0x82, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01, b'a', 0x00],
        DecodeError::ZeroPacketId(PacketType::Subscribe),
    );
}

#[test]
fn unsubscribe_with_packet_id_0_is_malformed() {
    assert_malformed(
        V311,
        &[0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, b'a'],
        DecodeError::ZeroPacketId(PacketType::Unsubscribe),
    );
}

#[test]
fn topic_with_invalid_utf8_is_malformed() {
    // [MQTT-1.5.3-1] (3.1.1) / [MQTT-1.5.4-1] (5.0). 0xC0 0xAF is an overlong encoding of '/'.
    assert_malformed_in_both(
        &[0x30, 0x04, 0x00, 0x02, 0xC0, 0xAF],
        DecodeError::InvalidUtf8,
    );
}

#[test]
fn topic_with_an_encoded_surrogate_is_malformed() {
    // 0xED 0xA0 0x80 would be U+D800, which UTF-8 may not encode.
    assert_malformed_in_both(
        &[0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80],
        DecodeError::InvalidUtf8,
    );
}

#[test]
fn topic_with_null_character_is_malformed() {
    // [MQTT-1.5.3-2] (3.1.1) / [MQTT-1.5.4-2] (5.0)
    assert_malformed_in_both(
        &[0x30, 0x05, 0x00, 0x03, b'a', 0x00, b'b'],
        DecodeError::NullCharacter,
    );
}

#[test]
fn client_id_with_null_character_is_malformed() {
    let bytes = v311_connect(4, 0b0000_0010, &[0x00, 0x03, b'a', 0x00, b'b']);
    assert_malformed(V311, &bytes, DecodeError::NullCharacter);
}

#[test]
fn publish_topic_with_single_level_wildcard_is_malformed() {
    // [MQTT-3.3.2-2]
    assert_malformed(
        V311,
        &[0x30, 0x05, 0x00, 0x03, b'a', b'/', b'+'],
        DecodeError::InvalidTopic(TopicError::WildcardInTopicName),
    );
}

#[test]
fn publish_topic_with_multi_level_wildcard_is_malformed() {
    assert_malformed(
        V5,
        &[0x30, 0x04, 0x00, 0x01, b'#', 0x00],
        DecodeError::InvalidTopic(TopicError::WildcardInTopicName),
    );
}

#[test]
fn v311_publish_with_empty_topic_is_malformed() {
    // [MQTT-4.7.3-1]: topic names are at least one character long.
    assert_malformed(
        V311,
        &[0x30, 0x02, 0x00, 0x00],
        DecodeError::InvalidTopic(TopicError::Empty),
    );
}

#[test]
fn v5_publish_with_empty_topic_and_no_topic_alias_is_a_protocol_error() {
    // MQTT 5.0 3.3.2.3.4: "It is a Protocol Error if the Topic Name is zero length and there
    // is no Topic Alias."
    let err = decode_error(V5, &[0x30, 0x03, 0x00, 0x00, 0x00]);
    assert_eq!(err, DecodeError::MissingTopic);
    assert!(err.is_protocol_error());
}

// ---- truncation and trailing bytes ------------------------------------------------------

#[test]
fn string_length_past_the_end_of_the_packet_is_malformed() {
    // Topic length 5, but only 2 bytes follow.
    assert_malformed(
        V311,
        &[0x30, 0x04, 0x00, 0x05, b'a', b'b'],
        DecodeError::LengthMismatch(PacketType::Publish),
    );
    // Client id length 9 in a CONNECT that ends after 1 byte of it.
    let bytes = v311_connect(4, 0b0000_0010, &[0x00, 0x09, b'c']);
    assert_malformed(
        V311,
        &bytes,
        DecodeError::LengthMismatch(PacketType::Connect),
    );
}

#[test]
fn publish_with_missing_packet_id_is_truncated() {
    assert_malformed(
        V311,
        &[0x32, 0x03, 0x00, 0x01, b'a'],
        DecodeError::Truncated(PacketType::Publish),
    );
}

#[test]
fn puback_with_missing_packet_id_is_truncated() {
    assert_malformed_in_both(&[0x40, 0x00], DecodeError::Truncated(PacketType::PubAck));
    assert_malformed_in_both(
        &[0x40, 0x01, 0x00],
        DecodeError::Truncated(PacketType::PubAck),
    );
}

#[test]
fn connect_ending_after_the_protocol_name_is_truncated() {
    let bytes = frame(0x10, &cat(&[&[0x00, 0x04], b"MQTT"]));
    assert_malformed_in_both(&bytes, DecodeError::Truncated(PacketType::Connect));
}

#[test]
fn v5_connack_without_property_length_is_truncated() {
    // MQTT 5.0 3.2.2.3.1: CONNACK always carries a property length.
    assert_malformed(
        V5,
        &[0x20, 0x02, 0x00, 0x00],
        DecodeError::Truncated(PacketType::ConnAck),
    );
}

#[test]
fn v311_puback_with_remaining_length_3_has_trailing_bytes() {
    // MQTT 3.1.1 3.4.1: remaining length 2.
    assert_malformed(
        V311,
        &[0x40, 0x03, 0x00, 0x01, 0x00],
        DecodeError::TrailingBytes(PacketType::PubAck, 1),
    );
}

#[test]
fn pingreq_with_remaining_length_1_has_trailing_bytes() {
    assert_malformed_in_both(
        &[0xC0, 0x01, 0x00],
        DecodeError::TrailingBytes(PacketType::PingReq, 1),
    );
}

#[test]
fn v311_disconnect_with_a_body_has_trailing_bytes() {
    // MQTT 3.1.1 3.14: no variable header, no payload.
    assert_malformed(
        V311,
        &[0xE0, 0x02, 0x00, 0x00],
        DecodeError::TrailingBytes(PacketType::Disconnect, 2),
    );
}

#[test]
fn v311_connack_with_remaining_length_3_has_trailing_bytes() {
    assert_malformed(
        V311,
        &[0x20, 0x03, 0x00, 0x00, 0x00],
        DecodeError::TrailingBytes(PacketType::ConnAck, 1),
    );
}

#[test]
fn v311_unsuback_with_a_payload_has_trailing_bytes() {
    assert_malformed(
        V311,
        &[0xB0, 0x03, 0x00, 0x01, 0x00],
        DecodeError::TrailingBytes(PacketType::UnsubAck, 1),
    );
}

#[test]
fn v5_puback_with_bytes_after_its_properties_has_trailing_bytes() {
    assert_malformed(
        V5,
        &[0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0xFF],
        DecodeError::TrailingBytes(PacketType::PubAck, 1),
    );
}

// ---- properties -------------------------------------------------------------------------

#[test]
fn property_length_past_the_end_of_the_packet_is_malformed() {
    assert_malformed(
        V5,
        &[0x20, 0x03, 0x00, 0x00, 0x05],
        DecodeError::LengthMismatch(PacketType::ConnAck),
    );
    assert_malformed(
        V5,
        &[0x30, 0x05, 0x00, 0x01, b'a', 0x09, 0x01],
        DecodeError::LengthMismatch(PacketType::Publish),
    );
}

#[test]
fn property_value_running_past_the_property_length_is_truncated() {
    // Property length 2 holds the message expiry id and one of its four bytes; the payload
    // that follows must not be read as the rest of the value.
    assert_malformed(
        V5,
        &[
            0x30, 0x0A, 0x00, 0x01, b'a', 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
        ],
        DecodeError::Truncated(PacketType::Publish),
    );
}

#[test]
fn duplicate_session_expiry_interval_in_connect_is_a_protocol_error() {
    // MQTT 5.0 3.1.2.11.2: "It is a Protocol Error to include the Session Expiry Interval more
    // than once."
    let bytes = v5_connect(&[
        0x11, 0x00, 0x00, 0x00, 0x0A, // session expiry interval 10
        0x11, 0x00, 0x00, 0x00, 0x14, // session expiry interval 20
    ]);
    let err = decode_error(V5, &bytes);
    assert_eq!(
        err,
        DecodeError::DuplicateProperty(PropertyId::SessionExpiryInterval)
    );
    assert!(err.is_protocol_error());
}

#[test]
fn duplicate_topic_alias_in_publish_is_a_protocol_error() {
    let bytes = v5_publish(&[0x23, 0x00, 0x01, 0x23, 0x00, 0x02]);
    let err = decode_error(V5, &bytes);
    assert_eq!(err, DecodeError::DuplicateProperty(PropertyId::TopicAlias));
    assert!(err.is_protocol_error());
}

#[test]
fn duplicate_subscription_identifier_in_subscribe_is_a_protocol_error() {
    // MQTT 5.0 3.8.2.1.2.
    let bytes = v5_subscribe(&[0x0B, 0x01, 0x0B, 0x02]);
    assert_malformed(
        V5,
        &bytes,
        DecodeError::DuplicateProperty(PropertyId::SubscriptionIdentifier),
    );
}

#[test]
fn topic_alias_in_connect_is_not_allowed() {
    // MQTT 5.0 2.2.2.2: "A Control Packet which contains an Identifier which is not valid for
    // its packet type ... is a Malformed Packet."
    let err = decode_error(V5, &v5_connect(&[0x23, 0x00, 0x01]));
    assert_eq!(
        err,
        DecodeError::PropertyNotAllowed {
            property: PropertyId::TopicAlias,
            packet: PacketType::Connect,
        }
    );
    assert!(
        !err.is_protocol_error(),
        "2.2.2.2 makes it a Malformed Packet"
    );
}

#[test]
fn session_expiry_in_publish_is_not_allowed() {
    let err = decode_error(V5, &v5_publish(&[0x11, 0x00, 0x00, 0x00, 0x01]));
    assert_eq!(
        err,
        DecodeError::PropertyNotAllowed {
            property: PropertyId::SessionExpiryInterval,
            packet: PacketType::Publish,
        }
    );
    assert!(
        !err.is_protocol_error(),
        "2.2.2.2 makes it a Malformed Packet"
    );
}

#[test]
fn session_expiry_in_will_properties_is_not_allowed() {
    // CONNECT with a will whose properties carry a session expiry interval.
    let bytes = frame(
        0x10,
        &cat(&[
            &[0x00, 0x04],
            b"MQTT",
            &[0x05, 0b0000_0110, 0x00, 0x3C], // will flag, clean start
            &[0x00],                          // property length 0
            &[0x00, 0x01],
            b"c",                                  // client id
            &[0x05, 0x11, 0x00, 0x00, 0x00, 0x01], // will properties
            &[0x00, 0x01],
            b"w",          // will topic
            &[0x00, 0x00], // will payload
        ]),
    );
    assert_malformed(
        V5,
        &bytes,
        DecodeError::PropertyNotAllowed {
            property: PropertyId::SessionExpiryInterval,
            packet: PacketType::Connect,
        },
    );
}

#[test]
fn unknown_property_id_is_malformed() {
    let err = decode_error(V5, &v5_publish(&[0x7F, 0x00]));
    assert_eq!(err, DecodeError::UnknownProperty(0x7F));
    assert!(!err.is_protocol_error());
    assert_malformed(V5, &v5_connack(&[0x00]), DecodeError::UnknownProperty(0));
}

#[test]
fn receive_maximum_0_is_a_protocol_error() {
    // MQTT 5.0 3.1.2.11.3: "It is a Protocol Error to include the Receive Maximum value more
    // than once or for it to have the value 0."
    let err = decode_error(V5, &v5_connect(&[0x21, 0x00, 0x00]));
    assert_eq!(
        err,
        DecodeError::InvalidPropertyValue(PropertyId::ReceiveMaximum)
    );
    assert!(err.is_protocol_error());
}

#[test]
fn maximum_packet_size_0_is_a_protocol_error() {
    // MQTT 5.0 3.1.2.11.4.
    assert_malformed(
        V5,
        &v5_connect(&[0x27, 0x00, 0x00, 0x00, 0x00]),
        DecodeError::InvalidPropertyValue(PropertyId::MaximumPacketSize),
    );
}

#[test]
fn topic_alias_0_is_a_protocol_error() {
    // [MQTT-3.3.2-8]: a topic alias of 0 is not permitted.
    assert_malformed(
        V5,
        &v5_publish(&[0x23, 0x00, 0x00]),
        DecodeError::InvalidPropertyValue(PropertyId::TopicAlias),
    );
}

#[test]
fn maximum_qos_2_is_a_protocol_error() {
    // MQTT 5.0 3.2.2.3.4: Maximum QoS is 0 or 1.
    assert_malformed(
        V5,
        &v5_connack(&[0x24, 0x02]),
        DecodeError::InvalidPropertyValue(PropertyId::MaximumQoS),
    );
}

#[test]
fn boolean_property_with_value_2_is_a_protocol_error() {
    // MQTT 5.0 3.1.2.11.7: Request Problem Information is 0 or 1.
    assert_malformed(
        V5,
        &v5_connect(&[0x17, 0x02]),
        DecodeError::InvalidPropertyValue(PropertyId::RequestProblemInformation),
    );
    assert_malformed(
        V5,
        &v5_connack(&[0x25, 0x02]),
        DecodeError::InvalidPropertyValue(PropertyId::RetainAvailable),
    );
}

#[test]
fn payload_format_indicator_2_is_invalid() {
    // MQTT 5.0 3.3.2.3.2: 0 (unspecified bytes) or 1 (UTF-8).
    assert_malformed(
        V5,
        &v5_publish(&[0x01, 0x02]),
        DecodeError::InvalidPropertyValue(PropertyId::PayloadFormatIndicator),
    );
}

#[test]
fn subscription_identifier_0_is_a_protocol_error() {
    // MQTT 5.0 3.8.2.1.2: "It is a Protocol Error if the Subscription Identifier has a value
    // of 0."
    assert_malformed(
        V5,
        &v5_subscribe(&[0x0B, 0x00]),
        DecodeError::InvalidPropertyValue(PropertyId::SubscriptionIdentifier),
    );
    assert_malformed(
        V5,
        &v5_publish(&[0x0B, 0x00]),
        DecodeError::InvalidPropertyValue(PropertyId::SubscriptionIdentifier),
    );
}

#[test]
fn v5_non_minimal_variable_byte_integer_in_properties_is_malformed() {
    // [MQTT-1.5.5-1] applies to every variable byte integer, not only the remaining length.
    // Property length 0 written as 0x80 0x00:
    assert_malformed(
        V5,
        &[0x30, 0x05, 0x00, 0x01, b'a', 0x80, 0x00],
        DecodeError::NonMinimalVarInt,
    );
    // Subscription identifier 1 written as 0x81 0x00:
    assert_malformed(
        V5,
        &v5_publish(&[0x0B, 0x81, 0x00]),
        DecodeError::NonMinimalVarInt,
    );
}

#[test]
fn property_length_over_four_bytes_is_malformed() {
    assert_malformed(
        V5,
        &[0x30, 0x08, 0x00, 0x01, b'a', 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        DecodeError::MalformedVarInt,
    );
}

// ---- CONNECT ----------------------------------------------------------------------------

#[test]
fn connect_with_protocol_name_mqisdp_is_refused() {
    // [MQTT-3.1.2-1]: "MQIsdp" is MQTT 3.1, which this crate does not speak.
    let bytes = frame(
        0x10,
        &cat(&[
            &[0x00, 0x06],
            b"MQIsdp",
            &[0x03, 0b0000_0010, 0x00, 0x3C],
            &[0x00, 0x01],
            b"c",
        ]),
    );
    assert_malformed_in_both(&bytes, DecodeError::InvalidProtocolName);
}

#[test]
fn connect_with_protocol_level_3_is_refused() {
    // [MQTT-3.1.2-2]
    let bytes = v311_connect(3, 0b0000_0010, &[0x00, 0x01, b'c']);
    assert_malformed(V311, &bytes, DecodeError::UnsupportedProtocolLevel(3));
}

#[test]
fn connect_with_protocol_level_5_on_a_v311_codec_is_refused() {
    let bytes = v311_connect(5, 0b0000_0010, &[0x00, 0x00, 0x01, b'c']);
    assert_malformed(V311, &bytes, DecodeError::UnsupportedProtocolLevel(5));
}

#[test]
fn connect_with_protocol_level_4_on_a_v5_codec_is_refused() {
    let bytes = v311_connect(4, 0b0000_0010, &[0x00, 0x01, b'c']);
    assert_malformed(V5, &bytes, DecodeError::UnsupportedProtocolLevel(4));
}

#[test]
fn connect_with_reserved_flag_bit_0_is_malformed() {
    // [MQTT-3.1.2-3]
    let bytes = v311_connect(4, 0b0000_0011, &[0x00, 0x01, b'c']);
    assert_malformed(V311, &bytes, DecodeError::InvalidConnectFlags(0b0000_0011));
    let bytes = v311_connect(5, 0b0000_0011, &[0x00, 0x00, 0x01, b'c']);
    assert_malformed(V5, &bytes, DecodeError::InvalidConnectFlags(0b0000_0011));
}

#[test]
fn connect_with_will_qos_3_is_malformed() {
    // [MQTT-3.1.2-14] (3.1.1) / [MQTT-3.1.2-12] (5.0)
    let payload = cat(&[&[0x00, 0x01], b"c", &[0x00, 0x01], b"w", &[0x00, 0x00]]);
    let bytes = v311_connect(4, 0b0001_1110, &payload);
    assert_malformed(V311, &bytes, DecodeError::InvalidQoS(3));
}

#[test]
fn connect_with_will_retain_without_will_flag_is_malformed() {
    // [MQTT-3.1.2-15] (3.1.1) / [MQTT-3.1.2-13] (5.0)
    let bytes = v311_connect(4, 0b0010_0010, &[0x00, 0x01, b'c']);
    assert_malformed(V311, &bytes, DecodeError::InvalidConnectFlags(0b0010_0010));
}

#[test]
fn connect_with_will_qos_without_will_flag_is_malformed() {
    // [MQTT-3.1.2-13] (3.1.1) / [MQTT-3.1.2-11] (5.0)
    let bytes = v311_connect(5, 0b0000_1010, &[0x00, 0x00, 0x01, b'c']);
    assert_malformed(V5, &bytes, DecodeError::InvalidConnectFlags(0b0000_1010));
}

#[test]
fn v311_connect_with_password_without_username_is_malformed() {
    // [MQTT-3.1.2-22] (3.1.1)
    let payload = cat(&[&[0x00, 0x01], b"c", &[0x00, 0x02], b"pw"]);
    let bytes = v311_connect(4, 0b0100_0010, &payload);
    assert_malformed(V311, &bytes, DecodeError::InvalidConnectFlags(0b0100_0010));
}

#[test]
fn v5_connect_with_password_without_username_is_accepted() {
    // MQTT 5.0 3.1.2.9 allows a password without a user name.
    let payload = cat(&[&[0x00, 0x00, 0x01], b"c", &[0x00, 0x02], b"pw"]);
    let bytes = v311_connect(5, 0b0100_0010, &payload);
    let expected = Connect {
        password: Some(Bytes::from_static(b"pw")),
        keep_alive: 60,
        ..Connect::new("c")
    };
    assert_decodes(V5, &bytes, expected);
}

#[test]
fn connect_with_wildcard_in_will_topic_is_malformed() {
    let payload = cat(&[&[0x00, 0x01], b"c", &[0x00, 0x01], b"#", &[0x00, 0x00]]);
    let bytes = v311_connect(4, 0b0000_0110, &payload);
    assert_malformed(
        V311,
        &bytes,
        DecodeError::InvalidTopic(TopicError::WildcardInTopicName),
    );
}

// ---- CONNACK ----------------------------------------------------------------------------

#[test]
fn connack_with_reserved_acknowledge_flags_is_malformed() {
    // MQTT 3.1.1 3.2.2.1 / [MQTT-3.2.2-1] (5.0): bits 7-1 are reserved and 0.
    assert_malformed(
        V311,
        &[0x20, 0x02, 0x02, 0x00],
        DecodeError::InvalidConnAckFlags(0x02),
    );
    assert_malformed(
        V5,
        &[0x20, 0x03, 0x80, 0x00, 0x00],
        DecodeError::InvalidConnAckFlags(0x80),
    );
}

#[test]
fn connack_with_session_present_on_a_refusal_is_malformed() {
    // [MQTT-3.2.2-4] (3.1.1) / [MQTT-3.2.2-6] (5.0): a refusal has session present 0.
    assert_malformed(
        V311,
        &[0x20, 0x02, 0x01, 0x05],
        DecodeError::InvalidConnAckFlags(0x01),
    );
    assert_malformed(
        V5,
        &[0x20, 0x03, 0x01, 0x87, 0x00],
        DecodeError::InvalidConnAckFlags(0x01),
    );
}

#[test]
fn v311_connack_with_return_code_6_is_malformed() {
    // MQTT 3.1.1 table 3.1: 6-255 are reserved.
    assert_malformed(
        V311,
        &[0x20, 0x02, 0x00, 0x06],
        DecodeError::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code: 0x06,
        },
    );
}

#[test]
fn v5_connack_with_reason_code_0x04_is_malformed() {
    // 0x04 (Disconnect with Will Message) is a DISCONNECT code, not a CONNACK one.
    assert_malformed(
        V5,
        &[0x20, 0x03, 0x00, 0x04, 0x00],
        DecodeError::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code: 0x04,
        },
    );
}

// ---- SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK -------------------------------------------

#[test]
fn subscribe_with_no_filters_is_malformed() {
    // [MQTT-3.8.3-3] (3.1.1) / [MQTT-3.8.3-2] (5.0): "A SUBSCRIBE packet with no Payload is a
    // Protocol Error."
    assert_malformed(
        V311,
        &[0x82, 0x02, 0x00, 0x01],
        DecodeError::EmptyPayload(PacketType::Subscribe),
    );
    let err = decode_error(V5, &[0x82, 0x03, 0x00, 0x01, 0x00]);
    assert_eq!(err, DecodeError::EmptyPayload(PacketType::Subscribe));
    assert!(
        err.is_protocol_error(),
        "MQTT 5.0 3.8.3 makes it a Protocol Error"
    );
}

#[test]
fn v311_subscribe_with_reserved_option_bit_2_is_malformed() {
    // [MQTT-3-8.3-4] (3.1.1): bits 7-2 of the requested QoS byte are reserved.
    let bytes = cat(&[&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01], b"a", &[0b0000_0100]]);
    assert_malformed(
        V311,
        &bytes,
        DecodeError::InvalidSubscriptionOptions(0b0000_0100),
    );
}

#[test]
fn v5_subscribe_with_reserved_option_bit_6_is_malformed() {
    // [MQTT-3.8.3-5] (5.0): bits 7-6 of the subscription options are reserved.
    let bytes = cat(&[
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01],
        b"a",
        &[0b0100_0000],
    ]);
    assert_malformed(
        V5,
        &bytes,
        DecodeError::InvalidSubscriptionOptions(0b0100_0000),
    );
}

#[test]
fn subscribe_with_retain_handling_3_is_a_protocol_error() {
    // MQTT 5.0 3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3."
    let bytes = cat(&[
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01],
        b"a",
        &[0b0011_0000],
    ]);
    assert_malformed(V5, &bytes, DecodeError::InvalidRetainHandling);
    assert!(DecodeError::InvalidRetainHandling.is_protocol_error());
}

#[test]
fn authentication_data_without_a_method_is_a_protocol_error() {
    // MQTT 5.0 3.1.2.11.10: "It is a Protocol Error to include Authentication Data if there
    // is no Authentication Method." CONNACK: properties 0x16 (data) 00 01 'x' only.
    let bytes = [0x20, 0x07, 0x00, 0x00, 0x04, 0x16, 0x00, 0x01, b'x'];
    assert_malformed(
        V5,
        &bytes,
        DecodeError::InvalidPropertyValue(PropertyId::AuthenticationData),
    );
    let mut connack = ConnAck::new(false);
    connack.properties.authentication_data = Some(Bytes::from_static(b"x"));
    assert_eq!(
        encode_error(V5, connack),
        EncodeError::InvalidPropertyValue(PropertyId::AuthenticationData)
    );
}

#[test]
fn response_topic_with_a_wildcard_is_refused() {
    // [MQTT-3.3.2-14]: the Response Topic is a topic name, without wildcards.
    // PUBLISH QoS 0 topic "t", properties: 0x08 (response topic) 00 03 "a/+".
    let bytes = [
        0x30, 0x0A, 0x00, 0x01, b't', 0x06, 0x08, 0x00, 0x03, b'a', b'/', b'+',
    ];
    assert_malformed(
        V5,
        &bytes,
        DecodeError::InvalidPropertyValue(PropertyId::ResponseTopic),
    );
    let mut publish = Publish::new("t", "");
    publish.properties.response_topic = Some("a/#".into());
    assert_eq!(
        encode_error(V5, publish),
        EncodeError::InvalidPropertyValue(PropertyId::ResponseTopic)
    );
}

#[test]
fn subscribe_with_requested_qos_3_is_malformed() {
    let bytes = cat(&[&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01], b"a", &[0b0000_0011]]);
    assert_malformed(V311, &bytes, DecodeError::InvalidQoS(3));
}

#[test]
fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    // [MQTT-3.8.3-4] (5.0)
    let bytes = cat(&[
        &[0x82, 0x10, 0x00, 0x01, 0x00],
        &[0x00, 0x0A],
        b"$share/g/x",
        &[0b0000_0100], // no local
    ]);
    let err = decode_error(V5, &bytes);
    assert_eq!(err, DecodeError::NoLocalOnSharedSubscription);
    assert!(err.is_protocol_error());
}

#[test]
fn subscribe_with_multi_level_wildcard_before_the_last_level_is_malformed() {
    // [MQTT-4.7.1-2] (3.1.1) / [MQTT-4.7.1-1] (5.0): `#` must be the last level.
    let bytes = cat(&[&[0x82, 0x0A, 0x00, 0x01, 0x00, 0x05], b"a/#/b", &[0x00]]);
    assert_malformed(
        V311,
        &bytes,
        DecodeError::InvalidTopic(TopicError::InvalidMultiLevelWildcard),
    );
    let bytes = cat(&[
        &[0x82, 0x0B, 0x00, 0x01, 0x00, 0x00, 0x05],
        b"a/#/b",
        &[0x00],
    ]);
    assert_malformed(
        V5,
        &bytes,
        DecodeError::InvalidTopic(TopicError::InvalidMultiLevelWildcard),
    );
}

#[test]
fn unsubscribe_with_no_filters_is_malformed() {
    // [MQTT-3.10.3-2]; MQTT 5.0 3.10.3: "An UNSUBSCRIBE packet with no Payload is a Protocol
    // Error."
    assert_malformed(
        V311,
        &[0xA2, 0x02, 0x00, 0x01],
        DecodeError::EmptyPayload(PacketType::Unsubscribe),
    );
    let err = decode_error(V5, &[0xA2, 0x03, 0x00, 0x01, 0x00]);
    assert_eq!(err, DecodeError::EmptyPayload(PacketType::Unsubscribe));
    assert!(
        err.is_protocol_error(),
        "MQTT 5.0 3.10.3 makes it a Protocol Error"
    );
}

#[test]
fn unsubscribe_with_invalid_filter_is_malformed() {
    let bytes = cat(&[&[0xA2, 0x06, 0x00, 0x01, 0x00, 0x02], b"a+"]);
    assert_malformed(
        V311,
        &bytes,
        DecodeError::InvalidTopic(TopicError::InvalidSingleLevelWildcard),
    );
}

#[test]
fn suback_with_return_code_3_is_malformed() {
    // MQTT 3.1.1 3.9.3: 0x00, 0x01, 0x02, 0x80 only; MQTT 5.0 3.9.3: 0x03 is not a code.
    let expected = DecodeError::InvalidReasonCode {
        packet: PacketType::SubAck,
        code: 0x03,
    };
    assert_malformed(V311, &[0x90, 0x03, 0x00, 0x01, 0x03], expected.clone());
    assert_malformed(V5, &[0x90, 0x04, 0x00, 0x01, 0x00, 0x03], expected);
}

#[test]
fn suback_with_no_return_codes_is_malformed() {
    assert_malformed(
        V311,
        &[0x90, 0x02, 0x00, 0x01],
        DecodeError::EmptyPayload(PacketType::SubAck),
    );
}

#[test]
fn v5_unsuback_with_no_reason_codes_is_malformed() {
    assert_malformed(
        V5,
        &[0xB0, 0x03, 0x00, 0x01, 0x00],
        DecodeError::EmptyPayload(PacketType::UnsubAck),
    );
}

// ---- reason codes -----------------------------------------------------------------------

#[test]
fn pubrel_with_reason_code_0x10_is_malformed() {
    // [MQTT-3.6.2-1]: PUBREL may only carry 0x00 or 0x92.
    assert_malformed(
        V5,
        &[0x62, 0x03, 0x00, 0x01, 0x10],
        DecodeError::InvalidReasonCode {
            packet: PacketType::PubRel,
            code: 0x10,
        },
    );
}

#[test]
fn puback_with_a_pubrel_reason_code_is_malformed() {
    assert_malformed(
        V5,
        &[0x40, 0x03, 0x00, 0x01, 0x92],
        DecodeError::InvalidReasonCode {
            packet: PacketType::PubAck,
            code: 0x92,
        },
    );
}

#[test]
fn disconnect_with_a_suback_reason_code_is_malformed() {
    assert_malformed(
        V5,
        &[0xE0, 0x01, 0x01],
        DecodeError::InvalidReasonCode {
            packet: PacketType::Disconnect,
            code: 0x01,
        },
    );
}

#[test]
fn auth_with_reason_code_0x87_is_malformed() {
    // [MQTT-3.15.2-1]: AUTH carries 0x00, 0x18 or 0x19.
    assert_malformed(
        V5,
        &[0xF0, 0x02, 0x87, 0x00],
        DecodeError::InvalidReasonCode {
            packet: PacketType::Auth,
            code: 0x87,
        },
    );
}

#[test]
fn unsuback_with_a_granted_qos_code_is_malformed() {
    assert_malformed(
        V5,
        &[0xB0, 0x04, 0x00, 0x01, 0x00, 0x01],
        DecodeError::InvalidReasonCode {
            packet: PacketType::UnsubAck,
            code: 0x01,
        },
    );
}

// ---- encoding refuses what the specification forbids ------------------------------------

#[test]
fn qos_0_publish_with_packet_id_is_refused() {
    // [MQTT-2.2.1-2]
    let publish = Publish {
        packet_id: Some(id(1)),
        ..Publish::new("a", "x")
    };
    for version in [V311, V5] {
        assert_eq!(
            encode_error(version, publish.clone()),
            EncodeError::PacketIdWithQoS0
        );
    }
}

#[test]
fn qos_1_publish_without_packet_id_is_refused() {
    let publish = Publish {
        qos: QoS::AtLeastOnce,
        ..Publish::new("a", "x")
    };
    assert_eq!(encode_error(V311, publish), EncodeError::MissingPacketId);
}

#[test]
fn qos_2_publish_without_packet_id_is_refused() {
    let publish = Publish {
        qos: QoS::ExactlyOnce,
        ..Publish::new("a", "x")
    };
    assert_eq!(encode_error(V5, publish), EncodeError::MissingPacketId);
}

#[test]
fn dup_on_qos_0_publish_is_refused() {
    // [MQTT-3.3.1-2]
    let publish = Publish {
        dup: true,
        ..Publish::new("a", "x")
    };
    assert_eq!(encode_error(V5, publish), EncodeError::DupWithQoS0);
}

#[test]
fn string_over_65535_bytes_is_refused() {
    let long = "a".repeat(65_536);
    assert_eq!(
        encode_error(V311, Connect::new(long.clone())),
        EncodeError::FieldTooLong(65_536)
    );
    let mut puback = PubAck::new(id(1));
    puback.reason_code = ReasonCode::UnspecifiedError;
    puback.properties = AckProperties {
        reason_string: Some(long.into()),
        ..AckProperties::default()
    };
    assert_eq!(encode_error(V5, puback), EncodeError::FieldTooLong(65_536));
    // 65535 bytes still fit.
    let mut buf = BytesMut::new();
    assert!(
        Connect::new("a".repeat(65_535))
            .encode(V311, &mut buf)
            .is_ok()
    );
}

#[test]
fn binary_field_over_65535_bytes_is_refused() {
    let connect = Connect {
        username: Some("u".into()),
        password: Some(Bytes::from(vec![0; 65_536])),
        ..Connect::new("c")
    };
    assert_eq!(
        encode_error(V311, connect),
        EncodeError::FieldTooLong(65_536)
    );
}

#[test]
fn string_with_null_character_is_refused() {
    // [MQTT-1.5.3-2] (3.1.1) / [MQTT-1.5.4-2] (5.0)
    assert_eq!(
        encode_error(V311, Connect::new("a\0b")),
        EncodeError::NullCharacter
    );
    let connect = Connect {
        properties: ConnectProperties {
            user_properties: vec![UserProperty::new("k\0", "v")],
            ..ConnectProperties::default()
        },
        ..Connect::new("c")
    };
    assert_eq!(encode_error(V5, connect), EncodeError::NullCharacter);
}

#[test]
fn subscribe_without_filters_is_refused() {
    // [MQTT-3.8.3-3] (3.1.1) / [MQTT-3.8.3-2] (5.0)
    let subscribe = Subscribe::new(id(1), vec![]);
    assert_eq!(
        encode_error(V311, subscribe.clone()),
        EncodeError::EmptyPayload(PacketType::Subscribe)
    );
    assert_eq!(
        encode_error(V5, subscribe),
        EncodeError::EmptyPayload(PacketType::Subscribe)
    );
}

#[test]
fn unsubscribe_without_filters_is_refused() {
    assert_eq!(
        encode_error(V5, Unsubscribe::new(id(1), vec![])),
        EncodeError::EmptyPayload(PacketType::Unsubscribe)
    );
}

#[test]
fn suback_without_codes_is_refused() {
    let suback = SubAck {
        packet_id: id(1),
        reason_codes: vec![],
        properties: AckProperties::default(),
    };
    assert_eq!(
        encode_error(V311, suback),
        EncodeError::EmptyPayload(PacketType::SubAck)
    );
}

#[test]
fn auth_in_v311_is_refused() {
    assert_eq!(
        encode_error(V311, Auth::default()),
        EncodeError::NotInVersion {
            what: "AUTH",
            version: V311
        }
    );
}

#[test]
fn v5_properties_in_a_v311_packet_are_refused() {
    let publish = Publish {
        properties: PublishProperties {
            message_expiry_interval: Some(10),
            ..PublishProperties::default()
        }
        .into(),
        ..Publish::new("a", "x")
    };
    assert_eq!(
        encode_error(V311, publish),
        EncodeError::NotInVersion {
            what: "PUBLISH properties",
            version: V311
        }
    );
    let connack = ConnAck {
        properties: ConnAckProperties {
            receive_maximum: Some(10),
            ..ConnAckProperties::default()
        },
        ..ConnAck::new(false)
    };
    assert!(matches!(
        encode_error(V311, connack),
        EncodeError::NotInVersion { version: V311, .. }
    ));
}

#[test]
fn v5_subscription_options_in_v311_are_refused() {
    let subscribe = Subscribe::new(
        id(1),
        vec![SubscribeFilter {
            filter: "a".into(),
            options: SubscriptionOptions {
                no_local: true,
                ..SubscriptionOptions::default()
            },
        }],
    );
    assert!(matches!(
        encode_error(V311, subscribe),
        EncodeError::NotInVersion { version: V311, .. }
    ));
}

#[test]
fn v5_disconnect_reason_in_v311_is_refused() {
    assert!(matches!(
        encode_error(V311, Disconnect::new(ReasonCode::ServerBusy)),
        EncodeError::NotInVersion { version: V311, .. }
    ));
}

#[test]
fn reason_code_not_allowed_in_the_packet_is_refused() {
    let puback = PubAck {
        reason_code: ReasonCode::GrantedQoS1,
        ..PubAck::new(id(1))
    };
    assert_eq!(
        encode_error(V5, puback),
        EncodeError::InvalidReasonCode {
            packet: PacketType::PubAck,
            code: 0x01
        }
    );
    // MQTT 3.1.1 CONNACK has no return code for Quota exceeded.
    let connack = ConnAck {
        reason_code: ReasonCode::QuotaExceeded,
        ..ConnAck::new(false)
    };
    assert_eq!(
        encode_error(V311, connack),
        EncodeError::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code: 0x97
        }
    );
    // MQTT 3.1.1 PUBACK carries no reason code at all.
    let puback = PubAck {
        reason_code: ReasonCode::NoMatchingSubscribers,
        ..PubAck::new(id(1))
    };
    assert_eq!(
        encode_error(V311, puback),
        EncodeError::InvalidReasonCode {
            packet: PacketType::PubAck,
            code: 0x10
        }
    );
    // AUTH carries 0x00, 0x18 or 0x19 only.
    let auth = Auth {
        reason_code: ReasonCode::NotAuthorized,
        ..Auth::default()
    };
    assert_eq!(
        encode_error(V5, auth),
        EncodeError::InvalidReasonCode {
            packet: PacketType::Auth,
            code: 0x87
        }
    );
}

#[test]
fn topic_alias_0_is_refused() {
    // [MQTT-3.3.2-8]
    let publish = Publish {
        properties: PublishProperties {
            topic_alias: Some(0),
            ..PublishProperties::default()
        }
        .into(),
        ..Publish::new("a", "x")
    };
    assert_eq!(
        encode_error(V5, publish),
        EncodeError::InvalidPropertyValue(PropertyId::TopicAlias)
    );
}

#[test]
fn out_of_range_property_values_are_refused() {
    let connect = Connect {
        properties: ConnectProperties {
            receive_maximum: Some(0),
            ..ConnectProperties::default()
        },
        ..Connect::new("c")
    };
    assert_eq!(
        encode_error(V5, connect),
        EncodeError::InvalidPropertyValue(PropertyId::ReceiveMaximum)
    );
    let connack = ConnAck {
        properties: ConnAckProperties {
            maximum_qos: Some(QoS::ExactlyOnce),
            ..ConnAckProperties::default()
        },
        ..ConnAck::new(false)
    };
    assert_eq!(
        encode_error(V5, connack),
        EncodeError::InvalidPropertyValue(PropertyId::MaximumQoS)
    );
}

#[test]
fn v311_password_without_username_is_refused() {
    // [MQTT-3.1.2-22] (3.1.1)
    let connect = Connect {
        password: Some(Bytes::from_static(b"pw")),
        ..Connect::new("c")
    };
    assert_eq!(
        encode_error(V311, connect),
        EncodeError::PasswordWithoutUsername
    );
}

#[test]
fn wildcard_topic_name_is_refused() {
    // [MQTT-3.3.2-2]
    assert_eq!(
        encode_error(V311, Publish::new("a/+", "x")),
        EncodeError::InvalidTopic(TopicError::WildcardInTopicName)
    );
    assert_eq!(
        encode_error(V5, Publish::new("#", "x")),
        EncodeError::InvalidTopic(TopicError::WildcardInTopicName)
    );
}

#[test]
fn v5_empty_topic_without_topic_alias_is_refused() {
    assert_eq!(
        encode_error(V5, Publish::new("", "x")),
        EncodeError::InvalidTopic(TopicError::Empty)
    );
}

#[test]
fn invalid_topic_filter_is_refused() {
    let subscribe = Subscribe::new(id(1), vec![SubscribeFilter::new("a/#/b", QoS::AtMostOnce)]);
    assert_eq!(
        encode_error(V311, subscribe),
        EncodeError::InvalidTopic(TopicError::InvalidMultiLevelWildcard)
    );
}

#[test]
fn no_local_on_a_shared_subscription_is_refused() {
    // [MQTT-3.8.3-4] (5.0): the decoder rejects it, so the encoder must not produce it.
    let subscribe = Subscribe::new(
        id(1),
        vec![SubscribeFilter {
            filter: "$share/g/x".into(),
            options: SubscriptionOptions {
                no_local: true,
                ..SubscriptionOptions::default()
            },
        }],
    );
    assert_eq!(
        encode_error(V5, subscribe),
        EncodeError::NoLocalOnSharedSubscription
    );
}

#[test]
fn connack_refusing_with_session_present_is_refused_by_the_encoder() {
    // [MQTT-3.2.2-4] (3.1.1) / [MQTT-3.2.2-6] (5.0)
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let connack = ConnAck {
            session_present: true,
            reason_code: ReasonCode::NotAuthorized,
            properties: Default::default(),
        };
        assert_eq!(
            encode_error(version, connack),
            EncodeError::SessionPresentOnRefusal
        );
    }
}
