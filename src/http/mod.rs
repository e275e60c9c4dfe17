//! The HTTP API (warp): `sdk/init` for widgets and apps, the server API for
//! site backends, uploads and history for both. Each route's filter sits
//! beside its handler; state comes in through `with_state`, and one
//! `recover` shapes every error.
mod assets;
mod conversations;
mod cors;
mod errors;
mod internal;
mod presence;
mod project;
mod sdk;
mod sessions;
mod uploads;
mod users;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use mqchat_bridge::commands::Engine;
use mqchat_bridge::projects::{self, Project};
use mqchat_bridge::DatabaseConnection;
use mqchat_broker::Principal;
use warp::{Filter, Rejection, Reply};

use crate::authorizer::ChatAuthorizer;
pub use errors::ApiError;
pub use internal::PlatformAccess;

/// Largest JSON body accepted by the API.
const MAX_BODY_BYTES: u64 = 64 * 1024;

/// What the handlers share.
pub struct ApiState {
    pub db: DatabaseConnection,
    pub authorizer: Arc<ChatAuthorizer>,
    /// The chat engine: every change goes through it, so the API publishes
    /// the same events as the MQTT commands.
    pub engine: Arc<Engine>,
    /// How clients reach the MQTT listeners (returned by `sdk/init`).
    pub mqtt_url: String,
    pub websocket_url: String,
    pub session_ttl: Duration,
    /// Which webhook and callback URLs are accepted.
    pub webhook_targets: mqchat_delivery::TargetPolicy,
    /// Sends test events (the dispatcher's client).
    pub webhook_sender: mqchat_delivery::Sender,
    /// The broker, probed by `/readyz`.
    pub broker: crate::app::BrokerProbe,
    /// The internal API for the broker's plugin and EMQX, when a platform
    /// secret is set.
    pub platform: Option<PlatformAccess>,
    /// Every origin some project allows (CORS preflights).
    pub origins: cors::KnownOrigins,
}

impl ApiState {
    /// After a project's keys or settings changed: this process's caches,
    /// the broker's plugin and the other instances forget it.
    pub async fn project_changed(&self, public_key: &str) {
        self.authorizer.forget(public_key);
        self.origins.forget();
        if let Some(platform) = &self.platform {
            platform.project_changed(public_key);
        }
        crate::invalidation::announce(&self.db, &crate::invalidation::Notice::Project { public_key: public_key.to_owned() }).await;
    }
}

pub fn routes(state: Arc<ApiState>) -> impl Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible> + Clone {
    // GET /healthz: the process answers (liveness).
    let health = warp::path!("healthz").and(warp::get()).map(|| warp::reply::json(&serde_json::json!({"status": "ok"})));
    // GET /readyz: the database and the broker answer too (readiness).
    let ready = warp::path!("readyz").and(warp::get()).and(with_state(Arc::clone(&state))).then(readiness);
    let health = health.map(Reply::into_response).or(ready).unify();
    let api = sdk::routes(Arc::clone(&state))
        .or(conversations::routes(Arc::clone(&state)))
        .or(uploads::routes(Arc::clone(&state)))
        .or(presence::routes(Arc::clone(&state)))
        .or(sessions::routes(Arc::clone(&state)))
        .or(users::routes(Arc::clone(&state)))
        .or(project::routes(Arc::clone(&state)))
        .or(webhooks::routes(Arc::clone(&state)))
        .or(internal::routes(Arc::clone(&state)))
        .map(Reply::into_response)
        .recover(errors::recover)
        .unify();
    // Errors carry the CORS headers too, so an allowed page can read them.
    let api = cors::guard(Arc::clone(&state)).and(api).map(cors::answer);
    health
        .or(assets::routes())
        .unify()
        .or(cors::preflight(state))
        .unify()
        .or(api)
        .unify()
        .recover(errors::recover)
        .unify()
}

/// 200 when every dependency answers, else 503 naming what failed.
async fn readiness(state: Arc<ApiState>) -> warp::reply::Response {
    let database = match tokio::time::timeout(READINESS_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer in time".to_owned()),
    };
    let broker = state.broker.probe();
    let ready = database.is_ok() && broker.is_ok();
    let check = |result: &Result<(), String>| match result {
        Ok(()) => serde_json::json!("ok"),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            serde_json::json!("unavailable")
        }
    };
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": {"database": check(&database), "broker": check(&broker)},
    });
    let status = if ready { warp::http::StatusCode::OK } else { warp::http::StatusCode::SERVICE_UNAVAILABLE };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

/// How long `/readyz` waits for the database.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

fn with_state(state: Arc<ApiState>) -> impl Filter<Extract = (Arc<ApiState>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || Arc::clone(&state))
}

fn json_body<T: serde::de::DeserializeOwned + Send>() -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::body::content_length_limit(MAX_BODY_BYTES).and(warp::body::json())
}

fn bearer(header: &str) -> Option<&str> {
    header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).map(str::trim)
}

/// The project whose secret key is the request's bearer token (server API).
fn server_project(state: Arc<ApiState>) -> impl Filter<Extract = (Arc<ApiState>, Project), Error = Rejection> + Clone {
    with_state(state).and(warp::header::optional::<String>("authorization")).and_then(
        |state: Arc<ApiState>, authorization: Option<String>| async move {
            let secret_key = authorization
                .as_deref()
                .and_then(bearer)
                .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <secret key>"))?;
            let project = secret_key_project(&state, secret_key).await?;
            Ok::<_, Rejection>((state, project))
        },
    )
    .untuple_one()
}

async fn secret_key_project(state: &ApiState, secret_key: &str) -> Result<Project, ApiError> {
    match projects::find_by_secret_key(&state.db, secret_key).await {
        Ok(Some(project)) => Ok(project),
        Ok(None) => Err(ApiError::unauthorized("unknown secret key")),
        Err(error) => Err(ApiError::internal(error)),
    }
}

/// Who calls a route open to both the site backend and its users.
pub enum Caller {
    /// `Authorization: Bearer <secret key>`: sees the whole project.
    Server(Project),
    /// `X-Public-Key` + `Authorization: Bearer <session or identity token>`.
    User(Project, String),
}

impl Caller {
    fn project(&self) -> &Project {
        match self {
            Caller::Server(project) | Caller::User(project, _) => project,
        }
    }
}

/// A secret key, or a project public key with a user's token.
fn caller(state: Arc<ApiState>) -> impl Filter<Extract = (Arc<ApiState>, Caller), Error = Rejection> + Clone {
    with_state(state)
        .and(warp::header::optional::<String>("x-public-key"))
        .and(warp::header::optional::<String>("authorization"))
        .and_then(|state: Arc<ApiState>, public_key: Option<String>, authorization: Option<String>| async move {
            let caller = identify(&state, public_key.as_deref(), authorization.as_deref()).await?;
            Ok::<_, Rejection>((state, caller))
        })
        .untuple_one()
}

/// Like `caller`, for routes only users call.
fn user(state: Arc<ApiState>) -> impl Filter<Extract = (Arc<ApiState>, Project, String), Error = Rejection> + Clone {
    caller(state)
        .and_then(|state: Arc<ApiState>, caller: Caller| async move {
            match caller {
                Caller::User(project, user_id) => Ok((state, project, user_id)),
                Caller::Server(_) => Err(Rejection::from(ApiError::unauthorized(
                    "this route acts for a user: send X-Public-Key and the user's session token",
                ))),
            }
        })
        .untuple_one()
}

async fn identify(state: &ApiState, public_key: Option<&str>, authorization: Option<&str>) -> Result<Caller, ApiError> {
    let token = authorization
        .and_then(bearer)
        .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <secret key or session token>"))?;
    let Some(public_key) = public_key else {
        return Ok(Caller::Server(secret_key_project(state, token).await?));
    };
    let (project, principal) = verify_user(state, public_key, token).await?;
    Ok(Caller::User(project.as_ref().clone(), principal.user_id.as_str().to_owned()))
}

/// The project whose public key this is (read through the authorizer's cache).
async fn public_project(state: &ApiState, public_key: &str) -> Result<Arc<Project>, ApiError> {
    state.authorizer.project(public_key).await.map_err(ApiError::internal)?.ok_or_else(|| ApiError::unauthorized("unknown public key"))
}

/// The project of `public_key` and the user `token` (identity or session) names.
async fn verify_user(state: &ApiState, public_key: &str, token: &str) -> Result<(Arc<Project>, Principal), ApiError> {
    let project = public_project(state, public_key).await?;
    let principal = state.authorizer.verify_token(&project, token).await.map_err(|error| match error {
        mqchat_broker::AuthError::Unavailable(message) => ApiError::internal(message),
        other => ApiError::new(warp::http::StatusCode::UNAUTHORIZED, "invalid_token", other.to_string()),
    })?;
    Ok((project, principal))
}
