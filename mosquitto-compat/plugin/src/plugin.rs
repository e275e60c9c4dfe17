//! What the plugin decides, in safe Rust: the same questions mqchat's
//! gateway answers (who a client is, what it may subscribe to, publish and
//! receive, its typing payloads), asked by Mosquitto's events. The rules
//! are `mqchat-access`'s; this module keeps the state they need — project
//! keys and users' memberships fetched from mqchat and cached, and who each
//! connection is.
use std::collections::{HashMap, HashSet};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use mqchat_access::acl::{self, Decision};
use mqchat_access::identity::{self, SigningKeys};
use mqchat_access::{typing, Principal, PUBLIC_KEY_PREFIX};
use serde::Deserialize;

use crate::api::{Api, LoginAnswer, ProjectKeys};

/// Username of mqchat's own connection (its password: the platform secret).
pub const PLATFORM_USERNAME: &str = "mqchat-platform";
/// How long a project's keys are used without asking again (mqchat also
/// says when they change).
const KEYS_TTL: Duration = Duration::from_secs(60);
/// Shortest time between two membership fetches for one user after its
/// login (a client retrying refused subscriptions cannot flood mqchat).
const REFETCH_EVERY: Duration = Duration::from_millis(250);

/// Identifies one connection: the address of Mosquitto's client struct,
/// unique among live connections.
pub type ClientKey = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A message is about to be delivered to the client.
    Read,
    /// The client published (or left a will).
    Write,
    Subscribe,
    Unsubscribe,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    /// Not mqchat's client: Mosquitto's own configuration decides.
    Defer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    Accepted,
    Refused(String),
    Deferred,
}

/// Who a connection is.
#[derive(Debug, Clone)]
enum Who {
    Platform,
    /// A chat user's connection, with the memberships all of the user's
    /// connections share (so a check on the hot path allocates nothing).
    Chat(Rc<Principal>, Rc<RefCell<Memberships>>),
}

#[derive(Debug)]
struct Connection {
    /// Tells this connection from a later one at the same address.
    generation: u64,
    client_id: String,
    who: Who,
    online: bool,
    /// A clean session ends with the connection; a persistent one keeps
    /// receiving (queued) messages, judged as this user.
    clean: bool,
}

#[derive(Debug, Default)]
struct Memberships {
    conversations: HashSet<String>,
    /// When a refused subscribe or publish last asked mqchat again.
    refetched_at: Option<Instant>,
}

/// What mqchat tells the plugin on `$CONTROL/mqchat/v1`.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Control {
    /// A member was removed: its deliveries stop now.
    Revoke { project_id: String, user_id: String, conversation_id: String },
    /// The user's sessions were revoked: every connection ends.
    Disconnect { project_id: String, user_id: String },
    /// A project's keys changed.
    Project { public_key: String },
}

pub struct Plugin<A: Api> {
    api: A,
    platform_secret: String,
    projects: HashMap<String, (ProjectKeys, Instant)>,
    /// Each user with a connection (live or persistent): the memberships
    /// its connections share (dropped with the last of them).
    users: HashMap<(String, String), Weak<RefCell<Memberships>>>,
    connections: HashMap<ClientKey, Connection>,
    by_client_id: HashMap<String, ClientKey>,
    last_expiry_check: Option<i64>,
    generations: u64,
    /// Clean sessions that ended, forgotten at the next tick: Mosquitto
    /// checks a connection's will against the ACL after it reported the
    /// disconnection.
    departed: Vec<(ClientKey, u64)>,
}

/// From the cache; a subscribe or publish the cache refuses asks mqchat
/// again (a membership made since the login), a delivery never waits.
fn is_member(api: &impl Api, principal: &Principal, memberships: &RefCell<Memberships>, conversation: &str, may_fetch: bool) -> bool {
    let mut memberships = memberships.borrow_mut();
    if memberships.conversations.contains(conversation) {
        return true;
    }
    if !may_fetch || memberships.refetched_at.is_some_and(|at| at.elapsed() < REFETCH_EVERY) {
        return false;
    }
    memberships.refetched_at = Some(Instant::now());
    match api.memberships(&principal.project_id, principal.user_id.as_str()) {
        Ok(conversations) => {
            memberships.conversations = conversations.into_iter().collect();
            memberships.conversations.contains(conversation)
        }
        Err(_) => false,
    }
}

fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && given.bytes().zip(expected.bytes()).fold(0u8, |difference, (a, b)| difference | (a ^ b)) == 0
}

impl<A: Api> Plugin<A> {
    pub fn new(api: A, platform_secret: String) -> Self {
        Plugin { api, platform_secret, projects: HashMap::new(), users: HashMap::new(), connections: HashMap::new(), by_client_id: HashMap::new(), last_expiry_check: None, generations: 0, departed: Vec::new() }
    }

    /// MOSQ_EVT_BASIC_AUTH: `username` is a project's public key and
    /// `password` an identity or session token, or mqchat's own login.
    pub fn basic_auth(&mut self, key: ClientKey, client_id: &str, clean: bool, username: Option<&str>, password: Option<&str>) -> Login {
        // Whatever this address held before is a connection that is gone.
        self.forget(key);
        let holder = self.by_client_id.get(client_id).and_then(|held| self.connections.get(held)).map(|connection| connection.who.clone());
        let username = username.unwrap_or_default();
        if username == PLATFORM_USERNAME {
            if !password.is_some_and(|password| same_secret(password, &self.platform_secret)) {
                return Login::Refused("wrong platform secret".into());
            }
            if matches!(holder, Some(Who::Chat(..))) {
                return Login::Refused("client id held by a chat user".into());
            }
            self.admit(key, client_id, clean, Who::Platform);
            return Login::Accepted;
        }
        if !username.starts_with(PUBLIC_KEY_PREFIX) {
            return match holder {
                Some(_) => Login::Refused("client id held by a chat user".into()),
                None => Login::Deferred,
            };
        }
        let principal = match self.verify(username, password.unwrap_or_default()) {
            Ok(principal) => principal,
            Err(reason) => return Login::Refused(reason),
        };
        match &holder {
            Some(Who::Chat(held, _)) if held.project_id == principal.project_id && held.user_id == principal.user_id => {}
            Some(_) => return Login::Refused("client id held by another user".into()),
            None => {}
        }
        let conversations = match self.api.login(&principal.project_id, &principal.claims) {
            Ok(LoginAnswer::Admitted(conversations)) => conversations,
            Ok(LoginAnswer::Revoked) => return Login::Refused("token revoked".into()),
            Err(error) => return Login::Refused(error),
        };
        let user = (principal.project_id.clone(), principal.user_id.as_str().to_owned());
        let memberships = self.users.get(&user).and_then(Weak::upgrade).unwrap_or_default();
        memberships.borrow_mut().conversations = conversations.into_iter().collect();
        self.users.insert(user, Rc::downgrade(&memberships));
        self.admit(key, client_id, clean, Who::Chat(Rc::new(principal), memberships));
        Login::Accepted
    }

    fn verify(&mut self, public_key: &str, token: &str) -> Result<Principal, String> {
        let keys = self.keys(public_key)?.ok_or_else(|| "unknown project public key".to_owned())?;
        let signing = SigningKeys { current: &keys.secret_key, previous: keys.previous_key.as_deref() };
        let verified = identity::verify_with(signing, token, identity::now_unix()).map_err(|error| error.to_string())?;
        Ok(Principal { project_id: keys.project_id.clone(), user_id: verified.user_id, claims: verified.claims })
    }

    fn keys(&mut self, public_key: &str) -> Result<Option<ProjectKeys>, String> {
        if let Some((keys, fetched_at)) = self.projects.get(public_key) {
            if fetched_at.elapsed() < KEYS_TTL {
                return Ok(Some(keys.clone()));
            }
        }
        let keys = self.api.keys(public_key)?;
        match &keys {
            Some(keys) => self.projects.insert(public_key.to_owned(), (keys.clone(), Instant::now())),
            None => self.projects.remove(public_key),
        };
        Ok(keys)
    }

    fn admit(&mut self, key: ClientKey, client_id: &str, clean: bool, who: Who) {
        // The same user taking over its own client id: the old session's
        // connection is replaced.
        if let Some(previous) = self.by_client_id.get(client_id).copied() {
            self.forget(previous);
        }
        self.by_client_id.insert(client_id.to_owned(), key);
        self.generations += 1;
        let connection = Connection { generation: self.generations, client_id: client_id.to_owned(), who, online: true, clean };
        self.connections.insert(key, connection);
    }

    fn forget(&mut self, key: ClientKey) {
        let Some(connection) = self.connections.remove(&key) else { return };
        if self.by_client_id.get(&connection.client_id) == Some(&key) {
            self.by_client_id.remove(&connection.client_id);
        }
        if let Who::Chat(principal, memberships) = connection.who {
            if Rc::strong_count(&memberships) == 1 {
                self.users.remove(&(principal.project_id.clone(), principal.user_id.as_str().to_owned()));
            }
        }
    }

    /// MOSQ_EVT_DISCONNECT: a clean session is forgotten at the next tick
    /// (its will is judged after this event); a persistent one stays
    /// judged as its user until it is resumed or replaced.
    pub fn disconnect(&mut self, key: ClientKey) {
        if let Some(connection) = self.connections.get_mut(&key) {
            connection.online = false;
            if connection.clean {
                self.departed.push((key, connection.generation));
            }
        }
    }

    /// MOSQ_EVT_ACL_CHECK.
    pub fn acl_check(&mut self, key: ClientKey, topic: &str, access: Access) -> Verdict {
        let (principal, memberships) = match self.connections.get(&key).map(|connection| &connection.who) {
            Some(Who::Platform) => return Verdict::Allow,
            Some(Who::Chat(principal, memberships)) => (principal, memberships),
            // A client Mosquitto authenticated itself never reaches the
            // chat namespace nor mqchat's own; elsewhere Mosquitto's own
            // ACL decides.
            None if acl::is_mqchat_namespace(topic) => return Verdict::Deny,
            None => return Verdict::Defer,
        };
        let decision = match access {
            Access::Unsubscribe => return Verdict::Allow,
            Access::Write => acl::publish(principal.subject(), topic),
            // A delivered topic is judged as a subscription to exactly it.
            Access::Subscribe | Access::Read => acl::subscribe(principal.subject(), topic),
        };
        match decision {
            Decision::Allow => Verdict::Allow,
            Decision::Deny(_) => Verdict::Deny,
            Decision::IfMember(conversation) => {
                if is_member(&self.api, principal, memberships, conversation, access != Access::Read) {
                    Verdict::Allow
                } else {
                    Verdict::Deny
                }
            }
        }
    }

    /// MOSQ_EVT_MESSAGE: a member's typing publish becomes the stamped
    /// event (who, until when); `None` leaves the message as it is.
    pub fn message(&self, key: ClientKey, topic: &str, payload: &[u8]) -> Option<Vec<u8>> {
        let Some(Who::Chat(principal, _)) = self.connections.get(&key).map(|connection| &connection.who) else { return None };
        let conversation = typing::conversation_of(topic)?;
        Some(typing::stamp(principal, conversation, payload, chrono::Utc::now()).to_vec())
    }

    /// MOSQ_EVT_CONTROL on `$CONTROL/mqchat/v1`, from mqchat's connection
    /// only; returns the client ids to disconnect.
    pub fn control(&mut self, key: ClientKey, payload: &[u8]) -> Result<Vec<String>, String> {
        if !matches!(self.connections.get(&key).map(|connection| &connection.who), Some(Who::Platform)) {
            return Err("control messages come from mqchat only".into());
        }
        let control: Control = serde_json::from_slice(payload).map_err(|error| format!("unreadable control message: {error}"))?;
        Ok(match control {
            Control::Revoke { project_id, user_id, conversation_id } => {
                if let Some(memberships) = self.users.get(&(project_id, user_id)).and_then(Weak::upgrade) {
                    memberships.borrow_mut().conversations.remove(&conversation_id);
                }
                Vec::new()
            }
            Control::Disconnect { project_id, user_id } => self.clients_of(|principal| principal.project_id == project_id && principal.user_id.as_str() == user_id),
            Control::Project { public_key } => {
                self.projects.remove(&public_key);
                Vec::new()
            }
        })
    }

    /// MOSQ_EVT_TICK (every turn of Mosquitto's loop): forgets departed
    /// clean sessions; once a second, the client ids whose token expired
    /// while connected.
    pub fn tick(&mut self, now_unix: i64) -> Vec<String> {
        for (key, generation) in std::mem::take(&mut self.departed) {
            if self.connections.get(&key).is_some_and(|connection| connection.generation == generation) {
                self.forget(key);
            }
        }
        if self.last_expiry_check == Some(now_unix) {
            return Vec::new();
        }
        self.last_expiry_check = Some(now_unix);
        self.clients_of(|principal| principal.claims.exp <= now_unix)
    }

    fn clients_of(&self, matches: impl Fn(&Principal) -> bool) -> Vec<String> {
        self.connections
            .values()
            .filter(|connection| connection.online)
            .filter(|connection| matches!(&connection.who, Who::Chat(principal, _) if matches(principal)))
            .map(|connection| connection.client_id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use mqchat_access::identity::{self, IdentityClaims};

    use super::*;

    const SECRET: &str = "sk_test_secret_key_0123456789";
    const PLATFORM: &str = "platform-secret-0123";

    /// mqchat's answers, in memory: one project, memberships per user.
    #[derive(Default)]
    struct Fake {
        memberships: RefCell<HashMap<String, Vec<String>>>,
        revoked: RefCell<Vec<String>>,
        calls: RefCell<Vec<String>>,
    }

    impl Api for Fake {
        fn keys(&self, public_key: &str) -> Result<Option<ProjectKeys>, String> {
            self.calls.borrow_mut().push(format!("keys {public_key}"));
            Ok((public_key == "pk_a").then(|| ProjectKeys { project_id: "prj_a".into(), secret_key: SECRET.into(), previous_key: None }))
        }

        fn login(&self, _project_id: &str, claims: &IdentityClaims) -> Result<LoginAnswer, String> {
            self.calls.borrow_mut().push(format!("login {}", claims.sub));
            if self.revoked.borrow().contains(&claims.sub) {
                return Ok(LoginAnswer::Revoked);
            }
            Ok(LoginAnswer::Admitted(self.memberships.borrow().get(&claims.sub).cloned().unwrap_or_default()))
        }

        fn memberships(&self, _project_id: &str, user_id: &str) -> Result<Vec<String>, String> {
            self.calls.borrow_mut().push(format!("memberships {user_id}"));
            Ok(self.memberships.borrow().get(user_id).cloned().unwrap_or_default())
        }
    }

    fn plugin() -> Plugin<Fake> {
        let fake = Fake::default();
        fake.memberships.borrow_mut().insert("alice".into(), vec!["c1".into()]);
        Plugin::new(fake, PLATFORM.into())
    }

    fn token(sub: &str, lifetime: i64) -> String {
        let now = identity::now_unix();
        let claims = IdentityClaims { sub: sub.into(), name: Some(format!("{sub} name")), email: None, avatar_url: None, iat: now, exp: now + lifetime, iss: None };
        identity::sign(SECRET, &claims).unwrap()
    }

    fn login(plugin: &mut Plugin<Fake>, key: ClientKey, client_id: &str, sub: &str) -> Login {
        plugin.basic_auth(key, client_id, true, Some("pk_a"), Some(&token(sub, 600)))
    }

    #[test]
    fn chat_logins_and_the_gateways_acl() {
        let mut plugin = plugin();
        assert_eq!(login(&mut plugin, 1, "phone", "alice"), Login::Accepted);
        assert_eq!(plugin.acl_check(1, "chat/prj_a/user/alice/inbox", Access::Subscribe), Verdict::Allow);
        assert_eq!(plugin.acl_check(1, "chat/prj_a/user/bob/inbox", Access::Subscribe), Verdict::Deny);
        assert_eq!(plugin.acl_check(1, "#", Access::Subscribe), Verdict::Deny);
        assert_eq!(plugin.acl_check(1, "#", Access::Unsubscribe), Verdict::Allow);
        assert_eq!(plugin.acl_check(1, "chat/prj_a/conv/c1", Access::Subscribe), Verdict::Allow);
        assert_eq!(plugin.acl_check(1, "chat/prj_a/conv/c1", Access::Read), Verdict::Allow);
        assert_eq!(plugin.acl_check(1, "chat/prj_a/conv/c1", Access::Write), Verdict::Deny);
        assert_eq!(plugin.acl_check(1, "chat/prj_a/conv/c1/typing", Access::Write), Verdict::Allow);
        assert_eq!(plugin.acl_check(1, "chat/prj_a/user/alice/outbox", Access::Write), Verdict::Allow);
        assert_eq!(plugin.acl_check(1, "chat/prj_b/user/alice/outbox", Access::Write), Verdict::Deny);
        assert_eq!(plugin.acl_check(1, "$CONTROL/mqchat/v1", Access::Write), Verdict::Deny);
        assert_eq!(plugin.acl_check(1, "devices/x", Access::Write), Verdict::Deny);
        // Bad tokens and unknown projects.
        assert!(matches!(plugin.basic_auth(2, "x", true, Some("pk_a"), Some("not.a.jwt")), Login::Refused(_)));
        assert!(matches!(plugin.basic_auth(2, "x", true, Some("pk_zzz"), Some(&token("alice", 600))), Login::Refused(_)));
        assert_eq!(plugin.acl_check(2, "chat/prj_a/user/alice/inbox", Access::Subscribe), Verdict::Deny);
        // A revoked user's token is refused by mqchat.
        plugin.api.revoked.borrow_mut().push("eve".into());
        assert_eq!(login(&mut plugin, 3, "eve-phone", "eve"), Login::Refused("token revoked".into()));
    }

    #[test]
    fn a_new_membership_is_fetched_on_a_refused_subscribe_but_never_on_a_delivery() {
        let mut plugin = plugin();
        login(&mut plugin, 1, "phone", "alice");
        plugin.api.memberships.borrow_mut().insert("alice".into(), vec!["c1".into(), "c2".into()]);
        assert_eq!(plugin.acl_check(1, "chat/prj_a/conv/c2", Access::Read), Verdict::Deny);
        assert!(!plugin.api.calls.borrow().contains(&"memberships alice".to_owned()));
        assert_eq!(plugin.acl_check(1, "chat/prj_a/conv/c2", Access::Subscribe), Verdict::Allow);
        assert_eq!(plugin.acl_check(1, "chat/prj_a/conv/c2", Access::Read), Verdict::Allow);
        // Refused again at once: not asked again within REFETCH_EVERY.
        assert_eq!(plugin.acl_check(1, "chat/prj_a/conv/c3", Access::Subscribe), Verdict::Deny);
        assert_eq!(plugin.api.calls.borrow().iter().filter(|call| *call == "memberships alice").count(), 1);
    }

    #[test]
    fn the_platform_and_clients_mosquitto_authenticates() {
        let mut plugin = plugin();
        assert!(matches!(plugin.basic_auth(1, "mqchat-1", false, Some(PLATFORM_USERNAME), Some("wrong")), Login::Refused(_)));
        assert_eq!(plugin.basic_auth(1, "mqchat-1", false, Some(PLATFORM_USERNAME), Some(PLATFORM)), Login::Accepted);
        assert_eq!(plugin.acl_check(1, "$CONTROL/mqchat/v1", Access::Write), Verdict::Allow);
        assert_eq!(plugin.acl_check(1, "$share/mqchat/chat/+/user/+/outbox", Access::Subscribe), Verdict::Allow);
        assert_eq!(plugin.basic_auth(2, "sensor", true, Some("device"), Some("pw")), Login::Deferred);
        assert_eq!(plugin.basic_auth(3, "anon", true, None, None), Login::Deferred);
        assert_eq!(plugin.acl_check(2, "devices/temperature", Access::Write), Verdict::Defer);
        assert_eq!(plugin.acl_check(2, "chat/prj_a/user/alice/inbox", Access::Read), Verdict::Deny);
        assert_eq!(plugin.acl_check(2, "chat", Access::Subscribe), Verdict::Deny);
        // Which instances are alive is mqchat's alone: a forged `offline`
        // would make an instance take over a live one's session.
        assert_eq!(plugin.acl_check(1, "$mqchat/instances/mqchat-1", Access::Write), Verdict::Allow);
        assert_eq!(plugin.acl_check(2, "$mqchat/instances/mqchat-1", Access::Write), Verdict::Deny);
        assert_eq!(plugin.acl_check(2, "$mqchat/instances/+", Access::Subscribe), Verdict::Deny);
    }

    #[test]
    fn client_ids_belong_to_their_user() {
        let mut plugin = plugin();
        assert_eq!(login(&mut plugin, 1, "phone", "alice"), Login::Accepted);
        assert_eq!(login(&mut plugin, 2, "phone", "bob"), Login::Refused("client id held by another user".into()));
        assert_eq!(plugin.basic_auth(2, "phone", true, Some("device"), Some("pw")), Login::Refused("client id held by a chat user".into()));
        // The same user takes its own session over.
        assert_eq!(login(&mut plugin, 3, "phone", "alice"), Login::Accepted);
        assert_eq!(plugin.acl_check(1, "chat/prj_a/user/alice/inbox", Access::Subscribe), Verdict::Deny);
        assert_eq!(plugin.acl_check(3, "chat/prj_a/user/alice/inbox", Access::Subscribe), Verdict::Allow);
        // Once the clean session is over (and its will judged), the id is free.
        plugin.disconnect(3);
        assert_eq!(plugin.acl_check(3, "chat/prj_a/user/alice/status", Access::Write), Verdict::Allow);
        plugin.tick(identity::now_unix());
        assert_eq!(login(&mut plugin, 4, "phone", "bob"), Login::Accepted);
    }

    #[test]
    fn a_departed_connection_never_takes_a_newer_one_at_the_same_address_along() {
        let mut plugin = plugin();
        login(&mut plugin, 1, "phone", "alice");
        plugin.disconnect(1);
        // Mosquitto reused the address before the next tick.
        login(&mut plugin, 1, "tablet", "bob");
        plugin.tick(identity::now_unix());
        assert_eq!(plugin.acl_check(1, "chat/prj_a/user/bob/inbox", Access::Subscribe), Verdict::Allow);
    }

    #[test]
    fn control_messages_revoke_disconnect_and_forget_keys() {
        let mut plugin = plugin();
        login(&mut plugin, 1, "phone", "alice");
        login(&mut plugin, 2, "laptop", "alice");
        plugin.basic_auth(9, "mqchat-1", false, Some(PLATFORM_USERNAME), Some(PLATFORM));
        let revoke = br#"{"op":"revoke","project_id":"prj_a","user_id":"alice","conversation_id":"c1"}"#;
        assert!(plugin.control(1, revoke).is_err(), "only mqchat's connection may send control messages");
        assert_eq!(plugin.acl_check(1, "chat/prj_a/conv/c1", Access::Read), Verdict::Allow);
        assert_eq!(plugin.control(9, revoke), Ok(vec![]));
        assert_eq!(plugin.acl_check(1, "chat/prj_a/conv/c1", Access::Read), Verdict::Deny);
        let mut kicked = plugin.control(9, br#"{"op":"disconnect","project_id":"prj_a","user_id":"alice"}"#).unwrap();
        kicked.sort();
        assert_eq!(kicked, vec!["laptop".to_owned(), "phone".to_owned()]);
        let keys_asked = |plugin: &Plugin<Fake>| plugin.api.calls.borrow().iter().filter(|call| call.starts_with("keys")).count();
        login(&mut plugin, 3, "watch", "alice");
        assert_eq!(keys_asked(&plugin), 1, "keys are cached");
        assert_eq!(plugin.control(9, br#"{"op":"project","public_key":"pk_a"}"#), Ok(vec![]));
        login(&mut plugin, 4, "desk", "alice");
        assert_eq!(keys_asked(&plugin), 2);
        assert!(plugin.control(9, b"\xff garbage").is_err());
    }

    #[test]
    fn expired_tokens_are_reported_once_a_second() {
        let mut plugin = plugin();
        plugin.basic_auth(1, "short", true, Some("pk_a"), Some(&token("alice", 5)));
        login(&mut plugin, 2, "long", "bob");
        let later = identity::now_unix() + 10;
        assert_eq!(plugin.tick(later), vec!["short".to_owned()]);
        assert_eq!(plugin.tick(later), Vec::<String>::new());
    }

    #[test]
    fn typing_is_stamped_with_the_connections_identity() {
        let mut plugin = plugin();
        login(&mut plugin, 1, "phone", "alice");
        let stamped = plugin.message(1, "chat/prj_a/conv/c1/typing", br#"{"user_id":"bob"}"#).unwrap();
        let stamped: serde_json::Value = serde_json::from_slice(&stamped).unwrap();
        assert_eq!((stamped["data"]["user_id"].as_str(), stamped["data"]["name"].as_str()), (Some("alice"), Some("alice name")));
        assert_eq!(plugin.message(1, "chat/prj_a/user/alice/outbox", b"{}"), None);
        assert_eq!(plugin.message(7, "chat/prj_a/conv/c1/typing", b"{}"), None);
    }
}
