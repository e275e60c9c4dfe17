//! Wiring of the chat engine to MQTT: commands from rumqttd's outbox
//! subscription to the engine, and the engine's output to topics.
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use mqchat_bridge::commands::{Engine, Outlet, ReplyRoute};
use mqchat_broker::acl;
use mqchat_broker::embedded::TopicFeed;
use mqchat_broker::registry::Control;
use mqchat_broker::{PlatformPublisher, Registry};
use tokio::sync::mpsc;

/// Command workers. One user's commands always go to the same worker and
/// run in order; different users run in parallel.
const WORKERS: usize = 64;
/// Commands queued per worker before the feed waits.
const WORKER_QUEUE: usize = 256;

/// Publishes the engine's output through rumqttd's in-process link, and
/// cuts live subscriptions through the gateway's registry.
pub struct MqttOutlet {
    pub publisher: PlatformPublisher,
    pub registry: Arc<Registry>,
}

impl Outlet for MqttOutlet {
    fn to_conversation(&self, project_id: &str, conversation_id: &str, payload: String) {
        self.publish(acl::conversation_topic(project_id, conversation_id), payload);
    }

    fn to_user(&self, project_id: &str, user_id: &str, payload: String) {
        self.publish(acl::inbox_topic(project_id, user_id), payload);
    }

    fn revoke(&self, project_id: &str, user_id: &str, conversation_id: &str) {
        self.registry.revoke_conversation(project_id, user_id, conversation_id);
    }

    fn disconnect(&self, project_id: &str, user_id: &str, reason: &str) {
        self.registry.send(project_id, user_id, Control::Close { reason: reason.to_owned() });
    }

    fn to_response_topic(&self, topic: &str, correlation_data: Option<&[u8]>, payload: String) {
        if let Err(error) = self.publisher.publish_response(topic, correlation_data, payload) {
            tracing::error!(%error, "could not publish a command's response");
        }
    }

    fn presence(&self, project_id: &str, user_id: &str, payload: String) {
        if let Err(error) = self.publisher.publish_retained(acl::presence_topic(project_id, user_id), payload) {
            tracing::error!(%error, "could not publish a presence state");
        }
    }
}

impl MqttOutlet {
    fn publish(&self, topic: String, payload: String) {
        if let Err(error) = self.publisher.publish(topic, payload) {
            tracing::error!(%error, "could not publish the chat engine's output");
        }
    }
}

/// Reads commands until rumqttd stops, spreading them over the workers.
pub async fn run(mut feed: TopicFeed, engine: Arc<Engine>) {
    let workers: Vec<mpsc::Sender<(String, String, Bytes, ReplyRoute)>> = (0..WORKERS)
        .map(|_| {
            let (tx, mut rx) = mpsc::channel::<(String, String, Bytes, ReplyRoute)>(WORKER_QUEUE);
            let engine = Arc::clone(&engine);
            tokio::spawn(async move {
                while let Some((project_id, user_id, payload, route)) = rx.recv().await {
                    engine.handle(&project_id, &user_id, &payload, route).await;
                }
            });
            tx
        })
        .collect();
    while let Some(message) = feed.next().await {
        let Some((project_id, user_id)) = acl::parse_outbox_topic(&message.topic) else { continue };
        // The gateway let the command through only with a response topic
        // under the sender's own inbox.
        let route = match message.response_topic {
            Some(topic) => ReplyRoute::ResponseTopic { topic, correlation_data: message.correlation_data.map(|data| data.to_vec()) },
            None => ReplyRoute::Inbox,
        };
        let mut hasher = DefaultHasher::new();
        (project_id, user_id).hash(&mut hasher);
        let worker = &workers[(hasher.finish() % WORKERS as u64) as usize];
        if worker.send((project_id.to_owned(), user_id.to_owned(), message.payload, route)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    /// The gateway names the typing event itself (it stamps every typing
    /// publish without the engine); the catalogue must agree.
    #[test]
    fn the_gateway_and_the_catalogue_name_typing_alike() {
        assert_eq!(mqchat_broker::gateway::TYPING_EVENT, mqchat_bridge::events::ChatEvent::Typing.as_str());
    }
}
