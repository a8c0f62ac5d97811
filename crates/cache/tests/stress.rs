//! Randomised stress test of "no resurrection": writers bump a versioned source of truth and
//! then invalidate (by key, by tag or everything); readers note, before they read, the newest
//! version whose invalidation had returned, and a checker counts every read that returned an
//! older one. The real cache must show zero such reads; a deliberately broken cache (its
//! invalidation check switched off) must show some, which proves the checker can fail. The run
//! is sized so that the invalidation records are pruned while loads are in flight.
//!
//! `RULEBOOK_STRESS_OPS` sets the number of operations (default 1,000,000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use rulebook_cache::{Cache, CacheStats, Loaded};

/// Enough keys and tags that the invalidation records outgrow their pruning threshold (64) while
/// loads are in flight, so the run also covers pruning under concurrency.
const KEYS: usize = 256;
const GROUPS: usize = 16;
const THREADS: usize = 8;

/// xorshift64*: a tiny deterministic generator, so a run is cheap per operation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// The source of truth and what the checker knows of it.
struct World {
    /// The current version of each key's source.
    source: Vec<AtomicU64>,
    /// For each key, the newest version whose invalidation has returned: a read that begins
    /// after that must not return anything older.
    floor: Vec<AtomicU64>,
    tags: Vec<String>,
}

#[derive(Debug, Default)]
struct Report {
    reads: u64,
    writes: u64,
    violations: u64,
    stats: CacheStats,
}

fn run(cache: &Cache<usize, u64>, ops: u64) -> Report {
    let world = Arc::new(World {
        source: (0..KEYS).map(|_| AtomicU64::new(1)).collect(),
        floor: (0..KEYS).map(|_| AtomicU64::new(1)).collect(),
        tags: (0..GROUPS).map(|group| format!("group:{group}")).collect(),
    });
    let per_thread = ops / THREADS as u64;
    let reports: Vec<(u64, u64, u64)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                let world = Arc::clone(&world);
                scope.spawn(move || {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((thread as u64 + 1) * 0x1234_5678));
                    let (mut reads, mut writes, mut violations) = (0, 0, 0);
                    for _ in 0..per_thread {
                        let key = rng.below(KEYS);
                        if rng.below(32) == 0 {
                            writes += 1;
                            let version = world.source[key].fetch_add(1, Ordering::SeqCst) + 1;
                            match rng.below(16) {
                                0 => cache.invalidate_all(),
                                1..=5 => cache.invalidate_tag(&world.tags[key % GROUPS]),
                                _ => cache.invalidate(&key),
                            }
                            world.floor[key].fetch_max(version, Ordering::SeqCst);
                        } else {
                            reads += 1;
                            let floor = world.floor[key].load(Ordering::SeqCst);
                            let got = cache.get_or_load_blocking(key, || {
                                let version = world.source[key].load(Ordering::SeqCst);
                                // Widen the window in which an invalidation can race the load.
                                thread::yield_now();
                                Ok::<_, ()>(
                                    Loaded::new(version)
                                        .with_version(version)
                                        .with_tags([&world.tags[key % GROUPS]]),
                                )
                            });
                            if *got.unwrap() < floor {
                                violations += 1;
                            }
                        }
                    }
                    (reads, writes, violations)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut report = Report {
        stats: cache.stats(),
        ..Report::default()
    };
    for (reads, writes, violations) in reports {
        report.reads += reads;
        report.writes += writes;
        report.violations += violations;
    }
    report
}

fn ops() -> u64 {
    std::env::var("RULEBOOK_STRESS_OPS")
        .ok()
        .map(|ops| {
            ops.parse()
                .expect("RULEBOOK_STRESS_OPS must be a whole number of operations")
        })
        .unwrap_or(1_000_000)
}

#[test]
fn no_read_after_an_invalidation_returns_an_older_version() {
    // Pruning while loads are in flight depends on how the threads are scheduled, so the run is
    // repeated (each round checked in full) until it has happened, a few rounds at most; nearly
    // always within three rounds.
    let cache: Cache<usize, u64> = Cache::new(1_000);
    for round in 1..=ROUNDS_TO_PRUNE {
        let report = run(&cache, ops());
        println!("round {round}: {report:?}");
        assert!(report.reads + report.writes >= ops() - THREADS as u64);
        assert!(report.writes > 0 && report.stats.hits > 0 && report.stats.loads > 0);
        assert_eq!(report.violations, 0, "{report:?}");
        if cache.prunes_in_flight_for_tests() > 0 {
            return;
        }
    }
    panic!("{ROUNDS_TO_PRUNE} rounds never pruned invalidation records while loads were in flight");
}

/// How many rounds [`no_read_after_an_invalidation_returns_an_older_version`] may take to
/// cover pruning under concurrency.
const ROUNDS_TO_PRUNE: u32 = 20;

#[test]
fn the_checker_catches_a_cache_without_the_invalidation_check() {
    // Stale reads need a write to race a load, so run until one is seen (nearly always in the
    // first round).
    for round in 0..20 {
        let broken: Cache<usize, u64> = Cache::builder()
            .max_capacity(1_000)
            .broken_skip_invalidation_check_for_tests()
            .build();
        let report = run(&broken, 200_000);
        if report.violations > 0 {
            println!("round {round}: {report:?}");
            return;
        }
    }
    panic!("the checker saw no stale read from a cache that inserts invalidated loads");
}
