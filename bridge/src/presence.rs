//! Presence: a user is online while any of its devices is connected. The
//! gateway reports each change in order (with an epoch that only grows);
//! this module stores it with when the user was last seen and publishes it
//! as the retained message of `chat/{project}/presence/{user}`, so a client
//! that subscribes learns the current state at once.
//!
//! Changes are applied in batches — whatever waits, the last change per
//! user wins — so a reconnect storm costs one transaction per batch, not a
//! write per connection. While a user is online its `last_seen_at` is
//! refreshed periodically; after a crash, start-up reconciliation marks
//! everyone still stored as online offline, last seen at that refresh.
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use entity::user_presence;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set, TransactionTrait};
use serde::Serialize;

use crate::commands::Outlet;
use crate::webhooks::{Event, EventType, Outbox};

/// Most changes applied in one transaction.
pub const MAX_BATCH: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Online,
    Offline,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Offline => "offline",
        }
    }
}

/// A user's presence as clients and the API see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresenceView {
    pub user_id: String,
    pub status: Status,
    /// `None` for a user never seen.
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// One change as the gateway reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub project_id: String,
    pub user_id: String,
    pub online: bool,
    pub epoch: u64,
}

/// Applies changes and publishes the resulting states.
pub struct PresenceTracker {
    db: DatabaseConnection,
    outlet: Arc<dyn Outlet>,
    /// `user.presence.changed` and presence callbacks, recorded with each change.
    outbox: Arc<Outbox>,
    /// The newest epoch applied per (project, user): an older change is stale.
    epochs: DashMap<(String, String), u64>,
}

impl PresenceTracker {
    /// With `reconcile` (the embedded broker: no connection survives a
    /// restart), sets what a previous run left online offline and
    /// publishes it. An external broker's connections outlive this process,
    /// so there the stored state stands.
    pub async fn start(db: DatabaseConnection, outlet: Arc<dyn Outlet>, outbox: Arc<Outbox>, reconcile: bool) -> Result<PresenceTracker, DbErr> {
        if !reconcile {
            return Ok(PresenceTracker { db, outlet, outbox, epochs: DashMap::new() });
        }
        let stale = user_presence::Entity::find()
            .filter(user_presence::Column::Status.eq(Status::Online.as_str()))
            .all(&db)
            .await?;
        let views: Vec<(String, PresenceView)> = stale
            .into_iter()
            .map(|row| {
                let view = PresenceView { user_id: row.user_id, status: Status::Offline, last_seen_at: Some(row.last_seen_at) };
                (row.project_id, view)
            })
            .collect();
        if !views.is_empty() {
            let txn = db.begin().await?;
            user_presence::Entity::update_many()
                .col_expr(user_presence::Column::Status, Expr::value(Status::Offline.as_str()))
                .col_expr(user_presence::Column::UpdatedAt, Expr::value(crate::clock::now()))
                .filter(user_presence::Column::Status.eq(Status::Online.as_str()))
                .exec(&txn)
                .await?;
            let recorded = record_changes(&txn, &outbox, &views).await?;
            txn.commit().await?;
            if recorded > 0 {
                outbox.wake();
            }
            tracing::info!(users = views.len(), "presence left online by the previous run set to offline");
        }
        let tracker = PresenceTracker { db, outlet, outbox, epochs: DashMap::new() };
        for (project_id, view) in views {
            tracker.publish(&project_id, &view);
        }
        Ok(tracker)
    }

    /// Applies a batch of changes in arrival order: stale ones are skipped,
    /// the last one per user is stored (one transaction) and published.
    pub async fn apply(&self, changes: Vec<Change>) -> Result<(), DbErr> {
        let mut latest: HashMap<(String, String), bool> = HashMap::new();
        for change in changes {
            let key = (change.project_id, change.user_id);
            let newest = self.epochs.get(&key).map_or(0, |epoch| *epoch);
            if change.epoch < newest {
                tracing::debug!(user = %key.1, epoch = change.epoch, newest, "stale presence change ignored");
                continue;
            }
            self.epochs.insert(key.clone(), change.epoch);
            latest.insert(key, change.online);
        }
        if latest.is_empty() {
            return Ok(());
        }
        let now = crate::clock::now();
        let views: Vec<(String, PresenceView)> = latest
            .into_iter()
            .map(|((project_id, user_id), online)| {
                (project_id, PresenceView { user_id, status: status(online), last_seen_at: Some(now) })
            })
            .collect();
        let rows = views.iter().map(|(project_id, view)| user_presence::ActiveModel {
            project_id: Set(project_id.clone()),
            user_id: Set(view.user_id.clone()),
            status: Set(view.status.as_str().to_owned()),
            last_seen_at: Set(now),
            updated_at: Set(now),
        });
        let txn = self.db.begin().await?;
        user_presence::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([user_presence::Column::ProjectId, user_presence::Column::UserId])
                    .update_columns([
                        user_presence::Column::Status,
                        user_presence::Column::LastSeenAt,
                        user_presence::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        let recorded = record_changes(&txn, &self.outbox, &views).await?;
        txn.commit().await?;
        if recorded > 0 {
            self.outbox.wake();
        }
        for (project_id, view) in views {
            self.publish(&project_id, &view);
        }
        Ok(())
    }

    /// Moves online users' `last_seen_at` to now (one statement), so that
    /// after a crash they are last seen close to when it happened.
    pub async fn refresh(&self) -> Result<u64, DbErr> {
        let result = user_presence::Entity::update_many()
            .col_expr(user_presence::Column::LastSeenAt, Expr::value(crate::clock::now()))
            .filter(user_presence::Column::Status.eq(Status::Online.as_str()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected)
    }

    fn publish(&self, project_id: &str, view: &PresenceView) {
        let payload = serde_json::to_string(view).unwrap_or_default();
        self.outlet.presence(project_id, &view.user_id, payload);
    }
}

/// Records `user.presence.changed` (and presence callbacks) for the
/// projects that want them.
async fn record_changes(txn: &impl ConnectionTrait, outbox: &Outbox, views: &[(String, PresenceView)]) -> Result<usize, DbErr> {
    let mut recorded = 0;
    for (project_id, view) in views {
        if outbox.wants(project_id, EventType::UserPresenceChanged) {
            recorded += outbox.record(txn, project_id, &[Event::presence(view)]).await?;
        }
    }
    Ok(recorded)
}

fn status(online: bool) -> Status {
    if online {
        Status::Online
    } else {
        Status::Offline
    }
}

/// The user's stored presence; offline and never seen when there is none.
pub async fn get(db: &impl ConnectionTrait, project_id: &str, user_id: &str) -> Result<PresenceView, DbErr> {
    let row = user_presence::Entity::find_by_id((project_id.to_owned(), user_id.to_owned())).one(db).await?;
    Ok(match row {
        Some(row) => PresenceView {
            status: if row.status == Status::Online.as_str() { Status::Online } else { Status::Offline },
            user_id: row.user_id,
            last_seen_at: Some(row.last_seen_at),
        },
        None => PresenceView { user_id: user_id.to_owned(), status: Status::Offline, last_seen_at: None },
    })
}
