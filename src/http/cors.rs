//! CORS for web pages: which origins may call the browser-facing routes.
//!
//! A preflight (`OPTIONS`) does not say which project it is for (browsers
//! send no custom header with it), so it is granted to an origin that some
//! project allows and refused to any other. The request itself names its
//! project (`X-Public-Key`), and is refused with 403 `origin_not_allowed`
//! unless that project allows the page's origin — without the
//! `Access-Control-Allow-Origin` header, so the page learns nothing more.
//! `GET /api/v1/sdk/config` is open to every origin: it is how the SDK
//! tells a site, in plain words, that its origin is not allowed.
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use mqchat_bridge::projects;
use warp::http::{HeaderValue, StatusCode};
use warp::{Filter, Rejection, Reply};

use super::{with_state, ApiError, ApiState};

/// How long the union of every project's origins is kept before it is read
/// again (a change through the server API clears it at once).
const ORIGINS_CACHE_TTL: Duration = Duration::from_secs(30);
/// How long a browser may reuse a preflight answer.
const PREFLIGHT_MAX_AGE_SECS: u32 = 600;
const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
const ALLOWED_HEADERS: &str = "authorization, content-type, x-public-key";

/// Every origin some project allows, or "any" when a project allows all.
#[derive(Default)]
pub struct KnownOrigins {
    cached: RwLock<Option<(Instant, Arc<Origins>)>>,
}

enum Origins {
    Any,
    Listed(Vec<String>),
}

impl KnownOrigins {
    /// Forgets what was read, after a project's origins changed.
    pub fn forget(&self) {
        if let Ok(mut cached) = self.cached.write() {
            *cached = None;
        }
    }

    async fn allows(&self, db: &mqchat_bridge::DatabaseConnection, origin: &str) -> Result<bool, ApiError> {
        let fresh = self.cached.read().ok().and_then(|cached| {
            cached.as_ref().filter(|(read_at, _)| read_at.elapsed() < ORIGINS_CACHE_TTL).map(|(_, origins)| Arc::clone(origins))
        });
        let origins = match fresh {
            Some(origins) => origins,
            None => {
                let all = projects::list(db).await.map_err(ApiError::internal)?;
                let origins = if all.iter().any(|project| project.browser.allowed_origins.is_empty()) {
                    Origins::Any
                } else {
                    Origins::Listed(all.into_iter().flat_map(|project| project.browser.allowed_origins).collect())
                };
                let origins = Arc::new(origins);
                if let Ok(mut cached) = self.cached.write() {
                    *cached = Some((Instant::now(), Arc::clone(&origins)));
                }
                origins
            }
        };
        Ok(match origins.as_ref() {
            Origins::Any => true,
            Origins::Listed(listed) => listed.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)),
        })
    }
}

/// `OPTIONS` on any API path: granted to origins some project allows.
pub fn preflight(state: Arc<ApiState>) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::options().and(with_state(state)).and(warp::header::optional::<String>("origin")).then(
        |state: Arc<ApiState>, origin: Option<String>| async move {
            let Some(origin) = origin else {
                return StatusCode::NO_CONTENT.into_response();
            };
            match state.origins.allows(&state.db, &origin).await {
                Ok(true) => {
                    let mut response = StatusCode::NO_CONTENT.into_response();
                    let headers = response.headers_mut();
                    allow_origin(headers, &origin);
                    headers.insert("access-control-allow-methods", HeaderValue::from_static(ALLOWED_METHODS));
                    headers.insert("access-control-allow-headers", HeaderValue::from_static(ALLOWED_HEADERS));
                    headers.insert("access-control-max-age", HeaderValue::from(PREFLIGHT_MAX_AGE_SECS));
                    response
                }
                Ok(false) => origin_refused(&origin).reply(),
                Err(error) => error.reply(),
            }
        },
    )
}

/// Lets a request through when its page's origin is allowed by the project
/// it names; extracts the origin to echo on the answer.
pub fn guard(state: Arc<ApiState>) -> impl Filter<Extract = (Option<String>,), Error = Rejection> + Clone {
    with_state(state)
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("x-public-key"))
        .and_then(|state: Arc<ApiState>, origin: Option<String>, public_key: Option<String>| async move {
            if let (Some(origin), Some(public_key)) = (&origin, &public_key) {
                let project = state.authorizer.project(public_key).await.map_err(ApiError::internal)?;
                if project.is_some_and(|project| !project.browser.allows_origin(origin)) {
                    return Err(Rejection::from(origin_refused(origin)));
                }
            }
            Ok::<_, Rejection>(origin)
        })
}

/// Adds the CORS headers of an allowed request to its answer.
pub fn answer(origin: Option<String>, mut response: warp::reply::Response) -> warp::reply::Response {
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        if !headers.contains_key("access-control-allow-origin") {
            allow_origin(headers, &origin);
        }
    }
    response
}

fn allow_origin(headers: &mut warp::http::HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert("access-control-allow-origin", value);
        headers.append("vary", HeaderValue::from_static("Origin"));
    }
}

fn origin_refused(origin: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "origin_not_allowed",
        format!("the origin {origin:?} is not in the project's allowed_origins"),
    )
}
