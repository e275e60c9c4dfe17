//! The chat engine: everything mqchat knows about projects, users and
//! conversations, and how they are stored through SeaORM.
//!
//! Modules: `database` (connecting, SQLite tuning), `fields` (the limits
//! every stored string obeys, checked at the edge), `projects` (tenants and
//! their keys), `users` (external users created from identity claims),
//! `conversations` (conversations and membership, what the MQTT ACL asks),
//! `messages` (stored messages, group commit, history), `reactions`,
//! `receipts` (read positions and unread counts), `presence` (who is
//! online, stored and published as retained state), `summaries` (a user's
//! conversation list and unread total), `attachments` (uploaded files and
//! their signed URLs), `cache` (what every command checks, kept in memory),
//! `events` (the one list of events and where each is delivered),
//! `commands` (the engine: the JSON commands clients publish on their
//! outbox, their replies and events, the membership operations the server
//! API shares with them, and `ErrorCode`, every refusal's code),
//! `webhooks` (webhooks, callback URLs and the transactional outbox of
//! their deliveries), `mqtt_state` (what the plain-MQTT namespace keeps
//! across restarts: retained messages and persistent sessions).
//! Every function takes a `&DatabaseConnection` and works the same on SQLite
//! and PostgreSQL. This crate knows nothing about sockets, MQTT framing or
//! HTTP: the binary wires it to the broker and to the API.
#![forbid(unsafe_code)]

pub mod attachments;
pub mod cache;
mod clock;
pub mod commands;
pub mod conversations;
pub mod database;
pub mod events;
pub mod fields;
mod ids;
pub mod messages;
pub mod presence;
pub mod projects;
pub mod reactions;
pub mod mqtt_state;
pub mod receipts;
pub mod summaries;
pub mod users;
pub mod webhooks;

pub use sea_orm::{DatabaseConnection, DbErr};
