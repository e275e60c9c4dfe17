//! What `conversations.list` and direct-conversation uniqueness need, and
//! uploaded files with the messages that reference them.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversations {
    Table,
    ProjectId,
    DirectKey,
    LastActivityAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ConversationMembers {
    Table,
    ProjectId,
    UserId,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Attachments,
}

#[derive(DeriveIden)]
enum Attachments {
    Table,
    Id,
    ProjectId,
    ConversationId,
    UploaderId,
    Filename,
    ContentType,
    Size,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(Conversations::Table)
                    .add_column(ColumnDef::new(Conversations::DirectKey).string_len(260))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Conversations::Table)
                    .add_column(ColumnDef::new(Conversations::LastActivityAt).timestamp_with_time_zone())
                    .to_owned(),
            )
            .await?;
        // Existing conversations sort by when they were created.
        manager
            .exec_stmt(
                Query::update()
                    .table(Conversations::Table)
                    .value(Conversations::LastActivityAt, Expr::col(Conversations::CreatedAt))
                    .and_where(Expr::col(Conversations::LastActivityAt).is_null())
                    .to_owned(),
            )
            .await?;
        // One direct conversation per pair of users (NULL for other kinds never collides).
        manager
            .create_index(
                Index::create()
                    .name("ux_conversations_direct_key")
                    .table(Conversations::Table)
                    .col(Conversations::ProjectId)
                    .col(Conversations::DirectKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // A user's conversations (`conversations.list`, unread totals).
        manager
            .create_index(
                Index::create()
                    .name("ix_conversation_members_user")
                    .table(ConversationMembers::Table)
                    .col(ConversationMembers::ProjectId)
                    .col(ConversationMembers::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Messages::Table).add_column(ColumnDef::new(Messages::Attachments).text()).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Attachments::Table)
                    .col(ColumnDef::new(Attachments::Id).string_len(64).not_null().primary_key())
                    .col(ColumnDef::new(Attachments::ProjectId).string_len(64).not_null())
                    .col(ColumnDef::new(Attachments::ConversationId).string_len(64).not_null())
                    .col(ColumnDef::new(Attachments::UploaderId).string_len(128).not_null())
                    .col(ColumnDef::new(Attachments::Filename).string_len(255).not_null())
                    .col(ColumnDef::new(Attachments::ContentType).string_len(255).not_null())
                    .col(ColumnDef::new(Attachments::Size).big_integer().not_null())
                    .col(ColumnDef::new(Attachments::CreatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Attachments::Table).to_owned()).await?;
        manager
            .alter_table(Table::alter().table(Messages::Table).drop_column(Messages::Attachments).to_owned())
            .await?;
        manager
            .drop_index(Index::drop().name("ix_conversation_members_user").table(ConversationMembers::Table).to_owned())
            .await?;
        manager
            .drop_index(Index::drop().name("ux_conversations_direct_key").table(Conversations::Table).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(Conversations::Table).drop_column(Conversations::LastActivityAt).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(Conversations::Table).drop_column(Conversations::DirectKey).to_owned())
            .await
    }
}
