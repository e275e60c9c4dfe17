//! Read receipts: each member's read position per conversation, which only
//! moves forward, and the unread count it implies.
use entity::{conversation, read_receipt};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

/// Where a member stands after marking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPosition {
    pub last_read_seq: i64,
    /// Messages after it.
    pub unread: i64,
    /// False when the mark was not beyond what was already read.
    pub moved: bool,
}

/// Marks everything up to `seq` (capped at the newest message) as read by
/// `user_id`. A mark behind the current position changes nothing, so marks
/// from several devices can arrive in any order.
pub async fn mark(
    db: &impl ConnectionTrait,
    conversation_id: &str,
    user_id: &str,
    seq: i64,
) -> Result<ReadPosition, DbErr> {
    let last_seq = conversation::Entity::find_by_id(conversation_id.to_owned())
        .one(db)
        .await?
        .map_or(0, |row| row.last_seq);
    let target = seq.clamp(0, last_seq);
    let now = crate::clock::now();
    let advanced = read_receipt::Entity::update_many()
        .col_expr(read_receipt::Column::LastReadSeq, Expr::value(target))
        .col_expr(read_receipt::Column::UpdatedAt, Expr::value(now))
        .filter(read_receipt::Column::ConversationId.eq(conversation_id))
        .filter(read_receipt::Column::UserId.eq(user_id))
        .filter(read_receipt::Column::LastReadSeq.lt(target))
        .exec(db)
        .await?
        .rows_affected
        > 0;
    let inserted = !advanced
        && read_receipt::Entity::insert(read_receipt::ActiveModel {
            conversation_id: Set(conversation_id.to_owned()),
            user_id: Set(user_id.to_owned()),
            last_read_seq: Set(target),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::columns([read_receipt::Column::ConversationId, read_receipt::Column::UserId]).do_nothing().to_owned(),
        )
        .exec_without_returning(db)
        .await?
            > 0;
    let last_read_seq = if advanced || inserted { target } else { position(db, conversation_id, user_id).await? };
    Ok(ReadPosition { last_read_seq, unread: last_seq - last_read_seq, moved: advanced || inserted })
}

/// Moves each (conversation, user) read position forward to its seq, in
/// one statement: a sender has read what it sent.
pub async fn advance_many(db: &impl ConnectionTrait, positions: &[(&str, &str, i64)]) -> Result<(), DbErr> {
    if positions.is_empty() {
        return Ok(());
    }
    let now = crate::clock::now();
    let rows = positions.iter().map(|&(conversation_id, user_id, seq)| read_receipt::ActiveModel {
        conversation_id: Set(conversation_id.to_owned()),
        user_id: Set(user_id.to_owned()),
        last_read_seq: Set(seq),
        updated_at: Set(now),
    });
    read_receipt::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([read_receipt::Column::ConversationId, read_receipt::Column::UserId])
                .update_columns([read_receipt::Column::LastReadSeq, read_receipt::Column::UpdatedAt])
                .action_and_where(
                    Expr::col((read_receipt::Entity, read_receipt::Column::LastReadSeq))
                        .lt(Expr::cust(r#"excluded."last_read_seq""#)),
                )
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The member's current read position (0 when it never marked).
pub async fn position(db: &impl ConnectionTrait, conversation_id: &str, user_id: &str) -> Result<i64, DbErr> {
    Ok(read_receipt::Entity::find_by_id((conversation_id.to_owned(), user_id.to_owned()))
        .one(db)
        .await?
        .map_or(0, |row| row.last_read_seq))
}
