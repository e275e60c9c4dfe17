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

#[tokio::test]
async fn a_mosquitto_conf_configures_the_plain_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("conf.db").display());
    let status = Command::new("mosquitto_passwd")
        .arg("-c")
        .arg("-b")
        .arg(dir.path().join("passwords"))
        .args(["meter", "m3ter"])
        .status()
        .await
        .expect("mosquitto_passwd is installed (apt-get install mosquitto)");
    assert!(status.success());
    std::fs::write(dir.path().join("acl"), "user meter\ntopic readwrite meters/#\n").unwrap();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        "listener 18999 127.0.0.1\nallow_anonymous false\npassword_file passwords\nacl_file acl\nmax_keepalive 60\nlog_dest stderr\nper_listener_settings false\n",
    )
    .unwrap();

    // The environment names the file: `config` shows what it set.
    let output = mqchat().env("MQCHAT_MOSQUITTO__CONF", &conf).args(["--database-url", &db, "config"]).output().await.unwrap();
    assert!(output.status.success(), "{output:?}");
    let effective = String::from_utf8(output.stdout).unwrap();
    for expected in ["listen = \"127.0.0.1:18999\"", "max_keepalive = 60", &format!("password_file = {:?}", dir.path().join("passwords"))] {
        assert!(effective.contains(expected), "{expected} in\n{effective}");
    }

    // The flag names it for `serve`; a listen flag still wins over its listener.
    let mut serve = mqchat()
        .current_dir(dir.path())
        .args(["--database-url", &db, "serve", "--mosquitto-conf", conf.to_str().unwrap()])
        .args(["--mqtt-listen", "127.0.0.1:0", "--ws-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(serve.stderr.take().unwrap()).lines();
    let mut warning = None;
    let listening = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("not used by mqchat") {
                warning = Some(line.clone());
            }
            if line.contains("mqchat listening") {
                return line;
            }
        }
        panic!("serve exited before listening");
    })
    .await
    .unwrap();
    let warning = warning.expect("one warning names the directives mqchat does not use");
    assert!(warning.contains("log_dest") && warning.contains("per_listener_settings"), "{warning}");
    let port = listening.split("mqtt_addr=127.0.0.1:").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap().to_owned();
    let published = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port, "-u", "meter", "-P", "m3ter", "-t", "meters/1", "-m", "42", "-q", "1"])
        .output()
        .await
        .unwrap();
    assert!(published.status.success(), "{published:?}");
    let refused = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port, "-u", "meter", "-P", "wrong", "-t", "meters/1", "-m", "42"])
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
}
