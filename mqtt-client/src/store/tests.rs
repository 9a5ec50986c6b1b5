//! Unit tests of the durable store: recovery, torn tails, compaction, failing writes, and the
//! session's handling of a store that fails.
#![allow(clippy::unwrap_used)]

use std::fs::{self, OpenOptions};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sansmqtt_proto::properties::UserProperty;
use sansmqtt_proto::{ConnAck, Encode, PacketId, ProtocolVersion, Publish, QoS};
use sansmqtt_session::{ConnectOptions, Event, PublishError, Session, SessionConfig, Token};

use super::*;

fn id(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn flight(n: u16, qos: QoS, payload_len: usize) -> OutgoingFlight {
    let mut publish = Publish::new(format!("store/test/{n}"), vec![n as u8; payload_len]);
    publish.qos = qos;
    publish.packet_id = Some(id(n));
    publish
        .properties
        .user_properties
        .push(UserProperty::new("k", "v"));
    OutgoingFlight {
        token: Token::from_raw(u64::from(n) * 10),
        publish,
        state: if qos == QoS::AtLeastOnce {
            OutgoingState::AwaitingPubAck
        } else {
            OutgoingState::AwaitingPubRec
        },
        seq: u64::from(n),
    }
}

fn log_path(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("session.log")
}

#[test]
fn synced_state_survives_reopen_and_delivered_does_not() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = FileStore::open(dir.path()).unwrap();
        store
            .insert_outgoing(id(1), flight(1, QoS::AtLeastOnce, 10))
            .unwrap();
        store
            .insert_outgoing(id(2), flight(2, QoS::ExactlyOnce, 20))
            .unwrap();
        store
            .insert_outgoing(id(3), flight(3, QoS::ExactlyOnce, 30))
            .unwrap();
        store
            .update_outgoing(id(2), OutgoingState::AwaitingPubComp, 7)
            .unwrap();
        store.remove_outgoing(id(3)).unwrap();
        store
            .set_incoming(id(9), Some(IncomingState::Delivered))
            .unwrap();
        store
            .set_incoming(id(8), Some(IncomingState::AwaitingPubRel))
            .unwrap();
        store.sync().unwrap();
        assert_eq!(store.stats().syncs, 1, "one sync for the whole batch");
        // Recorded but never synced: gone after the "crash" (drop without sync).
        store
            .insert_outgoing(id(4), flight(4, QoS::AtLeastOnce, 5))
            .unwrap();
    }
    let store = FileStore::open(dir.path()).unwrap();
    let flights = store.outgoing_in_order();
    let ids: Vec<u16> = flights.iter().map(|(id, _)| id.get()).collect();
    assert_eq!(ids, [1, 2], "in send order; 3 removed, 4 never synced");
    assert_eq!(flights[0].1, flight(1, QoS::AtLeastOnce, 10));
    assert_eq!(flights[1].1.state, OutgoingState::AwaitingPubComp);
    assert_eq!(flights[1].1.seq, 7);
    assert!(
        flights[1].1.publish.payload.is_empty(),
        "PUBREL needs no payload"
    );
    assert_eq!(flights[1].1.token, Token::from_raw(20));
    assert_eq!(store.incoming(id(8)), Some(IncomingState::AwaitingPubRel));
    assert_eq!(
        store.incoming(id(9)),
        None,
        "Delivered is not kept across a restart"
    );
}

#[test]
fn torn_write_at_every_byte_of_the_last_record_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (good_len, full) = {
        let mut store = FileStore::open(dir.path()).unwrap();
        store
            .insert_outgoing(id(1), flight(1, QoS::AtLeastOnce, 40))
            .unwrap();
        store.sync().unwrap();
        let good_len = fs::metadata(log_path(dir.path())).unwrap().len() as usize;
        store
            .insert_outgoing(id(2), flight(2, QoS::ExactlyOnce, 40))
            .unwrap();
        store.sync().unwrap();
        (good_len, fs::read(log_path(dir.path())).unwrap())
    };
    assert!(full.len() > good_len + 8);
    let torn_dir = tempfile::tempdir().unwrap();
    for cut in good_len..full.len() {
        fs::write(log_path(torn_dir.path()), &full[..cut]).unwrap();
        let mut store = FileStore::open(torn_dir.path()).unwrap();
        let ids: Vec<u16> = store
            .outgoing_in_order()
            .iter()
            .map(|(i, _)| i.get())
            .collect();
        assert_eq!(
            ids,
            [1],
            "cut at byte {cut}: only the complete record is recovered"
        );
        assert_eq!(store.stats().torn_bytes as usize, cut - good_len);
        assert_eq!(
            fs::metadata(log_path(torn_dir.path())).unwrap().len() as usize,
            good_len,
            "the torn tail is cut off"
        );
        // New records go after the good ones and are readable.
        store
            .insert_outgoing(id(3), flight(3, QoS::AtLeastOnce, 1))
            .unwrap();
        store.sync().unwrap();
        drop(store);
        let store = FileStore::open(torn_dir.path()).unwrap();
        let ids: Vec<u16> = store
            .outgoing_in_order()
            .iter()
            .map(|(i, _)| i.get())
            .collect();
        assert_eq!(ids, [1, 3], "cut at byte {cut}");
    }
    // A flipped byte anywhere in the last record fails its checksum: ignored the same way.
    for at in good_len..full.len() {
        let mut bad = full.clone();
        bad[at] ^= 0x40;
        fs::write(log_path(torn_dir.path()), &bad).unwrap();
        let store = FileStore::open(torn_dir.path()).unwrap();
        let ids: Vec<u16> = store
            .outgoing_in_order()
            .iter()
            .map(|(i, _)| i.get())
            .collect();
        assert_eq!(ids, [1], "flipped byte {at}");
    }
    // The whole file intact: both.
    fs::write(log_path(torn_dir.path()), &full).unwrap();
    assert_eq!(FileStore::open(torn_dir.path()).unwrap().outgoing_len(), 2);
}

#[test]
fn a_file_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(log_path(dir.path()), b"definitely not a session log").unwrap();
    assert_eq!(
        FileStore::open(dir.path()).unwrap_err(),
        StoreError::Corrupt("not a session store log")
    );
}

#[test]
fn compaction_keeps_the_log_bounded_by_what_is_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let compact_min = 16 * 1024;
    let mut store = FileStore::open_with(dir.path(), compact_min).unwrap();
    let window = 20u16;
    let mut max_len = 0;
    for n in 0..20_000u32 {
        let slot = (n % u32::from(window)) as u16 + 1;
        if n >= u32::from(window) {
            store.remove_outgoing(id(slot)).unwrap();
        }
        let mut f = flight(slot, QoS::AtLeastOnce, 100);
        f.seq = u64::from(n);
        f.token = Token::from_raw(u64::from(n));
        store.insert_outgoing(id(slot), f).unwrap();
        if n % 8 == 7 {
            store.sync().unwrap();
            max_len = max_len.max(fs::metadata(log_path(dir.path())).unwrap().len());
        }
    }
    store.sync().unwrap();
    let stats = store.stats();
    assert!(stats.compactions > 10, "{stats:?}");
    // 20 flights of ~150 bytes: the bound is the compaction minimum plus one batch.
    assert!(max_len <= compact_min + 4096, "log grew to {max_len}");
    drop(store);
    let store = FileStore::open_with(dir.path(), compact_min).unwrap();
    let tokens: Vec<u64> = store
        .outgoing_in_order()
        .iter()
        .map(|(_, f)| f.token.get())
        .collect();
    assert_eq!(tokens, (19_980..20_000).collect::<Vec<u64>>());
}

#[test]
fn failing_writes_give_a_typed_error_and_keep_what_was_synced() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::open(dir.path()).unwrap();
    store
        .insert_outgoing(id(1), flight(1, QoS::AtLeastOnce, 10))
        .unwrap();
    store.sync().unwrap();

    // A full disk: /dev/full fails every write with ENOSPC.
    store.replace_file_for_test(OpenOptions::new().append(true).open("/dev/full").unwrap());
    store
        .insert_outgoing(id(2), flight(2, QoS::AtLeastOnce, 10))
        .unwrap();
    assert_eq!(store.sync().unwrap_err(), StoreError::Full);
    // A handle the kernel refuses to write through (EBADF): an I/O error.
    store.replace_file_for_test(
        OpenOptions::new()
            .read(true)
            .open(log_path(dir.path()))
            .unwrap(),
    );
    match store.sync().unwrap_err() {
        StoreError::Io { op, .. } => assert_eq!(op, "appending to the log"),
        other => panic!("unexpected {other:?}"),
    }
    // Nothing synced before is lost.
    assert_eq!(FileStore::peek(dir.path()).outgoing_len(), 1);

    // The pending change is kept and written by the next sync that works.
    store.replace_file_for_test(
        OpenOptions::new()
            .append(true)
            .open(log_path(dir.path()))
            .unwrap(),
    );
    store.sync().unwrap();
    drop(store);
    assert_eq!(FileStore::open(dir.path()).unwrap().outgoing_len(), 2);
}

fn connack_bytes() -> Vec<u8> {
    let mut buf = Vec::new();
    ConnAck::new(false)
        .encode(ProtocolVersion::V311, &mut buf)
        .unwrap();
    buf
}

fn connected_session(store: FileStore) -> (Session<ClientStore>, Instant) {
    // The session never reads the clock; a test hands it one reading, as a driver would.
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut config = SessionConfig::new("store-test", ProtocolVersion::V311);
    config.report_stored = true;
    let mut session = Session::with_store(config, ClientStore::File(store));
    let mut options = ConnectOptions::new(Duration::from_secs(30));
    options.clean_start = false;
    session.connect(now, options).unwrap();
    assert!(session.poll_transmit(now).is_some());
    session.handle_read(now, &connack_bytes());
    while session.poll_event().is_some() {}
    (session, now)
}

#[test]
fn publish_is_durable_before_its_bytes_are_handed_out() {
    let dir = tempfile::tempdir().unwrap();
    let (mut session, now) = connected_session(FileStore::open(dir.path()).unwrap());
    let mut tokens = Vec::new();
    for n in 0..5u8 {
        let mut publish = Publish::new("durable/a", Bytes::from(vec![n]));
        publish.qos = QoS::ExactlyOnce;
        tokens.push(session.publish(now, publish).unwrap());
    }
    // Recorded, not yet durable: nothing is on disk before the hand-out.
    assert_eq!(FileStore::peek(dir.path()).outgoing_len(), 0);
    let bytes = session.poll_transmit(now).unwrap();
    assert!(!bytes.is_empty());
    // Handed out: durable, with one sync for the five.
    assert_eq!(FileStore::peek(dir.path()).outgoing_len(), 5);
    assert_eq!(session.store().file_stats().unwrap().syncs, 1);
    let stored: Vec<Token> = std::iter::from_fn(|| session.poll_event())
        .filter_map(|event| match event {
            Event::Stored { token } => Some(token),
            _ => None,
        })
        .collect();
    assert_eq!(stored, tokens);
}

#[test]
fn a_failing_store_fails_the_publish_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::open(dir.path()).unwrap();
    let synced = flight(1, QoS::AtLeastOnce, 3);
    store.insert_outgoing(id(1), synced.clone()).unwrap();
    store.sync().unwrap();
    let (mut session, now) = connected_session(store);
    let _ = session.poll_transmit(now); // the re-sent flight 1
    while session.poll_event().is_some() {}
    let ClientStore::File(store) = store_mut(&mut session) else {
        unreachable!()
    };
    store.replace_file_for_test(OpenOptions::new().append(true).open("/dev/full").unwrap());

    let mut publish = Publish::new("durable/b", "lost?");
    publish.qos = QoS::AtLeastOnce;
    let token = session.publish(now, publish).unwrap();
    assert_eq!(session.poll_transmit(now), None, "nothing is sent");
    let events: Vec<Event> = std::iter::from_fn(|| session.poll_event()).collect();
    assert!(
        events.contains(&Event::Published {
            token,
            result: Err(PublishError::Store(StoreError::Full)),
            properties: Default::default(),
        }),
        "{events:?}"
    );
    assert!(matches!(
        events.last(),
        Some(Event::Disconnected {
            reason: sansmqtt_session::ConnectionError::Store(StoreError::Full)
        })
    ));
    assert_eq!(session.inflight_len(), 1, "only the synced flight is left");
    let reopened = FileStore::peek(dir.path());
    assert_eq!(reopened.outgoing_in_order(), vec![(id(1), synced)]);
}

/// The session's store, mutably: only tests need it (to break the disk under a session).
fn store_mut(session: &mut Session<ClientStore>) -> &mut ClientStore {
    session.store_mut()
}

#[test]
fn a_second_opening_is_refused_with_the_directory_and_holder_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let first = FileStore::open(dir.path()).unwrap();
    let refused = FileStore::open(dir.path()).unwrap_err();
    assert_eq!(
        refused,
        StoreError::Locked {
            dir: dir.path().to_path_buf(),
            pid: Some(std::process::id()),
        }
    );
    let text = refused.to_string();
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    assert!(text.contains(&std::process::id().to_string()), "{text}");
    drop(first);
    FileStore::open(dir.path()).unwrap();
}

#[test]
fn subscriptions_survive_reopen_and_compaction_and_come_back_when_the_broker_lost_the_session() {
    use sansmqtt_proto::properties::SubscribeProperties;
    use sansmqtt_proto::{Packet, SubscribeFilter};

    let dir = tempfile::tempdir().unwrap();
    // A 3.1.1 session: the options are what there is to keep (MQTT 5 properties ride along
    // in the same SUBSCRIBE encoding).
    let properties = SubscribeProperties::default();
    {
        let (mut session, now) = connected_session(FileStore::open(dir.path()).unwrap());
        session
            .subscribe(
                now,
                vec![
                    SubscribeFilter::new("a/+", QoS::AtLeastOnce),
                    SubscribeFilter::new("b/#", QoS::ExactlyOnce),
                ],
                properties.clone(),
            )
            .unwrap();
        session
            .subscribe(
                now,
                vec![SubscribeFilter::new("c", QoS::AtMostOnce)],
                SubscribeProperties::default(),
            )
            .unwrap();
        // Write-ahead: durable once the SUBSCRIBE is handed out, not before.
        assert!(FileStore::peek_subscriptions(dir.path()).is_empty());
        assert!(session.poll_transmit(now).is_some());
        assert_eq!(FileStore::peek_subscriptions(dir.path()).len(), 3);
        session.unsubscribe(now, vec!["c".into()]).unwrap();
        assert!(session.poll_transmit(now).is_some());
        // Dropped without SUBACK: a crash, for the store.
    }
    let mut store = FileStore::open_with(dir.path(), 0).unwrap();
    let filters: Vec<String> = store
        .subscriptions()
        .iter()
        .map(|(f, _)| f.filter.to_string())
        .collect();
    assert_eq!(filters, ["a/+", "b/#"]);
    // Compaction keeps them.
    while store.stats().compactions == 0 {
        store
            .insert_outgoing(id(1), flight(1, QoS::AtLeastOnce, 10))
            .unwrap();
        store.remove_outgoing(id(1)).unwrap();
        store.sync().unwrap();
    }
    drop(store);
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.subscriptions().len(), 2);
    assert_eq!(store.subscriptions()[0].1, properties);
    assert_eq!(
        store.subscriptions()[1].0,
        SubscribeFilter::new("b/#", QoS::ExactlyOnce)
    );

    // A session over the store subscribes again when the broker has no session for it.
    let (mut session, now) = connected_session(store);
    let bytes = session.poll_transmit(now).unwrap();
    let mut buf = bytes::BytesMut::from(&bytes[..]);
    let mut resubscribed = Vec::new();
    while let Ok(Some(packet)) = sansmqtt_proto::decode(&mut buf, ProtocolVersion::V311, u32::MAX) {
        if let Packet::Subscribe(subscribe) = packet {
            resubscribed.extend(subscribe.filters.into_iter().map(|f| f.filter.to_string()));
        }
    }
    assert_eq!(resubscribed, ["a/+", "b/#"]);
}
