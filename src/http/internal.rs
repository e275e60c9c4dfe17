//! The internal API, for the broker in front of mqchat (docs/SCALING.md):
//! what mqchat's Mosquitto plugin fetches and caches (a project's keys, a
//! user's memberships), and EMQX's HTTP authentication and authorization
//! endpoints in the formats EMQX 5.8 documents. Every route needs
//! `Authorization: Bearer <broker.platform_secret>`; without a platform
//! secret configured the routes do not exist (404).
use std::sync::Arc;

use mqchat_bridge::conversations;
use mqchat_bridge::projects::Project;
use mqchat_broker::acl::{self, Decision, Subject};
use mqchat_broker::identity::{IdentityClaims, UserId};
use mqchat_broker::{AuthError, Authorizer, Principal};
use mqchat_access::PUBLIC_KEY_PREFIX;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::{bearer, json_body, with_state, ApiError, ApiState};
use crate::external::{RemoteOutlet, PLATFORM_USERNAME};

/// What the internal API needs beyond the rest of the state.
pub struct PlatformAccess {
    pub secret: String,
    /// Where key rotations are announced to the Mosquitto plugin (external mode).
    pub plugin: Option<Arc<RemoteOutlet>>,
}

impl PlatformAccess {
    /// Compares in constant time (over digests, whatever the lengths).
    pub fn accepts(&self, secret: &str) -> bool {
        let (given, expected) = (Sha256::digest(secret.as_bytes()), Sha256::digest(self.secret.as_bytes()));
        given.iter().zip(expected.iter()).fold(0u8, |difference, (a, b)| difference | (a ^ b)) == 0
    }

    /// Tells the plugin a project's keys changed (rotation, grace cut short).
    pub fn project_changed(&self, public_key: &str) {
        if let Some(plugin) = &self.plugin {
            plugin.control(json!({"op": "project", "public_key": public_key}));
        }
    }
}

pub fn routes(state: Arc<ApiState>) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let keys = warp::path!("internal" / "v1" / "projects" / String / "keys").and(warp::get()).and(platform(Arc::clone(&state))).then(keys);
    let login = warp::path!("internal" / "v1" / "logins").and(warp::post()).and(platform(Arc::clone(&state))).and(json_body()).then(login);
    let memberships = warp::path!("internal" / "v1" / "projects" / String / "users" / String / "conversations")
        .and(warp::get())
        .and(platform(Arc::clone(&state)))
        .then(memberships);
    let authn = warp::path!("internal" / "v1" / "emqx" / "authn").and(warp::post()).and(platform(Arc::clone(&state))).and(json_body()).then(emqx_authn);
    let authz = warp::path!("internal" / "v1" / "emqx" / "authz").and(warp::post()).and(platform(state)).and(json_body()).then(emqx_authz);
    keys.or(login).unify().or(memberships).unify().or(authn).unify().or(authz).unify()
}

/// Passes only callers holding the platform secret; 404 when none is set.
fn platform(state: Arc<ApiState>) -> impl Filter<Extract = (Arc<ApiState>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization").and(with_state(state)).and_then(|header: Option<String>, state: Arc<ApiState>| async move {
        let Some(access) = &state.platform else { return Err(warp::reject::not_found()) };
        match header.as_deref().and_then(bearer) {
            Some(secret) if access.accepts(secret) => Ok(state),
            _ => Err(warp::reject::custom(ApiError::unauthorized("the internal API needs the platform secret"))),
        }
    })
}

fn result(body: Result<Value, ApiError>) -> warp::reply::Response {
    match body {
        Ok(body) => warp::reply::json(&body).into_response(),
        Err(error) => error.reply(),
    }
}

fn unavailable(error: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", error.to_string())
}

/// `GET /internal/v1/projects/{public_key}/keys`: what verifies the
/// project's tokens (the secret key, and the one a rotation replaced while
/// it still counts).
async fn keys(public_key: String, state: Arc<ApiState>) -> warp::reply::Response {
    result(async {
        let project = state.authorizer.project(&public_key).await.map_err(unavailable)?;
        let project = project.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "project_not_found", "unknown public key"))?;
        Ok(project_keys(&project))
    }.await)
}

fn project_keys(project: &Project) -> Value {
    let previous = project.previous_key(chrono::Utc::now()).and(project.previous_secret.as_ref());
    json!({
        "project_id": project.project_id,
        "secret_key": project.secret_key,
        "previous_key": previous.map(|previous| &previous.key),
        "previous_key_expires_at": previous.map(|previous| previous.expires_at.timestamp()),
    })
}

/// A login the plugin verified: whose, and with which claims.
#[derive(Deserialize)]
struct Login {
    project_id: String,
    claims: IdentityClaims,
}

/// `POST /internal/v1/logins`: refuses a token issued before the user's
/// sessions were revoked (403 `revoked`), records the profile, and returns
/// the user's conversations.
async fn login(state: Arc<ApiState>, login: Login) -> warp::reply::Response {
    result(async {
        let user_id = UserId::parse(&login.claims.sub).map_err(|error| ApiError::invalid(error.to_string()))?;
        let principal = state.authorizer.admit(&login.project_id, user_id, login.claims).await.map_err(|error| match error {
            AuthError::Unavailable(error) => unavailable(error),
            refused => ApiError::new(StatusCode::FORBIDDEN, "revoked", refused.to_string()),
        })?;
        let conversations = conversations::memberships_of(&state.db, &principal.project_id, principal.user_id.as_str())
            .await
            .map_err(unavailable)?;
        Ok(json!({"conversations": conversations}))
    }.await)
}

/// `GET /internal/v1/projects/{project}/users/{user}/conversations`.
async fn memberships(project_id: String, user_id: String, state: Arc<ApiState>) -> warp::reply::Response {
    result(async {
        let conversations = conversations::memberships_of(&state.db, &project_id, &user_id).await.map_err(unavailable)?;
        Ok(json!({"conversations": conversations}))
    }.await)
}

/// What EMQX sends to authenticate a client (the body template of the
/// sample configuration: `${clientid}`, `${username}`, `${password}`).
#[derive(Deserialize)]
struct EmqxLogin {
    #[serde(default)]
    clientid: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// One entry of the client's ACL in an EMQX 5.8 authentication answer.
#[derive(Serialize)]
struct AclRule {
    permission: &'static str,
    action: &'static str,
    topic: String,
}

fn allow(action: &'static str, topic: String) -> AclRule {
    AclRule { permission: "allow", action, topic }
}

/// The rules a chat user gets at login: everything `acl` allows it, with
/// the conversations it belongs to now. Anything else falls through to the
/// authorization endpoint, which asks about memberships made later.
fn login_acl(principal: &Principal, conversations: &[String]) -> Vec<AclRule> {
    let (project, user) = (principal.project_id.as_str(), principal.user_id.as_str());
    let mut rules = vec![
        allow("subscribe", acl::inbox_topic(project, user)),
        allow("subscribe", format!("{}/+", acl::inbox_topic(project, user))),
        allow("subscribe", format!("chat/{project}/presence/#")),
        allow("publish", acl::outbox_topic(project, user)),
        allow("publish", acl::status_topic(project, user)),
    ];
    for conversation in conversations {
        rules.push(allow("subscribe", format!("{}/#", acl::conversation_topic(project, conversation))));
        rules.push(allow("publish", acl::typing_topic(project, conversation)));
    }
    rules
}

/// `POST /internal/v1/emqx/authn`: `allow` with the client's ACL, token
/// expiry and identity (as client attributes, for the authorization
/// endpoint); `deny` for a bad token; `ignore` for a username that is no
/// project's public key (a device EMQX authenticates otherwise).
async fn emqx_authn(state: Arc<ApiState>, login: EmqxLogin) -> warp::reply::Response {
    if login.username == PLATFORM_USERNAME {
        let allowed = state.platform.as_ref().is_some_and(|access| access.accepts(&login.password));
        return warp::reply::json(&json!({"result": if allowed { "allow" } else { "deny" }, "is_superuser": allowed})).into_response();
    }
    if !login.username.starts_with(PUBLIC_KEY_PREFIX) {
        return warp::reply::json(&json!({"result": "ignore"})).into_response();
    }
    let principal = match state.authorizer.authenticate(&login.username, &login.password, None).await {
        Ok(principal) => principal,
        Err(AuthError::Unavailable(error)) => return unavailable(error).reply(),
        Err(refused) => {
            tracing::debug!(client_id = %login.clientid.escape_debug(), error = %refused, "EMQX login refused");
            return warp::reply::json(&json!({"result": "deny"})).into_response();
        }
    };
    let conversations = match conversations::memberships_of(&state.db, &principal.project_id, principal.user_id.as_str()).await {
        Ok(conversations) => conversations,
        Err(error) => return unavailable(error).reply(),
    };
    warp::reply::json(&json!({
        "result": "allow",
        "is_superuser": false,
        "expire_at": principal.claims.exp,
        "client_attrs": {"mqchat_project": principal.project_id, "mqchat_user": principal.user_id.as_str()},
        "acl": login_acl(&principal, &conversations),
    }))
    .into_response()
}

/// What EMQX sends to authorize one publish or subscribe (the sample
/// configuration's body: `${username}`, `${topic}`, `${action}` and the
/// client attributes authentication set).
#[derive(Deserialize)]
struct EmqxAccess {
    topic: String,
    action: String,
    #[serde(default)]
    mqchat_project: String,
    #[serde(default)]
    mqchat_user: String,
}

/// `POST /internal/v1/emqx/authz`: `allow` or `deny` for a chat user by the
/// same rules as the gateway (memberships read now); `ignore` for a client
/// mqchat did not authenticate, unless it reaches into `chat/…` or `$mqchat/…`.
async fn emqx_authz(state: Arc<ApiState>, access: EmqxAccess) -> warp::reply::Response {
    let answer = |allowed: bool| warp::reply::json(&json!({"result": if allowed { "allow" } else { "deny" }})).into_response();
    if access.mqchat_project.is_empty() || access.mqchat_user.is_empty() {
        // A filter starting with a wildcard would reach `chat/…` too.
        let reaches_chat = acl::is_mqchat_namespace(&access.topic) || access.topic.starts_with(['#', '+']);
        return if reaches_chat { answer(false) } else { warp::reply::json(&json!({"result": "ignore"})).into_response() };
    }
    let subject = Subject { project_id: &access.mqchat_project, user_id: &access.mqchat_user };
    let decision = match access.action.as_str() {
        "publish" => acl::publish(subject, &access.topic),
        "subscribe" => acl::subscribe(subject, &access.topic),
        _ => Decision::Deny("unknown action"),
    };
    match decision {
        Decision::Allow => answer(true),
        Decision::Deny(_) => answer(false),
        Decision::IfMember(conversation) => {
            match state.engine.cache().is_member(&state.db, subject.project_id, conversation, subject.user_id).await {
                Ok(member) => answer(member),
                Err(error) => unavailable(error).reply(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platform_secret_must_match_exactly() {
        let access = PlatformAccess { secret: "0123456789abcdef".into(), plugin: None };
        assert!(access.accepts("0123456789abcdef"));
        assert!(!access.accepts("0123456789abcdeF"));
        assert!(!access.accepts("0123456789abcdef0"));
        assert!(!access.accepts(""));
    }
}
