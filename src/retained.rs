//! The plain-MQTT namespace's retained messages, kept in the database so
//! they survive a restart: the gateway hands each one over as the router
//! takes it, a writer task stores them in order (batched, the last per
//! topic winning within a batch by order of writes), and at start every
//! stored one is published again, retained, before clients connect.
use std::sync::Arc;

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use chrono::Utc;
use mqchat_bridge::retained::{self, Retained};
use mqchat_bridge::DatabaseConnection;
use mqchat_broker::retained::{RetainedMessage, RetainedStore};
use mqchat_broker::PlatformPublisher;
use rumqttd::protocol::{Publish, PublishProperties};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Most messages written in one transaction.
const BATCH: usize = 512;

/// Hands retained messages to the writer task.
pub struct DatabaseRetained {
    writes: mpsc::UnboundedSender<RetainedMessage>,
}

impl RetainedStore for DatabaseRetained {
    fn keep(&self, message: RetainedMessage) {
        if self.writes.send(message).is_err() {
            tracing::error!("the retained-message writer stopped; a retained message is kept in memory only");
        }
    }
}

impl DatabaseRetained {
    /// Starts the writer task.
    pub fn start(db: DatabaseConnection) -> Arc<DatabaseRetained> {
        let (writes, mut queue) = mpsc::unbounded_channel::<RetainedMessage>();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![stored(first)];
                while batch.len() < BATCH {
                    match queue.try_recv() {
                        Ok(message) => batch.push(stored(message)),
                        Err(_) => break,
                    }
                }
                if let Err(error) = retained::save(&db, &batch, Utc::now()).await {
                    tracing::error!(%error, messages = batch.len(), "could not store retained messages; they are kept in memory only");
                }
            }
        });
        Arc::new(DatabaseRetained { writes })
    }
}

/// Publishes every stored retained message again (at start, before
/// clients connect); returns how many.
pub async fn restore(db: &DatabaseConnection, publisher: &PlatformPublisher) -> anyhow::Result<usize> {
    let now = Utc::now();
    let messages = retained::load(db, now).await.context("reading retained messages")?;
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
    Ok(messages.len())
}

fn stored(message: RetainedMessage) -> Retained {
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
