//! The values that cross the cache's API: what a loader returns, what a failed load looks like,
//! and why an entry left the cache.

use std::error::Error;
use std::fmt;

use crate::shim::Arc;

/// A loaded value with what the cache needs to keep it coherent: the tags that invalidate it
/// and the version of the source it was read from.
///
/// Tags are strings such as `entry_point:checkout`; they may be discovered while loading (a
/// ruleset learns its rules as it loads them) and are only needed when the load returns.
#[derive(Debug, Clone)]
pub struct Loaded<V> {
    pub(crate) value: V,
    pub(crate) tags: Vec<Arc<str>>,
    pub(crate) version: Option<u64>,
}

impl<V> Loaded<V> {
    /// A value with no tags and no version.
    pub fn new(value: V) -> Self {
        Self {
            value,
            tags: Vec::new(),
            version: None,
        }
    }

    /// Adds tags: invalidating any of them removes the entry, and stops its insertion if the
    /// invalidation came while it was loading.
    pub fn with_tags<I, T>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        for tag in tags {
            let tag = tag.as_ref();
            if !self.tags.iter().any(|known| &**known == tag) {
                self.tags.push(Arc::from(tag));
            }
        }
        self
    }

    /// Sets the version of the source the value was read from. A cached entry is never replaced
    /// by one with an older version.
    pub fn with_version(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }
}

/// Why a `get_or_load` produced no value.
///
/// Every caller that waited on the same load receives the same error.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError<E> {
    /// The loader returned this error. It is shared by every caller that waited on the load and
    /// is not cached.
    Failed(Arc<E>),
    /// The loader panicked. The panic continues in the caller that ran the loader; every caller
    /// that was waiting for it receives this error instead of waiting forever.
    Panicked,
}

impl<E> Clone for LoadError<E> {
    fn clone(&self) -> Self {
        match self {
            Self::Failed(error) => Self::Failed(Arc::clone(error)),
            Self::Panicked => Self::Panicked,
        }
    }
}

impl<E: fmt::Display> fmt::Display for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(error) => write!(f, "loading the value failed: {error}"),
            Self::Panicked => f.write_str(
                "loading the value panicked; the next read retries the load (see the loader's panic message in the log)",
            ),
        }
    }
}

impl<E: Error + 'static> Error for LoadError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Failed(error) => Some(&**error),
            Self::Panicked => None,
        }
    }
}

/// Why an entry left the cache, as told to the removal listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// `invalidate`, `invalidate_tag` or `invalidate_all` removed it.
    Invalidated,
    /// A newer value for the same key replaced it.
    Replaced,
    /// Its time to live ran out.
    Expired,
    /// It was not read within the time to idle.
    Idle,
    /// The capacity bound pushed it out.
    Size,
}
