//! The one list of events mqchat delivers, and where each goes: on a
//! conversation's MQTT topic, on a user's inbox, to webhooks. The MQTT
//! envelopes are made here (`ChatEvent::envelope`), the webhook catalogue
//! (`webhooks::EventType`) names its events through it, and the SDK's
//! TypeScript declarations are checked against `typescript_names` by a
//! test, so the three cannot drift apart.
use serde::Serialize;
use serde_json::json;

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

/// The TypeScript union of every event name MQTT clients receive, as the
/// SDK's declarations (`web/types/v1.d.ts`) must list them.
pub fn typescript_names() -> String {
    let names: Vec<String> =
        ChatEvent::ALL.iter().filter(|event| event.reaches_clients()).map(|event| format!("'{}'", event.as_str())).collect();
    format!("export type ServerEventName =\n  | {};\n", names.join("\n  | "))
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

    /// The SDK's declarations hold the generated list, and every client
    /// event has its payload in the SDK's `ChatEvents` map. To refresh the
    /// block after adding an event: `MQCHAT_BLESS=1 cargo test -p mqchat-bridge events`.
    #[test]
    fn the_sdk_declarations_list_every_client_event() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/types/v1.d.ts");
        let declarations = std::fs::read_to_string(&path).unwrap_or_default();
        const BEGIN: &str = "// BEGIN generated from the server's event catalogue (bridge/src/events.rs)\n";
        const END: &str = "// END generated\n";
        let (Some(start), Some(end)) = (declarations.find(BEGIN), declarations.find(END)) else {
            panic!("{} has no generated event block", path.display());
        };
        let generated = typescript_names();
        let current = &declarations[start + BEGIN.len()..end];
        if current != generated && std::env::var_os("MQCHAT_BLESS").is_some() {
            let updated = format!("{}{generated}{}", &declarations[..start + BEGIN.len()], &declarations[end..]);
            std::fs::write(&path, updated).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        } else {
            assert_eq!(current, generated, "{} is stale: run with MQCHAT_BLESS=1", path.display());
        }
        let events_map = declarations.split("export interface ChatEvents {").nth(1).and_then(|rest| rest.split("\n}").next());
        let events_map = events_map.unwrap_or_default();
        for event in ChatEvent::ALL.iter().filter(|event| event.reaches_clients()) {
            let key = if event.as_str().contains('.') { format!("'{}':", event.as_str()) } else { format!("{}:", event.as_str()) };
            assert!(events_map.contains(&key), "ChatEvents in web/types/v1.d.ts lacks {key}");
        }
    }
}
