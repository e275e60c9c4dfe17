//! End-to-end tests of the whole service: the real `App` on port 0, a fresh
//! database per test (SQLite, or PostgreSQL with `TEST_DATABASE_URL`), and
//! real clients — rumqttc, mosquitto_pub/sub, paho-mqtt, raw sockets, reqwest.
//! One binary for all of them (see CONVENTIONS: fast links).
// In tests a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod acl;
mod auth;
mod browser;
mod attachments;
mod chat;
mod chat_client;
mod conformance;
mod conversations;
mod emqx;
mod cli;
mod crash;
mod hardening;
mod helpers;
mod history;
mod http_api;
mod instances;
mod membership;
mod mosquitto;
mod mqtt5;
mod mqtt_features;
mod plain;
mod presence;
mod receiver;
mod robustness;
mod stock_clients;
mod transports;
mod typing;
mod web_settings;
mod webhooks;
