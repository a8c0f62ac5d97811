//! `rulebook-client`: the wire format of Rulebook's HTTP API, shared by the server (which
//! answers with these types) and by clients (which read them), so the two cannot drift.
//!
//! ## A tour of the modules
//!
//! - [`wire`]: the answers and events only the API has (the rules crate owns [`rulebook_rules::Rule`],
//!   [`rulebook_rules::Evaluation`] and [`rulebook_rules::ScoreResult`]): the snapshot, the change
//!   stream's events, parameter and enabled answers, and [`wire::Fresh`], any answer with the
//!   `seq` it reflects.
//! - [`sse`]: the Server-Sent Events parser for the change stream.
#![deny(missing_docs)]

pub mod sse;
pub mod wire;
