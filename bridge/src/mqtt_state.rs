//! What the plain-MQTT namespace keeps across a restart, stored as it
//! changes and read back once at start: retained messages (the last one per
//! topic wins, an empty payload clears the topic) and persistent sessions
//! (how long each outlives its connection, and its subscriptions — kept as
//! the caller's JSON objects, one per filter, keyed by their `filter`).
use chrono::{DateTime, Utc};
use entity::{mqtt_session, retained_message};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, Set, TransactionTrait};
use serde_json::Value;
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

/// A change to store, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Retained(Retained),
    /// `expiry_secs` `None`: for ever; `clean`: forget earlier subscriptions.
    SessionStarted { client_id: String, expiry_secs: Option<i64>, clean: bool },
    /// JSON objects with a `filter` key; one per filter replaces an earlier one.
    Subscribed { client_id: String, subscriptions: Vec<Value> },
    Unsubscribed { client_id: String, filters: Vec<String> },
    SessionEnded { client_id: String },
    SessionDropped { client_id: String },
}

/// A stored persistent session, as loaded at start.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSession {
    pub client_id: String,
    /// Seconds left until it expires; `None`: never.
    pub expires_in_secs: Option<i64>,
    pub subscriptions: Vec<Value>,
}

fn hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Stores a batch of changes in order, in one transaction.
pub async fn save(db: &DatabaseConnection, batch: &[Change], now: DateTime<Utc>) -> Result<(), DbErr> {
    let transaction = db.begin().await?;
    for change in batch {
        match change {
            Change::Retained(message) => save_retained(&transaction, message, now).await?,
            Change::SessionStarted { client_id, expiry_secs, clean } => {
                let kept = if *clean { None } else { find_session(&transaction, client_id).await?.map(|row| row.subscriptions) };
                let row = mqtt_session::ActiveModel {
                    client_hash: Set(hash(client_id)),
                    client_id: Set(client_id.clone()),
                    expiry_secs: Set(*expiry_secs),
                    ended_at: Set(None),
                    subscriptions: Set(kept.unwrap_or_else(|| "[]".into())),
                    updated_at: Set(now),
                };
                let columns = [
                    mqtt_session::Column::ExpirySecs,
                    mqtt_session::Column::EndedAt,
                    mqtt_session::Column::Subscriptions,
                    mqtt_session::Column::UpdatedAt,
                ];
                mqtt_session::Entity::insert(row)
                    .on_conflict(OnConflict::column(mqtt_session::Column::ClientHash).update_columns(columns).to_owned())
                    .exec(&transaction)
                    .await?;
            }
            Change::Subscribed { client_id, subscriptions } => {
                let added: Vec<&str> = subscriptions.iter().filter_map(|s| s.get("filter").and_then(Value::as_str)).collect();
                update_subscriptions(&transaction, client_id, now, |list| {
                    list.retain(|s| !s.get("filter").and_then(Value::as_str).is_some_and(|filter| added.contains(&filter)));
                    list.extend(subscriptions.iter().cloned());
                })
                .await?;
            }
            Change::Unsubscribed { client_id, filters } => {
                update_subscriptions(&transaction, client_id, now, |list| {
                    list.retain(|s| !s.get("filter").and_then(Value::as_str).is_some_and(|filter| filters.iter().any(|f| f == filter)));
                })
                .await?;
            }
            Change::SessionEnded { client_id } => {
                if let Some(row) = find_session(&transaction, client_id).await? {
                    let mut row: mqtt_session::ActiveModel = row.into();
                    row.ended_at = Set(Some(now));
                    row.updated_at = Set(now);
                    mqtt_session::Entity::update(row).exec(&transaction).await?;
                }
            }
            Change::SessionDropped { client_id } => {
                mqtt_session::Entity::delete_by_id(hash(client_id)).exec(&transaction).await?;
            }
        }
    }
    transaction.commit().await
}

async fn find_session(transaction: &DatabaseTransaction, client_id: &str) -> Result<Option<mqtt_session::Model>, DbErr> {
    mqtt_session::Entity::find_by_id(hash(client_id)).one(transaction).await
}

async fn update_subscriptions(
    transaction: &DatabaseTransaction,
    client_id: &str,
    now: DateTime<Utc>,
    change: impl FnOnce(&mut Vec<Value>),
) -> Result<(), DbErr> {
    let Some(row) = find_session(transaction, client_id).await? else {
        return Ok(());
    };
    let mut list: Vec<Value> = serde_json::from_str(&row.subscriptions).unwrap_or_default();
    change(&mut list);
    let mut row: mqtt_session::ActiveModel = row.into();
    row.subscriptions = Set(Value::Array(list).to_string());
    row.updated_at = Set(now);
    mqtt_session::Entity::update(row).exec(transaction).await?;
    Ok(())
}

/// Every stored session still alive at `now` (one connected when the
/// process stopped counts as ended now); expired ones are deleted.
pub async fn load_sessions(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Vec<StoredSession>, DbErr> {
    let mut alive = Vec::new();
    for row in mqtt_session::Entity::find().all(db).await? {
        let ended_at = row.ended_at.unwrap_or(now);
        let expires_in_secs = row.expiry_secs.map(|expiry| expiry - (now - ended_at).num_seconds());
        if expires_in_secs.is_some_and(|left| left <= 0) {
            mqtt_session::Entity::delete_by_id(row.client_hash).exec(db).await?;
            continue;
        }
        alive.push(StoredSession {
            client_id: row.client_id,
            expires_in_secs,
            subscriptions: serde_json::from_str(&row.subscriptions).unwrap_or_default(),
        });
    }
    Ok(alive)
}

async fn save_retained(transaction: &DatabaseTransaction, message: &Retained, now: DateTime<Utc>) -> Result<(), DbErr> {
    let key = hash(&message.topic);
    if message.payload.is_empty() {
        retained_message::Entity::delete_by_id(key).exec(transaction).await?;
        return Ok(());
    }
    let row = retained_message::ActiveModel {
        topic_hash: Set(key),
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
        .exec(transaction)
        .await?;
    Ok(())
}

/// Every stored retained message still alive at `now`; expired ones are deleted.
pub async fn load_retained(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Vec<Retained>, DbErr> {
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
