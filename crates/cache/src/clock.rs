//! Time, behind a trait so tests can move it by hand.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use crate::sync::{AtomicU64, Ordering};

/// A source of time for expiry (time to live and time to idle).
///
/// `now` is the time since an arbitrary fixed origin and must never go backwards. The cache
/// reads it only when a time to live or time to idle is configured, so a cache without either
/// never pays for a clock read on its hit path.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The time elapsed since this clock's origin.
    fn now(&self) -> Duration;
}

/// The default clock: monotonic time since the clock was created.
#[derive(Debug)]
pub(crate) struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to, for tests of expiry.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use rulebook_cache::{Cache, Clock, Loaded, ManualClock};
///
/// let clock = Arc::new(ManualClock::new());
/// let cache: Cache<&str, u32> = Cache::builder()
///     .time_to_live(Duration::from_secs(60))
///     .clock(clock.clone())
///     .build();
/// cache.insert("answer", Loaded::new(42));
/// clock.advance(Duration::from_secs(61));
/// assert!(cache.get(&"answer").is_none());
/// ```
#[derive(Debug)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock standing at its origin.
    pub fn new() -> Self {
        Self {
            nanos: AtomicU64::new(0),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(by, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}
