//! Starts every broker kind and talks raw MQTT 3.1.1 (and raw WebSocket and
//! TLS handshakes through `openssl s_client`) to each of its ports.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mqtt_test_support::{Certs, Mosquitto, Nats, free_port};

/// CONNECT, MQTT 3.1.1, clean session, keep-alive 60 s, empty client id.
const CONNECT: [u8; 14] = [
    0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00,
];
/// CONNACK, session not present, accepted.
const CONNACK_OK: [u8; 4] = [0x20, 0x02, 0x00, 0x00];
/// CONNACK, refused: not authorized.
const CONNACK_NOT_AUTHORIZED: [u8; 4] = [0x20, 0x02, 0x00, 0x05];

fn tcp(port: u16) -> TcpStream {
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .unwrap_or_else(|e| panic!("connecting to 127.0.0.1:{port} failed: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("setting a read timeout failed");
    stream
}

fn read_exact<const N: usize>(stream: &mut TcpStream) -> [u8; N] {
    let mut buf = [0; N];
    stream
        .read_exact(&mut buf)
        .expect("reading from the broker failed");
    buf
}

/// Sends `connect` on a new connection and returns the CONNACK.
fn connack(port: u16, connect: &[u8]) -> [u8; 4] {
    let mut stream = tcp(port);
    stream.write_all(connect).expect("writing CONNECT failed");
    read_exact(&mut stream)
}

/// Builds a CONNECT packet (MQTT 3.1.1, keep-alive 60 s).
fn connect_packet(client_id: &str, clean: bool, login: Option<(&str, &str)>) -> Vec<u8> {
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04];
    let mut flags = if clean { 0x02 } else { 0x00 };
    if login.is_some() {
        flags |= 0xC0;
    }
    body.extend([flags, 0x00, 0x3C]);
    let mut string = |s: &str| {
        let len = u16::try_from(s.len()).expect("string too long");
        body.extend(len.to_be_bytes());
        body.extend(s.as_bytes());
    };
    string(client_id);
    if let Some((user, password)) = login {
        string(user);
        string(password);
    }
    let len = u8::try_from(body.len()).expect("keep test packets under 128 bytes");
    assert!(len < 128, "keep test packets under 128 bytes");
    let mut packet = vec![0x10, len];
    packet.extend(body);
    packet
}

/// Runs `openssl s_client` against 127.0.0.1:`port` expecting `localhost`;
/// returns whether the handshake (including verification) succeeded, and
/// the output.
fn tls_handshake(port: u16, ca: &Path, extra: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", "-verify_hostname", "localhost"])
        .arg("-CAfile")
        .arg(ca)
        .arg("-verify_return_error")
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("running `openssl s_client` failed: install it with `apt-get install -y openssl`");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn free_port_is_bindable() {
    let port = free_port();
    assert_ne!(port, 0);
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("free_port() returned a busy port");
}

#[test]
fn certs_are_written() {
    let certs = Certs::generate();
    assert!(certs.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    for file in [
        certs.ca_file(),
        certs.server_cert(),
        certs.server_key(),
        certs.client_cert(),
        certs.client_key(),
        certs.expired_cert(),
        certs.expired_key(),
        certs.wrong_host_cert(),
        certs.wrong_host_key(),
        certs.other_ca_file(),
        certs.other_ca_server_cert(),
        certs.other_ca_server_key(),
    ] {
        assert!(file.is_file(), "{} missing", file.display());
    }
}

#[test]
fn mosquitto_connect_pause_kill_restart() {
    let mut broker = Mosquitto::start();
    let port = broker.port();
    assert_eq!(broker.uri(), format!("mqtt://127.0.0.1:{port}"));
    assert_eq!(broker.tls_port(), None);
    assert_eq!(connack(port, &CONNECT), CONNACK_OK);

    // Paused: the kernel completes the TCP handshake, but no CONNACK comes.
    broker.pause();
    let mut stream = tcp(port);
    stream.write_all(&CONNECT).expect("writing CONNECT failed");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("setting a read timeout failed");
    let mut byte = [0; 1];
    let err = stream
        .read(&mut byte)
        .expect_err("a paused broker answered");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    broker.resume();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("setting a read timeout failed");
    assert_eq!(read_exact::<4>(&mut stream), CONNACK_OK);
    drop(stream);

    broker.kill();
    assert!(broker.pid().is_none());
    TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect_err("a killed broker accepted");
    broker.restart();
    assert_eq!(broker.port(), port);
    assert_eq!(connack(port, &CONNECT), CONNACK_OK);
    assert!(
        broker.log().contains("mosquitto version"),
        "{}",
        broker.log()
    );
}

#[test]
fn mosquitto_password_file() {
    let broker = Mosquitto::builder()
        .users(&[("alice", "secret"), ("bob", "hunter2")])
        .start();
    let port = broker.port();
    let good = connect_packet("c1", true, Some(("alice", "secret")));
    assert_eq!(connack(port, &good), CONNACK_OK);
    let good = connect_packet("c2", true, Some(("bob", "hunter2")));
    assert_eq!(connack(port, &good), CONNACK_OK);
    let bad = connect_packet("c3", true, Some(("alice", "wrong")));
    assert_eq!(connack(port, &bad), CONNACK_NOT_AUTHORIZED);
    assert_eq!(connack(port, &CONNECT), CONNACK_NOT_AUTHORIZED);
}

#[test]
fn mosquitto_persistence_survives_kill() {
    let mut broker = Mosquitto::builder().persistence(true).start();
    let port = broker.port();
    let connect = connect_packet("persistent", false, None);
    let mut stream = tcp(port);
    stream.write_all(&connect).expect("writing CONNECT failed");
    assert_eq!(read_exact::<4>(&mut stream), CONNACK_OK);
    // SUBSCRIBE id 1 to "t" at QoS 1, then SUBACK.
    stream
        .write_all(&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x01])
        .expect("writing SUBSCRIBE failed");
    assert_eq!(read_exact::<5>(&mut stream), [0x90, 0x03, 0x00, 0x01, 0x01]);
    // The documented guarantee: acknowledged ~100 ms before a SIGKILL is saved.
    std::thread::sleep(Duration::from_millis(100));
    broker.kill();
    drop(stream);
    broker.restart();
    // Session present (flags 0x01): the subscription survived the crash.
    assert_eq!(connack(port, &connect), [0x20, 0x02, 0x01, 0x00]);
    assert!(broker.persistence_dir().join("mosquitto.db").is_file());
    // A clean stop (SIGTERM) saves too.
    broker.stop();
    assert!(broker.pid().is_none());
    broker.restart();
    assert_eq!(connack(port, &connect), [0x20, 0x02, 0x01, 0x00]);
}

#[test]
fn mosquitto_tls_listeners() {
    let certs = Certs::generate();
    let ca = certs.ca_file();

    let broker = Mosquitto::builder()
        .tls(&certs)
        .max_packet_size(1024)
        .extra_config("max_inflight_messages 10")
        .start();
    let tls_port = broker.tls_port().expect("no TLS port");
    assert_eq!(broker.tls_uri(), format!("mqtts://localhost:{tls_port}"));
    assert_eq!(connack(broker.port(), &CONNECT), CONNACK_OK);
    let (ok, out) = tls_handshake(tls_port, &ca, &[]);
    assert!(ok, "{out}");
    let (ok, out) = tls_handshake(tls_port, &certs.other_ca_file(), &[]);
    assert!(!ok, "unknown CA accepted: {out}");

    let mutual = Mosquitto::builder().tls(&certs).mutual_tls(true).start();
    let port = mutual.tls_port().expect("no TLS port");
    let client_cert = certs.client_cert();
    let client_key = certs.client_key();
    let with_cert = [
        "-cert",
        client_cert.to_str().expect("utf-8 path"),
        "-key",
        client_key.to_str().expect("utf-8 path"),
    ];
    let (ok, out) = tls_handshake(port, &ca, &with_cert);
    assert!(ok, "{out}");
    // TLS 1.2 so the missing client certificate fails the handshake itself.
    let (ok, out) = tls_handshake(port, &ca, &["-tls1_2"]);
    assert!(!ok, "handshake without client certificate succeeded: {out}");

    for (cert, key, why) in [
        (certs.expired_cert(), certs.expired_key(), "expired"),
        (
            certs.wrong_host_cert(),
            certs.wrong_host_key(),
            "wrong host",
        ),
        (
            certs.other_ca_server_cert(),
            certs.other_ca_server_key(),
            "other CA",
        ),
    ] {
        let bad = Mosquitto::builder()
            .tls(&certs)
            .tls_server_cert(&cert, &key)
            .start();
        let port = bad.tls_port().expect("no TLS port");
        let (ok, out) = tls_handshake(port, &ca, &[]);
        assert!(!ok, "{why} certificate accepted: {out}");
    }
}

/// Upgrades a new connection to WebSocket at `/mqtt` with subprotocol `mqtt`
/// and returns it with the status line.
fn websocket(port: u16) -> (TcpStream, String) {
    let mut stream = tcp(port);
    let request = format!(
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .expect("writing the upgrade request failed");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let [byte] = read_exact::<1>(&mut stream);
        head.push(byte);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.lines().next().unwrap_or_default().to_owned();
    (stream, status)
}

#[test]
fn nats_mqtt_and_websocket() {
    let mut nats = Nats::start();
    assert_eq!(
        nats.mqtt_uri(),
        format!("mqtt://127.0.0.1:{}", nats.mqtt_port())
    );
    assert_eq!(
        nats.ws_uri(),
        format!("ws://127.0.0.1:{}/mqtt", nats.ws_port())
    );
    assert_eq!(connack(nats.mqtt_port(), &CONNECT), CONNACK_OK);

    let (mut ws, status) = websocket(nats.ws_port());
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    // CONNECT in one masked binary frame (mask key 0), CONNACK in one frame.
    let mut frame = vec![0x82, 0x80 | 14, 0, 0, 0, 0];
    frame.extend(CONNECT);
    ws.write_all(&frame)
        .expect("writing a WebSocket frame failed");
    assert_eq!(read_exact::<2>(&mut ws), [0x82, 0x04]);
    assert_eq!(read_exact::<4>(&mut ws), CONNACK_OK);
    drop(ws);

    nats.kill();
    nats.restart();
    assert_eq!(connack(nats.mqtt_port(), &CONNECT), CONNACK_OK);
    let (_ws, status) = websocket(nats.ws_port());
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
}

#[test]
fn nats_websocket_tls() {
    let certs = Certs::generate();
    let nats = Nats::start_tls(&certs);
    assert_eq!(
        nats.wss_uri(),
        format!("wss://localhost:{}/mqtt", nats.ws_port())
    );
    assert_eq!(connack(nats.mqtt_port(), &CONNECT), CONNACK_OK);
    let (ok, out) = tls_handshake(nats.ws_port(), &certs.ca_file(), &[]);
    assert!(ok, "{out}");
    let (ok, out) = tls_handshake(nats.ws_port(), &certs.other_ca_file(), &[]);
    assert!(!ok, "unknown CA accepted: {out}");
}
