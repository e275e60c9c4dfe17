//! A client's bytes through the gateway's framing, 3.1.1 checks and ACL.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mqchat_broker::gateway::screen_client_bytes(data, 4096);
});
