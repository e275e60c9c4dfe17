//! Hardening: platform-only system messages, session revocation per user,
//! project secret-key rotation with a grace period, and which conversation
//! types end users may create (direct only unless the project allows more).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Messages {
    Table,
    /// Posted by the site's backend as the platform; no client can forge one.
    System,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    /// Session and identity tokens issued before this instant are refused.
    SessionsRevokedAt,
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    /// The secret key a rotation replaced: tokens it signed still verify
    /// until `previous_secret_expires_at`.
    PreviousSecretKey,
    PreviousSecretExpiresAt,
    /// Conversation types end users may create themselves, comma-separated.
    UserConversationTypes,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let additions = [
            Table::alter()
                .table(Messages::Table)
                .add_column(ColumnDef::new(Messages::System).boolean().not_null().default(false))
                .to_owned(),
            Table::alter()
                .table(Users::Table)
                .add_column(ColumnDef::new(Users::SessionsRevokedAt).timestamp_with_time_zone().null())
                .to_owned(),
            Table::alter()
                .table(Projects::Table)
                .add_column(ColumnDef::new(Projects::PreviousSecretKey).string_len(128).null())
                .to_owned(),
            Table::alter()
                .table(Projects::Table)
                .add_column(ColumnDef::new(Projects::PreviousSecretExpiresAt).timestamp_with_time_zone().null())
                .to_owned(),
            Table::alter()
                .table(Projects::Table)
                .add_column(ColumnDef::new(Projects::UserConversationTypes).string_len(64).not_null().default("direct"))
                .to_owned(),
        ];
        crate::alter_each(manager, additions).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let drops = [
            Table::alter().table(Projects::Table).drop_column(Projects::UserConversationTypes).to_owned(),
            Table::alter().table(Projects::Table).drop_column(Projects::PreviousSecretExpiresAt).to_owned(),
            Table::alter().table(Projects::Table).drop_column(Projects::PreviousSecretKey).to_owned(),
            Table::alter().table(Users::Table).drop_column(Users::SessionsRevokedAt).to_owned(),
            Table::alter().table(Messages::Table).drop_column(Messages::System).to_owned(),
        ];
        crate::alter_each(manager, drops).await
    }
}
