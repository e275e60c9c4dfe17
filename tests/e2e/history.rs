//! History over HTTP: the site backend with its secret key, members with
//! their session token, pages in both directions with reactions.
use reqwest::Method;
use serde_json::{json, Value};

use crate::chat_client::ChatClient;
use crate::helpers::TestApp;

/// `GET path` as `user` (public key + identity token).
async fn get_as(app: &TestApp, user: &str, path: &str) -> (u16, Value) {
    let response = app
        .http
        .get(app.url(path))
        .header("X-Public-Key", &app.project.public_key)
        .bearer_auth(app.token(user))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn seqs(page: &Value) -> Vec<i64> {
    page["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn pages_of_history_for_the_backend_and_for_members_only() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let mut alice = ChatClient::connect(&app, "alice").await;
    let mut ids = Vec::new();
    for n in 1..=7 {
        let sent = alice.command(json!({"op": "message.send", "conversation_id": conversation, "content": format!("m{n}")})).await;
        ids.push(sent["data"]["message"]["id"].as_str().unwrap().to_owned());
    }
    let mut bob = ChatClient::connect(&app, "bob").await;
    bob.command(json!({"op": "reaction.add", "message_id": ids[6], "emoji": "👍"})).await;
    alice.command(json!({"op": "reaction.add", "message_id": ids[6], "emoji": "👍"})).await;
    bob.command(json!({"op": "reaction.add", "message_id": ids[6], "emoji": "🎉"})).await;

    let path = format!("/api/v1/conversations/{conversation}/messages");
    // Newest page first, returned oldest first.
    let (status, newest) = app.api(Method::GET, &format!("{path}?limit=3"), None).await;
    assert_eq!(status, 200, "{newest}");
    assert_eq!(seqs(&newest), [5, 6, 7]);
    assert_eq!(newest["has_more"], true);
    let reactions = &newest["messages"][2]["reactions"];
    assert_eq!(reactions[0]["emoji"], "👍");
    assert_eq!(reactions[0]["count"], 2);
    assert_eq!(reactions[0]["user_ids"], json!(["bob", "alice"]));
    assert_eq!(reactions[1], json!({"emoji": "🎉", "count": 1, "user_ids": ["bob"]}));
    // Scrolling back, then catching up.
    let (_, older) = app.api(Method::GET, &format!("{path}?limit=3&before_seq=5"), None).await;
    assert_eq!(seqs(&older), [2, 3, 4]);
    assert_eq!(older["has_more"], true);
    let (_, oldest) = app.api(Method::GET, &format!("{path}?limit=3&before_seq=2"), None).await;
    assert_eq!((seqs(&oldest), oldest["has_more"].as_bool()), (vec![1], Some(false)));
    let (_, after) = get_as(&app, "bob", &format!("{path}?after_seq=5")).await;
    assert_eq!((seqs(&after), after["has_more"].as_bool()), (vec![6, 7], Some(false)));
    assert_eq!(after["messages"][0]["content"], "m6");
    // The same reactions come with history.sync over MQTT.
    let synced = bob.command(json!({"op": "history.sync", "conversation_id": conversation, "after_seq": 6})).await;
    assert_eq!(synced["data"]["messages"][0]["reactions"][1]["emoji"], "🎉", "{synced}");

    // A non-member, a bad token, a bad query, an unknown conversation.
    let (status, body) = get_as(&app, "carol", &path).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("not_a_member")));
    let response = app.http.get(app.url(&path)).header("X-Public-Key", &app.project.public_key).bearer_auth("nope").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let (status, _) = app.api(Method::GET, &format!("{path}?before_seq=3&after_seq=1"), None).await;
    assert_eq!(status, 422);
    let (status, _) = app.api(Method::GET, &format!("{path}?limit=lots"), None).await;
    assert_eq!(status, 400);
    let (status, body) = app.api(Method::GET, "/api/v1/conversations/conv_nope/messages", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("conversation_not_found")));
}
