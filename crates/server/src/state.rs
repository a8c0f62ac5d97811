//! [`AppState`]: what every handler shares.
//!
//! Reads are answered from the store's [`Registry`], the coherent cache that the store
//! invalidates after each commit and the change feed invalidates for changes made elsewhere.
//! The server adds two things on top:
//!
//! - **Tenants in a bounded cache.** A tenant is looked up in the store once and then kept in a
//!   cache of at most `--tenant-cache` tenants. When a tenant falls out of it (least recently
//!   used), every registry entry and load count of that tenant is dropped with it, so memory
//!   stays flat however many tenants send requests. An unknown tenant is an error and is not cached.
//! - **Rule lists validated by the parameter snapshot.** `GET /v1/rules` answers full rules,
//!   which the registry does not hold. The tenant's parameter snapshot (a registry entry) is
//!   invalidated by every change of any of the tenant's rules, so a rule list is kept together
//!   with the snapshot it was read under, and served only while the registry still returns that
//!   very snapshot (`Arc::ptr_eq`). The list is read after the snapshot, so it is never older
//!   than what the cache says.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use rulebook_cache::{Cache, Loaded, RemovalCause};
use rulebook_rules::{Params, Rule};
use rulebook_store::{DecisionLog, Registry, RuleFiles, Store, StoreError};
use rulebook_sync::{Feed, FeedStatus};
use sha2::{Digest, Sha256};

use crate::metrics::Metrics;

/// Shared state of the HTTP API. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.inner.store)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

/// The limits and switches handlers need.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest request body, in bytes.
    pub body_limit: usize,
    /// How long one request may take.
    pub request_timeout: std::time::Duration,
    /// Whether reads need a read token.
    pub reads_need_token: bool,
    /// How long a read with `min_seq` waits for the applied position before answering 503.
    pub min_seq_wait: std::time::Duration,
    /// How often the change stream sends a heartbeat.
    pub changes_heartbeat: std::time::Duration,
}

struct Inner {
    store: Store,
    registry: Registry,
    /// Known tenants (see the module docs).
    tenants: Cache<String, ()>,
    /// Rule lists per tenant with the snapshot they were read under. A mutex: held only to
    /// look up or replace one map entry, never across an await.
    rule_lists: Arc<Mutex<HashMap<String, RuleList>>>,
    limits: Limits,
    /// SHA-256 of the configured admin token, compared in constant time.
    admin_digest: Option<[u8; 32]>,
    metrics: Metrics,
    ready: AtomicBool,
    /// The running feed. A read-write lock: read by every `/health`, written at start and stop.
    feed: RwLock<Option<Feed>>,
    /// Set when the server starts shutting down, so that change streams end.
    closing: tokio::sync::watch::Sender<bool>,
    files: Option<RuleFiles>,
    /// The decision log, set once at start when `--decision-log` is on. A `OnceLock`: every
    /// evaluation reads it, with one atomic load.
    decision_log: OnceLock<DecisionLog>,
}

#[derive(Clone)]
struct RuleList {
    snapshot: Arc<Params>,
    rules: Arc<Vec<Rule>>,
}

impl AppState {
    /// State over `registry` (and its store).
    pub fn new(
        registry: Registry,
        tenant_capacity: u64,
        limits: Limits,
        admin_token: Option<&str>,
        files: Option<RuleFiles>,
    ) -> AppState {
        let rule_lists: Arc<Mutex<HashMap<String, RuleList>>> = Arc::default();
        let evicted_registry = registry.clone();
        let evicted_lists = Arc::clone(&rule_lists);
        let tenants = Cache::builder()
            .max_capacity(tenant_capacity)
            .removal_listener(move |tenant: &String, _: &Arc<()>, cause| {
                if matches!(
                    cause,
                    RemovalCause::Size | RemovalCause::Expired | RemovalCause::Idle
                ) {
                    evicted_registry.forget_tenant(tenant);
                    evicted_lists.lock().remove(tenant);
                }
            })
            .build();
        AppState {
            inner: Arc::new(Inner {
                store: registry.store().clone(),
                registry,
                tenants,
                rule_lists,
                limits,
                admin_digest: admin_token.map(digest),
                metrics: Metrics::default(),
                ready: AtomicBool::new(false),
                feed: RwLock::new(None),
                closing: tokio::sync::watch::Sender::new(false),
                files,
                decision_log: OnceLock::new(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The coherent cache.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Limits and switches.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The request metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The rule-files source, if `--rules-dir` was given.
    pub fn files(&self) -> Option<&RuleFiles> {
        self.inner.files.as_ref()
    }

    /// The decision log, when it is on.
    pub fn decision_log(&self) -> Option<&DecisionLog> {
        self.inner.decision_log.get()
    }

    /// Turns the decision log on (once; later calls are ignored).
    pub fn set_decision_log(&self, log: DecisionLog) {
        let _ = self.inner.decision_log.set(log);
    }

    /// Whether the first load from the store has finished.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    pub(crate) fn set_ready(&self) {
        self.inner.ready.store(true, Ordering::Release);
    }

    pub(crate) fn set_feed(&self, feed: Feed) {
        *self.inner.feed.write() = Some(feed);
    }

    pub(crate) fn take_feed(&self) -> Option<Feed> {
        self.inner.feed.write().take()
    }

    /// The feed's state; `None` when no feed runs (before start, after stop).
    pub fn feed_status(&self) -> Option<FeedStatus> {
        self.inner.feed.read().as_ref().map(|f| f.status())
    }

    /// The feed's Prometheus text; empty when no feed runs.
    pub fn feed_metrics_text(&self) -> String {
        self.inner
            .feed
            .read()
            .as_ref()
            .map(|feed| {
                let mut text = String::new();
                feed.metrics().write_prometheus(&mut text);
                text
            })
            .unwrap_or_default()
    }

    /// Becomes `true` when the server starts shutting down (change streams end then).
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// Tells change streams to end: the server is shutting down.
    pub fn close_streams(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Asks the feed to bring the applied position to `seq` soon; nothing when no feed runs.
    pub fn want_position(&self, seq: i64) {
        if let Some(feed) = self.inner.feed.read().as_ref() {
            feed.want(seq);
        }
    }

    /// The feed's released changes from now on; `None` when no feed runs.
    pub fn subscribe_released(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<rulebook_sync::Released>> {
        self.inner.feed.read().as_ref().map(|f| f.subscribe())
    }

    /// Whether `secret` is the configured admin token (constant time).
    pub fn is_admin_token(&self, secret: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.inner
            .admin_digest
            .is_some_and(|expected| bool::from(digest(secret).ct_eq(&expected)))
    }

    /// Checks that `tenant` exists, from the tenant cache or else the store.
    pub async fn check_tenant(&self, tenant: &str) -> Result<(), StoreError> {
        let store = &self.inner.store;
        self.inner
            .tenants
            .get_or_load(tenant.to_owned(), || async {
                if store.tenant_exists(tenant).await? {
                    Ok(Loaded::new(()))
                } else {
                    Err(StoreError::UnknownTenant(tenant.to_owned()))
                }
            })
            .await
            .map(|_| ())
            .map_err(StoreError::from)
    }

    /// How many tenants are cached now.
    pub fn tenants_cached(&self) -> usize {
        self.inner.tenants.len()
    }

    /// Every rule of `tenant`, as current as the coherent cache (see the module docs).
    pub async fn rules(&self, tenant: &str) -> Result<Arc<Vec<Rule>>, StoreError> {
        let snapshot = self.inner.registry.params(tenant).await?;
        if let Some(list) = self.inner.rule_lists.lock().get(tenant) {
            if Arc::ptr_eq(&list.snapshot, &snapshot) {
                return Ok(Arc::clone(&list.rules));
            }
        }
        let rules = Arc::new(self.inner.store.list_rules(tenant, None).await?);
        let mut lists = self.inner.rule_lists.lock();
        // A change that came while reading replaced the registry's snapshot, so this list (kept
        // under the old one) will not be served again. Kept only for tenants the tenant cache
        // holds, so the map stays bounded.
        if self.inner.tenants.get(&tenant.to_owned()).is_some() {
            lists.insert(
                tenant.to_owned(),
                RuleList {
                    snapshot,
                    rules: Arc::clone(&rules),
                },
            );
        }
        Ok(rules)
    }

    /// Drops every cached entry of `tenant`, rule lists included.
    pub fn invalidate_tenant(&self, tenant: &str) {
        self.inner.registry.invalidate_tenant(tenant);
        self.inner.rule_lists.lock().remove(tenant);
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}
