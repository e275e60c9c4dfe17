//! What MQTT 3.1.1 and 5 ask of a broker, checked in the plain namespace
//! (anonymous clients, no ACL file) with rumqttc and raw sockets: retained
//! messages, wills, QoS 2, overlapping subscriptions, topic validity,
//! UNSUBSCRIBE of an unknown filter, zero-length client ids.
use std::time::Duration;

use rumqttc::mqttbytes::v4::{Connect, LastWill};
use rumqttc::{Packet, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{granted, TestApp, TestClient, PATIENCE};
use crate::plain::plain_options;

async fn open_app() -> TestApp {
    TestApp::spawn_with(|settings| settings.mosquitto.allow_anonymous = true).await
}

/// An anonymous rumqttc client.
async fn client(app: &TestApp, client_id: &str) -> TestClient {
    crate::plain::plain(app, client_id, None).await
}

/// A 3.1.1 CONNECT without credentials.
fn connect(client_id: &str, keep_alive: u16, clean_session: bool) -> Connect {
    let mut connect = Connect::new(client_id);
    connect.keep_alive = keep_alive;
    connect.clean_session = clean_session;
    connect
}

/// A raw socket that sent `connect`; what the server answers is the caller's to read.
async fn raw_connect(app: &TestApp, connect: Connect) -> TcpStream {
    let mut out = bytes::BytesMut::new();
    connect.write(&mut out).unwrap();
    let mut stream = TcpStream::connect(app.app_mqtt).await.unwrap();
    stream.write_all(&out).await.unwrap();
    stream
}

#[tokio::test]
async fn retained_messages_are_set_replaced_and_cleared() {
    let app = open_app().await;
    let publisher = client(&app, "publisher").await;
    for payload in ["first", "second"] {
        publisher.client.publish("state/lamp", QoS::AtLeastOnce, true, payload).await.unwrap();
    }
    publisher.client.publish("state/fan", QoS::AtLeastOnce, true, "on").await.unwrap();
    publisher.client.publish("state/fan", QoS::AtLeastOnce, true, "").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut late = client(&app, "late").await;
    assert!(granted(&late.subscribe("state/#").await));
    let retained = late.next_publish().await;
    assert_eq!((retained.topic.as_str(), &retained.payload[..], retained.retain), ("state/lamp", &b"second"[..], true));
    late.assert_no_publish().await;
    // Subscribing to the same filter again sends the retained message
    // again (§3.8.4), marked retained.
    assert!(granted(&late.subscribe("state/#").await));
    let again = late.next_publish().await;
    assert_eq!((again.topic.as_str(), &again.payload[..], again.retain), ("state/lamp", &b"second"[..], true));
    // Live delivery of a retained publish carries RETAIN 0 (§3.3.1.3).
    publisher.client.publish("state/lamp", QoS::AtLeastOnce, true, "third").await.unwrap();
    let live = late.publish_on("state/lamp").await;
    assert!(!live.retain);
}

/// A 3.1.1 CONNECT with a will on `will_topic`, no credentials.
fn connect_with_will(client_id: &str, keep_alive: u16, will_topic: &str) -> Connect {
    let mut connect = connect(client_id, keep_alive, true);
    connect.last_will = Some(LastWill::new(will_topic, "gone", QoS::AtLeastOnce, false));
    connect
}

#[tokio::test]
async fn wills_go_out_on_keep_alive_expiry_and_not_after_disconnect() {
    let app = open_app().await;
    let mut watcher = client(&app, "watcher").await;
    assert!(granted(&watcher.subscribe("wills/#").await));

    // Said DISCONNECT: no will.
    let mut polite = raw_connect(&app, connect_with_will("polite", 30, "wills/polite")).await;
    let mut connack = [0u8; 4];
    polite.read_exact(&mut connack).await.unwrap();
    polite.write_all(&[0xe0, 0x00]).await.unwrap();
    // Silent past 1.5 × its keep-alive of 1 s: the will.
    let mut silent = raw_connect(&app, connect_with_will("silent", 1, "wills/silent")).await;
    silent.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0]);

    let will = watcher.next_publish().await;
    assert_eq!((will.topic.as_str(), &will.payload[..]), ("wills/silent", &b"gone"[..]));
    watcher.assert_no_publish().await;
}

#[tokio::test]
async fn qos2_overlapping_subscriptions_and_unsubscribe_of_an_unknown_filter() {
    let app = open_app().await;
    let mut subscriber = client(&app, "subscriber").await;
    assert!(granted(&subscriber.subscribe("plant/#").await));
    subscriber.client.subscribe("plant/a/temp", QoS::ExactlyOnce).await.unwrap();
    assert!(granted(&subscriber.next_suback().await));

    let mut publisher = client(&app, "publisher").await;
    publisher.client.publish("plant/a/temp", QoS::ExactlyOnce, false, "7").await.unwrap();
    while !matches!(publisher.next_packet(PATIENCE).await, Some(Packet::PubComp(_))) {}
    // Both subscriptions match: delivered at least once, and never lost.
    let first = subscriber.publish_on("plant/a/temp").await;
    assert_eq!(&first.payload[..], b"7");

    // UNSUBSCRIBE of a filter never subscribed is still answered (§3.10.4).
    subscriber.client.unsubscribe("never/subscribed").await.unwrap();
    let answered = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(Packet::UnsubAck(_)) = subscriber.next_packet(PATIENCE).await {
                return;
            }
        }
    })
    .await;
    assert!(answered.is_ok(), "UNSUBACK for an unknown filter");
}

#[tokio::test]
async fn topic_names_and_filters_follow_the_specification() {
    let app = open_app().await;
    let mut subscriber = client(&app, "subscriber").await;
    // Empty levels and a leading `/` are valid topics.
    for topic in ["a//b", "/lead"] {
        assert!(granted(&subscriber.subscribe(topic).await), "{topic}");
    }
    let publisher = client(&app, "publisher").await;
    for topic in ["a//b", "/lead"] {
        publisher.client.publish(topic, QoS::AtLeastOnce, false, "x").await.unwrap();
        assert_eq!(subscriber.publish_on(topic).await.topic, topic);
    }
    // `#` not last, `+` sharing a level: refused filters (SUBACK 0x80; the
    // connection stays). rumqttc will not even send them: a raw socket does.
    let mut raw = raw_connect(&app, connect("wild", 30, true)).await;
    let mut connack = [0u8; 4];
    raw.read_exact(&mut connack).await.unwrap();
    for (pkid, filter) in [(1u8, "a/#/b"), (2, "a/b+"), (3, "a/#b")] {
        let mut subscribe = vec![0x82, (filter.len() + 5) as u8, 0, pkid, 0, filter.len() as u8];
        subscribe.extend_from_slice(filter.as_bytes());
        subscribe.push(1);
        raw.write_all(&subscribe).await.unwrap();
        let mut suback = [0u8; 5];
        raw.read_exact(&mut suback).await.unwrap();
        assert_eq!(suback, [0x90, 3, 0, pkid, 0x80], "{filter}");
    }
    // A wildcard in a topic name is a protocol error: the connection ends.
    raw.write_all(&[0x30, 5, 0, 3, b'a', b'/', b'+']).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, raw.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "closed after a PUBLISH on `a/+`");
    subscriber.assert_no_publish().await;
}

#[tokio::test]
async fn zero_length_client_ids() {
    let app = open_app().await;
    // With a clean session the server names the client (3.1.1 §3.1.3-6).
    let _unnamed = client(&app, "").await;
    // Without one it cannot keep a session for nobody: CONNACK 2 (§3.1.3-8).
    let mut raw = raw_connect(&app, connect("", 30, false)).await;
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, raw.read_to_end(&mut answer)).await.unwrap().unwrap();
    assert_eq!(answer, vec![0x20, 2, 0, 2]);
}

/// A raw 3.1.1 client without clean session: CONNECT, and CONNACK's
/// session-present flag.
async fn persistent_raw(app: &TestApp, client_id: &str) -> (TcpStream, bool) {
    let mut stream = raw_connect(app, connect(client_id, 30, false)).await;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack[3], 0, "accepted");
    (stream, connack[2] == 1)
}

/// The next whole packet on a raw stream.
async fn raw_packet(stream: &mut TcpStream) -> Vec<u8> {
    let mut header = [0u8; 2];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut header)).await.unwrap().unwrap();
    assert!(header[1] < 0x80, "short packets only here");
    let mut body = vec![0u8; usize::from(header[1])];
    stream.read_exact(&mut body).await.unwrap();
    [header.to_vec(), body].concat()
}

#[tokio::test]
async fn an_unacknowledged_message_is_sent_again_with_dup_when_the_session_resumes() {
    let app = open_app().await;
    let (mut first, present) = persistent_raw(&app, "keeper").await;
    assert!(!present);
    first.write_all(&[0x82, 10, 0, 1, 0, 5, b'd', b'u', b'p', b'/', b't', 1]).await.unwrap();
    assert_eq!(raw_packet(&mut first).await, vec![0x90, 3, 0, 1, 1]);
    let publisher = client(&app, "publisher").await;
    publisher.client.publish("dup/t", QoS::AtLeastOnce, false, "one").await.unwrap();
    let delivered = raw_packet(&mut first).await;
    assert_eq!(delivered[0], 0x32, "QoS 1, DUP 0 the first time");
    drop(first); // gone without PUBACK

    let (mut again, present) = persistent_raw(&app, "keeper").await;
    assert!(present);
    let redelivered = raw_packet(&mut again).await;
    assert_eq!(redelivered[0], 0x3a, "QoS 1 with DUP set (§4.4)");
    assert!(redelivered.ends_with(b"one"));
}

#[tokio::test]
async fn a_resumed_session_finds_at_most_max_queued_messages() {
    let app = TestApp::spawn_with(|settings| {
        settings.mosquitto.allow_anonymous = true;
        settings.router.max_queued_messages = 3;
    })
    .await;
    let mut options = plain_options(&app, "meter", None);
    options.set_clean_session(false);
    let mut meter = TestClient::connect(options.clone()).await.unwrap();
    assert!(granted(&meter.subscribe("readings/#").await));
    drop(meter);
    let mut publisher = client(&app, "publisher").await;
    for n in 0..10 {
        publisher.client.publish("readings/power", QoS::AtLeastOnce, false, n.to_string()).await.unwrap();
    }
    let mut acked = 0;
    while acked < 10 {
        if let Some(Packet::PubAck(_)) = publisher.next_packet(PATIENCE).await {
            acked += 1;
        }
    }
    let mut meter = TestClient::connect(options).await.unwrap();
    let mut received = Vec::new();
    while let Some(publish) = meter.next_publish_within(crate::helpers::QUIET).await {
        received.push(String::from_utf8(publish.payload.to_vec()).unwrap());
    }
    assert_eq!(received, vec!["7", "8", "9"], "the newest three; the oldest seven dropped");
}
