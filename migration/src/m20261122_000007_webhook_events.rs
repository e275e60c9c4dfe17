//! Each event's body stored once: `webhook_events` holds the bodies, in the
//! order they were recorded, and a delivery row becomes a small reference
//! (endpoint, event, state). The group commit then writes one row per event
//! instead of one full body per subscribed endpoint; the dispatcher creates
//! the delivery rows from the events after `webhook_fanout.last_seq`.
//!
//! Existing deliveries keep their ids and bytes: each becomes an event of
//! its own holding the body it had (for either kind of endpoint).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEvents {
    Table,
    Seq,
    EventId,
    EventType,
    ProjectId,
    Body,
    CallbackBody,
    CreatedAt,
    LegacyDeliveryId,
}

#[derive(DeriveIden)]
enum WebhookFanout {
    Table,
    Id,
    LastSeq,
}

#[derive(DeriveIden, Clone)]
enum WebhookDeliveries {
    Table,
    Id,
    EventId,
    EventType,
    ProjectId,
    Body,
    EventSeq,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEvents::Table)
                    .col(ColumnDef::new(WebhookEvents::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(WebhookEvents::EventId).string_len(40).not_null())
                    .col(ColumnDef::new(WebhookEvents::EventType).string_len(40).not_null())
                    .col(ColumnDef::new(WebhookEvents::ProjectId).string_len(64).not_null())
                    .col(ColumnDef::new(WebhookEvents::Body).text().null())
                    .col(ColumnDef::new(WebhookEvents::CallbackBody).text().null())
                    .col(ColumnDef::new(WebhookEvents::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(WebhookEvents::LegacyDeliveryId).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookFanout::Table)
                    .col(ColumnDef::new(WebhookFanout::Id).integer().not_null().primary_key())
                    .col(ColumnDef::new(WebhookFanout::LastSeq).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(WebhookDeliveries::Table).add_column(ColumnDef::new(WebhookDeliveries::EventSeq).big_integer().null()).to_owned(),
            )
            .await?;

        // Every existing delivery becomes an event with its own body.
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(WebhookEvents::Table)
                    .columns([
                        WebhookEvents::EventId,
                        WebhookEvents::EventType,
                        WebhookEvents::ProjectId,
                        WebhookEvents::Body,
                        WebhookEvents::CallbackBody,
                        WebhookEvents::CreatedAt,
                        WebhookEvents::LegacyDeliveryId,
                    ])
                    .select_from(
                        Query::select()
                            .columns([
                                WebhookDeliveries::EventId,
                                WebhookDeliveries::EventType,
                                WebhookDeliveries::ProjectId,
                                WebhookDeliveries::Body,
                                WebhookDeliveries::Body,
                                WebhookDeliveries::CreatedAt,
                                WebhookDeliveries::Id,
                            ])
                            .from(WebhookDeliveries::Table)
                            .order_by(WebhookDeliveries::Id, Order::Asc)
                            .to_owned(),
                    )
                    .map_err(|error| DbErr::Migration(error.to_string()))?
                    .to_owned(),
            )
            .await?;
        set_from(
            manager,
            WebhookDeliveries::EventSeq,
            Query::select()
                .column(WebhookEvents::Seq)
                .from(WebhookEvents::Table)
                .and_where(
                    Expr::col((WebhookEvents::Table, WebhookEvents::LegacyDeliveryId))
                        .equals((WebhookDeliveries::Table, WebhookDeliveries::Id)),
                )
                .to_owned(),
        )
        .await?;
        // All of them have their delivery rows already.
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(WebhookFanout::Table)
                    .columns([WebhookFanout::Id, WebhookFanout::LastSeq])
                    .select_from(
                        Query::select()
                            .expr(Expr::val(1))
                            .expr(Func::coalesce([Expr::col(WebhookEvents::Seq).max(), Expr::val(0)]))
                            .from(WebhookEvents::Table)
                            .to_owned(),
                    )
                    .map_err(|error| DbErr::Migration(error.to_string()))?
                    .to_owned(),
            )
            .await?;

        manager
            .alter_table(Table::alter().table(WebhookEvents::Table).drop_column(WebhookEvents::LegacyDeliveryId).to_owned())
            .await?;
        for column in [WebhookDeliveries::Body, WebhookDeliveries::EventId, WebhookDeliveries::EventType] {
            manager.alter_table(Table::alter().table(WebhookDeliveries::Table).drop_column(column).to_owned()).await?;
        }
        // Purging an event asks whether any delivery still refers to it.
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_event")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EventSeq)
                    .to_owned(),
            )
            .await?;
        // Purging old events.
        manager
            .create_index(
                Index::create().name("ix_webhook_events_created").table(WebhookEvents::Table).col(WebhookEvents::CreatedAt).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Each delivery takes its event's bytes back (the envelope, or the
        // callback body when the event has no envelope).
        let columns = [
            (WebhookDeliveries::EventId, Expr::col(WebhookEvents::EventId)),
            (WebhookDeliveries::EventType, Expr::col(WebhookEvents::EventType)),
            (WebhookDeliveries::Body, Func::coalesce([Expr::col(WebhookEvents::Body), Expr::col(WebhookEvents::CallbackBody)]).into()),
        ];
        for (column, source) in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(WebhookDeliveries::Table)
                        .add_column(ColumnDef::new(column.clone()).text().not_null().default(""))
                        .to_owned(),
                )
                .await?;
            set_from(
                manager,
                column,
                Query::select()
                    .expr(source)
                    .from(WebhookEvents::Table)
                    .and_where(
                        Expr::col((WebhookEvents::Table, WebhookEvents::Seq))
                            .equals((WebhookDeliveries::Table, WebhookDeliveries::EventSeq)),
                    )
                    .to_owned(),
            )
            .await?;
        }
        manager.drop_index(Index::drop().name("ix_webhook_deliveries_event").table(WebhookDeliveries::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(WebhookDeliveries::Table).drop_column(WebhookDeliveries::EventSeq).to_owned()).await?;
        manager.drop_table(Table::drop().table(WebhookFanout::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(WebhookEvents::Table).to_owned()).await
    }
}

/// `UPDATE webhook_deliveries SET column = (query)`, `query` correlated with the row.
async fn set_from(manager: &SchemaManager<'_>, column: WebhookDeliveries, query: SelectStatement) -> Result<(), DbErr> {
    let value = SimpleExpr::SubQuery(None, Box::new(query.into_sub_query_statement()));
    manager.exec_stmt(Query::update().table(WebhookDeliveries::Table).value(column, value).to_owned()).await
}
