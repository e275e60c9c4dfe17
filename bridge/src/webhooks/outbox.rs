//! The outbox: which endpoints want which events (kept in memory, so the
//! chat path pays nothing for a project without webhooks), recording events
//! inside the caller's transaction, and fanning them out to delivery rows.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use entity::{webhook_delivery, webhook_endpoint, webhook_event, webhook_fanout};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, NotSet, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use tokio::sync::{Mutex, Notify};

use super::deliveries::{Claim, DeliveryStatus, DueDelivery};
use super::events::{Event, EventType};

/// Rows per insert statement (at most 9 parameters each, far below the
/// parameter limits of SQLite and PostgreSQL).
const ROWS_PER_INSERT: usize = 1000;

/// The id of the fan-out cursor's only row.
const FANOUT_CURSOR: i32 = 1;

/// The seq of the last event fanned out (0 before the first fan-out).
pub(crate) async fn fanned_out_through(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    Ok(webhook_fanout::Entity::find_by_id(FANOUT_CURSOR).one(db).await?.map_or(0, |row| row.last_seq))
}

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

    /// What this endpoint receives of `event`: the envelope for a webhook,
    /// the seed 002 body for a callback URL (none when it was not recorded).
    pub(crate) fn bytes<'e>(&self, event: &'e webhook_event::Model) -> Option<&'e String> {
        match self.kind {
            EndpointKind::Webhook => event.body.as_ref(),
            EndpointKind::PresenceCallback | EndpointKind::MessageCallback => event.callback_body.as_ref(),
        }
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
    /// Set when pending deliveries appeared that no fan-out created
    /// (re-enabled endpoint, manual retry): the dispatcher reads them.
    rescan: AtomicBool,
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

    /// Writes each event some enabled endpoint wants — once, with the
    /// bytes each kind of endpoint receives — with `db`, the caller's
    /// transaction. Returns how many; once the transaction committed, the
    /// caller calls `wake` when it is not zero. Delivery rows are the
    /// dispatcher's business (`fan_out`), so the change's transaction writes
    /// one row per event whatever the number of endpoints.
    pub async fn record(&self, db: &impl ConnectionTrait, project_id: &str, events: &[Event]) -> Result<usize, DbErr> {
        let directory = self.snapshot();
        let Some(endpoints) = directory.by_project.get(project_id) else { return Ok(0) };
        let rows: Vec<webhook_event::ActiveModel> = events
            .iter()
            .filter_map(|event| {
                let wanted = |kind: EndpointKind| endpoints.iter().any(|e| e.kind == kind && e.wants(event.kind));
                let body = wanted(EndpointKind::Webhook).then(|| event.envelope(project_id));
                let callback_body = event
                    .callback_body
                    .as_ref()
                    .filter(|_| wanted(EndpointKind::PresenceCallback) || wanted(EndpointKind::MessageCallback))
                    .cloned();
                (body.is_some() || callback_body.is_some()).then(|| webhook_event::ActiveModel {
                    seq: NotSet,
                    event_id: Set(event.id.clone()),
                    event_type: Set(event.kind.as_str().to_owned()),
                    project_id: Set(project_id.to_owned()),
                    body: Set(body),
                    callback_body: Set(callback_body),
                    created_at: Set(event.created_at),
                })
            })
            .collect();
        let count = rows.len();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<_> = rows.by_ref().take(ROWS_PER_INSERT).collect();
            webhook_event::Entity::insert_many(chunk).exec_without_returning(db).await?;
        }
        Ok(count)
    }

    /// Creates the delivery rows of up to `limit` events recorded since the
    /// last fan-out — one per endpoint enabled and subscribed now — and
    /// moves the cursor past them, in one transaction. Returns how many
    /// events it read (`limit` means more may be waiting) and the new
    /// deliveries with their bytes, oldest first, so the dispatcher can send
    /// them without reading them back; they are claimed (see `due`). Processes sharing a PostgreSQL
    /// database take turns: the cursor row is locked first.
    pub async fn fan_out(&self, db: &DatabaseConnection, limit: u64, claim: &Claim) -> Result<(usize, Vec<DueDelivery>), DbErr> {
        let txn = db.begin().await?;
        webhook_fanout::Entity::insert(webhook_fanout::ActiveModel { id: Set(FANOUT_CURSOR), last_seq: Set(0) })
            .on_conflict(OnConflict::column(webhook_fanout::Column::Id).do_nothing().to_owned())
            .exec_without_returning(&txn)
            .await?;
        let cursor = webhook_fanout::Entity::find_by_id(FANOUT_CURSOR).lock_exclusive().one(&txn).await?.map_or(0, |row| row.last_seq);
        let events = webhook_event::Entity::find()
            .filter(webhook_event::Column::Seq.gt(cursor))
            .order_by_asc(webhook_event::Column::Seq)
            .limit(limit)
            .all(&txn)
            .await?;
        let Some(last) = events.last().map(|event| event.seq) else { return txn.commit().await.map(|()| (0, Vec::new())) };
        let directory = self.snapshot();
        // (event, endpoint) pairs, in event order.
        let mut planned: Vec<(&webhook_event::Model, &Arc<Endpoint>, &String)> = Vec::new();
        for event in &events {
            let (Some(kind), Some(endpoints)) = (EventType::parse(&event.event_type), directory.by_project.get(&event.project_id)) else {
                continue;
            };
            for endpoint in endpoints.iter().filter(|endpoint| endpoint.wants(kind)) {
                if let Some(body) = endpoint.bytes(event) {
                    planned.push((event, endpoint, body));
                }
            }
        }
        let rows: Vec<webhook_delivery::ActiveModel> = planned
            .iter()
            .map(|(event, endpoint, _)| webhook_delivery::ActiveModel {
            id: NotSet,
            event_seq: Set(event.seq),
            endpoint_id: Set(endpoint.id.clone()),
            project_id: Set(event.project_id.clone()),
            status: Set(DeliveryStatus::Pending.as_str().to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(claim.until),
            claimed_by: Set(Some(claim.instance.clone())),
            created_at: Set(event.created_at),
            updated_at: Set(event.created_at),
            })
            .collect();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<_> = rows.by_ref().take(ROWS_PER_INSERT).collect();
            webhook_delivery::Entity::insert_many(chunk).exec_without_returning(&txn).await?;
        }
        // The new rows' ids (portable: no RETURNING), from the event index.
        let ids: HashMap<(i64, String), i64> = if planned.is_empty() {
            HashMap::new()
        } else {
            webhook_delivery::Entity::find()
                .select_only()
                .columns([webhook_delivery::Column::Id, webhook_delivery::Column::EventSeq, webhook_delivery::Column::EndpointId])
                .filter(webhook_delivery::Column::EventSeq.gt(cursor))
                .filter(webhook_delivery::Column::EventSeq.lte(last))
                .into_tuple::<(i64, i64, String)>()
                .all(&txn)
                .await?
                .into_iter()
                .map(|(id, seq, endpoint)| ((seq, endpoint), id))
                .collect()
        };
        let cursor = webhook_fanout::ActiveModel { id: Set(FANOUT_CURSOR), last_seq: Set(last) };
        webhook_fanout::Entity::insert(cursor)
            .on_conflict(OnConflict::column(webhook_fanout::Column::Id).update_column(webhook_fanout::Column::LastSeq).to_owned())
            .exec_without_returning(&txn)
            .await?;
        txn.commit().await?;
        let fresh = planned
            .into_iter()
            .filter_map(|(event, endpoint, body)| {
                Some(DueDelivery {
                    id: *ids.get(&(event.seq, endpoint.id.clone()))?,
                    endpoint_id: endpoint.id.clone(),
                    attempts: 0,
                    event_id: event.event_id.clone(),
                    event_type: event.event_type.clone(),
                    body: body.clone(),
                })
            })
            .collect();
        Ok((events.len(), fresh))
    }

    /// Tells the dispatcher that events were committed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Tells the dispatcher that deliveries became pending outside a fan-out.
    pub fn rescan(&self) {
        self.rescan.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Whether `rescan` was called since the last time this was asked.
    pub fn take_rescan(&self) -> bool {
        self.rescan.swap(false, Ordering::AcqRel)
    }

    /// Resolves at the next `wake` (or at once if one came since the last wait).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}
