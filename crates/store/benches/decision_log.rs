//! The decision log's writer: CPU time per logged decision.
//!
//! Run it with `cargo bench -p rulebook-store --bench decision_log`. It makes
//! `RULEBOOK_DECISIONS` (default 50,000) decisions like the load benchmark's (a 50-rule entry
//! point, 25 rules matching, the answer as the service sends it), all before measuring, then
//! records them into a [`DecisionLog`] on a temporary SQLite file and waits for the writer to
//! finish, `RULEBOOK_DECISION_ROUNDS` (default 3) times on fresh files. What it reports is the
//! process's CPU time (user and system, every thread: the tokio writer task and SQLite's
//! connection thread) per decision written, which is what the log takes from evaluation on a
//! busy machine; wall-clock time is printed beside it. With `RULEBOOK_TEST_DATABASE_URL` set to a
//! PostgreSQL database it measures the same there (the server's CPU is not counted then).
//!
//! CPU time is read from `/proc/self/stat`, so the bench runs on Linux only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rulebook_rules::{EntryPoint, Ruleset};
use rulebook_store::{
    DecisionKind, DecisionLog, DecisionLogConfig, NewDecision, Store, VersionsUsed,
};
use serde_json::json;

const ENTRY_POINT: &str = "load_test";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The load benchmark's 50 rules.
fn ruleset() -> Ruleset {
    let entry_point = EntryPoint::parse(ENTRY_POINT).unwrap();
    let rules = rulebook_rules::examples::load_rules()
        .into_iter()
        .map(|mut rule| {
            rule.version = 1;
            rule
        })
        .collect();
    Ruleset::compile(entry_point, rules).unwrap()
}

/// A decision's owned parts: its id, time and answer.
struct Made {
    id: String,
    at: chrono::DateTime<Utc>,
    answer: Vec<u8>,
}

/// The context every decision is made for.
fn context() -> serde_json::Value {
    json!({"country": "FR", "total": 260, "customer": {"tier": "gold", "since": 2019}})
}

/// `n` decisions made from `ruleset`, answers and all.
fn decisions(ruleset: &Arc<Ruleset>, n: usize) -> Vec<Made> {
    let context = context();
    (0..n)
        .map(|i| {
            let id = uuid::Uuid::now_v7().to_string();
            let at = Utc::now();
            let evaluation = ruleset.evaluate(&context, at, &Default::default());
            let mut answer = serde_json::to_value(&evaluation).unwrap();
            answer["seq"] = json!(1000 + i);
            answer["decision_id"] = json!(id);
            Made {
                id,
                at,
                answer: serde_json::to_vec(&answer).unwrap(),
            }
        })
        .collect()
}

/// The CPU time this process has used (every thread, user and system).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat (Linux only)");
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // utime and stime, fields 14 and 15 of the whole line, in clock ticks of 1/100 s.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// The CPU and wall time of recording `decisions` (made from `ruleset`) and writing them all.
async fn measure(
    store: &Store,
    ruleset: &Arc<Ruleset>,
    decisions: Vec<Made>,
) -> (Duration, Duration) {
    let (versions, context) = (VersionsUsed::Ruleset(Arc::clone(ruleset)), context());
    let n = decisions.len();
    let log = DecisionLog::start(
        store.clone(),
        DecisionLogConfig {
            // Recorded from one thread, so into one shard: room for them all there.
            queue: usize::MAX,
            ..DecisionLogConfig::default()
        },
    );
    let cpu = cpu_time();
    let wall = Instant::now();
    for made in &decisions {
        assert!(log.record(NewDecision {
            id: &made.id,
            tenant: "default",
            kind: DecisionKind::Evaluate,
            entry_point: ENTRY_POINT,
            decided_at: made.at,
            versions: &versions,
            context: &context,
            answer: &made.answer,
        }));
    }
    log.stop().await;
    let (cpu, wall) = (cpu_time() - cpu, wall.elapsed());
    let stats = log.stats();
    assert_eq!(
        (stats.written, stats.dropped, stats.failed),
        (n as u64, 0, 0)
    );
    (cpu, wall)
}

fn main() {
    let n = env_number("RULEBOOK_DECISIONS", 50_000) as usize;
    let rounds = env_number("RULEBOOK_DECISION_ROUNDS", 3).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ruleset = Arc::new(ruleset());
    let sample = decisions(&ruleset, 1);
    println!(
        "{n} decisions per round, answers of {} bytes, from a {}-rule entry point",
        sample[0].answer.len(),
        ruleset.len()
    );
    let mut targets = vec![("sqlite", None)];
    if let Ok(url) = std::env::var("RULEBOOK_TEST_DATABASE_URL") {
        targets.push(("postgres", Some(url)));
    }
    for (name, url) in targets {
        for round in 1..=rounds {
            let dir = tempfile::tempdir().unwrap();
            let url = url
                .clone()
                .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("log.db").display()));
            let batch = decisions(&ruleset, n);
            let (cpu, wall) = runtime.block_on(async {
                let store = Store::open(&url).await.unwrap();
                let took = measure(&store, &ruleset, batch).await;
                store.close().await;
                took
            });
            println!(
                "{name} round {round}/{rounds}: {:>6.1} us CPU per decision, {:>6.1} us wall ({:.0} decisions/s)",
                cpu.as_secs_f64() * 1e6 / n as f64,
                wall.as_secs_f64() * 1e6 / n as f64,
                n as f64 / wall.as_secs_f64()
            );
        }
    }
}
