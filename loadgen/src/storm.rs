//! A reconnect storm: every client of `connections` has just dropped (its
//! socket closed without DISCONNECT); all come back at once, each
//! subscribing to its inbox and exchanging one message through it. Against
//! mqchat the message is a `conversations.list` command on the client's
//! outbox, answered by the chat engine on its inbox; against an open broker
//! the client publishes to its own inbox. Reports how long until every
//! client was back and had its answer.
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{Event, Packet, QoS};
use serde_json::json;

use crate::{connect, gather, Target};

pub async fn run(target: &Target, count: usize, concurrency: usize, project_id: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for index in 0..count {
        let options = target.options(index, "idle")?;
        let user = format!("{}{index}", target.user_prefix);
        let project = project_id.unwrap_or("open").to_owned();
        let mqchat = project_id.is_some();
        let permit = Arc::clone(&semaphore).acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let inbox = format!("chat/{project}/user/{user}/inbox");
            let result = tokio::time::timeout(Duration::from_secs(60), async {
                let (client, mut eventloop) = connect(options, 4).await?;
                client.subscribe(inbox.clone(), QoS::AtLeastOnce).await?;
                loop {
                    match eventloop.poll().await? {
                        Event::Incoming(Packet::SubAck(_)) => break,
                        _ => continue,
                    }
                }
                let (topic, payload) = if mqchat {
                    (format!("chat/{project}/user/{user}/outbox"), json!({"id": "storm", "op": "conversations.list"}).to_string())
                } else {
                    (inbox.clone(), "storm".to_owned())
                };
                client.publish(topic, QoS::AtLeastOnce, false, payload).await?;
                loop {
                    if let Event::Incoming(Packet::Publish(publish)) = eventloop.poll().await? {
                        if publish.topic == inbox {
                            break;
                        }
                    }
                }
                anyhow::Ok((client, eventloop, started.elapsed()))
            })
            .await
            .context("not back within 60 s");
            drop(permit);
            let (client, eventloop, back_after) = result??;
            let keeper = tokio::spawn(async move {
                let mut eventloop = eventloop;
                while eventloop.poll().await.is_ok() {}
            });
            anyhow::Ok((client, keeper, back_after))
        }));
    }
    let (back, failures) = gather(tasks, "storm").await?;
    let mut times: Vec<f64> = back.iter().map(|(_, _, after)| after.as_secs_f64()).collect();
    times.sort_by(f64::total_cmp);
    let last = times.last().copied().unwrap_or_default();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    for (_, keeper, _) in &back {
        keeper.abort();
    }
    Ok(json!({
        "clients": count,
        "back": back.len(),
        "failed": failures,
        "seconds_until_all_back": last,
        "median_seconds_back": median,
    }))
}
