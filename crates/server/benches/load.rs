//! The HTTP load driver: requests per second and p50/p99 latency of evaluation over loopback.
//!
//! Run it with `cargo bench -p rulebook --bench load` (release build). It starts, in this
//! process and on port 0 with a temporary SQLite file each:
//!
//! 1. **ceiling**: a bare axum handler that parses the same JSON body and answers a fixed JSON;
//! 2. **warm**: Rulebook evaluating a 50-rule entry point from a warm cache;
//! 3. **logged**: the same on a second Rulebook server with the decision log on
//!    (`--decision-log`), reported against **warm** (the target: less than a 10% drop);
//! 4. **updating**: the same as **warm** while one of the 50 rules is updated ten times a second
//!    through the API, so every update invalidates the entry point and the next request reloads
//!    it.
//!
//! **warm** and **logged** run in `RULEBOOK_LOAD_ROUNDS` (default 5) alternating rounds, warm
//! then logged, both servers already warm: each pair's logged/warm ratio is printed, then their
//! median. On a shared machine a load spike lasts seconds; alternating short phases makes it hit
//! both sides of a pair alike, or one pair only, which the median then ignores, where a single
//! long phase of each would put the whole spike on one side.
//!
//! Each phase runs for `RULEBOOK_LOAD_SECONDS` (default 5) after a one-second warm-up, with
//! `RULEBOOK_LOAD_CONNECTIONS` (default 32) concurrent connections, and the ratio of Rulebook's
//! throughput to the ceiling's is printed (the target is at least 0.7), with the process's CPU
//! time per request over the same window (servers and load together: between warm and logged,
//! the difference is the decision log's). The logged server's
//! decision log counters are printed at the end: a dropped decision means the writer fell behind
//! and the logged figure flatters the log. Traffic goes to 127.0.0.1 only, and every loop stops
//! at its deadline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use rulebook::{AppState, Config, Server};
use rulebook_store::Author;
use serde_json::{json, Value};

mod driver;

#[global_allocator]
static ALLOCATOR: rulebook::Allocator = rulebook::Allocator;

const ADMIN: &str = "load-admin";
const ENTRY_POINT: &str = "load_test";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Phase {
    name: &'static str,
    requests: usize,
    errors: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    /// The process's CPU time while the counted requests ran (see `driver::Latencies::cpu`).
    cpu: Duration,
}

impl Phase {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// The process's CPU time per counted request, in microseconds: the servers' share and the
    /// load's together, so a difference between two phases is the servers' difference.
    fn cpu_per_request(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }
}

async fn drive(name: &'static str, url: String, connections: usize, seconds: u64) -> Phase {
    let body = serde_json::to_vec(&json!({"context": {"country": "FR", "total": 260, "customer": {"tier": "gold", "since": 2019}}})).unwrap();
    let load = driver::drive(url, body, connections, seconds, None).await;
    Phase {
        name,
        requests: load.requests,
        errors: load.errors,
        elapsed: Duration::from_secs(seconds),
        p50: load.p50,
        p99: load.p99,
        cpu: load.cpu,
    }
}

/// The median of `sorted` (not empty), the mean of the middle two for an even length.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn report(phase: &Phase, ceiling: Option<&Phase>) {
    let ratio = ceiling.map_or(String::new(), |c| {
        format!("  {:.2}x of the ceiling", phase.rps() / c.rps())
    });
    println!(
        "{:<10} {:>9.0} req/s  p50 {:>7.1} us  p99 {:>7.1} us  CPU {:>5.1} us/req  ({} requests, {} errors){ratio}",
        phase.name,
        phase.rps(),
        phase.p50.as_secs_f64() * 1e6,
        phase.p99.as_secs_f64() * 1e6,
        phase.cpu_per_request(),
        phase.requests,
        phase.errors
    );
}

/// A Rulebook server on the SQLite file `path` with the load rules, ready and serving; the
/// decision log on or off.
async fn start_rulebook(path: &std::path::Path, decision_log: bool) -> (SocketAddr, AppState) {
    let mut config = Config::with_database(format!("sqlite://{}", path.display())).unwrap();
    config.admin_token = Some(ADMIN.to_owned());
    config.log = "warn".to_owned();
    config.decision_log = decision_log;
    let server = Server::start(&config).await.unwrap();
    let state = server.state().clone();
    state
        .store()
        .import_rules(
            "default",
            rulebook_rules::examples::load_rules(),
            &Author::new("load"),
        )
        .await
        .unwrap();
    while !server.state().is_ready() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let listener = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(server.serve(listener, std::future::pending()));
    (addr, state)
}

fn main() {
    let seconds = env_number("RULEBOOK_LOAD_SECONDS", 5);
    let connections = env_number("RULEBOOK_LOAD_CONNECTIONS", 32) as usize;
    let dir = tempfile::tempdir().unwrap();

    // The servers get a runtime of their own, and the load its own, as two processes would.
    let (servers, load) = driver::runtimes();

    let (rulebook_addr, logged_addr, ceiling_addr, store, logged) = servers.block_on(async {
        let (rulebook_addr, state) = start_rulebook(&dir.path().join("load.db"), false).await;
        let store = state.store().clone();
        // The same service with the decision log on, measured in the same run.
        let (logged_addr, logged) = start_rulebook(&dir.path().join("logged.db"), true).await;

        // The ceiling: parse the same body, answer a fixed JSON.
        let ceiling = Router::new().route(
            "/v1/evaluate/{entry_point}",
            post(|Json(body): Json<Value>| async move {
                std::hint::black_box(&body);
                Json(json!({"entry_point": ENTRY_POINT, "matched": [], "actions": []}))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ceiling_addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, ceiling).await });
        (rulebook_addr, logged_addr, ceiling_addr, store, logged)
    });

    // The rules really match: 25 rules for FR with a total over their threshold.
    let check = load.block_on(async {
        reqwest::Client::new()
            .post(format!("http://{rulebook_addr}/v1/evaluate/{ENTRY_POINT}"))
            .json(&json!({"context": {"country": "FR", "total": 260}}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    let matched = check["matched"].as_array().map_or(0, Vec::len);
    assert!(matched > 10, "the load rules do not match: {check}");

    println!(
        "HTTP evaluation of a 50-rule entry point ({matched} match), {connections} connections, {seconds} s per phase, loopback"
    );
    let ceiling = load.block_on(drive(
        "ceiling",
        format!("http://{ceiling_addr}/v1/evaluate/{ENTRY_POINT}"),
        connections,
        seconds,
    ));
    report(&ceiling, None);
    let url = format!("http://{rulebook_addr}/v1/evaluate/{ENTRY_POINT}");
    let logged_url = format!("http://{logged_addr}/v1/evaluate/{ENTRY_POINT}");
    let rounds = env_number("RULEBOOK_LOAD_ROUNDS", 5).max(1);
    let mut pairs = Vec::new();
    for round in 1..=rounds {
        let warm = load.block_on(drive("warm", url.clone(), connections, seconds));
        report(&warm, Some(&ceiling));
        let logged = load.block_on(drive("logged", logged_url.clone(), connections, seconds));
        report(&logged, Some(&ceiling));
        println!(
            "round {round}/{rounds}: decision log on {:.2}x the throughput with it off",
            logged.rps() / warm.rps()
        );
        pairs.push((warm, logged));
    }
    let mut ratios: Vec<f64> = pairs.iter().map(|(w, l)| l.rps() / w.rps()).collect();
    ratios.sort_by(f64::total_cmp);
    let mut extra: Vec<f64> = pairs
        .iter()
        .map(|(w, l)| l.cpu_per_request() - w.cpu_per_request())
        .collect();
    extra.sort_by(f64::total_cmp);
    println!(
        "decision log on: median {:.2}x the throughput with it off over {rounds} rounds (range {:.2}..{:.2}; target >= 0.90, a drop under 10%)",
        median(&ratios),
        ratios[0],
        ratios[ratios.len() - 1]
    );
    println!(
        "decision log on: median {:.1} us more CPU per request (range {:.1}..{:.1})",
        median(&extra),
        extra[0],
        extra[extra.len() - 1]
    );
    // The warm phase with the median throughput stands for warm in the summary below.
    pairs.sort_by(|a, b| a.0.rps().total_cmp(&b.0.rps()));
    let warm = &pairs[pairs.len() / 2].0;

    // Ten updates a second through the API while the load runs.
    let stop = Arc::new(AtomicBool::new(false));
    let updates = {
        let stop = Arc::clone(&stop);
        load.spawn(async move {
            let client = reqwest::Client::new();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                n += 1;
                let response = client
                    .patch(format!("http://{rulebook_addr}/v1/rules/LOAD-07/params"))
                    .bearer_auth(ADMIN)
                    .json(&json!({"params": {"threshold": 70 + (n % 2)}, "reason": "load test"}))
                    .send()
                    .await
                    .unwrap();
                assert!(
                    response.status().is_success(),
                    "update failed: {}",
                    response.status()
                );
            }
            n
        })
    };
    let updating = load.block_on(drive("updating", url, connections, seconds));
    stop.store(true, Ordering::Relaxed);
    let updates = load.block_on(updates).unwrap();
    report(&updating, Some(&ceiling));
    let loads = servers.block_on(async { store.head_seq().await.unwrap() });
    let stats = servers.block_on(async {
        let log = logged.decision_log().unwrap();
        log.flush().await;
        log.stats()
    });
    println!(
        "decision log: {} written, {} dropped, {} failed",
        stats.written, stats.dropped, stats.failed
    );
    println!(
        "{updates} updates during the last phase (change log head {loads}); ratio target >= 0.70: warm {:.2}, updating {:.2}",
        warm.rps() / ceiling.rps(),
        updating.rps() / ceiling.rps()
    );
    drop(servers);
}
