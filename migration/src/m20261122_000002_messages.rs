//! Messages, and the per-conversation counter that gives them a gapless `seq`.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversations {
    Table,
    LastSeq,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    ConversationId,
    ProjectId,
    Seq,
    SenderId,
    ClientMsgId,
    Kind,
    Content,
    P1,
    P2,
    P3,
    ReplyToMessageId,
    Edited,
    IsDeleted,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Conversations::Table)
                    .add_column(ColumnDef::new(Conversations::LastSeq).big_integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .col(ColumnDef::new(Messages::Id).string_len(64).not_null().primary_key())
                    .col(ColumnDef::new(Messages::ConversationId).string_len(64).not_null())
                    .col(ColumnDef::new(Messages::ProjectId).string_len(64).not_null())
                    .col(ColumnDef::new(Messages::Seq).big_integer().not_null())
                    .col(ColumnDef::new(Messages::SenderId).string_len(128).not_null())
                    .col(ColumnDef::new(Messages::ClientMsgId).string_len(128))
                    .col(ColumnDef::new(Messages::Kind).small_integer().not_null())
                    .col(ColumnDef::new(Messages::Content).text().not_null())
                    .col(ColumnDef::new(Messages::P1).text())
                    .col(ColumnDef::new(Messages::P2).text())
                    .col(ColumnDef::new(Messages::P3).text())
                    .col(ColumnDef::new(Messages::ReplyToMessageId).string_len(64))
                    .col(ColumnDef::new(Messages::Edited).boolean().not_null().default(false))
                    .col(ColumnDef::new(Messages::IsDeleted).boolean().not_null().default(false))
                    .col(ColumnDef::new(Messages::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Messages::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        // History pages and `history.sync` read by (conversation, seq).
        manager
            .create_index(
                Index::create()
                    .name("ux_messages_conversation_seq")
                    .table(Messages::Table)
                    .col(Messages::ConversationId)
                    .col(Messages::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // A retried send finds its original (NULL client ids never collide).
        manager
            .create_index(
                Index::create()
                    .name("ux_messages_client_msg_id")
                    .table(Messages::Table)
                    .col(Messages::ConversationId)
                    .col(Messages::SenderId)
                    .col(Messages::ClientMsgId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Messages::Table).to_owned()).await?;
        manager
            .alter_table(Table::alter().table(Conversations::Table).drop_column(Conversations::LastSeq).to_owned())
            .await
    }
}
