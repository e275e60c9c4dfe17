//! The MQTT front door of mqchat: a gateway that authenticates, authorizes
//! and limits every client, in front of an embedded rumqttd that only routes.
//!
//! Clients never reach rumqttd: it listens on loopback and cannot authorize
//! SUBSCRIBE or PUBLISH (see docs/ARCHITECTURE in DESIGN §2). Modules:
//! - `identity`, `acl`: tokens and topic rules, from `mqchat-access` (the
//!   same rules judge clients of mqchat's Mosquitto plugin);
//! - `authorizer`: the trait through which the gateway asks who a client is
//!   and whether it belongs to a conversation — implemented by the binary over
//!   the chat engine, so this crate knows nothing about storage;
//! - `embedded`: starting rumqttd on loopback and the platform's in-process link;
//! - `gateway`: listeners (TCP, TLS, WebSocket) and per-connection sessions;
//! - `registry`: live connections per user, to cut access when membership
//!   changes, and the presence changes they imply;
//! - `plain`: the plain-MQTT namespace for devices, with Mosquitto's
//!   password and ACL files (read by `mqchat-mosquitto-files`);
//! - `persistence`: what that namespace keeps across restarts (retained
//!   messages, persistent sessions), handed to whoever stores it.
#![forbid(unsafe_code)]

pub use mqchat_access::{acl, identity};
pub mod authorizer;
pub mod embedded;
pub mod gateway;
pub mod plain;
pub mod persistence;
pub mod registry;
pub mod settings;

pub use authorizer::{AuthError, Authorizer, Principal};
pub use embedded::{EmbeddedBroker, PlatformPublisher};
pub use gateway::{Gateway, GatewayServices, Listeners};
pub use registry::{PresenceChange, Registry};
pub use settings::{GatewaySettings, RouterSettings};
