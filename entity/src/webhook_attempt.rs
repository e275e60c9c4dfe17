//! One try at a delivery, as the delivery log shows it.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_attempts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub delivery_id: i64,
    /// 1 for the first try.
    pub attempt: i32,
    /// The HTTP status answered; `None` when no answer came.
    pub status_code: Option<i32>,
    /// Why it failed: the status's meaning, a timeout, a refused connection.
    pub error: Option<String>,
    pub latency_ms: i32,
    pub attempted_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
