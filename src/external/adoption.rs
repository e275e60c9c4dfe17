//! Taking over the broker session of an instance that died.
//!
//! A broker hands each shared-subscription delivery to one member in turn,
//! and a member that is away with a persistent session (a killed instance)
//! keeps getting its turn: its share of the commands and wills would wait in
//! its session until it came back, maybe never. So every instance announces
//! itself on `$mqchat/instances/{client id}` (retained `online`, and a will
//! saying `offline`), and when one has been offline for `ADOPT_AFTER`, the
//! live instance with the lowest client id connects under the dead one's
//! client id, which resumes its session: the broker redelivers what the dead
//! instance had taken and not acknowledged, then what was queued for it. The
//! adopter unsubscribes the session from the shared filters (so it gets no
//! new share), hands every delivery to its own engine and presence,
//! acknowledges each once handled, and leaves when nothing is left. The
//! session then stays empty until its instance comes back and subscribes
//! again.
//!
//! The dead instance coming back takes its session back (the broker closes
//! the adopter's connection); what the adopter had not acknowledged is
//! redelivered to it. Two adopters with different views of who is alive
//! take the session from each other once, and the one taken over gives up.
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event};
use tokio::sync::mpsc;

use super::{acknowledge, instance_topic, Deliveries, Endpoint, Outgoing, INSTANCES_FILTER, OUTBOX_FILTER, STATUS_FILTER};

/// An instance's announcement while it is connected, and its will.
pub const ONLINE: &str = "online";
pub const OFFLINE: &str = "offline";
/// How long an instance stays offline before another takes its session over
/// (a restart takes a second or two, and then it finds its session itself).
const ADOPT_AFTER: Duration = Duration::from_secs(5);
/// With nothing unacknowledged, how long without a delivery means the
/// session's queue is empty (the broker sends what it queued at once).
const DRAINED_AFTER: Duration = Duration::from_secs(1);

/// What an instance last said about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Online,
    Offline,
    /// Nothing retained: its session was taken over and emptied, or it
    /// never announced itself.
    Unknown,
}

#[derive(Debug)]
pub struct InstanceStatus {
    pub client_id: String,
    pub liveness: Liveness,
}

impl InstanceStatus {
    pub fn read(client_id: &str, payload: &[u8]) -> InstanceStatus {
        let liveness = match payload {
            b"online" => Liveness::Online,
            b"offline" => Liveness::Offline,
            _ => Liveness::Unknown,
        };
        InstanceStatus { client_id: client_id.to_owned(), liveness }
    }
}

/// How an adoption ended.
enum Outcome {
    /// Every delivery the session held is handled.
    Emptied,
    /// The connection ended first (the instance is back, another adopter,
    /// the broker); whatever is unacknowledged stays in the session.
    Interrupted,
}

/// Watches the other instances' announcements and adopts the sessions of
/// those that stay away.
pub struct Adoptions {
    endpoint: Endpoint,
    own_id: String,
    deliveries: Deliveries,
    outgoing: mpsc::UnboundedSender<Outgoing>,
}

impl Adoptions {
    pub fn new(endpoint: Endpoint, own_id: String, deliveries: Deliveries, outgoing: mpsc::UnboundedSender<Outgoing>) -> Adoptions {
        Adoptions { endpoint, own_id, deliveries, outgoing }
    }

    pub async fn run(self, mut statuses: mpsc::UnboundedReceiver<InstanceStatus>) {
        // Each other instance: what it last said, and since when (or since
        // the last adoption that did not finish).
        let mut known: HashMap<String, (Liveness, Instant)> = HashMap::new();
        let mut adopting: HashSet<String> = HashSet::new();
        let (finished_tx, mut finished) = mpsc::unbounded_channel::<(String, Outcome)>();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                status = statuses.recv() => {
                    let Some(status) = status else { return };
                    if status.client_id != self.own_id {
                        known.insert(status.client_id, (status.liveness, Instant::now()));
                    }
                }
                Some((client_id, outcome)) = finished.recv() => {
                    adopting.remove(&client_id);
                    match outcome {
                        Outcome::Emptied => {
                            // Its session holds nothing now: nobody needs to
                            // adopt it again until it has been back.
                            known.remove(&client_id);
                            let clear = Outgoing { topic: instance_topic(&client_id), payload: Default::default(), retain: true, properties: None };
                            let _ = self.outgoing.send(clear);
                        }
                        Outcome::Interrupted => {
                            if let Some((_, since)) = known.get_mut(&client_id) {
                                *since = Instant::now();
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    for client_id in due(&self.own_id, &known, &adopting) {
                        adopting.insert(client_id.clone());
                        let (endpoint, deliveries, finished) = (self.endpoint.clone(), self.deliveries.clone(), finished_tx.clone());
                        tokio::spawn(async move {
                            let outcome = adopt(&endpoint, &client_id, deliveries).await;
                            let _ = finished.send((client_id, outcome));
                        });
                    }
                }
            }
        }
    }
}

/// The instances this one should adopt now: offline for `ADOPT_AFTER`,
/// not being adopted, and this instance the lowest client id alive.
fn due(own_id: &str, known: &HashMap<String, (Liveness, Instant)>, adopting: &HashSet<String>) -> Vec<String> {
    let lowest_alive = known.iter().filter(|(_, (liveness, _))| *liveness == Liveness::Online).map(|(id, _)| id.as_str()).chain([own_id]).min();
    if lowest_alive != Some(own_id) {
        return Vec::new();
    }
    known
        .iter()
        .filter(|(id, (liveness, since))| *liveness == Liveness::Offline && since.elapsed() >= ADOPT_AFTER && !adopting.contains(*id))
        .map(|(id, _)| id.clone())
        .collect()
}

/// Resumes `client_id`'s session, unsubscribes it, and hands on every
/// delivery it held until none is left.
async fn adopt(endpoint: &Endpoint, client_id: &str, deliveries: Deliveries) -> Outcome {
    tracing::info!(instance = %client_id, "an instance has been offline for {ADOPT_AFTER:?}; taking over its session");
    let (client, mut eventloop) = AsyncClient::new(endpoint.options(client_id), 1000);
    // The event loop in its own task: its `poll` is not safe to cancel, and
    // deciding that the session is empty needs a timeout.
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        loop {
            let event = eventloop.poll().await;
            let failed = event.is_err();
            if events_tx.send(event).is_err() || failed {
                return;
            }
        }
    });
    let unacknowledged = Arc::new(AtomicUsize::new(0));
    let (mut handed_on, mut unsubscribed) = (0_usize, 0_usize);
    let mut last_delivery = Instant::now();
    let outcome = loop {
        match tokio::time::timeout(DRAINED_AFTER / 4, events.recv()).await {
            Ok(Some(Ok(Event::Incoming(Packet::ConnAck(ack))))) => {
                if !ack.session_present {
                    tracing::info!(instance = %client_id, "the broker holds no session for it; nothing to take over");
                    break Outcome::Emptied;
                }
                for filter in [OUTBOX_FILTER, STATUS_FILTER, INSTANCES_FILTER] {
                    if client.unsubscribe(filter).await.is_err() {
                        break;
                    }
                }
            }
            Ok(Some(Ok(Event::Incoming(Packet::UnsubAck(_))))) => unsubscribed += 1,
            Ok(Some(Ok(Event::Incoming(Packet::Publish(publish))))) => {
                last_delivery = Instant::now();
                handed_on += 1;
                unacknowledged.fetch_add(1, Ordering::Relaxed);
                let done = acknowledge(client.clone(), publish.clone(), Some(Arc::clone(&unacknowledged)));
                if !deliveries.deliver(publish, done).await {
                    break Outcome::Interrupted;
                }
            }
            Ok(Some(Ok(Event::Incoming(Packet::Disconnect(disconnect))))) => {
                tracing::info!(instance = %client_id, reason = ?disconnect.reason_code, "the broker ended the takeover (the instance is back, or another took over)");
                break Outcome::Interrupted;
            }
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(Some(Err(error))) => {
                tracing::warn!(instance = %client_id, %error, "lost the connection holding another instance's session");
                break Outcome::Interrupted;
            }
            Ok(None) => break Outcome::Interrupted,
        }
        if unsubscribed == 3 && unacknowledged.load(Ordering::Relaxed) == 0 && last_delivery.elapsed() >= DRAINED_AFTER {
            tracing::info!(instance = %client_id, handed_on, "handled everything its session held");
            break Outcome::Emptied;
        }
    };
    if matches!(outcome, Outcome::Emptied) {
        // The acknowledgements are queued before the DISCONNECT, so they go
        // out first; the session stays (empty, unsubscribed) for its instance.
        if client.disconnect().await.is_ok() {
            let _ = tokio::time::timeout(DRAINED_AFTER, async {
                while let Some(Ok(event)) = events.recv().await {
                    if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                        return;
                    }
                }
            })
            .await;
        }
    }
    pump.abort();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(rows: &[(&str, Liveness, u64)]) -> HashMap<String, (Liveness, Instant)> {
        rows.iter().map(|(id, liveness, ago)| (id.to_string(), (*liveness, Instant::now() - Duration::from_secs(*ago)))).collect()
    }

    #[test]
    fn the_lowest_live_instance_adopts_those_offline_long_enough() {
        let none = HashSet::new();
        let rows = known(&[("mqchat-b", Liveness::Offline, 6), ("mqchat-c", Liveness::Online, 60), ("mqchat-d", Liveness::Offline, 2)]);
        assert_eq!(due("mqchat-a", &rows, &none), vec!["mqchat-b".to_owned()], "d has been away for only 2 s");
        let seen_by_c = known(&[("mqchat-a", Liveness::Online, 60), ("mqchat-b", Liveness::Offline, 6), ("mqchat-d", Liveness::Offline, 2)]);
        assert!(due("mqchat-c", &seen_by_c, &none).is_empty(), "a is alive and lower");
        assert!(due("mqchat-a", &rows, &HashSet::from(["mqchat-b".to_owned()])).is_empty(), "already being adopted");
        let rows = known(&[("mqchat-a", Liveness::Offline, 6), ("mqchat-b", Liveness::Unknown, 60)]);
        assert_eq!(due("mqchat-c", &rows, &none), vec!["mqchat-a".to_owned()], "a dead instance does not count as the lowest");
    }

    #[test]
    fn announcements_are_read_strictly() {
        assert_eq!(InstanceStatus::read("x", b"online").liveness, Liveness::Online);
        assert_eq!(InstanceStatus::read("x", b"offline").liveness, Liveness::Offline);
        assert_eq!(InstanceStatus::read("x", b"").liveness, Liveness::Unknown);
        assert_eq!(InstanceStatus::read("x", b"Online ").liveness, Liveness::Unknown);
    }
}
