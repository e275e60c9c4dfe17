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

/// Connects one of `user`'s devices the way docs/PROTOCOL.md §4 asks: a
/// will saying `offline` and an `online` announcement, with the device's
/// name and the connection's epoch.
pub async fn announced_device(app: &TestApp, user: &str, device: &str, epoch: i64) -> TestClient {
    let status_topic = format!("chat/{}/user/{user}/status", app.project_id());
    let mut options = app.options(&format!("{user}-{device}-{epoch}"), &app.token(user));
    let will = serde_json::json!({"status": "offline", "epoch": epoch, "device": device}).to_string();
    options.set_last_will(rumqttc::LastWill::new(&status_topic, will, QoS::AtLeastOnce, false));
    let client = TestClient::connect(options).await.expect("device connects");
    let online = serde_json::json!({"status": "online", "epoch": epoch, "device": device}).to_string();
    client.client.publish(&status_topic, QoS::AtLeastOnce, false, online).await.unwrap();
    client
}

/// Skips published states until `status`.
pub async fn state_becomes(watcher: &mut TestClient, app: &TestApp, user: &str, status: &str) -> Value {
    loop {
        let state = next_state(watcher, app, user).await;
        if state["status"] == status {
            return state;
        }
    }
}

/// Nothing but `online` is published for a while, and the API agrees.
async fn stays_online(watcher: &mut TestClient, app: &TestApp, user: &str) {
    while let Some(publish) = watcher.next_publish_within(crate::helpers::QUIET).await {
        assert_eq!(payload_json(&publish)["status"], "online", "{user} must stay online");
    }
    let (_, state) = app.api(reqwest::Method::GET, &format!("/api/v1/users/{user}/presence"), None).await;
    assert_eq!(state["status"], "online", "{state}");
}

/// Wills and announcements decide presence per device: two devices, a
/// dropped connection, a stale will after a newer connection.
pub async fn wills_decide_presence_per_device(app: &TestApp) {
    let mut watcher = watch(app, "alice").await;
    let phone = announced_device(app, "alice", "phone", 100).await;
    state_becomes(&mut watcher, app, "alice", "online").await;
    let laptop = announced_device(app, "alice", "laptop", 200).await;
    // The phone's TCP connection dies (no DISCONNECT): its will says
    // offline, the laptop keeps alice online.
    drop(phone);
    stays_online(&mut watcher, app, "alice").await;
    // The phone is back on a newer connection; a late will of its old
    // connection changes nothing.
    let phone = announced_device(app, "alice", "phone", 300).await;
    let stale = serde_json::json!({"status": "offline", "epoch": 100, "device": "phone"}).to_string();
    laptop.client.publish(format!("chat/{}/user/alice/status", app.project_id()), QoS::AtLeastOnce, false, stale).await.unwrap();
    drop(laptop);
    stays_online(&mut watcher, app, "alice").await;
    // The last device goes: offline.
    drop(phone);
    state_becomes(&mut watcher, app, "alice", "offline").await;
}

#[tokio::test]
async fn wills_and_announcements_decide_presence_with_the_embedded_broker_too() {
    wills_decide_presence_per_device(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn an_announced_device_keeps_its_user_online_until_its_offline() {
    // With the embedded broker the gateway's own report is one device; a
    // device that announced itself counts until it says offline.
    let app = TestApp::spawn().await;
    let mut watcher = watch(&app, "bob").await;
    let device = announced_device(&app, "bob", "sensor", 5).await;
    state_becomes(&mut watcher, &app, "bob", "online").await;
    // The gateway's report and the announcement arrive by different
    // paths: wait until the announcement is stored.
    tokio::time::timeout(crate::helpers::PATIENCE, async {
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        while entity::presence_device::Entity::find()
            .filter(entity::presence_device::Column::Device.eq("sensor"))
            .filter(entity::presence_device::Column::Online.eq(true))
            .count(&app.db)
            .await
            .unwrap()
            == 0
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the announcement is stored");
    // Its connection ends without its will (a DISCONNECT): the gateway has
    // no connection of bob's left, the device has not said offline.
    device.client.disconnect().await.unwrap();
    let _ = tokio::time::timeout(crate::helpers::PATIENCE, device.closed()).await;
    stays_online(&mut watcher, &app, "bob").await;
    // Its word arrives later (as a will through another broker would).
    let status_topic = format!("chat/{}/user/bob/status", app.project_id());
    let older = serde_json::json!({"status": "offline", "epoch": 4, "device": "sensor"}).to_string();
    app.publisher().publish(status_topic.clone(), older).unwrap();
    stays_online(&mut watcher, &app, "bob").await;
    let same = serde_json::json!({"status": "offline", "epoch": 5, "device": "sensor"}).to_string();
    app.publisher().publish(status_topic, same).unwrap();
    state_becomes(&mut watcher, &app, "bob", "offline").await;
}
