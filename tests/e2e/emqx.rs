//! EMQX's HTTP authentication and authorization, by contract: requests
//! shaped as the sample configuration (`mosquitto-compat/emqx/`) makes EMQX
//! 5.8 send them, answers in the format EMQX documents.
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::mosquitto::PLATFORM_SECRET;

async fn app() -> TestApp {
    TestApp::spawn_with(|settings| settings.broker.platform_secret = Some(PLATFORM_SECRET.into())).await
}

/// POSTs `body` to an internal route with the platform secret (or `secret`).
async fn call(app: &TestApp, path: &str, secret: &str, body: Value) -> (u16, Value) {
    let response = app.http.request(Method::POST, app.url(path)).bearer_auth(secret).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn authn(app: &TestApp, username: &str, password: &str) -> Value {
    // EMQX's body template: {"clientid": "${clientid}", "username": "${username}", "password": "${password}"}
    let body = json!({"clientid": "c-1", "username": username, "password": password});
    let (status, answer) = call(app, "/internal/v1/emqx/authn", PLATFORM_SECRET, body).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn authz(app: &TestApp, attrs: (&str, &str), action: &str, topic: &str) -> String {
    // {"username": "${username}", "topic": "${topic}", "action": "${action}",
    //  "mqchat_project": "${client_attrs.mqchat_project}", "mqchat_user": "${client_attrs.mqchat_user}"}
    let body = json!({"username": "pk", "topic": topic, "action": action, "mqchat_project": attrs.0, "mqchat_user": attrs.1});
    let (status, answer) = call(app, "/internal/v1/emqx/authz", PLATFORM_SECRET, body).await;
    assert_eq!(status, 200, "{answer}");
    answer["result"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn authentication_answers_with_the_clients_acl_and_expiry() {
    let app = app().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let p = app.project_id().to_owned();
    let answer = authn(&app, &app.project.public_key, &app.token("alice")).await;
    assert_eq!((answer["result"].as_str(), answer["is_superuser"].as_bool()), (Some("allow"), Some(false)), "{answer}");
    assert!(answer["expire_at"].as_i64().unwrap() > mqchat_broker::identity::now_unix());
    assert_eq!(answer["client_attrs"], json!({"mqchat_project": p, "mqchat_user": "alice"}));
    let rules: Vec<(String, String, String)> = answer["acl"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| (rule["permission"].as_str().unwrap().into(), rule["action"].as_str().unwrap().into(), rule["topic"].as_str().unwrap().into()))
        .collect();
    let allow = |action: &str, topic: String| ("allow".to_owned(), action.to_owned(), topic);
    for expected in [
        allow("subscribe", format!("chat/{p}/user/alice/inbox")),
        allow("subscribe", format!("chat/{p}/user/alice/inbox/+")),
        allow("subscribe", format!("chat/{p}/presence/#")),
        allow("publish", format!("chat/{p}/user/alice/outbox")),
        allow("publish", format!("chat/{p}/user/alice/status")),
        allow("subscribe", format!("chat/{p}/conv/{conversation}/#")),
        allow("publish", format!("chat/{p}/conv/{conversation}/typing")),
    ] {
        assert!(rules.contains(&expected), "{expected:?} in {rules:?}");
    }
    assert_eq!(rules.len(), 7, "nothing else: {rules:?}");

    // Bad tokens are denied; a username that is no public key is left to
    // EMQX's next authenticator; mqchat's own login is the superuser.
    for (why, token) in crate::auth::bad_tokens(&app) {
        assert_eq!(authn(&app, &app.project.public_key, &token).await["result"], "deny", "{why}");
    }
    assert_eq!(authn(&app, "sensor-17", "secret").await["result"], "ignore");
    assert_eq!(authn(&app, "mqchat-platform", PLATFORM_SECRET).await, json!({"result": "allow", "is_superuser": true}));
    assert_eq!(authn(&app, "mqchat-platform", "guess").await["result"], "deny");
}

#[tokio::test]
async fn authorization_follows_the_gateways_rules_and_live_memberships() {
    let app = app().await;
    let conversation = app.create_conversation("group", &["alice", "bob"]).await;
    let p = app.project_id().to_owned();
    let alice = (p.as_str(), "alice");
    assert_eq!(authz(&app, alice, "subscribe", &format!("chat/{p}/conv/{conversation}")).await, "allow");
    assert_eq!(authz(&app, alice, "publish", &format!("chat/{p}/conv/{conversation}/typing")).await, "allow");
    assert_eq!(authz(&app, alice, "publish", &format!("chat/{p}/conv/{conversation}")).await, "deny");
    assert_eq!(authz(&app, alice, "subscribe", &format!("chat/{p}/user/bob/inbox")).await, "deny");
    assert_eq!(authz(&app, alice, "subscribe", "#").await, "deny");
    assert_eq!(authz(&app, alice, "subscribe", "chat/+/user/alice/inbox").await, "deny");
    assert_eq!(authz(&app, alice, "publish", "devices/x").await, "deny");
    assert_eq!(authz(&app, ("prj_other", "alice"), "subscribe", &format!("chat/{p}/conv/{conversation}")).await, "deny");
    // A membership made after login is seen; a removed one is gone.
    let later = app.create_conversation("group", &["alice"]).await;
    assert_eq!(authz(&app, alice, "subscribe", &format!("chat/{p}/conv/{later}")).await, "allow");
    let (status, _) = app.api(Method::DELETE, &format!("/api/v1/conversations/{conversation}/members/alice"), None).await;
    assert_eq!(status, 204);
    assert_eq!(authz(&app, alice, "subscribe", &format!("chat/{p}/conv/{conversation}")).await, "deny");
    // Clients mqchat did not authenticate: their own topics are EMQX's call,
    // the chat namespace never.
    assert_eq!(authz(&app, ("", ""), "publish", "devices/x").await, "ignore");
    assert_eq!(authz(&app, ("", ""), "subscribe", "#").await, "deny");
    assert_eq!(authz(&app, ("", ""), "subscribe", &format!("chat/{p}/presence/+")).await, "deny");
    // Which mqchat instances are alive is mqchat's alone: a forged `offline`
    // would make one instance take over a live one's broker session.
    assert_eq!(authz(&app, ("", ""), "publish", "$mqchat/instances/mqchat-a").await, "deny");
    assert_eq!(authz(&app, alice, "publish", "$mqchat/instances/mqchat-a").await, "deny");
}

#[tokio::test]
async fn the_internal_api_needs_the_platform_secret() {
    let app = app().await;
    let body = json!({"clientid": "c", "username": app.project.public_key, "password": app.token("alice")});
    let (status, answer) = call(&app, "/internal/v1/emqx/authn", "not-the-secret", body.clone()).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("unauthorized")));
    let response = app.http.get(app.url(&format!("/internal/v1/projects/{}/keys", app.project.public_key))).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // Without a platform secret configured, the routes do not exist.
    let plain = TestApp::spawn().await;
    let (status, _) = call(&plain, "/internal/v1/emqx/authn", PLATFORM_SECRET, body).await;
    assert_eq!(status, 404);
}
