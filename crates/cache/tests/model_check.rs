//! Model-checked tests of the cache's load/invalidate protocol (filled in with the cache).
#![cfg(feature = "shuttle")]
