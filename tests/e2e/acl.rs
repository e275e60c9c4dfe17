//! Who may read and write which topic.
use rumqttc::{LastWill, QoS, SubscribeReasonCode};

use crate::helpers::{granted, payload_json, TestApp, TestClient};

#[tokio::test]
async fn member_receives_platform_events_and_non_member_is_refused() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let topic = app.conversation_topic(&conversation);
    let mut alice = app.client("alice").await;
    let mut mallory = app.client("mallory").await;
    assert!(granted(&alice.subscribe(&topic).await));
    assert_eq!(mallory.subscribe(&topic).await, vec![SubscribeReasonCode::Failure]);

    app.publisher().publish(topic.clone(), r#"{"type":"message.created","data":{"content":"hi"}}"#).unwrap();
    let event = alice.publish_on(&topic).await;
    assert_eq!(payload_json(&event)["data"]["content"], "hi");
    mallory.assert_no_publish().await;
}

#[tokio::test]
async fn wildcard_tricks_and_foreign_topics_are_refused() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let p = app.project_id().to_owned();
    let mut alice = app.client("alice").await;
    for filter in [
        "#".to_owned(),
        "+".to_owned(),
        "chat/#".to_owned(),
        format!("chat/+/conv/{conversation}"),
        format!("chat/{p}/#"),
        format!("chat/{p}/conv/+"),
        format!("chat/{p}/conv/#"),
        format!("chat/{p}/conv/+/typing"),
        format!("chat/{p}/user/+/inbox"),
        format!("chat/{p}/user/bob/inbox"),
        format!("chat/{p}/user/alice/outbox"),
        "$SYS/#".to_owned(),
    ] {
        assert_eq!(alice.subscribe(&filter).await, vec![SubscribeReasonCode::Failure], "{filter}");
    }
    // Allowed ones, in one SUBSCRIBE with a refused one: codes keep their order.
    alice
        .client
        .subscribe_many([
            rumqttc::SubscribeFilter::new(format!("chat/{p}/user/alice/inbox"), QoS::AtLeastOnce),
            rumqttc::SubscribeFilter::new("chat/#".into(), QoS::AtLeastOnce),
            rumqttc::SubscribeFilter::new(format!("chat/{p}/conv/{conversation}/#"), QoS::AtMostOnce),
        ])
        .await
        .unwrap();
    assert_eq!(
        alice.next_suback().await,
        vec![
            SubscribeReasonCode::Success(QoS::AtLeastOnce),
            SubscribeReasonCode::Failure,
            SubscribeReasonCode::Success(QoS::AtMostOnce)
        ]
    );
}

#[tokio::test]
async fn cross_project_access_is_refused() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice"]).await;
    let other = mqchat_bridge::projects::create(&app.db, "Other").await.unwrap();
    // alice of the other project: same `sub`, other tenant.
    let now = mqchat_broker::identity::now_unix();
    let claims = mqchat_broker::identity::IdentityClaims {
        sub: "alice".into(), name: None, email: None, avatar_url: None, iat: now, exp: now + 600, iss: None,
    };
    let token = mqchat_broker::identity::sign(&other.secret_key, &claims).unwrap();
    let mut options = app.options("alice-other", &token);
    options.set_credentials(other.public_key.clone(), token.clone());
    let mut foreign = TestClient::connect(options).await.unwrap();
    assert_eq!(foreign.subscribe(&app.conversation_topic(&conversation)).await, vec![SubscribeReasonCode::Failure]);
    assert_eq!(
        foreign.subscribe(&format!("chat/{}/user/alice/inbox", app.project_id())).await,
        vec![SubscribeReasonCode::Failure]
    );
    // The other project's token does not open this project either.
    let mut options = app.options("alice-mixed", &token);
    options.set_credentials(app.project.public_key.clone(), token);
    assert!(TestClient::connect(options).await.is_err());
}

#[tokio::test]
async fn refused_publications_never_reach_the_router() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let other_conversation = app.create_conversation("group", &["bob", "carol"]).await;
    let p = app.project_id().to_owned();
    let mut observer = app.observer().await;
    let alice = app.client("alice").await;
    for (topic, qos) in [
        (format!("chat/{p}/user/bob/outbox"), QoS::AtLeastOnce),
        (app.conversation_topic(&conversation), QoS::AtMostOnce),
        (format!("chat/{p}/conv/{other_conversation}/typing"), QoS::ExactlyOnce),
        (format!("chat/{p}/presence/alice"), QoS::AtLeastOnce),
        (format!("chat/{p}/user/alice/inbox"), QoS::AtMostOnce),
    ] {
        alice.client.publish(topic, qos, false, "forged").await.unwrap();
    }
    // Allowed publications, after the refused ones, arrive in order; nothing
    // forged does (the platform's own reply to the command may, on the inbox).
    let outbox = format!("chat/{p}/user/alice/outbox");
    let typing = format!("chat/{p}/conv/{conversation}/typing");
    alice.client.publish(outbox.clone(), QoS::AtLeastOnce, false, "command").await.unwrap();
    alice.client.publish(typing.clone(), QoS::AtMostOnce, false, "typing").await.unwrap();
    let mut seen = Vec::new();
    while let Some(publish) = observer.next_publish_within(crate::helpers::QUIET).await {
        assert_ne!(&publish.payload[..], b"forged", "a refused PUBLISH reached {}", publish.topic);
        seen.push((publish.topic.clone(), publish.payload.clone()));
    }
    let from_alice: Vec<_> = seen.iter().filter(|(topic, _)| topic == &outbox || topic == &typing).collect();
    assert_eq!(from_alice.len(), 2, "{seen:?}");
    assert_eq!((from_alice[0].0.as_str(), &from_alice[0].1[..]), (outbox.as_str(), &b"command"[..]));
    assert_eq!(from_alice[1].0, typing);
    let stamped: serde_json::Value = serde_json::from_slice(&from_alice[1].1).unwrap();
    assert_eq!(stamped["data"]["user_id"], "alice", "typing is stamped with the publisher");
}

#[tokio::test]
async fn a_will_on_a_foreign_topic_is_refused() {
    let app = TestApp::spawn().await;
    let p = app.project_id().to_owned();
    let mut options = app.options("alice-will", &app.token("alice"));
    options.set_last_will(LastWill::new(format!("chat/{p}/user/bob/status"), "offline", QoS::AtLeastOnce, false));
    let error = TestClient::connect(options).await.err().expect("refused");
    assert!(matches!(error, rumqttc::ConnectionError::ConnectionRefused(rumqttc::ConnectReturnCode::NotAuthorized)), "{error:?}");

    let mut options = app.options("alice-will", &app.token("alice"));
    options.set_last_will(LastWill::new(format!("chat/{p}/user/alice/status"), "offline", QoS::AtLeastOnce, false));
    assert!(TestClient::connect(options).await.is_ok());
}

#[tokio::test]
async fn a_dropped_connection_publishes_its_will_or_the_injected_one() {
    let app = TestApp::spawn().await;
    let p = app.project_id().to_owned();
    let mut observer = app.observer().await;
    let client = app.client("alice").await;
    drop(client); // aborts the event loop: the socket closes without DISCONNECT
    let will = observer.publish_on(&format!("chat/{p}/user/alice/status")).await;
    assert_eq!(&will.payload[..], br#"{"status":"offline"}"#);
}
