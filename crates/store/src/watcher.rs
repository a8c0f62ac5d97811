//! [`ChangeWatcher`]: brings changes that did not go through this process's store (plain SQL,
//! other instances) into the registry.
//!
//! It reads the change feed with a commit-safe cursor (see [`crate::feed`]) every poll interval,
//! and on PostgreSQL also as soon as a `NOTIFY rulebook_changes` arrives (the triggers send one
//! per writing statement). The notification is only a wake-up: what to invalidate always comes
//! from the change log, so a lost notification costs at most one poll interval. On start the
//! watcher empties the registry once, since it cannot know what changed before its cursor.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sqlx::postgres::PgListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::db::Pool;
use crate::error::db_error;
use crate::feed::Cursor;
use crate::{Registry, Store, StoreError};

/// The notification channel the PostgreSQL triggers send on.
pub const NOTIFY_CHANNEL: &str = "rulebook_changes";

/// A PostgreSQL connection LISTENing for the change log's wake-ups (see [`Store::listen_for_changes`]).
/// A wake-up carries nothing: on each one, read the change log.
pub struct ChangeNotifications {
    listener: PgListener,
}

impl std::fmt::Debug for ChangeNotifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeNotifications")
            .finish_non_exhaustive()
    }
}

impl ChangeNotifications {
    /// Waits for the next wake-up. An error means the connection dropped: wake-ups sent since
    /// are lost, so read the change log and open a new listener (this one does not reconnect).
    pub async fn next(&mut self) -> Result<(), StoreError> {
        match self.listener.try_recv().await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(StoreError::Unavailable(
                "the LISTEN connection was closed".into(),
            )),
            Err(e) => Err(db_error("waiting for change notifications", e)),
        }
    }
}

impl Store {
    /// On PostgreSQL, opens a connection of its own that LISTENs on [`NOTIFY_CHANNEL`], where
    /// the change log's triggers send a wake-up per writing statement; `None` on SQLite, which
    /// has no notifications (poll the log instead).
    pub async fn listen_for_changes(&self) -> Result<Option<ChangeNotifications>, StoreError> {
        let Pool::Postgres(pool) = self.pool() else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool)
            .await
            .map_err(|e| db_error("opening the LISTEN connection", e))?;
        listener
            .listen(NOTIFY_CHANNEL)
            .await
            .map_err(|e| db_error("listening for change notifications", e))?;
        Ok(Some(ChangeNotifications { listener }))
    }
}

/// How a [`ChangeWatcher`] runs.
#[derive(Debug, Clone)]
pub struct WatcherConfig {
    /// How often the change log is read even without a wake-up.
    pub poll_interval: Duration,
    /// On PostgreSQL, LISTEN for wake-ups (default on). Ignored on SQLite.
    pub listen: bool,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        WatcherConfig {
            poll_interval: Duration::from_millis(250),
            listen: true,
        }
    }
}

/// What a watcher has done, for `/health`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatcherStatus {
    /// `poll` or `listen+poll`.
    pub transport: &'static str,
    /// On PostgreSQL with LISTEN: whether the listening connection is up.
    pub listening: bool,
    /// Whether the last read of the change log succeeded.
    pub healthy: bool,
    /// The highest change `seq` read.
    pub cursor_seq: i64,
    /// Reads of the change log since start.
    pub polls: u64,
    /// Changes read from the feed since start.
    pub changes_read: u64,
    /// The last error, if the last read failed.
    pub last_error: Option<String>,
}

/// A background task applying the change feed to a registry. Stops when [`ChangeWatcher::stop`]
/// is called or the watcher is dropped.
#[derive(Debug)]
pub struct ChangeWatcher {
    status: Arc<Mutex<WatcherStatus>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ChangeWatcher {
    /// Starts watching `registry`'s store and applying what changes to `registry`.
    pub fn spawn(registry: Registry, config: WatcherConfig) -> ChangeWatcher {
        let (stop, stopped) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let listen = config.listen && matches!(registry.store().pool(), Pool::Postgres(_));
        let status = Arc::new(Mutex::new(WatcherStatus {
            transport: if listen { "listen+poll" } else { "poll" },
            ..WatcherStatus::default()
        }));
        let mut tasks = Vec::new();
        if let (true, Pool::Postgres(pool)) = (listen, registry.store().pool()) {
            tasks.push(tokio::spawn(listen_loop(
                pool.clone(),
                Arc::clone(&wake),
                Arc::clone(&status),
                stopped.clone(),
            )));
        }
        tasks.push(tokio::spawn(poll_loop(
            registry,
            config.poll_interval,
            wake,
            Arc::clone(&status),
            stopped,
        )));
        ChangeWatcher {
            status,
            stop,
            tasks,
        }
    }

    /// A snapshot of what the watcher has done.
    pub fn status(&self) -> WatcherStatus {
        self.status.lock().clone()
    }

    /// Stops the watcher and waits for its tasks to end.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for ChangeWatcher {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn poll_loop(
    registry: Registry,
    interval: Duration,
    wake: Arc<Notify>,
    status: Arc<Mutex<WatcherStatus>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut cursor: Option<Cursor> = None;
    loop {
        if *stopped.borrow() {
            return;
        }
        let result = match &cursor {
            None => registry.store().current_cursor().await.map(|start| {
                // Whatever changed before the cursor may be cached: start clean.
                registry.invalidate_all();
                (0, start)
            }),
            Some(current) => read_once(&registry, current).await,
        };
        {
            let mut status = status.lock();
            status.polls += 1;
            match result {
                Ok((read, next)) => {
                    status.healthy = true;
                    status.last_error = None;
                    status.changes_read += read;
                    status.cursor_seq = next.last_seq();
                    cursor = Some(next);
                }
                // The log no longer reaches back to the cursor: start again, which empties the
                // registry.
                Err(StoreError::CursorPruned) => {
                    tracing::warn!("the change log was pruned past the watcher's cursor; invalidating everything");
                    cursor = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the change log failed; retrying");
                    status.healthy = false;
                    status.last_error = Some(e.to_string());
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = wake.notified() => {}
            _ = stopped.changed() => return,
        }
    }
}

async fn read_once(registry: &Registry, cursor: &Cursor) -> Result<(u64, Cursor), StoreError> {
    let (changes, next) = registry.store().changes_since(cursor).await?;
    registry.apply_feed(&changes);
    Ok((changes.len() as u64, next))
}

async fn listen_loop(
    pool: sqlx::PgPool,
    wake: Arc<Notify>,
    status: Arc<Mutex<WatcherStatus>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the LISTEN connection; polling only");
                status.lock().listening = false;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Err(e) = listener.listen(NOTIFY_CHANNEL).await {
            tracing::warn!(error = %e, "cannot LISTEN; polling only");
            status.lock().listening = false;
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stopped.changed() => return,
            }
            continue;
        }
        backoff = Duration::from_millis(100);
        status.lock().listening = true;
        // Notifications may have been missed while (re)connecting: read the log now.
        wake.notify_one();
        loop {
            tokio::select! {
                received = listener.try_recv() => match received {
                    Ok(Some(_)) => wake.notify_one(),
                    // The connection dropped; anything sent meanwhile is lost, so read the log
                    // and reconnect.
                    Ok(None) | Err(_) => {
                        status.lock().listening = false;
                        wake.notify_one();
                        break;
                    }
                },
                _ = stopped.changed() => return,
            }
        }
    }
}
