//! Reactions: an emoji per (message, user), added or removed.
use entity::reaction;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

/// Longest emoji (or short reaction code), in bytes.
pub const MAX_EMOJI_BYTES: usize = 64;

/// An emoji is 1–64 bytes with no whitespace or control characters.
pub fn valid_emoji(emoji: &str) -> bool {
    !emoji.is_empty() && emoji.len() <= MAX_EMOJI_BYTES && !emoji.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Adds the reaction; false when the user had already reacted so.
pub async fn add(
    db: &impl ConnectionTrait,
    conversation_id: &str,
    message_id: &str,
    user_id: &str,
    emoji: &str,
) -> Result<bool, DbErr> {
    let row = reaction::ActiveModel {
        message_id: Set(message_id.to_owned()),
        user_id: Set(user_id.to_owned()),
        emoji: Set(emoji.to_owned()),
        conversation_id: Set(conversation_id.to_owned()),
        created_at: Set(crate::clock::now()),
    };
    let inserted = reaction::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([reaction::Column::MessageId, reaction::Column::UserId, reaction::Column::Emoji])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(inserted > 0)
}

/// Removes the reaction; false when there was none.
pub async fn remove(db: &impl ConnectionTrait, message_id: &str, user_id: &str, emoji: &str) -> Result<bool, DbErr> {
    let result = reaction::Entity::delete_many()
        .filter(reaction::Column::MessageId.eq(message_id))
        .filter(reaction::Column::UserId.eq(user_id))
        .filter(reaction::Column::Emoji.eq(emoji))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}
