//! `ClientConfig` loads from the shape of amqtt's dict configuration (feature `serde`).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sansmqtt_tokio::{ClientConfig, Jitter, ProtocolVersion, QoS};

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

#[test]
fn session_store_loads_from_config_and_builder() {
    let config: ClientConfig =
        serde_json::from_str(r#"{"session_store": "/var/lib/app/mqtt-store"}"#).unwrap();
    assert_eq!(
        config.session_store.as_deref(),
        Some(std::path::Path::new("/var/lib/app/mqtt-store"))
    );
    let built = ClientConfig::default().session_store("/var/lib/app/mqtt-store");
    assert_eq!(built.session_store, config.session_store);
    assert_eq!(
        ClientConfig::default().session_store,
        None,
        "memory by default"
    );
}

/// amqtt's documented client configuration example (docs/references/client_config.md),
/// as published: `topics`, `will` and the nested `broker` section.
const AMQTT_EXAMPLE_YAML: &str = "
keep_alive: 10
ping_delay: 1
default_qos: 0
default_retain: false
auto_reconnect: true
reconnect_max_interval: 5
reconnect_retries: 10
topics:
   test:
    qos: 0
   some_topic:
     qos: 2
     retain: true
will:
   topic: will/messages
   message: \"client ABC has disconnected\"
   qos: 1
   retain: false
broker:
   uri: mqtt://localhost:1883
   cafile: /path/to/ca/file
";

/// The same document in JSON, with amqtt's other spellings (`connection`, `cleansession`,
/// `connection_timeout`, `certfile`, `keyfile`, `check_hostname`, `capath`, `cadata`).
const AMQTT_EXAMPLE_JSON: &str = r#"{
    "keep_alive": 10, "ping_delay": 1, "default_qos": 0, "default_retain": false,
    "auto_reconnect": true, "reconnect_max_interval": 5, "reconnect_retries": 10,
    "cleansession": false, "connection_timeout": 60,
    "certfile": "/path/to/client.pem", "keyfile": "/path/to/client.key",
    "check_hostname": false,
    "topics": {"test": {"qos": 0}, "some_topic": {"qos": 2, "retain": true}},
    "will": {"topic": "will/messages", "message": "client ABC has disconnected",
             "qos": 1, "retain": false},
    "connection": {"uri": "mqtt://localhost:1883", "cafile": "/path/to/ca/file",
                   "capath": "/path/to/ca", "cadata": "-----BEGIN CERTIFICATE-----"}
}"#;

/// And in TOML.
const AMQTT_EXAMPLE_TOML: &str = r#"
keep_alive = 10
ping_delay = 1
default_qos = 0
default_retain = false
auto_reconnect = true
reconnect_max_interval = 5
reconnect_retries = 10
cleansession = false
connection_timeout = 60
certfile = "/path/to/client.pem"
keyfile = "/path/to/client.key"
check_hostname = false

[topics.test]
qos = 0

[topics.some_topic]
qos = 2
retain = true

[will]
topic = "will/messages"
message = "client ABC has disconnected"
qos = 1
retain = false

[broker]
uri = "mqtt://localhost:1883"
cafile = "/path/to/ca/file"
capath = "/path/to/ca"
cadata = "-----BEGIN CERTIFICATE-----"
"#;

/// What all three say in common.
fn assert_amqtt_example(config: &ClientConfig) {
    assert_eq!(config.keep_alive, Duration::from_secs(10));
    assert_eq!(config.ping_delay, Duration::from_secs(1));
    assert_eq!(config.default_qos, QoS::AtMostOnce);
    assert!(!config.default_retain);
    assert!(config.auto_reconnect);
    assert_eq!(config.reconnect_max_interval, Duration::from_secs(5));
    assert_eq!(config.reconnect_retries, Some(10));
    assert_eq!(config.topics["test"].qos, Some(QoS::AtMostOnce));
    assert_eq!(config.topics["test"].retain, None);
    assert_eq!(config.topics["some_topic"].qos, Some(QoS::ExactlyOnce));
    assert_eq!(config.topics["some_topic"].retain, Some(true));
    let will = config.will.as_ref().unwrap();
    assert_eq!(will.topic, "will/messages");
    assert_eq!(will.message, b"client ABC has disconnected");
    assert_eq!((will.qos, will.retain), (QoS::AtLeastOnce, false));
    assert_eq!(config.uri.as_deref(), Some("mqtt://localhost:1883"));
    assert_eq!(
        config.ca_file.as_deref(),
        Some(std::path::Path::new("/path/to/ca/file"))
    );
}

#[test]
fn amqtts_documented_yaml_example_loads() {
    let config: ClientConfig = serde_yaml_ng::from_str(AMQTT_EXAMPLE_YAML).unwrap();
    assert_amqtt_example(&config);
    // Not in the example: our defaults.
    assert!(config.clean_session);
    assert!(config.check_hostname);
    assert_eq!(
        config.connect_timeout,
        ClientConfig::default().connect_timeout
    );
}

#[test]
fn amqtts_example_loads_from_json_and_toml_with_amqtts_other_spellings() {
    let json: ClientConfig = serde_json::from_str(AMQTT_EXAMPLE_JSON).unwrap();
    let toml: ClientConfig = toml::from_str(AMQTT_EXAMPLE_TOML).unwrap();
    for config in [&json, &toml] {
        assert_amqtt_example(config);
        assert!(!config.clean_session, "cleansession");
        assert_eq!(config.connect_timeout, Duration::from_secs(60));
        assert_eq!(
            config.cert_file.as_deref(),
            Some(std::path::Path::new("/path/to/client.pem"))
        );
        assert_eq!(
            config.key_file.as_deref(),
            Some(std::path::Path::new("/path/to/client.key"))
        );
        assert!(!config.check_hostname);
        assert_eq!(
            config.ca_path.as_deref(),
            Some(std::path::Path::new("/path/to/ca"))
        );
        assert_eq!(
            config.ca_data.as_deref(),
            Some("-----BEGIN CERTIFICATE-----")
        );
    }
}

#[test]
fn an_unknown_key_is_an_error_naming_it() {
    for (doc, key) in [
        (r#"{"keepalive": 10}"#, "keepalive"),
        (r#"{"broker": {"uri": "mqtt://a", "port": 1883}}"#, "port"),
        (r#"{"connection": {"url": "mqtt://a"}}"#, "url"),
        (
            r#"{"will": {"topic": "t", "message": "m", "qso": 1}}"#,
            "qso",
        ),
        (r#"{"topics": {"a": {"retained": true}}}"#, "retained"),
        (r#"{"tls_config": {}}"#, "tls_config"),
    ] {
        let err = serde_json::from_str::<ClientConfig>(doc).unwrap_err();
        assert!(err.to_string().contains(key), "{doc}: {err}");
    }
    let err = serde_yaml_ng::from_str::<ClientConfig>("cleansesion: true\n").unwrap_err();
    assert!(err.to_string().contains("cleansesion"), "{err}");
    let err = toml::from_str::<ClientConfig>("[broker]\nhost = \"a\"\n").unwrap_err();
    assert!(err.to_string().contains("host"), "{err}");
}

#[test]
fn a_key_both_at_the_top_and_in_broker_is_an_error() {
    let err = serde_json::from_str::<ClientConfig>(
        r#"{"uri": "mqtt://a:1883", "broker": {"uri": "mqtt://b:1883"}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("uri"), "{err}");
    let err = serde_json::from_str::<ClientConfig>(
        r#"{"cafile": "/a.pem", "connection": {"cafile": "/b.pem"}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("cafile"), "{err}");
}

#[test]
fn amqtts_default_client_yaml_loads() {
    // amqtt/scripts/default_client.yaml.
    let config: ClientConfig = serde_yaml_ng::from_str(
        "---\nkeep_alive: 10\nping_delay: 1\ndefault_qos: 0\ndefault_retain: false\n\
         auto_reconnect: true\ncleansession: true\nreconnect_max_interval: 10\n\
         reconnect_retries: 2\nbroker:\n  uri: \"mqtt://127.0.0.1\"",
    )
    .unwrap();
    assert_eq!(config.uri.as_deref(), Some("mqtt://127.0.0.1"));
    assert!(config.clean_session);
    assert_eq!(config.reconnect_retries, Some(2));
}

#[test]
fn proxy_settings_load_from_a_document_and_a_bad_url_is_refused_without_printing_it() {
    let config: ClientConfig = serde_yaml_ng::from_str(
        "proxy: socks5://alice:pr%40xy-SECRET@proxy.lan:1081\nproxy_from_env: true\n",
    )
    .unwrap();
    let proxy = config.proxy.as_ref().unwrap();
    assert_eq!(
        (
            proxy.kind(),
            proxy.host(),
            proxy.port(),
            proxy.has_credentials()
        ),
        (sansmqtt_tokio::ProxyKind::Socks5, "proxy.lan", 1081, true)
    );
    assert!(config.proxy_from_env);
    let printed = format!("{config:?}");
    assert!(!printed.contains("SECRET"), "{printed}");

    let config: ClientConfig = toml::from_str("proxy = \"http://proxy.lan:3128\"").unwrap();
    assert_eq!(
        config.proxy.unwrap().kind(),
        sansmqtt_tokio::ProxyKind::Http
    );
    assert!(!ClientConfig::default().proxy_from_env);

    let err = serde_json::from_str::<ClientConfig>(r#"{"proxy": "ftp://u:p-SECRET@h"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid proxy URL"), "{err}");
    assert!(!err.contains("SECRET"), "{err}");
}

/// amqtt's current client document: the `connection` section with the client certificate
/// and key, `verify_cert`, and a `plugins` section, which loads and is reported as ignored.
#[test]
fn amqtts_connection_certificates_verify_cert_and_plugins_load() {
    let yaml = "\
keep_alive: 10
check_hostname: false
verify_cert: false
connection:
  uri: mqtts://broker.example:8883
  cafile: /etc/ca.pem
  certfile: /etc/client.pem
  keyfile: /etc/client.key
plugins:
  amqtt.plugins.logging_amqtt.PacketLoggerPlugin: {}
  my.plugins.Custom:
    option: [1, 2]
";
    let (config, logs) = mqtt_test_support::secrets::thread_logs(|| {
        serde_yaml_ng::from_str::<ClientConfig>(yaml).unwrap()
    });
    assert_eq!(config.uri.as_deref(), Some("mqtts://broker.example:8883"));
    let path = |p: &str| Some(std::path::PathBuf::from(p));
    assert_eq!(config.ca_file, path("/etc/ca.pem"));
    assert_eq!(config.cert_file, path("/etc/client.pem"));
    assert_eq!(config.key_file, path("/etc/client.key"));
    assert!(!config.check_hostname);
    assert!(!config.verify_cert);
    assert!(
        logs.contains("WARN") && logs.contains("plugins"),
        "the ignored plugins are reported at WARN: {logs:?}"
    );
    // Top-level spellings load too, and `verify_cert` defaults to on.
    let config: ClientConfig =
        serde_json::from_str(r#"{"certfile": "/c.pem", "keyfile": "/k.pem"}"#).unwrap();
    assert_eq!(config.cert_file, path("/c.pem"));
    assert!(config.verify_cert);
    // Without `plugins`, nothing is reported.
    let (_, logs) = mqtt_test_support::secrets::thread_logs(|| {
        serde_json::from_str::<ClientConfig>("{}").unwrap()
    });
    assert!(!logs.contains("plugins"), "{logs:?}");
}

#[test]
fn a_certificate_without_its_key_is_an_error() {
    for doc in [
        r#"{"connection": {"certfile": "/c.pem"}}"#,
        r#"{"keyfile": "/k.pem"}"#,
    ] {
        let err = serde_json::from_str::<ClientConfig>(doc).unwrap_err();
        assert!(err.to_string().contains("keyfile"), "{doc}: {err}");
    }
    let err = serde_json::from_str::<ClientConfig>(
        r#"{"certfile": "/a.pem", "keyfile": "/k.pem", "connection": {"certfile": "/b.pem"}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("certfile"), "{err}");
}

/// Values out of range are an error naming the option, not clamped; times are durations.
#[test]
fn out_of_range_values_are_refused_and_times_are_durations() {
    for (doc, option) in [
        (r#"{"max_inflight": 0}"#, "max_inflight"),
        (r#"{"message_buffer": 0}"#, "message_buffer"),
        (r#"{"keep_alive": 100000}"#, "keep_alive"),
        (r#"{"keep_alive": 0.5}"#, "keep_alive"),
    ] {
        let err = serde_json::from_str::<ClientConfig>(doc).unwrap_err();
        assert!(err.to_string().contains(option), "{doc}: {err}");
    }
    let config: ClientConfig =
        serde_json::from_str(r#"{"session_expiry_interval": 3600}"#).unwrap();
    assert_eq!(
        config.session_expiry_interval,
        Some(Duration::from_secs(3600))
    );
    // The setters take what they are given; `validate` (run by `connect`) judges it.
    let config = ClientConfig::default().max_inflight(0);
    assert_eq!(config.max_inflight, Some(0));
    assert!(config.validate().is_err());
    assert!(ClientConfig::default().validate().is_ok());
    // Text options take `&str`, `String` and `&String` alike.
    let name = String::from("alice");
    let config = ClientConfig::default()
        .username(&name)
        .uri(format!("mqtt://{name}.example"))
        .ca_data("pem")
        .topic(&name, sansmqtt_tokio::TopicConfig::default());
    assert_eq!(config.username.as_deref(), Some("alice"));
    assert_eq!(config.uri.as_deref(), Some("mqtt://alice.example"));
    // The proxy URL too (it is parsed when set; `connect` reports a bad one).
    let proxy = format!("socks5://{name}@proxy.example:1080");
    for config in [
        ClientConfig::default().proxy(proxy.as_str()),
        ClientConfig::default().proxy(&proxy),
        ClientConfig::default().proxy(proxy),
    ] {
        assert_eq!(config.proxy.map(|p| p.port()), Some(1080));
    }
    // A keep alive below one second would be sent as 0 (off): refused, not truncated.
    assert!(matches!(
        ClientConfig::default()
            .keep_alive(Duration::from_millis(500))
            .validate(),
        Err(sansmqtt_tokio::ConfigError::BelowOneSecond {
            option: "keep_alive",
            ..
        })
    ));
    assert!(
        ClientConfig::default()
            .keep_alive(Duration::ZERO)
            .validate()
            .is_ok()
    );
}
