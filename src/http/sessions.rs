//! What a site backend does when trust changes: revoke one user's sessions
//! (a stolen device, a banned account) and rotate the project's secret key.
use std::sync::Arc;

use chrono::Duration;
use mqchat_bridge::projects::{self, Project};
use serde::Deserialize;
use serde_json::json;
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

pub fn routes(state: Arc<ApiState>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    // POST /api/v1/users/{id}/sessions/revoke
    let revoke = warp::path!("api" / "v1" / "users" / String / "sessions" / "revoke")
        .and(warp::post())
        .and(server_project(Arc::clone(&state)))
        .and_then(revoke);
    // POST /api/v1/project/rotate-secret
    let rotate = warp::path!("api" / "v1" / "project" / "rotate-secret")
        .and(warp::post())
        .and(server_project(state))
        .and(json_body())
        .and_then(rotate);
    revoke.or(rotate)
}

async fn revoke(user_id: String, state: Arc<ApiState>, project: Project) -> Result<warp::reply::Response, Rejection> {
    let revoked_at = state.engine.revoke_sessions(&project.project_id, &user_id).await.map_err(ApiError::from)?;
    Ok(warp::reply::json(&json!({"user_id": user_id, "revoked_at": revoked_at})).into_response())
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
    state.authorizer.forget(&rotated.public_key);
    Ok(warp::reply::json(&rotated).into_response())
}
