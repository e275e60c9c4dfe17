//! What the gateway decides about a client's bytes before anything reaches
//! rumqttd's router, without a socket or a router: the CONNECT's protocol
//! level, every packet framed and checked as MQTT 3.1.1 (`frames`), every
//! topic and filter judged by the ACL for one fixed user, typing payloads
//! stamped, and the gateway's own answers encoded. Coverage-guided fuzzing
//! drives this with arbitrary bytes (`fuzz/`), and a test replays what it
//! found; the sessions run the same functions on live connections.
use bytes::BytesMut;
use rumqttd::protocol::Packet;

use super::{frames, typing};
use crate::acl::{self, Subject};
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
    let subject = Subject { project_id: &principal.project_id, user_id: principal.user_id.as_str() };
    let _ = frames::connect_protocol_level(bytes);
    let mut buf = BytesMut::from(bytes);
    let mut read = 0;
    while let Some(packet) = frames::next_packet(&mut buf, max_packet_size).map_err(|error| Closed(error.to_string()))? {
        read += 1;
        match packet {
            Packet::Connect(_, _, Some(will), _, _) => {
                let topic = std::str::from_utf8(&will.topic).map_err(|_| Closed("will topic is not UTF-8".into()))?;
                let _ = acl::will(subject, topic);
            }
            Packet::Publish(publish, _) => {
                let topic = std::str::from_utf8(&publish.topic).map_err(|_| Closed("topic is not UTF-8".into()))?;
                let _ = acl::publish(subject, topic);
                if let Some(conversation_id) = typing::conversation_of(topic) {
                    let _ = typing::stamp(&principal, conversation_id, &publish.payload, chrono::Utc::now());
                }
                let _ = frames::puback(publish.pkid);
            }
            Packet::Subscribe(subscribe, _) => {
                let codes = subscribe.filters.iter().map(|filter| match acl::subscribe(subject, &filter.path) {
                    acl::Decision::Deny(_) => rumqttd::protocol::SubscribeReasonCode::Failure,
                    _ => rumqttd::protocol::SubscribeReasonCode::Success(filter.qos),
                });
                let _ = frames::suback(subscribe.pkid, codes.collect());
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
