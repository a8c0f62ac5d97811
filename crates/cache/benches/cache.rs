//! Benchmarks of `rulebook-cache` against its peers, measured in the same run:
//!
//! - `hit/1_thread/*` and `hit/2_threads/*`: reads of cached keys, against quick_cache,
//!   moka and a `RwLock<HashMap>`;
//! - `stampede/*`: concurrent misses on one key against a naive check-then-act cache (the
//!   number of loads per stampede is printed);
//! - `invalidate_tag/*`: invalidating a tag over a cache of 100,000 entries.
//!
//! Run with `cargo bench -p rulebook-cache -- --warm-up-time 1 --measurement-time 3`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rulebook_cache::{Cache, Loaded};

const KEYS: u64 = 10_000;

/// A cache the hit benchmarks can read, the same way for every peer.
trait Read: Send + Sync + 'static {
    fn read(&self, key: u64) -> Option<Arc<u64>>;
}

impl Read for Cache<u64, u64> {
    #[inline]
    fn read(&self, key: u64) -> Option<Arc<u64>> {
        self.get(&key)
    }
}

impl Read for quick_cache::sync::Cache<u64, Arc<u64>> {
    #[inline]
    fn read(&self, key: u64) -> Option<Arc<u64>> {
        self.get(&key)
    }
}

impl Read for moka::sync::Cache<u64, Arc<u64>> {
    #[inline]
    fn read(&self, key: u64) -> Option<Arc<u64>> {
        self.get(&key)
    }
}

impl Read for RwLock<HashMap<u64, Arc<u64>>> {
    #[inline]
    fn read(&self, key: u64) -> Option<Arc<u64>> {
        self.read().ok().and_then(|map| map.get(&key).cloned())
    }
}

fn peers() -> Vec<(&'static str, Arc<dyn Read>)> {
    let rulebook: Cache<u64, u64> = Cache::builder().max_capacity(2 * KEYS).build();
    // The service's configuration: a five-minute time to live, so every hit reads the clock.
    let rulebook_ttl: Cache<u64, u64> = Cache::builder()
        .max_capacity(2 * KEYS)
        .time_to_live(Duration::from_secs(300))
        .build();
    let quick = quick_cache::sync::Cache::<u64, Arc<u64>>::new(2 * KEYS as usize);
    let moka = moka::sync::Cache::<u64, Arc<u64>>::new(2 * KEYS);
    let mut map = HashMap::new();
    for key in 0..KEYS {
        rulebook.insert(key, Loaded::new(key).with_version(1).with_tags(["bench"]));
        rulebook_ttl.insert(key, Loaded::new(key).with_version(1).with_tags(["bench"]));
        quick.insert(key, Arc::new(key));
        moka.insert(key, Arc::new(key));
        map.insert(key, Arc::new(key));
    }
    moka.run_pending_tasks();
    vec![
        ("rulebook_cache", Arc::new(rulebook)),
        ("rulebook_cache_ttl", Arc::new(rulebook_ttl)),
        ("quick_cache", Arc::new(quick)),
        ("moka", Arc::new(moka)),
        ("rwlock_hashmap", Arc::new(RwLock::new(map))),
    ]
}

/// Reads `iters` keys, spread over the key space, on each of `threads` threads at once.
fn run_reads(cache: &Arc<dyn Read>, threads: usize, iters: u64) -> Duration {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let cache = Arc::clone(cache);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let mut key = thread as u64 * 7919;
                for _ in 0..iters {
                    key = (key + 7) % KEYS;
                    black_box(cache.read(black_box(key)));
                }
                start.elapsed()
            })
        })
        .collect();
    barrier.wait();
    handles
        .into_iter()
        .map(|handle| handle.join().unwrap_or_default())
        .max()
        .unwrap_or_default()
}

fn hit_path(c: &mut Criterion) {
    let peers = peers();
    for threads in [1, 2] {
        let name = if threads == 1 {
            "hit/1_thread"
        } else {
            "hit/2_threads"
        };
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(threads as u64));
        for (peer, cache) in &peers {
            group.bench_function(*peer, |b| {
                if threads == 1 {
                    let mut key = 0;
                    b.iter(|| {
                        key = (key + 7) % KEYS;
                        black_box(cache.read(black_box(key)))
                    });
                } else {
                    b.iter_custom(|iters| run_reads(cache, threads, iters));
                }
            });
        }
        group.finish();
    }
}

/// The check-then-act cache from the problem reports: look, and on a miss load and store,
/// with nothing held across the gap.
struct NaiveCache {
    map: RwLock<HashMap<u64, Arc<u64>>>,
}

impl NaiveCache {
    fn get_or_load(&self, key: u64, load: impl FnOnce() -> u64) -> Arc<u64> {
        if let Some(value) = self.map.read().ok().and_then(|map| map.get(&key).cloned()) {
            return value;
        }
        let value = Arc::new(load());
        if let Ok(mut map) = self.map.write() {
            map.insert(key, Arc::clone(&value));
        }
        value
    }
}

const STAMPEDE_THREADS: usize = 16;

/// A load that takes a while, as reading and compiling rules does.
fn slow_load(loads: &AtomicUsize) -> u64 {
    loads.fetch_add(1, Ordering::Relaxed);
    thread::sleep(Duration::from_millis(2));
    42
}

fn stampede_round(get: impl Fn(&AtomicUsize) + Send + Sync) -> usize {
    let loads = AtomicUsize::new(0);
    let barrier = Barrier::new(STAMPEDE_THREADS);
    thread::scope(|scope| {
        for _ in 0..STAMPEDE_THREADS {
            scope.spawn(|| {
                barrier.wait();
                get(&loads);
            });
        }
    });
    loads.into_inner()
}

fn stampede(c: &mut Criterion) {
    let mut group = c.benchmark_group("stampede");
    group.sample_size(20);
    let mut naive_loads = (0, 0);
    group.bench_function("naive_check_then_act", |b| {
        b.iter(|| {
            let naive = NaiveCache {
                map: RwLock::new(HashMap::new()),
            };
            let loads = stampede_round(|loads| {
                black_box(naive.get_or_load(1, || slow_load(loads)));
            });
            naive_loads = (naive_loads.0 + loads, naive_loads.1 + 1);
        });
    });
    let mut rulebook_loads = (0, 0);
    group.bench_function("rulebook_cache", |b| {
        b.iter(|| {
            let cache: Cache<u64, u64> = Cache::new(16);
            let loads = stampede_round(|loads| {
                let got =
                    cache.get_or_load_blocking(1, || Ok::<_, ()>(Loaded::new(slow_load(loads))));
                black_box(got.ok());
            });
            rulebook_loads = (rulebook_loads.0 + loads, rulebook_loads.1 + 1);
        });
    });
    group.finish();
    let mean = |(loads, rounds): (usize, usize)| loads as f64 / rounds.max(1) as f64;
    println!(
        "stampede of {STAMPEDE_THREADS} concurrent misses: naive check-then-act ran {:.2} loads per stampede, rulebook-cache {:.2}",
        mean(naive_loads),
        mean(rulebook_loads)
    );
}

fn invalidate_tag(c: &mut Criterion) {
    const ENTRIES: u64 = 100_000;
    let filled = |tag_of: fn(u64) -> String| {
        let cache: Cache<u64, u64> = Cache::new(2 * ENTRIES);
        for key in 0..ENTRIES {
            cache.insert(
                key,
                Loaded::new(key).with_tags([tag_of(key), "tenant".into()]),
            );
        }
        cache
    };
    let mut group = c.benchmark_group("invalidate_tag");
    group.sample_size(10);
    group.bench_function("one_of_100000_entries", |b| {
        let cache = filled(|key| format!("rule:{key}"));
        let mut key = 0;
        b.iter(|| {
            key = (key + 1) % ENTRIES;
            cache.invalidate_tag(&format!("rule:{key}"));
        });
    });
    group.bench_function("all_100000_entries", |b| {
        b.iter_batched(
            || filled(|key| format!("rule:{key}")),
            |cache| {
                cache.invalidate_tag("tenant");
                cache
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, hit_path, stampede, invalidate_tag);
criterion_main!(benches);
