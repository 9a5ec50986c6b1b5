//! Scripted exchanges with the session: bytes in, expected packets and events out, one test
//! per flow, for MQTT 3.1.1 and 5.0 where the flow exists in both.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::time::Duration;

use common::{
    Harness, KEEP_ALIVE, config, connect_v3, connect_v5, connected, connected_with, incoming,
    message, pid,
};
use sansmqtt_session::proto::properties::{
    AckProperties, ConnAckProperties, PayloadFormat, PublishProperties, SubscribeProperties,
    SubscriptionId, UserProperty, WillProperties,
};
use sansmqtt_session::proto::{
    ConnAck, Connect, DecodeError, Disconnect, Packet, PacketType, PingReq, PingResp,
    ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, QoS, ReasonCode, RetainHandling,
    SubAck, Subscribe, SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};
use sansmqtt_session::{
    AckMode, ConnectOptions, ConnectionError, ConnectionState, Event, Message, ProtocolError,
    PublishError, PublishLimits, ReceiveMaximumExceeded, ServerReason, SessionConfig, SessionError,
    SessionLossPolicy, Token,
};

use ProtocolVersion::{V5, V311};

/// Generates `#[test] fn v311` and `#[test] fn v5` in a module named after a flow function
/// that takes the protocol version.
macro_rules! both_versions {
    ($($flow:ident),* $(,)?) => {$(
        mod $flow {
            #[test]
            fn v311() {
                super::$flow(super::V311);
            }
            #[test]
            fn v5() {
                super::$flow(super::V5);
            }
        }
    )*};
}

fn published(token: Token, code: ReasonCode) -> Event {
    Event::Published {
        token,
        result: Ok(code),
        properties: Default::default(),
    }
}

fn delivered(publish: Publish) -> Event {
    Event::Message(Message { publish, ack: None })
}

/// The DISCONNECT a protocol failure produces: MQTT 5 sends one with `reason`, 3.1.1 none.
fn close_packets(version: ProtocolVersion, reason: ReasonCode) -> Vec<Packet> {
    if version.is_v5() {
        vec![Packet::from(Disconnect::new(reason))]
    } else {
        Vec::new()
    }
}

/// Asserts the session closed the connection for `error` after a protocol failure: one
/// `Disconnected` event, the MQTT 5 DISCONNECT written, then state `Disconnected`.
fn assert_protocol_failure(h: &mut Harness, expected: &ProtocolError) {
    let events = h.events();
    assert_matches!(
        events.as_slice(),
        [Event::Disconnected { reason: ConnectionError::Protocol(err) }] if err == expected,
    );
    let reason = expected.reason_code();
    let sent = h.sent();
    assert_eq!(
        sent,
        close_packets(h.version, reason),
        "DISCONNECT after {expected}"
    );
    assert_eq!(h.session.state(), ConnectionState::Disconnected);
    // Whatever the server sends afterwards is ignored.
    h.feed(incoming("late", "x", QoS::AtLeastOnce, Some(9)));
    h.assert_idle();
}

fn sub_token(h: &mut Harness, filters: Vec<SubscribeFilter>) -> Token {
    let now = h.now();
    h.session
        .subscribe(now, filters, SubscribeProperties::default())
        .unwrap()
}

fn publish(h: &mut Harness, msg: Publish) -> Token {
    let now = h.now();
    h.session.publish(now, msg).unwrap()
}

fn publish_err(h: &mut Harness, msg: Publish) -> SessionError {
    let now = h.now();
    h.session.publish(now, msg).unwrap_err()
}

/// The PUBLISH the session writes for `msg` with `id` and `dup`.
fn on_wire(msg: &Publish, id: Option<u16>, dup: bool) -> Packet {
    Packet::Publish(Publish {
        dup,
        packet_id: id.map(pid),
        ..msg.clone()
    })
}

// ==== connect ================================================================================

#[test]
fn connect_v311_carries_session_config_and_options() {
    let mut h = Harness::new(config(V311));
    let mut options = ConnectOptions::new(Duration::from_secs(45));
    options.clean_start = false;
    options.will = Some(Will {
        qos: QoS::AtLeastOnce,
        retain: true,
        ..Will::new("clients/client/status", "gone")
    });
    options.username = Some("user".into());
    options.password = Some("secret".into());
    let connect = h.connect_accepted(options, false);
    assert_eq!(
        connect,
        Connect {
            clean_start: false,
            keep_alive: 45,
            client_id: "client".into(),
            will: Some(Will {
                qos: QoS::AtLeastOnce,
                retain: true,
                ..Will::new("clients/client/status", "gone")
            }),
            username: Some("user".into()),
            password: Some("secret".into()),
            properties: Default::default(),
        }
    );
}

#[test]
fn connect_v5_carries_session_config_and_options() {
    let mut cfg = config(V5);
    cfg.receive_maximum = 10;
    cfg.max_packet_size = 2048;
    cfg.topic_alias_maximum = 5;
    let mut h = Harness::new(cfg);
    let will = Will {
        qos: QoS::ExactlyOnce,
        retain: true,
        properties: WillProperties {
            will_delay_interval: Some(5),
            payload_format_indicator: Some(PayloadFormat::Utf8),
            message_expiry_interval: Some(60),
            content_type: Some("text/plain".into()),
            user_properties: vec![UserProperty::new("k", "v")],
            ..Default::default()
        },
        ..Will::new("clients/client/status", "gone")
    };
    let mut options = ConnectOptions::new(Duration::from_secs(20));
    options.will = Some(will.clone());
    options.username = Some("user".into());
    options.password = Some("secret".into());
    options.session_expiry_interval = Some(3600);
    options.properties.authentication_method = Some("SCRAM-SHA-1".into());
    options.properties.authentication_data = Some("client-first".into());
    options.properties.request_problem_information = Some(true);
    // The session's limits override whatever the options say.
    options.properties.receive_maximum = Some(999);

    let connect = h.connect_accepted(options, false);
    assert!(connect.clean_start, "ConnectOptions::new is a clean start");
    assert_eq!(connect.keep_alive, 20);
    assert_eq!(connect.client_id, "client");
    assert_eq!(connect.will, Some(will));
    assert_eq!(connect.username.as_deref(), Some("user"));
    assert_eq!(connect.password.as_deref(), Some(&b"secret"[..]));
    let props = &connect.properties;
    assert_eq!(props.session_expiry_interval, Some(3600));
    assert_eq!(props.receive_maximum, Some(10));
    assert_eq!(props.maximum_packet_size, Some(2048));
    assert_eq!(props.topic_alias_maximum, Some(5));
    assert_eq!(props.authentication_method.as_deref(), Some("SCRAM-SHA-1"));
    assert_eq!(
        props.authentication_data.as_deref(),
        Some(&b"client-first"[..])
    );
    assert_eq!(props.request_problem_information, Some(true));
}

#[test]
fn connect_v5_topic_alias_maximum_zero_is_not_announced() {
    let mut cfg = config(V5);
    cfg.topic_alias_maximum = 0;
    let mut h = Harness::new(cfg);
    let connect = h.connect_accepted(ConnectOptions::new(KEEP_ALIVE), false);
    assert_eq!(connect.properties.topic_alias_maximum, None);
}

fn connack_accepted(version: ProtocolVersion) {
    let mut h = Harness::new(config(version));
    assert_eq!(h.session.state(), ConnectionState::Disconnected);
    let mut options = ConnectOptions::new(KEEP_ALIVE);
    options.clean_start = false;
    let (_, events) = h.handshake(options, ConnAck::new(true));
    assert_eq!(
        events,
        vec![Event::Connected {
            session_present: true,
            properties: Box::default(),
        }]
    );
    assert!(h.session.is_connected());
    // CONNACK answered: no CONNACK deadline any more, only keep-alive.
    assert_eq!(h.timeout_offset(), Some(KEEP_ALIVE));
    h.assert_idle();
}

#[test]
fn connack_refused_v311_not_authorized() {
    let mut h = Harness::new(config(V311));
    h.session
        .connect(h.now(), ConnectOptions::new(KEEP_ALIVE))
        .unwrap();
    assert_matches!(h.sent().as_slice(), [Packet::Connect(_)]);
    // CONNACK, session present 0, return code 5 (not authorized).
    h.feed_bytes(&[0x20, 0x02, 0x00, 0x05]);
    assert_eq!(
        h.events(),
        vec![Event::Disconnected {
            reason: ConnectionError::Refused(ReasonCode::NotAuthorized.into())
        }]
    );
    assert_eq!(h.session.state(), ConnectionState::Disconnected);
    assert_eq!(h.session.poll_timeout(), None, "no timer after a refusal");
    h.assert_idle();
    // The session can try again.
    h.connect_accepted(ConnectOptions::new(KEEP_ALIVE), false);
}

#[test]
fn connack_refused_v5_bad_user_name_or_password() {
    let mut h = Harness::new(config(V5));
    let connack = ConnAck {
        reason_code: ReasonCode::BadUserNameOrPassword,
        properties: ConnAckProperties {
            reason_string: Some("unknown user".into()),
            user_properties: vec![UserProperty::new("realm", "lab")],
            ..ConnAckProperties::default()
        },
        ..ConnAck::new(false)
    };
    let (_, events) = h.handshake(ConnectOptions::new(KEEP_ALIVE), connack);
    // The server's diagnostics stay with the refusal.
    assert_eq!(
        events,
        vec![Event::Disconnected {
            reason: ConnectionError::Refused(ServerReason::with_properties(
                ReasonCode::BadUserNameOrPassword,
                Some("unknown user".into()),
                vec![UserProperty::new("realm", "lab")],
            ))
        }]
    );
    assert_eq!(h.session.state(), ConnectionState::Disconnected);
    // The server closes the connection after a refusal: the client sends nothing.
    h.assert_idle();
}

fn connack_timeout(version: ProtocolVersion) {
    let mut cfg = config(version);
    cfg.connect_timeout = Duration::from_secs(5);
    let mut h = Harness::new(cfg);
    h.session
        .connect(h.now(), ConnectOptions::new(KEEP_ALIVE))
        .unwrap();
    assert_matches!(h.sent().as_slice(), [Packet::Connect(_)]);
    assert_eq!(h.timeout_offset(), Some(Duration::from_secs(5)));
    h.set_time(Duration::from_millis(4999));
    h.fire_timers();
    h.assert_idle();
    assert_eq!(h.session.state(), ConnectionState::Connecting);
    h.set_secs(5);
    h.fire_timers();
    assert_eq!(
        h.events(),
        vec![Event::Disconnected {
            reason: ConnectionError::ConnAckTimeout
        }]
    );
    assert!(h.sent().is_empty());
    assert_eq!(h.session.state(), ConnectionState::Disconnected);
    assert_eq!(h.session.poll_timeout(), None);
    // A CONNACK arriving late is ignored.
    h.feed(ConnAck::new(false));
    h.assert_idle();
}

#[test]
fn connack_v5_server_keep_alive_is_honoured() {
    let mut h = Harness::new(config(V5));
    let connack = ConnAck {
        properties: ConnAckProperties {
            server_keep_alive: Some(5),
            ..Default::default()
        },
        ..ConnAck::new(false)
    };
    let (connect, events) = h.handshake(ConnectOptions::new(Duration::from_secs(60)), connack);
    assert_eq!(connect.keep_alive, 60);
    assert_matches!(events.as_slice(), [Event::Connected { .. }]);
    assert_eq!(h.session.server_limits().keep_alive, Duration::from_secs(5));
    assert_eq!(h.timeout_offset(), Some(Duration::from_secs(5)));
    h.set_secs(5);
    h.fire_timers();
    assert_eq!(h.sent(), vec![Packet::PingReq(PingReq)]);
}

#[test]
fn connack_v5_assigned_client_identifier_is_used_on_reconnect() {
    let mut h = Harness::new(SessionConfig::new("", V5));
    let connack = ConnAck {
        properties: ConnAckProperties {
            assigned_client_identifier: Some("auto-4711".into()),
            ..Default::default()
        },
        ..ConnAck::new(false)
    };
    let (connect, events) = h.handshake(ConnectOptions::new(KEEP_ALIVE), connack);
    assert_eq!(connect.client_id, "", "an empty id asks the server for one");
    assert_matches!(events.as_slice(), [Event::Connected { properties, .. }]
        if properties.assigned_client_identifier.as_deref() == Some("auto-4711"));
    assert_eq!(h.session.client_id(), "auto-4711");

    h.close_transport();
    assert_matches!(h.events().as_slice(), [Event::Disconnected { .. }]);
    let mut options = ConnectOptions::new(KEEP_ALIVE);
    options.clean_start = false;
    let connect = h.connect_accepted(options, true);
    assert_eq!(connect.client_id, "auto-4711");
}

fn connack_session_present_on_clean_start_is_protocol_error(version: ProtocolVersion) {
    let mut h = Harness::new(config(version));
    let (_, events) = h.handshake(ConnectOptions::new(KEEP_ALIVE), ConnAck::new(true));
    // [MQTT-3.2.2-4] / [MQTT-3.2.2-5]: no Connected, the connection is closed.
    assert_matches!(
        events.as_slice(),
        [Event::Disconnected {
            reason: ConnectionError::Protocol(ProtocolError::UnexpectedPacket(PacketType::ConnAck))
        }]
    );
    assert_eq!(h.sent(), close_packets(version, ReasonCode::ProtocolError));
    assert_eq!(h.session.state(), ConnectionState::Disconnected);
}

both_versions!(
    connack_accepted,
    connack_timeout,
    connack_session_present_on_clean_start_is_protocol_error
);

// ==== PUBLISH out ============================================================================

fn publish_qos0_completes_on_poll_transmit(version: ProtocolVersion) {
    let mut h = connected(version);
    let msg = message("a/b", "hello", QoS::AtMostOnce);
    let token = publish(&mut h, msg.clone());
    assert!(
        h.events().is_empty(),
        "QoS 0 completes when handed out, not before"
    );
    assert_eq!(h.sent(), vec![on_wire(&msg, None, false)]);
    assert_eq!(h.events(), vec![published(token, ReasonCode::Success)]);
    assert_eq!(h.session.inflight_len(), 0);
    assert_eq!(h.session.packet_ids_in_use(), 0);
}

fn publish_qos1_puback_completes(version: ProtocolVersion) {
    let mut h = connected(version);
    let msg = message("a/b", "hello", QoS::AtLeastOnce);
    let token = publish(&mut h, msg.clone());
    assert_eq!(h.sent(), vec![on_wire(&msg, Some(1), false)]);
    assert!(h.events().is_empty());
    assert_eq!(h.session.inflight_len(), 1);
    h.feed(PubAck::new(pid(1)));
    assert_eq!(h.events(), vec![published(token, ReasonCode::Success)]);
    assert!(h.sent().is_empty());
    assert_eq!(h.session.inflight_len(), 0);
    assert_eq!(h.session.packet_ids_in_use(), 0);
}

fn publish_qos2_pubrec_pubrel_pubcomp(version: ProtocolVersion) {
    let mut h = connected(version);
    let msg = message("a/b", "hello", QoS::ExactlyOnce);
    let token = publish(&mut h, msg.clone());
    assert_eq!(h.sent(), vec![on_wire(&msg, Some(1), false)]);
    h.feed(PubRec::new(pid(1)));
    assert!(
        h.events().is_empty(),
        "QoS 2 completes at PUBCOMP, not PUBREC"
    );
    assert_eq!(h.sent(), vec![Packet::PubRel(PubRel::new(pid(1)))]);
    h.feed(PubComp::new(pid(1)));
    assert_eq!(h.events(), vec![published(token, ReasonCode::Success)]);
    assert!(h.sent().is_empty());
    assert_eq!(h.session.inflight_len(), 0);
    assert_eq!(h.session.packet_ids_in_use(), 0);
}

#[test]
fn publish_v5_puback_not_authorized_is_rejected() {
    let mut h = connect_v5();
    let token = publish(&mut h, message("a/b", "x", QoS::AtLeastOnce));
    assert_eq!(h.sent().len(), 1);
    h.feed(PubAck {
        reason_code: ReasonCode::NotAuthorized,
        properties: AckProperties {
            reason_string: Some("topic a/b is read-only".into()),
            user_properties: vec![UserProperty::new("policy", "ro")],
        },
        ..PubAck::new(pid(1))
    });
    assert_eq!(
        h.events(),
        vec![Event::Published {
            token,
            result: Err(PublishError::Rejected(Box::new(
                ServerReason::with_properties(
                    ReasonCode::NotAuthorized,
                    Some("topic a/b is read-only".into()),
                    vec![UserProperty::new("policy", "ro")],
                )
            ))),
            properties: Default::default(),
        }]
    );
    assert_eq!(h.session.inflight_len(), 0);
}

#[test]
fn publish_v5_puback_no_matching_subscribers_is_success() {
    let mut h = connect_v5();
    let token = publish(&mut h, message("a/b", "x", QoS::AtLeastOnce));
    assert_eq!(h.sent().len(), 1);
    h.feed(PubAck {
        reason_code: ReasonCode::NoMatchingSubscribers,
        ..PubAck::new(pid(1))
    });
    assert_eq!(
        h.events(),
        vec![published(token, ReasonCode::NoMatchingSubscribers)]
    );
}

#[test]
fn publish_v5_puback_properties_reach_the_published_event() {
    let mut h = connect_v5();
    let token = publish(&mut h, message("a/b", "x", QoS::AtLeastOnce));
    h.sent();
    let properties = AckProperties {
        reason_string: Some("stored in region eu".into()),
        user_properties: vec![UserProperty::new("shard", "7")],
    };
    h.feed(PubAck {
        properties: properties.clone(),
        ..PubAck::new(pid(1))
    });
    assert_eq!(
        h.events(),
        vec![Event::Published {
            token,
            result: Ok(ReasonCode::Success),
            properties: properties.into(),
        }]
    );
}

#[test]
fn publish_v5_failing_pubrec_ends_flow_without_pubrel() {
    let mut h = connect_v5();
    let token = publish(&mut h, message("a/b", "x", QoS::ExactlyOnce));
    assert_eq!(h.sent().len(), 1);
    h.feed(PubRec {
        reason_code: ReasonCode::QuotaExceeded,
        ..PubRec::new(pid(1))
    });
    assert_eq!(
        h.events(),
        vec![Event::Published {
            token,
            result: Err(PublishError::Rejected(Box::new(
                ReasonCode::QuotaExceeded.into()
            ))),
            properties: Default::default(),
        }]
    );
    assert!(
        h.sent().is_empty(),
        "MQTT 5.0 4.3.3: no PUBREL after a failing PUBREC"
    );
    assert_eq!(h.session.inflight_len(), 0);
    assert_eq!(h.session.packet_ids_in_use(), 0);
}

fn publish_three_pipelined(version: ProtocolVersion) {
    // amqtt test_coro2: QoS 0, 1 and 2 published back to back, all written before any ack.
    let mut h = connected(version);
    let m0 = message("sensors/0", "a", QoS::AtMostOnce);
    let m1 = message("sensors/1", "b", QoS::AtLeastOnce);
    let m2 = message("sensors/2", "c", QoS::ExactlyOnce);
    let t0 = publish(&mut h, m0.clone());
    let t1 = publish(&mut h, m1.clone());
    let t2 = publish(&mut h, m2.clone());
    assert_eq!(
        h.sent(),
        vec![
            on_wire(&m0, None, false),
            on_wire(&m1, Some(1), false),
            on_wire(&m2, Some(2), false),
        ]
    );
    assert_eq!(h.events(), vec![published(t0, ReasonCode::Success)]);
    h.feed(PubRec::new(pid(2)));
    h.feed(PubAck::new(pid(1)));
    assert_eq!(h.sent(), vec![Packet::PubRel(PubRel::new(pid(2)))]);
    assert_eq!(h.events(), vec![published(t1, ReasonCode::Success)]);
    h.feed(PubComp::new(pid(2)));
    assert_eq!(h.events(), vec![published(t2, ReasonCode::Success)]);
}

fn publish_inflight_window_max_inflight(version: ProtocolVersion) {
    let mut cfg = config(version);
    cfg.max_inflight = 2;
    let mut h = connected_with(cfg);
    let msgs: Vec<_> = (0..3)
        .map(|i| message("w", ["a", "b", "c"][i], QoS::AtLeastOnce))
        .collect();
    let tokens: Vec<_> = msgs.iter().map(|m| publish(&mut h, m.clone())).collect();
    assert_eq!(
        h.sent(),
        vec![
            on_wire(&msgs[0], Some(1), false),
            on_wire(&msgs[1], Some(2), false)
        ]
    );
    assert_eq!(h.session.inflight_len(), 2);
    assert_eq!(h.session.queued_len(), 1);
    // A QoS 0 message behind the queued one keeps its place in line.
    let m0 = message("w", "d", QoS::AtMostOnce);
    let t0 = publish(&mut h, m0.clone());
    assert!(h.sent().is_empty());
    assert_eq!(h.session.queued_len(), 2);

    h.feed(PubAck::new(pid(2)));
    assert_eq!(
        h.sent(),
        vec![on_wire(&msgs[2], Some(2), false), on_wire(&m0, None, false)]
    );
    assert_eq!(
        h.events(),
        vec![
            published(tokens[1], ReasonCode::Success),
            published(t0, ReasonCode::Success),
        ]
    );
    assert_eq!(h.session.queued_len(), 0);
    assert_eq!(h.session.inflight_len(), 2);
}

#[test]
fn publish_v5_server_receive_maximum_lowers_window() {
    let mut h = Harness::new(config(V5));
    let connack = ConnAck {
        properties: ConnAckProperties {
            receive_maximum: Some(1),
            ..Default::default()
        },
        ..ConnAck::new(false)
    };
    h.handshake(ConnectOptions::new(KEEP_ALIVE), connack);
    assert_eq!(h.session.server_limits().receive_maximum, 1);
    let a = message("a", "1", QoS::ExactlyOnce);
    let b = message("b", "2", QoS::AtLeastOnce);
    let ta = publish(&mut h, a.clone());
    let tb = publish(&mut h, b.clone());
    assert_eq!(h.sent(), vec![on_wire(&a, Some(1), false)]);
    assert_eq!(h.session.queued_len(), 1);
    // PUBREC does not free the slot: the flow is in flight until PUBCOMP.
    h.feed(PubRec::new(pid(1)));
    assert_eq!(h.sent(), vec![Packet::PubRel(PubRel::new(pid(1)))]);
    h.feed(PubComp::new(pid(1)));
    assert_eq!(h.sent(), vec![on_wire(&b, Some(1), false)]);
    assert_eq!(h.events(), vec![published(ta, ReasonCode::Success)]);
    h.feed(PubAck::new(pid(1)));
    assert_eq!(h.events(), vec![published(tb, ReasonCode::Success)]);
}

#[test]
fn publish_v5_qos_above_server_maximum_is_refused() {
    let mut h = Harness::new(config(V5));
    let connack = ConnAck {
        properties: ConnAckProperties {
            maximum_qos: Some(QoS::AtLeastOnce),
            ..Default::default()
        },
        ..ConnAck::new(false)
    };
    h.handshake(ConnectOptions::new(KEEP_ALIVE), connack);
    assert_eq!(
        publish_err(&mut h, message("a", "x", QoS::ExactlyOnce)),
        SessionError::QoSNotSupported {
            requested: QoS::ExactlyOnce,
            maximum: QoS::AtLeastOnce,
        }
    );
    h.assert_idle();
    assert_eq!(h.session.packet_ids_in_use(), 0);
    // QoS 1 is fine.
    publish(&mut h, message("a", "x", QoS::AtLeastOnce));
    assert_eq!(h.sent().len(), 1);
}

#[test]
fn publish_limits_follow_the_last_connack_and_outlive_the_connection() {
    let mut h = Harness::new(config(V5));
    assert_eq!(
        h.session.publish_limits(),
        PublishLimits::protocol_defaults(V5),
        "before any CONNACK"
    );
    let connack = ConnAck {
        properties: ConnAckProperties {
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            maximum_packet_size: Some(100),
            topic_alias_maximum: Some(4),
            ..Default::default()
        },
        ..ConnAck::new(false)
    };
    h.handshake(ConnectOptions::new(KEEP_ALIVE), connack);
    let announced = PublishLimits {
        protocol_version: V5,
        maximum_qos: QoS::AtLeastOnce,
        retain_available: false,
        maximum_packet_size: 100,
        topic_alias_maximum: 4,
    };
    assert_eq!(h.session.publish_limits(), announced);
    // The check a driver makes at acceptance is the one `publish` makes.
    let mut retained = message("a", "x", QoS::AtMostOnce).with_retain(true);
    assert_eq!(
        h.session.publish_limits().check(&mut retained),
        Err(SessionError::RetainNotSupported)
    );
    assert_eq!(
        publish_err(&mut h, retained),
        SessionError::RetainNotSupported
    );
    h.close_transport();
    assert_eq!(
        h.session.publish_limits(),
        announced,
        "the last CONNACK's limits are kept while disconnected"
    );
}

#[test]
fn publish_v5_retain_unavailable_is_refused() {
    let mut h = Harness::new(config(V5));
    let connack = ConnAck {
        properties: ConnAckProperties {
            retain_available: Some(false),
            ..Default::default()
        },
        ..ConnAck::new(false)
    };
    h.handshake(ConnectOptions::new(KEEP_ALIVE), connack);
    let retained = message("a", "x", QoS::AtLeastOnce).with_retain(true);
    assert_eq!(
        publish_err(&mut h, retained),
        SessionError::RetainNotSupported
    );
    h.assert_idle();
    assert_eq!(h.session.inflight_len(), 0);
}

#[test]
fn publish_v5_over_server_maximum_packet_size_is_refused() {
    let mut h = Harness::new(config(V5));
    let connack = ConnAck {
        properties: ConnAckProperties {
            maximum_packet_size: Some(64),
            ..Default::default()
        },
        ..ConnAck::new(false)
    };
    h.handshake(ConnectOptions::new(KEEP_ALIVE), connack);
    let big = Publish {
        qos: QoS::AtLeastOnce,
        ..Publish::new("a", vec![0u8; 100])
    };
    assert_matches!(
        publish_err(&mut h, big),
        SessionError::PacketTooLarge { size, max: 64 } if *size > 64
    );
    h.assert_idle();
    assert_eq!(h.session.packet_ids_in_use(), 0);
    // A message that fits, counting the packet id the session adds, goes out.
    let fits = Publish {
        qos: QoS::AtLeastOnce,
        ..Publish::new("a", vec![0u8; 56])
    };
    publish(&mut h, fits);
    assert_matches!(h.sent().as_slice(), [Packet::Publish(p)] if p.payload.len() == 56);
}

fn publish_queue_full(version: ProtocolVersion) {
    let mut cfg = config(version);
    cfg.max_inflight = 1;
    cfg.max_queued = 1;
    let mut h = connected_with(cfg);
    publish(&mut h, message("a", "1", QoS::AtLeastOnce));
    publish(&mut h, message("a", "2", QoS::AtLeastOnce));
    assert_eq!(h.session.queued_len(), 1);
    assert_eq!(
        publish_err(&mut h, message("a", "3", QoS::AtLeastOnce)),
        SessionError::QueueFull
    );
    assert_eq!(
        publish_err(&mut h, message("a", "4", QoS::AtMostOnce)),
        SessionError::QueueFull,
        "QoS 0 behind a queue waits in it too"
    );
    assert_eq!(h.session.queued_len(), 1);
    assert_matches!(h.sent().as_slice(), [Packet::Publish(p)] if p.payload == "1");
}

#[test]
fn publish_queue_full_while_disconnected() {
    let mut cfg = config(V311);
    cfg.max_queued = 2;
    let mut h = Harness::new(cfg);
    publish(&mut h, message("a", "1", QoS::AtLeastOnce));
    publish(&mut h, message("a", "2", QoS::AtMostOnce));
    assert_eq!(
        publish_err(&mut h, message("a", "3", QoS::AtLeastOnce)),
        SessionError::QueueFull
    );
    assert!(h.sent().is_empty(), "nothing is written before connect");
    h.connect_accepted(ConnectOptions::new(KEEP_ALIVE), false);
    let sent = h.sent();
    assert_matches!(
        sent.as_slice(),
        [Packet::Publish(a), Packet::Publish(b)] if a.payload == "1" && b.payload == "2"
    );
}

fn publish_packet_ids_unique_and_reused_after_completion(version: ProtocolVersion) {
    let mut h = connected(version);
    for payload in ["1", "2", "3"] {
        publish(&mut h, message("a", payload, QoS::AtLeastOnce));
    }
    let ids = |sent: Vec<Packet>| -> Vec<u16> {
        sent.iter()
            .map(|p| match p {
                Packet::Publish(p) => p.packet_id.unwrap().get(),
                Packet::Subscribe(s) => s.packet_id.get(),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    };
    assert_eq!(ids(h.sent()), vec![1, 2, 3]);
    h.feed(PubAck::new(pid(2)));
    // Id 2 completed: it may be used again; 1 and 3 are still in flight.
    publish(&mut h, message("a", "4", QoS::ExactlyOnce));
    publish(&mut h, message("a", "5", QoS::AtLeastOnce));
    sub_token(&mut h, vec![SubscribeFilter::new("s", QoS::AtMostOnce)]);
    assert_eq!(ids(h.sent()), vec![2, 4, 5]);
    // A QoS 2 id is held until PUBCOMP, not PUBREC.
    h.feed(PubRec::new(pid(2)));
    assert_eq!(h.sent(), vec![Packet::PubRel(PubRel::new(pid(2)))]);
    publish(&mut h, message("a", "6", QoS::AtLeastOnce));
    assert_eq!(ids(h.sent()), vec![6]);
    h.feed(PubComp::new(pid(2)));
    publish(&mut h, message("a", "7", QoS::AtLeastOnce));
    assert_eq!(ids(h.sent()), vec![2]);
}

#[test]
fn publish_v5_queued_before_connack_fails_on_server_limits() {
    let mut h = Harness::new(config(V5));
    let token = publish(&mut h, message("a", "x", QoS::ExactlyOnce));
    let ok = message("a", "y", QoS::AtLeastOnce);
    let ok_token = publish(&mut h, ok.clone());
    let connack = ConnAck {
        properties: ConnAckProperties {
            maximum_qos: Some(QoS::AtLeastOnce),
            ..Default::default()
        },
        ..ConnAck::new(false)
    };
    let (_, events) = h.handshake(ConnectOptions::new(KEEP_ALIVE), connack);
    assert_matches!(
        events.as_slice(),
        [
            Event::Connected { .. },
            Event::Published {
                token: t,
                result: Err(PublishError::Refused(SessionError::QoSNotSupported { .. })),
                ..
            },
        ] if *t == token
    );
    assert_eq!(h.sent(), vec![on_wire(&ok, Some(1), false)]);
    h.feed(PubAck::new(pid(1)));
    assert_eq!(h.events(), vec![published(ok_token, ReasonCode::Success)]);
}

#[test]
fn publish_invalid_topic_is_refused() {
    let mut h = connect_v3();
    assert_matches!(
        publish_err(&mut h, message("a/+", "x", QoS::AtMostOnce)),
        SessionError::InvalidTopic(_)
    );
    h.assert_idle();
}

both_versions!(
    publish_qos0_completes_on_poll_transmit,
    publish_qos1_puback_completes,
    publish_qos2_pubrec_pubrel_pubcomp,
    publish_three_pipelined,
    publish_inflight_window_max_inflight,
    publish_queue_full,
    publish_packet_ids_unique_and_reused_after_completion,
);

// ==== PUBLISH in =============================================================================

fn incoming_qos0_delivered(version: ProtocolVersion) {
    let mut h = connected(version);
    let msg = incoming("a/b", "hi", QoS::AtMostOnce, None).with_retain(true);
    h.feed(msg.clone());
    assert_eq!(h.events(), vec![delivered(msg)]);
    assert!(h.sent().is_empty(), "QoS 0 is not acknowledged");
}

fn incoming_qos1_puback_after_poll_event(version: ProtocolVersion) {
    let mut h = connected(version);
    let msg = incoming("a/b", "hi", QoS::AtLeastOnce, Some(7));
    h.feed(msg.clone());
    // Not acknowledged on receipt: only once the application has been handed the message.
    assert!(h.transmit().is_empty(), "PUBACK before delivery");
    assert_eq!(h.session.poll_event(), Some(delivered(msg)));
    assert_eq!(h.transmit(), vec![Packet::PubAck(PubAck::new(pid(7)))]);
    h.assert_idle();
}

fn incoming_qos2_delivered_exactly_once(version: ProtocolVersion) {
    let mut h = connected(version);
    let msg = incoming("a/b", "hi", QoS::ExactlyOnce, Some(9));
    h.feed(msg.clone());
    assert!(h.transmit().is_empty(), "PUBREC before delivery");
    assert_eq!(h.events(), vec![delivered(msg.clone())]);
    assert_eq!(h.transmit(), vec![Packet::PubRec(PubRec::new(pid(9)))]);

    // The server did not see the PUBREC and sends the message again.
    h.feed(Publish { dup: true, ..msg });
    assert!(
        h.events().is_empty(),
        "a duplicate must not be delivered twice"
    );
    assert_eq!(h.sent(), vec![Packet::PubRec(PubRec::new(pid(9)))]);

    h.feed(PubRel::new(pid(9)));
    assert_eq!(h.sent(), vec![Packet::PubComp(PubComp::new(pid(9)))]);
    h.assert_idle();

    // Once complete, the id is free on the server's side: the next PUBLISH with it is new.
    let next = incoming("a/b", "again", QoS::ExactlyOnce, Some(9));
    h.feed(next.clone());
    assert_eq!(h.events(), vec![delivered(next)]);
    assert_eq!(h.sent(), vec![Packet::PubRec(PubRec::new(pid(9)))]);
}

fn incoming_qos2_duplicate_before_delivery_is_dropped(version: ProtocolVersion) {
    let mut h = connected(version);
    let msg = incoming("a/b", "hi", QoS::ExactlyOnce, Some(3));
    h.feed(msg.clone());
    h.feed(Publish {
        dup: true,
        ..msg.clone()
    });
    assert_eq!(h.events(), vec![delivered(msg)]);
    assert_eq!(h.sent(), vec![Packet::PubRec(PubRec::new(pid(3)))]);
}

fn manual_acks_in_reverse_order_go_out_in_arrival_order(version: ProtocolVersion) {
    let mut cfg = config(version);
    cfg.ack_mode = AckMode::Manual;
    let mut h = connected_with(cfg);
    for id in 1..=4 {
        let qos = if id % 2 == 0 {
            QoS::ExactlyOnce
        } else {
            QoS::AtLeastOnce
        };
        h.feed(incoming("t", "x", qos, Some(id)));
    }
    let tokens: Vec<_> = h
        .events()
        .into_iter()
        .map(|event| match event {
            Event::Message(Message { ack: Some(t), .. }) => t,
            other => panic!("expected a message with an ack token: {other:?}"),
        })
        .collect();
    assert_eq!(h.session.incoming_inflight_len(), 4);
    let now = h.now();
    for token in tokens.iter().rev().take(3) {
        h.session.ack(now, *token).unwrap();
        assert!(
            h.sent().is_empty(),
            "nothing may overtake message 1's PUBACK"
        );
    }
    h.session.ack(now, tokens[0]).unwrap();
    assert_eq!(
        h.sent(),
        vec![
            Packet::PubAck(PubAck::new(pid(1))),
            Packet::PubRec(PubRec::new(pid(2))),
            Packet::PubAck(PubAck::new(pid(3))),
            Packet::PubRec(PubRec::new(pid(4))),
        ]
    );
    h.assert_idle();
    // The QoS 1 flows are over; the QoS 2 ones wait for PUBREL.
    assert_eq!(h.session.incoming_inflight_len(), 2);
}

fn manual_ack_mode(version: ProtocolVersion) {
    let mut cfg = config(version);
    cfg.ack_mode = AckMode::Manual;
    let mut h = connected_with(cfg);

    let q0 = incoming("t", "0", QoS::AtMostOnce, None);
    let q1 = incoming("t", "1", QoS::AtLeastOnce, Some(1));
    let q2 = incoming("t", "2", QoS::ExactlyOnce, Some(2));
    h.feed(q0.clone());
    h.feed(q1.clone());
    h.feed(q2.clone());
    let events = h.events();
    let (t1, t2) = match events.as_slice() {
        [
            Event::Message(Message {
                publish: p0,
                ack: None,
            }),
            Event::Message(Message {
                publish: p1,
                ack: Some(t1),
            }),
            Event::Message(Message {
                publish: p2,
                ack: Some(t2),
            }),
        ] if *p0 == q0 && *p1 == q1 && *p2 == q2 => (*t1, *t2),
        other => panic!("expected three messages, two with ack tokens: {other:#?}"),
    };
    assert_eq!(t1.packet_id(), pid(1));
    assert_eq!(t2.packet_id(), pid(2));
    assert!(h.sent().is_empty(), "nothing is acknowledged before ack()");

    // QoS 2 re-sent while unacknowledged: not delivered again, and still no PUBREC.
    h.feed(Publish { dup: true, ..q2 });
    h.assert_idle();

    // Acknowledged out of order: the PUBREC waits for the earlier PUBACK ([MQTT-4.6.0-2]).
    let now = h.now();
    h.session.ack(now, t2).unwrap();
    assert!(h.sent().is_empty(), "PUBREC 2 must wait for PUBACK 1");
    h.session.ack(now, t1).unwrap();
    assert_eq!(
        h.sent(),
        vec![
            Packet::PubAck(PubAck::new(pid(1))),
            Packet::PubRec(PubRec::new(pid(2)))
        ]
    );
    assert_eq!(h.session.ack(now, t1), Err(SessionError::UnknownAckToken));
    assert_eq!(h.session.ack(now, t2), Err(SessionError::UnknownAckToken));
    h.feed(PubRel::new(pid(2)));
    assert_eq!(h.sent(), vec![Packet::PubComp(PubComp::new(pid(2)))]);
    h.assert_idle();
}

#[test]
fn incoming_v5_topic_alias_registers_and_resolves() {
    let mut h = connect_v5();
    let with_alias = |topic: &str, payload: &'static str, alias: u16| Publish {
        properties: PublishProperties {
            topic_alias: Some(alias),
            ..Default::default()
        }
        .into(),
        ..incoming(topic, payload, QoS::AtMostOnce, None)
    };
    h.feed(with_alias("sensors/1", "a", 3));
    h.feed(with_alias("", "b", 3));
    h.feed(with_alias("sensors/2", "c", 3)); // re-mapped
    h.feed(with_alias("", "d", 3));
    let topics: Vec<_> = h
        .events()
        .into_iter()
        .map(|event| match event {
            Event::Message(Message { publish, .. }) => (publish.topic.to_string(), publish.payload),
            other => panic!("expected a message, got {other:?}"),
        })
        .collect();
    assert_eq!(
        topics,
        vec![
            ("sensors/1".to_owned(), "a".into()),
            ("sensors/1".to_owned(), "b".into()),
            ("sensors/2".to_owned(), "c".into()),
            ("sensors/2".to_owned(), "d".into()),
        ]
    );
    h.assert_idle();

    // Aliases live as long as the connection.
    h.close_transport();
    h.events();
    h.connect_accepted(ConnectOptions::new(KEEP_ALIVE), false);
    h.feed(with_alias("", "e", 3));
    assert_protocol_failure(&mut h, &ProtocolError::TopicAliasInvalid(3));
}

#[test]
fn incoming_v5_unknown_topic_alias_disconnects() {
    let mut h = connect_v5();
    h.feed(Publish {
        properties: PublishProperties {
            topic_alias: Some(4),
            ..Default::default()
        }
        .into(),
        ..incoming("", "x", QoS::AtLeastOnce, Some(1))
    });
    assert_protocol_failure(&mut h, &ProtocolError::TopicAliasInvalid(4));
    assert_eq!(
        ProtocolError::TopicAliasInvalid(4).reason_code(),
        ReasonCode::TopicAliasInvalid
    );
}

#[test]
fn incoming_v5_topic_alias_above_maximum_disconnects() {
    let mut cfg = config(V5);
    cfg.topic_alias_maximum = 2;
    let mut h = connected_with(cfg);
    h.feed(Publish {
        properties: PublishProperties {
            topic_alias: Some(3),
            ..Default::default()
        }
        .into(),
        ..incoming("a", "x", QoS::AtMostOnce, None)
    });
    assert_protocol_failure(&mut h, &ProtocolError::TopicAliasInvalid(3));
}

#[test]
fn incoming_v5_receive_maximum_exceeded_disconnects() {
    let mut cfg = config(V5);
    cfg.receive_maximum = 2;
    let mut h = Harness::new(cfg);
    let connect = h.connect_accepted(ConnectOptions::new(KEEP_ALIVE), false);
    assert_eq!(connect.properties.receive_maximum, Some(2));

    // Two unacknowledged QoS 1/2 messages are allowed; acknowledging one frees its slot.
    h.feed(incoming("t", "1", QoS::AtLeastOnce, Some(1)));
    h.feed(incoming("t", "2", QoS::ExactlyOnce, Some(2)));
    assert_eq!(h.events().len(), 2);
    assert_eq!(
        h.sent(),
        vec![
            Packet::PubAck(PubAck::new(pid(1))),
            Packet::PubRec(PubRec::new(pid(2))),
        ]
    );
    // QoS 2 counts until PUBCOMP: id 2 still holds a slot.
    h.feed(incoming("t", "3", QoS::AtLeastOnce, Some(3)));
    h.feed(incoming("t", "4", QoS::AtLeastOnce, Some(4)));
    let events = h.events();
    assert_matches!(
        events.as_slice(),
        [
            Event::Message(_),
            Event::Disconnected {
                reason: ConnectionError::Protocol(ProtocolError::ReceiveMaximumExceeded)
            }
        ]
    );
    assert_eq!(
        h.sent(),
        vec![Packet::from(Disconnect::new(
            ReasonCode::ReceiveMaximumExceeded
        ))],
        "DISCONNECT 0x93 and no PUBACK once the connection is closed"
    );
    assert_eq!(h.session.state(), ConnectionState::Disconnected);
}

/// A server known to overrun the window (mosquitto 2.0) meets `Accept`: the messages beyond
/// the Receive Maximum are delivered and acknowledged in order, and counted.
#[test]
fn incoming_v5_receive_maximum_overrun_accepted_and_counted() {
    let mut cfg = config(V5);
    cfg.receive_maximum = 2;
    cfg.receive_maximum_exceeded = ReceiveMaximumExceeded::Accept;
    let mut h = Harness::new(cfg);
    h.connect_accepted(ConnectOptions::new(KEEP_ALIVE), false);

    // Five unacknowledged (none handed out yet): three beyond the window of two.
    for (i, payload) in [(1, "1"), (2, "2"), (3, "3"), (4, "4")] {
        h.feed(incoming("t", payload, QoS::AtLeastOnce, Some(i)));
    }
    h.feed(incoming("t", "5", QoS::ExactlyOnce, Some(5)));
    assert_eq!(h.session.state(), ConnectionState::Connected);
    assert_eq!(h.session.receive_maximum_overruns(), 3);
    assert_eq!(h.session.incoming_inflight_len(), 5);
    let early = h.transmit();
    assert!(
        early.is_empty(),
        "nothing acknowledged before the application took it: {early:?}"
    );

    let events = h.events();
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| matches!(e, Event::Message(_))));
    assert_eq!(
        h.sent(),
        vec![
            Packet::PubAck(PubAck::new(pid(1))),
            Packet::PubAck(PubAck::new(pid(2))),
            Packet::PubAck(PubAck::new(pid(3))),
            Packet::PubAck(PubAck::new(pid(4))),
            Packet::PubRec(PubRec::new(pid(5))),
        ]
    );
    // Within the window again: not counted.
    h.feed(incoming("t", "6", QoS::AtLeastOnce, Some(6)));
    assert_eq!(h.session.receive_maximum_overruns(), 3);
}

#[test]
fn incoming_v311_has_no_receive_maximum() {
    let mut cfg = config(V311);
    cfg.receive_maximum = 1;
    let mut h = connected_with(cfg);
    h.feed(incoming("t", "1", QoS::AtLeastOnce, Some(1)));
    h.feed(incoming("t", "2", QoS::AtLeastOnce, Some(2)));
    assert_eq!(h.events().len(), 2);
    assert_eq!(h.sent().len(), 2);
}

both_versions!(
    incoming_qos0_delivered,
    incoming_qos1_puback_after_poll_event,
    incoming_qos2_delivered_exactly_once,
    incoming_qos2_duplicate_before_delivery_is_dropped,
    manual_ack_mode,
    manual_acks_in_reverse_order_go_out_in_arrival_order,
);

// ==== SUBSCRIBE / UNSUBSCRIBE ================================================================

#[test]
fn subscribe_v311_suback_failure_code_mapped() {
    let mut h = connect_v3();
    let filters = vec![
        SubscribeFilter::new("a/#", QoS::AtLeastOnce),
        SubscribeFilter::new("b/+", QoS::ExactlyOnce),
    ];
    let token = sub_token(&mut h, filters.clone());
    assert_eq!(
        h.sent(),
        vec![Packet::Subscribe(Subscribe::new(pid(1), filters))]
    );
    // SUBACK id 1: granted QoS 1, failure 0x80.
    h.feed_bytes(&[0x90, 0x04, 0x00, 0x01, 0x01, 0x80]);
    assert_eq!(
        h.events(),
        vec![Event::Subscribed {
            token,
            reason_codes: vec![ReasonCode::GrantedQoS1, ReasonCode::UnspecifiedError],
            properties: AckProperties::default(),
        }]
    );
    assert_eq!(h.session.packet_ids_in_use(), 0);
}

#[test]
fn subscribe_v5_options_and_subscription_identifier_on_the_wire() {
    let mut h = connect_v5();
    let filters = vec![
        SubscribeFilter {
            filter: "a/+".into(),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::DoNotSend,
            },
        },
        SubscribeFilter {
            filter: "b".into(),
            options: SubscriptionOptions {
                qos: QoS::ExactlyOnce,
                retain_handling: RetainHandling::SendAtSubscribeIfNew,
                ..Default::default()
            },
        },
    ];
    let properties = SubscribeProperties {
        subscription_identifier: SubscriptionId::new(42),
        user_properties: vec![UserProperty::new("k", "v")],
    };
    let now = h.now();
    let token = h
        .session
        .subscribe(now, filters.clone(), properties.clone())
        .unwrap();
    assert_eq!(
        h.sent(),
        vec![Packet::Subscribe(Subscribe {
            packet_id: pid(1),
            filters,
            properties,
        })]
    );
    let ack_props = AckProperties {
        reason_string: Some("partly".into()),
        ..Default::default()
    };
    h.feed(SubAck {
        packet_id: pid(1),
        reason_codes: vec![ReasonCode::GrantedQoS1, ReasonCode::QuotaExceeded],
        properties: ack_props.clone(),
    });
    assert_eq!(
        h.events(),
        vec![Event::Subscribed {
            token,
            reason_codes: vec![ReasonCode::GrantedQoS1, ReasonCode::QuotaExceeded],
            properties: ack_props,
        }]
    );
}

fn unsubscribe_unsuback(version: ProtocolVersion) {
    let mut h = connected(version);
    let now = h.now();
    let token = h
        .session
        .unsubscribe(now, vec!["a/#".into(), "b".into()])
        .unwrap();
    assert_eq!(
        h.sent(),
        vec![Packet::Unsubscribe(Unsubscribe::new(
            pid(1),
            vec!["a/#".into(), "b".into()]
        ))]
    );
    let codes = if version.is_v5() {
        vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
    } else {
        Vec::new()
    };
    h.feed(UnsubAck {
        packet_id: pid(1),
        reason_codes: codes.clone(),
        properties: AckProperties::default(),
    });
    assert_eq!(
        h.events(),
        vec![Event::Unsubscribed {
            token,
            reason_codes: codes,
            properties: AckProperties::default(),
        }]
    );
    assert_eq!(h.session.packet_ids_in_use(), 0);
}

fn suback_wrong_count_is_protocol_error(version: ProtocolVersion) {
    let mut h = connected(version);
    sub_token(
        &mut h,
        vec![
            SubscribeFilter::new("a", QoS::AtLeastOnce),
            SubscribeFilter::new("b", QoS::AtLeastOnce),
        ],
    );
    assert_eq!(h.sent().len(), 1);
    h.feed(SubAck {
        packet_id: pid(1),
        reason_codes: vec![ReasonCode::GrantedQoS1],
        properties: AckProperties::default(),
    });
    assert_protocol_failure(
        &mut h,
        &ProtocolError::AckCountMismatch {
            packet: PacketType::SubAck,
            expected: 2,
            got: 1,
        },
    );
}

/// Subscribes and unsubscribes made without a connection wait for the next CONNACK; they go
/// out then, in the order they were made, before the publishes queued meanwhile.
fn subscribe_before_connect_goes_out_at_connack_before_queued_publishes(version: ProtocolVersion) {
    let mut h = Harness::new(config(version));
    let now = h.now();
    let sub = h
        .session
        .subscribe(
            now,
            vec![SubscribeFilter::new("a/#", QoS::AtLeastOnce)],
            SubscribeProperties::default(),
        )
        .unwrap();
    let published = h
        .session
        .publish(now, message("a/x", "early", QoS::AtLeastOnce))
        .unwrap();
    let unsub = h.session.unsubscribe(now, vec!["b".into()]).unwrap();
    h.assert_idle();
    h.session
        .connect(now, ConnectOptions::new(KEEP_ALIVE))
        .unwrap();
    assert_matches!(h.sent().as_slice(), [Packet::Connect(_)]);
    h.feed(ConnAck::new(false));
    let sent = h.sent();
    assert_matches!(
        sent.as_slice(),
        [
            Packet::Subscribe(s),
            Packet::Unsubscribe(u),
            Packet::Publish(p),
        ] if s.filters[0].filter == "a/#" && u.filters[0] == "b" && p.topic == "a/x",
        "{sent:#?}"
    );
    let (Packet::Subscribe(s), Packet::Unsubscribe(u), Packet::Publish(p)) =
        (&sent[0], &sent[1], &sent[2])
    else {
        unreachable!()
    };
    h.feed(SubAck {
        packet_id: s.packet_id,
        reason_codes: vec![ReasonCode::GrantedQoS1],
        properties: AckProperties::default(),
    });
    h.feed(UnsubAck {
        packet_id: u.packet_id,
        reason_codes: if version.is_v5() {
            vec![ReasonCode::NoSubscriptionExisted]
        } else {
            Vec::new()
        },
        properties: AckProperties::default(),
    });
    h.feed(PubAck::new(p.packet_id.unwrap()));
    let events = h.events();
    assert_matches!(
        events.as_slice(),
        [
            Event::Connected { .. },
            Event::Subscribed { token: t1, .. },
            Event::Unsubscribed { token: t2, .. },
            Event::Published { token: t3, result: Ok(_), .. },
        ] if *t1 == sub && *t2 == unsub && *t3 == published,
        "{events:#?}"
    );
    assert_eq!(h.session.packet_ids_in_use(), 0);
}

/// A subscribe and an unsubscribe of the same filter made offline keep their order at the
/// next CONNACK, even after an earlier request was answered (its removal must not reorder
/// the rest), and a re-subscription after a session loss does not undo the unsubscribe.
fn offline_subscribe_and_unsubscribe_keep_their_order(version: ProtocolVersion) {
    let mut h = connected(version);
    let now = h.now();
    // Granted on the first connection: re-subscribed after a session loss.
    h.session
        .subscribe(
            now,
            vec![SubscribeFilter::new("kept", QoS::AtLeastOnce)],
            SubscribeProperties::default(),
        )
        .unwrap();
    h.session
        .subscribe(
            now,
            vec![SubscribeFilter::new("left", QoS::AtLeastOnce)],
            SubscribeProperties::default(),
        )
        .unwrap();
    assert_eq!(h.sent().len(), 2);
    for id in [1, 2] {
        h.feed(SubAck {
            packet_id: pid(id),
            reason_codes: vec![ReasonCode::GrantedQoS1],
            properties: AckProperties::default(),
        });
    }
    let first = h
        .session
        .subscribe(
            now,
            vec![SubscribeFilter::new("first", QoS::AtMostOnce)],
            SubscribeProperties::default(),
        )
        .unwrap();
    let again = h
        .session
        .subscribe(
            now,
            vec![SubscribeFilter::new("x", QoS::AtMostOnce)],
            SubscribeProperties::default(),
        )
        .unwrap();
    h.session.unsubscribe(now, vec!["x".into()]).unwrap();
    let sent = h.sent();
    let [Packet::Subscribe(first_packet), _, _] = sent.as_slice() else {
        panic!("expected three requests, got {sent:#?}");
    };
    // The first one is answered; the other two wait when the connection drops.
    h.feed(SubAck {
        packet_id: first_packet.packet_id,
        reason_codes: vec![ReasonCode::granted(QoS::AtMostOnce)],
        properties: AckProperties::default(),
    });
    h.close_transport();
    let _ = h.events();
    h.session.unsubscribe(now, vec!["left".into()]).unwrap();
    h.assert_idle();
    h.session
        .connect(now, ConnectOptions::new(KEEP_ALIVE))
        .unwrap();
    let _ = h.sent();
    h.feed(ConnAck::new(false));
    let sent = h.sent();
    let order: Vec<String> = sent
        .iter()
        .map(|packet| match packet {
            Packet::Subscribe(s) => s
                .filters
                .iter()
                .map(|f| format!("+{}", f.filter))
                .collect::<Vec<_>>()
                .join(" "),
            Packet::Unsubscribe(u) => format!("-{}", u.filters.join(" -")),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    // "left" is being left: no re-subscription for it; "first" was granted, so it is
    // re-subscribed with "kept".
    assert_eq!(order, ["+x", "-x", "-left", "+kept +first"], "{sent:#?}");
    let _ = (first, again);
}

both_versions!(
    subscribe_before_connect_goes_out_at_connack_before_queued_publishes,
    offline_subscribe_and_unsubscribe_keep_their_order
);

#[test]
fn subscribe_needs_filters() {
    let mut h = Harness::new(config(V311));
    let now = h.now();
    h.connect_accepted(ConnectOptions::new(KEEP_ALIVE), false);
    assert_eq!(
        h.session
            .subscribe(now, Vec::new(), SubscribeProperties::default()),
        Err(SessionError::NoFilters)
    );
    assert_matches!(
        h.session.subscribe(
            now,
            vec![SubscribeFilter::new("a/#/b", QoS::AtMostOnce)],
            SubscribeProperties::default()
        ),
        Err(SessionError::InvalidTopic(_))
    );
    h.assert_idle();
    assert_eq!(h.session.packet_ids_in_use(), 0);
}

both_versions!(unsubscribe_unsuback, suback_wrong_count_is_protocol_error);

// ==== keep-alive =============================================================================

fn keep_alive_pingreq_when_idle(version: ProtocolVersion) {
    let mut h = connected(version);
    // Connected at 0 with nothing sent since the CONNECT: the first PINGREQ is due at 30.
    assert_eq!(h.timeout_offset(), Some(Duration::from_secs(30)));

    // Sending something postpones it; receiving does not.
    h.set_secs(10);
    publish(&mut h, message("a", "x", QoS::AtMostOnce));
    assert_eq!(
        h.timeout_offset(),
        Some(Duration::from_secs(30)),
        "queued is not sent"
    );
    assert_eq!(h.sent().len(), 1);
    assert_eq!(h.timeout_offset(), Some(Duration::from_secs(40)));
    h.set_secs(20);
    h.feed(incoming("b", "y", QoS::AtMostOnce, None));
    assert_eq!(h.events().len(), 2);
    assert_eq!(h.timeout_offset(), Some(Duration::from_secs(40)));

    // A spurious early timeout does nothing.
    h.set_time(Duration::from_millis(39_999));
    h.fire_timers();
    h.assert_idle();
    assert_eq!(h.timeout_offset(), Some(Duration::from_secs(40)));

    h.set_secs(40);
    h.fire_timers();
    assert_eq!(h.sent(), vec![Packet::PingReq(PingReq)]);
    // PINGRESP due by 40 + ping timeout (10); next PINGREQ at 70.
    assert_eq!(h.timeout_offset(), Some(Duration::from_secs(50)));
    assert_eq!(h.session.last_ping(), None, "no ping answered yet");
    h.set_secs(41);
    h.feed(PingResp);
    h.assert_idle();
    let (sent, answered) = h.session.last_ping().expect("the ping was answered");
    assert_eq!(answered - sent, Duration::from_secs(1));
    assert_eq!(h.timeout_offset(), Some(Duration::from_secs(70)));
    h.set_secs(70);
    h.fire_timers();
    assert_eq!(h.sent(), vec![Packet::PingReq(PingReq)]);
}

fn keep_alive_counts_from_connect_transmission(version: ProtocolVersion) {
    // [MQTT-3.1.2-23]: at most keep_alive between two packets sent. The CONNECT went out at 0;
    // a CONNACK that takes 2 s to arrive does not move the first PINGREQ past 30.
    let mut h = Harness::new(config(version));
    h.session
        .connect(h.now(), ConnectOptions::new(KEEP_ALIVE))
        .unwrap();
    assert_eq!(h.sent().len(), 1);
    h.set_secs(2);
    h.feed(ConnAck::new(false));
    assert_matches!(h.events().as_slice(), [Event::Connected { .. }]);
    assert_eq!(h.timeout_offset(), Some(Duration::from_secs(30)));
}

fn keep_alive_continues_after_slow_pingresp(version: ProtocolVersion) {
    // Keep alive 5 s, ping timeout 10 s: a PINGRESP may take longer than the keep alive.
    let mut cfg = config(version);
    cfg.ping_timeout = Duration::from_secs(10);
    let mut h = Harness::new(cfg);
    h.connect_accepted(ConnectOptions::new(Duration::from_secs(5)), false);
    h.set_secs(5);
    h.fire_timers();
    assert_eq!(h.sent(), vec![Packet::PingReq(PingReq)]);
    h.set_secs(7);
    h.feed(PingResp);
    h.assert_idle();
    assert_eq!(h.timeout_offset(), Some(Duration::from_secs(10)));

    // This time the PINGRESP is slow: nothing else is sent, so another PINGREQ is due
    // 5 s after the first ([MQTT-3.1.2-23]), and keep-alive goes on after the answer.
    h.set_secs(10);
    h.fire_timers();
    assert_eq!(h.sent(), vec![Packet::PingReq(PingReq)]);
    h.set_secs(15);
    h.fire_timers();
    assert_eq!(h.sent(), vec![Packet::PingReq(PingReq)]);
    h.set_secs(16);
    h.feed(PingResp);
    h.feed(PingResp);
    let events = h.events();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Disconnected { .. })),
        "{events:?}"
    );
    let next = h
        .session
        .poll_timeout()
        .expect("keep-alive must stay armed after a slow PINGRESP");
    assert!(
        next <= h.at_secs(20),
        "next packet due by 20 s at the latest, got {:?}",
        h.timeout_offset()
    );
}

fn keep_alive_timeout(version: ProtocolVersion) {
    let mut h = connected(version);
    h.set_secs(30);
    h.fire_timers();
    assert_eq!(h.sent(), vec![Packet::PingReq(PingReq)]);
    assert_eq!(h.timeout_offset(), Some(Duration::from_secs(40)));
    h.set_time(Duration::from_millis(39_999));
    h.fire_timers();
    h.assert_idle();
    h.set_secs(40);
    h.fire_timers();
    assert_eq!(
        h.events(),
        vec![Event::Disconnected {
            reason: ConnectionError::KeepAliveTimeout
        }]
    );
    assert_eq!(
        h.sent(),
        close_packets(version, ReasonCode::KeepAliveTimeout)
    );
    assert_eq!(h.session.state(), ConnectionState::Disconnected);
    assert_eq!(h.session.poll_timeout(), None);
}

fn keep_alive_any_packet_defers_ping_timeout(version: ProtocolVersion) {
    let mut h = connected(version);
    h.set_secs(30);
    h.fire_timers();
    assert_eq!(h.sent(), vec![Packet::PingReq(PingReq)]);
    // A busy server may answer late; anything it sends shows it is alive.
    h.set_secs(38);
    h.feed(incoming("a", "x", QoS::AtMostOnce, None));
    h.set_secs(40);
    h.fire_timers();
    assert_matches!(h.events().as_slice(), [Event::Message(_)]);
    assert!(h.session.is_connected());
    h.feed(PingResp);
    h.assert_idle();
}

fn keep_alive_gives_up_when_pings_go_unanswered_by_a_chatty_server(version: ProtocolVersion) {
    // The server keeps publishing (which keeps postponing the ping deadline) but never
    // answers PINGREQ: the unanswered pings are bounded, then the connection is given up.
    let mut h = connected(version);
    let mut pings = 0;
    for second in (5..=600).step_by(5) {
        h.set_secs(second);
        h.feed(incoming("chatter", "x", QoS::AtMostOnce, None));
        h.fire_timers();
        pings += h
            .sent()
            .iter()
            .filter(|p| matches!(p, Packet::PingReq(_)))
            .count();
        if !h.session.is_connected() {
            break;
        }
    }
    assert_eq!(pings, 4, "four PINGREQs, then no more");
    assert_eq!(h.session.state(), ConnectionState::Disconnected);
}

fn ping_command_pong(version: ProtocolVersion) {
    let mut h = connected(version);
    h.set_secs(3);
    let token = h.session.ping(h.now()).unwrap();
    assert_eq!(h.sent(), vec![Packet::PingReq(PingReq)]);
    // The PINGREQ counts as sent: keep-alive from 3.
    assert_eq!(h.timeout_offset(), Some(Duration::from_secs(13)));
    h.set_secs(4);
    h.feed(PingResp);
    assert_eq!(h.events(), vec![Event::Pong { token }]);
    assert_eq!(h.timeout_offset(), Some(Duration::from_secs(33)));
    h.assert_idle();
}

fn pingresp_without_pingreq_is_protocol_error(version: ProtocolVersion) {
    let mut h = connected(version);
    h.feed(PingResp);
    assert_protocol_failure(
        &mut h,
        &ProtocolError::UnexpectedPacket(PacketType::PingResp),
    );
}

#[test]
fn keep_alive_zero_sends_no_pings() {
    let mut h = Harness::new(config(V311));
    let connect = h.connect_accepted(ConnectOptions::new(Duration::ZERO), false);
    assert_eq!(connect.keep_alive, 0);
    assert_eq!(h.session.poll_timeout(), None);
    publish(&mut h, message("a", "x", QoS::AtMostOnce));
    assert_eq!(h.sent().len(), 1);
    assert_eq!(h.session.poll_timeout(), None);
}

#[test]
fn ping_needs_a_connection() {
    let mut h = Harness::new(config(V311));
    assert_eq!(h.session.ping(h.now()), Err(SessionError::NotConnected));
}

/// While the adapter has stopped reading on purpose, keep-alive PINGREQs go out on schedule
/// but no ping deadline runs, however many go unanswered; once it reads again, the deadline
/// starts from that moment.
fn paused_reading_suspends_the_ping_deadline_but_not_the_pings(version: ProtocolVersion) {
    let mut h = connected(version);
    h.set_secs(30);
    h.fire_timers();
    assert_eq!(h.sent(), vec![Packet::PingReq(PingReq)]);
    assert_eq!(
        h.timeout_offset(),
        Some(Duration::from_secs(40)),
        "PINGRESP due"
    );
    let now = h.now();
    h.session.set_reading_paused(now, true);
    assert_eq!(
        h.timeout_offset(),
        Some(Duration::from_secs(60)),
        "only the next PINGREQ"
    );
    // Twenty keep-alive periods: far past the ping timeout and the bound on unanswered pings.
    for period in 2..=21u64 {
        h.set_secs(30 * period);
        h.fire_timers();
        assert_eq!(h.sent(), vec![Packet::PingReq(PingReq)], "period {period}");
        assert!(
            h.events().is_empty(),
            "period {period}: the connection stays"
        );
    }
    assert_eq!(h.session.state(), ConnectionState::Connected);
    // Reading again at 640: the 21 PINGRESPs are due by 650.
    h.set_secs(640);
    let now = h.now();
    h.session.set_reading_paused(now, false);
    assert_eq!(h.timeout_offset(), Some(Duration::from_secs(650)));
    for _ in 0..21 {
        h.feed(PingResp);
    }
    h.assert_idle();
    assert_eq!(
        h.timeout_offset(),
        Some(Duration::from_secs(660)),
        "next PINGREQ"
    );

    // Paused again, then resumed with the PINGRESP still missing: the deadline applies.
    h.set_secs(660);
    h.fire_timers();
    assert_eq!(h.sent(), vec![Packet::PingReq(PingReq)]);
    let now = h.now();
    h.session.set_reading_paused(now, true);
    h.set_secs(700);
    let now = h.now();
    h.session.set_reading_paused(now, false);
    h.set_secs(710);
    h.fire_timers();
    assert_eq!(
        h.events(),
        vec![Event::Disconnected {
            reason: ConnectionError::KeepAliveTimeout
        }]
    );
}

both_versions!(
    keep_alive_pingreq_when_idle,
    paused_reading_suspends_the_ping_deadline_but_not_the_pings,
    keep_alive_counts_from_connect_transmission,
    keep_alive_continues_after_slow_pingresp,
    keep_alive_timeout,
    keep_alive_any_packet_defers_ping_timeout,
    keep_alive_gives_up_when_pings_go_unanswered_by_a_chatty_server,
    ping_command_pong,
    pingresp_without_pingreq_is_protocol_error,
);

// ==== reconnect ==============================================================================

fn resume(version: ProtocolVersion) -> ConnectOptions {
    let mut options = ConnectOptions::new(KEEP_ALIVE);
    options.clean_start = false;
    if version.is_v5() {
        options.session_expiry_interval = Some(u32::MAX);
    }
    options
}

fn transport_closed_reports_disconnected(version: ProtocolVersion) {
    let mut h = connected(version);
    publish(&mut h, message("a", "x", QoS::AtMostOnce));
    let t1 = publish(&mut h, message("a", "y", QoS::AtLeastOnce));
    // The transport fails before the bytes are written.
    h.close_transport();
    let events = h.events();
    assert_matches!(
        events.as_slice(),
        [
            Event::Published {
                result: Err(PublishError::ConnectionLost),
                ..
            },
            Event::Disconnected {
                reason: ConnectionError::TransportClosed
            },
        ]
    );
    assert!(
        h.transmit().is_empty(),
        "nothing to write on a closed transport"
    );
    assert_eq!(h.session.state(), ConnectionState::Disconnected);
    assert_eq!(h.session.poll_timeout(), None);
    assert_eq!(
        h.session.inflight_len(),
        1,
        "QoS 1 survives for the next connection"
    );
    // A second close is not reported again.
    h.close_transport();
    h.assert_idle();
    // Commands that need a connection are refused; publish queues.
    assert_eq!(h.session.ping(h.now()), Err(SessionError::NotConnected));
    assert_ne!(publish(&mut h, message("a", "z", QoS::AtLeastOnce)), t1);
    assert_eq!(h.session.queued_len(), 1);
}

fn reconnect_session_present_resends_in_order(version: ProtocolVersion) {
    let mut h = Harness::new(config(version));
    h.connect_accepted(resume(version), false);
    let a = message("a", "1", QoS::AtLeastOnce);
    let b = message("b", "2", QoS::ExactlyOnce);
    let c = message("c", "3", QoS::ExactlyOnce);
    let ta = publish(&mut h, a.clone());
    let tb = publish(&mut h, b);
    let tc = publish(&mut h, c.clone());
    assert_eq!(h.sent().len(), 3);
    h.feed(PubRec::new(pid(2)));
    assert_eq!(h.sent(), vec![Packet::PubRel(PubRel::new(pid(2)))]);

    h.close_transport();
    assert_matches!(h.events().as_slice(), [Event::Disconnected { .. }]);
    let d = message("d", "4", QoS::AtLeastOnce);
    let td = publish(&mut h, d.clone());
    assert_eq!(h.session.queued_len(), 1);

    h.set_secs(5);
    h.connect_accepted(resume(version), true);
    // [MQTT-4.4.0-1]: PUBREL first (they free the broker's receive quota), in the order of
    // the PUBRECs, then PUBLISH re-sent with DUP in their original order; then what was queued.
    assert_eq!(
        h.sent(),
        vec![
            Packet::PubRel(PubRel::new(pid(2))),
            on_wire(&a, Some(1), true),
            on_wire(&c, Some(3), true),
            on_wire(&d, Some(4), false),
        ]
    );
    h.feed(PubAck::new(pid(1)));
    h.feed(PubComp::new(pid(2)));
    h.feed(PubRec::new(pid(3)));
    h.feed(PubAck::new(pid(4)));
    assert_eq!(h.sent(), vec![Packet::PubRel(PubRel::new(pid(3)))]);
    h.feed(PubComp::new(pid(3)));
    assert_eq!(
        h.events(),
        vec![
            published(ta, ReasonCode::Success),
            published(tb, ReasonCode::Success),
            published(td, ReasonCode::Success),
            published(tc, ReasonCode::Success),
        ]
    );
    assert_eq!(h.session.inflight_len(), 0);
    assert_eq!(h.session.packet_ids_in_use(), 0);
}

fn reconnect_session_lost_resends_as_new(version: ProtocolVersion) {
    let mut cfg = config(version);
    cfg.max_inflight = 2;
    cfg.session_loss_policy = SessionLossPolicy::Resend;
    let mut h = Harness::new(cfg);
    h.connect_accepted(resume(version), false);
    let b = message("b", "past-pubrec", QoS::ExactlyOnce);
    let a = message("a", "unacked", QoS::AtLeastOnce);
    let c = message("c", "queued", QoS::AtLeastOnce);
    let tb = publish(&mut h, b);
    assert_eq!(h.sent().len(), 1);
    h.feed(PubRec::new(pid(1)));
    assert_eq!(h.sent(), vec![Packet::PubRel(PubRel::new(pid(1)))]);
    let ta = publish(&mut h, a.clone());
    let tc = publish(&mut h, c);
    assert_eq!(h.sent(), vec![on_wire(&a, Some(2), false)]);
    assert_eq!(h.session.queued_len(), 1);

    h.close_transport();
    h.events();
    let (_, events) = h.handshake(resume(version), ConnAck::new(false));
    // B's PUBREC arrived: the server owns it, it completes. A goes out again as a new message
    // (DUP 0), and the queued C after it.
    assert_eq!(
        events,
        vec![
            Event::Connected {
                session_present: false,
                properties: Box::default(),
            },
            published(tb, ReasonCode::Success),
        ]
    );
    let sent = h.sent();
    assert_matches!(
        sent.as_slice(),
        [Packet::Publish(first), Packet::Publish(second)]
            if first.payload == "unacked" && !first.dup
                && second.payload == "queued" && !second.dup
                && first.packet_id != second.packet_id,
        "re-sent message before the queued one"
    );
    let (ida, idc) = match sent.as_slice() {
        [Packet::Publish(first), Packet::Publish(second)] => {
            (first.packet_id.unwrap(), second.packet_id.unwrap())
        }
        _ => unreachable!(),
    };
    h.feed(PubAck::new(ida));
    h.feed(PubAck::new(idc));
    assert_eq!(
        h.events(),
        vec![
            published(ta, ReasonCode::Success),
            published(tc, ReasonCode::Success),
        ]
    );
}

fn reconnect_session_lost_fail_policy(version: ProtocolVersion) {
    let mut cfg = config(version);
    cfg.session_loss_policy = SessionLossPolicy::Fail;
    let mut h = Harness::new(cfg);
    h.connect_accepted(resume(version), false);
    let t1 = publish(&mut h, message("a", "1", QoS::AtLeastOnce));
    let t2 = publish(&mut h, message("a", "2", QoS::ExactlyOnce));
    assert_eq!(h.sent().len(), 2);
    h.close_transport();
    h.events();
    let queued = message("a", "3", QoS::AtLeastOnce);
    let t3 = publish(&mut h, queued.clone());
    let (_, events) = h.handshake(resume(version), ConnAck::new(false));
    assert_eq!(
        events,
        vec![
            Event::Connected {
                session_present: false,
                properties: Box::default(),
            },
            Event::Published {
                token: t1,
                result: Err(PublishError::SessionLost),
                properties: Default::default(),
            },
            Event::Published {
                token: t2,
                result: Err(PublishError::SessionLost),
                properties: Default::default(),
            },
        ]
    );
    // Queued messages were never sent: they go out normally.
    assert_eq!(h.sent(), vec![on_wire(&queued, Some(1), false)]);
    h.feed(PubAck::new(pid(1)));
    assert_eq!(h.events(), vec![published(t3, ReasonCode::Success)]);
}

fn reconnect_resubscribes_after_session_loss(version: ProtocolVersion) {
    let mut h = connected(version);
    let token = sub_token(
        &mut h,
        vec![
            SubscribeFilter::new("a/#", QoS::AtLeastOnce),
            SubscribeFilter::new("denied", QoS::AtMostOnce),
        ],
    );
    assert_eq!(h.sent().len(), 1);
    h.feed(SubAck {
        packet_id: pid(1),
        reason_codes: vec![ReasonCode::GrantedQoS1, ReasonCode::UnspecifiedError],
        properties: AckProperties::default(),
    });
    assert_matches!(h.events().as_slice(), [Event::Subscribed { token: t, .. }] if *t == token);

    // Session kept: nothing to do.
    h.close_transport();
    h.events();
    h.connect_accepted(resume(version), true);
    h.assert_idle();

    // Session lost: the granted filter is subscribed again.
    h.close_transport();
    h.events();
    h.connect_accepted(resume(version), false);
    assert_eq!(
        h.sent(),
        vec![Packet::Subscribe(Subscribe::new(
            pid(1),
            vec![SubscribeFilter::new("a/#", QoS::AtLeastOnce)]
        ))]
    );
    h.feed(SubAck {
        packet_id: pid(1),
        reason_codes: vec![ReasonCode::GrantedQoS1],
        properties: AckProperties::default(),
    });
    assert_eq!(
        h.events(),
        vec![Event::Resubscribed {
            reason_codes: vec![ReasonCode::GrantedQoS1]
        }]
    );
    assert_eq!(h.session.packet_ids_in_use(), 0);
}

#[test]
fn resubscribe_keeps_each_subscriptions_identifier_and_user_properties() {
    let mut h = connect_v5();
    let with_id = SubscribeProperties {
        subscription_identifier: SubscriptionId::new(7),
        user_properties: vec![UserProperty::new("origin", "sensors")],
    };
    let now = h.now();
    h.session
        .subscribe(
            now,
            vec![SubscribeFilter::new("a/#", QoS::AtLeastOnce)],
            with_id.clone(),
        )
        .unwrap();
    h.session
        .subscribe(
            now,
            vec![SubscribeFilter::new("b", QoS::AtMostOnce)],
            SubscribeProperties::default(),
        )
        .unwrap();
    assert_eq!(h.sent().len(), 2);
    for id in [1, 2] {
        h.feed(SubAck {
            packet_id: pid(id),
            reason_codes: vec![ReasonCode::Success],
            properties: AckProperties::default(),
        });
    }
    h.events();

    // The broker lost the session: each subscription comes back with its own properties.
    h.close_transport();
    h.events();
    h.connect_accepted(resume(V5), false);
    assert_eq!(
        h.sent(),
        vec![
            Packet::Subscribe(Subscribe {
                packet_id: pid(1),
                filters: vec![SubscribeFilter::new("a/#", QoS::AtLeastOnce)],
                properties: with_id,
            }),
            Packet::Subscribe(Subscribe::new(
                pid(2),
                vec![SubscribeFilter::new("b", QoS::AtMostOnce)]
            )),
        ]
    );
}

#[test]
fn reconnect_resubscribe_off() {
    let mut cfg = config(V311);
    cfg.resubscribe = false;
    let mut h = connected_with(cfg);
    sub_token(&mut h, vec![SubscribeFilter::new("a", QoS::AtLeastOnce)]);
    h.sent();
    h.feed(SubAck {
        packet_id: pid(1),
        reason_codes: vec![ReasonCode::GrantedQoS1],
        properties: AckProperties::default(),
    });
    h.events();
    h.close_transport();
    h.events();
    h.connect_accepted(ConnectOptions::new(KEEP_ALIVE), false);
    h.assert_idle();
}

fn reconnect_subscribe_in_flight_is_resent(version: ProtocolVersion) {
    let mut h = connected(version);
    let filters = vec![SubscribeFilter::new("x/#", QoS::ExactlyOnce)];
    let token = sub_token(&mut h, filters.clone());
    let now = h.now();
    let untoken = h.session.unsubscribe(now, vec!["y".into()]).unwrap();
    assert_eq!(h.sent().len(), 2);
    h.close_transport();
    h.events();
    // Session lost: the subscribe is re-sent once (not also as a re-subscription).
    h.connect_accepted(resume(version), false);
    assert_eq!(
        h.sent(),
        vec![
            Packet::Subscribe(Subscribe::new(pid(1), filters)),
            Packet::Unsubscribe(Unsubscribe::new(pid(2), vec!["y".into()])),
        ]
    );
    h.feed(SubAck {
        packet_id: pid(1),
        reason_codes: vec![ReasonCode::GrantedQoS2],
        properties: AckProperties::default(),
    });
    let codes = if version.is_v5() {
        vec![ReasonCode::NoSubscriptionExisted]
    } else {
        Vec::new()
    };
    h.feed(UnsubAck {
        packet_id: pid(2),
        reason_codes: codes.clone(),
        properties: AckProperties::default(),
    });
    assert_eq!(
        h.events(),
        vec![
            Event::Subscribed {
                token,
                reason_codes: vec![ReasonCode::GrantedQoS2],
                properties: AckProperties::default(),
            },
            Event::Unsubscribed {
                token: untoken,
                reason_codes: codes,
                properties: AckProperties::default(),
            },
        ]
    );
    h.assert_idle();
}

fn reconnect_incoming_qos2_survives(version: ProtocolVersion) {
    let mut h = Harness::new(config(version));
    h.connect_accepted(resume(version), false);
    let msg = incoming("in", "once", QoS::ExactlyOnce, Some(7));
    h.feed(msg.clone());
    assert_eq!(h.events(), vec![delivered(msg.clone())]);
    assert_eq!(h.sent(), vec![Packet::PubRec(PubRec::new(pid(7)))]);

    // The PUBREC was lost with the connection: the server re-sends the PUBLISH with DUP.
    h.close_transport();
    h.events();
    h.connect_accepted(resume(version), true);
    h.feed(Publish { dup: true, ..msg });
    assert!(h.events().is_empty(), "delivered twice after a reconnect");
    assert_eq!(h.sent(), vec![Packet::PubRec(PubRec::new(pid(7)))]);

    // This time the PUBCOMP is lost: the server re-sends PUBREL.
    h.close_transport();
    h.events();
    h.connect_accepted(resume(version), true);
    h.feed(PubRel::new(pid(7)));
    assert_eq!(h.sent(), vec![Packet::PubComp(PubComp::new(pid(7)))]);
    h.assert_idle();
}

fn ack_from_a_lost_session_does_not_acknowledge_a_new_message_with_its_id(
    version: ProtocolVersion,
) {
    let mut cfg = config(version);
    cfg.ack_mode = AckMode::Manual;
    let mut h = Harness::new(cfg);
    h.connect_accepted(resume(version), false);
    let old = incoming("in", "old", QoS::ExactlyOnce, Some(1));
    h.feed(old);
    let old_token = match h.events().as_slice() {
        [Event::Message(Message { ack: Some(t), .. })] => *t,
        other => panic!("expected one message: {other:?}"),
    };
    // The server loses the session; a new message reuses identifier 1.
    h.close_transport();
    h.events();
    h.connect_accepted(resume(version), false);
    h.events();
    h.sent();
    let new = incoming("in", "new", QoS::ExactlyOnce, Some(1));
    h.feed(new);
    let new_token = match h.events().as_slice() {
        [Event::Message(Message { ack: Some(t), .. })] => *t,
        other => panic!("expected the new message: {other:?}"),
    };
    let now = h.now();
    h.session.ack(now, old_token).unwrap();
    assert!(
        h.sent().is_empty(),
        "the old message's acknowledgement acknowledged the new one"
    );
    h.session.ack(now, new_token).unwrap();
    assert_eq!(h.sent(), vec![Packet::PubRec(PubRec::new(pid(1)))]);
}

fn reconnect_incoming_qos1_unacked_is_not_acked_on_new_connection(version: ProtocolVersion) {
    let mut cfg = config(version);
    cfg.ack_mode = AckMode::Manual;
    let mut h = Harness::new(cfg);
    h.connect_accepted(resume(version), false);
    let msg = incoming("in", "x", QoS::AtLeastOnce, Some(5));
    h.feed(msg.clone());
    let events = h.events();
    let token = match events.as_slice() {
        [
            Event::Message(Message {
                ack: Some(token), ..
            }),
        ] => *token,
        other => panic!("{other:#?}"),
    };
    h.close_transport();
    h.events();
    h.connect_accepted(resume(version), true);
    // The server re-sends it on this connection; the stale token acknowledges nothing.
    let now = h.now();
    h.session.ack(now, token).unwrap();
    h.assert_idle();
    h.feed(Publish { dup: true, ..msg });
    let events = h.events();
    let token = match events.as_slice() {
        [
            Event::Message(Message {
                ack: Some(token), ..
            }),
        ] => *token,
        other => panic!("{other:#?}"),
    };
    h.session.ack(now, token).unwrap();
    assert_eq!(h.sent(), vec![Packet::PubAck(PubAck::new(pid(5)))]);
}

both_versions!(
    transport_closed_reports_disconnected,
    reconnect_session_present_resends_in_order,
    reconnect_session_lost_resends_as_new,
    reconnect_session_lost_fail_policy,
    reconnect_resubscribes_after_session_loss,
    reconnect_subscribe_in_flight_is_resent,
    reconnect_incoming_qos2_survives,
    reconnect_incoming_qos1_unacked_is_not_acked_on_new_connection,
    ack_from_a_lost_session_does_not_acknowledge_a_new_message_with_its_id,
);

// ==== protocol errors ========================================================================

fn malformed_remaining_length(version: ProtocolVersion) {
    let mut h = connected(version);
    // PUBLISH whose remaining length runs to a fifth byte.
    h.feed_bytes(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
    let expected = ProtocolError::Decode(DecodeError::MalformedVarInt);
    assert_eq!(expected.reason_code(), ReasonCode::MalformedPacket);
    assert_protocol_failure(&mut h, &expected);
}

fn malformed_bytes_split_across_reads(version: ProtocolVersion) {
    // The error is found however the bytes are cut.
    let mut h = connected(version);
    h.feed_bytes(&[0x30, 0xff]);
    h.feed_bytes(&[0xff, 0xff]);
    h.assert_idle();
    h.feed_bytes(&[0xff]);
    assert_protocol_failure(&mut h, &ProtocolError::Decode(DecodeError::MalformedVarInt));
}

fn puback_unknown_id_is_protocol_error(version: ProtocolVersion) {
    let mut h = connected(version);
    publish(&mut h, message("a", "x", QoS::AtLeastOnce));
    h.sent();
    h.feed(PubAck::new(pid(2)));
    assert_protocol_failure(
        &mut h,
        &ProtocolError::UnknownPacketId {
            packet: PacketType::PubAck,
            id: 2,
        },
    );
}

fn pubcomp_before_pubrec_is_protocol_error(version: ProtocolVersion) {
    let mut h = connected(version);
    publish(&mut h, message("a", "x", QoS::ExactlyOnce));
    h.sent();
    h.feed(PubComp::new(pid(1)));
    assert_protocol_failure(
        &mut h,
        &ProtocolError::UnexpectedAck {
            packet: PacketType::PubComp,
            id: 1,
            expected: PacketType::PubRec,
        },
    );
}

/// RabbitMQ answers a QoS 2 PUBLISH with PUBACK: an acknowledgement of the wrong type for
/// an identifier in flight, said as such.
fn puback_for_qos2_publish_is_an_unexpected_ack(version: ProtocolVersion) {
    let mut h = connected(version);
    publish(&mut h, message("a", "x", QoS::ExactlyOnce));
    h.sent();
    h.feed(PubAck::new(pid(1)));
    let expected = ProtocolError::UnexpectedAck {
        packet: PacketType::PubAck,
        id: 1,
        expected: PacketType::PubRec,
    };
    assert_eq!(
        expected.to_string(),
        "PUBACK for packet identifier 1, which awaits PUBREC"
    );
    assert_protocol_failure(&mut h, &expected);
}

fn publish_before_connack_is_protocol_error(version: ProtocolVersion) {
    let mut h = Harness::new(config(version));
    h.session
        .connect(h.now(), ConnectOptions::new(KEEP_ALIVE))
        .unwrap();
    assert_eq!(h.sent().len(), 1);
    h.feed(incoming("a", "x", QoS::AtMostOnce, None));
    assert_protocol_failure(
        &mut h,
        &ProtocolError::UnexpectedPacket(PacketType::Publish),
    );
}

fn connack_twice_is_protocol_error(version: ProtocolVersion) {
    let mut h = connected(version);
    h.feed(ConnAck::new(false));
    assert_protocol_failure(
        &mut h,
        &ProtocolError::UnexpectedPacket(PacketType::ConnAck),
    );
}

fn packet_over_max_packet_size(version: ProtocolVersion) {
    let mut cfg = config(version);
    cfg.max_packet_size = 64;
    let mut h = connected_with(cfg);
    let big = Publish::new("a", vec![0u8; 100]);
    let size = common::encode(&big.clone().into(), version).len();
    h.feed(big);
    let expected = ProtocolError::Decode(DecodeError::PacketTooLarge { size, max: 64 });
    assert_eq!(expected.reason_code(), ReasonCode::PacketTooLarge);
    assert_protocol_failure(&mut h, &expected);
}

fn fatal_error_disconnect_then_disconnected(version: ProtocolVersion) {
    let mut h = connected(version);
    // An acknowledgement was pending when the error hit: it is dropped, DISCONNECT only.
    h.feed(incoming("a", "x", QoS::AtLeastOnce, Some(1)));
    h.feed(PubAck::new(pid(1)));
    let events = h.events();
    assert_matches!(
        events.as_slice(),
        [
            Event::Message(_),
            Event::Disconnected {
                reason: ConnectionError::Protocol(_)
            }
        ]
    );
    if version.is_v5() {
        assert_eq!(h.session.state(), ConnectionState::Closing);
        let bytes = h.session.poll_transmit(h.now()).unwrap();
        assert_eq!(
            common::decode_all(&mut bytes.as_ref().into(), version),
            vec![Packet::from(Disconnect::new(ReasonCode::ProtocolError))]
        );
    }
    assert_eq!(h.session.state(), ConnectionState::Disconnected);
    assert_eq!(h.session.poll_transmit(h.now()), None);
    // Bytes after the end are ignored, and the session can connect again.
    h.feed(PubAck::new(pid(1)));
    h.feed_bytes(&[0xff, 0xff]);
    h.assert_idle();
    h.connect_accepted(ConnectOptions::new(KEEP_ALIVE), false);
}

fn server_disconnect_ends_connection(version: ProtocolVersion) {
    let mut h = connected(version);
    if version.is_v5() {
        let mut disconnect = Disconnect::new(ReasonCode::ServerShuttingDown);
        disconnect.properties.reason_string = Some("maintenance".into());
        disconnect.properties.user_properties = vec![UserProperty::new("back", "10m")];
        h.feed(disconnect);
        assert_eq!(
            h.events(),
            vec![Event::Disconnected {
                reason: ConnectionError::ServerDisconnected(ServerReason::with_properties(
                    ReasonCode::ServerShuttingDown,
                    Some("maintenance".into()),
                    vec![UserProperty::new("back", "10m")],
                ))
            }]
        );
        assert!(h.sent().is_empty(), "no DISCONNECT in reply to one");
        assert_eq!(h.session.state(), ConnectionState::Disconnected);
    } else {
        // A 3.1.1 server never sends DISCONNECT.
        h.feed(Disconnect::default());
        assert_protocol_failure(
            &mut h,
            &ProtocolError::UnexpectedPacket(PacketType::Disconnect),
        );
    }
}

both_versions!(
    malformed_remaining_length,
    malformed_bytes_split_across_reads,
    puback_unknown_id_is_protocol_error,
    pubcomp_before_pubrec_is_protocol_error,
    puback_for_qos2_publish_is_an_unexpected_ack,
    publish_before_connack_is_protocol_error,
    connack_twice_is_protocol_error,
    packet_over_max_packet_size,
    fatal_error_disconnect_then_disconnected,
    server_disconnect_ends_connection,
);

// ==== partial input ==========================================================================

fn packets_split_and_coalesced(version: ProtocolVersion) {
    let mut h = connected(version);
    let a = incoming("a", "1", QoS::AtMostOnce, None);
    let b = incoming("b", "2", QoS::AtLeastOnce, Some(1));
    let mut wire = common::encode(&a.clone().into(), version);
    wire.extend_from_slice(&common::encode(&b.clone().into(), version));
    // One byte at a time, then the rest.
    for byte in &wire[..wire.len() - 3] {
        h.feed_bytes(std::slice::from_ref(byte));
    }
    assert_eq!(h.session.pending_events(), 1);
    h.feed_bytes(&wire[wire.len() - 3..]);
    assert_eq!(h.events(), vec![delivered(a), delivered(b)]);
    assert_eq!(h.sent(), vec![Packet::PubAck(PubAck::new(pid(1)))]);
    assert_eq!(h.session.buffered_len(), 0);
}

both_versions!(packets_split_and_coalesced);

// ==== disconnect() ===========================================================================

fn disconnect_after_queued_packets(version: ProtocolVersion) {
    let mut h = connected(version);
    let m0 = message("a", "0", QoS::AtMostOnce);
    let m1 = message("a", "1", QoS::AtLeastOnce);
    let t0 = publish(&mut h, m0.clone());
    publish(&mut h, m1.clone());
    let reason = Disconnect::new(ReasonCode::DisconnectWithWillMessage);
    h.session.disconnect(h.now(), reason.clone()).unwrap();
    assert_eq!(
        h.session.poll_event(),
        Some(Event::Disconnected {
            reason: ConnectionError::Local
        })
    );
    assert_eq!(h.session.state(), ConnectionState::Closing);
    let bytes = h.session.poll_transmit(h.now()).unwrap();
    assert_eq!(h.session.state(), ConnectionState::Disconnected);
    let expected_disconnect = if version.is_v5() {
        reason
    } else {
        Disconnect::default()
    };
    assert_eq!(
        common::decode_all(&mut bytes.as_ref().into(), version),
        vec![
            on_wire(&m0, None, false),
            on_wire(&m1, Some(1), false),
            Packet::from(expected_disconnect),
        ]
    );
    // The QoS 0 message was handed out with the DISCONNECT.
    assert_eq!(h.events(), vec![published(t0, ReasonCode::Success)]);
    assert_eq!(h.session.poll_transmit(h.now()), None);
    assert_eq!(h.session.poll_timeout(), None);
    assert_eq!(
        h.session.inflight_len(),
        1,
        "QoS 1 stays for the next connection"
    );
    assert_eq!(
        h.session.disconnect(h.now(), Disconnect::default()),
        Err(SessionError::NotConnected)
    );
    // The transport closing now is expected: no second Disconnected.
    h.close_transport();
    h.assert_idle();
}

fn disconnect_while_connecting(version: ProtocolVersion) {
    let mut h = Harness::new(config(version));
    h.session
        .connect(h.now(), ConnectOptions::new(KEEP_ALIVE))
        .unwrap();
    h.session
        .disconnect(h.now(), Disconnect::default())
        .unwrap();
    assert_matches!(
        h.sent().as_slice(),
        [Packet::Connect(_), Packet::Disconnect(_)]
    );
    assert_eq!(
        h.events(),
        vec![Event::Disconnected {
            reason: ConnectionError::Local
        }]
    );
    assert_eq!(h.session.state(), ConnectionState::Disconnected);
    assert_eq!(h.session.poll_timeout(), None, "no CONNACK deadline left");
}

both_versions!(disconnect_after_queued_packets, disconnect_while_connecting);

#[test]
fn connect_twice_is_refused() {
    let mut h = connect_v3();
    assert_eq!(
        h.session.connect(h.now(), ConnectOptions::new(KEEP_ALIVE)),
        Err(SessionError::AlreadyConnected)
    );
    h.assert_idle();
}

#[test]
fn manual_ack_mode_qos0_has_no_token() {
    // A QoS 0 message carries no token even in manual mode.
    let mut cfg = config(V5);
    cfg.ack_mode = AckMode::Manual;
    let mut h = connected_with(cfg);
    h.feed(incoming("a", "x", QoS::AtMostOnce, None));
    assert_matches!(
        h.events().as_slice(),
        [Event::Message(Message { ack: None, .. })]
    );
}

/// A client that refused messages reconnects for them only once the application has
/// acknowledged every message it took: before that, the taken ones would come again too.
#[test]
fn refused_messages_wait_for_the_acknowledgements_of_the_taken_ones() {
    let mut cfg = config(V311);
    cfg.ack_mode = AckMode::Manual;
    let mut h = connected_with(cfg);
    for id in 1..=3 {
        h.feed(incoming("t", "x", QoS::AtLeastOnce, Some(id)));
    }
    let tokens: Vec<_> = h
        .events()
        .into_iter()
        .map(|event| match event {
            Event::Message(Message { ack: Some(t), .. }) => t,
            other => panic!("expected a message with an ack token: {other:?}"),
        })
        .collect();
    let now = h.now();
    // The third is given back; the first two are with the application.
    h.session.refuse(now, tokens[2]).unwrap();
    assert!(!h.session.acknowledged_all_but_refused());
    h.session.ack(now, tokens[1]).unwrap();
    assert!(
        !h.session.acknowledged_all_but_refused(),
        "the second's PUBACK waits for the first's"
    );
    h.session.ack(now, tokens[0]).unwrap();
    assert!(h.session.acknowledged_all_but_refused());
    assert_eq!(
        h.sent(),
        vec![
            Packet::PubAck(PubAck::new(pid(1))),
            Packet::PubAck(PubAck::new(pid(2))),
        ]
    );
}
