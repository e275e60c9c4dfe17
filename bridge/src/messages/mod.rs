//! Messages: validation, the group-commit writer that makes a send durable
//! before it is acknowledged, and reads for history.
mod committer;
pub(crate) mod store;

pub use committer::{Committer, CommitterSettings, PendingSend, SendOutcome};
pub use store::{delete, edit, find, history, MessageView, Page, ReactionGroup, Sender};

/// Longest message content, in characters.
pub const MAX_CONTENT_CHARS: usize = 4000;
/// Longest `p1`/`p2`/`p3` and `client_msg_id`, in characters.
pub const MAX_FIELD_CHARS: usize = 1000;
/// Most messages one history page returns.
pub const MAX_HISTORY_PAGE: u64 = 200;

/// A validated message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub project_id: String,
    pub conversation_id: String,
    pub sender: Sender,
    pub client_msg_id: Option<String>,
    /// 0 text, 1 image, 2 location, 3 file, 4 custom, 5 system (seed 002).
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
