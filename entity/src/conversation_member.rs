//! Membership of a user in a conversation: what the MQTT ACL checks.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "conversation_members")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub conversation_id: String,
    /// The member's `sub` (external id), as used in topics.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    /// Denormalised so that "conversations of a user" needs no join.
    pub project_id: String,
    /// `admin` (may delete others' messages) or `member`.
    pub role: String,
    pub joined_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
