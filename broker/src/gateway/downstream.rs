//! Router → client: what rumqttd's router queued for a connection, encoded
//! in the client's MQTT version (with the gateway's topic aliases, its
//! merged SUBACKs, without the UNSUBACKs of its own UNSUBSCRIBEs, without
//! what the client may not receive or cannot take), interleaved with the
//! packets the session answers itself.
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::BytesMut;
use rumqttd::local::LinkRx;
use rumqttd::protocol::{
    DisconnectReasonCode, Packet, PubAck, PubAckReason, PubComp, PubCompReason, PubRec, PubRecReason, QoS, SubAck,
};
use rumqttd::Notification;
use tokio::sync::mpsc;

use super::acks::AckRewrites;
use super::aliases;
use super::connect::ClientOptions;
use super::frames::{self, Version};
use super::session::End;
use super::transport::ClientWriter;
use crate::plain::{PlainRealm, PlainUser};

/// Write buffer a connection always keeps; beyond this it keeps only what
/// its traffic uses.
const KEPT_WRITE_BUFFER: usize = 16 * 1024;

/// What the session hands the task writing to the client.
pub(super) enum Local {
    /// A packet the gateway answers itself.
    Packet(BytesMut),
    /// The last packet of the connection (a server DISCONNECT): written,
    /// then the writer stops.
    Last(BytesMut),
}

/// Router → client: encodes what the router queued for this connection in
/// the client's version, except the acks `AckRewrites` takes, and
/// interleaves the gateway's own answers.
pub(super) struct Downstream {
    client: ClientOptions,
    rewrites: Arc<Mutex<AckRewrites>>,
    aliases: aliases::Outbound,
    /// Acks the gateway gives the router for publishes it did not send
    /// (larger than the client's maximum packet size, MQTT 5 §3.1.2.11.4).
    router_acks: mpsc::UnboundedSender<Packet>,
    /// QoS 2 publishes dropped that way, whose PUBREL the gateway completes.
    dropped_qos2: HashSet<u16>,
    /// A plain client under an ACL file: each delivery is checked for
    /// `read` (a `deny` rule below a granted filter holds) and dropped the
    /// same way when refused.
    reads: Option<(Arc<PlainRealm>, PlainUser)>,
}

impl Downstream {
    pub(super) fn new(
        client: ClientOptions,
        rewrites: Arc<Mutex<AckRewrites>>,
        router_acks: mpsc::UnboundedSender<Packet>,
        reads: Option<(Arc<PlainRealm>, PlainUser)>,
    ) -> Self {
        let aliases = aliases::Outbound::new(client.topic_alias_max);
        Downstream { client, rewrites, aliases, router_acks, dropped_qos2: HashSet::new(), reads }
    }

    pub(super) async fn run(mut self, mut link: LinkRx, mut client: ClientWriter, mut local: mpsc::Receiver<Local>) -> End {
        let mut notifications = VecDeque::new();
        let mut out = BytesMut::new();
        loop {
            tokio::select! {
                exchanged = link.exchange(&mut notifications) => {
                    if exchanged.is_err() {
                        // The router let go of the link without a word: a new
                        // connection with this client id took the session.
                        return self.router_ended(&mut client, DisconnectReasonCode::SessionTakenOver).await;
                    }
                    let mut paused = false;
                    let mut closed = None;
                    for notification in notifications.drain(..) {
                        match notification {
                            // The router stopped sending until this batch is written.
                            Notification::Unschedule => paused = true,
                            // MQTT 3.1.1 has no server DISCONNECT: the connection just ends.
                            Notification::Disconnect(disconnect, _) => closed = Some(disconnect.reason_code),
                            notification => {
                                let Some(packet) = Option::<Packet>::from(notification).and_then(|p| rewrite_ack(p, &self.rewrites)) else {
                                    continue;
                                };
                                if let Err(error) = self.encode(packet, &mut out) {
                                    return End::Malformed(format!("cannot encode for the client: {error}"));
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
                    if let Some(reason) = closed {
                        return self.router_ended(&mut client, reason).await;
                    }
                    if paused && link.wake().await.is_err() {
                        return End::RouterClosed;
                    }
                }
                Some(local) = local.recv() => match local {
                    Local::Packet(packet) => {
                        if let Err(error) = client.send(&packet).await {
                            return End::Io(error);
                        }
                    }
                    Local::Last(packet) => {
                        let _ = client.send(&packet).await;
                        client.close().await;
                        return End::WriterStopped;
                    }
                },
            }
        }
    }

    /// The router ended the connection: an MQTT 5 client is told why.
    async fn router_ended(&self, client: &mut ClientWriter, reason: DisconnectReasonCode) -> End {
        if self.client.version == Version::V5 {
            let why = match reason {
                DisconnectReasonCode::SessionTakenOver => "another connection took over this client id",
                _ => "the router ended the connection",
            };
            let _ = client.send(&frames::disconnect_v5(reason, why)).await;
        }
        End::RouterClosed
    }

    /// Appends `packet` for the client; MQTT 5 publishes get the gateway's
    /// topic aliases, and a publish larger than the client's maximum packet
    /// size is not sent but acknowledged to the router as if it had been.
    fn encode(&mut self, packet: Packet, out: &mut BytesMut) -> Result<(), rumqttd::protocol::Error> {
        let version = self.client.version;
        let mut new_alias = None;
        let packet = match packet {
            Packet::PubRel(pubrel, _) if self.dropped_qos2.remove(&pubrel.pkid) => {
                let _ = self.router_acks.send(Packet::PubComp(PubComp { pkid: pubrel.pkid, reason: PubCompReason::Success }, None));
                return Ok(());
            }
            Packet::Publish(publish, _) if !self.may_read(&publish.topic) => {
                self.skip(publish.pkid, publish.qos);
                return Ok(());
            }
            Packet::Publish(mut publish, mut properties) if version == Version::V5 => {
                new_alias = self.aliases.apply(&mut publish, &mut properties);
                Packet::Publish(publish, properties)
            }
            packet => packet,
        };
        let (pkid, qos) = match &packet {
            Packet::Publish(publish, _) => (publish.pkid, Some(publish.qos)),
            _ => (0, None),
        };
        let start = out.len();
        frames::encode(packet, out, version)?;
        let Some(max) = self.client.max_packet_size else {
            return Ok(());
        };
        if out.len() - start <= max {
            return Ok(());
        }
        out.truncate(start);
        if let Some(topic) = new_alias {
            self.aliases.unset(&topic);
        }
        if let Some(qos) = qos {
            self.skip(pkid, qos);
        }
        Ok(())
    }

    fn may_read(&self, topic: &[u8]) -> bool {
        match &self.reads {
            None => true,
            Some((realm, user)) => std::str::from_utf8(topic).is_ok_and(|topic| realm.read(user, topic)),
        }
    }

    /// A publish the client does not get: acknowledged to the router as if
    /// it had been delivered, so its flow completes.
    fn skip(&mut self, pkid: u16, qos: QoS) {
        let ack = match qos {
            QoS::AtLeastOnce => Packet::PubAck(PubAck { pkid, reason: PubAckReason::Success }, None),
            QoS::ExactlyOnce => {
                self.dropped_qos2.insert(pkid);
                Packet::PubRec(PubRec { pkid, reason: PubRecReason::Success }, None)
            }
            QoS::AtMostOnce => return,
        };
        let _ = self.router_acks.send(ack);
    }
}

/// The connection's ack rewrites, shared by its two directions. Only plain
/// inserts and removes happen under this lock, so a poisoned one is whole.
pub(super) fn locked(rewrites: &Mutex<AckRewrites>) -> MutexGuard<'_, AckRewrites> {
    rewrites.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The packet to send instead of `packet`: itself, a SUBACK merged with the
/// gateway's refusals, or nothing (the UNSUBACK of the gateway's own UNSUBSCRIBE).
fn rewrite_ack(packet: Packet, rewrites: &Mutex<AckRewrites>) -> Option<Packet> {
    match packet {
        Packet::UnsubAck(ack, _) if locked(rewrites).unsuback_is_gateways(ack.pkid) => None,
        Packet::SubAck(ack, properties) => match locked(rewrites).merge_suback(ack.pkid, &ack.return_codes) {
            Some(return_codes) => Some(Packet::SubAck(SubAck { pkid: ack.pkid, return_codes }, properties)),
            None => Some(Packet::SubAck(ack, properties)),
        },
        packet => Some(packet),
    }
}
