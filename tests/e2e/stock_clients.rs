//! Stock clients from other implementations: mosquitto_pub/sub (libmosquitto)
//! and paho-mqtt with a token signed by PyJWT.
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::helpers::{granted, TestApp, PATIENCE};

fn python() -> String {
    std::env::var("MQCHAT_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[tokio::test]
async fn mosquitto_sub_and_pub_chat_through_the_gateway() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let typing = format!("{}/typing", app.conversation_topic(&conversation));
    let port = app.app_mqtt.port().to_string();
    let mut sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port, "-u", &app.project.public_key, "-P", &app.token("alice")])
        .args(["-t", &typing, "-C", "1", "-v", "-q", "1"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto_sub is installed (apt-get install mosquitto-clients)");
    // Wait until alice's subscription is live: the gateway has her connected
    // and rumqttd delivers her a retained-free probe from bob.
    let mut bob = app.client("bob").await;
    assert!(granted(&bob.subscribe(&typing).await));
    let mut lines = BufReader::new(sub.stdout.take().unwrap()).lines();
    let received = tokio::time::timeout(PATIENCE, async {
        loop {
            let status = Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port, "-u", &app.project.public_key, "-P", &app.token("bob")])
                .args(["-t", &typing, "-m", "bob is typing", "-q", "1"])
                .status()
                .await
                .expect("mosquitto_pub runs");
            assert!(status.success());
            if let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await {
                return line;
            }
        }
    })
    .await
    .expect("mosquitto_sub received bob's message");
    let (topic, payload) = received.split_once(' ').unwrap();
    assert_eq!(topic, typing);
    let stamped: serde_json::Value = serde_json::from_str(payload).unwrap();
    assert_eq!((stamped["data"]["user_id"].as_str(), stamped["data"]["name"].as_str()), (Some("bob"), Some("bob name")));

    // A refused subscription: mosquitto_sub reports it (and, in 2.0, exits 0).
    let output = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port, "-u", &app.project.public_key, "-P", &app.token("mallory")])
        .args(["-t", &typing, "-C", "1", "-W", "3"])
        .output()
        .await
        .unwrap();
    assert!(output.stdout.is_empty(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("denied"), "{output:?}");

    // A bad password: CONNACK 4, reported by mosquitto_pub.
    let output = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port, "-u", &app.project.public_key, "-P", "forged", "-t", &typing, "-m", "x"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("bad user name or password"), "{output:?}");
}

#[tokio::test]
async fn paho_with_a_pyjwt_token() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let other_conversation = app.create_conversation("group", &["bob"]).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/paho_client.py");
    let mut child = Command::new(python())
        .arg(script)
        .args(["--host", "127.0.0.1", "--port", &app.app_mqtt.port().to_string()])
        .args(["--public-key", &app.project.public_key, "--secret-key", &app.project.secret_key, "--sub", "alice"])
        .args(["--allowed", &app.conversation_topic(&conversation)])
        .args(["--denied", &app.conversation_topic(&other_conversation)])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python with paho-mqtt and PyJWT");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(PATIENCE, lines.next_line()).await.unwrap().unwrap().unwrap();
    assert_eq!(ready, "SUBACK 1 128", "paho's view of the SUBACK codes");
    let topic = app.conversation_topic(&conversation);
    app.publisher().publish(topic.clone(), r#"{"type":"message.created","data":{"content":"hello paho"}}"#).unwrap();
    app.publisher().publish(app.conversation_topic(&other_conversation), "secret").unwrap();
    let received = tokio::time::timeout(PATIENCE, lines.next_line()).await.unwrap().unwrap().unwrap();
    assert_eq!(received, format!("MESSAGE {topic} hello paho"));
    let status = tokio::time::timeout(PATIENCE, child.wait()).await.unwrap().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn paho_sends_edits_and_deletes_and_a_rumqttc_member_sees_it_all() {
    paho_chats_with_a_rumqttc_member(&TestApp::spawn().await).await;
}

/// paho sends, edits and deletes; rumqttc's bob sees each event (also run
/// through Mosquitto with mqchat's plugin).
pub async fn paho_chats_with_a_rumqttc_member(app: &TestApp) {
    let conversation = app.create_conversation("group", &["paho", "bob"]).await;
    let topic = app.conversation_topic(&conversation);
    let mut bob = app.client("bob").await;
    assert!(granted(&bob.subscribe(&topic).await));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/paho_chat.py");
    let mut child = Command::new(python())
        .arg(script)
        .args(["--host", "127.0.0.1", "--port", &app.app_mqtt.port().to_string()])
        .args(["--public-key", &app.project.public_key, "--secret-key", &app.project.secret_key, "--sub", "paho"])
        .args(["--project", app.project_id(), "--conversation", &conversation])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python with paho-mqtt and PyJWT");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let sent = tokio::time::timeout(PATIENCE, lines.next_line()).await.unwrap().unwrap().unwrap();
    let message_id = sent.strip_prefix("SENT ").expect("SENT line").to_owned();
    for expected in ["message.created", "message.updated", "message.deleted"] {
        let event = crate::helpers::payload_json(&bob.publish_on(&topic).await);
        assert_eq!((event["type"].as_str(), event["data"]["id"].as_str()), (Some(expected), Some(message_id.as_str())));
        assert_eq!(event["data"]["sender"]["name"], "Paho");
    }
    assert_eq!(tokio::time::timeout(PATIENCE, lines.next_line()).await.unwrap().unwrap().as_deref(), Some("DONE"));
    assert!(tokio::time::timeout(PATIENCE, child.wait()).await.unwrap().unwrap().success());
}
