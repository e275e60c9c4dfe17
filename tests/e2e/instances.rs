//! Two mqchat processes on one PostgreSQL behind one Mosquitto (external
//! broker mode): commands spread over both, every message stored once with
//! gapless seqs, webhooks delivered once; SIGKILL of one in the middle of a
//! burst loses nothing acknowledged; one killed for good leaves its share
//! of commands and wills to the other. PostgreSQL only: the run on SQLite
//! (one process per database) has nothing to share.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use rumqttc::QoS;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{granted, payload_json, TestApp, TestClient, PATIENCE};
use crate::mosquitto::{free_port, Mosquitto, PLATFORM_SECRET};
use crate::receiver::Receiver;

const SENDERS: usize = 5;
/// Messages each sender sends before the kill, and during it.
const CALM: usize = 10;
const BURST: usize = 30;
/// How long a sender waits for a reply before sending the same command again.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// `mqchat serve --broker …` as its own process, on `http_port`.
async fn instance(database_url: &str, broker_url: &str, client_id: &str, http_port: u16) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mqchat"))
        .args(["--database-url", database_url, "serve", "--broker", broker_url, "--http-listen", &format!("127.0.0.1:{http_port}")])
        .env("MQCHAT_LOG", "info")
        .env("MQCHAT_BROKER__PLATFORM_SECRET", PLATFORM_SECRET)
        .env("MQCHAT_BROKER__CLIENT_ID", client_id)
        .env("MQCHAT_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the mqchat binary");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("instance exited before listening");
            if line.contains("mqchat listening") {
                return;
            }
        }
    })
    .await
    .expect("instance listening in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// Sends `count` messages numbered from `first`, each until answered; returns
/// the acknowledged message ids by `client_msg_id`.
async fn send_all(client: &mut TestClient, outbox: &str, inbox: &str, conversation: &str, sender: usize, first: usize, count: usize) -> BTreeMap<String, String> {
    let mut acknowledged = BTreeMap::new();
    for n in first..first + count {
        let client_msg_id = format!("s{sender}-m{n}");
        let command = json!({"id": client_msg_id, "op": "message.send", "conversation_id": conversation, "content": format!("{client_msg_id}"), "client_msg_id": client_msg_id});
        let deadline = tokio::time::Instant::now() + PATIENCE * 6;
        'attempts: loop {
            assert!(tokio::time::Instant::now() < deadline, "{client_msg_id} never acknowledged");
            client.client.publish(outbox, QoS::AtLeastOnce, false, command.to_string()).await.unwrap();
            let waited = tokio::time::Instant::now() + RETRY_AFTER;
            while let Some(publish) = client.next_publish_within(waited.saturating_duration_since(tokio::time::Instant::now())).await {
                let reply = payload_json(&publish);
                if publish.topic == inbox && reply["reply_to"] == client_msg_id.as_str() && reply["ok"] == true {
                    acknowledged.insert(client_msg_id.clone(), reply["data"]["message"]["id"].as_str().unwrap().to_owned());
                    break 'attempts;
                }
            }
        }
    }
    acknowledged
}

/// Instances `mqchat-a` and `mqchat-b` on one fresh PostgreSQL database
/// behind one Mosquitto; `None` on SQLite.
struct Pair {
    _dir: tempfile::TempDir,
    database_url: String,
    mosquitto: Mosquitto,
    a: Child,
    b: Child,
    port_b: u16,
    app: TestApp,
}

impl Pair {
    async fn start() -> Option<Pair> {
        if !std::env::var("TEST_DATABASE_URL").is_ok_and(|url| url.starts_with("postgres")) {
            eprintln!("several instances share PostgreSQL only; this runs in the suite's PostgreSQL pass");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let database_url = crate::helpers::fresh_database_url(&dir).await;
        let (port_a, port_b) = (free_port(), free_port());
        let mosquitto = Mosquitto::start(&dir, port_a).await;
        let a = instance(&database_url, &mosquitto.url(), "mqchat-a", port_a).await;
        let b = instance(&database_url, &mosquitto.url(), "mqchat-b", port_b).await;
        let db = mqchat::app::connect_and_migrate(&database_url).await.unwrap();
        let project = mqchat_bridge::projects::create(&db, "Two instances").await.unwrap();
        let app = TestApp::attach(project, db, mosquitto.mqtt_addr(), mosquitto.websocket_addr(), port_a);
        Some(Pair { _dir: dir, database_url, mosquitto, a, b, port_b, app })
    }

    /// B again, under its client id.
    async fn restart_b(&self) -> Child {
        instance(&self.database_url, &self.mosquitto.url(), "mqchat-b", self.port_b).await
    }
}

/// Sends `count` commands once each (no retry) and returns how many were
/// answered within `within`.
async fn send_once(client: &mut TestClient, outbox: &str, inbox: &str, conversation: &str, name: &str, count: usize, within: Duration) -> usize {
    let mut waiting = BTreeSet::new();
    for n in 0..count {
        let client_msg_id = format!("{name}-{n}");
        let command = json!({"id": client_msg_id, "op": "message.send", "conversation_id": conversation, "content": client_msg_id, "client_msg_id": client_msg_id});
        client.client.publish(outbox, QoS::AtLeastOnce, false, command.to_string()).await.unwrap();
        waiting.insert(client_msg_id);
    }
    let deadline = tokio::time::Instant::now() + within;
    while !waiting.is_empty() {
        let Some(publish) = client.next_publish_within(deadline.saturating_duration_since(tokio::time::Instant::now())).await else { break };
        let reply = payload_json(&publish);
        if publish.topic == inbox && reply["ok"] == true {
            waiting.remove(reply["reply_to"].as_str().unwrap_or_default());
        }
    }
    count - waiting.len()
}

#[tokio::test]
async fn two_instances_share_the_work_and_survive_sigkill_of_one() {
    let Some(Pair { _dir, database_url, mosquitto, mut a, mut b, port_b, app }) = Pair::start().await else { return };
    let mut receiver = Receiver::start().await;
    let (status, webhook) = app
        .api(Method::POST, "/api/v1/webhooks", Some(json!({"name": "Site", "url": receiver.url("/hooks"), "events": ["message.created"]})))
        .await;
    assert_eq!(status, 201, "{webhook}");
    let members: Vec<String> = (0..SENDERS).map(|n| format!("sender{n}")).collect();
    let member_refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let conversation = app.create_conversation("group", &member_refs).await;

    let mut clients = Vec::new();
    for (n, member) in members.iter().enumerate() {
        let mut options = app.options(&format!("{member}-device"), &app.token(member));
        options.set_inflight(100);
        let mut client = TestClient::connect(options).await.expect("sender connects through Mosquitto");
        let inbox = format!("chat/{}/user/{member}/inbox", app.project_id());
        assert!(granted(&client.subscribe(&inbox).await));
        let outbox = format!("chat/{}/user/{member}/outbox", app.project_id());
        clients.push((n, client, outbox, inbox));
    }

    // Calm: both instances up. Every event is delivered exactly once.
    let calm = futures_util::future::join_all(clients.iter_mut().map(|(n, client, outbox, inbox)| send_all(client, outbox, inbox, &conversation, *n, 0, CALM))).await;
    let calm_count: usize = calm.iter().map(BTreeMap::len).sum();
    let mut delivered: HashMap<String, usize> = HashMap::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    while delivered.values().sum::<usize>() < calm_count {
        let request = receiver.next().await;
        seen.insert(request.json()["data"]["message_id"].as_str().unwrap().to_owned());
        *delivered.entry(request.event_id()).or_default() += 1;
    }
    receiver.assert_quiet().await;
    assert!(delivered.values().all(|&times| times == 1), "an event delivered twice with both instances up: {delivered:?}");

    // Burst: B is killed in the middle and started again (what the broker
    // had handed it and it had not acknowledged waits in its session).
    let (database, broker) = (database_url.clone(), mosquitto.url());
    let restarter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        b.start_kill().unwrap();
        b.wait().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        instance(&database, &broker, "mqchat-b", port_b).await
    });
    let burst = futures_util::future::join_all(clients.iter_mut().map(|(n, client, outbox, inbox)| send_all(client, outbox, inbox, &conversation, *n, CALM, BURST))).await;
    let _b = restarter.await.unwrap();

    // Every acknowledged message is stored exactly once, seqs gapless.
    let acknowledged: BTreeMap<String, String> = calm.into_iter().chain(burst).flatten().collect();
    assert_eq!(acknowledged.len(), SENDERS * (CALM + BURST));
    let (status, history) = app.api(Method::GET, &format!("/api/v1/conversations/{conversation}/messages?limit=200"), None).await;
    assert_eq!(status, 200, "{history}");
    let messages = history["messages"].as_array().unwrap();
    let seqs: Vec<i64> = messages.iter().map(|message| message["seq"].as_i64().unwrap()).collect();
    let expected: Vec<i64> = (1..=messages.len() as i64).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected, "seqs are gapless and unique");
    let by_client_id: BTreeMap<&str, &str> =
        messages.iter().map(|message| (message["client_msg_id"].as_str().unwrap(), message["id"].as_str().unwrap())).collect();
    assert_eq!(by_client_id.len(), messages.len(), "no message stored twice");
    for (client_msg_id, id) in &acknowledged {
        assert_eq!(by_client_id.get(client_msg_id.as_str()), Some(&id.as_str()), "{client_msg_id} acknowledged as {id}");
    }
    assert_eq!(messages.len(), acknowledged.len());

    // Every message's event reaches the webhook (at least once, one event id each).
    let ids: BTreeSet<String> = messages.iter().map(|message| message["id"].as_str().unwrap().to_owned()).collect();
    let mut events_by_message: HashMap<String, String> = HashMap::new();
    let deadline = tokio::time::Instant::now() + PATIENCE * 9;
    while seen.len() < ids.len() {
        assert!(tokio::time::Instant::now() < deadline, "{} of {} messages' events delivered", seen.len(), ids.len());
        let request = receiver.next().await;
        let body: Value = request.json();
        let message_id = body["data"]["message_id"].as_str().unwrap().to_owned();
        let event_id = request.event_id();
        assert_eq!(events_by_message.entry(message_id.clone()).or_insert_with(|| event_id.clone()), &event_id, "one event id per message");
        seen.insert(message_id);
    }
    a.start_kill().unwrap();
}

#[tokio::test]
async fn an_instance_killed_for_good_leaves_its_share_to_the_other() {
    let Some(mut pair) = Pair::start().await else { return };
    let app = &pair.app;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let mut alice = TestClient::connect(app.options("alice-device", &app.token("alice"))).await.expect("alice connects through Mosquitto");
    let inbox = format!("chat/{}/user/alice/inbox", app.project_id());
    let outbox = format!("chat/{}/user/alice/outbox", app.project_id());
    assert!(granted(&alice.subscribe(&inbox).await));
    let users: Vec<String> = (0..6).map(|n| format!("user{n}")).collect();
    let mut devices = Vec::new();
    for user in &users {
        devices.push(crate::presence::announced_device(app, user, "phone", 1).await);
        crate::mosquitto::presence_becomes(app, user, "online").await;
    }
    assert_eq!(send_once(&mut alice, &outbox, &inbox, &conversation, "calm", 10, PATIENCE).await, 10);

    // B dies and never comes back. Mosquitto goes on handing B's session its
    // turn of the commands sent once each, and of the wills of the devices
    // that die now; A takes that session over and handles all of them.
    pair.b.start_kill().unwrap();
    pair.b.wait().await.unwrap();
    drop(devices);
    let answered = send_once(&mut alice, &outbox, &inbox, &conversation, "alone", 20, PATIENCE * 3).await;
    assert_eq!(answered, 20, "commands sent once after B died: {answered} of 20 answered");
    for user in &users {
        crate::mosquitto::presence_becomes(app, user, "offline").await;
    }

    // B comes back to its emptied session; with both up, nothing waits.
    pair.b = pair.restart_b().await;
    assert_eq!(send_once(&mut alice, &outbox, &inbox, &conversation, "back", 10, PATIENCE).await, 10);

    // Stopped cleanly (SIGTERM) and not started again: no will is sent on a
    // clean DISCONNECT, so B says itself that it is offline, and A takes
    // its share over as well.
    let pid = pair.b.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().await.unwrap().success());
    assert!(pair.b.wait().await.unwrap().success());
    let answered = send_once(&mut alice, &outbox, &inbox, &conversation, "stopped", 20, PATIENCE * 3).await;
    assert_eq!(answered, 20, "commands sent once after B stopped: {answered} of 20 answered");

    let (status, history) = app.api(Method::GET, &format!("/api/v1/conversations/{conversation}/messages?limit=100"), None).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["messages"].as_array().unwrap().len(), 60, "every command stored once");
}
