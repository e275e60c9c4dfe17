//! The chat engine's front: the JSON commands a user's clients publish on
//! its outbox (`{"id", "op", …}`), each answered on its inbox with
//! `{"reply_to", "ok": true, "data"}` or `{"reply_to", "ok": false, "error": {"code", "message"}}`,
//! and the same operations for the server API.
//!
//! The sender is who the outbox belongs to: the gateway lets only that user
//! publish there, so a command cannot claim to come from someone else.
//! `messaging` holds the message commands, `rooms` the conversation ones.
mod error_code;
mod messaging;
mod rooms;

pub use messaging::{Author, MessageBody};

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use sea_orm::{DatabaseConnection, DatabaseTransaction};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::attachments::{AttachmentError, FileStore};
use crate::cache::{ConversationState, EngineCache};
use crate::conversations::{ConversationError, ConversationKind};
use crate::fields::{self, FieldError};
use crate::messages::{Committer, CommitterSettings, MessageError};
pub use error_code::ErrorCode;
use crate::events::ChatEvent;
use crate::webhooks::{Event, Outbox};

/// Largest command accepted, in bytes (the gateway also caps packets).
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// Where the engine's output goes; the binary maps these to MQTT topics.
pub trait Outlet: Send + Sync + 'static {
    /// To every member subscribed to the conversation.
    fn to_conversation(&self, project_id: &str, conversation_id: &str, payload: String);
    /// To one user's inbox (all of its devices).
    fn to_user(&self, project_id: &str, user_id: &str, payload: String);
    /// The user is no longer a member: its live subscriptions to the
    /// conversation must end now.
    fn revoke(&self, project_id: &str, user_id: &str, conversation_id: &str);
    /// Ends every live connection of the user (its sessions were revoked).
    fn disconnect(&self, project_id: &str, user_id: &str, reason: &str);
    /// The user's presence state, kept for late subscribers (retained).
    fn presence(&self, project_id: &str, user_id: &str, payload: String);
    /// A reply to where the command asked for it (an MQTT 5 response topic
    /// the gateway checked is the sender's own), with the command's
    /// correlation data.
    fn to_response_topic(&self, topic: &str, correlation_data: Option<&[u8]>, payload: String);
}

/// Where a command's reply goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ReplyRoute {
    /// The sender's inbox, where every device of the user sees it.
    #[default]
    Inbox,
    /// The response topic an MQTT 5 command named, with its correlation data.
    ResponseTopic { topic: String, correlation_data: Option<Vec<u8>> },
}

/// A refusal with a stable, documented code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub code: ErrorCode,
    pub message: String,
}

impl CommandError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CommandError { code, message: message.into() }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        CommandError::new(ErrorCode::InvalidRequest, message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        CommandError::new(ErrorCode::Forbidden, message)
    }
}

impl From<ConversationError> for CommandError {
    fn from(error: ConversationError) -> Self {
        match error {
            ConversationError::NotFound => CommandError::new(ErrorCode::ConversationNotFound, "no such conversation"),
            ConversationError::Archived => CommandError::new(ErrorCode::ConversationArchived, "the conversation is archived"),
            ConversationError::Invalid(message) => CommandError::invalid(message),
            ConversationError::Database(error) => internal(error),
        }
    }
}

impl From<MessageError> for CommandError {
    fn from(error: MessageError) -> Self {
        match error {
            MessageError::NotFound => CommandError::new(ErrorCode::MessageNotFound, "no such message"),
            MessageError::Forbidden => CommandError::forbidden(
                "only the sender may edit a message; only the sender or a conversation admin may delete it",
            ),
            MessageError::Deleted => CommandError::new(ErrorCode::MessageDeleted, "the message was deleted"),
            MessageError::Database(error) => internal(error),
            MessageError::Unavailable => CommandError::new(ErrorCode::Unavailable, "the server is shutting down; retry"),
        }
    }
}

impl From<AttachmentError> for CommandError {
    fn from(error: AttachmentError) -> Self {
        match error {
            AttachmentError::NotFound(_) => CommandError::new(ErrorCode::AttachmentNotFound, error.to_string()),
            AttachmentError::TooLarge(_) => CommandError::new(ErrorCode::TooLarge, error.to_string()),
            AttachmentError::ContentType(_) => CommandError::new(ErrorCode::UnsupportedContentType, error.to_string()),
            AttachmentError::Invalid(message) => CommandError::invalid(message),
            AttachmentError::Io(error) => internal(error),
            AttachmentError::Database(error) => internal(error),
        }
    }
}

impl From<FieldError> for CommandError {
    fn from(error: FieldError) -> Self {
        CommandError::invalid(error.to_string())
    }
}

impl From<sea_orm::DbErr> for CommandError {
    fn from(error: sea_orm::DbErr) -> Self {
        internal(error)
    }
}

fn not_a_member() -> CommandError {
    CommandError::new(ErrorCode::NotAMember, "you are not a member of this conversation")
}

fn internal(error: impl std::fmt::Display) -> CommandError {
    tracing::error!(%error, "command failed");
    CommandError::new(ErrorCode::Internal, "internal error")
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", deny_unknown_fields)]
enum Command {
    #[serde(rename = "message.send")]
    Send(messaging::Send),
    #[serde(rename = "message.edit")]
    Edit { message_id: String, content: String },
    #[serde(rename = "message.delete")]
    Delete { message_id: String },
    #[serde(rename = "reaction.add")]
    ReactionAdd { message_id: String, emoji: String },
    #[serde(rename = "reaction.remove")]
    ReactionRemove { message_id: String, emoji: String },
    /// Up to `seq`, or up to the message `message_id`.
    #[serde(rename = "read.mark")]
    ReadMark { conversation_id: String, seq: Option<i64>, message_id: Option<String> },
    #[serde(rename = "history.sync")]
    HistorySync {
        conversation_id: String,
        #[serde(default)]
        after_seq: i64,
        limit: Option<u64>,
    },
    #[serde(rename = "conversation.create")]
    Create(rooms::Create),
    #[serde(rename = "conversation.join")]
    Join { conversation_id: String },
    #[serde(rename = "conversation.leave")]
    Leave { conversation_id: String },
    /// The sender's support conversation with the project's agents,
    /// opened on first use.
    #[serde(rename = "support.open")]
    SupportOpen { title: Option<String> },
    #[serde(rename = "conversations.list")]
    List { before: Option<chrono::DateTime<chrono::Utc>>, before_id: Option<String>, limit: Option<u64> },
}

/// Every `op` a client may send.
const OPS: [&str; 12] = [
    "message.send",
    "message.edit",
    "message.delete",
    "reaction.add",
    "reaction.remove",
    "read.mark",
    "history.sync",
    "conversation.create",
    "conversation.join",
    "conversation.leave",
    "conversations.list",
    "support.open",
];

/// The chat engine.
pub struct Engine {
    db: DatabaseConnection,
    committer: Committer,
    outlet: Arc<dyn Outlet>,
    cache: Arc<EngineCache>,
    files: Arc<FileStore>,
    /// Webhook and callback deliveries, recorded with each change.
    outbox: Arc<Outbox>,
    /// Conversations each (project, user) may still create: a burst, then
    /// a steady rate.
    creations: DefaultKeyedRateLimiter<(String, String)>,
}

/// Conversations one user may create at once, then per minute.
const CREATIONS_PER_MINUTE: u32 = 10;

impl Engine {
    /// Starts the engine's writer; events and replies go to `outlet`.
    pub fn start(
        db: DatabaseConnection,
        settings: CommitterSettings,
        outlet: Arc<dyn Outlet>,
        cache: Arc<EngineCache>,
        files: Arc<FileStore>,
        outbox: Arc<Outbox>,
    ) -> Self {
        let events = Arc::clone(&outlet);
        let committer = Committer::spawn(db.clone(), Arc::clone(&files), Arc::clone(&outbox), settings, move |project_id, message| {
            events.to_conversation(project_id, &message.conversation_id, ChatEvent::MessageCreated.envelope(message));
        });
        let quota = Quota::per_minute(NonZeroU32::new(CREATIONS_PER_MINUTE).unwrap_or(NonZeroU32::MIN));
        Engine { db, committer, outlet, cache, files, outbox, creations: RateLimiter::keyed(quota) }
    }

    /// Webhooks and callback URLs: who wants which events.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Records `events` for the project's webhooks in `txn`, commits it, and
    /// wakes the dispatcher when it has something new.
    async fn commit_with(&self, txn: DatabaseTransaction, project_id: &str, events: &[Event]) -> Result<(), sea_orm::DbErr> {
        let recorded = if events.is_empty() { 0 } else { self.outbox.record(&txn, project_id, events).await? };
        txn.commit().await?;
        if recorded > 0 {
            self.outbox.wake();
        }
        Ok(())
    }

    /// Uploaded files and their URLs.
    pub fn files(&self) -> &FileStore {
        &self.files
    }

    /// The cache every membership check reads (the gateway's too).
    pub fn cache(&self) -> &Arc<EngineCache> {
        &self.cache
    }

    /// Handles one command published by `user_id` and answers on its inbox.
    /// Returns once the command is decided — for a send, once it is queued
    /// for storing; its reply follows when it committed. Handling one user's
    /// commands one after another therefore keeps their order without
    /// waiting for each commit. `done` runs once the reply is out (after
    /// the commit, for a send).
    pub async fn handle(&self, project_id: &str, user_id: &str, payload: &[u8], route: ReplyRoute, done: impl FnOnce() + Send + 'static) {
        let (reply_to, result) = self.decide(project_id, user_id, payload).await;
        match result {
            Ok(Answer::Now(data)) => {
                reply(&*self.outlet, project_id, user_id, &route, reply_body(&reply_to, Ok(data)));
                done();
            }
            Err(error) => {
                reply(&*self.outlet, project_id, user_id, &route, reply_body(&reply_to, Err(error)));
                done();
            }
            Ok(Answer::WhenStored(pending)) => {
                let outlet = Arc::clone(&self.outlet);
                let (project_id, user_id) = (project_id.to_owned(), user_id.to_owned());
                tokio::spawn(async move {
                    let result = pending
                        .outcome()
                        .await
                        .map(|outcome| json!({"message": outcome.message, "duplicate": outcome.duplicate}))
                        .map_err(CommandError::from);
                    reply(&*outlet, &project_id, &user_id, &route, reply_body(&reply_to, result));
                    done();
                });
            }
        }
    }

    async fn decide(&self, project_id: &str, user_id: &str, payload: &[u8]) -> (Value, Result<Answer, CommandError>) {
        let (reply_to, command) = parse(payload);
        let result = match command {
            Ok(command) => self.execute(project_id, user_id, command).await,
            Err(error) => Err(error),
        };
        (reply_to, result)
    }

    async fn execute(&self, project_id: &str, user_id: &str, command: Command) -> Result<Answer, CommandError> {
        let now = |result: Result<Value, CommandError>| result.map(Answer::Now);
        match command {
            Command::Send(send) => self.send(project_id, user_id, send).await.map(Answer::WhenStored),
            Command::Edit { message_id, content } => now(self.edit(project_id, user_id, &message_id, &content).await),
            Command::Delete { message_id } => now(self.delete(project_id, user_id, &message_id).await),
            Command::ReactionAdd { message_id, emoji } => now(self.react(project_id, user_id, &message_id, &emoji, true).await),
            Command::ReactionRemove { message_id, emoji } => {
                now(self.react(project_id, user_id, &message_id, &emoji, false).await)
            }
            Command::ReadMark { conversation_id, seq, message_id } => {
                now(self.read_mark(project_id, user_id, &conversation_id, seq, message_id).await)
            }
            Command::HistorySync { conversation_id, after_seq, limit } => {
                now(self.history_sync(project_id, user_id, &conversation_id, after_seq, limit).await)
            }
            Command::Create(create) => now(self.create_command(project_id, user_id, create).await),
            Command::Join { conversation_id } => now(self.join(project_id, user_id, &conversation_id).await),
            Command::Leave { conversation_id } => now(self.leave(project_id, user_id, &conversation_id).await),
            Command::SupportOpen { title } => now(self.open_support(project_id, user_id, title).await),
            Command::List { before, before_id, limit } => {
                let after = match (before, before_id) {
                    (Some(before), before_id) => {
                        check_cursor(&before)?;
                        Some(crate::summaries::Cursor { before, before_id })
                    }
                    (None, None) => None,
                    (None, Some(_)) => return Err(CommandError::invalid("`before_id` needs `before`")),
                };
                now(self.list(project_id, user_id, after, limit).await)
            }
        }
    }

    /// The conversation, once `user_id` is known to be a member.
    async fn membership(
        &self,
        project_id: &str,
        user_id: &str,
        conversation_id: &str,
    ) -> Result<Arc<ConversationState>, CommandError> {
        let conversation = self.cache.conversation(&self.db, project_id, conversation_id).await?;
        if !conversation.is_member(user_id) {
            return Err(not_a_member());
        }
        Ok(conversation)
    }

    /// Like `membership`, for commands that change the conversation.
    async fn writable_membership(
        &self,
        project_id: &str,
        user_id: &str,
        conversation_id: &str,
    ) -> Result<Arc<ConversationState>, CommandError> {
        let conversation = self.membership(project_id, user_id, conversation_id).await?;
        if conversation.archived {
            return Err(ConversationError::Archived.into());
        }
        Ok(conversation)
    }

    /// Revokes the user's sessions: every token issued until now is
    /// refused from now on, and every live connection of the user ends.
    pub async fn revoke_sessions(&self, project_id: &str, user_id: &str) -> Result<chrono::DateTime<chrono::Utc>, CommandError> {
        if !crate::users::valid_id(user_id) {
            return Err(CommandError::invalid(format!("{user_id:?} is not a valid user id")));
        }
        let at = crate::users::revoke_sessions(&self.db, project_id, user_id).await?;
        self.outlet.disconnect(project_id, user_id, "the user's sessions were revoked");
        Ok(at)
    }

    /// `not_a_member` unless `user_id` belongs to the conversation (an
    /// unknown one included), for the HTTP API's user routes.
    pub async fn check_member(&self, project_id: &str, user_id: &str, conversation_id: &str) -> Result<(), CommandError> {
        if self.cache.is_member(&self.db, project_id, conversation_id, user_id).await? {
            Ok(())
        } else {
            Err(not_a_member())
        }
    }
}

/// A list cursor's instant must be one every database stores: years 1 to
/// 9999 (PostgreSQL refuses years before 4713 BC that chrono can parse).
fn check_cursor(before: &chrono::DateTime<chrono::Utc>) -> Result<(), CommandError> {
    use chrono::Datelike;
    if (1..=9999).contains(&before.year()) {
        Ok(())
    } else {
        Err(CommandError::invalid("`before` must be a time in the years 1 to 9999"))
    }
}

/// Reads a command: the `id` to answer to (echoed as `reply_to`) and the
/// command, or why it is refused. Decides nothing that needs storage.
fn parse(payload: &[u8]) -> (Value, Result<Command, CommandError>) {
    if payload.len() > MAX_COMMAND_BYTES {
        return (Value::Null, Err(CommandError::new(ErrorCode::TooLarge, format!("commands are at most {MAX_COMMAND_BYTES} bytes"))));
    }
    let mut value: Value = match serde_json::from_slice(payload) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) => return (Value::Null, Err(CommandError::new(ErrorCode::BadJson, "a command is a JSON object"))),
        Err(error) => return (Value::Null, Err(CommandError::new(ErrorCode::BadJson, error.to_string()))),
    };
    let reply_to = value.as_object_mut().and_then(|object| object.remove("id")).unwrap_or(Value::Null);
    if !reply_to.as_str().is_some_and(|id| !id.is_empty() && id.len() <= 128) {
        return (reply_to, Err(CommandError::invalid("`id` must be a string of 1-128 characters")));
    }
    // No string of a command may hold NUL: PostgreSQL refuses it
    // wherever it is stored or compared.
    if let Some(path) = fields::find_nul(&value) {
        return (reply_to, Err(FieldError::Nul { field: path }.into()));
    }
    match value.get("op").and_then(Value::as_str) {
        Some(op) if OPS.contains(&op) => {}
        Some(op) => return (reply_to, Err(CommandError::new(ErrorCode::UnknownOp, format!("unknown op {op:?}")))),
        None => return (reply_to, Err(CommandError::invalid("`op` is required"))),
    }
    match serde_json::from_value(value) {
        Ok(command) => (reply_to, Ok(command)),
        Err(error) => (reply_to, Err(CommandError::invalid(error.to_string()))),
    }
}

/// Everything decided about a command before it reaches storage: its JSON,
/// its shape, and each field's limits. Coverage-guided fuzzing drives this
/// with arbitrary bytes (`fuzz/`), and a test replays what it found.
pub fn screen(payload: &[u8]) -> Result<(), CommandError> {
    match parse(payload).1? {
        Command::Send(send) => send.into_body().1.check(),
        Command::Edit { content, .. } => messaging::check_edit(&content),
        Command::ReactionAdd { emoji, .. } | Command::ReactionRemove { emoji, .. } => messaging::check_emoji(&emoji),
        Command::Create(create) => create.check(),
        Command::List { before: Some(before), .. } => check_cursor(&before),
        _ => Ok(()),
    }
}

/// How a command is answered.
enum Answer {
    Now(Value),
    /// A send: answered once its batch committed.
    WhenStored(crate::messages::PendingSend),
}

fn reply(outlet: &dyn Outlet, project_id: &str, user_id: &str, route: &ReplyRoute, body: String) {
    match route {
        ReplyRoute::Inbox => outlet.to_user(project_id, user_id, body),
        ReplyRoute::ResponseTopic { topic, correlation_data } => {
            outlet.to_response_topic(topic, correlation_data.as_deref(), body)
        }
    }
}

fn reply_body(reply_to: &Value, result: Result<Value, CommandError>) -> String {
    let reply = match result {
        Ok(data) => json!({"reply_to": reply_to, "ok": true, "data": data}),
        Err(error) => json!({"reply_to": reply_to, "ok": false, "error": {"code": error.code, "message": error.message}}),
    };
    reply.to_string()
}

/// Whether users may join a conversation of this kind by themselves.
fn open_to_join(kind: ConversationKind) -> bool {
    kind == ConversationKind::Channel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screening_refuses_what_storage_could_not_take() {
        assert_eq!(screen(br#"{"id":"1","op":"conversations.list"}"#), Ok(()));
        let refused = [
            (r#"{"id":"1","op":"message.send","conversation_id":"c","content":"a\u0000b"}"#, ErrorCode::InvalidRequest),
            (r#"{"id":"1","op":"message.edit","message_id":"m","content":"  "}"#, ErrorCode::InvalidRequest),
            (r#"{"id":"1","op":"reaction.add","message_id":"m","emoji":"a b"}"#, ErrorCode::InvalidRequest),
            (r#"{"id":"1","op":"conversation.create","type":"group","member_ids":["a/b"]}"#, ErrorCode::InvalidRequest),
            (r#"{"id":"1","op":"nope"}"#, ErrorCode::UnknownOp),
            ("[1]", ErrorCode::BadJson),
        ];
        for (command, code) in refused {
            assert_eq!(screen(command.as_bytes()).map_err(|error| error.code), Err(code), "{command}");
        }
    }

    /// What coverage-guided fuzzing found or kept (`fuzz/corpus/commands`),
    /// replayed on every test run: no input may panic.
    #[test]
    fn the_fuzzing_corpus_replays_without_a_panic() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/commands");
        let inputs: Vec<_> = std::fs::read_dir(&dir).map(|entries| entries.flatten().collect()).unwrap_or_default();
        assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
        for input in inputs {
            let _ = screen(&std::fs::read(input.path()).unwrap_or_default());
        }
    }
}
