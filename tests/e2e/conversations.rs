//! Conversations over MQTT: create (a direct conversation is unique per
//! pair), join a channel, leave, the conversation list with last message and
//! unread counts, the inbox notices, and admins deleting others' messages.
use serde_json::json;

use crate::chat_client::{error_code, ChatClient};
use crate::helpers::granted;
use crate::helpers::TestApp;

#[tokio::test]
async fn direct_conversations_are_unique_and_both_users_hear_of_them() {
    let app = TestApp::spawn().await;
    app.allow_user_conversations(&["direct", "group", "channel"]).await;
    let mut alice = ChatClient::connect(&app, "alice").await;
    let mut bob = ChatClient::connect(&app, "bob").await;

    let reply = alice.command(json!({"op": "conversation.create", "type": "direct", "member_ids": ["bob"]})).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["data"]["created"], true);
    let conversation = reply["data"]["conversation"]["id"].as_str().unwrap().to_owned();
    assert_eq!(reply["data"]["conversation"]["member_ids"], json!(["alice", "bob"]));
    let notice = bob.inbox_event("conversation.created").await;
    assert_eq!(notice["conversation"]["id"], conversation.as_str());

    // Either side creating it again gets the same conversation, and no new notice.
    let again = bob.command(json!({"op": "conversation.create", "type": "direct", "member_ids": ["alice"]})).await;
    assert_eq!(again["data"]["created"], false, "{again}");
    assert_eq!(again["data"]["conversation"]["id"], conversation.as_str());
    let (status, body) = app
        .api(reqwest::Method::POST, "/api/v1/conversations", Some(json!({"type": "direct", "member_ids": ["bob", "alice"]})))
        .await;
    assert_eq!((status, body["id"].as_str()), (200, Some(conversation.as_str())), "{body}");

    // A direct conversation cannot be left, nor joined by a third user.
    assert_eq!(error_code(&alice.command(json!({"op": "conversation.leave", "conversation_id": conversation})).await), "forbidden");
    let mut carol = ChatClient::connect(&app, "carol").await;
    assert_eq!(error_code(&carol.command(json!({"op": "conversation.join", "conversation_id": conversation})).await), "forbidden");
    // Bad requests.
    let bad = alice.command(json!({"op": "conversation.create", "type": "direct", "member_ids": []})).await;
    assert_eq!(error_code(&bad), "invalid_request");
    let bad = alice.command(json!({"op": "conversation.create", "type": "group", "member_ids": ["bob/#"]})).await;
    assert_eq!(error_code(&bad), "invalid_request");
    let bad = alice.command(json!({"op": "conversation.create", "type": "lobby"})).await;
    assert_eq!(error_code(&bad), "invalid_request");
}

#[tokio::test]
async fn channels_are_joined_and_left_and_members_see_it() {
    let app = TestApp::spawn().await;
    app.allow_user_conversations(&["direct", "group", "channel"]).await;
    let mut alice = ChatClient::connect(&app, "alice").await;
    let reply = alice.command(json!({"op": "conversation.create", "type": "channel", "title": "General"})).await;
    let conversation = reply["data"]["conversation"]["id"].as_str().unwrap().to_owned();
    assert_eq!(reply["data"]["conversation"]["admin_ids"], json!(["alice"]));
    let topic = app.conversation_topic(&conversation);
    assert!(granted(&alice.client.subscribe(&topic).await));

    // Bob is no member yet: he cannot read the channel, then joins it.
    let mut bob = ChatClient::connect(&app, "bob").await;
    assert!(!granted(&bob.client.subscribe(&topic).await));
    let joined = bob.command(json!({"op": "conversation.join", "conversation_id": conversation})).await;
    assert_eq!(joined["data"]["joined"], true, "{joined}");
    let event = crate::helpers::payload_json(&alice.client.publish_on(&topic).await);
    assert_eq!(event, json!({"type": "member.joined", "data": {"conversation_id": conversation, "user_id": "bob", "role": "member"}}));
    assert!(granted(&bob.client.subscribe(&topic).await));
    let again = bob.command(json!({"op": "conversation.join", "conversation_id": conversation})).await;
    assert_eq!(again["data"]["joined"], false);

    // A group is by invitation only.
    let group = alice.command(json!({"op": "conversation.create", "type": "group"})).await;
    let group_id = group["data"]["conversation"]["id"].as_str().unwrap().to_owned();
    assert_eq!(error_code(&bob.command(json!({"op": "conversation.join", "conversation_id": group_id})).await), "forbidden");

    // Bob leaves: his subscription ends, alice sees member.left, he cannot send.
    let left = bob.command(json!({"op": "conversation.leave", "conversation_id": conversation})).await;
    assert_eq!(left["data"]["left"], true, "{left}");
    let event = crate::helpers::payload_json(&alice.client.publish_on(&topic).await);
    assert_eq!(event, json!({"type": "member.left", "data": {"conversation_id": conversation, "user_id": "bob"}}));
    let send = bob.command(json!({"op": "message.send", "conversation_id": conversation, "content": "hi"})).await;
    assert_eq!(error_code(&send), "not_a_member");
    let leave = bob.command(json!({"op": "conversation.leave", "conversation_id": conversation})).await;
    assert_eq!(error_code(&leave), "not_a_member");
    let unknown = bob.command(json!({"op": "conversation.join", "conversation_id": "conv_nope"})).await;
    assert_eq!(error_code(&unknown), "conversation_not_found");
}

#[tokio::test]
async fn the_list_shows_last_messages_and_unread_counts() {
    let app = TestApp::spawn().await;
    app.allow_user_conversations(&["direct", "group", "channel"]).await;
    let mut alice = ChatClient::connect(&app, "alice").await;
    let mut bob = ChatClient::connect(&app, "bob").await;
    let first = alice.command(json!({"op": "conversation.create", "type": "group", "member_ids": ["bob"], "title": "One"})).await;
    let first = first["data"]["conversation"]["id"].as_str().unwrap().to_owned();
    let second = alice.command(json!({"op": "conversation.create", "type": "direct", "member_ids": ["bob"]})).await;
    let second = second["data"]["conversation"]["id"].as_str().unwrap().to_owned();
    for text in ["a", "b", "c"] {
        let sent = alice.command(json!({"op": "message.send", "conversation_id": first, "content": text})).await;
        assert_eq!(sent["ok"], true, "{sent}");
    }
    alice.command(json!({"op": "message.send", "conversation_id": second, "content": "psst"})).await;

    let list = bob.command(json!({"op": "conversations.list"})).await;
    assert_eq!(list["ok"], true, "{list}");
    let entries = list["data"]["conversations"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    // Newest activity first.
    assert_eq!(entries[0]["id"], second.as_str());
    assert_eq!(entries[0]["member_ids"], json!(["alice", "bob"]));
    assert_eq!(entries[0]["last_message"]["content"], "psst");
    assert_eq!(entries[0]["unread"], 1);
    assert_eq!(entries[1]["id"], first.as_str());
    assert_eq!(entries[1]["title"], "One");
    assert_eq!(entries[1]["last_message"]["content"], "c");
    assert_eq!(entries[1]["last_message"]["sender"]["name"], "alice name");
    assert_eq!(entries[1]["unread"], 3);
    assert_eq!(entries[1]["member_count"], 2);
    assert_eq!(entries[1]["role"], "member");
    assert_eq!(list["data"]["total_unread"], 4);
    assert_eq!(list["data"]["has_more"], false);

    // The sender has read what it sent.
    let list = alice.command(json!({"op": "conversations.list"})).await;
    assert_eq!(list["data"]["total_unread"], 0, "{list}");
    assert_eq!(list["data"]["conversations"][1]["role"], "admin");

    // Reading moves both counts; the inbox event carries the total.
    let read = bob.command(json!({"op": "read.mark", "conversation_id": first, "seq": 2})).await;
    assert_eq!((read["data"]["unread"].as_i64(), read["data"]["total_unread"].as_i64()), (Some(1), Some(2)), "{read}");
    let list = bob.command(json!({"op": "conversations.list", "limit": 1})).await;
    assert_eq!(list["data"]["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"]["has_more"], true);
    let before = list["data"]["conversations"][0]["last_activity_at"].clone();
    let next = bob.command(json!({"op": "conversations.list", "limit": 1, "before": before})).await;
    assert_eq!(next["data"]["conversations"][0]["id"], first.as_str(), "{next}");
    assert_eq!(next["data"]["conversations"][0]["unread"], 1);
    assert_eq!(next["data"]["has_more"], false);
}

#[tokio::test]
async fn an_admin_deletes_others_messages_a_member_does_not() {
    let app = TestApp::spawn().await;
    app.allow_user_conversations(&["direct", "group", "channel"]).await;
    let mut alice = ChatClient::connect(&app, "alice").await;
    let mut bob = ChatClient::connect(&app, "bob").await;
    let mut carol = ChatClient::connect(&app, "carol").await;
    let created =
        alice.command(json!({"op": "conversation.create", "type": "group", "member_ids": ["bob", "carol"]})).await;
    let conversation = created["data"]["conversation"]["id"].as_str().unwrap().to_owned();
    let sent = bob.command(json!({"op": "message.send", "conversation_id": conversation, "content": "spam"})).await;
    let message_id = sent["data"]["message"]["id"].as_str().unwrap().to_owned();

    let refused = carol.command(json!({"op": "message.delete", "message_id": message_id})).await;
    assert_eq!(error_code(&refused), "forbidden");
    let refused = alice.command(json!({"op": "message.edit", "message_id": message_id, "content": "nice"})).await;
    assert_eq!(error_code(&refused), "forbidden", "admins delete, they do not edit");
    let deleted = alice.command(json!({"op": "message.delete", "message_id": message_id})).await;
    assert_eq!(deleted["ok"], true, "{deleted}");
    assert_eq!(deleted["data"]["message"]["is_deleted"], true);
    assert_eq!(deleted["data"]["message"]["content"], "");
    assert_eq!(deleted["data"]["deleted_by"], "alice");

    // Roles given through the server API count too.
    let (status, _) = app
        .api(reqwest::Method::POST, &format!("/api/v1/conversations/{conversation}/members"), Some(json!({"user_id": "dave", "role": "admin"})))
        .await;
    assert_eq!(status, 201);
    let sent = carol.command(json!({"op": "message.send", "conversation_id": conversation, "content": "x"})).await;
    let message_id = sent["data"]["message"]["id"].as_str().unwrap().to_owned();
    let mut dave = ChatClient::connect(&app, "dave").await;
    let deleted = dave.command(json!({"op": "message.delete", "message_id": message_id})).await;
    assert_eq!(deleted["ok"], true, "{deleted}");
}

#[tokio::test]
async fn paging_the_list_never_skips_conversations_that_share_an_instant() {
    use sea_orm::sea_query::Expr;
    use sea_orm::EntityTrait;

    let app = TestApp::spawn().await;
    app.allow_user_conversations(&["direct", "group", "channel"]).await;
    let mut alice = ChatClient::connect(&app, "alice").await;
    let mut created = std::collections::BTreeSet::new();
    for _ in 0..3 {
        let reply = alice.command(json!({"op": "conversation.create", "type": "group"})).await;
        created.insert(reply["data"]["conversation"]["id"].as_str().unwrap().to_owned());
    }
    // As after one commit batch that touched all three.
    let instant = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00.123456Z").unwrap().to_utc();
    entity::conversation::Entity::update_many()
        .col_expr(entity::conversation::Column::LastActivityAt, Expr::value(instant))
        .exec(&app.db)
        .await
        .unwrap();

    let mut seen = std::collections::BTreeSet::new();
    let mut request = json!({"op": "conversations.list", "limit": 1});
    loop {
        let page = alice.command(request.clone()).await;
        let entries = page["data"]["conversations"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{page}");
        assert!(seen.insert(entries[0]["id"].as_str().unwrap().to_owned()), "no conversation twice: {page}");
        if page["data"]["has_more"] == false {
            assert_eq!(page["data"]["next"], serde_json::Value::Null);
            break;
        }
        let next = &page["data"]["next"];
        request = json!({"op": "conversations.list", "limit": 1, "before": next["before"], "before_id": next["before_id"]});
    }
    assert_eq!(seen, created);
    let bad = alice.command(json!({"op": "conversations.list", "before_id": "conv_x"})).await;
    assert_eq!(error_code(&bad), "invalid_request");
}
