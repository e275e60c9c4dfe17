//! Reactions to messages, and each member's read position per conversation.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Reactions {
    Table,
    MessageId,
    UserId,
    Emoji,
    ConversationId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ReadReceipts {
    Table,
    ConversationId,
    UserId,
    LastReadSeq,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Reactions::Table)
                    .col(ColumnDef::new(Reactions::MessageId).string_len(64).not_null())
                    .col(ColumnDef::new(Reactions::UserId).string_len(128).not_null())
                    .col(ColumnDef::new(Reactions::Emoji).string_len(64).not_null())
                    .col(ColumnDef::new(Reactions::ConversationId).string_len(64).not_null())
                    .col(ColumnDef::new(Reactions::CreatedAt).timestamp_with_time_zone().not_null())
                    .primary_key(
                        Index::create().col(Reactions::MessageId).col(Reactions::UserId).col(Reactions::Emoji),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReadReceipts::Table)
                    .col(ColumnDef::new(ReadReceipts::ConversationId).string_len(64).not_null())
                    .col(ColumnDef::new(ReadReceipts::UserId).string_len(128).not_null())
                    .col(ColumnDef::new(ReadReceipts::LastReadSeq).big_integer().not_null())
                    .col(ColumnDef::new(ReadReceipts::UpdatedAt).timestamp_with_time_zone().not_null())
                    .primary_key(Index::create().col(ReadReceipts::ConversationId).col(ReadReceipts::UserId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ReadReceipts::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Reactions::Table).to_owned()).await
    }
}
