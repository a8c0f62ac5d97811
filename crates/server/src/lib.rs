//! Rulebook's service: the HTTP API, the web admin page, the CLI, tenants, tokens, metrics,
//! health and graceful shutdown. The binary `rulebook` is a thin `main` over this library.
//!
//! A tour, in the order a request meets the modules:
//!
//! - [`config`]: every setting of `rulebook serve`, each a flag and a `RULEBOOK_*` variable.
//! - [`server`]: [`Server::start`] opens the store (migrating and seeding it on first start),
//!   makes the first admin token if there is none, starts the change feed and the first load;
//!   [`Server::serve`] serves until a shutdown signal and then drains requests, stops the feed
//!   and closes the pool.
//! - [`api`]: [`app`] builds the router, and [`api::openapi()`] the OpenAPI 3.1 document served at
//!   `/openapi.json`, from one list of annotated handlers; one module per group of endpoints.
//! - [`admin`]: the web admin at `/admin`, HTML pages for rule authors over the same API.
//! - [`auth`]: tenants from `X-Tenant-ID` and bearer tokens with roles, as extractors a handler
//!   names in its signature ([`auth::Reader`], [`auth::Writer`], [`auth::Admin`]).
//! - [`extract`]: body, path and query extractors whose rejections are JSON errors.
//! - [`error`]: [`ApiError`], the one error type every handler returns.
//! - [`state`]: [`AppState`], the registry (coherent cache), the bounded tenant cache, limits.
//! - [`metrics`]: per-route counters and latency histograms, and the `/metrics` text.
//! - [`cli`]: the `rulebook` command line, one file per subcommand group.
//!
//! Every read (evaluate, params, enabled, score, rules) is answered from the store's
//! [`rulebook_store::Registry`], which the store invalidates after each commit and before the
//! write returns, so the very next request sees a change.
#![deny(missing_docs)]

pub mod admin;
pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod extract;
pub mod freshness;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod state;

pub use api::app;
pub use config::Config;
pub use error::ApiError;
pub use server::{Server, StartError};
pub use state::AppState;

/// The allocator of the `rulebook` binary and of the benchmarks that measure it in process
/// (`load`, `replica`): mimalloc, made the global allocator by each of those programs with
/// `#[global_allocator] static ALLOCATOR: rulebook::Allocator = rulebook::Allocator;`.
///
/// A request allocates and frees its body, context, answer and decision across the runtime's
/// threads; with glibc's allocator that was about a tenth of the server's CPU under wrk (`perf`),
/// and mimalloc takes 89,300 instructions an HTTP evaluation down to 80,577
/// (`MODE=instructions scripts/bench-http`). The price is memory held in reserve: a server
/// answering the benchmark's load is resident at about 37 MB instead of 23 MB.
///
/// The library does not choose the allocator itself, so that a test may count the heap with an
/// allocator of its own (`tests/flood.rs`).
pub use mimalloc::MiMalloc as Allocator;
