//! Property tests of the codec on random valid packets of every type, for MQTT 3.1.1 and 5.0:
//! encode/decode round trips, streaming several packets, arbitrary input bytes, the maximum
//! packet size, and packets split at every offset.
//!
//! MQTT 3.1.1 packets are drawn with empty property structs and only what 3.1.1 can express;
//! MQTT 5.0 packets draw every property field and every reason code the packet allows.
#![allow(clippy::unwrap_used)]

use proptest::option::of as maybe;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use sansmqtt_proto::properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PayloadFormat, PublishProperties, SubscribeProperties, SubscriptionId, UnsubscribeProperties,
    UserProperty, WillProperties,
};
use sansmqtt_proto::{
    Auth, ByteString, Bytes, BytesMut, ConnAck, Connect, DecodeError, Disconnect, Encode,
    MAX_PACKET_SIZE, Packet, PacketId, PacketType, PingReq, PingResp, ProtocolVersion, PubAck,
    PubComp, PubRec, PubRel, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe, Will, decode,
};

const CASES: u32 = 1024;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(CASES)
}

// ---- primitive values -------------------------------------------------------------------

/// Any character but U+0000, weighted towards ASCII but with plenty of 2-, 3- and 4-byte UTF-8.
fn text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => prop::char::range(' ', '~'),
        2 => select(vec!['é', 'ß', 'Ω', 'ж', '中', '文', '€', '\u{FEFF}', '😀', '𝄞', '\u{10FFFF}']),
        2 => any::<char>().prop_filter("U+0000 is forbidden", |c| *c != '\0'),
    ]
}

/// A UTF-8 string without U+0000, up to `max` characters.
fn text(max: usize) -> impl Strategy<Value = ByteString> {
    prop::collection::vec(text_char(), 0..=max)
        .prop_map(|chars| ByteString::from(chars.into_iter().collect::<String>()))
}

fn binary(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

fn payload() -> impl Strategy<Value = Bytes> {
    binary(2047)
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|id| PacketId::new(id).unwrap())
}

fn qos() -> impl Strategy<Value = QoS> {
    select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

/// Every MQTT 5 reason code the packet may carry.
fn reason_for(packet: PacketType) -> impl Strategy<Value = ReasonCode> {
    let codes: Vec<ReasonCode> = (0..=u8::MAX)
        .filter_map(ReasonCode::from_u8)
        .filter(|code| code.is_valid_for(packet))
        .collect();
    assert!(!codes.is_empty(), "{packet} has reason codes");
    select(codes)
}

// ---- topics -----------------------------------------------------------------------------

/// One literal topic level: may be empty, start with `$`, or hold non-ASCII characters, but
/// holds no `/`, `+` or `#`.
fn literal_level() -> impl Strategy<Value = String> {
    let level_char = text_char().prop_filter("no separators or wildcards", |c| {
        !matches!(c, '/' | '+' | '#')
    });
    prop_oneof![
        2 => Just(String::new()),
        3 => select(vec!["a", "b", "sensors", "$SYS", "temp", "ü", "日本"]).prop_map(String::from),
        3 => prop::collection::vec(level_char, 1..8).prop_map(|c| c.into_iter().collect()),
    ]
}

/// A valid topic name: non-empty, no wildcards.
fn topic_name() -> impl Strategy<Value = ByteString> {
    prop::collection::vec(literal_level(), 1..6)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("topic names are non-empty", |name| !name.is_empty())
        .prop_map(ByteString::from)
}

/// The levels of a valid non-shared filter: literals and `+`, maybe a trailing `#`.
fn plain_filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![3 => literal_level(), 1 => Just(String::from("+"))];
    (prop::collection::vec(level, 0..5), any::<bool>())
        .prop_map(|(mut levels, multi)| {
            if multi {
                levels.push(String::from("#"));
            }
            levels.join("/")
        })
        .prop_filter("topic filters are non-empty", |filter| !filter.is_empty())
}

/// A valid topic filter, sometimes a shared subscription `$share/{group}/{filter}`.
fn topic_filter() -> impl Strategy<Value = ByteString> {
    let group = literal_level().prop_filter("share names are non-empty", |g| !g.is_empty());
    prop_oneof![
        4 => plain_filter(),
        1 => (group, plain_filter()).prop_map(|(group, inner)| format!("$share/{group}/{inner}")),
    ]
    .prop_map(ByteString::from)
}

fn is_shared(filter: &str) -> bool {
    sansmqtt_proto::topic::parse_shared(filter)
        .unwrap()
        .is_some()
}

// ---- MQTT 5 properties ------------------------------------------------------------------

fn user_properties() -> impl Strategy<Value = Vec<UserProperty>> {
    prop::collection::vec(
        (text(12), text(12)).prop_map(|(name, value)| UserProperty { name, value }),
        0..4,
    )
}

fn short_text() -> impl Strategy<Value = Option<ByteString>> {
    maybe(text(24))
}

fn short_binary() -> impl Strategy<Value = Option<Bytes>> {
    maybe(binary(32))
}

fn nonzero_u16() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

fn nonzero_u32() -> impl Strategy<Value = u32> {
    1..=u32::MAX
}

fn payload_format() -> impl Strategy<Value = PayloadFormat> {
    select(vec![PayloadFormat::Unspecified, PayloadFormat::Utf8])
}

fn subscription_id() -> impl Strategy<Value = SubscriptionId> {
    prop_oneof![1..=300_u32, 1..=268_435_455_u32].prop_map(|id| SubscriptionId::new(id).unwrap())
}

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        maybe(any::<u32>()),
        maybe(nonzero_u16()),
        maybe(nonzero_u32()),
        maybe(any::<u16>()),
        maybe(any::<bool>()),
        maybe(any::<bool>()),
        user_properties(),
        short_text(),
        short_binary(),
    )
        .prop_map(
            |(sei, rm, mps, tam, rri, rpi, user_properties, method, data)| ConnectProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_packet_size: mps,
                topic_alias_maximum: tam,
                request_response_information: rri,
                request_problem_information: rpi,
                user_properties,
                // MQTT 5.0: authentication data only with a method.
                authentication_data: data.filter(|_| method.is_some()),
                authentication_method: method,
            },
        )
}

fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        maybe(any::<u32>()),
        maybe(payload_format()),
        maybe(any::<u32>()),
        short_text(),
        maybe(topic_name()),
        short_binary(),
        user_properties(),
    )
        .prop_map(
            |(delay, format, expiry, content_type, response_topic, correlation, user)| {
                WillProperties {
                    will_delay_interval: delay,
                    payload_format_indicator: format,
                    message_expiry_interval: expiry,
                    content_type,
                    response_topic,
                    correlation_data: correlation,
                    user_properties: user,
                }
            },
        )
}

fn connack_properties() -> impl Strategy<Value = ConnAckProperties> {
    let first = (
        maybe(any::<u32>()),
        maybe(nonzero_u16()),
        maybe(select(vec![QoS::AtMostOnce, QoS::AtLeastOnce])),
        maybe(any::<bool>()),
        maybe(nonzero_u32()),
        short_text(),
        maybe(any::<u16>()),
        short_text(),
        user_properties(),
    );
    let second = (
        maybe(any::<bool>()),
        maybe(any::<bool>()),
        maybe(any::<bool>()),
        maybe(any::<u16>()),
        short_text(),
        short_text(),
        short_text(),
        short_binary(),
    );
    (first, second).prop_map(
        |(
            (sei, rm, max_qos, retain, mps, assigned, tam, reason, user),
            (wildcard, sub_ids, shared, keep_alive, info, reference, method, data),
        )| ConnAckProperties {
            session_expiry_interval: sei,
            receive_maximum: rm,
            maximum_qos: max_qos,
            retain_available: retain,
            maximum_packet_size: mps,
            assigned_client_identifier: assigned,
            topic_alias_maximum: tam,
            reason_string: reason,
            user_properties: user,
            wildcard_subscription_available: wildcard,
            subscription_identifier_available: sub_ids,
            shared_subscription_available: shared,
            server_keep_alive: keep_alive,
            response_information: info,
            server_reference: reference,
            // MQTT 5.0: authentication data only with a method.
            authentication_data: data.filter(|_| method.is_some()),
            authentication_method: method,
        },
    )
}

fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        maybe(payload_format()),
        maybe(any::<u32>()),
        maybe(nonzero_u16()),
        maybe(topic_name()),
        short_binary(),
        user_properties(),
        prop::collection::vec(subscription_id(), 0..4),
        short_text(),
    )
        .prop_map(
            |(format, expiry, alias, response_topic, correlation, user, sub_ids, content_type)| {
                PublishProperties {
                    payload_format_indicator: format,
                    message_expiry_interval: expiry,
                    topic_alias: alias,
                    response_topic,
                    correlation_data: correlation,
                    user_properties: user,
                    subscription_identifiers: sub_ids,
                    content_type,
                }
            },
        )
}

fn ack_properties() -> impl Strategy<Value = AckProperties> {
    (short_text(), user_properties()).prop_map(|(reason_string, user_properties)| AckProperties {
        reason_string,
        user_properties,
    })
}

fn subscribe_properties() -> impl Strategy<Value = SubscribeProperties> {
    (maybe(subscription_id()), user_properties()).prop_map(|(id, user_properties)| {
        SubscribeProperties {
            subscription_identifier: id,
            user_properties,
        }
    })
}

fn unsubscribe_properties() -> impl Strategy<Value = UnsubscribeProperties> {
    user_properties().prop_map(|user_properties| UnsubscribeProperties { user_properties })
}

fn disconnect_properties() -> impl Strategy<Value = DisconnectProperties> {
    (
        maybe(any::<u32>()),
        short_text(),
        user_properties(),
        short_text(),
    )
        .prop_map(|(sei, reason, user, reference)| DisconnectProperties {
            session_expiry_interval: sei,
            reason_string: reason,
            user_properties: user,
            server_reference: reference,
        })
}

fn auth_properties() -> impl Strategy<Value = AuthProperties> {
    (
        short_text(),
        short_binary(),
        short_text(),
        user_properties(),
    )
        .prop_map(|(method, data, reason, user)| AuthProperties {
            // MQTT 5.0: authentication data only with a method.
            authentication_data: data.filter(|_| method.is_some()),
            authentication_method: method,
            reason_string: reason,
            user_properties: user,
        })
}

// ---- packets ----------------------------------------------------------------------------

fn will(v5: bool) -> BoxedStrategy<Will> {
    let properties = if v5 {
        will_properties().boxed()
    } else {
        Just(WillProperties::default()).boxed()
    };
    (topic_name(), binary(64), qos(), any::<bool>(), properties)
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        })
        .boxed()
}

fn connect(v5: bool) -> BoxedStrategy<Packet> {
    let properties = if v5 {
        connect_properties().boxed()
    } else {
        Just(ConnectProperties::default()).boxed()
    };
    (
        any::<bool>(),
        any::<u16>(),
        text(23),
        maybe(will(v5)),
        maybe(text(16)),
        maybe(binary(16)),
        properties,
    )
        .prop_map(
            move |(
                clean_start,
                keep_alive,
                client_id,
                will,
                mut username,
                password,
                properties,
            )| {
                // [MQTT-3.1.2-22] MQTT 3.1.1 allows a password only with a user name.
                if !v5 && password.is_some() && username.is_none() {
                    username = Some(ByteString::from_static("user"));
                }
                Packet::from(Connect {
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                })
            },
        )
        .boxed()
}

fn connack(v5: bool) -> BoxedStrategy<Packet> {
    if v5 {
        (
            any::<bool>(),
            reason_for(PacketType::ConnAck),
            connack_properties(),
        )
            .prop_map(|(present, reason_code, properties)| {
                Packet::from(ConnAck {
                    // [MQTT-3.2.2-6] a refusal never has session present.
                    session_present: present && reason_code.is_success(),
                    reason_code,
                    properties,
                })
            })
            .boxed()
    } else {
        let codes = vec![
            ReasonCode::Success,
            ReasonCode::UnsupportedProtocolVersion,
            ReasonCode::ClientIdentifierNotValid,
            ReasonCode::ServerUnavailable,
            ReasonCode::BadUserNameOrPassword,
            ReasonCode::NotAuthorized,
        ];
        (any::<bool>(), select(codes))
            .prop_map(|(present, reason_code)| {
                Packet::from(ConnAck {
                    session_present: present && reason_code.is_success(),
                    reason_code,
                    properties: ConnAckProperties::default(),
                })
            })
            .boxed()
    }
}

fn publish(v5: bool) -> BoxedStrategy<Packet> {
    let properties = if v5 {
        publish_properties().boxed()
    } else {
        Just(PublishProperties::default()).boxed()
    };
    (
        any::<bool>(),
        qos(),
        any::<bool>(),
        topic_name(),
        any::<bool>(),
        packet_id(),
        properties,
        payload(),
    )
        .prop_map(
            move |(dup, qos, retain, topic, alias_only, id, properties, payload)| {
                // MQTT 5: an empty topic name stands for the topic alias's topic.
                let topic = if v5 && alias_only && properties.topic_alias.is_some() {
                    ByteString::new()
                } else {
                    topic
                };
                let at_most_once = qos == QoS::AtMostOnce;
                Packet::Publish(Publish {
                    dup: dup && !at_most_once,
                    qos,
                    retain,
                    topic,
                    packet_id: (!at_most_once).then_some(id),
                    properties: properties.into(),
                    payload,
                })
            },
        )
        .boxed()
}

/// The four acknowledgements share their shape; `make` builds the packet from its fields.
fn ack(
    v5: bool,
    packet: PacketType,
    make: fn(PacketId, ReasonCode, AckProperties) -> Packet,
) -> BoxedStrategy<Packet> {
    if v5 {
        (packet_id(), reason_for(packet), ack_properties())
            .prop_map(move |(id, reason, properties)| make(id, reason, properties))
            .boxed()
    } else {
        packet_id()
            .prop_map(move |id| make(id, ReasonCode::Success, AckProperties::default()))
            .boxed()
    }
}

fn subscription_options(v5: bool) -> BoxedStrategy<SubscriptionOptions> {
    if v5 {
        let handling = select(vec![
            RetainHandling::SendAtSubscribe,
            RetainHandling::SendAtSubscribeIfNew,
            RetainHandling::DoNotSend,
        ]);
        (qos(), any::<bool>(), any::<bool>(), handling)
            .prop_map(
                |(qos, no_local, retain_as_published, retain_handling)| SubscriptionOptions {
                    qos,
                    no_local,
                    retain_as_published,
                    retain_handling,
                },
            )
            .boxed()
    } else {
        qos().prop_map(SubscriptionOptions::from).boxed()
    }
}

fn subscribe(v5: bool) -> BoxedStrategy<Packet> {
    let properties = if v5 {
        subscribe_properties().boxed()
    } else {
        Just(SubscribeProperties::default()).boxed()
    };
    let entry = (topic_filter(), subscription_options(v5)).prop_map(|(filter, mut options)| {
        // [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
        if is_shared(&filter) {
            options.no_local = false;
        }
        SubscribeFilter { filter, options }
    });
    (packet_id(), prop::collection::vec(entry, 1..6), properties)
        .prop_map(|(packet_id, filters, properties)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                filters,
                properties,
            })
        })
        .boxed()
}

fn suback(v5: bool) -> BoxedStrategy<Packet> {
    let (codes, properties) = if v5 {
        (
            reason_for(PacketType::SubAck).boxed(),
            ack_properties().boxed(),
        )
    } else {
        (
            select(vec![
                ReasonCode::GRANTED_QOS_0,
                ReasonCode::GrantedQoS1,
                ReasonCode::GrantedQoS2,
                ReasonCode::UnspecifiedError,
            ])
            .boxed(),
            Just(AckProperties::default()).boxed(),
        )
    };
    (packet_id(), prop::collection::vec(codes, 1..8), properties)
        .prop_map(|(packet_id, reason_codes, properties)| {
            Packet::SubAck(SubAck {
                packet_id,
                reason_codes,
                properties,
            })
        })
        .boxed()
}

fn unsubscribe(v5: bool) -> BoxedStrategy<Packet> {
    let properties = if v5 {
        unsubscribe_properties().boxed()
    } else {
        Just(UnsubscribeProperties::default()).boxed()
    };
    (
        packet_id(),
        prop::collection::vec(topic_filter(), 1..6),
        properties,
    )
        .prop_map(|(packet_id, filters, properties)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                properties,
            })
        })
        .boxed()
}

fn unsuback(v5: bool) -> BoxedStrategy<Packet> {
    if v5 {
        (
            packet_id(),
            prop::collection::vec(reason_for(PacketType::UnsubAck), 1..8),
            ack_properties(),
        )
            .prop_map(|(packet_id, reason_codes, properties)| {
                Packet::UnsubAck(UnsubAck {
                    packet_id,
                    reason_codes,
                    properties,
                })
            })
            .boxed()
    } else {
        // MQTT 3.1.1 UNSUBACK carries no reason codes.
        packet_id()
            .prop_map(|packet_id| {
                Packet::UnsubAck(UnsubAck {
                    packet_id,
                    reason_codes: Vec::new(),
                    properties: AckProperties::default(),
                })
            })
            .boxed()
    }
}

fn disconnect(v5: bool) -> BoxedStrategy<Packet> {
    if v5 {
        (reason_for(PacketType::Disconnect), disconnect_properties())
            .prop_map(|(reason_code, properties)| {
                Packet::from(Disconnect {
                    reason_code,
                    properties,
                })
            })
            .boxed()
    } else {
        Just(Packet::from(Disconnect::default())).boxed()
    }
}

fn auth() -> BoxedStrategy<Packet> {
    (reason_for(PacketType::Auth), auth_properties())
        .prop_map(|(reason_code, properties)| {
            Packet::from(Auth {
                reason_code,
                properties,
            })
        })
        .boxed()
}

/// Any valid packet of `version`, every packet type equally likely.
fn any_packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let v5 = version == ProtocolVersion::V5;
    let mut arms = vec![
        connect(v5),
        connack(v5),
        publish(v5),
        ack(
            v5,
            PacketType::PubAck,
            |packet_id, reason_code, properties| {
                Packet::PubAck(PubAck {
                    packet_id,
                    reason_code,
                    properties,
                })
            },
        ),
        ack(
            v5,
            PacketType::PubRec,
            |packet_id, reason_code, properties| {
                Packet::PubRec(PubRec {
                    packet_id,
                    reason_code,
                    properties,
                })
            },
        ),
        ack(
            v5,
            PacketType::PubRel,
            |packet_id, reason_code, properties| {
                Packet::PubRel(PubRel {
                    packet_id,
                    reason_code,
                    properties,
                })
            },
        ),
        ack(
            v5,
            PacketType::PubComp,
            |packet_id, reason_code, properties| {
                Packet::PubComp(PubComp {
                    packet_id,
                    reason_code,
                    properties,
                })
            },
        ),
        subscribe(v5),
        suback(v5),
        unsubscribe(v5),
        unsuback(v5),
        Just(Packet::PingReq(PingReq)).boxed(),
        Just(Packet::PingResp(PingResp)).boxed(),
        disconnect(v5),
    ];
    if v5 {
        arms.push(auth());
    }
    prop::strategy::Union::new(arms).boxed()
}

/// A version together with a packet of that version.
fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    prop_oneof![
        any_packet(ProtocolVersion::V311).prop_map(|p| (ProtocolVersion::V311, p)),
        any_packet(ProtocolVersion::V5).prop_map(|p| (ProtocolVersion::V5, p)),
    ]
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    select(vec![ProtocolVersion::V311, ProtocolVersion::V5])
}

// ---- helpers ----------------------------------------------------------------------------

/// Encodes `packet`, checking that `encode` and `encoded_len` agree with the bytes written.
fn encode(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    let written = packet.encode(version, &mut buf).unwrap();
    assert_eq!(written, buf.len(), "encode reports the bytes it wrote");
    assert_eq!(
        packet.encoded_len(version).unwrap(),
        buf.len(),
        "encoded_len matches encode"
    );
    buf
}

/// The length of the fixed header at the front of `bytes` and the packet length it announces,
/// parsed independently of the codec (the MQTT 3.1.1 remaining length may be non-minimal).
fn framed_len(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut remaining = 0_usize;
    for (i, &byte) in bytes.iter().enumerate().skip(1).take(4) {
        remaining |= usize::from(byte & 0x7f) << (7 * (i - 1));
        if byte & 0x80 == 0 {
            return Some((i + 1, i + 1 + remaining));
        }
    }
    None
}

/// Decodes untrusted `bytes` once and checks what the codec promises for any input: no panic;
/// `Ok(None)` consumes nothing; `Ok(Some(_))` consumes exactly the packet its fixed header
/// frames, and that packet re-encodes to bytes that decode to the same packet; an error takes
/// at most that one packet off the buffer.
fn check_arbitrary_input(version: ProtocolVersion, bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::from(bytes);
    let result = decode(&mut buf, version, MAX_PACKET_SIZE);
    let consumed = bytes.len() - buf.len();
    prop_assert_eq!(&buf[..], &bytes[consumed..], "only a prefix is consumed");
    match result {
        Ok(Some(packet)) => {
            let (_, framed) = framed_len(bytes).unwrap();
            prop_assert_eq!(consumed, framed, "consumed one framed packet");
            let mut again = encode(&packet, version);
            let reencoded_len = again.len();
            let redecoded = decode(&mut again, version, MAX_PACKET_SIZE).unwrap();
            prop_assert_eq!(redecoded, Some(packet));
            prop_assert!(again.is_empty());
            // The codec writes the shortest form, so a re-encoding is never longer; it is
            // shorter for a non-minimal MQTT 3.1.1 remaining length or an MQTT 5 ack that
            // spells out reason code Success with no properties.
            prop_assert!(reencoded_len <= consumed);
        }
        Ok(None) => prop_assert_eq!(consumed, 0, "Ok(None) consumes nothing"),
        Err(_) => {
            // A bad fixed header leaves the buffer alone; a bad body has been taken off whole.
            if consumed != 0 {
                let (_, framed) = framed_len(bytes).unwrap();
                prop_assert_eq!(consumed, framed);
            }
        }
    }
    Ok(())
}

// ---- properties -------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// (a) encode then decode gives back the packet and consumes exactly its bytes.
    #[test]
    fn encode_decode_round_trips(
        (version, packet) in versioned_packet(),
        trailing in prop::collection::vec(any::<u8>(), 0..4),
    ) {
        let encoded = encode(&packet, version);
        let len = encoded.len();
        let mut buf = encoded;
        buf.extend_from_slice(&trailing);
        let decoded = decode(&mut buf, version, MAX_PACKET_SIZE).unwrap();
        prop_assert_eq!(decoded, Some(packet));
        prop_assert_eq!(&buf[..], &trailing[..], "consumed {} bytes", len);
    }

    /// (b) several packets back to back come out in order, one per call.
    #[test]
    fn concatenated_packets_decode_in_order(
        (version, packets) in version().prop_flat_map(|v| {
            (Just(v), prop::collection::vec(any_packet(v), 1..6))
        }),
    ) {
        let mut buf = BytesMut::new();
        for packet in &packets {
            buf.extend_from_slice(&encode(packet, version));
        }
        for packet in &packets {
            let before = buf.len();
            let decoded = decode(&mut buf, version, MAX_PACKET_SIZE).unwrap();
            prop_assert_eq!(decoded.as_ref(), Some(packet));
            prop_assert_eq!(before - buf.len(), packet.encoded_len(version).unwrap());
        }
        prop_assert_eq!(decode(&mut buf, version, MAX_PACKET_SIZE).unwrap(), None);
        prop_assert!(buf.is_empty());
    }

    /// (c) arbitrary bytes never panic and consume at most one framed packet.
    #[test]
    fn arbitrary_bytes_never_panic(
        version in version(),
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        check_arbitrary_input(version, &bytes)?;
    }

    /// (c) the same on input that starts with a plausible fixed header, so that the body
    /// decoders of every packet type get exercised rather than mostly rejected first bytes.
    #[test]
    fn arbitrary_bodies_never_panic(
        version in version(),
        first in (1_u8..=15, 0_u8..16).prop_map(|(kind, flags)| (kind << 4) | flags),
        body in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let mut bytes = vec![first, u8::try_from(body.len()).unwrap()];
        bytes.extend_from_slice(&body);
        check_arbitrary_input(version, &bytes)?;
    }

    /// (c) the same on valid packets with a few bytes flipped and maybe cut short or
    /// extended, which reach much deeper into the decoders than random bytes.
    #[test]
    fn mutated_packets_never_panic(
        (version, packet) in versioned_packet(),
        flips in prop::collection::vec((any::<Index>(), 1..=u8::MAX), 1..4),
        cut in maybe(any::<Index>()),
        tail in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut bytes = encode(&packet, version).to_vec();
        for (at, mask) in flips {
            let at = at.index(bytes.len());
            bytes[at] ^= mask;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        bytes.extend_from_slice(&tail);
        check_arbitrary_input(version, &bytes)?;
    }

    /// (d) an oversized packet fails with PacketTooLarge as soon as its fixed header is
    /// complete, before any of its body is buffered; one that fits decodes.
    #[test]
    fn max_packet_size_is_enforced_at_the_fixed_header(
        (version, packet) in versioned_packet(),
        max_index in any::<Index>(),
    ) {
        let encoded = encode(&packet, version);
        let len = encoded.len();
        let (header_len, framed) = framed_len(&encoded).unwrap();
        prop_assert_eq!(framed, len);
        let max = u32::try_from(max_index.index(len)).unwrap();
        let mut buf = BytesMut::new();
        for (i, &byte) in encoded.iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            let result = decode(&mut buf, version, max);
            if i + 1 < header_len {
                prop_assert_eq!(result, Ok(None));
                prop_assert_eq!(buf.len(), i + 1);
            } else {
                prop_assert_eq!(result, Err(DecodeError::PacketTooLarge { size: len, max }));
                prop_assert_eq!(buf.len(), header_len, "nothing past the header was needed");
                break;
            }
        }
        let mut whole = encode(&packet, version);
        let exact = u32::try_from(len).unwrap();
        prop_assert_eq!(decode(&mut whole, version, exact).unwrap(), Some(packet));
    }

    /// (e) a packet split at any offset: the first part is Ok(None), both parts give the packet.
    #[test]
    fn split_packets_need_both_halves(
        (version, packet) in versioned_packet(),
        at in any::<Index>(),
    ) {
        let encoded = encode(&packet, version);
        let at = at.index(encoded.len());
        let mut buf = BytesMut::from(&encoded[..at]);
        prop_assert_eq!(decode(&mut buf, version, MAX_PACKET_SIZE), Ok(None));
        prop_assert_eq!(buf.len(), at, "Ok(None) consumes nothing");
        buf.extend_from_slice(&encoded[at..]);
        prop_assert_eq!(decode(&mut buf, version, MAX_PACKET_SIZE).unwrap(), Some(packet));
        prop_assert!(buf.is_empty());
    }
}

/// Every reason code a packet allows in MQTT 5 survives a round trip, including the ones that
/// change the wire form (Success with and without properties).
#[test]
fn every_v5_ack_reason_code_round_trips() {
    let id = PacketId::new(9).unwrap();
    for code in (0..=u8::MAX).filter_map(ReasonCode::from_u8) {
        for properties in [
            AckProperties::default(),
            AckProperties {
                reason_string: Some(ByteString::from_static("why")),
                user_properties: Vec::new(),
            },
        ] {
            let packets = [
                (
                    PacketType::PubAck,
                    Packet::PubAck(PubAck {
                        packet_id: id,
                        reason_code: code,
                        properties: properties.clone(),
                    }),
                ),
                (
                    PacketType::PubRec,
                    Packet::PubRec(PubRec {
                        packet_id: id,
                        reason_code: code,
                        properties: properties.clone(),
                    }),
                ),
                (
                    PacketType::PubRel,
                    Packet::PubRel(PubRel {
                        packet_id: id,
                        reason_code: code,
                        properties: properties.clone(),
                    }),
                ),
                (
                    PacketType::PubComp,
                    Packet::PubComp(PubComp {
                        packet_id: id,
                        reason_code: code,
                        properties: properties.clone(),
                    }),
                ),
            ];
            for (kind, packet) in packets {
                let encoded = packet.encoded_len(ProtocolVersion::V5);
                if !code.is_valid_for(kind) {
                    assert!(encoded.is_err(), "{kind} refuses {code}");
                    continue;
                }
                let mut buf = encode(&packet, ProtocolVersion::V5);
                assert_eq!(
                    decode(&mut buf, ProtocolVersion::V5, MAX_PACKET_SIZE),
                    Ok(Some(packet))
                );
            }
        }
    }
}
