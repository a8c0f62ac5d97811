//! Rulebook's cache against the check-then-act cache of the problem reports.
//!
//! 1. A stampede: 32 threads miss on the same ruleset at once. The naive cache loads it once
//!    per thread; `rulebook-cache` loads it once.
//! 2. An invalidation racing a load: a rule is edited while its entry point is being loaded.
//!    The naive cache stores the stale ruleset after the invalidation and serves it until its
//!    TTL; `rulebook-cache` hands the load's value to the caller that was waiting for it, but
//!    does not insert it, so the next read loads the edited rule.
//!
//! Run with `cargo run --release -p rulebook-cache --example stampede`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rulebook_cache::{Cache, Loaded};

const THREADS: usize = 32;
const KEY: &str = "entry_point:checkout";

/// The check-then-act cache: look, and on a miss load and store, with nothing held across the
/// gap.
#[derive(Default)]
struct NaiveCache {
    map: Mutex<HashMap<String, String>>,
}

impl NaiveCache {
    fn get(&self, key: &str) -> Option<String> {
        self.map.lock().ok()?.get(key).cloned()
    }

    fn get_or_load(&self, key: &str, load: impl FnOnce() -> String) -> String {
        if let Some(value) = self.get(key) {
            return value;
        }
        let value = load();
        if let Ok(mut map) = self.map.lock() {
            map.insert(key.to_string(), value.clone());
        }
        value
    }

    fn invalidate(&self, key: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(key);
        }
    }
}

/// Reading and compiling the rules of an entry point takes a while.
fn load_rules(loads: &AtomicUsize) -> String {
    loads.fetch_add(1, Ordering::SeqCst);
    thread::sleep(Duration::from_millis(50));
    "checkout rules v1".to_string()
}

/// Runs `get` on `THREADS` threads released at once, and returns how long they took.
fn stampede(get: impl Fn() + Sync) -> Duration {
    let barrier = Barrier::new(THREADS);
    let start = Instant::now();
    thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                barrier.wait();
                get();
            });
        }
    });
    start.elapsed()
}

fn main() {
    println!("1. A stampede: {THREADS} threads miss on `{KEY}` at the same moment\n");

    let naive = NaiveCache::default();
    let naive_loads = AtomicUsize::new(0);
    let took = stampede(|| {
        naive.get_or_load(KEY, || load_rules(&naive_loads));
    });
    println!(
        "   naive check-then-act cache: {:>2} loads ({took:.0?})",
        naive_loads.load(Ordering::SeqCst)
    );

    let cache: Cache<String, String> = Cache::new(1_000);
    let loads = AtomicUsize::new(0);
    let took = stampede(|| {
        let got = cache.get_or_load_blocking(KEY.to_string(), || {
            Ok::<_, String>(Loaded::new(load_rules(&loads)))
        });
        assert!(got.is_ok());
    });
    let stats = cache.stats();
    println!(
        "   rulebook-cache:             {:>2} load  ({took:.0?}; {} callers waited for it)\n",
        loads.load(Ordering::SeqCst),
        stats.coalesced_waiters
    );

    println!("2. Rule RF-002 is edited while `{KEY}` is being loaded\n");
    let source = AtomicU64::new(1);
    let rules = |version: u64| format!("checkout rules v{version}");

    // The naive cache: the load read v1, the edit removed the key, then the load stored v1.
    let naive = NaiveCache::default();
    race(
        |loading, go| {
            naive.get_or_load(KEY, || {
                let version = source.load(Ordering::SeqCst);
                loading.send(()).ok();
                go.recv().ok();
                rules(version)
            })
        },
        || {
            source.store(2, Ordering::SeqCst);
            naive.invalidate(KEY);
        },
    );
    println!(
        "   naive check-then-act cache: after the edit it serves `{}` (stale until its TTL)",
        naive.get(KEY).unwrap_or_default()
    );

    source.store(1, Ordering::SeqCst);
    let cache: Cache<String, String> = Cache::new(1_000);
    let load = || {
        let version = source.load(Ordering::SeqCst);
        // The ruleset learns which rules it holds as it loads them: tags come at the end.
        Loaded::new(rules(version))
            .with_tags(["entry_point:checkout", "rule:RF-002"])
            .with_version(version)
    };
    let waited = race(
        |loading, go| {
            let got = cache.get_or_load_blocking(KEY.to_string(), || {
                let loaded = load();
                loading.send(()).ok();
                go.recv().ok();
                Ok::<_, String>(loaded)
            });
            got.map(|value| value.to_string()).unwrap_or_default()
        },
        || {
            source.store(2, Ordering::SeqCst);
            cache.invalidate_tag("rule:RF-002");
        },
    );
    println!("   rulebook-cache: the caller that was already waiting got `{waited}`,");
    println!(
        "                   but it was not inserted (cached now: {:?}, discarded loads: {})",
        cache.get(&KEY.to_string()).map(|value| value.to_string()),
        cache.stats().discarded_loads
    );
    let next = cache.get_or_load_blocking(KEY.to_string(), || Ok::<_, String>(load()));
    println!(
        "                   the next read loads `{}`",
        next.map(|value| value.to_string()).unwrap_or_default()
    );
}

/// Runs `read` on a thread; when its load has read the source, runs `edit`, then lets the load
/// finish. Returns what `read` got.
fn race<T: Send>(
    read: impl FnOnce(mpsc::Sender<()>, mpsc::Receiver<()>) -> T + Send,
    edit: impl FnOnce(),
) -> T {
    let (loading_tx, loading_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    thread::scope(|scope| {
        let reader = scope.spawn(move || read(loading_tx, go_rx));
        loading_rx.recv().ok();
        edit();
        go_tx.send(()).ok();
        reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
