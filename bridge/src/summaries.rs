//! A user's conversations as a conversation list shows them — newest
//! activity first, each with its last message and unread count — and the
//! unread total across all of them.
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{conversation, conversation_member, message, read_receipt};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;

use crate::attachments::FileStore;
use crate::cache::EngineCache;
use crate::conversations::{ConversationKind, Role};
use crate::messages::MessageView;

/// Most conversations one `conversations.list` page holds.
pub const MAX_LIST_PAGE: u64 = 100;

/// One entry of a user's conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ConversationSummary {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ConversationKind,
    pub title: Option<String>,
    pub archived: bool,
    /// The listing user's role.
    pub role: Role,
    pub member_count: u64,
    /// Both members of a direct conversation (so a UI can name the other
    /// one); absent for other types, which may have thousands.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub member_ids: Option<Vec<String>>,
    pub last_seq: i64,
    pub last_read_seq: i64,
    pub unread: i64,
    pub last_message: Option<MessageView>,
    pub last_activity_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// Where the previous page of a conversation list ended: its last entry's
/// `last_activity_at` and `id` (several conversations can share an instant —
/// every conversation of one commit batch does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Cursor {
    pub before: DateTime<Utc>,
    pub before_id: Option<String>,
}

/// The user's conversations, most recent activity first (ties by id,
/// descending); `after` continues from the previous page.
pub async fn list(
    db: &DatabaseConnection,
    cache: &EngineCache,
    files: &FileStore,
    project_id: &str,
    user_id: &str,
    after: Option<&Cursor>,
    limit: u64,
) -> Result<(Vec<ConversationSummary>, bool), DbErr> {
    let mine = Query::select()
        .column(conversation_member::Column::ConversationId)
        .from(conversation_member::Entity)
        .and_where(Expr::col(conversation_member::Column::ProjectId).eq(project_id))
        .and_where(Expr::col(conversation_member::Column::UserId).eq(user_id))
        .to_owned();
    let mut query = conversation::Entity::find()
        .filter(Expr::col((conversation::Entity, conversation::Column::Id)).in_subquery(mine))
        .order_by_desc(conversation::Column::LastActivityAt)
        .order_by_desc(conversation::Column::Id)
        .limit(limit + 1);
    if let Some(cursor) = after {
        let older = conversation::Column::LastActivityAt.lt(cursor.before);
        query = query.filter(match &cursor.before_id {
            Some(id) => Condition::any().add(older).add(
                Condition::all()
                    .add(conversation::Column::LastActivityAt.eq(cursor.before))
                    .add(conversation::Column::Id.lt(id.as_str())),
            ),
            None => Condition::all().add(older),
        });
    }
    let mut rows = query.all(db).await?;
    let has_more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    if rows.is_empty() {
        return Ok((Vec::new(), false));
    }
    let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();

    let members = conversation_member::Entity::find()
        .filter(conversation_member::Column::ConversationId.is_in(ids.clone()))
        .filter(
            Condition::any()
                .add(conversation_member::Column::UserId.eq(user_id))
                .add(
                    conversation_member::Column::ConversationId.is_in(
                        rows.iter().filter(|row| row.kind == ConversationKind::Direct.as_str()).map(|row| row.id.clone()),
                    ),
                ),
        )
        .all(db)
        .await?;
    let counts: HashMap<String, i64> = conversation_member::Entity::find()
        .select_only()
        .column(conversation_member::Column::ConversationId)
        .column_as(conversation_member::Column::UserId.count(), "members")
        .filter(conversation_member::Column::ConversationId.is_in(ids.clone()))
        .group_by(conversation_member::Column::ConversationId)
        .into_tuple::<(String, i64)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let read: HashMap<String, i64> = read_receipt::Entity::find()
        .filter(read_receipt::Column::ConversationId.is_in(ids.clone()))
        .filter(read_receipt::Column::UserId.eq(user_id))
        .all(db)
        .await?
        .into_iter()
        .map(|row| (row.conversation_id, row.last_read_seq))
        .collect();
    let newest = rows
        .iter()
        .filter(|row| row.last_seq > 0)
        .fold(Condition::any(), |any, row| {
            any.add(message::Column::ConversationId.eq(row.id.clone()).and(message::Column::Seq.eq(row.last_seq)))
        });
    let mut last_messages: HashMap<String, message::Model> = HashMap::new();
    if !newest.is_empty() {
        for row in message::Entity::find().filter(newest).all(db).await? {
            last_messages.insert(row.conversation_id.clone(), row);
        }
    }

    let mut summaries = Vec::with_capacity(rows.len());
    for row in rows {
        let kind = ConversationKind::parse(&row.kind)?;
        let role = members
            .iter()
            .find(|m| m.conversation_id == row.id && m.user_id == user_id)
            .map_or(Role::Member, |m| Role::parse(&m.role));
        let member_ids = (kind == ConversationKind::Direct).then(|| {
            let mut ids: Vec<String> =
                members.iter().filter(|m| m.conversation_id == row.id).map(|m| m.user_id.clone()).collect();
            ids.sort();
            ids
        });
        let last_message = match last_messages.remove(&row.id) {
            Some(message) => {
                let sender = cache.sender(db, project_id, &message.sender_id).await?;
                Some(MessageView::from_row(message, sender, files))
            }
            None => None,
        };
        let last_read_seq = read.get(&row.id).copied().unwrap_or(0);
        summaries.push(ConversationSummary {
            member_count: Ord::max(counts.get(&row.id).copied().unwrap_or(0), 0) as u64,
            unread: Ord::max(row.last_seq - last_read_seq, 0),
            last_activity_at: row.last_activity_at.unwrap_or(row.created_at),
            archived: row.archived_at.is_some(),
            id: row.id,
            kind,
            title: row.title,
            role,
            member_ids,
            last_seq: row.last_seq,
            last_read_seq,
            last_message,
            created_at: row.created_at,
        });
    }
    Ok((summaries, has_more))
}

/// Unread messages across all of the user's conversations.
pub async fn unread_total(db: &impl ConnectionTrait, project_id: &str, user_id: &str) -> Result<i64, DbErr> {
    let statement = Query::select()
        .expr(Expr::cust(
            r#"CAST(COALESCE(SUM("conversations"."last_seq" - COALESCE("read_receipts"."last_read_seq", 0)), 0) AS BIGINT)"#,
        ))
        .from(conversation_member::Entity)
        .inner_join(
            conversation::Entity,
            Expr::col((conversation::Entity, conversation::Column::Id))
                .equals((conversation_member::Entity, conversation_member::Column::ConversationId)),
        )
        .left_join(
            read_receipt::Entity,
            Condition::all()
                .add(
                    Expr::col((read_receipt::Entity, read_receipt::Column::ConversationId))
                        .equals((conversation_member::Entity, conversation_member::Column::ConversationId)),
                )
                .add(
                    Expr::col((read_receipt::Entity, read_receipt::Column::UserId))
                        .equals((conversation_member::Entity, conversation_member::Column::UserId)),
                ),
        )
        .and_where(Expr::col((conversation_member::Entity, conversation_member::Column::ProjectId)).eq(project_id))
        .and_where(Expr::col((conversation_member::Entity, conversation_member::Column::UserId)).eq(user_id))
        .to_owned();
    let row = db.query_one(&statement).await?;
    match row {
        Some(row) => row.try_get_by_index::<i64>(0),
        None => Ok(0),
    }
}
