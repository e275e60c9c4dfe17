//! Wiring of presence: the gateway registry's changes (embedded broker) and
//! the status announcements and wills read from the broker (either mode),
//! to the chat engine's tracker, batched; and the periodic refresh of
//! online users' last seen.
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use mqchat_bridge::presence::{Change, PresenceTracker, GATEWAY_DEVICE, MAX_BATCH};
use mqchat_broker::acl;
use mqchat_broker::embedded::TopicFeed;
use mqchat_broker::PresenceChange;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::chat::Done;

/// How often online users' `last_seen_at` moves to now.
const REFRESH_EVERY: Duration = Duration::from_secs(30);

/// Applies the embedded gateway's changes (one device, `gateway`, per
/// user) and the status messages read from the broker until both end; each
/// status message is acknowledged once stored.
pub async fn run(mut changes: Option<mpsc::UnboundedReceiver<PresenceChange>>, mut statuses: mpsc::UnboundedReceiver<StatusMessage>, tracker: Arc<PresenceTracker>) {
    let mut refresh = tokio::time::interval(REFRESH_EVERY);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut registry_batch, mut status_batch) = (Vec::with_capacity(MAX_BATCH), Vec::with_capacity(MAX_BATCH));
    loop {
        let (applied, acknowledgements) = tokio::select! {
            received = next_changes(&mut changes, &mut registry_batch), if changes.is_some() => {
                if received == 0 {
                    changes = None;
                    continue;
                }
                let applied = registry_batch
                    .drain(..)
                    .map(|change| Change {
                        project_id: change.project_id,
                        user_id: change.user_id,
                        device: GATEWAY_DEVICE.to_owned(),
                        online: change.online,
                        epoch: i64::try_from(change.epoch).unwrap_or(i64::MAX),
                    })
                    .collect();
                (applied, Vec::new())
            }
            received = statuses.recv_many(&mut status_batch, MAX_BATCH) => {
                if received == 0 {
                    return;
                }
                let mut applied = Vec::with_capacity(status_batch.len());
                let mut acknowledgements = Vec::with_capacity(status_batch.len());
                for message in status_batch.drain(..) {
                    match message {
                        StatusMessage::Status { project_id, user_id, payload, done } => {
                            match serde_json::from_slice::<Announcement>(&payload) {
                                Ok(announcement) => applied.push(announcement.change(project_id, user_id)),
                                Err(error) => tracing::debug!(%error, "a status message without status and epoch is no presence change"),
                            }
                            acknowledgements.extend(done);
                        }
                        StatusMessage::BrokerRestarted { lost_at } => {
                            // What came before applies first; what follows is newer.
                            if tracker.apply(std::mem::take(&mut applied)).await.is_ok() {
                                acknowledgements.drain(..).for_each(|done| done());
                            }
                            match tracker.devices_silent_since(lost_at).await {
                                Ok(silent) => tracing::info!(devices = silent, "the broker restarted: devices it no longer holds are offline"),
                                Err(error) => tracing::error!(%error, "setting the devices of a restarted broker offline failed"),
                            }
                        }
                    }
                }
                (applied, acknowledgements)
            }
            _ = refresh.tick() => {
                if let Err(error) = tracker.refresh().await {
                    tracing::error!(%error, "refreshing last-seen times failed");
                }
                continue;
            }
        };
        match tracker.apply(applied).await {
            Ok(()) => acknowledgements.into_iter().for_each(|done| done()),
            // Not acknowledged: the broker delivers them again after a reconnect.
            Err(error) => tracing::error!(%error, "storing presence changes failed"),
        }
    }
}

/// The status messages rumqttd routes to the platform (embedded broker).
pub fn statuses_of(mut feed: TopicFeed) -> mpsc::UnboundedReceiver<StatusMessage> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = feed.next().await {
            let Some((project_id, user_id)) = acl::parse_status_topic(&message.topic) else { continue };
            let status = StatusMessage::Status { project_id: project_id.to_owned(), user_id: user_id.to_owned(), payload: message.payload, done: None };
            if tx.send(status).is_err() {
                return;
            }
        }
    });
    rx
}

async fn next_changes(changes: &mut Option<mpsc::UnboundedReceiver<PresenceChange>>, batch: &mut Vec<PresenceChange>) -> usize {
    match changes {
        Some(changes) => changes.recv_many(batch, MAX_BATCH).await,
        None => 0,
    }
}

/// What the broker tells presence, in order.
pub enum StatusMessage {
    /// A status message read from a user's status topic.
    Status {
        project_id: String,
        user_id: String,
        payload: Bytes,
        /// Acknowledges it to an external broker once stored.
        done: Option<Done>,
    },
    /// The external broker came back without mqchat's session: it
    /// restarted, every connection it had ended and their wills were never
    /// sent. Devices not heard from since the connection was lost are
    /// offline (those that reconnect announce themselves again).
    BrokerRestarted { lost_at: DateTime<Utc> },
}

/// What clients publish on their status topic (docs/PROTOCOL.md §4): an
/// announcement when they connect, the same with `offline` as their will.
#[derive(Deserialize)]
struct Announcement {
    status: AnnouncedStatus,
    /// Grows with each connection of the device (the SDK uses the time it
    /// connected, in milliseconds).
    epoch: i64,
    /// The device's own name (the SDK: its client id); `""` when absent.
    #[serde(default)]
    device: String,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum AnnouncedStatus {
    Online,
    Offline,
}

impl Announcement {
    fn change(self, project_id: String, user_id: String) -> Change {
        let device: String = self.device.chars().take(MAX_DEVICE_CHARS).collect();
        Change { project_id, user_id, device, online: self.status == AnnouncedStatus::Online, epoch: self.epoch }
    }
}

/// Longest device name kept (the column holds 128).
const MAX_DEVICE_CHARS: usize = 128;
