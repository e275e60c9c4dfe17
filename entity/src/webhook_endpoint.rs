//! Where a project's events are POSTed: a webhook, or one of its two
//! callback URLs (presence, messages).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    /// `wh_…` for a webhook, `cb_…` for a callback URL.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub project_id: String,
    /// `webhook`, `presence_callback` or `message_callback`: the body's format.
    pub kind: String,
    pub name: String,
    pub url: String,
    /// `whsec_…`: the HMAC key of every signature on its deliveries.
    pub secret: String,
    /// JSON array of subscribed event types.
    pub events: String,
    /// False once disabled by its owner or after it refused or failed deliveries.
    pub enabled: bool,
    /// Why it was disabled automatically; `None` when enabled or disabled by its owner.
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
