//! Secrets in packets never show in `Debug` output (packets are logged at debug level).

use sansmqtt_proto::properties::{AuthProperties, ConnectProperties};
use sansmqtt_proto::{Auth, Bytes, Connect, ReasonCode};

const SECRET: &str = "s3cr3t-Redaction-Probe";

#[test]
fn connect_debug_hides_the_password_and_the_authentication_data() {
    let mut connect = Connect::new("client");
    connect.username = Some("alice".into());
    connect.password = Some(Bytes::from(SECRET));
    connect.properties = ConnectProperties {
        authentication_method: Some("SCRAM-SHA-256".into()),
        authentication_data: Some(Bytes::from(SECRET)),
        ..ConnectProperties::default()
    };
    let shown = format!("{connect:?} {connect:#?}");
    assert!(!shown.contains(SECRET), "{shown}");
    // What is not secret still shows, and the presence of a password is visible.
    for visible in ["alice", "client", "SCRAM-SHA-256", "password: Some(***)"] {
        assert!(shown.contains(visible), "{visible} missing from {shown}");
    }
    connect.password = None;
    assert!(format!("{connect:?}").contains("password: None"));
}

#[test]
fn auth_debug_hides_the_authentication_data() {
    let auth = Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: AuthProperties {
            authentication_method: Some("SCRAM-SHA-256".into()),
            authentication_data: Some(Bytes::from(SECRET)),
            ..AuthProperties::default()
        },
    };
    let shown = format!("{auth:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("authentication_data: Some(***)"), "{shown}");
}
