//! Codec throughput: sansmqtt-proto against rumqttc 0.25 (`rumqttc::mqttbytes::v4` for MQTT 3.1.1,
//! `rumqttc::v5::mqttbytes::v5` for MQTT 5.0) and against a memcpy floor, in the same run.
//!
//! Run with `cargo bench -p sansmqtt-proto --bench codec`. Every criterion group holds three
//! functions over the same packet and the same wire bytes:
//!
//! * `sansmqtt-proto`: this crate, through [`Encode::encode`] and [`sansmqtt_proto::decode`];
//! * `rumqttc`: the packet's inherent `write` (no size pre-check, like ours) and `Packet::read`
//!   (type dispatch, like our `decode`);
//! * `memcpy`: `buf.clear(); buf.extend_from_slice(&wire)` into a pre-reserved buffer, the
//!   least any codec has to do to get those bytes into a buffer.
//!
//! What each operation measures, so that the three lines are comparable:
//!
//! * **encode**: one `BytesMut`, reserved once, cleared at the start of every iteration, then the
//!   packet is written into it. Never reallocates.
//! * **decode**: one input `BytesMut`, reserved once; every iteration clears it, copies the wire
//!   bytes in (`extend_from_slice`, the same memcpy as the floor) and decodes the packet from
//!   it, which is how a connection's read buffer is used. So decode times *include* that
//!   memcpy for both libraries, and the `memcpy` line is exactly that part; decode cost proper is
//!   the difference. Both decoders `split_to` the frame off the buffer and hand out `Bytes`
//!   slices of it; the decoded packet is dropped at the end of the iteration (inside the timed
//!   loop, for both), after which `BytesMut` reclaims the unique buffer instead of
//!   allocating, so there is no per-iteration allocation for the buffer itself.
//! * **encode+decode**: one `BytesMut`, reserved once; every iteration clears it, encodes the
//!   packet into it and decodes the packet back out of it. The floor is the single memcpy of
//!   the wire bytes (the encode step standing in for the network; a zero-copy decoder copies
//!   nothing out).
//!
//! Both libraries decode the very same bytes (mqtt-proto's encoding). Setup asserts that the
//! two encodings are byte-identical (PUBLISH, SUBSCRIBE) or of equal length and both accepted by
//! sansmqtt-proto (CONNECT, whose properties rumqttc may order differently), and that both decoders
//! turn the benchmarked bytes into the original packet, so no line measures an error path. The
//! timed closures return each library's own `Result` un-unwrapped (see [`decode_group`]).

use std::fmt::Debug;
use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_main};
use sansmqtt_proto::properties::{ConnectProperties, UserProperty, WillProperties};
use sansmqtt_proto::{
    Connect, Encode, Packet, PacketId, ProtocolVersion, Publish, QoS, Subscribe, SubscribeFilter,
    Will, decode,
};

/// rumqttc MQTT 3.1.1 types.
mod rv4 {
    pub(crate) use rumqttc::mqttbytes::QoS;
    pub(crate) use rumqttc::mqttbytes::v4::{Packet, Publish, Subscribe, SubscribeFilter};
}

/// rumqttc MQTT 5.0 types (`QoS` lives one level up from the packets).
mod rv5 {
    pub(crate) use rumqttc::v5::mqttbytes::QoS;
    pub(crate) use rumqttc::v5::mqttbytes::v5::{
        Connect, ConnectProperties, Filter, LastWill, LastWillProperties, Login, Packet, Publish,
        Subscribe,
    };
}

/// Decode size limit handed to every decoder: far above any packet here.
const MAX: u32 = 1 << 20;
/// Capacity reserved for every buffer; a multiple of the largest frame (about 4.1 KiB), so a
/// buffer that decoding has split frames off is reclaimed only now and then.
const CAPACITY: usize = 64 * 1024;

const TOPIC: &str = "sensors/room/004"; // 16 bytes
const PACKET_ID: u16 = 10;
const FILTERS: [&str; 4] = ["a/b/c", "sensors/+/temp", "home/#", "$SYS/broker/load"];
const CLIENT_ID: &str = "bench-client-0001";
const WILL_TOPIC: &str = "clients/bench/status";
const WILL_PAYLOAD: &[u8] = b"offline";
const USERNAME: &str = "user";
const PASSWORD: &str = "secret";

fn payload(len: usize) -> Bytes {
    (0..len).map(|i| i as u8).collect::<Vec<u8>>().into()
}

fn packet_id(value: u16) -> PacketId {
    PacketId::new(value).expect("non-zero packet id")
}

fn encode_ours(packet: &impl Encode, version: ProtocolVersion) -> Bytes {
    let mut buf = BytesMut::new();
    packet
        .encode(version, &mut buf)
        .expect("sansmqtt-proto encodes");
    buf.freeze()
}

fn decode_ours(wire: &[u8], version: ProtocolVersion) -> Packet {
    let mut input = BytesMut::from(wire);
    let packet = decode(&mut input, version, MAX)
        .expect("sansmqtt-proto decodes")
        .expect("a whole packet");
    assert!(input.is_empty(), "exactly one frame");
    packet
}

/// The three encode lines of one group.
fn encode_group(
    g: &mut BenchmarkGroup<'_, WallTime>,
    wire: &[u8],
    mut ours: impl FnMut(&mut BytesMut),
    mut theirs: impl FnMut(&mut BytesMut),
) {
    let mut buf = BytesMut::with_capacity(CAPACITY);
    g.bench_function("sansmqtt-proto", |b| {
        b.iter(|| {
            buf.clear();
            ours(&mut buf);
            buf.len()
        });
    });
    let mut buf = BytesMut::with_capacity(CAPACITY);
    g.bench_function("rumqttc", |b| {
        b.iter(|| {
            buf.clear();
            theirs(&mut buf);
            buf.len()
        });
    });
    memcpy_floor(g, wire);
}

/// The three decode lines of one group; `ours` and `theirs` decode one frame from the buffer.
///
/// The closures return each library's own decode result, which criterion drops inside the
/// timed loop. Unwrapping it in the loop would add moves of the packet that depend on its size
/// rather than on the codec (mqtt-proto's `Packet` is 440 bytes, rumqttc's v4 one 144), so
/// success is asserted once here instead; the input is the same every iteration.
fn decode_group<A, EA: Debug, B, EB: Debug>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    wire: &[u8],
    mut ours: impl FnMut(&mut BytesMut) -> Result<A, EA>,
    mut theirs: impl FnMut(&mut BytesMut) -> Result<B, EB>,
) {
    let mut input = BytesMut::from(wire);
    ours(&mut input).expect("sansmqtt-proto decodes");
    let mut input = BytesMut::from(wire);
    theirs(&mut input).expect("rumqttc decodes");

    let mut input = BytesMut::with_capacity(CAPACITY);
    g.bench_function("sansmqtt-proto", |b| {
        b.iter(|| {
            input.clear();
            input.extend_from_slice(black_box(wire));
            ours(&mut input)
        });
    });
    let mut input = BytesMut::with_capacity(CAPACITY);
    g.bench_function("rumqttc", |b| {
        b.iter(|| {
            input.clear();
            input.extend_from_slice(black_box(wire));
            theirs(&mut input)
        });
    });
    memcpy_floor(g, wire);
}

/// The three encode+decode lines of one group: encode into the cleared buffer, decode from it.
/// The decode result is returned as in [`decode_group`], and checked once up front.
fn round_trip_group<A, EA: Debug, B, EB: Debug>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    wire: &[u8],
    mut ours: impl FnMut(&mut BytesMut) -> Result<A, EA>,
    mut theirs: impl FnMut(&mut BytesMut) -> Result<B, EB>,
) {
    ours(&mut BytesMut::new()).expect("sansmqtt-proto round-trips");
    theirs(&mut BytesMut::new()).expect("rumqttc round-trips");

    let mut buf = BytesMut::with_capacity(CAPACITY);
    g.bench_function("sansmqtt-proto", |b| {
        b.iter(|| {
            buf.clear();
            ours(&mut buf)
        });
    });
    let mut buf = BytesMut::with_capacity(CAPACITY);
    g.bench_function("rumqttc", |b| {
        b.iter(|| {
            buf.clear();
            theirs(&mut buf)
        });
    });
    memcpy_floor(g, wire);
}

/// Copies the wire bytes into a pre-reserved, cleared buffer.
fn memcpy_floor(g: &mut BenchmarkGroup<'_, WallTime>, wire: &[u8]) {
    let mut buf = BytesMut::with_capacity(CAPACITY);
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(black_box(wire));
            black_box(&buf);
        });
    });
}

// ---- PUBLISH ---------------------------------------------------------------------------

fn publish(c: &mut Criterion, label: &str, payload_len: usize) {
    let body = payload(payload_len);

    let ours = Publish::new(TOPIC, body.clone()).with_qos(QoS::AtLeastOnce, packet_id(PACKET_ID));
    let mut theirs_v4 = rv4::Publish::from_bytes(TOPIC, rv4::QoS::AtLeastOnce, body.clone());
    theirs_v4.pkid = PACKET_ID;
    // `properties: None`: rumqttc decodes an empty property set as `None`.
    let mut theirs_v5 = rv5::Publish::new(TOPIC, rv5::QoS::AtLeastOnce, body, None);
    theirs_v5.pkid = PACKET_ID;

    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let v5 = version == ProtocolVersion::V5;
        let wire = encode_ours(&ours, version);

        // Both libraries must agree on the bytes and decode them to the original packet.
        let mut theirs_wire = BytesMut::new();
        if v5 {
            theirs_v5.write(&mut theirs_wire).expect("rumqttc encodes");
        } else {
            theirs_v4.write(&mut theirs_wire).expect("rumqttc encodes");
        }
        assert_eq!(wire, theirs_wire, "PUBLISH {version}: same encoding");
        assert_eq!(decode_ours(&wire, version), Packet::Publish(ours.clone()));
        if v5 {
            let read = rv5::Packet::read(&mut BytesMut::from(&wire[..]), Some(MAX));
            assert_eq!(
                read.expect("rumqttc decodes"),
                rv5::Packet::Publish(theirs_v5.clone())
            );
        } else {
            let read = rv4::Packet::read(&mut BytesMut::from(&wire[..]), MAX as usize);
            assert_eq!(
                read.expect("rumqttc decodes"),
                rv4::Packet::Publish(theirs_v4.clone())
            );
        }

        let name = |op: &str| format!("publish_{label}/{}/{op}", version_label(version));
        let throughput = Throughput::Bytes(wire.len() as u64);

        let mut g = c.benchmark_group(name("encode"));
        g.throughput(throughput.clone());
        encode_group(
            &mut g,
            &wire,
            |buf| {
                black_box(&ours).encode(version, buf).expect("encode");
            },
            |buf| {
                if v5 {
                    black_box(&theirs_v5).write(buf).expect("encode");
                } else {
                    black_box(&theirs_v4).write(buf).expect("encode");
                }
            },
        );
        g.finish();

        let mut g = c.benchmark_group(name("decode"));
        g.throughput(throughput.clone());
        if v5 {
            decode_group(
                &mut g,
                &wire,
                |buf| decode(buf, version, MAX),
                |buf| rv5::Packet::read(buf, Some(MAX)),
            );
        } else {
            decode_group(
                &mut g,
                &wire,
                |buf| decode(buf, version, MAX),
                |buf| rv4::Packet::read(buf, MAX as usize),
            );
        }
        g.finish();

        let mut g = c.benchmark_group(name("encode+decode"));
        g.throughput(throughput);
        if v5 {
            round_trip_group(
                &mut g,
                &wire,
                |buf| {
                    black_box(&ours).encode(version, buf).expect("encode");
                    decode(buf, version, MAX)
                },
                |buf| {
                    black_box(&theirs_v5).write(buf).expect("encode");
                    rv5::Packet::read(buf, Some(MAX))
                },
            );
        } else {
            round_trip_group(
                &mut g,
                &wire,
                |buf| {
                    black_box(&ours).encode(version, buf).expect("encode");
                    decode(buf, version, MAX)
                },
                |buf| {
                    black_box(&theirs_v4).write(buf).expect("encode");
                    rv4::Packet::read(buf, MAX as usize)
                },
            );
        }
        g.finish();
    }
}

fn publish_64(c: &mut Criterion) {
    publish(c, "64B", 64);
}

fn publish_4k(c: &mut Criterion) {
    publish(c, "4KiB", 4096);
}

// ---- SUBSCRIBE -------------------------------------------------------------------------

fn subscribe(c: &mut Criterion) {
    let ours = Subscribe::new(
        packet_id(11),
        FILTERS
            .iter()
            .map(|f| SubscribeFilter::new(*f, QoS::AtLeastOnce))
            .collect(),
    );
    let mut theirs_v4 = rv4::Subscribe::new_many(
        FILTERS
            .iter()
            .map(|f| rv4::SubscribeFilter::new((*f).to_owned(), rv4::QoS::AtLeastOnce)),
    );
    theirs_v4.pkid = 11;
    let mut theirs_v5 = rv5::Subscribe::new_many(
        FILTERS
            .iter()
            .map(|f| rv5::Filter::new(*f, rv5::QoS::AtLeastOnce)),
        None,
    );
    theirs_v5.pkid = 11;

    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let v5 = version == ProtocolVersion::V5;
        let wire = encode_ours(&ours, version);

        let mut theirs_wire = BytesMut::new();
        if v5 {
            theirs_v5.write(&mut theirs_wire).expect("rumqttc encodes");
        } else {
            theirs_v4.write(&mut theirs_wire).expect("rumqttc encodes");
        }
        assert_eq!(wire, theirs_wire, "SUBSCRIBE {version}: same encoding");
        assert_eq!(decode_ours(&wire, version), Packet::Subscribe(ours.clone()));
        if v5 {
            let read = rv5::Packet::read(&mut BytesMut::from(&wire[..]), Some(MAX));
            assert_eq!(
                read.expect("rumqttc decodes"),
                rv5::Packet::Subscribe(theirs_v5.clone())
            );
        } else {
            let read = rv4::Packet::read(&mut BytesMut::from(&wire[..]), MAX as usize);
            assert_eq!(
                read.expect("rumqttc decodes"),
                rv4::Packet::Subscribe(theirs_v4.clone())
            );
        }

        let name = |op: &str| format!("subscribe_4/{}/{op}", version_label(version));
        let throughput = Throughput::Bytes(wire.len() as u64);

        let mut g = c.benchmark_group(name("encode"));
        g.throughput(throughput.clone());
        encode_group(
            &mut g,
            &wire,
            |buf| {
                black_box(&ours).encode(version, buf).expect("encode");
            },
            |buf| {
                if v5 {
                    black_box(&theirs_v5).write(buf).expect("encode");
                } else {
                    black_box(&theirs_v4).write(buf).expect("encode");
                }
            },
        );
        g.finish();

        let mut g = c.benchmark_group(name("decode"));
        g.throughput(throughput);
        if v5 {
            decode_group(
                &mut g,
                &wire,
                |buf| decode(buf, version, MAX),
                |buf| rv5::Packet::read(buf, Some(MAX)),
            );
        } else {
            decode_group(
                &mut g,
                &wire,
                |buf| decode(buf, version, MAX),
                |buf| rv4::Packet::read(buf, MAX as usize),
            );
        }
        g.finish();
    }
}

// ---- CONNECT (MQTT 5 with properties) --------------------------------------------------

fn connect_v5(c: &mut Criterion) {
    const SESSION_EXPIRY: u32 = 3600;
    const RECEIVE_MAXIMUM: u16 = 100;
    const WILL_DELAY: u32 = 5;
    let version = ProtocolVersion::V5;

    let ours = Connect {
        clean_start: true,
        keep_alive: 60,
        client_id: CLIENT_ID.into(),
        will: Some(Will {
            topic: WILL_TOPIC.into(),
            payload: Bytes::from_static(WILL_PAYLOAD),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: WillProperties {
                will_delay_interval: Some(WILL_DELAY),
                ..WillProperties::default()
            },
        }),
        username: Some(USERNAME.into()),
        password: Some(Bytes::from_static(PASSWORD.as_bytes())),
        properties: ConnectProperties {
            session_expiry_interval: Some(SESSION_EXPIRY),
            receive_maximum: Some(RECEIVE_MAXIMUM),
            user_properties: vec![UserProperty::new("app", "bench")],
            ..ConnectProperties::default()
        },
    };

    let mut props = rv5::ConnectProperties::new();
    props.session_expiry_interval = Some(SESSION_EXPIRY);
    props.receive_maximum = Some(RECEIVE_MAXIMUM);
    props.user_properties = vec![("app".into(), "bench".into())];
    let theirs = rv5::Connect {
        keep_alive: 60,
        client_id: CLIENT_ID.into(),
        clean_start: true,
        properties: Some(props),
    };
    let will_props = rv5::LastWillProperties {
        delay_interval: Some(WILL_DELAY),
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        user_properties: vec![],
    };
    let theirs_will = Some(rv5::LastWill::new(
        WILL_TOPIC,
        WILL_PAYLOAD.to_vec(),
        rv5::QoS::AtLeastOnce,
        true,
        Some(will_props),
    ));
    let theirs_login = Some(rv5::Login::new(USERNAME, PASSWORD));

    let wire = encode_ours(&ours, version);
    // rumqttc writes its CONNECT flags at an absolute buffer index, so it only ever writes into
    // an empty buffer here (the benchmark clears it every iteration).
    let mut theirs_wire = BytesMut::new();
    theirs
        .write(&theirs_will, &theirs_login, &mut theirs_wire)
        .expect("rumqttc encodes");
    // The two may order properties differently, so compare lengths and cross-decode.
    assert_eq!(wire.len(), theirs_wire.len(), "CONNECT v5: same length");
    assert_eq!(decode_ours(&wire, version), Packet::from(ours.clone()));
    assert_eq!(
        decode_ours(&theirs_wire, version),
        Packet::from(ours.clone())
    );
    let expected = rv5::Packet::Connect(theirs.clone(), theirs_will.clone(), theirs_login.clone());
    let read = rv5::Packet::read(&mut BytesMut::from(&wire[..]), Some(MAX));
    assert_eq!(read.expect("rumqttc decodes"), expected);

    let throughput = Throughput::Bytes(wire.len() as u64);

    let mut g = c.benchmark_group("connect_props/v5/encode");
    g.throughput(throughput.clone());
    encode_group(
        &mut g,
        &wire,
        |buf| {
            black_box(&ours).encode(version, buf).expect("encode");
        },
        |buf| {
            black_box(&theirs)
                .write(black_box(&theirs_will), black_box(&theirs_login), buf)
                .expect("encode");
        },
    );
    g.finish();

    let mut g = c.benchmark_group("connect_props/v5/decode");
    g.throughput(throughput);
    decode_group(
        &mut g,
        &wire,
        |buf| decode(buf, version, MAX),
        |buf| rv5::Packet::read(buf, Some(MAX)),
    );
    g.finish();
}

const fn version_label(version: ProtocolVersion) -> &'static str {
    match version {
        ProtocolVersion::V5 => "v5",
        _ => "v311",
    }
}

/// Holds the undocumented `pub fn` that `criterion_group!` generates.
#[allow(missing_docs)]
mod group {
    use criterion::criterion_group;

    criterion_group!(
        benches,
        super::publish_64,
        super::publish_4k,
        super::subscribe,
        super::connect_v5
    );
}

criterion_main!(group::benches);
