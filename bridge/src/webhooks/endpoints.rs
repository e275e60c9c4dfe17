//! Webhooks (name, URL, secret, events, enabled) and the two callback URLs
//! of a project, as the server API creates, lists, changes and deletes them.
//! URLs arrive already checked by the caller (which knows the target policy).
use chrono::{DateTime, Utc};
use entity::{webhook_attempt, webhook_delivery, webhook_endpoint};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use serde::Serialize;

use super::deliveries::DeliveryStatus;
use super::events::EventType;
use super::outbox::EndpointKind;
use super::{new_secret, WebhookError};
use crate::ids::random_id;

/// Longest webhook name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Most webhooks per project.
pub const MAX_WEBHOOKS: usize = 50;

/// A webhook as the API shows it; the secret only once, at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookView {
    pub id: String,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    /// Why mqchat disabled it (401/403/410, or unreachable after its retries).
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookView {
    fn from_row(row: webhook_endpoint::Model) -> WebhookView {
        WebhookView {
            events: serde_json::from_str(&row.events).unwrap_or_default(),
            id: row.id,
            name: row.name,
            url: row.url,
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
            disabled_at: row.disabled_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            secret: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    /// Generated when absent.
    pub secret: Option<String>,
    pub enabled: bool,
}

/// What `PATCH` changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookChange {
    pub name: Option<String>,
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

fn check_name(name: &str) -> Result<String, WebhookError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(WebhookError::Invalid(format!("`name` must be 1-{MAX_NAME_CHARS} characters without control characters")));
    }
    Ok(name.to_owned())
}

/// The subscribed events as stored: known names, no repeats, at least one.
fn check_events(events: &[String]) -> Result<String, WebhookError> {
    let mut known = Vec::new();
    for name in events {
        let kind = EventType::parse(name).ok_or_else(|| {
            let catalogue: Vec<&str> = EventType::ALL.iter().map(|kind| kind.as_str()).collect();
            WebhookError::Invalid(format!("unknown event {name:?}; known events: {}", catalogue.join(", ")))
        })?;
        if !known.contains(&kind.as_str()) {
            known.push(kind.as_str());
        }
    }
    if known.is_empty() {
        return Err(WebhookError::Invalid("`events` must name at least one event".into()));
    }
    Ok(serde_json::to_string(&known).unwrap_or_default())
}

/// A secret given by the site: 16-128 visible ASCII characters.
fn check_secret(secret: &str) -> Result<(), WebhookError> {
    if !(16..=128).contains(&secret.len()) || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(WebhookError::Invalid("`secret` must be 16-128 visible ASCII characters".into()));
    }
    Ok(())
}

pub async fn create_webhook(db: &DatabaseConnection, project_id: &str, new: NewWebhook) -> Result<WebhookView, WebhookError> {
    let name = check_name(&new.name)?;
    let events = check_events(&new.events)?;
    if let Some(secret) = &new.secret {
        check_secret(secret)?;
    }
    if list_webhooks(db, project_id).await?.len() >= MAX_WEBHOOKS {
        return Err(WebhookError::Conflict(format!("a project has at most {MAX_WEBHOOKS} webhooks")));
    }
    let secret = new.secret.unwrap_or_else(new_secret);
    let now = crate::clock::now();
    let row = webhook_endpoint::ActiveModel {
        id: Set(random_id("wh_", 20)),
        project_id: Set(project_id.to_owned()),
        kind: Set(EndpointKind::Webhook.as_str().to_owned()),
        name: Set(name),
        url: Set(new.url),
        secret: Set(secret.clone()),
        events: Set(events),
        enabled: Set(new.enabled),
        disabled_reason: Set(None),
        disabled_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(WebhookView { secret: Some(secret), ..WebhookView::from_row(row) })
}

pub async fn list_webhooks(db: &DatabaseConnection, project_id: &str) -> Result<Vec<WebhookView>, WebhookError> {
    Ok(webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::ProjectId.eq(project_id))
        .filter(webhook_endpoint::Column::Kind.eq(EndpointKind::Webhook.as_str()))
        .order_by_asc(webhook_endpoint::Column::CreatedAt)
        .order_by_asc(webhook_endpoint::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(WebhookView::from_row)
        .collect())
}

async fn endpoint_row(
    db: &impl ConnectionTrait,
    project_id: &str,
    id: &str,
    kind: Option<EndpointKind>,
) -> Result<webhook_endpoint::Model, WebhookError> {
    let mut query = webhook_endpoint::Entity::find_by_id(id.to_owned()).filter(webhook_endpoint::Column::ProjectId.eq(project_id));
    if let Some(kind) = kind {
        query = query.filter(webhook_endpoint::Column::Kind.eq(kind.as_str()));
    }
    query.one(db).await?.ok_or(WebhookError::NotFound("webhook"))
}

pub async fn webhook(db: &DatabaseConnection, project_id: &str, id: &str) -> Result<WebhookView, WebhookError> {
    Ok(WebhookView::from_row(endpoint_row(db, project_id, id, Some(EndpointKind::Webhook)).await?))
}

/// The endpoint of any kind (a webhook or a callback URL) of the project.
pub(super) async fn any_endpoint(
    db: &impl ConnectionTrait,
    project_id: &str,
    id: &str,
) -> Result<webhook_endpoint::Model, WebhookError> {
    endpoint_row(db, project_id, id, None).await
}

pub async fn update_webhook(
    db: &DatabaseConnection,
    project_id: &str,
    id: &str,
    change: WebhookChange,
) -> Result<WebhookView, WebhookError> {
    let row = endpoint_row(db, project_id, id, Some(EndpointKind::Webhook)).await?;
    let was_enabled = row.enabled;
    let mut active: webhook_endpoint::ActiveModel = row.into();
    if let Some(name) = change.name {
        active.name = Set(check_name(&name)?);
    }
    if let Some(events) = change.events {
        active.events = Set(check_events(&events)?);
    }
    if let Some(url) = change.url {
        active.url = Set(url);
    }
    let txn = db.begin().await?;
    if let Some(enabled) = change.enabled {
        set_enabled(&txn, &mut active, id, was_enabled, enabled, None).await?;
    }
    active.updated_at = Set(crate::clock::now());
    let row = active.update(&txn).await?;
    txn.commit().await?;
    Ok(WebhookView::from_row(row))
}

/// Enabling resumes the endpoint's paused deliveries at once; disabling
/// pauses its pending ones (kept, not lost: they resume on re-enable).
async fn set_enabled(
    db: &impl ConnectionTrait,
    active: &mut webhook_endpoint::ActiveModel,
    endpoint_id: &str,
    was_enabled: bool,
    enabled: bool,
    reason: Option<String>,
) -> Result<(), WebhookError> {
    if enabled == was_enabled {
        return Ok(());
    }
    let now = crate::clock::now();
    active.enabled = Set(enabled);
    active.disabled_at = Set((!enabled).then_some(now));
    active.disabled_reason = Set(reason);
    let (from, to) = if enabled {
        (DeliveryStatus::Paused, DeliveryStatus::Pending)
    } else {
        (DeliveryStatus::Pending, DeliveryStatus::Paused)
    };
    webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Status, Expr::value(to.as_str()))
        .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(now))
        .col_expr(webhook_delivery::Column::UpdatedAt, Expr::value(now))
        .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id))
        .filter(webhook_delivery::Column::Status.eq(from.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// Disables the endpoint after a delivery told mqchat to stop (401, 403,
/// 410) or it stayed unreachable; its pending deliveries are paused.
/// Returns false when it was disabled already.
pub async fn disable_endpoint(db: &DatabaseConnection, endpoint_id: &str, reason: &str) -> Result<bool, WebhookError> {
    let Some(row) = webhook_endpoint::Entity::find_by_id(endpoint_id.to_owned()).one(db).await? else { return Ok(false) };
    if !row.enabled {
        return Ok(false);
    }
    let txn = db.begin().await?;
    let mut active: webhook_endpoint::ActiveModel = row.into();
    set_enabled(&txn, &mut active, endpoint_id, true, false, Some(reason.to_owned())).await?;
    active.updated_at = Set(crate::clock::now());
    active.update(&txn).await?;
    txn.commit().await?;
    Ok(true)
}

/// Deletes the webhook with its delivery log; returns false when there was none.
pub async fn delete_webhook(db: &DatabaseConnection, project_id: &str, id: &str) -> Result<bool, WebhookError> {
    match endpoint_row(db, project_id, id, Some(EndpointKind::Webhook)).await {
        Ok(_) => {}
        Err(WebhookError::NotFound(_)) => return Ok(false),
        Err(error) => return Err(error),
    }
    let txn = db.begin().await?;
    delete_endpoint(&txn, id).await?;
    txn.commit().await?;
    Ok(true)
}

async fn delete_endpoint(db: &impl ConnectionTrait, id: &str) -> Result<(), WebhookError> {
    webhook_attempt::Entity::delete_many()
        .filter(
            webhook_attempt::Column::DeliveryId.in_subquery(
                Query::select()
                    .column(webhook_delivery::Column::Id)
                    .from(webhook_delivery::Entity)
                    .and_where(webhook_delivery::Column::EndpointId.eq(id))
                    .to_owned(),
            ),
        )
        .exec(db)
        .await?;
    webhook_delivery::Entity::delete_many().filter(webhook_delivery::Column::EndpointId.eq(id)).exec(db).await?;
    webhook_endpoint::Entity::delete_by_id(id.to_owned()).exec(db).await?;
    Ok(())
}

/// `PUT /api/v1/callbacks`: a URL sets (and enables) that callback, an
/// absent one removes it; both share one secret, kept unless a new one is given.
#[derive(Debug, Clone, Default)]
pub struct CallbackSettings {
    pub presence_url: Option<String>,
    pub message_url: Option<String>,
    pub secret: Option<String>,
}

/// One callback URL and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackView {
    /// `cb_…`: where its delivery log is (`/api/v1/webhooks/{id}/deliveries`).
    pub id: String,
    pub url: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbacksView {
    pub presence: Option<CallbackView>,
    pub message: Option<CallbackView>,
    /// Only when it was generated or changed by this request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

async fn callback_rows(db: &impl ConnectionTrait, project_id: &str) -> Result<Vec<webhook_endpoint::Model>, WebhookError> {
    Ok(webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::ProjectId.eq(project_id))
        .filter(
            webhook_endpoint::Column::Kind
                .is_in([EndpointKind::PresenceCallback.as_str(), EndpointKind::MessageCallback.as_str()]),
        )
        .all(db)
        .await?)
}

pub async fn callbacks(db: &DatabaseConnection, project_id: &str) -> Result<CallbacksView, WebhookError> {
    let rows = callback_rows(db, project_id).await?;
    Ok(callbacks_view(&rows, None))
}

fn callbacks_view(rows: &[webhook_endpoint::Model], secret: Option<String>) -> CallbacksView {
    let view = |kind: EndpointKind| {
        rows.iter().find(|row| row.kind == kind.as_str()).map(|row| CallbackView {
            id: row.id.clone(),
            url: row.url.clone(),
            enabled: row.enabled,
            disabled_reason: row.disabled_reason.clone(),
            disabled_at: row.disabled_at,
        })
    };
    CallbacksView { presence: view(EndpointKind::PresenceCallback), message: view(EndpointKind::MessageCallback), secret }
}

pub async fn put_callbacks(db: &DatabaseConnection, project_id: &str, settings: CallbackSettings) -> Result<CallbacksView, WebhookError> {
    if let Some(secret) = &settings.secret {
        check_secret(secret)?;
    }
    let txn = db.begin().await?;
    let existing = callback_rows(&txn, project_id).await?;
    let (secret, shown) = match (settings.secret, existing.first()) {
        (Some(secret), _) => (secret.clone(), Some(secret)),
        (None, Some(row)) => (row.secret.clone(), None),
        (None, None) => {
            let secret = new_secret();
            (secret.clone(), Some(secret))
        }
    };
    let now = crate::clock::now();
    let wanted = [
        (EndpointKind::PresenceCallback, settings.presence_url, EventType::UserPresenceChanged),
        (EndpointKind::MessageCallback, settings.message_url, EventType::MessageCreated),
    ];
    for (kind, url, event) in wanted {
        let current = existing.iter().find(|row| row.kind == kind.as_str());
        match (url, current) {
            (None, None) => {}
            (None, Some(row)) => delete_endpoint(&txn, &row.id).await?,
            (Some(url), Some(row)) => {
                let mut active: webhook_endpoint::ActiveModel = row.clone().into();
                set_enabled(&txn, &mut active, &row.id, row.enabled, true, None).await?;
                active.url = Set(url);
                active.secret = Set(secret.clone());
                active.updated_at = Set(now);
                active.update(&txn).await?;
            }
            (Some(url), None) => {
                webhook_endpoint::ActiveModel {
                    id: Set(random_id("cb_", 20)),
                    project_id: Set(project_id.to_owned()),
                    kind: Set(kind.as_str().to_owned()),
                    name: Set(kind.as_str().replace('_', " ")),
                    url: Set(url),
                    secret: Set(secret.clone()),
                    events: Set(serde_json::to_string(&[event.as_str()]).unwrap_or_default()),
                    enabled: Set(true),
                    disabled_reason: Set(None),
                    disabled_at: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
                .insert(&txn)
                .await?;
            }
        }
    }
    let rows = callback_rows(&txn, project_id).await?;
    txn.commit().await?;
    Ok(callbacks_view(&rows, shown))
}
