//! The JSON commands a user's clients publish on its outbox
//! (`{"id", "op", …}`), each answered on its inbox with
//! `{"reply_to", "ok": true, "data"}` or `{"reply_to", "ok": false, "error": {"code", "message"}}`.
//!
//! The sender is who the outbox belongs to: the gateway lets only that user
//! publish there, so a command cannot claim to come from someone else.
use std::sync::Arc;

use sea_orm::DatabaseConnection;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::cache::EngineCache;
use crate::conversations::ConversationError;
use crate::messages::{self, Committer, CommitterSettings, MessageError, NewMessage};
use crate::{reactions, receipts};

/// Largest command accepted, in bytes (the gateway also caps packets).
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// Where the engine's output goes; the binary maps these to MQTT topics.
pub trait Outlet: Send + Sync + 'static {
    /// To every member subscribed to the conversation.
    fn to_conversation(&self, project_id: &str, conversation_id: &str, payload: String);
    /// To one user's inbox (all of its devices).
    fn to_user(&self, project_id: &str, user_id: &str, payload: String);
}

/// A refusal with a stable, documented code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub code: &'static str,
    pub message: String,
}

impl CommandError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        CommandError { code, message: message.into() }
    }

    fn invalid(message: impl Into<String>) -> Self {
        CommandError::new("invalid_request", message)
    }
}

impl From<ConversationError> for CommandError {
    fn from(error: ConversationError) -> Self {
        match error {
            ConversationError::NotFound => CommandError::new("conversation_not_found", "no such conversation"),
            ConversationError::Archived => CommandError::new("conversation_archived", "the conversation is archived"),
            ConversationError::Invalid(message) => CommandError::invalid(message),
            ConversationError::Database(error) => internal(error),
        }
    }
}

impl From<MessageError> for CommandError {
    fn from(error: MessageError) -> Self {
        match error {
            MessageError::NotFound => CommandError::new("message_not_found", "no such message"),
            MessageError::NotSender => CommandError::new("forbidden", "only the sender may change this message"),
            MessageError::Deleted => CommandError::new("message_deleted", "the message was deleted"),
            MessageError::Database(error) => internal(error),
            MessageError::Unavailable => CommandError::new("unavailable", "the server is shutting down; retry"),
        }
    }
}

impl From<sea_orm::DbErr> for CommandError {
    fn from(error: sea_orm::DbErr) -> Self {
        internal(error)
    }
}

fn internal(error: impl std::fmt::Display) -> CommandError {
    tracing::error!(%error, "command failed");
    CommandError::new("internal", "internal error")
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", deny_unknown_fields)]
enum Command {
    #[serde(rename = "message.send")]
    Send {
        conversation_id: String,
        content: String,
        #[serde(rename = "type", default)]
        kind: i16,
        p1: Option<String>,
        p2: Option<String>,
        p3: Option<String>,
        reply_to_message_id: Option<String>,
        client_msg_id: Option<String>,
    },
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
}

/// The chat engine's command side.
pub struct Engine {
    db: DatabaseConnection,
    committer: Committer,
    outlet: Arc<dyn Outlet>,
    cache: Arc<EngineCache>,
}

impl Engine {
    /// Starts the engine's writer; events and replies go to `outlet`. Whoever
    /// changes memberships or profiles outside the engine must tell `cache`.
    pub fn start(
        db: DatabaseConnection,
        settings: CommitterSettings,
        outlet: Arc<dyn Outlet>,
        cache: Arc<EngineCache>,
    ) -> Self {
        let events = Arc::clone(&outlet);
        let committer = Committer::spawn(db.clone(), settings, move |project_id, message| {
            let event = json!({"type": "message.created", "data": message});
            events.to_conversation(project_id, &message.conversation_id, event.to_string());
        });
        Engine { db, committer, outlet, cache }
    }

    /// Handles one command published by `user_id` and answers on its inbox.
    /// Returns once the command is decided — for a send, once it is queued
    /// for storing; its reply follows when it committed. Handling one user's
    /// commands one after another therefore keeps their order without
    /// waiting for each commit.
    pub async fn handle(&self, project_id: &str, user_id: &str, payload: &[u8]) {
        let (reply_to, answer) = self.run(project_id, user_id, payload).await;
        match answer {
            Answer::Now(result) => self.reply(project_id, user_id, &reply_to, result),
            Answer::WhenStored(pending) => {
                let outlet = Arc::clone(&self.outlet);
                let (project_id, user_id) = (project_id.to_owned(), user_id.to_owned());
                tokio::spawn(async move {
                    let result = pending
                        .outcome()
                        .await
                        .map(|outcome| json!({"message": outcome.message, "duplicate": outcome.duplicate}))
                        .map_err(CommandError::from);
                    outlet.to_user(&project_id, &user_id, reply_body(&reply_to, result));
                });
            }
        }
    }

    fn reply(&self, project_id: &str, user_id: &str, reply_to: &Value, result: Result<Value, CommandError>) {
        self.outlet.to_user(project_id, user_id, reply_body(reply_to, result));
    }

    async fn run(&self, project_id: &str, user_id: &str, payload: &[u8]) -> (Value, Answer) {
        let (reply_to, result) = self.decide(project_id, user_id, payload).await;
        let answer = match result {
            Ok(answer) => answer,
            Err(error) => Answer::Now(Err(error)),
        };
        (reply_to, answer)
    }

    async fn decide(&self, project_id: &str, user_id: &str, payload: &[u8]) -> (Value, Result<Answer, CommandError>) {
        if payload.len() > MAX_COMMAND_BYTES {
            return (Value::Null, Err(CommandError::new("too_large", format!("commands are at most {MAX_COMMAND_BYTES} bytes"))));
        }
        let mut value: Value = match serde_json::from_slice(payload) {
            Ok(value @ Value::Object(_)) => value,
            Ok(_) => return (Value::Null, Err(CommandError::new("bad_json", "a command is a JSON object"))),
            Err(error) => return (Value::Null, Err(CommandError::new("bad_json", error.to_string()))),
        };
        let reply_to = value.as_object_mut().and_then(|fields| fields.remove("id")).unwrap_or(Value::Null);
        if !reply_to.as_str().is_some_and(|id| !id.is_empty() && id.len() <= 128) {
            return (reply_to, Err(CommandError::invalid("`id` must be a string of 1-128 characters")));
        }
        let known = [
            "message.send",
            "message.edit",
            "message.delete",
            "reaction.add",
            "reaction.remove",
            "read.mark",
            "history.sync",
        ];
        match value.get("op").and_then(Value::as_str) {
            Some(op) if known.contains(&op) => {}
            Some(op) => return (reply_to, Err(CommandError::new("unknown_op", format!("unknown op {op:?}")))),
            None => return (reply_to, Err(CommandError::invalid("`op` is required"))),
        }
        let command: Command = match serde_json::from_value(value) {
            Ok(command) => command,
            Err(error) => return (reply_to, Err(CommandError::invalid(error.to_string()))),
        };
        (reply_to, self.execute(project_id, user_id, command).await)
    }

    /// Whether the conversation is archived, once `user_id` is known to be a member.
    async fn require_member(&self, project_id: &str, user_id: &str, conversation_id: &str) -> Result<bool, CommandError> {
        let conversation = self.cache.conversation(&self.db, project_id, conversation_id).await?;
        if !conversation.members.contains(user_id) {
            return Err(CommandError::new("not_a_member", "you are not a member of this conversation"));
        }
        Ok(conversation.archived)
    }

    async fn execute(&self, project_id: &str, user_id: &str, command: Command) -> Result<Answer, CommandError> {
        match command {
            Command::Send { conversation_id, content, kind, p1, p2, p3, reply_to_message_id, client_msg_id } => {
                check_content(&content)?;
                if kind == 0 && content.trim().is_empty() {
                    return Err(CommandError::invalid("a text message (type 0) needs content"));
                }
                if !(0..=5).contains(&kind) {
                    return Err(CommandError::invalid("`type` must be 0 (text) to 5 (system)"));
                }
                for (name, field) in [("p1", &p1), ("p2", &p2), ("p3", &p3), ("client_msg_id", &client_msg_id)] {
                    if field.as_ref().is_some_and(|value| value.chars().count() > messages::MAX_FIELD_CHARS) {
                        return Err(CommandError::invalid(format!("`{name}` is longer than {} characters", messages::MAX_FIELD_CHARS)));
                    }
                }
                if self.require_member(project_id, user_id, &conversation_id).await? {
                    return Err(ConversationError::Archived.into());
                }
                let sender = self.cache.sender(&self.db, project_id, user_id).await?;
                let pending = self
                    .committer
                    .enqueue(NewMessage {
                        project_id: project_id.to_owned(),
                        conversation_id,
                        sender,
                        client_msg_id,
                        kind,
                        content,
                        p1,
                        p2,
                        p3,
                        reply_to_message_id,
                    })
                    .await?;
                Ok(Answer::WhenStored(pending))
            }
            Command::Edit { message_id, content } => {
                check_content(&content)?;
                let conversation_id = self.conversation_of(project_id, &message_id).await?;
                if self.require_member(project_id, user_id, &conversation_id).await? {
                    return Err(ConversationError::Archived.into());
                }
                let message = messages::edit(&self.db, project_id, user_id, &message_id, &content).await?;
                let event = json!({"type": "message.updated", "data": message});
                self.outlet.to_conversation(project_id, &conversation_id, event.to_string());
                Ok(Answer::Now(Ok(json!({"message": message}))))
            }
            Command::Delete { message_id } => {
                let conversation_id = self.conversation_of(project_id, &message_id).await?;
                if self.require_member(project_id, user_id, &conversation_id).await? {
                    return Err(ConversationError::Archived.into());
                }
                let message = messages::delete(&self.db, project_id, user_id, &message_id).await?;
                let event = json!({"type": "message.deleted", "data": message});
                self.outlet.to_conversation(project_id, &conversation_id, event.to_string());
                Ok(Answer::Now(Ok(json!({"message": message}))))
            }
            Command::ReactionAdd { message_id, emoji } => self.react(project_id, user_id, &message_id, &emoji, true).await,
            Command::ReactionRemove { message_id, emoji } => {
                self.react(project_id, user_id, &message_id, &emoji, false).await
            }
            Command::ReadMark { conversation_id, seq, message_id } => {
                self.require_member(project_id, user_id, &conversation_id).await?;
                let seq = match (seq, message_id) {
                    (Some(seq), None) => seq,
                    (None, Some(message_id)) => {
                        let message = messages::find(&self.db, project_id, &message_id).await?;
                        match message {
                            Some(message) if message.conversation_id == conversation_id => message.seq,
                            _ => return Err(MessageError::NotFound.into()),
                        }
                    }
                    _ => return Err(CommandError::invalid("give exactly one of `seq` and `message_id`")),
                };
                let position = receipts::mark(&self.db, &conversation_id, user_id, seq).await?;
                if position.moved {
                    let event = json!({"type": "read.updated", "data": {"conversation_id": conversation_id,
                        "user_id": user_id, "last_read_seq": position.last_read_seq}});
                    self.outlet.to_conversation(project_id, &conversation_id, event.to_string());
                    let unread = json!({"type": "unread.changed", "data": {"conversation_id": conversation_id,
                        "unread": position.unread}});
                    self.outlet.to_user(project_id, user_id, unread.to_string());
                }
                Ok(Answer::Now(Ok(json!({"conversation_id": conversation_id,
                    "last_read_seq": position.last_read_seq, "unread": position.unread}))))
            }
            Command::HistorySync { conversation_id, after_seq, limit } => {
                self.require_member(project_id, user_id, &conversation_id).await?;
                let limit = limit.unwrap_or(50).clamp(1, messages::MAX_HISTORY_PAGE);
                let (page, has_more) =
                    messages::history_after(&self.db, project_id, &conversation_id, after_seq.max(0), limit).await?;
                Ok(Answer::Now(Ok(json!({"conversation_id": conversation_id, "messages": page, "has_more": has_more}))))
            }
        }
    }

    /// `reaction.add` (`adding`) or `reaction.remove`.
    async fn react(
        &self,
        project_id: &str,
        user_id: &str,
        message_id: &str,
        emoji: &str,
        adding: bool,
    ) -> Result<Answer, CommandError> {
        if !reactions::valid_emoji(emoji) {
            return Err(CommandError::invalid("`emoji` must be 1-64 bytes without spaces"));
        }
        let message = messages::find(&self.db, project_id, message_id).await?.ok_or(MessageError::NotFound)?;
        if self.require_member(project_id, user_id, &message.conversation_id).await? {
            return Err(ConversationError::Archived.into());
        }
        if message.is_deleted {
            return Err(MessageError::Deleted.into());
        }
        let changed = if adding {
            reactions::add(&self.db, &message.conversation_id, message_id, user_id, emoji).await?
        } else {
            reactions::remove(&self.db, message_id, user_id, emoji).await?
        };
        if changed {
            let kind = if adding { "reaction.added" } else { "reaction.removed" };
            let event = json!({"type": kind, "data": {"conversation_id": message.conversation_id,
                "message_id": message_id, "user_id": user_id, "emoji": emoji}});
            self.outlet.to_conversation(project_id, &message.conversation_id, event.to_string());
        }
        Ok(Answer::Now(Ok(json!({"message_id": message_id, "emoji": emoji, "changed": changed}))))
    }

    async fn conversation_of(&self, project_id: &str, message_id: &str) -> Result<String, CommandError> {
        messages::find(&self.db, project_id, message_id)
            .await?
            .map(|row| row.conversation_id)
            .ok_or_else(|| MessageError::NotFound.into())
    }
}

/// How a command is answered.
enum Answer {
    Now(Result<Value, CommandError>),
    /// A send: answered once its batch committed.
    WhenStored(messages::PendingSend),
}

fn reply_body(reply_to: &Value, result: Result<Value, CommandError>) -> String {
    let reply = match result {
        Ok(data) => json!({"reply_to": reply_to, "ok": true, "data": data}),
        Err(error) => json!({"reply_to": reply_to, "ok": false, "error": {"code": error.code, "message": error.message}}),
    };
    reply.to_string()
}

fn check_content(content: &str) -> Result<(), CommandError> {
    if content.chars().count() > messages::MAX_CONTENT_CHARS {
        return Err(CommandError::new(
            "content_too_long",
            format!("content is longer than {} characters", messages::MAX_CONTENT_CHARS),
        ));
    }
    Ok(())
}
