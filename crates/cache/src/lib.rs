//! The coherent in-process cache of Rulebook (docs being written).
#![deny(missing_docs)]

mod cache;
mod clock;
mod coherence;
mod flight;
mod stats;
mod sync;
mod types;

pub use cache::{Cache, CacheBuilder};
pub use clock::{Clock, ManualClock};
pub use stats::CacheStats;
pub use types::{LoadError, Loaded, RemovalCause};
