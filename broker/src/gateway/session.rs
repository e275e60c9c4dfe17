//! One client connection after its CONNECT (`connect`): two directions —
//! client → router (this task: ACL, limits, keep-alive, platform orders) and
//! router → client (a second task, `downstream`: encodes what the router
//! sends, rewrites a few acks, interleaves the gateway's own answers).
//!
//! Each connection is an in-process link into rumqttd's router: a packet is
//! decoded once (with rumqttd's codec for the client's MQTT version),
//! checked, and handed to the router as a value; the router's notifications
//! are encoded straight to the client in its version.
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rumqttd::local::LinkTx;
use rumqttd::protocol::{
    Disconnect, DisconnectReasonCode, Packet, Publish, PublishProperties, QoS, Subscribe, SubscribeProperties,
    SubscribeReasonCode, Unsubscribe,
};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::acks::AckRewrites;
use super::downstream::{locked, Downstream, Local};
use super::aliases::{self, AliasError};
use super::connect::{self, Account, Accepted};
use super::frames::{self, Version};
use super::refusals::{Refusals, Verdict};
use super::transport::{ClientReader, ClientWriter};
use mqchat_access::typing;
use super::wills::Will;
use super::Context;
use crate::acl::{self, Decision};
use crate::identity::now_unix;
use crate::registry::Control;
use crate::persistence::{RetainedMessage, StateChange, StoredSubscription};

/// Packet ids of UNSUBSCRIBEs the gateway makes, counting down from here.
const FIRST_GATEWAY_PKID: u16 = u16::MAX;
/// Packets the gateway itself queues for the client before it waits.
const LOCAL_QUEUE: usize = 64;
/// Time the last packet to an MQTT 5 client (a server DISCONNECT) has to
/// be written before the connection closes anyway.
const LAST_WORD_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a session ended; logged once, and told to an MQTT 5 client with
/// a DISCONNECT reason code where the server ends it (§4.13).
#[derive(Debug, thiserror::Error)]
pub(super) enum End {
    #[error("client closed the connection")]
    ClientClosed,
    #[error("client sent DISCONNECT")]
    ClientDisconnected {
        /// MQTT 5 reason 0x04 "disconnect with will message".
        with_will: bool,
    },
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
    #[error("malformed packet: {0}")]
    Malformed(String),
    #[error("packet larger than the server's maximum")]
    TooLarge,
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("{0}")]
    TopicAlias(AliasError),
    #[error("too many refused packets")]
    TooManyRefusals,
    #[error("i/o error: {0}")]
    Io(std::io::Error),
    #[error("authorizer failed: {0}")]
    Authorizer(String),
}

impl End {
    /// The reason code of the DISCONNECT an MQTT 5 client gets when the
    /// server ends its connection; `None` where nothing can be sent.
    fn disconnect_reason(&self) -> Option<DisconnectReasonCode> {
        Some(match self {
            End::ClientClosed | End::ClientDisconnected { .. } | End::RouterClosed | End::WriterStopped | End::Io(_) => {
                return None
            }
            End::KeepAliveExpired => DisconnectReasonCode::KeepAliveTimeout,
            End::TokenExpired => DisconnectReasonCode::MaximumConnectTime,
            End::Closed(_) => DisconnectReasonCode::AdministrativeAction,
            End::Shutdown => DisconnectReasonCode::ServerShuttingDown,
            End::Malformed(_) => DisconnectReasonCode::MalformedPacket,
            End::TooLarge => DisconnectReasonCode::PacketTooLarge,
            End::Protocol(_) => DisconnectReasonCode::ProtocolError,
            End::TopicAlias(_) => DisconnectReasonCode::TopicAliasInvalid,
            End::TooManyRefusals => DisconnectReasonCode::NotAuthorized,
            End::Authorizer(_) => DisconnectReasonCode::UnspecifiedError,
        })
    }
}

impl From<std::io::Error> for End {
    fn from(error: std::io::Error) -> Self {
        End::Io(error)
    }
}

impl From<rumqttd::protocol::Error> for End {
    fn from(error: rumqttd::protocol::Error) -> Self {
        match error {
            rumqttd::protocol::Error::PayloadSizeLimitExceeded(_) => End::TooLarge,
            error => End::Malformed(error.to_string()),
        }
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
    let accepted = match connect::handshake(&context, &mut reader, &mut writer, &mut buf, origin.as_deref()).await {
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
    let Accepted { account, link_tx, link_rx, will, permit, keep_alive, client, upstream_id, session_expiry, clean_start } = accepted;
    // Chat users are registered (presence, revocations); plain clients are not.
    let (registration, controls, _no_controls) = match &account {
        Account::Chat(principal) => {
            let (registration, controls) = context.registry.register(&principal.project_id, principal.user_id.as_str());
            (Some(registration), controls, None)
        }
        Account::Plain(_) => {
            let (sender, controls) = mpsc::unbounded_channel();
            (None, controls, Some(sender))
        }
    };
    // What a plain client may receive is checked again as it is delivered.
    let reads = match &account {
        Account::Plain(user) if context.plain.checks_reads() => Some((Arc::clone(&context.plain), user.clone())),
        _ => None,
    };
    let rewrites = Arc::new(Mutex::new(AckRewrites::default()));
    let (local_tx, local_rx) = mpsc::channel(LOCAL_QUEUE);
    let (router_acks_tx, router_acks) = mpsc::unbounded_channel();
    let downstream = Downstream::new(client, Arc::clone(&rewrites), router_acks_tx, reads);
    let downstream = tokio::spawn(downstream.run(link_rx, writer, local_rx));
    tracing::debug!(%peer, account = %account, "client connected");

    // A plain client's session that outlives its connection is kept across
    // restarts; one that does not leaves nothing behind.
    let persists = matches!(account, Account::Plain(_)) && session_expiry > 0;
    if let (Account::Plain(_), Some(state)) = (&account, &context.state) {
        let client_id = upstream_id.clone();
        state.record(match persists {
            true => StateChange::SessionStarted {
                client_id,
                expiry: (session_expiry < u32::MAX).then(|| Duration::from_secs(u64::from(session_expiry))),
                clean: clean_start,
            },
            false => StateChange::SessionDropped { client_id },
        });
    }
    let mut session = Session {
        context: &context,
        account,
        link: link_tx,
        version: client.version,
        upstream_id,
        persists,
        pending: Vec::new(),
        will,
        local: local_tx,
        rewrites,
        aliases: aliases::Inbound::default(),
        member_of: HashSet::new(),
        subscriptions: HashMap::new(),
        dropped_qos2: HashSet::new(),
        retained_qos2: HashMap::new(),
        next_gateway_pkid: FIRST_GATEWAY_PKID,
        limiter: NonZeroU32::new(context.settings.max_publish_rate).map(|rate| RateLimiter::direct(Quota::per_second(rate))),
        refusals: Refusals::default(),
    };
    let end = session.relay(&mut reader, buf, controls, router_acks, downstream, keep_alive).await;
    session.close_link(&end).await;
    if session.refusals.unlogged() > 0 {
        tracing::warn!(%peer, user = %session.account, unlogged = session.refusals.unlogged(), "refused packets not logged one by one");
    }
    match &end {
        End::ClientDisconnected { .. } | End::ClientClosed | End::Shutdown => tracing::debug!(%peer, end = ?end.to_string(), "session ended"),
        _ => tracing::info!(%peer, user = %session.account, end = ?end.to_string(), "session ended"),
    }
    drop(registration);
    drop(permit);
}

/// The client → router direction and everything the gateway decides.
struct Session<'c> {
    context: &'c Context,
    account: Account,
    link: LinkTx,
    version: Version,
    /// The client id as the router knows it.
    upstream_id: String,
    /// A plain client's session that outlives the connection: its
    /// subscriptions are recorded (`PlainState`).
    persists: bool,
    /// Packets for the router, handed over together once the current batch
    /// of the client's packets is processed.
    pending: Vec<Packet>,
    will: Option<Will>,
    /// To the task writing to the client.
    local: mpsc::Sender<Local>,
    rewrites: Arc<Mutex<AckRewrites>>,
    /// The client's MQTT 5 topic aliases.
    aliases: aliases::Inbound,
    /// Conversations this connection was found to be a member of.
    member_of: HashSet<String>,
    /// Forwarded filters per conversation, to unsubscribe them on revocation.
    subscriptions: HashMap<String, Vec<String>>,
    /// QoS 2 PUBLISHes the gateway dropped and answered with PUBREC.
    dropped_qos2: HashSet<u16>,
    /// Retained QoS 2 PUBLISHes of a plain client, kept once released.
    retained_qos2: HashMap<u16, RetainedMessage>,
    next_gateway_pkid: u16,
    limiter: Option<DefaultDirectRateLimiter>,
    /// Refused packets: logged, counted, and past a budget the end.
    refusals: Refusals,
}

impl<'c> Session<'c> {
    fn rewrites(&self) -> MutexGuard<'_, AckRewrites> {
        locked(&self.rewrites)
    }

    async fn relay(
        &mut self,
        reader: &mut ClientReader,
        mut buf: BytesMut,
        mut controls: mpsc::UnboundedReceiver<Control>,
        mut router_acks: mpsc::UnboundedReceiver<Packet>,
        mut downstream: tokio::task::JoinHandle<End>,
        keep_alive: Option<Duration>,
    ) -> End {
        let mut last_heard = Instant::now();
        let far_future = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        let keep_alive_check = sleep_until(keep_alive.map_or(far_future, |limit| last_heard + limit));
        tokio::pin!(keep_alive_check);
        // A chat connection ends with its token; a plain one has none.
        let token_lifetime = match &self.account {
            Account::Chat(principal) => Duration::from_secs((principal.claims.exp - now_unix()).max(0) as u64),
            Account::Plain(_) => Duration::from_secs(100 * 365 * 24 * 3600),
        };
        let token_expiry = sleep_until(Instant::now() + token_lifetime);
        tokio::pin!(token_expiry);
        let mut shutdown = self.context.shutdown.clone();

        // Bytes that arrived with the CONNECT.
        let first = self.process(&mut buf).await;
        let end = match first {
            Err(end) => end,
            Ok(()) => loop {
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
                    Some(ack) = router_acks.recv() => {
                        self.pending.push(ack);
                        if let Err(end) = self.flush().await {
                            break end;
                        }
                    }
                    () = &mut keep_alive_check => {
                        let limit = keep_alive.unwrap_or(Duration::MAX);
                        if last_heard.elapsed() >= limit {
                            break End::KeepAliveExpired;
                        }
                        keep_alive_check.as_mut().reset(last_heard + limit);
                    },
                    () = &mut token_expiry => break End::TokenExpired,
                    result = &mut downstream => return result.unwrap_or(End::WriterStopped),
                    () = super::stopped(&mut shutdown) => break End::Shutdown,
                }
            },
        };
        self.last_word(&end, downstream).await;
        end
    }

    /// Tells an MQTT 5 client why the server ends its connection (a
    /// DISCONNECT with a reason code and string), then stops the writer.
    async fn last_word(&self, end: &End, mut downstream: tokio::task::JoinHandle<End>) {
        if let (Version::V5, Some(code)) = (self.version, end.disconnect_reason()) {
            let packet = frames::disconnect_v5(code, &end.to_string());
            let said = tokio::time::timeout(LAST_WORD_TIMEOUT, async {
                if self.local.send(Local::Last(packet)).await.is_ok() {
                    let _ = (&mut downstream).await;
                }
            });
            let _ = said.await;
        }
        downstream.abort();
    }

    /// Client → router: handles every complete packet in `buf`, then hands
    /// what is forwarded to the router in one go.
    async fn process(&mut self, buf: &mut BytesMut) -> Result<(), End> {
        let max = self.context.settings.max_packet_size;
        while let Some(packet) = frames::next_packet(buf, max, self.version)? {
            match packet {
                Packet::Publish(publish, properties) => self.on_publish(publish, properties).await?,
                Packet::Subscribe(subscribe, properties) => self.on_subscribe(subscribe, properties).await?,
                Packet::Unsubscribe(unsubscribe, _) => self.on_unsubscribe(unsubscribe),
                Packet::PubRel(pubrel, _) => {
                    if self.dropped_qos2.remove(&pubrel.pkid) {
                        self.answer(frames::pubcomp(pubrel.pkid, self.version)).await?;
                    } else {
                        // A QoS 2 retained message is the router's once released.
                        if let Some(message) = self.retained_qos2.remove(&pubrel.pkid) {
                            self.keep_retained(message);
                        }
                        self.pending.push(Packet::PubRel(pubrel, None));
                    }
                }
                // Acks reach the router without their MQTT 5 properties
                // (reason strings for the server's log).
                Packet::PubAck(ack, _) => self.pending.push(Packet::PubAck(ack, None)),
                Packet::PubRec(ack, _) => self.pending.push(Packet::PubRec(ack, None)),
                Packet::PubComp(ack, _) => self.pending.push(Packet::PubComp(ack, None)),
                packet @ Packet::PingReq(_) => self.pending.push(packet),
                Packet::Disconnect(disconnect, _) => {
                    self.pending.push(Packet::Disconnect(normal_disconnect(), None));
                    self.flush().await?;
                    let with_will = disconnect.reason_code == DisconnectReasonCode::DisconnectWithWillMessage;
                    return Err(End::ClientDisconnected { with_will });
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

    /// Ends the router's side of the connection. The will is published
    /// unless the client said DISCONNECT (MQTT 5: without asking for it) or
    /// the router ended the connection first: through the link before it
    /// closes, or — with an MQTT 5 will delay — by the gateway after the
    /// delay, unless the same client id connects again first.
    async fn close_link(&mut self, end: &End) {
        let send_will = match end {
            End::RouterClosed => return,
            End::ClientDisconnected { with_will } => *with_will,
            _ => true,
        };
        let will = if send_will { self.will.take() } else { None };
        // A plain client's retained will is kept like its other retained messages.
        let retained = match (&will, &self.account, &self.context.state) {
            (Some(will), Account::Plain(_), Some(state)) if will.retain => Some((Arc::clone(state), will.retained())),
            _ => None,
        };
        let delayed = will.filter(|will| {
            if !will.delay.is_zero() {
                return true;
            }
            let (publish, properties) = will.on_link();
            self.pending.push(Packet::Publish(publish, properties));
            false
        });
        self.pending.push(Packet::Disconnect(normal_disconnect(), None));
        if let Err(error) = self.flush().await {
            tracing::debug!(user = %self.account, %error, "link already closed by the router");
        }
        if self.persists {
            self.record(StateChange::SessionEnded { client_id: self.upstream_id.clone() });
        }
        match delayed {
            Some(will) => self.context.wills.schedule(self.upstream_id.clone(), will, self.context.publisher.clone(), retained),
            None => {
                if let Some((state, message)) = retained {
                    state.record(StateChange::Retained(message));
                }
            }
        }
    }

    fn keep_retained(&self, message: RetainedMessage) {
        self.record(StateChange::Retained(message));
    }

    fn record(&self, change: StateChange) {
        if let Some(state) = &self.context.state {
            state.record(change);
        }
    }

    /// Queues a packet the gateway answers itself.
    async fn answer(&self, packet: BytesMut) -> Result<(), End> {
        self.local.send(Local::Packet(packet)).await.map_err(|_| End::WriterStopped)
    }

    async fn is_member(&mut self, conversation_id: &str) -> Result<bool, End> {
        let Account::Chat(principal) = &self.account else {
            return Ok(false);
        };
        if self.member_of.contains(conversation_id) {
            return Ok(true);
        }
        let member = self
            .context
            .authorizer
            .is_member(principal, conversation_id)
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

    /// The ACL's answer for a PUBLISH: the chat rules (with membership) for
    /// a chat identity, the plain namespace's for a plain client.
    async fn may_publish(&mut self, topic: &str, properties: Option<&PublishProperties>) -> Result<Result<(), &'static str>, End> {
        let (decision, response_topic_allowed) = match &self.account {
            Account::Plain(user) => return Ok(self.context.plain.publish(user, topic)),
            Account::Chat(principal) => {
                // The platform answers a command on its response topic: only
                // the sender's own inbox may be named there.
                let response_topic = properties.and_then(|properties| properties.response_topic.as_deref());
                let allowed = response_topic.is_none_or(|response_topic| {
                    acl::parse_outbox_topic(topic).is_none() || acl::response_topic(principal.subject(), response_topic)
                });
                (acl::publish(principal.subject(), topic), allowed)
            }
        };
        let verdict = self.allowed(decision).await?;
        if verdict.is_ok() && !response_topic_allowed {
            return Ok(Err("a command's response topic must be the sender's own inbox or below it"));
        }
        Ok(verdict)
    }

    /// The ACL's answer for one SUBSCRIBE filter, and the conversation it
    /// reads (to cut it when the membership ends).
    async fn may_subscribe(&mut self, filter: &str) -> Result<(Result<(), &'static str>, Option<String>), End> {
        let decision = match &self.account {
            Account::Plain(user) => return Ok((self.context.plain.subscribe(user, filter), None)),
            Account::Chat(principal) => acl::subscribe(principal.subject(), filter),
        };
        let conversation = match &decision {
            Decision::IfMember(conversation_id) => Some((*conversation_id).to_owned()),
            _ => None,
        };
        Ok((self.allowed(decision).await?, conversation))
    }

    async fn on_publish(&mut self, mut publish: Publish, mut properties: Option<PublishProperties>) -> Result<(), End> {
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
        self.aliases.resolve(&mut publish, &mut properties).map_err(End::TopicAlias)?;
        let topic_bytes = publish.topic.clone();
        let topic = std::str::from_utf8(&topic_bytes).map_err(|_| End::Malformed("PUBLISH topic is not UTF-8".into()))?;
        let verdict = self.may_publish(topic, properties.as_ref()).await?;
        match verdict {
            Ok(()) => {
                let typing = match &self.account {
                    Account::Chat(principal) => typing::conversation_of(topic).map(|conversation_id| (principal, conversation_id)),
                    Account::Plain(_) => None,
                };
                let (publish, properties) = match typing {
                    None => (publish, properties),
                    Some((principal, conversation_id)) => {
                        let payload = typing::stamp(principal, conversation_id, &publish.payload, chrono::Utc::now());
                        // The payload is the gateway's now: what described the client's goes.
                        let properties = properties.map(|properties| PublishProperties {
                            payload_format_indicator: None,
                            content_type: None,
                            ..properties
                        });
                        (Publish { retain: false, payload, ..publish }, properties)
                    }
                };
                if publish.retain && matches!(self.account, Account::Plain(_)) {
                    let message = RetainedMessage {
                        topic: topic.to_owned(),
                        payload: publish.payload.clone(),
                        qos: publish.qos,
                        properties: properties.clone(),
                    };
                    match publish.qos {
                        QoS::ExactlyOnce => {
                            self.retained_qos2.insert(publish.pkid, message);
                        }
                        _ => self.keep_retained(message),
                    }
                }
                self.pending.push(Packet::Publish(publish, properties));
            }
            Err(reason) => {
                // `?`: the topic is the client's, escaped so it cannot forge a log line.
                if self.refused()? {
                    tracing::warn!(user = %self.account, topic = ?topic, reason, "PUBLISH dropped");
                }
                match publish.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => self.answer(frames::puback(publish.pkid, Some(reason), self.version)).await?,
                    QoS::ExactlyOnce => {
                        self.dropped_qos2.insert(publish.pkid);
                        self.answer(frames::pubrec(publish.pkid, Some(reason), self.version)).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn on_subscribe(&mut self, subscribe: Subscribe, properties: Option<SubscribeProperties>) -> Result<(), End> {
        let requested = subscribe.filters.len();
        // MQTT 5 tells a filter it may not have (0x87) from one that is not
        // a filter at all (0x8F); 3.1.1 has one failure code.
        let version = self.version;
        let refused_code = |filter: &str| match version {
            Version::V4 => SubscribeReasonCode::Failure,
            Version::V5 if !rumqttd::protocol::valid_filter(filter) => SubscribeReasonCode::TopicFilterInvalid,
            Version::V5 => SubscribeReasonCode::NotAuthorized,
        };
        let mut codes = Vec::with_capacity(requested);
        let mut forwarded = Vec::with_capacity(requested);
        for filter in subscribe.filters {
            let (verdict, conversation) = self.may_subscribe(&filter.path).await?;
            match verdict {
                Ok(()) => {
                    if let Some(conversation_id) = conversation {
                        self.subscriptions.entry(conversation_id).or_default().push(filter.path.clone());
                    }
                    forwarded.push(filter);
                    codes.push(None);
                }
                Err(reason) => {
                    if self.refused()? {
                        tracing::warn!(user = %self.account, filter = ?filter.path, reason, "SUBSCRIBE refused");
                    }
                    codes.push(Some(refused_code(&filter.path)));
                }
            }
        }
        if forwarded.is_empty() {
            let refusals = codes.into_iter().flatten().collect();
            return self.answer(frames::suback(subscribe.pkid, refusals, self.version)).await;
        }
        if forwarded.len() < requested {
            self.rewrites().expect_partial_suback(subscribe.pkid, codes);
        }
        if self.persists {
            let subscription_id = properties.as_ref().and_then(|properties| properties.id);
            let subscriptions = forwarded
                .iter()
                .map(|filter| StoredSubscription {
                    filter: filter.path.clone(),
                    qos: filter.qos as u8,
                    no_local: filter.nolocal,
                    retain_as_published: filter.preserve_retain,
                    subscription_id,
                })
                .collect();
            self.record(StateChange::Subscribed { client_id: self.upstream_id.clone(), subscriptions });
        }
        self.pending.push(Packet::Subscribe(Subscribe { pkid: subscribe.pkid, filters: forwarded }, properties));
        Ok(())
    }

    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        for filters in self.subscriptions.values_mut() {
            filters.retain(|filter| !unsubscribe.filters.contains(filter));
        }
        self.subscriptions.retain(|_, filters| !filters.is_empty());
        self.rewrites().unsubscribe_sent(unsubscribe.pkid, false);
        if self.persists {
            self.record(StateChange::Unsubscribed { client_id: self.upstream_id.clone(), filters: unsubscribe.filters.clone() });
        }
        self.pending.push(Packet::Unsubscribe(unsubscribe, None));
    }

    /// Counts a refused packet: `Ok(true)` to log it, `Ok(false)` to stay
    /// quiet, and the end of the connection once it refused too many.
    fn refused(&mut self) -> Result<bool, End> {
        match self.refusals.note() {
            Verdict::Log => Ok(true),
            Verdict::Quiet => Ok(false),
            Verdict::Close => Err(End::TooManyRefusals),
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
        tracing::info!(user = %self.account, conversation_id, "membership revoked on a live connection");
        self.flush().await
    }
}

fn normal_disconnect() -> Disconnect {
    Disconnect { reason_code: DisconnectReasonCode::NormalDisconnection }
}
