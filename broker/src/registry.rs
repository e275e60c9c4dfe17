//! Live client connections per (project, user), so that a change of
//! membership or a revoked user reaches every device within the second.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

/// An order the platform gives to a live connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// The user left this conversation: unsubscribe it and forget its membership.
    Revoke { conversation_id: String },
    /// End the connection (its will is published).
    Close { reason: String },
}

type UserKey = (String, String);

#[derive(Default)]
pub struct Registry {
    connections: Mutex<HashMap<UserKey, HashMap<u64, mpsc::UnboundedSender<Control>>>>,
    next_id: AtomicU64,
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
        self.lock().entry(key.clone()).or_default().insert(id, tx);
        (Registration { registry: Arc::clone(self), key, id }, rx)
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
