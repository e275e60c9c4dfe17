//! The real `mqchat` binary: project and token commands, `serve` on port 0,
//! and a clean exit on SIGTERM.
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::helpers::PATIENCE;

fn mqchat() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mqchat"));
    command.env("MQCHAT_LOG", "info").kill_on_drop(true);
    command
}

#[tokio::test]
async fn project_token_serve_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());

    let output = mqchat().args(["--database-url", &db, "project", "create", "--name", "CLI"]).output().await.unwrap();
    assert!(output.status.success(), "{output:?}");
    let project: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let secret_key = project["secret_key"].as_str().unwrap();
    assert!(secret_key.starts_with("sk_") && project["public_key"].as_str().unwrap().starts_with("pk_"));
    let listed = mqchat().args(["--database-url", &db, "project", "list"]).output().await.unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&listed.stdout).unwrap(), project);

    let output = mqchat()
        .args(["token", "--secret-key", secret_key, "--sub", "alice", "--name", "Alice", "--ttl", "30m"])
        .output()
        .await
        .unwrap();
    let token = String::from_utf8(output.stdout).unwrap();
    let verified = mqchat_broker::identity::verify(secret_key, token.trim(), mqchat_broker::identity::now_unix()).unwrap();
    assert_eq!(verified.claims.name.as_deref(), Some("Alice"));
    assert_eq!(verified.claims.exp - verified.claims.iat, 1800);
    let refused = mqchat().args(["token", "--secret-key", secret_key, "--sub", "bad/sub"]).output().await.unwrap();
    assert!(!refused.status.success());

    let mut serve = mqchat()
        .current_dir(dir.path())
        .args(["--database-url", &db, "serve", "--mqtt-listen", "127.0.0.1:0", "--ws-listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(serve.stderr.take().unwrap()).lines();
    let listening = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("mqchat listening") {
                return line;
            }
        }
        panic!("serve exited before listening");
    })
    .await
    .unwrap();
    assert!(listening.contains("http_addr=127.0.0.1:"), "{listening}");
    let pid = serve.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().await.unwrap().success());
    let status = tokio::time::timeout(PATIENCE, serve.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_bad_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mqchat.toml");
    std::fs::write(&file, "[gateway]\nmax_packet_sise = 10\n").unwrap();
    let output = mqchat().args(["--config", file.to_str().unwrap(), "config"]).output().await.unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("max_packet_sise"), "{output:?}");
}
