//! The one list of events mqchat delivers, and where each goes: on a
//! conversation's MQTT topic, on a user's inbox, to webhooks. The MQTT
//! envelopes are made here (`ChatEvent::envelope`), the webhook catalogue
//! (`webhooks::EventType`) names its events through it, and the SDK's
//! TypeScript declarations are checked against `typescript_names` by a
//! test, so the three cannot drift apart.
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::conversations::{Conversation, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatEvent {
    MessageCreated,
    MessageUpdated,
    MessageDeleted,
    ReactionAdded,
    ReactionRemoved,
    ReadUpdated,
    MemberJoined,
    MemberLeft,
    ConversationCreated,
    ConversationJoined,
    ConversationLeft,
    ConversationArchived,
    UnreadChanged,
    /// Published by the gateway, which rewrites what members send on
    /// `…/typing` (its crate names it `typing` too; checked by a test of
    /// the binary, which sees both).
    Typing,
    UserPresenceChanged,
}

/// Where an event is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `chat/{project}/conv/{conversation}` (or its `/typing`): every member.
    Conversation,
    /// `chat/{project}/user/{user}/inbox`: the user it concerns.
    Inbox,
    /// The project's webhooks (and, for some, its callback URLs).
    Webhook,
}

impl ChatEvent {
    pub const ALL: [ChatEvent; 15] = [
        ChatEvent::MessageCreated,
        ChatEvent::MessageUpdated,
        ChatEvent::MessageDeleted,
        ChatEvent::ReactionAdded,
        ChatEvent::ReactionRemoved,
        ChatEvent::ReadUpdated,
        ChatEvent::MemberJoined,
        ChatEvent::MemberLeft,
        ChatEvent::ConversationCreated,
        ChatEvent::ConversationJoined,
        ChatEvent::ConversationLeft,
        ChatEvent::ConversationArchived,
        ChatEvent::UnreadChanged,
        ChatEvent::Typing,
        ChatEvent::UserPresenceChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChatEvent::MessageCreated => "message.created",
            ChatEvent::MessageUpdated => "message.updated",
            ChatEvent::MessageDeleted => "message.deleted",
            ChatEvent::ReactionAdded => "reaction.added",
            ChatEvent::ReactionRemoved => "reaction.removed",
            ChatEvent::ReadUpdated => "read.updated",
            ChatEvent::MemberJoined => "member.joined",
            ChatEvent::MemberLeft => "member.left",
            ChatEvent::ConversationCreated => "conversation.created",
            ChatEvent::ConversationJoined => "conversation.joined",
            ChatEvent::ConversationLeft => "conversation.left",
            ChatEvent::ConversationArchived => "conversation.archived",
            ChatEvent::UnreadChanged => "unread.changed",
            ChatEvent::Typing => "typing",
            ChatEvent::UserPresenceChanged => "user.presence.changed",
        }
    }

    pub fn channels(self) -> &'static [Channel] {
        use Channel::{Conversation, Inbox, Webhook};
        match self {
            ChatEvent::MessageCreated
            | ChatEvent::MessageUpdated
            | ChatEvent::MessageDeleted
            | ChatEvent::ReactionAdded
            | ChatEvent::ReactionRemoved
            | ChatEvent::MemberJoined
            | ChatEvent::MemberLeft
            | ChatEvent::ConversationArchived => &[Conversation, Webhook],
            ChatEvent::ReadUpdated | ChatEvent::Typing => &[Conversation],
            ChatEvent::ConversationCreated => &[Inbox, Webhook],
            ChatEvent::ConversationJoined | ChatEvent::ConversationLeft | ChatEvent::UnreadChanged => &[Inbox],
            // Over MQTT presence is the retained state of
            // `chat/{project}/presence/{user}`, not an event.
            ChatEvent::UserPresenceChanged => &[Webhook],
        }
    }

    /// Whether MQTT clients (and so the SDK) receive this event.
    pub fn reaches_clients(self) -> bool {
        self.channels().iter().any(|channel| *channel != Channel::Webhook)
    }

    /// The MQTT payload: `{"type": …, "data": …}` (docs/PROTOCOL.md §4).
    pub fn envelope(self, data: impl Serialize) -> String {
        json!({"type": self.as_str(), "data": data}).to_string()
    }
}

// The `data` of the events whose payload is not a message or a
// conversation. Each is built where the event happens and serialized into
// its envelope; the SDK's declarations are generated from these.

/// `reaction.added` / `reaction.removed`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ReactionChange<'a> {
    pub conversation_id: &'a str,
    pub message_id: &'a str,
    pub user_id: &'a str,
    pub emoji: &'a str,
}

/// `read.updated`: a member's read position moved forward.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ReadUpdated<'a> {
    pub conversation_id: &'a str,
    pub user_id: &'a str,
    pub last_read_seq: i64,
}

/// `unread.changed`, on the reader's inbox.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct UnreadChanged<'a> {
    pub conversation_id: &'a str,
    /// The read position this count follows from (`unread` = the
    /// conversation's last seq − this), so a client can order snapshots.
    pub last_read_seq: i64,
    pub unread: i64,
    /// Across all the user's conversations.
    pub total: i64,
}

/// `member.joined`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct MemberJoined<'a> {
    pub conversation_id: &'a str,
    pub user_id: &'a str,
    pub role: Role,
}

/// `member.left`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct MemberLeft<'a> {
    pub conversation_id: &'a str,
    pub user_id: &'a str,
}

/// `conversation.created` / `conversation.joined`, on a member's inbox.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ConversationNotice<'a> {
    pub conversation: &'a Conversation,
}

/// `conversation.left`, on the user's inbox.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ConversationLeft<'a> {
    pub conversation_id: &'a str,
}

/// `conversation.archived`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ConversationArchived<'a> {
    pub conversation_id: &'a str,
    pub archived_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_envelopes_carry_them() {
        let mut names: Vec<&str> = ChatEvent::ALL.iter().map(|event| event.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ChatEvent::ALL.len());
        let envelope: serde_json::Value =
            serde_json::from_str(&ChatEvent::MemberLeft.envelope(json!({"user_id": "u"}))).unwrap_or_default();
        assert_eq!(envelope, json!({"type": "member.left", "data": {"user_id": "u"}}));
    }

    /// The payload of each event clients receive, by name, as TypeScript:
    /// the types the engine serializes, declared by ts-rs from the same
    /// structs (`typing` is stamped by the gateway and declared by hand in
    /// the SDK).
    fn typescript_declarations() -> String {
        use crate::attachments::{AttachmentRef, AttachmentView};
        use crate::conversations::ConversationKind;
        use crate::messages::{MessageView, ReactionGroup, Sender};
        use crate::summaries::ConversationSummary;
        use ts_rs::{Config, TS};
        let cfg = Config::new().with_large_int("number");
        let declarations = [
            MessageView::decl(&cfg),
            Sender::decl(&cfg),
            AttachmentRef::decl(&cfg),
            AttachmentView::decl(&cfg),
            ReactionGroup::decl(&cfg),
            Conversation::decl(&cfg),
            ConversationKind::decl(&cfg),
            Role::decl(&cfg),
            ConversationSummary::decl(&cfg),
            ReactionChange::decl(&cfg),
            ReadUpdated::decl(&cfg),
            UnreadChanged::decl(&cfg),
            MemberJoined::decl(&cfg),
            MemberLeft::decl(&cfg),
            ConversationNotice::decl(&cfg),
            ConversationLeft::decl(&cfg),
            ConversationArchived::decl(&cfg),
        ];
        let payload = |event: ChatEvent| match event {
            ChatEvent::MessageCreated | ChatEvent::MessageUpdated | ChatEvent::MessageDeleted => "MessageView",
            ChatEvent::ReactionAdded | ChatEvent::ReactionRemoved => "ReactionChange",
            ChatEvent::ReadUpdated => "ReadUpdated",
            ChatEvent::MemberJoined => "MemberJoined",
            ChatEvent::MemberLeft => "MemberLeft",
            ChatEvent::ConversationCreated | ChatEvent::ConversationJoined => "ConversationNotice",
            ChatEvent::ConversationLeft => "ConversationLeft",
            ChatEvent::ConversationArchived => "ConversationArchived",
            ChatEvent::UnreadChanged => "UnreadChanged",
            ChatEvent::Typing => "Typing",
            ChatEvent::UserPresenceChanged => "never",
        };
        let mut out = String::new();
        for declaration in declarations {
            out.push_str("export ");
            out.push_str(&declaration);
            out.push('\n');
        }
        out.push_str("/** The `data` of each event on the MQTT topics, by its `type`. */\nexport interface ServerEventPayloads {\n");
        for event in ChatEvent::ALL.iter().filter(|event| event.reaches_clients()) {
            out.push_str(&format!("  '{}': {};\n", event.as_str(), payload(*event)));
        }
        out.push_str("}\nexport type ServerEventName = keyof ServerEventPayloads;\n");
        out
    }

    /// The SDK's declarations hold the generated payloads (see above). To
    /// refresh the block after a change: `MQCHAT_BLESS=1 cargo test -p mqchat-bridge events`.
    #[test]
    fn the_sdk_declarations_list_every_client_event() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/types/v1.d.ts");
        let declarations = std::fs::read_to_string(&path).unwrap_or_default();
        const BEGIN: &str = "// BEGIN generated from the server's event catalogue (bridge/src/events.rs)\n";
        const END: &str = "// END generated\n";
        let (Some(start), Some(end)) = (declarations.find(BEGIN), declarations.find(END)) else {
            panic!("{} has no generated event block", path.display());
        };
        let generated = typescript_declarations();
        let current = &declarations[start + BEGIN.len()..end];
        if current != generated && std::env::var_os("MQCHAT_BLESS").is_some() {
            let updated = format!("{}{generated}{}", &declarations[..start + BEGIN.len()], &declarations[end..]);
            std::fs::write(&path, updated).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        } else {
            assert_eq!(current, generated, "{} is stale: run with MQCHAT_BLESS=1", path.display());
        }
    }
}
