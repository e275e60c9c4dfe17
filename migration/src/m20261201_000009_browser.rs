//! The browser: per-project settings for web pages (allowed origins,
//! identity verification, visitor chat, session lifetime, the widget's
//! look and launcher icon), the agents who answer visitors' support
//! conversations, and what a visitor said about who they are.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    /// JSON array of origins (`https://shop.example`) allowed to call the
    /// browser-facing routes and open WebSockets; empty allows every origin.
    AllowedOrigins,
    /// `off`, `optional` or `required`: how `identify()` treats a `userHash`.
    IdentityVerification,
    /// HMAC-SHA256 key of `userHash` (created when verification is first
    /// turned on).
    IdentitySecret,
    /// Whether people who are not logged in may chat (visitor sessions).
    Visitors,
    /// Lifetime of the session tokens the project's clients get, seconds.
    SessionLifetimeSecs,
    /// JSON object: the widget's colors, texts and layout.
    Widget,
}

#[derive(DeriveIden)]
enum LauncherIcons {
    Table,
    ProjectId,
    /// `image/png` or `image/svg+xml`.
    ContentType,
    /// The file, at most 100 KB.
    Bytes,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    /// Answers visitors: added to every support conversation a visitor opens.
    IsAgent,
    /// The site user id a visitor claimed with `identify()`.
    IdentifiedAs,
    /// Whether that claim came with a valid `userHash`.
    IdentityVerified,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let additions = [
            Table::alter()
                .table(Projects::Table)
                .add_column(ColumnDef::new(Projects::AllowedOrigins).text().not_null().default("[]"))
                .to_owned(),
            Table::alter()
                .table(Projects::Table)
                .add_column(ColumnDef::new(Projects::IdentityVerification).string_len(16).not_null().default("off"))
                .to_owned(),
            Table::alter()
                .table(Projects::Table)
                .add_column(ColumnDef::new(Projects::IdentitySecret).string_len(128).null())
                .to_owned(),
            Table::alter()
                .table(Projects::Table)
                .add_column(ColumnDef::new(Projects::Visitors).boolean().not_null().default(false))
                .to_owned(),
            Table::alter()
                .table(Projects::Table)
                .add_column(ColumnDef::new(Projects::SessionLifetimeSecs).big_integer().not_null().default(86_400))
                .to_owned(),
            Table::alter()
                .table(Projects::Table)
                .add_column(ColumnDef::new(Projects::Widget).text().not_null().default("{}"))
                .to_owned(),
            Table::alter()
                .table(Users::Table)
                .add_column(ColumnDef::new(Users::IsAgent).boolean().not_null().default(false))
                .to_owned(),
            Table::alter()
                .table(Users::Table)
                .add_column(ColumnDef::new(Users::IdentifiedAs).string_len(128).null())
                .to_owned(),
            Table::alter()
                .table(Users::Table)
                .add_column(ColumnDef::new(Users::IdentityVerified).boolean().not_null().default(false))
                .to_owned(),
        ];
        crate::alter_each(manager, additions).await?;
        manager
            .create_table(
                Table::create()
                    .table(LauncherIcons::Table)
                    .col(ColumnDef::new(LauncherIcons::ProjectId).string_len(64).not_null().primary_key())
                    .col(ColumnDef::new(LauncherIcons::ContentType).string_len(32).not_null())
                    .col(ColumnDef::new(LauncherIcons::Bytes).binary().not_null())
                    .col(ColumnDef::new(LauncherIcons::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(LauncherIcons::Table).to_owned()).await?;
        let drops = [
            Table::alter().table(Users::Table).drop_column(Users::IdentityVerified).to_owned(),
            Table::alter().table(Users::Table).drop_column(Users::IdentifiedAs).to_owned(),
            Table::alter().table(Users::Table).drop_column(Users::IsAgent).to_owned(),
            Table::alter().table(Projects::Table).drop_column(Projects::Widget).to_owned(),
            Table::alter().table(Projects::Table).drop_column(Projects::SessionLifetimeSecs).to_owned(),
            Table::alter().table(Projects::Table).drop_column(Projects::Visitors).to_owned(),
            Table::alter().table(Projects::Table).drop_column(Projects::IdentitySecret).to_owned(),
            Table::alter().table(Projects::Table).drop_column(Projects::IdentityVerification).to_owned(),
            Table::alter().table(Projects::Table).drop_column(Projects::AllowedOrigins).to_owned(),
        ];
        crate::alter_each(manager, drops).await
    }
}
