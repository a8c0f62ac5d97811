//! Time, behind a trait so tests can move it by hand.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use crate::shim::{AtomicU64, Ordering};

/// A source of time for expiry (time to live and time to idle).
///
/// `now` is the time since an arbitrary fixed origin and must never go backwards. The cache
/// reads it only when a time to live or time to idle is configured, so a cache without either
/// never pays for a clock read on its hit path.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The time elapsed since this clock's origin.
    fn now(&self) -> Duration;
}

/// How often the default clock's shared ticker thread advances it.
const TICK: Duration = Duration::from_millis(5);

/// The default clock: monotonic time, read from a value that one background thread (shared by
/// every cache in the process, started the first time a cache with expiry reads the time)
/// refreshes every 5 ms.
///
/// Why not `Instant::now()` on every hit: a cache with a time to live reads the time on every
/// hit, and on some hosts (virtual machines without a fast clock source, sandboxes that trap
/// the call) that read alone costs more than the rest of the hit; the benchmark in
/// `benches/cache.rs` showed a hit going from under 100 ns to over 250 ns. Expiry is a
/// backstop measured in seconds or minutes, so 5 ms of resolution costs nothing. If the
/// ticker thread cannot be started, the clock falls back to reading `Instant::now()`.
#[derive(Debug)]
pub(crate) struct CoarseClock;

#[derive(Debug)]
struct Ticker {
    origin: Instant,
    nanos: std::sync::atomic::AtomicU64,
    ticking: bool,
}

static TICKER: std::sync::OnceLock<Ticker> = std::sync::OnceLock::new();

/// The shared ticker, started on first use.
fn ticker() -> &'static Ticker {
    TICKER.get_or_init(|| {
        let ticking = std::thread::Builder::new()
            .name("rulebook-cache-clock".into())
            .spawn(|| loop {
                std::thread::sleep(TICK);
                if let Some(ticker) = TICKER.get() {
                    let nanos =
                        u64::try_from(ticker.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    ticker
                        .nanos
                        .store(nanos, std::sync::atomic::Ordering::Relaxed);
                }
            })
            .is_ok();
        Ticker {
            origin: Instant::now(),
            nanos: std::sync::atomic::AtomicU64::new(0),
            ticking,
        }
    })
}

impl CoarseClock {
    /// The time since the origin in nanoseconds (the unit the cache keeps deadlines in). Read
    /// directly by the cache rather than through [`Clock`], so the hit path of a cache with
    /// expiry pays neither a virtual call nor a conversion through `Duration`.
    #[inline]
    pub(crate) fn now_nanos() -> u64 {
        let ticker = ticker();
        if ticker.ticking {
            ticker.nanos.load(std::sync::atomic::Ordering::Relaxed)
        } else {
            u64::try_from(ticker.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
        }
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
