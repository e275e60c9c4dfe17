//! What the chat engine checks on every command, kept in memory: each
//! conversation's type, archived flag and members with their roles, and
//! senders' profiles.
//!
//! Every change is told here: `forget_conversation` by the membership API
//! (and reported, so other instances sharing the database forget it too),
//! `remember_sender` by the authorizer when a token brings claims. A load
//! that raced with a change is not kept: loads remember the generation they
//! started in. The gateway's membership checks read the same cache.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use entity::conversation_member;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};
use tokio::sync::mpsc;

use crate::conversations::{self, ConversationError, ConversationKind, Role};
use crate::messages::Sender;

/// A conversation as commands need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationState {
    pub kind: ConversationKind,
    pub archived: bool,
    pub members: HashMap<String, Role>,
}

impl ConversationState {
    pub fn is_member(&self, user_id: &str) -> bool {
        self.members.contains_key(user_id)
    }

    pub fn is_admin(&self, user_id: &str) -> bool {
        self.members.get(user_id) == Some(&Role::Admin)
    }
}

#[derive(Default)]
pub struct EngineCache {
    conversations: DashMap<(String, String), Arc<ConversationState>>,
    senders: DashMap<(String, String), Sender>,
    /// Bumped by every change.
    generation: AtomicU64,
    /// Told of every conversation this process changed (other instances
    /// sharing the database are told in turn).
    changes: OnceLock<mpsc::UnboundedSender<(String, String)>>,
}

impl EngineCache {
    pub async fn conversation(
        &self,
        db: &DatabaseConnection,
        project_id: &str,
        conversation_id: &str,
    ) -> Result<Arc<ConversationState>, ConversationError> {
        let key = (project_id.to_owned(), conversation_id.to_owned());
        if let Some(state) = self.conversations.get(&key) {
            return Ok(Arc::clone(&state));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let row = conversations::find_row(db, project_id, conversation_id).await?;
        let members = conversation_member::Entity::find()
            .select_only()
            .column(conversation_member::Column::UserId)
            .column(conversation_member::Column::Role)
            .filter(conversation_member::Column::ConversationId.eq(conversation_id))
            .into_tuple::<(String, String)>()
            .all(db)
            .await?
            .into_iter()
            .map(|(user_id, role)| (user_id, Role::parse(&role)))
            .collect();
        let state = Arc::new(ConversationState {
            kind: ConversationKind::parse(&row.kind)?,
            archived: row.archived_at.is_some(),
            members,
        });
        if self.generation.load(Ordering::Acquire) == generation {
            self.conversations.insert(key, Arc::clone(&state));
        }
        Ok(state)
    }

    /// Whether `user_id` belongs to the conversation; an unknown
    /// conversation has no members.
    pub async fn is_member(
        &self,
        db: &DatabaseConnection,
        project_id: &str,
        conversation_id: &str,
        user_id: &str,
    ) -> Result<bool, ConversationError> {
        match self.conversation(db, project_id, conversation_id).await {
            Ok(conversation) => Ok(conversation.is_member(user_id)),
            Err(ConversationError::NotFound) => Ok(false),
            Err(error) => Err(error),
        }
    }

    pub async fn sender(&self, db: &DatabaseConnection, project_id: &str, user_id: &str) -> Result<Sender, DbErr> {
        let key = (project_id.to_owned(), user_id.to_owned());
        if let Some(sender) = self.senders.get(&key) {
            return Ok(sender.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let sender = crate::messages::store::sender(db, project_id, user_id).await?;
        if self.generation.load(Ordering::Acquire) == generation {
            self.senders.insert(key, sender.clone());
        }
        Ok(sender)
    }

    /// After any change of the conversation's members or archived state
    /// made by this process.
    pub fn forget_conversation(&self, project_id: &str, conversation_id: &str) {
        self.forget_conversation_quietly(project_id, conversation_id);
        if let Some(changes) = self.changes.get() {
            let _ = changes.send((project_id.to_owned(), conversation_id.to_owned()));
        }
    }

    /// After another process changed the conversation.
    pub fn forget_conversation_quietly(&self, project_id: &str, conversation_id: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.conversations.remove(&(project_id.to_owned(), conversation_id.to_owned()));
    }

    /// When changes by other processes may have been missed.
    pub fn forget_all_conversations(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.conversations.clear();
    }

    /// Where this process's conversation changes are reported from now on
    /// (once; `false` if already set).
    pub fn report_changes(&self, changes: mpsc::UnboundedSender<(String, String)>) -> bool {
        self.changes.set(changes).is_ok()
    }

    /// A user's profile as a fresh token states it (already stored). Nothing
    /// happens when it is the one cached, so reconnects cost nothing here.
    pub fn remember_sender(&self, project_id: &str, sender: Sender) {
        let key = (project_id.to_owned(), sender.id.clone());
        if self.senders.get(&key).is_some_and(|cached| *cached == sender) {
            return;
        }
        // A load that started before the profile was stored must not win.
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.senders.insert(key, sender);
    }
}
