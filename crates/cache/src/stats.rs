//! Counters, cheap enough for the hit path: each thread counts in a cache-line-padded stripe
//! of its own (see [`Stats`]), and a snapshot sums the stripes.

use crate::shim::{AtomicU64, Ordering};

/// A snapshot of a cache's counters, all since the cache was built.
///
/// Snapshots add up field by field (`+`, `+=` and [`Iterator::sum`]), for several caches used as
/// one: each sum is the count over all of them (wrapping at `u64::MAX`, as the counters do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that found no live entry.
    pub misses: u64,
    /// Reads answered with a cached error (see `CacheBuilder::negative_ttl`).
    pub negative_hits: u64,
    /// Loader runs started.
    pub loads: u64,
    /// Loader runs that returned an error.
    pub load_errors: u64,
    /// Loader runs that panicked.
    pub load_panics: u64,
    /// Callers that waited for another caller's load instead of running their own.
    pub coalesced_waiters: u64,
    /// Calls to `invalidate` (by key).
    pub invalidations_key: u64,
    /// Calls to `invalidate_tag`.
    pub invalidations_tag: u64,
    /// Calls to `invalidate_all`.
    pub invalidations_all: u64,
    /// Entries removed by an invalidation.
    pub invalidated_entries: u64,
    /// Loaded values not inserted because an invalidation came while they were loading.
    pub discarded_loads: u64,
    /// Entries pushed out by the capacity bound.
    pub evictions_size: u64,
    /// Entries removed because their time to live ran out.
    pub evictions_expired: u64,
    /// Entries removed because they were idle for longer than the time to idle.
    pub evictions_idle: u64,
    /// Inserts refused because the cached entry has a newer version.
    pub refused_stale_inserts: u64,
}

macro_rules! counters {
    ($($name:ident => $field:ident),* $(,)?) => {
        /// The cache's counters, one per field of [`CacheStats`].
        #[derive(Clone, Copy, Debug)]
        pub(crate) enum Counter { $($name),* }

        const COUNTERS: usize = [$(Counter::$name),*].len();

        impl Stats {
            pub(crate) fn snapshot(&self) -> CacheStats {
                let mut totals = [0u64; COUNTERS];
                for stripe in self.stripes.iter() {
                    for (total, cell) in totals.iter_mut().zip(stripe.cells.iter()) {
                        *total += cell.load(Ordering::Relaxed);
                    }
                }
                CacheStats { $($field: totals[Counter::$name as usize]),* }
            }
        }

        impl std::ops::Add for CacheStats {
            type Output = CacheStats;

            fn add(self, other: CacheStats) -> CacheStats {
                CacheStats { $($field: self.$field.wrapping_add(other.$field)),* }
            }
        }

        /// Every counter, in the order of [`CacheStats`]'s fields.
        #[cfg(all(test, not(feature = "shuttle")))]
        const ALL_COUNTERS: [Counter; COUNTERS] = [$(Counter::$name),*];
    };
}

counters!(
    Hits => hits,
    Misses => misses,
    NegativeHits => negative_hits,
    Loads => loads,
    LoadErrors => load_errors,
    LoadPanics => load_panics,
    Coalesced => coalesced_waiters,
    InvalidationsKey => invalidations_key,
    InvalidationsTag => invalidations_tag,
    InvalidationsAll => invalidations_all,
    InvalidatedEntries => invalidated_entries,
    DiscardedLoads => discarded_loads,
    EvictionsSize => evictions_size,
    EvictionsExpired => evictions_expired,
    EvictionsIdle => evictions_idle,
    RefusedStale => refused_stale_inserts,
);

impl std::ops::AddAssign for CacheStats {
    fn add_assign(&mut self, other: CacheStats) {
        *self = *self + other;
    }
}

impl std::iter::Sum for CacheStats {
    fn sum<I: Iterator<Item = CacheStats>>(stats: I) -> CacheStats {
        stats.fold(CacheStats::default(), std::ops::Add::add)
    }
}

/// One stripe: a full set of counters on cache lines of its own.
#[repr(align(128))]
#[derive(Debug)]
struct Stripe {
    cells: [AtomicU64; COUNTERS],
}

impl Stripe {
    fn new() -> Self {
        Self {
            cells: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// How many stripes have a single owning thread. Threads beyond these share one more stripe.
#[cfg(not(feature = "shuttle"))]
const OWNED_STRIPES: usize = 64;

/// Under shuttle every model thread runs on one OS thread, so no stripe has a single owner.
#[cfg(feature = "shuttle")]
const OWNED_STRIPES: usize = 0;

/// Striped counters.
///
/// Stripe `i < OWNED_STRIPES` is written only by the thread holding slot `i` (see
/// [`ThreadSlot`]), so it is incremented with a plain load and store, not a read-modify-write:
/// the hit path pays for no locked instruction and no shared cache line. Threads without an
/// owned slot add to the last stripe atomically.
#[derive(Debug)]
pub(crate) struct Stats {
    /// A fixed-size array, so indexing with an owned stripe number needs no bounds check.
    stripes: Box<[Stripe; OWNED_STRIPES + 1]>,
}

#[cfg(not(feature = "shuttle"))]
mod slots {
    //! Which stripe a thread owns.

    use std::cell::Cell;

    /// The slot numbers handed to threads: a thread takes the lowest free one on its first count
    /// and gives it back when it exits, so a slot never has two living owners.
    struct SlotPool {
        next: usize,
        free: Vec<usize>,
    }

    static SLOTS: std::sync::Mutex<SlotPool> = std::sync::Mutex::new(SlotPool {
        next: 0,
        free: Vec::new(),
    });

    /// This thread's claim on a slot: returns the slot to the pool when the thread exits.
    struct ThreadSlot(usize);

    impl Drop for ThreadSlot {
        fn drop(&mut self) {
            // From now on this thread counts in the shared stripe.
            let _ = SLOT.try_with(|slot| slot.set(EXITED));
            let mut pool = SLOTS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pool.free.push(self.0);
        }
    }

    /// `SLOT` before this thread has claimed a slot.
    const UNCLAIMED: usize = usize::MAX;
    /// `SLOT` after this thread gave its slot back.
    const EXITED: usize = usize::MAX - 1;

    thread_local! {
        /// This thread's slot number: a plain constant-initialised cell, so the hit path reads it
        /// with one thread-local load and no lazy-initialisation check.
        static SLOT: Cell<usize> = const { Cell::new(UNCLAIMED) };
        /// Owns the slot, so it is given back when the thread exits.
        static CLAIM: ThreadSlot = {
            let mut pool = SLOTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let slot = pool.free.pop().unwrap_or_else(|| {
                pool.next += 1;
                pool.next - 1
            });
            ThreadSlot(slot)
        };
    }

    /// This thread's slot: a number at or above the owned stripes when it has none yet (or
    /// gave it back), so one comparison tells the hit path whether it owns a stripe.
    #[inline]
    pub(super) fn slot() -> usize {
        SLOT.try_with(Cell::get).unwrap_or(EXITED)
    }

    /// Claims a slot for this thread if it has none yet, and returns this thread's slot.
    pub(super) fn claim() -> usize {
        let slot = slot();
        if slot != UNCLAIMED {
            return slot;
        }
        let claimed = CLAIM.try_with(|claim| claim.0).unwrap_or(EXITED);
        let _ = SLOT.try_with(|slot| slot.set(claimed));
        claimed
    }
}

/// The stripe this thread owns, if any (none before its first count claims one).
#[cfg(not(feature = "shuttle"))]
#[inline]
fn owned_stripe() -> Option<usize> {
    Some(slots::slot()).filter(|&slot| slot < OWNED_STRIPES)
}

/// Claims a slot for this thread if it has none yet, and returns the stripe it owns, if any.
#[cfg(not(feature = "shuttle"))]
fn claim_stripe() -> Option<usize> {
    Some(slots::claim()).filter(|&slot| slot < OWNED_STRIPES)
}

/// Under shuttle no stripe has a single owner.
#[cfg(feature = "shuttle")]
#[inline]
fn owned_stripe() -> Option<usize> {
    None
}

/// Under shuttle no stripe has a single owner.
#[cfg(feature = "shuttle")]
fn claim_stripe() -> Option<usize> {
    None
}

impl Stats {
    pub(crate) fn new() -> Self {
        Self {
            stripes: Box::new(std::array::from_fn(|_| Stripe::new())),
        }
    }

    #[inline]
    pub(crate) fn add(&self, counter: Counter, by: u64) {
        match owned_stripe() {
            Some(slot) => self.add_owned(slot, counter, by),
            None => self.add_unowned(counter, by),
        }
    }

    /// Adds to the stripe `slot`, which this thread owns (see `ThreadSlot`): a single writer,
    /// so a plain load and store suffice.
    #[inline]
    fn add_owned(&self, slot: usize, counter: Counter, by: u64) {
        let cell = &self.stripes[slot].cells[counter as usize];
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(by),
            Ordering::Relaxed,
        );
    }

    /// The first count on a thread (which claims a slot), or one by a thread without a stripe
    /// of its own.
    #[cold]
    #[inline(never)]
    fn add_unowned(&self, counter: Counter, by: u64) {
        match claim_stripe() {
            Some(slot) => self.add_owned(slot, counter, by),
            None => {
                self.stripes[OWNED_STRIPES].cells[counter as usize]
                    .fetch_add(by, Ordering::Relaxed);
            }
        }
    }

    #[inline]
    pub(crate) fn incr(&self, counter: Counter) {
        self.add(counter, 1);
    }
}

#[cfg(all(test, not(feature = "shuttle")))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn counts_are_exact_with_more_live_threads_than_owned_stripes() {
        const THREADS: usize = OWNED_STRIPES + 36;
        const COUNTS: u64 = 1_000;
        let stats = Stats::new();
        // Every thread stays alive until all have counted once, so some hold owned stripes and
        // the rest share the last one.
        let barrier = std::sync::Barrier::new(THREADS);
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    stats.incr(Counter::Hits);
                    barrier.wait();
                    for _ in 1..COUNTS {
                        stats.incr(Counter::Hits);
                    }
                    stats.add(Counter::Misses, 2);
                });
            }
        });
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.hits, THREADS as u64 * COUNTS);
        assert_eq!(snapshot.misses, THREADS as u64 * 2);
        assert!(
            stats.stripes[OWNED_STRIPES].cells[Counter::Hits as usize].load(Ordering::Relaxed) > 0,
            "some thread counted in the shared stripe"
        );
    }

    #[test]
    fn snapshots_add_up_field_by_field() {
        // Each counter gets its own amount in each of two caches, so a field added to the wrong
        // field, or left out of the sum, shows.
        let (one, two, both) = (Stats::new(), Stats::new(), Stats::new());
        for (i, counter) in ALL_COUNTERS.into_iter().enumerate() {
            let i = i as u64;
            one.add(counter, i + 1);
            two.add(counter, 1_000 * (i + 1));
            both.add(counter, 1_001 * (i + 1));
        }
        let (one, two, both) = (one.snapshot(), two.snapshot(), both.snapshot());
        assert_eq!(one + two, both);
        let mut sum = one;
        sum += two;
        assert_eq!(sum, both);
        assert_eq!([one, two].into_iter().sum::<CacheStats>(), both);
        assert_eq!(
            std::iter::empty::<CacheStats>().sum::<CacheStats>(),
            CacheStats::default()
        );
        let near_max = CacheStats {
            hits: u64::MAX,
            ..CacheStats::default()
        };
        let one_hit = CacheStats {
            hits: 1,
            ..CacheStats::default()
        };
        assert_eq!((near_max + one_hit).hits, 0, "wraps as the counters do");
    }
}
