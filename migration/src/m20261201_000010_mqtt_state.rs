//! What the plain-MQTT namespace keeps across restarts (rumqttd keeps it in
//! memory only): retained messages, and the persistent sessions' expiry
//! and subscriptions. Keyed by the SHA-256 of the topic or client id: a
//! topic may be 65,535 bytes, more than a PostgreSQL index entry holds.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RetainedMessages {
    Table,
    /// Hex SHA-256 of `topic`.
    TopicHash,
    Topic,
    Payload,
    /// The QoS it was published with.
    Qos,
    /// JSON of its MQTT 5 properties (content type, user properties, …).
    Properties,
    /// When its MQTT 5 message expiry interval ends; `NULL`: never.
    ExpiresAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum MqttSessions {
    Table,
    /// Hex SHA-256 of `client_id`.
    ClientHash,
    /// The client id as the router knows it (`plain|…`).
    ClientId,
    /// Seconds the session outlives its connection; `NULL`: for ever.
    ExpirySecs,
    /// When its last connection ended; `NULL`: connected when last written.
    EndedAt,
    /// JSON array of its subscriptions (filter, QoS, MQTT 5 options).
    Subscriptions,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RetainedMessages::Table)
                    .col(ColumnDef::new(RetainedMessages::TopicHash).string_len(64).not_null().primary_key())
                    .col(ColumnDef::new(RetainedMessages::Topic).text().not_null())
                    .col(ColumnDef::new(RetainedMessages::Payload).binary().not_null())
                    .col(ColumnDef::new(RetainedMessages::Qos).small_integer().not_null())
                    .col(ColumnDef::new(RetainedMessages::Properties).text().not_null().default("{}"))
                    .col(ColumnDef::new(RetainedMessages::ExpiresAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(RetainedMessages::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MqttSessions::Table)
                    .col(ColumnDef::new(MqttSessions::ClientHash).string_len(64).not_null().primary_key())
                    .col(ColumnDef::new(MqttSessions::ClientId).text().not_null())
                    .col(ColumnDef::new(MqttSessions::ExpirySecs).big_integer().null())
                    .col(ColumnDef::new(MqttSessions::EndedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(MqttSessions::Subscriptions).text().not_null().default("[]"))
                    .col(ColumnDef::new(MqttSessions::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(MqttSessions::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(RetainedMessages::Table).to_owned()).await
    }
}
