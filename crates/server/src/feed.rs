//! The change feed: how changes made outside this process (plain SQL, other instances, rule
//! files of another instance) reach this process's registry.
//!
//! This is the one seam where the feed is started. [`ChangeFeed`] is what the server needs from
//! any feed (a status for `/health` and `/metrics`, and a way to stop it); [`start_store_watcher`]
//! is today's feed, the store's [`ChangeWatcher`] (polling the change log, plus LISTEN on
//! PostgreSQL). A different feed (the sync crate's, with Redis and replay) plugs in through
//! [`crate::Server::start_with_feed`] without touching anything else in the server.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use rulebook_store::{ChangeWatcher, Registry, WatcherConfig};
use serde::Serialize;

/// What `/health` and `/metrics` show of a feed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FeedStatus {
    /// How changes arrive, such as `poll` or `listen+poll`.
    pub transport: String,
    /// Whether the push channel (LISTEN, pub/sub) is up; `false` for polling alone.
    pub connected: bool,
    /// Whether the last read of the change log succeeded.
    pub healthy: bool,
    /// Whether the feed has read the change log at least once, so that the cache can be trusted.
    pub started: bool,
    /// The highest change-log sequence read.
    pub cursor_seq: i64,
    /// Changes read since start.
    pub changes_read: u64,
    /// The last error, if the last read failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A running change feed.
pub trait ChangeFeed: Send + Sync + 'static {
    /// Its state now.
    fn status(&self) -> FeedStatus;

    /// More of its state for `/health` (shown as `feed_details`), such as per-transport state
    /// and lag; `null` when there is nothing more to say.
    fn details(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Its own Prometheus metrics (complete `# HELP`/`# TYPE` blocks), appended to `/metrics`.
    fn metrics_text(&self) -> String {
        String::new()
    }

    /// Stops it and waits until its tasks have ended.
    fn stop(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Starts a feed for a registry; given to [`crate::Server::start_with_feed`].
pub type FeedStarter = Box<dyn FnOnce(Registry) -> Box<dyn ChangeFeed> + Send>;

impl ChangeFeed for ChangeWatcher {
    fn status(&self) -> FeedStatus {
        let status = ChangeWatcher::status(self);
        FeedStatus {
            transport: status.transport.to_owned(),
            connected: status.listening,
            healthy: status.healthy,
            started: status.polls > 0 && status.healthy,
            cursor_seq: status.cursor_seq,
            changes_read: status.changes_read,
            last_error: status.last_error,
        }
    }

    fn stop(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(ChangeWatcher::stop(*self))
    }
}

/// The default feed: the store's change watcher, reading the change log every `poll_interval`
/// (and on PostgreSQL also when a NOTIFY wakes it).
pub fn start_store_watcher(poll_interval: Duration) -> FeedStarter {
    Box::new(move |registry| {
        Box::new(ChangeWatcher::spawn(
            registry,
            WatcherConfig {
                poll_interval,
                listen: true,
            },
        ))
    })
}
