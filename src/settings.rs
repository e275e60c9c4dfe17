//! `Settings`: every knob of `mqchat serve`, layered as
//! defaults ← TOML file ← `MQCHAT_<SECTION>__<KEY>` environment ← flags.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use mqchat_broker::{GatewaySettings, RouterSettings};
use mqchat_mosquitto_files::MosquittoConf;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub mqtt: MqttSettings,
    pub websocket: WebSocketSettings,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub tls: TlsSettings,
    pub gateway: GatewaySettings,
    pub router: RouterSettings,
    pub session: SessionSettings,
    pub chat: ChatSettings,
    pub attachments: AttachmentSettings,
    pub webhooks: WebhookSettings,
    pub mosquitto: MosquittoSettings,
    pub broker: BrokerSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSettings {
    /// MQTT over TCP (TLS when `[tls]` is set).
    pub listen: SocketAddr,
    /// URL handed to clients by `sdk/init`; derived from `listen` when unset.
    pub public_url: Option<String>,
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings { listen: SocketAddr::from(([127, 0, 0, 1], 1883)), public_url: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketSettings {
    /// MQTT over WebSocket, any path, subprotocol `mqtt` (wss when `[tls]` is set).
    pub listen: SocketAddr,
    pub public_url: Option<String>,
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        WebSocketSettings { listen: SocketAddr::from(([127, 0, 0, 1], 8083)), public_url: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// The HTTP API (server API, `sdk/init`, uploads, files).
    pub listen: SocketAddr,
    /// Base of the URLs handed out (attachment links); derived from `listen` when unset.
    pub public_url: Option<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings { listen: SocketAddr::from(([127, 0, 0, 1], 8080)), public_url: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://FILE?mode=rwc` or `postgres://user:pass@host/db`.
    pub url: String,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings { url: "sqlite://mqchat.db?mode=rwc".into() }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain; with `key`, turns the MQTT and WebSocket listeners into TLS.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// Longest session token the server issues: each project chooses its
    /// lifetime (1 h – 7 d, default 24 h) and this caps it for the whole
    /// server (an operator's shorter limit, or a test's).
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings { ttl: Duration::from_secs(7 * 24 * 3600) }
    }
}

/// The chat engine's group commit.
pub type ChatSettings = mqchat_bridge::messages::CommitterSettings;
/// Uploaded files: directory, limits, URL lifetime and key.
pub type AttachmentSettings = mqchat_bridge::attachments::AttachmentSettings;

pub type WebhookSettings = mqchat_delivery::WebhookSettings;

/// The plain-MQTT namespace for devices, configured the way Mosquitto
/// users do: its own keys, or a `mosquitto.conf` (`conf`) whose directives
/// apply over them and over `[gateway]` (docs/OPERATIONS.md).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MosquittoSettings {
    /// A Mosquitto configuration file to read (`--mosquitto-conf`).
    pub conf: Option<PathBuf>,
    /// Users and hashes as `mosquitto_passwd` writes them.
    pub password_file: Option<PathBuf>,
    /// Mosquitto's ACL file; without one, plain clients may use every
    /// topic outside `chat/…` and `$…`.
    pub acl_file: Option<PathBuf>,
    /// Plain clients without a username are let in.
    pub allow_anonymous: bool,
    /// Directives of `conf` mqchat does not understand, named in one
    /// warning at start.
    #[serde(skip)]
    pub unknown_directives: Vec<String>,
}

/// Which broker carries the clients' MQTT traffic (docs/SCALING.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerMode {
    /// mqchat's own gateway over rumqttd, in this process.
    #[default]
    Embedded,
    /// An existing broker (Mosquitto with mqchat's plugin, EMQX) at `url`;
    /// mqchat opens no MQTT listener and reaches it as one client.
    External,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerSettings {
    /// `embedded` unless `url` is set (`--broker`), which means `external`.
    pub mode: Option<BrokerMode>,
    /// `mqtt://host:port` of the external broker.
    pub url: Option<String>,
    /// Shared with the broker's plugin: the password of mqchat's own
    /// connection (username `mqchat-platform`) and the bearer token of the
    /// internal API the plugin and EMQX call. Also enables that API in
    /// embedded mode (EMQX in front, see docs/SCALING.md).
    pub platform_secret: Option<String>,
    /// Client id of this instance's persistent session at the broker;
    /// unique per instance. Default `mqchat-{hostname}-{http port}`.
    pub client_id: Option<String>,
}

/// Shortest platform secret accepted: it guards the internal API.
const MIN_PLATFORM_SECRET: usize = 16;

impl BrokerSettings {
    pub fn mode(&self) -> BrokerMode {
        self.mode.unwrap_or(if self.url.is_some() { BrokerMode::External } else { BrokerMode::Embedded })
    }

    fn problem(&self) -> Option<String> {
        if let Some(secret) = &self.platform_secret {
            if secret.len() < MIN_PLATFORM_SECRET {
                return Some(format!("broker.platform_secret must have at least {MIN_PLATFORM_SECRET} characters"));
            }
        }
        match (self.mode(), &self.url, &self.platform_secret) {
            (BrokerMode::External, None, _) => Some("broker.mode = external needs broker.url (--broker mqtt://host:port)".into()),
            (BrokerMode::External, Some(_), None) => Some("an external broker needs broker.platform_secret (MQCHAT_BROKER__PLATFORM_SECRET)".into()),
            (BrokerMode::External, Some(url), Some(_)) if !url.starts_with("mqtt://") => {
                Some(format!("broker.url must be mqtt://host:port, not {url:?}"))
            }
            (BrokerMode::Embedded, Some(_), _) => Some("broker.url is set but broker.mode = embedded".into()),
            _ => None,
        }
    }
}

/// Command-line flags that override every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub mqtt_listen: Option<SocketAddr>,
    pub ws_listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub mosquitto_conf: Option<PathBuf>,
    pub broker_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid configuration: {0}")]
    Invalid(#[from] config::ConfigError),
    #[error("invalid configuration: {0}")]
    Rule(String),
}

impl Settings {
    /// Layers the sources; `environment` is the process environment (or any
    /// map, so tests never touch the real one).
    pub fn load(
        file: Option<&Path>,
        environment: HashMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Settings, SettingsError> {
        let mut builder = Config::builder().add_source(Config::try_from(&Settings::default())?);
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
        }
        let environment: HashMap<String, String> =
            environment.into_iter().filter(|(key, _)| key.starts_with("MQCHAT_") && key.contains("__")).collect();
        builder = builder.add_source(
            Environment::with_prefix("MQCHAT")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(environment)),
        );
        let flags = [
            ("mqtt.listen", overrides.mqtt_listen.map(|a| a.to_string())),
            ("websocket.listen", overrides.ws_listen.map(|a| a.to_string())),
            ("http.listen", overrides.http_listen.map(|a| a.to_string())),
            ("database.url", overrides.database_url.clone()),
            ("mosquitto.conf", overrides.mosquitto_conf.as_ref().map(|path| path.display().to_string())),
            ("broker.url", overrides.broker_url.clone()),
        ];
        for (key, value) in flags {
            builder = builder.set_override_option(key, value)?;
        }
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        if let Some(path) = settings.mosquitto.conf.clone() {
            let conf = MosquittoConf::load(&path).map_err(|error| SettingsError::Rule(error.to_string()))?;
            settings.apply_mosquitto_conf(conf, overrides)?;
        }
        settings.validate()?;
        Ok(settings)
    }

    /// What a `mosquitto.conf` says, over the file and the environment;
    /// listen-address flags still win.
    fn apply_mosquitto_conf(&mut self, conf: MosquittoConf, overrides: &Overrides) -> Result<(), SettingsError> {
        let mosquitto = &mut self.mosquitto;
        mosquitto.unknown_directives = conf.unknown;
        if let Some(allow) = conf.allow_anonymous {
            mosquitto.allow_anonymous = allow;
        }
        mosquitto.password_file = conf.password_file.or(mosquitto.password_file.take());
        mosquitto.acl_file = conf.acl_file.or(mosquitto.acl_file.take());
        if let Some(seconds) = conf.max_keepalive {
            self.gateway.max_keepalive = seconds;
        }
        if let Some(bytes) = conf.max_packet_size {
            self.gateway.max_packet_size = bytes as usize;
        }
        if let Some(messages) = conf.max_queued_messages {
            self.router.max_queued_messages = messages;
        }
        if conf.persistence == Some(false) {
            mosquitto.unknown_directives.push("persistence false (mqchat always keeps what it stores in its database)".into());
        }
        let (mut mqtt, mut websocket) = (None, None);
        for listener in conf.listeners {
            let slot = if listener.websockets { &mut websocket } else { &mut mqtt };
            if slot.is_some() {
                self.mosquitto.unknown_directives.push(format!("listener {} (one MQTT and one WebSocket listener are used)", listener.port));
                continue;
            }
            let host = listener.bind.as_deref().unwrap_or("0.0.0.0");
            let address = std::net::ToSocketAddrs::to_socket_addrs(&(host, listener.port))
                .ok()
                .and_then(|mut addresses| addresses.next())
                .ok_or_else(|| SettingsError::Rule(format!("mosquitto.conf: cannot resolve listener address {host:?}")))?;
            *slot = Some(address);
        }
        if let (Some(address), None) = (mqtt, overrides.mqtt_listen) {
            self.mqtt.listen = address;
        }
        if let (Some(address), None) = (websocket, overrides.ws_listen) {
            self.websocket.listen = address;
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(SettingsError::Rule("tls.cert and tls.key must be set together".into()));
        }
        if self.gateway.max_packet_size < 64 || self.gateway.max_connections == 0 {
            return Err(SettingsError::Rule("gateway.max_packet_size must be >= 64 and max_connections >= 1".into()));
        }
        if self.attachments.max_bytes == 0 || self.attachments.url_ttl.is_zero() {
            return Err(SettingsError::Rule("attachments.max_bytes and attachments.url_ttl must be positive".into()));
        }
        if let Some(problem) = self.broker.problem() {
            return Err(SettingsError::Rule(problem));
        }
        if let Some(problem) = self.webhooks.problem() {
            return Err(SettingsError::Rule(problem.into()));
        }
        if self.session.ttl.is_zero() || self.session.ttl > Duration::from_secs(7 * 24 * 3600) {
            return Err(SettingsError::Rule("session.ttl must be between 1s and 7d".into()));
        }
        Ok(())
    }

    /// The effective configuration as TOML, with the database password and
    /// the attachment signing key masked.
    pub fn to_masked_toml(&self) -> Result<String, toml::ser::Error> {
        let mut masked = self.clone();
        masked.database.url = mask_url_password(&masked.database.url);
        if masked.attachments.signing_key.is_some() {
            masked.attachments.signing_key = Some("****".into());
        }
        if masked.broker.platform_secret.is_some() {
            masked.broker.platform_secret = Some("****".into());
        }
        toml::to_string_pretty(&masked)
    }
}

fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    match rest.split_once('@') {
        Some((credentials, host)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:****@{host}")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_loopback_and_sqlite() {
        let settings = Settings::load(None, HashMap::new(), &Overrides::default()).unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.mqtt.listen.to_string(), "127.0.0.1:1883");
        assert_eq!(settings.database.url, "sqlite://mqchat.db?mode=rwc");
    }

    #[test]
    fn flags_beat_environment_beat_file() {
        let dir = std::env::temp_dir().join(format!("mqchat-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("mqchat.toml");
        std::fs::write(
            &file,
            "[mqtt]\nlisten = \"127.0.0.1:1000\"\n[http]\nlisten = \"127.0.0.1:1001\"\n[gateway]\nconnect_timeout = \"3s\"\n",
        )
        .unwrap();
        let environment = env(&[
            ("MQCHAT_HTTP__LISTEN", "127.0.0.1:2001"),
            ("MQCHAT_WEBSOCKET__LISTEN", "127.0.0.1:2002"),
            ("MQCHAT_GATEWAY__MAX_PACKET_SIZE", "1024"),
            ("PATH", "/bin"),
        ]);
        let overrides = Overrides { ws_listen: Some("127.0.0.1:3002".parse().unwrap()), ..Default::default() };
        let settings = Settings::load(Some(&file), environment, &overrides).unwrap();
        assert_eq!(settings.mqtt.listen.port(), 1000);
        assert_eq!(settings.http.listen.port(), 2001);
        assert_eq!(settings.websocket.listen.port(), 3002);
        assert_eq!(settings.gateway.max_packet_size, 1024);
        assert_eq!(settings.gateway.connect_timeout, Duration::from_secs(3));
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let error = Settings::load(None, env(&[("MQCHAT_MQTT__LISTEN", "not-an-address")]), &Overrides::default())
            .unwrap_err();
        assert!(error.to_string().contains("listen"), "{error}");
        let error = Settings::load(None, env(&[("MQCHAT_TLS__CERT", "/x.pem")]), &Overrides::default()).unwrap_err();
        assert!(error.to_string().contains("tls.cert and tls.key"), "{error}");
    }

    #[test]
    fn webhook_settings_from_the_environment_and_a_file() {
        let environment = env(&[
            ("MQCHAT_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true"),
            ("MQCHAT_WEBHOOKS__RETRY_SCHEDULE", "1s, 2s,4s"),
            ("MQCHAT_WEBHOOKS__TIMEOUT", "500ms"),
        ]);
        let settings = Settings::load(None, environment, &Overrides::default()).unwrap();
        assert!(settings.webhooks.allow_private_targets);
        let seconds = |n| Duration::from_secs(n);
        assert_eq!(settings.webhooks.retry_schedule, vec![seconds(1), seconds(2), seconds(4)]);
        assert_eq!(settings.webhooks.timeout, Duration::from_millis(500));
        let defaults = Settings::default().webhooks;
        assert_eq!((defaults.retry_schedule, defaults.timeout), (vec![seconds(30), seconds(120), seconds(480)], seconds(10)));

        let dir = tempfile_dir("webhooks");
        let file = dir.join("mqchat.toml");
        std::fs::write(&file, "[webhooks]\nretry_schedule = [\"5s\", \"1m\"]\n").unwrap();
        let settings = Settings::load(Some(&file), HashMap::new(), &Overrides::default()).unwrap();
        assert_eq!(settings.webhooks.retry_schedule, vec![seconds(5), seconds(60)]);
        let error = Settings::load(None, env(&[("MQCHAT_WEBHOOKS__RETRY_SCHEDULE", "soon")]), &Overrides::default())
            .unwrap_err();
        assert!(error.to_string().contains("retry_schedule"), "{error}");
        let error = Settings::load(None, env(&[("MQCHAT_WEBHOOKS__CONCURRENCY", "0")]), &Overrides::default()).unwrap_err();
        assert!(error.to_string().contains("webhooks.concurrency"), "{error}");
    }

    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mqchat-settings-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn masks_database_password() {
        assert_eq!(mask_url_password("postgres://mq:secret@db/mq"), "postgres://mq:****@db/mq");
        assert_eq!(mask_url_password("sqlite://mqchat.db?mode=rwc"), "sqlite://mqchat.db?mode=rwc");
    }
}
