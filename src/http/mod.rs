//! The HTTP API (warp): `sdk/init` for widgets and apps, the server API for
//! site backends. Each route's filter sits beside its handler; state comes in
//! through `with_state`, and one `recover` shapes every error.
mod conversations;
mod errors;
mod sdk;

use std::sync::Arc;
use std::time::Duration;

use mqchat_bridge::cache::EngineCache;
use mqchat_bridge::projects::{self, Project};
use mqchat_bridge::DatabaseConnection;
use mqchat_broker::{PlatformPublisher, Registry};
use warp::{Filter, Rejection, Reply};

use crate::authorizer::ChatAuthorizer;
pub use errors::ApiError;

/// Largest JSON body accepted by the API.
const MAX_BODY_BYTES: u64 = 64 * 1024;

/// What the handlers share.
pub struct ApiState {
    pub db: DatabaseConnection,
    pub authorizer: Arc<ChatAuthorizer>,
    pub registry: Arc<Registry>,
    /// The chat engine's cache of memberships, told of every change here.
    pub cache: Arc<EngineCache>,
    pub publisher: PlatformPublisher,
    /// How clients reach the MQTT listeners (returned by `sdk/init`).
    pub mqtt_url: String,
    pub websocket_url: String,
    pub session_ttl: Duration,
}

pub fn routes(state: Arc<ApiState>) -> impl Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible> + Clone {
    let health = warp::path!("healthz").and(warp::get()).map(|| warp::reply::json(&serde_json::json!({"status": "ok"})));
    let api = sdk::routes(Arc::clone(&state)).or(conversations::routes(state));
    health
        .map(Reply::into_response)
        .or(api.map(Reply::into_response))
        .unify()
        .recover(errors::recover)
        .unify()
}

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
            match projects::find_by_secret_key(&state.db, secret_key).await {
                Ok(Some(project)) => Ok((state, project)),
                Ok(None) => Err(Rejection::from(ApiError::unauthorized("unknown secret key"))),
                Err(error) => Err(Rejection::from(ApiError::internal(error))),
            }
        },
    )
    .untuple_one()
}
