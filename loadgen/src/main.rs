//! `mqchat-loadgen`: drives an MQTT broker with real rumqttc clients and
//! reports what subscribers actually received, as one JSON object.
//!
//! - `pubsub`: N publishers → M subscribers on one topic, flat out for a
//!   duration; deliveries/s and publish→delivery latency.
//! - `connections`: opens N idle clients; connects/s and, given the server's
//!   pid, its resident memory per connection.
//! - `chat`: the chat path (see `chat.rs`).
//! - `webhook-receiver`: the receiving end of webhook deliveries (see `receiver.rs`).
//! - `connections --storm`: then a reconnect storm (see `storm.rs`).
//! - `scale`: many live topics, the server's CPU per delivery (see `scale.rs`).
//! - `report`: tables and charts from the benchmark's results (see `report.rs`).
//!
//! Against mqchat, give `--public-key` and `--secret-key`: each client then
//! signs its own identity token as user `{user_prefix}{i}` (the benchmark
//! script makes those users members of the conversation whose topic is used).
// A benchmark tool: a broken invariant (a poisoned lock) should stop the run loudly.
#![allow(clippy::expect_used)]
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod chat;
mod mqtt;
mod receiver;
mod report;
mod scale;
mod storm;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::json;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args, Clone)]
struct Target {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// mqchat project public key (MQTT username); omit for an open broker.
    #[arg(long)]
    public_key: Option<String>,
    /// mqchat project secret key, to sign each client's identity token.
    #[arg(long)]
    secret_key: Option<String>,
    /// Client `i` is user `{user_prefix}{i}`.
    #[arg(long, default_value = "bench-")]
    user_prefix: String,
    /// A plain MQTT login (Mosquitto's password file, or mqchat's plain
    /// namespace) instead of signed tokens.
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password: Option<String>,
    /// MQTT version of the `pubsub` clients: 4 (3.1.1) or 5.
    #[arg(long, default_value_t = 4)]
    mqtt_version: u8,
}

#[derive(Subcommand)]
enum Scenario {
    Pubsub {
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 1)]
        publishers: usize,
        #[arg(long, default_value_t = 1)]
        subscribers: usize,
        #[arg(long, default_value_t = 0)]
        qos: u8,
        #[arg(long, default_value_t = 100)]
        payload: usize,
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Messages per second per publisher; 0 publishes as fast as the client can.
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
    /// The chat path: `message.send` commands → stored → `message.created` at every member.
    Chat {
        #[arg(long)]
        project_id: String,
        /// Repeat for several conversations (see `chat.rs` for who is in each).
        #[arg(long = "conversation-id", required = true)]
        conversation_ids: Vec<String>,
        /// Senders per conversation (its first members, on connections of their own).
        #[arg(long, default_value_t = 10)]
        senders: usize,
        /// Members (subscribers) per conversation.
        #[arg(long, default_value_t = 10)]
        members: usize,
        /// Unanswered sends per sender.
        #[arg(long, default_value_t = 32)]
        window: usize,
        /// Sends per second per sender; 0 sends as fast as the window allows.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Writes the id of every message whose send was acknowledged, one
        /// per line (the soak checks each is stored).
        #[arg(long)]
        acked_ids: Option<std::path::PathBuf>,
    },
    /// Receives webhook deliveries, checks their signatures, counts and times them.
    WebhookReceiver {
        #[arg(long, default_value = "127.0.0.1:18090")]
        listen: std::net::SocketAddr,
        /// The webhook's secret (`whsec_…`), to check `X-Signature`.
        #[arg(long)]
        secret: String,
        #[arg(long)]
        expect: Option<u64>,
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        idle: Duration,
    },
    Connections {
        #[arg(long)]
        count: usize,
        /// Connects in flight at once.
        #[arg(long, default_value_t = 200)]
        concurrency: usize,
        /// Server process whose memory to read from /proc.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Time to let the server settle before reading its memory.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        settle: Duration,
        /// Then drop every connection at once and bring all back, each
        /// exchanging one message (see `storm`).
        #[arg(long)]
        storm: bool,
        /// The mqchat project (its topic prefix), for the storm's messages;
        /// omit against an open broker.
        #[arg(long)]
        project_id: Option<String>,
    },
    /// Many topics with a live subscriber each: the server's cost per delivery as they grow.
    Scale {
        /// One topic per line.
        #[arg(long)]
        topics_file: std::path::PathBuf,
        #[arg(long, default_value_t = 50)]
        subscribers: usize,
        /// Publishes per second, round-robin over the topics.
        #[arg(long, default_value_t = 5000)]
        rate: u64,
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        #[arg(long)]
        server_pid: u32,
    },
    /// Markdown tables and SVG charts from the benchmark's JSON lines.
    Report {
        #[arg(long)]
        input: std::path::PathBuf,
        #[arg(long)]
        out_dir: std::path::PathBuf,
    },
}

impl Target {
    fn options(&self, index: usize, role: &str) -> anyhow::Result<MqttOptions> {
        let mut options = MqttOptions::new(format!("{role}-{index}-{}", std::process::id()), self.host.clone(), self.port);
        options.set_keep_alive(Duration::from_secs(60));
        options.set_max_packet_size(1 << 20, 1 << 20);
        options.set_inflight(100);
        if let Some((username, password)) = self.credentials(index)? {
            options.set_credentials(username, password);
        }
        Ok(options)
    }

    /// Username and password of client `index`: a signed token against
    /// mqchat's chat namespace, the plain login if given, or none.
    fn credentials(&self, index: usize) -> anyhow::Result<Option<(String, String)>> {
        Ok(match (&self.public_key, &self.secret_key, &self.username) {
            (Some(public_key), Some(secret_key), _) => Some((public_key.clone(), self.token(secret_key, index)?)),
            (_, _, Some(username)) => Some((username.clone(), self.password.clone().unwrap_or_default())),
            _ => None,
        })
    }

    fn token(&self, secret_key: &str, index: usize) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let claims = json!({"sub": format!("{}{index}", self.user_prefix), "iat": now, "exp": now + 3600});
        Ok(jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret_key.as_bytes()),
        )?)
    }
}

async fn connect(options: MqttOptions, capacity: usize) -> anyhow::Result<(AsyncClient, EventLoop)> {
    let (client, mut eventloop) = AsyncClient::new(options, capacity);
    // Measure the broker, not the client's Nagle delays.
    eventloop.network_options.set_tcp_nodelay(true);
    loop {
        match tokio::time::timeout(Duration::from_secs(30), eventloop.poll()).await.context("CONNACK timed out")?? {
            Event::Incoming(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => return Ok((client, eventloop)),
            Event::Incoming(Packet::ConnAck(ack)) => anyhow::bail!("refused: {:?}", ack.code),
            _ => {}
        }
    }
}

fn qos(level: u8) -> anyhow::Result<QoS> {
    Ok(match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        other => anyhow::bail!("no QoS {other}"),
    })
}

#[allow(clippy::too_many_arguments)]
async fn pubsub(
    target: &Target,
    topic: String,
    publishers: usize,
    subscribers: usize,
    qos_level: u8,
    payload: usize,
    duration: Duration,
    rate: u64,
) -> anyhow::Result<serde_json::Value> {
    let qos = qos(qos_level)?;
    let epoch = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let window = Arc::new(Mutex::new(None::<(Instant, Instant)>));
    // Send time of every publish, in order, when arrivals can be matched by position.
    let in_order = publishers == 1 && qos == QoS::AtLeastOnce;
    let send_times = Arc::new(Mutex::new(Vec::<u64>::new()));

    let mut subscriber_tasks = Vec::new();
    for index in 0..subscribers {
        let (client, mut events) = mqtt::connect(target, publishers + index, "sub", 10).await?;
        client.subscribe(&topic, qos).await?;
        loop {
            if let mqtt::Incoming::SubAck { granted } = events.next().await? {
                anyhow::ensure!(granted, "subscription refused");
                break;
            }
        }
        let (received, latencies, window) = (Arc::clone(&received), Arc::clone(&latencies), Arc::clone(&window));
        let send_times = Arc::clone(&send_times);
        subscriber_tasks.push(tokio::spawn(async move {
            let _client = client;
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut arrivals = 0usize;
            while let Ok(event) = events.next().await {
                let mqtt::Incoming::Publish(payload) = event else { continue };
                let now = Instant::now();
                let arrival = arrivals;
                arrivals += 1;
                let Some((start, end)) = *window.lock().expect("window lock") else { continue };
                if now < start || now > end {
                    continue;
                }
                received.fetch_add(1, Ordering::Relaxed);
                // A payload the broker replaced (mqchat stamps typing
                // indicators) carries no send time: with one publisher at
                // QoS 1 (in order, nothing dropped) the n-th arrival is the
                // n-th publish; otherwise it is counted, not timed.
                let stamped = payload.strip_prefix(STAMP_MAGIC).and_then(|rest| rest.get(..8));
                let sent = match stamped {
                    Some(sent) => u64::from_le_bytes(sent.try_into().expect("8 bytes")),
                    None if in_order => match send_times.lock().expect("send times lock").get(arrival) {
                        Some(&sent) => sent,
                        None => continue,
                    },
                    None => continue,
                };
                let micros = (now.duration_since(epoch).as_nanos() as u64).saturating_sub(sent) / 1000;
                let _ = local.record(micros.max(1));
                if local.len() >= 10_000 {
                    latencies.lock().expect("latency lock").add(&local).expect("same bounds");
                    local.reset();
                }
            }
            latencies.lock().expect("latency lock").add(&local).expect("same bounds");
        }));
    }

    let warmup = Duration::from_millis(500);
    let start = Instant::now() + warmup;
    let end = start + duration;
    *window.lock().expect("window lock") = Some((start, end));
    let published = Arc::new(AtomicU64::new(0));
    let mut publisher_tasks = Vec::new();
    for index in 0..publishers {
        let (client, mut events) = mqtt::connect(target, index, "pub", 1000).await?;
        let driver = tokio::spawn(async move { while events.next().await.is_ok() {} });
        let (topic, published, send_times) = (topic.clone(), Arc::clone(&published), Arc::clone(&send_times));
        publisher_tasks.push(tokio::spawn(async move {
            let mut body = vec![0u8; payload.max(STAMP_MAGIC.len() + 8)];
            body[..STAMP_MAGIC.len()].copy_from_slice(STAMP_MAGIC);
            let began = Instant::now();
            let mut sent = 0u64;
            while Instant::now() < end + Duration::from_millis(200) {
                if rate > 0 && sent >= (began.elapsed().as_secs_f64() * rate as f64) as u64 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                sent += 1;
                let now = Instant::now();
                let stamp = now.duration_since(epoch).as_nanos() as u64;
                body[STAMP_MAGIC.len()..STAMP_MAGIC.len() + 8].copy_from_slice(&stamp.to_le_bytes());
                if in_order {
                    send_times.lock().expect("send times lock").push(stamp);
                }
                if client.publish(&topic, qos, body.clone()).await.is_err() {
                    break;
                }
                if now >= start && now <= end {
                    published.fetch_add(1, Ordering::Relaxed);
                }
            }
            client.disconnect().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            driver.abort();
        }));
    }
    for task in publisher_tasks {
        task.await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for task in &subscriber_tasks {
        task.abort();
    }
    let seconds = duration.as_secs_f64();
    let histogram = latencies.lock().expect("latency lock").clone();
    let delivered = received.load(Ordering::Relaxed);
    Ok(json!({
        "scenario": "pubsub",
        "mqtt_version": target.mqtt_version,
        "qos": qos_level,
        "publishers": publishers,
        "subscribers": subscribers,
        "payload_bytes": payload,
        "offered_rate": rate,
        "duration_s": seconds,
        "published_per_s": published.load(Ordering::Relaxed) as f64 / seconds,
        "delivered_per_s": delivered as f64 / seconds,
        "latency_us": if histogram.is_empty() {
            serde_json::Value::Null
        } else {
            json!({
                "p50": histogram.value_at_quantile(0.5),
                "p99": histogram.value_at_quantile(0.99),
                "p999": histogram.value_at_quantile(0.999),
                "max": histogram.max(),
            })
        },
    }))
}

/// Marks a payload that carries its send time (nanoseconds since the run's
/// epoch, little-endian, right after the marker).
const STAMP_MAGIC: &[u8] = b"MQLG";

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS not found")
}

/// Waits for every client task: those that succeeded, and how many failed
/// (the first failure's reason is printed, as `what failure: …`).
async fn gather<T>(tasks: Vec<tokio::task::JoinHandle<anyhow::Result<T>>>, what: &str) -> anyhow::Result<(Vec<T>, usize)> {
    let mut done = Vec::with_capacity(tasks.len());
    let mut failures = 0usize;
    for task in tasks {
        match task.await? {
            Ok(value) => done.push(value),
            Err(error) => {
                if failures == 0 {
                    eprintln!("first {what} failure: {error:#}");
                }
                failures += 1;
            }
        }
    }
    Ok((done, failures))
}

async fn connections(
    target: &Target,
    count: usize,
    concurrency: usize,
    server_pid: Option<u32>,
    settle: Duration,
) -> anyhow::Result<serde_json::Value> {
    let before = server_pid.map(rss_kib).transpose()?;
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for index in 0..count {
        let options = target.options(index, "idle")?;
        let permit = Arc::clone(&semaphore).acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let connected = connect(options, 1).await;
            drop(permit);
            let (client, mut eventloop) = connected?;
            let keeper = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
            anyhow::Ok((client, keeper))
        }));
    }
    let (held, failures) = gather(tasks, "connect").await?;
    let connect_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(settle).await;
    let after = server_pid.map(rss_kib).transpose()?;
    let per_connection = match (before, after) {
        (Some(before), Some(after)) if !held.is_empty() => Some((after.saturating_sub(before)) as f64 * 1024.0 / held.len() as f64),
        _ => None,
    };
    for (_, keeper) in &held {
        keeper.abort();
    }
    Ok(json!({
        "scenario": "connections",
        "requested": count,
        "connected": held.len(),
        "failed": failures,
        "connects_per_s": held.len() as f64 / connect_seconds,
        "server_rss_kib_before": before,
        "server_rss_kib_after": after,
        "bytes_per_connection": per_connection,
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = match cli.scenario {
        Scenario::Pubsub { topic, publishers, subscribers, qos, payload, duration, rate } => {
            pubsub(&cli.target, topic, publishers, subscribers, qos, payload, duration, rate).await?
        }
        Scenario::Chat { project_id, conversation_ids, senders, members, window, rate, duration, acked_ids } => {
            let load = chat::ChatLoad { project_id, conversation_ids, senders, members, window, rate, duration, acked_ids };
            chat::run(&cli.target, load).await?
        }
        Scenario::WebhookReceiver { listen, secret, expect, idle } => {
            receiver::run(receiver::ReceiverLoad { listen, secret, expect, idle }).await?
        }
        Scenario::Connections { count, concurrency, server_pid, settle, storm, project_id } => {
            let mut report = connections(&cli.target, count, concurrency, server_pid, settle).await?;
            if storm {
                let result = storm::run(&cli.target, count, concurrency, project_id.as_deref()).await?;
                report["storm"] = result;
            }
            report
        }
        Scenario::Scale { topics_file, subscribers, rate, duration, server_pid } => {
            scale::run(&cli.target, scale::ScaleLoad { topics_file: &topics_file, subscribers, rate, duration, server_pid }).await?
        }
        Scenario::Report { input, out_dir } => {
            report::write(&input, &out_dir)?;
            return Ok(());
        }
    };
    println!("{report}");
    Ok(())
}
