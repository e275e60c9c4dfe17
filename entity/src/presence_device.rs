//! One device's presence, as its status announcements and will say.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "presence_devices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub project_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    /// What the device calls itself (`""` when it does not say).
    #[sea_orm(primary_key, auto_increment = false)]
    pub device: String,
    /// The epoch of the connection that last spoke for the device.
    pub epoch: i64,
    pub online: bool,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
