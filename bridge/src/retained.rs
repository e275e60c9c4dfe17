//! Retained messages of the plain-MQTT namespace, stored so they survive a
//! restart: written as they change (the last one per topic wins, an empty
//! payload clears the topic), read back once at start.
use chrono::{DateTime, Utc};
use entity::retained_message;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set, TransactionTrait};
use sha2::{Digest, Sha256};

/// One retained message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained {
    pub topic: String,
    /// Empty: the topic's retained message is cleared.
    pub payload: Vec<u8>,
    pub qos: u8,
    /// JSON of its MQTT 5 properties (the caller's format).
    pub properties: String,
    pub expires_at: Option<DateTime<Utc>>,
}

fn topic_hash(topic: &str) -> String {
    hex::encode(Sha256::digest(topic.as_bytes()))
}

/// Stores a batch in order, in one transaction.
pub async fn save(db: &DatabaseConnection, batch: &[Retained], now: DateTime<Utc>) -> Result<(), DbErr> {
    let transaction = db.begin().await?;
    for message in batch {
        let hash = topic_hash(&message.topic);
        if message.payload.is_empty() {
            retained_message::Entity::delete_by_id(hash).exec(&transaction).await?;
            continue;
        }
        let row = retained_message::ActiveModel {
            topic_hash: Set(hash),
            topic: Set(message.topic.clone()),
            payload: Set(message.payload.clone()),
            qos: Set(i16::from(message.qos)),
            properties: Set(message.properties.clone()),
            expires_at: Set(message.expires_at),
            updated_at: Set(now),
        };
        let columns = [
            retained_message::Column::Payload,
            retained_message::Column::Qos,
            retained_message::Column::Properties,
            retained_message::Column::ExpiresAt,
            retained_message::Column::UpdatedAt,
        ];
        retained_message::Entity::insert(row)
            .on_conflict(OnConflict::column(retained_message::Column::TopicHash).update_columns(columns).to_owned())
            .exec(&transaction)
            .await?;
    }
    transaction.commit().await
}

/// Every stored message still alive at `now`; expired ones are deleted.
pub async fn load(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Vec<Retained>, DbErr> {
    retained_message::Entity::delete_many().filter(retained_message::Column::ExpiresAt.lte(now)).exec(db).await?;
    let rows = retained_message::Entity::find().all(db).await?;
    Ok(rows
        .into_iter()
        .map(|row| Retained {
            topic: row.topic,
            payload: row.payload,
            qos: u8::try_from(row.qos).unwrap_or(0),
            properties: row.properties,
            expires_at: row.expires_at,
        })
        .collect())
}
