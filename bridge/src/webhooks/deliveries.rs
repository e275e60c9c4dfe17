//! Deliveries: what the dispatcher takes and records, and the delivery log
//! the server API shows (one entry per event and endpoint, with every
//! attempt). A delivery refers to its event, which holds the bytes.
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{webhook_attempt, webhook_delivery, webhook_event};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, NotSet, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use sea_orm::sea_query::{LockBehavior, LockType};
use serde::Serialize;

use super::endpoints::any_endpoint;
use super::outbox::{fanned_out_through, Endpoint};
use super::WebhookError;

/// Most entries one delivery-log page returns.
pub const MAX_LOG_PAGE: u64 = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    Delivered,
    /// Out of attempts, or refused for good (401, 403, 410).
    Failed,
    /// Its endpoint is disabled; resumes when re-enabled.
    Paused,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Paused => "paused",
        }
    }

    pub fn parse(name: &str) -> Option<DeliveryStatus> {
        [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed, DeliveryStatus::Paused]
            .into_iter()
            .find(|status| status.as_str() == name)
    }
}

/// A due delivery, with what to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub id: i64,
    pub endpoint_id: String,
    /// Attempts made so far.
    pub attempts: i32,
    pub event_id: String,
    pub event_type: String,
    /// The exact bytes to POST, the same on every attempt.
    pub body: String,
}

/// Who takes deliveries, and until when no other instance may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The instance's name, the same across its restarts.
    pub instance: String,
    pub until: DateTime<Utc>,
}

/// Claims up to `limit` pending deliveries of `endpoint` due at `now`,
/// oldest first: their next attempt moves to the claim's end, so no other
/// instance sharing the database takes them while this one sends (rows
/// another instance is claiming are skipped, not waited for). If this
/// instance dies they are due again when the claim ends, or as soon as it
/// restarts (`release_claims`).
pub async fn due(db: &DatabaseConnection, endpoint: &Endpoint, now: DateTime<Utc>, limit: u64, claim: &Claim) -> Result<Vec<DueDelivery>, DbErr> {
    let txn = db.begin().await?;
    let ids: Vec<i64> = webhook_delivery::Entity::find()
        .select_only()
        .column(webhook_delivery::Column::Id)
        .filter(webhook_delivery::Column::EndpointId.eq(endpoint.id.as_str()))
        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
        .order_by_asc(webhook_delivery::Column::NextAttemptAt)
        .order_by_asc(webhook_delivery::Column::Id)
        .limit(limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .into_tuple()
        .all(&txn)
        .await?;
    if ids.is_empty() {
        txn.commit().await?;
        return Ok(Vec::new());
    }
    webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(claim.until))
        .col_expr(webhook_delivery::Column::ClaimedBy, Expr::value(claim.instance.clone()))
        .filter(webhook_delivery::Column::Id.is_in(ids.iter().copied()))
        .exec(&txn)
        .await?;
    let rows = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(webhook_delivery::Column::Id)
        .all(&txn)
        .await?;
    let events = events_of(&txn, rows.iter().map(|row| row.event_seq)).await?;
    txn.commit().await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let event = events.get(&row.event_seq)?;
            // The fan-out only creates deliveries of events holding their endpoint's bytes.
            let body = endpoint.bytes(event).or(event.body.as_ref()).or(event.callback_body.as_ref())?.clone();
            Some(DueDelivery {
                id: row.id,
                endpoint_id: row.endpoint_id,
                attempts: row.attempts,
                event_id: event.event_id.clone(),
                event_type: event.event_type.clone(),
                body,
            })
        })
        .collect())
}

/// Gives up this instance's claim on these deliveries: due now, for
/// whichever instance reads them first.
pub async fn release(db: &DatabaseConnection, ids: &[i64]) -> Result<(), DbErr> {
    for chunk in ids.chunks(1000) {
        webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(crate::clock::now()))
            .col_expr(webhook_delivery::Column::ClaimedBy, Expr::value(Option::<String>::None))
            .filter(webhook_delivery::Column::Id.is_in(chunk.iter().copied()))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Makes what `instance` had claimed before it restarted due now.
pub async fn release_claims(db: &DatabaseConnection, instance: &str) -> Result<u64, DbErr> {
    let result = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(crate::clock::now()))
        .col_expr(webhook_delivery::Column::ClaimedBy, Expr::value(Option::<String>::None))
        .filter(webhook_delivery::Column::ClaimedBy.eq(instance))
        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// The events with these sequence numbers, bodies included.
async fn events_of(db: &impl ConnectionTrait, seqs: impl Iterator<Item = i64>) -> Result<HashMap<i64, webhook_event::Model>, DbErr> {
    let seqs: Vec<i64> = seqs.collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let mut events = HashMap::with_capacity(seqs.len());
    for chunk in seqs.chunks(1000) {
        let rows = webhook_event::Entity::find().filter(webhook_event::Column::Seq.is_in(chunk.iter().copied())).all(db).await?;
        events.extend(rows.into_iter().map(|row| (row.seq, row)));
    }
    Ok(events)
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Delivered,
    RetryAt(DateTime<Utc>),
    Failed,
}

/// One attempt's result, to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    /// 1 for the first.
    pub attempt: i32,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u32,
    pub attempted_at: DateTime<Utc>,
    pub next: NextStep,
}

/// Stores a batch of attempts in one transaction: their log rows, and each
/// delivery's new state (one statement for all the delivered ones, and for
/// all the failed ones).
pub async fn record_attempts(db: &DatabaseConnection, records: &[AttemptRecord]) -> Result<(), DbErr> {
    if records.is_empty() {
        return Ok(());
    }
    let now = crate::clock::now();
    let txn = db.begin().await?;
    for chunk in records.chunks(1000) {
        let rows = chunk.iter().map(|record| webhook_attempt::ActiveModel {
            id: NotSet,
            delivery_id: Set(record.delivery_id),
            attempt: Set(record.attempt),
            status_code: Set(record.status_code.map(i32::from)),
            error: Set(record.error.clone()),
            latency_ms: Set(i32::try_from(record.latency_ms).unwrap_or(i32::MAX)),
            attempted_at: Set(record.attempted_at),
        });
        webhook_attempt::Entity::insert_many(rows).exec_without_returning(&txn).await?;
    }
    let mut finished: HashMap<DeliveryStatus, Vec<i64>> = HashMap::new();
    for record in records {
        match record.next {
            NextStep::Delivered => finished.entry(DeliveryStatus::Delivered).or_default().push(record.delivery_id),
            NextStep::Failed => finished.entry(DeliveryStatus::Failed).or_default().push(record.delivery_id),
            NextStep::RetryAt(at) => {
                webhook_delivery::Entity::update_many()
                    .col_expr(webhook_delivery::Column::Attempts, Expr::value(record.attempt))
                    .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(at))
                    .col_expr(webhook_delivery::Column::ClaimedBy, Expr::value(Option::<String>::None))
                    .col_expr(webhook_delivery::Column::UpdatedAt, Expr::value(now))
                    .filter(webhook_delivery::Column::Id.eq(record.delivery_id))
                    .exec(&txn)
                    .await?;
            }
        }
    }
    for (status, ids) in finished {
        for chunk in ids.chunks(1000) {
            webhook_delivery::Entity::update_many()
                .col_expr(webhook_delivery::Column::Status, Expr::value(status.as_str()))
                .col_expr(webhook_delivery::Column::Attempts, Expr::col(webhook_delivery::Column::Attempts).add(1))
                .col_expr(webhook_delivery::Column::UpdatedAt, Expr::value(now))
                .filter(webhook_delivery::Column::Id.is_in(chunk.iter().copied()))
                .exec(&txn)
                .await?;
        }
    }
    txn.commit().await
}

/// One attempt as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptView {
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i32,
    pub attempted_at: DateTime<Utc>,
}

/// A delivery-log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryView {
    /// `dlv_<n>`.
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub webhook_id: String,
    pub status: String,
    pub attempts: i32,
    /// When a pending delivery is tried next.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Oldest first.
    pub attempt_log: Vec<AttemptView>,
}

fn delivery_view(row: webhook_delivery::Model, event: Option<&webhook_event::Model>, attempts: Vec<AttemptView>) -> DeliveryView {
    DeliveryView {
        id: format!("dlv_{}", row.id),
        next_attempt_at: (row.status == DeliveryStatus::Pending.as_str()).then_some(row.next_attempt_at),
        event_id: event.map(|event| event.event_id.clone()).unwrap_or_default(),
        event_type: event.map(|event| event.event_type.clone()).unwrap_or_default(),
        webhook_id: row.endpoint_id,
        status: row.status,
        attempts: row.attempts,
        created_at: row.created_at,
        updated_at: row.updated_at,
        attempt_log: attempts,
    }
}

async fn attempts_of(db: &impl ConnectionTrait, ids: Vec<i64>) -> Result<HashMap<i64, Vec<AttemptView>>, DbErr> {
    let mut by_delivery: HashMap<i64, Vec<AttemptView>> = HashMap::new();
    if ids.is_empty() {
        return Ok(by_delivery);
    }
    let rows = webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::DeliveryId.is_in(ids))
        .order_by_asc(webhook_attempt::Column::Id)
        .all(db)
        .await?;
    for row in rows {
        by_delivery.entry(row.delivery_id).or_default().push(AttemptView {
            attempt: row.attempt,
            status_code: row.status_code,
            error: row.error,
            latency_ms: row.latency_ms,
            attempted_at: row.attempted_at,
        });
    }
    Ok(by_delivery)
}

/// The endpoint's delivery log, newest first.
pub async fn log(
    db: &DatabaseConnection,
    project_id: &str,
    endpoint_id: &str,
    status: Option<DeliveryStatus>,
    limit: u64,
) -> Result<Vec<DeliveryView>, WebhookError> {
    any_endpoint(db, project_id, endpoint_id).await?;
    let mut query = webhook_delivery::Entity::find().filter(webhook_delivery::Column::EndpointId.eq(endpoint_id));
    if let Some(status) = status {
        query = query.filter(webhook_delivery::Column::Status.eq(status.as_str()));
    }
    let rows = query.order_by_desc(webhook_delivery::Column::Id).limit(limit.clamp(1, MAX_LOG_PAGE)).all(db).await?;
    let mut attempts = attempts_of(db, rows.iter().map(|row| row.id).collect()).await?;
    let events = events_of(db, rows.iter().map(|row| row.event_seq)).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let log = attempts.remove(&row.id).unwrap_or_default();
            let event = events.get(&row.event_seq);
            delivery_view(row, event, log)
        })
        .collect())
}

/// Queues a finished delivery (failed or delivered) for one more attempt
/// now, with the same event id and body; its endpoint must be enabled.
pub async fn retry(db: &DatabaseConnection, project_id: &str, delivery_id: &str) -> Result<DeliveryView, WebhookError> {
    let id: i64 = delivery_id
        .strip_prefix("dlv_")
        .and_then(|n| n.parse().ok())
        .ok_or(WebhookError::NotFound("delivery"))?;
    let row = webhook_delivery::Entity::find_by_id(id)
        .filter(webhook_delivery::Column::ProjectId.eq(project_id))
        .one(db)
        .await?
        .ok_or(WebhookError::NotFound("delivery"))?;
    let endpoint = any_endpoint(db, project_id, &row.endpoint_id).await?;
    if !endpoint.enabled {
        return Err(WebhookError::Conflict("its webhook is disabled; re-enable it first (its paused deliveries resume then)".into()));
    }
    match DeliveryStatus::parse(&row.status) {
        Some(DeliveryStatus::Failed | DeliveryStatus::Delivered) => {}
        _ => return Err(WebhookError::Conflict(format!("the delivery is {}; only failed or delivered ones are retried", row.status))),
    }
    let now = crate::clock::now();
    let mut active: webhook_delivery::ActiveModel = row.into();
    active.status = Set(DeliveryStatus::Pending.as_str().to_owned());
    active.next_attempt_at = Set(now);
    active.updated_at = Set(now);
    let row = active.update(db).await?;
    let mut attempts = attempts_of(db, vec![row.id]).await?;
    let log = attempts.remove(&row.id).unwrap_or_default();
    let events = events_of(db, std::iter::once(row.event_seq)).await?;
    let event = events.get(&row.event_seq);
    Ok(delivery_view(row, event, log))
}

/// Forgets finished deliveries last changed before `cutoff`, with their
/// attempts, and events older than `cutoff` no delivery refers to any more;
/// pending and paused deliveries are kept whatever their age, and so are
/// events not fanned out yet.
pub async fn purge_older_than(db: &DatabaseConnection, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    let finished = [DeliveryStatus::Delivered.as_str(), DeliveryStatus::Failed.as_str()];
    let txn = db.begin().await?;
    webhook_attempt::Entity::delete_many().filter(webhook_attempt::Column::AttemptedAt.lt(cutoff)).exec(&txn).await?;
    let deleted = webhook_delivery::Entity::delete_many()
        .filter(webhook_delivery::Column::Status.is_in(finished))
        .filter(webhook_delivery::Column::UpdatedAt.lt(cutoff))
        .exec(&txn)
        .await?;
    let fanned_out = fanned_out_through(&txn).await?;
    webhook_event::Entity::delete_many()
        .filter(webhook_event::Column::CreatedAt.lt(cutoff))
        .filter(webhook_event::Column::Seq.lte(fanned_out))
        .filter(
            webhook_event::Column::Seq.not_in_subquery(
                Query::select()
                    .column(webhook_delivery::Column::EventSeq)
                    .from(webhook_delivery::Entity)
                    .and_where(webhook_delivery::Column::EventSeq.lte(fanned_out))
                    .to_owned(),
            ),
        )
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(deleted.rows_affected)
}
