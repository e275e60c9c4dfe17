//! `POST /api/v1/sdk/init`: exchanges an identity token for a session token
//! and the MQTT details a client needs (seed 000 shape, plus `mqtt`).
use std::sync::Arc;

use mqchat_broker::acl;
use mqchat_broker::identity::{self, now_unix, TokenError};
use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::{bearer, verify_user, with_state, ApiError, ApiState};

pub fn routes(state: Arc<ApiState>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    // POST /api/v1/sdk/init
    warp::path!("api" / "v1" / "sdk" / "init")
        .and(warp::post())
        .and(with_state(state))
        .and(warp::header::optional::<String>("x-public-key"))
        .and(warp::header::optional::<String>("authorization"))
        .and_then(init)
}

async fn init(
    state: Arc<ApiState>,
    public_key: Option<String>,
    authorization: Option<String>,
) -> Result<warp::reply::Response, Rejection> {
    let public_key = public_key.ok_or_else(|| ApiError::unauthorized("send X-Public-Key: <project public key>"))?;
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
    let ttl = state.session_ttl.as_secs() as i64;
    let (session_token, session) =
        identity::issue_session(&project.secret_key, &principal.claims, now_unix(), ttl).map_err(ApiError::internal)?;
    let (p, u) = (project.project_id.as_str(), principal.user_id.as_str());
    let body = json!({
        "success": true,
        "data": {
            "session_token": session_token,
            "expires_at": session.exp,
            "user_id": u,
            "project_id": p,
            "project_name": project.name,
            "widget_config": {},
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
    });
    Ok(warp::reply::json(&body).into_response())
}
