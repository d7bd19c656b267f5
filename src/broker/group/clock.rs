//! The time a group decision is made at: a monotonic instant for timers (sessions, rebalance
//! and sync timeouts) and the wall clock in milliseconds for what is written to
//! `__consumer_offsets` (commit and state timestamps). Passed in, so decisions stay pure.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// One moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub instant: Instant,
    pub wall_ms: i64,
}

impl Now {
    /// The current moment.
    pub fn current() -> Self {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
            });
        Now {
            instant: Instant::now(),
            wall_ms,
        }
    }

    /// `milliseconds` later (negative values count as 0).
    pub fn plus_ms(self, milliseconds: i64) -> Instant {
        self.instant + std::time::Duration::from_millis(u64::try_from(milliseconds).unwrap_or(0))
    }

    /// A moment `milliseconds` later (for tests and loops over due timers).
    pub fn advanced_ms(self, milliseconds: u64) -> Now {
        Now {
            instant: self.instant + std::time::Duration::from_millis(milliseconds),
            wall_ms: self
                .wall_ms
                .saturating_add(i64::try_from(milliseconds).unwrap_or(i64::MAX)),
        }
    }
}
