//! The chat path end to end: senders publish `message.send` commands on
//! their outboxes (closed loop: at most `window` unanswered each), members
//! count `message.created` events on the conversation topic; reports stored
//! messages/s, deliveries/s and send→reply latency.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rumqttc::{Event, Packet, QoS};
use serde_json::json;

use crate::{connect, Target};

pub struct ChatLoad {
    pub project_id: String,
    pub conversation_id: String,
    pub senders: usize,
    pub members: usize,
    pub window: usize,
    /// Sends per second per sender; 0: as fast as the window allows.
    pub rate: u64,
    pub duration: Duration,
}

pub async fn run(target: &Target, load: ChatLoad) -> anyhow::Result<serde_json::Value> {
    let topic = format!("chat/{}/conv/{}", load.project_id, load.conversation_id);
    let delivered = Arc::new(AtomicU64::new(0));
    let stored = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let warmup = Duration::from_millis(500);
    let start = Instant::now() + warmup + Duration::from_secs(1);
    let end = start + load.duration;

    let mut tasks = Vec::new();
    for index in 0..load.members {
        let (client, mut eventloop) = connect(target.options(index, "member")?, 10).await?;
        client.subscribe(topic.clone(), QoS::AtMostOnce).await?;
        let delivered = Arc::clone(&delivered);
        tasks.push(tokio::spawn(async move {
            let _client = client;
            while let Ok(event) = eventloop.poll().await {
                if let Event::Incoming(Packet::Publish(_)) = event {
                    let now = Instant::now();
                    if now >= start && now <= end {
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for index in 0..load.senders {
        let user = format!("{}{index}", target.user_prefix);
        let inbox = format!("chat/{}/user/{user}/inbox", load.project_id);
        let outbox = format!("chat/{}/user/{user}/outbox", load.project_id);
        let mut options = target.options(index, "sender")?;
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = connect(options, 1000).await?;
        client.subscribe(inbox, QoS::AtMostOnce).await?;
        let (stored, latencies, conversation_id) = (Arc::clone(&stored), Arc::clone(&latencies), load.conversation_id.clone());
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
                let now = Instant::now();
                if reply["ok"] == true && sent >= start && now <= end {
                    stored.fetch_add(1, Ordering::Relaxed);
                    let _ = latencies.lock().expect("latency lock").record(now.duration_since(sent).as_micros().max(1) as u64);
                }
            }
        }));
        let rate = load.rate;
        tasks.push(tokio::spawn(async move {
            let mut id = 0u64;
            let began = Instant::now();
            while Instant::now() < end {
                if rate > 0 && id >= (began.elapsed().as_secs_f64() * rate as f64) as u64 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                let Ok(permit) = permits.acquire().await else { break };
                permit.forget();
                id += 1;
                let command = json!({"id": id.to_string(), "op": "message.send", "conversation_id": conversation_id,
                    "content": "x".repeat(100), "client_msg_id": format!("{}-{index}-{id}", std::process::id())});
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
    Ok(json!({
        "scenario": "chat",
        "senders": load.senders,
        "members": load.members,
        "window": load.window,
        "offered_rate_per_sender": load.rate,
        "duration_s": seconds,
        "stored_per_s": stored.load(Ordering::Relaxed) as f64 / seconds,
        "delivered_per_s": delivered.load(Ordering::Relaxed) as f64 / seconds,
        "send_to_reply_us": {"p50": histogram.value_at_quantile(0.5), "p99": histogram.value_at_quantile(0.99), "max": histogram.max()},
    }))
}
