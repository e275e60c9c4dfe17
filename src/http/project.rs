//! The project's own settings through the server API: rotating its secret
//! key, and which conversation types its end users may create.
use std::sync::Arc;

use chrono::Duration;
use mqchat_bridge::conversations::ConversationKind;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    /// Conversation types end users may create over MQTT.
    user_conversation_types: Vec<ConversationKind>,
}

pub fn routes(state: Arc<ApiState>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    // POST /api/v1/project/rotate-secret
    let rotate = warp::path!("api" / "v1" / "project" / "rotate-secret")
        .and(warp::post())
        .and(server_project(Arc::clone(&state)))
        .and(json_body())
        .and_then(rotate);
    // PATCH /api/v1/project
    let policy = warp::path!("api" / "v1" / "project")
        .and(warp::patch())
        .and(server_project(state))
        .and(json_body())
        .and_then(set_policy);
    rotate.or(policy)
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

async fn set_policy(state: Arc<ApiState>, project: Project, body: Policy) -> Result<warp::reply::Response, Rejection> {
    let updated = projects::set_user_conversation_types(&state.db, &project.project_id, &body.user_conversation_types)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "project_not_found", "the project is gone"))?;
    Ok(warp::reply::json(&updated).into_response())
}
