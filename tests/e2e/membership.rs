//! Membership changes reach live connections.
use std::time::Duration;

use reqwest::Method;

use crate::helpers::{granted, TestApp};

/// DESIGN/issue contract: a removed member stops receiving within 1 second.
const REVOCATION_BOUND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn removing_a_member_cuts_delivery_on_its_live_connection() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let topic = app.conversation_topic(&conversation);
    let mut alice = app.client("alice").await;
    let mut alice_tablet = app.client("alice").await;
    let mut bob = app.client("bob").await;
    for client in [&mut alice, &mut alice_tablet, &mut bob] {
        assert!(granted(&client.subscribe(&format!("{topic}/#")).await));
    }
    app.publisher().publish(topic.clone(), "before").unwrap();
    assert_eq!(&alice.publish_on(&topic).await.payload[..], b"before");
    assert_eq!(&alice_tablet.publish_on(&topic).await.payload[..], b"before");
    assert_eq!(&bob.publish_on(&topic).await.payload[..], b"before");

    let (status, _) = app.api(Method::DELETE, &format!("/api/v1/conversations/{conversation}/members/alice"), None).await;
    assert_eq!(status, 204);
    tokio::time::sleep(REVOCATION_BOUND).await;
    // Drain what was in flight at removal (e.g. the member.left event).
    while alice.next_publish_within(Duration::from_millis(100)).await.is_some() {}
    while alice_tablet.next_publish_within(Duration::from_millis(100)).await.is_some() {}

    app.publisher().publish(topic.clone(), "after").unwrap();
    bob.payload_on(&topic, b"after").await;
    alice.assert_no_publish().await;
    alice_tablet.assert_no_publish().await;
    // And a new SUBSCRIBE is refused.
    assert!(!granted(&alice.subscribe(&topic).await));
}

#[tokio::test]
async fn adding_a_member_lets_it_subscribe_and_announces_it() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice"]).await;
    let topic = app.conversation_topic(&conversation);
    let mut bob = app.client("bob").await;
    let mut alice = app.client("alice").await;
    assert!(granted(&alice.subscribe(&topic).await));
    assert!(!granted(&bob.subscribe(&topic).await));
    let (status, body) = app
        .api(Method::POST, &format!("/api/v1/conversations/{conversation}/members"), Some(serde_json::json!({"user_id": "bob"})))
        .await;
    assert_eq!(status, 201, "{body}");
    let event = crate::helpers::payload_json(&alice.publish_on(&topic).await);
    assert_eq!(event["type"], "member.joined");
    assert_eq!(event["data"]["user_id"], "bob");
    assert!(granted(&bob.subscribe(&topic).await));
}
