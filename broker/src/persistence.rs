//! What the plain-MQTT namespace keeps across restarts — retained messages
//! and persistent sessions (their expiry and subscriptions) — as the
//! gateway sees them change, handed in order to whoever stores them (the
//! binary, in the database). rumqttd keeps both in memory only. Chat
//! clients need neither: their messages are stored by the chat engine and
//! fetched again with `history.sync`.
use std::time::Duration;

use bytes::Bytes;
use rumqttd::protocol::{PublishProperties, QoS};
use serde::{Deserialize, Serialize};

/// A retained PUBLISH the router accepted (an empty payload clears it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedMessage {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub properties: Option<PublishProperties>,
}

/// A subscription of a persistent session, with its MQTT 5 options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSubscription {
    pub filter: String,
    pub qos: u8,
    #[serde(default)]
    pub no_local: bool,
    #[serde(default)]
    pub retain_as_published: bool,
    #[serde(default)]
    pub subscription_id: Option<usize>,
}

/// One change, in the order the gateway saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    Retained(RetainedMessage),
    /// A connection with a session that outlives it (`expiry` `None`: for
    /// ever); `clean`: any earlier session was discarded.
    SessionStarted { client_id: String, expiry: Option<Duration>, clean: bool },
    Subscribed { client_id: String, subscriptions: Vec<StoredSubscription> },
    Unsubscribed { client_id: String, filters: Vec<String> },
    /// Its connection ended; the expiry counts from now.
    SessionEnded { client_id: String },
    /// A connection whose session ends with it: nothing of it is kept.
    SessionDropped { client_id: String },
}

/// Keeps the changes; called in order, and must not block (the gateway
/// calls it from a client's session).
pub trait PlainState: Send + Sync + 'static {
    fn record(&self, change: StateChange);
}
