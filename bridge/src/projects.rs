//! Projects (tenants) and their key pairs.
use entity::project;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::Serialize;

use crate::ids::random_id;

/// A project as shown to its operator, secret included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Project {
    pub project_id: String,
    pub name: String,
    pub public_key: String,
    pub secret_key: String,
}

impl From<project::Model> for Project {
    fn from(model: project::Model) -> Self {
        Project { project_id: model.id, name: model.name, public_key: model.public_key, secret_key: model.secret_key }
    }
}

/// Creates a project with fresh random keys (`sk_` carries 256 bits).
pub async fn create(db: &DatabaseConnection, name: &str) -> Result<Project, DbErr> {
    let model = project::ActiveModel {
        id: Set(random_id("prj_", 16)),
        name: Set(name.to_owned()),
        public_key: Set(random_id("pk_", 24)),
        secret_key: Set(random_id("sk_", 43)),
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

pub async fn find_by_secret_key(db: &DatabaseConnection, secret_key: &str) -> Result<Option<Project>, DbErr> {
    let model = project::Entity::find().filter(project::Column::SecretKey.eq(secret_key)).one(db).await?;
    Ok(model.map(Project::from))
}
