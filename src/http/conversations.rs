//! Server API for conversations (secret key), and their history for the
//! site backend and for members. Changes go through the chat engine, which
//! publishes the same events as the MQTT commands and cuts a removed
//! member's live subscriptions.
use std::sync::Arc;

use mqchat_bridge::commands::{Author, CommandError, MessageBody};
use mqchat_bridge::conversations::{ConversationKind, NewConversation, Role};
use mqchat_bridge::messages::Page;
use mqchat_bridge::projects::Project;
use mqchat_broker::identity::UserId;
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::{caller, json_body, server_project, ApiError, ApiState, Caller};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateConversation {
    #[serde(rename = "type")]
    kind: ConversationKind,
    title: Option<String>,
    #[serde(default)]
    member_ids: Vec<String>,
    /// Members who may delete others' messages.
    #[serde(default)]
    admin_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMember {
    user_id: String,
    #[serde(default = "member_role")]
    role: Role,
}

fn member_role() -> Role {
    Role::Member
}

/// `?before_seq=&after_seq=&limit=`: at most one of the two positions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    before_seq: Option<i64>,
    after_seq: Option<i64>,
    limit: Option<u64>,
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
    // GET /api/v1/conversations/{id}/messages
    let history = warp::path!("api" / "v1" / "conversations" / String / "messages")
        .and(warp::get())
        .and(caller(Arc::clone(&state)))
        .and(warp::query::<HistoryQuery>())
        .and_then(history);
    // POST /api/v1/conversations/{id}/messages
    let post = warp::path!("api" / "v1" / "conversations" / String / "messages")
        .and(warp::post())
        .and(server_project(Arc::clone(&state)))
        .and(json_body())
        .and_then(post_message);
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
    create.or(get).or(history).or(post).or(add).or(remove).or(archive)
}

fn user_id(raw: &str) -> Result<String, ApiError> {
    UserId::parse(raw)
        .map(|id| id.as_str().to_owned())
        .map_err(|error| ApiError::invalid(format!("user id {raw:?}: {error}")))
}

async fn create(state: Arc<ApiState>, project: Project, body: CreateConversation) -> Result<warp::reply::Response, Rejection> {
    let member_ids = body.member_ids.iter().map(|raw| user_id(raw)).collect::<Result<Vec<_>, _>>()?;
    let admin_ids = body.admin_ids.iter().map(|raw| user_id(raw)).collect::<Result<Vec<_>, _>>()?;
    let request = NewConversation { kind: body.kind, title: body.title, member_ids, admin_ids, unique_key: None };
    let outcome = state.engine.create_conversation(&project.project_id, request).await.map_err(ApiError::from)?;
    // A direct conversation that already existed comes back with 200.
    let status = if outcome.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(warp::reply::with_status(warp::reply::json(&outcome.conversation), status).into_response())
}

async fn get(id: String, state: Arc<ApiState>, project: Project) -> Result<warp::reply::Response, Rejection> {
    let conversation = state.engine.conversation(&project.project_id, &id).await.map_err(ApiError::from)?;
    Ok(warp::reply::json(&conversation).into_response())
}

async fn history(id: String, state: Arc<ApiState>, caller: Caller, query: HistoryQuery) -> Result<warp::reply::Response, Rejection> {
    let project_id = &caller.project().project_id;
    if let Caller::User(_, user_id) = &caller {
        state.engine.check_member(project_id, user_id, &id).await.map_err(ApiError::from)?;
    }
    let page = match (query.before_seq, query.after_seq) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("give at most one of before_seq and after_seq").into()),
        (None, Some(after)) => Page::After(after.max(0)),
        (Some(before), None) => Page::Before(before),
        (None, None) => Page::Before(i64::MAX),
    };
    let (messages, has_more) = state.engine.history(project_id, &id, page, query.limit).await.map_err(ApiError::from)?;
    Ok(warp::reply::json(&json!({"conversation_id": id, "messages": messages, "has_more": has_more})).into_response())
}

/// A message from the site's backend: as one of the members (a bot, a
/// user) when `sender_id` names one, else a system message from the platform.
async fn post_message(
    id: String,
    state: Arc<ApiState>,
    project: Project,
    mut body: serde_json::Value,
) -> Result<warp::reply::Response, Rejection> {
    let sender_id = match body.as_object_mut().and_then(|fields| fields.remove("sender_id")) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(raw)) => Some(user_id(&raw)?),
        Some(_) => return Err(ApiError::invalid("`sender_id` must be a user id").into()),
    };
    if let Some(path) = mqchat_bridge::fields::find_nul(&body) {
        return Err(ApiError::invalid(format!("`{path}` contains a NUL character")).into());
    }
    let message: MessageBody = serde_json::from_value(body).map_err(|error| ApiError::invalid(error.to_string()))?;
    let author = sender_id.as_deref().map_or(Author::Platform, Author::Member);
    let pending = state.engine.post(&project.project_id, &id, author, message).await.map_err(ApiError::from)?;
    let outcome = pending.outcome().await.map_err(|error| ApiError::from(CommandError::from(error)))?;
    let status = if outcome.duplicate { StatusCode::OK } else { StatusCode::CREATED };
    let body = json!({"message": outcome.message, "duplicate": outcome.duplicate});
    Ok(warp::reply::with_status(warp::reply::json(&body), status).into_response())
}

async fn add_member(id: String, state: Arc<ApiState>, project: Project, body: AddMember) -> Result<warp::reply::Response, Rejection> {
    let user = user_id(&body.user_id)?;
    let (conversation, added) =
        state.engine.add_member(&project.project_id, &id, &user, body.role).await.map_err(ApiError::from)?;
    let status = if added { StatusCode::CREATED } else { StatusCode::OK };
    Ok(warp::reply::with_status(warp::reply::json(&conversation), status).into_response())
}

async fn remove_member(id: String, user: String, state: Arc<ApiState>, project: Project) -> Result<warp::reply::Response, Rejection> {
    let user = user_id(&user)?;
    if !state.engine.remove_member(&project.project_id, &id, &user).await.map_err(ApiError::from)? {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "member_not_found", "user is not a member").into());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn archive(id: String, state: Arc<ApiState>, project: Project) -> Result<warp::reply::Response, Rejection> {
    let conversation = state.engine.archive(&project.project_id, &id).await.map_err(ApiError::from)?;
    Ok(warp::reply::json(&conversation).into_response())
}
