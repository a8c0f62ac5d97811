//! The registry: Rulebook's cached read side.
//!
//! [`Registry::ruleset`], [`Registry::params`], [`Registry::scorecard`], [`Registry::rules`] and
//! [`Registry::rule`] are each a `get_or_load` on the [`rulebook_cache::Cache`] of their own kind
//! of item, through one generic load path (`Registry::load`): concurrent misses on one key load
//! once, from the store, and compile with `rulebook-rules`. Each entry carries the tags the
//! dependency map ([`crate::deps`]) gives it, computed from the rules the load found, and the
//! change log's head at the start of the load as its version.
//!
//! **One cache per kind.** Each kind of item has a cache typed by its key and its value (a
//! ruleset cache holds only rulesets, keyed by tenant and entry point), so no read can find a
//! value of another kind under its key and there is no such error to handle. [`RegistryItem`] is
//! the one enum that names the kinds, for what is decided per kind at run time: what a load reads,
//! the tags an entry carries, and the name its loads are counted under. The caches share the one
//! capacity setting ([`RegistryConfig::max_capacity`], split by kind), and every invalidation
//! reaches all of them: a change's tags go to each cache as one invalidation there, which is all
//! the atomicity a reader can observe (see `Caches::invalidate_tags`). [`Registry::cache_stats`]
//! adds their counters up into one [`CacheStats`].
//!
//! The registry registers itself with its store, so a write through the store invalidates the
//! tags of its changes after the commit and before the write returns. Changes that reach the
//! database some other way (plain SQL, another instance) come in through [`Registry::apply_feed`],
//! which the feed reader (the sync crate's) calls with the change log it reads; changes this
//! registry already applied from its own writes are skipped there.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rulebook_cache::{Cache, CacheStats, Loaded};
use rulebook_rules::tags::{entry_point_tag, rule_tag, scorecard_tag, PARAMS_TAG, RULES_TAG};
use rulebook_rules::{EntryPoint, Params, Rule, Ruleset, Scorecard};

use crate::change_log::{Change, ChangeListener};
use crate::deps::{tags_for_changes, tags_for_entry, tenant_tag, TENANT_TAG};
use crate::error::StoreError;
use crate::Store;

/// The kinds of item the registry caches for a tenant, and which one: the one enum naming the
/// kinds (each has its own cache, see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RegistryItem {
    /// The compiled rules of one entry point.
    Ruleset(EntryPoint),
    /// The tenant's parameter snapshot.
    Params,
    /// A scorecard by name.
    Scorecard(String),
    /// Every rule of the tenant, as `GET /v1/rules` lists them.
    Rules,
    /// One rule by id.
    Rule(String),
}

impl RegistryItem {
    /// The tag that names the entry (`entry_point:<ep>`, `params`, `scorecard:<name>`).
    pub fn key_tag(&self) -> String {
        match self {
            RegistryItem::Ruleset(ep) => entry_point_tag(ep),
            RegistryItem::Params => PARAMS_TAG.to_owned(),
            RegistryItem::Scorecard(name) => scorecard_tag(name),
            RegistryItem::Rules => RULES_TAG.to_owned(),
            RegistryItem::Rule(id) => rule_tag(id),
        }
    }
}

/// How the registry's caches are sized.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// The most entries kept, over all tenants and kinds of item. It is shared out among the
    /// kinds, each kind in a cache of its own: half for rulesets, a quarter for single rules, an
    /// eighth for scorecards, and a sixteenth each for parameter snapshots and rule lists (one
    /// of each per tenant), at least one entry per kind. So the registry holds at most this many
    /// entries (at most 5 when it is set lower), and a flood of one kind (made-up entry point
    /// names, say) pushes out only entries of that kind.
    pub max_capacity: u64,
    /// A backstop for staleness should an invalidation ever be missed; `None` keeps entries
    /// until they are invalidated or evicted.
    pub time_to_live: Option<Duration>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            max_capacity: 10_000,
            time_to_live: Some(Duration::from_secs(300)),
        }
    }
}

/// [`RegistryConfig::max_capacity`] shared out among the kinds of item (see there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Capacities {
    rulesets: u64,
    params: u64,
    scorecards: u64,
    rules: u64,
    rule: u64,
}

impl Capacities {
    /// Rulesets get what the other kinds leave, so the shares add up to `max_capacity` exactly
    /// whenever it allows every kind one entry.
    fn split(max_capacity: u64) -> Capacities {
        let share = |sixteenths: u64| (max_capacity / 16 * sixteenths).max(1);
        let (rule, scorecards, params, rules) = (share(4), share(2), share(1), share(1));
        let rulesets = max_capacity
            .saturating_sub(rule + scorecards + params + rules)
            .max(1);
        Capacities {
            rulesets,
            params,
            scorecards,
            rules,
            rule,
        }
    }
}

/// The registry's caches, one per kind of item, each typed by the kind's key (the tenant and
/// what names the item within it) and the kind's value. A read gets its value from its own
/// kind's cache, so it can never find a value of another kind.
struct Caches {
    /// See [`Registry::ruleset`].
    rulesets: Cache<(String, EntryPoint), Ruleset>,
    /// See [`Registry::params`].
    params: Cache<String, Params>,
    /// See [`Registry::scorecard`].
    scorecards: Cache<(String, String), Scorecard>,
    /// See [`Registry::rules`].
    rules: Cache<String, Vec<Rule>>,
    /// See [`Registry::rule`].
    rule: Cache<(String, String), Rule>,
}

/// What the registry does to each of its caches alike, whatever the cache's key and value.
trait KindCache: Send + Sync {
    fn invalidate_tags(&self, tags: &[&str]);
    fn invalidate_all(&self);
    fn stats(&self) -> CacheStats;
    fn len(&self) -> usize;
}

impl<K, V> KindCache for Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn invalidate_tags(&self, tags: &[&str]) {
        Cache::invalidate_tags(self, tags.iter().copied());
    }

    fn invalidate_all(&self) {
        Cache::invalidate_all(self);
    }

    fn stats(&self) -> CacheStats {
        Cache::stats(self)
    }

    fn len(&self) -> usize {
        Cache::len(self)
    }
}

impl Caches {
    fn new(config: &RegistryConfig) -> Caches {
        fn build<K, V>(capacity: u64, time_to_live: Option<Duration>) -> Cache<K, V>
        where
            K: Hash + Eq + Clone + Send + Sync + 'static,
            V: Send + Sync + 'static,
        {
            let builder = Cache::builder().max_capacity(capacity);
            match time_to_live {
                Some(ttl) => builder.time_to_live(ttl).build(),
                None => builder.build(),
            }
        }
        let capacity = Capacities::split(config.max_capacity);
        let ttl = config.time_to_live;
        Caches {
            rulesets: build(capacity.rulesets, ttl),
            params: build(capacity.params, ttl),
            scorecards: build(capacity.scorecards, ttl),
            rules: build(capacity.rules, ttl),
            rule: build(capacity.rule, ttl),
        }
    }

    /// Every cache. The pattern names every field, so a kind added to [`Caches`] and left out
    /// here does not compile: no invalidation can miss a kind.
    fn all(&self) -> [&dyn KindCache; 5] {
        let Caches {
            rulesets,
            params,
            scorecards,
            rules,
            rule,
        } = self;
        [rulesets, params, scorecards, rules, rule]
    }

    /// Drops every entry carrying one of `tags`, in every cache.
    ///
    /// Within a cache the tags go as one invalidation (see [`Cache::invalidate_tags`]); the caches
    /// are invalidated one after another, which needs no lock over them all: an entry lives in
    /// exactly one cache, so each entry is dropped by one atomic invalidation, and a reader that
    /// reads two items (a ruleset and the parameters, say) reads them at two times anyway, so it
    /// could see the first before a change and the second after it with one cache too. Once this
    /// returns, every cache's invalidation has returned, so no read that starts afterwards gets
    /// a value carrying one of `tags` whose load began before the call.
    fn invalidate_tags(&self, tags: &[&str]) {
        for cache in self.all() {
            cache.invalidate_tags(tags);
        }
    }

    /// Drops every entry of every cache (one after another, as [`Caches::invalidate_tags`] says).
    fn invalidate_all(&self) {
        for cache in self.all() {
            cache.invalidate_all();
        }
    }

    /// The counters of all the caches taken as one: each kind's counters summed, except the
    /// calls to invalidate. Every invalidation reaches every cache alike (only this type's
    /// methods invalidate, and each goes to [`Caches::all`]), so one cache's count of calls is
    /// the registry's, where the sum would count each call once per kind. The entries those
    /// calls removed are summed, as they are in different caches.
    fn stats(&self) -> CacheStats {
        let each = self.all().map(KindCache::stats);
        let mut total: CacheStats = each.iter().copied().sum();
        let calls = each[0];
        total.invalidations_key = calls.invalidations_key;
        total.invalidations_tag = calls.invalidations_tag;
        total.invalidations_all = calls.invalidations_all;
        total
    }

    fn len(&self) -> usize {
        self.all().iter().map(|cache| cache.len()).sum()
    }
}

/// How many times one entry was loaded from the store (for metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadCount {
    /// The tenant.
    pub tenant: String,
    /// The entry's key tag (`entry_point:<ep>`, `params` or `scorecard:<name>`), or
    /// [`UNLISTED_LOADS`] for the loads counted together (see [`MAX_LISTED_LOADS`]).
    pub item: String,
    /// Loads since the registry was made, or since the tenant was last forgotten.
    pub loads: u64,
}

/// The item under which loads are counted together once [`MAX_LISTED_LOADS`] items are listed.
pub const UNLISTED_LOADS: &str = "unlisted";

/// The most items whose loads are counted by name, over all tenants; beyond it loads are
/// counted under [`UNLISTED_LOADS`], one row per tenant. Any reader may name an entry point or a
/// scorecard, so when the list is full an item whose load found rules takes the place of one
/// whose load found none (whose count moves to [`UNLISTED_LOADS`]): made-up names cannot crowd
/// out the items writers stored.
pub const MAX_LISTED_LOADS: usize = 256;

/// The cached read side. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Registry {
    inner: Arc<RegistryInner>,
}

struct RegistryInner {
    store: Store,
    caches: Caches,
    /// Loads per tenant and item (key tag or [`UNLISTED_LOADS`]), bounded (see
    /// [`MAX_LISTED_LOADS`]). A mutex: touched once per load, which is rare next to reads.
    loads: Mutex<LoadCounts>,
    /// What has been applied. A mutex: touched once per commit or feed batch.
    applied: Mutex<Applied>,
    /// The applied position, for readers that wait for one ([`Registry::wait_for_position`]).
    /// Written only by [`Registry::advance_position`], under `applied`'s lock, so it never goes
    /// backwards.
    position: tokio::sync::watch::Sender<i64>,
}

/// The loads of one listed item.
struct Listed {
    loads: u64,
    /// Whether its last load found rules (or it is a parameter snapshot, one per tenant).
    found: bool,
}

/// Loads counted by item, bounded (see [`MAX_LISTED_LOADS`]).
#[derive(Default)]
struct LoadCounts {
    /// Per tenant and key tag: at most [`MAX_LISTED_LOADS`] rows.
    listed: HashMap<(String, String), Listed>,
    /// Per tenant, the rest. Only tenants that exist load anything, and a tenant's counts go
    /// when it is forgotten.
    unlisted: HashMap<String, u64>,
}

#[derive(Default)]
struct Applied {
    /// `seq`s applied synchronously by this registry's own writes that the feed has not
    /// brought back yet; the feed skips them.
    own: BTreeSet<i64>,
}

/// What [`Registry::apply_feed`] did with the changes it was given.
#[derive(Debug)]
pub struct FeedApplied<'c> {
    /// The changes this registry's own writes did not make (another instance, plain SQL), in
    /// the order given; each was applied now.
    pub from_elsewhere: Vec<&'c Change>,
    /// How many tags their invalidation touched.
    pub tags: usize,
}

/// How many own `seq`s to remember for the feed to skip; beyond it the oldest are forgotten
/// (and cost one more invalidation when the feed brings them, nothing worse).
const OWN_SEQS_KEPT: usize = 100_000;

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("store", &self.inner.store)
            .field("entries", &self.inner.caches.len())
            .finish_non_exhaustive()
    }
}

impl ChangeListener for RegistryInner {
    fn committed(&self, changes: &[Change]) {
        self.invalidate_changes(changes.iter());
        let mut applied = self.applied.lock();
        for change in changes {
            applied.own.insert(change.seq);
        }
        while applied.own.len() > OWN_SEQS_KEPT {
            applied.own.pop_first();
        }
    }
}

impl RegistryInner {
    /// Invalidates every tag the changes touch, each once; returns how many tags.
    fn invalidate_changes<'a>(&self, changes: impl IntoIterator<Item = &'a Change>) -> usize {
        let tags = tags_for_changes(changes);
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        self.caches.invalidate_tags(&tags);
        tags.len()
    }

    /// Counts one load of `key`; `found` says whether it found rules (see [`MAX_LISTED_LOADS`]).
    fn count_load(&self, tenant: &str, item: &RegistryItem, found: bool) {
        let mut loads = self.loads.lock();
        let named = (tenant.to_owned(), item.key_tag());
        if let Some(listed) = loads.listed.get_mut(&named) {
            listed.loads += 1;
            listed.found = found;
            return;
        }
        if loads.listed.len() >= MAX_LISTED_LOADS && found {
            // Make room by moving an item that found no rules to its tenant's unlisted row.
            let empty = loads
                .listed
                .iter()
                .find(|(_, listed)| !listed.found)
                .map(|(key, _)| key.clone());
            if let Some(empty) = empty {
                if let Some(moved) = loads.listed.remove(&empty) {
                    *loads.unlisted.entry(empty.0).or_insert(0) += moved.loads;
                }
            }
        }
        if loads.listed.len() < MAX_LISTED_LOADS {
            loads.listed.insert(named, Listed { loads: 1, found });
        } else {
            *loads.unlisted.entry(tenant.to_owned()).or_insert(0) += 1;
        }
    }
}

impl Registry {
    /// A registry over `store` with the default cache size, registered with the store so that
    /// the store's writes invalidate it.
    pub fn new(store: Store) -> Registry {
        Registry::with_config(store, RegistryConfig::default())
    }

    /// [`Registry::new`] with a cache configuration.
    pub fn with_config(store: Store, config: RegistryConfig) -> Registry {
        let inner = Arc::new(RegistryInner {
            store: store.clone(),
            caches: Caches::new(&config),
            loads: Mutex::new(LoadCounts::default()),
            applied: Mutex::new(Applied::default()),
            position: tokio::sync::watch::Sender::new(0),
        });
        let listener: Arc<dyn ChangeListener> = inner.clone();
        store.subscribe(&listener);
        Registry { inner }
    }

    /// The store this registry loads from.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The compiled ruleset of `entry_point` in `tenant`.
    pub async fn ruleset(
        &self,
        tenant: &str,
        entry_point: &EntryPoint,
    ) -> Result<Arc<Ruleset>, StoreError> {
        let key = (tenant.to_owned(), entry_point.clone());
        let item = RegistryItem::Ruleset(entry_point.clone());
        self.load(&self.inner.caches.rulesets, key, tenant, item, |rules| {
            Ruleset::compile(entry_point.clone(), rules).map_err(|e| StoreError::Compile {
                what: format!("entry point `{entry_point}` of tenant `{tenant}`"),
                reason: e.to_string(),
            })
        })
        .await
    }

    /// The parameter snapshot of `tenant` (every rule's params and enabled flag).
    pub async fn params(&self, tenant: &str) -> Result<Arc<Params>, StoreError> {
        let key = tenant.to_owned();
        self.load(
            &self.inner.caches.params,
            key,
            tenant,
            RegistryItem::Params,
            |rules| Ok(Params::from_rules(rules)),
        )
        .await
    }

    /// The compiled scorecard `name` of `tenant` (the rules tagged `scorecard:<name>`).
    pub async fn scorecard(&self, tenant: &str, name: &str) -> Result<Arc<Scorecard>, StoreError> {
        let key = (tenant.to_owned(), name.to_owned());
        let item = RegistryItem::Scorecard(name.to_owned());
        self.load(&self.inner.caches.scorecards, key, tenant, item, |rules| {
            Scorecard::compile(name, rules).map_err(|e| StoreError::Compile {
                what: format!("scorecard `{name}` of tenant `{tenant}`"),
                reason: e.to_string(),
            })
        })
        .await
    }

    /// Every rule of `tenant`, by priority then id (compared as bytes, whatever the database's
    /// collation), as `GET /v1/rules` lists them.
    pub async fn rules(&self, tenant: &str) -> Result<Arc<Vec<Rule>>, StoreError> {
        let key = tenant.to_owned();
        self.load(
            &self.inner.caches.rules,
            key,
            tenant,
            RegistryItem::Rules,
            |mut rules| {
                // The database's collation may order ids otherwise; pages follow this order.
                rules.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
                Ok(rules)
            },
        )
        .await
    }

    /// The rule `id` of `tenant`; [`StoreError::NotFound`] when there is none (not cached).
    pub async fn rule(&self, tenant: &str, id: &str) -> Result<Arc<Rule>, StoreError> {
        let key = (tenant.to_owned(), id.to_owned());
        let item = RegistryItem::Rule(id.to_owned());
        self.load(&self.inner.caches.rule, key, tenant, item, |mut rules| {
            rules
                .pop()
                .ok_or_else(|| StoreError::Internal("a rule load found no rule".into()))
        })
        .await
    }

    /// The one load path, for every kind: a `get_or_load` of `key` on the kind's own `cache`,
    /// whose loader reads the change log's head (the entry's version), then the rules `item` is
    /// built from, counts the load, compiles, and tags the entry from what it found. `key` and
    /// `item` name the same item of `tenant`: the first in the kind's cache, the second for the
    /// dependency map and the load counts.
    async fn load<K, V>(
        &self,
        cache: &Cache<K, V>,
        key: K,
        tenant: &str,
        item: RegistryItem,
        compile: impl FnOnce(Vec<Rule>) -> Result<V, StoreError>,
    ) -> Result<Arc<V>, StoreError>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        let inner = &self.inner;
        let loader = || async {
            let read = async {
                let version = inner.store.head_seq().await?;
                let rules = match &item {
                    RegistryItem::Ruleset(ep) => inner.store.entry_point_rules(tenant, ep).await?,
                    RegistryItem::Params => inner.store.parameter_rules(tenant).await?,
                    RegistryItem::Scorecard(name) => {
                        inner.store.scorecard_rules(tenant, name).await?
                    }
                    RegistryItem::Rules => inner.store.list_rules(tenant, None).await?,
                    RegistryItem::Rule(id) => vec![inner.store.get_rule(tenant, id).await?],
                };
                Ok::<_, StoreError>((version, rules))
            }
            .await;
            // The parameter snapshot and the rule list are one per tenant, so they count as found.
            let found = match &read {
                Ok((_, rules)) => {
                    !rules.is_empty() || matches!(item, RegistryItem::Params | RegistryItem::Rules)
                }
                Err(_) => false,
            };
            inner.count_load(tenant, &item, found);
            let (version, rules) = read?;
            let tags = tags_for_entry(tenant, &item, &rules);
            let compiled = compile(rules)?;
            Ok::<_, StoreError>(
                Loaded::new(compiled)
                    .with_tags(tags)
                    .with_version(u64::try_from(version).unwrap_or(0)),
            )
        };
        cache
            .get_or_load(key, loader)
            .await
            .map_err(StoreError::from)
    }

    /// Applies changes read from the change feed: invalidates what they touch, skipping changes
    /// this registry already applied when its own write committed (the one record of this
    /// instance's own writes). Returns what it applied. Does not move the applied position: the
    /// feed reader does that with [`Registry::advance_position`] once a whole read is applied.
    pub fn apply_feed<'c>(&self, changes: &'c [Change]) -> FeedApplied<'c> {
        let from_elsewhere: Vec<&Change> = {
            let mut applied = self.inner.applied.lock();
            changes
                .iter()
                .filter(|c| !applied.own.remove(&c.seq))
                .collect()
        };
        let tags = self
            .inner
            .invalidate_changes(from_elsewhere.iter().copied());
        FeedApplied {
            from_elsewhere,
            tags,
        }
    }

    /// The applied position: every change with a `seq` at or below it has been applied to this
    /// registry (see [`crate::Cursor::position`]), so every answer read from it after this call
    /// reflects at least that position. 0 until a feed reader has read the log.
    pub fn applied_seq(&self) -> i64 {
        *self.inner.position.borrow()
    }

    /// Moves the applied position up to `position` (never down). The feed reader calls it with
    /// [`crate::Cursor::position`] after applying (or invalidating everything for) the read that
    /// returned that cursor; calling it earlier would let an answer claim a change it does not
    /// reflect.
    pub fn advance_position(&self, position: i64) {
        let _applied = self.inner.applied.lock();
        self.inner.position.send_if_modified(|current| {
            if position > *current {
                *current = position;
                true
            } else {
                false
            }
        });
    }

    /// Waits until the applied position is at least `seq`, for at most `timeout`. Returns the
    /// position reached: `Ok` once it is at least `seq`, `Err` with the position at the end of
    /// the wait when the timeout came first.
    pub async fn wait_for_position(&self, seq: i64, timeout: Duration) -> Result<i64, i64> {
        let mut position = self.inner.position.subscribe();
        let reached = tokio::time::timeout(timeout, position.wait_for(|p| *p >= seq)).await;
        match reached {
            Ok(Ok(p)) => Ok(*p),
            // The sender lives as long as the registry, so only the timeout ends the wait.
            Ok(Err(_)) | Err(_) => Err(self.applied_seq()),
        }
    }

    /// Drops the rulesets of these entry points of `tenant`.
    pub fn invalidate_entry_points(&self, tenant: &str, entry_points: &[EntryPoint]) {
        let tags: Vec<String> = entry_points
            .iter()
            .map(|ep| tenant_tag(tenant, &entry_point_tag(ep)))
            .collect();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        self.inner.caches.invalidate_tags(&tags);
    }

    /// Drops every entry of `tenant` carrying one of `tags` (unprefixed, such as `currency:USD`,
    /// `rule:RF-002`, `params` or `scorecard:pad_trade`).
    pub fn invalidate_tags(&self, tenant: &str, tags: &[String]) {
        let tags: Vec<String> = tags.iter().map(|tag| tenant_tag(tenant, tag)).collect();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        self.inner.caches.invalidate_tags(&tags);
    }

    /// Drops every entry of `tenant`.
    pub fn invalidate_tenant(&self, tenant: &str) {
        let tag = tenant_tag(tenant, TENANT_TAG);
        self.inner.caches.invalidate_tags(&[&tag]);
    }

    /// Drops every entry of `tenant` and its load counts: for a tenant that is no longer kept
    /// (the server's tenant cache evicted it), so that nothing of it stays behind.
    pub fn forget_tenant(&self, tenant: &str) {
        self.invalidate_tenant(tenant);
        let mut loads = self.inner.loads.lock();
        loads.listed.retain(|(t, _), _| t != tenant);
        loads.unlisted.remove(tenant);
    }

    /// Drops everything.
    pub fn invalidate_all(&self) {
        self.inner.caches.invalidate_all();
    }

    /// The counters of the registry's caches taken as one: the kinds' hits, misses, loads,
    /// evictions and entries invalidated summed, and each call to invalidate counted once (one
    /// per tag for a change's tags), however many kinds it reached.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.caches.stats()
    }

    /// How many entries are cached, of every kind.
    pub fn len(&self) -> usize {
        self.inner.caches.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads per item, sorted by tenant and item: at most [`MAX_LISTED_LOADS`] named items plus
    /// one [`UNLISTED_LOADS`] row per tenant that has one.
    pub fn load_counts(&self) -> Vec<LoadCount> {
        self.counts_where(|_| true)
    }

    /// [`Registry::load_counts`] of one tenant.
    pub fn tenant_load_counts(&self, tenant: &str) -> Vec<LoadCount> {
        self.counts_where(|t| t == tenant)
    }

    fn counts_where(&self, keep: impl Fn(&str) -> bool) -> Vec<LoadCount> {
        let loads = self.inner.loads.lock();
        let listed = loads
            .listed
            .iter()
            .map(|((t, item), listed)| (t, item.as_str(), &listed.loads));
        let unlisted = loads.unlisted.iter().map(|(t, n)| (t, UNLISTED_LOADS, n));
        let mut counts: Vec<LoadCount> = listed
            .chain(unlisted)
            .filter(|(tenant, _, _)| keep(tenant))
            .map(|(tenant, item, loads)| LoadCount {
                tenant: tenant.clone(),
                item: item.to_owned(),
                loads: *loads,
            })
            .collect();
        drop(loads);
        counts.sort_by(|a, b| (&a.tenant, &a.item).cmp(&(&b.tenant, &b.item)));
        counts
    }

    /// Loads of one entry point's ruleset, when it is counted by name (0 when its loads are
    /// counted under [`UNLISTED_LOADS`]).
    pub fn ruleset_loads(&self, tenant: &str, entry_point: &EntryPoint) -> u64 {
        let item = RegistryItem::Ruleset(entry_point.clone()).key_tag();
        self.inner
            .loads
            .lock()
            .listed
            .get(&(tenant.to_owned(), item))
            .map(|listed| listed.loads)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn seeded() -> (Registry, tempfile::TempDir) {
        seeded_with(RegistryConfig::default()).await
    }

    async fn seeded_with(config: RegistryConfig) -> (Registry, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.db").to_string_lossy())
            .await
            .unwrap();
        store.seed_defaults().await.unwrap();
        (Registry::with_config(store, config), dir)
    }

    /// Reads one item of every kind from tenant `default`, so each cache holds one entry.
    async fn read_every_kind(registry: &Registry) {
        registry
            .ruleset("default", &ep("checkout_terms"))
            .await
            .unwrap();
        registry.params("default").await.unwrap();
        registry
            .scorecard("default", rulebook_rules::examples::PAD_TRADE)
            .await
            .unwrap();
        registry.rules("default").await.unwrap();
        registry.rule("default", "RF-002").await.unwrap();
    }

    #[test]
    fn the_kinds_share_out_the_one_capacity_setting() {
        let split = Capacities::split(1_024);
        assert_eq!(
            split,
            Capacities {
                rulesets: 512,
                rule: 256,
                scorecards: 128,
                params: 64,
                rules: 64,
            }
        );
        for max in (0..200).chain([10_000, 51_200, u64::MAX]) {
            let c = Capacities::split(max);
            let kinds = [c.rulesets, c.params, c.scorecards, c.rules, c.rule];
            assert!(kinds.iter().all(|&n| n >= 1), "{max}: {c:?}");
            let total = kinds.iter().fold(0u64, |sum, n| sum.saturating_add(*n));
            assert_eq!(total, max.max(5), "{max}: {c:?}");
        }
    }

    #[tokio::test]
    async fn a_flood_of_one_kind_stays_in_its_share_and_pushes_out_no_other_kind() {
        let config = RegistryConfig {
            max_capacity: 64,
            ..RegistryConfig::default()
        };
        let (registry, _dir) = seeded_with(config).await;
        let params = registry.params("default").await.unwrap();
        let rules = registry.rules("default").await.unwrap();
        for n in 0..1_000 {
            registry
                .ruleset("default", &ep(&format!("made_up_{n}")))
                .await
                .unwrap();
        }
        assert!(registry.len() <= 64, "{} entries", registry.len());
        assert!(registry.inner.caches.rulesets.len() <= 32);
        let loads = registry.cache_stats().loads;
        assert!(Arc::ptr_eq(
            &params,
            &registry.params("default").await.unwrap()
        ));
        assert!(Arc::ptr_eq(
            &rules,
            &registry.rules("default").await.unwrap()
        ));
        assert_eq!(
            registry.cache_stats().loads,
            loads,
            "both were still cached"
        );
    }

    #[tokio::test]
    async fn every_invalidation_reaches_every_kind() {
        let (registry, _dir) = seeded().await;
        type Invalidation = (&'static str, fn(&Registry));
        let drops: [Invalidation; 4] = [
            ("invalidate_all", |r| r.invalidate_all()),
            ("invalidate_tenant", |r| r.invalidate_tenant("default")),
            ("forget_tenant", |r| r.forget_tenant("default")),
            // A change of RF-002 that leaves `checkout_terms` and the scorecard: every change
            // touches `params` and `rules`, this one also the rule, the entry point and the label.
            ("a change's tags", |r| {
                r.inner.invalidate_changes([&Change {
                    seq: 1,
                    tenant: "default".into(),
                    rule_id: "RF-002".into(),
                    op: crate::ChangeOp::Update,
                    old_entry_point: Some("checkout_terms".into()),
                    new_entry_point: None,
                    old_tags: vec![rulebook_rules::tags::scorecard_tag(
                        rulebook_rules::examples::PAD_TRADE,
                    )],
                    new_tags: vec![],
                    changed_at: chrono::Utc::now(),
                }]);
            }),
        ];
        for (name, drop) in drops {
            read_every_kind(&registry).await;
            let each = registry.inner.caches.all().map(|cache| cache.len());
            assert_eq!(each, [1; 5], "before {name}");
            drop(&registry);
            assert!(
                registry.is_empty(),
                "{name} left {} entries",
                registry.len()
            );
        }
    }

    #[tokio::test]
    async fn the_stats_add_up_the_kinds_and_count_each_invalidation_once() {
        let (registry, _dir) = seeded().await;
        let before = registry.cache_stats();
        read_every_kind(&registry).await;
        read_every_kind(&registry).await;
        let read = registry.cache_stats();
        assert_eq!(read.loads - before.loads, 5, "one load per kind");
        assert_eq!(read.misses - before.misses, 5);
        assert_eq!(read.hits - before.hits, 5);

        registry.invalidate_tags("default", &["params".to_owned(), "rules".to_owned()]);
        let tagged = registry.cache_stats();
        assert_eq!(tagged.invalidations_tag - read.invalidations_tag, 2);
        assert_eq!(tagged.invalidated_entries - read.invalidated_entries, 2);

        registry.invalidate_all();
        let all = registry.cache_stats();
        assert_eq!(all.invalidations_all - tagged.invalidations_all, 1);
        assert_eq!(all.invalidated_entries - tagged.invalidated_entries, 3);
    }

    fn ep(name: &str) -> EntryPoint {
        EntryPoint::parse(name).unwrap()
    }

    #[tokio::test]
    async fn made_up_names_cannot_crowd_out_stored_items_or_grow_the_counts() {
        let (registry, _dir) = seeded().await;
        for n in 0..MAX_LISTED_LOADS + 100 {
            registry
                .ruleset("default", &ep(&format!("made_up_{n}")))
                .await
                .unwrap();
        }
        let counts = registry.load_counts();
        assert_eq!(
            counts.len(),
            MAX_LISTED_LOADS + 1,
            "the list is full, plus `unlisted`"
        );
        let unlisted = counts.iter().find(|c| c.item == UNLISTED_LOADS).unwrap();
        assert_eq!(unlisted.loads, 100);

        // An entry point with rules takes the place of a made-up one, whose count moves.
        let checkout = ep("checkout_terms");
        registry.ruleset("default", &checkout).await.unwrap();
        assert_eq!(registry.ruleset_loads("default", &checkout), 1);
        let counts = registry.load_counts();
        assert_eq!(counts.len(), MAX_LISTED_LOADS + 1);
        let total: u64 = counts.iter().map(|c| c.loads).sum();
        assert_eq!(total, (MAX_LISTED_LOADS + 101) as u64, "no load is lost");
    }

    #[tokio::test]
    async fn a_forgotten_tenant_leaves_no_counts_and_no_entries() {
        let (registry, _dir) = seeded().await;
        registry
            .ruleset("default", &ep("checkout_terms"))
            .await
            .unwrap();
        registry.ruleset("default", &ep("made_up")).await.unwrap();
        registry.params("default").await.unwrap();
        assert_eq!(registry.tenant_load_counts("default").len(), 3);
        registry.forget_tenant("default");
        assert!(registry.tenant_load_counts("default").is_empty());
        assert!(registry.load_counts().is_empty());
        assert!(registry.is_empty());
    }
}
