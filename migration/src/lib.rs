//! SeaORM migrations: the schema of mqchat on SQLite and PostgreSQL.
//!
//! `Migrator` lists every migration in order; the binary runs it at start-up
//! and through `mqchat migrate`, and `cargo run -p migration` works as
//! sea-orm-cli expects. Migrations use only portable SeaQuery statements.
#![forbid(unsafe_code)]

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_core;
mod m20261122_000002_messages;
mod m20261122_000003_reactions_and_receipts;
mod m20261122_000004_conversation_lists_and_attachments;
mod m20261122_000005_presence;
mod m20261122_000006_webhooks;
mod m20261122_000007_webhook_events;
mod m20261130_000008_hardening;
mod m20261201_000009_browser;
mod m20261201_000010_mqtt_state;
mod m20261201_000011_instances;

pub struct Migrator;

/// Runs table alterations one by one: SQLite alters one column per statement.
async fn alter_each(manager: &SchemaManager<'_>, alterations: impl IntoIterator<Item = TableAlterStatement>) -> Result<(), DbErr> {
    for alteration in alterations {
        manager.alter_table(alteration).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_core::Migration),
            Box::new(m20261122_000002_messages::Migration),
            Box::new(m20261122_000003_reactions_and_receipts::Migration),
            Box::new(m20261122_000004_conversation_lists_and_attachments::Migration),
            Box::new(m20261122_000005_presence::Migration),
            Box::new(m20261122_000006_webhooks::Migration),
            Box::new(m20261122_000007_webhook_events::Migration),
            Box::new(m20261130_000008_hardening::Migration),
            Box::new(m20261201_000009_browser::Migration),
            Box::new(m20261201_000010_mqtt_state::Migration),
            Box::new(m20261201_000011_instances::Migration),
        ]
    }
}
