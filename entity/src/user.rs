//! An external user: a user of the site, known only by the claims of its
//! identity tokens (keyed on `sub`).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub project_id: String,
    /// The `sub` claim: the site's own user id, used in topics.
    pub external_id: String,
    /// Display name from the `name` claim.
    pub name: Option<String>,
    pub email: Option<String>,
    pub avatar_url: Option<String>,
    /// Tokens issued before this instant are refused (a backend revoked
    /// the user's sessions).
    pub sessions_revoked_at: Option<DateTimeUtc>,
    /// Answers visitors' support conversations.
    pub is_agent: bool,
    /// The site user id a visitor claimed with `identify()`.
    pub identified_as: Option<String>,
    /// Whether that claim carried a valid `userHash`.
    pub identity_verified: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
