//! A stored chat message. The server is the authority: it assigns `id` and
//! the per-conversation, gapless `seq`.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    /// `msg_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub conversation_id: String,
    pub project_id: String,
    /// 1, 2, 3, … within the conversation, in commit order, no gaps.
    pub seq: i64,
    /// The sender's `sub`.
    pub sender_id: String,
    /// The sender's own id for the send, making retries idempotent.
    pub client_msg_id: Option<String>,
    /// Message type 0–5 (seed 002: text and smileys, sticker, picture from
    /// disk, recording, picture from camera, audio/video call notice).
    pub kind: i16,
    /// Empty once deleted.
    pub content: String,
    pub p1: Option<String>,
    pub p2: Option<String>,
    pub p3: Option<String>,
    pub reply_to_message_id: Option<String>,
    /// JSON array of the attached files' metadata (`id`, `filename`,
    /// `content_type`, `size`); NULL when none.
    pub attachments: Option<String>,
    pub edited: bool,
    pub is_deleted: bool,
    /// Posted by the site's backend as the platform (server API only).
    pub system: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
