//! Framing helpers over rumqttc's MQTT 3.1.1 codec: find packet boundaries
//! and encode the few packets the gateway writes itself.
use bytes::{BufMut, BytesMut};
use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, SubAck, SubscribeReasonCode};
use rumqttc::mqttbytes::{check, Error, FixedHeader, PacketType};

/// The next complete packet at the start of `buf`, if there is one.
pub(crate) fn next_frame(buf: &[u8], max_packet_size: usize) -> Result<Option<(FixedHeader, PacketType)>, Error> {
    match check(buf.iter(), max_packet_size) {
        Ok(header) => Ok(Some((header, header.packet_type()?))),
        Err(Error::InsufficientBytes(_)) => Ok(None),
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

pub(crate) fn encode(packet: Packet) -> BytesMut {
    let mut out = BytesMut::with_capacity(packet.size() + 8);
    // Only small, well-formed acks are encoded here; the limit cannot be hit.
    let _ = packet.write(&mut out, usize::MAX);
    out
}

pub(crate) fn connack(code: ConnectReturnCode) -> BytesMut {
    encode(Packet::ConnAck(ConnAck::new(code, false)))
}

/// CONNACK as an MQTT 5 client expects it: reason 0x84 "unsupported protocol
/// version", no properties.
pub(crate) fn connack_v5_unsupported() -> BytesMut {
    let mut out = BytesMut::with_capacity(5);
    out.put_slice(&[0x20, 0x03, 0x00, 0x84, 0x00]);
    out
}

pub(crate) fn suback(pkid: u16, codes: Vec<SubscribeReasonCode>) -> BytesMut {
    encode(Packet::SubAck(SubAck::new(pkid, codes)))
}

pub(crate) fn puback(pkid: u16) -> BytesMut {
    encode(Packet::PubAck(PubAck::new(pkid)))
}

pub(crate) fn pubrec(pkid: u16) -> BytesMut {
    encode(Packet::PubRec(PubRec::new(pkid)))
}

pub(crate) fn pubcomp(pkid: u16) -> BytesMut {
    encode(Packet::PubComp(PubComp::new(pkid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_protocol_level_of_connect() {
        // CONNECT, remaining length 12, "MQTT", level 5
        let v5 = [0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 0, 0];
        assert_eq!(connect_protocol_level(&v5), Some(5));
        assert_eq!(connect_protocol_level(&v5[..5]), None);
    }
}
