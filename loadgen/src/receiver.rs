//! `webhook-receiver`: the receiving end of the webhook benchmark. A real
//! HTTP server that checks each delivery's `X-Signature` (HMAC-SHA256 with
//! the webhook secret), counts deliveries and duplicates, and times each
//! from the event's `created_at` (the commit that recorded it) to its arrival.
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use warp::Filter;

pub struct ReceiverLoad {
    pub listen: SocketAddr,
    pub secret: String,
    /// Stop once this many deliveries arrived.
    pub expect: Option<u64>,
    /// Stop when nothing arrived for this long (after the first delivery).
    pub idle: Duration,
}

#[derive(Default)]
struct Tally {
    received: u64,
    bad_signatures: u64,
    event_ids: HashSet<String>,
    duplicates: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    latencies_us: Option<Histogram<u64>>,
}

fn signature_ok(secret: &str, body: &[u8], offered: Option<&str>) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    offered == Some(expected.as_str())
}

pub async fn run(load: ReceiverLoad) -> anyhow::Result<Value> {
    let tally = Arc::new(Mutex::new(Tally { latencies_us: Some(Histogram::new_with_bounds(1, 3_600_000_000, 3)?), ..Tally::default() }));
    let counted = Arc::clone(&tally);
    let secret = load.secret.clone();
    let route = warp::post()
        .and(warp::path::full())
        .and(warp::header::optional::<String>("x-signature"))
        .and(warp::body::bytes())
        .map(move |path: warp::path::FullPath, signature: Option<String>, body: bytes::Bytes| {
            let now = Instant::now();
            let arrived = chrono::Utc::now();
            let valid = signature_ok(&secret, &body, signature.as_deref());
            let envelope: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut tally = counted.lock().expect("tally lock");
            if !valid {
                tally.bad_signatures += 1;
                return warp::reply::with_status("bad signature", warp::http::StatusCode::UNAUTHORIZED);
            }
            tally.received += 1;
            tally.first.get_or_insert(now);
            tally.last = Some(now);
            // One event reaches each webhook once: a duplicate is the same id at the same path.
            if let Some(id) = envelope["id"].as_str() {
                if !tally.event_ids.insert(format!("{}#{id}", path.as_str())) {
                    tally.duplicates += 1;
                }
            }
            let created = envelope["created_at"].as_str().and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
            if let (Some(created), Some(histogram)) = (created, tally.latencies_us.as_mut()) {
                let micros = (arrived - created.with_timezone(&chrono::Utc)).num_microseconds().unwrap_or(0);
                let _ = histogram.record(micros.max(1) as u64);
            }
            warp::reply::with_status("ok", warp::http::StatusCode::OK)
        });
    let listener = tokio::net::TcpListener::bind(load.listen).await?;
    eprintln!("webhook-receiver listening on {}", listener.local_addr()?);
    tokio::spawn(warp::serve(route).incoming(listener).run());

    let mut last_count = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let tally = tally.lock().expect("tally lock");
        eprintln!("received {} (+{}/s), bad signatures {}", tally.received, tally.received - last_count, tally.bad_signatures);
        last_count = tally.received;
        let reached = load.expect.is_some_and(|expect| tally.received >= expect);
        let idle = tally.last.is_some_and(|last| last.elapsed() >= load.idle);
        if reached || idle {
            break;
        }
    }
    let tally = tally.lock().expect("tally lock");
    let span = match (tally.first, tally.last) {
        (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
        _ => 0.0,
    };
    let latency = tally.latencies_us.as_ref().map(|h| {
        json!({"p50_ms": h.value_at_quantile(0.5) as f64 / 1000.0, "p99_ms": h.value_at_quantile(0.99) as f64 / 1000.0,
            "p999_ms": h.value_at_quantile(0.999) as f64 / 1000.0, "max_ms": h.max() as f64 / 1000.0})
    });
    Ok(json!({
        "scenario": "webhook-receiver",
        "received": tally.received,
        "distinct_deliveries": tally.event_ids.len(),
        "duplicates": tally.duplicates,
        "bad_signatures": tally.bad_signatures,
        "seconds_first_to_last": span,
        "deliveries_per_second": if span > 0.0 { tally.received as f64 / span } else { 0.0 },
        "latency_event_to_delivery": latency,
    }))
}
