//! The import of 100,000 rules, as a user runs it: `rulebook rules import DIR` (20 files) against
//! `rulebook serve` with default settings, on SQLite and on PostgreSQL
//! (`RULEBOOK_TEST_DATABASE_URL`, a fresh database). Prints the wall time of the first import
//! (every rule created), of a second one (every rule unchanged), and of a dry run.
//!
//! `cargo bench -p rulebook --bench import`; `RULEBOOK_BENCH_IMPORT_RULES=N` for another count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Stdio;
use std::time::Instant;

use common::{binary, Running, TestDb};
use serde_json::{json, Value};

const FILES: usize = 20;

/// Runs `rulebook rules import DIR --json [more]` and returns its seconds and answer.
fn import(server: &Running, dir: &str, more: &[&str]) -> (f64, Value) {
    let start = Instant::now();
    let output = binary()
        .args(["rules", "import", dir, "--json"])
        .args(more)
        .env("RULEBOOK_SERVER", &server.base)
        .env("RULEBOOK_TOKEN", server.token.as_deref().unwrap())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let seconds = start.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (seconds, serde_json::from_slice(&output.stdout).unwrap())
}

async fn run(name: &str, db: &TestDb, dir: &str, rules: usize) {
    let server = Running::start(&db.url, &[]);
    server.ready().await;
    let (dry, answer) = import(&server, dir, &["--dry-run"]);
    assert_eq!(answer["created"], json!(rules), "{answer}");
    let (first, answer) = import(&server, dir, &[]);
    assert_eq!(answer["created"], json!(rules), "{answer}");
    let (again, answer) = import(&server, dir, &[]);
    assert_eq!(answer["unchanged"], json!(rules), "{answer}");
    println!(
        "import/{name}: {rules} rules: created in {first:.2} s ({:.0} rules/s), unchanged in {again:.2} s, dry run {dry:.2} s",
        rules as f64 / first
    );
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then only a small run.
    let benching = std::env::args().any(|a| a == "--bench");
    let rules: usize = std::env::var("RULEBOOK_BENCH_IMPORT_RULES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if benching { 100_000 } else { 1_000 });
    let dir = tempfile::tempdir().unwrap();
    common::write_bulk(dir.path(), rules, FILES, |_, _| {});
    let folder = dir.path().to_str().unwrap();
    run("sqlite", &TestDb::sqlite(), folder, rules).await;
    match TestDb::postgres().await {
        Some(db) => run("postgres", &db, folder, rules).await,
        None => eprintln!("import/postgres: skipped (no PostgreSQL at RULEBOOK_TEST_DATABASE_URL)"),
    }
}
