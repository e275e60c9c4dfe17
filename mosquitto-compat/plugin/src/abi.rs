//! The C types of Mosquitto's plugin interface v5 (`mosquitto_broker.h`,
//! `mosquitto_plugin.h` of Mosquitto 2.0) this plugin uses, written out so
//! that building the plugin needs no headers. The test at the end compiles
//! a C program against the real headers and checks every size and field
//! offset here against them.
// Parts used only by `ffi`, which unit tests do not build.
#![cfg_attr(test, allow(dead_code))]
use std::ffi::{c_char, c_int, c_void};

pub const MOSQ_PLUGIN_VERSION: c_int = 5;

pub const MOSQ_EVT_ACL_CHECK: c_int = 2;
pub const MOSQ_EVT_BASIC_AUTH: c_int = 3;
pub const MOSQ_EVT_CONTROL: c_int = 6;
pub const MOSQ_EVT_MESSAGE: c_int = 7;
pub const MOSQ_EVT_TICK: c_int = 9;
pub const MOSQ_EVT_DISCONNECT: c_int = 10;

pub const MOSQ_ERR_SUCCESS: c_int = 0;
pub const MOSQ_ERR_NOMEM: c_int = 1;
pub const MOSQ_ERR_INVAL: c_int = 3;
pub const MOSQ_ERR_AUTH: c_int = 11;
pub const MOSQ_ERR_ACL_DENIED: c_int = 12;
pub const MOSQ_ERR_PLUGIN_DEFER: c_int = 17;

pub const MOSQ_ACL_READ: c_int = 0x01;
pub const MOSQ_ACL_WRITE: c_int = 0x02;
pub const MOSQ_ACL_SUBSCRIBE: c_int = 0x04;
pub const MOSQ_ACL_UNSUBSCRIBE: c_int = 0x08;

pub const MOSQ_LOG_INFO: c_int = 1 << 0;
pub const MOSQ_LOG_WARNING: c_int = 1 << 2;
pub const MOSQ_LOG_ERR: c_int = 1 << 3;

/// `struct mosquitto`: opaque.
#[repr(C)]
pub struct Client {
    _private: [u8; 0],
}

/// `mosquitto_plugin_id_t`: opaque.
#[repr(C)]
pub struct PluginId {
    _private: [u8; 0],
}

#[repr(C)]
pub struct MosquittoOpt {
    pub key: *mut c_char,
    pub value: *mut c_char,
}

#[repr(C)]
pub struct EvtAclCheck {
    pub future: *mut c_void,
    pub client: *mut Client,
    pub topic: *const c_char,
    pub payload: *const c_void,
    pub properties: *mut c_void,
    pub access: c_int,
    pub payloadlen: u32,
    pub qos: u8,
    pub retain: bool,
    pub future2: [*mut c_void; 4],
}

#[repr(C)]
pub struct EvtBasicAuth {
    pub future: *mut c_void,
    pub client: *mut Client,
    pub username: *mut c_char,
    pub password: *mut c_char,
    pub future2: [*mut c_void; 4],
}

#[repr(C)]
pub struct EvtControl {
    pub future: *mut c_void,
    pub client: *mut Client,
    pub topic: *const c_char,
    pub payload: *const c_void,
    pub properties: *const c_void,
    pub reason_string: *mut c_char,
    pub payloadlen: u32,
    pub qos: u8,
    pub reason_code: u8,
    pub retain: bool,
    pub future2: [*mut c_void; 4],
}

#[repr(C)]
pub struct EvtMessage {
    pub future: *mut c_void,
    pub client: *mut Client,
    pub topic: *mut c_char,
    pub payload: *mut c_void,
    pub properties: *mut c_void,
    pub reason_string: *mut c_char,
    pub payloadlen: u32,
    pub qos: u8,
    pub reason_code: u8,
    pub retain: bool,
    pub future2: [*mut c_void; 4],
}

#[repr(C)]
pub struct EvtDisconnect {
    pub future: *mut c_void,
    pub client: *mut Client,
    pub reason: c_int,
    pub future2: [*mut c_void; 4],
}

pub type GenericCallback = extern "C" fn(event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int;

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};
    use std::process::Command;

    use super::*;

    /// What the C compiler says about the real headers for each name:
    /// `struct` (its size), `struct.field` (the field's offset) or a
    /// constant (its value).
    fn from_headers(names: &[&str]) -> std::collections::HashMap<String, usize> {
        let dir = std::env::temp_dir().join(format!("mqchat-mosquitto-abi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let source = dir.join("abi.c");
        let mut program = String::from("#include <stdio.h>\n#include <stddef.h>\n#include <mosquitto_broker.h>\n#include <mosquitto_plugin.h>\n#include <mosquitto.h>\nint main(void){\n");
        for name in names {
            let expression = match name.split_once('.') {
                Some((structure, field)) => format!("offsetof(struct {structure}, {field})"),
                None if name.starts_with("MOSQ_") => format!("(size_t){name}"),
                None => format!("sizeof(struct {name})"),
            };
            program += &format!("printf(\"{name} %zu\\n\", {expression});\n");
        }
        program += "return 0;}\n";
        std::fs::write(&source, program).unwrap();
        let binary = dir.join("abi");
        let compiled = Command::new("cc").arg(&source).arg("-o").arg(&binary).output().expect("a C compiler (cc)");
        assert!(compiled.status.success(), "compiling against Mosquitto's headers (Debian: mosquitto-dev, libmosquitto-dev) failed: {}", String::from_utf8_lossy(&compiled.stderr));
        let output = Command::new(&binary).output().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .filter_map(|line| line.split_once(' ').map(|(name, value)| (name.to_owned(), value.parse().unwrap())))
            .collect()
    }

    #[test]
    fn the_types_match_mosquittos_headers() {
        // (C name, what Rust says): each struct's size and its fields' offsets.
        macro_rules! layout {
            ($rust:ty, $c:literal, $($field:ident),*) => {{
                let mut rows = vec![($c.to_owned(), size_of::<$rust>())];
                $(rows.push((format!("{}.{}", $c, stringify!($field)), offset_of!($rust, $field)));)*
                rows
            }};
        }
        let mut rust: Vec<(String, usize)> = [
            layout!(MosquittoOpt, "mosquitto_opt", key, value),
            layout!(EvtAclCheck, "mosquitto_evt_acl_check", client, topic, payload, properties, access, payloadlen, qos, retain, future2),
            layout!(EvtBasicAuth, "mosquitto_evt_basic_auth", client, username, password, future2),
            layout!(EvtControl, "mosquitto_evt_control", client, topic, payload, properties, reason_string, payloadlen, qos, reason_code, retain, future2),
            layout!(EvtMessage, "mosquitto_evt_message", client, topic, payload, properties, reason_string, payloadlen, qos, reason_code, retain, future2),
            layout!(EvtDisconnect, "mosquitto_evt_disconnect", client, reason, future2),
        ]
        .concat();
        let constants: Vec<(&str, c_int)> = vec![
            ("MOSQ_PLUGIN_VERSION", MOSQ_PLUGIN_VERSION),
            ("MOSQ_EVT_ACL_CHECK", MOSQ_EVT_ACL_CHECK),
            ("MOSQ_EVT_BASIC_AUTH", MOSQ_EVT_BASIC_AUTH),
            ("MOSQ_EVT_CONTROL", MOSQ_EVT_CONTROL),
            ("MOSQ_EVT_MESSAGE", MOSQ_EVT_MESSAGE),
            ("MOSQ_EVT_TICK", MOSQ_EVT_TICK),
            ("MOSQ_EVT_DISCONNECT", MOSQ_EVT_DISCONNECT),
            ("MOSQ_ERR_SUCCESS", MOSQ_ERR_SUCCESS),
            ("MOSQ_ERR_NOMEM", MOSQ_ERR_NOMEM),
            ("MOSQ_ERR_INVAL", MOSQ_ERR_INVAL),
            ("MOSQ_ERR_AUTH", MOSQ_ERR_AUTH),
            ("MOSQ_ERR_ACL_DENIED", MOSQ_ERR_ACL_DENIED),
            ("MOSQ_ERR_PLUGIN_DEFER", MOSQ_ERR_PLUGIN_DEFER),
            ("MOSQ_ACL_READ", MOSQ_ACL_READ),
            ("MOSQ_ACL_WRITE", MOSQ_ACL_WRITE),
            ("MOSQ_ACL_SUBSCRIBE", MOSQ_ACL_SUBSCRIBE),
            ("MOSQ_ACL_UNSUBSCRIBE", MOSQ_ACL_UNSUBSCRIBE),
            ("MOSQ_LOG_INFO", MOSQ_LOG_INFO),
            ("MOSQ_LOG_WARNING", MOSQ_LOG_WARNING),
            ("MOSQ_LOG_ERR", MOSQ_LOG_ERR),
        ];
        rust.extend(constants.into_iter().map(|(name, value)| (name.to_owned(), value as usize)));
        let names: Vec<&str> = rust.iter().map(|(name, _)| name.as_str()).collect();
        let c = from_headers(&names);
        for (name, value) in &rust {
            assert_eq!(c.get(name), Some(value), "{name}");
        }
    }
}
