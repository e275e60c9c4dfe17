//! mqchat's plugin for Mosquitto 2.0 (plugin interface v5): Mosquitto
//! takes the place of mqchat's embedded broker (docs/SCALING.md), and chat
//! clients connecting to it get the contract of docs/PROTOCOL.md —
//! username = project public key, password = identity or session token;
//! the same topic ACL (`mqchat-access`, shared with mqchat's gateway);
//! typing payloads stamped; a client id another user holds refused; a
//! token expiring on a live connection closes it; a removed member's
//! deliveries stop, and revoked sessions are cut, when mqchat says so on
//! `$CONTROL/mqchat/v1`.
//!
//! The plugin keeps no database: project keys and users' memberships come
//! from mqchat's internal API (`plugin_opt_mqchat_url`, authenticated with
//! `plugin_opt_platform_secret`) and are cached. Clients whose username is
//! no public key are left to Mosquitto's own configuration, and never reach
//! `chat/…`.
//! - `plugin`: the decisions, in safe Rust;
//! - `api`: the internal API client;
//! - `abi`: the C types of the plugin interface, checked against the headers;
//! - `ffi`: the exported functions and callbacks — all of the crate's
//!   `unsafe`.

mod abi;
mod api;
#[cfg(not(test))]
mod ffi;
mod plugin;
