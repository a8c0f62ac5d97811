//! The bookkeeping behind "no resurrection": the invalidation records that a finishing load is
//! checked against, the start epochs of the loads in flight (which bound how long a record must
//! be kept), and the tag index that finds the entries a tag invalidation removes.
//!
//! Everything here lives behind the cache's single coherence mutex (see `cache.rs`), which is
//! also held while an entry is inserted or removed, so that "check the records, then insert" and
//! "write a record, then remove what matches" never interleave.

use std::collections::BTreeMap;
use std::hash::Hash;

use quick_cache::DefaultHashBuilder;

use crate::shim::Arc;

/// The maps here hash with quick_cache's fast hasher (its keys come from the cache's users, the
/// same as the store's keys).
type HashMap<K, V> = std::collections::HashMap<K, V, DefaultHashBuilder>;
type HashSet<K> = std::collections::HashSet<K, DefaultHashBuilder>;

/// The keys that carry one tag. Most tags (`rule:<id>`, `entry_point:<ep>`) are carried by one
/// entry, so that case needs no set of its own (a set is an allocation per tag, which the
/// `invalidate_tag` benchmark showed dominating both inserting and invalidating).
#[derive(Debug)]
pub(crate) enum Keys<K> {
    One(K),
    Many(HashSet<K>),
}

impl<K: Hash + Eq> Keys<K> {
    fn insert(&mut self, key: K) {
        match self {
            Self::One(one) if *one == key => {}
            Self::One(_) => {
                let mut keys = HashSet::default();
                keys.insert(key);
                if let Self::One(one) = std::mem::replace(self, Self::Many(keys)) {
                    if let Self::Many(keys) = self {
                        keys.insert(one);
                    }
                }
            }
            Self::Many(keys) => {
                keys.insert(key);
            }
        }
    }

    /// Removes `key`; returns whether no key is left.
    fn remove(&mut self, key: &K) -> bool {
        match self {
            Self::One(one) => one == key,
            Self::Many(keys) => {
                keys.remove(key);
                keys.is_empty()
            }
        }
    }
}

/// What the cache knows of a cached entry besides its value, when it has tags or a version.
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) version: Option<u64>,
    tags: Box<[Arc<str>]>,
}

/// Records below this many entries are never pruned while loads are in flight.
const MIN_PRUNE_THRESHOLD: usize = 64;

#[derive(Debug)]
pub(crate) struct Coherence<K> {
    /// The epoch of the last `invalidate_all` (0 if none).
    all: u64,
    /// The epoch of the last invalidation of each key, kept only while a load that began before
    /// it may still be in flight.
    keys: HashMap<K, u64>,
    /// The same per tag.
    tags: HashMap<Arc<str>, u64>,
    /// Start epochs of the loads in flight, with how many loads began at each.
    in_flight: BTreeMap<u64, usize>,
    /// Prune the records when they grow past this.
    prune_at: usize,
    /// The version and tags of each cached entry that has either. Kept in step with the store:
    /// every insert and removal happens under the coherence lock and updates it.
    meta: HashMap<K, Meta>,
    /// The cached keys that carry each tag.
    keys_by_tag: HashMap<Arc<str>, Keys<K>>,
    /// How many times records were pruned while loads were in flight (tests show they reach it).
    #[cfg(feature = "test-hooks")]
    pub(crate) prunes_in_flight: u64,
}

impl<K: Hash + Eq + Clone> Coherence<K> {
    pub(crate) fn new() -> Self {
        Self {
            all: 0,
            keys: HashMap::default(),
            tags: HashMap::default(),
            in_flight: BTreeMap::new(),
            prune_at: MIN_PRUNE_THRESHOLD,
            meta: HashMap::default(),
            keys_by_tag: HashMap::default(),
            #[cfg(feature = "test-hooks")]
            prunes_in_flight: 0,
        }
    }

    /// Registers a load that began at `epoch`.
    pub(crate) fn load_started(&mut self, epoch: u64) {
        *self.in_flight.entry(epoch).or_insert(0) += 1;
    }

    /// Unregisters a load that began at `epoch`, and forgets the records no load in flight
    /// can be refused by any more.
    pub(crate) fn load_ended(&mut self, epoch: u64) {
        if let Some(count) = self.in_flight.get_mut(&epoch) {
            *count -= 1;
            if *count == 0 {
                self.in_flight.remove(&epoch);
            }
        }
        match self.in_flight.keys().next() {
            // No load in flight: every later load starts at or after the current epoch, so no
            // record can refuse it.
            None => {
                self.keys.clear();
                self.tags.clear();
                self.prune_at = MIN_PRUNE_THRESHOLD;
            }
            // A record at or below the oldest start epoch refuses no load in flight.
            Some(&oldest) if self.keys.len() + self.tags.len() > self.prune_at => {
                self.keys.retain(|_, epoch| *epoch > oldest);
                self.tags.retain(|_, epoch| *epoch > oldest);
                self.prune_at = MIN_PRUNE_THRESHOLD.max(2 * (self.keys.len() + self.tags.len()));
                #[cfg(feature = "test-hooks")]
                {
                    self.prunes_in_flight += 1;
                }
            }
            Some(_) => {}
        }
    }

    /// Whether a load that began at `start` must not insert its value for `key` with `tags`:
    /// some invalidation that matches it came after it began.
    pub(crate) fn invalidated_since(&self, key: &K, tags: &[Arc<str>], start: u64) -> bool {
        self.all > start
            || self.keys.get(key).is_some_and(|&epoch| epoch > start)
            || tags
                .iter()
                .any(|tag| self.tags.get(tag).is_some_and(|&epoch| epoch > start))
    }

    /// Records an invalidation of `key` at `epoch` (only needed while loads are in flight).
    pub(crate) fn record_key(&mut self, key: &K, epoch: u64) {
        if !self.in_flight.is_empty() {
            self.keys.insert(key.clone(), epoch);
        }
    }

    /// Records an invalidation of `tag` at `epoch` and returns the cached keys that carry it.
    pub(crate) fn record_tag(&mut self, tag: &str, epoch: u64) -> Vec<K> {
        if !self.in_flight.is_empty() {
            self.tags.insert(Arc::from(tag), epoch);
        }
        match self.keys_by_tag.remove(tag) {
            None => Vec::new(),
            Some(Keys::One(key)) => vec![key],
            Some(Keys::Many(keys)) => keys.into_iter().collect(),
        }
    }

    /// Records an invalidation of everything at `epoch`; it supersedes every other record.
    pub(crate) fn record_all(&mut self, epoch: u64) {
        self.all = epoch;
        self.keys.clear();
        self.tags.clear();
        self.meta.clear();
        self.keys_by_tag.clear();
    }

    /// The version of the entry cached under `key`.
    pub(crate) fn version(&self, key: &K) -> Option<u64> {
        self.meta.get(key).and_then(|meta| meta.version)
    }

    /// Indexes the entry just inserted under `key` (replacing what was known of the old one).
    pub(crate) fn track(&mut self, key: &K, version: Option<u64>, tags: Vec<Arc<str>>) {
        self.untrack(key);
        if version.is_none() && tags.is_empty() {
            return;
        }
        for tag in &tags {
            match self.keys_by_tag.get_mut(tag) {
                Some(keys) => keys.insert(key.clone()),
                None => {
                    self.keys_by_tag
                        .insert(Arc::clone(tag), Keys::One(key.clone()));
                }
            }
        }
        let tags = tags.into_boxed_slice();
        self.meta.insert(key.clone(), Meta { version, tags });
    }

    /// Forgets the entry cached under `key`, which has just left the store.
    pub(crate) fn untrack(&mut self, key: &K) {
        if let Some(meta) = self.meta.remove(key) {
            for tag in meta.tags.iter() {
                if let Some(keys) = self.keys_by_tag.get_mut(tag) {
                    if keys.remove(key) {
                        self.keys_by_tag.remove(tag);
                    }
                }
            }
        }
    }

    /// How many entries have their tags or version indexed, and how many tags are indexed.
    #[cfg(feature = "test-hooks")]
    pub(crate) fn indexed(&self) -> (usize, usize) {
        (self.meta.len(), self.keys_by_tag.len())
    }

    /// How many invalidation records are kept (for tests of the bound).
    #[cfg(all(test, not(feature = "shuttle")))]
    pub(crate) fn records(&self) -> usize {
        self.keys.len() + self.tags.len()
    }
}

#[cfg(all(test, not(feature = "shuttle")))]
mod tests {
    use super::*;

    fn tags(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|name| Arc::from(*name)).collect()
    }

    #[test]
    fn the_tag_index_follows_entries_in_and_out() {
        let mut coherence = Coherence::new();
        coherence.track(&1, None, tags(&["params", "rule:1"]));
        coherence.track(&2, Some(4), tags(&["params", "rule:2"]));
        coherence.track(&3, None, tags(&["params"]));
        assert_eq!(coherence.version(&2), Some(4));
        // Replacing an entry replaces its tags.
        coherence.track(&3, None, tags(&["rule:3"]));
        coherence.untrack(&2);
        let mut params = coherence.record_tag("params", 1);
        params.sort_unstable();
        assert_eq!(params, vec![1]);
        assert_eq!(coherence.record_tag("rule:2", 2), Vec::<i32>::new());
        assert_eq!(coherence.record_tag("rule:3", 3), vec![3]);
        assert_eq!(coherence.version(&2), None);
    }
}
