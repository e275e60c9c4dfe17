//! The group-commit writer: every send goes through one task that stores
//! whatever sends are waiting in one transaction, so a busy conversation
//! pays one commit per batch, not per message. A send is answered only after
//! its batch committed: what a sender saw acknowledged is durable.
use chrono::Utc;
use entity::{conversation, message};
use sea_orm::sea_query::{CaseStatement, Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter, Statement,
    TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::store::MessageView;
use super::{MessageError, NewMessage};
use crate::attachments::FileStore;
use crate::ids::random_id;
use crate::receipts;
use crate::webhooks::{Event, EventType, Outbox};

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
        files: Arc<FileStore>,
        outbox: Arc<Outbox>,
        settings: CommitterSettings,
        on_commit: impl Fn(&str, &MessageView) + Send + Sync + 'static,
    ) -> Committer {
        let (queue, requests) = mpsc::channel(settings.queue);
        tokio::spawn(write_batches(db, files, outbox, settings.max_batch.max(1), requests, on_commit));
        Committer { queue }
    }

    /// Queues `message` for storing and returns at once; the receiver gets
    /// the outcome when its batch committed. Messages are stored in the order
    /// they were queued, so a caller that queues in order keeps its order
    /// without waiting for each commit.
    pub async fn enqueue(&self, message: NewMessage) -> Result<PendingSend, MessageError> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send((message, reply)).await.map_err(|_| MessageError::Unavailable)?;
        Ok(PendingSend(outcome))
    }
}

/// A queued send; resolves once stored (or found stored already).
pub struct PendingSend(oneshot::Receiver<Result<SendOutcome, MessageError>>);

impl PendingSend {
    pub async fn outcome(self) -> Result<SendOutcome, MessageError> {
        self.0.await.map_err(|_| MessageError::Unavailable)?
    }
}

async fn write_batches(
    db: DatabaseConnection,
    files: Arc<FileStore>,
    outbox: Arc<Outbox>,
    max_batch: usize,
    mut requests: mpsc::Receiver<(NewMessage, Reply)>,
    on_commit: impl Fn(&str, &MessageView),
) {
    let mut batch = Vec::with_capacity(max_batch);
    // Whatever queued while the previous batch was committing forms the next
    // one: no artificial delay when idle, large batches under load.
    while requests.recv_many(&mut batch, max_batch).await > 0 {
        let (messages, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let outcomes = store_or_split(&db, &files, &outbox, &messages).await;
        for ((outcome, reply), new) in outcomes.into_iter().zip(replies).zip(&messages) {
            if let Ok(outcome) = &outcome {
                if !outcome.duplicate {
                    on_commit(&new.project_id, &outcome.message);
                }
            }
            let _ = reply.send(outcome.map_err(MessageError::Database));
        }
    }
}

/// Stores `messages` in as few transactions as the database accepts: a
/// batch it refuses is split in halves, again and again, so that only the
/// sends it refuses on their own fail — never the other users' sends that
/// shared their batch. (Values are checked at the edge; this is the second
/// wall.) A batch that failed for want of a connection is not split: every
/// part would fail the same way. Outcomes come back in `messages`' order.
async fn store_or_split(
    db: &DatabaseConnection,
    files: &FileStore,
    outbox: &Outbox,
    messages: &[NewMessage],
) -> Vec<Result<SendOutcome, DbErr>> {
    let mut outcomes = Vec::with_capacity(messages.len());
    // Ranges still to store, the next one last.
    let mut pending = Vec::new();
    pending.push(0..messages.len());
    while let Some(range) = pending.pop() {
        match store_batch(db, files, outbox, &messages[range.clone()]).await {
            Ok(stored) => outcomes.extend(stored.into_iter().map(Ok)),
            Err(error) if range.len() == 1 || matches!(error, DbErr::Conn(_) | DbErr::ConnectionAcquire(_)) => {
                tracing::error!(%error, sends = range.len(), "storing messages failed");
                let reason = error.to_string();
                outcomes.extend(range.map(|_| Err(DbErr::Custom(reason.clone()))));
            }
            Err(error) => {
                tracing::warn!(%error, sends = range.len(), "a batch of messages was refused; storing it in halves");
                let middle = range.start + range.len() / 2;
                pending.push(middle..range.end);
                pending.push(range.start..middle);
            }
        }
    }
    outcomes
}

/// Stores a batch in one transaction with a handful of statements,
/// whatever its size: one lookup of earlier `client_msg_id`s, one `last_seq`
/// bump for all its conversations, one multi-row insert, one upsert moving
/// each sender's read position to its newest message — and, when a webhook
/// or callback URL wants `message.created`, one insert of their deliveries.
async fn store_batch(
    db: &DatabaseConnection,
    files: &FileStore,
    outbox: &Outbox,
    messages: &[NewMessage],
) -> Result<Vec<SendOutcome>, DbErr> {
    let txn = db.begin().await?;
    let earlier = earlier_sends(&txn, messages).await?;

    // Decide, in order, which sends are new and which repeat an earlier one
    // (stored before, or earlier in this same batch).
    enum Plan {
        Stored(Box<message::Model>),
        SameAsNew(usize),
        New(usize),
    }
    let mut plans = Vec::with_capacity(messages.len());
    let mut fresh_keys: HashMap<(&str, &str, &str), usize> = HashMap::new();
    let mut fresh: Vec<&NewMessage> = Vec::new();
    for new in messages {
        let key = new.client_msg_id.as_deref().map(|id| (new.conversation_id.as_str(), new.sender.id.as_str(), id));
        if let Some(row) = key.and_then(|key| earlier.get(&key)) {
            plans.push(Plan::Stored(Box::new(row.clone())));
        } else if let Some(&index) = key.and_then(|key| fresh_keys.get(&key)) {
            plans.push(Plan::SameAsNew(index));
        } else {
            if let Some(key) = key {
                fresh_keys.insert(key, fresh.len());
            }
            plans.push(Plan::New(fresh.len()));
            fresh.push(new);
        }
    }

    let mut per_conversation: BTreeMap<&str, i64> = BTreeMap::new();
    for new in &fresh {
        *per_conversation.entry(new.conversation_id.as_str()).or_default() += 1;
    }
    let now = crate::clock::now();
    let mut next_seq = take_seqs(&txn, &per_conversation, now).await?;
    let rows: Vec<message::Model> = fresh
        .iter()
        .map(|new| {
            let seq = next_seq.get_mut(&new.conversation_id).map_or(0, |next| {
                *next += 1;
                *next - 1
            });
            message::Model {
                id: random_id("msg_", 20),
                conversation_id: new.conversation_id.clone(),
                project_id: new.project_id.clone(),
                seq,
                sender_id: new.sender.id.clone(),
                client_msg_id: new.client_msg_id.clone(),
                kind: new.kind,
                content: new.content.clone(),
                p1: new.p1.clone(),
                p2: new.p2.clone(),
                p3: new.p3.clone(),
                reply_to_message_id: new.reply_to_message_id.clone(),
                attachments: new.attachments_json(),
                edited: false,
                is_deleted: false,
                system: new.system,
                created_at: now,
                updated_at: now,
            }
        })
        .collect();
    if !rows.is_empty() {
        message::Entity::insert_many(rows.iter().cloned().map(message::ActiveModel::from))
            .exec_without_returning(&txn)
            .await?;
    }
    let mut read_up_to: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for row in &rows {
        let seq = read_up_to.entry((row.conversation_id.as_str(), row.sender_id.as_str())).or_default();
        *seq = Ord::max(*seq, row.seq);
    }
    let positions: Vec<(&str, &str, i64)> = read_up_to.into_iter().map(|((c, u), seq)| (c, u, seq)).collect();
    receipts::advance_many(&txn, &positions).await?;
    // One view per new message serves its webhook event and its sender's reply.
    let views: Vec<MessageView> =
        fresh.iter().zip(rows).map(|(new, row)| MessageView::from_row(row, new.sender.clone(), files)).collect();
    let recorded = record_created(&txn, outbox, &fresh, &views).await?;
    txn.commit().await?;
    if recorded > 0 {
        outbox.wake();
    }

    Ok(plans
        .into_iter()
        .zip(messages)
        .map(|(plan, new)| match plan {
            Plan::Stored(row) => SendOutcome { message: MessageView::from_row(*row, new.sender.clone(), files), duplicate: true },
            Plan::SameAsNew(index) => {
                SendOutcome { message: MessageView { sender: new.sender.clone(), ..views[index].clone() }, duplicate: true }
            }
            Plan::New(index) => SendOutcome { message: views[index].clone(), duplicate: false },
        })
        .collect())
}

/// Records `message.created` for the new rows of projects whose webhooks
/// or message callback want it.
async fn record_created(
    txn: &impl ConnectionTrait,
    outbox: &Outbox,
    fresh: &[&NewMessage],
    views: &[MessageView],
) -> Result<usize, DbErr> {
    let mut per_project: BTreeMap<&str, Vec<Event>> = BTreeMap::new();
    for (new, view) in fresh.iter().zip(views) {
        if !outbox.wants(&new.project_id, EventType::MessageCreated) {
            continue;
        }
        let event = Event::message(EventType::MessageCreated, view, new.direct_peer.as_deref());
        per_project.entry(new.project_id.as_str()).or_default().push(event);
    }
    let mut recorded = 0;
    for (project_id, events) in per_project {
        recorded += outbox.record(txn, project_id, &events).await?;
    }
    Ok(recorded)
}

/// Keys looked up per statement (three parameters each; far below the
/// parameter limits of SQLite and PostgreSQL).
const KEYS_PER_LOOKUP: usize = 500;

/// Earlier sends of this batch's `client_msg_id`s, keyed by
/// (conversation, sender, client id). The keys are joined as a VALUES list
/// against the `ux_messages_client_msg_id` index, so each is one exact index
/// lookup — on SQLite (which would scan the table for a row-value `IN`) and
/// on PostgreSQL (which plans 256 `OR`ed conditions slower than it runs
/// them) — and the cost does not grow with a conversation's history.
async fn earlier_sends<'m>(
    txn: &impl ConnectionTrait,
    messages: &'m [NewMessage],
) -> Result<HashMap<(&'m str, &'m str, &'m str), message::Model>, DbErr> {
    let keys: Vec<(&str, &str, &str)> = messages
        .iter()
        .filter_map(|m| m.client_msg_id.as_deref().map(|id| (m.conversation_id.as_str(), m.sender.id.as_str(), id)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut found = HashMap::new();
    for chunk in keys.chunks(KEYS_PER_LOOKUP) {
        for row in message::Entity::find().from_raw_sql(lookup_statement(txn.get_database_backend(), chunk)).all(txn).await? {
            let key = chunk.iter().copied().find(|&(conversation_id, sender_id, client_id)| {
                row.conversation_id == conversation_id
                    && row.sender_id == sender_id
                    && row.client_msg_id.as_deref() == Some(client_id)
            });
            if let Some(key) = key {
                found.insert(key, row);
            }
        }
    }
    Ok(found)
}

fn lookup_statement(backend: DbBackend, keys: &[(&str, &str, &str)]) -> Statement {
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(keys.len() * 3);
    let mut rows = Vec::with_capacity(keys.len());
    for &(conversation_id, sender_id, client_id) in keys {
        let mut placeholders = Vec::with_capacity(3);
        for value in [conversation_id, sender_id, client_id] {
            values.push(value.into());
            placeholders.push(match backend {
                DbBackend::Postgres => format!("${}", values.len()),
                _ => "?".to_owned(),
            });
        }
        rows.push(format!("({})", placeholders.join(", ")));
    }
    let sql = format!(
        r#"SELECT "messages".* FROM (VALUES {}) AS "k" JOIN "messages" ON "messages"."conversation_id" = "k"."column1" AND "messages"."sender_id" = "k"."column2" AND "messages"."client_msg_id" = "k"."column3""#,
        rows.join(", ")
    );
    Statement::from_sql_and_values(backend, sql, values)
}

/// Reserves `count` consecutive seqs in each conversation with one
/// statement, and returns each conversation's first. The update takes the
/// rows' locks (PostgreSQL) or the database write lock (SQLite), so seqs stay
/// gapless and unique; `RETURNING` gives the new counters without a read.
/// (One committer per process; several processes on one PostgreSQL would
/// want the rows locked in id order first to rule out deadlocks.)
async fn take_seqs(
    txn: &impl ConnectionTrait,
    counts: &BTreeMap<&str, i64>,
    now: chrono::DateTime<Utc>,
) -> Result<HashMap<String, i64>, DbErr> {
    if counts.is_empty() {
        return Ok(HashMap::new());
    }
    let increment = counts
        .iter()
        .fold(CaseStatement::new(), |case, (&conversation_id, &count)| {
            case.case(Expr::col(conversation::Column::Id).eq(conversation_id), Expr::val(count))
        })
        .finally(Expr::val(0i64));
    let rows = conversation::Entity::update_many()
        .col_expr(conversation::Column::LastSeq, Expr::col(conversation::Column::LastSeq).add(Expr::Case(Box::new(increment))))
        .col_expr(conversation::Column::LastActivityAt, Expr::value(now))
        .filter(conversation::Column::Id.is_in(counts.keys().copied()))
        .exec_with_returning(txn)
        .await?;
    let mut first = HashMap::with_capacity(rows.len());
    for row in rows {
        let count = counts.get(row.id.as_str()).copied().unwrap_or(0);
        first.insert(row.id, row.last_seq - count + 1);
    }
    if let Some(missing) = counts.keys().find(|id| !first.contains_key(**id)) {
        return Err(DbErr::RecordNotFound(format!("conversation {missing}")));
    }
    Ok(first)
}
