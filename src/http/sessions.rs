//! `POST /api/v1/users/{id}/sessions/revoke`: what a site backend does when
//! it stops trusting one user's devices (a stolen phone, a banned account).
use std::sync::Arc;

use mqchat_bridge::projects::Project;
use serde_json::json;
use warp::{Filter, Rejection, Reply};

use super::{server_project, ApiError, ApiState};

pub fn routes(state: Arc<ApiState>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    // POST /api/v1/users/{id}/sessions/revoke
    warp::path!("api" / "v1" / "users" / String / "sessions" / "revoke")
        .and(warp::post())
        .and(server_project(state))
        .and_then(revoke)
}

async fn revoke(user_id: String, state: Arc<ApiState>, project: Project) -> Result<warp::reply::Response, Rejection> {
    let revoked_at = state.engine.revoke_sessions(&project.project_id, &user_id).await.map_err(ApiError::from)?;
    Ok(warp::reply::json(&json!({"user_id": user_id, "revoked_at": revoked_at})).into_response())
}
