//! The command line: `serve`, `migrate`, `project`, `token`, `config`.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mqchat_bridge::projects;
use mqchat_broker::identity::{self, IdentityClaims, UserId};

use crate::app::{connect_and_migrate, App};
use crate::settings::{Overrides, Settings};

#[derive(Debug, Parser)]
#[command(name = "mqchat", version, about = "Self-hosted chat platform on MQTT")]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL (overrides [database] url).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker, the chat engine and the HTTP API.
    Serve {
        #[arg(long, value_name = "ADDR")]
        mqtt_listen: Option<SocketAddr>,
        #[arg(long, value_name = "ADDR")]
        ws_listen: Option<SocketAddr>,
        #[arg(long, value_name = "ADDR")]
        http_listen: Option<SocketAddr>,
        /// A Mosquitto configuration for the plain-MQTT namespace (listener,
        /// allow_anonymous, password_file, acl_file, max_keepalive,
        /// max_packet_size, persistence).
        #[arg(long, value_name = "FILE")]
        mosquitto_conf: Option<PathBuf>,
        /// An existing broker to run on instead of the embedded one
        /// (`mqtt://host:port`; Mosquitto with mqchat's plugin, or EMQX):
        /// no MQTT or WebSocket listener of mqchat's own is opened.
        #[arg(long, value_name = "URL")]
        broker: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage projects (tenants).
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Sign an identity token exactly as a site backend would (HS256).
    Token {
        #[arg(long)]
        secret_key: String,
        #[arg(long)]
        sub: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        avatar_url: Option<String>,
        /// Lifetime, e.g. 2h, 30m (at most 24h).
        #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Print the effective configuration (secrets masked).
    Config,
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project and print its keys as JSON.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List projects as JSON lines.
    List,
    /// Give a project a new secret key and print it as JSON; the old key
    /// keeps verifying tokens and the server API for the grace period.
    RotateSecret {
        #[arg(long)]
        project_id: String,
        /// How long the old key keeps working, e.g. 24h, 0s (at most 30 days).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        grace: Duration,
    },
}

impl Cli {
    fn settings(&self, overrides: Overrides) -> anyhow::Result<Settings> {
        let environment: HashMap<String, String> = std::env::vars().collect();
        let overrides = Overrides { database_url: self.database_url.clone(), ..overrides };
        Ok(Settings::load(self.config.as_deref(), environment, &overrides)?)
    }

    pub async fn run(self) -> anyhow::Result<()> {
        match &self.command {
            Command::Serve { mqtt_listen, ws_listen, http_listen, mosquitto_conf, broker } => {
                let overrides = Overrides {
                    mqtt_listen: *mqtt_listen,
                    ws_listen: *ws_listen,
                    http_listen: *http_listen,
                    database_url: None,
                    mosquitto_conf: mosquitto_conf.clone(),
                    broker_url: broker.clone(),
                };
                let settings = self.settings(overrides)?;
                // Handlers first: a signal that arrives while starting still shuts down cleanly.
                let shutdown = shutdown_signal()?;
                let app = App::build(&settings).await?;
                app.run(shutdown).await;
            }
            Command::Migrate => {
                let settings = self.settings(Overrides::default())?;
                connect_and_migrate(&settings.database.url).await?;
                println!("migrations applied");
            }
            Command::Project(ProjectCommand::Create { name }) => {
                let name = name.trim();
                anyhow::ensure!(!name.is_empty() && name.chars().count() <= 200, "--name must be 1-200 characters");
                let settings = self.settings(Overrides::default())?;
                let db = connect_and_migrate(&settings.database.url).await?;
                let project = projects::create(&db, name).await?;
                println!("{}", serde_json::to_string(&project)?);
            }
            Command::Project(ProjectCommand::List) => {
                let settings = self.settings(Overrides::default())?;
                let db = connect_and_migrate(&settings.database.url).await?;
                for project in projects::list(&db).await? {
                    println!("{}", serde_json::to_string(&project)?);
                }
            }
            Command::Project(ProjectCommand::RotateSecret { project_id, grace }) => {
                let max = projects::MAX_ROTATION_GRACE;
                let grace = chrono::Duration::from_std(*grace).ok().filter(|grace| *grace <= max);
                let grace = grace.with_context(|| format!("--grace is at most {} days", max.num_days()))?;
                let settings = self.settings(Overrides::default())?;
                let db = connect_and_migrate(&settings.database.url).await?;
                let project = projects::rotate_secret(&db, project_id, grace).await?;
                let project = project.with_context(|| format!("no project {project_id:?}"))?;
                println!("{}", serde_json::to_string(&project)?);
            }
            Command::Token { secret_key, sub, name, email, avatar_url, ttl } => {
                UserId::parse(sub).context("--sub")?;
                let ttl = ttl.as_secs() as i64;
                anyhow::ensure!(ttl > 0 && ttl <= identity::MAX_LIFETIME_SECS, "--ttl must be between 1s and 24h");
                let now = identity::now_unix();
                let claims = IdentityClaims {
                    sub: sub.clone(),
                    name: name.clone(),
                    email: email.clone(),
                    avatar_url: avatar_url.clone(),
                    iat: now,
                    exp: now + ttl,
                    iss: None,
                };
                println!("{}", identity::sign(secret_key, &claims)?);
            }
            Command::Config => {
                let settings = self.settings(Overrides::default())?;
                print!("{}", settings.to_masked_toml()?);
            }
        }
        Ok(())
    }
}

/// Installs the SIGINT and SIGTERM handlers now; the returned future
/// resolves at the first of them.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
