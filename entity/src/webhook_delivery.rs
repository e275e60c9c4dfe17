//! One event for one endpoint: written in the transaction of the change that
//! caused it (the outbox), then kept as its delivery log entry.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `evt_…`: the same for every endpoint and every attempt (de-duplication).
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    pub project_id: String,
    /// The exact bytes POSTed, identical on every attempt.
    pub body: String,
    /// `pending`, `delivered`, `failed`, or `paused` (its endpoint is disabled).
    pub status: String,
    pub attempts: i32,
    /// When a pending delivery is due.
    pub next_attempt_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
