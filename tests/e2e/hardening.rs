//! Hostile and broken input: one bad value fails only itself, tokens cannot
//! outlive what the backend allows, uploads cannot run script, and the
//! platform's own voice (system messages) cannot be forged.
use futures_util::future::join_all;
use mqchat_broker::identity::{now_unix, IdentityClaims};
use reqwest::Method;
use rumqttc::{ConnectReturnCode, ConnectionError, QoS};
use serde_json::{json, Value};

use crate::attachments::upload;
use crate::chat_client::{error_code, ChatClient};
use crate::helpers::{granted, payload_json, TestApp, TestClient, PATIENCE};

fn claims(sub: &str) -> IdentityClaims {
    let now = now_unix();
    IdentityClaims { sub: sub.into(), name: None, email: None, avatar_url: None, iat: now, exp: now + 600, iss: None }
}

fn refused_as_bad_credentials(result: Result<TestClient, ConnectionError>) -> bool {
    matches!(result, Err(ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword)))
}

/// Sends that many users' clients publish at once, while one user sends
/// values that storage could not take: each bad one is answered `invalid`
/// naming its field, every other send is stored.
#[tokio::test]
async fn bad_values_fail_only_themselves_while_others_send_in_the_same_batches() {
    let app = TestApp::spawn().await;
    let senders: Vec<String> = (0..8).map(|n| format!("user{n}")).collect();
    let mut members: Vec<&str> = senders.iter().map(String::as_str).collect();
    members.push("mallory");
    let conversation = app.create_conversation("group", &members).await;
    let elsewhere = app.create_conversation("group", &["mallory"]).await;
    let mut mallory = ChatClient::connect(&app, "mallory").await;
    let foreign = mallory.command(json!({"op": "message.send", "conversation_id": elsewhere, "content": "x"})).await;
    let foreign_id = foreign["data"]["message"]["id"].as_str().unwrap().to_owned();

    let mut clients = Vec::new();
    for sender in &senders {
        clients.push(ChatClient::connect(&app, sender).await);
    }
    let send = |extra: Value| {
        let mut command = json!({"op": "message.send", "conversation_id": conversation, "content": "hi"});
        command.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        command
    };
    let bad = [
        (send(json!({"client_msg_id": "c".repeat(129)})), "client_msg_id"),
        (send(json!({"reply_to_message_id": "m".repeat(65)})), "reply_to_message_id"),
        (send(json!({"reply_to_message_id": foreign_id})), "reply_to_message_id"),
        (send(json!({"content": "nul \u{0} inside"})), "content"),
        (send(json!({"p1": "nul \u{0}"})), "p1"),
        (send(json!({"client_msg_id": "nul \u{0}"})), "client_msg_id"),
        (send(json!({"type": 6})), "type"),
        (send(json!({"type": -1})), "type"),
        (json!({"op": "conversations.list", "before": "-200000-01-01T00:00:00Z"}), "before"),
    ];
    // Every good sender publishes its burst without waiting, then mallory
    // its bad values, so they queue for the same batches.
    for (n, client) in clients.iter_mut().enumerate() {
        for i in 0..10 {
            let command = send(json!({"id": format!("good-{i}"), "client_msg_id": format!("{n}-{i}")}));
            client.client.client.publish(client.outbox.clone(), QoS::AtLeastOnce, false, command.to_string()).await.unwrap();
        }
    }
    for (i, (command, field)) in bad.iter().enumerate() {
        let mut command = command.clone();
        command["id"] = json!(format!("bad-{i}"));
        mallory.client.client.publish(mallory.outbox.clone(), QoS::AtLeastOnce, false, command.to_string()).await.unwrap();
        let reply = mallory.reply(&format!("bad-{i}")).await;
        assert_eq!(error_code(&reply), "invalid_request", "{field}: {reply}");
        assert!(reply["error"]["message"].as_str().unwrap().contains(field), "{field}: {reply}");
    }
    for client in &mut clients {
        for i in 0..10 {
            let reply = client.reply(&format!("good-{i}")).await;
            assert_eq!(reply["ok"], true, "{reply}");
        }
    }
    let (_, history) =
        app.api(Method::GET, &format!("/api/v1/conversations/{conversation}/messages?limit=200"), None).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 80, "only the good sends are stored");
}

/// The second wall: a send the database itself refuses (here: its
/// conversation row vanished under the engine's cache) fails alone, the
/// others queued with it are stored.
#[tokio::test]
async fn a_send_the_database_refuses_does_not_fail_its_batch() {
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn().await;
    let doomed = app.create_conversation("group", &["mallory"]).await;
    let healthy = app.create_conversation("group", &["alice"]).await;
    let mut mallory = ChatClient::connect(&app, "mallory").await;
    let mut alice = ChatClient::connect(&app, "alice").await;
    let first = mallory.command(json!({"op": "message.send", "conversation_id": doomed, "content": "warm the cache"})).await;
    assert_eq!(first["ok"], true);
    app.db.execute_unprepared(&format!("DELETE FROM conversations WHERE id = '{doomed}'")).await.unwrap();

    for i in 0..40 {
        let good = json!({"id": format!("a-{i}"), "op": "message.send", "conversation_id": healthy, "content": "fine"});
        alice.client.client.publish(alice.outbox.clone(), QoS::AtLeastOnce, false, good.to_string()).await.unwrap();
        if i % 10 == 0 {
            let bad = json!({"id": format!("m-{i}"), "op": "message.send", "conversation_id": doomed, "content": "lost"});
            mallory.client.client.publish(mallory.outbox.clone(), QoS::AtLeastOnce, false, bad.to_string()).await.unwrap();
        }
    }
    for i in 0..40 {
        let reply = alice.reply(&format!("a-{i}")).await;
        assert_eq!(reply["ok"], true, "{reply}");
        assert_eq!(reply["data"]["message"]["seq"], i + 1);
    }
    for i in (0..40).step_by(10) {
        let reply = mallory.reply(&format!("m-{i}")).await;
        assert_eq!(error_code(&reply), "internal", "{reply}");
    }
}

#[tokio::test]
async fn profile_claims_beyond_their_columns_are_refused_alike_on_every_database() {
    let app = TestApp::spawn().await;
    let long_name = IdentityClaims { name: Some("n".repeat(5000)), ..claims("alice") };
    let long_email = IdentityClaims { email: Some("e".repeat(321)), ..claims("alice") };
    let long_avatar = IdentityClaims { avatar_url: Some(format!("https://a/{}", "x".repeat(2048))), ..claims("alice") };
    let control = IdentityClaims { name: Some("line\nforged".into()), ..claims("alice") };
    for bad in [long_name, long_email, long_avatar, control] {
        let token = app.token_with(bad.clone());
        assert!(refused_as_bad_credentials(TestClient::connect(app.options("alice-1", &token)).await), "{bad:?}");
        let (status, body) = app.sdk_init(&token).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "invalid_token");
    }
    let widest = IdentityClaims { name: Some("é".repeat(200)), email: Some("e".repeat(320)), ..claims("alice") };
    let token = app.token_with(widest);
    assert_eq!(app.sdk_init(&token).await.0, 200);
    TestClient::connect(app.options("alice-2", &token)).await.expect("the widest profile connects");
}

#[tokio::test]
async fn token_times_that_would_overflow_are_refused() {
    let app = TestApp::spawn().await;
    let ten_years = now_unix() + 10 * 365 * 86_400;
    for (iat, exp) in [(i64::MIN, ten_years), (i64::MIN, i64::MAX), (now_unix(), i64::MAX)] {
        let token = app.token_with(IdentityClaims { iat, exp, ..claims("alice") });
        assert!(refused_as_bad_credentials(TestClient::connect(app.options("alice-1", &token)).await), "{iat} {exp}");
        assert_eq!(app.sdk_init(&token).await.0, 401, "{iat} {exp}");
    }
}

#[tokio::test]
async fn a_session_token_cannot_renew_itself() {
    let app = TestApp::spawn().await;
    let (status, body) = app.sdk_init(&app.token("alice")).await;
    assert_eq!(status, 200);
    let session = body["data"]["session_token"].as_str().unwrap().to_owned();
    assert_eq!(body["data"]["mqtt"]["password"], session.as_str(), "the MQTT password is the session token itself");
    let (status, body) = app.sdk_init(&session).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("session token"), "{body}");
    // It still works for what it is for.
    TestClient::connect(app.options("alice-session", &session)).await.expect("the session token connects");
}

#[tokio::test]
async fn revoking_a_users_sessions_closes_its_connections_and_refuses_its_earlier_tokens() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let (_, body) = app.sdk_init(&token).await;
    let session = body["data"]["session_token"].as_str().unwrap().to_owned();
    let phone = TestClient::connect(app.options("alice-phone", &session)).await.unwrap();
    let laptop = TestClient::connect(app.options("alice-laptop", &token)).await.unwrap();
    let mut bob = app.client("bob").await;

    let (status, body) = app.api(Method::POST, "/api/v1/users/alice/sessions/revoke", None).await;
    assert_eq!(status, 200, "{body}");
    let _ = phone.closed().await;
    let _ = laptop.closed().await;
    for old in [&token, &session] {
        assert!(refused_as_bad_credentials(TestClient::connect(app.options("alice-again", old)).await));
        assert_eq!(app.sdk_init(old).await.0, 401);
    }
    // A token the backend signs after the revocation works; bob never noticed.
    let fresh = app.token_with(IdentityClaims { iat: now_unix() + 1, ..claims("alice") });
    TestClient::connect(app.options("alice-fresh", &fresh)).await.expect("a new token connects");
    assert!(granted(&bob.subscribe(&format!("chat/{}/user/bob/inbox", app.project_id())).await));

    let (status, _) = app.api(Method::POST, "/api/v1/users/not%20valid/sessions/revoke", None).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn a_rotated_secret_key_keeps_working_only_for_its_grace_period() {
    let app = TestApp::spawn().await;
    let old_token = app.token("alice");
    let (status, rotated) = app.api(Method::POST, "/api/v1/project/rotate-secret", Some(json!({"grace_seconds": 3600}))).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret_key"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, app.project.secret_key);
    assert!(rotated["previous_secret"]["expires_at"].is_string(), "{rotated}");
    assert!(rotated["previous_secret"].get("key").is_none(), "the old key is not echoed");

    TestClient::connect(app.options("alice-old", &old_token)).await.expect("old key within its grace period");
    let new_token = mqchat_broker::identity::sign(&new_secret, &claims("alice")).unwrap();
    TestClient::connect(app.options("alice-new", &new_token)).await.expect("new key");
    let with_new = app.http.get(app.url("/api/v1/webhooks")).bearer_auth(&new_secret).send().await.unwrap();
    assert_eq!(with_new.status(), 200);

    // Rotating again with no grace ends both older keys at once.
    let rotate = json!({"grace_seconds": 0});
    let again = app.http.post(app.url("/api/v1/project/rotate-secret")).bearer_auth(&new_secret).json(&rotate).send().await.unwrap();
    assert_eq!(again.status(), 200);
    for token in [&old_token, &new_token] {
        assert!(refused_as_bad_credentials(TestClient::connect(app.options("alice-late", token)).await));
    }
    let with_replaced = app.http.get(app.url("/api/v1/webhooks")).bearer_auth(&new_secret).send().await.unwrap();
    assert_eq!(with_replaced.status(), 401);
    let (status, _) = app.api(Method::POST, "/api/v1/project/rotate-secret", Some(json!({"grace_seconds": 99_999_999}))).await;
    assert_eq!(status, 401, "the original key is long gone");
}

#[tokio::test]
async fn uploads_that_could_run_script_are_downloads_in_a_sandbox() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice"]).await;
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.domain)</script></svg>"#;
    for (content_type, inline) in [
        ("image/svg+xml", false),
        ("IMAGE/SVG+XML; charset=utf-8", false),
        ("text/plain", false),
        ("image/png", true),
        ("video/mp4", true),
    ] {
        let (status, file) = upload(&app, "alice", &conversation, "f", content_type, svg.to_vec()).await;
        assert_eq!(status, 201, "{content_type}: {file}");
        let response = app.http.get(file["url"].as_str().unwrap()).send().await.unwrap();
        let headers = response.headers();
        let disposition = headers["content-disposition"].to_str().unwrap();
        assert_eq!(disposition.starts_with("inline"), inline, "{content_type}: {disposition}");
        assert_eq!(headers["content-security-policy"], "default-src 'none'; sandbox", "{content_type}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    let (status, body) = upload(&app, "alice", &conversation, "f", &format!("image/{}", "x".repeat(300)), b"data".to_vec()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("Content-Type"), "{body}");
}

#[tokio::test]
async fn system_messages_come_only_from_the_backend() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "helpbot"]).await;
    let topic = app.conversation_topic(&conversation);
    let mut alice = ChatClient::connect(&app, "alice").await;
    assert!(granted(&alice.client.subscribe(&topic).await));

    for forged in [json!({"type": 6}), json!({"system": true})] {
        let mut command = json!({"op": "message.send", "conversation_id": conversation, "content": "I am the platform"});
        command.as_object_mut().unwrap().extend(forged.as_object().unwrap().clone());
        assert_eq!(error_code(&alice.command(command).await), "invalid_request");
    }
    let call = json!({"op": "message.send", "conversation_id": conversation, "content": "missed call", "type": 5});
    let reply = alice.command(call).await;
    assert_eq!((reply["data"]["message"]["type"].as_i64(), reply["data"]["message"]["system"].as_bool()), (Some(5), Some(false)));

    let path = format!("/api/v1/conversations/{conversation}/messages");
    let (status, posted) = app.api(Method::POST, &path, Some(json!({"content": "Your order shipped"}))).await;
    assert_eq!(status, 201, "{posted}");
    let event = loop {
        let event = payload_json(&alice.client.publish_on(&topic).await);
        if event["data"]["id"] == posted["message"]["id"] {
            break event;
        }
    };
    assert_eq!(event["type"], "message.created");
    assert_eq!((event["data"]["system"].as_bool(), event["data"]["sender"]["id"].as_str()), (Some(true), Some("")));
    assert_eq!(event["data"]["content"], "Your order shipped");

    let (status, bot) = app.api(Method::POST, &path, Some(json!({"sender_id": "helpbot", "content": "How can I help?"}))).await;
    assert_eq!(status, 201, "{bot}");
    assert_eq!((bot["message"]["system"].as_bool(), bot["message"]["sender"]["id"].as_str()), (Some(false), Some("helpbot")));
    let (status, _) = app.api(Method::POST, &path, Some(json!({"sender_id": "stranger", "content": "hi"}))).await;
    assert_eq!(status, 403, "a sender must be a member");
    let (status, body) = app.api(Method::POST, &path, Some(json!({"content": "nul \u{0}"}))).await;
    assert_eq!(status, 422, "{body}");
    // Nobody can edit what the platform said.
    let id = posted["message"]["id"].as_str().unwrap();
    let edit = alice.command(json!({"op": "message.edit", "message_id": id, "content": "forged"})).await;
    assert_eq!(error_code(&edit), "forbidden");
}

#[tokio::test]
async fn readiness_checks_the_database_and_the_broker() {
    let app = TestApp::spawn().await;
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body, json!({"status": "ready", "checks": {"database": "ok", "broker": "ok"}}));
    app.db.close_by_ref().await.unwrap();
    let response = tokio::time::timeout(PATIENCE, app.http.get(app.url("/readyz")).send()).await.unwrap().unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "unavailable");
    assert_eq!(body["checks"]["broker"], "ok");
    let live = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(live.status(), 200, "liveness does not depend on the database");
}

#[tokio::test]
async fn a_client_that_keeps_sending_refused_packets_is_disconnected() {
    let app = TestApp::spawn().await;
    let mut mallory = app.client("mallory").await;
    let forged = "chat/x/conv/y\n2026-11-30T00:00:00Z ERROR forged \u{1b}[31mred";
    // A few refusals are part of normal life: answered, connection kept.
    for _ in 0..5 {
        assert!(!granted(&mallory.subscribe(forged).await));
    }
    assert!(granted(&mallory.subscribe(&format!("chat/{}/user/mallory/inbox", app.project_id())).await));
    let requests = (0..300).map(|_| mallory.client.subscribe(forged, QoS::AtMostOnce));
    // Once the server closes the connection the rest cannot be queued.
    let _ = join_all(requests).await;
    let _ = mallory.closed().await;
    // Others are not affected.
    let mut alice = app.client("alice").await;
    assert!(granted(&alice.subscribe(&format!("chat/{}/user/alice/inbox", app.project_id())).await));
}

#[tokio::test]
async fn end_users_create_only_what_the_project_allows_and_channels_are_broadcasts() {
    let app = TestApp::spawn().await;
    let mut alice = ChatClient::connect(&app, "alice").await;
    let many: Vec<String> = (0..999).map(|n| format!("victim{n}")).collect();
    let group = json!({"op": "conversation.create", "type": "group", "member_ids": many});
    assert_eq!(error_code(&alice.command(group).await), "forbidden", "groups are the backend's by default");
    let channel = json!({"op": "conversation.create", "type": "channel"});
    assert_eq!(error_code(&alice.command(channel.clone()).await), "forbidden");
    let direct = alice.command(json!({"op": "conversation.create", "type": "direct", "member_ids": ["bob"]})).await;
    assert_eq!(direct["ok"], true, "{direct}");

    app.allow_user_conversations(&["direct", "group", "channel"]).await;
    let too_many: Vec<String> = (0..101).map(|n| format!("victim{n}")).collect();
    let group = json!({"op": "conversation.create", "type": "group", "member_ids": too_many});
    assert_eq!(error_code(&alice.command(group).await), "invalid_request");
    let created = alice.command(channel).await;
    assert_eq!(created["ok"], true, "{created}");
    let channel_id = created["data"]["conversation"]["id"].as_str().unwrap().to_owned();
    // A creation burst is cut off.
    let mut codes = Vec::new();
    for _ in 0..12 {
        let reply = alice.command(json!({"op": "conversation.create", "type": "group"})).await;
        codes.push(if reply["ok"] == true { "ok".to_owned() } else { error_code(&reply).to_owned() });
    }
    assert!(codes.iter().any(|code| code == "rate_limited"), "{codes:?}");
    assert!(codes.iter().all(|code| code == "ok" || code == "rate_limited"), "{codes:?}");

    // In a channel the admin posts, a member reads.
    let mut bob = ChatClient::connect(&app, "bob").await;
    let joined = bob.command(json!({"op": "conversation.join", "conversation_id": channel_id})).await;
    assert_eq!(joined["ok"], true, "{joined}");
    let post = bob.command(json!({"op": "message.send", "conversation_id": channel_id, "content": "spam"})).await;
    assert_eq!(error_code(&post), "forbidden");
    let post = alice.command(json!({"op": "message.send", "conversation_id": channel_id, "content": "news"})).await;
    assert_eq!(post["ok"], true, "{post}");
}

/// What coverage-guided fuzzing of the HTTP API found or kept
/// (`fuzz/corpus/http_requests`: raw requests, `{sk}` / `{pk}` / `{token}`
/// standing for the credentials), replayed as the fuzz target sends them:
/// no answer is a server error. Requests the target leaves out (routes that
/// resolve or connect to URLs, revocation, rotation) are left out here too.
#[tokio::test]
async fn the_http_fuzzing_corpus_gets_no_server_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let credentials = [
        ("{sk}", app.project.secret_key.clone()),
        ("{pk}", app.project.public_key.clone()),
        ("{token}", app.token_with(IdentityClaims { exp: now_unix() + 24 * 3600, ..claims("alice") })),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/http_requests");
    let inputs: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert!(!inputs.is_empty());
    for input in inputs {
        let data = std::fs::read(input.path()).unwrap();
        let line = data.split(|byte| *byte == b'\n').next().unwrap_or_default().to_ascii_lowercase();
        let left_out = ["hook", "callback", "revoke", "rotate", "%"];
        if left_out.iter().any(|word| line.windows(word.len()).any(|window| window == word.as_bytes())) {
            continue;
        }
        let mut request = data;
        for (placeholder, value) in &credentials {
            while let Some(at) = request.windows(placeholder.len()).position(|window| window == placeholder.as_bytes()) {
                request.splice(at..at + placeholder.len(), value.bytes());
            }
        }
        let mut stream = tokio::net::TcpStream::connect(app.app_http).await.unwrap();
        stream.write_all(&request).await.unwrap_or_default();
        let _ = stream.shutdown().await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await;
        let status = answer.get(9..12).and_then(|code| std::str::from_utf8(code).ok()).and_then(|code| code.parse::<u16>().ok());
        assert!(status.is_none_or(|status| status < 500), "{:?}: {}", input.path(), String::from_utf8_lossy(&answer));
    }
}

/// The real binary's log, as an operator reads it: a filter and a topic
/// full of newlines, a forged timestamp and terminal escapes come out
/// quoted and escaped on the line that reports them — never as a line of
/// their own, never as raw escapes.
#[tokio::test]
async fn what_a_client_sends_cannot_forge_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::helpers::fresh_database_url(&dir).await;
    let project = crate::crash::create_project(&db).await;
    let server = crate::crash::start_with(&db, dir.path(), &[]).await;
    let token = crate::crash::identity_token(project["secret_key"].as_str().unwrap(), "mallory");
    let mut options = rumqttc::MqttOptions::new("mallory-log", server.mqtt.ip().to_string(), server.mqtt.port());
    options.set_credentials(project["public_key"].as_str().unwrap(), token);
    let mut mallory = TestClient::connect(options).await.unwrap();
    let forged = "x\n2026-11-30T00:00:00.000000Z ERROR mqchat: forged line \u{1b}[31mred\u{1b}[0m";
    assert!(!granted(&mallory.subscribe(&format!("chat/other/conv/{forged}")).await));
    mallory.client.publish(format!("chat/other/conv/{forged}"), QoS::AtLeastOnce, false, "x").await.unwrap();

    let deadline = tokio::time::Instant::now() + PATIENCE;
    let log = loop {
        let log = server.log.lock().unwrap().clone();
        if log.iter().any(|line| line.contains("SUBSCRIBE refused")) && log.iter().any(|line| line.contains("PUBLISH dropped")) {
            break log;
        }
        assert!(tokio::time::Instant::now() < deadline, "refusals never logged: {log:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(log.iter().all(|line| !line.starts_with("2026-11-30T00:00:00.000000Z")), "{log:#?}");
    assert!(log.iter().all(|line| !line.contains('\u{1b}')), "raw terminal escapes: {log:#?}");
    let refused = log.iter().find(|line| line.contains("SUBSCRIBE refused")).unwrap();
    assert!(refused.contains(r"x\n2026-11-30") && refused.contains(r"\u{1b}[31m"), "{refused}");
}
