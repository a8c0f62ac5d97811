//! The change feed: how changes made outside this process (plain SQL, other instances, rule
//! files of another instance) reach this process's registry.
//!
//! This is the one seam where the feed is started. [`ChangeFeed`] is what the server needs from
//! a feed (its status for `/health` and readiness, its Prometheus text, a way to stop it);
//! [`start_sync_feed`] starts the sync crate's [`Feed`]: the change log read with a commit-safe
//! cursor on every PostgreSQL NOTIFY or Redis message and at least every poll interval, with
//! replay after a reconnection and pruning of the log (see `rulebook_sync`).

use std::future::Future;
use std::pin::Pin;

use rulebook_store::Registry;
use rulebook_sync::{Feed, FeedConfig, FeedStatus};

/// A running change feed.
pub trait ChangeFeed: Send + Sync + 'static {
    /// Its state now, shown as `feed` in `/health`; its `ready` is part of readiness.
    fn status(&self) -> FeedStatus;

    /// Its Prometheus metrics (complete `# HELP`/`# TYPE` blocks), appended to `/metrics`.
    fn metrics_text(&self) -> String;

    /// Stops it and waits until its tasks have ended.
    fn stop(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Starts a feed for a registry; given to [`crate::Server::start_with_feed`].
pub type FeedStarter = Box<dyn FnOnce(Registry) -> Box<dyn ChangeFeed> + Send>;

impl ChangeFeed for Feed {
    fn status(&self) -> FeedStatus {
        Feed::status(self)
    }

    fn metrics_text(&self) -> String {
        let mut out = String::new();
        self.metrics().write_prometheus(&mut out);
        out
    }

    fn stop(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(Feed::stop(*self))
    }
}

/// The server's feed: the sync crate's [`Feed`] with `config`, which the caller has checked
/// with [`FeedConfig::validate`].
pub fn start_sync_feed(config: FeedConfig) -> FeedStarter {
    Box::new(move |registry| Box::new(Feed::spawn(registry, config)))
}
