//! Rulebook's store: rules persisted in SQLite or PostgreSQL, their history, the change log, the
//! cached read side (the registry) and the rule-files source.
#![deny(missing_docs)]

mod db;
pub mod deps;
mod error;
mod feed;
mod files;
mod model;
mod registry;
mod store;
mod tokens;
mod watcher;
mod write;

pub use db::{Backend, StoreOptions};
pub use error::StoreError;
pub use feed::{Change, ChangeListener, ChangeOp, Cursor};
pub use model::{Author, ChangeKind, HistoryEntry};
pub use registry::{Compiled, LoadCount, Registry, RegistryConfig, RegistryItem, RegistryKey};
pub use store::{Store, DEFAULT_TENANT};
pub use write::ImportReport;
pub use files::{FileProblem, FilesStatus, RuleFiles, ScanReport};
pub use tokens::{TokenRecord, TokenRole};
pub use watcher::{ChangeWatcher, WatcherConfig, WatcherStatus, NOTIFY_CHANNEL};
