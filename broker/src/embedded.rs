//! The embedded rumqttd: its router runs on a thread of its own, sized on
//! purpose, and everyone reaches it through in-process links — the
//! gateway one per client connection, the platform one to publish and one
//! to read the users' outboxes. rumqttd opens no socket of its own.
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::FutureExt;
use rumqttd::local::{LinkBuilder, LinkRx};
use rumqttd::{Broker, Config, Notification, RouterConfig};

use crate::persistence::StoredSubscription;
use crate::settings::RouterSettings;
use rumqttd::protocol::{
    Disconnect, DisconnectReasonCode, Filter, Packet, QoS, RetainForwardRule, Subscribe, SubscribeProperties,
};

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("cannot open a link to rumqttd's router: {0}")]
    Link(String),
    #[error("cannot start the platform link's thread: {0}")]
    Thread(std::io::Error),
}

/// Every user's outbox: what the command feed subscribes to.
pub const OUTBOX_FILTER: &str = "chat/+/user/+/outbox";

/// Where links to rumqttd's router are opened.
#[derive(Clone)]
pub struct RouterHandle {
    broker: Arc<Broker>,
}

impl RouterHandle {
    pub(crate) fn link_builder<'a>(&self, client_id: &'a str) -> LinkBuilder<'a> {
        self.broker.link_builder(client_id)
    }

    /// Every message published on `filter` from now on, read through a link
    /// of its own named `client_id` (the platform's command feed; tests and
    /// diagnostics watching what the gateway lets through).
    pub async fn subscribe(&self, client_id: &str, filter: &str) -> Result<TopicFeed, EmbeddedError> {
        let link_error = |error: rumqttd::local::LinkError| EmbeddedError::Link(error.to_string());
        let (mut link_tx, link_rx, _connack) = self.link_builder(client_id).build_async().await.map_err(link_error)?;
        link_tx.subscribe(filter).map_err(link_error)?;
        // The subscription lives in the router; the sending half is not needed.
        drop(link_tx);
        Ok(TopicFeed { link: link_rx })
    }
}

impl RouterHandle {
    /// Puts back a persistent session of the plain namespace after a
    /// restart: a link with its client id subscribes its filters (without
    /// retained messages: the client had those) and goes away, leaving the
    /// session to queue what matches until the client returns, for
    /// `expiry_secs` (`u32::MAX`: for ever).
    pub async fn restore_session(&self, client_id: &str, expiry_secs: u32, subscriptions: &[StoredSubscription]) -> Result<(), EmbeddedError> {
        let link_error = |error: rumqttd::local::LinkError| EmbeddedError::Link(error.to_string());
        let build = self.link_builder(client_id).clean_session(false).session_expiry(expiry_secs).dynamic_filters(true).build_async();
        let (mut link_tx, _link_rx, _connack) = build.await.map_err(link_error)?;
        let mut packets = Vec::new();
        // rumqttd keeps one subscription identifier per SUBSCRIBE: one
        // SUBSCRIBE per stored subscription.
        for (index, subscription) in subscriptions.iter().enumerate() {
            let filter = Filter {
                path: subscription.filter.clone(),
                qos: rumqttd::protocol::qos(subscription.qos).unwrap_or(QoS::AtMostOnce),
                nolocal: subscription.no_local,
                preserve_retain: subscription.retain_as_published,
                retain_forward_rule: RetainForwardRule::Never,
            };
            let properties = subscription.subscription_id.map(|id| SubscribeProperties { id: Some(id), user_properties: Vec::new() });
            let pkid = u16::try_from(index % usize::from(u16::MAX) + 1).unwrap_or(1);
            packets.push(Packet::Subscribe(Subscribe { pkid, filters: vec![filter] }, properties));
        }
        packets.push(Packet::Disconnect(Disconnect { reason_code: DisconnectReasonCode::NormalDisconnection }, None));
        link_tx.buffer().extend(packets);
        link_tx.notify().await.map_err(link_error)
    }
}

/// Messages published on a filter, read in-process.
pub struct TopicFeed {
    link: LinkRx,
}

/// One message read from a `TopicFeed`.
#[derive(Debug, Clone)]
pub struct FeedMessage {
    pub topic: String,
    pub payload: Bytes,
    /// MQTT 5 request/response: where the publisher wants an answer, and
    /// the correlation data to answer with.
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
}

impl TopicFeed {
    /// The next message; `None` once rumqttd is gone.
    pub async fn next(&mut self) -> Option<FeedMessage> {
        loop {
            match self.link.next().await {
                Ok(Some(Notification::Forward(forward))) => {
                    let (response_topic, correlation_data) = match forward.properties {
                        Some(properties) => (properties.response_topic, properties.correlation_data),
                        None => (None, None),
                    };
                    return Some(FeedMessage {
                        topic: String::from_utf8_lossy(&forward.publish.topic).into_owned(),
                        payload: forward.publish.payload,
                        response_topic,
                        correlation_data,
                    });
                }
                // The router pauses a link whose queue it filled; ask to resume.
                Ok(Some(Notification::Unschedule)) => {
                    if self.link.wake().await.is_err() {
                        return None;
                    }
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

/// A running rumqttd router and the platform's links to it.
pub struct EmbeddedBroker {
    /// For the gateway's client links.
    pub router: RouterHandle,
    /// In-process publisher for the platform (the bridge): no socket, no auth.
    pub publisher: PlatformPublisher,
    /// Commands from every user's outbox, for the chat engine.
    pub commands: TopicFeed,
}

/// Where readiness probes publish: a topic outside every namespace that
/// the ACL lets a client reach.
pub const PROBE_TOPIC: &str = "$mqchat/probe";

/// Publishes as the platform, straight into rumqttd's router.
#[derive(Clone)]
pub struct PlatformPublisher {
    link: Arc<Mutex<rumqttd::local::LinkTx>>,
}

impl PlatformPublisher {
    /// Whether the router still takes messages: an empty publish on
    /// `PROBE_TOPIC` fails once the router thread is gone.
    pub fn probe(&self) -> Result<(), String> {
        self.publish(PROBE_TOPIC, Vec::new())
    }

    /// Publishes `payload` on `topic` (QoS 0, not retained).
    pub fn publish(&self, topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> Result<(), String> {
        let mut link = self.link.lock().map_err(|_| "platform link poisoned".to_owned())?;
        link.publish(topic.into(), payload.into()).map(|_| ()).map_err(|e| e.to_string())
    }

    /// Publishes an MQTT 5 response: `payload` on `topic` with the
    /// request's correlation data (QoS 0, not retained).
    pub fn publish_response(&self, topic: &str, correlation_data: Option<&[u8]>, payload: impl Into<Vec<u8>>) -> Result<(), String> {
        let publish = rumqttd::protocol::Publish::new(Bytes::from(topic.to_owned()), Bytes::from(payload.into()), false);
        let properties = rumqttd::protocol::PublishProperties {
            correlation_data: correlation_data.map(Bytes::copy_from_slice),
            content_type: Some("application/json".into()),
            payload_format_indicator: Some(1),
            ..Default::default()
        };
        self.send(rumqttd::protocol::Packet::Publish(publish, Some(properties)))
    }

    /// Publishes `publish` (QoS 0 on the platform's link) with its MQTT 5
    /// properties: delayed wills, retained messages restored at start.
    pub fn publish_packet(&self, publish: rumqttd::protocol::Publish, properties: Option<rumqttd::protocol::PublishProperties>) -> Result<(), String> {
        self.send(rumqttd::protocol::Packet::Publish(publish, properties))
    }

    fn send(&self, packet: rumqttd::protocol::Packet) -> Result<(), String> {
        let mut link = self.link.lock().map_err(|_| "platform link poisoned".to_owned())?;
        // `LinkTx::send` never waits (it queues and wakes the router), so its
        // future is ready on the first poll.
        match link.send(packet).now_or_never() {
            Some(result) => result.map(|_| ()).map_err(|e| e.to_string()),
            None => Err("the router link was not ready".to_owned()),
        }
    }

    /// Publishes `payload` on `topic` as the topic's retained message (QoS 0):
    /// what a late subscriber gets at once.
    pub fn publish_retained(&self, topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> Result<(), String> {
        let publish = rumqttd::protocol::Publish::new(Bytes::from(topic.into()), Bytes::from(payload.into()), true);
        self.send(rumqttd::protocol::Packet::Publish(publish, None))
    }
}

impl EmbeddedBroker {
    /// Starts rumqttd's router (on its own thread) and opens the platform's links.
    pub async fn start(router: &RouterSettings, max_connections: usize) -> Result<Self, EmbeddedError> {
        let config = Config {
            id: 0,
            router: RouterConfig {
                // Room for every client plus the platform's own links.
                max_connections: max_connections + 16,
                max_outgoing_packet_count: router.max_outgoing_packet_count,
                max_segment_size: router.max_segment_size,
                max_segment_count: router.max_segment_count,
                custom_segment: None,
                initialized_filters: None,
                shared_subscriptions_strategy: Default::default(),
                max_queued_messages: (router.max_queued_messages > 0).then_some(router.max_queued_messages),
            },
            ..Default::default()
        };
        let handle = RouterHandle { broker: Arc::new(Broker::new(config)) };
        let (link_tx, mut link_rx, _connack) = handle
            .link_builder("mqchat-platform")
            .build_async()
            .await
            .map_err(|e| EmbeddedError::Link(e.to_string()))?;
        // The platform link only publishes; drain what the router sends it.
        std::thread::Builder::new()
            .name("platform-link".into())
            .spawn(move || while link_rx.recv().is_ok() {})
            .map_err(EmbeddedError::Thread)?;
        let commands = handle.subscribe("mqchat-commands", OUTBOX_FILTER).await?;
        Ok(EmbeddedBroker {
            router: handle,
            publisher: PlatformPublisher { link: Arc::new(Mutex::new(link_tx)) },
            commands,
        })
    }
}
