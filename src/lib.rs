//! The `mqchat` binary's library: configuration, the wiring of the broker
//! and the chat engine, and the HTTP API. `main.rs` only parses the command
//! line; end-to-end tests start the same `App` in-process on port 0.
#![forbid(unsafe_code)]

pub mod app;
pub mod authorizer;
mod chat;
pub mod cli;
mod external;
mod invalidation;
pub mod http;
mod plain_state;
mod presence;
pub mod settings;
mod tls;

pub use app::App;
pub use settings::Settings;
