//! Conversation commands (create, join, leave, list) and the membership
//! operations the server API shares with them, so that both publish the
//! same events: `member.joined` / `member.left` / `conversation.archived` on
//! the conversation, `conversation.created` / `conversation.joined` /
//! `conversation.left` on each concerned user's inbox.
use serde::Deserialize;
use serde_json::{json, Value};

use super::{open_to_join, CommandError, Engine, ErrorCode};
use crate::conversations::{self, Conversation, ConversationError, ConversationKind, Created, NewConversation, Role};
use crate::events::{ChatEvent, ConversationArchived, ConversationLeft, ConversationNotice, MemberJoined, MemberLeft};
use crate::webhooks::Event;
use crate::{summaries, users};
use sea_orm::{DatabaseTransaction, TransactionTrait};

/// `conversation.create`: the sender is always a member, and the admin of
/// anything but a direct conversation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Create {
    #[serde(rename = "type")]
    kind: ConversationKind,
    title: Option<String>,
    /// The other members.
    #[serde(default)]
    member_ids: Vec<String>,
}

/// Most other members a user names when creating a conversation.
const MAX_MEMBERS_PER_USER_CREATE: usize = 100;

impl Create {
    /// The rules a creation request obeys on its own.
    pub(super) fn check(&self) -> Result<(), CommandError> {
        if self.member_ids.len() > MAX_MEMBERS_PER_USER_CREATE {
            return Err(CommandError::invalid(format!("a user names at most {MAX_MEMBERS_PER_USER_CREATE} members at once")));
        }
        if let Some(bad) = self.member_ids.iter().find(|id| !users::valid_id(id)) {
            return Err(CommandError::invalid(format!("{bad:?} is not a valid user id")));
        }
        Ok(())
    }
}

impl Engine {
    pub(super) async fn create_command(&self, project_id: &str, user_id: &str, create: Create) -> Result<Value, CommandError> {
        let allowed = crate::projects::find(&self.db, project_id).await?.map(|project| project.user_conversation_types);
        if !allowed.unwrap_or_default().contains(&create.kind) {
            return Err(CommandError::forbidden(format!(
                "users of this project may not create {} conversations; the site's backend creates them (server API)",
                create.kind.as_str()
            )));
        }
        create.check()?;
        if self.creations.check_key(&(project_id.to_owned(), user_id.to_owned())).is_err() {
            return Err(CommandError::new(ErrorCode::RateLimited, "too many conversations created; wait a minute"));
        }
        let mut member_ids = create.member_ids;
        member_ids.push(user_id.to_owned());
        let admin_ids = if create.kind == ConversationKind::Direct { Vec::new() } else { vec![user_id.to_owned()] };
        let request = NewConversation { kind: create.kind, title: create.title, member_ids, admin_ids, unique_key: None };
        let Created { conversation, created } = self.create_conversation(project_id, request).await?;
        Ok(json!({"conversation": conversation, "created": created}))
    }

    /// `support.open`: the user's one support conversation, with every
    /// agent of the project as an admin; opened again, the same one.
    pub(super) async fn open_support(&self, project_id: &str, user_id: &str, title: Option<String>) -> Result<Value, CommandError> {
        let key = format!("support|{user_id}");
        if let Some(existing) = conversations::find_direct(&self.db, project_id, &key).await? {
            let conversation = conversations::get(&self.db, project_id, &existing).await?;
            if conversation.member_ids.iter().any(|member| member == user_id) && !conversation.archived {
                return Ok(json!({"conversation": conversation, "created": false}));
            }
            return Err(CommandError::forbidden("your support conversation was closed; the site's backend may reopen it"));
        }
        let agents = users::agents(&self.db, project_id).await?;
        if agents.is_empty() {
            return Err(CommandError::new(ErrorCode::NoAgents, "nobody answers support for this project yet"));
        }
        if self.creations.check_key(&(project_id.to_owned(), user_id.to_owned())).is_err() {
            return Err(CommandError::new(ErrorCode::RateLimited, "too many conversations created; wait a minute"));
        }
        let request = NewConversation {
            kind: ConversationKind::Support,
            title,
            member_ids: vec![user_id.to_owned()],
            admin_ids: agents,
            unique_key: Some(key),
        };
        let Created { conversation, created } = self.create_conversation(project_id, request).await?;
        Ok(json!({"conversation": conversation, "created": created}))
    }

    /// Creates a conversation and tells every member on its inbox. A direct
    /// conversation that exists already is returned unchanged (`created: false`).
    pub async fn create_conversation(&self, project_id: &str, request: NewConversation) -> Result<Created, CommandError> {
        let txn = self.db.begin().await?;
        let outcome = conversations::create(&txn, project_id, request).await;
        let outcome = self
            .finish(txn, project_id, outcome, |outcome| {
                if outcome.created { vec![Event::conversation_created(&outcome.conversation)] } else { Vec::new() }
            })
            .await?;
        if outcome.created {
            let event = ChatEvent::ConversationCreated.envelope(ConversationNotice { conversation: &outcome.conversation });
            for member in &outcome.conversation.member_ids {
                self.outlet.to_user(project_id, member, event.clone());
            }
        }
        Ok(outcome)
    }

    pub(super) async fn join(&self, project_id: &str, user_id: &str, conversation_id: &str) -> Result<Value, CommandError> {
        let state = self.cache.conversation(&self.db, project_id, conversation_id).await?;
        if !state.is_member(user_id) && !open_to_join(state.kind) {
            return Err(CommandError::forbidden("only channels can be joined; ask a member to add you"));
        }
        let (conversation, joined) = self.add_member(project_id, conversation_id, user_id, Role::Member).await?;
        Ok(json!({"conversation": conversation, "joined": joined}))
    }

    pub(super) async fn leave(&self, project_id: &str, user_id: &str, conversation_id: &str) -> Result<Value, CommandError> {
        let state = self.membership(project_id, user_id, conversation_id).await?;
        if state.kind == ConversationKind::Direct {
            return Err(CommandError::forbidden("a direct conversation cannot be left"));
        }
        self.remove_member(project_id, conversation_id, user_id).await?;
        Ok(json!({"conversation_id": conversation_id, "left": true}))
    }

    pub(super) async fn list(
        &self,
        project_id: &str,
        user_id: &str,
        after: Option<summaries::Cursor>,
        limit: Option<u64>,
    ) -> Result<Value, CommandError> {
        let limit = limit.unwrap_or(50).clamp(1, summaries::MAX_LIST_PAGE);
        let (page, has_more) =
            summaries::list(&self.db, &self.cache, &self.files, project_id, user_id, after.as_ref(), limit).await?;
        let next = page
            .last()
            .filter(|_| has_more)
            .map(|last| summaries::Cursor { before: last.last_activity_at, before_id: Some(last.id.clone()) });
        let total = summaries::unread_total(&self.db, project_id, user_id).await?;
        Ok(json!({"conversations": page, "has_more": has_more, "next": next, "total_unread": total}))
    }

    /// Adds a member and returns the conversation, with false when the user
    /// already was a member. Publishes `member.joined` and tells the user's
    /// devices.
    pub async fn add_member(
        &self,
        project_id: &str,
        conversation_id: &str,
        user_id: &str,
        role: Role,
    ) -> Result<(Conversation, bool), CommandError> {
        let txn = self.db.begin().await?;
        let added = conversations::add_member(&txn, project_id, conversation_id, user_id, role).await;
        let added = self
            .finish(txn, project_id, added, |&added| {
                if added { vec![Event::member(true, conversation_id, user_id)] } else { Vec::new() }
            })
            .await;
        self.cache.forget_conversation(project_id, conversation_id);
        let added = added?;
        let conversation = conversations::get(&self.db, project_id, conversation_id).await?;
        if added {
            let event = ChatEvent::MemberJoined.envelope(MemberJoined { conversation_id, user_id, role });
            self.outlet.to_conversation(project_id, conversation_id, event);
            let notice = ChatEvent::ConversationJoined.envelope(ConversationNotice { conversation: &conversation });
            self.outlet.to_user(project_id, user_id, notice);
        }
        Ok((conversation, added))
    }

    /// Removes a member; returns false when it was not one. Its live
    /// subscriptions end before `member.left` is published.
    pub async fn remove_member(&self, project_id: &str, conversation_id: &str, user_id: &str) -> Result<bool, CommandError> {
        let txn = self.db.begin().await?;
        let removed = conversations::remove_member(&txn, project_id, conversation_id, user_id).await;
        let removed = self
            .finish(txn, project_id, removed, |&removed| {
                if removed { vec![Event::member(false, conversation_id, user_id)] } else { Vec::new() }
            })
            .await;
        // Forgotten first, so that a new SUBSCRIBE is refused; then live
        // connections drop it.
        self.cache.forget_conversation(project_id, conversation_id);
        if !removed? {
            return Ok(false);
        }
        self.outlet.revoke(project_id, user_id, conversation_id);
        let event = ChatEvent::MemberLeft.envelope(MemberLeft { conversation_id, user_id });
        self.outlet.to_conversation(project_id, conversation_id, event);
        let notice = ChatEvent::ConversationLeft.envelope(ConversationLeft { conversation_id });
        self.outlet.to_user(project_id, user_id, notice);
        Ok(true)
    }

    /// Archives the conversation (idempotent); the first time, publishes
    /// `conversation.archived`.
    pub async fn archive(&self, project_id: &str, conversation_id: &str) -> Result<Conversation, CommandError> {
        let txn = self.db.begin().await?;
        let archived = conversations::archive(&txn, project_id, conversation_id).await;
        let archived = self
            .finish(txn, project_id, archived, |(conversation, archiving)| match (archiving, conversation.archived_at) {
                (true, Some(at)) => vec![Event::conversation_archived(conversation_id, at)],
                _ => Vec::new(),
            })
            .await;
        self.cache.forget_conversation(project_id, conversation_id);
        let (conversation, archiving) = archived?;
        if archiving {
            let event = ChatEvent::ConversationArchived
                .envelope(ConversationArchived { conversation_id, archived_at: conversation.archived_at });
            self.outlet.to_conversation(project_id, conversation_id, event);
        }
        Ok(conversation)
    }

    /// Commits a membership change with the webhook events its outcome calls
    /// for; on an error the transaction is dropped (rolled back).
    async fn finish<T>(
        &self,
        txn: DatabaseTransaction,
        project_id: &str,
        outcome: Result<T, ConversationError>,
        events: impl FnOnce(&T) -> Vec<Event>,
    ) -> Result<T, CommandError> {
        let outcome = outcome?;
        self.commit_with(txn, project_id, &events(&outcome)).await?;
        Ok(outcome)
    }

    /// The conversation with its members (server API).
    pub async fn conversation(&self, project_id: &str, conversation_id: &str) -> Result<Conversation, CommandError> {
        Ok(conversations::get(&self.db, project_id, conversation_id).await?)
    }
}
