//! Wiring of presence: the gateway registry's changes to the chat engine's
//! tracker, batched, and the periodic refresh of online users' last seen.
use std::sync::Arc;
use std::time::Duration;

use mqchat_bridge::presence::{Change, PresenceTracker, MAX_BATCH};
use mqchat_broker::PresenceChange;
use tokio::sync::mpsc;

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
