//! The application's flow through the client (issue 21): every payload and string type the
//! calls take, streams that end, the graceful drain, and refusals that reach the caller.

use bytes::{Bytes, BytesMut};
use sansmqtt_client::Payload;

use super::*;

/// Every payload form `publish` takes compiles, and each arrives byte for byte; topics,
/// filters and URIs as `&str`, `String` and `&String` compile and work. That this function
/// compiles is half the test.
pub async fn publish_takes_every_payload_and_topic_form<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let uri: String = broker.uri();
    // Connect with `&String`, `String` and `&str`.
    let subscriber = MqttClient::<R>::new(None, no_retry());
    with_timeout::<R, _>(
        BOUND,
        "connect(&String)",
        subscriber.connect(&uri).into_future(),
    )
    .await
    .expect("connect with &String");
    let publisher =
        MqttClient::<R>::new(Some(&format!("{}-pub", subscriber.client_id())), no_retry());
    with_timeout::<R, _>(
        BOUND,
        "connect(String)",
        publisher.connect(uri.clone()).into_future(),
    )
    .await
    .expect("connect with String");
    let third = MqttClient::<R>::new(None, no_retry());
    with_timeout::<R, _>(
        BOUND,
        "connect(&str)",
        third.connect(uri.as_str()).into_future(),
    )
    .await
    .expect("connect with &str");
    third.disconnect().await.expect("disconnect");

    // Subscribe with `&String`, `String` and `&str` filters.
    let filter = String::from("forms/#");
    with_timeout::<R, _>(BOUND, "SUBACK", async {
        subscriber.subscribe([(&filter, QoS::AtLeastOnce)]).await?;
        subscriber
            .subscribe([(filter.clone(), QoS::AtLeastOnce)])
            .await?;
        subscriber
            .subscribe([(filter.as_str(), QoS::AtLeastOnce)])
            .await
    })
    .await
    .expect("subscribe with every filter form");

    let topic = String::from("forms/t");
    let buf = [b'a', b'b', b'c', b'd'];
    let vec = b"vec".to_vec();
    let text = String::from("string");
    let bytes = Bytes::from_static(b"bytes");
    let borrowed_text = format!("borrowed {}", 1);
    let mut bytes_mut = BytesMut::new();
    bytes_mut.extend_from_slice(b"bytes-mut");
    let expected: Vec<&[u8]> = vec![
        b"ab",
        b"array",
        b"borrowed 1",
        b"string",
        b"vec",
        b"bytes",
        b"bytes",
        b"vec",
        b"string",
        b"bytes-mut",
    ];
    let results = with_timeout::<R, _>(BOUND, "the publishes", async {
        vec![
            // &[u8] (a slice of a local buffer), &[u8; N], &str (not 'static).
            publisher
                .publish(&topic, &buf[..2])
                .qos(QoS::AtLeastOnce)
                .await,
            publisher
                .publish(&topic, b"array")
                .qos(QoS::AtLeastOnce)
                .await,
            publisher
                .publish(topic.as_str(), borrowed_text.as_str())
                .qos(QoS::AtLeastOnce)
                .await,
            // &String, &Vec<u8>, &Bytes (borrowed, the caller keeps them).
            publisher.publish(&topic, &text).qos(QoS::AtLeastOnce).await,
            publisher.publish(&topic, &vec).qos(QoS::AtLeastOnce).await,
            publisher
                .publish(&topic, &bytes)
                .qos(QoS::AtLeastOnce)
                .await,
            // Bytes, Vec<u8>, String, BytesMut (moved, not copied); the topic as `String`.
            publisher
                .publish(topic.clone(), bytes.clone())
                .qos(QoS::AtLeastOnce)
                .await,
            publisher
                .publish(topic.clone(), vec.clone())
                .qos(QoS::AtLeastOnce)
                .await,
            publisher
                .publish(topic.clone(), text.clone())
                .qos(QoS::AtLeastOnce)
                .await,
            publisher
                .publish(topic.clone(), bytes_mut)
                .qos(QoS::AtLeastOnce)
                .await,
        ]
    })
    .await;
    for (i, result) in results.into_iter().enumerate() {
        assert!(
            matches!(result, Ok(ReasonCode::Success)),
            "publish #{i}: {result:?}"
        );
    }
    for (i, payload) in expected.iter().enumerate() {
        let message = next_message(&subscriber, "a published form").await;
        assert_eq!(message.topic(), topic, "topic of message #{i}");
        assert_eq!(&message.payload()[..], *payload, "payload of message #{i}");
        assert!(message.matches("forms/+"), "{message:?} matches forms/+");
        assert!(!message.matches("other/#"), "{message:?} matches other/#");
    }
    // A `Payload` can be made ahead and passed on.
    let payload = Payload::from(&buf);
    publisher.publish(&topic, payload).await.expect("a Payload");
    let message = next_message(&subscriber, "the Payload").await;
    assert_eq!(message.payload_str().expect("UTF-8"), "abcd");

    // Unsubscribe with `&String`.
    with_timeout::<R, _>(BOUND, "UNSUBACK", subscriber.unsubscribe([&filter]))
        .await
        .expect("unsubscribe with &String");
    for client in [&subscriber, &publisher] {
        with_timeout::<R, _>(BOUND, "DISCONNECT", client.disconnect())
            .await
            .expect("disconnect");
    }
}

/// `payload_str` checks UTF-8 and says so with a typed error.
pub async fn payload_str_refuses_invalid_utf8<R: Runtime + Default>() {
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&client, "utf8/#", QoS::AtMostOnce).await;
    publish(&client, "utf8/bad", &[0xff, 0xfe], QoS::AtMostOnce, false).await;
    let message = next_message(&client, "the non-UTF-8 message").await;
    assert!(
        matches!(
            message.payload_str(),
            Err(sansmqtt_client::PayloadError::Utf8(_))
        ),
        "{:?}",
        message.payload_str()
    );
    client.disconnect().await.expect("disconnect");
}

/// `payload_json` (feature `json`) parses into the caller's type, and says why it could not.
pub async fn payload_json_reads_a_typed_value<R: Runtime + Default>() {
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Reading {
        sensor: String,
        celsius: f32,
    }
    let broker = Mosquitto::start();
    let client = connected::<R>(&broker.uri(), no_retry()).await;
    subscribe(&client, "json/#", QoS::AtMostOnce).await;
    publish(
        &client,
        "json/ok",
        br#"{"sensor":"t1","celsius":21.5}"#,
        QoS::AtMostOnce,
        false,
    )
    .await;
    publish(
        &client,
        "json/bad",
        br#"{"sensor":"t1"}"#,
        QoS::AtMostOnce,
        false,
    )
    .await;
    let good = next_message(&client, "the JSON message").await;
    assert_eq!(
        good.payload_json::<Reading>().expect("a Reading"),
        Reading {
            sensor: "t1".into(),
            celsius: 21.5
        }
    );
    let bad = next_message(&client, "the incomplete JSON message").await;
    let err = bad.payload_json::<Reading>();
    assert!(
        matches!(err, Err(sansmqtt_client::PayloadError::Json(_))),
        "{err:?}"
    );
    client.disconnect().await.expect("disconnect");
}
