//! The API's one error shape: `{"error": {"code", "message"}}` with a
//! status code, and the `recover` that turns every rejection into it.
use std::convert::Infallible;

use mqchat_bridge::commands::CommandError;
use warp::http::StatusCode;
use warp::{Rejection, Reply};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable code (documented in docs/PROTOCOL.md).
    pub code: &'static str,
    pub message: String,
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }

    pub fn reply(&self) -> warp::reply::Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        warp::reply::with_status(warp::reply::json(&body), self.status).into_response()
    }
}

impl From<CommandError> for ApiError {
    /// The engine's codes, with the status that fits each.
    fn from(error: CommandError) -> Self {
        use mqchat_bridge::commands::ErrorCode;
        let status = match error.code {
            ErrorCode::ConversationNotFound | ErrorCode::MessageNotFound | ErrorCode::AttachmentNotFound => StatusCode::NOT_FOUND,
            ErrorCode::NotAMember | ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::ConversationArchived | ErrorCode::MessageDeleted => StatusCode::CONFLICT,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::BadJson
            | ErrorCode::InvalidRequest
            | ErrorCode::UnknownOp
            | ErrorCode::ContentTooLong
            | ErrorCode::NoAgents => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError { status, code: error.code.as_str(), message: error.message }
    }
}

pub async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let error = if let Some(error) = rejection.find::<ApiError>() {
        return Ok(error.reply());
    } else if rejection.is_not_found() {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    } else if let Some(error) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", error.to_string())
    } else if let Some(error) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_header", format!("header {} is not valid text", error.name()))
    } else if let Some(error) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", error.to_string())
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "request body is too large")
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(StatusCode::LENGTH_REQUIRED, "length_required", "Content-Length is required")
    } else if rejection.find::<warp::reject::UnsupportedMediaType>().is_some() {
        ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send application/json")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed")
    } else if let Some(error) = rejection.find::<warp::reject::MissingHeader>() {
        ApiError::unauthorized(format!("missing header {}", error.name()))
    } else if format!("{rejection:?}").contains("BodyReadError") {
        // A body that ends before its Content-Length (the client hung up).
        // warp keeps this rejection's type private; its Debug names it.
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", "the request body could not be read in full")
    } else {
        ApiError::internal(format!("unhandled rejection: {rejection:?}"))
    };
    Ok(error.reply())
}
