//! MQTT 3.1.1 and 5 framing over rumqttd's own codecs (the ones its
//! listeners use): decode what a client sends, encode what goes back to it,
//! each connection in the version its CONNECT named.
use bytes::BytesMut;
use rumqttd::protocol::v4::{self, V4};
use rumqttd::protocol::v5::V5;
use rumqttd::protocol::{
    ConnAck, ConnAckProperties, ConnectReturnCode, Disconnect, DisconnectProperties, DisconnectReasonCode, Error,
    Packet, Protocol, PubAck, PubAckProperties, PubAckReason, PubComp, PubCompReason, PubRec, PubRecProperties,
    PubRecReason, SubAck, SubscribeReasonCode,
};

/// The MQTT version a connection speaks, fixed by its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V4,
    /// MQTT 5 (protocol level 5).
    V5,
}

/// The next complete packet at the start of `buf`, taken out of it; `None`
/// until one has fully arrived. A packet the version's specification calls
/// malformed is an error even where rumqttd's decoder would let it through
/// (`check_header`, `check_connect_flags`, `check_decoded`): the caller
/// closes the connection.
pub(crate) fn next_packet(buf: &mut BytesMut, max_packet_size: usize, version: Version) -> Result<Option<Packet>, Error> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    check_header(first)?;
    if first >> 4 == CONNECT && has_whole_packet(buf, max_packet_size)? {
        check_connect_flags(buf)?;
    }
    let decoded = match version {
        Version::V4 => V4.read_mut(buf, max_packet_size),
        Version::V5 => V5.read_mut(buf, max_packet_size),
    };
    match decoded {
        Ok(packet) => check_decoded(&packet).map(|()| Some(packet)),
        Err(Error::InsufficientBytes(_)) => Ok(None),
        Err(error) => Err(error),
    }
}

const CONNECT: u8 = 1;

/// A packet type a client may send (CONNACK, SUBACK, UNSUBACK, PINGRESP
/// and AUTH are not), and the fixed header's flags (§2.2.2): 0b0010 on
/// PUBREL, SUBSCRIBE and UNSUBSCRIBE, any DUP/QoS/RETAIN on PUBLISH but
/// QoS 3, zero on the rest.
fn check_header(first: u8) -> Result<(), Error> {
    let (kind, flags) = (first >> 4, first & 0x0f);
    let valid = match kind {
        0 | 2 | 9 | 11 | 13 | 15 => false,
        3 => (flags >> 1) & 0b11 != 0b11,
        6 | 8 | 10 => flags == 0b0010,
        _ => flags == 0,
    };
    if valid {
        Ok(())
    } else {
        Err(Error::IncorrectPacketFormat)
    }
}

/// The reserved bit of CONNECT's flags must be zero (§3.1.2.3).
fn check_connect_flags(frame: &[u8]) -> Result<(), Error> {
    let flags = connect_level_index(frame).and_then(|level| frame.get(level + 1));
    match flags {
        Some(flags) if flags & 0x01 != 0 => Err(Error::IncorrectPacketFormat),
        _ => Ok(()),
    }
}

/// What the decoded packet must not hold: packet identifier 0 where one is
/// required (§2.3.1), a SUBSCRIBE or UNSUBSCRIBE without filters (§3.8.3,
/// §3.10.3), U+0000 in a client id, topic name or filter (§1.5.3), a
/// wildcard in a topic name (§3.3.2.1); in
/// MQTT 5 also a subscription identifier on a client's PUBLISH (§3.3.4)
/// or a subscription identifier 0 (§3.8.2.1.2).
fn check_decoded(packet: &Packet) -> Result<(), Error> {
    let has_nul = |text: &[u8]| text.contains(&0);
    match packet {
        Packet::Connect(connect, _, will, _, _)
            if has_nul(connect.client_id.as_bytes()) || will.as_ref().is_some_and(|will| has_nul(&will.topic)) =>
        {
            return Err(Error::MalformedPacket);
        }
        Packet::Publish(publish, properties) => {
            if publish.qos != rumqttd::protocol::QoS::AtMostOnce && publish.pkid == 0 {
                return Err(Error::PacketIdZero);
            }
            // U+0000, and wildcards: a topic name never holds one (§3.3.2.1).
            if publish.topic.iter().any(|byte| matches!(byte, 0 | b'+' | b'#')) {
                return Err(Error::MalformedPacket);
            }
            if properties.as_ref().is_some_and(|properties| !properties.subscription_identifiers.is_empty()) {
                return Err(Error::MalformedPacket);
            }
        }
        Packet::Subscribe(subscribe, properties) => {
            if properties.as_ref().is_some_and(|properties| properties.id == Some(0)) {
                return Err(Error::MalformedPacket);
            }
            check_filters(subscribe.pkid, subscribe.filters.iter().map(|filter| filter.path.as_str()))?
        }
        Packet::Unsubscribe(unsubscribe, _) => check_filters(unsubscribe.pkid, unsubscribe.filters.iter().map(String::as_str))?,
        Packet::PubAck(PubAck { pkid: 0, .. }, _)
        | Packet::PubRec(PubRec { pkid: 0, .. }, _)
        | Packet::PubComp(PubComp { pkid: 0, .. }, _) => return Err(Error::PacketIdZero),
        Packet::PubRel(pubrel, _) if pubrel.pkid == 0 => return Err(Error::PacketIdZero),
        _ => {}
    }
    Ok(())
}

/// A SUBSCRIBE's or UNSUBSCRIBE's rules: a packet identifier, at least one
/// filter, no U+0000 in any.
fn check_filters<'a>(pkid: u16, mut filters: impl ExactSizeIterator<Item = &'a str>) -> Result<(), Error> {
    if pkid == 0 {
        return Err(Error::PacketIdZero);
    }
    if filters.len() == 0 {
        return Err(Error::EmptySubscription);
    }
    if filters.any(|filter| filter.contains('\0')) {
        return Err(Error::MalformedPacket);
    }
    Ok(())
}

/// Whether `buf` starts with a whole packet (its length within `max_packet_size`).
pub(crate) fn has_whole_packet(buf: &[u8], max_packet_size: usize) -> Result<bool, Error> {
    match v4::check(buf.iter(), max_packet_size) {
        Ok(_) => Ok(true),
        Err(Error::InsufficientBytes(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

/// The protocol level byte of a CONNECT frame (4 for MQTT 3.1.1, 5 for MQTT 5),
/// read before decoding so an MQTT 5 CONNECT is never parsed as 3.1.1.
pub(crate) fn connect_protocol_level(frame: &[u8]) -> Option<u8> {
    frame.get(connect_level_index(frame)?).copied()
}

/// Where a CONNECT frame's protocol level byte is (its flags follow).
fn connect_level_index(frame: &[u8]) -> Option<usize> {
    let mut index = 1;
    while *frame.get(index)? & 0x80 != 0 {
        index += 1;
    }
    let name_len = u16::from_be_bytes([*frame.get(index + 1)?, *frame.get(index + 2)?]) as usize;
    Some(index + 3 + name_len)
}

/// Appends `packet` to `out` in the connection's version. MQTT 5
/// properties have no 3.1.1 encoding and are left out for a 3.1.1 client
/// (rumqttd's own 3.1.1 writer panics on them).
pub(crate) fn encode(packet: Packet, out: &mut BytesMut, version: Version) -> Result<(), Error> {
    if version == Version::V5 {
        return match packet {
            packet @ (Packet::Publish(..)
            | Packet::PubAck(..)
            | Packet::PubRec(..)
            | Packet::PubRel(..)
            | Packet::PubComp(..)
            | Packet::SubAck(..)
            | Packet::UnsubAck(..)
            | Packet::ConnAck(..)
            | Packet::PingResp(_)
            | Packet::Disconnect(..)) => V5.write(packet, out).map(|_| ()),
            other => Err(Error::InvalidPacketType(packet_type_of(&other))),
        };
    }
    let packet = match packet {
        Packet::Publish(publish, _) => Packet::Publish(publish, None),
        Packet::PubAck(ack, _) => Packet::PubAck(ack, None),
        Packet::PubRec(ack, _) => Packet::PubRec(ack, None),
        Packet::PubRel(ack, _) => Packet::PubRel(ack, None),
        Packet::PubComp(ack, _) => Packet::PubComp(ack, None),
        Packet::SubAck(ack, _) => Packet::SubAck(ack, None),
        Packet::UnsubAck(ack, _) => Packet::UnsubAck(ack, None),
        Packet::ConnAck(ack, _) => Packet::ConnAck(ack, None),
        Packet::PingResp(ping) => Packet::PingResp(ping),
        other => return Err(Error::InvalidPacketType(packet_type_of(&other))),
    };
    V4.write(packet, out).map(|_| ())
}

/// The MQTT packet type number, for the error on a packet a server never sends.
fn packet_type_of(packet: &Packet) -> u8 {
    match packet {
        Packet::Connect(..) => 1,
        Packet::Subscribe(..) => 8,
        Packet::Unsubscribe(..) => 10,
        Packet::PingReq(_) => 12,
        Packet::Disconnect(..) => 14,
        _ => 0,
    }
}

fn encoded(packet: Packet, version: Version) -> BytesMut {
    let mut out = BytesMut::new();
    // Only small, well-formed acks are encoded here; they cannot fail.
    let _ = encode(packet, &mut out, version);
    out
}

/// CONNACK of MQTT 3.1.1.
pub(crate) fn connack(code: ConnectReturnCode, session_present: bool) -> BytesMut {
    encoded(Packet::ConnAck(ConnAck { session_present, code }, None), Version::V4)
}

/// CONNACK of MQTT 5: a reason code (`code` must be one MQTT 5 defines)
/// and its properties.
pub(crate) fn connack_v5(code: ConnectReturnCode, session_present: bool, properties: ConnAckProperties) -> BytesMut {
    encoded(Packet::ConnAck(ConnAck { session_present, code }, Some(properties)), Version::V5)
}

/// A server's DISCONNECT (MQTT 5 only) with a reason string.
pub(crate) fn disconnect_v5(reason_code: DisconnectReasonCode, reason: &str) -> BytesMut {
    let properties = DisconnectProperties {
        session_expiry_interval: None,
        reason_string: Some(reason.to_owned()),
        user_properties: Vec::new(),
        server_reference: None,
    };
    encoded(Packet::Disconnect(Disconnect { reason_code }, Some(properties)), Version::V5)
}

pub(crate) fn suback(pkid: u16, return_codes: Vec<SubscribeReasonCode>, version: Version) -> BytesMut {
    encoded(Packet::SubAck(SubAck { pkid, return_codes }, None), version)
}

/// PUBACK of a QoS 1 PUBLISH the gateway answers itself: refused (MQTT 5
/// says so with `reason`; MQTT 3.1.1 has only "received").
pub(crate) fn puback(pkid: u16, refusal: Option<&str>, version: Version) -> BytesMut {
    let (reason, properties) = match refusal {
        None => (PubAckReason::Success, None),
        Some(why) => (PubAckReason::NotAuthorized, Some(PubAckProperties { reason_string: Some(why.to_owned()), user_properties: Vec::new() })),
    };
    encoded(Packet::PubAck(PubAck { pkid, reason }, properties), version)
}

/// PUBREC of a QoS 2 PUBLISH the gateway answers itself, like `puback`.
pub(crate) fn pubrec(pkid: u16, refusal: Option<&str>, version: Version) -> BytesMut {
    let (reason, properties) = match refusal {
        None => (PubRecReason::Success, None),
        Some(why) => (PubRecReason::NotAuthorized, Some(PubRecProperties { reason_string: Some(why.to_owned()), user_properties: Vec::new() })),
    };
    encoded(Packet::PubRec(PubRec { pkid, reason }, properties), version)
}

pub(crate) fn pubcomp(pkid: u16, version: Version) -> BytesMut {
    encoded(Packet::PubComp(PubComp { pkid, reason: PubCompReason::Success }, None), version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttd::protocol::{Publish, PublishProperties, QoS};

    #[test]
    fn reads_protocol_level_of_connect() {
        // CONNECT, remaining length 12, "MQTT", level 5
        let v5 = [0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 0, 0];
        assert_eq!(connect_protocol_level(&v5), Some(5));
        assert_eq!(connect_protocol_level(&v5[..5]), None);
    }

    #[test]
    fn packets_arrive_whole_or_not_at_all() {
        for version in [Version::V4, Version::V5] {
            let mut buf = BytesMut::from(&[0xc0, 0x00, 0x30][..]);
            assert!(matches!(next_packet(&mut buf, 64, version), Ok(Some(Packet::PingReq(_)))));
            assert!(matches!(next_packet(&mut buf, 64, version), Ok(None)), "a PUBLISH cut after its first byte waits");
            assert_eq!(&buf[..], &[0x30]);
            let mut oversize = BytesMut::from(&[0x30, 0x7f][..]);
            assert!(next_packet(&mut oversize, 64, version).is_err());
        }
    }

    /// A CONNECT with client id `id` and `flags` (clean session: 0x02).
    fn connect(flags: u8, id: &[u8]) -> BytesMut {
        let mut frame = vec![0x10, 0];
        frame.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 60]);
        frame.extend_from_slice(&(id.len() as u16).to_be_bytes());
        frame.extend_from_slice(id);
        frame[1] = (frame.len() - 2) as u8;
        BytesMut::from(&frame[..])
    }

    #[test]
    fn malformed_packets_that_the_decoder_accepts_are_refused() {
        assert!(matches!(next_packet(&mut connect(0x02, b"ok"), 256, Version::V4), Ok(Some(Packet::Connect(..)))));
        let malformed: [(&str, BytesMut); 11] = [
            ("reserved CONNECT flag", connect(0x03, b"ok")),
            ("NUL in a client id", connect(0x02, b"a\0b")),
            ("SUBSCRIBE flags 0", BytesMut::from(&[0x80, 6, 0, 1, 0, 1, b'a', 0][..])),
            ("SUBSCRIBE packet id 0", BytesMut::from(&[0x82, 6, 0, 0, 0, 1, b'a', 0][..])),
            ("NUL in a filter", BytesMut::from(&[0x82, 7, 0, 1, 0, 2, b'a', 0, 0][..])),
            ("QoS 1 PUBLISH with packet id 0", BytesMut::from(&[0x32, 6, 0, 1, b'a', 0, 0, b'x'][..])),
            ("PUBLISH QoS 3", BytesMut::from(&[0x36, 6, 0, 1, b'a', 0, 1, b'x'][..])),
            ("NUL in a topic", BytesMut::from(&[0x30, 4, 0, 2, b'a', 0][..])),
            ("wildcard in a topic", BytesMut::from(&[0x30, 4, 0, 2, b'a', b'#'][..])),
            ("PINGREQ with flags", BytesMut::from(&[0xc1, 0][..])),
            ("a CONNACK from a client", BytesMut::from(&[0x20, 2, 0, 0][..])),
        ];
        for (why, mut frame) in malformed {
            assert!(next_packet(&mut frame, 256, Version::V4).is_err(), "{why}");
        }
    }

    #[test]
    fn mqtt5_properties_are_left_out_not_fatal() {
        let mut publish = Publish::new("a/b", "hi", false);
        publish.qos = QoS::AtLeastOnce;
        publish.pkid = 7;
        let properties = PublishProperties { content_type: Some("text/plain".into()), ..Default::default() };
        let mut out = BytesMut::new();
        encode(Packet::Publish(publish.clone(), Some(properties.clone())), &mut out, Version::V4).unwrap();
        assert_eq!(&out[..], &[0x32, 9, 0, 3, b'a', b'/', b'b', 0, 7, b'h', b'i']);
        out.clear();
        encode(Packet::Publish(publish, Some(properties)), &mut out, Version::V5).unwrap();
        assert!(out.windows(10).any(|w| w == b"text/plain"), "an MQTT 5 client gets the content type");
    }

    #[test]
    fn mqtt5_refusals_say_why() {
        assert_eq!(&puback(9, Some("no"), Version::V4)[..], &[0x40, 2, 0, 9]);
        let v5 = puback(9, Some("no"), Version::V5);
        assert_eq!(&v5[..5], &[0x40, 9, 0, 9, 0x87]);
        assert_eq!(&v5[5..], &[5, 0x1f, 0, 2, b'n', b'o']);
        assert_eq!(pubrec(9, Some("no"), Version::V5)[4], 0x87);
    }

    #[test]
    fn mqtt5_publish_with_a_subscription_identifier_is_malformed() {
        // PUBLISH QoS 0 "a", properties: subscription identifier 1
        let mut frame = BytesMut::from(&[0x30, 6, 0, 1, b'a', 2, 0x0b, 1, b'x'][..]);
        frame[1] = (frame.len() - 2) as u8;
        assert!(next_packet(&mut frame, 64, Version::V5).is_err());
    }
}
