//! The project's settings for web pages through the server API, on both
//! databases: every change checked before any is stored, what `sdk/init`
//! and `sdk/config` hand out, visitor ids reserved, support conversations
//! with agents, and the SDK served by the binary.
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{granted, payload_json, TestApp};

/// A POST to one of the SDK's routes, with the project's public key.
fn sdk_post(app: &TestApp, path: &str) -> reqwest::RequestBuilder {
    app.http.post(app.url(path)).header("X-Public-Key", &app.project.public_key)
}

#[tokio::test]
async fn project_changes_are_checked_whole_before_any_is_stored() {
    let app = TestApp::spawn().await;
    let (_, before) = app.api(Method::GET, "/api/v1/project", None).await;
    for bad in [
        json!({"visitors": true, "allowed_origins": ["https://shop.example/path"]}),
        json!({"visitors": true, "session_lifetime_seconds": 60}),
        json!({"visitors": true, "widget": {"title": "t".repeat(41)}}),
        json!({"visitors": true, "widget": {"placeholder": "p".repeat(81)}}),
        json!({"visitors": true, "widget": {"primary_color": "blue"}}),
        json!({"visitors": true, "identity_verification_secret": "short"}),
        json!({"visitors": true, "identity_verification": "sometimes"}),
        json!({"visitors": true, "no_such_setting": 1}),
    ] {
        let (status, body) = app.api(Method::PATCH, "/api/v1/project", Some(bad.clone())).await;
        assert!(status == 422 || status == 400, "{bad}: {status} {body}");
    }
    let (_, after) = app.api(Method::GET, "/api/v1/project", None).await;
    assert_eq!(before, after);
    assert_eq!(after["visitors"], false);
    assert_eq!(after["allowed_origins"], json!([]));
    assert_eq!(after["session_lifetime_seconds"], 86400);
}

#[tokio::test]
async fn sdk_init_and_config_hand_out_the_widget_look_and_the_session_lifetime() {
    let app = TestApp::spawn().await;
    let title = "Aide — 客服 ".repeat(3) + "Help, now!"; // 40 characters, multibyte
    assert_eq!(title.chars().count(), 40);
    let (status, project) = app
        .api(
            Method::PATCH,
            "/api/v1/project",
            Some(json!({"session_lifetime_seconds": 3600, "allowed_origins": ["HTTPS://Shop.Example:443"],
                        "widget": {"title": title, "primary_color": "#6366F1", "position": "bottom-left"}})),
        )
        .await;
    assert_eq!(status, 200, "{project}");
    assert_eq!(project["allowed_origins"], json!(["https://shop.example"]));
    let (status, init) = app.sdk_init(&app.token("alice")).await;
    assert_eq!(status, 200, "{init}");
    let data = &init["data"];
    assert_eq!(data["expires_at"].as_i64().unwrap() - data["issued_at"].as_i64().unwrap(), 3600);
    assert_eq!(data["widget_config"], json!({"title": title, "primary_color": "#6366F1", "position": "bottom-left"}));
    assert_eq!(data["visitor"], false);

    let config: Value = app
        .http
        .get(app.url(&format!("/api/v1/sdk/config?public_key={}", app.project.public_key)))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["origin_allowed"], false);
    assert_eq!(config["widget_config"]["title"], json!(title));

    // A null key returns to the default; the others stay.
    app.api(Method::PATCH, "/api/v1/project", Some(json!({"widget": {"title": null}}))).await;
    let (_, init) = app.sdk_init(&app.token("alice")).await;
    assert_eq!(init["data"]["widget_config"], json!({"primary_color": "#6366F1", "position": "bottom-left"}));
}

#[tokio::test]
async fn identity_tokens_may_not_name_a_visitor() {
    let app = TestApp::spawn().await;
    let (status, body) = app.sdk_init(&app.token("visitor:0123456789abcdef0123456789abcdef")).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("visitor:"), "{body}");
}

#[tokio::test]
async fn visitors_get_sessions_from_their_key_only_where_the_project_allows() {
    let app = TestApp::spawn().await;
    let visitor = |key: &str| sdk_post(&app, "/api/v1/sdk/visitor").json(&json!({"visitor_key": key})).send();
    let key = "k".repeat(43);
    let refused = visitor(&key).await.unwrap();
    assert_eq!(refused.status(), 403);
    app.api(Method::PATCH, "/api/v1/project", Some(json!({"visitors": true}))).await;
    let first: Value = visitor(&key).await.unwrap().json().await.unwrap();
    let again: Value = visitor(&key).await.unwrap().json().await.unwrap();
    let other: Value = visitor(&"o".repeat(43)).await.unwrap().json().await.unwrap();
    let id = first["data"]["user_id"].as_str().unwrap();
    assert!(id.starts_with("visitor:") && !id.contains(&key), "{id}");
    assert_eq!(again["data"]["user_id"], first["data"]["user_id"]);
    assert_ne!(other["data"]["user_id"], first["data"]["user_id"]);
    assert_eq!(first["data"]["visitor"], true);
    assert_eq!(visitor("short").await.unwrap().status(), 422);
    // The visitor's session token is a session: it buys no other.
    let session = first["data"]["session_token"].as_str().unwrap();
    assert_eq!(app.sdk_init(session).await.0, 401);
    // Revoked by the backend, the key opens no session any more.
    let (status, _) = app.api(Method::POST, &format!("/api/v1/users/{id}/sessions/revoke"), None).await;
    assert_eq!(status, 200);
    let refused = visitor(&key).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(visitor(&"o".repeat(43)).await.unwrap().status(), 200);
}

#[tokio::test]
async fn support_open_gathers_the_agents_once() {
    let app = TestApp::spawn().await;
    let mut customer = app.client("carla").await;
    let inbox = format!("chat/{}/user/carla/inbox", app.project_id());
    assert!(granted(&customer.subscribe(&inbox).await));
    let outbox = format!("chat/{}/user/carla/outbox", app.project_id());
    let open = |id: &str| json!({"id": id, "op": "support.open"}).to_string();

    customer.client.publish(&outbox, rumqttc::QoS::AtLeastOnce, false, open("1")).await.unwrap();
    let reply = payload_json(&customer.publish_on(&inbox).await);
    assert_eq!(reply["error"]["code"], "no_agents", "{reply}");

    for agent in ["agent-a", "agent-b"] {
        let (status, user) = app.api(Method::PATCH, &format!("/api/v1/users/{agent}"), Some(json!({"agent": true}))).await;
        assert_eq!((status, &user["agent"]), (200, &json!(true)), "{user}");
    }
    let (status, body) = app.api(Method::PATCH, "/api/v1/users/visitor:00", Some(json!({"agent": true}))).await;
    assert_eq!(status, 422, "{body}");

    customer.client.publish(&outbox, rumqttc::QoS::AtLeastOnce, false, open("2")).await.unwrap();
    let mut first = Value::Null;
    while first["reply_to"] != "2" {
        first = payload_json(&customer.publish_on(&inbox).await);
    }
    let conversation = &first["data"]["conversation"];
    assert_eq!(first["data"]["created"], true, "{first}");
    assert_eq!(conversation["type"], "support");
    assert_eq!(conversation["member_ids"], json!(["agent-a", "agent-b", "carla"]));
    assert_eq!(conversation["admin_ids"], json!(["agent-a", "agent-b"]));

    customer.client.publish(&outbox, rumqttc::QoS::AtLeastOnce, false, open("3")).await.unwrap();
    let mut second = Value::Null;
    while second["reply_to"] != "3" {
        second = payload_json(&customer.publish_on(&inbox).await);
    }
    assert_eq!(second["data"]["created"], false);
    assert_eq!(second["data"]["conversation"]["id"], conversation["id"]);
}

#[tokio::test]
async fn the_binary_serves_the_sdk_with_revalidation() {
    let app = TestApp::spawn().await;
    let response = app.http.get(app.url("/sdk/v1.js")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body = response.text().await.unwrap();
    assert!(body.contains("MqChat"), "not the SDK bundle");
    let again = app.http.get(app.url("/sdk/v1.js")).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    for (path, kind) in [("/sdk/v1.mjs", "text/javascript; charset=utf-8"), ("/sdk/v1.d.ts", "application/typescript; charset=utf-8")] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!((response.status().as_u16(), response.headers()["content-type"].to_str().unwrap()), (200, kind));
    }
    assert_eq!(app.http.get(app.url("/sdk/v2.js")).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_launcher_icon_is_checked_stored_and_served_as_an_image_only() {
    let app = TestApp::spawn().await;
    let put = |content_type: &'static str, body: Vec<u8>| {
        app.http
            .put(app.url("/api/v1/project/launcher-icon"))
            .bearer_auth(&app.project.secret_key)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let png = [b"\x89PNG\r\n\x1a\n".as_slice(), &[7u8; 300]].concat();
    assert_eq!(put("image/png", b"<svg/>".to_vec()).await.unwrap().status(), 422);
    assert_eq!(put("image/svg+xml", b"<html><script>alert(1)</script></html>".to_vec()).await.unwrap().status(), 422);
    assert_eq!(put("text/html", png.clone()).await.unwrap().status(), 422);
    assert_eq!(put("image/png", [png.as_slice(), &vec![0u8; 100 * 1024]].concat()).await.unwrap().status(), 413);
    let config_url = app.url(&format!("/api/v1/sdk/config?public_key={}", app.project.public_key));
    let config: Value = app.http.get(&config_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(config["launcher_icon_url"], Value::Null);

    assert_eq!(put("image/png", png.clone()).await.unwrap().status(), 200);
    let config: Value = app.http.get(&config_url).send().await.unwrap().json().await.unwrap();
    let url = app.url(config["launcher_icon_url"].as_str().unwrap());
    let icon = app.http.get(&url).send().await.unwrap();
    assert_eq!(icon.status(), 200);
    let headers = icon.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"].to_str().unwrap().contains("sandbox"));
    assert_eq!(icon.bytes().await.unwrap().as_ref(), png.as_slice());
    let again = app.http.get(&url).header("If-None-Match", headers["etag"].to_str().unwrap()).send().await.unwrap();
    assert_eq!(again.status(), 304);

    let delete = app.http.delete(app.url("/api/v1/project/launcher-icon")).bearer_auth(&app.project.secret_key).send().await.unwrap();
    assert_eq!(delete.status(), 204);
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 404);
}

/// Every bad web input is refused on its own while a user chats: the
/// chat's sends all succeed in order, and nothing bad is stored.
#[tokio::test]
async fn bad_web_inputs_fail_only_themselves_while_others_chat() {
    let app = TestApp::spawn().await;
    app.api(Method::PATCH, "/api/v1/project", Some(json!({"visitors": true, "allowed_origins": ["https://shop.example"]}))).await;
    let (_, settings_before) = app.api(Method::GET, "/api/v1/project", None).await;
    let conversation = app.create_conversation("group", &["alice"]).await;
    let mut alice = crate::chat_client::ChatClient::connect(&app, "alice").await;
    let visitor: Value =
        sdk_post(&app, "/api/v1/sdk/visitor").json(&json!({"visitor_key": "v".repeat(43)})).send().await.unwrap().json().await.unwrap();
    let visitor_token = visitor["data"]["session_token"].as_str().unwrap().to_owned();
    let visitor_id = visitor["data"]["user_id"].as_str().unwrap().to_owned();

    let bad_inputs = async {
        let mut statuses = Vec::new();
        for body in [
            json!({"widget": {"title": "nul \u{0} title"}}),
            json!({"allowed_origins": ["https://shop.example\u{0}"]}),
            json!({"widget": {"font_family": "x".repeat(100_000)}}),
        ] {
            statuses.push(app.api(Method::PATCH, "/api/v1/project", Some(body)).await.0);
        }
        for key in ["short", &"\u{0}".repeat(40), &"é".repeat(40)] {
            let response = sdk_post(&app, "/api/v1/sdk/visitor").json(&json!({"visitor_key": key})).send().await.unwrap();
            statuses.push(response.status().as_u16());
        }
        for body in [
            json!({"user_id": "usr\u{0}1"}),
            json!({"user_id": "u".repeat(129)}),
            json!({"user_id": "usr_1", "name": "n".repeat(201)}),
            json!({"user_id": "usr_1", "email": "line\nbreak@example.com"}),
        ] {
            let response = sdk_post(&app, "/api/v1/sdk/identify").bearer_auth(&visitor_token).json(&body).send().await.unwrap();
            statuses.push(response.status().as_u16());
        }
        let icon = app
            .http
            .put(app.url("/api/v1/project/launcher-icon"))
            .bearer_auth(&app.project.secret_key)
            .header("Content-Type", "image/svg+xml")
            .body("<script>alert(1)</script>")
            .send()
            .await
            .unwrap();
        statuses.push(icon.status().as_u16());
        let foreign = sdk_post(&app, "/api/v1/sdk/init")
            .header("Origin", "https://evil.example")
            .bearer_auth(app.token("alice"))
            .send()
            .await
            .unwrap();
        statuses.push(foreign.status().as_u16());
        statuses
    };
    let chatting = async {
        let mut seqs = Vec::new();
        for n in 0..20 {
            let reply =
                alice.command(json!({"op": "message.send", "conversation_id": conversation, "content": format!("m{n}")})).await;
            assert_eq!(reply["ok"], true, "{reply}");
            seqs.push(reply["data"]["message"]["seq"].as_i64().unwrap());
        }
        seqs
    };
    let (statuses, seqs) = tokio::join!(bad_inputs, chatting);
    assert!(statuses.iter().all(|status| (400..500).contains(status)), "{statuses:?}");
    assert_eq!(seqs, (1..=20).collect::<Vec<i64>>());
    let (_, settings_after) = app.api(Method::GET, "/api/v1/project", None).await;
    assert_eq!(settings_before, settings_after);
    let (_, user) = app.api(Method::GET, &format!("/api/v1/users/{visitor_id}"), None).await;
    assert_eq!((&user["identified_as"], &user["name"]), (&Value::Null, &Value::Null), "{user}");
}
