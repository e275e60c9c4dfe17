//! One webhook event, recorded in the transaction of the change that caused
//! it (the outbox) with the exact bytes every endpoint receives.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_events")]
pub struct Model {
    /// Recording order: the fan-out's cursor.
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// `evt_…`: the same for every endpoint and every attempt (de-duplication).
    pub event_id: String,
    pub event_type: String,
    pub project_id: String,
    /// The signed envelope webhooks receive; none when no webhook wanted it.
    pub body: Option<String>,
    /// The seed 002 body callback URLs receive; none when no callback wanted it.
    pub callback_body: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
