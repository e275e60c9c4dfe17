//! What the plugin decides, in safe Rust: the same questions mqchat's
//! gateway answers (who a client is, what it may subscribe to, publish and
//! receive, its typing payloads), asked by Mosquitto's events. The rules
//! are `mqchat-access`'s; this module keeps the state they need — project
//! keys and users' memberships fetched from mqchat and cached, and who each
//! connection is.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqchat_access::acl::{self, Decision};
use mqchat_access::identity::{self, SigningKeys};
use mqchat_access::{typing, Principal};
use serde::Deserialize;

use crate::api::{Api, LoginAnswer, ProjectKeys};

/// Username of mqchat's own connection (its password: the platform secret).
pub const PLATFORM_USERNAME: &str = "mqchat-platform";
/// Project public keys start so; other usernames are left to Mosquitto.
const PUBLIC_KEY_PREFIX: &str = "pk_";
/// How long a project's keys are used without asking again (mqchat also
/// says when they change).
const KEYS_TTL: Duration = Duration::from_secs(60);
/// Shortest time between two membership fetches for one user.
const REFETCH_EVERY: Duration = Duration::from_secs(1);

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
    Chat(Arc<Principal>),
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

struct Memberships {
    conversations: HashSet<String>,
    fetched_at: Instant,
    /// Connections (live or persistent) of the user.
    connections: usize,
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
    users: HashMap<(String, String), Memberships>,
    connections: HashMap<ClientKey, Connection>,
    by_client_id: HashMap<String, ClientKey>,
    last_expiry_check: Option<i64>,
    generations: u64,
    /// Clean sessions that ended, forgotten at the next tick: Mosquitto
    /// checks a connection's will against the ACL after it reported the
    /// disconnection.
    departed: Vec<(ClientKey, u64)>,
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
            if matches!(holder, Some(Who::Chat(_))) {
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
            Some(Who::Chat(held)) if held.project_id == principal.project_id && held.user_id == principal.user_id => {}
            Some(_) => return Login::Refused("client id held by another user".into()),
            None => {}
        }
        let conversations = match self.api.login(&principal.project_id, &principal.claims) {
            Ok(LoginAnswer::Admitted(conversations)) => conversations,
            Ok(LoginAnswer::Revoked) => return Login::Refused("token revoked".into()),
            Err(error) => return Login::Refused(error),
        };
        let user = (principal.project_id.clone(), principal.user_id.as_str().to_owned());
        let memberships = self.users.entry(user).or_insert_with(|| Memberships { conversations: HashSet::new(), fetched_at: Instant::now(), connections: 0 });
        memberships.conversations = conversations.into_iter().collect();
        memberships.fetched_at = Instant::now();
        self.admit(key, client_id, clean, Who::Chat(Arc::new(principal)));
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
        if let Who::Chat(principal) = &who {
            if let Some(memberships) = self.users.get_mut(&(principal.project_id.clone(), principal.user_id.as_str().to_owned())) {
                memberships.connections += 1;
            }
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
        if let Who::Chat(principal) = connection.who {
            let user = (principal.project_id.clone(), principal.user_id.as_str().to_owned());
            if let Some(memberships) = self.users.get_mut(&user) {
                memberships.connections = memberships.connections.saturating_sub(1);
                if memberships.connections == 0 {
                    self.users.remove(&user);
                }
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
        let principal = match self.connections.get(&key).map(|connection| &connection.who) {
            Some(Who::Platform) => return Verdict::Allow,
            Some(Who::Chat(principal)) => Arc::clone(principal),
            // A client Mosquitto authenticated itself never reaches the
            // chat namespace; elsewhere Mosquitto's own ACL decides.
            None if topic == "chat" || topic.starts_with("chat/") => return Verdict::Deny,
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
                if self.is_member(&principal, conversation, access != Access::Read) {
                    Verdict::Allow
                } else {
                    Verdict::Deny
                }
            }
        }
    }

    /// From the cache; a subscribe or publish the cache refuses asks mqchat
    /// again (a membership made since the login), a delivery never waits.
    fn is_member(&mut self, principal: &Principal, conversation: &str, may_fetch: bool) -> bool {
        let user = (principal.project_id.clone(), principal.user_id.as_str().to_owned());
        let Some(memberships) = self.users.get_mut(&user) else { return false };
        if memberships.conversations.contains(conversation) {
            return true;
        }
        if !may_fetch || memberships.fetched_at.elapsed() < REFETCH_EVERY {
            return false;
        }
        memberships.fetched_at = Instant::now();
        match self.api.memberships(&user.0, &user.1) {
            Ok(conversations) => {
                memberships.conversations = conversations.into_iter().collect();
                memberships.conversations.contains(conversation)
            }
            Err(_) => false,
        }
    }

    /// MOSQ_EVT_MESSAGE: a member's typing publish becomes the stamped
    /// event (who, until when); `None` leaves the message as it is.
    pub fn message(&self, key: ClientKey, topic: &str, payload: &[u8]) -> Option<Vec<u8>> {
        let Some(Who::Chat(principal)) = self.connections.get(&key).map(|connection| &connection.who) else { return None };
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
                if let Some(memberships) = self.users.get_mut(&(project_id, user_id)) {
                    memberships.conversations.remove(&conversation_id);
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
            .filter(|connection| matches!(&connection.who, Who::Chat(principal) if matches(principal)))
            .map(|connection| connection.client_id.clone())
            .collect()
    }
}
