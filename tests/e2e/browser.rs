//! The widget and the JavaScript SDK in a real browser: each test runs one
//! file of `web/test/` (Node's test runner, playwright-core driving Debian's
//! Chromium) against the real binary on a fresh database of this run's kind
//! (SQLite, or PostgreSQL with `TEST_DATABASE_URL`). `./scripts/test`
//! installs Chromium and the npm packages; a missing one fails the test.
//! (`mqtt5.test.mjs` drives mqtt.js in Node only; it runs the same way.)
//! One scenario runs again with Mosquitto and mqchat's plugin as the broker.
use std::path::Path;

use tokio::process::Command;

pub(crate) async fn run(scenario: &str) {
    run_with(scenario, &[]).await;
}

/// Runs `scenario` with `environment` added to the test runner's.
async fn run_with(scenario: &str, environment: &[(&str, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = crate::helpers::fresh_database_url(&dir).await;
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "web/node_modules is missing: run `npm ci` in web/ (./scripts/test does)"
    );
    let output = Command::new("node")
        .current_dir(&web)
        .args(["--test", "--test-reporter=spec", &format!("test/{scenario}.test.mjs")])
        .env("MQCHAT_BIN", env!("CARGO_BIN_EXE_mqchat"))
        .env("MQCHAT_TEST_DATABASE_URL", &database_url)
        .envs(environment.iter().map(|(name, value)| (name, value)))
        .kill_on_drop(true)
        .output()
        .await
        .expect("node (Node.js 20) on PATH");
    let report = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "web/test/{scenario}.test.mjs failed:\n{report}");
    // A test file whose tests never ran must not pass.
    assert!(report.contains("ℹ pass") && report.contains("ℹ fail 0"), "no test ran in {scenario}:\n{report}");
}

#[tokio::test]
async fn two_users_chat_in_the_widget_across_origins() {
    run("two_users").await;
}

/// The same scenario with mqchat in external mode behind Mosquitto and
/// mqchat's plugin: the SDK logs in to Mosquitto over WebSocket, and
/// presence comes from its announcement and its will.
#[tokio::test]
async fn two_users_chat_in_the_widget_through_mosquitto() {
    let dir = tempfile::tempdir().unwrap();
    let http_port = crate::mosquitto::free_port();
    let mosquitto = crate::mosquitto::Mosquitto::start(&dir, http_port).await;
    let environment = [
        ("MQCHAT_TEST_BROKER", mosquitto.url()),
        ("MQCHAT_TEST_BROKER_MQTT", mosquitto.mqtt_addr().to_string()),
        ("MQCHAT_TEST_BROKER_WS", mosquitto.websocket_addr().to_string()),
        ("MQCHAT_TEST_HTTP_LISTEN", format!("127.0.0.1:{http_port}")),
        ("MQCHAT_TEST_PLATFORM_SECRET", crate::mosquitto::PLATFORM_SECRET.to_owned()),
    ];
    run_with("two_users", &environment).await;
}

#[tokio::test]
async fn a_disallowed_origin_is_refused_with_a_clear_error() {
    run("origins").await;
}

#[tokio::test]
async fn visitors_chat_with_agents_and_identify_themselves() {
    run("visitors").await;
}

#[tokio::test]
async fn sessions_are_renewed_before_they_expire() {
    run("sessions").await;
}

#[tokio::test]
async fn the_widget_catches_up_after_a_server_restart() {
    run("restart").await;
}

#[tokio::test]
async fn the_script_tag_embeds_and_destroy_cleans_up() {
    run("embed").await;
}
