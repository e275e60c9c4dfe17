//! Opening the database: SQLite (default, WAL) or PostgreSQL.
use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr};

/// Connects to `url` and, on SQLite, turns on WAL and a busy timeout so that
/// readers never block the writer and concurrent writers wait instead of failing.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(if url.starts_with("sqlite:") { 8 } else { 20 })
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    let db = Database::connect(options).await?;
    if db.get_database_backend() == DbBackend::Sqlite {
        for pragma in ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA busy_timeout=5000"] {
            db.execute_unprepared(pragma).await?;
        }
    }
    Ok(db)
}
