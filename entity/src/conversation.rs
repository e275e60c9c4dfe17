//! A conversation: direct, group, channel or support.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "conversations")]
pub struct Model {
    /// `conv_…`: appears in the conversation's MQTT topics.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub project_id: String,
    /// `direct`, `group`, `channel` or `support`.
    pub kind: String,
    pub title: Option<String>,
    /// Set once the conversation is archived; archived conversations stay readable.
    pub archived_at: Option<DateTimeUtc>,
    /// `seq` of the newest message; the next one gets `last_seq + 1`.
    pub last_seq: i64,
    /// `"{a}|{b}"` (sorted member ids) for a direct conversation, so that a
    /// pair of users has exactly one; NULL otherwise.
    pub direct_key: Option<String>,
    /// When the newest message was stored, or the conversation created:
    /// conversation lists sort by it.
    pub last_activity_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
