//! One test per line of the cache contract (DESIGN.md, "The cache contract"): each fails if the
//! line it is named after stops holding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rulebook_cache::{Cache, CacheStats, Clock, LoadError, Loaded, ManualClock, RemovalCause};

/// How long a test waits for other callers to join a load before it fails.
const JOIN_DEADLINE: Duration = Duration::from_secs(60);

/// Waits (yielding the thread) until the cache has counted `waiters` coalesced waiters; panics
/// after [`JOIN_DEADLINE`].
fn wait_for_waiters<V: Send + Sync + 'static>(cache: &Cache<&'static str, V>, waiters: u64) {
    let deadline = Instant::now() + JOIN_DEADLINE;
    while cache.stats().coalesced_waiters < waiters {
        assert!(
            Instant::now() < deadline,
            "only {} of {waiters} callers joined the load within {JOIN_DEADLINE:?}",
            cache.stats().coalesced_waiters
        );
        thread::yield_now();
    }
}

async fn wait_for_waiters_async<V: Send + Sync + 'static>(
    cache: &Cache<&'static str, V>,
    waiters: u64,
) {
    let deadline = Instant::now() + JOIN_DEADLINE;
    while cache.stats().coalesced_waiters < waiters {
        assert!(
            Instant::now() < deadline,
            "only {} of {waiters} callers joined the load within {JOIN_DEADLINE:?}",
            cache.stats().coalesced_waiters
        );
        tokio::task::yield_now().await;
    }
}

#[derive(Debug, PartialEq)]
struct SourceDown(&'static str);

impl std::fmt::Display for SourceDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the rule store is down: {}", self.0)
    }
}

impl std::error::Error for SourceDown {}

#[test]
fn load_error_reaches_every_blocking_waiter_and_is_not_cached() {
    const CALLERS: usize = 8;
    let cache: Cache<&str, u32> = Cache::new(100);
    let loads = AtomicUsize::new(0);
    let results: Vec<_> = thread::scope(|scope| {
        let handles: Vec<_> = (0..CALLERS)
            .map(|_| {
                scope.spawn(|| {
                    cache.get_or_load_blocking("ruleset", || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        wait_for_waiters(&cache, CALLERS as u64 - 1);
                        Err(SourceDown("connection refused"))
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let first = match &results[0] {
        Err(LoadError::Failed(error)) => Arc::clone(error),
        other => panic!("expected the loader's error, got {other:?}"),
    };
    for result in &results {
        match result {
            Err(LoadError::Failed(error)) => assert!(Arc::ptr_eq(error, &first)),
            other => panic!("expected the loader's error, got {other:?}"),
        }
    }
    assert_eq!(
        results[0].as_ref().unwrap_err().to_string(),
        "loading the value failed: the rule store is down: connection refused"
    );
    // Not cached: the next read loads again.
    let value = cache
        .get_or_load_blocking("ruleset", || Ok::<_, SourceDown>(Loaded::new(7)))
        .unwrap();
    assert_eq!(*value, 7);
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_errors), (2, 1));
    assert_eq!(stats.coalesced_waiters, CALLERS as u64 - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_error_reaches_every_async_waiter() {
    const CALLERS: usize = 50;
    let cache: Cache<&'static str, u32> = Cache::new(100);
    let loads = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let cache = cache.clone();
            let loads = Arc::clone(&loads);
            tokio::spawn(async move {
                let waiting = cache.clone();
                cache
                    .get_or_load("ruleset", || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        wait_for_waiters_async(&waiting, CALLERS as u64 - 1).await;
                        Err::<Loaded<u32>, _>(SourceDown("timeout"))
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        match task.await.unwrap() {
            Err(LoadError::Failed(error)) => assert_eq!(*error, SourceDown("timeout")),
            other => panic!("expected the loader's error, got {other:?}"),
        }
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert!(cache.get(&"ruleset").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_leader_hands_the_load_to_a_waiter() {
    let cache: Cache<&'static str, u32> = Cache::new(100);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_load("ruleset", || async move {
                    let _ = started_tx.send(());
                    // Never finishes: the leader is cancelled while loading.
                    std::future::pending::<Result<Loaded<u32>, SourceDown>>().await
                })
                .await
        })
    };
    started_rx.await.unwrap();
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_load("ruleset", || async { Ok::<_, SourceDown>(Loaded::new(2)) })
                .await
        })
    };
    wait_for_waiters_async(&cache, 1).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    assert_eq!(*waiter.await.unwrap().unwrap(), 2);
    assert_eq!(cache.get(&"ruleset").as_deref(), Some(&2));
    assert_eq!(cache.stats().loads, 2);
}

#[test]
fn panicking_loader_gives_every_blocking_waiter_an_error() {
    const WAITERS: usize = 4;
    let cache: Cache<&str, u32> = Cache::new(100);
    thread::scope(|scope| {
        let leader = scope.spawn(|| {
            cache.get_or_load_blocking("ruleset", || -> Result<Loaded<u32>, SourceDown> {
                wait_for_waiters(&cache, WAITERS as u64);
                panic!("the rules file is malformed");
            })
        });
        // Waiters start once the leader is loading, so they join its load.
        while cache.stats().loads == 0 {
            thread::yield_now();
        }
        let waiters: Vec<_> = (0..WAITERS)
            .map(|_| {
                scope.spawn(|| {
                    cache.get_or_load_blocking("ruleset", || Ok::<_, SourceDown>(Loaded::new(1)))
                })
            })
            .collect();
        assert!(leader.join().is_err(), "the panic continues in the leader");
        for waiter in waiters {
            assert!(matches!(waiter.join().unwrap(), Err(LoadError::Panicked)));
        }
    });
    assert_eq!(cache.stats().load_panics, 1);
    // The next read loads again.
    let value = cache.get_or_load_blocking("ruleset", || Ok::<_, SourceDown>(Loaded::new(3)));
    assert_eq!(*value.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_async_loader_gives_every_waiter_an_error() {
    let cache: Cache<&'static str, u32> = Cache::new(100);
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            let waiting = cache.clone();
            cache
                .get_or_load("ruleset", || async move {
                    wait_for_waiters_async(&waiting, 2).await;
                    panic!("the rules file is malformed");
                    #[allow(unreachable_code)]
                    Ok::<Loaded<u32>, SourceDown>(Loaded::new(0))
                })
                .await
        })
    };
    while cache.stats().loads == 0 {
        tokio::task::yield_now().await;
    }
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_load("ruleset", || async { Ok::<_, SourceDown>(Loaded::new(1)) })
                    .await
            })
        })
        .collect();
    assert!(leader.await.unwrap_err().is_panic());
    for waiter in waiters {
        assert!(matches!(waiter.await.unwrap(), Err(LoadError::Panicked)));
    }
}

#[test]
fn time_to_live_expires_entries_under_the_test_clock() {
    let clock = Arc::new(ManualClock::new());
    let removed = Arc::new(Mutex::new(Vec::new()));
    let cache: Cache<&str, u32> = Cache::builder()
        .time_to_live(Duration::from_secs(300))
        .clock(clock.clone())
        .removal_listener({
            let removed = Arc::clone(&removed);
            move |key: &&str, value: &Arc<u32>, cause| {
                removed.lock().unwrap().push((*key, **value, cause));
            }
        })
        .build();
    cache.insert("params", Loaded::new(1));
    clock.advance(Duration::from_secs(299));
    assert_eq!(cache.get(&"params").as_deref(), Some(&1));
    clock.advance(Duration::from_secs(1));
    assert!(cache.get(&"params").is_none());
    let value = cache.get_or_load_blocking("params", || Ok::<_, SourceDown>(Loaded::new(2)));
    assert_eq!(*value.unwrap(), 2);
    assert_eq!(
        *removed.lock().unwrap(),
        vec![("params", 1, RemovalCause::Expired)]
    );
    assert_eq!(cache.stats().evictions_expired, 1);
}

#[test]
fn time_to_idle_expires_entries_not_read_under_the_test_clock() {
    let clock = Arc::new(ManualClock::new());
    let cache: Cache<&str, u32> = Cache::builder()
        .time_to_idle(Duration::from_secs(60))
        .clock(clock.clone() as Arc<dyn Clock>)
        .build();
    cache.insert("read", Loaded::new(1));
    cache.insert("idle", Loaded::new(2));
    for _ in 0..5 {
        clock.advance(Duration::from_secs(40));
        assert_eq!(
            cache.get(&"read").as_deref(),
            Some(&1),
            "read within the idle time"
        );
    }
    assert!(cache.get(&"idle").is_none(), "not read for 200 seconds");
    clock.advance(Duration::from_secs(60));
    assert!(cache.get(&"read").is_none(), "not read for 60 seconds");
    cache.insert("idle", Loaded::new(3));
    assert_eq!(cache.stats().evictions_idle, 1);
}

#[test]
fn capacity_bounds_the_entries_and_counts_evictions() {
    let evicted = Arc::new(AtomicUsize::new(0));
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(256)
        .removal_listener({
            let evicted = Arc::clone(&evicted);
            move |_: &u32, _: &Arc<u32>, cause| {
                if cause == RemovalCause::Size {
                    evicted.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
        .build();
    for key in 0..10_000 {
        cache.insert(key, Loaded::new(key).with_tags([format!("rule:{key}")]));
        assert!(cache.len() <= 256, "{} entries", cache.len());
    }
    let evicted = evicted.load(Ordering::SeqCst);
    assert_eq!(evicted, 10_000 - cache.len());
    assert!(
        cache.len() >= 128,
        "the bound is used: {} entries",
        cache.len()
    );
    assert_eq!(cache.stats().evictions_size, evicted as u64);
    // An evicted entry's tags are forgotten with it: the tag index holds exactly the live
    // entries (each has one tag of its own), not the 10,000 ever inserted.
    assert_eq!(
        cache.tag_index_len_for_tests(),
        (cache.len(), cache.len()),
        "entries and tags indexed with {} entries live",
        cache.len()
    );
}

#[test]
fn weigher_bounds_the_total_weight() {
    let cache: Cache<u32, String> = Cache::builder()
        .max_capacity(1_000)
        .weigher(|_, value: &String| value.len() as u64)
        .build();
    for key in 0..1_000 {
        cache.insert(key, Loaded::new("x".repeat(50)));
        assert!(cache.len() <= 20, "{} entries of weight 50", cache.len());
    }
}

#[test]
fn older_versions_are_refused_and_counted() {
    let cache: Cache<&str, &str> = Cache::new(100);
    assert!(cache.insert("rule:RF-002", Loaded::new("v5").with_version(5)));
    assert!(!cache.insert("rule:RF-002", Loaded::new("v3").with_version(3)));
    assert_eq!(cache.get(&"rule:RF-002").as_deref(), Some(&"v5"));
    assert!(cache.insert("rule:RF-002", Loaded::new("v5 again").with_version(5)));
    assert!(cache.insert("rule:RF-002", Loaded::new("v6").with_version(6)));
    assert_eq!(cache.stats().refused_stale_inserts, 1);
}

#[test]
fn a_load_of_an_older_version_than_cached_answers_with_the_newer() {
    let cache: Cache<&str, &str> = Cache::new(100);
    let cache = &cache;
    let got = thread::scope(|scope| {
        let (loading_tx, loading_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let reader = scope.spawn(move || {
            cache.get_or_load_blocking("ruleset", move || {
                loading_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                Ok::<_, SourceDown>(Loaded::new("v4").with_version(4))
            })
        });
        loading_rx.recv().unwrap();
        assert!(cache.insert("ruleset", Loaded::new("v5").with_version(5)));
        go_tx.send(()).unwrap();
        reader.join().unwrap().unwrap()
    });
    assert_eq!(*got, "v5");
    assert_eq!(cache.get(&"ruleset").as_deref(), Some(&"v5"));
    assert_eq!(cache.stats().refused_stale_inserts, 1);
}

/// Runs a load of `key` that learns its tags only as it finishes, runs `during` while it is
/// loading, and returns what the loading caller got.
fn load_racing(
    cache: &Cache<&'static str, &'static str>,
    key: &'static str,
    tags: &'static [&'static str],
    during: impl FnOnce(),
) -> &'static str {
    thread::scope(|scope| {
        let (loading_tx, loading_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let reader = scope.spawn(move || {
            cache.get_or_load_blocking(key, move || {
                loading_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                Ok::<_, SourceDown>(Loaded::new("old rules").with_tags(tags))
            })
        });
        loading_rx.recv().unwrap();
        during();
        go_tx.send(()).unwrap();
        *reader.join().unwrap().unwrap()
    })
}

#[test]
fn tag_invalidated_during_a_load_whose_tags_are_known_only_at_its_end_stops_the_insert() {
    let cache: Cache<&str, &str> = Cache::new(100);
    let got = load_racing(
        &cache,
        "checkout",
        &["entry_point:checkout", "rule:RF-002"],
        || cache.invalidate_tag("rule:RF-002"),
    );
    assert_eq!(
        got, "old rules",
        "the value still answers the caller that waited"
    );
    assert!(cache.get(&"checkout").is_none(), "but it is not inserted");
    assert_eq!(cache.stats().discarded_loads, 1);
    // An unrelated tag does not stop the insert.
    let got = load_racing(&cache, "checkout", &["entry_point:checkout"], || {
        cache.invalidate_tag("rule:RF-003")
    });
    assert_eq!(cache.get(&"checkout").as_deref(), Some(&got));
}

/// A change that touches several tags (a rule's id and its entry point) is one invalidation: no
/// observer sees one tag's entries gone and another's still there, so a read that reloads in
/// between is not dropped again by the rest of the same change.
#[test]
fn several_tags_invalidated_at_once_leave_no_moment_with_only_some_gone() {
    let handle: Arc<std::sync::OnceLock<Cache<&'static str, &'static str>>> = Arc::default();
    let still_cached = Arc::new(Mutex::new(Vec::new()));
    let cache = Cache::builder()
        .max_capacity(100)
        .removal_listener({
            let (handle, still_cached) = (handle.clone(), still_cached.clone());
            move |key: &&'static str, _: &Arc<&'static str>, _| {
                let cache = handle.get().unwrap();
                let others = ["checkout", "pricing"]
                    .iter()
                    .filter(|other| cache.get(other).is_some())
                    .count();
                still_cached.lock().unwrap().push((*key, others));
            }
        })
        .build();
    handle.set(cache.clone()).ok().unwrap();
    cache.insert(
        "checkout",
        Loaded::new("v1").with_tags(["entry_point:checkout"]),
    );
    cache.insert("pricing", Loaded::new("v1").with_tags(["rule:RF-002"]));
    cache.insert("home", Loaded::new("v1").with_tags(["entry_point:home"]));
    cache.invalidate_tags(["entry_point:checkout", "rule:RF-002"]);
    let mut seen = still_cached.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [("checkout", 0), ("pricing", 0)],
        "each removal is heard once both tags' entries are gone"
    );
    assert_eq!(cache.get(&"home").as_deref(), Some(&"v1"));
    assert_eq!(cache.stats().invalidations_tag, 2, "one count per tag");
}

#[test]
fn key_and_all_invalidated_during_a_load_stop_the_insert() {
    let cache: Cache<&str, &str> = Cache::new(100);
    load_racing(&cache, "checkout", &[], || cache.invalidate(&"checkout"));
    assert!(cache.get(&"checkout").is_none());
    load_racing(&cache, "checkout", &[], || cache.invalidate_all());
    assert!(cache.get(&"checkout").is_none());
    load_racing(&cache, "checkout", &[], || cache.invalidate(&"home"));
    assert!(cache.get(&"checkout").is_some());
    let stats = cache.stats();
    assert_eq!(stats.discarded_loads, 2);
    assert_eq!((stats.invalidations_key, stats.invalidations_all), (2, 1));
}

#[test]
fn a_read_that_starts_after_an_invalidation_does_not_take_the_stale_load() {
    let cache: Cache<&str, &str> = Cache::new(100);
    let late = thread::scope(|scope| {
        let (loading_tx, loading_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let early = scope.spawn(|| {
            cache.get_or_load_blocking("checkout", move || {
                loading_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                Ok::<_, SourceDown>(Loaded::new("old rules").with_tags(["rule:RF-002"]))
            })
        });
        loading_rx.recv().unwrap();
        cache.invalidate_tag("rule:RF-002");
        // This read starts after the invalidation returned: it joins the load in flight, but
        // must not be answered with its value.
        let late = scope.spawn(|| {
            cache.get_or_load_blocking("checkout", || {
                Ok::<_, SourceDown>(Loaded::new("new rules").with_tags(["rule:RF-002"]))
            })
        });
        wait_for_waiters(&cache, 1);
        go_tx.send(()).unwrap();
        assert_eq!(*early.join().unwrap().unwrap(), "old rules");
        late.join().unwrap().unwrap()
    });
    assert_eq!(*late, "new rules");
    assert_eq!(cache.get(&"checkout").as_deref(), Some(&"new rules"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_async_misses_load_once() {
    const CALLERS: usize = 10_000;
    let cache: Cache<&'static str, u64> = Cache::new(100);
    let loads = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let cache = cache.clone();
            let loads = Arc::clone(&loads);
            tokio::spawn(async move {
                let waiting = cache.clone();
                cache
                    .get_or_load("entry_point:checkout", || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        // Hold the load until every other caller has missed and joined it.
                        wait_for_waiters_async(&waiting, CALLERS as u64 - 1).await;
                        Ok::<_, SourceDown>(Loaded::new(42))
                    })
                    .await
            })
        })
        .collect();
    let mut first = None;
    for task in tasks {
        let value = task.await.unwrap().unwrap();
        let first = first.get_or_insert_with(|| Arc::clone(&value));
        assert!(
            Arc::ptr_eq(first, &value),
            "every caller gets the same value"
        );
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.misses), (1, CALLERS as u64));
    assert_eq!(stats.coalesced_waiters, CALLERS as u64 - 1);
}

/// The blocking twin of the test above, with a thousand OS threads (ten thousand tasks cover the
/// stampede bound; this many threads is what a blocking caller realistically has).
#[test]
fn a_thousand_concurrent_blocking_misses_load_once() {
    const CALLERS: usize = 1_000;
    let cache: Cache<&'static str, u64> = Cache::new(100);
    let loads = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(CALLERS));
    let threads: Vec<_> = (0..CALLERS)
        .map(|_| {
            let cache = cache.clone();
            let loads = Arc::clone(&loads);
            let start = Arc::clone(&start);
            thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    start.wait();
                    cache.get_or_load_blocking("entry_point:checkout", || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        wait_for_waiters(&cache, CALLERS as u64 - 1);
                        Ok::<_, SourceDown>(Loaded::new(42))
                    })
                })
                .unwrap()
        })
        .collect();
    for thread in threads {
        assert_eq!(*thread.join().unwrap().unwrap(), 42);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats().loads, 1);
}

#[test]
fn removal_listener_hears_every_cause_and_stats_count_them() {
    let removed = Arc::new(Mutex::new(Vec::new()));
    let cache: Cache<u32, u32> = Cache::builder()
        .removal_listener({
            let removed = Arc::clone(&removed);
            move |key: &u32, _: &Arc<u32>, cause| removed.lock().unwrap().push((*key, cause))
        })
        .build();
    cache.insert(1, Loaded::new(1));
    cache.insert(1, Loaded::new(2));
    cache.insert(2, Loaded::new(2).with_tags(["params"]));
    cache.insert(3, Loaded::new(3));
    cache.insert(4, Loaded::new(4));
    cache.invalidate(&1);
    cache.invalidate(&1);
    cache.invalidate_tag("params");
    cache.invalidate_all();
    let mut removed = removed.lock().unwrap().clone();
    removed[3..].sort_unstable_by_key(|(key, _)| *key);
    assert_eq!(
        removed,
        vec![
            (1, RemovalCause::Replaced),
            (1, RemovalCause::Invalidated),
            (2, RemovalCause::Invalidated),
            (3, RemovalCause::Invalidated),
            (4, RemovalCause::Invalidated),
        ]
    );
    assert_eq!(cache.get(&3), None);
    let stats: CacheStats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (0, 1));
    assert_eq!(
        (
            stats.invalidations_key,
            stats.invalidations_tag,
            stats.invalidations_all
        ),
        (2, 1, 1)
    );
    assert_eq!(stats.invalidated_entries, 4);
    assert!(cache.is_empty());
}

#[test]
fn errors_are_cached_only_when_asked_and_only_until_their_own_ttl() {
    let clock = Arc::new(ManualClock::new());
    let cache: Cache<&str, u32> = Cache::builder()
        .negative_ttl(Duration::from_secs(5))
        .clock(clock.clone())
        .build();
    let loads = AtomicUsize::new(0);
    let load = |result: Result<u32, SourceDown>| {
        cache.get_or_load_blocking("params", || {
            loads.fetch_add(1, Ordering::SeqCst);
            result.map(Loaded::new)
        })
    };
    assert!(load(Err(SourceDown("timeout"))).is_err());
    clock.advance(Duration::from_secs(4));
    match load(Ok(1)) {
        Err(LoadError::Failed(error)) => assert_eq!(*error, SourceDown("timeout")),
        other => panic!("expected the cached error, got {other:?}"),
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats().negative_hits, 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(*load(Ok(2)).unwrap(), 2, "the cached error expired");
    assert_eq!(loads.load(Ordering::SeqCst), 2);

    // Invalidations drop cached errors: by key, and by any tag (an error has no tags).
    cache.invalidate(&"params");
    assert!(load(Err(SourceDown("down"))).is_err());
    cache.invalidate(&"params");
    assert_eq!(*load(Ok(3)).unwrap(), 3);
    cache.invalidate(&"params");
    assert!(load(Err(SourceDown("down"))).is_err());
    cache.invalidate_tag("rule:RF-002");
    assert_eq!(*load(Ok(4)).unwrap(), 4);
    assert_eq!(loads.load(Ordering::SeqCst), 6);
}

/// A load that fails while an invalidation of its key (or any tag) comes is not cached as an
/// error, even with negative caching on: the invalidation may be the fix for what failed.
#[test]
fn a_failed_load_that_races_an_invalidation_is_not_cached_as_an_error() {
    type Invalidate = fn(&Cache<&'static str, u32>);
    let invalidations: [(&str, Invalidate); 2] = [
        ("key", |cache| cache.invalidate(&"params")),
        ("tag", |cache| cache.invalidate_tag("rule:RF-002")),
    ];
    for (kind, invalidate) in invalidations {
        let cache: Cache<&'static str, u32> = Cache::builder()
            .negative_ttl(Duration::from_secs(300))
            .build();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        thread::scope(|scope| {
            let failing = scope.spawn(|| {
                cache.get_or_load_blocking("params", move || {
                    started_tx.send(()).unwrap();
                    go_rx.recv_timeout(JOIN_DEADLINE).unwrap();
                    Err::<Loaded<u32>, _>(SourceDown("read before the fix"))
                })
            });
            started_rx.recv_timeout(JOIN_DEADLINE).unwrap();
            invalidate(&cache);
            go_tx.send(()).unwrap();
            assert!(failing.join().unwrap().is_err());
        });
        let next = cache.get_or_load_blocking("params", || Ok::<_, SourceDown>(Loaded::new(2)));
        assert_eq!(
            next.map(|v| *v).ok(),
            Some(2),
            "the error of a load raced by an invalidation by {kind} was cached"
        );
        // Without the race the same error is cached (so the check above is not vacuous).
        assert!(cache
            .get_or_load_blocking("other", || Err::<Loaded<u32>, _>(SourceDown("down")))
            .is_err());
        assert!(cache
            .get_or_load_blocking("other", || Ok::<_, SourceDown>(Loaded::new(3)))
            .is_err());
    }
}

#[test]
fn errors_are_not_cached_by_default() {
    let cache: Cache<&str, u32> = Cache::new(100);
    assert!(cache
        .get_or_load_blocking("params", || Err::<Loaded<u32>, _>(SourceDown("timeout")))
        .is_err());
    assert_eq!(
        *cache
            .get_or_load_blocking("params", || Ok::<_, SourceDown>(Loaded::new(1)))
            .unwrap(),
        1
    );
}
