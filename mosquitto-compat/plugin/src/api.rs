//! mqchat's internal API as the plugin calls it: blocking HTTP on
//! loopback (Mosquitto runs plugins on its one thread), answers cached by
//! the caller.
// Parts used only by `ffi`, which unit tests do not build.
#![cfg_attr(test, allow(dead_code))]
use std::time::Duration;

use mqchat_access::identity::IdentityClaims;
use serde::Deserialize;
use serde_json::json;

/// Longest a call may hold up the broker's thread.
const TIMEOUT: Duration = Duration::from_secs(2);

/// What verifies a project's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProjectKeys {
    pub project_id: String,
    pub secret_key: String,
    /// The key a rotation replaced, while it still counts.
    pub previous_key: Option<String>,
}

/// mqchat's answer to a verified login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginAnswer {
    /// Let in; the user's conversations now.
    Admitted(Vec<String>),
    /// The user's sessions were revoked after the token was issued.
    Revoked,
}

/// The calls the plugin makes (a trait, so the rules are tested without
/// a server).
pub trait Api {
    fn keys(&self, public_key: &str) -> Result<Option<ProjectKeys>, String>;
    fn login(&self, project_id: &str, claims: &IdentityClaims) -> Result<LoginAnswer, String>;
    fn memberships(&self, project_id: &str, user_id: &str) -> Result<Vec<String>, String>;
}

/// The API over HTTP.
pub struct HttpApi {
    base: String,
    authorization: String,
    agent: ureq::Agent,
}

#[derive(Deserialize)]
struct Conversations {
    conversations: Vec<String>,
}

impl HttpApi {
    pub fn new(base_url: &str, platform_secret: &str) -> HttpApi {
        let agent = ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).http_status_as_error(false).build().into();
        HttpApi { base: base_url.trim_end_matches('/').to_owned(), authorization: format!("Bearer {platform_secret}"), agent }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/internal/v1/{path}", self.base)
    }
}

fn failed(error: ureq::Error) -> String {
    format!("mqchat's internal API: {error}")
}

fn unexpected(status: u16) -> String {
    format!("mqchat's internal API answered {status}")
}

/// A path segment as the API expects it (ids are URL-safe; anything else
/// is refused before a request is made).
fn segment(value: &str) -> Result<&str, String> {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "_.:@-".contains(c)) {
        Ok(value)
    } else {
        Err("not an id".into())
    }
}

impl Api for HttpApi {
    fn keys(&self, public_key: &str) -> Result<Option<ProjectKeys>, String> {
        let Ok(public_key) = segment(public_key) else { return Ok(None) };
        let mut response = self.agent.get(&self.url(&format!("projects/{public_key}/keys"))).header("authorization", &self.authorization).call().map_err(failed)?;
        match response.status().as_u16() {
            200 => response.body_mut().read_json().map(Some).map_err(failed),
            404 => Ok(None),
            status => Err(unexpected(status)),
        }
    }

    fn login(&self, project_id: &str, claims: &IdentityClaims) -> Result<LoginAnswer, String> {
        let mut response = self
            .agent
            .post(&self.url("logins"))
            .header("authorization", &self.authorization)
            .send_json(json!({"project_id": project_id, "claims": claims}))
            .map_err(failed)?;
        match response.status().as_u16() {
            200 => response.body_mut().read_json::<Conversations>().map(|body| LoginAnswer::Admitted(body.conversations)).map_err(failed),
            403 => Ok(LoginAnswer::Revoked),
            status => Err(unexpected(status)),
        }
    }

    fn memberships(&self, project_id: &str, user_id: &str) -> Result<Vec<String>, String> {
        let path = format!("projects/{}/users/{}/conversations", segment(project_id)?, segment(user_id)?);
        let mut response = self.agent.get(&self.url(&path)).header("authorization", &self.authorization).call().map_err(failed)?;
        match response.status().as_u16() {
            200 => response.body_mut().read_json::<Conversations>().map(|body| body.conversations).map_err(failed),
            status => Err(unexpected(status)),
        }
    }
}
