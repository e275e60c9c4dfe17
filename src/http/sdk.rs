//! The routes web pages and apps call with the project's public key:
//! - `GET /api/v1/sdk/config?public_key=…`: what the widget needs before it
//!   signs anyone in (open to every origin, so a page can be told plainly
//!   that its origin is not allowed);
//! - `POST /api/v1/sdk/init`: exchanges the site's identity token for a
//!   session token and the MQTT details (`{success, data: {session_token,
//!   user_id, widget_config, project_name, …}}`, plus `mqtt`);
//! - `POST /api/v1/sdk/visitor`: a session for someone not logged in, from
//!   the public key and the visitor key the widget keeps;
//! - `POST /api/v1/sdk/identify`: a visitor says who they are, with an
//!   HMAC `userHash` when the project verifies identities.
//!
//! A session token never buys another one: the site's identity token, or
//! the visitor key, is what renews a session.
use std::sync::Arc;

use mqchat_bridge::projects::browser::Verification;
use mqchat_bridge::projects::launcher_icon;
use mqchat_bridge::projects::Project;
use mqchat_bridge::users::{self, UserProfile};
use mqchat_broker::acl;
use mqchat_broker::identity::{self, now_unix, IdentityClaims, TokenError};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use warp::http::{HeaderValue, StatusCode};
use warp::{Filter, Rejection, Reply};

use super::{bearer, json_body, public_project, user, verify_user, with_state, ApiError, ApiState};

pub fn routes(state: Arc<ApiState>) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    // GET /api/v1/sdk/config?public_key=…
    let config = warp::path!("api" / "v1" / "sdk" / "config")
        .and(warp::get())
        .and(with_state(Arc::clone(&state)))
        .and(warp::query::<ConfigQuery>())
        .and(warp::header::optional::<String>("origin"))
        .and_then(config);
    // GET /api/v1/sdk/launcher-icon?public_key=…
    let icon = warp::path!("api" / "v1" / "sdk" / "launcher-icon")
        .and(warp::get())
        .and(with_state(Arc::clone(&state)))
        .and(warp::query::<ConfigQuery>())
        .and(warp::header::optional::<String>("if-none-match"))
        .and_then(launcher_icon);
    // POST /api/v1/sdk/init
    let init = warp::path!("api" / "v1" / "sdk" / "init")
        .and(warp::post())
        .and(with_state(Arc::clone(&state)))
        .and(warp::header::optional::<String>("x-public-key"))
        .and(warp::header::optional::<String>("authorization"))
        .and_then(init);
    // POST /api/v1/sdk/visitor
    let visitor = warp::path!("api" / "v1" / "sdk" / "visitor")
        .and(warp::post())
        .and(with_state(Arc::clone(&state)))
        .and(warp::header::optional::<String>("x-public-key"))
        .and(json_body())
        .and_then(visitor);
    // POST /api/v1/sdk/identify
    let identify = warp::path!("api" / "v1" / "sdk" / "identify")
        .and(warp::post())
        .and(user(state))
        .and(json_body())
        .and_then(identify);
    config.or(icon).unify().or(init).unify().or(visitor).unify().or(identify).unify()
}

#[derive(Debug, Deserialize)]
struct ConfigQuery {
    public_key: String,
}

async fn config(
    state: Arc<ApiState>,
    query: ConfigQuery,
    origin: Option<String>,
) -> Result<warp::reply::Response, Rejection> {
    let project = public_project(&state, &query.public_key).await?;
    let origin_allowed = origin.as_deref().is_none_or(|origin| project.browser.allows_origin(origin));
    let icon_set_at = launcher_icon::updated_at(&state.db, &project.project_id).await.map_err(ApiError::internal)?;
    // The version makes a changed icon a new URL for every cache.
    let icon_url = icon_set_at.map(|at| format!("{}&v={}", launcher_icon_path(&project.public_key), at.timestamp_millis()));
    let body = json!({
        "launcher_icon_url": icon_url,
        "project_name": project.name,
        "origin_allowed": origin_allowed,
        "visitors": project.browser.visitors,
        "identity_verification": project.browser.identity_verification,
        "widget_config": project.browser.widget,
    });
    let mut response = warp::reply::json(&body).into_response();
    response.headers_mut().insert("access-control-allow-origin", HeaderValue::from_static("*"));
    Ok(response)
}

/// Where the project's launcher icon is served (relative to the API).
pub fn launcher_icon_path(public_key: &str) -> String {
    format!("/api/v1/sdk/launcher-icon?public_key={public_key}")
}

/// The project's launcher icon, to any page: an image only (`nosniff`, and a
/// sandbox CSP should an SVG be opened on its own).
async fn launcher_icon(state: Arc<ApiState>, query: ConfigQuery, if_none_match: Option<String>) -> Result<warp::reply::Response, Rejection> {
    let project = public_project(&state, &query.public_key).await?;
    let missing = || ApiError::new(StatusCode::NOT_FOUND, "launcher_icon_not_found", "the project has no launcher icon");
    // The ETag is when the icon was set: a browser that has it is answered
    // without reading the file.
    let set_at = launcher_icon::updated_at(&state.db, &project.project_id).await.map_err(ApiError::internal)?.ok_or_else(missing)?;
    let etag = format!("\"{}\"", set_at.timestamp_millis());
    let (body, content_type) = if super::assets::revalidated(if_none_match.as_deref(), &etag) {
        (Bytes::new(), String::new())
    } else {
        let icon = launcher_icon::find(&state.db, &project.project_id).await.map_err(ApiError::internal)?.ok_or_else(missing)?;
        (Bytes::from(icon.bytes), icon.content_type)
    };
    let mut response = super::assets::public_file(body, &etag, &content_type, if_none_match.as_deref());
    response
        .headers_mut()
        .insert("content-security-policy", HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"));
    Ok(response)
}

fn public_key_header(public_key: Option<String>) -> Result<String, ApiError> {
    public_key.ok_or_else(|| ApiError::unauthorized("send X-Public-Key: <project public key>"))
}

async fn init(
    state: Arc<ApiState>,
    public_key: Option<String>,
    authorization: Option<String>,
) -> Result<warp::reply::Response, Rejection> {
    let public_key = public_key_header(public_key)?;
    let token = authorization
        .as_deref()
        .and_then(bearer)
        .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <identity token>"))?;
    let (project, principal) = verify_user(&state, &public_key, token).await?;
    // A session token renewing itself here would never end: only the
    // backend's identity tokens are exchanged.
    if principal.claims.is_session() {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", TokenError::SessionNotAccepted.to_string()).into());
    }
    Ok(warp::reply::json(&session_body(&state, &project, &principal.claims)?).into_response())
}

/// The answer of every route that hands out a session.
fn session_body(state: &ApiState, project: &Project, claims: &IdentityClaims) -> Result<Value, ApiError> {
    let lifetime = i64::from(project.browser.session_lifetime_seconds).min(state.session_ttl.as_secs() as i64);
    let (session_token, session) =
        identity::issue_session(&project.secret_key, claims, now_unix(), lifetime).map_err(ApiError::internal)?;
    let (p, u) = (project.project_id.as_str(), claims.sub.as_str());
    Ok(json!({
        "success": true,
        "data": {
            "session_token": session_token,
            "issued_at": session.iat,
            "expires_at": session.exp,
            "user_id": u,
            "visitor": identity::is_visitor(u),
            "project_id": p,
            "project_name": project.name,
            "widget_config": project.browser.widget,
            "mqtt": {
                "url": state.mqtt_url,
                "websocket_url": state.websocket_url,
                "username": project.public_key,
                "password": session_token,
                "protocol_version": 4,
                "topics": {
                    "inbox": acl::inbox_topic(p, u),
                    "outbox": acl::outbox_topic(p, u),
                    "status": acl::status_topic(p, u),
                    "presence": acl::presence_topic(p, "+"),
                    "conversation": acl::conversation_topic(p, "{conversation_id}"),
                    "typing": acl::typing_topic(p, "{conversation_id}"),
                }
            }
        }
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VisitorRequest {
    /// The secret the widget keeps in `localStorage`: whoever holds it is
    /// this visitor. Never shown to anyone else (the user id is its hash).
    visitor_key: String,
}

/// Visitor keys: 22 to 128 characters of the URL-safe base64 alphabet
/// (the SDK makes 32 random bytes).
fn valid_visitor_key(key: &str) -> bool {
    (22..=128).contains(&key.len()) && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// `visitor:` and 128 bits of SHA-256 of the project and key: stable for a
/// browser, and revealing nothing of the key to those who see the id.
fn visitor_id(project_id: &str, visitor_key: &str) -> String {
    let digest = Sha256::digest(format!("{project_id}\n{visitor_key}").as_bytes());
    format!("{}{}", identity::VISITOR_PREFIX, hex::encode(&digest[..16]))
}

async fn visitor(
    state: Arc<ApiState>,
    public_key: Option<String>,
    body: VisitorRequest,
) -> Result<warp::reply::Response, Rejection> {
    let project = public_project(&state, &public_key_header(public_key)?).await?;
    if !project.browser.visitors {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "visitors_disabled", "this project does not take visitors").into());
    }
    if !valid_visitor_key(&body.visitor_key) {
        return Err(ApiError::invalid("`visitor_key` is 22 to 128 characters of A-Z a-z 0-9 - _").into());
    }
    let user_id = visitor_id(&project.project_id, &body.visitor_key);
    let profile = users::find(&state.db, &project.project_id, &user_id).await.map_err(ApiError::internal)?;
    // A visitor has no one to sign in again with: once the backend revoked
    // its sessions, its key opens none (the widget starts a new visitor).
    if profile.as_ref().is_some_and(|user| user.sessions_revoked_at.is_some()) {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", TokenError::Revoked.to_string()).into());
    }
    let now = now_unix();
    let claims = IdentityClaims {
        sub: user_id.clone(),
        name: profile.as_ref().and_then(|user| user.name.clone()),
        email: profile.as_ref().and_then(|user| user.email.clone()),
        avatar_url: None,
        iat: now,
        exp: now,
        iss: None,
    };
    if profile.is_none() {
        users::ensure_exists(&state.db, &project.project_id, &user_id).await.map_err(ApiError::internal)?;
    }
    Ok(warp::reply::json(&session_body(&state, &project, &claims)?).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentifyRequest {
    /// The site's own id of the person.
    user_id: String,
    name: Option<String>,
    email: Option<String>,
    /// Hex HMAC-SHA256 of `user_id` under the project's identity secret.
    user_hash: Option<String>,
}

async fn identify(state: Arc<ApiState>, project: Project, visitor_id: String, body: IdentifyRequest) -> Result<warp::reply::Response, Rejection> {
    if !identity::is_visitor(&visitor_id) {
        return Err(ApiError::invalid("only a visitor identifies; a signed-in user already has an identity").into());
    }
    if !users::valid_id(&body.user_id) {
        return Err(ApiError::invalid("`user_id` is 1-128 characters of A-Z a-z 0-9 _ . : @ -").into());
    }
    let claimed = IdentityClaims {
        sub: visitor_id.clone(),
        name: body.name,
        email: body.email,
        avatar_url: None,
        iat: 0,
        exp: 0,
        iss: None,
    };
    identity::check_profile(&claimed).map_err(|error| ApiError::invalid(error.to_string()))?;
    let mode = project.browser.identity_verification;
    let verified = mode != Verification::Off
        && body.user_hash.as_deref().is_some_and(|hash| project.browser.verifies(&body.user_id, hash));
    if mode == Verification::Required && !verified {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "identity_not_verified",
            "this project requires a valid userHash (hex HMAC-SHA256 of userId under its identity verification secret)",
        )
        .into());
    }
    let (p, u) = (project.project_id.as_str(), visitor_id.as_str());
    let profile = UserProfile { external_id: u.to_owned(), name: claimed.name.clone(), email: claimed.email.clone(), avatar_url: None };
    users::upsert(&state.db, p, &profile).await.map_err(ApiError::internal)?;
    users::record_identity(&state.db, p, u, &body.user_id, verified).await.map_err(ApiError::internal)?;
    let mut answer = session_body(&state, &project, &claimed)?;
    answer["data"]["identity"] = json!({"user_id": body.user_id, "verified": verified});
    Ok(warp::reply::json(&answer).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visitor_ids_are_stable_per_project_and_hide_the_key() {
        let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let id = visitor_id("prj_a", key);
        assert_eq!(id, visitor_id("prj_a", key));
        assert_ne!(id, visitor_id("prj_b", key));
        assert!(id.starts_with("visitor:") && !id.contains(key));
        assert!(users::valid_id(&id));
        assert!(valid_visitor_key(key));
        for bad in ["short", "has space in it and is long enough", &"x".repeat(129)] {
            assert!(!valid_visitor_key(bad), "{bad}");
        }
    }
}
