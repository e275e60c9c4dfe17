//! Webhooks and callback URLs against real HTTP receivers: every signature
//! scheme checked by independent code (including seed 000's Flask receiver
//! run with Python), retries on a short configured schedule, timeouts,
//! closed connections, endpoints that refuse or vanish, the delivery log,
//! manual retry, the test action, the private-target policy, and SIGKILL with
//! deliveries pending.
use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::chat_client::ChatClient;
use crate::helpers::{TestApp, PATIENCE};
use crate::receiver::{Answer, Received, Receiver};

/// Retries after 300 ms and 300 ms, a 1 s timeout, loopback receivers allowed.
async fn webhook_app() -> TestApp {
    TestApp::spawn_with(|settings| {
        settings.webhooks.allow_private_targets = true;
        settings.webhooks.retry_schedule = vec![Duration::from_millis(300), Duration::from_millis(300)];
        settings.webhooks.timeout = Duration::from_secs(1);
    })
    .await
}

async fn create_webhook(app: &TestApp, url: &str, events: &[&str]) -> (String, String) {
    let (status, body) =
        app.api(Method::POST, "/api/v1/webhooks", Some(json!({"name": "Site", "url": url, "events": events}))).await;
    assert_eq!(status, 201, "{body}");
    (body["id"].as_str().unwrap().to_owned(), body["secret"].as_str().unwrap().to_owned())
}

async fn deliveries(app: &TestApp, webhook: &str) -> Vec<Value> {
    let (status, body) = app.api(Method::GET, &format!("/api/v1/webhooks/{webhook}/deliveries"), None).await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().unwrap().clone()
}

/// Polls the delivery log until `done` holds (deliveries are recorded just
/// after the receiver answered).
async fn log_until(app: &TestApp, webhook: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let log = deliveries(app, webhook).await;
        if done(&log) {
            return log;
        }
        assert!(tokio::time::Instant::now() < deadline, "delivery log never got there: {log:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn webhook_until(app: &TestApp, webhook: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (_, body) = app.api(Method::GET, &format!("/api/v1/webhooks/{webhook}"), None).await;
        if done(&body) {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "webhook never got there: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Receives until one request of each type in `kinds` came; returns them by type.
async fn receive_kinds(receiver: &mut Receiver, kinds: &[&str]) -> BTreeMap<String, Received> {
    let mut seen = BTreeMap::new();
    while kinds.iter().any(|kind| !seen.contains_key(*kind)) {
        let request = receiver.next().await;
        seen.entry(request.header("x-webhook-event").to_owned()).or_insert(request);
    }
    seen
}

#[tokio::test]
async fn every_chat_event_reaches_a_webhook_signed_three_ways() {
    let app = webhook_app().await;
    let mut receiver = Receiver::start().await;
    let all = [
        "message.created",
        "message.updated",
        "message.deleted",
        "reaction.added",
        "reaction.removed",
        "conversation.created",
        "conversation.archived",
        "member.joined",
        "member.left",
        "user.presence.changed",
    ];
    let (webhook, secret) = create_webhook(&app, &receiver.url("/hooks/mqchat"), &all).await;
    let key = base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    assert_eq!(key.len(), 32, "a secret is 32 random bytes");
    let (_, shown) = app.api(Method::GET, &format!("/api/v1/webhooks/{webhook}"), None).await;
    assert_eq!((shown["secret"].clone(), shown["enabled"].clone()), (Value::Null, json!(true)), "the secret is shown once");

    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let mut alice = ChatClient::connect(&app, "alice").await;
    let sent = alice.command(json!({"op": "message.send", "conversation_id": conversation, "content": "hello"})).await;
    let message_id = sent["data"]["message"]["id"].as_str().unwrap().to_owned();
    alice.command(json!({"op": "message.edit", "message_id": message_id, "content": "hello!"})).await;
    alice.command(json!({"op": "reaction.add", "message_id": message_id, "emoji": "👍"})).await;
    alice.command(json!({"op": "reaction.remove", "message_id": message_id, "emoji": "👍"})).await;
    alice.command(json!({"op": "message.delete", "message_id": message_id})).await;
    let members = format!("/api/v1/conversations/{conversation}/members");
    assert_eq!(app.api(Method::POST, &members, Some(json!({"user_id": "carol"}))).await.0, 201);
    assert_eq!(app.api(Method::DELETE, &format!("{members}/carol"), None).await.0, 204);
    assert_eq!(app.api(Method::POST, &format!("/api/v1/conversations/{conversation}/archive"), None).await.0, 200);

    let seen = receive_kinds(&mut receiver, &all).await;
    for (kind, request) in &seen {
        request.assert_signed_with(&secret);
        assert_eq!(request.path, "/hooks/mqchat");
        assert_eq!(request.header("content-type"), "application/json");
        let envelope = request.json();
        assert_eq!(envelope["type"], kind.as_str());
        assert_eq!(envelope["id"], request.event_id(), "webhook-id is the event id");
        assert!(envelope["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(envelope["project_id"], app.project_id());
        chrono::DateTime::parse_from_rfc3339(envelope["created_at"].as_str().unwrap()).unwrap();
    }
    let data = |kind: &str| seen[kind].json()["data"].clone();
    let created = data("message.created");
    assert_eq!(
        (created["message_id"].as_str(), created["sender_id"].as_str(), created["content"].as_str()),
        (Some(message_id.as_str()), Some("alice"), Some("hello"))
    );
    assert_eq!(created["conversation_id"], conversation.as_str());
    assert_eq!(data("message.updated")["content"], "hello!");
    assert_eq!((data("message.deleted")["is_deleted"].clone(), data("message.deleted")["deleted_by"].clone()), (json!(true), json!("alice")));
    assert_eq!((data("reaction.added")["emoji"].clone(), data("reaction.added")["user_id"].clone()), (json!("👍"), json!("alice")));
    assert!(data("reaction.added")["reacted_at"].is_string());
    assert_eq!(data("conversation.created")["member_ids"], json!(["alice", "bob"]));
    assert_eq!(data("member.joined")["user_id"], "carol");
    assert!(data("member.joined")["joined_at"].is_string());
    assert_eq!(data("member.left")["user_id"], "carol");
    assert!(data("conversation.archived")["archived_at"].is_string());
    assert_eq!((data("user.presence.changed")["user_id"].clone(), data("user.presence.changed")["status"].clone()), (json!("alice"), json!("online")));

    let log = log_until(&app, &webhook, |log| log.len() >= all.len() && log.iter().all(|d| d["status"] == "delivered")).await;
    let first = &log[0];
    assert_eq!(first["attempts"], 1);
    assert_eq!(first["attempt_log"][0]["status_code"], 200);
    assert!(first["attempt_log"][0]["latency_ms"].is_number());
}

#[tokio::test]
async fn seed_000_and_standard_webhooks_python_receivers_accept_our_signatures_and_refuse_a_wrong_one() {
    let app = webhook_app().await;
    let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(rand_bytes()));
    let mut python = Command::new(std::env::var("MQCHAT_TEST_PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/webhook_receivers.py"))
        .env("PROJECT_M_WEBHOOK_SECRET", &secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 with Flask and standardwebhooks (see tests/clients/requirements.txt)");
    let mut lines = BufReader::new(python.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(PATIENCE, lines.next_line()).await.unwrap().unwrap().unwrap();
    let port = first.strip_prefix("listening ").expect("the receiver's port").to_owned();
    let url = format!("http://127.0.0.1:{port}/webhooks/projectm");
    let standard_url = format!("http://127.0.0.1:{port}/webhooks/standard");

    let (status, body) = app
        .api(Method::POST, "/api/v1/webhooks", Some(json!({"name": "Flask", "url": url, "events": ["conversation.created"], "secret": secret})))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["secret"], secret.as_str(), "a given secret is kept");
    let good = body["id"].as_str().unwrap().to_owned();
    let wrong = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(rand_bytes()));
    let (status, body) = app
        .api(Method::POST, "/api/v1/webhooks", Some(json!({"name": "Wrong secret", "url": url, "events": ["conversation.created"], "secret": wrong})))
        .await;
    assert_eq!(status, 201, "{body}");
    let bad = body["id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .api(Method::POST, "/api/v1/webhooks", Some(json!({"name": "Standard", "url": standard_url, "events": ["conversation.created"], "secret": secret})))
        .await;
    assert_eq!(status, 201, "{body}");
    let standard = body["id"].as_str().unwrap().to_owned();

    app.create_conversation("group", &["alice", "bob"]).await;
    let mut printed = BTreeSet::new();
    for _ in 0..2 {
        printed.insert(tokio::time::timeout(PATIENCE, lines.next_line()).await.unwrap().unwrap().unwrap());
    }
    let log = log_until(&app, &good, |log| log.first().is_some_and(|d| d["status"] == "delivered")).await;
    let event_id = log[0]["event_id"].as_str().unwrap();
    assert_eq!(log[0]["attempt_log"][0]["status_code"], 200);
    let expected: BTreeSet<String> =
        [format!("Received: conversation.created {event_id}"), format!("Standard: conversation.created {event_id}")].into();
    assert_eq!(printed, expected, "both receivers verified the same event");
    let log = log_until(&app, &standard, |log| log.first().is_some_and(|d| d["status"] == "delivered")).await;
    assert_eq!(log[0]["event_id"], event_id);

    // The receiver answers 401 to the wrong signature: that webhook is disabled.
    let disabled = webhook_until(&app, &bad, |webhook| webhook["enabled"] == false).await;
    assert!(disabled["disabled_reason"].as_str().unwrap().contains("401"), "{disabled}");
    let log = deliveries(&app, &bad).await;
    assert_eq!((log[0]["status"].as_str(), log[0]["attempts"].as_i64()), (Some("failed"), Some(1)), "401 is not retried");
}

fn rand_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&uuid::Uuid::new_v4().as_bytes().repeat(2));
    bytes
}

#[tokio::test]
async fn callback_urls_receive_seed_002_presence_and_message_bodies() {
    let app = webhook_app().await;
    let mut receiver = Receiver::start().await;
    let (status, callbacks) = app
        .api(
            Method::PUT,
            "/api/v1/callbacks",
            Some(json!({"presence_url": receiver.url("/presence"), "message_url": receiver.url("/messages")})),
        )
        .await;
    assert_eq!(status, 200, "{callbacks}");
    let secret = callbacks["secret"].as_str().unwrap().to_owned();
    assert_eq!((callbacks["presence"]["enabled"].clone(), callbacks["message"]["enabled"].clone()), (json!(true), json!(true)));
    let (_, shown) = app.api(Method::GET, "/api/v1/callbacks", None).await;
    assert_eq!(shown["secret"], Value::Null);
    assert_eq!(shown["message"]["url"], receiver.url("/messages"));

    let direct = app.create_conversation("direct", &["alice", "bob"]).await;
    let group = app.create_conversation("group", &["alice", "bob", "carol"]).await;
    let mut alice = ChatClient::connect(&app, "alice").await;
    let online = receiver.next().await;
    online.assert_signed_with(&secret);
    assert_eq!(online.path, "/presence");
    let body = online.json();
    assert_eq!((body["userid"].as_str(), body["status"].as_str()), (Some("alice"), Some("online")));
    assert!((body["timestamp"].as_i64().unwrap() - chrono::Utc::now().timestamp()).abs() < 60);
    assert_eq!(body.as_object().unwrap().len(), 3, "exactly {{userid, status, timestamp}}: {body}");

    let sent = alice
        .command(json!({"op": "message.send", "conversation_id": direct, "content": "ok", "type": 0}))
        .await;
    let message = receiver.next().await;
    message.assert_signed_with(&secret);
    assert_eq!(message.path, "/messages");
    assert_eq!(message.header("x-webhook-event"), "message.created");
    let body = message.json();
    assert_eq!((body["from_userid"].as_str(), body["to_userid"].as_str()), (Some("alice"), Some("bob")));
    let inner = &body["message"];
    assert_eq!(inner["id"], sent["data"]["message"]["id"]);
    assert_eq!((inner["message"].as_str(), inner["type"].as_i64()), (Some("ok"), Some(0)));
    assert_eq!((inner["p1"].as_str(), inner["p2"].as_str(), inner["p3"].as_str()), (Some(""), Some(""), Some("")));
    assert!(inner["timestamp"].is_i64());

    alice
        .command(json!({"op": "message.send", "conversation_id": group, "content": "sticker", "type": 1, "p1": "cat-42"}))
        .await;
    let body = receiver.next().await.json();
    assert_eq!(body["to_userid"], group.as_str(), "a group message is addressed to its conversation");
    assert_eq!((body["message"]["type"].as_i64(), body["message"]["p1"].as_str()), (Some(1), Some("cat-42")));

    drop(alice);
    let offline = receiver.next().await.json();
    assert_eq!((offline["userid"].as_str(), offline["status"].as_str()), (Some("alice"), Some("offline")));

    // Removing a URL stops its callback.
    let (status, _) = app.api(Method::PUT, "/api/v1/callbacks", Some(json!({"presence_url": receiver.url("/presence")}))).await;
    assert_eq!(status, 200);
    let (_, shown) = app.api(Method::GET, "/api/v1/callbacks", None).await;
    assert_eq!(shown["message"], Value::Null);
    let mut bob = ChatClient::connect(&app, "bob").await;
    assert_eq!(receiver.next().await.json()["userid"], "bob");
    bob.command(json!({"op": "message.send", "conversation_id": direct, "content": "no callback"})).await;
    receiver.assert_quiet().await;
}

#[tokio::test]
async fn failures_are_retried_on_schedule_with_the_same_event_id_and_body() {
    let app = webhook_app().await;
    let mut receiver = Receiver::start().await;
    let (webhook, secret) = create_webhook(&app, &receiver.url("/"), &["conversation.created"]).await;
    // 500, then slower than the 1 s timeout, then 200.
    receiver.answer(&[Answer::Status(500), Answer::After(Duration::from_secs(3), 200)]);
    app.create_conversation("group", &["alice", "bob"]).await;
    let tries = [receiver.next().await, receiver.next().await, receiver.next().await];
    for request in &tries {
        request.assert_signed_with(&secret);
        assert_eq!(request.event_id(), tries[0].event_id(), "a retry is the same event");
        assert_eq!(request.body, tries[0].body, "a retry sends the same bytes");
    }
    let log = log_until(&app, &webhook, |log| log.first().is_some_and(|d| d["status"] == "delivered")).await;
    assert_eq!(log.len(), 1);
    let attempts = log[0]["attempt_log"].as_array().unwrap();
    let codes: Vec<Value> = attempts.iter().map(|a| a["status_code"].clone()).collect();
    assert_eq!(codes, vec![json!(500), Value::Null, json!(200)]);
    assert!(attempts[1]["error"].as_str().unwrap().contains("timed out"), "{:?}", attempts[1]);
    assert_eq!(log[0]["attempts"], 3);

    // Nothing more: a delivered event is not sent again.
    receiver.assert_quiet().await;
}

#[tokio::test]
async fn a_closed_connection_is_retried_and_delivered_once_the_url_is_fixed() {
    let app = webhook_app().await;
    let mut receiver = Receiver::start().await;
    // A server that reads the request and closes the connection without answering.
    let closer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closer_url = format!("http://{}/", closer.local_addr().unwrap());
    let (accepted, mut accepts) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = closer.accept().await {
            let mut buffer = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buffer).await;
            let _ = accepted.send(());
        }
    });
    let (webhook, _) = create_webhook(&app, &closer_url, &["conversation.created"]).await;
    app.create_conversation("group", &["alice", "bob"]).await;
    tokio::time::timeout(PATIENCE, accepts.recv()).await.unwrap();
    let log = log_until(&app, &webhook, |log| log.first().is_some_and(|d| d["attempts"].as_i64() >= Some(1))).await;
    assert_eq!(log[0]["attempt_log"][0]["status_code"], Value::Null);

    let (status, _) =
        app.api(Method::PATCH, &format!("/api/v1/webhooks/{webhook}"), Some(json!({"url": receiver.url("/fixed")}))).await;
    assert_eq!(status, 200);
    let request = receiver.next().await;
    assert_eq!(request.path, "/fixed");
    log_until(&app, &webhook, |log| log[0]["status"] == "delivered").await;
}

#[tokio::test]
async fn disabling_pauses_pending_deliveries_and_a_gone_endpoint_is_disabled_until_re_enabled() {
    // A long first retry, so the test disables the webhook before it.
    let app = TestApp::spawn_with(|settings| {
        settings.webhooks.allow_private_targets = true;
        settings.webhooks.retry_schedule = vec![Duration::from_secs(30)];
    })
    .await;
    let mut receiver = Receiver::start().await;
    let (webhook, _) = create_webhook(&app, &receiver.url("/"), &["conversation.created"]).await;
    let path = format!("/api/v1/webhooks/{webhook}");
    let patch = |enabled: bool| app.api(Method::PATCH, &path, Some(json!({"enabled": enabled})));

    // Disabled by its owner while a delivery waits for its retry: paused, then resumed at once.
    receiver.answer(&[Answer::Status(500)]);
    app.create_conversation("group", &["alice", "bob"]).await;
    let first = receiver.next().await;
    assert_eq!(patch(false).await.0, 200);
    let log = log_until(&app, &webhook, |log| log[0]["attempts"] == 1).await;
    assert_eq!((log[0]["status"].as_str(), log[0]["next_attempt_at"].clone()), (Some("paused"), Value::Null));
    let (status, enabled) = patch(true).await;
    assert_eq!((status, enabled["enabled"].clone()), (200, json!(true)));
    assert_eq!(receiver.next().await.event_id(), first.event_id(), "the paused delivery resumes when re-enabled");
    log_until(&app, &webhook, |log| log[0]["status"] == "delivered").await;

    // 410 Gone: failed without retries, and the webhook is disabled.
    receiver.answer(&[Answer::Status(410)]);
    app.create_conversation("group", &["alice", "carol"]).await;
    let gone = receiver.next().await;
    let disabled = webhook_until(&app, &webhook, |w| w["enabled"] == false).await;
    assert!(disabled["disabled_reason"].as_str().unwrap().contains("410"), "{disabled}");
    assert!(disabled["disabled_at"].is_string());
    // A disabled webhook is off: later events are not sent to it.
    app.create_conversation("group", &["alice", "dave"]).await;
    receiver.assert_quiet().await;
    let log = deliveries(&app, &webhook).await;
    assert_eq!(log.iter().map(|d| d["status"].as_str().unwrap()).collect::<Vec<_>>(), vec!["failed", "delivered"]);
    let failed = log[0]["id"].as_str().unwrap().to_owned();
    let (status, body) = app.api(Method::POST, &format!("/api/v1/deliveries/{failed}/retry"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");

    // Re-enabled, a manual retry sends the failed event again under the same id.
    let (_, enabled) = patch(true).await;
    assert_eq!((enabled["enabled"].clone(), enabled["disabled_reason"].clone()), (json!(true), Value::Null));
    let (status, body) = app.api(Method::POST, &format!("/api/v1/deliveries/{failed}/retry"), None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(receiver.next().await.event_id(), gone.event_id());
    let log = log_until(&app, &webhook, |log| log[0]["status"] == "delivered").await;
    assert_eq!(log[0]["attempts"], 2);
    let (status, _) = app.api(Method::POST, &format!("/api/v1/deliveries/{failed}/retry"), None).await;
    assert_eq!(status, 202, "a delivered event may be sent again on request");
    receiver.next().await;
}

#[tokio::test]
async fn an_unreachable_endpoint_is_disabled_after_its_retries() {
    let app = webhook_app().await;
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (webhook, _) = create_webhook(&app, &format!("http://127.0.0.1:{port}/"), &["conversation.created"]).await;
    app.create_conversation("group", &["alice", "bob"]).await;
    let disabled = webhook_until(&app, &webhook, |w| w["enabled"] == false).await;
    assert!(disabled["disabled_reason"].as_str().unwrap().starts_with("unreachable after 3 attempts"), "{disabled}");
    let log = deliveries(&app, &webhook).await;
    assert_eq!((log[0]["status"].as_str(), log[0]["attempts"].as_i64()), (Some("failed"), Some(3)));
    for attempt in log[0]["attempt_log"].as_array().unwrap() {
        assert!(attempt["error"].as_str().unwrap().contains("could not connect"), "{attempt}");
    }
}

#[tokio::test]
async fn private_targets_are_refused_unless_the_operator_allows_them() {
    // Names resolve through webhooks.hosts: no DNS query leaves the machine.
    let strict = TestApp::spawn_with(|settings| {
        settings.webhooks.hosts.insert("hooks.example.com".into(), vec!["93.184.216.34".parse().unwrap()]);
        settings.webhooks.hosts.insert("inward.example.com".into(), vec!["127.0.0.1".parse().unwrap()]);
    })
    .await;
    for url in ["http://127.0.0.1:9/hook", "https://127.0.0.1/hook", "https://10.0.0.7/hook", "https://localhost/hook", "https://[::1]/hook", "https://169.254.169.254/"] {
        let (status, body) =
            strict.api(Method::POST, "/api/v1/webhooks", Some(json!({"name": "x", "url": url, "events": ["message.created"]}))).await;
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_request")), "{url}: {body}");
    }
    let (status, body) = strict.api(Method::PUT, "/api/v1/callbacks", Some(json!({"presence_url": "https://192.168.1.1/cb"}))).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = strict
        .api(Method::POST, "/api/v1/webhooks", Some(json!({"name": "x", "url": "https://hooks.example.com/x", "events": ["message.created"]})))
        .await;
    assert_eq!(status, 201, "a public HTTPS URL is accepted");
    for url in ["https://inward.example.com/x", "https://[64:ff9b::7f00:1]/x", "https://[2002:a00:1::]/x", "https://[::a00:1]/x"] {
        let (status, body) =
            strict.api(Method::POST, "/api/v1/webhooks", Some(json!({"name": "x", "url": url, "events": ["message.created"]}))).await;
        assert_eq!(status, 422, "{url}: {body}");
    }

    let open = webhook_app().await;
    let (status, body) = open
        .api(Method::POST, "/api/v1/webhooks", Some(json!({"name": "x", "url": "http://127.0.0.1:9/hook", "events": ["message.created"]})))
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn test_action_and_bad_requests() {
    let app = webhook_app().await;
    let mut receiver = Receiver::start().await;
    let (webhook, secret) = create_webhook(&app, &receiver.url("/"), &["message.created"]).await;
    let (status, result) = app.api(Method::POST, &format!("/api/v1/webhooks/{webhook}/test"), None).await;
    assert_eq!((status, result["delivered"].clone(), result["status_code"].clone()), (200, json!(true), json!(200)), "{result}");
    let test = receiver.next().await;
    test.assert_signed_with(&secret);
    assert_eq!(test.header("x-webhook-test"), "true");
    assert_eq!(test.json()["type"], "webhook.test");
    assert!(deliveries(&app, &webhook).await.is_empty(), "test deliveries are not logged");
    receiver.answer(&[Answer::Status(503)]);
    let (_, result) = app.api(Method::POST, &format!("/api/v1/webhooks/{webhook}/test"), None).await;
    assert_eq!((result["delivered"].clone(), result["status_code"].clone()), (json!(false), json!(503)));

    let create = |body: Value| app.api(Method::POST, "/api/v1/webhooks", Some(body));
    let url = receiver.url("/");
    let (status, body) = create(json!({"name": "x", "url": url, "events": ["message.sent"]})).await;
    assert_eq!(status, 422);
    assert!(body["error"]["message"].as_str().unwrap().contains("message.created"), "lists the catalogue: {body}");
    assert_eq!(create(json!({"name": "x", "url": url, "events": []})).await.0, 422);
    assert_eq!(create(json!({"name": "", "url": url, "events": ["message.created"]})).await.0, 422);
    assert_eq!(create(json!({"name": "x", "url": url, "events": ["message.created"], "secret": "short"})).await.0, 422);
    assert_eq!(create(json!({"name": "x", "url": url, "events": ["message.created"], "colour": "red"})).await.0, 400);
    let anonymous = app.http.get(app.url("/api/v1/webhooks")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(app.api(Method::GET, "/api/v1/webhooks/wh_nope", None).await.0, 404);
    assert_eq!(app.api(Method::GET, "/api/v1/webhooks/wh_nope/deliveries", None).await.0, 404);
    assert_eq!(app.api(Method::GET, &format!("/api/v1/webhooks/{webhook}/deliveries?status=lost"), None).await.0, 422);
    assert_eq!(app.api(Method::POST, "/api/v1/deliveries/dlv_999999/retry", None).await.0, 404);
    assert_eq!(app.api(Method::POST, "/api/v1/deliveries/nonsense/retry", None).await.0, 404);

    let (status, list) = app.api(Method::GET, "/api/v1/webhooks", None).await;
    assert_eq!((status, list["webhooks"].as_array().unwrap().len()), (200, 1));
    let (status, patched) =
        app.api(Method::PATCH, &format!("/api/v1/webhooks/{webhook}"), Some(json!({"name": "Renamed", "events": ["member.joined"]}))).await;
    assert_eq!((status, patched["name"].as_str(), patched["events"].clone()), (200, Some("Renamed"), json!(["member.joined"])));
    assert_eq!(app.api(Method::DELETE, &format!("/api/v1/webhooks/{webhook}"), None).await.0, 204);
    assert_eq!(app.api(Method::GET, &format!("/api/v1/webhooks/{webhook}"), None).await.0, 404);
    assert_eq!(app.api(Method::DELETE, &format!("/api/v1/webhooks/{webhook}"), None).await.0, 404);
    // Another project's key sees nothing of this one's webhooks.
    let other = mqchat_bridge::projects::create(&app.db, "Other").await.unwrap();
    let foreign = app.http.get(app.url("/api/v1/webhooks")).bearer_auth(&other.secret_key).send().await.unwrap();
    assert_eq!(foreign.json::<Value>().await.unwrap()["webhooks"], json!([]));
}

#[tokio::test]
async fn deliveries_pending_at_sigkill_are_delivered_after_restart_with_the_same_event_ids() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::helpers::fresh_database_url(&dir).await;
    let secret_key = crate::crash::create_project(&db).await["secret_key"].as_str().unwrap().to_owned();
    let settings = [("MQCHAT_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true"), ("MQCHAT_WEBHOOKS__TIMEOUT", "60s")];
    let mut server = crate::crash::start_with(&db, dir.path(), &settings).await;
    let mut receiver = Receiver::start().await;
    let body = json!({"name": "w", "url": receiver.url("/"), "events": ["conversation.created"]});
    let webhook = crate::crash::server_api(&server, &secret_key, Method::POST, "/api/v1/webhooks", Some(body)).await;
    let webhook = webhook["id"].as_str().unwrap().to_owned();
    // The receiver holds every request open: all are in flight when mqchat dies.
    const EVENTS: usize = 5;
    receiver.answer(&[Answer::After(Duration::from_secs(3600), 200); EVENTS]);
    for n in 0..EVENTS {
        let body = json!({"type": "group", "member_ids": ["alice", format!("u{n}")]});
        let conversation = crate::crash::server_api(&server, &secret_key, Method::POST, "/api/v1/conversations", Some(body)).await;
        assert!(conversation["id"].is_string(), "{conversation}");
    }
    let mut before = BTreeSet::new();
    while before.len() < EVENTS {
        before.insert(receiver.next().await.event_id());
    }
    server.child.kill().await.unwrap();

    let server = crate::crash::start_with(&db, dir.path(), &settings).await;
    let mut after = BTreeSet::new();
    while after.len() < EVENTS {
        after.insert(receiver.next().await.event_id());
    }
    assert_eq!(after, before, "every event is delivered again after the crash, under the same id");
    let log = crate::crash::server_api(&server, &secret_key, Method::GET, &format!("/api/v1/webhooks/{webhook}/deliveries"), None).await;
    assert_eq!(log["deliveries"].as_array().unwrap().len(), EVENTS, "one entry per event, not per attempt");
}

/// Deliveries written by the previous schema (a body per delivery row) are
/// kept by the upgrade that stores each event's body once: the pending one
/// is delivered with its exact bytes and event id, and the log keeps the
/// delivered one with its id.
#[tokio::test]
async fn deliveries_written_before_the_events_upgrade_survive_it() {
    use migration::MigratorTrait;
    use sea_orm::ConnectionTrait;

    let dir = tempfile::tempdir().unwrap();
    let db_url = crate::helpers::fresh_database_url(&dir).await;
    let mut receiver = Receiver::start().await;
    let db = sea_orm::Database::connect(&db_url).await.unwrap();
    // The schema as the webhooks issue left it.
    migration::Migrator::up(&db, Some(6)).await.unwrap();
    let now = "2026-11-22 10:00:00.000000+00:00";
    // Written as that schema's rows (today's entity has more columns).
    struct OldProject {
        project_id: &'static str,
        secret_key: &'static str,
    }
    let project = OldProject { project_id: "prj_upgrade", secret_key: "sk_upgrade_0123456789abcdef0123456789abcdef" };
    db.execute_unprepared(&format!(
        "INSERT INTO projects (id, name, public_key, secret_key, created_at) VALUES ('{}', 'Upgrade', 'pk_upgrade', '{}', '{now}')",
        project.project_id, project.secret_key
    ))
    .await
    .unwrap();
    let pending = format!(
        r#"{{"id":"evt_before_upgrade","type":"conversation.created","created_at":"2026-11-22T10:00:00Z","project_id":"{}","data":{{"conversation_id":"conv_x"}}}}"#,
        project.project_id
    );
    let statements = [
        format!(
            "INSERT INTO webhook_endpoints (id, project_id, kind, name, url, secret, events, enabled, created_at, updated_at) \
             VALUES ('wh_before', '{}', 'webhook', 'Before', '{}', 'whsec_MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=', '[\"conversation.created\"]', true, '{now}', '{now}')",
            project.project_id,
            receiver.url("/")
        ),
        format!(
            "INSERT INTO webhook_deliveries (event_id, event_type, endpoint_id, project_id, body, status, attempts, next_attempt_at, created_at, updated_at) \
             VALUES ('evt_delivered_before', 'conversation.created', 'wh_before', '{0}', '{{}}', 'delivered', 1, '{now}', '{now}', '{now}'), \
                    ('evt_before_upgrade', 'conversation.created', 'wh_before', '{0}', '{1}', 'pending', 0, '{now}', '{now}', '{now}')",
            project.project_id, pending
        ),
    ];
    for statement in statements {
        db.execute_unprepared(&statement).await.unwrap();
    }
    let ids_before: BTreeMap<String, String> = db
        .query_all_raw(sea_orm::Statement::from_string(db.get_database_backend(), "SELECT id, event_id FROM webhook_deliveries"))
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.try_get::<String>("", "event_id").unwrap(), format!("dlv_{}", row.try_get::<i64>("", "id").unwrap())))
        .collect();
    db.close().await.unwrap();

    let server = crate::crash::start_with(&db_url, dir.path(), &[("MQCHAT_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")]).await;
    let received = receiver.next().await;
    assert_eq!(String::from_utf8(received.body.clone()).unwrap(), pending, "the same bytes as before the upgrade");
    assert_eq!(received.event_id(), "evt_before_upgrade");
    received.assert_signed_with("whsec_MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=");

    // A new event after the upgrade takes an id past the old ones.
    let body = json!({"type": "group", "member_ids": ["alice", "bob"]});
    crate::crash::server_api(&server, project.secret_key, Method::POST, "/api/v1/conversations", Some(body)).await;
    assert_eq!(receiver.next().await.json()["type"], "conversation.created");

    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let log = crate::crash::server_api(&server, project.secret_key, Method::GET, "/api/v1/webhooks/wh_before/deliveries", None).await;
        let entries: Vec<(String, String, String)> = log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                let field = |name: &str| entry[name].as_str().unwrap_or_default().to_owned();
                (field("id"), field("event_id"), field("status"))
            })
            .collect();
        if entries.len() == 3 && entries.iter().all(|(_, _, status)| status == "delivered") {
            let kept: BTreeMap<String, String> = entries
                .iter()
                .filter(|(_, event, _)| ids_before.contains_key(event))
                .map(|(id, event, _)| (event.clone(), id.clone()))
                .collect();
            assert_eq!(kept, ids_before, "both old deliveries keep their ids and event ids");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "log never showed all three delivered: {log:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A proxy named in the environment would connect for mqchat to wherever a
/// URL says, past the target policy: deliveries go direct, and the proxy
/// (a loopback listener here) never hears from the server.
#[tokio::test]
async fn deliveries_never_use_a_proxy_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = crate::helpers::fresh_database_url(&dir).await;
    let project = crate::crash::create_project(&db_url).await;
    let secret_key = project["secret_key"].as_str().unwrap();
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let mut receiver = Receiver::start().await;
    let mut environment = vec![("MQCHAT_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")];
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
        environment.push((name, proxy_url.as_str()));
    }
    let server = crate::crash::start_with(&db_url, dir.path(), &environment).await;
    let webhook = json!({"name": "direct", "url": receiver.url("/hook"), "events": ["conversation.created"]});
    crate::crash::server_api(&server, secret_key, Method::POST, "/api/v1/webhooks", Some(webhook)).await;
    let conversation = json!({"type": "group", "member_ids": ["alice"]});
    crate::crash::server_api(&server, secret_key, Method::POST, "/api/v1/conversations", Some(conversation)).await;
    assert_eq!(receiver.next().await.json()["type"], "conversation.created");
    let proxied = tokio::time::timeout(crate::helpers::QUIET, proxy.accept()).await;
    assert!(proxied.is_err(), "the proxy was asked to connect");
}

/// A private certificate authority and a certificate it issued for the
/// loopback receiver (`localhost`, `127.0.0.1`), all as PEM.
struct TestAuthority {
    ca: String,
    certificate: String,
    key: String,
}

fn test_authority() -> TestAuthority {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "mqchat test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let certificate = leaf.signed_by(&key, &issuer).unwrap();
    TestAuthority { ca: ca.pem(), certificate: certificate.pem(), key: key.serialize_pem() }
}

/// HTTPS, the only production mode, end to end against a local TLS
/// receiver: its certificate is verified (a server trusting only the
/// system's authorities refuses the handshake and delivers nothing), and
/// with the site's authority in `webhooks.extra_root_certificates` signed
/// events arrive.
#[tokio::test]
async fn https_deliveries_verify_the_receivers_certificate() {
    let authority = test_authority();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("site-ca.pem");
    std::fs::write(&ca_file, &authority.ca).unwrap();
    let mut receiver = Receiver::start_tls(&authority.certificate, &authority.key).await;
    let url = receiver.url("/secure");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let untrusting = webhook_app().await;
    let (webhook, _) = create_webhook(&untrusting, &url, &["conversation.created"]).await;
    untrusting.create_conversation("group", &["alice"]).await;
    let log = log_until(&untrusting, &webhook, |log| log.first().is_some_and(|d| d["attempt_log"].as_array().is_some_and(|a| !a.is_empty()))).await;
    let attempt = &log[0]["attempt_log"][0];
    assert_eq!(attempt["status_code"], Value::Null, "{attempt}");
    receiver.assert_quiet().await;

    let trusting = TestApp::spawn_with(|settings| {
        settings.webhooks.allow_private_targets = true;
        settings.webhooks.extra_root_certificates = vec![ca_file.clone()];
    })
    .await;
    let (webhook, secret) = create_webhook(&trusting, &url, &["conversation.created"]).await;
    let conversation = trusting.create_conversation("group", &["alice"]).await;
    let request = receiver.next().await;
    request.assert_signed_with(&secret);
    assert_eq!(request.path, "/secure");
    assert_eq!(request.json()["data"]["conversation_id"], conversation.as_str());
    let log = log_until(&trusting, &webhook, |log| log.first().is_some_and(|d| d["status"] == "delivered")).await;
    assert_eq!(log[0]["attempt_log"][0]["status_code"], 200);
}
