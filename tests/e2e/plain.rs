//! The plain-MQTT namespace: devices log in with a password file written by
//! Debian's real `mosquitto_passwd`, an `acl_file` with patterns decides
//! what they may do, and neither side reaches the other's namespace.
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rumqttc::{MqttOptions, QoS};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::helpers::{granted, TestApp, TestClient, PATIENCE, QUIET};

/// `mosquitto_passwd -b` for each (user, password), the first with `-c`;
/// `-H sha512` writes the older `$6$` hash for the users asking for it.
async fn password_file(dir: &Path, users: &[(&str, &str, bool)]) -> std::path::PathBuf {
    let file = dir.join("passwords");
    for (index, (user, password, sha512)) in users.iter().enumerate() {
        let mut command = Command::new("mosquitto_passwd");
        if index == 0 {
            command.arg("-c");
        }
        if *sha512 {
            command.args(["-H", "sha512"]);
        }
        let status = command
            .arg("-b")
            .arg(&file)
            .args([user, password])
            .status()
            .await
            .expect("mosquitto_passwd is installed (apt-get install mosquitto)");
        assert!(status.success());
    }
    file
}

const ACL: &str = "\
# anonymous clients read the public feed
topic read public/#

user sensor
topic readwrite home/#

user display
topic read home/#
topic deny home/secret

pattern write devices/%u/%c/status
pattern read devices/%u/#
";

async fn plain_app(allow_anonymous: bool) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let passwords = password_file(dir.path(), &[("sensor", "s3cret", false), ("display", "d1splay", true)]).await;
    let acl = dir.path().join("acl");
    std::fs::write(&acl, ACL).unwrap();
    let app = TestApp::spawn_with(|settings| {
        settings.mosquitto.password_file = Some(passwords);
        settings.mosquitto.acl_file = Some(acl);
        settings.mosquitto.allow_anonymous = allow_anonymous;
    })
    .await;
    (app, dir)
}

pub(crate) fn plain_options(app: &TestApp, client_id: &str, login: Option<(&str, &str)>) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, app.app_mqtt.ip().to_string(), app.app_mqtt.port());
    if let Some((username, password)) = login {
        options.set_credentials(username, password);
    }
    options.set_keep_alive(Duration::from_secs(30));
    options
}

pub(crate) async fn plain(app: &TestApp, client_id: &str, login: Option<(&str, &str)>) -> TestClient {
    TestClient::connect(plain_options(app, client_id, login)).await.expect("plain client connects")
}

#[tokio::test]
async fn devices_log_in_with_mosquitto_passwd_hashes_and_the_acl_file_decides() {
    let (app, _dir) = plain_app(false).await;
    let mut display = plain(&app, "display-1", Some(("display", "d1splay"))).await;
    let mut sensor = plain(&app, "sensor-1", Some(("sensor", "s3cret"))).await;
    assert!(granted(&display.subscribe("home/#").await), "read granted by the display's rule ($6$ hash)");
    assert!(!granted(&display.subscribe("devices/#").await), "a wider filter than its rules");

    sensor.client.publish("home/kitchen/temp", QoS::AtLeastOnce, false, "21.5").await.unwrap();
    assert_eq!(&display.payload_on("home/kitchen/temp", b"21.5").await.payload[..], b"21.5");

    // `deny` under a granted filter: the display never gets it.
    sensor.client.publish("home/secret", QoS::AtLeastOnce, false, "pin").await.unwrap();
    sensor.client.publish("home/after", QoS::AtLeastOnce, false, "next").await.unwrap();
    let next = display.next_publish().await;
    assert_eq!((next.topic.as_str(), &next.payload[..]), ("home/after", &b"next"[..]), "the denied message was skipped, the next one arrived");

    // A display may read but not write.
    display.client.publish("home/kitchen/temp", QoS::AtLeastOnce, false, "99").await.unwrap();
    sensor.assert_no_publish().await;

    // Patterns: %u and %c are the client's own.
    let mut own = plain(&app, "dev-7", Some(("sensor", "s3cret"))).await;
    assert!(granted(&own.subscribe("devices/sensor/#").await));
    own.client.publish("devices/sensor/dev-7/status", QoS::AtLeastOnce, false, "up").await.unwrap();
    assert_eq!(&own.publish_on("devices/sensor/dev-7/status").await.payload[..], b"up");
    own.client.publish("devices/sensor/other/status", QoS::AtLeastOnce, false, "forged").await.unwrap();
    own.assert_no_publish().await;

    // A wrong password is CONNACK 4; an unknown user goes to the chat
    // namespace, which refuses it the same way.
    for login in [("sensor", "wrong"), ("nobody", "s3cret")] {
        let error = TestClient::connect(plain_options(&app, "x", Some(login))).await.err().expect("refused");
        assert!(matches!(error, rumqttc::ConnectionError::ConnectionRefused(rumqttc::ConnectReturnCode::BadUserNamePassword)), "{error:?}");
    }
    let error = TestClient::connect(plain_options(&app, "anon", None)).await.err().expect("anonymous refused");
    assert!(matches!(error, rumqttc::ConnectionError::ConnectionRefused(rumqttc::ConnectReturnCode::BadUserNamePassword)), "{error:?}");
}

#[tokio::test]
async fn the_plain_and_chat_namespaces_never_meet() {
    let (app, _dir) = plain_app(true).await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let mut alice = TestClient::connect(app.options("phone", &app.token("alice"))).await.unwrap();
    let mut sensor = plain(&app, "sensor-1", Some(("sensor", "s3cret"))).await;
    let topic = app.conversation_topic(&conversation);
    for filter in ["#", "+/+/conv/+", "chat/#", topic.as_str(), "$SYS/#"] {
        assert!(!granted(&sensor.subscribe(filter).await), "a plain client may not subscribe to {filter}");
    }
    // Publishing into the chat namespace is dropped.
    assert!(granted(&alice.subscribe(&format!("{topic}/typing")).await));
    sensor.client.publish(format!("{topic}/typing"), QoS::AtLeastOnce, false, "forged").await.unwrap();
    sensor.client.publish(format!("chat/{}/user/alice/outbox", app.project_id()), QoS::AtLeastOnce, false, "{}").await.unwrap();
    alice.assert_no_publish().await;
    // A chat identity may not reach plain topics.
    assert!(!granted(&alice.subscribe("home/#").await));
    // Anonymous clients get the anonymous rules.
    let mut anonymous = plain(&app, "kiosk", None).await;
    assert!(granted(&anonymous.subscribe("public/news").await));
    assert!(!granted(&anonymous.subscribe("home/#").await));
    // The same client id in both namespaces: neither kicks the other.
    let mut twin = plain(&app, "phone", Some(("sensor", "s3cret"))).await;
    assert!(granted(&twin.subscribe("home/x").await));
    assert!(tokio::time::timeout(QUIET, alice.closed()).await.is_err(), "the chat client stays connected");
}

#[tokio::test]
async fn mosquitto_pub_and_sub_with_a_password_file() {
    let (app, _dir) = plain_app(false).await;
    let port = app.app_mqtt.port().to_string();
    let mut sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port, "-u", "display", "-P", "d1splay", "-V", "mqttv5"])
        .args(["-t", "home/garden/#", "-C", "1", "-v", "-q", "1"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto_sub is installed");
    let mut lines = BufReader::new(sub.stdout.take().unwrap()).lines();
    let received = tokio::time::timeout(PATIENCE, async {
        loop {
            let status = Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port, "-u", "sensor", "-P", "s3cret"])
                .args(["-t", "home/garden/soil", "-m", "dry", "-q", "1"])
                .status()
                .await
                .unwrap();
            assert!(status.success());
            if let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await {
                return line;
            }
        }
    })
    .await
    .expect("mosquitto_sub received the sensor's message");
    assert_eq!(received, "home/garden/soil dry");
}

/// Retained messages the router holds in memory, stored as they change:
/// rows in the database once the writer caught up.
async fn stored_retained(db: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let connection = sea_orm::Database::connect(db).await.unwrap();
    let row = connection
        .query_one_raw(Statement::from_string(connection.get_database_backend(), "SELECT COUNT(*) AS n FROM retained_messages"))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

#[tokio::test]
async fn retained_messages_survive_a_sigkill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::helpers::fresh_database_url(&dir).await;
    let passwords = password_file(dir.path(), &[("sensor", "s3cret", false)]).await;
    let environment = [("MQCHAT_MOSQUITTO__PASSWORD_FILE", passwords.to_str().unwrap())];
    let mut server = crate::crash::start_with(&db, dir.path(), &environment).await;

    // Set, replace, set and clear, at QoS 1 and 2, one with MQTT 5 properties.
    let options = |port: u16, id: &str| {
        let mut options = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", port);
        options.set_credentials("sensor", "s3cret");
        options
    };
    let (sensor, mut events) = rumqttc::v5::AsyncClient::new(options(server.mqtt.port(), "sensor-1"), 64);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let qos1 = rumqttc::v5::mqttbytes::QoS::AtLeastOnce;
    let content_type = rumqttc::v5::mqttbytes::v5::PublishProperties { content_type: Some("text/plain".into()), ..Default::default() };
    sensor.publish("home/a", qos1, true, "old").await.unwrap();
    sensor.publish("home/a", qos1, true, "1").await.unwrap();
    sensor.publish_with_properties("home/b", rumqttc::v5::mqttbytes::QoS::ExactlyOnce, true, "2", content_type).await.unwrap();
    sensor.publish("home/c", qos1, true, "gone").await.unwrap();
    sensor.publish("home/c", qos1, true, "").await.unwrap();
    tokio::time::timeout(PATIENCE, async {
        while stored_retained(&db).await != 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("two retained messages stored");

    server.child.kill().await.unwrap();
    let server = crate::crash::start_with(&db, dir.path(), &environment).await;
    let (reader, mut events) = rumqttc::v5::AsyncClient::new(options(server.mqtt.port(), "reader"), 64);
    reader.subscribe("home/#", qos1).await.unwrap();
    let received = tokio::time::timeout(PATIENCE, async {
        let mut received = std::collections::BTreeMap::new();
        while received.len() < 2 {
            if let rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::Publish(publish)) = events.poll().await.unwrap() {
                assert!(publish.retain, "delivered as retained");
                let content_type = publish.properties.and_then(|p| p.content_type);
                received.insert(String::from_utf8(publish.topic.to_vec()).unwrap(), (String::from_utf8(publish.payload.to_vec()).unwrap(), content_type));
            }
        }
        received
    })
    .await
    .expect("the retained messages after the restart");
    assert_eq!(received["home/a"], ("1".to_owned(), None));
    assert_eq!(received["home/b"], ("2".to_owned(), Some("text/plain".to_owned())));
    assert!(!received.contains_key("home/c"), "a cleared topic stays cleared");
}

/// The stored persistent sessions: (client id, subscriptions JSON).
async fn stored_sessions(db: &str) -> Vec<(String, String)> {
    use sea_orm::{ConnectionTrait, Statement};
    let connection = sea_orm::Database::connect(db).await.unwrap();
    let sql = "SELECT client_id, subscriptions FROM mqtt_sessions ORDER BY client_id";
    let rows = connection.query_all_raw(Statement::from_string(connection.get_database_backend(), sql)).await.unwrap();
    rows.iter().map(|row| (row.try_get("", "client_id").unwrap(), row.try_get("", "subscriptions").unwrap())).collect()
}

#[tokio::test]
async fn a_persistent_session_survives_a_sigkill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::helpers::fresh_database_url(&dir).await;
    let passwords = password_file(dir.path(), &[("sensor", "s3cret", false), ("display", "d1splay", false)]).await;
    let environment = [("MQCHAT_MOSQUITTO__PASSWORD_FILE", passwords.to_str().unwrap())];
    let mut server = crate::crash::start_with(&db, dir.path(), &environment).await;
    let options = |port: u16, id: &str, clean: bool| {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_credentials("display", "d1splay");
        options.set_clean_session(clean);
        options
    };
    // A persistent session subscribes, then goes offline; a clean one leaves nothing behind.
    let mut display = TestClient::connect(options(server.mqtt.port(), "display-1", false)).await.unwrap();
    assert!(granted(&display.subscribe("home/#").await));
    drop(display);
    let mut passing = TestClient::connect(options(server.mqtt.port(), "passing", true)).await.unwrap();
    assert!(granted(&passing.subscribe("home/#").await));
    drop(passing);
    tokio::time::timeout(PATIENCE, async {
        while !stored_sessions(&db).await.iter().any(|(id, subscriptions)| id == "plain|display-1" && subscriptions.contains("home/#")) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the session and its subscription stored");
    assert_eq!(stored_sessions(&db).await.len(), 1, "only the persistent session is kept");

    server.child.kill().await.unwrap();
    let server = crate::crash::start_with(&db, dir.path(), &environment).await;
    // Published while the display is offline, after the restart: queued in its session.
    let mut sensor_options = MqttOptions::new("sensor-1", "127.0.0.1", server.mqtt.port());
    sensor_options.set_credentials("sensor", "s3cret");
    let mut sensor = TestClient::connect(sensor_options).await.unwrap();
    sensor.client.publish("home/door", QoS::AtLeastOnce, false, "open").await.unwrap();
    while !matches!(sensor.next_packet(PATIENCE).await, Some(rumqttc::Packet::PubAck(_))) {}

    let (_client, mut eventloop) = rumqttc::AsyncClient::new(options(server.mqtt.port(), "display-1", false), 10);
    let (present, missed) = tokio::time::timeout(PATIENCE, async {
        let mut present = None;
        loop {
            match eventloop.poll().await.unwrap() {
                rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack)) => present = Some(ack.session_present),
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish)) => return (present, publish),
                _ => {}
            }
        }
    })
    .await
    .expect("the message queued while offline");
    assert_eq!(present, Some(true), "CONNACK says the session is there");
    assert_eq!((missed.topic.as_str(), &missed.payload[..]), ("home/door", &b"open"[..]));
}
