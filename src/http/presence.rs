//! `GET /api/v1/users/{user_id}/presence`: for the site backend (secret key)
//! and for any user of the project (presence topics are open to them too).
use std::sync::Arc;

use mqchat_bridge::presence;
use mqchat_broker::identity::UserId;
use warp::{Filter, Rejection, Reply};

use super::{caller, ApiError, ApiState, Caller};

pub fn routes(state: Arc<ApiState>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "users" / String / "presence").and(warp::get()).and(caller(state)).and_then(get)
}

async fn get(user: String, state: Arc<ApiState>, caller: Caller) -> Result<warp::reply::Response, Rejection> {
    let user = UserId::parse(&user).map_err(|error| ApiError::invalid(format!("user id {user:?}: {error}")))?;
    let view = presence::get(&state.db, &caller.project().project_id, user.as_str()).await.map_err(ApiError::internal)?;
    Ok(warp::reply::json(&view).into_response())
}
