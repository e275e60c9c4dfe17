//! The C boundary with Mosquitto: the three functions a v5 plugin exports,
//! the event callbacks it registers, and the broker functions it calls.
//! Every `unsafe` block of the crate is here; each callback turns its event
//! into safe values, asks `Plugin`, and never lets a panic cross into C.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::abi::*;
use crate::api::HttpApi;
use crate::plugin::{Access, ClientKey, Login, Plugin, Verdict};

extern "C" {
    fn mosquitto_callback_register(
        identifier: *mut PluginId,
        event: c_int,
        cb_func: GenericCallback,
        event_data: *const c_void,
        userdata: *mut c_void,
    ) -> c_int;
    fn mosquitto_callback_unregister(identifier: *mut PluginId, event: c_int, cb_func: GenericCallback, event_data: *const c_void) -> c_int;
    fn mosquitto_client_id(client: *const Client) -> *const c_char;
    fn mosquitto_client_clean_session(client: *const Client) -> bool;
    fn mosquitto_kick_client_by_clientid(clientid: *const c_char, with_will: bool) -> c_int;
    fn mosquitto_malloc(size: usize) -> *mut c_void;
    fn mosquitto_log_printf(level: c_int, fmt: *const c_char, ...);
}

/// Where mqchat's control messages arrive (nobody else receives them).
static CONTROL_TOPIC: &CStr = c"$CONTROL/mqchat/v1";

/// The plugin's state, owned through Mosquitto's `userdata` pointer from
/// `mosquitto_plugin_init` to `mosquitto_plugin_cleanup`.
struct State {
    id: *mut PluginId,
    plugin: Plugin<HttpApi>,
}

/// The callbacks this plugin registers, with the event data Mosquitto
/// expects for each (only `$CONTROL` takes some: its topic).
fn registrations() -> [(c_int, GenericCallback, *const c_void); 6] {
    [
        (MOSQ_EVT_BASIC_AUTH, on_basic_auth, std::ptr::null()),
        (MOSQ_EVT_ACL_CHECK, on_acl_check, std::ptr::null()),
        (MOSQ_EVT_MESSAGE, on_message, std::ptr::null()),
        (MOSQ_EVT_CONTROL, on_control, CONTROL_TOPIC.as_ptr().cast()),
        (MOSQ_EVT_TICK, on_tick, std::ptr::null()),
        (MOSQ_EVT_DISCONNECT, on_disconnect, std::ptr::null()),
    ]
}

fn log(level: c_int, message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // SAFETY: the format is a literal "%s" and its one argument a valid
    // NUL-terminated string that lives through the call.
    unsafe { mosquitto_log_printf(level, c"mqchat: %s".as_ptr(), text.as_ptr()) };
}

/// A C string Mosquitto passed, as text (`None` for NULL or not UTF-8).
///
/// SAFETY (for callers): `pointer` is NULL or a NUL-terminated string valid
/// for the duration of the current callback.
unsafe fn text<'a>(pointer: *const c_char) -> Option<&'a str> {
    if pointer.is_null() {
        return None;
    }
    // SAFETY: not NULL, and NUL-terminated and alive per the caller's promise.
    unsafe { CStr::from_ptr(pointer) }.to_str().ok()
}

fn client_id(client: *const Client) -> String {
    // SAFETY: `client` is the live client of the event being handled;
    // Mosquitto returns its id (or NULL), valid during the callback.
    unsafe { text(mosquitto_client_id(client)) }.unwrap_or_default().to_owned()
}

fn kick(client_ids: Vec<String>, why: &str) {
    for client_id in client_ids {
        log(MOSQ_LOG_INFO, &format!("disconnecting client {:?}: {why}", client_id.escape_debug().to_string()));
        if let Ok(id) = CString::new(client_id) {
            // SAFETY: a valid NUL-terminated string; called on Mosquitto's
            // thread from inside one of its callbacks, as its API allows.
            unsafe { mosquitto_kick_client_by_clientid(id.as_ptr(), false) };
        }
    }
}

/// Runs `handle` on the plugin's state, turning a panic into `on_panic`.
fn with_state(userdata: *mut c_void, on_panic: c_int, handle: impl FnOnce(&mut State) -> c_int) -> c_int {
    if userdata.is_null() {
        return on_panic;
    }
    // SAFETY: `userdata` is the `Box<State>` leaked in `mosquitto_plugin_init`
    // and freed only in `mosquitto_plugin_cleanup`, after every callback was
    // unregistered; Mosquitto calls plugins from its one thread, so no other
    // reference to the state exists during this call.
    let state = unsafe { &mut *userdata.cast::<State>() };
    catch_unwind(AssertUnwindSafe(|| handle(state))).unwrap_or_else(|_| {
        log(MOSQ_LOG_ERR, "an event handler panicked; the event was refused");
        on_panic
    })
}

/// Which plugin interface this plugin speaks: 5.
#[no_mangle]
pub extern "C" fn mosquitto_plugin_version(supported_version_count: c_int, supported_versions: *const c_int) -> c_int {
    if supported_versions.is_null() || supported_version_count <= 0 {
        return -1;
    }
    // SAFETY: Mosquitto passes an array of `supported_version_count` ints.
    let versions = unsafe { std::slice::from_raw_parts(supported_versions, supported_version_count as usize) };
    if versions.contains(&MOSQ_PLUGIN_VERSION) {
        MOSQ_PLUGIN_VERSION
    } else {
        -1
    }
}

/// Reads `plugin_opt_mqchat_url` and `plugin_opt_platform_secret` and
/// registers the callbacks.
#[no_mangle]
pub extern "C" fn mosquitto_plugin_init(identifier: *mut PluginId, userdata: *mut *mut c_void, options: *mut MosquittoOpt, option_count: c_int) -> c_int {
    let options: &[MosquittoOpt] = if options.is_null() || option_count <= 0 {
        &[]
    } else {
        // SAFETY: Mosquitto passes an array of `option_count` options that
        // lives through this call.
        unsafe { std::slice::from_raw_parts(options, option_count as usize) }
    };
    let (mut url, mut secret) = (None, None);
    for option in options {
        // SAFETY: keys and values are NUL-terminated strings owned by
        // Mosquitto for the duration of this call; they are copied.
        let (key, value) = unsafe { (text(option.key), text(option.value)) };
        match (key, value) {
            (Some("mqchat_url"), Some(value)) => url = Some(value.to_owned()),
            (Some("platform_secret"), Some(value)) => secret = Some(value.to_owned()),
            _ => {}
        }
    }
    let (Some(url), Some(secret)) = (url, secret) else {
        log(MOSQ_LOG_ERR, "plugin_opt_mqchat_url and plugin_opt_platform_secret must both be set");
        return MOSQ_ERR_INVAL;
    };
    if userdata.is_null() {
        return MOSQ_ERR_INVAL;
    }
    let api = HttpApi::new(&url, &secret);
    let state = Box::into_raw(Box::new(State { id: identifier, plugin: Plugin::new(api, secret) }));
    // SAFETY: `userdata` is where Mosquitto keeps the pointer it hands to
    // every callback and to cleanup.
    unsafe { *userdata = state.cast() };
    for (event, callback, event_data) in registrations() {
        // SAFETY: `identifier` is this plugin's id from Mosquitto; the
        // callback has the generic signature; `event_data` is NULL or the
        // static control topic.
        let registered = unsafe { mosquitto_callback_register(identifier, event, callback, event_data, state.cast()) };
        if registered != MOSQ_ERR_SUCCESS {
            log(MOSQ_LOG_ERR, &format!("registering for event {event} failed ({registered})"));
            return registered;
        }
    }
    log(MOSQ_LOG_INFO, &format!("chat clients are authenticated and authorized by mqchat at {url}"));
    MOSQ_ERR_SUCCESS
}

/// Unregisters the callbacks and frees the state.
#[no_mangle]
pub extern "C" fn mosquitto_plugin_cleanup(userdata: *mut c_void, _options: *mut MosquittoOpt, _option_count: c_int) -> c_int {
    if userdata.is_null() {
        return MOSQ_ERR_SUCCESS;
    }
    // SAFETY: `userdata` is the `State` box leaked by init; after this
    // function Mosquitto calls no callback of this plugin.
    let state = unsafe { Box::from_raw(userdata.cast::<State>()) };
    for (event, callback, event_data) in registrations() {
        // SAFETY: the same registrations init made, with the same id.
        unsafe { mosquitto_callback_unregister(state.id, event, callback, event_data) };
    }
    MOSQ_ERR_SUCCESS
}

extern "C" fn on_basic_auth(_event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int {
    with_state(userdata, MOSQ_ERR_AUTH, |state| {
        // SAFETY: for MOSQ_EVT_BASIC_AUTH, `event_data` points to a live
        // `mosquitto_evt_basic_auth` whose strings last through the call.
        let event = unsafe { &*event_data.cast::<EvtBasicAuth>() };
        // SAFETY: username and password are NULL or strings alive through the call.
        let (username, password) = unsafe { (text(event.username), text(event.password)) };
        let client_id = client_id(event.client);
        // SAFETY: the event's live client.
        let clean = unsafe { mosquitto_client_clean_session(event.client) };
        match state.plugin.basic_auth(event.client as ClientKey, &client_id, clean, username, password) {
            Login::Accepted => MOSQ_ERR_SUCCESS,
            Login::Deferred => MOSQ_ERR_PLUGIN_DEFER,
            Login::Refused(reason) => {
                log(MOSQ_LOG_INFO, &format!("refused client {:?}: {reason}", client_id.escape_debug().to_string()));
                MOSQ_ERR_AUTH
            }
        }
    })
}

extern "C" fn on_acl_check(_event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int {
    with_state(userdata, MOSQ_ERR_ACL_DENIED, |state| {
        // SAFETY: for MOSQ_EVT_ACL_CHECK, `event_data` points to a live
        // `mosquitto_evt_acl_check`.
        let event = unsafe { &*event_data.cast::<EvtAclCheck>() };
        // SAFETY: the topic is NULL or a string alive through the call.
        let Some(topic) = (unsafe { text(event.topic) }) else { return MOSQ_ERR_ACL_DENIED };
        let access = match event.access {
            MOSQ_ACL_READ => Access::Read,
            MOSQ_ACL_WRITE => Access::Write,
            MOSQ_ACL_SUBSCRIBE => Access::Subscribe,
            MOSQ_ACL_UNSUBSCRIBE => Access::Unsubscribe,
            _ => return MOSQ_ERR_PLUGIN_DEFER,
        };
        match state.plugin.acl_check(event.client as ClientKey, topic, access) {
            Verdict::Allow => MOSQ_ERR_SUCCESS,
            Verdict::Deny => MOSQ_ERR_ACL_DENIED,
            Verdict::Defer => MOSQ_ERR_PLUGIN_DEFER,
        }
    })
}

extern "C" fn on_message(_event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int {
    with_state(userdata, MOSQ_ERR_SUCCESS, |state| {
        // SAFETY: for MOSQ_EVT_MESSAGE, `event_data` points to a live
        // `mosquitto_evt_message` this callback may modify.
        let event = unsafe { &mut *event_data.cast::<EvtMessage>() };
        // SAFETY: the topic is NULL or a string alive through the call.
        let Some(topic) = (unsafe { text(event.topic) }) else { return MOSQ_ERR_SUCCESS };
        let payload: &[u8] = if event.payload.is_null() || event.payloadlen == 0 {
            &[]
        } else {
            // SAFETY: `payload` holds `payloadlen` bytes owned by Mosquitto.
            unsafe { std::slice::from_raw_parts(event.payload.cast::<u8>(), event.payloadlen as usize) }
        };
        let Some(stamped) = state.plugin.message(event.client as ClientKey, topic, payload) else { return MOSQ_ERR_SUCCESS };
        let Ok(length) = u32::try_from(stamped.len()) else { return MOSQ_ERR_INVAL };
        // SAFETY: Mosquitto frees the message's old payload and takes
        // ownership of a new one allocated with its own allocator.
        let buffer = unsafe { mosquitto_malloc(stamped.len().max(1)) };
        if buffer.is_null() {
            return MOSQ_ERR_NOMEM;
        }
        // SAFETY: `buffer` has room for `stamped.len()` bytes and does not
        // overlap `stamped`.
        unsafe { std::ptr::copy_nonoverlapping(stamped.as_ptr(), buffer.cast::<u8>(), stamped.len()) };
        event.payload = buffer;
        event.payloadlen = length;
        MOSQ_ERR_SUCCESS
    })
}

extern "C" fn on_control(_event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int {
    with_state(userdata, MOSQ_ERR_INVAL, |state| {
        // SAFETY: for MOSQ_EVT_CONTROL, `event_data` points to a live
        // `mosquitto_evt_control`.
        let event = unsafe { &*event_data.cast::<EvtControl>() };
        let payload: &[u8] = if event.payload.is_null() {
            &[]
        } else {
            // SAFETY: `payload` holds `payloadlen` bytes owned by Mosquitto.
            unsafe { std::slice::from_raw_parts(event.payload.cast::<u8>(), event.payloadlen as usize) }
        };
        match state.plugin.control(event.client as ClientKey, payload) {
            Ok(kicked) => {
                kick(kicked, "its sessions were revoked");
                MOSQ_ERR_SUCCESS
            }
            Err(reason) => {
                log(MOSQ_LOG_WARNING, &format!("control message refused: {reason}"));
                MOSQ_ERR_INVAL
            }
        }
    })
}

extern "C" fn on_tick(_event: c_int, _event_data: *mut c_void, userdata: *mut c_void) -> c_int {
    with_state(userdata, MOSQ_ERR_SUCCESS, |state| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs() as i64);
        kick(state.plugin.tick(now), "its token expired");
        MOSQ_ERR_SUCCESS
    })
}

extern "C" fn on_disconnect(_event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int {
    with_state(userdata, MOSQ_ERR_SUCCESS, |state| {
        // SAFETY: for MOSQ_EVT_DISCONNECT, `event_data` points to a live
        // `mosquitto_evt_disconnect`.
        let event = unsafe { &*event_data.cast::<EvtDisconnect>() };
        state.plugin.disconnect(event.client as ClientKey);
        MOSQ_ERR_SUCCESS
    })
}
