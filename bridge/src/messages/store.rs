//! Rows ↔ the message shape clients see, and the statements on single messages.
use chrono::{DateTime, Utc};
use entity::{message, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;

use super::MessageError;

/// Who sent a message, as UIs show it (from the identity-token claims).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sender {
    pub id: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
}

/// A message as events, replies and history carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageView {
    pub id: String,
    pub conversation_id: String,
    pub seq: i64,
    pub sender: Sender,
    #[serde(rename = "type")]
    pub kind: i16,
    pub content: String,
    pub p1: Option<String>,
    pub p2: Option<String>,
    pub p3: Option<String>,
    pub reply_to_message_id: Option<String>,
    pub client_msg_id: Option<String>,
    pub edited: bool,
    pub is_deleted: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl MessageView {
    pub(crate) fn from_row(row: message::Model, sender: Sender) -> Self {
        MessageView {
            id: row.id,
            conversation_id: row.conversation_id,
            seq: row.seq,
            sender,
            kind: row.kind,
            content: row.content,
            p1: row.p1,
            p2: row.p2,
            p3: row.p3,
            reply_to_message_id: row.reply_to_message_id,
            client_msg_id: row.client_msg_id,
            edited: row.edited,
            is_deleted: row.is_deleted,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

pub(crate) async fn sender(db: &impl ConnectionTrait, project_id: &str, user_id: &str) -> Result<Sender, sea_orm::DbErr> {
    let row = user::Entity::find()
        .filter(user::Column::ProjectId.eq(project_id))
        .filter(user::Column::ExternalId.eq(user_id))
        .one(db)
        .await?;
    Ok(Sender {
        id: user_id.to_owned(),
        name: row.as_ref().and_then(|u| u.name.clone()),
        avatar_url: row.and_then(|u| u.avatar_url),
    })
}

async fn view(db: &impl ConnectionTrait, project_id: &str, row: message::Model) -> Result<MessageView, sea_orm::DbErr> {
    let sender = sender(db, project_id, &row.sender_id).await?;
    Ok(MessageView::from_row(row, sender))
}

/// Applies `change` to the user's own, not deleted message and stores it.
async fn change_own_message(
    db: &impl ConnectionTrait,
    project_id: &str,
    user_id: &str,
    message_id: &str,
    change: impl FnOnce(&mut message::ActiveModel),
) -> Result<MessageView, MessageError> {
    let row = message::Entity::find_by_id(message_id.to_owned())
        .filter(message::Column::ProjectId.eq(project_id))
        .one(db)
        .await?
        .ok_or(MessageError::NotFound)?;
    if row.sender_id != user_id {
        return Err(MessageError::NotSender);
    }
    if row.is_deleted {
        return Err(MessageError::Deleted);
    }
    let mut active: message::ActiveModel = row.into();
    change(&mut active);
    active.updated_at = Set(Utc::now());
    let row = active.update(db).await?;
    Ok(view(db, project_id, row).await?)
}

/// The message, for membership checks before changing it.
pub async fn find(db: &impl ConnectionTrait, project_id: &str, message_id: &str) -> Result<Option<message::Model>, sea_orm::DbErr> {
    message::Entity::find_by_id(message_id.to_owned()).filter(message::Column::ProjectId.eq(project_id)).one(db).await
}

/// Replaces the content of the user's own message and marks it edited.
pub async fn edit(
    db: &impl ConnectionTrait,
    project_id: &str,
    user_id: &str,
    message_id: &str,
    content: &str,
) -> Result<MessageView, MessageError> {
    change_own_message(db, project_id, user_id, message_id, |active| {
        active.content = Set(content.to_owned());
        active.edited = Set(true);
    })
    .await
}

/// Soft-deletes the user's own message: content and `p1`–`p3` cleared,
/// `is_deleted` set; the row and its `seq` stay.
pub async fn delete(
    db: &impl ConnectionTrait,
    project_id: &str,
    user_id: &str,
    message_id: &str,
) -> Result<MessageView, MessageError> {
    change_own_message(db, project_id, user_id, message_id, |active| {
        active.content = Set(String::new());
        active.p1 = Set(None);
        active.p2 = Set(None);
        active.p3 = Set(None);
        active.is_deleted = Set(true);
    })
    .await
}

/// Messages with `seq > after_seq`, oldest first, at most `limit`; and
/// whether more follow.
pub async fn history_after(
    db: &impl ConnectionTrait,
    project_id: &str,
    conversation_id: &str,
    after_seq: i64,
    limit: u64,
) -> Result<(Vec<MessageView>, bool), sea_orm::DbErr> {
    let mut rows = message::Entity::find()
        .filter(message::Column::ConversationId.eq(conversation_id))
        .filter(message::Column::ProjectId.eq(project_id))
        .filter(message::Column::Seq.gt(after_seq))
        .order_by_asc(message::Column::Seq)
        .limit(limit + 1)
        .all(db)
        .await?;
    let has_more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let mut senders = std::collections::HashMap::new();
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        if !senders.contains_key(&row.sender_id) {
            senders.insert(row.sender_id.clone(), sender(db, project_id, &row.sender_id).await?);
        }
        let sender = senders[&row.sender_id].clone();
        views.push(MessageView::from_row(row, sender));
    }
    Ok((views, has_more))
}
