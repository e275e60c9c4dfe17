//! Live client connections per (project, user), so that a change of
//! membership or a revoked user reaches every device within the second —
//! and the source of presence: a user is online while any of its devices is
//! registered, and every change is reported in order.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::sync::mpsc;

/// An order the platform gives to a live connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// The user left this conversation: unsubscribe it and forget its membership.
    Revoke { conversation_id: String },
    /// End the connection (its will is published).
    Close { reason: String },
}

/// A user came online (its first device connected) or went offline (its
/// last device left), as seen by this gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    pub project_id: String,
    pub user_id: String,
    pub online: bool,
    /// The id of the connection that caused the change; ids only grow, so a
    /// change with a smaller epoch than one already applied is stale.
    pub epoch: u64,
}

type UserKey = (String, String);

#[derive(Default)]
pub struct Registry {
    connections: Mutex<HashMap<UserKey, HashMap<u64, mpsc::UnboundedSender<Control>>>>,
    next_id: AtomicU64,
    /// Where presence changes go, once someone listens.
    presence: OnceLock<mpsc::UnboundedSender<PresenceChange>>,
}

/// Removes its connection from the registry when the session ends.
pub(crate) struct Registration {
    registry: Arc<Registry>,
    key: UserKey,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut connections = self.registry.lock();
        if let Some(devices) = connections.get_mut(&self.key) {
            devices.remove(&self.id);
            if devices.is_empty() {
                connections.remove(&self.key);
                // Reported under the lock, so changes reach the listener in
                // the order they happened.
                self.registry.report(&self.key, false, self.id);
            }
        }
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<UserKey, HashMap<u64, mpsc::UnboundedSender<Control>>>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (each operation is a single insert or remove), so poisoning is ignored.
        self.connections.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn register(
        self: &Arc<Self>,
        project_id: &str,
        user_id: &str,
    ) -> (Registration, mpsc::UnboundedReceiver<Control>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let key = (project_id.to_owned(), user_id.to_owned());
        let (tx, rx) = mpsc::unbounded_channel();
        let mut connections = self.lock();
        let devices = connections.entry(key.clone()).or_default();
        devices.insert(id, tx);
        if devices.len() == 1 {
            self.report(&key, true, id);
        }
        drop(connections);
        (Registration { registry: Arc::clone(self), key, id }, rx)
    }

    /// Presence changes from now on, in the order they happen; only one
    /// listener (later calls get `None`).
    pub fn presence_changes(&self) -> Option<mpsc::UnboundedReceiver<PresenceChange>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.presence.set(tx).ok().map(|()| rx)
    }

    fn report(&self, (project_id, user_id): &UserKey, online: bool, epoch: u64) {
        if let Some(listener) = self.presence.get() {
            let change = PresenceChange { project_id: project_id.clone(), user_id: user_id.clone(), online, epoch };
            let _ = listener.send(change);
        }
    }

    /// Tells every live connection of the user; returns how many were told.
    pub fn send(&self, project_id: &str, user_id: &str, control: Control) -> usize {
        let connections = self.lock();
        let Some(devices) = connections.get(&(project_id.to_owned(), user_id.to_owned())) else {
            return 0;
        };
        devices.values().filter(|device| device.send(control.clone()).is_ok()).count()
    }

    /// Cuts the user's access to a conversation on every live connection.
    pub fn revoke_conversation(&self, project_id: &str, user_id: &str, conversation_id: &str) -> usize {
        self.send(project_id, user_id, Control::Revoke { conversation_id: conversation_id.to_owned() })
    }

    /// Live connections of one user.
    pub fn devices(&self, project_id: &str, user_id: &str) -> usize {
        self.lock().get(&(project_id.to_owned(), user_id.to_owned())).map_or(0, HashMap::len)
    }

    /// Live connections in all.
    pub fn len(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_while_any_device_is_connected_and_changes_come_in_order() {
        let registry = Arc::new(Registry::default());
        let mut changes = registry.presence_changes().unwrap();
        assert!(registry.presence_changes().is_none(), "one listener");
        let (phone, _) = registry.register("p", "alice");
        let (laptop, _) = registry.register("p", "alice");
        let (bob, _) = registry.register("p", "bob");
        drop(phone);
        let first = changes.try_recv().unwrap();
        assert_eq!((first.user_id.as_str(), first.online), ("alice", true));
        let second = changes.try_recv().unwrap();
        assert_eq!((second.user_id.as_str(), second.online), ("bob", true));
        assert!(changes.try_recv().is_err(), "alice is still online on her laptop");
        drop(laptop);
        let last = changes.try_recv().unwrap();
        assert_eq!((last.user_id.as_str(), last.online), ("alice", false));
        assert!(last.epoch > first.epoch);
        drop(bob);
        assert!(!changes.try_recv().unwrap().online);
    }
}
