//! Attachments: members upload into a conversation, messages reference the
//! upload, and the signed URL serves the file until it expires — and not
//! after, nor for another file, nor with a forged signature.
use std::time::Duration;

use serde_json::{json, Value};

use crate::chat_client::{error_code, ChatClient};
use crate::helpers::{granted, payload_json, TestApp};

/// `POST /api/v1/uploads` as `user`.
pub(crate) async fn upload(app: &TestApp, user: &str, conversation: &str, name: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/api/v1/uploads"))
        .query(&[("conversation_id", conversation), ("filename", name)])
        .header("X-Public-Key", &app.project.public_key)
        .header("Content-Type", content_type)
        .header("Content-Length", body.len())
        .bearer_auth(app.token(user))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn upload_attach_and_download_with_a_signed_url() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let other = app.create_conversation("group", &["alice"]).await;
    let picture: Vec<u8> = (0..50_000u32).map(|n| (n % 251) as u8).collect();

    let (status, file) = upload(&app, "alice", &conversation, "../holiday.png", "image/png", picture.clone()).await;
    assert_eq!(status, 201, "{file}");
    assert_eq!(file["filename"], "holiday.png");
    assert_eq!(file["size"], 50_000);
    let url = file["url"].as_str().unwrap().to_owned();
    let downloaded = app.http.get(&url).send().await.unwrap();
    assert_eq!(downloaded.status().as_u16(), 200);
    assert_eq!(downloaded.headers()["content-type"], "image/png");
    assert_eq!(downloaded.bytes().await.unwrap().to_vec(), picture);

    // The message carries the file with a fresh URL; bob receives it.
    let topic = app.conversation_topic(&conversation);
    let mut bob = ChatClient::connect(&app, "bob").await;
    assert!(granted(&bob.client.subscribe(&topic).await));
    let mut alice = ChatClient::connect(&app, "alice").await;
    let sent = alice
        .command(json!({"op": "message.send", "conversation_id": conversation, "type": 1, "content": "", "attachments": [file["id"]]}))
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    let event = payload_json(&bob.client.publish_on(&topic).await);
    let attached = &event["data"]["attachments"][0];
    assert_eq!((attached["id"].clone(), attached["content_type"].clone()), (file["id"].clone(), json!("image/png")));
    let fetched = app.http.get(attached["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(fetched.bytes().await.unwrap().to_vec(), picture);
    let synced = bob.command(json!({"op": "history.sync", "conversation_id": conversation})).await;
    assert_eq!(synced["data"]["messages"][0]["attachments"][0]["id"], file["id"]);

    // Only the uploader, only in the conversation it was uploaded into.
    let refused = bob
        .command(json!({"op": "message.send", "conversation_id": conversation, "content": "mine", "attachments": [file["id"]]}))
        .await;
    assert_eq!(error_code(&refused), "attachment_not_found");
    let refused = alice
        .command(json!({"op": "message.send", "conversation_id": other, "content": "x", "attachments": [file["id"]]}))
        .await;
    assert_eq!(error_code(&refused), "attachment_not_found");

    // Tampered URLs: another file, a later expiry, a made-up signature.
    let (_, second) = upload(&app, "alice", &conversation, "b.txt", "text/plain", b"hello".to_vec()).await;
    let second_id = second["id"].as_str().unwrap();
    let file_id = file["id"].as_str().unwrap();
    let query = url.split_once('?').unwrap().1.to_owned();
    let expires: i64 = query.split('&').next().unwrap().trim_start_matches("expires=").parse().unwrap();
    let signature = query.split("signature=").nth(1).unwrap();
    for forged in [
        app.url(&format!("/api/v1/files/{second_id}?{query}")),
        app.url(&format!("/api/v1/files/{file_id}?expires={}&signature={signature}", expires + 86_400)),
        app.url(&format!("/api/v1/files/{file_id}?expires={expires}&signature={}", "0".repeat(64))),
        app.url(&format!("/api/v1/files/{file_id}")),
    ] {
        let response = app.http.get(&forged).send().await.unwrap();
        assert!([400, 403].contains(&response.status().as_u16()), "{forged}: {}", response.status());
    }
}

#[tokio::test]
async fn expired_urls_and_bad_uploads_are_refused() {
    let app = TestApp::spawn_with(|settings| {
        settings.attachments.url_ttl = Duration::from_secs(1);
        settings.attachments.max_bytes = 1000;
    })
    .await;
    let conversation = app.create_conversation("group", &["alice"]).await;
    let (status, file) = upload(&app, "alice", &conversation, "a.txt", "text/plain", b"hi".to_vec()).await;
    assert_eq!(status, 201, "{file}");
    let url = file["url"].as_str().unwrap();
    // Past its expiry (whole seconds), the same URL stops working.
    let expires: chrono::DateTime<chrono::Utc> = serde_json::from_value(file["expires_at"].clone()).unwrap();
    while chrono::Utc::now() <= expires + chrono::Duration::seconds(1) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let response = app.http.get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 403);

    let (status, body) = upload(&app, "alice", &conversation, "big.txt", "text/plain", vec![b'x'; 1001]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")), "{body}");
    let (status, body) = upload(&app, "alice", &conversation, "page.html", "text/html", b"<script>".to_vec()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (415, Some("unsupported_content_type")), "{body}");
    let (status, body) = upload(&app, "alice", &conversation, "empty.txt", "text/plain", Vec::new()).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = upload(&app, "bob", &conversation, "a.txt", "text/plain", b"hi".to_vec()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("not_a_member")), "{body}");
    // A Content-Type that is not text is a clear 400, not a server fault.
    let response = app
        .http
        .post(app.url(&format!("/api/v1/uploads?conversation_id={conversation}&filename=a.txt")))
        .header("X-Public-Key", &app.project.public_key)
        .header("Content-Type", reqwest::header::HeaderValue::from_bytes(b"text/\xff").unwrap())
        .bearer_auth(app.token("alice"))
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
        // The site backend's secret key acts for no user: it cannot upload.
    let response = app
        .http
        .post(app.url(&format!("/api/v1/uploads?conversation_id={conversation}&filename=a.txt")))
        .bearer_auth(&app.project.secret_key)
        .header("Content-Type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}
