//! The registry: Rulebook's cached read side.
//!
//! [`Registry::ruleset`], [`Registry::params`], [`Registry::scorecard`], [`Registry::rules`] and
//! [`Registry::rule`] are each a `get_or_load` on one [`rulebook_cache::Cache`], keyed by one
//! [`RegistryItem`]: concurrent misses on one key load once, from
//! the store, and compile with `rulebook-rules`. Each entry carries the tags the dependency map
//! ([`crate::deps`]) gives it, computed from the rules the load found, and the change log's head
//! at the start of the load as its version.
//!
//! The registry registers itself with its store, so a write through the store invalidates the
//! tags of its changes after the commit and before the write returns. Changes that reach the
//! database some other way (plain SQL, another instance) come in through [`Registry::apply_feed`],
//! which the feed reader (the sync crate's) calls with the change log it reads; changes this
//! registry already applied from its own writes are skipped there.

use std::collections::{BTreeSet, HashMap};
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

/// What the registry caches for a tenant.
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

/// A registry cache key: the tenant is part of the key, so tenants never share an entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryKey {
    /// The tenant.
    pub tenant: String,
    /// What is cached.
    pub item: RegistryItem,
}

/// A cached, compiled value.
#[derive(Debug, Clone)]
pub enum Compiled {
    /// See [`Registry::ruleset`].
    Ruleset(Arc<Ruleset>),
    /// See [`Registry::params`].
    Params(Arc<Params>),
    /// See [`Registry::scorecard`].
    Scorecard(Arc<Scorecard>),
    /// See [`Registry::rules`].
    Rules(Arc<Vec<Rule>>),
    /// See [`Registry::rule`].
    Rule(Arc<Rule>),
}

/// How the registry's cache is sized.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// The most entries kept, over all tenants (rulesets, params and scorecards).
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
    cache: Cache<RegistryKey, Compiled>,
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
            .field("entries", &self.inner.cache.len())
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
        self.cache.invalidate_tags(tags.iter().map(String::as_str));
        tags.len()
    }

    /// Counts one load of `key`; `found` says whether it found rules (see [`MAX_LISTED_LOADS`]).
    fn count_load(&self, key: &RegistryKey, found: bool) {
        let mut loads = self.loads.lock();
        let named = (key.tenant.clone(), key.item.key_tag());
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
            *loads.unlisted.entry(key.tenant.clone()).or_insert(0) += 1;
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
        let mut builder = Cache::builder().max_capacity(config.max_capacity);
        if let Some(ttl) = config.time_to_live {
            builder = builder.time_to_live(ttl);
        }
        let inner = Arc::new(RegistryInner {
            store: store.clone(),
            cache: builder.build(),
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
        let item = RegistryItem::Ruleset(entry_point.clone());
        let compiled = self
            .load(tenant, item, |rules| {
                Ruleset::compile(entry_point.clone(), rules)
                    .map(|r| Compiled::Ruleset(Arc::new(r)))
                    .map_err(|e| StoreError::Compile {
                        what: format!("entry point `{entry_point}` of tenant `{tenant}`"),
                        reason: e.to_string(),
                    })
            })
            .await?;
        match &*compiled {
            Compiled::Ruleset(r) => Ok(Arc::clone(r)),
            _ => Err(mismatch()),
        }
    }

    /// The parameter snapshot of `tenant` (every rule's params and enabled flag).
    pub async fn params(&self, tenant: &str) -> Result<Arc<Params>, StoreError> {
        let compiled = self
            .load(tenant, RegistryItem::Params, |rules| {
                Ok(Compiled::Params(Arc::new(Params::from_rules(rules))))
            })
            .await?;
        match &*compiled {
            Compiled::Params(p) => Ok(Arc::clone(p)),
            _ => Err(mismatch()),
        }
    }

    /// The compiled scorecard `name` of `tenant` (the rules tagged `scorecard:<name>`).
    pub async fn scorecard(&self, tenant: &str, name: &str) -> Result<Arc<Scorecard>, StoreError> {
        let item = RegistryItem::Scorecard(name.to_owned());
        let compiled = self
            .load(tenant, item, |rules| {
                Scorecard::compile(name, rules)
                    .map(|s| Compiled::Scorecard(Arc::new(s)))
                    .map_err(|e| StoreError::Compile {
                        what: format!("scorecard `{name}` of tenant `{tenant}`"),
                        reason: e.to_string(),
                    })
            })
            .await?;
        match &*compiled {
            Compiled::Scorecard(s) => Ok(Arc::clone(s)),
            _ => Err(mismatch()),
        }
    }

    /// Every rule of `tenant`, by priority then id (compared as bytes, whatever the database's
    /// collation), as `GET /v1/rules` lists them.
    pub async fn rules(&self, tenant: &str) -> Result<Arc<Vec<Rule>>, StoreError> {
        let compiled = self
            .load(tenant, RegistryItem::Rules, |mut rules| {
                // The database's collation may order ids otherwise; pages follow this order.
                rules.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
                Ok(Compiled::Rules(Arc::new(rules)))
            })
            .await?;
        match &*compiled {
            Compiled::Rules(rules) => Ok(Arc::clone(rules)),
            _ => Err(mismatch()),
        }
    }

    /// The rule `id` of `tenant`; [`StoreError::NotFound`] when there is none (not cached).
    pub async fn rule(&self, tenant: &str, id: &str) -> Result<Arc<Rule>, StoreError> {
        let compiled = self
            .load(tenant, RegistryItem::Rule(id.to_owned()), |mut rules| {
                rules
                    .pop()
                    .map(|rule| Compiled::Rule(Arc::new(rule)))
                    .ok_or_else(|| StoreError::Internal("a rule load found no rule".into()))
            })
            .await?;
        match &*compiled {
            Compiled::Rule(rule) => Ok(Arc::clone(rule)),
            _ => Err(mismatch()),
        }
    }

    /// The one load path: reads the change log's head (the entry's version), then the rules,
    /// compiles, and tags the entry from what it found.
    async fn load(
        &self,
        tenant: &str,
        item: RegistryItem,
        compile: impl FnOnce(Vec<Rule>) -> Result<Compiled, StoreError>,
    ) -> Result<Arc<Compiled>, StoreError> {
        let key = RegistryKey {
            tenant: tenant.to_owned(),
            item,
        };
        let inner = &self.inner;
        let loader = || async {
            let read = async {
                let version = inner.store.head_seq().await?;
                let rules = match &key.item {
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
                    !rules.is_empty()
                        || matches!(key.item, RegistryItem::Params | RegistryItem::Rules)
                }
                Err(_) => false,
            };
            inner.count_load(&key, found);
            let (version, rules) = read?;
            let tags = tags_for_entry(tenant, &key.item, &rules);
            let compiled = compile(rules)?;
            Ok::<_, StoreError>(
                Loaded::new(compiled)
                    .with_tags(tags)
                    .with_version(u64::try_from(version).unwrap_or(0)),
            )
        };
        inner
            .cache
            .get_or_load(key.clone(), loader)
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
        self.inner
            .cache
            .invalidate_tags(tags.iter().map(String::as_str));
    }

    /// Drops every entry of `tenant` carrying one of `tags` (unprefixed, such as `currency:USD`,
    /// `rule:RF-002`, `params` or `scorecard:pad_trade`).
    pub fn invalidate_tags(&self, tenant: &str, tags: &[String]) {
        let tags: Vec<String> = tags.iter().map(|tag| tenant_tag(tenant, tag)).collect();
        self.inner
            .cache
            .invalidate_tags(tags.iter().map(String::as_str));
    }

    /// Drops every entry of `tenant`.
    pub fn invalidate_tenant(&self, tenant: &str) {
        self.inner
            .cache
            .invalidate_tag(&tenant_tag(tenant, TENANT_TAG));
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
        self.inner.cache.invalidate_all();
    }

    /// The cache's counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// How many entries are cached.
    pub fn len(&self) -> usize {
        self.inner.cache.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.inner.cache.is_empty()
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

fn mismatch() -> StoreError {
    StoreError::Internal("a registry entry holds the wrong kind of value".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn seeded() -> (Registry, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.db").to_string_lossy())
            .await
            .unwrap();
        store.seed_defaults().await.unwrap();
        (Registry::new(store), dir)
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
