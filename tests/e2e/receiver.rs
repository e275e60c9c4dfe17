//! A real HTTP server that receives webhooks in the tests: it records every
//! request (headers and raw body) and answers as the test scripts it, and
//! checks signatures with its own HMAC code, independent of mqchat's signer.
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::mpsc;
use warp::http::{HeaderMap, StatusCode};
use warp::Filter;

use crate::helpers::{PATIENCE, QUIET};

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(u16),
    /// Answers only after this long (longer than mqchat's timeout: a timeout).
    After(Duration, u16),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_else(|| panic!("header {name} missing"))
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// The event id every scheme agrees on.
    pub fn event_id(&self) -> String {
        self.header("webhook-id").to_owned()
    }

    /// Checks `X-Signature`, `X-Webhook-Signature` and the Standard
    /// Webhooks signature against `secret`, as a receiver would.
    pub fn assert_signed_with(&self, secret: &str) {
        let hex_mac = hex::encode(hmac_sha256(secret.as_bytes(), &self.body));
        assert_eq!(self.header("x-signature"), format!("sha256={hex_mac}"), "X-Signature");
        assert_eq!(self.header("x-webhook-signature"), hex_mac, "X-Webhook-Signature");
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
            .expect("base64 secret");
        let timestamp: i64 = self.header("webhook-timestamp").parse().expect("unix seconds");
        let now = chrono::Utc::now().timestamp();
        assert!((now - timestamp).abs() < 300, "webhook-timestamp {timestamp} is not recent");
        let mut signed = format!("{}.{}.", self.header("webhook-id"), timestamp).into_bytes();
        signed.extend_from_slice(&self.body);
        let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, &signed)));
        let offered: Vec<&str> = self.header("webhook-signature").split(' ').collect();
        assert!(offered.contains(&expected.as_str()), "webhook-signature {offered:?}, expected {expected}");
        chrono::DateTime::parse_from_rfc3339(self.header("x-webhook-timestamp")).expect("X-Webhook-Timestamp is ISO 8601");
    }
}

pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

pub struct Receiver {
    pub addr: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
    received: mpsc::UnboundedReceiver<Received>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl Receiver {
    /// Listens on 127.0.0.1 on a free port; answers 200 unless scripted.
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (receiver, route) = Self::with_route(listener.local_addr().unwrap(), "http");
        tokio::spawn(warp::serve(route).incoming(listener).run());
        receiver
    }

    /// The same over HTTPS, with `certificate` (PEM chain) and `key` (PEM).
    pub async fn start_tls(certificate: &str, key: &str) -> Receiver {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(certificate.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (receiver, route) = Self::with_route(listener.local_addr().unwrap(), "https");
        let service = warp::service(route);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, service) = (acceptor.clone(), service.clone());
                tokio::spawn(async move {
                    // A client that refuses the certificate ends its handshake here.
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let io = hyper_util::rt::TokioIo::new(tls);
                    let service = hyper_util::service::TowerToHyperService::new(service);
                    let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                    let _ = builder.serve_connection(io, service).await;
                });
            }
        });
        receiver
    }

    /// The receiver's recording route, and the receiver that reads it.
    fn with_route(
        addr: SocketAddr,
        scheme: &'static str,
    ) -> (Receiver, impl warp::Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone + Send + Sync + 'static) {
        let (sink, received) = mpsc::unbounded_channel();
        let script: Arc<Mutex<VecDeque<Answer>>> = Arc::default();
        let answers = Arc::clone(&script);
        let route = warp::post()
            .and(warp::path::full())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(move |path: warp::path::FullPath, headers: HeaderMap, body: bytes::Bytes| {
                let sink = sink.clone();
                let answer = answers.lock().unwrap().pop_front().unwrap_or(Answer::Status(200));
                async move {
                    let _ = sink.send(Received { path: path.as_str().to_owned(), headers, body: body.to_vec() });
                    let status = match answer {
                        Answer::Status(status) => status,
                        Answer::After(wait, status) => {
                            tokio::time::sleep(wait).await;
                            status
                        }
                    };
                    warp::reply::with_status("ok", StatusCode::from_u16(status).unwrap())
                }
            });
        (Receiver { addr, scheme, received, script }, route)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// The next requests get these answers, in order; then 200 again.
    pub fn answer(&self, answers: &[Answer]) {
        self.script.lock().unwrap().extend(answers.iter().copied());
    }

    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(PATIENCE, self.received.recv()).await.expect("a webhook request in time").unwrap()
    }

    pub async fn assert_quiet(&mut self) {
        if let Ok(Some(request)) = tokio::time::timeout(QUIET, self.received.recv()).await {
            panic!("unexpected request {:?}", String::from_utf8_lossy(&request.body));
        }
    }
}
