//! MQTT 3.1.1 framing over rumqttd's own codec (the one its listeners use):
//! decode what a client sends, encode what goes back to it.
use bytes::{BufMut, BytesMut};
use rumqttd::protocol::v4::{self, V4};
use rumqttd::protocol::{
    ConnAck, ConnectReturnCode, Error, Packet, Protocol, PubAck, PubAckReason, PubComp, PubCompReason, PubRec,
    PubRecReason, SubAck, SubscribeReasonCode,
};

/// The next complete packet at the start of `buf`, taken out of it; `None`
/// until one has fully arrived.
pub(crate) fn next_packet(buf: &mut BytesMut, max_packet_size: usize) -> Result<Option<Packet>, Error> {
    match V4.read_mut(buf, max_packet_size) {
        Ok(packet) => Ok(Some(packet)),
        Err(Error::InsufficientBytes(_)) => Ok(None),
        Err(error) => Err(error),
    }
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
    let mut index = 1;
    while *frame.get(index)? & 0x80 != 0 {
        index += 1;
    }
    let name_len = u16::from_be_bytes([*frame.get(index + 1)?, *frame.get(index + 2)?]) as usize;
    frame.get(index + 3 + name_len).copied()
}

/// Appends `packet` to `out` as MQTT 3.1.1. MQTT 5 properties have no 3.1.1
/// encoding and are left out (rumqttd's own 3.1.1 writer panics on them).
pub(crate) fn encode(packet: Packet, out: &mut BytesMut) -> Result<(), Error> {
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

fn encoded(packet: Packet) -> BytesMut {
    let mut out = BytesMut::new();
    // Only small, well-formed acks are encoded here; they cannot fail.
    let _ = encode(packet, &mut out);
    out
}

pub(crate) fn connack(code: ConnectReturnCode, session_present: bool) -> BytesMut {
    encoded(Packet::ConnAck(ConnAck { session_present, code }, None))
}

/// CONNACK as an MQTT 5 client expects it: reason 0x84 "unsupported protocol
/// version", no properties.
pub(crate) fn connack_v5_unsupported() -> BytesMut {
    let mut out = BytesMut::with_capacity(5);
    out.put_slice(&[0x20, 0x03, 0x00, 0x84, 0x00]);
    out
}

pub(crate) fn suback(pkid: u16, return_codes: Vec<SubscribeReasonCode>) -> BytesMut {
    encoded(Packet::SubAck(SubAck { pkid, return_codes }, None))
}

pub(crate) fn puback(pkid: u16) -> BytesMut {
    encoded(Packet::PubAck(PubAck { pkid, reason: PubAckReason::Success }, None))
}

pub(crate) fn pubrec(pkid: u16) -> BytesMut {
    encoded(Packet::PubRec(PubRec { pkid, reason: PubRecReason::Success }, None))
}

pub(crate) fn pubcomp(pkid: u16) -> BytesMut {
    encoded(Packet::PubComp(PubComp { pkid, reason: PubCompReason::Success }, None))
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
        let mut buf = BytesMut::from(&[0xc0, 0x00, 0x30][..]);
        assert!(matches!(next_packet(&mut buf, 64), Ok(Some(Packet::PingReq(_)))));
        assert!(matches!(next_packet(&mut buf, 64), Ok(None)), "a PUBLISH cut after its first byte waits");
        assert_eq!(&buf[..], &[0x30]);
        let mut oversize = BytesMut::from(&[0x30, 0x7f][..]);
        assert!(next_packet(&mut oversize, 64).is_err());
    }

    #[test]
    fn mqtt5_properties_are_left_out_not_fatal() {
        let mut publish = Publish::new("a/b", "hi", false);
        publish.qos = QoS::AtLeastOnce;
        publish.pkid = 7;
        let properties = PublishProperties { content_type: Some("text/plain".into()), ..Default::default() };
        let mut out = BytesMut::new();
        encode(Packet::Publish(publish, Some(properties)), &mut out).unwrap();
        assert_eq!(&out[..], &[0x32, 9, 0, 3, b'a', b'/', b'b', 0, 7, b'h', b'i']);
    }
}
