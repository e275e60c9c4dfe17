//! The questions the gateway asks about a client, answered by whoever owns
//! projects and memberships (the binary, over the chat engine).
use async_trait::async_trait;

pub use mqchat_access::Principal;
use crate::identity::TokenError;

/// Why a CONNECT was refused, split by the CONNACK code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// CONNACK 4: unknown public key, missing or invalid token.
    #[error("bad credentials: {0}")]
    BadCredentials(String),
    /// CONNACK 5: valid identity that may not connect this way.
    #[error("not authorized: {0}")]
    NotAuthorized(String),
    /// CONNACK 3: the server cannot answer right now (database down).
    #[error("authorization unavailable: {0}")]
    Unavailable(String),
}

impl From<TokenError> for AuthError {
    fn from(error: TokenError) -> Self {
        AuthError::BadCredentials(error.to_string())
    }
}

#[async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// Checks CONNECT credentials: `username` is the project's public key,
    /// `password` an identity or session token. `origin` is the `Origin`
    /// header of a WebSocket handshake (a browser page), which the project
    /// must allow; other clients send none.
    async fn authenticate(&self, username: &str, password: &str, origin: Option<&str>) -> Result<Principal, AuthError>;

    /// Whether the principal's user belongs to `conversation_id` in its project.
    async fn is_member(&self, principal: &Principal, conversation_id: &str) -> Result<bool, AuthError>;
}
