//! How evaluation cost grows with the rules of one entry point: for 10, 100, 1,000 and 10,000
//! rules, the time to compile the entry point from its rules' JSON (a cold load's compile step),
//! the time to evaluate it when one rule matches and when half of them match, and the resident
//! memory that loading them adds (an upper bound: it includes what parsing used and freed). Prints a markdown table and writes a CSV for
//! `scripts/growth-plot` (which draws `docs/growth.png`).
//!
//! `cargo run --release -p rulebook-rules --example growth -- [CSV_PATH]` (default
//! `target/growth.csv`). `RULEBOOK_GROWTH_SIZES` overrides the sizes (comma-separated). Each
//! figure is the median of several timed runs; the machine's noise is in them, so compare rows
//! of one run, not runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use rulebook_rules::{Action, EntryPoint, Limits, Rule, Ruleset};
use serde_json::{json, Value};

/// `n` rules; with `many`, half of them match the input below, else exactly one does.
fn rules(n: usize, many: bool) -> Vec<Rule> {
    let ep = EntryPoint::parse("growth").unwrap();
    (0..n)
        .map(|i| {
            let mut rule = Rule::new(format!("growth_{i:05}"));
            rule.entry_point = Some(ep.clone());
            rule.priority = (i % 100) as i32;
            let customer = if many && i % 2 == 0 {
                "c0".to_owned()
            } else {
                format!("c{i}")
            };
            rule.condition = json!({"and": [
                {"==": [{"var": "customer"}, customer]},
                {">": [{"var": "total"}, {"var": "params.threshold"}]}
            ]});
            rule.params = json!({"threshold": i % 100}).as_object().unwrap().clone();
            rule.actions = vec![Action::new("set_value")
                .with("field", format!("flag_{i}"))
                .with("value", json!({"*": [{"var": "total"}, 0.2]}))];
            rule
        })
        .collect()
}

/// The median of `runs` timings of `f`, each repeating it until at least 20 ms have passed.
fn median_time(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let mut n = 0u32;
            while started.elapsed() < Duration::from_millis(20) || n == 0 {
                f();
                n += 1;
            }
            started.elapsed() / n
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// Resident memory of this process in bytes (Linux; 0 elsewhere).
fn resident() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let csv_path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/growth.csv".to_owned());
    let sizes: Vec<usize> = std::env::var("RULEBOOK_GROWTH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 100, 1_000, 10_000]);
    let at = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
    let limits = Limits::default();
    let input: Value = json!({"customer": "c0", "total": 260});
    let ep = EntryPoint::parse("growth").unwrap();

    let mut csv = String::from(
        "rules,compile_us,eval_one_match_us,eval_half_match_us,matched_half,resident_bytes\n",
    );
    println!("| rules | compile from JSON | evaluate, 1 match | evaluate, half match | per rule (half) | resident memory added |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &n in &sizes {
        let few_json = serde_json::to_string(&rules(n, false)).unwrap();
        let many_json = serde_json::to_string(&rules(n, true)).unwrap();
        let compile = |json: &str| {
            let parsed: Vec<Rule> = serde_json::from_str(json).unwrap();
            Ruleset::compile(ep.clone(), parsed).unwrap()
        };
        // Memory first, before the timing loops leave freed memory behind for it to reuse. An
        // upper bound: it includes the parsed rules, freed but kept by the allocator.
        let before = resident();
        let few = compile(&few_json);
        let after = resident();
        let many = compile(&many_json);
        let runs = if n >= 10_000 { 3 } else { 7 };
        let compile_time = median_time(runs, || {
            black_box(compile(&few_json));
        });
        assert_eq!(few.evaluate(&input, at, &limits).matched.len(), 1);
        let matched_half = many.evaluate(&input, at, &limits).matched.len();
        assert_eq!(matched_half, n.div_ceil(2));
        let one = median_time(runs, || {
            black_box(few.evaluate(black_box(&input), at, &limits));
        });
        let half = median_time(runs, || {
            black_box(many.evaluate(black_box(&input), at, &limits));
        });
        let memory = after.saturating_sub(before);
        println!(
            "| {n} | {:.0} µs | {:.1} µs | {:.1} µs | {:.0} ns | {:.1} MiB |",
            micros(compile_time),
            micros(one),
            micros(half),
            half.as_secs_f64() * 1e9 / n as f64,
            memory as f64 / (1024.0 * 1024.0)
        );
        csv.push_str(&format!(
            "{n},{:.3},{:.3},{:.3},{matched_half},{memory}\n",
            micros(compile_time),
            micros(one),
            micros(half)
        ));
    }
    std::fs::write(&csv_path, csv).unwrap();
    println!("\nwrote {csv_path}");
}
