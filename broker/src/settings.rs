//! Limits and sizing of the gateway and of the embedded rumqttd router.
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Per-connection limits the gateway enforces on clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// Largest MQTT packet accepted from a client, in bytes; larger ones close the connection.
    pub max_packet_size: usize,
    /// Live client connections at most; the next CONNECT gets CONNACK 3.
    pub max_connections: usize,
    /// PUBLISH packets per second per connection (0: unlimited). Faster
    /// clients are slowed down (not dropped): the gateway stops reading them.
    pub max_publish_rate: u32,
    /// Time a new connection has to send its CONNECT.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest keep-alive a client may ask for, in seconds (Mosquitto's
    /// `max_keepalive`): an MQTT 5 client asking for more, or for none, is
    /// told this one in its CONNACK; an MQTT 3.1.1 client asking for more
    /// is refused (it cannot be told).
    pub max_keepalive: u16,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            max_packet_size: 256 * 1024,
            max_connections: 100_000,
            max_publish_rate: 1000,
            connect_timeout: Duration::from_secs(10),
            max_keepalive: u16::MAX,
        }
    }
}

/// Sizing of rumqttd's router (each topic keeps a log of segments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterSettings {
    /// Bytes per segment of a topic's log.
    pub max_segment_size: usize,
    /// Segments kept per topic before the oldest is dropped.
    pub max_segment_count: usize,
    /// Packets rumqttd writes to one connection per wake-up.
    pub max_outgoing_packet_count: u64,
    /// Messages a persistent session finds queued per subscription when
    /// it resumes, at most (Mosquitto's `max_queued_messages`); the oldest
    /// beyond are dropped, with a warning naming the client. 0: no bound
    /// but the topic's log (`max_segment_size × max_segment_count`).
    pub max_queued_messages: u64,
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            max_segment_size: 4 * 1024 * 1024,
            max_segment_count: 8,
            max_outgoing_packet_count: 200,
            max_queued_messages: 1000,
        }
    }
}
