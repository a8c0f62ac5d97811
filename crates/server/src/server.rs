//! [`Server`]: opening the store, the first start's seeding and admin token, the background
//! tasks (change feed, rules folder, first load), serving and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use rulebook_rules::DEFAULT_TENANT;
use rulebook_store::{
    DecisionLog, Registry, RegistryConfig, RuleFiles, Store, StoreError, StoreOptions, TokenRole,
};
use rulebook_sync::Feed;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::state::{AppState, Limits};

/// Registry entries kept per cached tenant, of every kind; the registry's bound is this times
/// `--tenant-cache`, a second bound behind the tenant cache, shared out among the kinds as
/// `RegistryConfig::max_capacity` says (half of it for rulesets).
const ENTRIES_PER_TENANT: u64 = 512;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened, migrated or seeded.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A setting of the change feed cannot work (a Redis URL that does not parse).
    #[error("{0}")]
    Feed(#[from] rulebook_sync::ConfigError),
    /// The address could not be bound.
    #[error("cannot listen on `{addr}`: {source}; choose another address with --listen")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A started Rulebook service, ready to [`serve`](Server::serve).
#[derive(Debug)]
pub struct Server {
    state: AppState,
    generated_token: Option<String>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Checks the change feed's settings (refusing a bad Redis URL), opens (creating, migrating
    /// and seeding it if needed) the database of `config`, generates an admin token if none
    /// exists and none is configured, and starts the change feed and the first load. Does not
    /// listen yet.
    pub async fn start(config: &Config) -> Result<Server, StartError> {
        let feed_config = config.feed_config();
        feed_config.validate()?;
        let store = Store::open_with(
            &config.database_url,
            StoreOptions {
                max_connections: config.db_connections,
                ..StoreOptions::default()
            },
        )
        .await?;
        let seeded = store.seed_defaults().await?;
        if seeded > 0 {
            tracing::info!(
                rules = seeded,
                "seeded the example rules into tenant `default`"
            );
        }
        let generated_token = if config.admin_token.is_none() && !store.has_live_tokens().await? {
            let (record, secret) = store.create_token("admin", TokenRole::Admin, None).await?;
            tracing::info!(token = %record.id, "generated the first admin token");
            Some(secret)
        } else {
            None
        };
        let registry = Registry::with_config(
            store.clone(),
            RegistryConfig {
                max_capacity: config.tenant_cache.saturating_mul(ENTRIES_PER_TENANT),
                time_to_live: Some(config.cache_ttl),
            },
        );
        let files = config
            .rules_dir
            .as_ref()
            .map(|dir| RuleFiles::new(store.clone(), dir.clone(), DEFAULT_TENANT));
        let state = AppState::new(
            registry.clone(),
            config.tenant_cache,
            Limits {
                body_limit: config.body_limit,
                import_body_limit: config.import_body_limit,
                request_timeout: config.request_timeout,
                import_timeout: config.import_timeout,
                reads_need_token: config.reads_need_token(),
                min_seq_wait: config.min_seq_wait,
                changes_heartbeat: config.changes_heartbeat,
            },
            config.admin_token.as_deref(),
            files.clone(),
        );
        if let Some(decisions) = config.decision_log_config() {
            state.set_decision_log(DecisionLog::start(store.clone(), decisions));
        }
        state.set_feed(Feed::spawn(registry, feed_config));
        let mut tasks = vec![tokio::spawn(first_load(state.clone()))];
        if let Some(files) = files {
            // Scans run one at a time, so this and the first load's scan never interleave.
            tasks.push(files.watch(config.rules_scan));
        }
        Ok(Server {
            state,
            generated_token,
            tasks,
        })
    }

    /// The shared state (for [`crate::app`]).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The admin token generated on this first start, if one was: shown once, never stored.
    pub fn generated_token(&self) -> Option<&str> {
        self.generated_token.as_deref()
    }

    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
        TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })
    }

    /// Serves the API on `listener` until `shutdown` completes; then lets in-flight requests
    /// finish, stops the feed and the background tasks, and closes the database pool.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = crate::api::app(self.state.clone());
        let state = self.state.clone();
        // Change streams never finish on their own: end them when shutdown starts, so that the
        // graceful shutdown does not wait for them.
        let shutdown = async move {
            shutdown.await;
            state.close_streams();
        };
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        self.stop().await;
        served
    }

    /// Stops the background tasks and the feed, and closes the pool.
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(feed) = self.state.take_feed() {
            feed.stop().await;
        }
        if let Some(decisions) = self.state.decision_log() {
            // Writes what is still queued, so a graceful stop loses no decision.
            decisions.stop().await;
        }
        self.state.store().close().await;
        tracing::info!("stopped");
    }
}

/// Readiness: waits until the feed has read the change log once (its start empties the cache,
/// so loading before it would be wasted), loads the rules folder, then loads tenant `default`'s
/// parameters from the store. Retries until it succeeds.
async fn first_load(state: AppState) {
    let mut delay = Duration::from_millis(10);
    loop {
        if state.feed_status().is_some_and(|feed| feed.started) {
            let loaded = async {
                if let Some(files) = state.files() {
                    files.ensure_loaded().await?;
                }
                state.registry().params(DEFAULT_TENANT).await
            }
            .await;
            match loaded {
                Ok(_) => {
                    state.set_ready();
                    tracing::info!("ready: the first load from the store finished");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "the first load failed; retrying"),
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// Completes on Ctrl-C or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
