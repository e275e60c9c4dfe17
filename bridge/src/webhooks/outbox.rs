//! The outbox: which endpoints want which events (kept in memory, so the
//! chat path pays nothing for a project without webhooks), and recording
//! events as delivery rows inside the caller's transaction.
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use entity::{webhook_delivery, webhook_endpoint};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, NotSet, Set};
use tokio::sync::{Mutex, Notify};

use super::deliveries::DeliveryStatus;
use super::events::{Event, EventType};

/// Delivery rows per insert statement (11 parameters each, far below the
/// parameter limits of SQLite and PostgreSQL).
const ROWS_PER_INSERT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    /// Signed event envelopes for its subscribed events.
    Webhook,
    /// Seed 002's `{userid, status, timestamp}` for every presence change.
    PresenceCallback,
    /// Seed 002's `{from_userid, to_userid, message}` for every new message.
    MessageCallback,
}

impl EndpointKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::Webhook => "webhook",
            EndpointKind::PresenceCallback => "presence_callback",
            EndpointKind::MessageCallback => "message_callback",
        }
    }

    fn parse(stored: &str) -> Option<EndpointKind> {
        [EndpointKind::Webhook, EndpointKind::PresenceCallback, EndpointKind::MessageCallback]
            .into_iter()
            .find(|kind| kind.as_str() == stored)
    }
}

/// An endpoint as the dispatcher needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: String,
    pub project_id: String,
    pub kind: EndpointKind,
    pub url: String,
    pub secret: String,
    pub enabled: bool,
    /// Subscribed events, one bit each.
    events: u16,
}

impl Endpoint {
    fn wants(&self, kind: EventType) -> bool {
        self.enabled && self.events & kind.bit() != 0
    }

    pub(crate) fn from_row(row: webhook_endpoint::Model) -> Option<Endpoint> {
        let kind = EndpointKind::parse(&row.kind)?;
        let names: Vec<String> = serde_json::from_str(&row.events).unwrap_or_default();
        let events = names.iter().filter_map(|name| EventType::parse(name)).fold(0, |mask, kind| mask | kind.bit());
        Some(Endpoint { id: row.id, project_id: row.project_id, kind, url: row.url, secret: row.secret, enabled: row.enabled, events })
    }
}

#[derive(Default)]
struct Directory {
    /// Enabled endpoints per project: what `record` consults.
    by_project: HashMap<String, Vec<Arc<Endpoint>>>,
    /// Every endpoint, enabled or not: what the dispatcher consults.
    by_id: HashMap<String, Arc<Endpoint>>,
}

/// Who wants what, and the signal that wakes the dispatcher.
#[derive(Default)]
pub struct Outbox {
    directory: RwLock<Arc<Directory>>,
    /// Serialises reloads so an older read never replaces a newer one.
    reloading: Mutex<()>,
    wake: Notify,
}

impl Outbox {
    pub async fn load(db: &DatabaseConnection) -> Result<Outbox, DbErr> {
        let outbox = Outbox::default();
        outbox.reload(db).await?;
        Ok(outbox)
    }

    /// Re-reads every endpoint; called after each change to one.
    pub async fn reload(&self, db: &DatabaseConnection) -> Result<(), DbErr> {
        let _one_at_a_time = self.reloading.lock().await;
        let mut directory = Directory::default();
        for row in webhook_endpoint::Entity::find().all(db).await? {
            let Some(endpoint) = Endpoint::from_row(row).map(Arc::new) else { continue };
            if endpoint.enabled {
                directory.by_project.entry(endpoint.project_id.clone()).or_default().push(Arc::clone(&endpoint));
            }
            directory.by_id.insert(endpoint.id.clone(), endpoint);
        }
        *self.directory.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(directory);
        Ok(())
    }

    fn snapshot(&self) -> Arc<Directory> {
        Arc::clone(&self.directory.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Whether any enabled endpoint of the project subscribes to `kind`:
    /// callers skip building events nobody wants.
    pub fn wants(&self, project_id: &str, kind: EventType) -> bool {
        self.snapshot().by_project.get(project_id).is_some_and(|endpoints| endpoints.iter().any(|e| e.wants(kind)))
    }

    pub fn endpoint(&self, id: &str) -> Option<Arc<Endpoint>> {
        self.snapshot().by_id.get(id).cloned()
    }

    /// Every enabled endpoint, of every project: where the dispatcher looks for due deliveries.
    pub fn enabled_endpoints(&self) -> Vec<Arc<Endpoint>> {
        self.snapshot().by_project.values().flatten().cloned().collect()
    }

    /// Writes one pending delivery per (event, subscribed endpoint) with
    /// `db` — the caller's transaction. Returns how many; once the
    /// transaction committed, the caller calls `wake` when it is not zero.
    pub async fn record(&self, db: &impl ConnectionTrait, project_id: &str, events: &[Event]) -> Result<usize, DbErr> {
        let directory = self.snapshot();
        let Some(endpoints) = directory.by_project.get(project_id) else { return Ok(0) };
        let mut rows = Vec::new();
        for event in events {
            let mut envelope = None;
            for endpoint in endpoints.iter().filter(|endpoint| endpoint.wants(event.kind)) {
                let body = match endpoint.kind {
                    EndpointKind::Webhook => envelope.get_or_insert_with(|| event.envelope(project_id)).clone(),
                    EndpointKind::PresenceCallback | EndpointKind::MessageCallback => match &event.callback_body {
                        Some(body) => body.clone(),
                        None => continue,
                    },
                };
                rows.push(webhook_delivery::ActiveModel {
                    id: NotSet,
                    event_id: Set(event.id.clone()),
                    event_type: Set(event.kind.as_str().to_owned()),
                    endpoint_id: Set(endpoint.id.clone()),
                    project_id: Set(project_id.to_owned()),
                    body: Set(body),
                    status: Set(DeliveryStatus::Pending.as_str().to_owned()),
                    attempts: Set(0),
                    next_attempt_at: Set(event.created_at),
                    created_at: Set(event.created_at),
                    updated_at: Set(event.created_at),
                });
            }
        }
        let count = rows.len();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<_> = rows.by_ref().take(ROWS_PER_INSERT).collect();
            webhook_delivery::Entity::insert_many(chunk).exec_without_returning(db).await?;
        }
        Ok(count)
    }

    /// Tells the dispatcher that deliveries were committed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves at the next `wake` (or at once if one came since the last wait).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}
