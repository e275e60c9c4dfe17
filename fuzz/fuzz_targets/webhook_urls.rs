//! Webhook and callback URLs through the target policy (no resolution: it
//! would send DNS queries off this machine).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mqchat_delivery::TargetPolicy;

fuzz_target!(|data: &[u8]| {
    if let Ok(url) = std::str::from_utf8(data) {
        if let Ok(parsed) = TargetPolicy::default().check(url) {
            assert_eq!(parsed.scheme(), "https", "{url}");
        }
    }
});
