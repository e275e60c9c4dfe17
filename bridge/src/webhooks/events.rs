//! The event catalogue and the `data` each event carries (seed 000), and the
//! bodies of the two callback URLs (seed 002).
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::attachments::AttachmentView;

use crate::conversations::Conversation;
use crate::events::ChatEvent;
use crate::ids::random_id;
use crate::messages::MessageView;
use crate::presence::{PresenceView, Status};

/// The events webhooks may subscribe to: those of the catalogue
/// (`crate::events`) delivered to webhooks, each with a bit of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    MessageCreated,
    MessageUpdated,
    MessageDeleted,
    ReactionAdded,
    ReactionRemoved,
    ConversationCreated,
    ConversationArchived,
    MemberJoined,
    MemberLeft,
    UserPresenceChanged,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        EventType::MessageCreated,
        EventType::MessageUpdated,
        EventType::MessageDeleted,
        EventType::ReactionAdded,
        EventType::ReactionRemoved,
        EventType::ConversationCreated,
        EventType::ConversationArchived,
        EventType::MemberJoined,
        EventType::MemberLeft,
        EventType::UserPresenceChanged,
    ];

    /// The catalogue entry (`crate::events`) this webhook event is.
    pub fn event(self) -> ChatEvent {
        match self {
            EventType::MessageCreated => ChatEvent::MessageCreated,
            EventType::MessageUpdated => ChatEvent::MessageUpdated,
            EventType::MessageDeleted => ChatEvent::MessageDeleted,
            EventType::ReactionAdded => ChatEvent::ReactionAdded,
            EventType::ReactionRemoved => ChatEvent::ReactionRemoved,
            EventType::ConversationCreated => ChatEvent::ConversationCreated,
            EventType::ConversationArchived => ChatEvent::ConversationArchived,
            EventType::MemberJoined => ChatEvent::MemberJoined,
            EventType::MemberLeft => ChatEvent::MemberLeft,
            EventType::UserPresenceChanged => ChatEvent::UserPresenceChanged,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.event().as_str()
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// This event's bit in an endpoint's subscription mask.
    pub(crate) fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// One event, ready to record. Its JSON is serialized once, when it is
/// made: the chat path pays one `to_string` per event, whatever the number
/// of endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `evt_…`: what a receiver de-duplicates on.
    pub id: String,
    pub kind: EventType,
    pub created_at: DateTime<Utc>,
    /// The envelope's `data`, as JSON.
    pub data: String,
    /// The seed 002 callback body, for the events a callback URL receives
    /// (`message.created`, `user.presence.changed`).
    pub callback_body: Option<String>,
}

/// A fresh `evt_…` id.
pub fn new_event_id() -> String {
    random_id("evt_", 24)
}

impl Event {
    fn new(kind: EventType, data: Value) -> Event {
        Event { id: new_event_id(), kind, created_at: crate::clock::now(), data: data.to_string(), callback_body: None }
    }

    /// The webhook body: `{id, type, created_at, project_id, data}`.
    pub fn envelope(&self, project_id: &str) -> String {
        // `data` is JSON already: written in place, not parsed again.
        let quoted = |text: &str| serde_json::to_string(text).unwrap_or_default();
        format!(
            r#"{{"id":{},"type":"{}","created_at":{},"project_id":{},"data":{}}}"#,
            quoted(&self.id),
            self.kind.as_str(),
            serde_json::to_string(&self.created_at).unwrap_or_default(),
            quoted(project_id),
            self.data,
        )
    }

    /// `message.created`, `message.updated` or `message.deleted`. A new
    /// message also gets the message callback body; `to_userid` is the other
    /// member of a direct conversation and the conversation id otherwise.
    pub fn message(kind: EventType, message: &MessageView, direct_peer: Option<&str>) -> Event {
        Event::message_by(kind, message, direct_peer, None)
    }

    fn message_by(kind: EventType, message: &MessageView, direct_peer: Option<&str>, deleted_by: Option<&str>) -> Event {
        let data = serde_json::to_string(&MessageData::new(message, deleted_by)).unwrap_or_default();
        let callback_body = (kind == EventType::MessageCreated).then(|| {
            let body = MessageCallback {
                from_userid: &message.sender.id,
                to_userid: direct_peer.unwrap_or(&message.conversation_id),
                conversation_id: &message.conversation_id,
                message: CallbackMessage {
                    id: &message.id,
                    message: &message.content,
                    timestamp: message.created_at.timestamp(),
                    kind: message.kind,
                    p1: message.p1.as_deref().unwrap_or_default(),
                    p2: message.p2.as_deref().unwrap_or_default(),
                    p3: message.p3.as_deref().unwrap_or_default(),
                },
            };
            serde_json::to_string(&body).unwrap_or_default()
        });
        Event { id: new_event_id(), kind, created_at: crate::clock::now(), data, callback_body }
    }

    /// `message.deleted`, with who deleted it (the sender or an admin).
    pub fn message_deleted(message: &MessageView, deleted_by: &str) -> Event {
        Event::message_by(EventType::MessageDeleted, message, None, Some(deleted_by))
    }

    pub fn reaction(added: bool, conversation_id: &str, message_id: &str, user_id: &str, emoji: &str) -> Event {
        let (kind, at) = if added { (EventType::ReactionAdded, "reacted_at") } else { (EventType::ReactionRemoved, "removed_at") };
        let now = crate::clock::now();
        let mut data = json!({"message_id": message_id, "conversation_id": conversation_id, "user_id": user_id, "emoji": emoji});
        data[at] = json!(now);
        Event::new(kind, data)
    }

    pub fn conversation_created(conversation: &Conversation) -> Event {
        Event::new(
            EventType::ConversationCreated,
            json!({
                "conversation_id": conversation.id,
                "type": conversation.kind,
                "title": conversation.title,
                "member_ids": conversation.member_ids,
                "admin_ids": conversation.admin_ids,
                "created_at": conversation.created_at,
            }),
        )
    }

    pub fn conversation_archived(conversation_id: &str, archived_at: DateTime<Utc>) -> Event {
        Event::new(EventType::ConversationArchived, json!({"conversation_id": conversation_id, "archived_at": archived_at}))
    }

    /// `member.joined` (`joined`) or `member.left`.
    pub fn member(joined: bool, conversation_id: &str, user_id: &str) -> Event {
        let (kind, at) = if joined { (EventType::MemberJoined, "joined_at") } else { (EventType::MemberLeft, "left_at") };
        let mut data = json!({"conversation_id": conversation_id, "user_id": user_id});
        data[at] = json!(crate::clock::now());
        Event::new(kind, data)
    }

    /// `user.presence.changed`, with the presence callback body.
    pub fn presence(view: &PresenceView) -> Event {
        let mut event = Event::new(EventType::UserPresenceChanged, json!(view));
        let at = view.last_seen_at.unwrap_or(event.created_at);
        let status = match view.status {
            Status::Online => "online",
            Status::Offline => "offline",
        };
        event.callback_body = Some(json!({"userid": view.user_id, "status": status, "timestamp": at.timestamp()}).to_string());
        event
    }
}

/// Seed 000's message fields (`message_id`, `sender_id`, …) and the rest of
/// the message as clients see it.
#[derive(Serialize)]
struct MessageData<'a> {
    message_id: &'a str,
    conversation_id: &'a str,
    seq: i64,
    sender_id: &'a str,
    sender_name: Option<&'a str>,
    #[serde(rename = "type")]
    kind: i16,
    content: &'a str,
    p1: Option<&'a str>,
    p2: Option<&'a str>,
    p3: Option<&'a str>,
    reply_to_message_id: Option<&'a str>,
    client_msg_id: Option<&'a str>,
    attachments: &'a [AttachmentView],
    edited: bool,
    is_deleted: bool,
    /// Posted by the platform (the site's backend), not by a member.
    system: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_by: Option<&'a str>,
}

impl<'a> MessageData<'a> {
    fn new(message: &'a MessageView, deleted_by: Option<&'a str>) -> Self {
        MessageData {
            message_id: &message.id,
            conversation_id: &message.conversation_id,
            seq: message.seq,
            sender_id: &message.sender.id,
            sender_name: message.sender.name.as_deref(),
            kind: message.kind,
            content: &message.content,
            p1: message.p1.as_deref(),
            p2: message.p2.as_deref(),
            p3: message.p3.as_deref(),
            reply_to_message_id: message.reply_to_message_id.as_deref(),
            client_msg_id: message.client_msg_id.as_deref(),
            attachments: &message.attachments,
            edited: message.edited,
            is_deleted: message.is_deleted,
            system: message.system,
            created_at: message.created_at,
            updated_at: message.updated_at,
            deleted_by,
        }
    }
}

/// Seed 002's message callback body (`conversation_id` is mqchat's addition).
#[derive(Serialize)]
struct MessageCallback<'a> {
    from_userid: &'a str,
    to_userid: &'a str,
    conversation_id: &'a str,
    message: CallbackMessage<'a>,
}

#[derive(Serialize)]
struct CallbackMessage<'a> {
    id: &'a str,
    message: &'a str,
    timestamp: i64,
    #[serde(rename = "type")]
    kind: i16,
    p1: &'a str,
    p2: &'a str,
    p3: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Channel;

    #[test]
    fn webhook_events_are_exactly_the_catalogue_events_for_webhooks() {
        let webhook: Vec<ChatEvent> = EventType::ALL.iter().map(|kind| kind.event()).collect();
        let catalogue: Vec<ChatEvent> =
            ChatEvent::ALL.into_iter().filter(|event| event.channels().contains(&Channel::Webhook)).collect();
        assert_eq!(webhook.len(), catalogue.len());
        assert!(catalogue.iter().all(|event| webhook.contains(event)));
        assert!(EventType::ALL.iter().all(|kind| EventType::parse(kind.as_str()) == Some(*kind)));
    }
}
