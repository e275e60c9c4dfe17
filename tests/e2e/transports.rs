//! MQTT over TCP, WebSocket and TLS, with 3.1.1 and MQTT 5 clients.
use std::sync::Arc;

use rumqttc::{MqttOptions, TlsConfiguration, Transport};

use crate::helpers::{granted, payload_json, TestApp, TestClient};

async fn chat_over(app: &TestApp, options: MqttOptions) {
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let topic = app.conversation_topic(&conversation);
    let mut alice = TestClient::connect(options).await.expect("connects");
    assert!(granted(&alice.subscribe(&topic).await));
    app.publisher().publish(topic.clone(), r#"{"type":"message.created","data":{"seq":1}}"#).unwrap();
    assert_eq!(payload_json(&alice.publish_on(&topic).await)["data"]["seq"], 1);
}

/// The same with rumqttc's MQTT 5 client.
async fn chat_over_v5(app: &TestApp, mut options: rumqttc::v5::MqttOptions) {
    use rumqttc::v5::mqttbytes::v5::Packet;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let topic = app.conversation_topic(&conversation);
    options.set_credentials(app.project.public_key.clone(), app.token("alice"));
    let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 10);
    client.subscribe(&topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce).await.unwrap();
    let received = tokio::time::timeout(crate::helpers::PATIENCE, async {
        loop {
            match eventloop.poll().await.expect("MQTT 5 connection") {
                rumqttc::v5::Event::Incoming(Packet::SubAck(_)) => {
                    app.publisher().publish(topic.clone(), r#"{"type":"message.created","data":{"seq":1}}"#).unwrap();
                }
                rumqttc::v5::Event::Incoming(Packet::Publish(publish)) => return publish,
                _ => {}
            }
        }
    })
    .await
    .expect("the event over MQTT 5");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&received.payload).unwrap()["data"]["seq"], 1);
}

#[tokio::test]
async fn rumqttc_over_websocket() {
    let app = TestApp::spawn().await;
    let url = format!("ws://{}/mqtt", app.app_ws);
    let mut options = MqttOptions::new("alice-ws", url, app.app_ws.port());
    options.set_transport(Transport::Ws);
    options.set_credentials(app.project.public_key.clone(), app.token("alice"));
    chat_over(&app, options).await;
}

struct TestCertificate {
    _dir: tempfile::TempDir,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    der: rustls::pki_types::CertificateDer<'static>,
}

fn certificate() -> TestCertificate {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    TestCertificate { der: generated.cert.der().clone(), _dir: dir, cert, key }
}

fn client_tls(der: rustls::pki_types::CertificateDer<'static>) -> TlsConfiguration {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConfiguration::Rustls(Arc::new(config))
}

#[tokio::test]
async fn rumqttc_over_tls_and_secure_websocket() {
    let certificate = certificate();
    let app = TestApp::spawn_with(|settings| {
        settings.tls.cert = Some(certificate.cert.clone());
        settings.tls.key = Some(certificate.key.clone());
    })
    .await;
    let mut options = MqttOptions::new("alice-tls", "localhost", app.app_mqtt.port());
    options.set_transport(Transport::Tls(client_tls(certificate.der.clone())));
    options.set_credentials(app.project.public_key.clone(), app.token("alice"));
    chat_over(&app, options).await;

    let mut options = MqttOptions::new("alice-wss", format!("wss://localhost:{}/mqtt", app.app_ws.port()), app.app_ws.port());
    options.set_transport(Transport::Wss(client_tls(certificate.der.clone())));
    options.set_credentials(app.project.public_key.clone(), app.token("alice"));
    chat_over(&app, options).await;

    // MQTT 5 over TLS and secure WebSocket.
    let mut options = rumqttc::v5::MqttOptions::new("alice-tls-v5", "localhost", app.app_mqtt.port());
    options.set_transport(Transport::Tls(client_tls(certificate.der.clone())));
    chat_over_v5(&app, options).await;
    let mut options =
        rumqttc::v5::MqttOptions::new("alice-wss-v5", format!("wss://localhost:{}/mqtt", app.app_ws.port()), app.app_ws.port());
    options.set_transport(Transport::Wss(client_tls(certificate.der.clone())));
    chat_over_v5(&app, options).await;

    // A plain-text client gets nothing from a TLS listener.
    assert!(TestClient::connect(app.options("alice-plain", &app.token("alice"))).await.is_err());
}
