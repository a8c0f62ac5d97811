//! Counters. Every counter lives in a set of cache-line-padded stripes; a thread always adds to
//! the same stripe, so two threads reading different keys never write the same cache line and
//! the hit path costs one uncontended atomic add.

use std::cell::Cell;

use crate::sync::{AtomicU64, Ordering};

/// A snapshot of a cache's counters, all since the cache was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that found no live entry.
    pub misses: u64,
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
    };
}

counters!(
    Hits => hits,
    Misses => misses,
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

/// One stripe: a full set of counters on cache lines of its own.
#[repr(align(128))]
#[derive(Debug)]
struct Stripe {
    cells: [AtomicU64; COUNTERS],
}

/// Striped counters.
#[derive(Debug)]
pub(crate) struct Stats {
    stripes: Box<[Stripe]>,
    mask: usize,
}

thread_local! {
    /// This thread's stripe number, handed out round robin so the first threads get distinct
    /// stripes.
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

static NEXT_STRIPE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn stripe_index() -> usize {
    STRIPE.with(|stripe| {
        let mut index = stripe.get();
        if index == usize::MAX {
            index = NEXT_STRIPE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            stripe.set(index);
        }
        index
    })
}

impl Stats {
    pub(crate) fn new() -> Self {
        let threads = std::thread::available_parallelism().map_or(4, usize::from);
        let count = (threads * 2).next_power_of_two().clamp(4, 64);
        let stripes = (0..count)
            .map(|_| Stripe {
                cells: std::array::from_fn(|_| AtomicU64::new(0)),
            })
            .collect();
        Self {
            stripes,
            mask: count - 1,
        }
    }

    #[inline]
    pub(crate) fn add(&self, counter: Counter, by: u64) {
        let stripe = &self.stripes[stripe_index() & self.mask];
        stripe.cells[counter as usize].fetch_add(by, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn incr(&self, counter: Counter) {
        self.add(counter, 1);
    }
}
