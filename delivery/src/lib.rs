//! The webhook dispatcher: takes due deliveries from the outbox the chat
//! engine writes (`mqchat_bridge::webhooks`), POSTs each signed body to its
//! endpoint, and records every attempt — retrying on schedule, and disabling
//! an endpoint that refuses (401, 403, 410) or stays unreachable.
//!
//! Modules: `signing` (the three signature schemes), `targets` (which URLs
//! and addresses may receive deliveries), `sender` (one signed POST and what
//! came of it), `send_pool` (the low-priority thread requests run on), `dispatcher` (the loop: fetch due, send concurrently, record
//! in batches, purge the log), `settings`. This crate knows nothing about
//! MQTT; it reads and writes the database only through the bridge.
#![forbid(unsafe_code)]

pub mod dispatcher;
pub mod send_pool;
pub mod sender;
pub mod settings;
pub mod signing;
pub mod targets;

pub use dispatcher::Dispatcher;
pub use sender::{Attempt, Delivery, Sender};
pub use settings::WebhookSettings;
pub use targets::{TargetError, TargetPolicy};
