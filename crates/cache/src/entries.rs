//! The entries: quick_cache's concurrent cache, in one of two layouts chosen when the cache is
//! built.
//!
//! A cache without a time to live or idle keeps bare `Arc<V>`s, so its hit clones exactly what
//! a hit on quick_cache itself clones and reads nothing else. A cache with expiry keeps each
//! value's deadline (and, with a time to idle, a shared last-read timestamp) beside it. Which
//! layout a cache has is fixed at build time, so the hit path branches on it once, and always
//! the same way.

use std::hash::Hash;

use quick_cache::{Lifecycle, OptionsBuilder, Weighter};

use crate::shim::{Arc, AtomicU64};

pub(crate) type WeigherFn<K, V> = Arc<dyn Fn(&K, &V) -> u64 + Send + Sync>;

/// An entry as the cache's bookkeeping sees it, whichever layout it is stored in.
pub(crate) struct Entry<V> {
    pub(crate) value: Arc<V>,
    /// Clock nanoseconds after which the entry is expired (`u64::MAX`: never).
    pub(crate) expires_at: u64,
    /// Clock nanoseconds of the last read, when a time to idle is configured.
    pub(crate) last_read: Option<Arc<AtomicU64>>,
}

impl<V> Entry<V> {
    /// An entry that never expires.
    fn plain(value: Arc<V>) -> Self {
        Self {
            value,
            expires_at: u64::MAX,
            last_read: None,
        }
    }
}

impl<V> Clone for Entry<V> {
    #[inline]
    fn clone(&self) -> Self {
        Self {
            value: Arc::clone(&self.value),
            expires_at: self.expires_at,
            last_read: self.last_read.clone(),
        }
    }
}

/// Weighs entries for the capacity bound: 1 each, or the user's weigher (at least 1, since
/// quick_cache never evicts weightless entries).
pub(crate) struct EntryWeigher<K, V>(Option<WeigherFn<K, V>>);

impl<K, V> Clone for EntryWeigher<K, V> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K, V> EntryWeigher<K, V> {
    #[inline]
    fn weigh(&self, key: &K, value: &V) -> u64 {
        self.0.as_ref().map_or(1, |weigh| weigh(key, value).max(1))
    }
}

impl<K, V> Weighter<K, Arc<V>> for EntryWeigher<K, V> {
    #[inline]
    fn weight(&self, key: &K, value: &Arc<V>) -> u64 {
        self.weigh(key, value)
    }
}

impl<K, V> Weighter<K, Entry<V>> for EntryWeigher<K, V> {
    #[inline]
    fn weight(&self, key: &K, entry: &Entry<V>) -> u64 {
        self.weigh(key, &entry.value)
    }
}

/// Collects what quick_cache evicts during an insert, so the cache can update its tag index,
/// statistics and listener afterwards.
#[derive(Clone, Copy)]
pub(crate) struct CollectEvictions;

impl<K, T> Lifecycle<K, T> for CollectEvictions {
    type RequestState = Vec<(K, T)>;

    fn on_evict(&self, evicted: &mut Self::RequestState, key: K, entry: T) {
        evicted.push((key, entry));
    }
}

/// The store's hasher: foldhash's fast variant, hashbrown's own default, with a random seed
/// per cache. quick_cache's default is foldhash's quality variant, which adds a final
/// multiply-and-fold that a hit pays for; hashbrown and quick_cache only need the bits the
/// fast variant already mixes well.
type Hasher = foldhash::fast::RandomState;

type Quick<K, T, V> = quick_cache::sync::Cache<K, T, EntryWeigher<K, V>, Hasher, CollectEvictions>;

/// The entries, in the layout the cache was built with (see the module docs).
pub(crate) enum Entries<K, V> {
    /// No expiry: bare values.
    Plain(Quick<K, Arc<V>, V>),
    /// A time to live or idle: values with their expiry.
    Timed(Quick<K, Entry<V>, V>),
}

impl<K, V> Entries<K, V>
where
    K: Hash + Eq + Clone,
{
    /// A store for up to `max_capacity` entries (or weight, with a weigher).
    pub(crate) fn new(max_capacity: u64, weigher: Option<WeigherFn<K, V>>, timed: bool) -> Self {
        let estimated_items = usize::try_from(max_capacity.clamp(1, 1 << 20)).unwrap_or(1 << 20);
        let options = OptionsBuilder::new()
            .estimated_items_capacity(estimated_items)
            .weight_capacity(max_capacity)
            .build();
        let weigher = EntryWeigher(weigher);
        let hasher = Hasher::default();
        match (options, timed) {
            (Ok(options), false) => Self::Plain(Quick::with_options(
                options,
                weigher,
                hasher,
                CollectEvictions,
            )),
            (Ok(options), true) => Self::Timed(Quick::with_options(
                options,
                weigher,
                hasher,
                CollectEvictions,
            )),
            // The options above are always valid; fall back to the plain constructor anyway
            // rather than panic.
            (Err(_), false) => Self::Plain(Quick::with(
                estimated_items,
                max_capacity,
                weigher,
                hasher,
                CollectEvictions,
            )),
            (Err(_), true) => Self::Timed(Quick::with(
                estimated_items,
                max_capacity,
                weigher,
                hasher,
                CollectEvictions,
            )),
        }
    }

    /// The entry for `key`, without marking it as recently used.
    pub(crate) fn peek(&self, key: &K) -> Option<Entry<V>> {
        match self {
            Self::Plain(store) => store.peek(key).map(Entry::plain),
            Self::Timed(store) => store.peek(key),
        }
    }

    /// Inserts `entry` and returns what the insert pushed out (see `insert_with_lifecycle`).
    pub(crate) fn insert(&self, key: K, entry: Entry<V>) -> Vec<(K, Entry<V>)> {
        match self {
            Self::Plain(store) => {
                let mut evicted = Vec::new();
                store.insert_with_lifecycle(key, entry.value, &mut evicted);
                evicted
                    .into_iter()
                    .map(|(key, value)| (key, Entry::plain(value)))
                    .collect()
            }
            Self::Timed(store) => {
                let mut evicted = Vec::new();
                store.insert_with_lifecycle(key, entry, &mut evicted);
                evicted
            }
        }
    }

    pub(crate) fn remove(&self, key: &K) -> Option<(K, Arc<V>)> {
        match self {
            Self::Plain(store) => store.remove(key),
            Self::Timed(store) => store.remove(key).map(|(key, entry)| (key, entry.value)),
        }
    }

    /// Removes every entry and returns them.
    pub(crate) fn drain(&self) -> Vec<(K, Arc<V>)> {
        match self {
            Self::Plain(store) => store.drain().collect(),
            Self::Timed(store) => store
                .drain()
                .map(|(key, entry)| (key, entry.value))
                .collect(),
        }
    }

    pub(crate) fn clear(&self) {
        match self {
            Self::Plain(store) => store.clear(),
            Self::Timed(store) => store.clear(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Plain(store) => store.len(),
            Self::Timed(store) => store.len(),
        }
    }

    pub(crate) fn capacity(&self) -> u64 {
        match self {
            Self::Plain(store) => store.capacity(),
            Self::Timed(store) => store.capacity(),
        }
    }
}
