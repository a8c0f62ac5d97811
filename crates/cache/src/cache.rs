//! The cache: storage (quick_cache), coalesced loads, and the coherence protocol on top.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::Duration;

use crate::clock::{Clock, CoarseClock};
use crate::coherence::Coherence;
use crate::entries::{Entries, Entry, WeigherFn};
use crate::flight::{Flight, Outcome};
use crate::shim::{Arc, AtomicU64, Mutex, Ordering};
use crate::stats::{CacheStats, Counter, Stats};
use crate::types::{LoadError, Loaded, RemovalCause};

/// The default bound on the number of entries.
const DEFAULT_MAX_CAPACITY: u64 = 10_000;

type Listener<K, V> = Arc<dyn Fn(&K, &Arc<V>, RemovalCause) + Send + Sync>;

/// Removals to report to the listener once every lock is released.
type Removals<K, V> = Vec<(K, Arc<V>, RemovalCause)>;

/// A coherent, bounded, concurrent cache. Cheap to clone: clones share the same entries.
///
/// See the crate documentation for the guarantees and the protocol behind them.
pub struct Cache<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, V> fmt::Debug for Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("len", &self.inner.store.len())
            .field("capacity", &self.inner.store.capacity())
            .finish_non_exhaustive()
    }
}

struct Inner<K, V> {
    /// The entries. quick_cache's shards have their own locks; reads take only a shard's read
    /// lock, so the hit path never touches the coherence lock below.
    store: Entries<K, V>,
    /// The invalidation epoch: bumped by every invalidation, read when a load begins. Written
    /// only under `coherence`, read without it by callers deciding whether to join a load.
    epoch: AtomicU64,
    // The coherence lock. Held by every change to the store (insert, invalidate, expire) and
    // by every load's start and end, so an insert's check against the invalidation records and
    // an invalidation's record-then-remove are atomic with respect to each other. It is never
    // held on the hit path, never across a loader or a listener, and never while `flights` is
    // taken (the lock order is `flights` then `coherence`).
    coherence: Mutex<Coherence<K>>,
    // The loads in flight, by key. A separate lock from `coherence` so that callers joining a
    // load do not queue behind invalidations, and held only for a map lookup or update.
    flights: Mutex<HashMap<K, Arc<Flight<V>>>>,
    stats: Stats,
    /// The clock set with `CacheBuilder::clock`; `None` reads the default coarse clock
    /// directly, without a virtual call or a conversion through `Duration`.
    clock: Option<Arc<dyn Clock>>,
    time_to_live: Option<u64>,
    time_to_idle: Option<u64>,
    listener: Option<Listener<K, V>>,
    /// How long a loader's error is cached, if at all.
    negative_ttl: Option<u64>,
    // Cached errors. Taken alone on the miss path, and after `coherence` (never before it)
    // when an error is cached or an invalidation clears them.
    negatives: Mutex<HashMap<K, Negative>>,
    /// The most errors cached at once.
    negative_capacity: usize,
    /// Test-only: when false, a finished load is inserted even if it was invalidated.
    check_invalidations: bool,
}

/// A cached error.
struct Negative {
    expires_at: u64,
    error: Arc<dyn Any + Send + Sync>,
}

/// Configures and builds a [`Cache`].
pub struct CacheBuilder<K, V> {
    max_capacity: u64,
    weigher: Option<WeigherFn<K, V>>,
    time_to_live: Option<Duration>,
    time_to_idle: Option<Duration>,
    clock: Option<Arc<dyn Clock>>,
    listener: Option<Listener<K, V>>,
    negative_ttl: Option<Duration>,
    check_invalidations: bool,
}

impl<K, V> fmt::Debug for CacheBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("max_capacity", &self.max_capacity)
            .field("weigher", &self.weigher.is_some())
            .field("time_to_live", &self.time_to_live)
            .field("time_to_idle", &self.time_to_idle)
            .field("clock", &self.clock)
            .field("removal_listener", &self.listener.is_some())
            .field("negative_ttl", &self.negative_ttl)
            .finish()
    }
}

impl<K, V> Default for CacheBuilder<K, V> {
    fn default() -> Self {
        Self {
            max_capacity: DEFAULT_MAX_CAPACITY,
            weigher: None,
            time_to_live: None,
            time_to_idle: None,
            clock: None,
            listener: None,
            negative_ttl: None,
            check_invalidations: true,
        }
    }
}

impl<K, V> CacheBuilder<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// The most entries the cache holds (default 10,000), or the most total weight when a
    /// [`weigher`](Self::weigher) is set. The bound is split evenly over the internal shards,
    /// so it is met to within the rounding of that split.
    pub fn max_capacity(mut self, max_capacity: u64) -> Self {
        self.max_capacity = max_capacity;
        self
    }

    /// Weighs each entry (at least 1) so [`max_capacity`](Self::max_capacity) bounds total
    /// weight instead of the number of entries.
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u64 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Arc::new(weigher));
        self
    }

    /// Entries expire this long after they were inserted (default: never).
    pub fn time_to_live(mut self, time_to_live: Duration) -> Self {
        self.time_to_live = Some(time_to_live);
        self
    }

    /// Entries expire when not read for this long (default: never).
    pub fn time_to_idle(mut self, time_to_idle: Duration) -> Self {
        self.time_to_idle = Some(time_to_idle);
        self
    }

    /// The clock expiry is measured with (default: the process's monotonic clock, read at a
    /// 5 ms resolution so a hit never pays for a system call; see [`Clock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Called with every entry that leaves the cache and why, after the cache's locks are
    /// released (so it may call back into the cache).
    pub fn removal_listener(
        mut self,
        listener: impl Fn(&K, &Arc<V>, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Caches a loader's error for this long, so a failing source is not asked again by every
    /// read (default: errors are not cached). A cached error is dropped by `invalidate` of its
    /// key and by every `invalidate_tag` and `invalidate_all` (an error has no tags, so any tag
    /// may concern it); an error whose load raced any invalidation is not cached at all.
    pub fn negative_ttl(mut self, negative_ttl: Duration) -> Self {
        self.negative_ttl = Some(negative_ttl);
        self
    }

    /// Test-only (feature `test-hooks`): builds a deliberately broken cache that inserts loaded
    /// values even when an invalidation came while they were loading. It exists so the stress
    /// test and the model check can prove their checkers catch stale reads.
    #[cfg(feature = "test-hooks")]
    pub fn broken_skip_invalidation_check_for_tests(mut self) -> Self {
        self.check_invalidations = false;
        self
    }

    /// Builds the cache.
    pub fn build(self) -> Cache<K, V> {
        let timed = self.time_to_live.is_some() || self.time_to_idle.is_some();
        let store = Entries::new(self.max_capacity, self.weigher, timed);
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Cache {
            inner: Arc::new(Inner {
                store,
                epoch: AtomicU64::new(0),
                coherence: Mutex::new(Coherence::new()),
                flights: Mutex::new(HashMap::new()),
                stats: Stats::new(),
                clock: self.clock,
                time_to_live: self.time_to_live.map(nanos),
                time_to_idle: self.time_to_idle.map(nanos),
                listener: self.listener,
                negative_ttl: self.negative_ttl.map(nanos),
                negatives: Mutex::new(HashMap::new()),
                negative_capacity: usize::try_from(self.max_capacity).unwrap_or(usize::MAX),
                check_invalidations: self.check_invalidations,
            }),
        }
    }
}

/// What one attempt at `get_or_load` found.
enum Step<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// A live entry.
    Hit(Arc<V>),
    /// A cached error (see `negative_ttl`).
    Failed(Arc<E>),
    /// Another caller is loading the key. `clean` is true when no invalidation at all happened
    /// since that load began, so its value is good for this caller whatever it turns out to be.
    Join(Arc<Flight<V>>, bool),
    /// This caller loads the key.
    Lead(LoadGuard<K, V>),
}

/// What a waiter does with the outcome of the load it waited for.
enum Waited<V, E> {
    Done(Result<Arc<V>, LoadError<E>>),
    Retry,
}

fn on_outcome<V, E: Send + Sync + 'static>(outcome: Outcome<V>, clean: bool) -> Waited<V, E> {
    match outcome {
        Outcome::Value { value, fresh } if clean || fresh => Waited::Done(Ok(value)),
        // The value was invalidated while loading and this caller may have started after the
        // invalidation returned: load again.
        Outcome::Value { .. } => Waited::Retry,
        Outcome::Failed(error) => match error.downcast::<E>() {
            Ok(error) => Waited::Done(Err(LoadError::Failed(error))),
            // The leader's loader has another error type than ours: run ours.
            Err(_) => Waited::Retry,
        },
        Outcome::Panicked => Waited::Done(Err(LoadError::Panicked)),
        // The leader was cancelled: take over with our own loader.
        Outcome::Abandoned => Waited::Retry,
    }
}

/// Owned by the caller that runs the loader. Finishing it inserts (or discards) the value and
/// wakes the waiters; dropping it unfinished (the caller was cancelled, or the loader panicked)
/// still wakes them, so no waiter is ever stranded.
struct LoadGuard<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    cache: Cache<K, V>,
    key: K,
    flight: Arc<Flight<V>>,
    finished: bool,
}

impl<K, V> LoadGuard<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn finish<E: Send + Sync + 'static>(
        mut self,
        result: Result<Loaded<V>, E>,
    ) -> Result<Arc<V>, LoadError<E>> {
        let inner = Arc::clone(&self.cache.inner);
        let start = self.flight.start;
        match result {
            Ok(loaded) => {
                let value = Arc::new(loaded.value);
                let mut removals = Vec::new();
                let inserted = {
                    // Insert and leave `flights` in one critical section of the `flights`
                    // lock: a caller that finds this load in `flights` finds it unfinished,
                    // so the freshness verdict below covers every caller that joins it.
                    let mut flights = inner.flights.lock();
                    let inserted = {
                        let mut coherence = inner.coherence.lock();
                        let inserted = self.cache.insert_locked(
                            &mut coherence,
                            self.key.clone(),
                            Arc::clone(&value),
                            loaded.tags,
                            loaded.version,
                            Some(start),
                            &mut removals,
                        );
                        coherence.load_ended(start);
                        inserted
                    };
                    self.leave(&mut flights);
                    inserted
                };
                let (value, fresh) = match inserted {
                    Inserted::Yes => (value, true),
                    Inserted::Invalidated => (value, false),
                    Inserted::Older(Some(newer)) => (newer, true),
                    Inserted::Older(None) => (value, true),
                };
                self.flight.complete(Outcome::Value {
                    value: Arc::clone(&value),
                    fresh,
                });
                self.cache.notify(removals);
                Ok(value)
            }
            Err(error) => {
                inner.stats.incr(Counter::LoadErrors);
                let error = Arc::new(error);
                let erased = Arc::clone(&error) as Arc<dyn Any + Send + Sync>;
                {
                    let mut flights = inner.flights.lock();
                    {
                        let mut coherence = inner.coherence.lock();
                        // Cached only if no invalidation at all came while loading: an error
                        // has no tags to check.
                        if inner.epoch.load(Ordering::SeqCst) == start {
                            self.cache.remember_error(&self.key, Arc::clone(&erased));
                        }
                        coherence.load_ended(start);
                    }
                    self.leave(&mut flights);
                }
                self.flight.complete(Outcome::Failed(erased));
                Err(LoadError::Failed(error))
            }
        }
    }

    fn panicked(mut self) {
        self.cache.inner.stats.incr(Counter::LoadPanics);
        self.complete(Outcome::Panicked);
    }

    /// Ends a load that inserts nothing: takes it out of `flights` (so the next caller starts
    /// afresh), unregisters it, and wakes the waiters with `outcome`.
    fn complete(&mut self, outcome: Outcome<V>) {
        let inner = Arc::clone(&self.cache.inner);
        {
            let mut flights = inner.flights.lock();
            inner.coherence.lock().load_ended(self.flight.start);
            self.leave(&mut flights);
        }
        self.flight.complete(outcome);
    }

    /// Takes this load out of `flights`. Called with the `flights` lock held.
    fn leave(&mut self, flights: &mut HashMap<K, Arc<Flight<V>>>) {
        self.finished = true;
        if flights
            .get(&self.key)
            .is_some_and(|current| Arc::ptr_eq(current, &self.flight))
        {
            flights.remove(&self.key);
        }
    }
}

impl<K, V> Drop for LoadGuard<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let outcome = if std::thread::panicking() {
            self.cache.inner.stats.incr(Counter::LoadPanics);
            Outcome::Panicked
        } else {
            Outcome::Abandoned
        };
        self.complete(outcome);
    }
}

/// How an insert went.
enum Inserted<V> {
    Yes,
    /// Not inserted: an invalidation that matches it came after its load began.
    Invalidated,
    /// Not inserted: the cached entry has a newer version (given back when still live).
    Older(Option<Arc<V>>),
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// A builder with the defaults: 10,000 entries, no expiry, the system clock.
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::default()
    }

    /// A cache holding up to `max_capacity` entries, without expiry.
    pub fn new(max_capacity: u64) -> Self {
        Self::builder().max_capacity(max_capacity).build()
    }

    /// The cached value for `key`, if there is a live one.
    #[inline]
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        let found = self.lookup(key);
        self.inner.stats.incr(if found.is_some() {
            Counter::Hits
        } else {
            Counter::Misses
        });
        found
    }

    /// The cached value for `key`, or the value `loader` produces, which is then cached unless
    /// an invalidation that matches it came while it was loading.
    ///
    /// Concurrent callers that miss on the same key run one loader between them; the others
    /// wait for it and get its result, error included. If the loading caller is cancelled (this
    /// future is dropped), a waiting caller takes over with its own loader. If the loader
    /// panics, the panic continues in this caller and every waiter gets
    /// [`LoadError::Panicked`].
    ///
    /// The loader must not call `get_or_load` (or the blocking twin) for this same `key`: it
    /// would wait for its own load and never finish (see the crate docs).
    pub async fn get_or_load<F, Fut, E>(&self, key: K, loader: F) -> Result<Arc<V>, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded<V>, E>>,
        E: Send + Sync + 'static,
    {
        let mut first = true;
        loop {
            let step = self.step::<E>(&key, first);
            first = false;
            match step {
                Step::Hit(value) => return Ok(value),
                Step::Failed(error) => return Err(LoadError::Failed(error)),
                Step::Join(flight, clean) => match on_outcome(flight.wait().await, clean) {
                    Waited::Done(result) => return result,
                    Waited::Retry => continue,
                },
                Step::Lead(guard) => {
                    let mut load = std::pin::pin!(loader());
                    let polled = std::future::poll_fn(|cx| {
                        match catch_unwind(AssertUnwindSafe(|| load.as_mut().poll(cx))) {
                            Ok(std::task::Poll::Ready(result)) => {
                                std::task::Poll::Ready(Ok(result))
                            }
                            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
                            Err(panic) => std::task::Poll::Ready(Err(panic)),
                        }
                    })
                    .await;
                    return match polled {
                        Ok(result) => guard.finish(result),
                        Err(panic) => {
                            guard.panicked();
                            resume_unwind(panic)
                        }
                    };
                }
            }
        }
    }

    /// The blocking twin of [`get_or_load`](Self::get_or_load), for threads: waiting callers
    /// block their thread. Do not call it from an async task; use `get_or_load` there.
    /// As with `get_or_load`, the loader must not load this same `key`: the thread would wait
    /// for itself forever.
    pub fn get_or_load_blocking<F, E>(&self, key: K, loader: F) -> Result<Arc<V>, LoadError<E>>
    where
        F: FnOnce() -> Result<Loaded<V>, E>,
        E: Send + Sync + 'static,
    {
        let mut first = true;
        loop {
            let step = self.step::<E>(&key, first);
            first = false;
            match step {
                Step::Hit(value) => return Ok(value),
                Step::Failed(error) => return Err(LoadError::Failed(error)),
                Step::Join(flight, clean) => match on_outcome(flight.wait_blocking(), clean) {
                    Waited::Done(result) => return result,
                    Waited::Retry => continue,
                },
                Step::Lead(guard) => {
                    return match catch_unwind(AssertUnwindSafe(loader)) {
                        Ok(result) => guard.finish(result),
                        Err(panic) => {
                            guard.panicked();
                            resume_unwind(panic)
                        }
                    };
                }
            }
        }
    }

    /// Inserts a value computed now. Returns false, and leaves the cache as it was, when the
    /// cached entry for `key` has a newer version.
    pub fn insert(&self, key: K, loaded: Loaded<V>) -> bool {
        let mut removals = Vec::new();
        let inserted = {
            let mut coherence = self.inner.coherence.lock();
            self.insert_locked(
                &mut coherence,
                key,
                Arc::new(loaded.value),
                loaded.tags,
                loaded.version,
                None,
                &mut removals,
            )
        };
        self.notify(removals);
        matches!(inserted, Inserted::Yes)
    }

    /// Removes `key`. Once this returns, no read that starts afterwards gets a value whose load
    /// began before this call.
    pub fn invalidate(&self, key: &K) {
        let removed = {
            let mut coherence = self.inner.coherence.lock();
            let epoch = self.bump_epoch();
            coherence.record_key(key, epoch);
            if self.inner.negative_ttl.is_some() {
                self.inner.negatives.lock().remove(key);
            }
            let removed = self.inner.store.remove(key);
            if let Some((key, _)) = &removed {
                coherence.untrack(key);
            }
            removed
        };
        self.inner.stats.incr(Counter::InvalidationsKey);
        if let Some((key, value)) = removed {
            self.inner.stats.incr(Counter::InvalidatedEntries);
            self.notify(vec![(key, value, RemovalCause::Invalidated)]);
        }
    }

    /// Removes every entry tagged `tag`. Once this returns, no read that starts afterwards gets
    /// a value carrying `tag` whose load began before this call, even when the load learned its
    /// tags only as it finished.
    pub fn invalidate_tag(&self, tag: &str) {
        self.invalidate_tags([tag]);
    }

    /// Removes every entry carrying any of `tags`, as one invalidation: no read sees the
    /// entries of one tag gone while those of another are still there, so a load that starts
    /// after this returns is not dropped again by the rest of the same change. Once this
    /// returns, no read that starts afterwards gets a value carrying one of `tags` whose load
    /// began before this call. Counts one tag invalidation per tag.
    pub fn invalidate_tags<'t>(&self, tags: impl IntoIterator<Item = &'t str>) {
        let mut removals = Vec::new();
        let mut count = 0;
        {
            let mut coherence = self.inner.coherence.lock();
            let epoch = self.bump_epoch();
            self.forget_errors();
            for tag in tags {
                count += 1;
                for key in coherence.record_tag(tag, epoch) {
                    if let Some((key, value)) = self.inner.store.remove(&key) {
                        coherence.untrack(&key);
                        removals.push((key, value, RemovalCause::Invalidated));
                    }
                }
            }
        }
        self.inner.stats.add(Counter::InvalidationsTag, count);
        self.inner
            .stats
            .add(Counter::InvalidatedEntries, removals.len() as u64);
        self.notify(removals);
    }

    /// Removes every entry. Once this returns, no read that starts afterwards gets a value
    /// whose load began before this call.
    pub fn invalidate_all(&self) {
        let mut removals = Vec::new();
        let removed = {
            let mut coherence = self.inner.coherence.lock();
            let epoch = self.bump_epoch();
            coherence.record_all(epoch);
            self.forget_errors();
            if self.inner.listener.is_some() {
                removals.extend(
                    self.inner
                        .store
                        .drain()
                        .into_iter()
                        .map(|(key, value)| (key, value, RemovalCause::Invalidated)),
                );
                removals.len()
            } else {
                let len = self.inner.store.len();
                self.inner.store.clear();
                len
            }
        };
        self.inner.stats.incr(Counter::InvalidationsAll);
        self.inner
            .stats
            .add(Counter::InvalidatedEntries, removed as u64);
        self.notify(removals);
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        self.inner.stats.snapshot()
    }

    /// The number of entries, including expired ones not yet removed (an expired entry is
    /// removed when it is next loaded or pushed out by the capacity bound).
    pub fn len(&self) -> usize {
        self.inner.store.len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.inner.store.len() == 0
    }

    /// The live entry for `key`, without counting.
    #[inline]
    fn lookup(&self, key: &K) -> Option<Arc<V>> {
        match &self.inner.store {
            Entries::Plain(store) => store.get(key),
            Entries::Timed(store) => self.lookup_timed(store.get(key)?),
        }
    }

    /// The value of a timed entry if it is still live, refreshing its last read.
    #[inline]
    fn lookup_timed(&self, entry: Entry<V>) -> Option<Arc<V>> {
        let now = self.now();
        if self.expiry(&entry, now).is_some() {
            return None;
        }
        if let (Some(last_read), Some(idle)) = (&entry.last_read, self.inner.time_to_idle) {
            // Refresh at a coarse grain so hot readers do not all write the same line.
            if now.saturating_sub(last_read.load(Ordering::Relaxed)) > idle / 64 {
                last_read.store(now, Ordering::Relaxed);
            }
        }
        Some(entry.value)
    }

    fn step<E: Send + Sync + 'static>(&self, key: &K, first: bool) -> Step<K, V, E> {
        let count = |counter| {
            if first {
                self.inner.stats.incr(counter);
            }
        };
        if let Some(value) = self.lookup(key) {
            count(Counter::Hits);
            return Step::Hit(value);
        }
        if let Some(error) = self.cached_error::<E>(key) {
            count(Counter::NegativeHits);
            return Step::Failed(error);
        }
        let mut flights = self.inner.flights.lock();
        if let Some(flight) = flights.get(key) {
            count(Counter::Misses);
            self.inner.stats.incr(Counter::Coalesced);
            let clean = self.inner.epoch.load(Ordering::SeqCst) == flight.start;
            return Step::Join(Arc::clone(flight), clean);
        }
        // A leader inserts its value before it leaves `flights`, so a load that finished
        // between the lookup above and taking the lock is seen here.
        if let Some(value) = self.lookup(key) {
            count(Counter::Hits);
            return Step::Hit(value);
        }
        count(Counter::Misses);
        self.inner.stats.incr(Counter::Loads);
        let start = {
            let mut coherence = self.inner.coherence.lock();
            // Read under the coherence lock, together with registering the load, so no record
            // this load could be refused by is pruned before the load is known.
            let start = self.inner.epoch.load(Ordering::SeqCst);
            coherence.load_started(start);
            start
        };
        let flight = Arc::new(Flight::new(start));
        flights.insert(key.clone(), Arc::clone(&flight));
        Step::Lead(LoadGuard {
            cache: self.clone(),
            key: key.clone(),
            flight,
            finished: false,
        })
    }

    /// The cached error for `key`, if errors are cached, one is live, and it is an `E`.
    fn cached_error<E: Send + Sync + 'static>(&self, key: &K) -> Option<Arc<E>> {
        self.inner.negative_ttl?;
        let now = self.now();
        let mut negatives = self.inner.negatives.lock();
        let negative = negatives.get(key)?;
        if now >= negative.expires_at {
            negatives.remove(key);
            return None;
        }
        Arc::clone(&negative.error).downcast::<E>().ok()
    }

    /// Caches a loader's error, if errors are cached and there is room. Called under the
    /// coherence lock.
    fn remember_error(&self, key: &K, error: Arc<dyn Any + Send + Sync>) {
        let Some(ttl) = self.inner.negative_ttl else {
            return;
        };
        let now = self.now();
        let mut negatives = self.inner.negatives.lock();
        if negatives.len() >= self.inner.negative_capacity {
            negatives.retain(|_, negative| now < negative.expires_at);
            if negatives.len() >= self.inner.negative_capacity {
                return;
            }
        }
        let expires_at = now.saturating_add(ttl);
        negatives.insert(key.clone(), Negative { expires_at, error });
    }

    /// Drops every cached error. Called under the coherence lock.
    fn forget_errors(&self) {
        if self.inner.negative_ttl.is_some() {
            self.inner.negatives.lock().clear();
        }
    }

    /// Bumps the invalidation epoch. Called only under the coherence lock.
    fn bump_epoch(&self) -> u64 {
        self.inner.epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn now(&self) -> u64 {
        match &self.inner.clock {
            None => CoarseClock::now_nanos(),
            Some(clock) => u64::try_from(clock.now().as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// Why `entry` is no longer live at `now`, if it is not.
    fn expiry(&self, entry: &Entry<V>, now: u64) -> Option<RemovalCause> {
        if now >= entry.expires_at {
            return Some(RemovalCause::Expired);
        }
        match (&entry.last_read, self.inner.time_to_idle) {
            (Some(last_read), Some(idle))
                if now.saturating_sub(last_read.load(Ordering::Relaxed)) >= idle =>
            {
                Some(RemovalCause::Idle)
            }
            _ => None,
        }
    }

    fn timed(&self) -> bool {
        matches!(self.inner.store, Entries::Timed(_))
    }

    /// Inserts under the coherence lock. `start` is the epoch the load began at (`None` for a
    /// direct insert, which is a value computed now and so cannot predate an invalidation).
    #[allow(clippy::too_many_arguments)]
    fn insert_locked(
        &self,
        coherence: &mut Coherence<K>,
        key: K,
        value: Arc<V>,
        tags: Vec<Arc<str>>,
        version: Option<u64>,
        start: Option<u64>,
        removals: &mut Removals<K, V>,
    ) -> Inserted<V> {
        let inner = &self.inner;
        if let Some(start) = start {
            if inner.check_invalidations && coherence.invalidated_since(&key, &tags, start) {
                inner.stats.incr(Counter::DiscardedLoads);
                return Inserted::Invalidated;
            }
        }
        let now = if self.timed() { self.now() } else { 0 };
        let old = inner.store.peek(&key);
        let old_expiry = match &old {
            Some(old) if self.timed() => self.expiry(old, now),
            _ => None,
        };
        if let (Some(old), Some(new_version)) = (&old, version) {
            if coherence
                .version(&key)
                .is_some_and(|old_version| new_version < old_version)
            {
                inner.stats.incr(Counter::RefusedStale);
                let live = old_expiry.is_none().then(|| Arc::clone(&old.value));
                return Inserted::Older(live);
            }
        }
        let entry = Entry {
            value: Arc::clone(&value),
            expires_at: inner
                .time_to_live
                .map_or(u64::MAX, |ttl| now.saturating_add(ttl)),
            last_read: inner.time_to_idle.map(|_| Arc::new(AtomicU64::new(now))),
        };
        let evicted = inner.store.insert(key.clone(), entry);
        // quick_cache reports what the insert pushed out: the replaced entry, any entry evicted
        // to make room, and the new entry itself when it is too heavy to admit. A value's `Arc`
        // identifies its entry.
        let mut admitted = true;
        for (evicted_key, entry) in evicted {
            coherence.untrack(&evicted_key);
            let cause = if Arc::ptr_eq(&entry.value, &value) {
                admitted = false;
                RemovalCause::Size
            } else if old
                .as_ref()
                .is_some_and(|old| Arc::ptr_eq(&old.value, &entry.value))
            {
                old_expiry.unwrap_or(RemovalCause::Replaced)
            } else if self.timed() {
                self.expiry(&entry, now).unwrap_or(RemovalCause::Size)
            } else {
                RemovalCause::Size
            };
            self.count_removal(cause);
            removals.push((evicted_key, entry.value, cause));
        }
        if admitted {
            coherence.track(&key, version, tags);
        }
        if inner.negative_ttl.is_some() {
            inner.negatives.lock().remove(&key);
        }
        Inserted::Yes
    }

    fn count_removal(&self, cause: RemovalCause) {
        let counter = match cause {
            RemovalCause::Size => Counter::EvictionsSize,
            RemovalCause::Expired => Counter::EvictionsExpired,
            RemovalCause::Idle => Counter::EvictionsIdle,
            RemovalCause::Invalidated => Counter::InvalidatedEntries,
            RemovalCause::Replaced => return,
        };
        self.inner.stats.incr(counter);
    }

    /// Tells the listener, with no lock held.
    fn notify(&self, removals: Removals<K, V>) {
        if let Some(listener) = &self.inner.listener {
            for (key, value, cause) in removals {
                listener(&key, &value, cause);
            }
        }
    }

    #[cfg(all(test, not(feature = "shuttle")))]
    pub(crate) fn invalidation_records(&self) -> usize {
        self.inner.coherence.lock().records()
    }

    /// Test-only (feature `test-hooks`): how many cached entries the coherence index knows the
    /// tags or version of, and how many tags it indexes; both are bounded by the live entries.
    #[cfg(feature = "test-hooks")]
    pub fn tag_index_len_for_tests(&self) -> (usize, usize) {
        self.inner.coherence.lock().indexed()
    }

    /// Test-only (feature `test-hooks`): how many times the invalidation records were pruned
    /// while loads were in flight, so a stress test can show it reached that path.
    #[cfg(feature = "test-hooks")]
    pub fn prunes_in_flight_for_tests(&self) -> u64 {
        self.inner.coherence.lock().prunes_in_flight
    }
}

#[cfg(all(test, not(feature = "shuttle")))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Starts a blocking load of `key` on a thread of `scope` that finishes when `go` fires.
    fn hold_load<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        cache: &'scope Cache<u32, u32>,
        key: u32,
    ) -> (
        std::sync::mpsc::Sender<()>,
        std::thread::ScopedJoinHandle<'scope, ()>,
    ) {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let handle = scope.spawn(move || {
            let loaded = cache.get_or_load_blocking(key, move || {
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                Ok::<_, ()>(Loaded::new(key))
            });
            assert!(loaded.is_ok());
        });
        started_rx.recv().unwrap();
        (go_tx, handle)
    }

    #[test]
    fn invalidations_leave_no_record_when_no_load_is_in_flight() {
        let cache: Cache<u32, u32> = Cache::new(100);
        for key in 0..1_000 {
            cache.invalidate(&key);
            cache.invalidate_tag(&format!("rule:{key}"));
        }
        assert_eq!(cache.invalidation_records(), 0);
    }

    #[test]
    fn records_are_kept_only_while_a_load_older_than_them_is_in_flight() {
        let cache: Cache<u32, u32> = Cache::new(100);
        std::thread::scope(|scope| {
            let (go_old, old) = hold_load(scope, &cache, 1);
            for key in 10..1_010 {
                cache.invalidate(&key);
            }
            assert_eq!(cache.invalidation_records(), 1_000);
            // A load that begins now does not need the records above; once the old load ends
            // they are pruned, though the new load is still in flight.
            let (go_new, new) = hold_load(scope, &cache, 2);
            cache.invalidate_tag("params");
            go_old.send(()).unwrap();
            old.join().unwrap();
            assert_eq!(
                cache.invalidation_records(),
                1,
                "only the tag record is newer"
            );
            go_new.send(()).unwrap();
            new.join().unwrap();
        });
        assert_eq!(cache.invalidation_records(), 0);
    }
}
