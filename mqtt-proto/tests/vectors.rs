//! Byte-exact test vectors for every control packet of MQTT 3.1.1 and MQTT 5.0.
//!
//! Every expected byte string below was worked out by hand from the OASIS specifications
//! (MQTT 3.1.1 section 2 and 3, MQTT 5.0 sections 1.5, 2 and 3), field by field, not copied
//! from the encoder. Each vector is checked in both directions: encoding the packet yields
//! exactly the bytes, and decoding the bytes yields exactly the packet and consumes them all.
//! Every vector is also fed to the decoder one byte at a time.
//!
//! Properties are written in the order of the fields of the crate's property structs: the
//! specification allows any order (MQTT 5.0 2.2.2.2), `properties_decode_in_any_order` checks
//! that the decoder does not depend on it.
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use sansmqtt_proto::properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PayloadFormat, PublishProperties, SubscribeProperties, SubscriptionId, UnsubscribeProperties,
    UserProperty, WillProperties,
};
use sansmqtt_proto::{
    Auth, ByteString, ConnAck, Connect, Disconnect, Encode, MAX_PACKET_SIZE, Packet, PacketId,
    PingReq, PingResp, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, QoS, ReasonCode,
    RetainHandling, SubAck, Subscribe, SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe,
    Will, decode,
};

use ProtocolVersion::{V5, V311};

// ---- helpers ----------------------------------------------------------------------------

/// Joins the fields of a hand-written packet.
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn id(value: u16) -> PacketId {
    PacketId::new(value).unwrap()
}

fn s(value: &'static str) -> ByteString {
    ByteString::from_static(value)
}

fn b(value: &'static [u8]) -> Bytes {
    Bytes::from_static(value)
}

fn user(name: &'static str, value: &'static str) -> UserProperty {
    UserProperty::new(name, value)
}

/// `packet` encodes to exactly `bytes` under `version`.
#[track_caller]
fn assert_encodes(version: ProtocolVersion, packet: &Packet, bytes: &[u8]) {
    let mut buf = BytesMut::new();
    let written = packet.encode(version, &mut buf).unwrap();
    assert_eq!(&buf[..], bytes, "encoding {packet:?} under {version}");
    assert_eq!(written, bytes.len(), "returned length of {packet:?}");
    assert_eq!(packet.encoded_len(version), Ok(bytes.len()));
}

/// `bytes` decode to exactly `packet` under `version`, leaving the buffer empty.
#[track_caller]
fn assert_decodes(version: ProtocolVersion, bytes: &[u8], packet: &Packet) {
    let mut input = BytesMut::from(bytes);
    let decoded = decode(&mut input, version, MAX_PACKET_SIZE).unwrap();
    assert_eq!(decoded.as_ref(), Some(packet), "decoding {bytes:02x?}");
    assert!(input.is_empty(), "{} bytes left over", input.len());
}

/// Feeding `bytes` one at a time gives `Ok(None)`, without consuming anything, until the last
/// byte, which completes the packet.
#[track_caller]
fn assert_decodes_incrementally(version: ProtocolVersion, bytes: &[u8], packet: &Packet) {
    let mut input = BytesMut::new();
    for (i, &byte) in bytes.iter().enumerate() {
        input.extend_from_slice(&[byte]);
        let result = decode(&mut input, version, MAX_PACKET_SIZE).unwrap();
        if i + 1 < bytes.len() {
            assert_eq!(result, None, "packet complete after {} bytes", i + 1);
            assert_eq!(input.len(), i + 1, "incomplete packet was consumed");
        } else {
            assert_eq!(result.as_ref(), Some(packet));
            assert!(input.is_empty());
        }
    }
}

/// Both directions plus incremental decoding.
#[track_caller]
fn assert_vector(version: ProtocolVersion, packet: impl Into<Packet>, bytes: &[u8]) {
    let packet = packet.into();
    assert_encodes(version, &packet, bytes);
    assert_decodes(version, bytes, &packet);
    assert_decodes_incrementally(version, bytes, &packet);
}

/// A vector that is the same in both versions.
#[track_caller]
fn assert_vector_both(packet: impl Into<Packet>, bytes: &[u8]) {
    let packet = packet.into();
    assert_vector(V311, packet.clone(), bytes);
    assert_vector(V5, packet, bytes);
}

// ---- CONNECT ----------------------------------------------------------------------------

#[test]
fn v311_connect_minimal() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x10],             // fixed header: CONNECT (1), flags 0
        &[0x0F],             // remaining length 15
        &[0x00, 0x04],       // protocol name length 4
        b"MQTT",             // protocol name
        &[0x04],             // protocol level 4 = 3.1.1
        &[0b0000_0010],      // connect flags: clean session
        &[0x00, 0x3C],       // keep alive 60
        &[0x00, 0x03],       // client id length 3
        b"abc",              // client id
    ]);
    assert_vector(V311, Connect::new("abc"), &bytes);
}

#[test]
fn v311_connect_with_will_username_and_password() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x10],        // CONNECT
        &[0x2D],        // remaining length 45 = 10 + 10 + 8 + 5 + 6 + 6
        &[0x00, 0x04],  // protocol name length
        b"MQTT",        // protocol name
        &[0x04],        // protocol level 4
        &[0b1110_1100], // user name, password, will retain, will QoS 1 (bits 4-3 = 01), will flag; clean session 0
        &[0x00, 0x1E],  // keep alive 30
        &[0x00, 0x08],  // client id length
        b"client-1",    // client id
        &[0x00, 0x06],  // will topic length
        b"will/t",      // will topic
        &[0x00, 0x03],  // will payload length
        b"bye",         // will payload
        &[0x00, 0x04],  // user name length
        b"user",        // user name
        &[0x00, 0x04],  // password length
        b"pass",        // password
    ]);
    let connect = Connect {
        clean_start: false,
        keep_alive: 30,
        client_id: s("client-1"),
        will: Some(Will {
            topic: s("will/t"),
            payload: b(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: WillProperties::default(),
        }),
        username: Some(s("user")),
        password: Some(b(b"pass")),
        properties: ConnectProperties::default(),
    };
    assert_vector(V311, connect, &bytes);
}

#[test]
fn v5_connect_minimal_with_empty_client_id() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x10],        // CONNECT
        &[0x0D],        // remaining length 13
        &[0x00, 0x04],  // protocol name length
        b"MQTT",        // protocol name
        &[0x05],        // protocol level 5
        &[0b0000_0010], // connect flags: clean start
        &[0x00, 0x00],  // keep alive 0
        &[0x00],        // property length 0
        &[0x00, 0x00],  // client id: empty string
    ]);
    let connect = Connect {
        keep_alive: 0,
        ..Connect::new("")
    };
    assert_vector(V5, connect, &bytes);
}

fn v5_full_connect() -> (Connect, Vec<u8>) {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x10],        // CONNECT
        &[0x84, 0x01],  // remaining length 132 = 4 + 1 * 128 (two-byte variable byte integer)
        &[0x00, 0x04],  // protocol name length
        b"MQTT",        // protocol name
        &[0x05],        // protocol level 5
        &[0b1101_0110], // user name, password, will retain 0, will QoS 2 (10), will flag, clean start
        &[0x00, 0x1E],  // keep alive 30
        &[0x29],        // property length 41
        &[0x11, 0x00, 0x00, 0x0E, 0x10], // session expiry interval 3600
        &[0x21, 0x00, 0x14],             // receive maximum 20
        &[0x27, 0x00, 0x00, 0x04, 0x00], // maximum packet size 1024
        &[0x22, 0x00, 0x0A],             // topic alias maximum 10
        &[0x19, 0x01],                   // request response information 1
        &[0x17, 0x00],                   // request problem information 0
        &[0x26, 0x00, 0x01], b"k", &[0x00, 0x01], b"v", // user property k=v
        &[0x15, 0x00, 0x05], b"SCRAM",   // authentication method
        &[0x16, 0x00, 0x03, 0x01, 0x02, 0x03], // authentication data 01 02 03
        &[0x00, 0x08], b"client-1",      // client id
        &[0x2C],                         // will property length 44
        &[0x18, 0x00, 0x00, 0x00, 0x05], // will delay interval 5
        &[0x01, 0x01],                   // payload format indicator 1 (UTF-8)
        &[0x02, 0x00, 0x00, 0x00, 0x3C], // message expiry interval 60
        &[0x03, 0x00, 0x0A], b"text/plain", // content type
        &[0x08, 0x00, 0x04], b"resp",    // response topic
        &[0x09, 0x00, 0x02, 0xCA, 0xFE], // correlation data CA FE
        &[0x26, 0x00, 0x01], b"a", &[0x00, 0x01], b"b", // user property a=b
        &[0x00, 0x06], b"will/t",        // will topic
        &[0x00, 0x03], b"bye",           // will payload
        &[0x00, 0x04], b"user",          // user name
        &[0x00, 0x04], b"pass",          // password
    ]);
    let connect = Connect {
        clean_start: true,
        keep_alive: 30,
        client_id: s("client-1"),
        will: Some(Will {
            topic: s("will/t"),
            payload: b(b"bye"),
            qos: QoS::ExactlyOnce,
            retain: false,
            properties: WillProperties {
                will_delay_interval: Some(5),
                payload_format_indicator: Some(PayloadFormat::Utf8),
                message_expiry_interval: Some(60),
                content_type: Some(s("text/plain")),
                response_topic: Some(s("resp")),
                correlation_data: Some(b(&[0xCA, 0xFE])),
                user_properties: vec![user("a", "b")],
            },
        }),
        username: Some(s("user")),
        password: Some(b(b"pass")),
        properties: ConnectProperties {
            session_expiry_interval: Some(3600),
            receive_maximum: Some(20),
            maximum_packet_size: Some(1024),
            topic_alias_maximum: Some(10),
            request_response_information: Some(true),
            request_problem_information: Some(false),
            user_properties: vec![user("k", "v")],
            authentication_method: Some(s("SCRAM")),
            authentication_data: Some(b(&[1, 2, 3])),
        },
    };
    (connect, bytes)
}

#[test]
fn v5_connect_with_properties_will_username_and_password() {
    let (connect, bytes) = v5_full_connect();
    assert_vector(V5, connect, &bytes);
}

#[test]
fn properties_decode_in_any_order() {
    // MQTT 5.0 2.2.2.2: the order of properties is not significant (except among user
    // properties). The CONNECT properties of the full vector, reversed.
    let (connect, _) = v5_full_connect();
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x10, 0x84, 0x01],                    // CONNECT, remaining length 132
        &[0x00, 0x04], b"MQTT", &[0x05],        // protocol name, level 5
        &[0b1101_0110, 0x00, 0x1E],             // flags, keep alive 30
        &[0x29],                                // property length 41
        &[0x16, 0x00, 0x03, 0x01, 0x02, 0x03],  // authentication data
        &[0x15, 0x00, 0x05], b"SCRAM",          // authentication method
        &[0x26, 0x00, 0x01], b"k", &[0x00, 0x01], b"v", // user property
        &[0x17, 0x00],                          // request problem information
        &[0x19, 0x01],                          // request response information
        &[0x22, 0x00, 0x0A],                    // topic alias maximum
        &[0x27, 0x00, 0x00, 0x04, 0x00],        // maximum packet size
        &[0x21, 0x00, 0x14],                    // receive maximum
        &[0x11, 0x00, 0x00, 0x0E, 0x10],        // session expiry interval
        &[0x00, 0x08], b"client-1",             // client id
        &[0x2C],                                // will property length 44, reversed too
        &[0x26, 0x00, 0x01], b"a", &[0x00, 0x01], b"b",
        &[0x09, 0x00, 0x02, 0xCA, 0xFE],
        &[0x08, 0x00, 0x04], b"resp",
        &[0x03, 0x00, 0x0A], b"text/plain",
        &[0x02, 0x00, 0x00, 0x00, 0x3C],
        &[0x01, 0x01],
        &[0x18, 0x00, 0x00, 0x00, 0x05],
        &[0x00, 0x06], b"will/t",
        &[0x00, 0x03], b"bye",
        &[0x00, 0x04], b"user",
        &[0x00, 0x04], b"pass",
    ]);
    assert_decodes(V5, &bytes, &connect.into());
}

#[test]
fn v5_connect_password_without_username_is_allowed() {
    // MQTT 5.0 3.1.2.9 lifted the 3.1.1 rule [MQTT-3.1.2-22].
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x10],        // CONNECT
        &[0x12],        // remaining length 18
        &[0x00, 0x04], b"MQTT", // protocol name
        &[0x05],        // protocol level 5
        &[0b0100_0010], // password, clean start
        &[0x00, 0x3C],  // keep alive 60
        &[0x00],        // property length 0
        &[0x00, 0x01], b"c",  // client id
        &[0x00, 0x02], b"pw", // password
    ]);
    let connect = Connect {
        password: Some(b(b"pw")),
        ..Connect::new("c")
    };
    assert_vector(V5, connect, &bytes);
}

// ---- CONNACK ----------------------------------------------------------------------------

#[test]
fn v311_connack_session_present() {
    #[rustfmt::skip]
    let bytes = [
        0x20, // CONNACK
        0x02, // remaining length 2
        0x01, // acknowledge flags: session present
        0x00, // return code 0: connection accepted
    ];
    assert_vector(V311, ConnAck::new(true), &bytes);
}

#[test]
fn v311_connack_return_codes_map_to_reason_codes() {
    // MQTT 3.1.1 table 3.1, Connect Return code values.
    let table = [
        (0x00, ReasonCode::Success),
        (0x01, ReasonCode::UnsupportedProtocolVersion),
        (0x02, ReasonCode::ClientIdentifierNotValid),
        (0x03, ReasonCode::ServerUnavailable),
        (0x04, ReasonCode::BadUserNameOrPassword),
        (0x05, ReasonCode::NotAuthorized),
    ];
    for (return_code, reason_code) in table {
        #[rustfmt::skip]
        let bytes = [
            0x20,        // CONNACK
            0x02,        // remaining length 2
            0x00,        // acknowledge flags: no session ([MQTT-3.2.2-4] on refusals)
            return_code, // connect return code
        ];
        let connack = ConnAck {
            reason_code,
            ..ConnAck::new(false)
        };
        assert_vector(V311, connack, &bytes);
    }
}

#[test]
fn v5_connack_short() {
    #[rustfmt::skip]
    let bytes = [
        0x20, // CONNACK
        0x03, // remaining length 3
        0x01, // session present
        0x00, // reason code Success
        0x00, // property length 0
    ];
    assert_vector(V5, ConnAck::new(true), &bytes);
}

#[test]
fn v5_connack_refusal() {
    #[rustfmt::skip]
    let bytes = [
        0x20, // CONNACK
        0x03, // remaining length 3
        0x00, // session present 0 ([MQTT-3.2.2-6])
        0x87, // reason code Not authorized
        0x00, // property length 0
    ];
    let connack = ConnAck {
        reason_code: ReasonCode::NotAuthorized,
        ..ConnAck::new(false)
    };
    assert_vector(V5, connack, &bytes);
}

#[test]
fn v5_connack_with_every_property() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x20],                         // CONNACK
        &[0x4C],                         // remaining length 76 = 3 + 73
        &[0x00],                         // acknowledge flags
        &[0x00],                         // reason code Success
        &[0x49],                         // property length 73
        &[0x11, 0x00, 0x00, 0x00, 0x78], // session expiry interval 120
        &[0x21, 0x00, 0x64],             // receive maximum 100
        &[0x24, 0x01],                   // maximum QoS 1
        &[0x25, 0x00],                   // retain available 0
        &[0x27, 0x00, 0x01, 0x00, 0x00], // maximum packet size 65536
        &[0x12, 0x00, 0x06], b"auto-1",  // assigned client identifier
        &[0x22, 0x00, 0x05],             // topic alias maximum 5
        &[0x1F, 0x00, 0x02], b"ok",      // reason string
        &[0x26, 0x00, 0x01], b"x", &[0x00, 0x01], b"y", // user property x=y
        &[0x28, 0x01],                   // wildcard subscription available 1
        &[0x29, 0x00],                   // subscription identifiers available 0
        &[0x2A, 0x01],                   // shared subscription available 1
        &[0x13, 0x00, 0x2D],             // server keep alive 45
        &[0x1A, 0x00, 0x02], b"r/",      // response information
        &[0x1C, 0x00, 0x03], b"srv",     // server reference
        &[0x15, 0x00, 0x05], b"SCRAM",   // authentication method
        &[0x16, 0x00, 0x01, 0xAB],       // authentication data AB
    ]);
    let connack = ConnAck {
        session_present: false,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties {
            session_expiry_interval: Some(120),
            receive_maximum: Some(100),
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            maximum_packet_size: Some(65536),
            assigned_client_identifier: Some(s("auto-1")),
            topic_alias_maximum: Some(5),
            reason_string: Some(s("ok")),
            user_properties: vec![user("x", "y")],
            wildcard_subscription_available: Some(true),
            subscription_identifier_available: Some(false),
            shared_subscription_available: Some(true),
            server_keep_alive: Some(45),
            response_information: Some(s("r/")),
            server_reference: Some(s("srv")),
            authentication_method: Some(s("SCRAM")),
            authentication_data: Some(b(&[0xAB])),
        },
    };
    assert_vector(V5, connack, &bytes);
}

// ---- PUBLISH ----------------------------------------------------------------------------

#[test]
fn v311_publish_qos0() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x30],             // PUBLISH, DUP 0, QoS 0, RETAIN 0
        &[0x07],             // remaining length 7
        &[0x00, 0x03], b"a/b", // topic name
        b"hi",               // payload (no packet id at QoS 0)
    ]);
    assert_vector(V311, Publish::new("a/b", "hi"), &bytes);
}

#[test]
fn v311_publish_qos0_retain() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x31],             // PUBLISH, RETAIN
        &[0x07],             // remaining length 7
        &[0x00, 0x03], b"a/b", // topic name
        b"hi",               // payload
    ]);
    assert_vector(V311, Publish::new("a/b", "hi").with_retain(true), &bytes);
}

#[test]
fn v311_publish_qos1() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x32],             // PUBLISH, QoS 1 (bits 2-1 = 01)
        &[0x09],             // remaining length 9
        &[0x00, 0x03], b"a/b", // topic name
        &[0x00, 0x0A],       // packet identifier 10
        b"hi",               // payload
    ]);
    let publish = Publish::new("a/b", "hi").with_qos(QoS::AtLeastOnce, id(10));
    assert_vector(V311, publish, &bytes);
}

#[test]
fn v311_publish_qos1_dup() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x3A],             // PUBLISH, DUP (bit 3), QoS 1
        &[0x09],             // remaining length 9
        &[0x00, 0x03], b"a/b", // topic name
        &[0x00, 0x0A],       // packet identifier 10
        b"hi",               // payload
    ]);
    let mut publish = Publish::new("a/b", "hi").with_qos(QoS::AtLeastOnce, id(10));
    publish.dup = true;
    assert_vector(V311, publish, &bytes);
}

#[test]
fn v311_publish_qos2_retain() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x35],             // PUBLISH, QoS 2 (bits 2-1 = 10), RETAIN
        &[0x09],             // remaining length 9
        &[0x00, 0x03], b"a/b", // topic name
        &[0x12, 0x34],       // packet identifier 0x1234
        b"hi",               // payload
    ]);
    let publish = Publish::new("a/b", "hi")
        .with_qos(QoS::ExactlyOnce, id(0x1234))
        .with_retain(true);
    assert_vector(V311, publish, &bytes);
}

#[test]
fn v311_publish_qos2_dup_retain_empty_payload() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x3D],             // PUBLISH, DUP, QoS 2, RETAIN
        &[0x07],             // remaining length 7
        &[0x00, 0x03], b"a/b", // topic name
        &[0x12, 0x34],       // packet identifier; the payload is empty
    ]);
    let mut publish = Publish::new("a/b", "")
        .with_qos(QoS::ExactlyOnce, id(0x1234))
        .with_retain(true);
    publish.dup = true;
    assert_vector(V311, publish, &bytes);
}

#[test]
fn v5_publish_qos0_retain() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x31],             // PUBLISH, RETAIN
        &[0x08],             // remaining length 8
        &[0x00, 0x03], b"a/b", // topic name
        &[0x00],             // property length 0
        b"hi",               // payload
    ]);
    assert_vector(V5, Publish::new("a/b", "hi").with_retain(true), &bytes);
}

#[test]
fn v5_publish_qos1_dup_retain() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x3B],           // PUBLISH, DUP, QoS 1, RETAIN
        &[0x07],           // remaining length 7
        &[0x00, 0x01], b"a", // topic name
        &[0x00, 0x05],     // packet identifier 5
        &[0x00],           // property length 0
        b"z",              // payload
    ]);
    let mut publish = Publish::new("a", "z")
        .with_qos(QoS::AtLeastOnce, id(5))
        .with_retain(true);
    publish.dup = true;
    assert_vector(V5, publish, &bytes);
}

#[test]
fn v5_publish_qos2_dup_empty_payload() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x3C],           // PUBLISH, DUP, QoS 2
        &[0x06],           // remaining length 6
        &[0x00, 0x01], b"a", // topic name
        &[0x01, 0x02],     // packet identifier 258
        &[0x00],           // property length 0; empty payload
    ]);
    let mut publish = Publish::new("a", "").with_qos(QoS::ExactlyOnce, id(258));
    publish.dup = true;
    assert_vector(V5, publish, &bytes);
}

#[test]
fn v5_publish_with_every_property() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x33],                         // PUBLISH, QoS 1, RETAIN
        &[0x49],                         // remaining length 73 = 5 + 2 + 1 + 61 + 4
        &[0x00, 0x03], b"t/1",           // topic name
        &[0x00, 0x07],                   // packet identifier 7
        &[0x3D],                         // property length 61
        &[0x01, 0x01],                   // payload format indicator: UTF-8
        &[0x02, 0x00, 0x00, 0x01, 0x2C], // message expiry interval 300
        &[0x23, 0x00, 0x03],             // topic alias 3
        &[0x08, 0x00, 0x05], b"reply",   // response topic
        &[0x09, 0x00, 0x02, 0x01, 0x02], // correlation data 01 02
        &[0x26, 0x00, 0x01], b"a", &[0x00, 0x01], b"1", // user property a=1
        &[0x26, 0x00, 0x01], b"a", &[0x00, 0x01], b"2", // user property a=2 (same name, kept in order)
        &[0x0B, 0x01],                   // subscription identifier 1
        &[0x0B, 0x80, 0x01],             // subscription identifier 128 (two-byte variable byte integer)
        &[0x03, 0x00, 0x10], b"application/json", // content type
        b"data",                         // payload
    ]);
    let publish = Publish {
        properties: PublishProperties {
            payload_format_indicator: Some(PayloadFormat::Utf8),
            message_expiry_interval: Some(300),
            topic_alias: Some(3),
            response_topic: Some(s("reply")),
            correlation_data: Some(b(&[1, 2])),
            user_properties: vec![user("a", "1"), user("a", "2")],
            subscription_identifiers: vec![
                SubscriptionId::new(1).unwrap(),
                SubscriptionId::new(128).unwrap(),
            ],
            content_type: Some(s("application/json")),
        }
        .into(),
        ..Publish::new("t/1", "data")
            .with_qos(QoS::AtLeastOnce, id(7))
            .with_retain(true)
    };
    assert_vector(V5, publish, &bytes);
}

#[test]
fn v5_publish_with_topic_alias_and_empty_topic() {
    // MQTT 5.0 3.3.2.3.4: a zero-length topic name stands for the topic of the alias.
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x30],             // PUBLISH, QoS 0
        &[0x07],             // remaining length 7
        &[0x00, 0x00],       // topic name: empty
        &[0x03],             // property length 3
        &[0x23, 0x00, 0x04], // topic alias 4
        b"x",                // payload
    ]);
    let publish = Publish {
        properties: PublishProperties {
            topic_alias: Some(4),
            ..PublishProperties::default()
        }
        .into(),
        ..Publish::new("", "x")
    };
    assert_vector(V5, publish, &bytes);
}

// ---- remaining length encodings ----------------------------------------------------------

/// A QoS 0 PUBLISH to "a" whose remaining length is `remaining`, with the header written out
/// by hand as `header`.
#[track_caller]
fn assert_publish_with_remaining_length(
    version: ProtocolVersion,
    remaining: usize,
    header: &[u8],
    check_incrementally: bool,
) {
    // Topic "a" takes 3 bytes; MQTT 5 adds a property length byte.
    let overhead = if version == V5 { 4 } else { 3 };
    let payload = vec![0x5A; remaining - overhead];
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(&[0x00, 0x01, b'a']);
    if version == V5 {
        bytes.push(0x00);
    }
    bytes.extend_from_slice(&payload);
    assert_eq!(bytes.len(), header.len() + remaining);

    let packet: Packet = Publish::new("a", payload).into();
    assert_encodes(version, &packet, &bytes);
    assert_decodes(version, &bytes, &packet);
    if check_incrementally {
        assert_decodes_incrementally(version, &bytes, &packet);
    }
}

#[test]
fn remaining_length_over_127_takes_two_bytes() {
    // 203 = 75 + 1 * 128: 0xCB (75 | continuation), 0x01.
    assert_publish_with_remaining_length(V311, 203, &[0x30, 0xCB, 0x01], true);
    // 204 = 76 + 1 * 128.
    assert_publish_with_remaining_length(V5, 204, &[0x30, 0xCC, 0x01], true);
}

#[test]
fn remaining_length_over_16383_takes_three_bytes() {
    // 20003 = 35 + 28 * 128 + 1 * 16384: 0xA3, 0x9C, 0x01.
    assert_publish_with_remaining_length(V311, 20_003, &[0x30, 0xA3, 0x9C, 0x01], true);
    // 20004 = 36 + 28 * 128 + 1 * 16384.
    assert_publish_with_remaining_length(V5, 20_004, &[0x30, 0xA4, 0x9C, 0x01], true);
}

#[test]
fn remaining_length_boundaries() {
    // MQTT 5.0 1.5.5 / MQTT 3.1.1 table 2.4: the first and last value of each length.
    let table: [(usize, &[u8]); 6] = [
        (127, &[0x30, 0x7F]),
        (128, &[0x30, 0x80, 0x01]),
        (16_383, &[0x30, 0xFF, 0x7F]),
        (16_384, &[0x30, 0x80, 0x80, 0x01]),
        (2_097_151, &[0x30, 0xFF, 0xFF, 0x7F]),
        (2_097_152, &[0x30, 0x80, 0x80, 0x80, 0x01]),
    ];
    for (remaining, header) in table {
        let small = remaining < 100_000;
        assert_publish_with_remaining_length(V311, remaining, header, small);
        assert_publish_with_remaining_length(V5, remaining, header, small);
    }
}

// ---- PUBACK, PUBREC, PUBREL, PUBCOMP ----------------------------------------------------

#[test]
fn v311_puback() {
    // Fixed header 0x40, remaining length 2, packet identifier 10.
    assert_vector(V311, PubAck::new(id(10)), &[0x40, 0x02, 0x00, 0x0A]);
}

#[test]
fn v311_pubrec() {
    assert_vector(V311, PubRec::new(id(10)), &[0x50, 0x02, 0x00, 0x0A]);
}

#[test]
fn v311_pubrel() {
    // PUBREL flags are 0b0010 ([MQTT-3.6.1-1]).
    assert_vector(V311, PubRel::new(id(10)), &[0x62, 0x02, 0x00, 0x0A]);
}

#[test]
fn v311_pubcomp() {
    assert_vector(V311, PubComp::new(id(10)), &[0x70, 0x02, 0x00, 0x0A]);
}

#[test]
fn v5_acks_with_remaining_length_2_are_success() {
    // MQTT 5.0 3.4.2.1: remaining length 2 means reason code 0x00 and no properties.
    assert_vector(V5, PubAck::new(id(7)), &[0x40, 0x02, 0x00, 0x07]);
    assert_vector(V5, PubRec::new(id(7)), &[0x50, 0x02, 0x00, 0x07]);
    assert_vector(V5, PubRel::new(id(7)), &[0x62, 0x02, 0x00, 0x07]);
    assert_vector(V5, PubComp::new(id(7)), &[0x70, 0x02, 0x00, 0x07]);
}

#[test]
fn v5_acks_with_remaining_length_3_carry_only_a_reason_code() {
    // MQTT 5.0 3.4.2.2.1: remaining length 3 means no properties.
    let puback = PubAck {
        reason_code: ReasonCode::NoMatchingSubscribers,
        ..PubAck::new(id(7))
    };
    assert_vector(V5, puback, &[0x40, 0x03, 0x00, 0x07, 0x10]);
    let pubrec = PubRec {
        reason_code: ReasonCode::PacketIdentifierInUse,
        ..PubRec::new(id(7))
    };
    assert_vector(V5, pubrec, &[0x50, 0x03, 0x00, 0x07, 0x91]);
    let pubrel = PubRel {
        reason_code: ReasonCode::PacketIdentifierNotFound,
        ..PubRel::new(id(7))
    };
    assert_vector(V5, pubrel, &[0x62, 0x03, 0x00, 0x07, 0x92]);
    let pubcomp = PubComp {
        reason_code: ReasonCode::PacketIdentifierNotFound,
        ..PubComp::new(id(7))
    };
    assert_vector(V5, pubcomp, &[0x70, 0x03, 0x00, 0x07, 0x92]);
}

fn reason_string(value: &'static str) -> AckProperties {
    AckProperties {
        reason_string: Some(s(value)),
        ..AckProperties::default()
    }
}

#[test]
fn v5_puback_with_reason_string() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x40],             // PUBACK
        &[0x0B],             // remaining length 11
        &[0x00, 0x07],       // packet identifier 7
        &[0x87],             // reason code Not authorized
        &[0x07],             // property length 7
        &[0x1F, 0x00, 0x04], b"nope", // reason string
    ]);
    let puback = PubAck {
        packet_id: id(7),
        reason_code: ReasonCode::NotAuthorized,
        properties: reason_string("nope"),
    };
    assert_vector(V5, puback, &bytes);
}

#[test]
fn v5_pubrec_with_reason_string() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x50],             // PUBREC
        &[0x0B],             // remaining length 11
        &[0x00, 0x07],       // packet identifier 7
        &[0x97],             // reason code Quota exceeded
        &[0x07],             // property length 7
        &[0x1F, 0x00, 0x04], b"full", // reason string
    ]);
    let pubrec = PubRec {
        packet_id: id(7),
        reason_code: ReasonCode::QuotaExceeded,
        properties: reason_string("full"),
    };
    assert_vector(V5, pubrec, &bytes);
}

#[test]
fn v5_pubrel_with_reason_string() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x62],             // PUBREL, flags 0b0010
        &[0x0B],             // remaining length 11
        &[0x00, 0x07],       // packet identifier 7
        &[0x92],             // reason code Packet Identifier not found
        &[0x07],             // property length 7
        &[0x1F, 0x00, 0x04], b"gone", // reason string
    ]);
    let pubrel = PubRel {
        packet_id: id(7),
        reason_code: ReasonCode::PacketIdentifierNotFound,
        properties: reason_string("gone"),
    };
    assert_vector(V5, pubrel, &bytes);
}

#[test]
fn v5_pubcomp_success_with_user_property() {
    // Success with properties needs the full form: the reason code cannot be omitted.
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x70],             // PUBCOMP
        &[0x0B],             // remaining length 11
        &[0x00, 0x07],       // packet identifier 7
        &[0x00],             // reason code Success
        &[0x07],             // property length 7
        &[0x26, 0x00, 0x01], b"k", &[0x00, 0x01], b"v", // user property k=v
    ]);
    let pubcomp = PubComp {
        packet_id: id(7),
        reason_code: ReasonCode::Success,
        properties: AckProperties {
            user_properties: vec![user("k", "v")],
            ..AckProperties::default()
        },
    };
    assert_vector(V5, pubcomp, &bytes);
}

#[test]
fn v5_acks_accept_the_long_forms_of_success() {
    // MQTT 5.0 3.4.2.1/3.4.2.2.1: a sender may include reason code 0x00 and property length 0.
    let expected: Packet = PubAck::new(id(7)).into();
    assert_decodes(V5, &[0x40, 0x03, 0x00, 0x07, 0x00], &expected);
    assert_decodes(V5, &[0x40, 0x04, 0x00, 0x07, 0x00, 0x00], &expected);
    let expected: Packet = PubRel::new(id(7)).into();
    assert_decodes(V5, &[0x62, 0x04, 0x00, 0x07, 0x00, 0x00], &expected);
}

// ---- SUBSCRIBE, SUBACK ------------------------------------------------------------------

#[test]
fn v311_subscribe() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x82],             // SUBSCRIBE, flags 0b0010 ([MQTT-3.8.1-1])
        &[0x12],             // remaining length 18 = 2 + 6 + 6 + 4
        &[0x00, 0x01],       // packet identifier 1
        &[0x00, 0x03], b"a/+", &[0x01], // filter a/+, requested QoS 1
        &[0x00, 0x03], b"b/#", &[0x02], // filter b/#, requested QoS 2
        &[0x00, 0x01], b"c", &[0x00],   // filter c, requested QoS 0
    ]);
    let subscribe = Subscribe::new(
        id(1),
        vec![
            SubscribeFilter::new("a/+", QoS::AtLeastOnce),
            SubscribeFilter::new("b/#", QoS::ExactlyOnce),
            SubscribeFilter::new("c", QoS::AtMostOnce),
        ],
    );
    assert_vector(V311, subscribe, &bytes);
}

#[test]
fn v5_subscribe_with_options_and_subscription_identifier() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x82],             // SUBSCRIBE, flags 0b0010
        &[0x24],             // remaining length 36 = 2 + 1 + 10 + 6 + 13 + 4
        &[0x00, 0x0A],       // packet identifier 10
        &[0x0A],             // property length 10
        &[0x0B, 0xC8, 0x01], // subscription identifier 200 = 72 + 1 * 128 (0xC8 = 72 | 0x80)
        &[0x26, 0x00, 0x01], b"k", &[0x00, 0x01], b"v", // user property k=v
        &[0x00, 0x03], b"a/+",
        // options 0b0010_1101: retain handling 2 (bits 5-4), retain as published (bit 3),
        // no local (bit 2), QoS 1 (bits 1-0)
        &[0b0010_1101],
        &[0x00, 0x0A], b"$share/g/x",
        &[0b0001_0010],      // retain handling 1, QoS 2
        &[0x00, 0x01], b"#",
        &[0x00],             // all options 0
    ]);
    let subscribe = Subscribe {
        packet_id: id(10),
        filters: vec![
            SubscribeFilter {
                filter: s("a/+"),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
            },
            SubscribeFilter {
                filter: s("$share/g/x"),
                options: SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: RetainHandling::SendAtSubscribeIfNew,
                },
            },
            SubscribeFilter::new("#", QoS::AtMostOnce),
        ],
        properties: SubscribeProperties {
            subscription_identifier: Some(SubscriptionId::new(200).unwrap()),
            user_properties: vec![user("k", "v")],
        },
    };
    assert_vector(V5, subscribe, &bytes);
}

#[test]
fn v311_suback_return_codes_map_to_reason_codes() {
    // MQTT 3.1.1 3.9.3: 0x00, 0x01, 0x02 success with maximum QoS, 0x80 failure.
    #[rustfmt::skip]
    let bytes = [
        0x90, // SUBACK
        0x06, // remaining length 6
        0x00, 0x01, // packet identifier 1
        0x01, // success, maximum QoS 1
        0x02, // success, maximum QoS 2
        0x00, // success, maximum QoS 0
        0x80, // failure
    ];
    let suback = SubAck {
        packet_id: id(1),
        reason_codes: vec![
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::GRANTED_QOS_0,
            ReasonCode::UnspecifiedError,
        ],
        properties: AckProperties::default(),
    };
    assert_vector(V311, suback, &bytes);
}

#[test]
fn v5_suback_with_reason_string_and_several_codes() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0x90],             // SUBACK
        &[0x10],             // remaining length 16 = 2 + 1 + 5 + 8
        &[0x00, 0x0A],       // packet identifier 10
        &[0x05],             // property length 5
        &[0x1F, 0x00, 0x02], b"ok", // reason string
        &[0x01, 0x02, 0x00], // granted QoS 1, 2, 0
        &[0x87],             // not authorized
        &[0x8F],             // topic filter invalid
        &[0x9E],             // shared subscriptions not supported
        &[0xA1],             // subscription identifiers not supported
        &[0xA2],             // wildcard subscriptions not supported
    ]);
    let suback = SubAck {
        packet_id: id(10),
        reason_codes: vec![
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::GRANTED_QOS_0,
            ReasonCode::NotAuthorized,
            ReasonCode::TopicFilterInvalid,
            ReasonCode::SharedSubscriptionsNotSupported,
            ReasonCode::SubscriptionIdentifiersNotSupported,
            ReasonCode::WildcardSubscriptionsNotSupported,
        ],
        properties: reason_string("ok"),
    };
    assert_vector(V5, suback, &bytes);
}

// ---- UNSUBSCRIBE, UNSUBACK --------------------------------------------------------------

#[test]
fn v311_unsubscribe() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0xA2],             // UNSUBSCRIBE, flags 0b0010 ([MQTT-3.10.1-1])
        &[0x0A],             // remaining length 10 = 2 + 5 + 3
        &[0x00, 0x02],       // packet identifier 2
        &[0x00, 0x03], b"a/+", // filter
        &[0x00, 0x01], b"c", // filter
    ]);
    assert_vector(
        V311,
        Unsubscribe::new(id(2), vec![s("a/+"), s("c")]),
        &bytes,
    );
}

#[test]
fn v5_unsubscribe_with_user_property() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0xA2],             // UNSUBSCRIBE
        &[0x1B],             // remaining length 27 = 2 + 1 + 7 + 5 + 12
        &[0x00, 0x0B],       // packet identifier 11
        &[0x07],             // property length 7
        &[0x26, 0x00, 0x01], b"k", &[0x00, 0x01], b"v", // user property k=v
        &[0x00, 0x03], b"a/+", // filter
        &[0x00, 0x0A], b"$share/g/x", // shared subscription filter
    ]);
    let unsubscribe = Unsubscribe {
        packet_id: id(11),
        filters: vec![s("a/+"), s("$share/g/x")],
        properties: UnsubscribeProperties {
            user_properties: vec![user("k", "v")],
        },
    };
    assert_vector(V5, unsubscribe, &bytes);
}

#[test]
fn v311_unsuback() {
    // MQTT 3.1.1 3.11: only the packet identifier, no payload.
    let unsuback = UnsubAck {
        packet_id: id(2),
        reason_codes: vec![],
        properties: AckProperties::default(),
    };
    assert_vector(V311, unsuback, &[0xB0, 0x02, 0x00, 0x02]);
}

#[test]
fn v5_unsuback_with_several_codes() {
    #[rustfmt::skip]
    let bytes = [
        0xB0, // UNSUBACK
        0x0A, // remaining length 10 = 2 + 1 + 7
        0x00, 0x0B, // packet identifier 11
        0x00, // property length 0
        0x00, // success
        0x11, // no subscription existed
        0x80, // unspecified error
        0x83, // implementation specific error
        0x87, // not authorized
        0x8F, // topic filter invalid
        0x91, // packet identifier in use
    ];
    let unsuback = UnsubAck {
        packet_id: id(11),
        reason_codes: vec![
            ReasonCode::Success,
            ReasonCode::NoSubscriptionExisted,
            ReasonCode::UnspecifiedError,
            ReasonCode::ImplementationSpecificError,
            ReasonCode::NotAuthorized,
            ReasonCode::TopicFilterInvalid,
            ReasonCode::PacketIdentifierInUse,
        ],
        properties: AckProperties::default(),
    };
    assert_vector(V5, unsuback, &bytes);
}

#[test]
fn v5_unsuback_with_reason_string() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0xB0],             // UNSUBACK
        &[0x08],             // remaining length 8 = 2 + 1 + 4 + 1
        &[0x00, 0x0B],       // packet identifier 11
        &[0x04],             // property length 4
        &[0x1F, 0x00, 0x01], b"x", // reason string
        &[0x11],             // no subscription existed
    ]);
    let unsuback = UnsubAck {
        packet_id: id(11),
        reason_codes: vec![ReasonCode::NoSubscriptionExisted],
        properties: reason_string("x"),
    };
    assert_vector(V5, unsuback, &bytes);
}

// ---- PINGREQ, PINGRESP ------------------------------------------------------------------

#[test]
fn pingreq() {
    // Fixed header 0xC0, remaining length 0, in both versions.
    assert_vector_both(PingReq, &[0xC0, 0x00]);
}

#[test]
fn pingresp() {
    assert_vector_both(PingResp, &[0xD0, 0x00]);
}

// ---- DISCONNECT -------------------------------------------------------------------------

#[test]
fn v311_disconnect() {
    assert_vector(V311, Disconnect::default(), &[0xE0, 0x00]);
}

#[test]
fn v5_disconnect_with_remaining_length_0_is_normal_disconnection() {
    // MQTT 5.0 3.14.2.1: remaining length 0 means reason code 0x00, no properties.
    let disconnect = Disconnect::new(ReasonCode::NORMAL_DISCONNECTION);
    assert_vector(V5, disconnect, &[0xE0, 0x00]);
}

#[test]
fn v5_disconnect_with_reason_code_only() {
    assert_vector(
        V5,
        Disconnect::new(ReasonCode::DisconnectWithWillMessage),
        &[
            0xE0, // DISCONNECT
            0x01, // remaining length 1: reason code, no property length
            0x04, // disconnect with will message
        ],
    );
}

#[test]
fn v5_disconnect_with_reason_and_properties() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0xE0],             // DISCONNECT
        &[0x1D],             // remaining length 29 = 1 + 1 + 27
        &[0x9C],             // reason code Use another server
        &[0x1B],             // property length 27
        &[0x1F, 0x00, 0x04], b"move", // reason string
        &[0x26, 0x00, 0x01], b"k", &[0x00, 0x01], b"v", // user property k=v
        &[0x1C, 0x00, 0x0A], b"other:1883", // server reference
    ]);
    let disconnect = Disconnect {
        reason_code: ReasonCode::UseAnotherServer,
        properties: DisconnectProperties {
            session_expiry_interval: None,
            reason_string: Some(s("move")),
            user_properties: vec![user("k", "v")],
            server_reference: Some(s("other:1883")),
        },
    };
    assert_vector(V5, disconnect, &bytes);
}

#[test]
fn v5_disconnect_success_with_session_expiry() {
    #[rustfmt::skip]
    let bytes = [
        0xE0, // DISCONNECT
        0x07, // remaining length 7
        0x00, // normal disconnection
        0x05, // property length 5
        0x11, 0x00, 0x00, 0x00, 0x00, // session expiry interval 0
    ];
    let disconnect = Disconnect {
        reason_code: ReasonCode::NORMAL_DISCONNECTION,
        properties: DisconnectProperties {
            session_expiry_interval: Some(0),
            ..DisconnectProperties::default()
        },
    };
    assert_vector(V5, disconnect, &bytes);
}

#[test]
fn v5_disconnect_accepts_the_long_forms_of_normal_disconnection() {
    let expected: Packet = Disconnect::default().into();
    assert_decodes(V5, &[0xE0, 0x01, 0x00], &expected);
    assert_decodes(V5, &[0xE0, 0x02, 0x00, 0x00], &expected);
}

// ---- AUTH -------------------------------------------------------------------------------

#[test]
fn v5_auth_with_remaining_length_0_is_success() {
    // MQTT 5.0 3.15.2.1.
    assert_vector(V5, Auth::default(), &[0xF0, 0x00]);
}

#[test]
fn v5_auth_with_method_data_and_reason_string() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0xF0],             // AUTH
        &[0x18],             // remaining length 24 = 1 + 1 + 22
        &[0x18],             // reason code Continue authentication
        &[0x16],             // property length 22
        &[0x15, 0x00, 0x05], b"SCRAM", // authentication method
        &[0x16, 0x00, 0x04, 0x01, 0x02, 0x03, 0x04], // authentication data
        &[0x1F, 0x00, 0x04], b"step", // reason string
    ]);
    let auth = Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: AuthProperties {
            authentication_method: Some(s("SCRAM")),
            authentication_data: Some(b(&[1, 2, 3, 4])),
            reason_string: Some(s("step")),
            user_properties: vec![],
        },
    };
    assert_vector(V5, auth, &bytes);
}

#[test]
fn v5_auth_reauthenticate_with_method() {
    #[rustfmt::skip]
    let bytes = cat(&[
        &[0xF0],             // AUTH
        &[0x0A],             // remaining length 10
        &[0x19],             // reason code Re-authenticate
        &[0x08],             // property length 8
        &[0x15, 0x00, 0x05], b"SCRAM", // authentication method
    ]);
    let auth = Auth {
        reason_code: ReasonCode::ReAuthenticate,
        properties: AuthProperties {
            authentication_method: Some(s("SCRAM")),
            ..AuthProperties::default()
        },
    };
    assert_vector(V5, auth, &bytes);
}

// ---- streams ----------------------------------------------------------------------------

#[test]
fn back_to_back_packets_decode_one_per_call() {
    let publish: Packet = Publish::new("a/b", "hi").into();
    let pingreq: Packet = PingReq.into();
    let puback: Packet = PubAck::new(id(10)).into();
    for version in [V311, V5] {
        let first: &[u8] = if version == V5 {
            &[0x30, 0x08, 0x00, 0x03, b'a', b'/', b'b', 0x00, b'h', b'i']
        } else {
            &[0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i']
        };
        let second: &[u8] = &[0xC0, 0x00];
        let third: &[u8] = &[0x40, 0x02, 0x00, 0x0A];
        let mut input = BytesMut::from(&cat(&[first, second, third])[..]);

        let decoded = decode(&mut input, version, MAX_PACKET_SIZE).unwrap();
        assert_eq!(decoded.as_ref(), Some(&publish));
        assert_eq!(&input[..], &cat(&[second, third])[..]);

        let decoded = decode(&mut input, version, MAX_PACKET_SIZE).unwrap();
        assert_eq!(decoded.as_ref(), Some(&pingreq));
        assert_eq!(&input[..], third);

        let decoded = decode(&mut input, version, MAX_PACKET_SIZE).unwrap();
        assert_eq!(decoded.as_ref(), Some(&puback));
        assert!(input.is_empty());

        assert_eq!(decode(&mut input, version, MAX_PACKET_SIZE), Ok(None));
    }
}

#[test]
fn a_partial_second_packet_waits_for_more_bytes() {
    // A whole PINGRESP followed by the first three bytes of a PUBACK.
    let mut input = BytesMut::from(&[0xD0, 0x00, 0x40, 0x02, 0x00][..]);
    let decoded = decode(&mut input, V311, MAX_PACKET_SIZE).unwrap();
    assert_eq!(decoded, Some(Packet::PingResp(PingResp)));
    assert_eq!(decode(&mut input, V311, MAX_PACKET_SIZE), Ok(None));
    assert_eq!(&input[..], &[0x40, 0x02, 0x00]);
    input.extend_from_slice(&[0x0A]);
    let decoded = decode(&mut input, V311, MAX_PACKET_SIZE).unwrap();
    assert_eq!(decoded, Some(Packet::PubAck(PubAck::new(id(10)))));
    assert!(input.is_empty());
}

#[test]
fn a_packet_of_exactly_the_maximum_size_is_accepted() {
    // PUBACK is 4 bytes: 2 of fixed header, 2 of remaining length.
    let mut input = BytesMut::from(&[0x40, 0x02, 0x00, 0x0A][..]);
    let decoded = decode(&mut input, V311, 4).unwrap();
    assert_eq!(decoded, Some(Packet::PubAck(PubAck::new(id(10)))));
}
