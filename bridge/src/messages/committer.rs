//! The group-commit writer: every send goes through one task that stores
//! whatever sends are waiting in one transaction, so a busy conversation
//! pays one commit per batch, not per message. A send is answered only after
//! its batch committed: what a sender saw acknowledged is durable.
use chrono::Utc;
use entity::{conversation, message};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set,
    TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};

use super::store::{sender, MessageView};
use super::{MessageError, NewMessage};
use crate::ids::random_id;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommitterSettings {
    /// Most sends stored in one transaction.
    pub max_batch: usize,
    /// Sends waiting for the writer before senders wait to enqueue.
    pub queue: usize,
}

impl Default for CommitterSettings {
    fn default() -> Self {
        CommitterSettings { max_batch: 256, queue: 10_000 }
    }
}

/// The result of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    pub message: MessageView,
    /// True when `client_msg_id` matched an earlier send: nothing new was stored.
    pub duplicate: bool,
}

type Reply = oneshot::Sender<Result<SendOutcome, MessageError>>;

/// Hands sends to the writer task.
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::Sender<(NewMessage, Reply)>,
}

impl Committer {
    /// Starts the writer. `on_commit(project_id, message)` runs for each newly
    /// stored message, in `seq` order, right after its batch committed (to
    /// publish its event before the sender hears back).
    pub fn spawn(
        db: DatabaseConnection,
        settings: CommitterSettings,
        on_commit: impl Fn(&str, &MessageView) + Send + Sync + 'static,
    ) -> Committer {
        let (queue, requests) = mpsc::channel(settings.queue);
        tokio::spawn(write_batches(db, settings.max_batch.max(1), requests, on_commit));
        Committer { queue }
    }

    /// Stores `message` (or finds the one its `client_msg_id` already stored).
    pub async fn send(&self, message: NewMessage) -> Result<SendOutcome, MessageError> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send((message, reply)).await.map_err(|_| MessageError::Unavailable)?;
        outcome.await.map_err(|_| MessageError::Unavailable)?
    }
}

async fn write_batches(
    db: DatabaseConnection,
    max_batch: usize,
    mut requests: mpsc::Receiver<(NewMessage, Reply)>,
    on_commit: impl Fn(&str, &MessageView),
) {
    let mut batch = Vec::with_capacity(max_batch);
    // Whatever queued while the previous batch was committing forms the next
    // one: no artificial delay when idle, large batches under load.
    while requests.recv_many(&mut batch, max_batch).await > 0 {
        let (messages, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        match store_batch(&db, &messages).await {
            Ok(outcomes) => {
                for ((outcome, reply), new) in outcomes.into_iter().zip(replies).zip(&messages) {
                    if !outcome.duplicate {
                        on_commit(&new.project_id, &outcome.message);
                    }
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                tracing::error!(%error, sends = messages.len(), "storing a batch of messages failed");
                for reply in replies {
                    let _ = reply.send(Err(MessageError::Database(DbErr::Custom(error.to_string()))));
                }
            }
        }
    }
}

async fn store_batch(db: &DatabaseConnection, messages: &[NewMessage]) -> Result<Vec<SendOutcome>, DbErr> {
    let txn = db.begin().await?;
    let mut outcomes = Vec::with_capacity(messages.len());
    for new in messages {
        outcomes.push(store_one(&txn, new).await?);
    }
    txn.commit().await?;
    Ok(outcomes)
}

async fn store_one(txn: &impl ConnectionTrait, new: &NewMessage) -> Result<SendOutcome, DbErr> {
    let sender = sender(txn, &new.project_id, &new.sender_id).await?;
    if let Some(client_msg_id) = &new.client_msg_id {
        let earlier = message::Entity::find()
            .filter(message::Column::ConversationId.eq(&new.conversation_id))
            .filter(message::Column::SenderId.eq(&new.sender_id))
            .filter(message::Column::ClientMsgId.eq(client_msg_id))
            .one(txn)
            .await?;
        if let Some(row) = earlier {
            return Ok(SendOutcome { message: MessageView::from_row(row, sender), duplicate: true });
        }
    }
    let seq = next_seq(txn, &new.conversation_id).await?;
    let now = Utc::now();
    let row = message::ActiveModel {
        id: Set(random_id("msg_", 20)),
        conversation_id: Set(new.conversation_id.clone()),
        project_id: Set(new.project_id.clone()),
        seq: Set(seq),
        sender_id: Set(new.sender_id.clone()),
        client_msg_id: Set(new.client_msg_id.clone()),
        kind: Set(new.kind),
        content: Set(new.content.clone()),
        p1: Set(new.p1.clone()),
        p2: Set(new.p2.clone()),
        p3: Set(new.p3.clone()),
        reply_to_message_id: Set(new.reply_to_message_id.clone()),
        edited: Set(false),
        is_deleted: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(txn)
    .await?;
    Ok(SendOutcome { message: MessageView::from_row(row, sender), duplicate: false })
}

/// Takes the conversation's next `seq` inside the transaction: the row lock
/// (PostgreSQL) or the database write lock (SQLite) keeps it gapless and
/// unique even with several writers.
async fn next_seq(txn: &impl ConnectionTrait, conversation_id: &str) -> Result<i64, DbErr> {
    conversation::Entity::update_many()
        .col_expr(conversation::Column::LastSeq, Expr::col(conversation::Column::LastSeq).add(1))
        .filter(conversation::Column::Id.eq(conversation_id))
        .exec(txn)
        .await?;
    let row = conversation::Entity::find_by_id(conversation_id.to_owned())
        .one(txn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("conversation {conversation_id}")))?;
    Ok(row.last_seq)
}
