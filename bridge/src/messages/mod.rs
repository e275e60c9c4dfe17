//! Messages: validation, the group-commit writer that makes a send durable
//! before it is acknowledged, and reads for history.
mod committer;
pub(crate) mod store;

pub use committer::{Committer, CommitterSettings, PendingSend, SendOutcome};
pub use store::{delete, edit, find, history, MessageView, Page, ReactionGroup, Sender};

/// Longest message content, in characters.
pub const MAX_CONTENT_CHARS: usize = 4000;
/// Longest `p1`/`p2`/`p3`, in characters.
pub const MAX_FIELD_CHARS: usize = 1000;
/// Longest `client_msg_id`, in characters: its column, which is indexed
/// with the conversation and the sender (PostgreSQL's index entries are
/// capped near 2.7 kB, so a longer key could not be indexed).
pub const MAX_CLIENT_MSG_ID_CHARS: usize = 128;
/// Longest id of a stored row (`msg_…`, `conv_…`): their columns.
pub const MAX_ID_CHARS: usize = 64;
/// Seed 002's message types: 0 text and smileys, 1 sticker, 2 picture from
/// disk, 3 recording, 4 picture from camera, 5 audio/video call notice.
/// What the platform itself says is not a type but a system message.
pub const MESSAGE_TYPES: std::ops::RangeInclusive<i16> = 0..=5;
/// Most messages one history page returns.
pub const MAX_HISTORY_PAGE: u64 = 200;

/// A validated message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub project_id: String,
    pub conversation_id: String,
    pub sender: Sender,
    /// Posted by the platform (the site's backend), not by a member.
    pub system: bool,
    pub client_msg_id: Option<String>,
    /// One of `MESSAGE_TYPES`.
    pub kind: i16,
    pub content: String,
    pub p1: Option<String>,
    pub p2: Option<String>,
    pub p3: Option<String>,
    pub reply_to_message_id: Option<String>,
    /// Files uploaded by the sender into this conversation.
    pub attachments: Vec<AttachmentRef>,
    /// The other member of a direct conversation: the message callback's `to_userid`.
    pub direct_peer: Option<String>,
}

impl NewMessage {
    /// The `attachments` column: NULL when there are none.
    pub(crate) fn attachments_json(&self) -> Option<String> {
        (!self.attachments.is_empty()).then(|| serde_json::to_string(&self.attachments).unwrap_or_default())
    }
}

use crate::attachments::AttachmentRef;

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("message not found")]
    NotFound,
    /// Only the sender edits; the sender or a conversation admin deletes.
    #[error("you may not change this message")]
    Forbidden,
    #[error("the message was deleted")]
    Deleted,
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
    /// The writer is gone (shutting down).
    #[error("message store is unavailable")]
    Unavailable,
}
