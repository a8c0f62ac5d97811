//! Reads cached keys in a loop, for counting the instructions of one hit with valgrind: a
//! measure that, unlike wall-clock time, does not move when other work shares the machine.
//!
//! ```text
//! cargo build --release -p rulebook-cache --example hit_instructions
//! for peer in none rulebook_cache rulebook_cache_ttl rulebook_cache_tti quick_cache moka rwlock_hashmap; do
//!   for n in 0 1000000; do
//!     valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
//!       target/release/examples/hit_instructions $peer $n 2>&1 | grep 'I *refs'
//!   done
//! done
//! ```
//!
//! A peer's instructions per hit are the difference between its two runs divided by a million,
//! less the same for `none` (the loop alone). The caches are filled as in `benches/cache.rs`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rulebook_cache::{Cache, Loaded};

const KEYS: u64 = 10_000;

/// Reads `reads` keys spread over the key space with `read`, and returns how many it found.
fn reads(reads: u64, read: impl Fn(u64) -> bool) -> u64 {
    let mut key = 0;
    let mut found = 0;
    for _ in 0..reads {
        key = (key + 7) % KEYS;
        found += u64::from(read(black_box(key)));
    }
    found
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let peer = args.next().unwrap_or_else(|| "rulebook_cache".to_string());
    let count: u64 = match args.next().map(|n| n.parse()) {
        None => 1_000_000,
        Some(Ok(count)) => count,
        Some(Err(_)) => {
            return Err(
                "usage: hit_instructions [peer] [reads], where reads is a whole number".into(),
            )
        }
    };
    let fill_rulebook = |cache: Cache<u64, u64>| {
        for key in 0..KEYS {
            cache.insert(key, Loaded::new(key).with_version(1).with_tags(["bench"]));
        }
        cache
    };
    let found = match peer.as_str() {
        "none" => reads(count, |key| black_box(Some(key)).is_some()),
        "rulebook_cache" | "rulebook_cache_ttl" | "rulebook_cache_tti" => {
            let builder = Cache::builder().max_capacity(2 * KEYS);
            let builder = match peer.as_str() {
                "rulebook_cache_ttl" => builder.time_to_live(Duration::from_secs(300)),
                "rulebook_cache_tti" => builder.time_to_idle(Duration::from_secs(300)),
                _ => builder,
            };
            let cache = fill_rulebook(builder.build());
            reads(count, |key| black_box(cache.get(&key)).is_some())
        }
        "quick_cache" => {
            let cache = quick_cache::sync::Cache::<u64, Arc<u64>>::new(2 * KEYS as usize);
            for key in 0..KEYS {
                cache.insert(key, Arc::new(key));
            }
            reads(count, |key| black_box(cache.get(&key)).is_some())
        }
        "moka" => {
            let cache = moka::sync::Cache::<u64, Arc<u64>>::new(2 * KEYS);
            for key in 0..KEYS {
                cache.insert(key, Arc::new(key));
            }
            cache.run_pending_tasks();
            reads(count, |key| black_box(cache.get(&key)).is_some())
        }
        "rwlock_hashmap" => {
            let map: HashMap<u64, Arc<u64>> = (0..KEYS).map(|key| (key, Arc::new(key))).collect();
            let map = RwLock::new(map);
            reads(count, |key| {
                black_box(map.read().ok().and_then(|map| map.get(&key).cloned())).is_some()
            })
        }
        other => {
            return Err(format!(
                "unknown peer `{other}`: use none, rulebook_cache, rulebook_cache_ttl, rulebook_cache_tti, quick_cache, moka or rwlock_hashmap"
            ))
        }
    };
    println!("{peer}: {found} of {count} reads hit");
    Ok(())
}
