//! How evaluation cost grows with the rules of one entry point: for 10, 100, 1,000 and 10,000
//! rules, the time to compile the entry point from its rules' JSON (a cold load's compile step),
//! the time to evaluate it when one rule matches, when half of them match, and for a decision
//! table (each rule an `in` test of one variable against its own values, one match), and the
//! resident memory that loading them adds (an upper bound: it includes what parsing used and
//! freed). Each evaluation is timed with the index of equality and `in` tests and without it, in
//! the same run: "without" is the same rules reading the tested variable as `{"var": ["customer",
//! null]}`: the index never files a `var` with a default, and a `null` default reads exactly as a
//! plain `var` does, at the same cost per rule. Prints a markdown table and writes a CSV for
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

/// How a rule reads the variable its first test compares: as the index files it, or with a
/// default, which the index leaves alone (the same work per rule).
#[derive(Clone, Copy)]
enum Read {
    Indexed,
    Plain,
}

fn read(name: &str, how: Read) -> Value {
    match how {
        Read::Indexed => json!({ "var": name }),
        Read::Plain => json!({ "var": [name, null] }),
    }
}

fn rule(ep: &EntryPoint, i: usize, condition: Value) -> Rule {
    let mut rule = Rule::new(format!("growth_{i:05}"));
    rule.entry_point = Some(ep.clone());
    rule.priority = (i % 100) as i32;
    rule.condition = condition;
    rule.params = json!({"threshold": i % 100}).as_object().unwrap().clone();
    rule.actions = vec![Action::new("set_value")
        .with("field", format!("flag_{i}"))
        .with("value", json!({"*": [{"var": "total"}, 0.2]}))];
    rule
}

/// `n` rules; with `many`, half of them match the input below, else exactly one does.
fn rules(n: usize, many: bool, how: Read) -> Vec<Rule> {
    let ep = EntryPoint::parse("growth").unwrap();
    (0..n)
        .map(|i| {
            let customer = if many && i % 2 == 0 {
                "c0".to_owned()
            } else {
                format!("c{i}")
            };
            let condition = json!({"and": [
                {"==": [read("customer", how), customer]},
                {">": [{"var": "total"}, {"var": "params.threshold"}]}
            ]});
            rule(&ep, i, condition)
        })
        .collect()
}

/// A decision table of `n` rows: each rule tests one variable against its own two values (`in`)
/// and a quantity; the input below matches row `n / 2` only.
fn table(n: usize, how: Read) -> Vec<Rule> {
    let ep = EntryPoint::parse("growth").unwrap();
    (0..n)
        .map(|i| {
            let condition = json!({"and": [
                {"in": [read("sku", how), [format!("sku-{i}"), format!("alt-{i}")]]},
                {">=": [{"var": "qty"}, i % 5]}
            ]});
            rule(&ep, i, condition)
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
        "rules,compile_us,one_us,one_plain_us,half_us,half_plain_us,table_us,table_plain_us,\
         matched_half,resident_bytes\n",
    );
    println!("| rules | compile from JSON | 1 match, indexed | 1 match, every rule | half match, indexed | half match, every rule | table, indexed | table, every rule | resident memory added |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &sizes {
        let few_json = serde_json::to_string(&rules(n, false, Read::Indexed)).unwrap();
        let compile = |rules: Vec<Rule>| Ruleset::compile(ep.clone(), rules).unwrap();
        let from_json = |json: &str| compile(serde_json::from_str(json).unwrap());
        // Memory first, before the timing loops leave freed memory behind for it to reuse. An
        // upper bound: it includes the parsed rules, freed but kept by the allocator.
        let before = resident();
        let few = from_json(&few_json);
        let after = resident();
        let runs = if n >= 10_000 { 3 } else { 7 };
        let compile_time = median_time(runs, || {
            black_box(from_json(&few_json));
        });
        let memory = after.saturating_sub(before);
        let table_input = json!({"sku": format!("alt-{}", n / 2), "qty": 10, "total": 260});
        // (indexed, plain) median times of one evaluation, after checking both give one answer.
        let pair = |indexed: &Ruleset, plain: &Ruleset, input: &Value, matches: usize| {
            let answer = indexed.evaluate(input, at, &limits);
            assert_eq!(answer.matched.len(), matches);
            assert_eq!(answer, plain.evaluate(input, at, &limits));
            let time = |ruleset: &Ruleset| {
                median_time(runs, || {
                    black_box(ruleset.evaluate(black_box(input), at, &limits));
                })
            };
            (time(indexed), time(plain))
        };
        let one = pair(&few, &compile(rules(n, false, Read::Plain)), &input, 1);
        let half = pair(
            &compile(rules(n, true, Read::Indexed)),
            &compile(rules(n, true, Read::Plain)),
            &input,
            n.div_ceil(2),
        );
        let table = pair(
            &compile(table(n, Read::Indexed)),
            &compile(table(n, Read::Plain)),
            &table_input,
            1,
        );
        println!(
            "| {n} | {:.0} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} MiB |",
            micros(compile_time),
            micros(one.0),
            micros(one.1),
            micros(half.0),
            micros(half.1),
            micros(table.0),
            micros(table.1),
            memory as f64 / (1024.0 * 1024.0)
        );
        csv.push_str(&format!(
            "{n},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{},{memory}\n",
            micros(compile_time),
            micros(one.0),
            micros(one.1),
            micros(half.0),
            micros(half.1),
            micros(table.0),
            micros(table.1),
            n.div_ceil(2),
        ));
    }
    std::fs::write(&csv_path, csv).unwrap();
    println!("\nwrote {csv_path}");
}
