//! Links the `#![no_std]` crate (and with it the session built without `std`) and checks
//! what its run put on the wire.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

#[test]
fn a_no_std_session_connects_publishes_receives_and_keeps_alive() {
    let report = sansmqtt_nostd_check::run().unwrap();
    assert_eq!(report.connected, 1);
    assert_eq!(
        report.published, 2,
        "PUBACK and PUBCOMP completed both publishes"
    );
    assert_eq!(report.received, [b"hi".to_vec()]);

    let sent = &report.sent;
    // CONNECT: type 0x10, then "MQTT" level 4, client id "nostd".
    assert_eq!(sent[0], 0x10);
    let connect_len = 2 + usize::from(sent[1]);
    let rest = &sent[connect_len..];
    let publish1 = [
        0x32, 0x0a, 0x00, 0x03, b't', b'/', b'1', 0x00, 0x01, b'o', b'n', b'e',
    ];
    let publish2 = [
        0x34, 0x0a, 0x00, 0x03, b't', b'/', b'2', 0x00, 0x02, b't', b'w', b'o',
    ];
    let pubrel = [0x62, 0x02, 0x00, 0x02];
    let puback = [0x40, 0x02, 0x00, 0x07];
    let pingreq = [0xc0, 0x00];
    let expected: Vec<u8> = [&publish1[..], &publish2, &pubrel, &puback, &pingreq].concat();
    assert_eq!(rest, &expected[..]);
    // Keep-alive counts from the PINGREQ, sent at the first deadline (30 s after the start).
    assert_eq!(
        report.next_deadline,
        Some(Duration::from_millis(1) + Duration::from_secs(60))
    );
}
