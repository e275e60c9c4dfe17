//! Mosquitto's `acl_file` (mosquitto.conf(5)):
//!
//! ```text
//! topic read $SYS/#            # before any `user` line: anonymous clients
//! user alice
//! topic readwrite home/alice/# # alice's own rules
//! topic deny home/alice/secret
//! pattern write devices/%u/%c/status   # every client, %u username, %c client id
//! ```
//!
//! Access is `read`, `write`, `readwrite` (the default) or `deny`; a `deny`
//! rule that matches wins over every grant. A client may publish where a
//! rule grants `write`, subscribe to a filter that a rule granting `read`
//! matches (the filter read as a topic: its `+` and `#` are matched only by
//! wildcards of the rule, as Mosquitto 2.0 does), and receive a message on
//! a topic a rule grants `read`. `%u` and `%c` stand for a whole level and
//! never match a username or client id holding `+`, `#` or `/`.
//!
//! Rules are kept in topic trees (one for anonymous clients, one per user,
//! one for patterns): a check walks the levels of the topic once, following
//! only the branches that can match, so it costs the same however many
//! rules the file holds.
use std::collections::HashMap;
use std::path::Path;

use crate::FileError;

/// What a client asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Receive messages on a topic (or subscribe to a filter).
    Read,
    /// Publish on a topic.
    Write,
}

/// What the rules matching one topic grant, together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Grant {
    read: bool,
    write: bool,
    deny: bool,
}

impl Grant {
    fn merge(&mut self, other: Grant) {
        self.read |= other.read;
        self.write |= other.write;
        self.deny |= other.deny;
    }

    fn allows(self, access: Access) -> bool {
        !self.deny
            && match access {
                Access::Read => self.read,
                Access::Write => self.write,
            }
    }
}

/// One level of a rule's topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Level {
    Exact(String),
    Plus,
    Hash,
    Username,
    ClientId,
}

/// Rules indexed by their levels.
#[derive(Debug, Default)]
struct Tree {
    exact: HashMap<String, Tree>,
    plus: Option<Box<Tree>>,
    username: Option<Box<Tree>>,
    client_id: Option<Box<Tree>>,
    /// Rules ending here with `#` (which also matches this level's parent).
    hash: Grant,
    /// Rules ending exactly here.
    end: Grant,
}

impl Tree {
    fn insert(&mut self, levels: &[Level], grant: Grant) {
        let Some((level, rest)) = levels.split_first() else {
            self.end.merge(grant);
            return;
        };
        let child = match level {
            Level::Exact(text) => self.exact.entry(text.clone()).or_default(),
            Level::Plus => self.plus.get_or_insert_with(Box::default),
            Level::Username => self.username.get_or_insert_with(Box::default),
            Level::ClientId => self.client_id.get_or_insert_with(Box::default),
            // `levels` puts `#` last only.
            Level::Hash => {
                self.hash.merge(grant);
                return;
            }
        };
        child.insert(rest, grant);
    }

    /// Everything the rules matching `levels` grant. `first`: whether this
    /// is the topic's first level, where wildcards do not match a `$` topic.
    fn matching(&self, levels: &[&str], who: &Who<'_>, first: bool, grant: &mut Grant) {
        let dollar = first && levels.first().is_some_and(|level| level.starts_with('$'));
        if !dollar {
            grant.merge(self.hash);
        }
        let Some((level, rest)) = levels.split_first() else {
            grant.merge(self.end);
            return;
        };
        if let Some(child) = self.exact.get(*level) {
            child.matching(rest, who, false, grant);
        }
        if dollar {
            return;
        }
        if let Some(child) = &self.plus {
            child.matching(rest, who, false, grant);
        }
        if let (Some(child), Some(username)) = (&self.username, who.username) {
            if *level == username {
                child.matching(rest, who, false, grant);
            }
        }
        if let (Some(child), Some(client_id)) = (&self.client_id, who.client_id) {
            if *level == client_id {
                child.matching(rest, who, false, grant);
            }
        }
    }
}

/// Who asks, as patterns see it: a username or client id usable in a
/// pattern (`None` when it holds `+`, `#` or `/`, or there is none).
struct Who<'a> {
    username: Option<&'a str>,
    client_id: Option<&'a str>,
}

fn substitutable(text: Option<&str>) -> Option<&str> {
    text.filter(|text| !text.is_empty() && !text.contains(['+', '#', '/']))
}

/// The rules of an ACL file.
#[derive(Debug, Default)]
pub struct AclFile {
    anonymous: Tree,
    users: HashMap<String, Tree>,
    patterns: Tree,
    rules: usize,
}

impl AclFile {
    pub fn load(path: &Path) -> Result<Self, FileError> {
        Self::parse(&crate::read(path)?, &path.display().to_string())
    }

    /// Reads the file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Self, FileError> {
        let mut acl = AclFile::default();
        let mut user: Option<String> = None;
        for (index, line) in text.lines().enumerate() {
            let error = |message: String| FileError::Line { path: path.to_owned(), line: index + 1, message };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = line.split_once([' ', '\t']).map_or((line, ""), |(k, r)| (k, r.trim_start()));
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err(error("`user` needs a username".into()));
                    }
                    user = Some(rest.to_owned());
                }
                "topic" | "pattern" => {
                    let (grant, topic) = access_and_topic(rest).map_err(error)?;
                    let levels = levels(topic, keyword == "pattern").map_err(error)?;
                    let tree = match (keyword, &user) {
                        ("pattern", _) => &mut acl.patterns,
                        (_, Some(user)) => acl.users.entry(user.clone()).or_default(),
                        (_, None) => &mut acl.anonymous,
                    };
                    tree.insert(&levels, grant);
                    acl.rules += 1;
                }
                other => return Err(error(format!("unknown keyword {other:?} (expected user, topic or pattern)"))),
            }
        }
        Ok(acl)
    }

    /// Rules read (`topic` and `pattern` lines).
    pub fn rules(&self) -> usize {
        self.rules
    }

    /// Whether the client (`username` `None`: anonymous) may do `access`
    /// on `topic` — for `Read` of a subscription, `topic` is its filter.
    pub fn allows(&self, username: Option<&str>, client_id: &str, topic: &str, access: Access) -> bool {
        let levels: Vec<&str> = topic.split('/').collect();
        let mut grant = Grant::default();
        let own = match username {
            Some(username) => self.users.get(username),
            None => Some(&self.anonymous),
        };
        let nobody = Who { username: None, client_id: None };
        if let Some(tree) = own {
            tree.matching(&levels, &nobody, true, &mut grant);
        }
        let who = Who { username: substitutable(username), client_id: substitutable(Some(client_id)) };
        self.patterns.matching(&levels, &who, true, &mut grant);
        grant.allows(access)
    }
}

/// `[read|write|readwrite|deny] <topic>`: the access defaults to readwrite;
/// the topic is the rest of the line (it may hold spaces).
fn access_and_topic(rest: &str) -> Result<(Grant, &str), String> {
    let (first, tail) = rest.split_once([' ', '\t']).map_or((rest, ""), |(f, t)| (f, t.trim_start()));
    let grant = |read, write, deny| Grant { read, write, deny };
    let (grant, topic) = match first {
        "read" => (grant(true, false, false), tail),
        "write" => (grant(false, true, false), tail),
        "readwrite" => (grant(true, true, false), tail),
        "deny" => (grant(false, false, true), tail),
        _ => (grant(true, true, false), rest),
    };
    if topic.is_empty() {
        return Err("a rule needs a topic".into());
    }
    Ok((grant, topic))
}

/// A rule's topic as levels: `+` and `#` as MQTT places them, and in a
/// pattern `%u` and `%c` as whole levels.
fn levels(topic: &str, pattern: bool) -> Result<Vec<Level>, String> {
    let parts: Vec<&str> = topic.split('/').collect();
    let mut levels = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        let level = match *part {
            "#" if index + 1 == parts.len() => Level::Hash,
            "+" => Level::Plus,
            "%u" if pattern => Level::Username,
            "%c" if pattern => Level::ClientId,
            text if text.contains(['+', '#']) => return Err(format!("{topic:?}: `+` and `#` must fill a level, `#` only the last")),
            text => Level::Exact(text.to_owned()),
        };
        levels.push(level);
    }
    Ok(levels)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# anonymous clients
topic read public/#

user alice
topic readwrite home/alice/#
topic deny home/alice/secret
topic write shared/+/in

user bob
topic read home/alice/status

pattern write devices/%u/%c/status
pattern read devices/%u/#
";

    fn acl() -> AclFile {
        AclFile::parse(FILE, "acl").unwrap()
    }

    #[test]
    fn users_get_their_own_rules_and_the_patterns() {
        let acl = acl();
        assert_eq!(acl.rules(), 7);
        let alice = |topic, access| acl.allows(Some("alice"), "phone", topic, access);
        assert!(alice("home/alice/lights", Access::Write));
        assert!(alice("home/alice", Access::Read), "`#` matches its parent level");
        assert!(!alice("home/alice/secret", Access::Read), "deny wins");
        assert!(alice("shared/x/in", Access::Write));
        assert!(!alice("shared/x/in", Access::Read));
        assert!(!alice("shared/x/y/in", Access::Write));
        assert!(alice("devices/alice/phone/status", Access::Write));
        assert!(!alice("devices/alice/watch/status", Access::Write), "%c is the client's own id");
        assert!(!alice("devices/bob/phone/status", Access::Write), "%u is the client's own name");
        assert!(!alice("public/news", Access::Read), "anonymous rules are for anonymous clients");
        assert!(acl.allows(Some("bob"), "b", "home/alice/status", Access::Read));
        assert!(!acl.allows(Some("bob"), "b", "home/alice/status", Access::Write));
        assert!(!acl.allows(Some("carol"), "c", "home/alice/status", Access::Read), "a user without rules");
        assert!(acl.allows(None, "anon", "public/news", Access::Read));
        assert!(!acl.allows(None, "anon", "devices/anon/x", Access::Read), "no %u for anonymous");
    }

    #[test]
    fn subscriptions_are_matched_as_mosquitto_does() {
        let acl = acl();
        let alice = |filter| acl.allows(Some("alice"), "phone", filter, Access::Read);
        assert!(alice("home/alice/#"));
        assert!(alice("home/alice/+"));
        assert!(!alice("home/#"), "a wider filter than the rules");
        assert!(!alice("#"));
        assert!(!alice("+/alice/x"));
    }

    #[test]
    fn wildcards_do_not_match_dollar_topics_and_names_with_wildcards_do_not_substitute() {
        let acl = AclFile::parse("pattern readwrite #\npattern read %u/#\ntopic read $SYS/broker/uptime", "acl").unwrap();
        assert!(acl.allows(Some("x"), "c", "a/b", Access::Write));
        assert!(!acl.allows(Some("x"), "c", "$SYS/broker/load", Access::Read));
        assert!(acl.allows(None, "c", "$SYS/broker/uptime", Access::Read));
        let only_pattern = AclFile::parse("pattern read %u/#", "acl").unwrap();
        assert!(only_pattern.allows(Some("ann"), "c", "ann/x", Access::Read));
        assert!(!only_pattern.allows(Some("a+"), "c", "a+/x", Access::Read), "a username holding `+` never substitutes");
    }

    #[test]
    fn bad_lines_name_their_line() {
        let cases = [("topic", 1), ("user alice\ntopic read a/#/b", 2), ("allow all", 1), ("user", 1)];
        crate::assert_fails_at_lines(|text| AclFile::parse(text, "acl"), &cases);
    }

    #[test]
    fn a_thousand_patterns_are_indexed() {
        let text: String = (0..1000).map(|i| format!("pattern readwrite site/{i}/%u/#\n")).collect();
        let acl = AclFile::parse(&text, "acl").unwrap();
        assert!(acl.allows(Some("ann"), "c", "site/999/ann/t", Access::Write));
        assert!(!acl.allows(Some("ann"), "c", "site/1000/ann/t", Access::Write));
        // Every rule sits under its own literal branch: one lookup per level.
        assert_eq!(acl.patterns.exact.get("site").map(|tree| tree.exact.len()), Some(1000));
    }
}
