//! Conversations and their membership: what the MQTT ACL asks about and
//! what the server API changes.
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use entity::{conversation, conversation_member};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    QueryOrder, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use crate::{ids::random_id, users};

/// Most members a conversation created in one request may name.
pub const MAX_INITIAL_MEMBERS: usize = 1000;
/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Most members of one conversation, however they joined.
pub const MAX_MEMBERS: u64 = 50_000;

#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    /// No such conversation in this project: the caller should not retry.
    #[error("conversation not found")]
    NotFound,
    /// The request breaks a rule; the message says which.
    #[error("{0}")]
    Invalid(String),
    /// The conversation is archived and no longer changes.
    #[error("conversation is archived")]
    Archived,
    #[error(transparent)]
    Database(#[from] DbErr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum ConversationKind {
    /// Exactly two members.
    Direct,
    /// Invited members only.
    Group,
    /// Open to every user of the project who joins.
    Channel,
    /// A customer and the site's agents.
    Support,
}

impl ConversationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationKind::Direct => "direct",
            ConversationKind::Group => "group",
            ConversationKind::Channel => "channel",
            ConversationKind::Support => "support",
        }
    }

    pub(crate) fn parse(stored: &str) -> Result<Self, DbErr> {
        match stored {
            "direct" => Ok(ConversationKind::Direct),
            "group" => Ok(ConversationKind::Group),
            "channel" => Ok(ConversationKind::Channel),
            "support" => Ok(ConversationKind::Support),
            other => Err(DbErr::Type(format!("unknown conversation kind {other:?}"))),
        }
    }
}

/// A member's rights in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum Role {
    /// May also delete other members' messages.
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub(crate) fn parse(stored: &str) -> Role {
        if stored == "admin" {
            Role::Admin
        } else {
            Role::Member
        }
    }
}

/// A request to create a conversation; member ids are already validated `sub`s.
#[derive(Debug, Clone)]
pub struct NewConversation {
    pub kind: ConversationKind,
    pub title: Option<String>,
    pub member_ids: Vec<String>,
    /// Members who become admins (added as members when not listed).
    pub admin_ids: Vec<String>,
    /// Makes the conversation unique in its project: creating it again
    /// returns the existing one (a customer's support conversation is
    /// `support|{user}`). Direct conversations are keyed by their pair.
    pub unique_key: Option<String>,
}

/// A conversation with its members, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Conversation {
    pub id: String,
    pub project_id: String,
    #[serde(rename = "type")]
    pub kind: ConversationKind,
    pub title: Option<String>,
    pub member_ids: Vec<String>,
    pub admin_ids: Vec<String>,
    pub archived: bool,
    pub archived_at: Option<DateTime<Utc>>,
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
}

/// The result of `create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub conversation: Conversation,
    /// False when a direct conversation between the two users already existed
    /// and is returned instead.
    pub created: bool,
}

/// The key that makes a direct conversation unique per pair of users
/// (`|` cannot occur in a user id).
fn direct_key(members: &BTreeSet<String>) -> String {
    members.iter().map(String::as_str).collect::<Vec<_>>().join("|")
}

/// Creates the conversation; a direct one between two users who already
/// have one returns the existing conversation.
pub async fn create(
    db: &DatabaseTransaction,
    project_id: &str,
    request: NewConversation,
) -> Result<Created, ConversationError> {
    let admins: BTreeSet<String> = request.admin_ids.into_iter().collect();
    let members: BTreeSet<String> = request.member_ids.into_iter().chain(admins.iter().cloned()).collect();
    if members.len() > MAX_INITIAL_MEMBERS {
        return Err(ConversationError::Invalid(format!("at most {MAX_INITIAL_MEMBERS} members per request")));
    }
    let direct = request.kind == ConversationKind::Direct;
    if direct && members.len() != 2 {
        return Err(ConversationError::Invalid("a direct conversation has exactly two distinct members".into()));
    }
    if direct && !admins.is_empty() {
        return Err(ConversationError::Invalid("a direct conversation has no admins".into()));
    }
    let title = request.title.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    if let Some(title) = &title {
        crate::fields::check("title", title, MAX_TITLE_CHARS).map_err(|error| ConversationError::Invalid(error.to_string()))?;
    }
    let key = if direct { Some(direct_key(&members)) } else { request.unique_key };
    if let Some(key) = &key {
        if let Some(existing) = find_direct(db, project_id, key).await? {
            return Ok(Created { conversation: get(db, project_id, &existing).await?, created: false });
        }
    }
    let now = crate::clock::now();
    let id = random_id("conv_", 16);
    let txn = db.begin().await?;
    let inserted = conversation::ActiveModel {
        id: Set(id.clone()),
        project_id: Set(project_id.to_owned()),
        kind: Set(request.kind.as_str().to_owned()),
        title: Set(title),
        archived_at: Set(None),
        last_seq: Set(0),
        direct_key: Set(key.clone()),
        last_activity_at: Set(Some(now)),
        created_at: Set(now),
    }
    .insert(&txn)
    .await;
    if let (Err(error), Some(key)) = (&inserted, &key) {
        // Created concurrently (by the other user of a pair): theirs stands.
        drop(txn);
        return match find_direct(db, project_id, key).await? {
            Some(existing) => Ok(Created { conversation: get(db, project_id, &existing).await?, created: false }),
            None => Err(ConversationError::Database(DbErr::Custom(error.to_string()))),
        };
    }
    inserted?;
    for member in &members {
        let role = if admins.contains(member) { Role::Admin } else { Role::Member };
        insert_member(&txn, project_id, &id, member, role).await?;
    }
    txn.commit().await?;
    Ok(Created { conversation: get(db, project_id, &id).await?, created: true })
}

/// The conversation created with `unique_key` (or a direct pair's key).
pub async fn find_direct(db: &impl ConnectionTrait, project_id: &str, key: &str) -> Result<Option<String>, DbErr> {
    Ok(conversation::Entity::find()
        .filter(conversation::Column::ProjectId.eq(project_id))
        .filter(conversation::Column::DirectKey.eq(key))
        .one(db)
        .await?
        .map(|row| row.id))
}

pub async fn get(db: &impl ConnectionTrait, project_id: &str, id: &str) -> Result<Conversation, ConversationError> {
    let row = find_row(db, project_id, id).await?;
    let members = conversation_member::Entity::find()
        .filter(conversation_member::Column::ConversationId.eq(id))
        .order_by_asc(conversation_member::Column::UserId)
        .all(db)
        .await?;
    let admin_ids = members.iter().filter(|m| Role::parse(&m.role) == Role::Admin).map(|m| m.user_id.clone()).collect();
    let member_ids = members.into_iter().map(|m| m.user_id).collect();
    Ok(Conversation {
        kind: ConversationKind::parse(&row.kind)?,
        id: row.id,
        project_id: row.project_id,
        title: row.title,
        member_ids,
        admin_ids,
        archived: row.archived_at.is_some(),
        last_seq: row.last_seq,
        archived_at: row.archived_at,
        created_at: row.created_at,
    })
}

/// Adds `user_id` with `role`; returns false when it already was a member
/// (its role is left as it was).
pub async fn add_member(
    db: &impl ConnectionTrait,
    project_id: &str,
    id: &str,
    user_id: &str,
    role: Role,
) -> Result<bool, ConversationError> {
    let row = find_row(db, project_id, id).await?;
    if row.archived_at.is_some() {
        return Err(ConversationError::Archived);
    }
    if is_member(db, project_id, id, user_id).await? {
        return Ok(false);
    }
    if row.kind == ConversationKind::Direct.as_str() {
        return Err(ConversationError::Invalid("a direct conversation cannot gain members".into()));
    }
    let members = conversation_member::Entity::find()
        .filter(conversation_member::Column::ConversationId.eq(id))
        .count(db)
        .await?;
    if members >= MAX_MEMBERS {
        return Err(ConversationError::Invalid(format!("a conversation has at most {MAX_MEMBERS} members")));
    }
    insert_member(db, project_id, id, user_id, role).await?;
    Ok(true)
}

/// Removes `user_id`; returns false when it was not a member.
pub async fn remove_member(
    db: &impl ConnectionTrait,
    project_id: &str,
    id: &str,
    user_id: &str,
) -> Result<bool, ConversationError> {
    find_row(db, project_id, id).await?;
    let result = conversation_member::Entity::delete_many()
        .filter(conversation_member::Column::ConversationId.eq(id))
        .filter(conversation_member::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Archives the conversation (idempotent) and returns it, with whether this
/// call archived it.
pub async fn archive(db: &impl ConnectionTrait, project_id: &str, id: &str) -> Result<(Conversation, bool), ConversationError> {
    let row = find_row(db, project_id, id).await?;
    let archiving = row.archived_at.is_none();
    if archiving {
        let mut active: conversation::ActiveModel = row.into();
        active.archived_at = Set(Some(crate::clock::now()));
        active.update(db).await?;
    }
    Ok((get(db, project_id, id).await?, archiving))
}

/// Whether `user_id` belongs to conversation `id` of `project_id`: the one
/// question the MQTT ACL asks on every SUBSCRIBE to a conversation topic.
pub async fn is_member(db: &impl ConnectionTrait, project_id: &str, id: &str, user_id: &str) -> Result<bool, DbErr> {
    let count = conversation_member::Entity::find()
        .filter(conversation_member::Column::ConversationId.eq(id))
        .filter(conversation_member::Column::UserId.eq(user_id))
        .filter(conversation_member::Column::ProjectId.eq(project_id))
        .count(db)
        .await?;
    Ok(count > 0)
}

/// Every conversation `user_id` belongs to in `project_id`: what a broker
/// plugin caches to judge the user's subscriptions and deliveries.
pub async fn memberships_of(db: &impl ConnectionTrait, project_id: &str, user_id: &str) -> Result<Vec<String>, DbErr> {
    conversation_member::Entity::find()
        .select_only()
        .column(conversation_member::Column::ConversationId)
        .filter(conversation_member::Column::ProjectId.eq(project_id))
        .filter(conversation_member::Column::UserId.eq(user_id))
        .into_tuple()
        .all(db)
        .await
}

pub(crate) async fn find_row(
    db: &impl ConnectionTrait,
    project_id: &str,
    id: &str,
) -> Result<conversation::Model, ConversationError> {
    conversation::Entity::find_by_id(id.to_owned())
        .filter(conversation::Column::ProjectId.eq(project_id))
        .one(db)
        .await?
        .ok_or(ConversationError::NotFound)
}

async fn insert_member(
    db: &impl ConnectionTrait,
    project_id: &str,
    conversation_id: &str,
    user_id: &str,
    role: Role,
) -> Result<(), DbErr> {
    users::ensure_exists(db, project_id, user_id).await?;
    conversation_member::ActiveModel {
        conversation_id: Set(conversation_id.to_owned()),
        user_id: Set(user_id.to_owned()),
        project_id: Set(project_id.to_owned()),
        role: Set(role.as_str().to_owned()),
        joined_at: Set(crate::clock::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}
