//! Mosquitto's `password_file`: one `username:hash` per line, the hashes
//! `mosquitto_passwd` writes — `$7$iterations$salt$hash` (PBKDF2 with
//! HMAC-SHA512, Mosquitto 2.0's default) and `$6$salt$hash` (SHA-512 of the
//! password followed by the salt, `mosquitto_passwd -H sha512`); salts and
//! hashes in standard base64.
use std::collections::HashMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use crate::FileError;

/// Most PBKDF2 iterations accepted from a file (a typo of a few zeros
/// must not make every login of that user cost seconds).
const MAX_ITERATIONS: u32 = 10_000_000;

#[derive(Debug, Clone)]
enum Hash {
    Sha512 { salt: Vec<u8>, hash: Vec<u8> },
    Pbkdf2 { iterations: u32, salt: Vec<u8>, hash: Vec<u8> },
}

/// The users of a password file and their hashes.
#[derive(Debug, Clone, Default)]
pub struct PasswordFile {
    users: HashMap<String, Hash>,
}

impl PasswordFile {
    pub fn load(path: &Path) -> Result<Self, FileError> {
        Self::parse(&crate::read(path)?, &path.display().to_string())
    }

    /// Reads the file's text; `path` names it in errors. Blank lines and
    /// `#` comments are skipped, as Mosquitto does.
    pub fn parse(text: &str, path: &str) -> Result<Self, FileError> {
        let mut users = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |message: &str| FileError::Line { path: path.to_owned(), line: index + 1, message: message.to_owned() };
            let (user, hash) = line.split_once(':').ok_or_else(|| error("expected username:hash"))?;
            if user.is_empty() {
                return Err(error("empty username"));
            }
            users.insert(user.to_owned(), parse_hash(hash).map_err(|message| error(&message))?);
        }
        Ok(PasswordFile { users })
    }

    /// Whether the file names this user (whatever the password).
    pub fn has_user(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `password` is this user's. Unknown users are refused.
    pub fn verify(&self, username: &str, password: &[u8]) -> bool {
        let Some(hash) = self.users.get(username) else {
            return false;
        };
        let (computed, expected) = match hash {
            Hash::Sha512 { salt, hash } => {
                let mut digest = Sha512::new();
                digest.update(password);
                digest.update(salt);
                (digest.finalize().to_vec(), hash)
            }
            Hash::Pbkdf2 { iterations, salt, hash } => {
                let mut out = vec![0u8; hash.len()];
                if pbkdf2::pbkdf2::<pbkdf2::hmac::Hmac<Sha512>>(password, salt, *iterations, &mut out).is_err() {
                    return false;
                }
                (out, hash)
            }
        };
        computed.len() == expected.len() && bool::from(computed.ct_eq(expected))
    }
}

fn parse_hash(text: &str) -> Result<Hash, String> {
    let decode = |part: &str| STANDARD.decode(part).map_err(|_| "salt or hash is not base64".to_owned());
    match text.split('$').collect::<Vec<_>>()[..] {
        ["", "6", salt, hash] => Ok(Hash::Sha512 { salt: decode(salt)?, hash: decode(hash)? }),
        ["", "7", iterations, salt, hash] => {
            let iterations: u32 = iterations.parse().map_err(|_| "iterations are not a number".to_owned())?;
            if iterations == 0 || iterations > MAX_ITERATIONS {
                return Err(format!("iterations must be 1 to {MAX_ITERATIONS}"));
            }
            let hash = decode(hash)?;
            if hash.is_empty() {
                return Err("empty hash".into());
            }
            Ok(Hash::Pbkdf2 { iterations, salt: decode(salt)?, hash })
        }
        _ => Err("unknown hash (mosquitto_passwd writes $6$ or $7$; a plain-text password file must be hashed first)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by Debian's `mosquitto_passwd` 2.0.11: alice/secret with the
    /// default PBKDF2, bob/hunter2 with `-H sha512`, carol/x with `-I 1000`.
    const FILE: &str = "\
alice:$7$101$KzPwiZ4JY70CH0oi$6Z798sbzC+WS6E2guZ62taaHnC6OxzMG13xoqeQ8y8fZT98vkp4OnbRZQfnI4cXaVKhknmBy+frb+73OzA1sxw==
bob:$6$Y6oGcwrNGs75zUwr$cmrJEwjnyBUDOQv+lyGOWhY/6b4euI5QWu+1WcsxLaT+hQBp1GsHw4A/eS+Auv4ZA0g9CTmkYbwBDJ1h/CWKMA==
# a comment

carol:$7$1000$y/PTiZ29h6+vCwff$FchS5wH8FEg7lN8IyrzpXWu07GwcM2I3RzFvybKQapQCAqZylsjTF+1cFFU19rcKAICpBehiNuH1hXz1N+gWNA==
";

    #[test]
    fn mosquitto_passwd_hashes_verify() {
        let file = PasswordFile::parse(FILE, "pw").unwrap();
        assert_eq!(file.len(), 3);
        assert!(file.verify("alice", b"secret"));
        assert!(file.verify("bob", b"hunter2"));
        assert!(file.verify("carol", b"x"));
        assert!(!file.verify("alice", b"Secret"));
        assert!(!file.verify("bob", b""));
        assert!(!file.verify("dave", b"secret"));
    }

    #[test]
    fn bad_lines_name_their_line() {
        let cases = [("alice", 1), ("ok:$6$YQ==$YQ==\nbad:plain", 2), ("x:$7$0$YQ==$YQ==", 1), ("x:$7$10$!!$YQ==", 1)];
        crate::assert_fails_at_lines(|text| PasswordFile::parse(text, "pw"), &cases);
    }
}
