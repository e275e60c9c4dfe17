//! Wiring of the chat engine to MQTT: commands from the outboxes (rumqttd's
//! in-process link, or the external broker's connection) to the engine, and
//! the engine's output to topics.
use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use mqchat_bridge::commands::{Engine, Outlet, ReplyRoute};
use mqchat_broker::acl;
use mqchat_broker::embedded::{FeedMessage, TopicFeed};
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

/// Called once a command is answered (for a send: stored). External mode
/// acknowledges the command to the broker then.
pub type Done = Box<dyn FnOnce() + Send>;

/// One command read from an outbox.
pub struct Command {
    pub message: FeedMessage,
    pub done: Option<Done>,
}

/// Where commands come from: rumqttd's in-process link, or the external
/// broker's connection (`external`).
pub trait CommandSource: Send + 'static {
    fn next(&mut self) -> impl Future<Output = Option<Command>> + Send;
}

impl CommandSource for TopicFeed {
    async fn next(&mut self) -> Option<Command> {
        TopicFeed::next(self).await.map(|message| Command { message, done: None })
    }
}

impl CommandSource for mpsc::Receiver<Command> {
    async fn next(&mut self) -> Option<Command> {
        self.recv().await
    }
}

type Work = (String, String, Bytes, ReplyRoute, Option<Done>);

/// Reads commands until their source ends, spreading them over the workers.
pub async fn run(mut source: impl CommandSource, engine: Arc<Engine>) {
    let workers: Vec<mpsc::Sender<Work>> = (0..WORKERS)
        .map(|_| {
            let (tx, mut rx) = mpsc::channel::<Work>(WORKER_QUEUE);
            let engine = Arc::clone(&engine);
            tokio::spawn(async move {
                while let Some((project_id, user_id, payload, route, done)) = rx.recv().await {
                    engine.handle(&project_id, &user_id, &payload, route, done.unwrap_or_else(|| Box::new(|| {}))).await;
                }
            });
            tx
        })
        .collect();
    while let Some(Command { message, done }) = source.next().await {
        let Some((project_id, user_id)) = acl::parse_outbox_topic(&message.topic) else {
            if let Some(done) = done {
                done();
            }
            continue;
        };
        // The gateway let the command through only with a response topic
        // under the sender's own inbox.
        let route = match message.response_topic {
            Some(topic) => ReplyRoute::ResponseTopic { topic, correlation_data: message.correlation_data.map(|data| data.to_vec()) },
            None => ReplyRoute::Inbox,
        };
        let mut hasher = DefaultHasher::new();
        (project_id, user_id).hash(&mut hasher);
        let worker = &workers[(hasher.finish() % WORKERS as u64) as usize];
        if worker.send((project_id.to_owned(), user_id.to_owned(), message.payload, route, done)).await.is_err() {
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
