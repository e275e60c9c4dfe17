//! The CONNECT handshake, MQTT 3.1.1 or 5: who the client is, its will,
//! its session, the link into rumqttd's router, and the CONNACK — with a
//! return code (3.1.1) or reason code and reason string (5) when refused.
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{ConnAckProperties, ConnectProperties, ConnectReturnCode, Packet};
use tokio::time::Instant;

use super::frames::{self, Version};
use super::transport::{ClientReader, ClientWriter};
use super::wills::Will;
use super::{aliases, Context};
use crate::acl;
use crate::authorizer::{AuthError, Principal};
use crate::plain::{PlainLogin, PlainUser};

/// Longest client id accepted (it is namespaced upstream).
const MAX_CLIENT_ID_LEN: usize = 128;
/// Time rumqttd's router has to accept a new link.
const LINK_TIMEOUT: Duration = Duration::from_secs(10);
/// MQTT 5 session expiry interval meaning "never" (§3.1.2.11.2).
const NEVER_EXPIRES: u32 = u32::MAX;

/// What the client asked for at CONNECT that shapes the whole connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientOptions {
    pub(crate) version: Version,
    /// MQTT 5 "maximum packet size": larger packets are not sent to it.
    pub(crate) max_packet_size: Option<usize>,
    /// MQTT 5 "topic alias maximum" towards the client.
    pub(crate) topic_alias_max: u16,
}

/// Who a connection is: a chat identity (project key and token) or a
/// plain-MQTT client (Mosquitto's password file, or anonymous).
#[derive(Debug, Clone)]
pub(crate) enum Account {
    Chat(Principal),
    Plain(PlainUser),
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Account::Chat(principal) => write!(f, "{}", principal.user_id),
            Account::Plain(PlainUser { username: Some(username), .. }) => write!(f, "plain:{username}"),
            Account::Plain(PlainUser { username: None, .. }) => write!(f, "plain, anonymous"),
        }
    }
}

pub(crate) struct Accepted {
    pub(crate) account: Account,
    pub(crate) link_tx: LinkTx,
    pub(crate) link_rx: LinkRx,
    /// Published when the connection ends without DISCONNECT.
    pub(crate) will: Option<Will>,
    pub(crate) permit: tokio::sync::OwnedSemaphorePermit,
    /// MQTT §3.1.2.10: the server closes after 1.5 × keep-alive of
    /// silence; `None` when the connection has no keep-alive.
    pub(crate) keep_alive: Option<Duration>,
    pub(crate) client: ClientOptions,
    /// The client id as the router knows it (namespaced).
    pub(crate) upstream_id: String,
    /// Seconds the session outlives the connection (`u32::MAX`: for ever).
    pub(crate) session_expiry: u32,
    /// Whether an earlier session of this client id was discarded.
    pub(crate) clean_start: bool,
}

pub(crate) struct Refusal {
    pub(crate) connack: Option<BytesMut>,
    pub(crate) reason: String,
}

impl Refusal {
    fn close(reason: impl Into<String>) -> Self {
        Refusal { connack: None, reason: reason.into() }
    }

    /// A CONNACK refusing with `code`, in the client's version: MQTT 5
    /// gets the reason code that means the same and the reason string.
    fn with(version: Version, code: ConnectReturnCode, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        let connack = match version {
            Version::V4 => frames::connack(code, false),
            Version::V5 => {
                let properties = ConnAckProperties { reason_string: Some(reason.clone()), ..Default::default() };
                frames::connack_v5(v5_code(code), false, properties)
            }
        };
        Refusal { connack: Some(connack), reason }
    }
}

/// The MQTT 5 reason code for a 3.1.1 return code (§3.2.2.2).
fn v5_code(code: ConnectReturnCode) -> ConnectReturnCode {
    match code {
        ConnectReturnCode::RefusedProtocolVersion => ConnectReturnCode::UnsupportedProtocolVersion,
        ConnectReturnCode::ServiceUnavailable => ConnectReturnCode::ServerUnavailable,
        code => code,
    }
}

/// Namespaces the client id so that no user or tenant can take over
/// another's session — chat clients under their project and user, plain
/// clients under `plain|` (no project id starts so) — escaping what
/// rumqttd refuses in a client id (`+ $ # /`).
pub(crate) fn upstream_client_id(account: &Account, client_id: &str) -> String {
    let mut id = match account {
        Account::Chat(principal) => format!("{}|{}|", principal.project_id, principal.user_id),
        Account::Plain(_) => "plain|".to_owned(),
    };
    for c in client_id.chars() {
        match c {
            '%' | '+' | '$' | '#' | '/' => id.push_str(&format!("%{:02X}", c as u32)),
            c => id.push(c),
        }
    }
    id
}

/// Waits until `buf` starts with a whole CONNECT.
async fn read_first_packet(context: &Context, reader: &mut ClientReader, buf: &mut BytesMut) -> Result<(), Refusal> {
    let deadline = Instant::now() + context.settings.connect_timeout;
    loop {
        // The first byte already tells a CONNECT (type 1) from garbage.
        if buf.first().is_some_and(|byte| byte >> 4 != 1) {
            return Err(Refusal::close("first packet is not a CONNECT"));
        }
        match frames::has_whole_packet(buf, context.settings.max_packet_size) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(error) => return Err(Refusal::close(format!("malformed CONNECT: {error}"))),
        }
        match tokio::time::timeout_at(deadline, reader.read_into(buf)).await {
            Err(_) => return Err(Refusal::close("no CONNECT before the connect timeout")),
            Ok(Ok(0)) => return Err(Refusal::close("closed before CONNECT")),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(Refusal::close(format!("read error before CONNECT: {error}"))),
        }
    }
}

pub(crate) async fn handshake(
    context: &Context,
    reader: &mut ClientReader,
    writer: &mut ClientWriter,
    buf: &mut BytesMut,
    origin: Option<&str>,
) -> Result<Accepted, Refusal> {
    read_first_packet(context, reader, buf).await?;
    let version = match frames::connect_protocol_level(buf) {
        Some(4) => Version::V4,
        Some(5) => Version::V5,
        level => {
            return Err(Refusal::with(
                Version::V4,
                ConnectReturnCode::RefusedProtocolVersion,
                format!("unsupported protocol level {level:?}"),
            ))
        }
    };
    let malformed = |error: String| Refusal::close(format!("malformed CONNECT: {error}"));
    let packet = frames::next_packet(buf, context.settings.max_packet_size, version)
        .map_err(|error| malformed(error.to_string()))?
        .ok_or_else(|| malformed("incomplete".into()))?;
    let Packet::Connect(connect, properties, last_will, will_properties, login) = packet else {
        return Err(malformed("not a CONNECT".into()));
    };
    let refuse = |code, reason: String| Refusal::with(version, code, reason);
    let properties = properties.unwrap_or_else(no_connect_properties);
    if let Some(method) = &properties.authentication_method {
        return Err(refuse(ConnectReturnCode::BadAuthenticationMethod, format!("authentication method {method:?} is not offered")));
    }
    // MQTT 3.1.1 §3.1.3-8: an empty client id only with a clean session;
    // MQTT 5 §3.1.3-6: the server assigns one and says which.
    let empty_id_refused = connect.client_id.is_empty() && version == Version::V4 && !connect.clean_session;
    if connect.client_id.len() > MAX_CLIENT_ID_LEN || empty_id_refused {
        return Err(refuse(ConnectReturnCode::ClientIdentifierNotValid, "client id too long or empty without clean session".into()));
    }
    let assigned_id = connect.client_id.is_empty().then(|| uuid::Uuid::new_v4().simple().to_string());
    let client_id = assigned_id.clone().unwrap_or_else(|| connect.client_id.clone());
    let username = login.as_ref().map(|login| login.username.as_str());
    let password = login.as_ref().map_or(&b""[..], |login| login.password.as_bytes());
    let account = match context.plain.login(username, password) {
        PlainLogin::Accepted(username) => Account::Plain(PlainUser { username, client_id: client_id.clone() }),
        PlainLogin::Refused => return Err(refuse(ConnectReturnCode::BadUserNamePassword, "wrong password".into())),
        PlainLogin::NotPlain => {
            let Some(login) = &login else {
                return Err(refuse(ConnectReturnCode::BadUserNamePassword, "CONNECT without username and password".into()));
            };
            let principal = context.authorizer.authenticate(&login.username, &login.password, origin).await.map_err(|error| {
                let code = match error {
                    AuthError::BadCredentials(_) => ConnectReturnCode::BadUserNamePassword,
                    AuthError::NotAuthorized(_) => ConnectReturnCode::NotAuthorized,
                    AuthError::Unavailable(_) => ConnectReturnCode::ServiceUnavailable,
                };
                refuse(code, error.to_string())
            })?;
            Account::Chat(principal)
        }
    };
    // MQTT 3.1.1 keeps a session unless it is clean; MQTT 5 says how long.
    let session_expiry = match version {
        Version::V4 if connect.clean_session => 0,
        Version::V4 => NEVER_EXPIRES,
        Version::V5 => properties.session_expiry_interval.unwrap_or(0),
    };
    let will = match (last_will, &account) {
        (Some(will), account) => {
            let topic = std::str::from_utf8(&will.topic).map_err(|_| malformed("will topic is not UTF-8".into()))?;
            let allowed = match account {
                Account::Chat(principal) => acl::will(principal.subject(), topic),
                Account::Plain(user) => context.plain.will(user, topic).is_ok(),
            };
            if !allowed {
                return Err(refuse(ConnectReturnCode::NotAuthorized, format!("will on a topic this client may not publish to: {topic:?}")));
            }
            Some(Will::from_connect(will, will_properties, Duration::from_secs(u64::from(session_expiry))))
        }
        (None, Account::Chat(principal)) => Some(Will::offline(acl::status_topic(&principal.project_id, principal.user_id.as_str()))),
        (None, Account::Plain(_)) => None,
    };
    let max_keepalive = context.settings.max_keepalive;
    let keep_alive_seconds = match version {
        // Mosquitto's rule for 3.1.1, which cannot be told another value.
        Version::V4 if connect.keep_alive > max_keepalive => {
            return Err(refuse(
                ConnectReturnCode::ClientIdentifierNotValid,
                format!("keep-alive {} s is above the server's maximum of {max_keepalive} s", connect.keep_alive),
            ));
        }
        Version::V4 => connect.keep_alive,
        Version::V5 if connect.keep_alive == 0 || connect.keep_alive > max_keepalive => max_keepalive,
        Version::V5 => connect.keep_alive,
    };
    let permit = Arc::clone(&context.slots)
        .try_acquire_owned()
        .map_err(|_| refuse(ConnectReturnCode::ServiceUnavailable, "max_connections reached".into()))?;
    let upstream_id = upstream_client_id(&account, &client_id);
    context.wills.cancel(&upstream_id);
    let receive_maximum = properties.receive_maximum.unwrap_or(u16::MAX);
    if receive_maximum == 0 {
        return Err(Refusal::close("receive maximum 0 is a protocol error"));
    }
    let build = context
        .router
        .link_builder(&upstream_id)
        .clean_session(connect.clean_session)
        .session_expiry(session_expiry)
        .max_inflight(receive_maximum)
        .dynamic_filters(true)
        .build_async();
    let (link_tx, link_rx, session_present) = match tokio::time::timeout(LINK_TIMEOUT, build).await {
        Err(_) => return Err(refuse(ConnectReturnCode::ServiceUnavailable, "rumqttd's router did not answer".into())),
        Ok(Err(error)) => return Err(refuse(ConnectReturnCode::ServiceUnavailable, format!("rumqttd's router refused the link: {error}"))),
        Ok(Ok((link_tx, link_rx, connack))) => {
            let session_present = match Option::<Packet>::from(connack) {
                Some(Packet::ConnAck(ack, _)) => ack.session_present,
                _ => false,
            };
            (link_tx, link_rx, session_present)
        }
    };
    let connack = match version {
        Version::V4 => frames::connack(ConnectReturnCode::Success, session_present),
        Version::V5 => {
            let properties = ConnAckProperties {
                assigned_client_identifier: assigned_id,
                server_keep_alive: (keep_alive_seconds != connect.keep_alive).then_some(keep_alive_seconds),
                max_packet_size: u32::try_from(context.settings.max_packet_size).ok(),
                topic_alias_max: Some(aliases::INBOUND_MAXIMUM),
                retain_available: Some(1),
                wildcard_subscription_available: Some(1),
                subscription_identifiers_available: Some(1),
                // `$share/…` filters are outside every namespace a client may use.
                shared_subscription_available: Some(0),
                ..Default::default()
            };
            frames::connack_v5(ConnectReturnCode::Success, session_present, properties)
        }
    };
    writer.send(&connack).await.map_err(|error| Refusal::close(format!("client write: {error}")))?;
    let keep_alive = (keep_alive_seconds > 0).then(|| Duration::from_millis(u64::from(keep_alive_seconds) * 1500));
    let client = ClientOptions {
        version,
        max_packet_size: properties.max_packet_size.and_then(|size| usize::try_from(size).ok()),
        topic_alias_max: properties.topic_alias_max.unwrap_or(0),
    };
    let clean_start = connect.clean_session;
    Ok(Accepted { account, link_tx, link_rx, will, permit, keep_alive, client, upstream_id, session_expiry, clean_start })
}

/// What an MQTT 3.1.1 CONNECT (which has no properties) amounts to.
fn no_connect_properties() -> ConnectProperties {
    ConnectProperties {
        session_expiry_interval: None,
        receive_maximum: None,
        max_packet_size: None,
        topic_alias_max: None,
        request_response_info: None,
        request_problem_info: None,
        user_properties: Vec::new(),
        authentication_method: None,
        authentication_data: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{IdentityClaims, UserId};

    #[test]
    fn upstream_client_ids_are_namespaced_and_escaped() {
        let principal = Account::Chat(Principal {
            project_id: "prj_a".into(),
            user_id: UserId::parse("alice").unwrap(),
            claims: IdentityClaims { sub: "alice".into(), name: None, email: None, avatar_url: None, iat: 0, exp: 0, iss: None },
        });
        assert_eq!(upstream_client_id(&principal, "phone"), "prj_a|alice|phone");
        assert_eq!(upstream_client_id(&principal, "a/b+c#d$e%f"), "prj_a|alice|a%2Fb%2Bc%23d%24e%25f");
        let device = Account::Plain(PlainUser { username: None, client_id: "phone".into() });
        assert_eq!(upstream_client_id(&device, "phone"), "plain|phone", "never a chat client's id");
    }
}
