//! External users: created or updated from identity-token claims, keyed on
//! (project, `sub`).
use entity::user;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict, SimpleExpr};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

/// What an identity token says about a user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserProfile {
    pub external_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub avatar_url: Option<String>,
}

/// Whether `id` can be a user id: the `sub` rule of DESIGN §3 (1–128 of
/// `A-Z a-z 0-9 _ . : @ -`), which tokens are held to as well.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '@' | '-'))
}

/// Inserts the user or refreshes its profile from newer claims.
pub async fn upsert(db: &impl ConnectionTrait, project_id: &str, profile: &UserProfile) -> Result<(), DbErr> {
    let now = crate::clock::now();
    let row = user::ActiveModel {
        project_id: Set(project_id.to_owned()),
        external_id: Set(profile.external_id.clone()),
        name: Set(profile.name.clone()),
        email: Set(profile.email.clone()),
        avatar_url: Set(profile.avatar_url.clone()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    user::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([user::Column::ProjectId, user::Column::ExternalId])
                .update_columns([user::Column::Name, user::Column::Email, user::Column::AvatarUrl, user::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// When the user's sessions were last revoked: tokens issued at or before
/// that second are refused.
pub async fn sessions_revoked_at(
    db: &impl ConnectionTrait,
    project_id: &str,
    external_id: &str,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok(find_row(db, project_id, external_id).await?.and_then(|row| row.sessions_revoked_at))
}

/// Refuses, from now on, every token of the user issued until now.
pub async fn revoke_sessions(db: &impl ConnectionTrait, project_id: &str, external_id: &str) -> Result<DateTime<Utc>, DbErr> {
    let now = crate::clock::now();
    set_columns(db, project_id, external_id, [(user::Column::SessionsRevokedAt, Expr::value(now))]).await?;
    Ok(now)
}

/// Sets `columns` of the user, creating it first when unknown.
async fn set_columns(
    db: &impl ConnectionTrait,
    project_id: &str,
    external_id: &str,
    columns: impl IntoIterator<Item = (user::Column, SimpleExpr)>,
) -> Result<(), DbErr> {
    ensure_exists(db, project_id, external_id).await?;
    let mut update = user::Entity::update_many();
    for (column, value) in columns {
        update = update.col_expr(column, value);
    }
    update
        .filter(user::Column::ProjectId.eq(project_id))
        .filter(user::Column::ExternalId.eq(external_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Makes sure a user named by the site (e.g. a conversation member) exists,
/// without touching the profile of one that already does.
pub async fn ensure_exists(db: &impl ConnectionTrait, project_id: &str, external_id: &str) -> Result<(), DbErr> {
    let now = crate::clock::now();
    let row = user::ActiveModel {
        project_id: Set(project_id.to_owned()),
        external_id: Set(external_id.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    user::Entity::insert(row)
        .on_conflict(OnConflict::columns([user::Column::ProjectId, user::Column::ExternalId]).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// A user as the server API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserRecord {
    pub user_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub avatar_url: Option<String>,
    /// Answers visitors' support conversations.
    pub agent: bool,
    /// The site user id a visitor gave with `identify()`, and whether it
    /// came with a valid `userHash`.
    pub identified_as: Option<String>,
    pub identity_verified: bool,
    /// Tokens issued until then are refused (not shown: the revoking
    /// backend knows it).
    #[serde(skip)]
    pub sessions_revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

async fn find_row(db: &impl ConnectionTrait, project_id: &str, external_id: &str) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find()
        .filter(user::Column::ProjectId.eq(project_id))
        .filter(user::Column::ExternalId.eq(external_id))
        .one(db)
        .await
}

pub async fn find(db: &impl ConnectionTrait, project_id: &str, external_id: &str) -> Result<Option<UserRecord>, DbErr> {
    Ok(find_row(db, project_id, external_id).await?.map(|row| UserRecord {
        user_id: row.external_id,
        name: row.name,
        email: row.email,
        avatar_url: row.avatar_url,
        agent: row.is_agent,
        identified_as: row.identified_as,
        identity_verified: row.identity_verified,
        sessions_revoked_at: row.sessions_revoked_at,
        created_at: row.created_at,
    }))
}

/// Marks the user an agent (or no longer one), creating it when unknown.
pub async fn set_agent(db: &impl ConnectionTrait, project_id: &str, external_id: &str, agent: bool) -> Result<(), DbErr> {
    set_columns(db, project_id, external_id, [(user::Column::IsAgent, Expr::value(agent))]).await
}

/// The project's agents, by user id.
pub async fn agents(db: &impl ConnectionTrait, project_id: &str) -> Result<Vec<String>, DbErr> {
    let rows = user::Entity::find()
        .filter(user::Column::ProjectId.eq(project_id))
        .filter(user::Column::IsAgent.eq(true))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|row| row.external_id).collect())
}

/// Records who a visitor says they are (`identify()`), verified or not.
pub async fn record_identity(
    db: &impl ConnectionTrait,
    project_id: &str,
    visitor_id: &str,
    identified_as: &str,
    verified: bool,
) -> Result<(), DbErr> {
    let columns = [
        (user::Column::IdentifiedAs, Expr::value(identified_as)),
        (user::Column::IdentityVerified, Expr::value(verified)),
        (user::Column::UpdatedAt, Expr::value(crate::clock::now())),
    ];
    set_columns(db, project_id, visitor_id, columns).await
}
