//! Bad bytes on the wire: the offending connection is closed, others keep working.
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{granted, TestApp, PATIENCE};

/// Reads until the server closes; returns everything it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await.expect("server closes in time") {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A 3.1.1 CONNECT with the given credentials and keep-alive.
pub(crate) fn connect_packet(client_id: &str, username: &str, password: &str, keep_alive: u16) -> Vec<u8> {
    let mut connect = rumqttc::mqttbytes::v4::Connect::new(client_id);
    connect.keep_alive = keep_alive;
    connect.set_login(username, password);
    let mut out = bytes::BytesMut::new();
    connect.write(&mut out).unwrap();
    out.to_vec()
}

async fn assert_still_serving(app: &TestApp) {
    let mut client = app.client("alice").await;
    assert!(granted(&client.subscribe(&format!("chat/{}/user/alice/inbox", app.project_id())).await));
}

#[tokio::test]
async fn garbage_truncated_and_oversize_packets_close_only_their_connection() {
    let app = TestApp::spawn_with(|settings| settings.gateway.max_packet_size = 1024).await;
    let mut bystander = app.client("bob").await;
    let inbox = format!("chat/{}/user/bob/inbox", app.project_id());
    assert!(granted(&bystander.subscribe(&inbox).await));

    let token = app.token("alice");
    let connect = connect_packet("alice", &app.project.public_key, &token, 30);
    let publish_header_claiming_1mib = [0x30, 0x80, 0x80, 0x40];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("invalid packet type 0", vec![0x00, 0x00]),
        ("malformed remaining length", vec![0x10, 0xff, 0xff, 0xff, 0xff, 0x01]),
        ("truncated CONNECT then close", connect[..connect.len() / 2].to_vec()),
        ("oversize packet after CONNECT", [connect.clone(), publish_header_claiming_1mib.to_vec()].concat()),
        ("PUBLISH before CONNECT", vec![0x30, 0x05, 0x00, 0x01, b'a', b'x', b'y']),
        ("second CONNECT", [connect.clone(), connect.clone()].concat()),
    ];
    for (why, bytes) in cases {
        let mut stream = TcpStream::connect(app.app_mqtt).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        if why.starts_with("truncated") {
            stream.shutdown().await.unwrap();
        }
        let answer = read_until_closed(&mut stream).await;
        // Only a CONNACK (accepted CONNECT) may come back before the close.
        assert!(answer.is_empty() || answer.starts_with(&[0x20, 0x02]), "{why}: {answer:?}");
    }
    app.publisher().publish(inbox.clone(), "still here").unwrap();
    assert_eq!(&bystander.publish_on(&inbox).await.payload[..], b"still here");
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_connect_that_never_comes_is_timed_out() {
    let app = TestApp::spawn_with(|settings| settings.gateway.connect_timeout = Duration::from_millis(300)).await;
    let mut silent = TcpStream::connect(app.app_mqtt).await.unwrap();
    assert!(read_until_closed(&mut silent).await.is_empty());
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_silent_client_is_cut_after_one_and_a_half_keep_alives_and_its_will_published() {
    let app = TestApp::spawn().await;
    let mut observer = app.observer().await;
    let mut stream = TcpStream::connect(app.app_mqtt).await.unwrap();
    stream.write_all(&connect_packet("alice-silent", &app.project.public_key, &app.token("alice"), 1)).await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert_eq!(answer, vec![0x20, 0x02, 0x00, 0x00], "CONNACK then close");
    let will = observer.publish_on(&format!("chat/{}/user/alice/status", app.project_id())).await;
    assert_eq!(&will.payload[..], br#"{"status":"offline"}"#);
}

#[tokio::test]
async fn mqtt31_gets_the_311_refusal_code_1() {
    let app = TestApp::spawn().await;
    // MQTT 3.1 ("MQIsdp", level 3) gets the 3.1.1 refusal code 1.
    let mut stream = TcpStream::connect(app.app_mqtt).await.unwrap();
    let mqtt31 = [0x10, 0x0e, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x3c, 0x00, 0x00];
    stream.write_all(&mqtt31).await.unwrap();
    assert_eq!(read_until_closed(&mut stream).await, vec![0x20, 0x02, 0x00, 0x01]);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn max_connections_answers_connack_3() {
    let app = TestApp::spawn_with(|settings| settings.gateway.max_connections = 2).await;
    let _first = app.client("alice").await;
    let _second = app.client("bob").await;
    let error = crate::helpers::TestClient::connect(app.options("carol", &app.token("carol"))).await.err().expect("refused");
    assert!(
        matches!(error, rumqttc::ConnectionError::ConnectionRefused(rumqttc::ConnectReturnCode::ServiceUnavailable)),
        "{error:?}"
    );
}

/// Deterministic pseudo-random bytes (xorshift), so a failure replays.
fn noise(seed: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn random_packets_after_connect_never_take_the_server_down() {
    let app = TestApp::spawn().await;
    let connect = connect_packet("fuzz", &app.project.public_key, &app.token("alice"), 30);
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for round in 0..200 {
        let mut stream = TcpStream::connect(app.app_mqtt).await.unwrap();
        let body_len = (noise(&mut seed, 1)[0] % 40) as usize;
        // A plausible fixed header (any packet type, any flags) over a random body.
        let first = noise(&mut seed, 1)[0];
        let mut packet = vec![first, body_len as u8];
        packet.extend(noise(&mut seed, body_len));
        stream.write_all(&[connect.clone(), packet].concat()).await.unwrap();
        let _ = stream.shutdown().await;
        let answer = read_until_closed(&mut stream).await;
        assert!(answer.starts_with(&[0x20, 0x02, 0x00, 0x00]), "round {round}: {answer:?}");
    }
    assert_still_serving(&app).await;
}

/// A SUBSCRIBE of one filter with the given fixed-header byte and packet id.
fn subscribe_packet(first: u8, pkid: u16, filter: &str) -> Vec<u8> {
    let mut packet = vec![first, (2 + 2 + filter.len() + 1) as u8];
    packet.extend_from_slice(&pkid.to_be_bytes());
    packet.extend_from_slice(&(filter.len() as u16).to_be_bytes());
    packet.extend_from_slice(filter.as_bytes());
    packet.push(1);
    packet
}

/// What MQTT 3.1.1 calls malformed closes the connection, even where a
/// lenient decoder could make sense of it — and nothing else is answered.
#[tokio::test]
async fn packets_the_specification_calls_malformed_close_the_connection() {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let connect = connect_packet("alice", &app.project.public_key, &token, 30);
    let inbox = format!("chat/{}/user/alice/inbox", app.project_id());
    let mut reserved_flag = connect.clone();
    // Type byte, remaining length (one byte per 7 bits), protocol name (6),
    // level (1): the flags follow.
    let length_bytes = connect[1..].iter().position(|byte| byte & 0x80 == 0).unwrap() + 1;
    reserved_flag[1 + length_bytes + 7] |= 0x01;
    let nul_client_id = connect_packet("ali\0ce", &app.project.public_key, &token, 30);
    let before_connect: [(&str, Vec<u8>); 2] = [("reserved CONNECT flag", reserved_flag), ("NUL in the client id", nul_client_id)];
    for (why, bytes) in before_connect {
        let mut stream = TcpStream::connect(app.app_mqtt).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        assert_eq!(read_until_closed(&mut stream).await, Vec::<u8>::new(), "{why}");
    }
    let after_connect: [(&str, Vec<u8>); 4] = [
        ("SUBSCRIBE with flags 0", subscribe_packet(0x80, 1, &inbox)),
        ("SUBSCRIBE with packet id 0", subscribe_packet(0x82, 0, &inbox)),
        ("NUL in a filter", subscribe_packet(0x82, 1, &format!("{inbox}\0"))),
        ("QoS 1 PUBLISH with packet id 0", [&[0x32, 5, 0, 1, b'a', 0, 0][..]].concat()),
    ];
    for (why, bytes) in after_connect {
        let mut stream = TcpStream::connect(app.app_mqtt).await.unwrap();
        stream.write_all(&[connect.clone(), bytes].concat()).await.unwrap();
        assert_eq!(read_until_closed(&mut stream).await, vec![0x20, 0x02, 0x00, 0x00], "{why}: CONNACK, then only the close");
    }
    assert_still_serving(&app).await;
}
