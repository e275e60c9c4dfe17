//! Building (`App::build`: database, rumqttd, bound sockets) and running
//! (`App::run`: gateway + HTTP until a shutdown signal) the whole service.
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use mqchat_bridge::{database, DatabaseConnection};
use mqchat_bridge::attachments::FileStore;
use mqchat_bridge::cache::EngineCache;
use mqchat_bridge::commands::{Engine, Outlet};
use mqchat_bridge::presence::PresenceTracker;
use mqchat_bridge::webhooks::Outbox;
use mqchat_delivery::{Dispatcher, TargetPolicy};
use mqchat_broker::embedded::{RouterHandle, TopicFeed};
use mqchat_broker::plain::PlainRealm;
use mqchat_broker::persistence::PlainState;
use mqchat_broker::{EmbeddedBroker, Gateway, GatewayServices, Listeners, PlatformPublisher, PresenceChange, Registry};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::authorizer::ChatAuthorizer;
use crate::chat::{self, MqttOutlet};
use crate::http::{self, ApiState};
use crate::plain_state::{self, DatabaseState};
use crate::settings::{MosquittoSettings, Settings};
use crate::tls;

/// Time given to in-flight work after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

pub struct App {
    pub mqtt_addr: SocketAddr,
    pub websocket_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// rumqttd's router: links into it see what the gateway let through
    /// (tests and diagnostics; clients never get one).
    pub router: RouterHandle,
    pub db: DatabaseConnection,
    pub registry: Arc<Registry>,
    /// The platform's way to publish on any topic (conversation events).
    pub publisher: PlatformPublisher,
    gateway: Gateway,
    /// Commands from the outboxes, and the engine that runs them.
    commands: TopicFeed,
    engine: Arc<Engine>,
    presence: Arc<PresenceTracker>,
    presence_changes: mpsc::UnboundedReceiver<PresenceChange>,
    /// Delivers webhooks and callbacks from the outbox.
    dispatcher: Dispatcher,
    http_listener: TcpListener,
    api: Arc<ApiState>,
    shutdown: watch::Sender<bool>,
}

pub async fn connect_and_migrate(url: &str) -> anyhow::Result<DatabaseConnection> {
    let db = database::connect(url).await.with_context(|| format!("connecting to the database {}", redact(url)))?;
    Migrator::up(&db, None).await.context("running migrations")?;
    Ok(db)
}

fn redact(url: &str) -> String {
    url.split_once('@').map_or_else(|| url.to_owned(), |(_, host)| format!("…@{host}"))
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("binding the {what} listener on {addr}"))
}

/// The plain-MQTT namespace from Mosquitto's files; says in the log what
/// it let in and what of a `mosquitto.conf` it could not use.
fn plain_realm(settings: &MosquittoSettings) -> anyhow::Result<PlainRealm> {
    if !settings.unknown_directives.is_empty() {
        tracing::warn!(
            directives = ?settings.unknown_directives,
            "mosquitto.conf: these directives are not used by mqchat"
        );
    }
    let passwords = settings.password_file.as_deref().map(mqchat_mosquitto_files::PasswordFile::load).transpose()?;
    let acl = settings.acl_file.as_deref().map(mqchat_mosquitto_files::AclFile::load).transpose()?;
    let realm = PlainRealm { passwords, acl, allow_anonymous: settings.allow_anonymous };
    if realm.is_open() {
        tracing::info!(
            users = realm.passwords.as_ref().map_or(0, |passwords| passwords.len()),
            acl_rules = realm.acl.as_ref().map(|acl| acl.rules()),
            allow_anonymous = realm.allow_anonymous,
            "plain-MQTT namespace open"
        );
    }
    Ok(realm)
}

/// File descriptors one client connection holds: its socket (the link into
/// rumqttd is in-process).
const FDS_PER_CONNECTION: u64 = 1;

/// Raises the open-files limit as far as allowed and warns when it cannot
/// hold `max_connections` clients.
fn raise_open_files_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit / FDS_PER_CONNECTION < max_connections as u64 => tracing::warn!(
            open_files_limit = limit,
            max_connections,
            "the open-files limit caps clients at about {}; raise `ulimit -n` (hard) to reach gateway.max_connections",
            limit / FDS_PER_CONNECTION
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "could not read the open-files limit"),
    }
}

impl App {
    pub async fn build(settings: &Settings) -> anyhow::Result<App> {
        raise_open_files_limit(settings.gateway.max_connections);
        let db = connect_and_migrate(&settings.database.url).await?;
        let tls = match (&settings.tls.cert, &settings.tls.key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };
        let embedded = EmbeddedBroker::start(&settings.router, settings.gateway.max_connections).await?;
        let mqtt = bind(settings.mqtt.listen, "MQTT").await?;
        let websocket = bind(settings.websocket.listen, "WebSocket").await?;
        let http_listener = bind(settings.http.listen, "HTTP").await?;
        let (mqtt_addr, websocket_addr, http_addr) =
            (mqtt.local_addr()?, websocket.local_addr()?, http_listener.local_addr()?);

        let EmbeddedBroker { router, publisher, commands } = embedded;
        let registry = Arc::new(Registry::default());
        let outlet = Arc::new(MqttOutlet { publisher: publisher.clone(), registry: Arc::clone(&registry) });
        // Before any client can connect: the plain namespace's retained
        // messages and persistent sessions are back, and what a crash left
        // online goes offline.
        let restored = plain_state::restore(&db, &publisher, &router).await?;
        if restored.retained + restored.sessions > 0 {
            tracing::info!(retained = restored.retained, sessions = restored.sessions, "plain-MQTT state restored");
        }
        let outbox = Arc::new(Outbox::load(&db).await.context("loading webhook endpoints")?);
        let dispatcher = Dispatcher::new(db.clone(), Arc::clone(&outbox), settings.webhooks.clone())
            .context("starting the webhook dispatcher")?;
        let presence = Arc::new(
            PresenceTracker::start(db.clone(), Arc::clone(&outlet) as Arc<dyn Outlet>, Arc::clone(&outbox)).await?,
        );
        let presence_changes = registry.presence_changes().context("presence changes already taken")?;
        let cache = Arc::new(EngineCache::default());
        let http_url = settings.http.public_url.clone().unwrap_or_else(|| format!("http://{http_addr}"));
        let files = FileStore::open(settings.attachments.clone(), &http_url)
            .with_context(|| format!("opening the attachments directory {}", settings.attachments.dir.display()))?;
        let engine =
            Arc::new(Engine::start(db.clone(), settings.chat, outlet, Arc::clone(&cache), Arc::new(files), outbox));
        let authorizer = Arc::new(ChatAuthorizer::new(db.clone(), Arc::clone(&cache)));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let secure = tls.is_some();
        let services = GatewayServices {
            authorizer: Arc::clone(&authorizer) as Arc<dyn mqchat_broker::Authorizer>,
            registry: Arc::clone(&registry),
            router: router.clone(),
            publisher: publisher.clone(),
            plain: Arc::new(plain_realm(&settings.mosquitto)?),
            state: Some(DatabaseState::start(db.clone()) as Arc<dyn PlainState>),
        };
        let gateway = Gateway::new(settings.gateway.clone(), services, Listeners { mqtt, websocket: Some(websocket), tls }, shutdown_rx);
        let api = Arc::new(ApiState {
            db: db.clone(),
            authorizer,
            engine: Arc::clone(&engine),
            mqtt_url: settings
                .mqtt
                .public_url
                .clone()
                .unwrap_or_else(|| format!("{}://{mqtt_addr}", if secure { "mqtts" } else { "mqtt" })),
            websocket_url: settings
                .websocket
                .public_url
                .clone()
                .unwrap_or_else(|| format!("{}://{websocket_addr}/mqtt", if secure { "wss" } else { "ws" })),
            session_ttl: settings.session.ttl,
            webhook_targets: TargetPolicy::from_settings(&settings.webhooks),
            webhook_sender: dispatcher.sender(),
            publisher: publisher.clone(),
            origins: Default::default(),
        });
        tracing::info!(%mqtt_addr, %websocket_addr, %http_addr, tls = secure, "mqchat listening");
        Ok(App {
            mqtt_addr,
            websocket_addr,
            http_addr,
            router,
            db,
            registry,
            publisher,
            gateway,
            commands,
            engine,
            presence,
            presence_changes,
            dispatcher,
            http_listener,
            api,
            shutdown,
        })
    }

    /// Serves until `signal` resolves, then stops accepting, ends sessions
    /// and lets in-flight HTTP requests finish (bounded by `DRAIN_TIMEOUT`).
    pub async fn run(self, signal: impl Future<Output = ()>) {
        let App { gateway, commands, engine, presence, presence_changes, dispatcher, http_listener, api, shutdown, .. } = self;
        let mut http_stop = shutdown.subscribe();
        let gateway = tokio::spawn(gateway.run());
        tokio::spawn(chat::run(commands, engine));
        tokio::spawn(crate::presence::run(presence_changes, presence));
        let dispatcher = tokio::spawn(dispatcher.run(shutdown.subscribe()));
        let server = warp::serve(http::routes(api))
            .incoming(http_listener)
            .graceful(async move {
                let _ = http_stop.wait_for(|stop| *stop).await;
            })
            .run();
        let http = tokio::spawn(server);
        signal.await;
        tracing::info!("shutting down");
        let _ = shutdown.send(true);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            let _ = gateway.await;
            let _ = http.await;
            let _ = dispatcher.await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("shutdown drain timed out");
        }
    }
}
