//! The replica against its peers, measured in one run: a parameter read and an evaluation of
//! the rules crate's 50-rule bench entry point (same rules, same input) answered by a
//! `rulebook_client::Replica` in-process, by the server over HTTP on loopback, and (for the
//! evaluation) by the rules crate's own compiled `Ruleset`. The figures to compare are the ratios
//! within one run: replica `param` against HTTP `param` (target 100x faster or better), replica
//! `evaluate` against the rules crate's (target within 1.2x). After the measurements it prints
//! the replica's propagation lag (p50, p99) over 200 writes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use rulebook::{Config, Server};
use rulebook_client::{Client, Replica};
use rulebook_rules::{EntryPoint, Limits, Rule, Ruleset};
use rulebook_store::Author;
use serde_json::json;

#[global_allocator]
static ALLOCATOR: rulebook::Allocator = rulebook::Allocator;

const ADMIN: &str = "bench-admin-token";

fn fifty_rules() -> Vec<Rule> {
    rulebook_rules::examples::benchmark_rules()
}

fn replica_vs_http_vs_rules(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (client, replica) = runtime.block_on(async {
        let mut config = Config::with_database(format!(
            "sqlite://{}",
            dir.path().join("bench.db").display()
        ))
        .unwrap();
        config.admin_token = Some(ADMIN.to_owned());
        config.log = "warn".to_owned();
        let server = Server::start(&config).await.unwrap();
        server
            .state()
            .store()
            .import_rules("default", fifty_rules(), &Author::new("bench"))
            .await
            .unwrap();
        while !server.state().is_ready() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let listener = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(server.serve(listener, std::future::pending()));
        let client = Client::new(base).with_token(ADMIN);
        let replica = Replica::start(client.clone()).await.unwrap();
        (client, replica)
    });
    let input = json!({"country": "GB", "cart": {"total": 245.5, "coupon": "SPRING"}});
    let at = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
    let limits = Limits::default();
    // The rules as the server stored them (with their versions), compiled by the rules crate.
    let checkout = EntryPoint::parse("checkout").unwrap();
    let stored: Vec<Rule> = runtime
        .block_on(client.snapshot(None))
        .unwrap()
        .body
        .rules
        .into_iter()
        .filter(|r| r.entry_point.as_ref() == Some(&checkout))
        .collect();
    assert_eq!(stored.len(), 50);
    let compiled = Ruleset::compile(checkout, stored).unwrap();
    let local = runtime
        .block_on(replica.evaluate_at("checkout", &input, at))
        .unwrap();
    assert_eq!(local.matched.len(), 25);
    assert_eq!(local, compiled.evaluate(&input, at, &limits));

    let mut group = c.benchmark_group("replica");
    group.bench_function("param/replica", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(replica.param("checkout_rule_07", "rate").await.unwrap()) })
    });
    group.bench_function("param/http", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                client
                    .param("checkout_rule_07", "rate", None)
                    .await
                    .unwrap(),
            )
        })
    });
    group.bench_function("evaluate_50/rules_crate", |b| {
        b.iter(|| black_box(compiled.evaluate(black_box(&input), at, &limits)))
    });
    group.bench_function("evaluate_50/replica", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                replica
                    .evaluate_at("checkout", black_box(&input), at)
                    .await
                    .unwrap(),
            )
        })
    });
    group.bench_function("evaluate_50/http", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(client.evaluate("checkout", &input, None).await.unwrap()) })
    });
    group.finish();
    propagation_lag(&runtime, &client, &replica);
}

/// The replica's propagation lag, printed (not asserted): from a write's acknowledgement by the
/// server to the replica reflecting it (its change on the stream, the rule fetched, the view
/// swapped). One instance on SQLite, so the server's own feed is woken by the commit; the lag
/// between two instances on PostgreSQL is printed by `tests/replica_stress.rs`.
fn propagation_lag(runtime: &tokio::runtime::Runtime, client: &Client, replica: &Replica) {
    let rounds = 200;
    let mut lags = runtime.block_on(async {
        let mut lags = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let mut params = serde_json::Map::new();
            params.insert("rate".into(), json!(round));
            let seq = client
                .update_params("checkout_rule_07", params)
                .await
                .unwrap()
                .seq;
            let acked = Instant::now();
            replica
                .wait_for(seq, Duration::from_secs(10))
                .await
                .unwrap();
            lags.push(acked.elapsed());
        }
        lags
    });
    lags.sort();
    let at = |q: f64| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)];
    eprintln!(
        "replica propagation lag over {rounds} writes (acknowledged by the server -> reflected by the replica): p50 {:?}, p99 {:?}, max {:?}",
        at(0.5),
        at(0.99),
        lags[lags.len() - 1]
    );
}

criterion_group!(benches, replica_vs_http_vs_rules);
criterion_main!(benches);
