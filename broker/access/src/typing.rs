//! Typing indicators: a member publishes anything on
//! `chat/{project}/conv/{id}/typing` (`{"typing": false}` to stop), and the
//! gateway replaces the payload with one it stamps itself — who is typing,
//! from the connection's verified identity, and until when — so no client
//! can type as someone else or keep an indicator up forever.
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Principal;

/// How long an indicator lasts unless renewed (seed 000: 5 seconds).
pub const EXPIRY: Duration = Duration::from_secs(5);

/// The conversation of a typing topic `chat/{project}/conv/{id}/typing`.
pub fn conversation_of(topic: &str) -> Option<&str> {
    match topic.split('/').collect::<Vec<_>>()[..] {
        ["chat", _, "conv", conversation, "typing"] => Some(conversation),
        _ => None,
    }
}

/// What a client may say: `{"typing": false}` stops; anything else starts.
#[derive(Deserialize)]
struct Flag {
    typing: bool,
}

#[derive(Serialize)]
struct Stamp<'a> {
    conversation_id: &'a str,
    user_id: &'a str,
    name: Option<&'a str>,
    avatar_url: Option<&'a str>,
    typing: bool,
    expires_at: Option<DateTime<Utc>>,
}

/// The event type subscribers see (the chat engine's catalogue lists it
/// as well; the binary's tests check the two agree).
pub const TYPING_EVENT: &str = "typing";

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    data: Stamp<'a>,
}

/// The payload subscribers receive for a client's typing publish (built
/// from borrowed fields: no JSON tree per packet).
pub fn stamp(principal: &Principal, conversation_id: &str, client_payload: &[u8], now: DateTime<Utc>) -> Bytes {
    let typing = serde_json::from_slice::<Flag>(client_payload).map_or(true, |flag| flag.typing);
    let event = Event {
        kind: TYPING_EVENT,
        data: Stamp {
            conversation_id,
            user_id: principal.user_id.as_str(),
            name: principal.claims.name.as_deref(),
            avatar_url: principal.claims.avatar_url.as_deref(),
            typing,
            expires_at: typing.then(|| now + EXPIRY),
        },
    };
    Bytes::from(serde_json::to_vec(&event).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use crate::identity::{IdentityClaims, UserId};

    fn alice() -> Principal {
        Principal {
            project_id: "prj_a".into(),
            user_id: UserId::parse("alice").unwrap(),
            claims: IdentityClaims {
                sub: "alice".into(),
                name: Some("Alice".into()),
                email: None,
                avatar_url: None,
                iat: 0,
                exp: 10,
                iss: None,
            },
        }
    }

    #[test]
    fn the_payload_names_the_connection_user_whatever_the_client_claims() {
        let now = Utc::now();
        let forged = br#"{"user_id":"bob","name":"Bob","typing":true,"expires_at":"2999-01-01T00:00:00Z"}"#;
        let stamped: Value = serde_json::from_slice(&stamp(&alice(), "c1", forged, now)).unwrap();
        assert_eq!(stamped["type"], "typing");
        assert_eq!(stamped["data"]["user_id"], "alice");
        assert_eq!(stamped["data"]["name"], "Alice");
        assert_eq!(stamped["data"]["conversation_id"], "c1");
        let expires: DateTime<Utc> = serde_json::from_value(stamped["data"]["expires_at"].clone()).unwrap();
        assert_eq!(expires, now + EXPIRY);
    }

    #[test]
    fn stop_and_garbage() {
        let now = Utc::now();
        let stop: Value = serde_json::from_slice(&stamp(&alice(), "c1", br#"{"typing":false}"#, now)).unwrap();
        assert_eq!(stop["data"]["typing"], false);
        assert!(stop["data"]["expires_at"].is_null());
        let garbage: Value = serde_json::from_slice(&stamp(&alice(), "c1", b"\xff\x00", now)).unwrap();
        assert_eq!(garbage["data"]["typing"], true);
        assert_eq!(conversation_of("chat/p/conv/c1/typing"), Some("c1"));
        assert_eq!(conversation_of("chat/p/conv/c1"), None);
    }
}
