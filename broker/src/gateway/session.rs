//! One client connection: CONNECT handshake, then two directions —
//! client → rumqttd (this task: ACL, limits, keep-alive, platform orders) and
//! rumqttd → client (a second task: forwards bytes, rewrites a few acks).
//!
//! Packets are framed with rumqttc's codec; only CONNECT, SUBSCRIBE,
//! UNSUBSCRIBE and PUBLISH headers are decoded, and allowed packets are
//! forwarded as the client sent them.
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rumqttc::mqttbytes::v4::{
    Connect, ConnectReturnCode, LastWill, PubRel, Publish, SubAck, Subscribe, SubscribeReasonCode, UnsubAck, Unsubscribe,
};
use rumqttc::mqttbytes::{FixedHeader, PacketType, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::acks::AckRewrites;
use super::frames::{self, next_frame};
use super::transport::{reserve_for_read, ClientReader, ClientWriter};
use super::typing;
use super::Context;
use crate::acl::{self, Decision, Subject};
use crate::authorizer::{AuthError, Principal};
use crate::identity::now_unix;
use crate::registry::Control;

/// Longest client id accepted (it is namespaced upstream).
const MAX_CLIENT_ID_LEN: usize = 128;
/// Keep-alive asked of rumqttd: the gateway enforces the client's own.
const UPSTREAM_KEEP_ALIVE: u16 = u16::MAX;
/// Packet ids of UNSUBSCRIBEs the gateway makes, counting down from here.
const FIRST_GATEWAY_PKID: u16 = u16::MAX;
/// Times a CONNECT closed by rumqttd before its CONNACK is tried again.
const UPSTREAM_RETRIES: u64 = 3;
/// Packets the gateway itself queues for the client before it waits.
const LOCAL_QUEUE: usize = 64;

/// Why a session ended; logged once.
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("client closed the connection")]
    ClientClosed,
    #[error("client sent DISCONNECT")]
    ClientDisconnected,
    #[error("rumqttd closed the connection")]
    UpstreamClosed,
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

impl From<rumqttc::mqttbytes::Error> for End {
    fn from(error: rumqttc::mqttbytes::Error) -> Self {
        End::Protocol(error.to_string())
    }
}

pub(crate) async fn run(context: Arc<Context>, mut reader: ClientReader, mut writer: ClientWriter, peer: SocketAddr) {
    let mut buf = BytesMut::new();
    let accepted = match handshake(&context, &mut reader, &mut writer, &mut buf).await {
        Ok(accepted) => accepted,
        Err(refusal) => {
            if let Some(connack) = refusal.connack {
                let _ = writer.send(&connack).await;
            }
            writer.close().await;
            tracing::info!(%peer, reason = %refusal.reason, "connection refused");
            return;
        }
    };
    let Accepted { principal, upstream, upstream_buf, permit, keep_alive } = accepted;
    let (upstream_read, upstream_write) = upstream.into_split();
    let (registration, controls) = context.registry.register(&principal.project_id, principal.user_id.as_str());
    let rewrites = Arc::new(Mutex::new(AckRewrites::default()));
    let (local_tx, local_rx) = mpsc::channel(LOCAL_QUEUE);
    let downstream = tokio::spawn(downstream(upstream_read, upstream_buf, writer, local_rx, Arc::clone(&rewrites)));
    tracing::debug!(%peer, project = %principal.project_id, user = %principal.user_id, "client connected");

    let mut session = Session::new(&context, principal, upstream_write, local_tx, rewrites);
    let end = session.relay(&mut reader, buf, controls, downstream, keep_alive).await;
    match &end {
        End::ClientDisconnected | End::ClientClosed | End::Shutdown => tracing::debug!(%peer, %end, "session ended"),
        _ => tracing::info!(%peer, user = %session.principal.user_id, %end, "session ended"),
    }
    drop(registration);
    drop(permit);
}

struct Accepted {
    principal: Principal,
    upstream: TcpStream,
    /// Bytes rumqttd sent right after its CONNACK.
    upstream_buf: BytesMut,
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
        Refusal { connack: Some(frames::connack(code)), reason: reason.into() }
    }
}

/// Namespaces the client id so that no user or tenant can take over
/// another's session, escaping what rumqttd refuses in a client id
/// (`+ $ # /`, which it answers by silence).
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

async fn read_first_packet(
    context: &Context,
    reader: &mut ClientReader,
    buf: &mut BytesMut,
) -> Result<(FixedHeader, Bytes), Refusal> {
    let deadline = Instant::now() + context.settings.connect_timeout;
    loop {
        // The first byte already tells a CONNECT (type 1) from garbage.
        if buf.first().is_some_and(|byte| byte >> 4 != 1) {
            return Err(Refusal::close("first packet is not a CONNECT"));
        }
        match next_frame(buf, context.settings.max_packet_size) {
            Ok(Some((header, PacketType::Connect))) => return Ok((header, buf.split_to(header.frame_length()).freeze())),
            Ok(Some((_, other))) => return Err(Refusal::close(format!("first packet was {other:?}, not CONNECT"))),
            Ok(None) => {}
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
) -> Result<Accepted, Refusal> {
    let (header, frame) = read_first_packet(context, reader, buf).await?;
    match frames::connect_protocol_level(&frame) {
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
    let connect = Connect::read(header, frame).map_err(|error| Refusal::close(format!("malformed CONNECT: {error}")))?;
    let Some(login) = connect.login.as_ref() else {
        return Err(Refusal::with(ConnectReturnCode::BadUserNamePassword, "CONNECT without username and password"));
    };
    let principal = context.authorizer.authenticate(&login.username, &login.password).await.map_err(|error| {
        let code = match error {
            AuthError::BadCredentials(_) => ConnectReturnCode::BadUserNamePassword,
            AuthError::NotAuthorized(_) => ConnectReturnCode::NotAuthorized,
            AuthError::Unavailable(_) => ConnectReturnCode::ServiceUnavailable,
        };
        Refusal::with(code, error.to_string())
    })?;
    let subject = Subject { project_id: &principal.project_id, user_id: principal.user_id.as_str() };
    let last_will = match connect.last_will {
        Some(will) if !acl::will(subject, &will.topic) => {
            return Err(Refusal::with(ConnectReturnCode::NotAuthorized, format!("will on foreign topic {:?}", will.topic)))
        }
        Some(will) => will,
        None => LastWill::new(
            acl::status_topic(subject.project_id, subject.user_id),
            &br#"{"status":"offline"}"#[..],
            QoS::AtLeastOnce,
            false,
        ),
    };
    if connect.client_id.len() > MAX_CLIENT_ID_LEN || (connect.client_id.is_empty() && !connect.clean_session) {
        return Err(Refusal::with(ConnectReturnCode::BadClientId, "client id too long or empty without clean session"));
    }
    let client_id = match connect.client_id.as_str() {
        "" => uuid::Uuid::new_v4().simple().to_string(),
        id => id.to_owned(),
    };
    let permit = Arc::clone(&context.slots)
        .try_acquire_owned()
        .map_err(|_| Refusal::with(ConnectReturnCode::ServiceUnavailable, "max_connections reached"))?;

    let upstream_connect = Connect {
        protocol: rumqttc::mqttbytes::Protocol::V4,
        keep_alive: UPSTREAM_KEEP_ALIVE,
        client_id: upstream_client_id(&principal, &client_id),
        clean_session: connect.clean_session,
        last_will: Some(last_will),
        login: None,
    };
    let unavailable = |reason: String| Refusal::with(ConnectReturnCode::ServiceUnavailable, reason);
    let connect_bytes = frames::encode(rumqttc::mqttbytes::v4::Packet::Connect(upstream_connect));
    let (upstream, connack, upstream_buf) = open_upstream(context, &connect_bytes).await.map_err(unavailable)?;
    writer.send(&connack).await.map_err(|error| Refusal::close(format!("client write: {error}")))?;
    // Byte 3 of a CONNACK is its return code.
    if connack.get(3) != Some(&0) {
        return Err(Refusal::close("rumqttd refused the connection"));
    }
    let keep_alive = (connect.keep_alive > 0).then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500));
    Ok(Accepted { principal, upstream, upstream_buf, permit, keep_alive })
}

/// Connects to rumqttd and relays the CONNECT; returns the socket, rumqttd's
/// CONNACK and whatever rumqttd sent after it.
///
/// rumqttd sometimes closes a fresh connection before its CONNACK when the
/// same client id reconnects at once (a late disconnect of the previous link
/// hits the new one, whose connection slot it reuses); that is retried a few
/// times, so clients do not see it.
async fn open_upstream(context: &Context, connect_bytes: &[u8]) -> Result<(TcpStream, BytesMut, BytesMut), String> {
    let mut attempt = 0;
    loop {
        let addr = context.upstream_addr().ok_or("no rumqttd listener")?;
        let mut upstream = TcpStream::connect(addr).await.map_err(|error| format!("rumqttd unreachable: {error}"))?;
        let _ = upstream.set_nodelay(true);
        upstream.write_all(connect_bytes).await.map_err(|error| format!("rumqttd write: {error}"))?;
        let mut leftover = BytesMut::new();
        match read_upstream_connack(&mut upstream, &mut leftover).await {
            Ok(connack) => return Ok((upstream, connack, leftover)),
            Err(UpstreamClosed) if attempt < UPSTREAM_RETRIES => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
            Err(error) => return Err(error.to_string()),
        }
    }
}

/// Reads rumqttd's CONNACK into `buf` and returns it; whatever followed it
/// (a persistent session's queued messages) stays in `buf` for the client.
async fn read_upstream_connack(upstream: &mut TcpStream, buf: &mut BytesMut) -> Result<BytesMut, UpstreamError> {
    let read = async {
        loop {
            if let Some((header, packet_type)) = next_frame(buf, 16).map_err(|e| Failed(e.to_string()))? {
                if packet_type != PacketType::ConnAck {
                    return Err(Failed(format!("rumqttd answered CONNECT with {packet_type:?}")));
                }
                return Ok(buf.split_to(header.frame_length()));
            }
            reserve_for_read(buf, 0);
            if upstream.read_buf(buf).await.map_err(|e| Failed(e.to_string()))? == 0 {
                return Err(UpstreamClosed);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.map_err(|_| Failed("rumqttd did not answer CONNECT".into()))?
}

#[derive(Debug, thiserror::Error)]
enum UpstreamError {
    #[error("rumqttd closed the connection before CONNACK")]
    UpstreamClosed,
    #[error("{0}")]
    Failed(String),
}
use UpstreamError::{Failed, UpstreamClosed};

/// The client → rumqttd direction and everything the gateway decides.
struct Session<'c> {
    context: &'c Context,
    principal: Principal,
    upstream: OwnedWriteHalf,
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
    /// Bytes to write upstream once the current batch is processed.
    out: BytesMut,
}

impl<'c> Session<'c> {
    fn new(
        context: &'c Context,
        principal: Principal,
        upstream: OwnedWriteHalf,
        local: mpsc::Sender<BytesMut>,
        rewrites: Arc<Mutex<AckRewrites>>,
    ) -> Self {
        let limiter = NonZeroU32::new(context.settings.max_publish_rate)
            .map(|rate| RateLimiter::direct(Quota::per_second(rate)));
        Session {
            context,
            principal,
            upstream,
            local,
            rewrites,
            member_of: HashSet::new(),
            subscriptions: HashMap::new(),
            dropped_qos2: HashSet::new(),
            next_gateway_pkid: FIRST_GATEWAY_PKID,
            limiter,
            out: BytesMut::new(),
        }
    }

    fn rewrites(&self) -> std::sync::MutexGuard<'_, AckRewrites> {
        // Only plain inserts and removes happen under this lock.
        self.rewrites.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
                        if let Err(error) = self.revoke(&conversation_id).await {
                            break End::Io(error);
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
                result = &mut downstream => break result.unwrap_or(End::UpstreamClosed),
                () = super::stopped(&mut shutdown) => break End::Shutdown,
            }
        };
        downstream.abort();
        end
    }

    /// Client → rumqttd: handles every complete packet in `buf`, then writes
    /// what is forwarded in one go.
    async fn process(&mut self, buf: &mut BytesMut) -> Result<(), End> {
        let max = self.context.settings.max_packet_size;
        while let Some((header, packet_type)) = next_frame(buf, max)? {
            let frame = buf.split_to(header.frame_length()).freeze();
            match packet_type {
                PacketType::Publish => self.on_publish(header, frame).await?,
                PacketType::Subscribe => self.on_subscribe(header, frame).await?,
                PacketType::Unsubscribe => self.on_unsubscribe(header, frame)?,
                PacketType::PubRel => {
                    let pkid = PubRel::read(header, frame.clone())?.pkid;
                    if self.dropped_qos2.remove(&pkid) {
                        self.answer(frames::pubcomp(pkid)).await?;
                    } else {
                        self.out.extend_from_slice(&frame);
                    }
                }
                PacketType::PubAck | PacketType::PubRec | PacketType::PubComp | PacketType::PingReq => {
                    self.out.extend_from_slice(&frame)
                }
                PacketType::Disconnect => {
                    self.out.extend_from_slice(&frame);
                    self.flush().await?;
                    return Err(End::ClientDisconnected);
                }
                other => return Err(End::Protocol(format!("a client may not send {other:?}"))),
            }
        }
        self.flush().await?;
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.upstream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Queues a packet the gateway answers itself.
    async fn answer(&self, packet: BytesMut) -> Result<(), End> {
        self.local.send(packet).await.map_err(|_| End::UpstreamClosed)
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

    async fn on_publish(&mut self, header: FixedHeader, frame: Bytes) -> Result<(), End> {
        if let Some(limiter) = &self.limiter {
            if limiter.check().is_err() {
                // Over the rate: forward what is pending, then stop reading
                // this client until the quota allows the next message.
                self.flush().await?;
                if let Some(limiter) = &self.limiter {
                    limiter.until_ready().await;
                }
            }
        }
        let publish = Publish::read(header, frame.clone())?;
        let decision = acl::publish(self.subject(), &publish.topic);
        match self.allowed(decision).await? {
            Ok(()) => match typing::conversation_of(&publish.topic) {
                None => self.out.extend_from_slice(&frame),
                Some(conversation_id) => {
                    let payload = typing::stamp(&self.principal, conversation_id, &publish.payload, chrono::Utc::now());
                    let stamped = Publish { retain: false, payload, ..publish };
                    stamped.write(&mut self.out)?;
                }
            },
            Err(reason) => {
                tracing::warn!(user = %self.principal.user_id, topic = %publish.topic, reason, "PUBLISH dropped");
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

    async fn on_subscribe(&mut self, header: FixedHeader, frame: Bytes) -> Result<(), End> {
        let subscribe = Subscribe::read(header, frame.clone())?;
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut forwarded = Vec::with_capacity(subscribe.filters.len());
        for filter in &subscribe.filters {
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
                    forwarded.push(filter.clone());
                    codes.push(None);
                }
                Err(reason) => {
                    tracing::warn!(user = %self.principal.user_id, filter = %filter.path, reason, "SUBSCRIBE refused");
                    codes.push(Some(SubscribeReasonCode::Failure));
                }
            }
        }
        if forwarded.len() == subscribe.filters.len() {
            self.out.extend_from_slice(&frame);
        } else if forwarded.is_empty() {
            let refusals = codes.into_iter().flatten().collect();
            self.answer(frames::suback(subscribe.pkid, refusals)).await?;
        } else {
            self.rewrites().expect_partial_suback(subscribe.pkid, codes);
            let partial = Subscribe { pkid: subscribe.pkid, filters: forwarded };
            partial.write(&mut self.out)?;
        }
        Ok(())
    }

    fn on_unsubscribe(&mut self, header: FixedHeader, frame: Bytes) -> Result<(), End> {
        let unsubscribe = Unsubscribe::read(header, frame.clone())?;
        for filters in self.subscriptions.values_mut() {
            filters.retain(|filter| !unsubscribe.topics.contains(filter));
        }
        self.subscriptions.retain(|_, filters| !filters.is_empty());
        self.rewrites().unsubscribe_sent(unsubscribe.pkid, false);
        self.out.extend_from_slice(&frame);
        Ok(())
    }

    /// Membership revoked: forget it and unsubscribe its filters upstream.
    async fn revoke(&mut self, conversation_id: &str) -> std::io::Result<()> {
        self.member_of.remove(conversation_id);
        let Some(filters) = self.subscriptions.remove(conversation_id) else {
            return Ok(());
        };
        let pkid = self.next_gateway_pkid;
        self.next_gateway_pkid = if pkid <= 1 { FIRST_GATEWAY_PKID } else { pkid - 1 };
        self.rewrites().unsubscribe_sent(pkid, true);
        let unsubscribe = Unsubscribe { pkid, topics: filters };
        unsubscribe.write(&mut self.out).map_err(std::io::Error::other)?;
        tracing::info!(user = %self.principal.user_id, conversation_id, "membership revoked on a live connection");
        self.flush().await
    }
}

/// rumqttd → client: forwards complete packets as they are, except the acks
/// `AckRewrites` knows about, and interleaves the gateway's own answers.
async fn downstream(
    mut upstream: OwnedReadHalf,
    mut buf: BytesMut,
    mut client: ClientWriter,
    mut local: mpsc::Receiver<BytesMut>,
    rewrites: Arc<Mutex<AckRewrites>>,
) -> End {
    if let Err(end) = forward_downstream(&mut buf, &mut client, &rewrites).await {
        return end;
    }
    let mut last_read = 0;
    loop {
        tokio::select! {
            read = async { reserve_for_read(&mut buf, last_read); upstream.read_buf(&mut buf).await } => match read {
                Ok(0) => return End::UpstreamClosed,
                Ok(read) => {
                    last_read = read;
                    if let Err(end) = forward_downstream(&mut buf, &mut client, &rewrites).await {
                        return end;
                    }
                }
                Err(error) => return End::Io(error),
            },
            Some(packet) = local.recv() => {
                if let Err(error) = client.send(&packet).await {
                    return End::Io(error);
                }
            }
        }
    }
}

async fn forward_downstream(buf: &mut BytesMut, client: &mut ClientWriter, rewrites: &Mutex<AckRewrites>) -> Result<(), End> {
    let mut scanned = 0;
    while let Some((header, packet_type)) = next_frame(&buf[scanned..], usize::MAX)? {
        let length = header.frame_length();
        let rewrite = match packet_type {
            PacketType::SubAck | PacketType::UnsubAck => {
                let frame = Bytes::copy_from_slice(&buf[scanned..scanned + length]);
                rewrite_ack(header, packet_type, frame, rewrites)?
            }
            _ => None,
        };
        match rewrite {
            None => scanned += length,
            Some(replacement) => {
                client.send(&buf[..scanned]).await?;
                let _ = buf.split_to(scanned + length);
                scanned = 0;
                if let Some(packet) = replacement {
                    client.send(&packet).await?;
                }
            }
        }
    }
    if scanned > 0 {
        client.send(&buf[..scanned]).await?;
        let _ = buf.split_to(scanned);
    }
    Ok(())
}

/// `None`: forward unchanged; `Some(None)`: swallow; `Some(Some(p))`: send `p` instead.
fn rewrite_ack(
    header: FixedHeader,
    packet_type: PacketType,
    frame: Bytes,
    rewrites: &Mutex<AckRewrites>,
) -> Result<Option<Option<BytesMut>>, End> {
    let mut rewrites = rewrites.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if packet_type == PacketType::UnsubAck {
        let pkid = UnsubAck::read(header, frame)?.pkid;
        return Ok(rewrites.unsuback_is_gateways(pkid).then_some(None));
    }
    let suback = SubAck::read(header, frame)?;
    if !rewrites.has_partial_suback(suback.pkid) {
        return Ok(None);
    }
    Ok(rewrites.merge_suback(suback.pkid, &suback.return_codes).map(|codes| Some(frames::suback(suback.pkid, codes))))
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
