//! Identity tokens (signed by the site's backend) and session tokens (issued
//! by mqchat), both HS256 JWTs keyed with the project's secret key.
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Longest token accepted, in bytes: a JWT with a normal profile is far below.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest lifetime (`exp - iat`) of any token.
pub const MAX_LIFETIME_SECS: i64 = 24 * 3600;
/// Longest lifetime of a session token mqchat issues (a project chooses
/// 1 h – 7 d).
pub const MAX_SESSION_LIFETIME_SECS: i64 = 7 * 24 * 3600;
/// Every visitor's user id starts with this; a site's identity tokens may
/// not use it, so no site user can be confused with a visitor.
pub const VISITOR_PREFIX: &str = "visitor:";

/// Whether `user_id` names a visitor (someone not logged in to the site).
pub fn is_visitor(user_id: &str) -> bool {
    user_id.starts_with(VISITOR_PREFIX)
}
/// Clock skew tolerated on `exp` and `iat`.
pub const LEEWAY_SECS: i64 = 60;
/// `iss` of session tokens issued by `sdk/init`.
pub const SESSION_ISSUER: &str = "mqchat";
/// Longest `name` claim, in characters (the stored profile's column).
pub const MAX_NAME_CHARS: usize = 200;
/// Longest `email` claim, in characters (RFC 5321's limit, its column).
pub const MAX_EMAIL_CHARS: usize = 320;
/// Longest `avatar_url` claim, in characters (its column).
pub const MAX_AVATAR_URL_CHARS: usize = 2048;

/// A user's id inside a project: the `sub` claim, 1–128 of `A-Z a-z 0-9 _ . : @ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    pub fn parse(raw: &str) -> Result<UserId, TokenError> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '@' | '-');
        if raw.is_empty() || raw.len() > 128 || !raw.chars().all(valid_char) {
            return Err(TokenError::BadSubject);
        }
        Ok(UserId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a token was refused; each message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("token must be signed with HS256")]
    WrongAlgorithm,
    #[error("token signature does not match the project's secret key")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is missing the required claim `{0}`")]
    MissingClaim(&'static str),
    #[error("token `iat` is in the future")]
    IssuedInFuture,
    #[error("token lifetime exceeds 24 hours")]
    LifetimeTooLong,
    #[error("`sub` must be 1-128 characters of A-Z a-z 0-9 _ . : @ -")]
    BadSubject,
    #[error("token claim `{0}` must be at most {1} characters without control characters")]
    BadProfileClaim(&'static str, usize),
    #[error("this is a session token; exchange an identity token signed by your backend instead")]
    SessionNotAccepted,
    #[error("the user's sessions were revoked; sign in again")]
    Revoked,
    #[error("`sub` may not start with `visitor:`: those ids belong to mqchat's visitors")]
    ReservedSubject,
}

/// The claims of an identity token (DESIGN §3); session tokens carry the same
/// profile plus `iss`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityClaims {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

impl IdentityClaims {
    /// A session token issued by `sdk/init`, not an identity token signed
    /// by the site's backend.
    pub fn is_session(&self) -> bool {
        self.iss.as_deref() == Some(SESSION_ISSUER)
    }
}

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub user_id: UserId,
    pub claims: IdentityClaims,
}

/// The keys a project's tokens may be signed with: its secret key, and
/// during a rotation's grace period the key it replaced.
#[derive(Debug, Clone, Copy)]
pub struct SigningKeys<'a> {
    pub current: &'a str,
    pub previous: Option<&'a str>,
}

impl<'a> SigningKeys<'a> {
    pub fn only(current: &'a str) -> Self {
        SigningKeys { current, previous: None }
    }
}

pub fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Verifies an identity or session token against the project's secret key.
pub fn verify(secret_key: &str, token: &str, now: i64) -> Result<VerifiedToken, TokenError> {
    verify_with(SigningKeys::only(secret_key), token, now)
}

/// Verifies a token signed with the project's current key or, during a
/// rotation's grace period, the one it replaced.
pub fn verify_with(keys: SigningKeys<'_>, token: &str, now: i64) -> Result<VerifiedToken, TokenError> {
    match verify_signed(keys.current, token, now) {
        Err(TokenError::BadSignature) => match keys.previous {
            Some(previous) => verify_signed(previous, token, now),
            None => Err(TokenError::BadSignature),
        },
        other => other,
    }
}

fn verify_signed(secret_key: &str, token: &str, now: i64) -> Result<VerifiedToken, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != Algorithm::HS256 {
        return Err(TokenError::WrongAlgorithm);
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "iat", "sub"]);
    validation.leeway = LEEWAY_SECS as u64;
    validation.validate_aud = false;
    // `exp` is checked below against the caller's clock, so tests can move time.
    validation.validate_exp = false;
    let data = decode::<serde_json::Value>(token, &DecodingKey::from_secret(secret_key.as_bytes()), &validation)
        .map_err(|error| match error.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
            ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(match claim.as_str() {
                "exp" => "exp",
                "iat" => "iat",
                _ => "sub",
            }),
            _ => TokenError::Malformed,
        })?;
    let claims: IdentityClaims = serde_json::from_value(data.claims).map_err(|_| TokenError::Malformed)?;
    let max_lifetime = if claims.is_session() { MAX_SESSION_LIFETIME_SECS } else { MAX_LIFETIME_SECS };
    check_times(claims.iat, claims.exp, now, max_lifetime)?;
    let user_id = UserId::parse(&claims.sub)?;
    if is_visitor(&claims.sub) && !claims.is_session() {
        return Err(TokenError::ReservedSubject);
    }
    check_profile(&claims)?;
    Ok(VerifiedToken { user_id, claims })
}

/// `iat` and `exp` against the clock, in checked arithmetic: both come
/// from the client, so any `i64` must be refused, never wrapped. With
/// `exp` not past and the lifetime capped, `iat` cannot be absurdly old.
fn check_times(iat: i64, exp: i64, now: i64, max_lifetime: i64) -> Result<(), TokenError> {
    if exp.saturating_add(LEEWAY_SECS) <= now {
        return Err(TokenError::Expired);
    }
    if iat > now.saturating_add(LEEWAY_SECS) {
        return Err(TokenError::IssuedInFuture);
    }
    match exp.checked_sub(iat) {
        Some(lifetime) if lifetime <= max_lifetime => Ok(()),
        _ => Err(TokenError::LifetimeTooLong),
    }
}

/// The profile claims are stored and shown to other users: each within
/// its column, with no control characters (they would reach logs and UIs).
pub fn check_profile(claims: &IdentityClaims) -> Result<(), TokenError> {
    let profile = [
        ("name", claims.name.as_deref(), MAX_NAME_CHARS),
        ("email", claims.email.as_deref(), MAX_EMAIL_CHARS),
        ("avatar_url", claims.avatar_url.as_deref(), MAX_AVATAR_URL_CHARS),
    ];
    for (claim, value, max) in profile {
        let Some(value) = value else { continue };
        if value.chars().take(max + 1).count() > max || value.chars().any(char::is_control) {
            return Err(TokenError::BadProfileClaim(claim, max));
        }
    }
    Ok(())
}

/// Signs a token exactly as a site backend does: HS256 with the secret key.
pub fn sign(secret_key: &str, claims: &IdentityClaims) -> Result<String, jsonwebtoken::errors::Error> {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret_key.as_bytes()))
}

/// Issues the session token `sdk/init` returns: the verified profile,
/// `iss = "mqchat"`, valid `ttl_secs` from `now` but never beyond the
/// 7-day cap.
pub fn issue_session(
    secret_key: &str,
    identity: &IdentityClaims,
    now: i64,
    ttl_secs: i64,
) -> Result<(String, IdentityClaims), jsonwebtoken::errors::Error> {
    let claims = IdentityClaims {
        iat: now,
        exp: now.saturating_add(ttl_secs.clamp(1, MAX_SESSION_LIFETIME_SECS)),
        iss: Some(SESSION_ISSUER.to_owned()),
        ..identity.clone()
    };
    Ok((sign(secret_key, &claims)?, claims))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "sk_test_secret";

    fn claims(sub: &str, iat: i64, exp: i64) -> IdentityClaims {
        IdentityClaims { sub: sub.into(), name: None, email: None, avatar_url: None, iat, exp, iss: None }
    }

    #[test]
    fn accepts_a_well_formed_token() {
        let now = now_unix();
        let token = sign(SECRET, &claims("user_42", now, now + 7200)).unwrap();
        assert_eq!(verify(SECRET, &token, now).unwrap().user_id.as_str(), "user_42");
    }

    #[test]
    fn refuses_each_broken_rule() {
        let now = now_unix();
        let cases = [
            (claims("u", now - 7200, now - 3600), TokenError::Expired),
            (claims("u", now + 3600, now + 7200), TokenError::IssuedInFuture),
            (claims("u", now, now + 25 * 3600), TokenError::LifetimeTooLong),
            (claims("bad/sub", now, now + 60), TokenError::BadSubject),
            (claims("", now, now + 60), TokenError::BadSubject),
        ];
        for (claims, expected) in cases {
            let token = sign(SECRET, &claims).unwrap();
            assert_eq!(verify(SECRET, &token, now).unwrap_err(), expected, "{claims:?}");
        }
        let token = sign("another", &claims("u", now, now + 60)).unwrap();
        assert_eq!(verify(SECRET, &token, now).unwrap_err(), TokenError::BadSignature);
    }

    #[test]
    fn refuses_times_that_would_overflow() {
        let now = now_unix();
        let cases = [
            (claims("u", i64::MIN, now + 10 * 365 * 86_400), TokenError::LifetimeTooLong),
            (claims("u", i64::MIN, i64::MAX), TokenError::LifetimeTooLong),
            (claims("u", now, i64::MAX), TokenError::LifetimeTooLong),
            (claims("u", i64::MAX, i64::MAX), TokenError::IssuedInFuture),
            (claims("u", i64::MIN, now - 3600), TokenError::Expired),
            (claims("u", now - 2 * MAX_LIFETIME_SECS, now + 60), TokenError::LifetimeTooLong),
        ];
        for (claims, expected) in cases {
            let token = sign(SECRET, &claims).unwrap();
            assert_eq!(verify(SECRET, &token, now).unwrap_err(), expected, "{claims:?}");
        }
    }

    #[test]
    fn refuses_profile_claims_beyond_their_columns() {
        let now = now_unix();
        let with = |name: Option<String>, email: Option<String>, avatar_url: Option<String>| IdentityClaims {
            name,
            email,
            avatar_url,
            ..claims("u", now, now + 60)
        };
        let ok = with(Some("é".repeat(MAX_NAME_CHARS)), Some("e".repeat(MAX_EMAIL_CHARS)), Some("a".repeat(MAX_AVATAR_URL_CHARS)));
        assert!(verify(SECRET, &sign(SECRET, &ok).unwrap(), now).is_ok());
        let cases = [
            (with(Some("n".repeat(MAX_NAME_CHARS + 1)), None, None), TokenError::BadProfileClaim("name", MAX_NAME_CHARS)),
            (with(Some("a\u{0}b".into()), None, None), TokenError::BadProfileClaim("name", MAX_NAME_CHARS)),
            (with(Some("line\nforged".into()), None, None), TokenError::BadProfileClaim("name", MAX_NAME_CHARS)),
            (with(None, Some("e".repeat(MAX_EMAIL_CHARS + 1)), None), TokenError::BadProfileClaim("email", MAX_EMAIL_CHARS)),
            (
                with(None, None, Some("a".repeat(MAX_AVATAR_URL_CHARS + 1))),
                TokenError::BadProfileClaim("avatar_url", MAX_AVATAR_URL_CHARS),
            ),
        ];
        for (claims, expected) in cases {
            let token = sign(SECRET, &claims).unwrap();
            assert_eq!(verify(SECRET, &token, now).unwrap_err(), expected);
        }
    }

    #[test]
    fn a_rotated_key_verifies_only_while_given() {
        let now = now_unix();
        let token = sign("old_key", &claims("u", now, now + 60)).unwrap();
        let rotating = SigningKeys { current: SECRET, previous: Some("old_key") };
        assert_eq!(verify_with(rotating, &token, now).unwrap().user_id.as_str(), "u");
        assert_eq!(verify_with(SigningKeys::only(SECRET), &token, now).unwrap_err(), TokenError::BadSignature);
    }

    #[test]
    fn refuses_other_algorithms() {
        let now = now_unix();
        let token = encode(
            &Header::new(Algorithm::HS512),
            &claims("u", now, now + 60),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(verify(SECRET, &token, now).unwrap_err(), TokenError::WrongAlgorithm);
        // {"alg":"none","typ":"JWT"} with a valid payload and no signature.
        let payload = token.split('.').nth(1).unwrap();
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(verify(SECRET, &unsigned, now).is_err());
    }

    #[test]
    fn session_tokens_are_capped_at_seven_days() {
        let now = now_unix();
        let (token, claims) = issue_session(SECRET, &claims("u", now, now + 60), now, 10 * MAX_SESSION_LIFETIME_SECS).unwrap();
        assert_eq!(claims.exp - claims.iat, MAX_SESSION_LIFETIME_SECS);
        assert_eq!(verify(SECRET, &token, now).unwrap().claims.iss.as_deref(), Some(SESSION_ISSUER));
    }

    /// What coverage-guided fuzzing found or kept (`fuzz/corpus/identity_tokens`),
    /// replayed as the fuzz target runs it: as token text, and as claims
    /// correctly signed. No input may panic or pass with a lifetime over 24 h
    /// (7 days for a session token).
    #[test]
    fn the_fuzzing_corpus_replays_without_a_panic() {
        const NOW: i64 = 1_795_000_000;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/identity_tokens");
        let inputs: Vec<_> = std::fs::read_dir(&dir).map(|entries| entries.flatten().collect()).unwrap_or_default();
        assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
        for input in inputs {
            let data = std::fs::read(input.path()).unwrap_or_default();
            if let Ok(token) = std::str::from_utf8(&data) {
                let _ = verify(SECRET, token, NOW);
            }
            let Ok(claims) = serde_json::from_slice::<serde_json::Value>(&data) else { continue };
            let Ok(token) = encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())) else { continue };
            if let Ok(verified) = verify(SECRET, &token, NOW) {
                let max = if verified.claims.is_session() { MAX_SESSION_LIFETIME_SECS } else { MAX_LIFETIME_SECS };
                assert!(verified.claims.exp - verified.claims.iat <= max, "{:?}", input.path());
            }
        }
    }
}
