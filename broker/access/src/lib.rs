//! Who a chat client is and what it may do, as pure rules: one rule set for
//! every front door. mqchat's own gateway (`mqchat-broker`) and its
//! Mosquitto plugin (`mqchat-mosquitto`) both judge clients with this crate,
//! so the two cannot drift apart. Nothing here does I/O.
//! - `identity`: identity and session tokens (HS256 JWT) and the `sub` rule;
//! - `acl`: which topics a user may subscribe and publish to;
//! - `topics`: MQTT's own validity rules for topic names and filters;
//! - `typing`: the payload stamped on a member's typing publish;
//! - `Principal`: who a connection is once its credentials were accepted.
#![forbid(unsafe_code)]

pub mod acl;
pub mod identity;
pub mod topics;
pub mod typing;

use acl::Subject;
use identity::{IdentityClaims, UserId};

/// Every project's public key (the MQTT username of its users) starts so;
/// a front door leaves other usernames to the broker's own configuration.
pub const PUBLIC_KEY_PREFIX: &str = "pk_";

/// Who a connection is, once its CONNECT was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub project_id: String,
    pub user_id: UserId,
    /// The verified token's claims (profile, `exp`).
    pub claims: IdentityClaims,
}

impl Principal {
    /// Who the chat ACL (`acl`) judges for this connection.
    pub fn subject(&self) -> Subject<'_> {
        Subject { project_id: &self.project_id, user_id: self.user_id.as_str() }
    }
}
