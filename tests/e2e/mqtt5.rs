//! MQTT 5 through the gateway: rumqttc's, paho-mqtt's and mqtt.js's v5
//! clients chatting with 3.1.1 clients over TCP and WebSocket,
//! request/response for commands, and every reason code the gateway sends,
//! read off a raw socket with rumqttc's own v5 codec.
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, Connect, ConnectProperties, ConnectReturnCode, DisconnectReasonCode, Filter, LastWill, LastWillProperties,
    Login, Packet, PubAckReason, PubRecReason, Publish, PublishProperties, RetainForwardRule, Subscribe,
    SubscribeProperties, SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS;
use serde_json::{json, Value};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::helpers::{granted, payload_json, TestApp, PATIENCE, QUIET};

/// One MQTT 5 connection on a raw socket, framed with rumqttc's v5 codec.
struct Wire {
    stream: TcpStream,
    buf: BytesMut,
}

impl Wire {
    async fn open(app: &TestApp) -> Wire {
        Wire { stream: TcpStream::connect(app.app_mqtt).await.unwrap(), buf: BytesMut::new() }
    }

    async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        packet.write(&mut out, None).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next packet; `None` once the server closed the connection.
    async fn next(&mut self) -> Option<Packet> {
        loop {
            match Packet::read(&mut self.buf, None) {
                Ok(packet) => return Some(packet),
                Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(error) => panic!("the gateway sent something rumqttc cannot read: {error:?}"),
            }
            let read = tokio::time::timeout(PATIENCE, self.stream.read_buf(&mut self.buf)).await.expect("a packet in time");
            if read.unwrap_or(0) == 0 {
                return None;
            }
        }
    }

    /// The next packet that is not a PUBLISH (those are skipped).
    async fn next_ack(&mut self) -> Option<Packet> {
        loop {
            match self.next().await? {
                Packet::Publish(_) => {}
                packet => return Some(packet),
            }
        }
    }

    async fn connect(app: &TestApp, client_id: &str, user: &str, properties: ConnectProperties) -> (Wire, ConnAck) {
        Self::connect_with(app, connect(client_id, properties), None, Some(login(app, &app.token(user)))).await
    }

    async fn connect_with(app: &TestApp, connect: Connect, will: Option<LastWill>, login: Option<Login>) -> (Wire, ConnAck) {
        let mut wire = Wire::open(app).await;
        wire.send(Packet::Connect(connect, will, login)).await;
        match wire.next().await {
            Some(Packet::ConnAck(ack)) => (wire, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    async fn subscribe(&mut self, pkid: u16, filters: Vec<Filter>, properties: Option<SubscribeProperties>) -> Vec<SubscribeReasonCode> {
        self.send(Packet::Subscribe(Subscribe { pkid, filters, properties })).await;
        match self.next_ack().await {
            Some(Packet::SubAck(ack)) if ack.pkid == pkid => ack.return_codes,
            other => panic!("expected SUBACK {pkid}, got {other:?}"),
        }
    }

    /// The server's DISCONNECT reason, then the end of the connection.
    async fn disconnected(&mut self) -> (DisconnectReasonCode, Option<String>) {
        loop {
            match self.next().await {
                Some(Packet::Disconnect(disconnect)) => {
                    assert!(self.next().await.is_none(), "the connection ends after DISCONNECT");
                    let reason = disconnect.properties.and_then(|properties| properties.reason_string);
                    return (disconnect.reason_code, reason);
                }
                Some(_) => {}
                None => panic!("closed without a DISCONNECT"),
            }
        }
    }
}

fn connect(client_id: &str, properties: ConnectProperties) -> Connect {
    Connect { keep_alive: 30, client_id: client_id.into(), clean_start: true, properties: Some(properties) }
}

fn login(app: &TestApp, token: &str) -> Login {
    Login { username: app.project.public_key.clone(), password: token.into() }
}

fn filter(path: &str) -> Filter {
    Filter::new(path, QoS::AtLeastOnce)
}

fn publish(topic: &str, qos: QoS, pkid: u16, payload: impl Into<Bytes>, properties: Option<PublishProperties>) -> Packet {
    let mut publish = Publish::new(topic, qos, payload, properties);
    publish.pkid = pkid;
    Packet::Publish(publish)
}

fn json_of(publish: &Publish) -> Value {
    serde_json::from_slice(&publish.payload).unwrap()
}

/// The next PUBLISH on `topic`, skipping others.
async fn publish_on(wire: &mut Wire, topic: &str) -> Publish {
    loop {
        match wire.next().await {
            Some(Packet::Publish(publish)) if publish.topic == topic.as_bytes() => return publish,
            Some(_) => {}
            None => panic!("closed while waiting for {topic}"),
        }
    }
}

#[tokio::test]
async fn an_mqtt5_connack_says_what_the_server_offers() {
    let app = TestApp::spawn_with(|settings| settings.gateway.max_keepalive = 20).await;
    let (_wire, ack) = Wire::connect(&app, "", "alice", ConnectProperties::new()).await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    let properties = ack.properties.expect("CONNACK properties");
    let assigned = properties.assigned_client_identifier.expect("an empty client id gets one assigned");
    assert!(!assigned.is_empty());
    assert_eq!(properties.server_keep_alive, Some(20), "30 s asked, 20 s allowed");
    assert_eq!(properties.topic_alias_max, Some(10));
    assert_eq!(properties.max_packet_size, Some(256 * 1024));
    assert_eq!(properties.shared_subscription_available, Some(0));

    // A 3.1.1 client asking for more than the maximum cannot be told: refused.
    let mut stream = TcpStream::connect(app.app_mqtt).await.unwrap();
    stream.write_all(&crate::robustness::connect_packet("a", &app.project.public_key, &app.token("alice"), 30)).await.unwrap();
    let mut answer = [0u8; 4];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer, [0x20, 2, 0, 2], "CONNACK 2: identifier rejected, Mosquitto's answer");
}

#[tokio::test]
async fn refused_connects_get_mqtt5_reason_codes_and_a_reason_string() {
    let app = TestApp::spawn().await;
    let refused = |ack: ConnAck| (ack.code, ack.properties.and_then(|p| p.reason_string).is_some());

    let (_, ack) = Wire::connect_with(&app, connect("a", ConnectProperties::new()), None, Some(login(&app, "not-a-token"))).await;
    assert_eq!(refused(ack), (ConnectReturnCode::BadUserNamePassword, true), "0x86 for a bad token");

    let (_, ack) = Wire::connect_with(&app, connect("a", ConnectProperties::new()), None, None).await;
    assert_eq!(refused(ack).0, ConnectReturnCode::BadUserNamePassword, "0x86 without credentials");

    let foreign_will = LastWill::new(format!("chat/{}/user/bob/status", app.project_id()), "gone", QoS::AtMostOnce, false, None);
    let (_, ack) = Wire::connect_with(&app, connect("a", ConnectProperties::new()), Some(foreign_will), Some(login(&app, &app.token("alice")))).await;
    assert_eq!(refused(ack), (ConnectReturnCode::NotAuthorized, true), "0x87 for a will on someone else's status");

    let mut properties = ConnectProperties::new();
    properties.authentication_method = Some("SCRAM-SHA-1".into());
    let (_, ack) = Wire::connect(&app, "a", "alice", properties).await;
    assert_eq!(refused(ack), (ConnectReturnCode::BadAuthenticationMethod, true), "0x8C for an AUTH method not offered");

    let (_, ack) = Wire::connect(&app, &"x".repeat(129), "alice", ConnectProperties::new()).await;
    assert_eq!(refused(ack).0, ConnectReturnCode::ClientIdentifierNotValid, "0x85");
}

#[tokio::test]
async fn refused_subscriptions_and_publishes_say_not_authorized() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let (mut wire, _) = Wire::connect(&app, "alice-v5", "alice", ConnectProperties::new()).await;
    let inbox = format!("chat/{}/user/alice/inbox", app.project_id());
    let codes = wire.subscribe(1, vec![filter("#"), filter(&inbox), filter(&format!("chat/{}/user/bob/inbox", app.project_id()))], None).await;
    assert_eq!(codes, vec![SubscribeReasonCode::NotAuthorized, SubscribeReasonCode::Success(QoS::AtLeastOnce), SubscribeReasonCode::NotAuthorized]);
    // Not a filter at all: 0x8F, not 0x87.
    assert_eq!(wire.subscribe(2, vec![filter("chat/#/x")], None).await, vec![SubscribeReasonCode::TopicFilterInvalid]);

    // Publishing on a conversation topic directly is refused: 0x87, with the reason.
    let conversation_topic = app.conversation_topic(&conversation);
    wire.send(publish(&conversation_topic, QoS::AtLeastOnce, 7, "forged", None)).await;
    match wire.next_ack().await {
        Some(Packet::PubAck(ack)) => {
            assert_eq!((ack.pkid, ack.reason), (7, PubAckReason::NotAuthorized));
            assert!(ack.properties.and_then(|p| p.reason_string).is_some());
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
    wire.send(publish(&conversation_topic, QoS::ExactlyOnce, 8, "forged", None)).await;
    match wire.next_ack().await {
        Some(Packet::PubRec(ack)) => assert_eq!((ack.pkid, ack.reason), (8, PubRecReason::NotAuthorized)),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    // A command whose response topic is someone else's inbox is refused.
    let outbox = format!("chat/{}/user/alice/outbox", app.project_id());
    let properties = PublishProperties { response_topic: Some(format!("chat/{}/user/bob/inbox", app.project_id())), ..Default::default() };
    let command = json!({"id": "l-1", "op": "conversation.list"}).to_string();
    wire.send(publish(&outbox, QoS::AtLeastOnce, 9, command, Some(properties))).await;
    match wire.next_ack().await {
        Some(Packet::PubAck(ack)) => assert_eq!((ack.pkid, ack.reason), (9, PubAckReason::NotAuthorized)),
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn commands_are_answered_on_their_response_topic_with_their_correlation_data() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let (mut wire, _) = Wire::connect(&app, "alice-v5", "alice", ConnectProperties::new()).await;
    let replies = format!("chat/{}/user/alice/inbox/replies", app.project_id());
    assert_eq!(wire.subscribe(1, vec![filter(&replies)], None).await, vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    let mut bob = app.client("bob").await;
    assert!(granted(&bob.subscribe(&app.conversation_topic(&conversation)).await));

    let outbox = format!("chat/{}/user/alice/outbox", app.project_id());
    let properties = PublishProperties {
        response_topic: Some(replies.clone()),
        correlation_data: Some(Bytes::from_static(b"\x00req-1\xff")),
        ..Default::default()
    };
    let send = json!({"id": "req-1", "op": "message.send", "conversation_id": conversation, "content": "hello from MQTT 5"});
    wire.send(publish(&outbox, QoS::AtLeastOnce, 3, send.to_string(), Some(properties))).await;
    let reply = publish_on(&mut wire, &replies).await;
    let properties = reply.properties.clone().expect("response properties");
    assert_eq!(properties.correlation_data.as_deref(), Some(&b"\x00req-1\xff"[..]));
    assert_eq!(properties.content_type.as_deref(), Some("application/json"));
    let body = json_of(&reply);
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(body["data"]["message"]["content"], "hello from MQTT 5");
    // The 3.1.1 member sees the message like any other.
    let created = payload_json(&bob.publish_on(&app.conversation_topic(&conversation)).await);
    assert_eq!(created["data"]["content"], "hello from MQTT 5");
}

#[tokio::test]
async fn mqtt5_and_mqtt311_clients_share_a_conversation() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob", "carol"]).await;
    let topic = app.conversation_topic(&conversation);
    let typing = format!("{topic}/typing");

    // alice and carol on rumqttc's MQTT 5 client, bob on 3.1.1.
    let v5_client = |user: &str| {
        let mut options = rumqttc::v5::MqttOptions::new(format!("{user}-v5"), app.app_mqtt.ip().to_string(), app.app_mqtt.port());
        options.set_credentials(app.project.public_key.clone(), app.token(user));
        options.set_topic_alias_max(Some(4));
        rumqttc::v5::AsyncClient::new(options, 64)
    };
    let (alice, alice_events) = v5_client("alice");
    let (carol, carol_events) = v5_client("carol");
    let mut alice_rx = events(alice_events);
    let mut carol_rx = events(carol_events);
    let mut bob = app.client("bob").await;
    assert!(granted(&bob.subscribe(&topic).await));
    assert!(granted(&bob.subscribe(&typing).await));
    // alice does not want her own typing back ("no local"); carol does not mind.
    let mut own_typing = rumqttc::v5::mqttbytes::v5::Filter::new(&typing, QoS::AtMostOnce);
    own_typing.nolocal = true;
    alice.subscribe_many([own_typing, rumqttc::v5::mqttbytes::v5::Filter::new(&topic, QoS::AtLeastOnce)]).await.unwrap();
    carol.subscribe(&typing, QoS::AtMostOnce).await.unwrap();
    for rx in [&mut alice_rx, &mut carol_rx] {
        wait_for(rx, |packet| matches!(packet, rumqttc::v5::mqttbytes::v5::Packet::SubAck(_))).await;
    }

    // A 3.1.1 message reaches the MQTT 5 subscriber.
    let outbox = format!("chat/{}/user/bob/outbox", app.project_id());
    bob.client
        .publish(&outbox, rumqttc::QoS::AtLeastOnce, false, json!({"id": "m-1", "op": "message.send", "conversation_id": conversation, "content": "from 3.1.1"}).to_string())
        .await
        .unwrap();
    let created = wait_for_publish(&mut alice_rx, &topic).await;
    assert_eq!(json_of(&created)["data"]["content"], "from 3.1.1");

    // MQTT 5 typing with a user property: the 3.1.1 member gets the stamped
    // payload, the MQTT 5 member the property too, alice nothing.
    let properties = PublishProperties { user_properties: vec![("device".into(), "watch".into())], ..Default::default() };
    alice.publish_with_properties(&typing, QoS::AtMostOnce, false, "x", properties).await.unwrap();
    let stamped = payload_json(&bob.publish_on(&typing).await);
    assert_eq!(stamped["data"]["user_id"], "alice");
    let at_carol = wait_for_publish(&mut carol_rx, &typing).await;
    assert_eq!(json_of(&at_carol)["data"]["user_id"], "alice");
    assert_eq!(at_carol.properties.map(|p| p.user_properties), Some(vec![("device".into(), "watch".into())]));
    assert!(
        tokio::time::timeout(QUIET, wait_for_publish(&mut alice_rx, &typing)).await.is_err(),
        "a no-local subscription does not get its own typing back"
    );
}

type Events = tokio::sync::mpsc::UnboundedReceiver<rumqttc::v5::mqttbytes::v5::Packet>;

/// Runs a rumqttc v5 event loop in the background, handing over what arrives.
fn events(mut eventloop: rumqttc::v5::EventLoop) -> Events {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let rumqttc::v5::Event::Incoming(packet) = event {
                if tx.send(packet).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

async fn wait_for(rx: &mut Events, wanted: impl Fn(&rumqttc::v5::mqttbytes::v5::Packet) -> bool) -> rumqttc::v5::mqttbytes::v5::Packet {
    loop {
        let packet = tokio::time::timeout(PATIENCE, rx.recv()).await.expect("a packet in time").expect("connection open");
        if wanted(&packet) {
            return packet;
        }
    }
}

async fn wait_for_publish(rx: &mut Events, topic: &str) -> Publish {
    match wait_for(rx, |packet| matches!(packet, Packet::Publish(p) if p.topic == topic.as_bytes())).await {
        Packet::Publish(publish) => publish,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn the_server_says_why_it_ends_a_connection() {
    let app = TestApp::spawn().await;

    // Taken over by a new connection with the same client id: 0x8E.
    let (mut first, _) = Wire::connect(&app, "phone", "alice", ConnectProperties::new()).await;
    let (_second, _) = Wire::connect(&app, "phone", "alice", ConnectProperties::new()).await;
    assert_eq!(first.disconnected().await.0, DisconnectReasonCode::SessionTakenOver);

    // Keep-alive of 1 s and silence: 0x8D after 1.5 s.
    let mut quiet = connect("quiet", ConnectProperties::new());
    quiet.keep_alive = 1;
    let (mut wire, _) = Wire::connect_with(&app, quiet, None, Some(login(&app, &app.token("alice")))).await;
    assert_eq!(wire.disconnected().await.0, DisconnectReasonCode::KeepAliveTimeout);

    // A token that expires on a live connection: 0xA0 "maximum connect time".
    let now = mqchat_broker::identity::now_unix();
    let claims = mqchat_broker::identity::IdentityClaims { sub: "alice".into(), name: None, email: None, avatar_url: None, iat: now, exp: now + 2, iss: None };
    let (mut wire, _) = Wire::connect_with(&app, connect("short", ConnectProperties::new()), None, Some(login(&app, &app.token_with(claims)))).await;
    let (reason, why) = wire.disconnected().await;
    assert_eq!((reason, why.as_deref()), (DisconnectReasonCode::MaximumConnectTime, Some("token expired")));

    // An alias never set: 0x94.
    let (mut wire, _) = Wire::connect(&app, "alias", "alice", ConnectProperties::new()).await;
    let properties = PublishProperties { topic_alias: Some(3), ..Default::default() };
    wire.send(publish("", QoS::AtMostOnce, 0, "x", Some(properties))).await;
    assert_eq!(wire.disconnected().await.0, DisconnectReasonCode::TopicAliasInvalid);
}

#[tokio::test]
async fn a_client_alias_stands_for_its_topic_and_oversize_packets_are_not_sent() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let typing = format!("{}/typing", app.conversation_topic(&conversation));
    let mut bob = app.client("bob").await;
    assert!(granted(&bob.subscribe(&typing).await));

    let mut small = ConnectProperties::new();
    small.max_packet_size = Some(1000);
    small.topic_alias_max = Some(2);
    let (mut alice, _) = Wire::connect(&app, "alice-v5", "alice", small).await;
    let topic = app.conversation_topic(&conversation);
    assert_eq!(alice.subscribe(1, vec![filter(&topic)], None).await, vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]);

    // The alias is set with the topic, then used alone; the ACL saw the topic both times.
    let set = PublishProperties { topic_alias: Some(1), ..Default::default() };
    alice.send(publish(&typing, QoS::AtMostOnce, 0, "x", Some(set.clone()))).await;
    alice.send(publish("", QoS::AtMostOnce, 0, "x", Some(set))).await;
    for _ in 0..2 {
        assert_eq!(payload_json(&bob.publish_on(&typing).await)["data"]["user_id"], "alice");
    }

    // A message too large for alice's 1,000 bytes is not sent to her (QoS 1:
    // the gateway acknowledges it to the router); the next small one is.
    let outbox = format!("chat/{}/user/bob/outbox", app.project_id());
    for content in ["x".repeat(1000), "small".to_owned()] {
        let command = json!({"id": "m-1", "op": "message.send", "conversation_id": conversation, "content": content});
        bob.client.publish(&outbox, rumqttc::QoS::AtLeastOnce, false, command.to_string()).await.unwrap();
    }
    let received = publish_on(&mut alice, &topic).await;
    assert_eq!(json_of(&received)["data"]["content"], "small");
    // alice takes up to 2 aliases: the topic came with alias 1, and the
    // next message on it comes with the alias alone.
    assert_eq!(received.properties.and_then(|p| p.topic_alias), Some(1));
    let command = json!({"id": "m-2", "op": "message.send", "conversation_id": conversation, "content": "aliased"});
    bob.client.publish(&outbox, rumqttc::QoS::AtLeastOnce, false, command.to_string()).await.unwrap();
    let aliased = loop {
        match alice.next().await {
            Some(Packet::Publish(publish)) => break publish,
            Some(_) => {}
            None => panic!("closed"),
        }
    };
    assert_eq!((aliased.topic.len(), aliased.properties.as_ref().and_then(|p| p.topic_alias)), (0, Some(1)));
    assert_eq!(json_of(&aliased)["data"]["content"], "aliased");
}

#[tokio::test]
async fn a_delayed_will_waits_and_a_reconnect_cancels_it() {
    let app = TestApp::spawn().await;
    let mut observer = app.observer().await;
    let status = format!("chat/{}/user/alice/status", app.project_id());
    let will = |payload: &str| {
        let properties = LastWillProperties { delay_interval: Some(1), payload_format_indicator: None, message_expiry_interval: None, content_type: None, response_topic: None, correlation_data: None, user_properties: vec![] };
        LastWill::new(&status, payload, QoS::AtLeastOnce, false, Some(properties))
    };
    let mut expiring = ConnectProperties::new();
    expiring.session_expiry_interval = Some(60);

    // Dropped, then back within the delay: no will.
    let (wire, _) = Wire::connect_with(&app, connect("phone", expiring.clone()), Some(will("first")), Some(login(&app, &app.token("alice")))).await;
    drop(wire);
    let (wire, _) = Wire::connect_with(&app, connect("phone", expiring.clone()), Some(will("second")), Some(login(&app, &app.token("alice")))).await;
    // Dropped for good: the will comes after its delay.
    let dropped_at = tokio::time::Instant::now();
    drop(wire);
    let published = observer.publish_on(&status).await;
    assert_eq!(&published.payload[..], b"second", "the first connection's will was cancelled");
    assert!(dropped_at.elapsed() >= Duration::from_millis(900), "published after the delay, not at once");
}

#[tokio::test]
async fn a_session_with_an_expiry_keeps_subscriptions_and_one_without_does_not() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let topic = app.conversation_topic(&conversation);
    let mut kept = ConnectProperties::new();
    kept.session_expiry_interval = Some(300);
    let resume = |properties: ConnectProperties| Connect { keep_alive: 30, client_id: "phone".into(), clean_start: false, properties: Some(properties) };

    let (mut wire, ack) = Wire::connect_with(&app, resume(kept.clone()), None, Some(login(&app, &app.token("alice")))).await;
    assert!(!ack.session_present);
    wire.subscribe(1, vec![filter(&topic)], None).await;
    drop(wire);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Back with the same client id: the session and its subscription are there.
    let (mut wire, ack) = Wire::connect_with(&app, resume(ConnectProperties::new()), None, Some(login(&app, &app.token("alice")))).await;
    assert!(ack.session_present);
    let bob = app.client("bob").await;
    let outbox = format!("chat/{}/user/bob/outbox", app.project_id());
    let command = json!({"id": "m-1", "op": "message.send", "conversation_id": conversation, "content": "kept"});
    bob.client.publish(&outbox, rumqttc::QoS::AtLeastOnce, false, command.to_string()).await.unwrap();
    assert_eq!(json_of(&publish_on(&mut wire, &topic).await)["data"]["content"], "kept");
    // This connection asked for no expiry: the session ends with it.
    drop(wire);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_wire, ack) = Wire::connect_with(&app, resume(ConnectProperties::new()), None, Some(login(&app, &app.token("alice")))).await;
    assert!(!ack.session_present);
}

#[tokio::test]
async fn retain_handling_and_subscription_identifiers_reach_the_client() {
    let app = TestApp::spawn().await;
    let presence = format!("chat/{}/presence/bob", app.project_id());
    // Bob comes online; once a watcher has seen it, the state is retained.
    let mut watcher = app.client("watcher").await;
    assert!(crate::helpers::granted(&watcher.subscribe(&presence).await));
    let _bob = app.client("bob").await;
    watcher.publish_on(&presence).await;
    let (mut wire, _) = Wire::connect(&app, "alice-v5", "alice", ConnectProperties::new()).await;
    // bob's presence is retained: "send retained" (0) gets it, with the subscription id.
    let properties = SubscribeProperties { id: Some(42), user_properties: vec![] };
    wire.subscribe(1, vec![filter(&presence)], Some(properties)).await;
    let retained = publish_on(&mut wire, &presence).await;
    assert!(retained.retain);
    assert_eq!(retained.properties.map(|p| p.subscription_identifiers), Some(vec![42]));
    // Again with "send retained only for a new subscription" (1): nothing;
    // again with "send retained" (0): the retained message once more.
    let mut if_new = filter(&presence);
    if_new.retain_forward_rule = RetainForwardRule::OnNewSubscribe;
    wire.subscribe(2, vec![if_new], None).await;
    assert!(tokio::time::timeout(QUIET, wire.next()).await.is_err(), "retain handling 1 on an existing subscription");
    wire.subscribe(3, vec![filter(&presence)], None).await;
    assert!(publish_on(&mut wire, &presence).await.retain);
    // "Do not send retained" (2) on a fresh connection: nothing.
    let (mut other, _) = Wire::connect(&app, "alice-v5-b", "alice", ConnectProperties::new()).await;
    let mut never = filter(&presence);
    never.retain_forward_rule = RetainForwardRule::Never;
    other.subscribe(1, vec![never], None).await;
    assert!(tokio::time::timeout(QUIET, other.next()).await.is_err(), "retain handling 2 sends no retained message");
}

#[tokio::test]
async fn paho_in_mqtt5_mode_over_tcp_and_websocket() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["paho", "bob"]).await;
    let mut bob = app.client("bob").await;
    assert!(granted(&bob.subscribe(&app.conversation_topic(&conversation)).await));
    for (transport, port) in [("tcp", app.app_mqtt.port()), ("websockets", app.app_ws.port())] {
        let content = format!("paho over {transport}");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/paho_v5.py");
        let mut child = Command::new(std::env::var("MQCHAT_TEST_PYTHON").unwrap_or_else(|_| "python3".into()))
            .arg(script)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--transport", transport])
            .args(["--public-key", &app.project.public_key, "--secret-key", &app.project.secret_key, "--sub", "paho"])
            .args(["--project", app.project_id(), "--conversation", &conversation, "--content", &content])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python with paho-mqtt and PyJWT");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = Vec::new();
        for _ in 0..3 {
            printed.push(tokio::time::timeout(PATIENCE, lines.next_line()).await.unwrap().unwrap().unwrap_or_default());
        }
        assert_eq!(printed[0], "SUBACK 1 1 135", "paho's view of the MQTT 5 reason codes ({transport})");
        let mut rest = printed.split_off(1);
        rest.sort();
        assert_eq!(rest, vec![format!("MESSAGE {content}"), "REPLY paho-1 true".to_owned()]);
        assert!(tokio::time::timeout(PATIENCE, child.wait()).await.unwrap().unwrap().success());
        let created = payload_json(&bob.publish_on(&app.conversation_topic(&conversation)).await);
        assert_eq!(created["data"]["content"], content.as_str());
    }
}

#[tokio::test]
async fn mqtt_js_in_mqtt5_mode_over_tcp_and_websocket() {
    crate::browser::run("mqtt5").await;
}
