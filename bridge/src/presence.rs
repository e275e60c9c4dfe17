//! Presence: a user is online while any of its devices is. Each device
//! speaks for itself with an epoch that grows with each of its connections:
//! its status announcements and will (`chat/{project}/user/{user}/status`,
//! read from any broker), and — with the embedded broker — the gateway's
//! registry, which counts as one device (`gateway`). A message with an
//! older epoch than the device's stored one is stale; an `offline` with the
//! same epoch ends that connection. Device states are stored
//! (`presence_devices`), so that every mqchat instance sharing the database
//! decides a user's state from all of its devices; the user's state is
//! stored with when it was last seen and published as the retained message
//! of `chat/{project}/presence/{user}`, so a client that subscribes learns
//! the current state at once.
//!
//! Changes are applied in batches, one transaction each (the users' rows
//! are locked first, in order, so instances never interleave on one user).
//! While a user is online its `last_seen_at` is refreshed periodically;
//! with the embedded broker, start-up reconciliation marks everyone still
//! stored as online offline, last seen at that refresh.
use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{presence_device, user_presence};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect, Set,
    TransactionTrait,
};
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

/// The device name under which the embedded gateway reports a user's
/// connections.
pub const GATEWAY_DEVICE: &str = "gateway";

/// One device's word on its presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub project_id: String,
    pub user_id: String,
    /// `""` for a client that does not name its device.
    pub device: String,
    pub online: bool,
    pub epoch: i64,
}

/// Applies changes and publishes the resulting states.
pub struct PresenceTracker {
    db: DatabaseConnection,
    outlet: Arc<dyn Outlet>,
    /// `user.presence.changed` and presence callbacks, recorded with each change.
    outbox: Arc<Outbox>,
}

impl PresenceTracker {
    /// With `reconcile` (the embedded broker: no connection survives a
    /// restart), sets what a previous run left online offline and
    /// publishes it. An external broker's connections outlive this process,
    /// so there the stored state stands.
    pub async fn start(db: DatabaseConnection, outlet: Arc<dyn Outlet>, outbox: Arc<Outbox>, reconcile: bool) -> Result<PresenceTracker, DbErr> {
        if !reconcile {
            return Ok(PresenceTracker { db, outlet, outbox });
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
        // No connection survived the restart: no device speaks any more.
        presence_device::Entity::delete_many().exec(&db).await?;
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
        let tracker = PresenceTracker { db, outlet, outbox };
        for (project_id, view) in views {
            tracker.publish(&project_id, &view);
        }
        Ok(tracker)
    }

    /// Applies a batch of changes in arrival order, in one transaction:
    /// each device keeps its newest epoch's word, then each user touched is
    /// online while any of its devices is; the users' states are stored
    /// and published.
    pub async fn apply(&self, changes: Vec<Change>) -> Result<(), DbErr> {
        if changes.is_empty() {
            return Ok(());
        }
        let now = crate::clock::now();
        let users: BTreeSet<(String, String)> = changes.iter().map(|change| (change.project_id.clone(), change.user_id.clone())).collect();
        let txn = self.db.begin().await?;
        lock_users(&txn, &users, now).await?;
        for change in &changes {
            let row = presence_device::ActiveModel {
                project_id: Set(change.project_id.clone()),
                user_id: Set(change.user_id.clone()),
                device: Set(change.device.clone()),
                epoch: Set(change.epoch),
                online: Set(change.online),
                updated_at: Set(now),
            };
            // A newer epoch replaces; the same epoch may only go offline.
            let newer = Expr::cust(
                "presence_devices.epoch < excluded.epoch OR (presence_devices.epoch = excluded.epoch AND excluded.online = false)",
            );
            presence_device::Entity::insert(row)
                .on_conflict(
                    OnConflict::columns([presence_device::Column::ProjectId, presence_device::Column::UserId, presence_device::Column::Device])
                        .update_columns([presence_device::Column::Epoch, presence_device::Column::Online, presence_device::Column::UpdatedAt])
                        .action_and_where(newer)
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
        }
        let mut views = Vec::with_capacity(users.len());
        for (project_id, user_id) in users {
            let online = presence_device::Entity::find()
                .filter(presence_device::Column::ProjectId.eq(project_id.as_str()))
                .filter(presence_device::Column::UserId.eq(user_id.as_str()))
                .filter(presence_device::Column::Online.eq(true))
                .count(&txn)
                .await?
                > 0;
            views.push((project_id, PresenceView { user_id, status: status(online), last_seen_at: Some(now) }));
        }
        for (project_id, view) in &views {
            user_presence::Entity::update_many()
                .col_expr(user_presence::Column::Status, Expr::value(view.status.as_str()))
                .col_expr(user_presence::Column::LastSeenAt, Expr::value(now))
                .col_expr(user_presence::Column::UpdatedAt, Expr::value(now))
                .filter(user_presence::Column::ProjectId.eq(project_id.as_str()))
                .filter(user_presence::Column::UserId.eq(view.user_id.as_str()))
                .exec(&txn)
                .await?;
        }
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

    /// Sets offline every device still online that has not spoken since
    /// `since` (its broker restarted and holds no connection of it any
    /// more); returns how many. A device that announced itself meanwhile
    /// has a newer epoch and is left alone.
    pub async fn devices_silent_since(&self, since: DateTime<Utc>) -> Result<usize, DbErr> {
        let silent = presence_device::Entity::find()
            .filter(presence_device::Column::Online.eq(true))
            .filter(presence_device::Column::UpdatedAt.lt(since))
            .all(&self.db)
            .await?;
        let count = silent.len();
        let changes = silent
            .into_iter()
            .map(|row| Change { project_id: row.project_id, user_id: row.user_id, device: row.device, online: false, epoch: row.epoch })
            .collect();
        self.apply(changes).await?;
        Ok(count)
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

/// Creates the users' rows where missing and locks them, in order
/// (PostgreSQL; SQLite's write lock already serializes writers).
async fn lock_users(txn: &DatabaseTransaction, users: &BTreeSet<(String, String)>, now: DateTime<Utc>) -> Result<(), DbErr> {
    let rows = users.iter().map(|(project_id, user_id)| user_presence::ActiveModel {
        project_id: Set(project_id.clone()),
        user_id: Set(user_id.clone()),
        status: Set(Status::Offline.as_str().to_owned()),
        last_seen_at: Set(now),
        updated_at: Set(now),
    });
    user_presence::Entity::insert_many(rows)
        .on_conflict(OnConflict::columns([user_presence::Column::ProjectId, user_presence::Column::UserId]).do_nothing().to_owned())
        .exec_without_returning(txn)
        .await?;
    for (project_id, user_id) in users {
        user_presence::Entity::find_by_id((project_id.clone(), user_id.clone())).lock_exclusive().one(txn).await?;
    }
    Ok(())
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
