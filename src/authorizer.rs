//! The broker's `Authorizer`, answered from the chat engine's tables.
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use mqchat_bridge::cache::EngineCache;
use mqchat_bridge::projects::Project;
use mqchat_bridge::users::UserProfile;
use mqchat_bridge::messages::Sender;
use mqchat_bridge::{projects, users, DatabaseConnection};
use mqchat_broker::identity::{self, now_unix, IdentityClaims, SigningKeys, TokenError, UserId};
use mqchat_broker::{AuthError, Authorizer, Principal};

/// How long a project's keys are trusted without reading them again.
const PROJECT_CACHE_TTL: Duration = Duration::from_secs(30);

pub struct ChatAuthorizer {
    db: DatabaseConnection,
    /// Told when a token brings a user's profile, so events show the new one;
    /// also answers the gateway's membership checks.
    cache: Arc<EngineCache>,
    /// Projects by public key, with when they were read. A rotation through
    /// the server API drops its project at once (`forget`); one made by
    /// another process (`mqchat project rotate-secret`) is seen once the
    /// entry is older than `PROJECT_CACHE_TTL`.
    projects: DashMap<String, (Arc<Project>, Instant)>,
}

impl ChatAuthorizer {
    pub fn new(db: DatabaseConnection, cache: Arc<EngineCache>) -> Self {
        ChatAuthorizer { db, cache, projects: DashMap::new() }
    }

    pub async fn project(&self, public_key: &str) -> Result<Option<Arc<Project>>, AuthError> {
        if let Some(entry) = self.projects.get(public_key) {
            let (project, read_at) = entry.value();
            if read_at.elapsed() < PROJECT_CACHE_TTL {
                return Ok(Some(Arc::clone(project)));
            }
        }
        let found = projects::find_by_public_key(&self.db, public_key)
            .await
            .map_err(|error| AuthError::Unavailable(error.to_string()))?;
        Ok(found.map(|project| {
            let project = Arc::new(project);
            self.projects.insert(public_key.to_owned(), (Arc::clone(&project), Instant::now()));
            project
        }))
    }

    /// Drops a cached project, after its keys changed.
    pub fn forget(&self, public_key: &str) {
        self.projects.remove(public_key);
    }

    /// Verifies a token for the project (its secret key, or the key a
    /// rotation replaced while its grace period lasts), refuses one issued
    /// before the user's sessions were revoked, and records the profile.
    pub async fn verify_token(&self, project: &Project, token: &str) -> Result<Principal, AuthError> {
        let keys = SigningKeys { current: &project.secret_key, previous: project.previous_key(chrono::Utc::now()) };
        let verified = identity::verify_with(keys, token, now_unix())?;
        self.admit(&project.project_id, verified.user_id, verified.claims).await
    }

    /// Lets in a user whose token was verified (here, or by the broker's
    /// plugin with the same code): refuses a token issued before the
    /// user's sessions were revoked, and records the profile it carries.
    pub async fn admit(&self, project_id: &str, user_id: UserId, claims: IdentityClaims) -> Result<Principal, AuthError> {
        let revoked_at = users::sessions_revoked_at(&self.db, project_id, &claims.sub)
            .await
            .map_err(|error| AuthError::Unavailable(error.to_string()))?;
        if revoked_at.is_some_and(|at| claims.iat <= at.timestamp()) {
            return Err(TokenError::Revoked.into());
        }
        let profile = UserProfile {
            external_id: claims.sub.clone(),
            name: claims.name.clone(),
            email: claims.email.clone(),
            avatar_url: claims.avatar_url.clone(),
        };
        users::upsert(&self.db, project_id, &profile)
            .await
            .map_err(|error| AuthError::Unavailable(error.to_string()))?;
        let sender = Sender { id: claims.sub.clone(), name: claims.name.clone(), avatar_url: claims.avatar_url.clone() };
        self.cache.remember_sender(project_id, sender);
        Ok(Principal { project_id: project_id.to_owned(), user_id, claims })
    }
}

#[async_trait]
impl Authorizer for ChatAuthorizer {
    async fn authenticate(&self, username: &str, password: &str, origin: Option<&str>) -> Result<Principal, AuthError> {
        let project = self
            .project(username)
            .await?
            .ok_or_else(|| AuthError::BadCredentials("unknown project public key".into()))?;
        if let Some(origin) = origin.filter(|origin| !project.browser.allows_origin(origin)) {
            return Err(AuthError::NotAuthorized(format!("origin {origin:?} is not allowed by the project")));
        }
        self.verify_token(&project, password).await
    }

    /// Answered from the chat engine's cache, which the membership API keeps current.
    async fn is_member(&self, principal: &Principal, conversation_id: &str) -> Result<bool, AuthError> {
        self.cache
            .is_member(&self.db, &principal.project_id, conversation_id, principal.user_id.as_str())
            .await
            .map_err(|error| AuthError::Unavailable(error.to_string()))
    }
}
