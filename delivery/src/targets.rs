//! Which URLs may receive deliveries. By default only HTTPS URLs whose
//! addresses are globally reachable: a webhook must not become a way to
//! reach the operator's own network (SSRF). `allow_private` (for local
//! development and tests) also admits plain HTTP and every address.
//!
//! What is checked when: a URL is parsed and its literal address (or a name
//! that always means this machine) judged when it is set; a host name is
//! resolved then too, and refused if any of its addresses is not public or
//! it does not resolve; and at every connection the client's resolver keeps
//! only public addresses, so a name that later points inward reaches
//! nothing. Addresses are judged by the IANA IPv4 and IPv6 special-purpose
//! registries; an IPv6 address that embeds an IPv4 one (IPv4-mapped,
//! IPv4-compatible, NAT64, 6to4) is judged by that IPv4 address. Proxies
//! from the environment are never used for deliveries (`sender`).
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::settings::WebhookSettings;

/// Longest URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("`url` is not a valid absolute URL: {0}")]
    Malformed(String),
    #[error("`url` must use https (plain http only where webhooks.allow_private_targets is set)")]
    Scheme,
    #[error("`url` points at an address that is not public ({0}); set webhooks.allow_private_targets to allow it")]
    Private(String),
    #[error("`url`'s host {0} does not resolve to any address")]
    Unresolvable(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    pub allow_private: bool,
    /// Fixed addresses for host names, used instead of DNS.
    pub hosts: Arc<BTreeMap<String, Vec<IpAddr>>>,
}

impl TargetPolicy {
    pub fn from_settings(settings: &WebhookSettings) -> Self {
        let hosts = settings.hosts.iter().map(|(name, addresses)| (normal_name(name), addresses.clone())).collect();
        TargetPolicy { allow_private: settings.allow_private_targets, hosts: Arc::new(hosts) }
    }

    /// Parses and checks a URL given by a site, without resolving it.
    pub fn check(&self, url: &str) -> Result<Url, TargetError> {
        if url.len() > MAX_URL_BYTES {
            return Err(TargetError::Malformed(format!("longer than {MAX_URL_BYTES} bytes")));
        }
        let parsed = Url::parse(url).map_err(|error| TargetError::Malformed(error.to_string()))?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_private => {}
            _ => return Err(TargetError::Scheme),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(TargetError::Malformed("credentials in the URL are not accepted; use the signing secret".into()));
        }
        let private = match parsed.host() {
            None => return Err(TargetError::Malformed("no host".into())),
            Some(Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
            Some(Host::Domain(name)) => is_local_name(name),
        };
        if private && !self.allow_private {
            return Err(TargetError::Private(parsed.host_str().unwrap_or_default().to_owned()));
        }
        Ok(parsed)
    }

    /// `check`, and a host name resolved now: refused when it does not
    /// resolve or any of its addresses is not public. What a site is told
    /// when it sets a URL.
    pub async fn check_resolved(&self, url: &str) -> Result<Url, TargetError> {
        let parsed = self.check(url)?;
        if self.allow_private {
            return Ok(parsed);
        }
        if let Some(Host::Domain(name)) = parsed.host() {
            let addresses = self.lookup(name).await.unwrap_or_default();
            if addresses.is_empty() {
                return Err(TargetError::Unresolvable(name.to_owned()));
            }
            if let Some(inward) = addresses.iter().find(|address| !is_public(**address)) {
                return Err(TargetError::Private(format!("{name} resolves to {inward}")));
            }
        }
        Ok(parsed)
    }

    /// The addresses of `name`: the configured ones, else DNS.
    async fn lookup(&self, name: &str) -> std::io::Result<Vec<IpAddr>> {
        if let Some(addresses) = self.hosts.get(&normal_name(name)) {
            return Ok(addresses.clone());
        }
        Ok(tokio::net::lookup_host((name, 0)).await?.map(|address| address.ip()).collect())
    }

    /// Resolves host names for the HTTP client, keeping only the addresses
    /// this policy admits.
    pub fn resolver(self) -> PolicyResolver {
        PolicyResolver { policy: self }
    }
}

fn normal_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Names that always mean this machine or its network.
fn is_local_name(name: &str) -> bool {
    let name = normal_name(name);
    name == "localhost" || name.ends_with(".localhost") || name.ends_with(".local") || name.ends_with(".internal")
}

/// Whether an address is globally reachable: outside every range of the
/// IANA special-purpose registries that is not, and for IPv6 inside global
/// unicast (`2000::/3`). Addresses that embed an IPv4 address are judged by it.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => match embedded_v4(ip) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(ip),
        },
    }
}

/// IPv4 ranges of the special-purpose registry that are not globally
/// reachable (the registry's own word), as (network, prefix length).
const SPECIAL_V4: [([u8; 4], u32); 16] = [
    ([0, 0, 0, 0], 8),        // "this network"
    ([10, 0, 0, 0], 8),       // private
    ([100, 64, 0, 0], 10),    // shared address space (carrier-grade NAT)
    ([127, 0, 0, 0], 8),      // loopback
    ([169, 254, 0, 0], 16),   // link-local (cloud metadata services)
    ([172, 16, 0, 0], 12),    // private
    ([192, 0, 0, 0], 24),     // IETF protocol assignments
    ([192, 0, 2, 0], 24),     // documentation (TEST-NET-1)
    ([192, 88, 99, 0], 24),   // deprecated 6to4 relay anycast
    ([192, 168, 0, 0], 16),   // private
    ([198, 18, 0, 0], 15),    // benchmarking
    ([198, 51, 100, 0], 24),  // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24),   // documentation (TEST-NET-3)
    ([224, 0, 0, 0], 4),      // multicast
    ([240, 0, 0, 0], 4),      // reserved
    ([255, 255, 255, 255], 32), // limited broadcast
];

fn in_v4(ip: Ipv4Addr, (network, prefix): ([u8; 4], u32)) -> bool {
    let mask = u32::MAX << (32 - prefix);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(network))
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !SPECIAL_V4.iter().any(|&range| in_v4(ip, range))
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:0:0/96`),
/// IPv4-compatible (`::/96`, deprecated), NAT64 (`64:ff9b::/96`) or 6to4
/// (`2002::/16`) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let last = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, ..] => Some(last),
        // `::` and `::1` are the unspecified and loopback addresses, not IPv4-compatible ones.
        [0, 0, 0, 0, 0, 0, ..] if u32::from(last) > 1 => Some(last),
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => Some(last),
        [0x2002, a, b, ..] => Some(Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8)),
        _ => None,
    }
}

/// IPv6 ranges inside `2000::/3` that the special-purpose registry marks as
/// not globally reachable, as (network, prefix length).
const SPECIAL_V6: [(u128, u32); 3] = [
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 23), // IETF protocol assignments (Teredo, ORCHID, benchmarking, …)
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32), // documentation
    (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20), // documentation
];

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    let in_range = |(network, prefix): (u128, u32)| bits & (u128::MAX << (128 - prefix)) == network;
    // Global unicast is 2000::/3; everything else (loopback, unspecified,
    // discard-only 100::/64, NAT64 local-use 64:ff9b:1::/48, unique local,
    // link-local, site-local, multicast) is not reachable from the internet.
    in_range((0x2000_0000_0000_0000_0000_0000_0000_0000, 3)) && !SPECIAL_V6.iter().any(|&range| in_range(range))
}

/// The HTTP client's resolver: the system's, filtered by the policy.
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    policy: TargetPolicy,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses = policy.lookup(&host).await?;
            let admitted: Vec<SocketAddr> = addresses
                .into_iter()
                .filter(|address| policy.allow_private || is_public(*address))
                .map(|address| SocketAddr::new(address, 0))
                .collect();
            if admitted.is_empty() {
                return Err(Box::new(TargetError::Private(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(admitted.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_targets_are_refused_unless_allowed() {
        let strict = TargetPolicy::default();
        for url in [
            "https://127.0.0.1/hook",
            "https://10.1.2.3/hook",
            "https://192.168.0.10/hook",
            "https://172.16.5.4/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/hook",
            "https://[fd00::1]/hook",
            "https://[::ffff:10.0.0.1]/hook",
            "https://localhost/hook",
            "https://db.internal/hook",
            "https://100.64.0.1/hook",
            "https://0.1.2.3/hook",
            "https://192.0.0.8/hook",
            "https://198.18.0.1/hook",
            "https://240.0.0.1/hook",
            "https://[64:ff9b::a00:1]/hook",
            "https://[64:ff9b::7f00:1]/hook",
            "https://[64:ff9b:1::1]/hook",
            "https://[2002:a00:1::1]/hook",
            "https://[2002:7f00:1::]/hook",
            "https://[::a00:1]/hook",
            "https://[::127.0.0.1]/hook",
            "https://[2001::1]/hook",
            "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",
            "https://[100::1]/hook",
            "https://[fec0::1]/hook",
            "https://[3fff::1]/hook",
            "https://[::]/hook",
        ] {
            assert!(matches!(strict.check(url), Err(TargetError::Private(_))), "{url} accepted");
        }
        let open = TargetPolicy { allow_private: true, ..TargetPolicy::default() };
        assert!(open.check("http://127.0.0.1:8080/hook").is_ok());
        assert!(open.check("https://10.1.2.3/hook").is_ok());
    }

    #[test]
    fn public_https_is_accepted_and_other_schemes_are_not() {
        let strict = TargetPolicy::default();
        assert!(strict.check("https://example.com/webhooks").is_ok());
        assert!(strict.check("https://93.184.216.34/webhooks").is_ok());
        for public in ["https://[2606:4700::1111]/", "https://[64:ff9b::5db8:d822]/", "https://[2002:5db8:d822::1]/", "https://[::ffff:93.184.216.34]/"] {
            assert!(strict.check(public).is_ok(), "{public} refused");
        }
        assert_eq!(strict.check("http://example.com/webhooks"), Err(TargetError::Scheme));
        assert_eq!(strict.check("ftp://example.com/"), Err(TargetError::Scheme));
        assert!(matches!(strict.check("not a url"), Err(TargetError::Malformed(_))));
        assert!(matches!(strict.check("https://user:pw@example.com/"), Err(TargetError::Malformed(_))));
    }

    #[tokio::test]
    async fn host_names_are_judged_by_what_they_resolve_to_when_set() {
        let hosts = [
            ("hooks.example.com".to_owned(), vec!["93.184.216.34".parse().unwrap()]),
            ("inward.example.com".to_owned(), vec!["93.184.216.34".parse().unwrap(), "10.0.0.5".parse().unwrap()]),
            ("nowhere.example.com".to_owned(), vec![]),
        ];
        let strict = TargetPolicy { allow_private: false, hosts: Arc::new(hosts.into_iter().collect()) };
        assert!(strict.check_resolved("https://Hooks.Example.com./x").await.is_ok());
        assert!(matches!(strict.check_resolved("https://inward.example.com/x").await, Err(TargetError::Private(_))));
        assert!(matches!(strict.check_resolved("https://nowhere.example.com/x").await, Err(TargetError::Unresolvable(_))));
    }

    /// What coverage-guided fuzzing found or kept (`fuzz/corpus/webhook_urls`),
    /// replayed on every test run: no input may panic, and only HTTPS passes.
    #[test]
    fn the_fuzzing_corpus_replays_without_a_panic() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/webhook_urls");
        let inputs: Vec<_> = std::fs::read_dir(&dir).map(|entries| entries.flatten().collect()).unwrap_or_default();
        assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
        for input in inputs {
            let Ok(url) = String::from_utf8(std::fs::read(input.path()).unwrap_or_default()) else { continue };
            if let Ok(parsed) = TargetPolicy::default().check(&url) {
                assert_eq!(parsed.scheme(), "https", "{url}");
            }
        }
    }
}
