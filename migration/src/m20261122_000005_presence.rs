//! Each user's presence: online or offline, and when last seen.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UserPresence {
    Table,
    ProjectId,
    UserId,
    Status,
    LastSeenAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UserPresence::Table)
                    .col(ColumnDef::new(UserPresence::ProjectId).string_len(64).not_null())
                    .col(ColumnDef::new(UserPresence::UserId).string_len(128).not_null())
                    .col(ColumnDef::new(UserPresence::Status).string_len(16).not_null())
                    .col(ColumnDef::new(UserPresence::LastSeenAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(UserPresence::UpdatedAt).timestamp_with_time_zone().not_null())
                    .primary_key(Index::create().col(UserPresence::ProjectId).col(UserPresence::UserId))
                    .to_owned(),
            )
            .await?;
        // Start-up reconciliation and the periodic last-seen refresh find online users.
        manager
            .create_index(
                Index::create()
                    .name("ix_user_presence_status")
                    .table(UserPresence::Table)
                    .col(UserPresence::Status)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(UserPresence::Table).to_owned()).await
    }
}
