//! Retained messages of the plain-MQTT namespace as the gateway lets them
//! through, handed to whoever keeps them across restarts (the binary
//! stores them in the database; rumqttd keeps them in memory only).
use bytes::Bytes;
use rumqttd::protocol::{PublishProperties, QoS};

/// A retained PUBLISH the router accepted (an empty payload clears it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedMessage {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub properties: Option<PublishProperties>,
}

/// Keeps retained messages; called in the order they were published, and
/// must not block (the gateway calls it from a client's session).
pub trait RetainedStore: Send + Sync + 'static {
    fn keep(&self, message: RetainedMessage);
}
