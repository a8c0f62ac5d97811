//! Regression: evaluating made-up entry points (`POST /v1/evaluate/ep_<n>`, which any reader may
//! send, with no token on loopback) grew the process's memory and `/metrics` by one load count
//! and one series per name, without bound. This floods 50,000 of them and checks that the
//! registry stays under its own bound, that `/metrics` does not grow and `/v1/cache/stats` lists
//! at most `MAX_LISTED_LOADS` + 1 rows, that a stored entry point is still counted by name, and
//! that the heap the process holds grows by less than [`HEAP_GROWTH_BOUND`].
//!
//! The heap is counted exactly, by an instrumented global allocator (`stats_alloc`): the bytes
//! allocated and not yet freed. Resident memory is only printed and checked loosely: the
//! allocator's arenas and SQLite's page cache (which the allocator does not see) move it by a
//! few MiB from one run to the next, more than a leak of one count per name would.
//!
//! Its own test binary, with one test, so that the process's memory is this test's alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use rulebook::{app, AppState, Config, Server};
use rulebook_store::{MAX_LISTED_LOADS, UNLISTED_LOADS};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower::ServiceExt;

#[global_allocator]
static HEAP: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Made-up entry points sent.
const FLOOD: usize = 50_000;
/// Made-up entry points sent first, so that buffers, pools and the allocator reach their steady
/// size before the memory is measured.
const WARM_UP: usize = 5_000;
/// `--tenant-cache` of the test server; its registry holds at most 512 entries per tenant kept,
/// so 1,024 entries here.
const TENANT_CACHE: u64 = 2;
/// The registry's bound for that setting.
const REGISTRY_BOUND: usize = 1_024;
/// The most the live heap may grow during the flood: it grew by about 0.2 MiB with the fix, and by
/// 5.2 MiB with one load count kept per made-up name (the bug).
const HEAP_GROWTH_BOUND: i64 = 1 << 20;
/// The most the process's resident memory may grow during the flood: a loose check of what the
/// heap count cannot see (SQLite's own allocations, memory mapped outside the allocator). It
/// moved by 1–5 MiB between runs with the fix, and by about 8 MiB with the bug.
const RESIDENT_GROWTH_BOUND: u64 = 16 << 20;
/// The most lines `/metrics` may gain during the flood: the warm-up has filled the named load
/// rows (at most `MAX_LISTED_LOADS`) and the routes' bucket and status lines, so the expected
/// gain is none. Before the fix it gained one line per made-up entry point.
const METRICS_LINES_BOUND: usize = 0;

async fn call(router: &Router, method: Method, uri: &str, body: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The bytes allocated and not freed in `change`: positive when the live heap grew. (`stats_alloc`
/// counts a reallocation's growth as allocated and its shrinking as freed.)
fn live_bytes(change: stats_alloc::Stats) -> i64 {
    let allocated = i64::try_from(change.bytes_allocated).unwrap();
    let freed = i64::try_from(change.bytes_deallocated).unwrap();
    allocated - freed
}

/// The process's resident memory, in bytes (Linux: `/proc/self/statm`).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

async fn evaluate_made_up(router: &Router, from: usize, to: usize) {
    for n in from..to {
        let (status, body) = call(
            router,
            Method::POST,
            &format!("/v1/evaluate/ep_{n}"),
            r#"{"context": {}}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "ep_{n}: {body}");
    }
}

async fn ready(state: &AppState) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while !state.is_ready() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the server is ready within a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_made_up_entry_points_grows_neither_memory_nor_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rulebook.db").display());
    let mut config = Config::with_database(url).unwrap();
    config.admin_token = Some("flood-admin-token".to_owned());
    config.tenant_cache = TENANT_CACHE;
    let server = Server::start(&config).await.unwrap();
    let state = server.state().clone();
    ready(&state).await;
    let router = app(state.clone());

    evaluate_made_up(&router, 0, WARM_UP).await;
    // `/metrics` and the stats count themselves once asked: ask before measuring.
    call(&router, Method::GET, "/v1/cache/stats", "").await;
    call(&router, Method::GET, "/metrics", "").await;
    let (_, metrics) = call(&router, Method::GET, "/metrics", "").await;
    let lines_before = metrics.lines().count();
    let memory_before = resident_bytes();
    let heap = Region::new(HEAP);

    evaluate_made_up(&router, WARM_UP, WARM_UP + FLOOD).await;
    let heap_grown = live_bytes(heap.change());
    let memory_after = resident_bytes();
    let (_, metrics) = call(&router, Method::GET, "/metrics", "").await;
    let lines_after = metrics.lines().count();
    let (status, stats) = call(&router, Method::GET, "/v1/cache/stats", "").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();

    let entries = state.registry().len();
    eprintln!(
        "flood of {FLOOD}: registry entries {entries}, /metrics lines {lines_before} -> \
         {lines_after}, live heap grown by {heap_grown} bytes, resident memory \
         {memory_before:?} -> {memory_after:?} bytes"
    );
    assert!(
        entries <= REGISTRY_BOUND,
        "the registry holds {entries} entries, over its bound {REGISTRY_BOUND}"
    );
    assert!(
        lines_after <= lines_before + METRICS_LINES_BOUND,
        "/metrics grew from {lines_before} to {lines_after} lines"
    );
    let loads = stats["loads"].as_array().unwrap();
    assert!(
        loads.len() <= MAX_LISTED_LOADS + 1,
        "/v1/cache/stats lists {} load rows",
        loads.len()
    );
    let unlisted = loads
        .iter()
        .find(|row| row["item"] == UNLISTED_LOADS)
        .and_then(|row| row["loads"].as_u64());
    assert!(
        unlisted.is_some_and(|n| n >= FLOOD as u64),
        "the flood's loads are counted under `{UNLISTED_LOADS}`: {unlisted:?}"
    );
    // A real entry point still gets its own row: made-up names do not crowd it out.
    let (status, body) = call(&router, Method::POST, "/v1/evaluate/checkout_terms", "{}").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let checkout = rulebook_rules::EntryPoint::parse("checkout_terms").unwrap();
    assert!(state.registry().ruleset_loads("default", &checkout) >= 1);
    assert!(
        heap_grown <= HEAP_GROWTH_BOUND,
        "the live heap grew by {heap_grown} bytes, over {HEAP_GROWTH_BOUND}"
    );
    if let (Some(before), Some(after)) = (memory_before, memory_after) {
        let grown = after.saturating_sub(before);
        assert!(
            grown <= RESIDENT_GROWTH_BOUND,
            "resident memory grew by {grown} bytes, over {RESIDENT_GROWTH_BOUND}"
        );
    }
    server.stop().await;
}
