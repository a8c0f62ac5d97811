//! [`AppState`]: what every handler shares.
//!
//! Reads are answered from the store's [`Registry`], the coherent cache that the store
//! invalidates after each commit and the change feed invalidates for changes made elsewhere.
//! Rule lists and single rules (`GET /v1/rules`, `GET /v1/rules/{id}`) are registry items like
//! rulesets, loaded and invalidated the same way. The server adds one thing on top:
//!
//! - **Tenants in a bounded cache.** A tenant is looked up in the store once and then kept in a
//!   cache of at most `--tenant-cache` tenants. When a tenant falls out of it (least recently
//!   used), every registry entry and load count of that tenant is dropped with it, so memory
//!   stays flat however many tenants send requests. An unknown tenant is an error and is not cached.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use rulebook_cache::{Cache, Loaded, RemovalCause};
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
    /// The largest request body, in bytes; also the longest line of a streamed import.
    pub body_limit: usize,
    /// The largest streamed import body, in bytes.
    pub import_body_limit: usize,
    /// How long one request may take.
    pub request_timeout: std::time::Duration,
    /// How long a streamed import may take.
    pub import_timeout: std::time::Duration,
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

impl AppState {
    /// State over `registry` (and its store).
    pub fn new(
        registry: Registry,
        tenant_capacity: u64,
        limits: Limits,
        admin_token: Option<&str>,
        files: Option<RuleFiles>,
    ) -> AppState {
        let evicted_registry = registry.clone();
        let tenants = Cache::builder()
            .max_capacity(tenant_capacity)
            .removal_listener(move |tenant: &String, _: &Arc<()>, cause| {
                if matches!(
                    cause,
                    RemovalCause::Size | RemovalCause::Expired | RemovalCause::Idle
                ) {
                    evicted_registry.forget_tenant(tenant);
                }
            })
            .build();
        AppState {
            inner: Arc::new(Inner {
                store: registry.store().clone(),
                registry,
                tenants,
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

    /// Drops every cached entry of `tenant`.
    pub fn invalidate_tenant(&self, tenant: &str) {
        self.inner.registry.invalidate_tenant(tenant);
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}
