//! A chat command's JSON through everything decided before storage.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mqchat_bridge::commands::screen(data);
});
