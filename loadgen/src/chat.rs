//! The chat path end to end: senders publish `message.send` commands on
//! their outboxes (closed loop: at most `window` unanswered each), members
//! count `message.created` events on their conversation's topic; reports
//! stored messages/s, deliveries/s and send→reply latency.
//!
//! Conversation `c` (0-based, in the order given) has the users
//! `{prefix}{c·M}` … `{prefix}{c·M + M − 1}` as members (M = members per
//! conversation); its senders are the first S of them, each on a second
//! connection of its own. The benchmark script creates the conversations
//! with exactly those members.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::json;

use crate::{connect, Target};

pub struct ChatLoad {
    pub project_id: String,
    pub conversation_ids: Vec<String>,
    /// Senders per conversation.
    pub senders: usize,
    /// Members (subscribers) per conversation.
    pub members: usize,
    pub window: usize,
    /// Sends per second per sender; 0: as fast as the window allows.
    pub rate: u64,
    pub duration: Duration,
    /// Where to write the ids of acknowledged messages.
    pub acked_ids: Option<std::path::PathBuf>,
}

/// Connects in flight at once while setting up.
const CONNECT_CONCURRENCY: usize = 64;

/// The measured window, set once every client is connected.
type Window = Arc<OnceLock<(Instant, Instant)>>;

fn within(window: &Window, at: Instant) -> bool {
    window.get().is_some_and(|(start, end)| at >= *start && at <= *end)
}

/// Connects every `(options, subscription)` with bounded concurrency.
async fn connect_all(setups: Vec<(MqttOptions, String, usize)>) -> anyhow::Result<Vec<(AsyncClient, EventLoop)>> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = Vec::with_capacity(setups.len());
    for (options, topic, capacity) in setups {
        let permit = Arc::clone(&semaphore).acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let (client, eventloop) = connect(options, capacity).await?;
            client.subscribe(topic, QoS::AtMostOnce).await?;
            drop(permit);
            anyhow::Ok((client, eventloop))
        }));
    }
    let mut connected = Vec::with_capacity(tasks.len());
    for task in tasks {
        connected.push(task.await??);
    }
    Ok(connected)
}

pub async fn run(target: &Target, load: ChatLoad) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(load.senders <= load.members, "senders are members: --senders must not exceed --members");
    let delivered = Arc::new(AtomicU64::new(0));
    let stored = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let window: Window = Arc::default();
    // Every acknowledged send of the run, warm-up included.
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = Vec::new();

    let mut member_setups = Vec::new();
    for (c, conversation_id) in load.conversation_ids.iter().enumerate() {
        for m in 0..load.members {
            let topic = format!("chat/{}/conv/{conversation_id}", load.project_id);
            member_setups.push((target.options(c * load.members + m, "member")?, topic, 10));
        }
    }
    for (client, mut eventloop) in connect_all(member_setups).await? {
        let (delivered, window) = (Arc::clone(&delivered), Arc::clone(&window));
        tasks.push(tokio::spawn(async move {
            let _client = client;
            while let Ok(event) = eventloop.poll().await {
                if let Event::Incoming(Packet::Publish(_)) = event {
                    if within(&window, Instant::now()) {
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    let mut sender_setups = Vec::new();
    let mut sender_routes = Vec::new();
    for (c, conversation_id) in load.conversation_ids.iter().enumerate() {
        for s in 0..load.senders {
            let user_index = c * load.members + s;
            let user = format!("{}{user_index}", target.user_prefix);
            let inbox = format!("chat/{}/user/{user}/inbox", load.project_id);
            sender_setups.push((target.options(user_index, "sender")?, inbox, load.window.max(10) * 2));
            sender_routes.push((format!("chat/{}/user/{user}/outbox", load.project_id), conversation_id.clone(), user_index));
        }
    }
    let senders = connect_all(sender_setups).await?;
    let warmup = Duration::from_millis(500);
    let began = Instant::now();
    let start = began + warmup;
    let end = start + load.duration;
    let _ = window.set((start, end));

    let total_senders = sender_routes.len();
    for (k, ((client, mut eventloop), (outbox, conversation_id, user_index))) in senders.into_iter().zip(sender_routes).enumerate() {
        // Paced senders are spread evenly over one period instead of all
        // sending at the same instants.
        let phase = if load.rate > 0 { k as f64 / (total_senders as f64 * load.rate as f64) } else { 0.0 };
        let paced_from = began + Duration::from_secs_f64(phase);
        let (stored, latencies, window) = (Arc::clone(&stored), Arc::clone(&latencies), Arc::clone(&window));
        let acknowledged = Arc::clone(&acknowledged);
        let permits = Arc::new(tokio::sync::Semaphore::new(load.window));
        let pending: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let (reader_permits, reader_pending) = (Arc::clone(&permits), Arc::clone(&pending));
        tasks.push(tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                let Event::Incoming(Packet::Publish(publish)) = event else { continue };
                let Ok(reply) = serde_json::from_slice::<serde_json::Value>(&publish.payload) else { continue };
                let Some(id) = reply["reply_to"].as_str().and_then(|id| id.parse::<u64>().ok()) else { continue };
                let Some(sent) = reader_pending.lock().expect("pending lock").remove(&id) else { continue };
                reader_permits.add_permits(1);
                if let Some(message_id) = reply["data"]["message"]["id"].as_str().filter(|_| reply["ok"] == true) {
                    acknowledged.lock().expect("acknowledged lock").push(message_id.to_owned());
                }
                let now = Instant::now();
                if reply["ok"] == true && within(&window, sent) && within(&window, now) {
                    stored.fetch_add(1, Ordering::Relaxed);
                    let _ = latencies.lock().expect("latency lock").record(now.duration_since(sent).as_micros().max(1) as u64);
                }
            }
        }));
        let rate = load.rate;
        tasks.push(tokio::spawn(async move {
            let mut id = 0u64;
            while Instant::now() < end {
                let since = Instant::now().saturating_duration_since(paced_from).as_secs_f64();
                if rate > 0 && id > (since * rate as f64) as u64 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                let Ok(permit) = permits.acquire().await else { break };
                permit.forget();
                id += 1;
                let command = json!({"id": id.to_string(), "op": "message.send", "conversation_id": conversation_id,
                    "content": "x".repeat(100), "client_msg_id": format!("{}-{user_index}-{id}", std::process::id())});
                pending.lock().expect("pending lock").insert(id, Instant::now());
                if client.publish(outbox.clone(), QoS::AtLeastOnce, false, command.to_string()).await.is_err() {
                    break;
                }
            }
        }));
    }
    tokio::time::sleep_until((end + Duration::from_secs(1)).into()).await;
    for task in &tasks {
        task.abort();
    }
    let seconds = load.duration.as_secs_f64();
    let histogram = latencies.lock().expect("latency lock").clone();
    let acknowledged = std::mem::take(&mut *acknowledged.lock().expect("acknowledged lock"));
    if let Some(path) = &load.acked_ids {
        std::fs::write(path, acknowledged.iter().map(|id| format!("{id}\n")).collect::<String>())?;
    }
    Ok(json!({
        "scenario": "chat",
        "conversations": load.conversation_ids.len(),
        "senders_per_conversation": load.senders,
        "members_per_conversation": load.members,
        "window": load.window,
        "offered_rate_per_sender": load.rate,
        "duration_s": seconds,
        "acknowledged": acknowledged.len(),
        "stored_per_s": stored.load(Ordering::Relaxed) as f64 / seconds,
        "delivered_per_s": delivered.load(Ordering::Relaxed) as f64 / seconds,
        "send_to_reply_us": {"p50": histogram.value_at_quantile(0.5), "p99": histogram.value_at_quantile(0.99), "max": histogram.max()},
    }))
}
