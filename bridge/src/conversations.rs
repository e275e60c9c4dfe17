//! Conversations and their membership: what the MQTT ACL asks about and
//! what the server API changes.
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use entity::{conversation, conversation_member};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use crate::{ids::random_id, users};

/// Most members a conversation created in one request may name.
pub const MAX_INITIAL_MEMBERS: usize = 1000;
/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

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

    fn parse(stored: &str) -> Result<Self, DbErr> {
        match stored {
            "direct" => Ok(ConversationKind::Direct),
            "group" => Ok(ConversationKind::Group),
            "channel" => Ok(ConversationKind::Channel),
            "support" => Ok(ConversationKind::Support),
            other => Err(DbErr::Type(format!("unknown conversation kind {other:?}"))),
        }
    }
}

/// A request to create a conversation; member ids are already validated `sub`s.
#[derive(Debug, Clone)]
pub struct NewConversation {
    pub kind: ConversationKind,
    pub title: Option<String>,
    pub member_ids: Vec<String>,
}

/// A conversation with its members, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conversation {
    pub id: String,
    pub project_id: String,
    #[serde(rename = "type")]
    pub kind: ConversationKind,
    pub title: Option<String>,
    pub member_ids: Vec<String>,
    pub archived: bool,
    pub archived_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub async fn create(
    db: &DatabaseConnection,
    project_id: &str,
    request: NewConversation,
) -> Result<Conversation, ConversationError> {
    let members: BTreeSet<String> = request.member_ids.into_iter().collect();
    if members.len() > MAX_INITIAL_MEMBERS {
        return Err(ConversationError::Invalid(format!("at most {MAX_INITIAL_MEMBERS} members per request")));
    }
    if request.kind == ConversationKind::Direct && members.len() != 2 {
        return Err(ConversationError::Invalid("a direct conversation has exactly two distinct members".into()));
    }
    let title = request.title.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    if title.as_ref().is_some_and(|t| t.chars().count() > MAX_TITLE_CHARS) {
        return Err(ConversationError::Invalid(format!("title is longer than {MAX_TITLE_CHARS} characters")));
    }
    let now = Utc::now();
    let id = random_id("conv_", 16);
    let txn = db.begin().await?;
    conversation::ActiveModel {
        id: Set(id.clone()),
        project_id: Set(project_id.to_owned()),
        kind: Set(request.kind.as_str().to_owned()),
        title: Set(title),
        archived_at: Set(None),
        last_seq: Set(0),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    for member in &members {
        insert_member(&txn, project_id, &id, member, "member").await?;
    }
    txn.commit().await?;
    get(db, project_id, &id).await
}

pub async fn get(db: &DatabaseConnection, project_id: &str, id: &str) -> Result<Conversation, ConversationError> {
    let row = find_row(db, project_id, id).await?;
    let member_ids = conversation_member::Entity::find()
        .filter(conversation_member::Column::ConversationId.eq(id))
        .order_by_asc(conversation_member::Column::UserId)
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    Ok(Conversation {
        kind: ConversationKind::parse(&row.kind)?,
        id: row.id,
        project_id: row.project_id,
        title: row.title,
        member_ids,
        archived: row.archived_at.is_some(),
        archived_at: row.archived_at,
        created_at: row.created_at,
    })
}

/// Adds `user_id`; returns false when it already was a member.
pub async fn add_member(
    db: &DatabaseConnection,
    project_id: &str,
    id: &str,
    user_id: &str,
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
    let txn = db.begin().await?;
    insert_member(&txn, project_id, id, user_id, "member").await?;
    txn.commit().await?;
    Ok(true)
}

/// Removes `user_id`; returns false when it was not a member.
pub async fn remove_member(
    db: &DatabaseConnection,
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

/// Archives the conversation (idempotent) and returns it.
pub async fn archive(db: &DatabaseConnection, project_id: &str, id: &str) -> Result<Conversation, ConversationError> {
    let row = find_row(db, project_id, id).await?;
    if row.archived_at.is_none() {
        let mut active: conversation::ActiveModel = row.into();
        active.archived_at = Set(Some(Utc::now()));
        active.update(db).await?;
    }
    get(db, project_id, id).await
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
    role: &str,
) -> Result<(), DbErr> {
    users::ensure_exists(db, project_id, user_id).await?;
    conversation_member::ActiveModel {
        conversation_id: Set(conversation_id.to_owned()),
        user_id: Set(user_id.to_owned()),
        project_id: Set(project_id.to_owned()),
        role: Set(role.to_owned()),
        joined_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}
