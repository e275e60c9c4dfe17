//! Durability: kill the real server with SIGKILL in the middle of a burst;
//! every acknowledged message survives, seqs stay gapless, and retries with
//! the same `client_msg_id` fill in exactly what is missing.
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Stdio;

use rumqttc::{MqttOptions, QoS};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{granted, payload_json, TestClient, PATIENCE};

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) mqtt: SocketAddr,
    pub(crate) http: SocketAddr,
    /// Everything the server logged (stderr), line by line.
    pub(crate) log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn address_after(line: &str, key: &str) -> SocketAddr {
    let start = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
    line[start..].split_whitespace().next().unwrap().parse().unwrap()
}

async fn start(db: &str, dir: &std::path::Path) -> Server {
    start_with(db, dir, &[]).await
}

/// The real binary on port 0, with extra `MQCHAT_*` settings.
pub(crate) async fn start_with(db: &str, dir: &std::path::Path, environment: &[(&str, &str)]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mqchat"))
        .current_dir(dir)
        .args(["--database-url", db, "serve", "--mqtt-listen", "127.0.0.1:0", "--ws-listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0"])
        .env("MQCHAT_LOG", "info")
        .env("MQCHAT_GATEWAY__MAX_PUBLISH_RATE", "0")
        .envs(environment.iter().copied())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(PATIENCE, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("server exited early");
            if line.contains("mqchat listening") {
                return line;
            }
        }
    })
    .await
    .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(vec![line.clone()]));
    let sink = std::sync::Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    Server { child, mqtt: address_after(&line, "mqtt_addr="), http: address_after(&line, "http_addr="), log }
}

async fn connect(server: &Server, project: &Value, token: &str, inbox: &str) -> TestClient {
    let mut options = MqttOptions::new("alice-crash", server.mqtt.ip().to_string(), server.mqtt.port());
    options.set_credentials(project["public_key"].as_str().unwrap(), token);
    options.set_inflight(500);
    // A history page of 200 messages is larger than rumqttc's 10 KiB default.
    options.set_max_packet_size(1 << 20, 1 << 20);
    let mut client = TestClient::connect(options).await.unwrap();
    assert!(granted(&client.subscribe(inbox).await));
    client
}

/// An identity token for `sub`, as the site backend would sign it.
pub(crate) fn identity_token(secret_key: &str, sub: &str) -> String {
    let now = mqchat_broker::identity::now_unix();
    let claims = mqchat_broker::identity::IdentityClaims { sub: sub.into(), name: None, email: None, avatar_url: None, iat: now, exp: now + 3600, iss: None };
    mqchat_broker::identity::sign(secret_key, &claims).unwrap()
}

/// A project made with the real binary's CLI, as an operator would:
/// `{"project_id", "public_key", "secret_key"}`.
pub(crate) async fn create_project(db: &str) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_mqchat")).args(["--database-url", db, "project", "create", "--name", "Crash"]).output().await.unwrap();
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Calls the server API of `server` with the secret key; the JSON answer.
pub(crate) async fn server_api(server: &Server, secret_key: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut request = reqwest::Client::new().request(method, format!("http://{}{path}", server.http)).bearer_auth(secret_key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap().json().await.unwrap()
}

fn send(conversation: &str, n: usize) -> String {
    json!({"id": format!("r{n}"), "op": "message.send", "conversation_id": conversation, "content": format!("m{n}"), "client_msg_id": format!("c{n}")}).to_string()
}

#[tokio::test]
async fn acknowledged_messages_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::helpers::fresh_database_url(&dir).await;
    let project = create_project(&db).await;
    let secret_key = project["secret_key"].as_str().unwrap().to_owned();
    let server = start(&db, dir.path()).await;
    let body = json!({"type": "group", "member_ids": ["alice", "bob"]});
    let conversation = server_api(&server, &secret_key, reqwest::Method::POST, "/api/v1/conversations", Some(body)).await;
    let conversation = conversation["id"].as_str().unwrap().to_owned();
    let token = identity_token(&secret_key, "alice");
    let p = project["project_id"].as_str().unwrap();
    let (inbox, outbox) = (format!("chat/{p}/user/alice/inbox"), format!("chat/{p}/user/alice/outbox"));

    let burst = 400;
    let mut client = connect(&server, &project, &token, &inbox).await;
    for n in 0..burst {
        client.client.publish(outbox.clone(), QoS::AtLeastOnce, false, send(&conversation, n)).await.unwrap();
    }
    // Collect acknowledgements until a good part of the burst is in, then kill.
    let mut acked: BTreeMap<String, i64> = BTreeMap::new();
    while acked.len() < burst / 4 {
        let reply = payload_json(&client.publish_on(&inbox).await);
        assert_eq!(reply["ok"], true, "{reply}");
        acked.insert(reply["data"]["message"]["client_msg_id"].as_str().unwrap().to_owned(), reply["data"]["message"]["seq"].as_i64().unwrap());
    }
    let mut server = server;
    server.child.start_kill().unwrap();
    let _ = server.child.wait().await;
    // Replies that were already on their way count as acknowledged too.
    while let Some(publish) = client.next_publish_within(std::time::Duration::from_millis(200)).await {
        let reply = payload_json(&publish);
        if reply["ok"] == true {
            acked.insert(reply["data"]["message"]["client_msg_id"].as_str().unwrap().to_owned(), reply["data"]["message"]["seq"].as_i64().unwrap());
        }
    }
    drop(client);

    let server = start(&db, dir.path()).await;
    let mut client = connect(&server, &project, &token, &inbox).await;
    let sync = |after: i64, id: &str| json!({"id": id, "op": "history.sync", "conversation_id": conversation, "after_seq": after, "limit": 200}).to_string();
    let mut stored: BTreeMap<String, i64> = BTreeMap::new();
    let mut after = 0;
    loop {
        let id = format!("sync-{after}");
        client.client.publish(outbox.clone(), QoS::AtLeastOnce, false, sync(after, &id)).await.unwrap();
        let reply = loop {
            let reply = payload_json(&client.publish_on(&inbox).await);
            if reply["reply_to"] == id.as_str() {
                break reply;
            }
        };
        for message in reply["data"]["messages"].as_array().unwrap() {
            let seq = message["seq"].as_i64().unwrap();
            assert_eq!(seq, after + 1, "gapless after restart");
            after = seq;
            assert!(stored.insert(message["client_msg_id"].as_str().unwrap().to_owned(), seq).is_none(), "no duplicate");
        }
        if reply["data"]["has_more"] == false {
            break;
        }
    }
    for (client_msg_id, seq) in &acked {
        assert_eq!(stored.get(client_msg_id), Some(seq), "acknowledged {client_msg_id} survived with its seq");
    }

    // The client resends everything it never saw acknowledged; retries are idempotent.
    let missing: BTreeSet<usize> = (0..burst).filter(|n| !acked.contains_key(&format!("c{n}"))).collect();
    for n in &missing {
        client.client.publish(outbox.clone(), QoS::AtLeastOnce, false, send(&conversation, *n)).await.unwrap();
    }
    let mut replies = 0;
    while replies < missing.len() {
        let reply = payload_json(&client.publish_on(&inbox).await);
        assert_eq!(reply["ok"], true, "{reply}");
        replies += 1;
    }
    let id = "final";
    client.client.publish(outbox.clone(), QoS::AtLeastOnce, false, json!({"id": id, "op": "history.sync", "conversation_id": conversation, "after_seq": burst as i64 - 1, "limit": 10}).to_string()).await.unwrap();
    let last = loop {
        let reply = payload_json(&client.publish_on(&inbox).await);
        if reply["reply_to"] == id {
            break reply;
        }
    };
    let tail = last["data"]["messages"].as_array().unwrap();
    assert_eq!(tail.len(), 1, "exactly {burst} messages in all: {last}");
    assert_eq!(tail[0]["seq"], burst as i64);
}

/// The stored presence of `user`, through the server API.
async fn presence(http: &reqwest::Client, server: &Server, secret_key: &str, user: &str) -> Value {
    let url = format!("http://{}/api/v1/users/{user}/presence", server.http);
    http.get(url).bearer_auth(secret_key).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn presence_left_online_by_a_crash_is_reconciled_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::helpers::fresh_database_url(&dir).await;
    let project = create_project(&db).await;
    let secret_key = project["secret_key"].as_str().unwrap().to_owned();
    let p = project["project_id"].as_str().unwrap();
    let token = identity_token(&secret_key, "alice");
    let http = reqwest::Client::new();

    let mut server = start(&db, dir.path()).await;
    let client = connect(&server, &project, &token, &format!("chat/{p}/user/alice/inbox")).await;
    // Presence is stored right after the connection; wait for it.
    let online = tokio::time::timeout(PATIENCE, async {
        loop {
            let state = presence(&http, &server, &secret_key, "alice").await;
            if state["status"] == "online" {
                return state;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("alice shows as online");
    server.child.start_kill().unwrap();
    let _ = server.child.wait().await;
    drop(client);

    let server = start(&db, dir.path()).await;
    let state = presence(&http, &server, &secret_key, "alice").await;
    assert_eq!(state["status"], "offline", "{state}");
    let seen = |state: &Value| serde_json::from_value::<chrono::DateTime<chrono::Utc>>(state["last_seen_at"].clone()).unwrap();
    assert!(seen(&state) >= seen(&online), "last seen when the previous run last saw her: {state} {online}");
    // Subscribers get the reconciled state as the retained message.
    let bob_token = identity_token(&secret_key, "bob");
    let mut options = MqttOptions::new("bob-crash", server.mqtt.ip().to_string(), server.mqtt.port());
    options.set_credentials(project["public_key"].as_str().unwrap(), bob_token);
    let mut bob = TestClient::connect(options).await.unwrap();
    let topic = format!("chat/{p}/presence/alice");
    assert!(granted(&bob.subscribe(&topic).await));
    let retained = bob.publish_on(&topic).await;
    assert!(retained.retain);
    assert_eq!(payload_json(&retained)["status"], "offline");
}
