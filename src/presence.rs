//! Wiring of presence: the gateway registry's changes (embedded broker) or
//! the status announcements and wills read from an external broker, to the
//! chat engine's tracker, batched; and the periodic refresh of online
//! users' last seen.
use std::sync::Arc;
use std::time::Duration;

use mqchat_bridge::presence::{Change, PresenceTracker, MAX_BATCH};
use mqchat_broker::PresenceChange;
use tokio::sync::mpsc;

use crate::external::StatusMessage;

/// How often online users' `last_seen_at` moves to now.
const REFRESH_EVERY: Duration = Duration::from_secs(30);

/// Applies changes until the registry is gone.
pub async fn run(mut changes: mpsc::UnboundedReceiver<PresenceChange>, tracker: Arc<PresenceTracker>) {
    let mut refresh = tokio::time::interval(REFRESH_EVERY);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            received = changes.recv_many(&mut batch, MAX_BATCH) => {
                if received == 0 {
                    return;
                }
                let applied: Vec<Change> = batch
                    .drain(..)
                    .map(|change| Change {
                        project_id: change.project_id,
                        user_id: change.user_id,
                        online: change.online,
                        epoch: change.epoch,
                    })
                    .collect();
                if let Err(error) = tracker.apply(applied).await {
                    tracing::error!(%error, "storing presence changes failed");
                }
            }
            _ = refresh.tick() => {
                if let Err(error) = tracker.refresh().await {
                    tracing::error!(%error, "refreshing last-seen times failed");
                }
            }
        }
    }
}

/// A status announcement or will, as clients publish them on
/// `chat/{project}/user/{user}/status` (docs/PROTOCOL.md §4).
#[derive(serde::Deserialize)]
struct Announcement {
    status: AnnouncedStatus,
    /// Grows with each connection of the device (the SDK uses the time it
    /// connected, in milliseconds): a will older than the newest online
    /// announcement is stale.
    epoch: u64,
}

#[derive(serde::Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum AnnouncedStatus {
    Online,
    Offline,
}

/// Applies status messages read from an external broker until it is gone;
/// each is acknowledged once stored.
pub async fn run_statuses(mut statuses: mpsc::UnboundedReceiver<StatusMessage>, tracker: Arc<PresenceTracker>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while statuses.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut changes = Vec::with_capacity(batch.len());
        let mut acknowledgements = Vec::with_capacity(batch.len());
        for message in batch.drain(..) {
            match serde_json::from_slice::<Announcement>(&message.payload) {
                Ok(announcement) => changes.push(Change {
                    project_id: message.project_id,
                    user_id: message.user_id,
                    online: announcement.status == AnnouncedStatus::Online,
                    epoch: announcement.epoch,
                }),
                Err(error) => tracing::debug!(%error, "a status message without status and epoch is not a presence change"),
            }
            acknowledgements.push(message.done);
        }
        if let Err(error) = tracker.apply(changes).await {
            // Not acknowledged: the broker delivers them again.
            tracing::error!(%error, "storing presence changes failed");
            continue;
        }
        for done in acknowledgements {
            done();
        }
    }
}
