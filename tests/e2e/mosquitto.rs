//! mqchat on a real Mosquitto (Debian's 2.0) with mqchat's plugin, in
//! external-broker mode: clients connect to Mosquitto, mqchat is one more
//! MQTT client of it (docs/SCALING.md).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use mqchat_broker::identity::{now_unix, IdentityClaims};
use rumqttc::{ConnectReturnCode, ConnectionError, LastWill, QoS, SubscribeReasonCode};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::helpers::{granted, payload_json, TestApp, TestClient, PATIENCE};

/// Shared by the plugin and mqchat in these tests.
pub const PLATFORM_SECRET: &str = "e2e-platform-secret-0123456789";

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port()
}

/// `libmqchat_mosquitto.so`, built by cargo with this test binary's profile
/// into the same target directory (once per test process).
fn plugin_library() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        // …/target/<profile>/deps/e2e-<hash>
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>").to_path_buf();
        let target_dir = profile_dir.parent().expect("target directory").to_path_buf();
        let mut build = std::process::Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "-p", "mqchat-mosquitto"]).env("CARGO_TARGET_DIR", &target_dir);
        // What cargo tells a test about its own package would reach the
        // dependencies' build scripts (ring's reads CARGO_MANIFEST_DIR) and
        // make the next `cargo test` rebuild them.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if ["CARGO_MANIFEST_", "CARGO_PKG_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "CARGO_RUSTC_CURRENT_DIR"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
            {
                build.env_remove(&*name);
            }
        }
        if profile_dir.file_name().is_some_and(|name| name == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building the Mosquitto plugin failed");
        profile_dir.join("libmqchat_mosquitto.so")
    })
}

/// The sample `mosquitto-compat/mosquitto.conf` as it is, with this test's
/// ports, paths and secret (and no persistence file).
fn sample_conf(library: &std::path::Path, mqtt_port: u16, websocket_port: u16, mqchat_http_port: u16) -> String {
    let sample = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/mosquitto-compat/mosquitto.conf")).unwrap();
    let replacements = [
        ("listener 1883 ", format!("listener {mqtt_port} 127.0.0.1")),
        ("listener 8083 ", format!("listener {websocket_port} 127.0.0.1")),
        ("persistence true", "persistence false".to_owned()),
        ("persistence_location ", String::new()),
        ("plugin ", format!("plugin {}", library.display())),
        ("plugin_opt_mqchat_url ", format!("plugin_opt_mqchat_url http://127.0.0.1:{mqchat_http_port}")),
        ("plugin_opt_platform_secret ", format!("plugin_opt_platform_secret {PLATFORM_SECRET}")),
    ];
    let mut used = vec![false; replacements.len()];
    let mut conf: String = sample
        .lines()
        .map(|line| match replacements.iter().position(|(prefix, _)| line.starts_with(prefix)) {
            Some(index) => {
                used[index] = true;
                format!("{}\n", replacements[index].1)
            }
            None => format!("{line}\n"),
        })
        .collect();
    assert!(used.iter().all(|&used| used), "the sample mosquitto.conf lost a line this test sets: {replacements:?}");
    conf.push_str("log_type error\nlog_type warning\nlog_type notice\nlog_type information\n");
    conf
}

/// Debian's `mosquitto` with mqchat's plugin, on loopback ports of its own,
/// stopped when dropped.
pub struct Mosquitto {
    child: Child,
    mqtt_port: u16,
    websocket_port: u16,
    conf: PathBuf,
    log: PathBuf,
}

impl Mosquitto {
    /// Starts it in `dir` (made world-readable: Mosquitto drops to its own
    /// user before loading the plugin), pointed at mqchat on `mqchat_http_port`.
    pub async fn start(dir: &tempfile::TempDir, mqchat_http_port: u16) -> Mosquitto {
        use std::os::unix::fs::PermissionsExt;
        let world_readable = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(dir.path(), world_readable.clone()).unwrap();
        let library = dir.path().join("libmqchat_mosquitto.so");
        std::fs::copy(plugin_library(), &library).expect("copy the plugin");
        std::fs::set_permissions(&library, world_readable).unwrap();
        let (mqtt_port, websocket_port) = (free_port(), free_port());
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(&conf, sample_conf(&library, mqtt_port, websocket_port, mqchat_http_port)).unwrap();
        let log = dir.path().join("mosquitto.log");
        let child = Self::spawn(&conf, &log);
        let mosquitto = Mosquitto { child, mqtt_port, websocket_port, conf, log };
        mosquitto.wait_listening().await;
        mosquitto
    }

    fn spawn(conf: &std::path::Path, log: &std::path::Path) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        Command::new("mosquitto")
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("mosquitto is installed (apt-get install mosquitto)")
    }

    async fn wait_listening(&self) {
        let up = tokio::time::timeout(PATIENCE, async {
            while tokio::net::TcpStream::connect(self.mqtt_addr()).await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(up.is_ok(), "mosquitto did not start: {}", self.log());
    }

    /// SIGKILL and start again on the same ports (no persistence: every
    /// session, mqchat's included, is gone).
    pub async fn crash_and_restart(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
        self.child = Self::spawn(&self.conf, &self.log);
        self.wait_listening().await;
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.mqtt_port)
    }

    pub fn mqtt_addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.mqtt_port).into()
    }

    pub fn websocket_addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.websocket_port).into()
    }

    /// What Mosquitto logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn refused_by_mosquitto(result: Result<TestClient, ConnectionError>) -> bool {
    // Mosquitto answers every failed login with CONNACK 5.
    matches!(result, Err(ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized)))
}

/// A client with mqchat's own credentials, watching every status topic.
async fn platform_watcher(app: &TestApp) -> TestClient {
    let mut options = rumqttc::MqttOptions::new(format!("watcher-{}", uuid::Uuid::new_v4().simple()), "127.0.0.1", app.app_mqtt.port());
    options.set_credentials("mqchat-platform", PLATFORM_SECRET);
    let mut watcher = TestClient::connect(options).await.expect("the platform logs in");
    assert!(granted(&watcher.subscribe("chat/+/user/+/status").await));
    watcher
}

#[tokio::test]
async fn chat_through_mosquitto_send_edit_receive_and_history() {
    let app = TestApp::on_mosquitto().await;
    // Alice hears of the new conversation on her inbox (the API answers
    // before the event reaches the broker, so she subscribes first).
    let mut alice = app.client("alice").await;
    let inbox = format!("chat/{}/user/alice/inbox", app.project_id());
    assert!(granted(&alice.subscribe(&inbox).await));
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let announced = payload_json(&alice.publish_on(&inbox).await);
    assert_eq!((announced["type"].as_str(), announced["data"]["conversation"]["id"].as_str()), (Some("conversation.created"), Some(conversation.as_str())));
    let topic = app.conversation_topic(&conversation);
    let mut bob = app.client("bob").await;
    assert!(granted(&bob.subscribe(&topic).await));

    // mosquitto_pub sends (a stock libmosquitto client, QoS 1).
    let outbox = format!("chat/{}/user/alice/outbox", app.project_id());
    let send = json!({"id": "r1", "op": "message.send", "conversation_id": conversation, "content": "hello through mosquitto"});
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &app.app_mqtt.port().to_string(), "-u", &app.project.public_key, "-P", &app.token("alice")])
        .args(["-t", &outbox, "-q", "1", "-m", &send.to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let created = payload_json(&bob.publish_on(&topic).await);
    assert_eq!((created["type"].as_str(), created["data"]["content"].as_str()), (Some("message.created"), Some("hello through mosquitto")));
    assert_eq!(created["data"]["sender"]["name"], "alice name");
    let message_id = created["data"]["id"].as_str().unwrap().to_owned();
    let reply = payload_json(&alice.publish_on(&inbox).await);
    assert_eq!((reply["reply_to"].as_str(), reply["ok"].as_bool()), (Some("r1"), Some(true)), "{reply}");

    // rumqttc edits; the reply and the event come back through Mosquitto.
    let edit = json!({"id": "r2", "op": "message.edit", "message_id": message_id, "content": "edited"});
    alice.client.publish(&outbox, QoS::AtLeastOnce, false, edit.to_string()).await.unwrap();
    let updated = payload_json(&bob.publish_on(&topic).await);
    assert_eq!((updated["type"].as_str(), updated["data"]["content"].as_str()), (Some("message.updated"), Some("edited")));

    // Typing: stamped by the plugin with the connection's identity.
    let typing = format!("{topic}/typing");
    assert!(granted(&bob.subscribe(&typing).await));
    alice.client.publish(&typing, QoS::AtMostOnce, false, r#"{"user_id":"bob","name":"Bob"}"#).await.unwrap();
    let stamped = payload_json(&bob.publish_on(&typing).await);
    assert_eq!((stamped["data"]["user_id"].as_str(), stamped["data"]["name"].as_str()), (Some("alice"), Some("alice name")));

    // History over HTTP has the edited message.
    let (status, history) = app.api(reqwest::Method::GET, &format!("/api/v1/conversations/{conversation}/messages"), None).await;
    assert_eq!(status, 200, "{history}");
    let messages = history["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!((messages[0]["content"].as_str(), messages[0]["edited"].as_bool()), (Some("edited"), Some(true)));
}

#[tokio::test]
async fn paho_chats_through_mosquitto() {
    crate::stock_clients::paho_chats_with_a_rumqttc_member(&TestApp::on_mosquitto().await).await;
}

#[tokio::test]
async fn the_acl_attack_list_through_mosquitto() {
    let app = TestApp::on_mosquitto().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let p = app.project_id().to_owned();
    let mut alice = app.client("alice").await;
    for filter in [
        "#".to_owned(),
        "+/#".to_owned(),
        "chat/#".to_owned(),
        format!("chat/+/conv/{conversation}"),
        format!("chat/{p}/#"),
        format!("chat/{p}/conv/+"),
        format!("chat/{p}/user/+/inbox"),
        format!("chat/{p}/user/bob/inbox"),
        format!("chat/{p}/user/bob/outbox"),
        "chat/prj_other/user/alice/inbox".to_owned(),
        "$SYS/#".to_owned(),
        "$CONTROL/mqchat/v1".to_owned(),
    ] {
        assert_eq!(alice.subscribe(&filter).await, vec![SubscribeReasonCode::Failure], "{filter}");
    }
    // A non-member is refused the conversation; a member is not.
    let mut mallory = app.client("mallory").await;
    assert_eq!(mallory.subscribe(&app.conversation_topic(&conversation)).await, vec![SubscribeReasonCode::Failure]);
    let topic = app.conversation_topic(&conversation);
    let mut bob = app.client("bob").await;
    assert!(granted(&bob.subscribe(&topic).await));
    assert!(granted(&bob.subscribe(&format!("{topic}/typing")).await));

    // Publishing on the conversation topic, or as bob on bob's outbox, or a
    // control message: dropped, never delivered nor acted on.
    alice.client.publish(&topic, QoS::AtLeastOnce, false, r#"{"type":"message.created","data":{"content":"forged"}}"#).await.unwrap();
    let forged = json!({"id": "x", "op": "message.send", "conversation_id": conversation, "content": "as bob"});
    alice.client.publish(format!("chat/{p}/user/bob/outbox"), QoS::AtLeastOnce, false, forged.to_string()).await.unwrap();
    alice.client.publish("$CONTROL/mqchat/v1", QoS::AtLeastOnce, false, r#"{"op":"disconnect","project_id":"x","user_id":"bob"}"#).await.unwrap();
    mallory.client.publish(format!("{topic}/typing"), QoS::AtMostOnce, false, "{}").await.unwrap();
    bob.assert_no_publish().await;
    let (_, history) = app.api(reqwest::Method::GET, &format!("/api/v1/conversations/{conversation}/messages"), None).await;
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(0), "{history}");

    // Bad tokens, an unknown project, a will on someone else's status topic.
    for (why, token) in crate::auth::bad_tokens(&app) {
        assert!(refused_by_mosquitto(TestClient::connect(app.options("alice-x", &token)).await), "{why} accepted");
    }
    let mut unknown = app.options("alice-y", &app.token("alice"));
    unknown.set_credentials("pk_unknown", app.token("alice"));
    assert!(refused_by_mosquitto(TestClient::connect(unknown).await));

    // A will on someone else's status topic is never published (Mosquitto
    // judges a will when it would publish it); one on the user's own is.
    let mut watcher = platform_watcher(&app).await;
    for (client_id, user) in [("alice-will-bob", "bob"), ("alice-will-own", "alice")] {
        let mut options = app.options(client_id, &app.token("alice"));
        let will = json!({"status": "offline", "epoch": 1, "by": client_id}).to_string();
        options.set_last_will(LastWill::new(format!("chat/{p}/user/{user}/status"), will, QoS::AtLeastOnce, false));
        // Dropped without DISCONNECT: the will is due.
        drop(TestClient::connect(options).await.expect("connects"));
    }
    let will = watcher.publish_on(&format!("chat/{p}/user/alice/status")).await;
    assert_eq!(payload_json(&will)["by"], "alice-will-own");
    watcher.assert_no_publish().await;

    // Bob's live client id cannot be taken by alice; bob may reconnect it.
    let mut bob_device = app.options("bob-phone", &app.token("bob"));
    bob_device.set_clean_session(false);
    let _bob_phone = TestClient::connect(bob_device.clone()).await.expect("bob connects");
    assert!(refused_by_mosquitto(TestClient::connect(app.options("bob-phone", &app.token("alice"))).await));
    assert!(TestClient::connect(bob_device).await.is_ok());
    // Still serving.
    assert!(granted(&alice.subscribe(&format!("chat/{p}/user/alice/inbox")).await));
}

#[tokio::test]
async fn a_removed_member_stops_receiving_at_once() {
    let app = TestApp::on_mosquitto().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let topic = app.conversation_topic(&conversation);
    let mut bob = app.client("bob").await;
    assert!(granted(&bob.subscribe(&topic).await));
    let (status, _) = app.api(reqwest::Method::DELETE, &format!("/api/v1/conversations/{conversation}/members/bob"), None).await;
    assert_eq!(status, 204);
    // Whatever the removal itself announced, nothing after it reaches bob.
    while bob.next_publish_within(Duration::from_millis(300)).await.is_some() {}
    let mut alice = app.client("alice").await;
    let send = json!({"id": "r1", "op": "message.send", "conversation_id": conversation, "content": "after bob left"});
    let inbox = format!("chat/{}/user/alice/inbox", app.project_id());
    assert!(granted(&alice.subscribe(&inbox).await));
    alice.client.publish(format!("chat/{}/user/alice/outbox", app.project_id()), QoS::AtLeastOnce, false, send.to_string()).await.unwrap();
    assert_eq!(payload_json(&alice.publish_on(&inbox).await)["ok"], true);
    bob.assert_no_publish().await;
    // And bob cannot subscribe again.
    assert_eq!(bob.subscribe(&topic).await, vec![SubscribeReasonCode::Failure]);
}

#[tokio::test]
async fn expiring_tokens_and_revoked_sessions_close_live_connections() {
    let app = TestApp::on_mosquitto().await;
    let now = now_unix();
    let short = app.token_with(IdentityClaims { sub: "alice".into(), name: None, email: None, avatar_url: None, iat: now, exp: now + 2, iss: None });
    let alice = TestClient::connect(app.options("alice-short", &short)).await.expect("connects while valid");
    tokio::time::timeout(PATIENCE, alice.closed()).await.expect("closed once the token expired");

    let bob = app.client("bob").await;
    let (status, body) = app.api(reqwest::Method::POST, "/api/v1/users/bob/sessions/revoke", None).await;
    assert_eq!(status, 200, "{body}");
    tokio::time::timeout(PATIENCE, bob.closed()).await.expect("closed once its sessions were revoked");
    // A token issued before the revocation no longer logs in.
    let old = app.token_with(IdentityClaims { sub: "bob".into(), name: None, email: None, avatar_url: None, iat: now - 5, exp: now + 600, iss: None });
    assert!(refused_by_mosquitto(TestClient::connect(app.options("bob-again", &old)).await));
}

#[tokio::test]
async fn websocket_clients_chat_through_mosquitto() {
    let app = TestApp::on_mosquitto().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let topic = app.conversation_topic(&conversation);
    let mut options = rumqttc::MqttOptions::new("bob-ws", format!("ws://{}/mqtt", app.app_ws), app.app_ws.port());
    options.set_transport(rumqttc::Transport::Ws);
    options.set_credentials(app.project.public_key.clone(), app.token("bob"));
    let mut bob = TestClient::connect(options).await.expect("bob connects over WebSocket");
    assert!(granted(&bob.subscribe(&topic).await));
    let alice = app.client("alice").await;
    let send = json!({"id": "r1", "op": "message.send", "conversation_id": conversation, "content": "to the browser"});
    alice.client.publish(format!("chat/{}/user/alice/outbox", app.project_id()), QoS::AtLeastOnce, false, send.to_string()).await.unwrap();
    assert_eq!(payload_json(&bob.publish_on(&topic).await)["data"]["content"], "to the browser");
}

#[tokio::test]
async fn wills_decide_presence_through_mosquitto() {
    crate::presence::wills_decide_presence_per_device(&TestApp::on_mosquitto().await).await;
}

/// One mqchat instance in external mode, in this process, until `stop`.
struct Instance {
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<()>,
}

impl Instance {
    async fn start(settings: &mqchat::Settings) -> Instance {
        let app = mqchat::App::build(settings).await.expect("instance builds");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        Instance { stop, running }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(PATIENCE, self.running).await.expect("stopped in time").unwrap();
    }
}

/// mqchat in external mode on `mosquitto` as an instance in this process
/// (its settings, to start it again), a project, and helpers attached to it.
async fn external_instance(dir: &tempfile::TempDir, mosquitto: &Mosquitto, http_port: u16) -> (mqchat::Settings, Instance, TestApp) {
    let mut settings = crate::helpers::test_settings_with(|settings| {
        settings.http.listen = ([127, 0, 0, 1], http_port).into();
        settings.broker.url = Some(mosquitto.url());
        settings.broker.platform_secret = Some(PLATFORM_SECRET.into());
        settings.broker.client_id = Some("mqchat-e2e".into());
    });
    settings.database.url = crate::helpers::fresh_database_url(dir).await;
    settings.attachments.dir = dir.path().join("uploads");
    let instance = Instance::start(&settings).await;
    let db = mqchat::app::connect_and_migrate(&settings.database.url).await.unwrap();
    let project = mqchat_bridge::projects::create(&db, "External").await.unwrap();
    let app = TestApp::attach(project, db, mosquitto.mqtt_addr(), mosquitto.websocket_addr(), http_port);
    (settings, instance, app)
}

/// Waits until the API reports `user` as `wanted` (online / offline).
pub async fn presence_becomes(app: &TestApp, user: &str, wanted: &str) {
    tokio::time::timeout(PATIENCE, async {
        while app.api(reqwest::Method::GET, &format!("/api/v1/users/{user}/presence"), None).await.1["status"] != wanted {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{user} {wanted} in time"));
}

#[tokio::test]
async fn presence_is_reconciled_after_mqchat_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let mosquitto = Mosquitto::start(&dir, http_port).await;
    let (settings, first, app) = external_instance(&dir, &mosquitto, http_port).await;
    let phone = crate::presence::announced_device(&app, "alice", "phone", 1).await;
    let _tablet = crate::presence::announced_device(&app, "bob", "tablet", 1).await;
    presence_becomes(&app, "alice", "online").await;
    presence_becomes(&app, "bob", "online").await;

    // mqchat stops; alice's phone dies meanwhile; her will waits in the
    // broker's session for mqchat.
    first.stop().await;
    drop(phone);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _second = Instance::start(&settings).await;
    presence_becomes(&app, "alice", "offline").await;
    // Bob's device is still connected: nothing left online was reset.
    presence_becomes(&app, "bob", "online").await;
}

#[tokio::test]
async fn presence_is_reconciled_after_the_broker_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let mut mosquitto = Mosquitto::start(&dir, http_port).await;
    let (_settings, _instance, app) = external_instance(&dir, &mosquitto, http_port).await;
    let alice = crate::presence::announced_device(&app, "alice", "phone", 1).await;
    presence_becomes(&app, "alice", "online").await;

    // The broker dies with alice's connection (no will is ever sent) and
    // comes back without any session; alice's device does not return.
    mosquitto.crash_and_restart().await;
    drop(alice);
    presence_becomes(&app, "alice", "offline").await;
    // mqchat is subscribed again: a device that connects now is seen.
    let _bob = crate::presence::announced_device(&app, "bob", "tablet", 1).await;
    presence_becomes(&app, "bob", "online").await;
}
