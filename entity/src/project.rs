//! A project: one tenant, with the key pair its site uses.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "projects")]
pub struct Model {
    /// `prj_…`: appears in every MQTT topic of the tenant.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Human name, returned by `sdk/init` as `project_name`.
    pub name: String,
    /// `pk_…`: safe in browsers; the MQTT username.
    #[sea_orm(unique)]
    pub public_key: String,
    /// `sk_…`: the HS256 key of identity tokens and the server-API credential.
    #[sea_orm(unique)]
    pub secret_key: String,
    /// The secret key a rotation replaced; tokens it signed verify until
    /// `previous_secret_expires_at`, the server API no longer takes it.
    pub previous_secret_key: Option<String>,
    pub previous_secret_expires_at: Option<DateTimeUtc>,
    /// Conversation types end users may create over MQTT, comma-separated
    /// (`direct` by default; the server API creates any).
    pub user_conversation_types: String,
    /// JSON array of origins allowed in browsers; `[]` allows every origin.
    pub allowed_origins: String,
    /// `off`, `optional` or `required` (`identify()`'s `userHash`).
    pub identity_verification: String,
    /// HMAC-SHA256 key of `userHash`.
    pub identity_secret: Option<String>,
    /// Whether visitors (not logged in) may chat.
    pub visitors: bool,
    /// Lifetime of the session tokens issued for the project, seconds.
    pub session_lifetime_secs: i64,
    /// JSON object: the widget's look (`widget_config` of `sdk/init`).
    pub widget: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
