//! Typing indicators: the gateway stamps who is typing and until when,
//! whatever the client put in the payload.
use rumqttc::QoS;
use serde_json::Value;

use crate::helpers::{granted, payload_json, TestApp};

#[tokio::test]
async fn typing_is_stamped_with_the_real_user_and_an_expiry() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let topic = format!("{}/typing", app.conversation_topic(&conversation));
    let alice = app.client("alice").await;
    let mut bob = app.client("bob").await;
    assert!(granted(&bob.subscribe(&topic).await));

    let before = chrono::Utc::now();
    let forged = r#"{"user_id":"carol","name":"Carol","typing":true,"expires_at":"2999-01-01T00:00:00Z"}"#;
    alice.client.publish(topic.clone(), QoS::AtMostOnce, true, forged).await.unwrap();
    let received = bob.publish_on(&topic).await;
    let after = chrono::Utc::now();
    assert!(!received.retain, "typing is never retained");
    let event = payload_json(&received);
    assert_eq!(event["type"], "typing");
    assert_eq!(event["data"]["user_id"], "alice");
    assert_eq!(event["data"]["name"], "alice name");
    assert_eq!(event["data"]["conversation_id"], conversation.as_str());
    assert_eq!(event["data"]["typing"], true);
    let expires: chrono::DateTime<chrono::Utc> = serde_json::from_value(event["data"]["expires_at"].clone()).unwrap();
    // Stamped on the way through: five seconds after the publish.
    let five = chrono::Duration::seconds(5);
    assert!(before + five <= expires && expires <= after + five, "{before} {expires} {after}");

    alice.client.publish(topic.clone(), QoS::AtLeastOnce, false, r#"{"typing":false}"#).await.unwrap();
    let stop = payload_json(&bob.publish_on(&topic).await);
    assert_eq!(stop["data"]["typing"], false);
    assert_eq!(stop["data"]["expires_at"], Value::Null);

    // A non-member's typing reaches no one.
    let carol = app.client("carol").await;
    carol.client.publish(topic.clone(), QoS::AtMostOnce, false, "{}").await.unwrap();
    bob.assert_no_publish().await;
}
