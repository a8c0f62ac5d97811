#![doc = include_str!("../README.md")]
//!
//! ## A tour of the modules
//!
//! - `feed`: [`Feed`], the reader that owns the commit-safe cursor and is the only task that
//!   reads the change log, and the state every task shares.
//! - `listen`: PostgreSQL LISTEN: wake-ups, and changes carried in notification payloads.
//! - `redis`: Redis pub/sub, the publisher hooked onto the store's commits and the subscriber.
//! - `prune`: scheduled pruning of the change log.
//! - `config`: [`FeedConfig`] and its checks; `status`: [`FeedStatus`] and [`FeedMetrics`].
//!
//! ## Why it is built this way
//!
//! Every wake-up (NOTIFY, pub/sub) is at-most-once and loses messages while disconnected, so
//! none of them is trusted alone: the change log, written in the same transaction as the change,
//! is the truth, and a poll of it every second bounds how long a lost wake-up can leave an
//! instance stale. A write through an instance pushes what to invalidate (keys, entry points
//! and labels, never values) in its NOTIFY's payload and, with Redis, in a message, so that the
//! others invalidate without a round trip to the database; the log read that follows skips what
//! a push already applied, and only log reads move the cursor and the applied position. Anything
//! that breaks the chain (a reconnection, a cursor older than the pruned log) ends in a replay
//! from the cursor or, when the log no longer reaches back, in invalidating everything: a doubt
//! costs reloads, never a stale answer.
#![deny(missing_docs)]

mod config;
mod feed;
mod listen;
mod prune;
mod redis;
mod status;

pub use config::{ConfigError, FeedConfig, PruneConfig, RedisConfig, DEFAULT_REDIS_CHANNEL};
pub use feed::{Feed, Released, HELD_MAX};
pub use status::{
    FeedMetrics, FeedStatus, LagHistogram, ListenStatus, PruneStatus, RedisStatus, LAG_BUCKETS,
};
