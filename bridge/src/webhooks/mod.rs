//! Webhooks and callback URLs: the events a project's backend receives, the
//! endpoints that receive them, and the outbox their deliveries wait in.
//!
//! An event is recorded in the same transaction as the change that caused
//! it — one row holding the exact bytes to POST — so nothing is lost when
//! the process dies, and a retry sends the same bytes with the same event
//! id. The dispatcher then fans each event out to one delivery row per
//! subscribed endpoint in its own transaction. `endpoints` stores webhooks
//! and callback URLs, `outbox` is the in-memory directory of who wants what,
//! records events and fans them out, `deliveries` is what the dispatcher
//! and the delivery log read and write. Sending over HTTP is not this crate's business.
mod deliveries;
mod endpoints;
mod events;
mod outbox;

pub use deliveries::{
    due, purge_older_than, record_attempts, release, release_claims, retry, AttemptRecord, Claim, AttemptView, DeliveryStatus, DeliveryView, DueDelivery,
    NextStep,
};
pub use endpoints::{
    callbacks, create_webhook, delete_webhook, disable_endpoint, list_webhooks, put_callbacks, update_webhook, webhook,
    CallbackSettings, CallbacksView, NewWebhook, WebhookChange, WebhookView,
};
pub use deliveries::log as delivery_log;
pub use events::{new_event_id, Event, EventType};
pub use outbox::{Endpoint, EndpointKind, Outbox};

use sea_orm::DbErr;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No such webhook, callback or delivery in this project.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request breaks a rule; the message says which.
    #[error("{0}")]
    Invalid(String),
    /// The request cannot apply in the current state (e.g. retrying a pending delivery).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// A new signing secret: `whsec_` and the base64 of 32 random bytes (the
/// Standard Webhooks form; its decoded bytes are that scheme's key).
pub(crate) fn new_secret() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}
