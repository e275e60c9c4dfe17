//! Text that clients and site backends send, checked at the edge against
//! what every database mqchat runs on stores, so that SQLite and PostgreSQL
//! accept and refuse exactly the same values and a bad value is refused
//! with a clear error before it can reach a transaction shared with others.
//!
//! The two rules every stored string obeys: at most the column's length in
//! characters (PostgreSQL's `varchar(n)` counts characters and refuses a
//! longer value, SQLite stores anything), and no NUL character (PostgreSQL's
//! text types refuse it; SQLite would store it and cut it short in some
//! clients). Valid UTF-8 is guaranteed earlier: every value arrives as a
//! Rust `String`, parsed by serde_json or warp, which refuse anything else.
use serde_json::Value;

/// Why a field was refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("`{field}` is longer than {max} characters")]
    TooLong { field: String, max: usize },
    #[error("`{field}` contains a NUL character")]
    Nul { field: String },
}

/// Checks one string bound for a column of `max_chars` characters.
pub fn check(field: &str, value: &str, max_chars: usize) -> Result<(), FieldError> {
    if value.contains('\0') {
        return Err(FieldError::Nul { field: field.to_owned() });
    }
    // Counting stops past the limit: a huge value costs no more than a legal one.
    if value.chars().take(max_chars + 1).count() > max_chars {
        return Err(FieldError::TooLong { field: field.to_owned(), max: max_chars });
    }
    Ok(())
}

/// Like `check`, for an optional value.
pub fn check_optional(field: &str, value: Option<&str>, max_chars: usize) -> Result<(), FieldError> {
    value.map_or(Ok(()), |value| check(field, value, max_chars))
}

/// The path of the first string (key or value) in a JSON document that
/// holds a NUL character, e.g. `member_ids[3]`: one pass over a whole
/// command before any of it is used, so no field can be forgotten.
pub fn find_nul(value: &Value) -> Option<String> {
    fn walk(value: &Value, path: &mut String) -> bool {
        match value {
            Value::String(text) => text.contains('\0'),
            Value::Array(items) => items.iter().enumerate().any(|(index, item)| {
                let len = path.len();
                path.push_str(&format!("[{index}]"));
                let found = walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Value::Object(fields) => fields.iter().any(|(key, item)| {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&key.replace('\0', "\\u0000"));
                let found = key.contains('\0') || walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = String::new();
    walk(value, &mut path).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_characters_not_bytes() {
        assert_eq!(check("name", &"é".repeat(200), 200), Ok(()));
        assert_eq!(check("name", &"é".repeat(201), 200), Err(FieldError::TooLong { field: "name".into(), max: 200 }));
    }

    #[test]
    fn refuses_nul_anywhere() {
        assert_eq!(check("content", "a\0b", 10), Err(FieldError::Nul { field: "content".into() }));
        assert_eq!(find_nul(&json!({"op": "x", "member_ids": ["a", "b\u{0}"]})).as_deref(), Some("member_ids[1]"));
        assert_eq!(find_nul(&json!({"a": {"b\u{0}": 1}})).as_deref(), Some("a.b\\u0000"));
        assert_eq!(find_nul(&json!({"a": ["x", {"y": "z"}]})), None);
    }
}
