//! Server API for webhooks, callback URLs and their delivery log (secret
//! key). Every change reloads the outbox's directory, so the next event
//! already goes (or no longer goes) to the changed endpoint.
use std::sync::Arc;

use mqchat_bridge::projects::Project;
use mqchat_bridge::webhooks::{self, CallbackSettings, DeliveryStatus, NewWebhook, WebhookChange, WebhookError};
use mqchat_delivery::dispatcher::test_body;
use mqchat_delivery::Delivery;
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::{json_body, server_project, ApiError, ApiState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWebhook {
    name: String,
    url: String,
    events: Vec<String>,
    secret: Option<String>,
    #[serde(default = "enabled")]
    enabled: bool,
}

fn enabled() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchWebhook {
    name: Option<String>,
    url: Option<String>,
    events: Option<Vec<String>>,
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutCallbacks {
    presence_url: Option<String>,
    message_url: Option<String>,
    secret: Option<String>,
}

/// `?status=&limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    status: Option<String>,
    limit: Option<u64>,
}

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::NotFound(what) => {
                ApiError::new(StatusCode::NOT_FOUND, if what == "delivery" { "delivery_not_found" } else { "webhook_not_found" }, error.to_string())
            }
            WebhookError::Invalid(message) => ApiError::invalid(message),
            WebhookError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            WebhookError::Database(error) => ApiError::internal(error),
        }
    }
}

pub fn routes(state: Arc<ApiState>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let secret = || server_project(Arc::clone(&state));
    // POST /api/v1/webhooks
    let create = warp::path!("api" / "v1" / "webhooks").and(warp::post()).and(secret()).and(json_body()).and_then(create);
    // GET /api/v1/webhooks
    let list = warp::path!("api" / "v1" / "webhooks").and(warp::get()).and(secret()).and_then(list);
    // GET /api/v1/webhooks/{id}
    let get = warp::path!("api" / "v1" / "webhooks" / String).and(warp::get()).and(secret()).and_then(get);
    // PATCH /api/v1/webhooks/{id}
    let patch =
        warp::path!("api" / "v1" / "webhooks" / String).and(warp::patch()).and(secret()).and(json_body()).and_then(patch);
    // DELETE /api/v1/webhooks/{id}
    let delete = warp::path!("api" / "v1" / "webhooks" / String).and(warp::delete()).and(secret()).and_then(delete);
    // POST /api/v1/webhooks/{id}/test
    let test = warp::path!("api" / "v1" / "webhooks" / String / "test").and(warp::post()).and(secret()).and_then(test);
    // GET /api/v1/webhooks/{id}/deliveries?status=&limit=
    let log = warp::path!("api" / "v1" / "webhooks" / String / "deliveries")
        .and(warp::get())
        .and(secret())
        .and(warp::query::<LogQuery>())
        .and_then(log);
    // POST /api/v1/deliveries/{id}/retry
    let retry = warp::path!("api" / "v1" / "deliveries" / String / "retry").and(warp::post()).and(secret()).and_then(retry);
    // PUT /api/v1/callbacks
    let put_callbacks =
        warp::path!("api" / "v1" / "callbacks").and(warp::put()).and(secret()).and(json_body()).and_then(put_callbacks);
    // GET /api/v1/callbacks
    let get_callbacks = warp::path!("api" / "v1" / "callbacks").and(warp::get()).and(secret()).and_then(get_callbacks);
    create
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(patch)
        .unify()
        .or(delete)
        .unify()
        .or(test)
        .unify()
        .or(log)
        .unify()
        .or(retry)
        .unify()
        .or(put_callbacks)
        .unify()
        .or(get_callbacks)
        .unify()
}

type Response = Result<warp::reply::Response, Rejection>;

fn json_reply(status: StatusCode, body: &impl serde::Serialize) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// The URL as stored, once it passed the target policy (its host name
/// resolved now, too).
async fn check_url(state: &ApiState, url: &str) -> Result<String, ApiError> {
    let checked = state.webhook_targets.check_resolved(url).await;
    checked.map(|url| url.to_string()).map_err(|error| ApiError::invalid(error.to_string()))
}

async fn check_optional_url(state: &ApiState, url: Option<&str>) -> Result<Option<String>, ApiError> {
    match url {
        Some(url) => check_url(state, url).await.map(Some),
        None => Ok(None),
    }
}

async fn reload(state: &ApiState) -> Result<(), ApiError> {
    let outbox = state.engine.outbox();
    outbox.reload(&state.db).await.map_err(ApiError::internal)?;
    // Re-enabled endpoints' deliveries are due now.
    outbox.rescan();
    crate::invalidation::announce(&state.db, &crate::invalidation::Notice::Webhooks).await;
    Ok(())
}

async fn create(state: Arc<ApiState>, project: Project, body: CreateWebhook) -> Response {
    let url = check_url(&state, &body.url).await?;
    let new = NewWebhook { name: body.name, url, events: body.events, secret: body.secret, enabled: body.enabled };
    let webhook = webhooks::create_webhook(&state.db, &project.project_id, new).await.map_err(ApiError::from)?;
    reload(&state).await?;
    Ok(json_reply(StatusCode::CREATED, &webhook))
}

async fn list(state: Arc<ApiState>, project: Project) -> Response {
    let list = webhooks::list_webhooks(&state.db, &project.project_id).await.map_err(ApiError::from)?;
    Ok(json_reply(StatusCode::OK, &json!({"webhooks": list})))
}

async fn get(id: String, state: Arc<ApiState>, project: Project) -> Response {
    let webhook = webhooks::webhook(&state.db, &project.project_id, &id).await.map_err(ApiError::from)?;
    Ok(json_reply(StatusCode::OK, &webhook))
}

async fn patch(id: String, state: Arc<ApiState>, project: Project, body: PatchWebhook) -> Response {
    let url = check_optional_url(&state, body.url.as_deref()).await?;
    let change = WebhookChange { name: body.name, url, events: body.events, enabled: body.enabled };
    let webhook = webhooks::update_webhook(&state.db, &project.project_id, &id, change).await.map_err(ApiError::from)?;
    reload(&state).await?;
    Ok(json_reply(StatusCode::OK, &webhook))
}

async fn delete(id: String, state: Arc<ApiState>, project: Project) -> Response {
    if !webhooks::delete_webhook(&state.db, &project.project_id, &id).await.map_err(ApiError::from)? {
        return Err(ApiError::from(WebhookError::NotFound("webhook")).into());
    }
    reload(&state).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Sends a synthetic event now and answers with what came of it; like
/// seed 000's test action, it is not recorded in the delivery log.
async fn test(id: String, state: Arc<ApiState>, project: Project) -> Response {
    let endpoint = state
        .engine
        .outbox()
        .endpoint(&id)
        .filter(|endpoint| endpoint.project_id == project.project_id)
        .ok_or_else(|| ApiError::from(WebhookError::NotFound("webhook")))?;
    let event_id = webhooks::new_event_id();
    let (event_type, body) = test_body(&endpoint, &event_id);
    let delivery = Delivery {
        url: &endpoint.url,
        secret: &endpoint.secret,
        event_id: &event_id,
        event_type: &event_type,
        body: &body,
        test: true,
    };
    let attempt = state.webhook_sender.send(delivery).await;
    Ok(json_reply(
        StatusCode::OK,
        &json!({
            "event_id": event_id,
            "delivered": attempt.delivered(),
            "status_code": attempt.status_code,
            "error": attempt.error,
            "latency_ms": attempt.latency.as_millis(),
        }),
    ))
}

async fn log(id: String, state: Arc<ApiState>, project: Project, query: LogQuery) -> Response {
    let status = match query.status.as_deref() {
        None => None,
        Some(name) => Some(DeliveryStatus::parse(name).ok_or_else(|| {
            ApiError::invalid(format!("unknown status {name:?}: pending, delivered, failed or paused"))
        })?),
    };
    let limit = query.limit.unwrap_or(50);
    let deliveries =
        webhooks::delivery_log(&state.db, &project.project_id, &id, status, limit).await.map_err(ApiError::from)?;
    Ok(json_reply(StatusCode::OK, &json!({"deliveries": deliveries})))
}

async fn retry(id: String, state: Arc<ApiState>, project: Project) -> Response {
    let delivery = webhooks::retry(&state.db, &project.project_id, &id).await.map_err(ApiError::from)?;
    state.engine.outbox().rescan();
    Ok(json_reply(StatusCode::ACCEPTED, &delivery))
}

async fn put_callbacks(state: Arc<ApiState>, project: Project, body: PutCallbacks) -> Response {
    let presence_url = check_optional_url(&state, body.presence_url.as_deref()).await?;
    let message_url = check_optional_url(&state, body.message_url.as_deref()).await?;
    let settings = CallbackSettings { presence_url, message_url, secret: body.secret };
    let view = webhooks::put_callbacks(&state.db, &project.project_id, settings).await.map_err(ApiError::from)?;
    reload(&state).await?;
    Ok(json_reply(StatusCode::OK, &view))
}

async fn get_callbacks(state: Arc<ApiState>, project: Project) -> Response {
    let view = webhooks::callbacks(&state.db, &project.project_id).await.map_err(ApiError::from)?;
    Ok(json_reply(StatusCode::OK, &view))
}
