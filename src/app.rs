//! Building (`App::build`: database, the broker side — rumqttd and the
//! gateway's sockets, or a connection to an external broker — and the HTTP
//! socket) and running (`App::run`: until a shutdown signal) the service.
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
use mqchat_broker::acl;
use mqchat_broker::embedded::{RouterHandle, TopicFeed};
use mqchat_broker::plain::PlainRealm;
use mqchat_broker::persistence::PlainState;
use mqchat_broker::{EmbeddedBroker, Gateway, GatewayServices, Listeners, PlatformPublisher, PresenceChange, Registry};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::authorizer::ChatAuthorizer;
use crate::chat::{self, Command, MqttOutlet};
use crate::external::{self, BrokerLink, ExternalBroker, RemoteOutlet};
use crate::presence::StatusMessage;
use crate::http::{self, ApiState, PlatformAccess};
use crate::plain_state::{self, DatabaseState};
use crate::settings::{BrokerMode, MosquittoSettings, Settings};
use crate::tls;

/// Time given to in-flight work after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

pub struct App {
    pub http_addr: SocketAddr,
    pub db: DatabaseConnection,
    /// The embedded broker's parts; `None` with an external broker.
    pub embedded: Option<EmbeddedParts>,
    front: Front,
    engine: Arc<Engine>,
    presence: Arc<PresenceTracker>,
    /// Delivers webhooks and callbacks from the outbox.
    dispatcher: Dispatcher,
    http_listener: TcpListener,
    api: Arc<ApiState>,
    shutdown: watch::Sender<bool>,
    /// Where other instances' change notices are heard (PostgreSQL).
    database_url: String,
}

/// What clients reach in embedded mode.
pub struct EmbeddedParts {
    pub mqtt_addr: SocketAddr,
    pub websocket_addr: SocketAddr,
    /// Whether both listeners speak TLS.
    pub tls: bool,
    /// rumqttd's router: links into it see what the gateway let through
    /// (tests and diagnostics; clients never get one).
    pub router: RouterHandle,
    pub registry: Arc<Registry>,
    /// The platform's way to publish on any topic (conversation events).
    pub publisher: PlatformPublisher,
}

/// Where commands and presence come from.
enum Front {
    /// The gateway, with rumqttd's outbox subscription and the registry's
    /// connection events.
    Gateway {
        gateway: Gateway,
        commands: TopicFeed,
        presence_changes: mpsc::UnboundedReceiver<PresenceChange>,
        statuses: TopicFeed,
    },
    /// An external broker: commands and status messages over MQTT.
    External(ExternalFeeds),
}

/// The connection to an external broker, with what it delivers.
struct ExternalFeeds {
    commands: mpsc::Receiver<Command>,
    statuses: mpsc::UnboundedReceiver<StatusMessage>,
    link: BrokerLink,
}

/// Whether the broker answers (readiness).
#[derive(Clone)]
pub enum BrokerProbe {
    Embedded(PlatformPublisher),
    External(BrokerLink),
}

impl BrokerProbe {
    pub fn probe(&self) -> Result<(), String> {
        match self {
            BrokerProbe::Embedded(publisher) => publisher.probe(),
            BrokerProbe::External(link) => link.probe(),
        }
    }
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

/// The broker side of the service, before the engine is wired to it.
struct BrokerSide {
    outlet: Arc<dyn Outlet>,
    /// `Some` in external mode: how mqchat tells the broker's plugin what changed.
    remote: Option<Arc<RemoteOutlet>>,
    /// This instance's name among those sharing the database (its broker
    /// client id; the one embedded instance is `embedded`).
    instance: String,
    probe: BrokerProbe,
    mqtt_url: String,
    websocket_url: String,
    mode: ModeParts,
}

/// What only one broker mode has.
enum ModeParts {
    /// The embedded broker's pieces the gateway is built from, with the
    /// commands and status messages rumqttd routes to the platform.
    Embedded { parts: Box<EmbeddedParts>, listeners: Listeners, commands: TopicFeed, statuses: TopicFeed },
    External(ExternalFeeds),
}

impl App {
    pub async fn build(settings: &Settings) -> anyhow::Result<App> {
        let db = connect_and_migrate(&settings.database.url).await?;
        let http_listener = bind(settings.http.listen, "HTTP").await?;
        let http_addr = http_listener.local_addr()?;
        let side = match settings.broker.mode() {
            BrokerMode::Embedded => embedded_side(settings, &db).await?,
            BrokerMode::External => external_side(settings, http_addr).await?,
        };
        let outbox = Arc::new(Outbox::load(&db).await.context("loading webhook endpoints")?);
        let dispatcher = Dispatcher::new(db.clone(), Arc::clone(&outbox), settings.webhooks.clone(), side.instance.clone())
            .context("starting the webhook dispatcher")?;
        // With an external broker, connections outlive this process (and
        // other instances share them): nothing left online is stale.
        let reconcile = matches!(side.mode, ModeParts::Embedded { .. });
        let presence = Arc::new(PresenceTracker::start(db.clone(), Arc::clone(&side.outlet), Arc::clone(&outbox), reconcile).await?);
        let cache = Arc::new(EngineCache::default());
        let http_url = settings.http.public_url.clone().unwrap_or_else(|| format!("http://{http_addr}"));
        let files = FileStore::open(settings.attachments.clone(), &http_url)
            .with_context(|| format!("opening the attachments directory {}", settings.attachments.dir.display()))?;
        let engine = Arc::new(Engine::start(db.clone(), settings.chat, Arc::clone(&side.outlet), Arc::clone(&cache), Arc::new(files), outbox));
        crate::invalidation::announce_conversations(db.clone(), &cache);
        let authorizer = Arc::new(ChatAuthorizer::new(db.clone(), Arc::clone(&cache)));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let api = Arc::new(ApiState {
            db: db.clone(),
            authorizer: Arc::clone(&authorizer),
            engine: Arc::clone(&engine),
            mqtt_url: settings.mqtt.public_url.clone().unwrap_or(side.mqtt_url),
            websocket_url: settings.websocket.public_url.clone().unwrap_or(side.websocket_url),
            session_ttl: settings.session.ttl,
            webhook_targets: TargetPolicy::from_settings(&settings.webhooks),
            webhook_sender: dispatcher.sender(),
            broker: side.probe,
            platform: settings.broker.platform_secret.clone().map(|secret| PlatformAccess { secret, plugin: side.remote.clone() }),
            origins: Default::default(),
        });
        let (embedded, front) = match side.mode {
            ModeParts::Embedded { parts, listeners, commands, statuses } => {
                let presence_changes = parts.registry.presence_changes().context("presence changes already taken")?;
                let services = GatewayServices {
                    authorizer: authorizer as Arc<dyn mqchat_broker::Authorizer>,
                    registry: Arc::clone(&parts.registry),
                    router: parts.router.clone(),
                    publisher: parts.publisher.clone(),
                    plain: Arc::new(plain_realm(&settings.mosquitto)?),
                    state: Some(DatabaseState::start(db.clone()) as Arc<dyn PlainState>),
                };
                let gateway = Gateway::new(settings.gateway.clone(), services, listeners, shutdown_rx);
                (Some(*parts), Front::Gateway { gateway, commands, presence_changes, statuses })
            }
            ModeParts::External(feeds) => (None, Front::External(feeds)),
        };
        match &embedded {
            Some(parts) => tracing::info!(mqtt_addr = %parts.mqtt_addr, websocket_addr = %parts.websocket_addr, %http_addr, tls = parts.tls, "mqchat listening"),
            None => tracing::info!(%http_addr, broker = settings.broker.url.as_deref().unwrap_or_default(), "mqchat listening"),
        }
        Ok(App { http_addr, db, embedded, front, engine, presence, dispatcher, http_listener, api, shutdown, database_url: settings.database.url.clone() })
    }

    /// Serves until `signal` resolves, then stops accepting, ends sessions
    /// and lets in-flight HTTP requests finish (bounded by `DRAIN_TIMEOUT`).
    pub async fn run(self, signal: impl Future<Output = ()>) {
        let App { front, engine, presence, dispatcher, http_listener, api, shutdown, database_url, .. } = self;
        let listener = tokio::spawn(crate::invalidation::listen(database_url, Arc::clone(&api)));
        let mut http_stop = shutdown.subscribe();
        let mut external = None;
        let gateway = match front {
            Front::Gateway { gateway, commands, presence_changes, statuses } => {
                tokio::spawn(chat::run(commands, engine));
                tokio::spawn(crate::presence::run(Some(presence_changes), crate::presence::statuses_of(statuses), presence));
                Some(tokio::spawn(gateway.run()))
            }
            Front::External(ExternalFeeds { commands, statuses, link }) => {
                external = Some(link);
                tokio::spawn(chat::run(commands, engine));
                tokio::spawn(crate::presence::run(None, statuses, presence));
                None
            }
        };
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
            if let Some(gateway) = gateway {
                let _ = gateway.await;
            }
            let _ = http.await;
            let _ = dispatcher.await;
            if let Some(link) = external {
                link.close().await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("shutdown drain timed out");
        }
        listener.abort();
    }
}

/// rumqttd, the gateway's listeners and the plain namespace's restored state.
async fn embedded_side(settings: &Settings, db: &DatabaseConnection) -> anyhow::Result<BrokerSide> {
    raise_open_files_limit(settings.gateway.max_connections);
    let tls = match (&settings.tls.cert, &settings.tls.key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let EmbeddedBroker { router, publisher, commands } =
        EmbeddedBroker::start(&settings.router, settings.gateway.max_connections).await?;
    let mqtt = bind(settings.mqtt.listen, "MQTT").await?;
    let websocket = bind(settings.websocket.listen, "WebSocket").await?;
    let (mqtt_addr, websocket_addr) = (mqtt.local_addr()?, websocket.local_addr()?);
    let statuses = router.subscribe("platform-status", acl::STATUS_FILTER).await?;
    let registry = Arc::new(Registry::default());
    // Before any client can connect: the plain namespace's retained
    // messages and persistent sessions are back.
    let restored = plain_state::restore(db, &publisher, &router).await?;
    if restored.retained + restored.sessions > 0 {
        tracing::info!(retained = restored.retained, sessions = restored.sessions, "plain-MQTT state restored");
    }
    let secure = tls.is_some();
    Ok(BrokerSide {
        outlet: Arc::new(MqttOutlet { publisher: publisher.clone(), registry: Arc::clone(&registry) }),
        remote: None,
        instance: "embedded".into(),
        probe: BrokerProbe::Embedded(publisher.clone()),
        mqtt_url: format!("{}://{mqtt_addr}", if secure { "mqtts" } else { "mqtt" }),
        websocket_url: format!("{}://{websocket_addr}/mqtt", if secure { "wss" } else { "ws" }),
        mode: ModeParts::Embedded {
            parts: Box::new(EmbeddedParts { mqtt_addr, websocket_addr, tls: secure, router, registry, publisher }),
            listeners: Listeners { mqtt, websocket: Some(websocket), tls },
            commands,
            statuses,
        },
    })
}

/// One MQTT connection to the operator's broker; no listener of mqchat's own.
async fn external_side(settings: &Settings, http_addr: SocketAddr) -> anyhow::Result<BrokerSide> {
    tracing::info!(
        broker = settings.broker.url.as_deref().unwrap_or_default(),
        "external broker: mqchat opens no MQTT or WebSocket listener; the [mqtt], [websocket], [tls], [gateway] and [mosquitto] settings are ignored"
    );
    let client_id = settings.broker.client_id.clone().unwrap_or_else(|| external::default_client_id(http_addr.port()));
    let ExternalBroker { outlet, commands, statuses, link } = ExternalBroker::connect(&settings.broker, client_id.clone()).await?;
    let url = settings.broker.url.clone().unwrap_or_default();
    Ok(BrokerSide {
        outlet: Arc::clone(&outlet) as Arc<dyn Outlet>,
        remote: Some(outlet),
        instance: client_id,
        probe: BrokerProbe::External(link.clone()),
        websocket_url: url.replacen("mqtt://", "ws://", 1),
        mqtt_url: url,
        mode: ModeParts::External(ExternalFeeds { commands, statuses, link }),
    })
}
