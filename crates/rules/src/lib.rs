//! Rulebook's rules engine (being built; see the crate README).
#![deny(missing_docs)]
