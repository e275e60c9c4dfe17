//! External-broker mode: the chat engine reaches an existing broker
//! (Mosquitto with mqchat's plugin, or EMQX) as one MQTT 5 client instead
//! of rumqttd's in-process link (DESIGN §9).
//!
//! The connection is a persistent session (clean start off, a session
//! that outlives a restart) under a client id unique to this instance. It
//! reads every outbox and status topic through shared subscriptions
//! (`$share/mqchat/…`), so the broker spreads commands over all instances
//! and keeps those sent while an instance restarts. Acknowledgements are
//! manual: a command's PUBACK goes out only once the engine answered it —
//! for a send, once the message is committed — so the broker redelivers
//! whatever an instance took and did not finish.
//!
//! What the engine publishes goes out at QoS 1; cuts the gateway would make
//! in embedded mode (a removed member, revoked sessions, a rotated key) are
//! control messages on `$CONTROL/mqchat/v1`, read by the plugin.
//!
//! A broker goes on handing a shared subscriber's share to its session
//! while it is away, so an instance that dies for good would keep its share
//! of the commands: each instance announces itself (retained, with a will),
//! and the others take over the session of one that stays away
//! (`adoption`).
mod adoption;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use mqchat_bridge::commands::Outlet;
use mqchat_broker::acl;
use mqchat_broker::embedded::FeedMessage;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use serde_json::json;
use tokio::sync::{mpsc, watch, Notify};

use crate::chat::{Command, Done};
use crate::presence::StatusMessage;
use crate::settings::BrokerSettings;

/// Username of mqchat's own connection; its password is the platform secret.
pub const PLATFORM_USERNAME: &str = "mqchat-platform";
/// Where mqchat tells the plugin what changed (Mosquitto hands `$CONTROL/…`
/// publishes to the plugin that registered the topic; nobody receives them).
pub const CONTROL_TOPIC: &str = "$CONTROL/mqchat/v1";
/// Every instance's share of the commands and status announcements.
pub const OUTBOX_FILTER: &str = "$share/mqchat/chat/+/user/+/outbox";
pub const STATUS_FILTER: &str = "$share/mqchat/chat/+/user/+/status";
const INSTANCES_FILTER: &str = "$mqchat/instances/+";
/// How long the broker keeps this instance's session while it is away.
const SESSION_EXPIRY_SECS: u32 = 7 * 24 * 3600;
/// Commands taken from the broker and not yet answered (MQTT receive maximum).
const IN_FLIGHT: u16 = 1000;
/// How long `connect` waits for the broker before start-up fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `close` waits for its DISCONNECT to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// mqchat's connection to the external broker.
pub struct ExternalBroker {
    pub outlet: Arc<RemoteOutlet>,
    /// Commands from the outboxes, each acknowledged when answered.
    pub commands: mpsc::Receiver<Command>,
    pub statuses: mpsc::UnboundedReceiver<StatusMessage>,
    pub link: BrokerLink,
}

/// Whether the connection to the broker is up (readiness), and its end.
#[derive(Clone)]
pub struct BrokerLink {
    connected: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
    client: AsyncClient,
    client_id: String,
    /// Told when the DISCONNECT has gone out after `close`.
    closed: Arc<Notify>,
}

impl BrokerLink {
    /// Disconnects for good (shutdown): the broker keeps the session and
    /// queues what arrives until this instance is back. A DISCONNECT
    /// discards the will, so the instance says itself that it is offline:
    /// if it is not back soon, another instance takes its session over.
    pub async fn close(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        let offline = self.client.publish(instance_topic(&self.client_id), QoS::AtLeastOnce, true, adoption::OFFLINE).await;
        if let Err(error) = offline.and(self.client.disconnect().await) {
            tracing::debug!(%error, "disconnecting from the external broker");
            return;
        }
        if tokio::time::timeout(CLOSE_TIMEOUT, self.closed.notified()).await.is_err() {
            tracing::warn!("the external broker's connection did not close in time");
        }
    }

    pub fn probe(&self) -> Result<(), String> {
        if self.connected.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("not connected to the external broker".into())
        }
    }
}

fn instance_topic(client_id: &str) -> String {
    format!("{}{client_id}", acl::INSTANCES_PREFIX)
}

/// Where the broker is and how mqchat logs in there.
#[derive(Clone)]
struct Endpoint {
    host: String,
    port: u16,
    secret: String,
}

impl Endpoint {
    /// A persistent session under `client_id`, acknowledged by hand.
    fn options(&self, client_id: &str) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, self.host.clone(), self.port);
        options
            .set_credentials(PLATFORM_USERNAME, self.secret.clone())
            .set_clean_start(false)
            .set_session_expiry_interval(Some(SESSION_EXPIRY_SECS))
            .set_receive_maximum(Some(IN_FLIGHT))
            .set_keep_alive(Duration::from_secs(30))
            .set_manual_acks(true)
            .set_max_packet_size(Some(1 << 20));
        options
    }
}

/// The default client id: unique per host and HTTP port, stable across restarts.
pub fn default_client_id(http_port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(40).collect();
    format!("mqchat-{}-{http_port}", if host.is_empty() { "host" } else { &host })
}

fn host_and_port(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url.strip_prefix("mqtt://").context("broker.url must start with mqtt://")?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().with_context(|| format!("bad port in broker.url {url:?}"))?),
        None => (rest, 1883),
    };
    anyhow::ensure!(!host.is_empty(), "broker.url {url:?} names no host");
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port))
}

impl ExternalBroker {
    /// Connects, subscribes and starts the connection's task; fails when the
    /// broker does not accept mqchat within `CONNECT_TIMEOUT`.
    pub async fn connect(settings: &BrokerSettings, client_id: String) -> anyhow::Result<ExternalBroker> {
        let url = settings.url.as_deref().context("broker.url is not set")?;
        let secret = settings.platform_secret.as_deref().context("broker.platform_secret is not set")?;
        let (host, port) = host_and_port(url)?;
        let endpoint = Endpoint { host, port, secret: secret.to_owned() };
        let mut options = endpoint.options(&client_id);
        options.set_last_will(LastWill::new(instance_topic(&client_id), adoption::OFFLINE, QoS::AtLeastOnce, true, None));
        let (client, eventloop) = AsyncClient::new(options, 10_000);
        let connected = Arc::new(AtomicBool::new(false));
        let stopping = Arc::new(AtomicBool::new(false));
        let (commands_tx, commands) = mpsc::channel(usize::from(IN_FLIGHT));
        let (statuses_tx, statuses) = mpsc::unbounded_channel();
        let (instances_tx, instances) = mpsc::unbounded_channel();
        let (subscribed_tx, mut subscribed) = watch::channel(None::<Result<(), String>>);
        let (outgoing_tx, outgoing) = mpsc::unbounded_channel();
        tokio::spawn(publish_outgoing(client.clone(), outgoing));
        let link = BrokerLink { connected: Arc::clone(&connected), stopping: Arc::clone(&stopping), client: client.clone(), client_id: client_id.clone(), closed: Arc::new(Notify::new()) };
        let deliveries = Deliveries { commands: commands_tx, statuses: statuses_tx, instances: Some(instances_tx) };
        let adoptions = adoption::Adoptions::new(endpoint, client_id.clone(), deliveries.without_instances(), outgoing_tx.clone());
        tokio::spawn(adoptions.run(instances));
        let reader = Reader { client, client_id: client_id.clone(), connected, stopping, closed: Arc::clone(&link.closed), deliveries, subscribed: subscribed_tx };
        tokio::spawn(reader.run(eventloop));
        let first = tokio::time::timeout(CONNECT_TIMEOUT, subscribed.wait_for(Option::is_some)).await;
        match first.as_ref().map(|result| result.as_deref().cloned()) {
            Ok(Ok(Some(Ok(())))) => {}
            Ok(Ok(Some(Err(error)))) => anyhow::bail!("the broker at {url} refused mqchat: {error}"),
            _ => anyhow::bail!("no answer from the broker at {url} within {CONNECT_TIMEOUT:?}"),
        }
        tracing::info!(%url, %client_id, "connected to the external broker");
        Ok(ExternalBroker {
            outlet: Arc::new(RemoteOutlet { outgoing: outgoing_tx }),
            commands,
            statuses,
            link,
        })
    }
}

/// One publish the engine asked for.
struct Outgoing {
    topic: String,
    payload: Bytes,
    retain: bool,
    properties: Option<PublishProperties>,
}

async fn publish_outgoing(client: AsyncClient, mut outgoing: mpsc::UnboundedReceiver<Outgoing>) {
    while let Some(message) = outgoing.recv().await {
        let sent = match message.properties {
            Some(properties) => {
                client
                    .publish_with_properties(message.topic, QoS::AtLeastOnce, message.retain, message.payload, properties)
                    .await
            }
            None => client.publish(message.topic, QoS::AtLeastOnce, message.retain, message.payload).await,
        };
        if let Err(error) = sent {
            tracing::error!(%error, "the external broker's connection is gone; publishing stopped");
            return;
        }
    }
}

/// Where deliveries go: commands to the engine, status announcements to
/// presence, other instances' announcements to adoption.
#[derive(Clone)]
struct Deliveries {
    commands: mpsc::Sender<Command>,
    statuses: mpsc::UnboundedSender<StatusMessage>,
    instances: Option<mpsc::UnboundedSender<adoption::InstanceStatus>>,
}

impl Deliveries {
    fn without_instances(&self) -> Deliveries {
        Deliveries { instances: None, ..self.clone() }
    }

    /// Hands one delivery on, `done` called once it is handled; false once
    /// the engine or presence is gone.
    async fn deliver(&self, publish: Publish, done: Done) -> bool {
        let topic = String::from_utf8_lossy(&publish.topic).into_owned();
        if acl::parse_outbox_topic(&topic).is_some() {
            let (response_topic, correlation_data) = match publish.properties {
                Some(properties) => (properties.response_topic, properties.correlation_data),
                None => (None, None),
            };
            let message = FeedMessage { topic, payload: publish.payload, response_topic, correlation_data };
            return self.commands.send(Command { message, done: Some(done) }).await.is_ok();
        }
        if let Some((project_id, user_id)) = acl::parse_status_topic(&topic) {
            let status = StatusMessage::Status { project_id: project_id.to_owned(), user_id: user_id.to_owned(), payload: publish.payload, done: Some(done) };
            return self.statuses.send(status).is_ok();
        }
        if let (Some(instances), Some(client_id)) = (&self.instances, topic.strip_prefix(acl::INSTANCES_PREFIX)) {
            let status = adoption::InstanceStatus::read(client_id, &publish.payload);
            done();
            return instances.send(status).is_ok();
        }
        // Nothing else is subscribed; acknowledge whatever arrives anyway.
        done();
        true
    }
}

/// Reads the broker's deliveries and keeps the session subscribed.
struct Reader {
    client: AsyncClient,
    client_id: String,
    connected: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
    closed: Arc<Notify>,
    deliveries: Deliveries,
    subscribed: watch::Sender<Option<Result<(), String>>>,
}

impl Reader {
    async fn run(self, mut eventloop: EventLoop) {
        // When the connection was lost, until the broker answers again.
        let mut lost_at = None;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    self.connected.store(true, Ordering::Relaxed);
                    if let Some(lost_at) = lost_at.take() {
                        // Our session is gone: the broker restarted without
                        // it, and every client connection with it.
                        if !ack.session_present && self.deliveries.statuses.send(StatusMessage::BrokerRestarted { lost_at }).is_err() {
                            return;
                        }
                    }
                    let online = self.client.publish(instance_topic(&self.client_id), QoS::AtLeastOnce, true, adoption::ONLINE);
                    if let Err(error) = online.await {
                        tracing::error!(%error, "announcing this instance at the external broker failed");
                    }
                    // Subscribing again is harmless when the session kept the
                    // subscriptions, and needed when the broker lost them (or
                    // another instance that took the session over dropped them).
                    for filter in [OUTBOX_FILTER, STATUS_FILTER, INSTANCES_FILTER] {
                        if let Err(error) = self.client.subscribe(filter, QoS::AtLeastOnce).await {
                            tracing::error!(%error, "subscribing at the external broker failed");
                        }
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let refused = ack.return_codes.iter().find(|code| !matches!(code, rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)));
                    let result = match refused {
                        None => Ok(()),
                        Some(code) => {
                            tracing::error!(?code, "the external broker refused mqchat's subscription");
                            Err(format!("subscription refused: {code:?}"))
                        }
                    };
                    self.subscribed.send_replace(Some(result));
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let done = acknowledge(self.client.clone(), publish.clone(), None);
                    if !self.deliveries.deliver(publish, done).await {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::Disconnect(disconnect))) => {
                    if self.connected.swap(false, Ordering::Relaxed) {
                        lost_at = Some(chrono::Utc::now());
                    }
                    tracing::warn!(reason = ?disconnect.reason_code, "the external broker disconnected mqchat");
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                    self.closed.notify_one();
                    return;
                }
                Ok(_) => {}
                Err(_) if self.stopping.load(Ordering::Relaxed) => {
                    self.closed.notify_one();
                    return;
                }
                Err(error) => {
                    let was_connected = self.connected.swap(false, Ordering::Relaxed);
                    if was_connected {
                        lost_at = Some(chrono::Utc::now());
                        tracing::warn!(%error, "lost the external broker; reconnecting");
                    }
                    if self.subscribed.borrow().is_none() {
                        if let rumqttc::v5::ConnectionError::ConnectionRefused(code) = &error {
                            self.subscribed.send_replace(Some(Err(format!("{code:?}"))));
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Acknowledges `publish` once handled; `unacknowledged` (when given) counts
/// down once the acknowledgement is queued on the connection.
fn acknowledge(client: AsyncClient, publish: Publish, unacknowledged: Option<Arc<AtomicUsize>>) -> Done {
    Box::new(move || {
        tokio::spawn(async move {
            if publish.qos != QoS::AtMostOnce {
                if let Err(error) = client.ack(&publish).await {
                    tracing::warn!(%error, "acknowledging to the external broker failed");
                }
            }
            if let Some(unacknowledged) = unacknowledged {
                unacknowledged.fetch_sub(1, Ordering::Relaxed);
            }
        });
    })
}

/// The engine's output as publishes to the external broker, and its cuts
/// as control messages to the broker's plugin.
pub struct RemoteOutlet {
    outgoing: mpsc::UnboundedSender<Outgoing>,
}

impl RemoteOutlet {
    fn send(&self, topic: String, payload: impl Into<Bytes>, retain: bool, properties: Option<PublishProperties>) {
        let message = Outgoing { topic, payload: payload.into(), retain, properties };
        if self.outgoing.send(message).is_err() {
            tracing::error!("the external broker's connection is gone; a publish was dropped");
        }
    }

    /// Tells the plugin something changed (its caches drop what it names).
    pub fn control(&self, message: serde_json::Value) {
        self.send(CONTROL_TOPIC.to_owned(), message.to_string(), false, None);
    }
}

impl Outlet for RemoteOutlet {
    fn to_conversation(&self, project_id: &str, conversation_id: &str, payload: String) {
        self.send(acl::conversation_topic(project_id, conversation_id), payload, false, None);
    }

    fn to_user(&self, project_id: &str, user_id: &str, payload: String) {
        self.send(acl::inbox_topic(project_id, user_id), payload, false, None);
    }

    fn revoke(&self, project_id: &str, user_id: &str, conversation_id: &str) {
        self.control(json!({"op": "revoke", "project_id": project_id, "user_id": user_id, "conversation_id": conversation_id}));
    }

    fn disconnect(&self, project_id: &str, user_id: &str, reason: &str) {
        self.control(json!({"op": "disconnect", "project_id": project_id, "user_id": user_id, "reason": reason}));
    }

    fn presence(&self, project_id: &str, user_id: &str, payload: String) {
        self.send(acl::presence_topic(project_id, user_id), payload, true, None);
    }

    fn to_response_topic(&self, topic: &str, correlation_data: Option<&[u8]>, payload: String) {
        let properties = PublishProperties { correlation_data: correlation_data.map(Bytes::copy_from_slice), ..Default::default() };
        self.send(topic.to_owned(), payload, false, Some(properties));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_subscriptions_cover_every_outbox_and_status_topic() {
        assert_eq!(STATUS_FILTER.strip_prefix("$share/mqchat/"), Some(acl::STATUS_FILTER));
        assert!(acl::parse_outbox_topic("chat/p/user/u/outbox").is_some());
        assert_eq!(OUTBOX_FILTER.strip_prefix("$share/mqchat/"), Some("chat/+/user/+/outbox"));
    }

    #[test]
    fn broker_urls() {
        assert_eq!(host_and_port("mqtt://127.0.0.1:1884").unwrap(), ("127.0.0.1".into(), 1884));
        assert_eq!(host_and_port("mqtt://localhost").unwrap(), ("localhost".into(), 1883));
        assert_eq!(host_and_port("mqtt://[::1]:1885").unwrap(), ("::1".into(), 1885));
        assert!(host_and_port("http://x:1").is_err());
        assert!(host_and_port("mqtt://:1883").is_err());
        assert!(host_and_port("mqtt://h:port").is_err());
    }
}
