//! `ClientConfig` loads from the shape of amqtt's dict configuration (feature `serde`).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use mqtt_tokio::{ClientConfig, Jitter, ProtocolVersion, QoS};

#[test]
fn client_config_loads_from_an_amqtt_shaped_document() {
    let config: ClientConfig = serde_json::from_str(
        r#"{
            "keep_alive": 15,
            "ping_delay": 1.5,
            "default_qos": 1,
            "default_retain": true,
            "auto_reconnect": false,
            "reconnect_retries": -1,
            "reconnect_max_interval": 30,
            "clean_session": false,
            "will": {"topic": "clients/x/state", "message": "gone", "qos": 1, "retain": true},
            "topics": {"a/b": {"qos": 2, "retain": false}},
            "uri": "mqtt://127.0.0.1:1883/",
            "check_hostname": false,
            "protocol_version": "5.0",
            "max_inflight": 20
        }"#,
    )
    .unwrap();
    assert_eq!(config.keep_alive, Duration::from_secs(15));
    assert_eq!(config.ping_delay, Duration::from_millis(1500));
    assert_eq!(config.default_qos, QoS::AtLeastOnce);
    assert!(config.default_retain);
    assert!(!config.auto_reconnect);
    assert_eq!(config.reconnect_retries, None, "negative means forever");
    assert_eq!(config.reconnect_max_interval, Duration::from_secs(30));
    assert!(!config.clean_session);
    let will = config.will.as_ref().unwrap();
    assert_eq!(
        (
            will.topic.as_str(),
            will.message.as_slice(),
            will.qos,
            will.retain
        ),
        ("clients/x/state", &b"gone"[..], QoS::AtLeastOnce, true)
    );
    assert_eq!(config.topics["a/b"].qos, Some(QoS::ExactlyOnce));
    assert_eq!(config.uri.as_deref(), Some("mqtt://127.0.0.1:1883/"));
    assert!(!config.check_hostname);
    assert_eq!(config.protocol_version, ProtocolVersion::V5);
    assert_eq!(config.max_inflight, Some(20));
    // Everything not given keeps its default.
    assert_eq!(
        config.connect_timeout,
        ClientConfig::default().connect_timeout
    );
}

#[test]
fn client_config_refuses_an_invalid_qos() {
    let result = serde_json::from_str::<ClientConfig>(r#"{"default_qos": 3}"#);
    assert!(result.is_err());
}

#[test]
fn reconnect_retries_counts_when_not_negative() {
    let config: ClientConfig = serde_json::from_str(r#"{"reconnect_retries": 5}"#).unwrap();
    assert_eq!(config.reconnect_retries, Some(5));
}

#[test]
fn failover_settings_load_from_a_document() {
    let config: ClientConfig = serde_json::from_str(
        r#"{
            "uri": "mqtt://a:1883",
            "uris": ["mqtt://b:1883", "mqtts://c:8883"],
            "shuffle_uris": true,
            "reconnect_initial_interval": 0.5,
            "reconnect_jitter": "full",
            "follow_server_reference": true
        }"#,
    )
    .unwrap();
    assert_eq!(config.uris, ["mqtt://b:1883", "mqtts://c:8883"]);
    assert!(config.shuffle_uris);
    assert_eq!(
        config.reconnect_initial_interval,
        Duration::from_millis(500)
    );
    assert_eq!(config.reconnect_jitter, Jitter::Full);
    assert!(config.follow_server_reference);

    let spread: ClientConfig = serde_json::from_str(r#"{"reconnect_jitter": 10}"#).unwrap();
    assert_eq!(spread.reconnect_jitter, Jitter::Spread { percent: 10 });
    let none: ClientConfig = serde_json::from_str(r#"{"reconnect_jitter": "none"}"#).unwrap();
    assert_eq!(none.reconnect_jitter, Jitter::None);
    // Defaults: no list, in order, ±25%, references not followed.
    let default = ClientConfig::default();
    assert!(default.uris.is_empty() && !default.shuffle_uris && !default.follow_server_reference);
    assert_eq!(default.reconnect_jitter, Jitter::Spread { percent: 25 });
    for bad in [
        r#"{"reconnect_jitter": "lots"}"#,
        r#"{"reconnect_jitter": 150}"#,
    ] {
        let err = serde_json::from_str::<ClientConfig>(bad).unwrap_err();
        assert!(err.to_string().contains("reconnect_jitter"), "{bad}: {err}");
    }
}
