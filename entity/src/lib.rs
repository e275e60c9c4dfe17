//! SeaORM entities: the rows mqchat stores.
//!
//! One module per table (`project`, `user`, `conversation`,
//! `conversation_member`, `message`, `reaction`, `read_receipt`,
//! `attachment`, `launcher_icon`, `user_presence`, `presence_device`, `webhook_endpoint`,
//! `webhook_event`, `webhook_fanout`, `webhook_delivery`, `webhook_attempt`,
//! `retained_message`, `mqtt_session`). Entities only describe data; the queries that use
//! them live in the `bridge` crate, and the schema is created by the
//! `migration` crate. This crate knows nothing about MQTT or HTTP.
#![forbid(unsafe_code)]

pub mod attachment;
pub mod conversation;
pub mod conversation_member;
pub mod launcher_icon;
pub mod message;
pub mod mqtt_session;
pub mod presence_device;
pub mod reaction;
pub mod read_receipt;
pub mod retained_message;
pub mod project;
pub mod user;
pub mod user_presence;
pub mod webhook_attempt;
pub mod webhook_delivery;
pub mod webhook_endpoint;
pub mod webhook_event;
pub mod webhook_fanout;
