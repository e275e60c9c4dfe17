//! An uploaded file, stored outside the database; messages reference it.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "attachments")]
pub struct Model {
    /// `att_…`: also the file's name in storage.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub project_id: String,
    /// Uploaded into this conversation; only its messages may reference it.
    pub conversation_id: String,
    /// The uploader's `sub`; only the uploader may attach it to a message.
    pub uploader_id: String,
    pub filename: String,
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
