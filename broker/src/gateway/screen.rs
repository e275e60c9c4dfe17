//! What the gateway decides about a client's bytes before anything reaches
//! rumqttd's router, without a socket or a router: the CONNECT's protocol
//! level, every packet framed and checked as MQTT 3.1.1 or 5 — the version
//! the CONNECT names (`frames`), topic aliases resolved, every
//! topic and filter judged by the ACL for one fixed user, typing payloads
//! stamped, and the gateway's own answers encoded. Coverage-guided fuzzing
//! drives this with arbitrary bytes (`fuzz/`), and a test replays what it
//! found; the sessions run the same functions on live connections.
use bytes::BytesMut;
use rumqttd::protocol::Packet;

use super::frames::{self, Version};
use super::aliases;
use mqchat_access::typing;
use crate::acl;
use crate::authorizer::Principal;
use crate::identity::{IdentityClaims, UserId};

/// Why the gateway would close the connection on these bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed(pub String);

/// Screens `bytes` as one client's stream; returns how many whole packets
/// were read before the stream ran out, or why the connection would close.
pub fn screen_client_bytes(bytes: &[u8], max_packet_size: usize) -> Result<usize, Closed> {
    let claims = IdentityClaims { sub: "alice".into(), name: None, email: None, avatar_url: None, iat: 0, exp: 0, iss: None };
    let user_id = UserId::parse(&claims.sub).map_err(|error| Closed(error.to_string()))?;
    let principal = Principal { project_id: "prj_screen".into(), user_id, claims };
    let subject = principal.subject();
    let version = match frames::connect_protocol_level(bytes) {
        Some(5) => Version::V5,
        _ => Version::V4,
    };
    let mut aliases = aliases::Inbound::default();
    let mut buf = BytesMut::from(bytes);
    let mut read = 0;
    while let Some(packet) = frames::next_packet(&mut buf, max_packet_size, version).map_err(|error| Closed(error.to_string()))? {
        read += 1;
        match packet {
            Packet::Connect(_, _, Some(will), _, _) => {
                let topic = std::str::from_utf8(&will.topic).map_err(|_| Closed("will topic is not UTF-8".into()))?;
                let _ = acl::will(subject, topic);
            }
            Packet::Publish(mut publish, mut properties) => {
                aliases.resolve(&mut publish, &mut properties).map_err(|error| Closed(error.to_string()))?;
                let topic = std::str::from_utf8(&publish.topic).map_err(|_| Closed("topic is not UTF-8".into()))?;
                let _ = acl::publish(subject, topic);
                if let Some(response_topic) = properties.as_ref().and_then(|properties| properties.response_topic.as_deref()) {
                    let _ = acl::response_topic(subject, response_topic);
                }
                if let Some(conversation_id) = typing::conversation_of(topic) {
                    let _ = typing::stamp(&principal, conversation_id, &publish.payload, chrono::Utc::now());
                }
                let _ = frames::puback(publish.pkid, Some("refused"), version);
            }
            Packet::Subscribe(subscribe, _) => {
                let codes = subscribe.filters.iter().map(|filter| match acl::subscribe(subject, &filter.path) {
                    acl::Decision::Deny(_) => rumqttd::protocol::SubscribeReasonCode::Failure,
                    _ => rumqttd::protocol::SubscribeReasonCode::Success(filter.qos),
                });
                let _ = frames::suback(subscribe.pkid, codes.collect(), version);
            }
            _ => {}
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_and_a_subscribe_are_read_and_garbage_closes() {
        let connect = [0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0];
        let subscribe = [0x82, 6, 0, 1, 0, 1, b'#', 0];
        assert_eq!(screen_client_bytes(&[&connect[..], &subscribe[..]].concat(), 1024), Ok(2));
        assert!(screen_client_bytes(&[0x00, 0x00], 1024).is_err());
    }

    #[test]
    fn an_mqtt5_stream_is_read_as_mqtt5() {
        // CONNECT level 5 with no properties, then SUBSCRIBE with a
        // subscription identifier 1 and options "no local".
        let connect = [0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 0, 0, 0];
        let subscribe = [0x82, 9, 0, 1, 2, 0x0b, 1, 0, 1, b'#', 0x04];
        assert_eq!(screen_client_bytes(&[&connect[..], &subscribe[..]].concat(), 1024).map_err(|e| e.0), Ok(2));
    }

    /// The MQTT 5 seed of the fuzzing corpus is a whole session the gateway
    /// reads to its end: CONNECT with properties, a command with a response
    /// topic, a publish by topic alias, SUBSCRIBE with an identifier and
    /// options, UNSUBSCRIBE, DISCONNECT "with will".
    #[test]
    fn the_mqtt5_seed_is_read_whole() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/gateway_packets/seed-mqtt5-session");
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(screen_client_bytes(&bytes, 4096), Ok(6));
    }

    /// What coverage-guided fuzzing found or kept (`fuzz/corpus/gateway_packets`),
    /// replayed on every test run: no input may panic.
    #[test]
    fn the_fuzzing_corpus_replays_without_a_panic() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/gateway_packets");
        let inputs: Vec<_> = std::fs::read_dir(&dir).map(|entries| entries.flatten().collect()).unwrap_or_default();
        assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
        for input in inputs {
            let bytes = std::fs::read(input.path()).unwrap_or_default();
            let _ = screen_client_bytes(&bytes, 4096);
        }
    }
}
