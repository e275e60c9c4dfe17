//! Identity tokens over MQTT CONNECT and `sdk/init`.
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use mqchat_broker::identity::now_unix;
use rumqttc::{ConnectReturnCode, ConnectionError};
use serde_json::{json, Value};

use crate::helpers::{granted, TestApp, TestClient};

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

fn sign(secret: &str, algorithm: Algorithm, claims: &Value) -> String {
    encode(&Header::new(algorithm), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

/// Tokens that must all be refused, with why.
pub fn bad_tokens(app: &TestApp) -> Vec<(&'static str, String)> {
    let secret = &app.project.secret_key;
    let now = now_unix();
    let good = json!({"sub": "alice", "iat": now, "exp": now + 600});
    let payload = b64(&good);
    vec![
        ("forged signature", sign("not-the-secret", Algorithm::HS256, &good)),
        ("alg none", format!("{}.{payload}.", b64(&json!({"alg": "none", "typ": "JWT"})))),
        ("HS512", sign(secret, Algorithm::HS512, &good)),
        ("RS256 header", format!("{}.{payload}.c2lnbmF0dXJl", b64(&json!({"alg": "RS256", "typ": "JWT"})))),
        ("expired", sign(secret, Algorithm::HS256, &json!({"sub": "alice", "iat": now - 7200, "exp": now - 3600}))),
        ("lifetime over 24h", sign(secret, Algorithm::HS256, &json!({"sub": "alice", "iat": now, "exp": now + 25 * 3600}))),
        ("missing sub", sign(secret, Algorithm::HS256, &json!({"iat": now, "exp": now + 600}))),
        ("missing exp", sign(secret, Algorithm::HS256, &json!({"sub": "alice", "iat": now}))),
        ("bad sub characters", sign(secret, Algorithm::HS256, &json!({"sub": "alice/#", "iat": now, "exp": now + 600}))),
        ("iat in the future", sign(secret, Algorithm::HS256, &json!({"sub": "alice", "iat": now + 3600, "exp": now + 7200}))),
        ("garbage", "not.a.jwt".into()),
        ("oversize", "a".repeat(20_000)),
    ]
}

#[tokio::test]
async fn bad_tokens_get_connack_4_and_the_server_keeps_serving() {
    let app = TestApp::spawn().await;
    for (why, token) in bad_tokens(&app) {
        let error = TestClient::connect(app.options("alice", &token)).await.err().unwrap_or_else(|| panic!("{why} accepted"));
        assert!(
            matches!(error, ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword)),
            "{why}: {error:?}"
        );
    }
    let mut options = app.options("alice", &app.token("alice"));
    options.set_credentials("pk_unknown", app.token("alice"));
    let error = TestClient::connect(options).await.err().expect("unknown public key refused");
    assert!(matches!(error, ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword)));
    // Still serving.
    let mut alice = app.client("alice").await;
    assert!(granted(&alice.subscribe(&format!("chat/{}/user/alice/inbox", app.project_id())).await));
}

#[tokio::test]
async fn sdk_init_exchanges_an_identity_token_for_a_working_session_token() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(app.url("/api/v1/sdk/init"))
        .header("X-Public-Key", &app.project.public_key)
        .bearer_auth(app.token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], true);
    let data = &body["data"];
    assert_eq!(data["user_id"], "alice");
    assert_eq!(data["project_name"], "Test project");
    assert!(data["widget_config"].is_object());
    assert_eq!(data["mqtt"]["username"], app.project.public_key.as_str());
    let inbox = format!("chat/{}/user/alice/inbox", app.project_id());
    assert_eq!(data["mqtt"]["topics"]["inbox"], inbox.as_str());
    assert_eq!(data["mqtt"]["url"], format!("mqtt://{}", app.app_mqtt));

    let session_token = data["session_token"].as_str().unwrap();
    let mut client = TestClient::connect(app.options("alice-session", session_token)).await.unwrap();
    assert!(granted(&client.subscribe(&inbox).await));
}

#[tokio::test]
async fn sdk_init_refuses_bad_tokens_with_401() {
    let app = TestApp::spawn().await;
    for (why, token) in bad_tokens(&app) {
        let (status, body) = app.sdk_init(&token).await;
        assert_eq!(status, 401, "{why}");
        assert!(body["error"]["code"].is_string(), "{why}: {body}");
    }
    let response = app.http.post(app.url("/api/v1/sdk/init")).bearer_auth(app.token("alice")).send().await.unwrap();
    assert_eq!(response.status(), 401, "missing X-Public-Key");
    let response = app
        .http
        .post(app.url("/api/v1/sdk/init"))
        .header("X-Public-Key", "pk_nope")
        .bearer_auth(app.token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "wrong public key");
}

#[tokio::test]
async fn a_connection_is_closed_when_its_token_expires() {
    let app = TestApp::spawn().await;
    let now = now_unix();
    let token = sign(&app.project.secret_key, Algorithm::HS256, &json!({"sub": "alice", "iat": now, "exp": now + 2}));
    let client = TestClient::connect(app.options("alice-short", &token)).await.unwrap();
    let _ = client.closed().await;
}
