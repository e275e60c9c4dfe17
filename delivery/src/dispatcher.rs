//! The dispatcher loop. When woken it first fans newly recorded events out
//! to delivery rows (one transaction per batch of events), then takes each
//! enabled endpoint's due deliveries oldest first (never more than
//! `concurrency` in flight, nor `per_endpoint_concurrency` to one endpoint,
//! so a slow endpoint cannot hold every slot), sends them concurrently on
//! the low-priority `send_pool`, and records finished attempts in batches —
//! one transaction for all that finished together — so a backlog drains at
//! the receivers' pace with memory bounded by the window, not by the
//! backlog. An endpoint found with nothing more due is not asked again until
//! new events are recorded or the poll interval passes. Nothing here waits
//! on the chat path: the engine only writes rows and wakes it.
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use mqchat_bridge::webhooks::{self, AttemptRecord, DueDelivery, Endpoint, EndpointKind, NextStep, Outbox};
use mqchat_bridge::DatabaseConnection;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::send_pool::SendPool;
use crate::sender::{Attempt, Delivery, Sender};
use crate::settings::WebhookSettings;
use crate::targets::TargetPolicy;

/// How often each endpoint's due deliveries (retries) are read from the database.
const POLL: Duration = Duration::from_secs(1);
/// How often the delivery log is purged of entries past retention.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// How long finished attempts gather before they are recorded together.
const RECORD_EVERY: Duration = Duration::from_millis(20);
/// The least time between two fan-outs while events keep coming (a quiet
/// system fans out as soon as it is woken).
const FAN_OUT_GAP: Duration = Duration::from_millis(20);
/// Most events one fan-out transaction turns into delivery rows.
const FAN_OUT_BATCH: u64 = 2000;
/// How long in-flight requests may finish after a shutdown signal; the
/// rest stay pending and are sent again after the restart.
const DRAIN: Duration = Duration::from_secs(2);
/// A claimed delivery is this much longer than the request timeout out of
/// other processes' reach (several mqchat instances on one database).
const LEASE_MARGIN: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("starting the senders' thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("webhooks.extra_root_certificates: {0}")]
    RootCertificate(String),
}

pub struct Dispatcher {
    db: DatabaseConnection,
    outbox: Arc<Outbox>,
    sender: Sender,
    senders: SendPool,
    settings: WebhookSettings,
    /// This instance's name in claims (several instances may share the database).
    instance: String,
}

type Finished = (DueDelivery, Attempt);

/// Most fresh deliveries one endpoint's queue holds; past that it reads
/// from the database again (a backlog is the database's business).
const MAX_READY: usize = 4096;

/// Where an endpoint's next deliveries come from.
#[derive(Default)]
struct Queue {
    /// Every delivery due now is in flight or in `ready`. Otherwise more
    /// are read from the database (at start, after a poll, after a backlog).
    caught_up: bool,
    /// New deliveries from the fan-out, claimed by this instance: they
    /// need no query.
    ready: VecDeque<DueDelivery>,
}

impl Queue {
    /// Keeps a fresh delivery; when the queue is full, returns it to be
    /// released (due again for whoever reads the database next).
    fn push(&mut self, delivery: DueDelivery) -> Option<i64> {
        if self.ready.len() < MAX_READY {
            self.ready.push_back(delivery);
            None
        } else {
            self.caught_up = false;
            Some(delivery.id)
        }
    }
}

/// Every certificate in the PEM files, or which file could not be used.
fn read_root_certificates(paths: &[std::path::PathBuf]) -> Result<Vec<reqwest::Certificate>, StartError> {
    let mut roots = Vec::new();
    for path in paths {
        let failed = |error: &dyn std::fmt::Display| StartError::RootCertificate(format!("{}: {error}", path.display()));
        let pem = std::fs::read(path).map_err(|error| failed(&error))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| failed(&error))?;
        if certificates.is_empty() {
            return Err(failed(&"no certificate in the file"));
        }
        roots.extend(certificates);
    }
    Ok(roots)
}

impl Dispatcher {
    /// `instance` names this process in delivery claims: the same across
    /// its restarts, different from every other instance's.
    pub fn new(db: DatabaseConnection, outbox: Arc<Outbox>, settings: WebhookSettings, instance: String) -> Result<Dispatcher, StartError> {
        let roots = read_root_certificates(&settings.extra_root_certificates)?;
        let sender = Sender::new(TargetPolicy::from_settings(&settings), settings.timeout, roots)?;
        let senders = SendPool::start(settings.niceness)?;
        Ok(Dispatcher { db, outbox, sender, senders, settings, instance })
    }

    /// The client the test action uses too.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// Delivers until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        match webhooks::release_claims(&self.db, &self.instance).await {
            Ok(0) => {}
            Ok(released) => tracing::info!(released, "deliveries this instance had claimed before it stopped are due again"),
            Err(error) => tracing::error!(%error, "releasing this instance's earlier delivery claims failed"),
        }
        let mut in_flight: JoinSet<Finished> = JoinSet::new();
        let mut sending: HashSet<i64> = HashSet::new();
        let mut per_endpoint: HashMap<String, usize> = HashMap::new();
        let mut purge = tokio::time::interval(PURGE_EVERY);
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let refill_at = (self.settings.concurrency / 4).max(1);
        let mut queues: HashMap<String, Queue> = HashMap::new();
        // When to fan out events recorded since the last fan-out (at start:
        // at once, for any a crash left). While events keep coming, fan-outs
        // are at least FAN_OUT_GAP apart, so each takes many events in one
        // transaction instead of one small transaction per group commit.
        let mut fan_out_at = Some(Instant::now());
        let mut last_fan_out = Instant::now();
        loop {
            if fan_out_at.is_some_and(|at| at <= Instant::now()) {
                last_fan_out = Instant::now();
                fan_out_at = match self.outbox.fan_out(&self.db, FAN_OUT_BATCH, &self.claim()).await {
                    Ok((read, fresh)) => {
                        let overflow: Vec<i64> =
                            fresh.into_iter().filter_map(|delivery| queues.entry(delivery.endpoint_id.clone()).or_default().push(delivery)).collect();
                        if let Err(error) = webhooks::release(&self.db, &overflow).await {
                            tracing::error!(%error, "releasing deliveries beyond the queue failed; they are due when their claim ends");
                        }
                        // A full batch: more are waiting.
                        (read as u64 == FAN_OUT_BATCH).then(Instant::now)
                    }
                    Err(error) => {
                        tracing::error!(%error, "creating webhook deliveries from recorded events failed");
                        None
                    }
                };
            }
            let mut spawned = 0;
            if self.settings.concurrency - in_flight.len() >= refill_at || in_flight.is_empty() {
                match self.fill(&mut in_flight, &mut sending, &mut per_endpoint, &mut queues).await {
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
                    if in_flight.len() >= refill_at {
                        // Under load, one transaction for all that finish close together.
                        tokio::time::sleep(RECORD_EVERY).await;
                    }
                    finished.extend(drain_ready(&mut in_flight));
                    self.record(finished, &mut sending, &mut per_endpoint).await;
                }
                () = self.outbox.woken() => {
                    if self.outbox.take_rescan() {
                        // Re-enabled endpoints or retried deliveries: pending rows the queues do not hold.
                        mark_behind(&mut queues);
                    }
                    fan_out_at.get_or_insert(last_fan_out + FAN_OUT_GAP);
                }
                () = tokio::time::sleep_until(fan_out_at.unwrap_or_else(Instant::now)), if fan_out_at.is_some() => {}
                _ = poll.tick() => {
                    // Retries fall due in the database: read each endpoint from there again.
                    mark_behind(&mut queues);
                    fan_out_at.get_or_insert_with(Instant::now);
                }
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

    /// Deliveries taken now stay this instance's until the request
    /// timeout and a margin have passed.
    fn claim(&self) -> webhooks::Claim {
        webhooks::Claim { instance: self.instance.clone(), until: Utc::now() + self.settings.timeout + LEASE_MARGIN }
    }

    /// Starts sending what is due and has room, endpoint by endpoint;
    /// returns how many started.
    async fn fill(
        &self,
        in_flight: &mut JoinSet<Finished>,
        sending: &mut HashSet<i64>,
        per_endpoint: &mut HashMap<String, usize>,
        queues: &mut HashMap<String, Queue>,
    ) -> Result<usize, mqchat_bridge::DbErr> {
        let cap = self.settings.per_endpoint_concurrency;
        let now = Utc::now();
        let mut spawned = 0;
        for endpoint in self.outbox.enabled_endpoints() {
            let busy = per_endpoint.get(&endpoint.id).copied().unwrap_or(0);
            let room = cap.saturating_sub(busy).min(self.settings.concurrency - in_flight.len());
            let queue = queues.entry(endpoint.id.clone()).or_default();
            if room == 0 || (queue.caught_up && queue.ready.is_empty()) {
                continue;
            }
            let take = room.min(queue.ready.len());
            let mut next: Vec<DueDelivery> = queue.ready.drain(..take).collect();
            if !queue.caught_up && next.len() < room {
                let limit = room - next.len();
                let rows = webhooks::due(&self.db, &endpoint, now, limit as u64, &self.claim()).await?;
                // Fewer than asked: every delivery due now is in flight or starting.
                queue.caught_up = rows.len() < limit;
                next.extend(rows.into_iter().filter(|row| !sending.contains(&row.id)));
            }
            for row in next {
                *per_endpoint.entry(row.endpoint_id.clone()).or_default() += 1;
                sending.insert(row.id);
                let (sender, endpoint) = (self.sender.clone(), Arc::clone(&endpoint));
                self.senders.spawn(in_flight, async move {
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
        }
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
        if disable.is_empty() {
            return;
        }
        for (endpoint_id, reason) in disable {
            match webhooks::disable_endpoint(&self.db, &endpoint_id, &reason).await {
                Ok(true) => tracing::warn!(endpoint = %endpoint_id, %reason, "webhook endpoint disabled"),
                Ok(false) => {}
                Err(error) => tracing::error!(%error, endpoint = %endpoint_id, "disabling a webhook endpoint failed"),
            }
        }
        if let Err(error) = self.outbox.reload(&self.db).await {
            tracing::error!(%error, "reloading webhook endpoints failed");
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

/// Every endpoint reads the database again; what the queues hold (claimed
/// by this instance) is still sent from them.
fn mark_behind(queues: &mut HashMap<String, Queue>) {
    for queue in queues.values_mut() {
        queue.caught_up = false;
    }
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
