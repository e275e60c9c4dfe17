//! `TestApp`: the real service on port 0 with a fresh database, and typed
//! helpers for real clients.
use std::time::Duration;

use mqchat::settings::{Overrides, Settings};
use mqchat::App;
use mqchat_bridge::projects::{self, Project};
use mqchat_broker::identity::{self, IdentityClaims};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Packet, Publish, QoS, SubscribeReasonCode};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

/// Upper bound on waiting for something that should happen (not a performance claim).
pub const PATIENCE: Duration = Duration::from_secs(10);
/// How long to watch for something that must not happen.
pub const QUIET: Duration = Duration::from_millis(700);

pub struct TestApp {
    pub app_mqtt: std::net::SocketAddr,
    pub app_ws: std::net::SocketAddr,
    pub app_http: std::net::SocketAddr,
    /// rumqttd's router and the platform's publisher; `None` when the app
    /// runs on an external broker.
    embedded: Option<(mqchat_broker::embedded::RouterHandle, mqchat_broker::PlatformPublisher)>,
    pub db: sea_orm::DatabaseConnection,
    pub project: Project,
    pub http: reqwest::Client,
    /// The external broker the app runs on, stopped with the app.
    _mosquitto: Option<crate::mosquitto::Mosquitto>,
    /// Stops the app when dropped (`None`: an app this one only attaches to).
    _shutdown: Option<oneshot::Sender<()>>,
    _dir: Option<tempfile::TempDir>,
}

/// A fresh database: SQLite in a temporary directory, or a new PostgreSQL
/// database when `TEST_DATABASE_URL` names a server.
pub async fn fresh_database_url(dir: &tempfile::TempDir) -> String {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin_url) if admin_url.starts_with("postgres") => {
            use sea_orm::ConnectionTrait;
            let name = format!("mqchat_test_{}", uuid::Uuid::new_v4().simple());
            let admin = sea_orm::Database::connect(&admin_url).await.expect("connect to TEST_DATABASE_URL");
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
            let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base).to_owned();
            format!("{base}/{name}")
        }
        _ => format!("sqlite://{}?mode=rwc", dir.path().join("mqchat.db").display()),
    }
}

pub fn test_settings_with(tweak: impl FnOnce(&mut Settings)) -> Settings {
    let any_port = Some("127.0.0.1:0".parse().expect("address"));
    let overrides = Overrides { mqtt_listen: any_port, ws_listen: any_port, http_listen: any_port, ..Overrides::default() };
    let mut settings = Settings::load(None, Default::default(), &overrides).expect("settings");
    tweak(&mut settings);
    settings
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
        Self::spawn_in(tempfile::tempdir().expect("temp dir"), None, tweak).await
    }

    /// The app in external mode, on a real Mosquitto with mqchat's plugin:
    /// clients connect to Mosquitto (`app_mqtt`, `app_ws`).
    pub async fn on_mosquitto() -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let http_port = crate::mosquitto::free_port();
        let mosquitto = crate::mosquitto::Mosquitto::start(&dir, http_port).await;
        let broker_url = mosquitto.url();
        Self::spawn_in(dir, Some(mosquitto), |settings| {
            settings.http.listen = ([127, 0, 0, 1], http_port).into();
            settings.broker.url = Some(broker_url);
            settings.broker.platform_secret = Some(crate::mosquitto::PLATFORM_SECRET.into());
        })
        .await
    }

    async fn spawn_in(dir: tempfile::TempDir, mosquitto: Option<crate::mosquitto::Mosquitto>, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        init_tracing();
        let mut settings = test_settings_with(tweak);
        settings.database.url = fresh_database_url(&dir).await;
        settings.attachments.dir = dir.path().join("uploads");
        let app = App::build(&settings).await.expect("app builds");
        let project = projects::create(&app.db, "Test project").await.expect("project");
        let (shutdown, stop) = oneshot::channel::<()>();
        let (app_mqtt, app_ws) = match (&app.embedded, &mosquitto) {
            (Some(embedded), _) => (embedded.mqtt_addr, embedded.websocket_addr),
            (None, Some(mosquitto)) => (mosquitto.mqtt_addr(), mosquitto.websocket_addr()),
            (None, None) => panic!("an external broker needs a Mosquitto"),
        };
        let test_app = TestApp {
            app_mqtt,
            app_ws,
            app_http: app.http_addr,
            embedded: app.embedded.as_ref().map(|embedded| (embedded.router.clone(), embedded.publisher.clone())),
            db: app.db.clone(),
            project,
            http: reqwest::Client::new(),
            _mosquitto: mosquitto,
            _shutdown: Some(shutdown),
            _dir: Some(dir),
        };
        tokio::spawn(app.run(async move {
            let _ = stop.await;
        }));
        test_app
    }

    /// Helpers for an app running elsewhere (another task or process),
    /// reached at these addresses.
    pub fn attach(project: Project, db: sea_orm::DatabaseConnection, app_mqtt: std::net::SocketAddr, app_ws: std::net::SocketAddr, http_port: u16) -> TestApp {
        TestApp {
            app_mqtt,
            app_ws,
            app_http: ([127, 0, 0, 1], http_port).into(),
            embedded: None,
            db,
            project,
            http: reqwest::Client::new(),
            _mosquitto: None,
            _shutdown: None,
            _dir: None,
        }
    }

    pub fn project_id(&self) -> &str {
        &self.project.project_id
    }

    pub fn token(&self, sub: &str) -> String {
        let now = identity::now_unix();
        self.token_with(IdentityClaims { sub: sub.into(), name: Some(format!("{sub} name")), email: None, avatar_url: None, iat: now, exp: now + 3600, iss: None })
    }

    pub fn token_with(&self, claims: IdentityClaims) -> String {
        identity::sign(&self.project.secret_key, &claims).expect("sign")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.app_http)
    }

    /// Calls the server API with the project's secret key.
    pub async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(&self.project.secret_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("HTTP request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn create_conversation(&self, kind: &str, members: &[&str]) -> String {
        let (status, body) = self
            .api(reqwest::Method::POST, "/api/v1/conversations", Some(json!({"type": kind, "member_ids": members})))
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("conversation id").to_owned()
    }

    /// `POST /api/v1/sdk/init` with `token`: the status and the JSON body.
    pub async fn sdk_init(&self, token: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/api/v1/sdk/init"))
            .header("X-Public-Key", &self.project.public_key)
            .bearer_auth(token)
            .send()
            .await
            .expect("HTTP request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Lets the project's end users create these conversation types over
    /// MQTT (by default only direct ones).
    pub async fn allow_user_conversations(&self, kinds: &[&str]) {
        let body = json!({"user_conversation_types": kinds});
        let (status, project) = self.api(reqwest::Method::PATCH, "/api/v1/project", Some(body)).await;
        assert_eq!(status, 200, "{project}");
    }

    pub fn conversation_topic(&self, conversation: &str) -> String {
        format!("chat/{}/conv/{conversation}", self.project_id())
    }

    pub fn options(&self, client_id: &str, token: &str) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, self.app_mqtt.ip().to_string(), self.app_mqtt.port());
        options.set_credentials(self.project.public_key.clone(), token);
        options.set_keep_alive(Duration::from_secs(30));
        // Room for oversize-token tests; the gateway enforces its own limit.
        options.set_max_packet_size(1 << 20, 1 << 20);
        options
    }

    /// Connects `sub` over TCP with a fresh identity token.
    pub async fn client(&self, sub: &str) -> TestClient {
        let client_id = format!("{sub}-{}", uuid::Uuid::new_v4().simple());
        TestClient::connect(self.options(&client_id, &self.token(sub))).await.expect("client connects")
    }

    /// rumqttd's router (embedded mode only).
    pub fn router(&self) -> &mqchat_broker::embedded::RouterHandle {
        &self.embedded.as_ref().expect("the embedded broker").0
    }

    /// The platform's in-process publisher (embedded mode only).
    pub fn publisher(&self) -> &mqchat_broker::PlatformPublisher {
        &self.embedded.as_ref().expect("the embedded broker").1
    }

    /// A link straight into rumqttd's router, seeing every message the
    /// gateway let through (diagnostics only: clients never get one).
    pub async fn observer(&self) -> Observer {
        Observer { feed: self.router().subscribe("observer", "#").await.expect("observer link") }
    }
}

/// A message the observer saw in the router.
#[derive(Debug)]
pub struct Observed {
    pub topic: String,
    pub payload: bytes::Bytes,
}

pub struct Observer {
    feed: mqchat_broker::embedded::TopicFeed,
}

impl Observer {
    /// The next message routed within `within`.
    pub async fn next_publish_within(&mut self, within: Duration) -> Option<Observed> {
        let message = tokio::time::timeout(within, self.feed.next()).await.ok().flatten()?;
        Some(Observed { topic: message.topic, payload: message.payload })
    }

    /// Waits for a message on `topic`, skipping others.
    pub async fn publish_on(&mut self, topic: &str) -> Observed {
        loop {
            let observed = self.next_publish_within(PATIENCE).await.expect("a message in time");
            if observed.topic == topic {
                return observed;
            }
        }
    }
}

fn init_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_env_filter("info,mqchat=debug,mqchat_broker=debug").try_init();
    }
}

/// A rumqttc client whose event loop runs in the background.
pub struct TestClient {
    pub client: AsyncClient,
    events: mpsc::UnboundedReceiver<Packet>,
    task: tokio::task::JoinHandle<Option<rumqttc::ConnectionError>>,
}

impl Drop for TestClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestClient {
    /// Connects and waits for CONNACK; a refusal is returned as the error.
    pub async fn connect(options: MqttOptions) -> Result<TestClient, rumqttc::ConnectionError> {
        let (client, eventloop) = AsyncClient::new(options, 100);
        Self::start(client, eventloop).await
    }

    pub async fn start(client: AsyncClient, mut eventloop: EventLoop) -> Result<TestClient, rumqttc::ConnectionError> {
        loop {
            match tokio::time::timeout(PATIENCE, eventloop.poll()).await.expect("CONNACK in time") {
                Ok(Event::Incoming(Packet::ConnAck(ack))) if ack.code == ConnectReturnCode::Success => break,
                Ok(_) => {}
                Err(error) => return Err(error),
            }
        }
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(packet)) => {
                        if tx.send(packet).is_err() {
                            return None;
                        }
                    }
                    Ok(Event::Outgoing(_)) => {}
                    Err(error) => return Some(error),
                }
            }
        });
        Ok(TestClient { client, events, task })
    }

    /// Subscribes at QoS 1 and returns the SUBACK codes.
    pub async fn subscribe(&mut self, filter: &str) -> Vec<SubscribeReasonCode> {
        self.client.subscribe(filter, QoS::AtLeastOnce).await.expect("queue SUBSCRIBE");
        self.next_suback().await
    }

    pub async fn next_suback(&mut self) -> Vec<SubscribeReasonCode> {
        loop {
            match self.next_packet(PATIENCE).await {
                Some(Packet::SubAck(ack)) => return ack.return_codes,
                Some(_) => {}
                None => panic!("no SUBACK"),
            }
        }
    }

    pub async fn next_packet(&mut self, within: Duration) -> Option<Packet> {
        tokio::time::timeout(within, self.events.recv()).await.ok().flatten()
    }

    /// The next PUBLISH received within `within`, skipping other packets.
    pub async fn next_publish_within(&mut self, within: Duration) -> Option<Publish> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_packet(left).await? {
                Packet::Publish(publish) => return Some(publish),
                _ => continue,
            }
        }
    }

    pub async fn next_publish(&mut self) -> Publish {
        self.next_publish_within(PATIENCE).await.expect("a PUBLISH in time")
    }

    /// Waits for `payload` on `topic`, skipping everything else.
    pub async fn payload_on(&mut self, topic: &str, payload: &[u8]) -> Publish {
        loop {
            let publish = self.publish_on(topic).await;
            if publish.payload == payload {
                return publish;
            }
        }
    }

    /// Waits for a PUBLISH on `topic`, skipping others.
    pub async fn publish_on(&mut self, topic: &str) -> Publish {
        loop {
            let publish = self.next_publish().await;
            if publish.topic == topic {
                return publish;
            }
        }
    }

    /// Asserts no PUBLISH arrives during `QUIET`.
    pub async fn assert_no_publish(&mut self) {
        if let Some(publish) = self.next_publish_within(QUIET).await {
            panic!("unexpected PUBLISH on {}: {:?}", publish.topic, publish.payload);
        }
    }

    /// Waits until the server ends the connection; returns the error seen.
    pub async fn closed(self) -> rumqttc::ConnectionError {
        let mut this = self;
        let task = &mut this.task;
        match tokio::time::timeout(PATIENCE, task).await {
            Ok(Ok(Some(error))) => error,
            other => panic!("connection was not closed: {other:?}"),
        }
    }
}

pub fn granted(codes: &[SubscribeReasonCode]) -> bool {
    codes.iter().all(|code| matches!(code, SubscribeReasonCode::Success(_)))
}

pub fn payload_json(publish: &Publish) -> Value {
    serde_json::from_slice(&publish.payload).expect("JSON payload")
}
