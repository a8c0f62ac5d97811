//! The coherent in-process cache of Rulebook (being built; see the crate README).
#![deny(missing_docs)]
