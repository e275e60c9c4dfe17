//! Last wills: the one a client set (checked: its own status topic only)
//! or the gateway's default `{"status":"offline"}`, published when the
//! connection ends without DISCONNECT — at once, or after MQTT 5's will
//! delay interval unless a connection with the same client id came back
//! first (§3.1.3.2.2).
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rumqttd::protocol::{LastWill, LastWillProperties, Publish, PublishProperties, QoS};

use crate::embedded::PlatformPublisher;
use crate::persistence::{PlainState, RetainedMessage, StateChange};

/// Packet id of a will the gateway publishes at QoS 1 through the
/// connection's own link (closed right after, so it cannot meet another
/// packet's id).
const WILL_PKID: u16 = 1;

/// A connection's will, ready to publish.
pub(crate) struct Will {
    pub(crate) topic: Bytes,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) properties: Option<PublishProperties>,
    /// MQTT 5 will delay interval, already capped by the session expiry.
    pub(crate) delay: Duration,
}

impl Will {
    pub(crate) fn from_connect(will: LastWill, properties: Option<LastWillProperties>, session_expiry: Duration) -> Self {
        let delay = properties
            .as_ref()
            .and_then(|properties| properties.delay_interval)
            .map_or(Duration::ZERO, |seconds| Duration::from_secs(u64::from(seconds)).min(session_expiry));
        let properties = properties.map(|properties| PublishProperties {
            payload_format_indicator: properties.payload_format_indicator,
            message_expiry_interval: properties.message_expiry_interval,
            topic_alias: None,
            response_topic: properties.response_topic,
            correlation_data: properties.correlation_data,
            user_properties: properties.user_properties,
            subscription_identifiers: Vec::new(),
            content_type: properties.content_type,
        });
        Will { topic: will.topic, payload: will.message, qos: will.qos, retain: will.retain, properties, delay }
    }

    /// The gateway's own will for a client that set none.
    pub(crate) fn offline(status_topic: String) -> Self {
        Will {
            topic: Bytes::from(status_topic),
            payload: Bytes::from_static(br#"{"status":"offline"}"#),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: None,
            delay: Duration::ZERO,
        }
    }

    /// The will as a retained message to keep.
    pub(crate) fn retained(&self) -> RetainedMessage {
        RetainedMessage {
            topic: String::from_utf8_lossy(&self.topic).into_owned(),
            payload: self.payload.clone(),
            qos: self.qos,
            properties: self.properties.clone(),
        }
    }

    /// The PUBLISH for the connection's own link: a QoS 2 will goes out at
    /// QoS 1, the link is gone before a PUBREL could follow.
    pub(crate) fn on_link(&self) -> (Publish, Option<PublishProperties>) {
        let qos = if self.qos == QoS::AtMostOnce { QoS::AtMostOnce } else { QoS::AtLeastOnce };
        let publish = Publish {
            dup: false,
            qos,
            retain: self.retain,
            topic: self.topic.clone(),
            pkid: if qos == QoS::AtMostOnce { 0 } else { WILL_PKID },
            payload: self.payload.clone(),
        };
        (publish, self.properties.clone())
    }
}

/// Delayed wills waiting, by the connection's client id in the router.
#[derive(Default)]
pub(crate) struct PendingWills {
    next: AtomicU64,
    pending: Mutex<HashMap<String, u64>>,
}

impl PendingWills {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        // Only plain inserts and removes happen under this lock.
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A connection with this client id came back: its will is not sent.
    pub(crate) fn cancel(&self, client_id: &str) {
        self.pending().remove(client_id);
    }

    /// Publishes `will` after its delay unless `cancel` is called first
    /// (and then hands it to `retained`, when given, to keep).
    pub(crate) fn schedule(
        self: &Arc<Self>,
        client_id: String,
        will: Will,
        publisher: PlatformPublisher,
        retained: Option<(Arc<dyn PlainState>, RetainedMessage)>,
    ) {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        self.pending().insert(client_id.clone(), ticket);
        let wills = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(will.delay).await;
            let due = {
                let mut pending = wills.pending();
                let due = pending.get(&client_id) == Some(&ticket);
                if due {
                    pending.remove(&client_id);
                }
                due
            };
            if due {
                let publish = Publish::new(will.topic, will.payload, will.retain);
                if let Err(error) = publisher.publish_packet(publish, will.properties) {
                    tracing::warn!(%error, "a delayed will could not be published");
                }
                if let Some((state, message)) = retained {
                    state.record(StateChange::Retained(message));
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_is_capped_by_the_session_expiry() {
        let last_will = LastWill { topic: "t".into(), message: "m".into(), qos: QoS::ExactlyOnce, retain: true };
        let properties = LastWillProperties {
            delay_interval: Some(60),
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: Some("text/plain".into()),
            response_topic: None,
            correlation_data: None,
            user_properties: vec![],
        };
        let will = Will::from_connect(last_will, Some(properties), Duration::from_secs(5));
        assert_eq!(will.delay, Duration::from_secs(5));
        let (publish, properties) = will.on_link();
        assert_eq!((publish.qos, publish.pkid, publish.retain), (QoS::AtLeastOnce, WILL_PKID, true));
        assert_eq!(properties.unwrap().content_type.as_deref(), Some("text/plain"));
    }
}
