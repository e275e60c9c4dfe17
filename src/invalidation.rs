//! Cache invalidation across the mqchat instances sharing one PostgreSQL
//! database: each instance caches conversations' members, projects' keys
//! and origins, and webhook endpoints, and must hear of a change another
//! instance made. A change is announced with PostgreSQL's `NOTIFY` on
//! `mqchat_invalidate` after it committed; every instance `LISTEN`s and
//! drops what the notice names (its own notices too: harmless). A listener
//! that lost its connection may have missed notices, so it drops every
//! conversation it cached when it is back. On SQLite (one process per
//! database) nothing is sent.
use std::sync::Arc;
use std::time::Duration;

use mqchat_bridge::cache::EngineCache;
use mqchat_bridge::DatabaseConnection;
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::http::ApiState;

/// The PostgreSQL notification channel.
pub const CHANNEL: &str = "mqchat_invalidate";
/// Wait before listening again after the connection failed.
const RETRY: Duration = Duration::from_secs(1);

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// Members or archived state of a conversation.
    Conversation { project_id: String, conversation_id: String },
    /// A project's keys or settings (origins included).
    Project { public_key: String },
    /// Webhook endpoints and callbacks.
    Webhooks,
}

/// Tells the other instances (PostgreSQL only); a failure is logged: their
/// caches then catch up when their entries expire or they restart.
pub async fn announce(db: &DatabaseConnection, notice: &Notice) {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return;
    }
    let payload = serde_json::to_string(notice).unwrap_or_default();
    let statement = Statement::from_sql_and_values(DatabaseBackend::Postgres, "SELECT pg_notify($1, $2)", [CHANNEL.into(), payload.into()]);
    if let Err(error) = db.execute_raw(statement).await {
        tracing::warn!(%error, "announcing a change to other instances failed");
    }
}

/// Announces every conversation the engine's cache is told changed.
pub fn announce_conversations(db: DatabaseConnection, cache: &EngineCache) {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return;
    }
    let (tx, mut changed) = mpsc::unbounded_channel();
    if !cache.report_changes(tx) {
        return;
    }
    tokio::spawn(async move {
        while let Some((project_id, conversation_id)) = changed.recv().await {
            announce(&db, &Notice::Conversation { project_id, conversation_id }).await;
        }
    });
}

/// Listens for other instances' notices until the process ends.
pub async fn listen(database_url: String, state: Arc<ApiState>) {
    if !database_url.starts_with("postgres") {
        return;
    }
    let mut first = true;
    loop {
        match listen_once(&database_url, &state, first).await {
            Ok(()) => return,
            Err(error) => tracing::warn!(%error, "listening for other instances' changes failed; listening again"),
        }
        first = false;
        tokio::time::sleep(RETRY).await;
    }
}

async fn listen_once(database_url: &str, state: &ApiState, first: bool) -> Result<(), sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(database_url).await?;
    listener.listen(CHANNEL).await?;
    if !first {
        // Notices may have gone by while the connection was down.
        state.engine.cache().forget_all_conversations();
    }
    loop {
        let notification = listener.recv().await?;
        match serde_json::from_str::<Notice>(notification.payload()) {
            Ok(notice) => apply(state, notice).await,
            Err(error) => tracing::warn!(%error, "an unreadable change notice was ignored"),
        }
    }
}

async fn apply(state: &ApiState, notice: Notice) {
    match notice {
        Notice::Conversation { project_id, conversation_id } => state.engine.cache().forget_conversation_quietly(&project_id, &conversation_id),
        Notice::Project { public_key } => {
            state.authorizer.forget(&public_key);
            state.origins.forget();
        }
        Notice::Webhooks => {
            let outbox = state.engine.outbox();
            match outbox.reload(&state.db).await {
                Ok(()) => outbox.rescan(),
                Err(error) => tracing::error!(%error, "reloading webhook endpoints another instance changed failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_on_the_wire() {
        let notice = Notice::Conversation { project_id: "prj_a".into(), conversation_id: "conv_b".into() };
        let wire = serde_json::to_string(&notice).unwrap();
        assert_eq!(wire, r#"{"kind":"conversation","project_id":"prj_a","conversation_id":"conv_b"}"#);
        assert_eq!(serde_json::from_str::<Notice>(&wire).unwrap(), notice);
        assert_eq!(serde_json::from_str::<Notice>(r#"{"kind":"webhooks"}"#).unwrap(), Notice::Webhooks);
    }
}
