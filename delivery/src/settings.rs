//! The `[webhooks]` section of the configuration.
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Admit plain-HTTP URLs and private, loopback and link-local targets
    /// (local development and tests only).
    pub allow_private_targets: bool,
    /// How long one attempt may take, connection included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Waits before the 2nd, 3rd, … attempts; after the last, a delivery has failed.
    /// In the environment: `MQCHAT_WEBHOOKS__RETRY_SCHEDULE="30s,2m,8m"`.
    #[serde(serialize_with = "schedule_to_string", deserialize_with = "schedule_from_string_or_list")]
    pub retry_schedule: Vec<Duration>,
    /// Requests in flight at once, over all endpoints.
    pub concurrency: usize,
    /// Requests in flight at once to one endpoint, so a slow one cannot hold them all.
    pub per_endpoint_concurrency: usize,
    /// How long finished deliveries and their attempts stay in the delivery log.
    #[serde(with = "humantime_serde")]
    pub log_retention: Duration,
    /// CPU niceness of the thread requests are sent from (0 normal, 19
    /// lowest): above 0, a saturated machine serves the chat path first and
    /// deliveries catch up after.
    pub niceness: u8,
    /// Fixed addresses for webhook host names, used instead of DNS (as
    /// curl's `--resolve`): for split-horizon DNS, and for tests, which
    /// must not send DNS queries. The target policy applies to them too.
    pub hosts: BTreeMap<String, Vec<IpAddr>>,
    /// PEM files of certificate authorities trusted for HTTPS deliveries
    /// besides the system's (a private CA of the site's backend; tests).
    pub extra_root_certificates: Vec<PathBuf>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            allow_private_targets: false,
            timeout: Duration::from_secs(10),
            retry_schedule: vec![Duration::from_secs(30), Duration::from_secs(120), Duration::from_secs(480)],
            concurrency: 256,
            per_endpoint_concurrency: 64,
            log_retention: Duration::from_secs(30 * 24 * 3600),
            niceness: 10,
            hosts: BTreeMap::new(),
            extra_root_certificates: Vec::new(),
        }
    }
}

impl WebhookSettings {
    /// The rule violated, if any.
    pub fn problem(&self) -> Option<&'static str> {
        if self.timeout.is_zero() || self.concurrency == 0 || self.per_endpoint_concurrency == 0 {
            return Some("webhooks.timeout, webhooks.concurrency and webhooks.per_endpoint_concurrency must be positive");
        }
        if self.niceness > 19 {
            return Some("webhooks.niceness is 0 (normal) to 19 (lowest CPU priority)");
        }
        if self.retry_schedule.len() > 20 {
            return Some("webhooks.retry_schedule has at most 20 waits");
        }
        None
    }
}

fn schedule_to_string<S: Serializer>(schedule: &[Duration], serializer: S) -> Result<S::Ok, S::Error> {
    let waits: Vec<String> = schedule.iter().map(|wait| humantime::format_duration(*wait).to_string()).collect();
    serializer.serialize_str(&waits.join(","))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Schedule {
    Text(String),
    List(Vec<String>),
}

fn schedule_from_string_or_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Duration>, D::Error> {
    let waits = match Schedule::deserialize(deserializer)? {
        Schedule::Text(text) => text.split(',').map(str::trim).filter(|wait| !wait.is_empty()).map(str::to_owned).collect(),
        Schedule::List(list) => list,
    };
    waits
        .iter()
        .map(|wait| {
            humantime::parse_duration(wait)
                .map_err(|error| serde::de::Error::custom(format!("retry_schedule: {wait:?}: {error}")))
        })
        .collect()
}
