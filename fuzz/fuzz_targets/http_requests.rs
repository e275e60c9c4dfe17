//! Raw HTTP requests to the whole API of a real server (SQLite in a
//! temporary directory): whatever the request, the answer is never a 5xx.
//! `{sk}`, `{pk}` and `{token}` in the input become the project's secret
//! key, its public key and a user's identity token, so the corpus reaches
//! past authentication. Requests that could make the server send traffic
//! off this machine are skipped: webhook and callback routes (a URL's host
//! name is resolved when it is set, and deliveries connect to it); their
//! URL rules have a target of their own (`webhook_urls`). Revoking and key
//! rotation are skipped too: they would lock the corpus out.
#![no_main]
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mqchat::settings::{Overrides, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Server {
    runtime: tokio::runtime::Runtime,
    http: SocketAddr,
    credentials: [(&'static [u8], Vec<u8>); 3],
    _dir: tempfile::TempDir,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let any_port = Some("127.0.0.1:0".parse().unwrap());
        let overrides = Overrides {
            mqtt_listen: any_port,
            ws_listen: any_port,
            http_listen: any_port,
            database_url: Some(format!("sqlite://{}?mode=rwc", dir.path().join("fuzz.db").display())),
        };
        let mut settings = Settings::load(None, Default::default(), &overrides).unwrap();
        settings.attachments.dir = dir.path().join("uploads");
        let (http, credentials) = runtime.block_on(async {
            let app = mqchat::App::build(&settings).await.unwrap();
            let project = mqchat_bridge::projects::create(&app.db, "Fuzz").await.unwrap();
            let now = mqchat_broker::identity::now_unix();
            let claims = mqchat_broker::identity::IdentityClaims {
                sub: "alice".into(),
                name: None,
                email: None,
                avatar_url: None,
                iat: now,
                exp: now + 24 * 3600,
                iss: None,
            };
            let token = mqchat_broker::identity::sign(&project.secret_key, &claims).unwrap();
            let http = app.http_addr;
            tokio::spawn(app.run(std::future::pending()));
            let credentials: [(&'static [u8], Vec<u8>); 3] =
                [(b"{sk}", project.secret_key.into_bytes()), (b"{pk}", project.public_key.into_bytes()), (b"{token}", token.into_bytes())];
            (http, credentials)
        });
        Server { runtime, http, credentials, _dir: dir }
    })
}

fn replace_all(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(at) = rest.windows(from.len()).position(|window| window == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Whether the request line could reach a route this target leaves out.
fn skipped(data: &[u8]) -> bool {
    let line = data.split(|byte| *byte == b'\n').next().unwrap_or_default().to_ascii_lowercase();
    ["hook", "callback", "revoke", "rotate", "%"].iter().any(|word| line.windows(word.len()).any(|window| window == word.as_bytes()))
}

fuzz_target!(|data: &[u8]| {
    if skipped(data) {
        return;
    }
    let server = server();
    let request = server.credentials.iter().fold(data.to_vec(), |request, (from, to)| replace_all(&request, from, to));
    let answer = server.runtime.block_on(async {
        let mut stream = tokio::net::TcpStream::connect(server.http).await.unwrap();
        stream.write_all(&request).await.unwrap_or_default();
        let _ = stream.shutdown().await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        answer
    });
    let status = answer.get(9..12).and_then(|code| std::str::from_utf8(code).ok()).and_then(|code| code.parse::<u16>().ok());
    if let Some(status) = status {
        assert!(status < 500, "{status} for {:?}: {}", String::from_utf8_lossy(data), String::from_utf8_lossy(&answer));
    }
});
