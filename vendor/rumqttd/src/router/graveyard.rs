use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::{
    scheduler::{PauseReason, Tracker},
    ConnectionEvents,
};

/// Patched for mqchat: saved sessions with an expiry (MQTT 5 session
/// expiry interval) are swept after this many saves.
const SWEEP_EVERY: u32 = 1024;

pub struct Graveyard {
    connections: HashMap<String, SavedState>,
    saves_since_sweep: u32,
}

impl Graveyard {
    pub fn new() -> Graveyard {
        Graveyard {
            connections: HashMap::new(),
            saves_since_sweep: 0,
        }
    }

    /// Add a new connection.
    /// Return tracker of previous connection if connection id already exists
    /// (patched for mqchat: without its session once that expired).
    pub fn retrieve(&mut self, id: &str) -> Option<SavedState> {
        let mut saved = self.connections.remove(id)?;
        if saved.expires_at.is_some_and(|at| at <= Instant::now()) {
            saved.session_state = None;
        }
        Some(saved)
    }

    /// Save connection tracker, kept for `expiry` (`None`: for ever).
    pub fn save_state(
        &mut self,
        mut tracker: Tracker,
        subscriptions: HashSet<String>,
        metrics: ConnectionEvents,
        unacked_pubrels: VecDeque<u16>,
        expiry: Option<Duration>,
    ) {
        tracker.pause(PauseReason::Busy);
        let id = tracker.id.clone();

        let session_state = SessionState {
            tracker,
            subscriptions,
            unacked_pubrels,
        };

        self.connections.insert(
            id,
            SavedState {
                session_state: Some(session_state),
                metrics,
                expires_at: expiry.and_then(|expiry| Instant::now().checked_add(expiry)),
            },
        );
        self.saves_since_sweep += 1;
        if self.saves_since_sweep >= SWEEP_EVERY {
            self.saves_since_sweep = 0;
            let now = Instant::now();
            self.connections
                .retain(|_, saved| saved.expires_at.is_none_or(|at| at > now));
        }
    }

    /// Save only metrics for connection
    pub fn save_metrics(&mut self, id: String, metrics: ConnectionEvents) {
        self.connections.insert(
            id,
            SavedState {
                session_state: None,
                metrics,
                expires_at: None,
            },
        );
    }
}

#[derive(Debug)]
pub struct SavedState {
    pub session_state: Option<SessionState>,
    pub metrics: ConnectionEvents,
    pub expires_at: Option<Instant>,
}

#[derive(Debug)]
pub struct SessionState {
    pub tracker: Tracker,
    pub subscriptions: HashSet<String>,
    // used for pubrel in qos2
    pub unacked_pubrels: VecDeque<u16>,
}
