//! Evaluates the 50-rule benchmark entry point in a loop, for counting the instructions of one
//! evaluation with valgrind: a measure that, unlike wall-clock time, does not move when other work
//! shares the machine.
//!
//! ```text
//! cargo build --release -p rulebook-rules --example evaluate_instructions
//! for n in 0 1000; do
//!   valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
//!     target/release/examples/evaluate_instructions $n 2>&1 | grep 'I *refs'
//! done
//! ```
//!
//! One evaluation's instructions are the difference between the two runs divided by 1000. Each
//! evaluation starts from the request's JSON bytes, as `entry_point_50_from_bytes` in
//! `benches/evaluate.rs` does. With a second argument `answer`, each evaluation also writes its
//! JSON as the service's answer does ([`rulebook_rules::Evaluation::write_json_fields`]).

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use rulebook_rules::{EntryPoint, Limits, Ruleset};

fn main() -> Result<(), String> {
    let usage = || "usage: evaluate_instructions [evaluations [answer]]".to_owned();
    let count: u64 = match std::env::args().nth(1).map(|n| n.parse()) {
        None => 1000,
        Some(Ok(count)) => count,
        Some(Err(_)) => return Err(usage()),
    };
    let answer = match std::env::args().nth(2).as_deref() {
        None => false,
        Some("answer") => true,
        Some(_) => return Err(usage()),
    };
    let ep = EntryPoint::parse("checkout").map_err(|e| e.to_string())?;
    let set = Ruleset::compile(ep, rulebook_rules::examples::benchmark_rules())
        .map_err(|e| e.to_string())?;
    let at = Utc
        .with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
        .single()
        .ok_or("no such time")?;
    let limits = Limits::default();
    let bytes = br#"{"country": "GB", "cart": {"total": 245.5, "coupon": "SPRING"}}"#;
    let mut matched = 0;
    for _ in 0..count {
        let input: serde_json::Value =
            serde_json::from_slice(black_box(bytes)).map_err(|e| e.to_string())?;
        let evaluation = set.evaluate(&input, at, &limits);
        if answer {
            let mut json = Vec::with_capacity(8 * 1024);
            evaluation.write_json_fields(&mut json);
            black_box(json);
        }
        matched += black_box(evaluation).matched.len();
    }
    println!("{matched} rules matched in {count} evaluations");
    Ok(())
}
