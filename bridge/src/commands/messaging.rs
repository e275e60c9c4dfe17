//! Message commands: send, edit, delete, reactions, read marks and history.
use serde::Deserialize;
use serde_json::{json, Value};

use super::{CommandError, Engine, ErrorCode};
use crate::conversations::{ConversationError, ConversationKind};
use crate::fields::{self, FieldError};
use crate::messages::{self, MessageError, MessageView, NewMessage, Page, PendingSend};
use crate::events::{ChatEvent, ReactionChange, ReadUpdated, UnreadChanged};
use crate::webhooks::{Event, EventType};
use crate::{reactions, receipts, summaries};
use sea_orm::TransactionTrait;

/// `message.send`: a `MessageBody` and where it goes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Send {
    conversation_id: String,
    #[serde(default)]
    content: String,
    #[serde(rename = "type", default)]
    kind: i16,
    p1: Option<String>,
    p2: Option<String>,
    p3: Option<String>,
    reply_to_message_id: Option<String>,
    client_msg_id: Option<String>,
    #[serde(default)]
    attachments: Vec<String>,
}

impl Send {
    /// Where the message goes, and what it says.
    pub(super) fn into_body(self) -> (String, MessageBody) {
        let Send { conversation_id, content, kind, p1, p2, p3, reply_to_message_id, client_msg_id, attachments } = self;
        (conversation_id, MessageBody { content, kind, p1, p2, p3, reply_to_message_id, client_msg_id, attachments })
    }
}

/// What a message says, as a client or the site's backend sends it (the
/// server API's message route takes exactly this).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    #[serde(default)]
    pub content: String,
    /// Seed 002's message types (see `messages::MESSAGE_TYPES`).
    #[serde(rename = "type", default)]
    pub kind: i16,
    pub p1: Option<String>,
    pub p2: Option<String>,
    pub p3: Option<String>,
    pub reply_to_message_id: Option<String>,
    pub client_msg_id: Option<String>,
    /// Ids of files the sender uploaded into this conversation.
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// Who a message is from: a member, or the platform itself (system
/// messages, which only the server API posts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author<'a> {
    Member(&'a str),
    Platform,
}

fn check_content(content: &str) -> Result<(), CommandError> {
    match fields::check("content", content, messages::MAX_CONTENT_CHARS) {
        Err(FieldError::TooLong { .. }) => Err(CommandError::new(ErrorCode::ContentTooLong,
            format!("content is longer than {} characters", messages::MAX_CONTENT_CHARS),
        )),
        other => Ok(other?),
    }
}

/// The rules of `message.edit`'s new content.
pub(super) fn check_edit(content: &str) -> Result<(), CommandError> {
    check_content(content)?;
    if content.trim().is_empty() {
        return Err(CommandError::invalid("an edit needs content; delete the message instead"));
    }
    Ok(())
}

pub(super) fn check_emoji(emoji: &str) -> Result<(), CommandError> {
    if reactions::valid_emoji(emoji) {
        Ok(())
    } else {
        Err(CommandError::invalid("`emoji` must be 1-64 bytes without spaces"))
    }
}

impl MessageBody {
    /// Every rule a message body obeys on its own, before any lookup.
    pub(super) fn check(&self) -> Result<(), CommandError> {
        check_content(&self.content)?;
        if !messages::MESSAGE_TYPES.contains(&self.kind) {
            return Err(CommandError::invalid(
                "`type` must be 0 (text), 1 (sticker), 2 (picture from disk), 3 (recording), 4 (picture from camera) or 5 (audio/video call notice)",
            ));
        }
        if self.kind == 0 && self.content.trim().is_empty() && self.attachments.is_empty() {
            return Err(CommandError::invalid("a text message (type 0) needs content or attachments"));
        }
        for (name, field) in [("p1", &self.p1), ("p2", &self.p2), ("p3", &self.p3)] {
            fields::check_optional(name, field.as_deref(), messages::MAX_FIELD_CHARS)?;
        }
        fields::check_optional("client_msg_id", self.client_msg_id.as_deref(), messages::MAX_CLIENT_MSG_ID_CHARS)?;
        Ok(())
    }
}

impl Engine {
    pub(super) async fn send(&self, project_id: &str, user_id: &str, send: Send) -> Result<PendingSend, CommandError> {
        let (conversation_id, body) = send.into_body();
        self.post(project_id, &conversation_id, Author::Member(user_id), body).await
    }

    /// Queues a message into the conversation: from a member (who must
    /// belong to it) or from the platform. Returns once it is queued; the
    /// outcome follows when its batch committed.
    pub async fn post(
        &self,
        project_id: &str,
        conversation_id: &str,
        author: Author<'_>,
        body: MessageBody,
    ) -> Result<PendingSend, CommandError> {
        body.check()?;
        let MessageBody { content, kind, p1, p2, p3, reply_to_message_id, client_msg_id, attachments } = body;
        let conversation = match author {
            Author::Member(user_id) => {
                let conversation = self.writable_membership(project_id, user_id, conversation_id).await?;
                // A channel is a broadcast: its admins post, the others read.
                if conversation.kind == ConversationKind::Channel && !conversation.is_admin(user_id) {
                    return Err(CommandError::forbidden("only the channel's admins post in a channel"));
                }
                conversation
            }
            Author::Platform => {
                let conversation = self.cache.conversation(&self.db, project_id, conversation_id).await?;
                if conversation.archived {
                    return Err(ConversationError::Archived.into());
                }
                conversation
            }
        };
        if let Some(reply_to) = &reply_to_message_id {
            self.check_reply_target(project_id, conversation_id, reply_to).await?;
        }
        let (sender, uploader) = match author {
            Author::Member(user_id) => (self.cache.sender(&self.db, project_id, user_id).await?, Some(user_id)),
            Author::Platform => (messages::Sender::platform(), None),
        };
        let direct_peer = (conversation.kind == ConversationKind::Direct)
            .then(|| conversation.members.keys().find(|member| **member != sender.id).cloned())
            .flatten();
        let attachments = match uploader {
            _ if attachments.is_empty() => Vec::new(),
            Some(user_id) => self.files.for_message(&self.db, project_id, conversation_id, user_id, &attachments).await?,
            None => return Err(CommandError::invalid("system messages carry no attachments")),
        };
        Ok(self
            .committer
            .enqueue(NewMessage {
                project_id: project_id.to_owned(),
                conversation_id: conversation_id.to_owned(),
                sender,
                system: author == Author::Platform,
                client_msg_id,
                kind,
                content,
                p1,
                p2,
                p3,
                reply_to_message_id,
                attachments,
                direct_peer,
            })
            .await?)
    }

    /// A reply must quote a message of the same conversation.
    async fn check_reply_target(&self, project_id: &str, conversation_id: &str, message_id: &str) -> Result<(), CommandError> {
        let invalid = || CommandError::invalid("`reply_to_message_id` must name a message of this conversation");
        if fields::check("reply_to_message_id", message_id, messages::MAX_ID_CHARS).is_err() {
            return Err(invalid());
        }
        match messages::find(&self.db, project_id, message_id).await? {
            Some(target) if target.conversation_id == conversation_id => Ok(()),
            _ => Err(invalid()),
        }
    }

    /// The message and whether `user_id` may change it (`deleting` lets
    /// conversation admins too); checks membership and the archive.
    async fn changeable(
        &self,
        project_id: &str,
        user_id: &str,
        message_id: &str,
        deleting: bool,
    ) -> Result<entity::message::Model, CommandError> {
        let row = messages::find(&self.db, project_id, message_id).await?.ok_or(MessageError::NotFound)?;
        let conversation = self.writable_membership(project_id, user_id, &row.conversation_id).await?;
        let allowed = row.sender_id == user_id || (deleting && conversation.is_admin(user_id));
        if !allowed {
            return Err(MessageError::Forbidden.into());
        }
        Ok(row)
    }

    pub(super) async fn edit(&self, project_id: &str, user_id: &str, message_id: &str, content: &str) -> Result<Value, CommandError> {
        check_edit(content)?;
        let row = self.changeable(project_id, user_id, message_id, false).await?;
        let txn = self.db.begin().await?;
        let message = messages::edit(&txn, &self.files, project_id, row, content).await?;
        self.commit_with(txn, project_id, &[Event::message(EventType::MessageUpdated, &message, None)]).await?;
        self.publish_message_event(project_id, ChatEvent::MessageUpdated, &message);
        Ok(json!({"message": message}))
    }

    pub(super) async fn delete(&self, project_id: &str, user_id: &str, message_id: &str) -> Result<Value, CommandError> {
        let row = self.changeable(project_id, user_id, message_id, true).await?;
        let txn = self.db.begin().await?;
        let message = messages::delete(&txn, &self.files, project_id, row).await?;
        self.commit_with(txn, project_id, &[Event::message_deleted(&message, user_id)]).await?;
        self.publish_message_event(project_id, ChatEvent::MessageDeleted, &message);
        Ok(json!({"message": message, "deleted_by": user_id}))
    }

    fn publish_message_event(&self, project_id: &str, kind: ChatEvent, message: &MessageView) {
        self.outlet.to_conversation(project_id, &message.conversation_id, kind.envelope(message));
    }

    /// `reaction.add` (`adding`) or `reaction.remove`.
    pub(super) async fn react(
        &self,
        project_id: &str,
        user_id: &str,
        message_id: &str,
        emoji: &str,
        adding: bool,
    ) -> Result<Value, CommandError> {
        check_emoji(emoji)?;
        let message = messages::find(&self.db, project_id, message_id).await?.ok_or(MessageError::NotFound)?;
        self.writable_membership(project_id, user_id, &message.conversation_id).await?;
        if message.is_deleted {
            return Err(MessageError::Deleted.into());
        }
        let txn = self.db.begin().await?;
        let changed = if adding {
            reactions::add(&txn, &message.conversation_id, message_id, user_id, emoji).await?
        } else {
            reactions::remove(&txn, message_id, user_id, emoji).await?
        };
        let events = if changed {
            vec![Event::reaction(adding, &message.conversation_id, message_id, user_id, emoji)]
        } else {
            Vec::new()
        };
        self.commit_with(txn, project_id, &events).await?;
        if changed {
            let kind = if adding { ChatEvent::ReactionAdded } else { ChatEvent::ReactionRemoved };
            let event =
                kind.envelope(ReactionChange { conversation_id: &message.conversation_id, message_id, user_id, emoji });
            self.outlet.to_conversation(project_id, &message.conversation_id, event);
        }
        Ok(json!({"message_id": message_id, "emoji": emoji, "changed": changed}))
    }

    pub(super) async fn read_mark(
        &self,
        project_id: &str,
        user_id: &str,
        conversation_id: &str,
        seq: Option<i64>,
        message_id: Option<String>,
    ) -> Result<Value, CommandError> {
        self.membership(project_id, user_id, conversation_id).await?;
        let seq = match (seq, message_id) {
            (Some(seq), None) => seq,
            (None, Some(message_id)) => match messages::find(&self.db, project_id, &message_id).await? {
                Some(message) if message.conversation_id == conversation_id => message.seq,
                _ => return Err(MessageError::NotFound.into()),
            },
            _ => return Err(CommandError::invalid("give exactly one of `seq` and `message_id`")),
        };
        let position = receipts::mark(&self.db, conversation_id, user_id, seq).await?;
        let total = summaries::unread_total(&self.db, project_id, user_id).await?;
        if position.moved {
            let event =
                ChatEvent::ReadUpdated.envelope(ReadUpdated { conversation_id, user_id, last_read_seq: position.last_read_seq });
            self.outlet.to_conversation(project_id, conversation_id, event);
            let unread = ChatEvent::UnreadChanged.envelope(UnreadChanged {
                conversation_id,
                last_read_seq: position.last_read_seq,
                unread: position.unread,
                total,
            });
            self.outlet.to_user(project_id, user_id, unread);
        }
        Ok(json!({"conversation_id": conversation_id, "last_read_seq": position.last_read_seq,
            "unread": position.unread, "total_unread": total}))
    }

    pub(super) async fn history_sync(
        &self,
        project_id: &str,
        user_id: &str,
        conversation_id: &str,
        after_seq: i64,
        limit: Option<u64>,
    ) -> Result<Value, CommandError> {
        self.membership(project_id, user_id, conversation_id).await?;
        let (page, has_more) = self.history(project_id, conversation_id, Page::After(after_seq.max(0)), limit).await?;
        Ok(json!({"conversation_id": conversation_id, "messages": page, "has_more": has_more}))
    }

    /// A page of the conversation's history, whoever asks (callers check
    /// membership); `limit` defaults to 50 and is capped.
    pub async fn history(
        &self,
        project_id: &str,
        conversation_id: &str,
        page: Page,
        limit: Option<u64>,
    ) -> Result<(Vec<MessageView>, bool), CommandError> {
        self.cache.conversation(&self.db, project_id, conversation_id).await?;
        let limit = limit.unwrap_or(50).clamp(1, messages::MAX_HISTORY_PAGE);
        Ok(messages::history(&self.db, &self.files, project_id, conversation_id, page, limit).await?)
    }
}
