//! The chat engine over MQTT: commands on the outbox, replies on the inbox,
//! events on the conversation topic.
use std::collections::BTreeSet;

use reqwest::Method;
use rumqttc::QoS;
use serde_json::{json, Value};

use crate::chat_client::{error_code, ChatClient};
use crate::helpers::{granted, payload_json, TestApp};

#[tokio::test]
async fn send_edit_delete_and_history_between_members() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let topic = app.conversation_topic(&conversation);
    let mut alice = ChatClient::connect(&app, "alice").await;
    let mut bob = ChatClient::connect(&app, "bob").await;
    assert!(granted(&bob.client.subscribe(&topic).await));

    let send = json!({"op": "message.send", "conversation_id": conversation, "content": "hello bob", "client_msg_id": "c-1"});
    let reply = alice.command(send.clone()).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let message = reply["data"]["message"].clone();
    assert_eq!((message["seq"].as_i64(), message["content"].as_str()), (Some(1), Some("hello bob")));
    assert_eq!(message["sender"], json!({"id": "alice", "name": "alice name", "avatar_url": null}));
    let event = payload_json(&bob.client.publish_on(&topic).await);
    assert_eq!(event["type"], "message.created");
    assert_eq!(event["data"]["id"], message["id"]);

    // A retry with the same client_msg_id returns the original, stores nothing.
    let retry = alice.command(send).await;
    assert_eq!((retry["data"]["message"]["id"].clone(), retry["data"]["duplicate"].clone()), (message["id"].clone(), json!(true)));

    let id = message["id"].as_str().unwrap();
    let edited = alice.command(json!({"op": "message.edit", "message_id": id, "content": "hello, bob"})).await;
    assert_eq!(edited["data"]["message"]["edited"], true, "{edited}");
    let event = payload_json(&bob.client.publish_on(&topic).await);
    assert_eq!((event["type"].as_str(), event["data"]["content"].as_str()), (Some("message.updated"), Some("hello, bob")));

    assert_eq!(error_code(&bob.command(json!({"op": "message.edit", "message_id": id, "content": "mine now"})).await), "forbidden");
    assert_eq!(error_code(&bob.command(json!({"op": "message.delete", "message_id": id})).await), "forbidden");

    let deleted = alice.command(json!({"op": "message.delete", "message_id": id})).await;
    assert_eq!(deleted["ok"], true, "{deleted}");
    let event = payload_json(&bob.client.publish_on(&topic).await);
    assert_eq!(event["type"], "message.deleted");
    assert_eq!((event["data"]["content"].as_str(), event["data"]["is_deleted"].as_bool()), (Some(""), Some(true)));

    let second = alice.command(json!({"op": "message.send", "conversation_id": conversation, "content": "again"})).await;
    assert_eq!(second["data"]["message"]["seq"], 2);
    let history = bob.command(json!({"op": "history.sync", "conversation_id": conversation, "after_seq": 0})).await;
    let messages = history["data"]["messages"].as_array().unwrap();
    assert_eq!(messages.iter().map(|m| m["seq"].as_i64().unwrap()).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!((messages[0]["is_deleted"].as_bool(), messages[0]["content"].as_str()), (Some(true), Some("")));
    assert_eq!(history["data"]["has_more"], false);
    let after_first = bob.command(json!({"op": "history.sync", "conversation_id": conversation, "after_seq": 1, "limit": 1})).await;
    assert_eq!(after_first["data"]["messages"][0]["content"], "again");
}

#[tokio::test]
async fn concurrent_senders_in_two_conversations_get_gapless_increasing_seqs() {
    let app = TestApp::spawn().await;
    let users = ["u1", "u2", "u3", "u4", "u5"];
    // Sends alternate between two conversations, so batches hold both.
    let conversations = [app.create_conversation("group", &users).await, app.create_conversation("group", &users).await];
    let per_user = 40;
    let mut tasks = Vec::new();
    for user in users {
        let mut client = ChatClient::connect(&app, user).await;
        let conversations = conversations.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_user {
                let payload = json!({"id": format!("{user}-{i}"), "op": "message.send",
                    "conversation_id": conversations[i % 2], "content": format!("{user} {i}")});
                client.client.client.publish(client.outbox.clone(), QoS::AtLeastOnce, false, payload.to_string()).await.unwrap();
            }
            let mut seqs = [Vec::new(), Vec::new()];
            for i in 0..per_user {
                let reply = client.reply(&format!("{user}-{i}")).await;
                assert_eq!(reply["data"]["message"]["conversation_id"], conversations[i % 2].as_str(), "{reply}");
                seqs[i % 2].push(reply["data"]["message"]["seq"].as_i64().expect("seq"));
            }
            seqs
        }));
    }
    let mut all = [Vec::new(), Vec::new()];
    for task in tasks {
        for (conversation, seqs) in task.await.unwrap().into_iter().enumerate() {
            assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "one sender's messages keep their order: {seqs:?}");
            all[conversation].extend(seqs);
        }
    }
    for seqs in all {
        let unique: BTreeSet<i64> = seqs.iter().copied().collect();
        assert_eq!(unique.len(), seqs.len(), "no seq given twice");
        let expected = (1..=(users.len() * per_user / 2) as i64).collect::<Vec<_>>();
        assert_eq!(unique.into_iter().collect::<Vec<_>>(), expected, "each conversation counts from 1 without gaps");
    }
}

#[tokio::test]
async fn bad_commands_get_error_codes() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let strangers = app.create_conversation("group", &["bob", "carol"]).await;
    let mut alice = ChatClient::connect(&app, "alice").await;

    let reply = alice.raw("{not json").await;
    assert_eq!((error_code(&reply), &reply["reply_to"]), ("bad_json", &Value::Null));
    assert_eq!(error_code(&alice.raw("[1,2]").await), "bad_json");
    let cases = [
        (json!({"op": "message.fly"}), "unknown_op"),
        (json!({"conversation_id": conversation}), "invalid_request"),
        (json!({"op": "message.send", "content": "no conversation"}), "invalid_request"),
        (json!({"op": "message.send", "conversation_id": conversation, "content": 5}), "invalid_request"),
        (json!({"op": "message.send", "conversation_id": conversation, "content": ""}), "invalid_request"),
        (json!({"op": "message.send", "conversation_id": conversation, "content": "x", "type": 9}), "invalid_request"),
        (json!({"op": "message.send", "conversation_id": conversation, "content": "x", "extra": 1}), "invalid_request"),
        (json!({"op": "message.send", "conversation_id": conversation, "content": "x".repeat(4001)}), "content_too_long"),
        (json!({"op": "message.send", "conversation_id": strangers, "content": "let me in"}), "not_a_member"),
        (json!({"op": "message.send", "conversation_id": "conv_nope", "content": "x"}), "conversation_not_found"),
        (json!({"op": "history.sync", "conversation_id": strangers}), "not_a_member"),
        (json!({"op": "message.edit", "message_id": "msg_nope", "content": "x"}), "message_not_found"),
    ];
    for (command, code) in cases {
        assert_eq!(error_code(&alice.command(command.clone()).await), code, "{command}");
    }
    let (status, _) = app.api(Method::POST, &format!("/api/v1/conversations/{conversation}/archive"), None).await;
    assert_eq!(status, 200);
    let reply = alice.command(json!({"op": "message.send", "conversation_id": conversation, "content": "too late"})).await;
    assert_eq!(error_code(&reply), "conversation_archived");
    // History of an archived conversation stays readable.
    let history = alice.command(json!({"op": "history.sync", "conversation_id": conversation})).await;
    assert_eq!(history["ok"], true, "{history}");
}

#[tokio::test]
async fn membership_changes_reach_the_engine_at_once() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let mut bob = ChatClient::connect(&app, "bob").await;
    let send = json!({"op": "message.send", "conversation_id": conversation, "content": "hi"});
    assert_eq!(bob.command(send.clone()).await["ok"], true);

    let (status, _) = app.api(Method::DELETE, &format!("/api/v1/conversations/{conversation}/members/bob"), None).await;
    assert_eq!(status, 204);
    assert_eq!(error_code(&bob.command(send.clone()).await), "not_a_member");

    let (status, _) = app
        .api(Method::POST, &format!("/api/v1/conversations/{conversation}/members"), Some(json!({"user_id": "bob"})))
        .await;
    assert_eq!(status, 201);
    assert_eq!(bob.command(send).await["ok"], true);
}

#[tokio::test]
async fn the_same_client_msg_id_twice_in_a_burst_stores_one_message() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let mut alice = ChatClient::connect(&app, "alice").await;
    for id in ["a", "b"] {
        let payload = json!({"id": id, "op": "message.send", "conversation_id": conversation, "content": "once", "client_msg_id": "same"});
        alice.client.client.publish(alice.outbox.clone(), QoS::AtLeastOnce, false, payload.to_string()).await.unwrap();
    }
    let (first, second) = (alice.reply("a").await, alice.reply("b").await);
    assert_eq!(first["data"]["message"]["id"], second["data"]["message"]["id"]);
    assert_eq!((first["data"]["duplicate"].as_bool(), second["data"]["duplicate"].as_bool()), (Some(false), Some(true)));
    let history = alice.command(json!({"op": "history.sync", "conversation_id": conversation})).await;
    assert_eq!(history["data"]["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn reactions_and_read_receipts() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let strangers = app.create_conversation("group", &["carol"]).await;
    let topic = app.conversation_topic(&conversation);
    let mut alice = ChatClient::connect(&app, "alice").await;
    let mut bob = ChatClient::connect(&app, "bob").await;
    assert!(granted(&alice.client.subscribe(&topic).await));
    let mut ids = Vec::new();
    for content in ["one", "two", "three"] {
        let reply = alice.command(json!({"op": "message.send", "conversation_id": conversation, "content": content})).await;
        ids.push(reply["data"]["message"]["id"].as_str().unwrap().to_owned());
    }
    let add = json!({"op": "reaction.add", "message_id": ids[0], "emoji": "👍"});
    assert_eq!(bob.command(add.clone()).await["data"]["changed"], true);
    assert_eq!(bob.command(add).await["data"]["changed"], false, "adding twice changes nothing");
    let event = loop {
        let event = payload_json(&alice.client.publish_on(&topic).await);
        if event["type"] != "message.created" {
            break event;
        }
    };
    assert_eq!(event["type"], "reaction.added");
    assert_eq!((event["data"]["user_id"].as_str(), event["data"]["emoji"].as_str()), (Some("bob"), Some("👍")));
    let removed = bob.command(json!({"op": "reaction.remove", "message_id": ids[0], "emoji": "👍"})).await;
    assert_eq!(removed["data"]["changed"], true);
    assert_eq!(payload_json(&alice.client.publish_on(&topic).await)["type"], "reaction.removed");
    assert_eq!(error_code(&bob.command(json!({"op": "reaction.add", "message_id": ids[0], "emoji": "a b"})).await), "invalid_request");

    // Bob reads up to the second message: one unread left; marks never go backwards.
    let read = bob.command(json!({"op": "read.mark", "conversation_id": conversation, "message_id": ids[1]})).await;
    assert_eq!((read["data"]["last_read_seq"].as_i64(), read["data"]["unread"].as_i64()), (Some(2), Some(1)));
    let event = payload_json(&alice.client.publish_on(&topic).await);
    assert_eq!((event["type"].as_str(), event["data"]["user_id"].as_str(), event["data"]["last_read_seq"].as_i64()), (Some("read.updated"), Some("bob"), Some(2)));
    let back = bob.command(json!({"op": "read.mark", "conversation_id": conversation, "seq": 1})).await;
    assert_eq!(back["data"]["last_read_seq"], 2);
    let all = bob.command(json!({"op": "read.mark", "conversation_id": conversation, "seq": 99})).await;
    assert_eq!((all["data"]["last_read_seq"].as_i64(), all["data"]["unread"].as_i64()), (Some(3), Some(0)));
    assert_eq!(error_code(&bob.command(json!({"op": "read.mark", "conversation_id": conversation})).await), "invalid_request");
    assert_eq!(error_code(&bob.command(json!({"op": "read.mark", "conversation_id": strangers, "seq": 1})).await), "not_a_member");
    let strangers_message = json!({"op": "reaction.add", "message_id": "msg_nope", "emoji": "x"});
    assert_eq!(error_code(&bob.command(strangers_message).await), "message_not_found");
}
