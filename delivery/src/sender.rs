//! One signed POST and what came of it.
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, USER_AGENT};
use reqwest::redirect::Policy;

use crate::signing;
use crate::targets::TargetPolicy;

/// What one attempt needs.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub url: &'a str,
    pub secret: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub body: &'a str,
    /// A test event (adds `X-Webhook-Test: true`).
    pub test: bool,
}

/// What came of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The status answered; `None` when none came (refused, timed out, reset).
    pub status_code: Option<u16>,
    /// Why it did not count as delivered.
    pub error: Option<String>,
    pub latency: Duration,
}

impl Attempt {
    pub fn delivered(&self) -> bool {
        self.status_code.is_some_and(|code| (200..300).contains(&code))
    }

    /// The endpoint said to stop: 401, 403 or 410.
    pub fn refused(&self) -> bool {
        matches!(self.status_code, Some(401 | 403 | 410))
    }

    /// No HTTP answer at all.
    pub fn unreachable(&self) -> bool {
        self.status_code.is_none()
    }
}

/// The HTTP client every delivery goes through: pooled connections, no
/// redirects (a redirect could lead anywhere), the target policy applied to
/// every resolved address.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: TargetPolicy,
}

impl Sender {
    /// `extra_roots` are trusted besides the system's certificate authorities.
    pub fn new(policy: TargetPolicy, timeout: Duration, extra_roots: Vec<reqwest::Certificate>) -> Result<Sender, reqwest::Error> {
        let builder = extra_roots.into_iter().fold(reqwest::Client::builder(), |builder, root| builder.add_root_certificate(root));
        let client = builder
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(Policy::none())
            .dns_resolver(std::sync::Arc::new(policy.clone().resolver()))
            // A proxy from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY)
            // would connect for us to wherever the URL says, past the
            // resolver's filter.
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(Sender { client, policy })
    }

    pub async fn send(&self, delivery: Delivery<'_>) -> Attempt {
        let started = Instant::now();
        let result = self.post(delivery).await;
        let latency = started.elapsed();
        match result {
            Ok(status) if (200..300).contains(&status) => Attempt { status_code: Some(status), error: None, latency },
            Ok(status) => Attempt { status_code: Some(status), error: Some(describe_status(status)), latency },
            Err(error) => Attempt { status_code: None, error: Some(error), latency },
        }
    }

    async fn post(&self, delivery: Delivery<'_>) -> Result<u16, String> {
        // Checked again at send time: the policy may have changed since the URL was stored.
        let url = self.policy.check(delivery.url).map_err(|error| error.to_string())?;
        let now = Utc::now();
        let body = delivery.body.as_bytes();
        let mut headers = HeaderMap::with_capacity(10);
        let mut put = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        };
        let hex = signing::hex_signature(delivery.secret, body);
        put("x-signature", format!("sha256={hex}"));
        put("x-webhook-signature", hex);
        put("x-webhook-event", delivery.event_type.to_owned());
        put("x-webhook-timestamp", now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        put("webhook-id", delivery.event_id.to_owned());
        put("webhook-timestamp", now.timestamp().to_string());
        put("webhook-signature", signing::standard_signature(delivery.secret, delivery.event_id, now.timestamp(), body));
        if delivery.test {
            put("x-webhook-test", "true".to_owned());
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(concat!("mqchat-webhooks/", env!("CARGO_PKG_VERSION"))));
        let response = self.client.post(url).headers(headers).body(delivery.body.to_owned()).send().await.map_err(describe_error)?;
        let status = response.status().as_u16();
        // Read (and drop) the answer so the connection can be reused.
        let _ = response.bytes().await;
        Ok(status)
    }
}

fn describe_status(status: u16) -> String {
    match status {
        300..=399 => format!("answered {status}: redirects are not followed"),
        401 | 403 => format!("answered {status}: the endpoint refuses mqchat's deliveries"),
        410 => "answered 410: the endpoint is gone".to_owned(),
        _ => format!("answered {status}"),
    }
}

fn describe_error(error: reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
