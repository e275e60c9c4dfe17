//! One event for one endpoint: created from the event by the dispatcher's
//! fan-out, then kept as its delivery log entry.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The event (`webhook_events.seq`) whose bytes are POSTed, identical on every attempt.
    pub event_seq: i64,
    pub endpoint_id: String,
    pub project_id: String,
    /// `pending`, `delivered`, `failed`, or `paused` (its endpoint is disabled).
    pub status: String,
    pub attempts: i32,
    /// When a pending delivery is due.
    pub next_attempt_at: DateTimeUtc,
    /// The mqchat instance sending it now, until `next_attempt_at` (its
    /// lease); `None` when no instance holds it.
    pub claimed_by: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
