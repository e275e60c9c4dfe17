//! The `mosquitto.conf` directives mqchat understands: `listener` (with
//! `protocol mqtt|websockets` after it), `allow_anonymous`,
//! `password_file`, `acl_file`, `max_keepalive`, `max_packet_size`,
//! `max_queued_messages` and `persistence`. Every other directive is
//! collected in `unknown`, for the caller to name in one warning — never
//! silently ignored. Relative file paths are taken from the directory of
//! the configuration file.
use std::path::{Path, PathBuf};

use crate::FileError;

/// A `listener` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub port: u16,
    /// The address or host name to bind; `None`: every address.
    pub bind: Option<String>,
    pub websockets: bool,
}

/// What a `mosquitto.conf` says that mqchat can use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MosquittoConf {
    pub listeners: Vec<Listener>,
    pub allow_anonymous: Option<bool>,
    pub password_file: Option<PathBuf>,
    pub acl_file: Option<PathBuf>,
    pub max_keepalive: Option<u16>,
    pub max_packet_size: Option<u32>,
    pub max_queued_messages: Option<u64>,
    pub persistence: Option<bool>,
    /// Directives mqchat does not understand, once each, in file order.
    pub unknown: Vec<String>,
}

impl MosquittoConf {
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&crate::read(path)?, &path.display().to_string(), base)
    }

    /// Reads the file's text; `path` names it in errors, `base` is where
    /// relative paths start.
    pub fn parse(text: &str, path: &str, base: &Path) -> Result<Self, FileError> {
        let mut conf = MosquittoConf::default();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |message: String| FileError::Line { path: path.to_owned(), line: index + 1, message };
            let (directive, value) = line.split_once([' ', '\t']).map_or((line, ""), |(d, v)| (d, v.trim()));
            let file = |value: &str| -> Result<PathBuf, FileError> {
                if value.is_empty() {
                    return Err(error(format!("`{directive}` needs a path")));
                }
                Ok(base.join(value))
            };
            match directive {
                "listener" => {
                    let mut parts = value.split_whitespace();
                    let port = parts.next().and_then(|port| port.parse().ok()).ok_or_else(|| error("`listener` needs a port".into()))?;
                    conf.listeners.push(Listener { port, bind: parts.next().map(str::to_owned), websockets: false });
                }
                "protocol" => {
                    let listener = conf.listeners.last_mut().ok_or_else(|| error("`protocol` before any `listener`".into()))?;
                    listener.websockets = match value {
                        "mqtt" => false,
                        "websockets" => true,
                        other => return Err(error(format!("unknown protocol {other:?} (mqtt or websockets)"))),
                    };
                }
                "allow_anonymous" => conf.allow_anonymous = Some(boolean(value).map_err(error)?),
                "persistence" => conf.persistence = Some(boolean(value).map_err(error)?),
                "password_file" => conf.password_file = Some(file(value)?),
                "acl_file" => conf.acl_file = Some(file(value)?),
                "max_keepalive" => conf.max_keepalive = Some(number(directive, value).map_err(error)?),
                "max_packet_size" => conf.max_packet_size = Some(number(directive, value).map_err(error)?),
                "max_queued_messages" => conf.max_queued_messages = Some(number(directive, value).map_err(error)?),
                other => {
                    if !conf.unknown.iter().any(|known| known == other) {
                        conf.unknown.push(other.to_owned());
                    }
                }
            }
        }
        Ok(conf)
    }
}

fn boolean(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("expected true or false, not {other:?}")),
    }
}

fn number<T: std::str::FromStr>(directive: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("`{directive}` needs a number in range, not {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn understood_and_unknown_directives() {
        let text = "\
# a Mosquitto configuration
per_listener_settings false
listener 1883 127.0.0.1
listener 8083
protocol websockets
allow_anonymous false
password_file passwords
acl_file /etc/mosquitto/acl
max_keepalive 120
max_packet_size 65536
max_queued_messages 500
persistence true
log_dest stderr
log_dest file /var/log/mosquitto.log
";
        let conf = MosquittoConf::parse(text, "mosquitto.conf", Path::new("/etc/mosquitto")).unwrap();
        assert_eq!(
            conf.listeners,
            vec![
                Listener { port: 1883, bind: Some("127.0.0.1".into()), websockets: false },
                Listener { port: 8083, bind: None, websockets: true },
            ]
        );
        assert_eq!(conf.allow_anonymous, Some(false));
        assert_eq!(conf.password_file.as_deref(), Some(Path::new("/etc/mosquitto/passwords")));
        assert_eq!(conf.acl_file.as_deref(), Some(Path::new("/etc/mosquitto/acl")));
        assert_eq!((conf.max_keepalive, conf.max_packet_size, conf.max_queued_messages), (Some(120), Some(65536), Some(500)));
        assert_eq!(conf.persistence, Some(true));
        assert_eq!(conf.unknown, vec!["per_listener_settings".to_owned(), "log_dest".to_owned()]);
    }

    #[test]
    fn bad_values_name_their_line() {
        let cases = [("listener x", 1), ("\nallow_anonymous yes", 2), ("protocol mqtt", 1), ("max_keepalive 70000", 1)];
        crate::assert_fails_at_lines(|text| MosquittoConf::parse(text, "c", Path::new(".")), &cases);
    }
}
