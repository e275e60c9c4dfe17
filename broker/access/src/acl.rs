//! Which topics a user may subscribe and publish to (DESIGN §4).
//!
//! These are pure rules over topic strings. Where the answer depends on
//! membership, the rule names the conversation and the gateway asks the
//! `Authorizer`. Every allowed filter names exactly one project, and at most
//! one user or one conversation: no wildcard may cross those boundaries.

/// Most levels an accepted topic or filter has (`chat/p/user/u/inbox/x`).
const MAX_LEVELS: usize = 6;

/// What the ACL says about one topic or filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    Allow,
    /// Allowed if the user is a member of this conversation.
    IfMember(&'a str),
    Deny(&'static str),
}

/// The identity a rule is evaluated for.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub project_id: &'a str,
    pub user_id: &'a str,
}

fn is_plain_level(level: &str) -> bool {
    !level.is_empty() && !level.contains(['+', '#'])
}

/// A topic's levels, split without allocating (rules run on every message).
struct Levels<'t> {
    levels: [&'t str; MAX_LEVELS],
    count: usize,
}

impl<'t> std::ops::Deref for Levels<'t> {
    type Target = [&'t str];

    fn deref(&self) -> &[&'t str] {
        &self.levels[..self.count]
    }
}

/// Splits `chat/{project}/…` for `subject`'s own project; anything else is denied.
fn own_project_levels<'t>(subject: Subject<'_>, topic: &'t str) -> Result<Levels<'t>, &'static str> {
    const OUTSIDE: &str = "topic is outside the chat/{project}/… namespace";
    let mut levels = Levels { levels: [""; MAX_LEVELS], count: 0 };
    for level in topic.split('/') {
        *levels.levels.get_mut(levels.count).ok_or(OUTSIDE)? = level;
        levels.count += 1;
    }
    if levels.len() < 3 || levels[0] != "chat" {
        return Err(OUTSIDE);
    }
    if levels[1] != subject.project_id {
        return Err("topic belongs to another project");
    }
    Ok(levels)
}

/// May `subject` subscribe to `filter`?
pub fn subscribe<'t>(subject: Subject<'_>, filter: &'t str) -> Decision<'t> {
    if !crate::topics::valid_filter(filter) {
        return Decision::Deny("invalid topic filter");
    }
    let levels = match own_project_levels(subject, filter) {
        Ok(levels) => levels,
        Err(reason) => return Decision::Deny(reason),
    };
    match levels[2..] {
        ["user", user, "inbox"] if user == subject.user_id => Decision::Allow,
        // Below the inbox: MQTT 5 response topics of the user's own commands.
        ["user", user, "inbox", _] if user == subject.user_id => Decision::Allow,
        ["presence", user] if user == "+" || is_plain_level(user) => Decision::Allow,
        ["presence", "#"] => Decision::Allow,
        ["conv", conversation] if is_plain_level(conversation) => Decision::IfMember(conversation),
        ["conv", conversation, "typing" | "+" | "#"] if is_plain_level(conversation) => {
            Decision::IfMember(conversation)
        }
        _ => Decision::Deny("no access to this topic filter"),
    }
}

/// May `subject` publish to `topic`?
pub fn publish<'t>(subject: Subject<'_>, topic: &'t str) -> Decision<'t> {
    if !crate::topics::valid_topic(topic) {
        return Decision::Deny("invalid topic name");
    }
    let levels = match own_project_levels(subject, topic) {
        Ok(levels) => levels,
        Err(reason) => return Decision::Deny(reason),
    };
    match levels[2..] {
        ["user", user, "outbox" | "status"] if user == subject.user_id => Decision::Allow,
        ["conv", conversation, "typing"] if is_plain_level(conversation) => Decision::IfMember(conversation),
        _ => Decision::Deny("no publish access to this topic"),
    }
}

/// May a command of `subject` name `topic` as its MQTT 5 response topic
/// (where the platform publishes the reply)? Only the user's own inbox or
/// one level below it.
pub fn response_topic(subject: Subject<'_>, topic: &str) -> bool {
    if !crate::topics::valid_topic(topic) {
        return false;
    }
    let inbox = inbox_topic(subject.project_id, subject.user_id);
    match topic.strip_prefix(inbox.as_str()) {
        Some("") => true,
        Some(rest) => rest.strip_prefix('/').is_some_and(|level| !level.is_empty() && !level.contains('/')),
        None => false,
    }
}

/// May `subject` leave a will on `topic`? Only on its own status topic.
pub fn will(subject: Subject<'_>, topic: &str) -> bool {
    topic == status_topic(subject.project_id, subject.user_id)
}

/// `(project, user)` of an outbox topic `chat/{project}/user/{user}/outbox`.
pub fn parse_outbox_topic(topic: &str) -> Option<(&str, &str)> {
    match topic.split('/').collect::<Vec<_>>()[..] {
        ["chat", project, "user", user, "outbox"] => Some((project, user)),
        _ => None,
    }
}

/// `(project, user)` of a status topic `chat/{project}/user/{user}/status`.
pub fn parse_status_topic(topic: &str) -> Option<(&str, &str)> {
    match topic.split('/').collect::<Vec<_>>()[..] {
        ["chat", project, "user", user, "status"] => Some((project, user)),
        _ => None,
    }
}

/// Where each mqchat instance says whether it is alive
/// (`$mqchat/instances/{client id}`); a `$` topic, so no `#` reaches it.
pub const INSTANCES_PREFIX: &str = "$mqchat/instances/";

/// Whether `topic` is mqchat's own: the chat namespace, or what its
/// instances tell each other. A client that an external broker
/// authenticated by other means (a device) must never reach it.
pub fn is_mqchat_namespace(topic: &str) -> bool {
    topic == "chat" || topic.starts_with("chat/") || topic.starts_with("$mqchat/")
}

/// Every user's status topic: what the platform reads presence from.
pub const STATUS_FILTER: &str = "chat/+/user/+/status";

pub fn status_topic(project_id: &str, user_id: &str) -> String {
    format!("chat/{project_id}/user/{user_id}/status")
}

pub fn inbox_topic(project_id: &str, user_id: &str) -> String {
    format!("chat/{project_id}/user/{user_id}/inbox")
}

pub fn outbox_topic(project_id: &str, user_id: &str) -> String {
    format!("chat/{project_id}/user/{user_id}/outbox")
}

pub fn conversation_topic(project_id: &str, conversation_id: &str) -> String {
    format!("chat/{project_id}/conv/{conversation_id}")
}

pub fn typing_topic(project_id: &str, conversation_id: &str) -> String {
    format!("chat/{project_id}/conv/{conversation_id}/typing")
}

pub fn presence_topic(project_id: &str, user_id: &str) -> String {
    format!("chat/{project_id}/presence/{user_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Subject<'static> = Subject { project_id: "prj_a", user_id: "alice" };

    #[test]
    fn mqchats_namespace() {
        for topic in ["chat", "chat/prj_a/user/alice/inbox", "chat/#", "$mqchat/instances/mqchat-a", "$mqchat/instances/+"] {
            assert!(is_mqchat_namespace(topic), "{topic}");
        }
        for topic in ["chatter/x", "devices/chat/x", "$SYS/broker/uptime", "$mqchatx/y"] {
            assert!(!is_mqchat_namespace(topic), "{topic}");
        }
        assert!(format!("{INSTANCES_PREFIX}mqchat-a").starts_with("$mqchat/"));
    }

    #[test]
    fn subscriptions() {
        let cases = [
            ("chat/prj_a/user/alice/inbox", Decision::Allow),
            ("chat/prj_a/presence/bob", Decision::Allow),
            ("chat/prj_a/presence/+", Decision::Allow),
            ("chat/prj_a/presence/#", Decision::Allow),
            ("chat/prj_a/conv/c1", Decision::IfMember("c1")),
            ("chat/prj_a/conv/c1/typing", Decision::IfMember("c1")),
            ("chat/prj_a/conv/c1/#", Decision::IfMember("c1")),
            ("chat/prj_a/conv/c1/+", Decision::IfMember("c1")),
            ("chat/prj_a/user/alice/inbox/replies", Decision::Allow),
            ("chat/prj_a/user/alice/inbox/#", Decision::Allow),
        ];
        for (filter, expected) in cases {
            assert_eq!(subscribe(ALICE, filter), expected, "{filter}");
        }
        for filter in [
            "#",
            "+",
            "chat/#",
            "chat/+/user/alice/inbox",
            "chat/prj_a/#",
            "chat/prj_a/+/alice/inbox",
            "chat/prj_a/user/bob/inbox",
            "chat/prj_a/user/+/inbox",
            "chat/prj_a/user/alice/outbox",
            "chat/prj_a/user/alice/status",
            "chat/prj_a/user/alice/#",
            "chat/prj_a/conv/+",
            "chat/prj_a/conv/#",
            "chat/prj_a/conv/+/typing",
            "chat/prj_b/conv/c1",
            "chat/prj_a/conv/c1/typing/x",
            "chat/prj_a/conv/c1#",
            "chat/prj_a/user/bob/inbox/replies",
            "chat/prj_a/user/alice/inbox/a/b",
            "$SYS/#",
            "",
        ] {
            assert!(matches!(subscribe(ALICE, filter), Decision::Deny(_)), "{filter} must be denied");
        }
    }

    #[test]
    fn publications() {
        assert_eq!(publish(ALICE, "chat/prj_a/user/alice/outbox"), Decision::Allow);
        assert_eq!(publish(ALICE, "chat/prj_a/user/alice/status"), Decision::Allow);
        assert_eq!(publish(ALICE, "chat/prj_a/conv/c1/typing"), Decision::IfMember("c1"));
        for topic in [
            "chat/prj_a/user/bob/outbox",
            "chat/prj_a/user/alice/inbox",
            "chat/prj_a/conv/c1",
            "chat/prj_a/presence/alice",
            "chat/prj_b/user/alice/outbox",
            "chat/prj_a/conv/+/typing",
            "other",
        ] {
            assert!(matches!(publish(ALICE, topic), Decision::Deny(_)), "{topic} must be denied");
        }
    }

    #[test]
    fn response_topics_stay_in_the_senders_inbox() {
        assert!(response_topic(ALICE, "chat/prj_a/user/alice/inbox"));
        assert!(response_topic(ALICE, "chat/prj_a/user/alice/inbox/req-1"));
        for topic in [
            "chat/prj_a/user/bob/inbox",
            "chat/prj_a/user/alice/inboxes",
            "chat/prj_a/user/alice/inbox/",
            "chat/prj_a/user/alice/inbox/a/b",
            "chat/prj_a/user/alice/inbox/+",
            "chat/prj_a/conv/c1",
            "chat/prj_b/user/alice/inbox",
        ] {
            assert!(!response_topic(ALICE, topic), "{topic} must be refused");
        }
    }

    #[test]
    fn status_topics_name_their_user() {
        assert_eq!(parse_status_topic("chat/p/user/u/status"), Some(("p", "u")));
        assert_eq!(parse_status_topic("chat/p/user/u/outbox"), None);
        assert_eq!(parse_status_topic("chat/p/user/u/status/x"), None);
    }

    #[test]
    fn outbox_topics_name_their_user() {
        assert_eq!(parse_outbox_topic("chat/prj_a/user/alice/outbox"), Some(("prj_a", "alice")));
        assert_eq!(parse_outbox_topic("chat/prj_a/user/alice/inbox"), None);
    }

    #[test]
    fn wills_only_on_own_status() {
        assert!(will(ALICE, "chat/prj_a/user/alice/status"));
        assert!(!will(ALICE, "chat/prj_a/user/bob/status"));
        assert!(!will(ALICE, "chat/prj_a/conv/c1"));
    }
}
