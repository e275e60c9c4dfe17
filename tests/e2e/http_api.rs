//! The server API for conversations.
use reqwest::Method;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn conversation_lifecycle() {
    let app = TestApp::spawn().await;
    let (status, created) = app
        .api(Method::POST, "/api/v1/conversations", Some(json!({"type": "group", "title": "Team", "member_ids": ["bob", "alice", "bob"]})))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("conv_"));
    assert_eq!(created["type"], "group");
    assert_eq!(created["member_ids"], json!(["alice", "bob"]));

    let path = format!("/api/v1/conversations/{id}");
    let (status, fetched) = app.api(Method::GET, &path, None).await;
    assert_eq!((status, &fetched), (200, &created));

    let (status, added) = app.api(Method::POST, &format!("{path}/members"), Some(json!({"user_id": "carol"}))).await;
    assert_eq!(status, 201);
    assert_eq!(added["member_ids"], json!(["alice", "bob", "carol"]));
    let (status, _) = app.api(Method::POST, &format!("{path}/members"), Some(json!({"user_id": "carol"}))).await;
    assert_eq!(status, 200, "adding twice is idempotent");

    let (status, _) = app.api(Method::DELETE, &format!("{path}/members/bob"), None).await;
    assert_eq!(status, 204);
    let (status, error) = app.api(Method::DELETE, &format!("{path}/members/bob"), None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("member_not_found")));

    let (status, archived) = app.api(Method::POST, &format!("{path}/archive"), None).await;
    assert_eq!((status, archived["archived"].as_bool()), (200, Some(true)));
    let (status, error) = app.api(Method::POST, &format!("{path}/members"), Some(json!({"user_id": "dave"}))).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("conversation_archived")));
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({"type": "direct", "member_ids": ["a", "b", "c"]}), 422, "invalid_request"),
        (json!({"type": "direct", "member_ids": ["a", "a"]}), 422, "invalid_request"),
        (json!({"type": "group", "member_ids": ["bad/id"]}), 422, "invalid_request"),
        (json!({"type": "group", "title": "x".repeat(201)}), 422, "invalid_request"),
        (json!({"type": "broadcast"}), 400, "invalid_body"),
        (json!({"type": "group", "unknown": 1}), 400, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let (got, error) = app.api(Method::POST, "/api/v1/conversations", Some(body.clone())).await;
        assert_eq!((got, error["error"]["code"].as_str()), (status, Some(code)), "{body}");
    }
    let (status, error) = app.api(Method::GET, "/api/v1/conversations/conv_missing", None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("conversation_not_found")));

    let response = app.http.post(app.url("/api/v1/conversations")).body("{not json").bearer_auth(&app.project.secret_key).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let response = app.http.post(app.url("/api/v1/conversations")).json(&json!({"type": "group"})).send().await.unwrap();
    assert_eq!(response.status(), 401, "no secret key");
    let response = app.http.post(app.url("/api/v1/conversations")).bearer_auth("sk_wrong").json(&json!({"type": "group"})).send().await.unwrap();
    assert_eq!(response.status(), 401, "wrong secret key");
    let response = app
        .http
        .post(app.url("/api/v1/conversations"))
        .bearer_auth(&app.project.secret_key)
        .header("content-type", "application/json")
        .body(vec![b' '; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let response = app.http.get(app.url("/nowhere")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn one_project_cannot_see_anothers_conversations() {
    let app = TestApp::spawn().await;
    let conversation = app.create_conversation("group", &["alice"]).await;
    let other = mqchat_bridge::projects::create(&app.db, "Other").await.unwrap();
    let response = app
        .http
        .get(app.url(&format!("/api/v1/conversations/{conversation}")))
        .bearer_auth(&other.secret_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
