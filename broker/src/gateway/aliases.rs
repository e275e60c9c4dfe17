//! MQTT 5 topic aliases (§3.3.2.3.4), in both directions, kept by the
//! gateway: a client's aliases are resolved before the ACL reads the topic
//! (rumqttd never sees one), and aliases towards a client are chosen per
//! topic name as the router's packets are encoded (rumqttd's own are per
//! subscription filter, which is wrong for a wildcard filter).
use std::collections::HashMap;

use bytes::Bytes;
use rumqttd::protocol::{Publish, PublishProperties};

/// Aliases a client may set towards the gateway (CONNACK "topic alias maximum").
pub(crate) const INBOUND_MAXIMUM: u16 = 10;

/// The client's aliases, alias → topic name.
#[derive(Default)]
pub(crate) struct Inbound {
    topics: HashMap<u16, Bytes>,
}

/// Why a client's alias cannot be used; the connection ends with
/// DISCONNECT 0x94 "topic alias invalid" (§3.3.2.3.4).
#[derive(Debug, thiserror::Error)]
pub(crate) enum AliasError {
    #[error("topic alias {0} is 0 or above the maximum")]
    OutOfRange(u16),
    #[error("topic alias {0} was never set")]
    Unknown(u16),
}

impl Inbound {
    /// Replaces an alias with its topic (or records a new one), and takes
    /// the alias out of the properties.
    pub(crate) fn resolve(&mut self, publish: &mut Publish, properties: &mut Option<PublishProperties>) -> Result<(), AliasError> {
        let Some(alias) = properties.as_mut().and_then(|properties| properties.topic_alias.take()) else {
            return Ok(());
        };
        if alias == 0 || alias > INBOUND_MAXIMUM {
            return Err(AliasError::OutOfRange(alias));
        }
        if publish.topic.is_empty() {
            publish.topic = self.topics.get(&alias).cloned().ok_or(AliasError::Unknown(alias))?;
        } else {
            self.topics.insert(alias, publish.topic.clone());
        }
        Ok(())
    }
}

/// Aliases the gateway set towards the client, topic name → alias; the
/// first `maximum` topics get one and keep it.
pub(crate) struct Outbound {
    maximum: u16,
    aliases: HashMap<Bytes, u16>,
}

impl Outbound {
    /// `maximum`: the client's CONNECT "topic alias maximum" (0: none).
    pub(crate) fn new(maximum: u16) -> Self {
        Outbound { maximum, aliases: HashMap::new() }
    }

    /// Uses an alias for the publish's topic where one is set, or sets one
    /// while there is room; returns the topic of a newly set alias (which
    /// `unset` takes back if the publish is not sent after all).
    pub(crate) fn apply(&mut self, publish: &mut Publish, properties: &mut Option<PublishProperties>) -> Option<Bytes> {
        if self.maximum == 0 || publish.topic.is_empty() {
            return None;
        }
        let (alias, new) = match self.aliases.get(&publish.topic) {
            Some(&alias) => {
                publish.topic = Bytes::new();
                (alias, None)
            }
            None if self.aliases.len() < usize::from(self.maximum) => {
                let alias = self.aliases.len() as u16 + 1;
                self.aliases.insert(publish.topic.clone(), alias);
                (alias, Some(publish.topic.clone()))
            }
            None => return None,
        };
        properties.get_or_insert_with(PublishProperties::default).topic_alias = Some(alias);
        new
    }

    /// Takes back the alias `apply` just set for `topic`: the client never
    /// learnt it.
    pub(crate) fn unset(&mut self, topic: &Bytes) {
        self.aliases.remove(topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_alias(topic: &str, alias: u16) -> (Publish, Option<PublishProperties>) {
        let properties = PublishProperties { topic_alias: Some(alias), ..Default::default() };
        (Publish::new(topic.to_owned(), "x".to_owned(), false), Some(properties))
    }

    #[test]
    fn a_client_sets_then_uses_an_alias() {
        let mut inbound = Inbound::default();
        let (mut publish, mut properties) = with_alias("a/b", 3);
        inbound.resolve(&mut publish, &mut properties).unwrap();
        assert_eq!(properties.unwrap().topic_alias, None, "the router never sees an alias");
        let (mut publish, mut properties) = with_alias("", 3);
        inbound.resolve(&mut publish, &mut properties).unwrap();
        assert_eq!(&publish.topic[..], b"a/b");
        let (mut publish, mut properties) = with_alias("", 4);
        assert!(matches!(inbound.resolve(&mut publish, &mut properties), Err(AliasError::Unknown(4))));
        let (mut publish, mut properties) = with_alias("a", INBOUND_MAXIMUM + 1);
        assert!(matches!(inbound.resolve(&mut publish, &mut properties), Err(AliasError::OutOfRange(_))));
    }

    #[test]
    fn the_gateway_aliases_topics_up_to_the_clients_maximum() {
        let mut outbound = Outbound::new(1);
        let send = |outbound: &mut Outbound, topic: &str| {
            let (mut publish, mut properties) = (Publish::new(topic.to_owned(), "x".to_owned(), false), None);
            outbound.apply(&mut publish, &mut properties);
            (String::from_utf8(publish.topic.to_vec()).unwrap(), properties.and_then(|p| p.topic_alias))
        };
        assert_eq!(send(&mut outbound, "a"), ("a".into(), Some(1)), "first: topic and the new alias");
        assert_eq!(send(&mut outbound, "a"), ("".into(), Some(1)), "then the alias alone");
        assert_eq!(send(&mut outbound, "b"), ("b".into(), None), "no room left: the topic alone");
        assert_eq!(send(&mut Outbound::new(0), "a"), ("a".into(), None));
        let mut outbound = Outbound::new(1);
        let (mut publish, mut properties) = (Publish::new("a".to_owned(), "x".to_owned(), false), None);
        let new = outbound.apply(&mut publish, &mut properties).unwrap();
        outbound.unset(&new);
        assert_eq!(send(&mut outbound, "a"), ("a".into(), Some(1)), "an alias never sent is set again");
    }
}
