//! Server API for conversations (secret key). Membership changes are
//! published on the conversation topic and reach live connections at once.
use std::sync::Arc;

use mqchat_bridge::conversations::{self, ConversationKind, NewConversation};
use mqchat_bridge::projects::Project;
use mqchat_broker::acl;
use mqchat_broker::identity::UserId;
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::{json_body, server_project, ApiError, ApiState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateConversation {
    #[serde(rename = "type")]
    kind: ConversationKind,
    title: Option<String>,
    #[serde(default)]
    member_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMember {
    user_id: String,
}

pub fn routes(state: Arc<ApiState>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let conversations = warp::path!("api" / "v1" / "conversations").and(warp::path::end());
    // POST /api/v1/conversations
    let create = conversations.and(warp::post()).and(server_project(Arc::clone(&state))).and(json_body()).and_then(create);
    // GET /api/v1/conversations/{id}
    let get = warp::path!("api" / "v1" / "conversations" / String)
        .and(warp::get())
        .and(server_project(Arc::clone(&state)))
        .and_then(get);
    // POST /api/v1/conversations/{id}/members
    let add = warp::path!("api" / "v1" / "conversations" / String / "members")
        .and(warp::post())
        .and(server_project(Arc::clone(&state)))
        .and(json_body())
        .and_then(add_member);
    // DELETE /api/v1/conversations/{id}/members/{user_id}
    let remove = warp::path!("api" / "v1" / "conversations" / String / "members" / String)
        .and(warp::delete())
        .and(server_project(Arc::clone(&state)))
        .and_then(remove_member);
    // POST /api/v1/conversations/{id}/archive
    let archive = warp::path!("api" / "v1" / "conversations" / String / "archive")
        .and(warp::post())
        .and(server_project(state))
        .and_then(archive);
    create.or(get).or(add).or(remove).or(archive)
}

fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|error| ApiError::invalid(format!("user id {raw:?}: {error}")))
}

/// Publishes a conversation event; a failure is logged, the change stands.
fn publish_event(state: &ApiState, project: &Project, conversation_id: &str, event: serde_json::Value) {
    let topic = acl::conversation_topic(&project.project_id, conversation_id);
    if let Err(error) = state.publisher.publish(topic, event.to_string()) {
        tracing::error!(%error, conversation_id, "could not publish conversation event");
    }
}

async fn create(state: Arc<ApiState>, project: Project, body: CreateConversation) -> Result<warp::reply::Response, Rejection> {
    let member_ids = body
        .member_ids
        .iter()
        .map(|raw| user_id(raw).map(|id| id.as_str().to_owned()))
        .collect::<Result<Vec<_>, _>>()?;
    let request = NewConversation { kind: body.kind, title: body.title, member_ids };
    let conversation = conversations::create(&state.db, &project.project_id, request).await.map_err(ApiError::from)?;
    Ok(warp::reply::with_status(warp::reply::json(&conversation), StatusCode::CREATED).into_response())
}

async fn get(id: String, state: Arc<ApiState>, project: Project) -> Result<warp::reply::Response, Rejection> {
    let conversation = conversations::get(&state.db, &project.project_id, &id).await.map_err(ApiError::from)?;
    Ok(warp::reply::json(&conversation).into_response())
}

async fn add_member(id: String, state: Arc<ApiState>, project: Project, body: AddMember) -> Result<warp::reply::Response, Rejection> {
    let user = user_id(&body.user_id)?;
    let added = conversations::add_member(&state.db, &project.project_id, &id, user.as_str()).await.map_err(ApiError::from)?;
    state.cache.forget_conversation(&project.project_id, &id);
    if added {
        let event = json!({"type": "member.joined", "data": {"conversation_id": id, "user_id": user}});
        publish_event(&state, &project, &id, event);
    }
    let conversation = conversations::get(&state.db, &project.project_id, &id).await.map_err(ApiError::from)?;
    let status = if added { StatusCode::CREATED } else { StatusCode::OK };
    Ok(warp::reply::with_status(warp::reply::json(&conversation), status).into_response())
}

async fn remove_member(id: String, user: String, state: Arc<ApiState>, project: Project) -> Result<warp::reply::Response, Rejection> {
    let user = user_id(&user)?;
    let removed = conversations::remove_member(&state.db, &project.project_id, &id, user.as_str()).await.map_err(ApiError::from)?;
    state.cache.forget_conversation(&project.project_id, &id);
    if !removed {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "member_not_found", "user is not a member").into());
    }
    // Stored first, so a new SUBSCRIBE is refused; then live connections drop it.
    state.registry.revoke_conversation(&project.project_id, user.as_str(), &id);
    let event = json!({"type": "member.left", "data": {"conversation_id": id, "user_id": user}});
    publish_event(&state, &project, &id, event);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn archive(id: String, state: Arc<ApiState>, project: Project) -> Result<warp::reply::Response, Rejection> {
    let was_archived = conversations::get(&state.db, &project.project_id, &id).await.map_err(ApiError::from)?.archived;
    let conversation = conversations::archive(&state.db, &project.project_id, &id).await.map_err(ApiError::from)?;
    state.cache.forget_conversation(&project.project_id, &id);
    if !was_archived {
        let event = json!({"type": "conversation.archived", "data": {"conversation_id": id, "archived_at": conversation.archived_at}});
        publish_event(&state, &project, &id, event);
    }
    Ok(warp::reply::json(&conversation).into_response())
}
