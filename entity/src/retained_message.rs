//! A retained message of the plain-MQTT namespace, kept across restarts.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "retained_messages")]
pub struct Model {
    /// Hex SHA-256 of `topic` (a topic can be longer than an index entry).
    #[sea_orm(primary_key, auto_increment = false)]
    pub topic_hash: String,
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: i16,
    /// JSON of its MQTT 5 properties.
    pub properties: String,
    /// End of its MQTT 5 message expiry interval; `None`: never.
    pub expires_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
