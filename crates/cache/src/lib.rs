#![doc = include_str!("../README.md")]
//!
//! # The guarantees
//!
//! 1. **One load per key.** Callers of [`Cache::get_or_load`] (async) or
//!    [`Cache::get_or_load_blocking`] (threads) that miss on the same key while a load is in
//!    flight wait for it and receive its result, error included ([`LoadError::Failed`] holds
//!    the loader's error in an `Arc`, shared by every waiter). Errors are not cached unless
//!    [`CacheBuilder::negative_ttl`] asks for it. If the loading caller is cancelled (its
//!    future dropped), one waiter takes over with its own loader; if the loader panics, the
//!    panic continues in the loading caller and every waiter receives
//!    [`LoadError::Panicked`]. Either way a guard's `Drop` wakes the waiters, so none is
//!    stranded.
//! 2. **No resurrection.** Once [`Cache::invalidate`], [`Cache::invalidate_tag`] or
//!    [`Cache::invalidate_all`] has returned, no read that starts afterwards returns a value
//!    whose load began before the call. A load in flight at the time still answers the callers
//!    that were already waiting for it, but its value is not inserted. This holds when the
//!    load learns its tags only as it finishes.
//! 3. **Versions never go backwards.** An insert whose [`Loaded::with_version`] is older than
//!    the cached entry's is refused and counted; a load refused that way answers with the
//!    newer cached value.
//! 4. **Bounded.** By entries, or by weight with [`CacheBuilder::weigher`]; a time to live and
//!    a time to idle (both off by default), measured with an injectable [`Clock`].
//! 5. **Counted.** [`Cache::stats`] and a removal listener that is told the [`RemovalCause`].
//!
//! # The protocol
//!
//! The cache keeps one **invalidation epoch**, a counter. Every invalidation, under the
//! *coherence lock*, bumps it and records the new value: for `invalidate_all` in one field,
//! for a key or a tag in a map entry — then removes the matching entries (a tag index maps
//! each tag to the keys cached with it) and releases the lock.
//!
//! A load reads the epoch when it begins (its *start*), also under the coherence lock, and
//! registers the start as in flight. When the loader returns, the cache takes the coherence
//! lock again and, **in the same critical section**, checks whether any record that matches
//! the value (its key, any of its tags — known by now — or everything) is newer than the
//! start, and inserts only if none is. Because checking-and-inserting and
//! recording-and-removing are each atomic under one lock, they are ordered, and either order
//! is safe:
//!
//! - the invalidation's critical section comes first: its record is newer than the start of
//!   every load that began before it, so such a load's check fails and nothing is inserted;
//! - the insert comes first: the value is in the store when the invalidation runs, so the
//!   invalidation removes it (for a tag, through the tag index, which the insert updated in
//!   the same critical section).
//!
//! A load that began after the bump read its source after the caller's write (the write is
//! committed before the invalidation is called, and the start read synchronises with the
//! bump), so its value is current and may be inserted. Reads of cached entries take no part
//! in any of this: a hit only ever sees entries that passed the check, so the hit path is a
//! plain read of the store.
//!
//! Callers that **join** a load in flight need one more rule, since a caller that starts after
//! an invalidation returned must not get the value of a load that began before it. When it
//! joins, a caller notes whether the epoch still equals the load's start (*clean*: no
//! invalidation of any kind since the load began). When the load ends, the loader marks its
//! value *fresh* if it passed the check. A joined caller takes the value if it is clean or the
//! value is fresh, and otherwise loads again. A value that passed the check had no matching
//! invalidation between its start and its insert, and every joined caller joined before the
//! insert (a load leaves the map of loads in flight in the same critical section of that map's
//! lock as its insert), so the rule admits no stale value.
//!
//! Records are bounded: an invalidation records a key or tag only while some load is in
//! flight, a record at or below the oldest in-flight start can refuse nothing and is pruned,
//! and when no load is in flight every record is dropped.
//!
//! The protocol is model-checked with shuttle (`tests/model_check.rs`: the `shim` module
//! swaps every lock, condition variable and atomic of this crate, and quick_cache's, for
//! shuttle's) on the blocking and the async path, which share every line of the protocol and
//! differ only in how a waiter waits. A randomised stress test (`tests/stress.rs`) checks a
//! million operations and shows that its checker catches a cache with the check switched off.
//!
//! # Design decisions
//!
//! - **Storage and eviction are quick_cache's** (`sync::Cache`, CLOCK-Pro-like with sharded
//!   read/write locks): a well-kept crate with a proven policy, and the fastest hit path of
//!   the peers benchmarked in `benches/cache.rs`. Its own load coalescing (placeholders) is
//!   not used: a placeholder is filled only by inserting, and this cache must hand a value
//!   to its waiters *without* inserting it when an invalidation raced the load, and share
//!   errors with them.
//! - **Every change to the store happens under the coherence lock**, so evictions (reported
//!   through quick_cache's lifecycle hooks during an insert), replacements and removals keep
//!   the tag index and versions exact. Misses, inserts and invalidations serialise on that
//!   lock; hits never touch it.
//! - **The hit path** is quick_cache's `get` plus one counter increment on a cache line owned
//!   by the calling thread (see `stats.rs`). A cache without a time to live or idle stores
//!   bare `Arc<V>`s, so its hit clones exactly what a hit on quick_cache clones; only a cache
//!   with expiry stores deadlines beside its values and reads the clock (see `entries.rs`).
//! - **Expiry is lazy**: an expired entry is no longer returned, and is removed when it is
//!   next loaded or pushed out by the capacity bound (so [`Cache::len`] may count it).
//! - A waiter whose error type differs from the loader's (callers on one key passing loaders
//!   with different error types) cannot share the error, and loads again.
//! - **A loader must not load its own key.** A loader that calls `get_or_load` (or the
//!   blocking twin) for the key it is loading joins its own load and waits for itself forever.
//!   This is documented rather than detected: detecting it would mean remembering, per
//!   thread or task, which keys it is loading, and an async loader may resume on another
//!   thread, where tokio offers no task-local state the cache could rely on without taking a
//!   runtime dependency. Loading *other* keys from a loader is fine, as long as no two loads
//!   wait for each other in a cycle.
#![deny(missing_docs)]

mod cache;
mod clock;
mod coherence;
mod entries;
mod flight;
mod shim;
mod stats;
mod types;

pub use cache::{Cache, CacheBuilder};
pub use clock::{Clock, ManualClock};
pub use stats::CacheStats;
pub use types::{LoadError, Loaded, RemovalCause};
