//! Projects, external users, conversations and their members.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    Name,
    PublicKey,
    SecretKey,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    ProjectId,
    ExternalId,
    Name,
    Email,
    AvatarUrl,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Conversations {
    Table,
    Id,
    ProjectId,
    Kind,
    Title,
    ArchivedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ConversationMembers {
    Table,
    ConversationId,
    UserId,
    ProjectId,
    Role,
    JoinedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Projects::Table)
                    .col(ColumnDef::new(Projects::Id).string_len(64).not_null().primary_key())
                    .col(ColumnDef::new(Projects::Name).string_len(200).not_null())
                    .col(ColumnDef::new(Projects::PublicKey).string_len(128).not_null().unique_key())
                    .col(ColumnDef::new(Projects::SecretKey).string_len(128).not_null().unique_key())
                    .col(ColumnDef::new(Projects::CreatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(ColumnDef::new(Users::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Users::ProjectId).string_len(64).not_null())
                    .col(ColumnDef::new(Users::ExternalId).string_len(128).not_null())
                    .col(ColumnDef::new(Users::Name).string_len(200))
                    .col(ColumnDef::new(Users::Email).string_len(320))
                    .col(ColumnDef::new(Users::AvatarUrl).string_len(2048))
                    .col(ColumnDef::new(Users::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Users::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_users_project_external")
                    .table(Users::Table)
                    .col(Users::ProjectId)
                    .col(Users::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Conversations::Table)
                    .col(ColumnDef::new(Conversations::Id).string_len(64).not_null().primary_key())
                    .col(ColumnDef::new(Conversations::ProjectId).string_len(64).not_null())
                    .col(ColumnDef::new(Conversations::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(Conversations::Title).string_len(200))
                    .col(ColumnDef::new(Conversations::ArchivedAt).timestamp_with_time_zone())
                    .col(ColumnDef::new(Conversations::CreatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_conversations_project")
                    .table(Conversations::Table)
                    .col(Conversations::ProjectId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConversationMembers::Table)
                    .col(ColumnDef::new(ConversationMembers::ConversationId).string_len(64).not_null())
                    .col(ColumnDef::new(ConversationMembers::UserId).string_len(128).not_null())
                    .col(ColumnDef::new(ConversationMembers::ProjectId).string_len(64).not_null())
                    .col(ColumnDef::new(ConversationMembers::Role).string_len(16).not_null())
                    .col(ColumnDef::new(ConversationMembers::JoinedAt).timestamp_with_time_zone().not_null())
                    .primary_key(
                        Index::create()
                            .col(ConversationMembers::ConversationId)
                            .col(ConversationMembers::UserId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_members_project_user")
                    .table(ConversationMembers::Table)
                    .col(ConversationMembers::ProjectId)
                    .col(ConversationMembers::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ConversationMembers::Table.into_iden(),
            Conversations::Table.into_iden(),
            Users::Table.into_iden(),
            Projects::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
