//! Identity and session tokens: arbitrary token text, and arbitrary claims
//! correctly signed (so claim parsing and time arithmetic are reached).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mqchat_broker::identity;

const SECRET: &str = "sk_fuzz_secret";
const NOW: i64 = 1_795_000_000;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = identity::verify(SECRET, token, NOW);
    }
    if let Ok(claims) = serde_json::from_slice::<serde_json::Value>(data) {
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        if let Ok(token) = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key) {
            if let Ok(verified) = identity::verify(SECRET, &token, NOW) {
                let max = if verified.claims.is_session() { identity::MAX_SESSION_LIFETIME_SECS } else { identity::MAX_LIFETIME_SECS };
                assert!(verified.claims.exp - verified.claims.iat <= max);
            }
        }
    }
});
