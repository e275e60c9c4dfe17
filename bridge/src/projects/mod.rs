//! Projects (tenants), their key pairs and settings; `browser` holds what
//! a project lets web pages do, `launcher_icon` its widget's own icon.
pub mod browser;
pub mod launcher_icon;

use entity::project;
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::Serialize;

use crate::conversations::ConversationKind;
use browser::{BrowserSettings, Verification};
use crate::ids::random_id;

/// A project as shown to its operator, secret included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Project {
    pub project_id: String,
    pub name: String,
    pub public_key: String,
    pub secret_key: String,
    /// The key a rotation replaced and until when it still verifies tokens
    /// and authenticates the server API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<PreviousSecret>,
    /// What end users may create themselves (`conversation.create`); the
    /// site's backend creates anything through the server API.
    pub user_conversation_types: Vec<ConversationKind>,
    /// Origins, identity verification, visitors, session lifetime, widget.
    #[serde(flatten)]
    pub browser: BrowserSettings,
}

/// A replaced secret key during its grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreviousSecret {
    #[serde(skip)]
    pub key: String,
    pub expires_at: DateTime<Utc>,
}

impl Project {
    /// The replaced key, while its grace period lasts at `now`.
    pub fn previous_key(&self, now: DateTime<Utc>) -> Option<&str> {
        self.previous_secret.as_ref().filter(|previous| previous.expires_at > now).map(|previous| previous.key.as_str())
    }
}

impl From<project::Model> for Project {
    fn from(model: project::Model) -> Self {
        let previous_secret = match (model.previous_secret_key, model.previous_secret_expires_at) {
            (Some(key), Some(expires_at)) => Some(PreviousSecret { key, expires_at }),
            _ => None,
        };
        let user_conversation_types =
            model.user_conversation_types.split(',').filter_map(|kind| ConversationKind::parse(kind.trim()).ok()).collect();
        let browser = BrowserSettings {
            allowed_origins: serde_json::from_str(&model.allowed_origins).unwrap_or_default(),
            identity_verification: Verification::parse(&model.identity_verification),
            identity_verification_secret: model.identity_secret,
            visitors: model.visitors,
            session_lifetime_seconds: u32::try_from(model.session_lifetime_secs)
                .unwrap_or(browser::DEFAULT_SESSION_LIFETIME_SECS),
            widget: serde_json::from_str(&model.widget).unwrap_or_default(),
        };
        Project {
            browser,
            user_conversation_types,
            project_id: model.id,
            name: model.name,
            public_key: model.public_key,
            secret_key: model.secret_key,
            previous_secret,
        }
    }
}

/// Longest grace period of a rotated secret key.
pub const MAX_ROTATION_GRACE: Duration = Duration::days(30);

/// Creates a project with fresh random keys (`sk_` carries 256 bits).
pub async fn create(db: &DatabaseConnection, name: &str) -> Result<Project, DbErr> {
    let model = project::ActiveModel {
        id: Set(random_id("prj_", 16)),
        name: Set(name.to_owned()),
        public_key: Set(random_id(mqchat_access::PUBLIC_KEY_PREFIX, 24)),
        secret_key: Set(random_id("sk_", 43)),
        previous_secret_key: Set(None),
        previous_secret_expires_at: Set(None),
        user_conversation_types: Set(ConversationKind::Direct.as_str().to_owned()),
        allowed_origins: Set("[]".to_owned()),
        identity_verification: Set(Verification::Off.as_str().to_owned()),
        identity_secret: Set(None),
        visitors: Set(false),
        session_lifetime_secs: Set(i64::from(browser::DEFAULT_SESSION_LIFETIME_SECS)),
        widget: Set("{}".to_owned()),
        created_at: Set(crate::clock::now()),
    }
    .insert(db)
    .await?;
    Ok(model.into())
}

pub async fn list(db: &DatabaseConnection) -> Result<Vec<Project>, DbErr> {
    let models = project::Entity::find().order_by_asc(project::Column::CreatedAt).all(db).await?;
    Ok(models.into_iter().map(Project::from).collect())
}

pub async fn find_by_public_key(db: &DatabaseConnection, public_key: &str) -> Result<Option<Project>, DbErr> {
    let model = project::Entity::find().filter(project::Column::PublicKey.eq(public_key)).one(db).await?;
    Ok(model.map(Project::from))
}

/// The project whose secret key is `secret_key`, or whose replaced key it
/// is while its grace period lasts.
pub async fn find_by_secret_key(db: &DatabaseConnection, secret_key: &str) -> Result<Option<Project>, DbErr> {
    let model = project::Entity::find()
        .filter(
            Condition::any().add(project::Column::SecretKey.eq(secret_key)).add(
                Condition::all()
                    .add(project::Column::PreviousSecretKey.eq(secret_key))
                    .add(project::Column::PreviousSecretExpiresAt.gt(crate::clock::now())),
            ),
        )
        .one(db)
        .await?;
    Ok(model.map(Project::from))
}

pub async fn find(db: &impl ConnectionTrait, project_id: &str) -> Result<Option<Project>, DbErr> {
    Ok(project::Entity::find_by_id(project_id.to_owned()).one(db).await?.map(Project::from))
}

/// Reads the project, lets `change` set columns, and writes them in one
/// update; `None` when the project is gone.
async fn modify(
    db: &DatabaseConnection,
    project_id: &str,
    change: impl FnOnce(&project::Model, &mut project::ActiveModel),
) -> Result<Option<Project>, DbErr> {
    let Some(model) = project::Entity::find_by_id(project_id.to_owned()).one(db).await? else {
        return Ok(None);
    };
    let mut active: project::ActiveModel = model.clone().into();
    change(&model, &mut active);
    Ok(Some(active.update(db).await?.into()))
}

/// Stores the project's settings in one write: the conversation types end
/// users may create themselves (when given) and its browser settings
/// (already checked by `BrowserChanges::apply`).
pub async fn update_settings(
    db: &DatabaseConnection,
    project_id: &str,
    user_conversation_types: Option<&[ConversationKind]>,
    browser: &BrowserSettings,
) -> Result<Option<Project>, DbErr> {
    modify(db, project_id, |_, active| {
        if let Some(kinds) = user_conversation_types {
            let mut names: Vec<&str> = kinds.iter().map(|kind| kind.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            active.user_conversation_types = Set(names.join(","));
        }
        active.allowed_origins = Set(serde_json::to_string(&browser.allowed_origins).unwrap_or_else(|_| "[]".into()));
        active.identity_verification = Set(browser.identity_verification.as_str().to_owned());
        active.identity_secret = Set(browser.identity_verification_secret.clone());
        active.visitors = Set(browser.visitors);
        active.session_lifetime_secs = Set(i64::from(browser.session_lifetime_seconds));
        active.widget = Set(serde_json::to_string(&browser.widget).unwrap_or_else(|_| "{}".into()));
    })
    .await
}

/// A fresh identity-verification secret (`iv_` and 256 bits).
pub fn fresh_identity_secret() -> String {
    random_id("iv_", 43)
}

/// Gives the project a new secret key; the current one keeps verifying
/// tokens and authenticating the server API for `grace` (at most
/// `MAX_ROTATION_GRACE`; zero ends it at once). A rotation during another's
/// grace period ends that one: only the key just replaced stays valid.
pub async fn rotate_secret(db: &DatabaseConnection, project_id: &str, grace: Duration) -> Result<Option<Project>, DbErr> {
    let grace = grace.clamp(Duration::zero(), MAX_ROTATION_GRACE);
    let now = crate::clock::now();
    modify(db, project_id, |model, active| {
        active.previous_secret_key = Set((grace > Duration::zero()).then(|| model.secret_key.clone()));
        active.previous_secret_expires_at = Set((grace > Duration::zero()).then(|| now + grace));
        active.secret_key = Set(random_id("sk_", 43));
    })
    .await
}
