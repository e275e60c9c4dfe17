//! MQTT 3.1.1 semantics survive the gateway: QoS 0/1/2, persistent
//! sessions, several devices, namespaced client ids.
use rumqttc::QoS;

use crate::helpers::{granted, payload_json, TestApp, TestClient};

#[tokio::test]
async fn qos_1_and_2_between_members_and_typing_is_never_retained() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let typing = format!("{}/typing", app.conversation_topic(&conversation));
    let mut alice = app.client("alice").await;
    alice.client.publish(typing.clone(), QoS::AtLeastOnce, true, "retain me").await.unwrap();
    // The router has it (PUBACK) before Bob subscribes: a retained message would reach him.
    while !matches!(alice.next_packet(crate::helpers::PATIENCE).await, Some(rumqttc::Packet::PubAck(_))) {}
    let mut bob = app.client("bob").await;
    bob.client.subscribe(typing.clone(), QoS::ExactlyOnce).await.unwrap();
    assert!(granted(&bob.next_suback().await));
    alice.client.publish(typing.clone(), QoS::ExactlyOnce, false, "exactly once").await.unwrap();
    let delivered = bob.publish_on(&typing).await;
    assert!(!delivered.retain);
    assert_eq!(delivered.qos, QoS::ExactlyOnce);
    assert_eq!(payload_json(&delivered)["data"]["user_id"], "alice");
    bob.assert_no_publish().await;
}

#[tokio::test]
async fn a_persistent_session_gets_what_was_published_while_offline() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let typing = format!("{}/typing", app.conversation_topic(&conversation));
    let mut options = app.options("bob-phone", &app.token("bob"));
    options.set_clean_session(false);
    let mut bob = TestClient::connect(options.clone()).await.unwrap();
    assert!(granted(&bob.subscribe(&typing).await));
    drop(bob); // the phone loses its network; its session stays on the server

    let alice = app.client("alice").await;
    alice.client.publish(typing.clone(), QoS::AtLeastOnce, false, r#"{"typing":false}"#).await.unwrap();
    // Alice's PUBACK means the router has it.
    let mut alice = alice;
    while !matches!(alice.next_packet(crate::helpers::PATIENCE).await, Some(rumqttc::Packet::PubAck(_))) {}

    let mut bob = TestClient::connect(options).await.unwrap();
    let missed = payload_json(&bob.publish_on(&typing).await);
    assert_eq!((missed["data"]["user_id"].as_str(), missed["data"]["typing"].as_bool()), (Some("alice"), Some(false)));
}

#[tokio::test]
async fn same_client_id_for_two_users_does_not_kick_either() {
    let app = TestApp::spawn().await;
    let inbox = |user: &str| format!("chat/{}/user/{user}/inbox", app.project_id());
    // Characters rumqttd itself refuses in client ids are fine through the gateway.
    let mut alice = TestClient::connect(app.options("phone/1#$+", &app.token("alice"))).await.unwrap();
    let mut bob = TestClient::connect(app.options("phone", &app.token("bob"))).await.unwrap();
    assert!(granted(&alice.subscribe(&inbox("alice")).await));
    assert!(granted(&bob.subscribe(&inbox("bob")).await));
    app.publisher().publish(inbox("alice"), "for alice").unwrap();
    app.publisher().publish(inbox("bob"), "for bob").unwrap();
    assert_eq!(&alice.publish_on(&inbox("alice")).await.payload[..], b"for alice");
    assert_eq!(&bob.publish_on(&inbox("bob")).await.payload[..], b"for bob");
}

