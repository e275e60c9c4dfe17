//! The embedded rumqttd: started on loopback only, on a port picked here,
//! with a router sized on purpose, plus the platform's in-process link.
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::settings::RouterSettings;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("no free loopback port for rumqttd: {0}")]
    NoPort(std::io::Error),
    #[error("cannot open the platform link to rumqttd: {0}")]
    Link(String),
    #[error("rumqttd did not start listening on {0}")]
    NotListening(SocketAddr),
    #[error("cannot start rumqttd's thread: {0}")]
    Thread(std::io::Error),
}

/// Every user's outbox: what the command link subscribes to.
pub const OUTBOX_FILTER: &str = "chat/+/user/+/outbox";

/// Messages clients published on their outboxes, read in-process.
pub struct CommandFeed {
    link: rumqttd::local::LinkRx,
}

impl CommandFeed {
    /// The next (topic, payload); `None` once rumqttd is gone.
    pub async fn next(&mut self) -> Option<(String, bytes::Bytes)> {
        loop {
            match self.link.next().await {
                Ok(Some(rumqttd::Notification::Forward(forward))) => {
                    let topic = String::from_utf8_lossy(&forward.publish.topic).into_owned();
                    return Some((topic, forward.publish.payload));
                }
                // The router pauses a link whose queue it filled; ask to resume.
                Ok(Some(rumqttd::Notification::Unschedule)) => {
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

/// A running rumqttd: where the gateway connects, and the platform's link.
pub struct EmbeddedBroker {
    /// Loopback addresses rumqttd listens on (one router behind them all);
    /// never exposed to clients.
    pub upstream_addrs: Vec<SocketAddr>,
    /// In-process publisher for the platform (the bridge): no socket, no auth.
    pub publisher: PlatformPublisher,
    /// Commands from every user's outbox, for the chat engine.
    pub commands: CommandFeed,
}

/// Publishes as the platform, straight into rumqttd's router.
#[derive(Clone)]
pub struct PlatformPublisher {
    link: Arc<Mutex<rumqttd::local::LinkTx>>,
}

impl PlatformPublisher {
    /// Publishes `payload` on `topic` (QoS 0, not retained).
    pub fn publish(&self, topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> Result<(), String> {
        let mut link = self.link.lock().map_err(|_| "platform link poisoned".to_owned())?;
        link.publish(topic.into(), payload.into()).map(|_| ()).map_err(|e| e.to_string())
    }

    /// Publishes `payload` on `topic` as the topic's retained message (QoS 0):
    /// what a late subscriber gets at once.
    pub fn publish_retained(&self, topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> Result<(), String> {
        let publish = rumqttd::protocol::Publish::new(Bytes::from(topic.into()), Bytes::from(payload.into()), true);
        let mut link = self.link.lock().map_err(|_| "platform link poisoned".to_owned())?;
        // `LinkTx::send` never waits (it queues and wakes the router), so its
        // future is ready on the first poll.
        match link.send(rumqttd::protocol::Packet::Publish(publish, None)).now_or_never() {
            Some(result) => result.map(|_| ()).map_err(|e| e.to_string()),
            None => Err("the router link was not ready".to_owned()),
        }
    }
}

impl EmbeddedBroker {
    /// Starts rumqttd on its own thread (`Broker::start` blocks) and waits
    /// until it accepts connections.
    pub fn start(router: &RouterSettings, max_connections: usize, max_packet_size: usize) -> Result<Self, EmbeddedError> {
        let upstream_addrs = free_loopback_ports(router.upstream_listeners.max(1))?;
        let connections = ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: max_packet_size,
            max_inflight_count: router.max_inflight_count,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        };
        let servers = upstream_addrs
            .iter()
            .enumerate()
            .map(|(index, addr)| {
                let name = format!("upstream-{index}");
                let server = ServerSettings {
                    name: name.clone(),
                    listen: *addr,
                    tls: None,
                    next_connection_delay_ms: 0,
                    connections: connections.clone(),
                };
                (name, server)
            })
            .collect::<HashMap<_, _>>();
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
            },
            v4: Some(servers),
            ..Default::default()
        };
        let mut broker = Broker::new(config);
        let (link_tx, mut link_rx) = broker.link("mqchat-platform").map_err(|e| EmbeddedError::Link(e.to_string()))?;
        let (mut command_tx, command_rx) = broker.link("mqchat-commands").map_err(|e| EmbeddedError::Link(e.to_string()))?;
        command_tx.subscribe(OUTBOX_FILTER).map_err(|e| EmbeddedError::Link(e.to_string()))?;
        std::thread::Builder::new()
            .name("rumqttd".into())
            .spawn(move || {
                if let Err(error) = broker.start() {
                    tracing::error!(%error, "embedded rumqttd stopped");
                }
            })
            .map_err(EmbeddedError::Thread)?;
        // The platform link only publishes; drain what the router sends it.
        std::thread::Builder::new()
            .name("platform-link".into())
            .spawn(move || while link_rx.recv().is_ok() {})
            .map_err(EmbeddedError::Thread)?;
        for addr in &upstream_addrs {
            wait_until_listening(*addr)?;
        }
        // The subscription lives in the router; the sending half is not needed.
        drop(command_tx);
        Ok(EmbeddedBroker {
            upstream_addrs,
            publisher: PlatformPublisher { link: Arc::new(Mutex::new(link_tx)) },
            commands: CommandFeed { link: command_rx },
        })
    }
}

/// rumqttd binds its own listeners, so ports are found by binding and
/// releasing them (all held until all are picked, so they differ); another
/// process could take one in between, which start-up reports as `NotListening`.
fn free_loopback_ports(count: usize) -> Result<Vec<SocketAddr>, EmbeddedError> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(EmbeddedError::NoPort)?;
    listeners.iter().map(|listener| listener.local_addr().map_err(EmbeddedError::NoPort)).collect()
}

fn wait_until_listening(addr: SocketAddr) -> Result<(), EmbeddedError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(EmbeddedError::NotListening(addr))
}
