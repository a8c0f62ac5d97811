#![doc = include_str!("../README.md")]
//!
//! ## A tour of the modules
//!
//! - [`wire`]: the answers and events only the API has (the rules crate owns [`rulebook_rules::Rule`],
//!   [`rulebook_rules::Evaluation`] and [`rulebook_rules::ScoreResult`]): the snapshot, the change
//!   stream's events, parameter and enabled answers, and [`wire::Fresh`], any answer with the
//!   `seq` it reflects.
//! - [`refusal`]: the status, code and message of every call refused for what it or the rules
//!   are; the server answers with them and the replica refuses with them, so both fail alike.
//! - [`sse`]: the Server-Sent Events parser for the change stream.
//! - `client`: [`Client`], the HTTP API typed.
//! - `replica`: [`Replica`], the tenant's rules in-process, kept current by the change stream,
//!   answering `evaluate`, `param`, `is_enabled` and `score` with the server's semantics (its
//!   correctness argument is in the module's docs), and [`ReplicaView`], one state of it whose
//!   answers all reflect the same `seq`.
#![deny(missing_docs)]

mod client;
pub mod refusal;
mod replica;
pub mod sse;
pub mod wire;

pub use client::{segment, Client, ClientError, FieldProblem, RawAnswer, UNEXPECTED};
pub use replica::{Replica, ReplicaStatus, ReplicaView};
