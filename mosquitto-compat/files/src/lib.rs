//! What a Mosquitto user already has, read the way Mosquitto 2.0 reads it,
//! so mqchat's plain-MQTT namespace can be pointed at the same files:
//! - `password_file`: users and their hashes as `mosquitto_passwd` writes
//!   them (`$6$` salted SHA-512, `$7$` PBKDF2-SHA512);
//! - `acl_file`: `user`, `topic`, `pattern` (with `%u` and `%c`) rules,
//!   indexed in a topic tree so a check costs the same with 10 rules or
//!   10,000;
//! - `conf`: the `mosquitto.conf` directives mqchat understands, and the
//!   ones it does not, so the caller can say so.
//!
//! No sockets and no storage here: the gateway asks, these answer.
pub mod acl_file;
pub mod conf;
pub mod password_file;

pub use acl_file::{Access, AclFile};
pub use conf::MosquittoConf;
pub use password_file::PasswordFile;

/// A file that could not be read or understood, with where.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}, line {line}: {message}")]
    Line { path: String, line: usize, message: String },
}

/// Test support: each text, read by `parse`, fails at the line given.
#[cfg(test)]
fn assert_fails_at_lines<T: std::fmt::Debug>(parse: impl Fn(&str) -> Result<T, FileError>, cases: &[(&str, usize)]) {
    for &(text, line) in cases {
        match parse(text) {
            Err(FileError::Line { line: found, .. }) => assert_eq!(found, line, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}

/// Reads a whole file for one of the readers.
fn read(path: &std::path::Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|error| FileError::Read { path: path.display().to_string(), error })
}
