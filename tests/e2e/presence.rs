//! Presence with real clients: online while any device is connected,
//! offline when the last one leaves — gracefully, by a dropped connection, or
//! by keep-alive expiry — as a retained state per user and over HTTP.
use rumqttc::QoS;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::{granted, payload_json, TestApp, TestClient};

/// The next presence state published for `user`.
async fn next_state(watcher: &mut TestClient, app: &TestApp, user: &str) -> Value {
    payload_json(&watcher.publish_on(&format!("chat/{}/presence/{user}", app.project_id())).await)
}

async fn watch(app: &TestApp, user: &str) -> TestClient {
    let mut watcher = app.client("watcher").await;
    assert!(granted(&watcher.subscribe(&format!("chat/{}/presence/{user}", app.project_id())).await));
    watcher
}

#[tokio::test]
async fn online_while_any_device_is_connected() {
    let app = TestApp::spawn().await;
    let mut watcher = watch(&app, "alice").await;
    let phone = app.client("alice").await;
    let online = next_state(&mut watcher, &app, "alice").await;
    assert_eq!((online["user_id"].as_str(), online["status"].as_str()), (Some("alice"), Some("online")));
    let laptop = app.client("alice").await;

    // The phone's connection drops without DISCONNECT: the laptop keeps her online.
    drop(phone);
    watcher.assert_no_publish().await;
    let (status, state) = app.api(reqwest::Method::GET, "/api/v1/users/alice/presence", None).await;
    assert_eq!((status, state["status"].as_str()), (200, Some("online")), "{state}");

    // The laptop leaves gracefully: offline, last seen now.
    laptop.client.disconnect().await.unwrap();
    let offline = next_state(&mut watcher, &app, "alice").await;
    assert_eq!(offline["status"], "offline");
    let last_seen: chrono::DateTime<chrono::Utc> = serde_json::from_value(offline["last_seen_at"].clone()).unwrap();
    assert!(last_seen >= serde_json::from_value::<chrono::DateTime<chrono::Utc>>(online["last_seen_at"].clone()).unwrap());

    // A late subscriber gets the state at once (retained), and so does the API — for users too.
    let mut late = watch(&app, "alice").await;
    let retained = late.publish_on(&format!("chat/{}/presence/alice", app.project_id())).await;
    assert!(retained.retain);
    assert_eq!(payload_json(&retained), offline);
    let response = app
        .http
        .get(app.url("/api/v1/users/alice/presence"))
        .header("X-Public-Key", &app.project.public_key)
        .bearer_auth(app.token("bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap(), offline);
    let (_, never) = app.api(reqwest::Method::GET, "/api/v1/users/nobody/presence", None).await;
    assert_eq!((never["status"].as_str(), never["last_seen_at"].clone()), (Some("offline"), Value::Null));
    let (status, _) = app.api(reqwest::Method::GET, "/api/v1/users/bad%2Fid/presence", None).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn a_dropped_connection_and_an_expired_keep_alive_go_offline() {
    let app = TestApp::spawn().await;
    let mut watcher = watch(&app, "alice").await;

    // A phone whose network vanishes: its TCP connection closes, no DISCONNECT.
    let phone = app.client("alice").await;
    assert_eq!(next_state(&mut watcher, &app, "alice").await["status"], "online");
    drop(phone);
    assert_eq!(next_state(&mut watcher, &app, "alice").await["status"], "offline");

    // A device that goes silent: cut after 1.5 × its keep-alive (1 s here).
    let mut silent = TcpStream::connect(app.app_mqtt).await.unwrap();
    let connect = crate::robustness::connect_packet("alice-silent", &app.project.public_key, &app.token("alice"), 1);
    silent.write_all(&connect).await.unwrap();
    assert_eq!(next_state(&mut watcher, &app, "alice").await["status"], "online");
    assert_eq!(next_state(&mut watcher, &app, "alice").await["status"], "offline");

    // Presence topics are read-only for clients.
    let mallory = app.client("mallory").await;
    mallory.client.publish(format!("chat/{}/presence/alice", app.project_id()), QoS::AtLeastOnce, true, r#"{"status":"online"}"#).await.unwrap();
    watcher.assert_no_publish().await;
    drop(silent);
}
