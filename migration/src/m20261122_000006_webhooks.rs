//! Webhooks and callback URLs, and the outbox of their deliveries (which is
//! also their delivery log, with one row per attempt).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    ProjectId,
    Kind,
    Name,
    Url,
    Secret,
    Events,
    Enabled,
    DisabledReason,
    DisabledAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    EventId,
    EventType,
    EndpointId,
    ProjectId,
    Body,
    Status,
    Attempts,
    NextAttemptAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    DeliveryId,
    Attempt,
    StatusCode,
    Error,
    LatencyMs,
    AttemptedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .col(ColumnDef::new(WebhookEndpoints::Id).string_len(40).not_null().primary_key())
                    .col(ColumnDef::new(WebhookEndpoints::ProjectId).string_len(64).not_null())
                    .col(ColumnDef::new(WebhookEndpoints::Kind).string_len(24).not_null())
                    .col(ColumnDef::new(WebhookEndpoints::Name).string_len(200).not_null())
                    .col(ColumnDef::new(WebhookEndpoints::Url).text().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::Secret).string_len(128).not_null())
                    .col(ColumnDef::new(WebhookEndpoints::Events).text().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::Enabled).boolean().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::DisabledReason).text().null())
                    .col(ColumnDef::new(WebhookEndpoints::DisabledAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(WebhookEndpoints::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_endpoints_project")
                    .table(WebhookEndpoints::Table)
                    .col(WebhookEndpoints::ProjectId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(ColumnDef::new(WebhookDeliveries::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(WebhookDeliveries::EventId).string_len(40).not_null())
                    .col(ColumnDef::new(WebhookDeliveries::EventType).string_len(40).not_null())
                    .col(ColumnDef::new(WebhookDeliveries::EndpointId).string_len(40).not_null())
                    .col(ColumnDef::new(WebhookDeliveries::ProjectId).string_len(64).not_null())
                    .col(ColumnDef::new(WebhookDeliveries::Body).text().not_null())
                    .col(ColumnDef::new(WebhookDeliveries::Status).string_len(16).not_null())
                    .col(ColumnDef::new(WebhookDeliveries::Attempts).integer().not_null())
                    .col(ColumnDef::new(WebhookDeliveries::NextAttemptAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(WebhookDeliveries::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(WebhookDeliveries::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        // The dispatcher's question, per endpoint: what is due now, oldest first.
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_due")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EndpointId)
                    .col(WebhookDeliveries::Status)
                    .col(WebhookDeliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        // The delivery log of one endpoint, newest first.
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_endpoint")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EndpointId)
                    .col(WebhookDeliveries::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempts::Table)
                    .col(ColumnDef::new(WebhookAttempts::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(WebhookAttempts::DeliveryId).big_integer().not_null())
                    .col(ColumnDef::new(WebhookAttempts::Attempt).integer().not_null())
                    .col(ColumnDef::new(WebhookAttempts::StatusCode).integer().null())
                    .col(ColumnDef::new(WebhookAttempts::Error).text().null())
                    .col(ColumnDef::new(WebhookAttempts::LatencyMs).integer().not_null())
                    .col(ColumnDef::new(WebhookAttempts::AttemptedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_attempts_delivery")
                    .table(WebhookAttempts::Table)
                    .col(WebhookAttempts::DeliveryId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(WebhookAttempts::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(WebhookEndpoints::Table).to_owned()).await
    }
}
