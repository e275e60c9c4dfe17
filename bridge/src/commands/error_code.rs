//! The error codes a command or a server-API call can be refused with
//! (docs/PROTOCOL.md §5): one enum, so the HTTP layer maps each to a status
//! in an exhaustive `match` and a new code cannot go without one.
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The payload is not a JSON object.
    BadJson,
    /// Over the size limit (a command, an upload).
    TooLarge,
    InvalidRequest,
    RateLimited,
    UnknownOp,
    ContentTooLong,
    ConversationNotFound,
    NotAMember,
    ConversationArchived,
    MessageNotFound,
    MessageDeleted,
    Forbidden,
    AttachmentNotFound,
    UnsupportedContentType,
    /// `support.open` where the project has no agent.
    NoAgents,
    /// The server is shutting down; retry.
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::ContentTooLong => "content_too_long",
            ErrorCode::ConversationNotFound => "conversation_not_found",
            ErrorCode::NotAMember => "not_a_member",
            ErrorCode::ConversationArchived => "conversation_archived",
            ErrorCode::MessageNotFound => "message_not_found",
            ErrorCode::MessageDeleted => "message_deleted",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::AttachmentNotFound => "attachment_not_found",
            ErrorCode::UnsupportedContentType => "unsupported_content_type",
            ErrorCode::NoAgents => "no_agents",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_names_are_the_serialized_ones() {
        let all = [
            ErrorCode::BadJson,
            ErrorCode::TooLarge,
            ErrorCode::InvalidRequest,
            ErrorCode::RateLimited,
            ErrorCode::UnknownOp,
            ErrorCode::ContentTooLong,
            ErrorCode::ConversationNotFound,
            ErrorCode::NotAMember,
            ErrorCode::ConversationArchived,
            ErrorCode::MessageNotFound,
            ErrorCode::MessageDeleted,
            ErrorCode::Forbidden,
            ErrorCode::AttachmentNotFound,
            ErrorCode::UnsupportedContentType,
            ErrorCode::NoAgents,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ];
        for code in all {
            assert_eq!(serde_json::to_value(code).unwrap_or_default(), serde_json::json!(code.as_str()));
        }
    }
}
