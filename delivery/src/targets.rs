//! Which URLs may receive deliveries. By default only HTTPS URLs whose
//! addresses are public: a webhook must not become a way to reach the
//! operator's private network (SSRF). `allow_private` (for local development
//! and tests) also admits plain HTTP and private, loopback and link-local
//! addresses. Host names are checked when they are resolved, on every
//! connection, so a name that later points inward is refused too.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Longest URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("`url` is not a valid absolute URL: {0}")]
    Malformed(String),
    #[error("`url` must use https (plain http only where webhooks.allow_private_targets is set)")]
    Scheme,
    #[error("`url` points at a private, loopback or link-local address ({0}); set webhooks.allow_private_targets to allow it")]
    Private(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    pub allow_private: bool,
}

impl TargetPolicy {
    /// Parses and checks a URL given by a site.
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

    /// Resolves host names for the HTTP client, keeping only the addresses
    /// this policy admits.
    pub fn resolver(self) -> PolicyResolver {
        PolicyResolver { policy: self }
    }
}

/// Names that always mean this machine or its network.
fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost") || name.ends_with(".local") || name.ends_with(".internal")
}

/// Whether an address is reachable on the public internet (not loopback,
/// private, link-local, shared, documentation, multicast or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(ip),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && ip.segments()[1] == 0x0db8)
}

/// The HTTP client's resolver: the system's, filtered by the policy.
#[derive(Debug, Clone, Copy)]
pub struct PolicyResolver {
    policy: TargetPolicy,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.policy.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let admitted: Vec<SocketAddr> =
                addresses.into_iter().filter(|address| allow_private || is_public(address.ip())).collect();
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
        let strict = TargetPolicy { allow_private: false };
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
        ] {
            assert!(matches!(strict.check(url), Err(TargetError::Private(_))), "{url} accepted");
        }
        let open = TargetPolicy { allow_private: true };
        assert!(open.check("http://127.0.0.1:8080/hook").is_ok());
        assert!(open.check("https://10.1.2.3/hook").is_ok());
    }

    #[test]
    fn public_https_is_accepted_and_other_schemes_are_not() {
        let strict = TargetPolicy::default();
        assert!(strict.check("https://example.com/webhooks").is_ok());
        assert!(strict.check("https://93.184.216.34/webhooks").is_ok());
        assert_eq!(strict.check("http://example.com/webhooks"), Err(TargetError::Scheme));
        assert_eq!(strict.check("ftp://example.com/"), Err(TargetError::Scheme));
        assert!(matches!(strict.check("not a url"), Err(TargetError::Malformed(_))));
        assert!(matches!(strict.check("https://user:pw@example.com/"), Err(TargetError::Malformed(_))));
    }
}
