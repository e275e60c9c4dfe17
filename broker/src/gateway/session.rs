//! One client connection: CONNECT handshake, then two directions —
//! client → router (this task: ACL, limits, keep-alive, platform orders) and
//! router → client (a second task: encodes what the router sends, rewrites
//! a few acks, interleaves the gateway's own answers).
//!
//! Each connection is an in-process link into rumqttd's router: a packet is
//! decoded once (with rumqttd's codec), checked, and handed to the router as
//! a value; the router's notifications are encoded straight to the client.
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{
    ConnectReturnCode, Disconnect, DisconnectReasonCode, LastWill, Packet, Publish, QoS, SubAck, Subscribe,
    SubscribeReasonCode, Unsubscribe,
};
use rumqttd::Notification;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::acks::AckRewrites;
use super::frames;
use super::transport::{ClientReader, ClientWriter};
use super::typing;
use super::Context;
use crate::acl::{self, Decision, Subject};
use super::refusals::{Refusals, Verdict};
use crate::authorizer::{AuthError, Principal};
use crate::identity::now_unix;
use crate::registry::Control;

/// Longest client id accepted (it is namespaced upstream).
const MAX_CLIENT_ID_LEN: usize = 128;
/// Packet ids of UNSUBSCRIBEs the gateway makes, counting down from here.
const FIRST_GATEWAY_PKID: u16 = u16::MAX;
/// Packet id of a will the gateway publishes at QoS 1 (the link is closed
/// right after, so it cannot meet another packet's id).
const WILL_PKID: u16 = 1;
/// Time rumqttd's router has to accept a new link.
const LINK_TIMEOUT: Duration = Duration::from_secs(10);
/// Packets the gateway itself queues for the client before it waits.
const LOCAL_QUEUE: usize = 64;
/// Write buffer a connection always keeps; beyond this it keeps only what
/// its traffic uses.
const KEPT_WRITE_BUFFER: usize = 16 * 1024;

/// Why a session ended; logged once.
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("client closed the connection")]
    ClientClosed,
    #[error("client sent DISCONNECT")]
    ClientDisconnected,
    #[error("rumqttd's router closed the link (session taken over, or a protocol error it found)")]
    RouterClosed,
    #[error("the task writing to the client stopped")]
    WriterStopped,
    #[error("keep-alive expired")]
    KeepAliveExpired,
    #[error("token expired")]
    TokenExpired,
    #[error("closed by the platform: {0}")]
    Closed(String),
    #[error("server shutting down")]
    Shutdown,
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("i/o error: {0}")]
    Io(std::io::Error),
    #[error("authorizer failed: {0}")]
    Authorizer(String),
}

impl From<std::io::Error> for End {
    fn from(error: std::io::Error) -> Self {
        End::Io(error)
    }
}

impl From<rumqttd::protocol::Error> for End {
    fn from(error: rumqttd::protocol::Error) -> Self {
        End::Protocol(error.to_string())
    }
}

pub(crate) async fn run(
    context: Arc<Context>,
    mut reader: ClientReader,
    mut writer: ClientWriter,
    peer: SocketAddr,
    origin: Option<String>,
) {
    let mut buf = BytesMut::new();
    let accepted = match handshake(&context, &mut reader, &mut writer, &mut buf, origin.as_deref()).await {
        Ok(accepted) => accepted,
        Err(refusal) => {
            if let Some(connack) = refusal.connack {
                let _ = writer.send(&connack).await;
            }
            writer.close().await;
            // Reasons may quote what the client sent: `?` escapes it.
            tracing::info!(%peer, reason = ?refusal.reason, "connection refused");
            return;
        }
    };
    let Accepted { principal, link_tx, link_rx, will, permit, keep_alive } = accepted;
    let (registration, controls) = context.registry.register(&principal.project_id, principal.user_id.as_str());
    let rewrites = Arc::new(Mutex::new(AckRewrites::default()));
    let (local_tx, local_rx) = mpsc::channel(LOCAL_QUEUE);
    let downstream = tokio::spawn(downstream(link_rx, writer, local_rx, Arc::clone(&rewrites)));
    tracing::debug!(%peer, project = %principal.project_id, user = %principal.user_id, "client connected");

    let mut session = Session::new(&context, principal, link_tx, will, local_tx, rewrites);
    let end = session.relay(&mut reader, buf, controls, downstream, keep_alive).await;
    session.close_link(&end).await;
    if session.refusals.unlogged() > 0 {
        tracing::warn!(%peer, user = %session.principal.user_id, unlogged = session.refusals.unlogged(), "refused packets not logged one by one");
    }
    match &end {
        End::ClientDisconnected | End::ClientClosed | End::Shutdown => tracing::debug!(%peer, end = ?end.to_string(), "session ended"),
        _ => tracing::info!(%peer, user = %session.principal.user_id, end = ?end.to_string(), "session ended"),
    }
    drop(registration);
    drop(permit);
}

struct Accepted {
    principal: Principal,
    link_tx: LinkTx,
    link_rx: LinkRx,
    /// Published by the gateway when the connection ends without DISCONNECT.
    will: LastWill,
    permit: tokio::sync::OwnedSemaphorePermit,
    /// MQTT 3.1.1 §3.1.2.10: the server closes after 1.5 × keep-alive of
    /// silence; `None` when the client asked for no keep-alive.
    keep_alive: Option<Duration>,
}

struct Refusal {
    connack: Option<BytesMut>,
    reason: String,
}

impl Refusal {
    fn close(reason: impl Into<String>) -> Self {
        Refusal { connack: None, reason: reason.into() }
    }

    fn with(code: ConnectReturnCode, reason: impl Into<String>) -> Self {
        Refusal { connack: Some(frames::connack(code, false)), reason: reason.into() }
    }
}

/// Namespaces the client id so that no user or tenant can take over
/// another's session, escaping what rumqttd refuses in a client id
/// (`+ $ # /`).
fn upstream_client_id(principal: &Principal, client_id: &str) -> String {
    let mut id = format!("{}|{}|", principal.project_id, principal.user_id);
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

async fn handshake(
    context: &Context,
    reader: &mut ClientReader,
    writer: &mut ClientWriter,
    buf: &mut BytesMut,
    origin: Option<&str>,
) -> Result<Accepted, Refusal> {
    read_first_packet(context, reader, buf).await?;
    match frames::connect_protocol_level(buf) {
        Some(4) => {}
        Some(5) => {
            return Err(Refusal {
                connack: Some(frames::connack_v5_unsupported()),
                reason: "MQTT 5 is not supported; use MQTT 3.1.1".into(),
            })
        }
        level => {
            return Err(Refusal::with(
                ConnectReturnCode::RefusedProtocolVersion,
                format!("unsupported protocol level {level:?}"),
            ))
        }
    }
    let malformed = |error: String| Refusal::close(format!("malformed CONNECT: {error}"));
    let packet = frames::next_packet(buf, context.settings.max_packet_size)
        .map_err(|error| malformed(error.to_string()))?
        .ok_or_else(|| malformed("incomplete".into()))?;
    let Packet::Connect(connect, _, last_will, _, login) = packet else {
        return Err(malformed("not a CONNECT".into()));
    };
    let Some(login) = login else {
        return Err(Refusal::with(ConnectReturnCode::BadUserNamePassword, "CONNECT without username and password"));
    };
    let principal = context.authorizer.authenticate(&login.username, &login.password, origin).await.map_err(|error| {
        let code = match error {
            AuthError::BadCredentials(_) => ConnectReturnCode::BadUserNamePassword,
            AuthError::NotAuthorized(_) => ConnectReturnCode::NotAuthorized,
            AuthError::Unavailable(_) => ConnectReturnCode::ServiceUnavailable,
        };
        Refusal::with(code, error.to_string())
    })?;
    let subject = Subject { project_id: &principal.project_id, user_id: principal.user_id.as_str() };
    let will = match last_will {
        Some(will) => {
            let topic = std::str::from_utf8(&will.topic).map_err(|_| malformed("will topic is not UTF-8".into()))?;
            if !acl::will(subject, topic) {
                return Err(Refusal::with(ConnectReturnCode::NotAuthorized, format!("will on foreign topic {topic:?}")));
            }
            will
        }
        None => LastWill {
            topic: Bytes::from(acl::status_topic(subject.project_id, subject.user_id)),
            message: Bytes::from_static(br#"{"status":"offline"}"#),
            qos: QoS::AtLeastOnce,
            retain: false,
        },
    };
    if connect.client_id.len() > MAX_CLIENT_ID_LEN || (connect.client_id.is_empty() && !connect.clean_session) {
        return Err(Refusal::with(
            ConnectReturnCode::ClientIdentifierNotValid,
            "client id too long or empty without clean session",
        ));
    }
    let client_id = match connect.client_id.as_str() {
        "" => uuid::Uuid::new_v4().simple().to_string(),
        id => id.to_owned(),
    };
    let permit = Arc::clone(&context.slots)
        .try_acquire_owned()
        .map_err(|_| Refusal::with(ConnectReturnCode::ServiceUnavailable, "max_connections reached"))?;
    let (link_tx, link_rx, session_present) =
        open_link(context, &upstream_client_id(&principal, &client_id), connect.clean_session)
            .await
            .map_err(|reason| Refusal::with(ConnectReturnCode::ServiceUnavailable, reason))?;
    writer
        .send(&frames::connack(ConnectReturnCode::Success, session_present))
        .await
        .map_err(|error| Refusal::close(format!("client write: {error}")))?;
    let keep_alive = (connect.keep_alive > 0).then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500));
    Ok(Accepted { principal, link_tx, link_rx, will, permit, keep_alive })
}

/// Opens the connection's link into rumqttd's router (which takes over a
/// live session with the same client id, or resumes a persistent one);
/// returns it with the CONNACK's session-present flag.
async fn open_link(context: &Context, client_id: &str, clean_session: bool) -> Result<(LinkTx, LinkRx, bool), String> {
    let build = context.router.link_builder(client_id).clean_session(clean_session).dynamic_filters(true).build_async();
    let (link_tx, link_rx, connack) = tokio::time::timeout(LINK_TIMEOUT, build)
        .await
        .map_err(|_| "rumqttd's router did not answer".to_owned())?
        .map_err(|error| format!("rumqttd's router refused the link: {error}"))?;
    let session_present = match Option::<Packet>::from(connack) {
        Some(Packet::ConnAck(ack, _)) => ack.session_present,
        _ => false,
    };
    Ok((link_tx, link_rx, session_present))
}

/// The client → router direction and everything the gateway decides.
struct Session<'c> {
    context: &'c Context,
    principal: Principal,
    link: LinkTx,
    /// Packets for the router, handed over together once the current batch
    /// of the client's packets is processed.
    pending: Vec<Packet>,
    will: LastWill,
    /// Packets the gateway answers itself (refused SUBSCRIBE, dropped PUBLISH acks).
    local: mpsc::Sender<BytesMut>,
    rewrites: Arc<Mutex<AckRewrites>>,
    /// Conversations this connection was found to be a member of.
    member_of: HashSet<String>,
    /// Forwarded filters per conversation, to unsubscribe them on revocation.
    subscriptions: HashMap<String, Vec<String>>,
    /// QoS 2 PUBLISHes the gateway dropped and answered with PUBREC.
    dropped_qos2: HashSet<u16>,
    next_gateway_pkid: u16,
    limiter: Option<DefaultDirectRateLimiter>,
    /// Refused packets: logged, counted, and past a budget the end.
    refusals: Refusals,
}

impl<'c> Session<'c> {
    fn new(
        context: &'c Context,
        principal: Principal,
        link: LinkTx,
        will: LastWill,
        local: mpsc::Sender<BytesMut>,
        rewrites: Arc<Mutex<AckRewrites>>,
    ) -> Self {
        let limiter = NonZeroU32::new(context.settings.max_publish_rate)
            .map(|rate| RateLimiter::direct(Quota::per_second(rate)));
        Session {
            context,
            principal,
            link,
            pending: Vec::new(),
            will,
            local,
            rewrites,
            member_of: HashSet::new(),
            subscriptions: HashMap::new(),
            dropped_qos2: HashSet::new(),
            next_gateway_pkid: FIRST_GATEWAY_PKID,
            limiter,
            refusals: Refusals::default(),
        }
    }

    fn rewrites(&self) -> MutexGuard<'_, AckRewrites> {
        locked(&self.rewrites)
    }

    async fn relay(
        &mut self,
        reader: &mut ClientReader,
        mut buf: BytesMut,
        mut controls: mpsc::UnboundedReceiver<Control>,
        mut downstream: tokio::task::JoinHandle<End>,
        keep_alive: Option<Duration>,
    ) -> End {
        let mut last_heard = Instant::now();
        let far_future = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        let keep_alive_check = sleep_until(keep_alive.map_or(far_future, |limit| last_heard + limit));
        tokio::pin!(keep_alive_check);
        let token_expiry = sleep_until(Instant::now() + Duration::from_secs((self.principal.claims.exp - now_unix()).max(0) as u64));
        tokio::pin!(token_expiry);
        let mut shutdown = self.context.shutdown.clone();

        // Bytes that arrived with the CONNECT.
        if let Err(end) = self.process(&mut buf).await {
            downstream.abort();
            return end;
        }
        let end = loop {
            tokio::select! {
                read = reader.read_into(&mut buf) => match read {
                    Ok(0) => break End::ClientClosed,
                    Ok(_) => {
                        last_heard = Instant::now();
                        if let Err(end) = self.process(&mut buf).await {
                            break end;
                        }
                    }
                    Err(error) => break End::Io(error),
                },
                Some(control) = controls.recv() => match control {
                    Control::Revoke { conversation_id } => {
                        if let Err(end) = self.revoke(&conversation_id).await {
                            break end;
                        }
                    }
                    Control::Close { reason } => break End::Closed(reason),
                },
                () = &mut keep_alive_check => {
                    let limit = keep_alive.unwrap_or(Duration::MAX);
                    if last_heard.elapsed() >= limit {
                        break End::KeepAliveExpired;
                    }
                    keep_alive_check.as_mut().reset(last_heard + limit);
                },
                () = &mut token_expiry => break End::TokenExpired,
                result = &mut downstream => break result.unwrap_or(End::WriterStopped),
                () = super::stopped(&mut shutdown) => break End::Shutdown,
            }
        };
        downstream.abort();
        end
    }

    /// Client → router: handles every complete packet in `buf`, then hands
    /// what is forwarded to the router in one go.
    async fn process(&mut self, buf: &mut BytesMut) -> Result<(), End> {
        let max = self.context.settings.max_packet_size;
        while let Some(packet) = frames::next_packet(buf, max)? {
            match packet {
                Packet::Publish(publish, _) => self.on_publish(publish).await?,
                Packet::Subscribe(subscribe, _) => self.on_subscribe(subscribe).await?,
                Packet::Unsubscribe(unsubscribe, _) => self.on_unsubscribe(unsubscribe),
                Packet::PubRel(pubrel, _) => {
                    if self.dropped_qos2.remove(&pubrel.pkid) {
                        self.answer(frames::pubcomp(pubrel.pkid)).await?;
                    } else {
                        self.pending.push(Packet::PubRel(pubrel, None));
                    }
                }
                packet @ (Packet::PubAck(..) | Packet::PubRec(..) | Packet::PubComp(..) | Packet::PingReq(_)) => {
                    self.pending.push(packet)
                }
                Packet::Disconnect(..) => {
                    self.pending.push(Packet::Disconnect(normal_disconnect(), None));
                    self.flush().await?;
                    return Err(End::ClientDisconnected);
                }
                other => return Err(End::Protocol(format!("a client may not send {other:?}"))),
            }
        }
        self.flush().await
    }

    /// Hands the pending packets to the router; waits while its queue is full.
    async fn flush(&mut self) -> Result<(), End> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.link.buffer().extend(self.pending.drain(..));
        self.link.notify().await.map_err(|_| End::RouterClosed)
    }

    /// Ends the router's side of the connection: unless the client said
    /// DISCONNECT (already passed on) or the router ended it first, the will
    /// is published, then the link is closed. A QoS 2 will is published at
    /// QoS 1: the link is gone before a PUBREL could follow.
    async fn close_link(&mut self, end: &End) {
        if matches!(end, End::RouterClosed | End::ClientDisconnected) {
            return;
        }
        let will = &self.will;
        let qos = if will.qos == QoS::AtMostOnce { QoS::AtMostOnce } else { QoS::AtLeastOnce };
        let publish = Publish {
            dup: false,
            qos,
            retain: will.retain,
            topic: will.topic.clone(),
            pkid: if qos == QoS::AtMostOnce { 0 } else { WILL_PKID },
            payload: will.message.clone(),
        };
        self.pending.push(Packet::Publish(publish, None));
        self.pending.push(Packet::Disconnect(normal_disconnect(), None));
        if let Err(error) = self.flush().await {
            tracing::debug!(user = %self.principal.user_id, %error, "link already closed by the router");
        }
    }

    /// Queues a packet the gateway answers itself.
    async fn answer(&self, packet: BytesMut) -> Result<(), End> {
        self.local.send(packet).await.map_err(|_| End::WriterStopped)
    }

    fn subject(&self) -> Subject<'_> {
        Subject { project_id: &self.principal.project_id, user_id: self.principal.user_id.as_str() }
    }

    async fn is_member(&mut self, conversation_id: &str) -> Result<bool, End> {
        if self.member_of.contains(conversation_id) {
            return Ok(true);
        }
        let member = self
            .context
            .authorizer
            .is_member(&self.principal, conversation_id)
            .await
            .map_err(|error| End::Authorizer(error.to_string()))?;
        if member {
            self.member_of.insert(conversation_id.to_owned());
        }
        Ok(member)
    }

    async fn allowed(&mut self, decision: Decision<'_>) -> Result<Result<(), &'static str>, End> {
        Ok(match decision {
            Decision::Allow => Ok(()),
            Decision::IfMember(conversation_id) if self.is_member(conversation_id).await? => Ok(()),
            Decision::IfMember(_) => Err("not a member of this conversation"),
            Decision::Deny(reason) => Err(reason),
        })
    }

    async fn on_publish(&mut self, publish: Publish) -> Result<(), End> {
        if let Some(limiter) = &self.limiter {
            if limiter.check().is_err() {
                // Over the rate: hand over what is pending, then stop reading
                // this client until the quota allows the next message.
                self.flush().await?;
                if let Some(limiter) = &self.limiter {
                    limiter.until_ready().await;
                }
            }
        }
        let topic_bytes = publish.topic.clone();
        let topic = std::str::from_utf8(&topic_bytes).map_err(|_| End::Protocol("PUBLISH topic is not UTF-8".into()))?;
        let decision = acl::publish(self.subject(), topic);
        match self.allowed(decision).await? {
            Ok(()) => {
                let publish = match typing::conversation_of(topic) {
                    None => publish,
                    Some(conversation_id) => {
                        let payload = typing::stamp(&self.principal, conversation_id, &publish.payload, chrono::Utc::now());
                        Publish { retain: false, payload, ..publish }
                    }
                };
                self.pending.push(Packet::Publish(publish, None));
            }
            Err(reason) => {
                // `?`: the topic is the client's, escaped so it cannot forge a log line.
                if self.refused()? {
                    tracing::warn!(user = %self.principal.user_id, topic = ?topic, reason, "PUBLISH dropped");
                }
                match publish.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => self.answer(frames::puback(publish.pkid)).await?,
                    QoS::ExactlyOnce => {
                        self.dropped_qos2.insert(publish.pkid);
                        self.answer(frames::pubrec(publish.pkid)).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn on_subscribe(&mut self, subscribe: Subscribe) -> Result<(), End> {
        let requested = subscribe.filters.len();
        let mut codes = Vec::with_capacity(requested);
        let mut forwarded = Vec::with_capacity(requested);
        for filter in subscribe.filters {
            let decision = acl::subscribe(self.subject(), &filter.path);
            let conversation = match &decision {
                Decision::IfMember(conversation_id) => Some((*conversation_id).to_owned()),
                _ => None,
            };
            match self.allowed(decision).await? {
                Ok(()) => {
                    if let Some(conversation_id) = conversation {
                        self.subscriptions.entry(conversation_id).or_default().push(filter.path.clone());
                    }
                    forwarded.push(filter);
                    codes.push(None);
                }
                Err(reason) => {
                    if self.refused()? {
                        tracing::warn!(user = %self.principal.user_id, filter = ?filter.path, reason, "SUBSCRIBE refused");
                    }
                    codes.push(Some(SubscribeReasonCode::Failure));
                }
            }
        }
        if forwarded.is_empty() {
            let refusals = codes.into_iter().flatten().collect();
            return self.answer(frames::suback(subscribe.pkid, refusals)).await;
        }
        if forwarded.len() < requested {
            self.rewrites().expect_partial_suback(subscribe.pkid, codes);
        }
        self.pending.push(Packet::Subscribe(Subscribe { pkid: subscribe.pkid, filters: forwarded }, None));
        Ok(())
    }

    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        for filters in self.subscriptions.values_mut() {
            filters.retain(|filter| !unsubscribe.filters.contains(filter));
        }
        self.subscriptions.retain(|_, filters| !filters.is_empty());
        self.rewrites().unsubscribe_sent(unsubscribe.pkid, false);
        self.pending.push(Packet::Unsubscribe(unsubscribe, None));
    }

    /// Counts a refused packet: `Ok(true)` to log it, `Ok(false)` to stay
    /// quiet, and the end of the connection once it refused too many.
    fn refused(&mut self) -> Result<bool, End> {
        match self.refusals.note() {
            Verdict::Log => Ok(true),
            Verdict::Quiet => Ok(false),
            Verdict::Close => Err(End::Protocol("too many refused packets".into())),
        }
    }

    /// Membership revoked: forget it and unsubscribe its filters upstream.
    async fn revoke(&mut self, conversation_id: &str) -> Result<(), End> {
        self.member_of.remove(conversation_id);
        let Some(filters) = self.subscriptions.remove(conversation_id) else {
            return Ok(());
        };
        let pkid = self.next_gateway_pkid;
        self.next_gateway_pkid = if pkid <= 1 { FIRST_GATEWAY_PKID } else { pkid - 1 };
        self.rewrites().unsubscribe_sent(pkid, true);
        self.pending.push(Packet::Unsubscribe(Unsubscribe { pkid, filters }, None));
        tracing::info!(user = %self.principal.user_id, conversation_id, "membership revoked on a live connection");
        self.flush().await
    }
}

fn normal_disconnect() -> Disconnect {
    Disconnect { reason_code: DisconnectReasonCode::NormalDisconnection }
}

/// Router → client: encodes what the router queued for this connection,
/// except the acks `AckRewrites` takes, and interleaves the gateway's own
/// answers.
async fn downstream(
    mut link: LinkRx,
    mut client: ClientWriter,
    mut local: mpsc::Receiver<BytesMut>,
    rewrites: Arc<Mutex<AckRewrites>>,
) -> End {
    let mut notifications = VecDeque::new();
    let mut out = BytesMut::new();
    loop {
        tokio::select! {
            exchanged = link.exchange(&mut notifications) => {
                if exchanged.is_err() {
                    return End::RouterClosed;
                }
                let mut paused = false;
                let mut closed = false;
                for notification in notifications.drain(..) {
                    match notification {
                        // The router stopped sending until this batch is written.
                        Notification::Unschedule => paused = true,
                        // An MQTT 5 DISCONNECT has no 3.1.1 form: the connection just ends.
                        Notification::Disconnect(..) => closed = true,
                        notification => {
                            let Some(packet) = Option::<Packet>::from(notification).and_then(|p| rewrite_ack(p, &rewrites)) else {
                                continue;
                            };
                            if let Err(error) = frames::encode(packet, &mut out) {
                                return End::Protocol(format!("cannot encode for the client: {error}"));
                            }
                        }
                    }
                }
                if let Err(error) = client.send(&out).await {
                    return End::Io(error);
                }
                // A buffer far larger than this batch needed is given back,
                // so a connection that quietens down stays small; a busy one
                // keeps what it uses.
                if out.capacity() > KEPT_WRITE_BUFFER && out.len() < out.capacity() / 8 {
                    out = BytesMut::new();
                } else {
                    out.clear();
                }
                if closed {
                    return End::RouterClosed;
                }
                if paused && link.wake().await.is_err() {
                    return End::RouterClosed;
                }
            }
            Some(packet) = local.recv() => {
                if let Err(error) = client.send(&packet).await {
                    return End::Io(error);
                }
            }
        }
    }
}

/// The connection's ack rewrites, shared by its two directions. Only plain
/// inserts and removes happen under this lock, so a poisoned one is whole.
fn locked(rewrites: &Mutex<AckRewrites>) -> MutexGuard<'_, AckRewrites> {
    rewrites.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The packet to send instead of `packet`: itself, a SUBACK merged with the
/// gateway's refusals, or nothing (the UNSUBACK of the gateway's own UNSUBSCRIBE).
fn rewrite_ack(packet: Packet, rewrites: &Mutex<AckRewrites>) -> Option<Packet> {
    match packet {
        Packet::UnsubAck(ack, _) if locked(rewrites).unsuback_is_gateways(ack.pkid) => None,
        Packet::SubAck(ack, _) => match locked(rewrites).merge_suback(ack.pkid, &ack.return_codes) {
            Some(return_codes) => Some(Packet::SubAck(SubAck { pkid: ack.pkid, return_codes }, None)),
            None => Some(Packet::SubAck(ack, None)),
        },
        packet => Some(packet),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{IdentityClaims, UserId};

    #[test]
    fn upstream_client_ids_are_namespaced_and_escaped() {
        let principal = Principal {
            project_id: "prj_a".into(),
            user_id: UserId::parse("alice").unwrap(),
            claims: IdentityClaims { sub: "alice".into(), name: None, email: None, avatar_url: None, iat: 0, exp: 0, iss: None },
        };
        assert_eq!(upstream_client_id(&principal, "phone"), "prj_a|alice|phone");
        assert_eq!(upstream_client_id(&principal, "a/b+c#d$e%f"), "prj_a|alice|a%2Fb%2Bc%23d%24e%25f");
    }
}
