#![doc = include_str!("../README.md")]
//!
//! ## A tour of the modules
//!
//! - `db`: the two backends behind one small interface: every query is written once with
//!   `$1` placeholders and dispatched to sqlx's SQLite or PostgreSQL driver; migrations for each
//!   backend are embedded from `migrations/`.
//! - `store` and `write`: [`Store`]: opening, tenants, reads, and the writes with their history
//!   rows and optimistic concurrency.
//! - `change_log`: [`Change`], the commit-safe [`Cursor`], [`Store::changes_since`] /
//!   [`Store::read_feed`] and the log's pruning, [`Store::prune_changes`].
//! - [`deps`]: the dependency map from changes to cache tags (the tag strings themselves are
//!   built by `rulebook_rules::tags`).
//! - `error`: [`StoreError`], with the one conversion from a cache load's error and the one
//!   wording of a version conflict (the server's 409 uses it).
//! - `registry`: [`Registry`], the cached read side.
//! - `notifications`: [`Store::listen_for_changes`], the PostgreSQL LISTEN connection that wakes a feed
//!   reader (the sync crate's) when the change log grows.
//! - `files`: [`RuleFiles`], the rule-files source.
//! - `tokens`: the server's API tokens.
//! - `hooks` (feature `test-hooks`, for tests only): `Store::fail_next_write` and
//!   `Store::pause_next_write`, which act on a write between its rows and its commit.
//! - `versions`: the history read back: one version, [`VersionDiff`] (RFC 6902 JSON Patch and a
//!   field list), [`Store::rollback_rule`], and [`Store::rules_as_of`] for evaluating as of a time.
//! - `decisions`: [`DecisionLog`], the opt-in decision log, written off the request path in
//!   batches and pruned after its retention.
#![deny(missing_docs)]

mod change_log;
mod db;
mod decisions;
pub mod deps;
mod error;
mod files;
#[cfg(feature = "test-hooks")]
mod hooks;
mod model;
mod notifications;
mod registry;
mod store;
mod tokens;
mod versions;
mod write;

pub use change_log::{Change, ChangeListener, ChangeOp, Cursor, FeedRead};
pub use db::{redact_url, Backend, StoreOptions};
pub use decisions::{
    ContextPolicy, Decision, DecisionKind, DecisionLog, DecisionLogConfig, DecisionLogStats,
    DecisionQuery, NewDecision, VersionsUsed,
};
pub use error::StoreError;
pub use files::{FileProblem, FilesStatus, RuleFiles, ScanReport};
#[cfg(feature = "test-hooks")]
pub use hooks::WritePause;
pub use model::{Author, ChangeKind, HistoryEntry};
pub use notifications::{
    ChangeNotifications, Notice, NOTIFY_CHANNEL, PAYLOAD_MAX_BYTES, PAYLOAD_MAX_CHANGES,
};
pub use registry::{
    FeedApplied, LoadCount, Registry, RegistryConfig, RegistryItem, MAX_LISTED_LOADS,
    UNLISTED_LOADS,
};
pub use store::Store;
pub use tokens::{TokenRecord, TokenRole};
pub use versions::{FieldChange, VersionDiff};
pub use write::{batch_problems, ImportReport, Written};
