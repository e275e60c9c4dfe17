//! The plain-MQTT namespace: devices that log in the way Mosquitto users
//! already do — a user of Mosquitto's `password_file`, or anonymous where
//! `allow_anonymous` says so — and publish and subscribe wherever the
//! `acl_file` lets them (everywhere without one, as in Mosquitto), except
//! in the chat namespace (`chat/…`) and on `$` topics, which plain clients
//! never reach. Chat identities (project key + token) never reach this
//! namespace either: their ACL (`acl`) covers `chat/{project}/…` only.
use mqchat_mosquitto_files::{Access, AclFile, PasswordFile};

/// Where plain clients may not go, whatever the ACL file says.
const CHAT_PREFIX: &str = "chat/";

/// How plain clients log in and what they may do.
#[derive(Debug, Default)]
pub struct PlainRealm {
    pub passwords: Option<PasswordFile>,
    pub acl: Option<AclFile>,
    pub allow_anonymous: bool,
}

/// A plain client, once its CONNECT was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainUser {
    /// `None`: anonymous.
    pub username: Option<String>,
    pub client_id: String,
}

/// What a login amounts to in the plain namespace.
#[derive(Debug, PartialEq, Eq)]
pub enum PlainLogin {
    /// Not a plain login: the chat namespace answers (a project key).
    NotPlain,
    /// A plain client: `None` is anonymous.
    Accepted(Option<String>),
    /// A user of the password file with a wrong password.
    Refused,
}

impl PlainRealm {
    /// Whether any plain client can log in at all.
    pub fn is_open(&self) -> bool {
        self.allow_anonymous || self.passwords.as_ref().is_some_and(|passwords| !passwords.is_empty())
    }

    /// Sorts a CONNECT's credentials: a user named in the password file is
    /// checked here; no username is anonymous (when allowed); anything else
    /// is left to the chat namespace.
    pub fn login(&self, username: Option<&str>, password: &[u8]) -> PlainLogin {
        match (username, &self.passwords) {
            (None, _) if self.allow_anonymous => PlainLogin::Accepted(None),
            (Some(username), Some(passwords)) if passwords.has_user(username) => {
                if passwords.verify(username, password) {
                    PlainLogin::Accepted(Some(username.to_owned()))
                } else {
                    PlainLogin::Refused
                }
            }
            _ => PlainLogin::NotPlain,
        }
    }

    /// May `user` publish on `topic`?
    pub fn publish(&self, user: &PlainUser, topic: &str) -> Result<(), &'static str> {
        if !rumqttd::protocol::valid_topic(topic) {
            return Err("invalid topic name");
        }
        outside_chat(topic)?;
        self.check(user, topic, Access::Write)
    }

    /// May `user` subscribe to `filter`? Its first level must be a name of
    /// its own (`#` or `+/…` would reach into the chat namespace).
    pub fn subscribe(&self, user: &PlainUser, filter: &str) -> Result<(), &'static str> {
        if !rumqttd::protocol::valid_filter(filter) {
            return Err("invalid topic filter");
        }
        let first = filter.split('/').next().unwrap_or_default();
        if first == "#" || first == "+" {
            return Err("a plain client's filter starts with a level of its own (a wildcard there would reach the chat namespace)");
        }
        outside_chat(filter)?;
        self.check(user, filter, Access::Read)
    }

    /// May `user` receive a message on `topic` (checked again as each one
    /// is delivered, so a `deny` rule under a granted filter holds)?
    pub fn read(&self, user: &PlainUser, topic: &str) -> bool {
        self.check(user, topic, Access::Read).is_ok()
    }

    /// Whether deliveries to plain clients need `read` (an ACL file is set).
    pub fn checks_reads(&self) -> bool {
        self.acl.is_some()
    }

    /// May `user` leave a will on `topic`? As for a publish.
    pub fn will(&self, user: &PlainUser, topic: &str) -> Result<(), &'static str> {
        self.publish(user, topic)
    }

    fn check(&self, user: &PlainUser, topic: &str, access: Access) -> Result<(), &'static str> {
        match &self.acl {
            None => Ok(()),
            Some(acl) if acl.allows(user.username.as_deref(), &user.client_id, topic, access) => Ok(()),
            Some(_) => Err("the ACL file does not allow it"),
        }
    }
}

fn outside_chat(topic: &str) -> Result<(), &'static str> {
    if topic.starts_with(CHAT_PREFIX) || topic == "chat" {
        return Err("the chat namespace is for chat identities");
    }
    if topic.starts_with('$') {
        return Err("`$` topics are the server's");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn realm(acl: Option<&str>) -> PlainRealm {
        // sensor/secret, written by `mosquitto_passwd -H sha512`.
        let passwords = "sensor:$6$Y6oGcwrNGs75zUwr$cmrJEwjnyBUDOQv+lyGOWhY/6b4euI5QWu+1WcsxLaT+hQBp1GsHw4A/eS+Auv4ZA0g9CTmkYbwBDJ1h/CWKMA==";
        PlainRealm {
            passwords: Some(PasswordFile::parse(passwords, "pw").unwrap()),
            acl: acl.map(|text| AclFile::parse(text, "acl").unwrap()),
            allow_anonymous: false,
        }
    }

    fn sensor() -> PlainUser {
        PlainUser { username: Some("sensor".into()), client_id: "s1".into() }
    }

    #[test]
    fn logins_are_sorted_between_the_namespaces() {
        let realm = realm(None);
        assert_eq!(realm.login(Some("sensor"), b"hunter2"), PlainLogin::Accepted(Some("sensor".into())));
        assert_eq!(realm.login(Some("sensor"), b"wrong"), PlainLogin::Refused);
        assert_eq!(realm.login(Some("pk_abc"), b"eyJhbGciOi"), PlainLogin::NotPlain);
        assert_eq!(realm.login(None, b""), PlainLogin::NotPlain, "anonymous is not allowed here");
        let open = PlainRealm { allow_anonymous: true, ..PlainRealm::default() };
        assert_eq!(open.login(None, b""), PlainLogin::Accepted(None));
        assert!(open.is_open() && !PlainRealm::default().is_open());
    }

    #[test]
    fn plain_clients_never_reach_chat_or_dollar_topics() {
        let realm = realm(None);
        assert!(realm.publish(&sensor(), "home/kitchen/temp").is_ok());
        assert!(realm.subscribe(&sensor(), "home/#").is_ok());
        for topic in ["chat/prj_a/user/alice/outbox", "$SYS/broker/load", "chat"] {
            assert!(realm.publish(&sensor(), topic).is_err(), "{topic}");
        }
        for filter in ["#", "+/prj_a/conv/c1", "chat/#", "$SYS/#", "+"] {
            assert!(realm.subscribe(&sensor(), filter).is_err(), "{filter}");
        }
    }

    #[test]
    fn the_acl_file_decides_within_the_namespace() {
        let realm = realm(Some("user sensor\ntopic write home/+/temp\ntopic read home/#\ntopic deny home/secret"));
        assert!(realm.publish(&sensor(), "home/kitchen/temp").is_ok());
        assert!(realm.publish(&sensor(), "home/kitchen/light").is_err());
        assert!(realm.subscribe(&sensor(), "home/#").is_ok());
        assert!(realm.read(&sensor(), "home/kitchen/temp"));
        assert!(!realm.read(&sensor(), "home/secret"), "deny holds under a granted filter");
        assert!(realm.checks_reads());
    }
}
