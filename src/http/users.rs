//! Users through the server API: what mqchat knows of one (profile,
//! whether it is an agent, what a visitor said about who they are), and
//! marking the agents who answer visitors' support conversations.
use std::sync::Arc;

use mqchat_bridge::projects::Project;
use mqchat_bridge::users;
use mqchat_broker::identity;
use serde::Deserialize;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::{json_body, server_project, ApiError, ApiState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Changes {
    /// Agents are added to every support conversation opened after.
    agent: bool,
}

pub fn routes(state: Arc<ApiState>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    // GET /api/v1/users/{id}
    let show = warp::path!("api" / "v1" / "users" / String).and(warp::get()).and(server_project(Arc::clone(&state))).and_then(show);
    // PATCH /api/v1/users/{id}
    let change =
        warp::path!("api" / "v1" / "users" / String).and(warp::patch()).and(server_project(state)).and(json_body()).and_then(change);
    show.or(change)
}

async fn show(user_id: String, state: Arc<ApiState>, project: Project) -> Result<warp::reply::Response, Rejection> {
    let user = users::find(&state.db, &project.project_id, &user_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "user_not_found", "no such user"))?;
    let mut body = serde_json::to_value(&user).map_err(ApiError::internal)?;
    body["visitor"] = identity::is_visitor(&user.user_id).into();
    Ok(warp::reply::json(&body).into_response())
}

async fn change(user_id: String, state: Arc<ApiState>, project: Project, body: Changes) -> Result<warp::reply::Response, Rejection> {
    if !users::valid_id(&user_id) || (body.agent && identity::is_visitor(&user_id)) {
        return Err(ApiError::invalid("a user id is 1-128 characters of A-Z a-z 0-9 _ . : @ - (and a visitor is no agent)").into());
    }
    users::set_agent(&state.db, &project.project_id, &user_id, body.agent).await.map_err(ApiError::internal)?;
    show(user_id, state, project).await
}
