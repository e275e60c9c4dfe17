//! The scale curve: many topics with a live subscriber each (conversations
//! with a member online), and the broker's cost per delivered message as
//! their number grows. `subscribers` clients share the topics (client `j`
//! subscribes to every topic `i` with `i % subscribers == j`), one
//! publisher publishes round-robin over all of them at a fixed rate, so
//! every topic is live. Reports how long the first publish to every topic
//! took to arrive (when a broker matches each new topic against the
//! filters), then, in the steady state, the server's CPU time per delivered
//! message (from /proc) and its resident memory before and after.
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{Event, Packet, QoS, SubscribeFilter};
use serde_json::json;

use crate::{connect, rss_kib, Target};

/// Longest wait for the first round over every topic to be delivered.
const WARM_UP_LIMIT: Duration = Duration::from_secs(120);

/// Filters per SUBSCRIBE packet.
const FILTERS_PER_SUBSCRIBE: usize = 200;

pub struct ScaleLoad<'a> {
    pub topics_file: &'a Path,
    pub subscribers: usize,
    pub rate: u64,
    pub duration: Duration,
    pub server_pid: u32,
}

/// User and system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rfind(')').map(|at| &stat[at + 2..]).context("malformed stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    Ok(fields.get(11).context("utime")?.parse::<u64>()? + fields.get(12).context("stime")?.parse::<u64>()?)
}

pub async fn run(target: &Target, load: ScaleLoad<'_>) -> anyhow::Result<serde_json::Value> {
    let topics: Vec<String> =
        std::fs::read_to_string(load.topics_file)?.lines().filter(|line| !line.is_empty()).map(str::to_owned).collect();
    anyhow::ensure!(!topics.is_empty() && load.subscribers > 0, "no topics or no subscribers");
    let rss_before = rss_kib(load.server_pid)?;
    let subscribed_at = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let mut keepers = Vec::new();
    for subscriber in 0..load.subscribers {
        let (client, mut eventloop) = connect(target.options(subscriber + 1, "scale-sub")?, 64).await?;
        let mine: Vec<&String> = topics.iter().skip(subscriber).step_by(load.subscribers).collect();
        let packets = mine.chunks(FILTERS_PER_SUBSCRIBE).count();
        for chunk in mine.chunks(FILTERS_PER_SUBSCRIBE) {
            let filters = chunk.iter().map(|topic| SubscribeFilter::new((*topic).clone(), QoS::AtMostOnce)).collect::<Vec<_>>();
            client.subscribe_many(filters).await?;
        }
        let mut acked = 0;
        while acked < packets {
            if let Event::Incoming(Packet::SubAck(ack)) = eventloop.poll().await? {
                anyhow::ensure!(
                    ack.return_codes.iter().all(|code| matches!(code, rumqttc::SubscribeReasonCode::Success(_))),
                    "a subscription was refused"
                );
                acked += 1;
            }
        }
        let delivered = Arc::clone(&delivered);
        keepers.push(tokio::spawn(async move {
            let _client = client;
            while let Ok(event) = eventloop.poll().await {
                if let Event::Incoming(Packet::Publish(_)) = event {
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let subscribe_seconds = subscribed_at.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_subscribed = rss_kib(load.server_pid)?;

    let (publisher, mut eventloop) = connect(target.options(0, "scale-pub")?, 1000).await?;
    let driver = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    // One round over every topic first, untimed: each topic's first publish
    // is when a broker matches it against the filters. Timed until every
    // topic's subscriber has it (or WARM_UP_LIMIT), then the steady state.
    let first_round = Instant::now();
    for topic in &topics {
        publisher.publish(topic.clone(), QoS::AtMostOnce, false, b"{}".to_vec()).await?;
    }
    while delivered.load(Ordering::Relaxed) < topics.len() as u64 && first_round.elapsed() < WARM_UP_LIMIT {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first_round_seconds = first_round.elapsed().as_secs_f64();
    let first_round_delivered = delivered.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (ticks_before, delivered_before, started) = (cpu_ticks(load.server_pid)?, delivered.load(Ordering::Relaxed), Instant::now());
    let mut sent = 0u64;
    let mut next = 0usize;
    while started.elapsed() < load.duration {
        if sent >= (started.elapsed().as_secs_f64() * load.rate as f64) as u64 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        publisher.publish(topics[next].clone(), QoS::AtMostOnce, false, b"{}".to_vec()).await?;
        next = (next + 1) % topics.len();
        sent += 1;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seconds = started.elapsed().as_secs_f64();
    let ticks = cpu_ticks(load.server_pid)? - ticks_before;
    let delivered_now = delivered.load(Ordering::Relaxed) - delivered_before;
    let rss_after = rss_kib(load.server_pid)?;
    driver.abort();
    for keeper in keepers {
        keeper.abort();
    }
    // Linux reports CPU time in clock ticks of 1/100 s (USER_HZ).
    let cpu_seconds = ticks as f64 / 100.0;
    Ok(json!({
        "scenario": "scale",
        "topics": topics.len(),
        "subscribers": load.subscribers,
        "offered_per_s": load.rate,
        "published": sent,
        "delivered": delivered_now,
        "delivered_per_s": delivered_now as f64 / seconds,
        "server_cpu_seconds": cpu_seconds,
        "cpu_us_per_delivery": if delivered_now > 0 { cpu_seconds * 1e6 / delivered_now as f64 } else { f64::NAN },
        "subscribe_seconds": subscribe_seconds,
        "first_round_seconds": first_round_seconds,
        "first_round_delivered": first_round_delivered,
        "server_rss_kib_before": rss_before,
        "server_rss_kib_subscribed": rss_subscribed,
        "server_rss_kib_after": rss_after,
        "bytes_per_live_topic": (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / topics.len() as f64,
    }))
}
