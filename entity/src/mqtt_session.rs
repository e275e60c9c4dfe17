//! A persistent session of the plain-MQTT namespace: how long it outlives
//! its connection, and its subscriptions, so it survives a restart.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mqtt_sessions")]
pub struct Model {
    /// Hex SHA-256 of `client_id`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub client_hash: String,
    /// The client id as the router knows it (`plain|…`).
    pub client_id: String,
    /// Seconds the session outlives its connection; `None`: for ever.
    pub expiry_secs: Option<i64>,
    /// When its last connection ended; `None`: connected when last written.
    pub ended_at: Option<DateTimeUtc>,
    /// JSON array of its subscriptions.
    pub subscriptions: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
