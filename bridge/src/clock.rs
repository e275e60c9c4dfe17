//! The time stamped on stored rows: truncated to microseconds, the precision
//! PostgreSQL keeps, so that an event published at once and the same row
//! read back later (history, presence) show the same instant.
use chrono::{DateTime, SubsecRound, Utc};

pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
