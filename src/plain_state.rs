//! What the plain-MQTT namespace keeps in the database so it survives a
//! restart: the gateway hands over each retained message and each change of
//! a persistent session as it happens, a writer task stores them in order
//! (batched, one transaction per batch), and at start — before clients
//! connect — every stored retained message is published again and every
//! persistent session put back into the router with its subscriptions.
//! What a session had queued when the process stopped is not kept.
use std::sync::Arc;

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use chrono::Utc;
use mqchat_bridge::mqtt_state::{self, Change, Retained};
use mqchat_bridge::DatabaseConnection;
use mqchat_broker::embedded::RouterHandle;
use mqchat_broker::persistence::{PlainState, RetainedMessage, StateChange, StoredSubscription};
use mqchat_broker::PlatformPublisher;
use rumqttd::protocol::{Publish, PublishProperties};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Most messages written in one transaction.
const BATCH: usize = 512;

/// Hands changes to the writer task.
pub struct DatabaseState {
    writes: mpsc::UnboundedSender<StateChange>,
}

impl PlainState for DatabaseState {
    fn record(&self, change: StateChange) {
        if self.writes.send(change).is_err() {
            tracing::error!("the plain namespace's state writer stopped; a change is kept in memory only");
        }
    }
}

impl DatabaseState {
    /// Starts the writer task.
    pub fn start(db: DatabaseConnection) -> Arc<DatabaseState> {
        let (writes, mut queue) = mpsc::unbounded_channel::<StateChange>();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![stored(first)];
                while batch.len() < BATCH {
                    match queue.try_recv() {
                        Ok(change) => batch.push(stored(change)),
                        Err(_) => break,
                    }
                }
                if let Err(error) = mqtt_state::save(&db, &batch, Utc::now()).await {
                    tracing::error!(%error, changes = batch.len(), "could not store the plain namespace's state; it is kept in memory only");
                }
            }
        });
        Arc::new(DatabaseState { writes })
    }
}

/// What was restored at start.
pub struct Restored {
    pub retained: usize,
    pub sessions: usize,
}

/// Publishes every stored retained message again and puts every stored
/// persistent session back (at start, before clients connect).
pub async fn restore(db: &DatabaseConnection, publisher: &PlatformPublisher, router: &RouterHandle) -> anyhow::Result<Restored> {
    let now = Utc::now();
    let sessions = mqtt_state::load_sessions(db, now).await.context("reading persistent sessions")?;
    for session in &sessions {
        let subscriptions: Vec<StoredSubscription> =
            session.subscriptions.iter().filter_map(|value| serde_json::from_value(value.clone()).ok()).collect();
        let expiry = session.expires_in_secs.map_or(u32::MAX, |secs| u32::try_from(secs).unwrap_or(u32::MAX - 1));
        router.restore_session(&session.client_id, expiry, &subscriptions).await.context("restoring a persistent session")?;
    }
    let messages = mqtt_state::load_retained(db, now).await.context("reading retained messages")?;
    for message in &messages {
        let mut properties: Option<PublishProperties> =
            serde_json::from_str::<StoredProperties>(&message.properties).ok().and_then(StoredProperties::into_properties);
        if let Some(expires_at) = message.expires_at {
            let left = u32::try_from((expires_at - now).num_seconds().max(1)).unwrap_or(u32::MAX);
            properties.get_or_insert_with(PublishProperties::default).message_expiry_interval = Some(left);
        }
        let publish = Publish::new(Bytes::from(message.topic.clone()), Bytes::from(message.payload.clone()), true);
        publisher.publish_packet(publish, properties).map_err(anyhow::Error::msg).context("restoring a retained message")?;
    }
    Ok(Restored { retained: messages.len(), sessions: sessions.len() })
}

fn stored(change: StateChange) -> Change {
    match change {
        StateChange::Retained(message) => Change::Retained(retained(message)),
        StateChange::SessionStarted { client_id, expiry, clean } => {
            let expiry_secs = expiry.map(|expiry| i64::try_from(expiry.as_secs()).unwrap_or(i64::MAX));
            Change::SessionStarted { client_id, expiry_secs, clean }
        }
        StateChange::Subscribed { client_id, subscriptions } => Change::Subscribed {
            client_id,
            subscriptions: subscriptions.iter().filter_map(|subscription| serde_json::to_value(subscription).ok()).collect(),
        },
        StateChange::Unsubscribed { client_id, filters } => Change::Unsubscribed { client_id, filters },
        StateChange::SessionEnded { client_id } => Change::SessionEnded { client_id },
        StateChange::SessionDropped { client_id } => Change::SessionDropped { client_id },
    }
}

fn retained(message: RetainedMessage) -> Retained {
    let expires_at = message
        .properties
        .as_ref()
        .and_then(|properties| properties.message_expiry_interval)
        .map(|seconds| Utc::now() + chrono::Duration::seconds(i64::from(seconds)));
    let properties = message.properties.map(StoredProperties::from).unwrap_or_default();
    Retained {
        topic: message.topic,
        payload: message.payload.to_vec(),
        qos: message.qos as u8,
        properties: serde_json::to_string(&properties).unwrap_or_else(|_| "{}".into()),
        expires_at,
    }
}

/// The MQTT 5 properties a retained message keeps (the expiry is a column).
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload_format_indicator: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response_topic: Option<String>,
    /// Base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    correlation_data: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    user_properties: Vec<(String, String)>,
}

impl From<PublishProperties> for StoredProperties {
    fn from(properties: PublishProperties) -> Self {
        StoredProperties {
            payload_format_indicator: properties.payload_format_indicator,
            content_type: properties.content_type,
            response_topic: properties.response_topic,
            correlation_data: properties.correlation_data.map(|data| STANDARD.encode(data)),
            user_properties: properties.user_properties,
        }
    }
}

impl StoredProperties {
    fn into_properties(self) -> Option<PublishProperties> {
        let empty = self.payload_format_indicator.is_none()
            && self.content_type.is_none()
            && self.response_topic.is_none()
            && self.correlation_data.is_none()
            && self.user_properties.is_empty();
        (!empty).then(|| PublishProperties {
            payload_format_indicator: self.payload_format_indicator,
            content_type: self.content_type,
            response_topic: self.response_topic,
            correlation_data: self.correlation_data.and_then(|data| STANDARD.decode(data).ok()).map(Bytes::from),
            user_properties: self.user_properties,
            ..PublishProperties::default()
        })
    }
}
