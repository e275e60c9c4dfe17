//! The dispatcher loop. It takes due deliveries oldest first (never more
//! than `concurrency` in flight, nor `per_endpoint_concurrency` to one
//! endpoint), sends them concurrently, and records finished attempts in
//! batches — one transaction for all that finished together — so a backlog
//! drains at the receivers' pace with memory bounded by the window, not by
//! the backlog. Nothing here waits on the chat path: the engine only writes
//! rows and wakes it.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use entity::webhook_delivery;
use mqchat_bridge::webhooks::{self, AttemptRecord, Endpoint, EndpointKind, NextStep, Outbox};
use mqchat_bridge::DatabaseConnection;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::sender::{Attempt, Delivery, Sender};
use crate::settings::WebhookSettings;
use crate::targets::TargetPolicy;

/// How often due retries are looked for when nothing wakes the dispatcher.
const POLL: Duration = Duration::from_secs(1);
/// How often the delivery log is purged of entries past retention.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// How long in-flight requests may finish after a shutdown signal; the
/// rest stay pending and are sent again after the restart.
const DRAIN: Duration = Duration::from_secs(2);

pub struct Dispatcher {
    db: DatabaseConnection,
    outbox: Arc<Outbox>,
    sender: Sender,
    settings: WebhookSettings,
}

type Finished = (webhook_delivery::Model, Attempt);

impl Dispatcher {
    pub fn new(db: DatabaseConnection, outbox: Arc<Outbox>, settings: WebhookSettings) -> Result<Dispatcher, reqwest::Error> {
        let sender = Sender::new(TargetPolicy { allow_private: settings.allow_private_targets }, settings.timeout)?;
        Ok(Dispatcher { db, outbox, sender, settings })
    }

    /// Runs the dispatcher on a thread of its own, at a lower CPU priority
    /// (`niceness`), with its own single-threaded runtime: when the machine
    /// is saturated, the chat path keeps the CPU and deliveries lag, then
    /// catch up — they are durable, so lagging loses nothing.
    pub fn spawn(self, niceness: u8, shutdown: watch::Receiver<bool>) -> std::io::Result<std::thread::JoinHandle<()>> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name("mqchat-webhooks".into()).spawn(move || {
            if let Err(error) = lower_priority(niceness) {
                tracing::warn!(?error, niceness, "could not lower the webhook dispatcher's CPU priority");
            }
            runtime.block_on(self.run(shutdown));
        })
    }

    /// Delivers until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut in_flight: JoinSet<Finished> = JoinSet::new();
        let mut sending: HashSet<i64> = HashSet::new();
        let mut per_endpoint: HashMap<String, usize> = HashMap::new();
        let mut purge = tokio::time::interval(PURGE_EVERY);
        let refill_at = (self.settings.concurrency / 4).max(1);
        loop {
            let mut spawned = 0;
            if self.settings.concurrency - in_flight.len() >= refill_at || in_flight.is_empty() {
                match self.fill(&mut in_flight, &mut sending, &mut per_endpoint).await {
                    Ok(count) => spawned = count,
                    Err(error) => tracing::error!(%error, "reading due webhook deliveries failed"),
                }
            }
            let room = in_flight.len() < self.settings.concurrency;
            if spawned > 0 && room {
                // More may be due: record what finished meanwhile, then look again.
                let finished = drain_ready(&mut in_flight);
                self.record(finished, &mut sending, &mut per_endpoint).await;
                continue;
            }
            tokio::select! {
                Some(first) = in_flight.join_next() => {
                    let mut finished: Vec<Finished> = first.into_iter().collect();
                    finished.extend(drain_ready(&mut in_flight));
                    self.record(finished, &mut sending, &mut per_endpoint).await;
                }
                () = self.outbox.woken(), if room => {}
                () = tokio::time::sleep(POLL), if room => {}
                _ = purge.tick() => self.purge().await,
                _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => break,
            }
        }
        let _ = tokio::time::timeout(DRAIN, async {
            while let Some(Ok(finished)) = in_flight.join_next().await {
                self.record(vec![finished], &mut sending, &mut per_endpoint).await;
            }
        })
        .await;
    }

    /// Starts sending what is due and has room; returns how many started.
    async fn fill(
        &self,
        in_flight: &mut JoinSet<Finished>,
        sending: &mut HashSet<i64>,
        per_endpoint: &mut HashMap<String, usize>,
    ) -> Result<usize, mqchat_bridge::DbErr> {
        let cap = self.settings.per_endpoint_concurrency;
        let full: Vec<String> = per_endpoint.iter().filter(|(_, n)| **n >= cap).map(|(id, _)| id.clone()).collect();
        let free = self.settings.concurrency - in_flight.len();
        // In-flight rows are still pending: ask for enough to see past them.
        let rows = webhooks::due(&self.db, Utc::now(), (free + sending.len()) as u64, &full).await?;
        let mut stale = Vec::new();
        let mut spawned = 0;
        for row in rows {
            if in_flight.len() >= self.settings.concurrency {
                break;
            }
            if sending.contains(&row.id) {
                continue;
            }
            let Some(endpoint) = self.outbox.endpoint(&row.endpoint_id).filter(|endpoint| endpoint.enabled) else {
                stale.push(row.id);
                continue;
            };
            let count = per_endpoint.entry(row.endpoint_id.clone()).or_default();
            if *count >= cap {
                continue;
            }
            *count += 1;
            sending.insert(row.id);
            let sender = self.sender.clone();
            in_flight.spawn(async move {
                let attempt = sender
                    .send(Delivery {
                        url: &endpoint.url,
                        secret: &endpoint.secret,
                        event_id: &row.event_id,
                        event_type: &row.event_type,
                        body: &row.body,
                        test: false,
                    })
                    .await;
                (row, attempt)
            });
            spawned += 1;
        }
        // Recorded for an endpoint disabled (or deleted) meanwhile: paused until re-enabled.
        webhooks::pause(&self.db, &stale).await?;
        Ok(spawned)
    }

    /// Stores finished attempts and what follows each; disables endpoints
    /// that refused or stayed unreachable.
    async fn record(&self, finished: Vec<Finished>, sending: &mut HashSet<i64>, per_endpoint: &mut HashMap<String, usize>) {
        if finished.is_empty() {
            return;
        }
        let now = Utc::now().trunc_subsecs(6);
        let schedule = &self.settings.retry_schedule;
        let mut disable: HashMap<String, String> = HashMap::new();
        let records: Vec<AttemptRecord> = finished
            .iter()
            .map(|(row, attempt)| {
                let number = row.attempts + 1;
                let retry_wait = usize::try_from(row.attempts).ok().and_then(|done| schedule.get(done));
                let next = if attempt.delivered() {
                    NextStep::Delivered
                } else if attempt.refused() {
                    disable.insert(row.endpoint_id.clone(), attempt.error.clone().unwrap_or_default());
                    NextStep::Failed
                } else if let Some(wait) = retry_wait {
                    NextStep::RetryAt(now + chrono::Duration::from_std(*wait).unwrap_or(chrono::Duration::MAX))
                } else {
                    if attempt.unreachable() {
                        let reason = format!("unreachable after {number} attempts: {}", attempt.error.as_deref().unwrap_or_default());
                        disable.insert(row.endpoint_id.clone(), reason);
                    }
                    NextStep::Failed
                };
                AttemptRecord {
                    delivery_id: row.id,
                    attempt: number,
                    status_code: attempt.status_code,
                    error: attempt.error.clone(),
                    latency_ms: u32::try_from(attempt.latency.as_millis()).unwrap_or(u32::MAX),
                    attempted_at: now,
                    next,
                }
            })
            .collect();
        if let Err(error) = webhooks::record_attempts(&self.db, &records).await {
            // The rows stay pending: they are sent again (same event id).
            tracing::error!(%error, attempts = records.len(), "recording webhook attempts failed");
        }
        for (row, _) in &finished {
            sending.remove(&row.id);
            if let Some(count) = per_endpoint.get_mut(&row.endpoint_id) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    per_endpoint.remove(&row.endpoint_id);
                }
            }
        }
        for (endpoint_id, reason) in disable {
            match webhooks::disable_endpoint(&self.db, &endpoint_id, &reason).await {
                Ok(true) => tracing::warn!(endpoint = %endpoint_id, %reason, "webhook endpoint disabled"),
                Ok(false) => {}
                Err(error) => tracing::error!(%error, endpoint = %endpoint_id, "disabling a webhook endpoint failed"),
            }
            if let Err(error) = self.outbox.reload(&self.db).await {
                tracing::error!(%error, "reloading webhook endpoints failed");
            }
        }
    }

    async fn purge(&self) {
        let retention = chrono::Duration::from_std(self.settings.log_retention).unwrap_or(chrono::Duration::MAX);
        let cutoff = Utc::now().checked_sub_signed(retention).unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
        match webhooks::purge_older_than(&self.db, cutoff).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "webhook delivery log purged"),
            Err(error) => tracing::error!(%error, "purging the webhook delivery log failed"),
        }
    }
}

/// Sets the calling thread's niceness (0 = normal, 19 = lowest priority).
fn lower_priority(niceness: u8) -> Result<(), thread_priority::Error> {
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    if niceness == 0 {
        return Ok(());
    }
    // thread-priority maps 0..=99 onto niceness 19..=-20 (higher is more urgent):
    // niceness = ⌊39 × (1 − p/99)⌋ − 20, so p = 99 × (1 − (niceness + 20) / 39), rounded down.
    let niceness = f32::from(niceness.min(19));
    let value = (99.0 * (1.0 - (niceness + 20.0) / 39.0)).floor().clamp(0.0, 99.0) as u8;
    let value = ThreadPriorityValue::try_from(value).map_err(|_| thread_priority::Error::Priority("out of range"))?;
    thread_priority::set_current_thread_priority(ThreadPriority::Crossplatform(value))
}

fn drain_ready(in_flight: &mut JoinSet<Finished>) -> Vec<Finished> {
    let mut finished = Vec::new();
    while let Some(done) = in_flight.try_join_next() {
        finished.extend(done.ok());
    }
    finished
}

/// A synthetic event in the endpoint's format, for "send test event".
pub fn test_body(endpoint: &Endpoint, event_id: &str) -> (String, String) {
    let now = Utc::now();
    match endpoint.kind {
        EndpointKind::Webhook => (
            "webhook.test".to_owned(),
            json!({
                "id": event_id,
                "type": "webhook.test",
                "created_at": now,
                "project_id": endpoint.project_id,
                "data": {"webhook_id": endpoint.id, "message": "A test event from mqchat: your endpoint is reachable."},
            })
            .to_string(),
        ),
        EndpointKind::PresenceCallback => (
            "user.presence.changed".to_owned(),
            json!({"userid": "test-user", "status": "online", "timestamp": now.timestamp()}).to_string(),
        ),
        EndpointKind::MessageCallback => (
            "message.created".to_owned(),
            json!({"from_userid": "test-user", "to_userid": "test-peer", "conversation_id": "conv_test",
                "message": {"id": "msg_test", "message": "A test message from mqchat", "timestamp": now.timestamp(),
                "type": 0, "p1": "", "p2": "", "p3": ""}})
            .to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    /// The thread's niceness as the kernel reports it (field 19 of its stat).
    fn current_niceness() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split_whitespace().nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn the_dispatcher_thread_gets_the_niceness_asked_for() {
        for wanted in [10, 19] {
            let niceness = std::thread::spawn(move || {
                super::lower_priority(wanted).unwrap();
                current_niceness()
            })
            .join()
            .unwrap();
            assert_eq!(niceness, i32::from(wanted));
        }
    }
}
