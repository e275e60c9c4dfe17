//! What the gateway does with a client that keeps asking for what it may
//! not have (refused SUBSCRIBE filters, dropped PUBLISHes): the first few
//! refusals of a connection are logged one by one, the rest are counted
//! and summed up in one line when the connection ends, and a connection
//! that goes on past a budget is closed. One client can then neither flood
//! the log nor keep the gateway busy answering it.
use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Refusals of one connection logged one by one.
const LOGGED: u32 = 10;
/// Refusals a connection may accumulate at once before it is closed…
const BURST: u32 = 100;
/// …and the rate at which that budget refills, per second: a client that
/// subscribes to a few forbidden filters now and then is never closed.
const REFILL_PER_SECOND: u32 = 10;

/// What to do about one more refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Log it.
    Log,
    /// Count it without a log line.
    Quiet,
    /// The budget is spent: close the connection.
    Close,
}

pub(crate) struct Refusals {
    budget: DefaultDirectRateLimiter,
    seen: u64,
}

impl Default for Refusals {
    fn default() -> Self {
        let quota = Quota::per_second(NonZeroU32::new(REFILL_PER_SECOND).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(BURST).unwrap_or(NonZeroU32::MIN));
        Refusals { budget: RateLimiter::direct(quota), seen: 0 }
    }
}

impl Refusals {
    pub(crate) fn note(&mut self) -> Verdict {
        self.seen += 1;
        if self.budget.check().is_err() {
            Verdict::Close
        } else if self.seen <= u64::from(LOGGED) {
            Verdict::Log
        } else {
            Verdict::Quiet
        }
    }

    /// Refusals that were counted but not logged.
    pub(crate) fn unlogged(&self) -> u64 {
        self.seen.saturating_sub(u64::from(LOGGED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_then_counts_then_closes() {
        let mut refusals = Refusals::default();
        let verdicts: Vec<Verdict> = (0..=BURST).map(|_| refusals.note()).collect();
        assert!(verdicts[..LOGGED as usize].iter().all(|v| *v == Verdict::Log));
        assert!(verdicts[LOGGED as usize..BURST as usize].iter().all(|v| *v == Verdict::Quiet));
        assert_eq!(verdicts[BURST as usize], Verdict::Close);
        assert_eq!(refusals.unlogged(), u64::from(BURST + 1 - LOGGED));
    }
}
