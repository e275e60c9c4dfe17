//! Several mqchat instances on one database (external broker mode):
//! - a webhook delivery names the instance that claimed it, so an instance
//!   that restarts takes its own unfinished claims back at once while other
//!   instances' claims run out their lease;
//! - presence per device, from the status announcements and wills clients
//!   publish, so whichever instance reads a device's message decides the
//!   user's state from every device's.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    /// The instance sending it now (`NULL`: nobody).
    ClaimedBy,
}

#[derive(DeriveIden)]
enum PresenceDevices {
    Table,
    ProjectId,
    UserId,
    /// What the device calls itself (`""` when it does not say).
    Device,
    /// The connection's epoch: a message with an older one is stale.
    Epoch,
    Online,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookDeliveries::Table)
                    .add_column(ColumnDef::new(WebhookDeliveries::ClaimedBy).string_len(128).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PresenceDevices::Table)
                    .col(ColumnDef::new(PresenceDevices::ProjectId).string_len(64).not_null())
                    .col(ColumnDef::new(PresenceDevices::UserId).string_len(128).not_null())
                    .col(ColumnDef::new(PresenceDevices::Device).string_len(128).not_null())
                    .col(ColumnDef::new(PresenceDevices::Epoch).big_integer().not_null())
                    .col(ColumnDef::new(PresenceDevices::Online).boolean().not_null())
                    .col(ColumnDef::new(PresenceDevices::UpdatedAt).timestamp_with_time_zone().not_null())
                    .primary_key(Index::create().col(PresenceDevices::ProjectId).col(PresenceDevices::UserId).col(PresenceDevices::Device))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(PresenceDevices::Table).to_owned()).await?;
        manager
            .alter_table(Table::alter().table(WebhookDeliveries::Table).drop_column(WebhookDeliveries::ClaimedBy).to_owned())
            .await
    }
}
