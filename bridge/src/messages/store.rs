//! Rows ↔ the message shape clients see, and the statements on single messages.
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use entity::{message, reaction, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;

use super::MessageError;
use crate::attachments::{AttachmentRef, AttachmentView, FileStore};

/// Who sent a message, as UIs show it (from the identity-token claims).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Sender {
    pub id: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
}

impl Sender {
    /// The author of system messages: no member, an empty id (no user id
    /// can be empty).
    pub fn platform() -> Sender {
        Sender { id: String::new(), name: None, avatar_url: None }
    }
}

/// The reactions with one emoji on a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ReactionGroup {
    pub emoji: String,
    pub count: usize,
    pub user_ids: Vec<String>,
}

/// A message as events, replies and history carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
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
    /// With URLs signed when the view was made.
    pub attachments: Vec<AttachmentView>,
    /// By emoji, in the order first used; empty on a new message.
    pub reactions: Vec<ReactionGroup>,
    pub edited: bool,
    pub is_deleted: bool,
    /// Posted by the platform (the site's backend), never by a member.
    pub system: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl MessageView {
    pub(crate) fn from_row(row: message::Model, sender: Sender, files: &FileStore) -> Self {
        let attachments = row
            .attachments
            .as_deref()
            .and_then(|stored| serde_json::from_str::<Vec<AttachmentRef>>(stored).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|file| files.sign(file))
            .collect();
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
            attachments,
            reactions: Vec::new(),
            edited: row.edited,
            is_deleted: row.is_deleted,
            system: row.system,
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

/// The message, for membership and rights checks before changing it.
pub async fn find(db: &impl ConnectionTrait, project_id: &str, message_id: &str) -> Result<Option<message::Model>, sea_orm::DbErr> {
    message::Entity::find_by_id(message_id.to_owned()).filter(message::Column::ProjectId.eq(project_id)).one(db).await
}

/// Stores `change` applied to `row` (already checked: rights, not deleted).
async fn change(
    db: &impl ConnectionTrait,
    files: &FileStore,
    project_id: &str,
    row: message::Model,
    change: impl FnOnce(&mut message::ActiveModel),
) -> Result<MessageView, MessageError> {
    if row.is_deleted {
        return Err(MessageError::Deleted);
    }
    let mut active: message::ActiveModel = row.into();
    change(&mut active);
    active.updated_at = Set(crate::clock::now());
    let row = active.update(db).await?;
    let sender = sender(db, project_id, &row.sender_id).await?;
    let mut views = vec![MessageView::from_row(row, sender, files)];
    attach_reactions(db, &mut views).await?;
    Ok(views.remove(0))
}

/// Replaces the content of `row` and marks it edited.
pub async fn edit(
    db: &impl ConnectionTrait,
    files: &FileStore,
    project_id: &str,
    row: message::Model,
    content: &str,
) -> Result<MessageView, MessageError> {
    change(db, files, project_id, row, |active| {
        active.content = Set(content.to_owned());
        active.edited = Set(true);
    })
    .await
}

/// Soft-deletes `row`: content, `p1`–`p3` and attachments cleared,
/// `is_deleted` set; the row and its `seq` stay.
pub async fn delete(
    db: &impl ConnectionTrait,
    files: &FileStore,
    project_id: &str,
    row: message::Model,
) -> Result<MessageView, MessageError> {
    change(db, files, project_id, row, |active| {
        active.content = Set(String::new());
        active.p1 = Set(None);
        active.p2 = Set(None);
        active.p3 = Set(None);
        active.attachments = Set(None);
        active.is_deleted = Set(true);
    })
    .await
}

/// Which part of a conversation's history a page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The oldest messages with `seq > after`, oldest first (catching up).
    After(i64),
    /// The newest messages with `seq < before`, still returned oldest first
    /// (scrolling back); `i64::MAX` for the newest page.
    Before(i64),
}

/// One page of history with its reactions, and whether more messages lie
/// beyond it in the page's direction.
pub async fn history(
    db: &impl ConnectionTrait,
    files: &FileStore,
    project_id: &str,
    conversation_id: &str,
    page: Page,
    limit: u64,
) -> Result<(Vec<MessageView>, bool), sea_orm::DbErr> {
    let query = message::Entity::find()
        .filter(message::Column::ConversationId.eq(conversation_id))
        .filter(message::Column::ProjectId.eq(project_id))
        .limit(limit + 1);
    let query = match page {
        Page::After(after) => query.filter(message::Column::Seq.gt(after)).order_by_asc(message::Column::Seq),
        Page::Before(before) => query.filter(message::Column::Seq.lt(before)).order_by_desc(message::Column::Seq),
    };
    let mut rows = query.all(db).await?;
    let has_more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    if matches!(page, Page::Before(_)) {
        rows.reverse();
    }
    let mut senders = HashMap::new();
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        if !senders.contains_key(&row.sender_id) {
            senders.insert(row.sender_id.clone(), sender(db, project_id, &row.sender_id).await?);
        }
        let sender = senders[&row.sender_id].clone();
        views.push(MessageView::from_row(row, sender, files));
    }
    attach_reactions(db, &mut views).await?;
    Ok((views, has_more))
}

/// Fills each view's `reactions` with one query.
async fn attach_reactions(db: &impl ConnectionTrait, views: &mut [MessageView]) -> Result<(), sea_orm::DbErr> {
    if views.is_empty() {
        return Ok(());
    }
    let rows = reaction::Entity::find()
        .filter(reaction::Column::MessageId.is_in(views.iter().map(|view| view.id.clone())))
        .order_by_asc(reaction::Column::CreatedAt)
        .order_by_asc(reaction::Column::UserId)
        .all(db)
        .await?;
    let mut by_message: HashMap<String, BTreeMap<usize, ReactionGroup>> = HashMap::new();
    let mut order: HashMap<(String, String), usize> = HashMap::new();
    for row in rows {
        let next = order.len();
        let position = *order.entry((row.message_id.clone(), row.emoji.clone())).or_insert(next);
        let group = by_message
            .entry(row.message_id)
            .or_default()
            .entry(position)
            .or_insert_with(|| ReactionGroup { emoji: row.emoji, count: 0, user_ids: Vec::new() });
        group.count += 1;
        group.user_ids.push(row.user_id);
    }
    for view in views {
        if let Some(groups) = by_message.remove(&view.id) {
            view.reactions = groups.into_values().collect();
        }
    }
    Ok(())
}
