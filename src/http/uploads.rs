//! Attachments over HTTP: `POST /api/v1/uploads` stores a file for a member
//! of a conversation (the body is the file itself, its type in
//! `Content-Type`), and `GET /api/v1/files/{id}` serves it to whoever holds
//! a signed URL that has not expired.
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use mqchat_bridge::attachments::{self, AttachmentError, Upload};
use mqchat_bridge::commands::CommandError;
use mqchat_bridge::projects::Project;
use serde::Deserialize;
use warp::http::{header, StatusCode};
use warp::{Filter, Rejection, Reply};

use super::{user, ApiError, ApiState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    conversation_id: String,
    filename: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedQuery {
    expires: i64,
    signature: String,
}

pub fn routes(state: Arc<ApiState>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let max_bytes = state.engine.files().max_bytes();
    // POST /api/v1/uploads?conversation_id=…&filename=…
    let upload = warp::path!("api" / "v1" / "uploads")
        .and(warp::post())
        .and(user(Arc::clone(&state)))
        .and(warp::query::<UploadQuery>())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::content_length_limit(max_bytes))
        .and(warp::body::bytes())
        .and_then(upload);
    // GET /api/v1/files/{id}?expires=…&signature=…
    let download = warp::path!("api" / "v1" / "files" / String)
        .and(warp::get())
        .and(super::with_state(state))
        .and(warp::query::<SignedQuery>())
        .and_then(download);
    upload.or(download)
}

async fn upload(
    state: Arc<ApiState>,
    project: Project,
    user_id: String,
    query: UploadQuery,
    content_type: Option<String>,
    body: Bytes,
) -> Result<warp::reply::Response, Rejection> {
    let engine = &state.engine;
    engine.check_member(&project.project_id, &user_id, &query.conversation_id).await.map_err(ApiError::from)?;
    let content_type = content_type.ok_or_else(|| ApiError::invalid("send the file's type in Content-Type"))?;
    let upload = Upload {
        project_id: &project.project_id,
        conversation_id: &query.conversation_id,
        uploader_id: &user_id,
        filename: &query.filename,
        content_type: &content_type,
        bytes: &body,
    };
    let file = engine.files().save(&state.db, upload).await.map_err(|error| ApiError::from(CommandError::from(error)))?;
    Ok(warp::reply::with_status(warp::reply::json(&file), StatusCode::CREATED).into_response())
}

async fn download(id: String, state: Arc<ApiState>, query: SignedQuery) -> Result<warp::reply::Response, Rejection> {
    let files = state.engine.files();
    if !files.verify(&id, query.expires, &query.signature, Utc::now()) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "invalid_signature", "the URL is not genuine or has expired").into());
    }
    let (row, path) = match files.find(&state.db, &id).await {
        Ok(found) => found,
        Err(AttachmentError::NotFound(_)) => {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "attachment_not_found", "no such file").into())
        }
        Err(error) => return Err(ApiError::internal(error).into()),
    };
    let bytes = tokio::fs::read(&path).await.map_err(ApiError::internal)?;
    let inline = attachments::served_inline(&row.content_type);
    let disposition = format!(
        "{}; filename=\"{}\"",
        if inline { "inline" } else { "attachment" },
        row.filename.chars().map(|c| if c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\') { c } else { '_' }).collect::<String>()
    );
    let mut response = warp::reply::Response::new(bytes.into());
    let headers = response.headers_mut();
    let value = |text: &str| header::HeaderValue::from_str(text).map_err(ApiError::internal);
    headers.insert(header::CONTENT_TYPE, value(&row.content_type)?);
    headers.insert(header::CONTENT_DISPOSITION, value(&disposition)?);
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, value("nosniff")?);
    // Even a file the browser renders runs nothing and loads nothing.
    headers.insert(header::CONTENT_SECURITY_POLICY, value("default-src 'none'; sandbox")?);
    headers.insert(header::CACHE_CONTROL, value("private, max-age=300")?);
    Ok(response)
}
