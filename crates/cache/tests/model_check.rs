//! Model-checked tests of the cache's load/invalidate protocol. Built with the `shuttle`
//! feature, the cache (and quick_cache underneath it) takes its locks, condition variables and
//! atomics from shuttle, which then explores the interleavings of the threads below: with the
//! PCT scheduler (which finds bugs of small depth with known probability) and at random.
//!
//! Each scenario asserts the two properties the protocol exists for:
//! - no resurrection: once an invalidation (by key, tag or everything) has returned, a read
//!   that starts afterwards never returns a value loaded from the source before it;
//! - single load: callers that miss together run one loader.
//!
//! Run with `cargo test -p rulebook-cache --features shuttle --test model_check`.
#![cfg(feature = "shuttle")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use rulebook_cache::{Cache, Loaded};
use shuttle::sync::atomic::{AtomicU64, Ordering};
use shuttle::{future, thread};

const PCT_ITERATIONS: usize = 1_500;
const PCT_DEPTH: usize = 3;
const RANDOM_ITERATIONS: usize = 1_000;

/// Runs `scenario` under both schedulers.
fn check(scenario: fn()) {
    shuttle::check_pct(scenario, PCT_ITERATIONS, PCT_DEPTH);
    shuttle::check_random(scenario, RANDOM_ITERATIONS);
}

const KEY: u8 = 7;
const TAG: &str = "rule:RF-002";

/// The source of truth: a version that writers bump before they invalidate.
fn source() -> Arc<AtomicU64> {
    Arc::new(AtomicU64::new(1))
}

/// The newest version whose invalidation has returned (what a read that starts now must see at
/// least); writers raise it after their invalidation returns.
fn floor() -> Arc<AtomicU64> {
    Arc::new(AtomicU64::new(1))
}

/// A read checked against the history of writes: it returns at least the version whose
/// invalidation had returned before it started, and nothing newer than the source when it ends.
fn checked_read(got: impl FnOnce() -> u64, source: &AtomicU64, floor: &AtomicU64) -> u64 {
    let at_least = floor.load(Ordering::SeqCst);
    let got = got();
    assert!(
        got >= at_least,
        "resurrected: a read that began after the invalidation of v{at_least} returned v{got}"
    );
    assert!(
        got <= source.load(Ordering::SeqCst),
        "v{got} was never written"
    );
    got
}

/// Loads `KEY` from `source`; the tag is learnt only as the load finishes.
fn load(cache: &Cache<u8, u64>, source: &AtomicU64) -> u64 {
    let got = cache.get_or_load_blocking(KEY, || {
        let version = source.load(Ordering::SeqCst);
        thread::yield_now();
        Ok::<_, ()>(Loaded::new(version).with_tags([TAG]).with_version(version))
    });
    *got.unwrap()
}

#[derive(Clone, Copy)]
enum Invalidation {
    Key,
    Tag,
    All,
}

/// A reader loads while a writer bumps the source and invalidates; the writer then reads, and
/// must see the new version, as must any read after both finish.
fn load_races_invalidation(kind: Invalidation) {
    load_races_invalidation_in(Cache::new(16), kind);
}

fn load_races_invalidation_in(cache: Cache<u8, u64>, kind: Invalidation) {
    let (source, floor) = (source(), floor());
    let reader = {
        let (cache, source, floor) = (cache.clone(), Arc::clone(&source), Arc::clone(&floor));
        thread::spawn(move || checked_read(|| load(&cache, &source), &source, &floor))
    };
    let writer = {
        let (cache, source, floor) = (cache.clone(), Arc::clone(&source), Arc::clone(&floor));
        thread::spawn(move || {
            source.store(2, Ordering::SeqCst);
            match kind {
                Invalidation::Key => cache.invalidate(&KEY),
                Invalidation::Tag => cache.invalidate_tag(TAG),
                Invalidation::All => cache.invalidate_all(),
            }
            floor.store(2, Ordering::SeqCst);
            checked_read(|| load(&cache, &source), &source, &floor);
        })
    };
    reader.join().unwrap();
    writer.join().unwrap();
    if let Some(cached) = cache.get(&KEY) {
        assert_eq!(
            *cached, 2,
            "resurrected: a stale value was inserted after the invalidation"
        );
    }
    assert_eq!(load(&cache, &source), 2);
}

#[test]
fn load_vs_invalidate_key() {
    check(|| load_races_invalidation(Invalidation::Key));
}

#[test]
fn load_vs_invalidate_tag_learnt_at_load_end() {
    check(|| load_races_invalidation(Invalidation::Tag));
}

#[test]
fn load_vs_invalidate_all() {
    check(|| load_races_invalidation(Invalidation::All));
}

/// Proves the scenarios above can fail: a cache with its invalidation check switched off
/// (a test-only switch) inserts the stale load, and the model checker finds the schedule.
#[test]
#[should_panic(expected = "resurrected")]
fn the_model_check_catches_a_cache_without_the_invalidation_check() {
    check(|| {
        let broken = Cache::builder()
            .max_capacity(16)
            .broken_skip_invalidation_check_for_tests()
            .build();
        load_races_invalidation_in(broken, Invalidation::Tag);
    });
}

/// Two readers load while a writer bumps the source, invalidates the tag, and writes the new
/// version through with `insert`: the cache never goes back to the old version afterwards.
#[test]
fn load_vs_invalidate_vs_insert() {
    check(|| {
        let cache: Cache<u8, u64> = Cache::new(16);
        let (source, floor) = (source(), floor());
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (cache, source, floor) =
                    (cache.clone(), Arc::clone(&source), Arc::clone(&floor));
                thread::spawn(move || checked_read(|| load(&cache, &source), &source, &floor))
            })
            .collect();
        let writer = {
            let (cache, source, floor) = (cache.clone(), Arc::clone(&source), Arc::clone(&floor));
            thread::spawn(move || {
                source.store(2, Ordering::SeqCst);
                cache.invalidate_tag(TAG);
                floor.store(2, Ordering::SeqCst);
                assert!(cache.insert(KEY, Loaded::new(2).with_tags([TAG]).with_version(2)));
                assert_eq!(cache.get(&KEY).as_deref(), Some(&2));
            })
        };
        for reader in readers {
            reader.join().unwrap();
        }
        writer.join().unwrap();
        assert_eq!(cache.get(&KEY).as_deref(), Some(&2));
    });
}

/// Three callers miss together and no invalidation comes: one load, one value for all.
#[test]
fn concurrent_misses_load_once() {
    check(|| {
        let cache: Cache<u8, u64> = Cache::new(16);
        let loads = Arc::new(AtomicU64::new(0));
        let callers: Vec<_> = (0..3)
            .map(|_| {
                let (cache, loads) = (cache.clone(), Arc::clone(&loads));
                thread::spawn(move || {
                    cache
                        .get_or_load_blocking(KEY, || {
                            loads.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, ()>(Loaded::new(42))
                        })
                        .unwrap()
                })
            })
            .collect();
        let values: Vec<_> = callers.into_iter().map(|c| c.join().unwrap()).collect();
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(cache.stats().loads, 1);
        assert!(values.iter().all(|value| Arc::ptr_eq(value, &values[0])));
    });
}

/// The async path shares the protocol: async loads race an invalidation, under shuttle's
/// executor.
#[test]
fn async_load_vs_invalidate_tag() {
    check(|| {
        let cache: Cache<u8, u64> = Cache::new(16);
        let (source, floor) = (source(), floor());
        let load_async = |cache: Cache<u8, u64>, source: Arc<AtomicU64>| async move {
            let got = cache
                .get_or_load(KEY, || async {
                    let version = source.load(Ordering::SeqCst);
                    future::yield_now().await;
                    Ok::<_, ()>(Loaded::new(version).with_tags([TAG]))
                })
                .await;
            *got.unwrap()
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (cache, source, floor) =
                    (cache.clone(), Arc::clone(&source), Arc::clone(&floor));
                future::spawn(async move {
                    let at_least = floor.load(Ordering::SeqCst);
                    let got = load_async(cache, Arc::clone(&source)).await;
                    assert!(got >= at_least, "resurrected: v{got} after v{at_least}");
                    assert!(got <= source.load(Ordering::SeqCst));
                })
            })
            .collect();
        let writer = {
            let (cache, source, floor) = (cache.clone(), Arc::clone(&source), Arc::clone(&floor));
            thread::spawn(move || {
                source.store(2, Ordering::SeqCst);
                cache.invalidate_tag(TAG);
                floor.store(2, Ordering::SeqCst);
                let got = future::block_on(load_async(cache.clone(), Arc::clone(&source)));
                assert_eq!(got, 2, "a read after the invalidation");
            })
        };
        for reader in readers {
            future::block_on(reader).unwrap();
        }
        writer.join().unwrap();
        if let Some(cached) = cache.get(&KEY) {
            assert_eq!(*cached, 2);
        }
    });
}

/// A loader that is pending on its first poll.
struct PendingOnce(bool);

impl Future for PendingOnce {
    type Output = Result<Loaded<u64>, ()>;

    fn poll(mut self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        if self.0 {
            Poll::Ready(Ok(Loaded::new(1)))
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

/// The leader is cancelled (its future dropped mid-load) while another caller waits: the
/// waiter is never stranded, and it loads the value itself.
#[test]
fn cancelled_leader_never_strands_a_waiter() {
    check(|| {
        let cache: Cache<u8, u64> = Cache::new(16);
        let leader = {
            let cache = cache.clone();
            thread::spawn(move || {
                let mut load = pin!(cache.get_or_load(KEY, || PendingOnce(false)));
                let polled = load.as_mut().poll(&mut Context::from_waker(Waker::noop()));
                // Ready only if the waiter's value was already cached; otherwise the future is
                // dropped here, abandoning its load (or its wait) mid-way.
                if let Poll::Ready(got) = polled {
                    assert_eq!(*got.unwrap(), 2);
                }
            })
        };
        let waiter = {
            let cache = cache.clone();
            thread::spawn(move || {
                cache
                    .get_or_load_blocking(KEY, || Ok::<_, ()>(Loaded::new(2)))
                    .unwrap()
            })
        };
        leader.join().unwrap();
        // The abandoned loader never produced a value, so the waiter loaded its own.
        assert_eq!(*waiter.join().unwrap(), 2);
        assert_eq!(cache.get(&KEY).as_deref(), Some(&2));
    });
}
