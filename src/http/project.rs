//! The project's own settings through the server API: reading them,
//! rotating its secret key, which conversation types its end users may
//! create, and what web pages may do (origins, identity verification,
//! visitors, session lifetime, the widget).
use std::sync::Arc;

use chrono::Duration;
use mqchat_bridge::conversations::ConversationKind;
use bytes::Bytes;
use mqchat_bridge::projects::browser::BrowserChanges;
use mqchat_bridge::projects::launcher_icon::{self, LauncherIcon, MAX_ICON_BYTES};
use mqchat_bridge::projects::{self, Project};
use serde::Deserialize;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::{json_body, server_project, ApiError, ApiState};

/// Grace period of a rotated key when the request names none.
const DEFAULT_GRACE_SECS: u64 = 24 * 3600;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotate {
    /// How long the replaced key keeps working, in seconds (0 ends it now).
    grace_seconds: Option<u64>,
}

/// `PATCH /api/v1/project`: the fields to change, all optional. The
/// browser ones are `BrowserChanges`' fields, listed again here because
/// serde cannot refuse unknown fields through a flattened struct.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Changes {
    /// Conversation types end users may create over MQTT.
    user_conversation_types: Option<Vec<ConversationKind>>,
    allowed_origins: Option<Vec<String>>,
    identity_verification: Option<projects::browser::Verification>,
    identity_verification_secret: Option<String>,
    visitors: Option<bool>,
    session_lifetime_seconds: Option<u32>,
    widget: Option<serde_json::Map<String, serde_json::Value>>,
}

pub fn routes(state: Arc<ApiState>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    // POST /api/v1/project/rotate-secret
    let rotate = warp::path!("api" / "v1" / "project" / "rotate-secret")
        .and(warp::post())
        .and(server_project(Arc::clone(&state)))
        .and(json_body())
        .and_then(rotate);
    // GET /api/v1/project
    let show = warp::path!("api" / "v1" / "project")
        .and(warp::get())
        .and(server_project(Arc::clone(&state)))
        .map(|_state: Arc<ApiState>, project: Project| warp::reply::json(&project).into_response());
    // PATCH /api/v1/project
    let change = warp::path!("api" / "v1" / "project")
        .and(warp::patch())
        .and(server_project(Arc::clone(&state)))
        .and(json_body())
        .and_then(change);
    // PUT /api/v1/project/launcher-icon (the body is the PNG or SVG)
    let set_icon = warp::path!("api" / "v1" / "project" / "launcher-icon")
        .and(warp::put())
        .and(server_project(Arc::clone(&state)))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::content_length_limit(MAX_ICON_BYTES as u64))
        .and(warp::body::bytes())
        .and_then(set_icon);
    // DELETE /api/v1/project/launcher-icon
    let remove_icon = warp::path!("api" / "v1" / "project" / "launcher-icon")
        .and(warp::delete())
        .and(server_project(Arc::clone(&state)))
        .and_then(remove_icon);
    rotate.or(show).or(change).or(set_icon).or(remove_icon)
}

async fn rotate(state: Arc<ApiState>, project: Project, body: Rotate) -> Result<warp::reply::Response, Rejection> {
    let grace = body.grace_seconds.unwrap_or(DEFAULT_GRACE_SECS);
    let max = projects::MAX_ROTATION_GRACE.num_seconds().unsigned_abs();
    if grace > max {
        return Err(ApiError::invalid(format!("`grace_seconds` is at most {max}")).into());
    }
    let grace = Duration::seconds(i64::try_from(grace).unwrap_or(i64::MAX));
    let rotated = projects::rotate_secret(&state.db, &project.project_id, grace)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "project_not_found", "the project is gone"))?;
    state.project_changed(&rotated.public_key).await;
    Ok(warp::reply::json(&rotated).into_response())
}

async fn change(state: Arc<ApiState>, project: Project, body: Changes) -> Result<warp::reply::Response, Rejection> {
    // Every change is checked before anything is stored, then all are
    // stored in one write.
    let browser = BrowserChanges {
        allowed_origins: body.allowed_origins,
        identity_verification: body.identity_verification,
        identity_verification_secret: body.identity_verification_secret,
        visitors: body.visitors,
        session_lifetime_seconds: body.session_lifetime_seconds,
        widget: body.widget,
    }
    .apply(&project.browser, projects::fresh_identity_secret)
    .map_err(ApiError::invalid)?;
    let updated = projects::update_settings(&state.db, &project.project_id, body.user_conversation_types.as_deref(), &browser)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "project_not_found", "the project is gone"))?;
    state.project_changed(&project.public_key).await;
    Ok(warp::reply::json(&updated).into_response())
}

async fn set_icon(state: Arc<ApiState>, project: Project, content_type: Option<String>, body: Bytes) -> Result<warp::reply::Response, Rejection> {
    let icon = LauncherIcon::parse(content_type.as_deref().unwrap_or_default(), body.to_vec()).map_err(ApiError::invalid)?;
    launcher_icon::set(&state.db, &project.project_id, &icon).await.map_err(ApiError::internal)?;
    let body = serde_json::json!({"content_type": icon.content_type, "size": icon.bytes.len(), "url": super::sdk::launcher_icon_path(&project.public_key)});
    Ok(warp::reply::json(&body).into_response())
}

async fn remove_icon(state: Arc<ApiState>, project: Project) -> Result<warp::reply::Response, Rejection> {
    if launcher_icon::remove(&state.db, &project.project_id).await.map_err(ApiError::internal)? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "launcher_icon_not_found", "the project has no launcher icon").into())
    }
}
