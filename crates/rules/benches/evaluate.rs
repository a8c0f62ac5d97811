//! Rulebook's evaluation benchmarks.
//!
//! - `entry_point_50`: a 50-rule entry point evaluated from its compiled form, against the
//!   uncached path that re-parses the rules' JSON and compiles them on every call.
//! - `scorecard`: one `pad_trade` request with overrides.
//! - `jsonlogic`: Rulebook's compiled JSONLogic against datalogic-rs on the same expressions.
//!
//! Run: `cargo bench -p rulebook-rules --bench evaluate -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use rulebook_rules::examples::{seed_rules, PAD_TRADE};
use rulebook_rules::logic::Logic;
use rulebook_rules::{EntryPoint, Limits, Rule, Ruleset, ScoreRequest, Scorecard};
use serde_json::{json, Value};

fn fifty_rules() -> Vec<Rule> {
    rulebook_rules::examples::benchmark_rules()
}

fn entry_point(c: &mut Criterion) {
    let rules = fifty_rules();
    let rules_json = serde_json::to_string(&rules).unwrap();
    let ep = EntryPoint::parse("checkout").unwrap();
    let compiled = Ruleset::compile(ep.clone(), rules).unwrap();
    let input = json!({"country": "GB", "cart": {"total": 245.5, "coupon": "SPRING"}});
    let at = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
    let limits = Limits::default();
    assert_eq!(compiled.evaluate(&input, at, &limits).matched.len(), 25);

    let mut group = c.benchmark_group("entry_point_50");
    group.bench_function("compiled", |b| {
        b.iter(|| black_box(compiled.evaluate(black_box(&input), at, &limits)))
    });
    group.bench_function("reparse_json_each_call", |b| {
        b.iter(|| {
            let rules: Vec<Rule> = serde_json::from_str(black_box(&rules_json)).unwrap();
            let set = Ruleset::compile(ep.clone(), rules).unwrap();
            black_box(set.evaluate(black_box(&input), at, &limits))
        })
    });
    group.finish();
}

fn scorecard(c: &mut Criterion) {
    let card = Scorecard::compile(PAD_TRADE, seed_rules("default")).unwrap();
    let mut overrides = BTreeMap::new();
    let Value::Object(m) = json!({"lowThreshold": 10_000, "highThreshold": 50_000}) else {
        unreachable!()
    };
    overrides.insert("RF-005".to_owned(), m);
    let request = ScoreRequest {
        input: json!({"instrument_type": "equity", "instrument": "SOME", "value": 50_000,
                      "firm_last_traded_days_ago": 45, "holding_days": 60}),
        overrides,
        ..Default::default()
    };
    let at = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
    let limits = Limits::default();
    c.bench_function("scorecard/pad_trade_with_overrides", |b| {
        b.iter(|| black_box(card.score(black_box(&request), at, &limits).unwrap()))
    });
}

fn jsonlogic(c: &mut Criterion) {
    let cases = [
        (
            "condition",
            json!({"and": [
                {"in": [{"var": "country"}, ["GB", "DE", "FR"]]},
                {">": [{"var": "cart.total"}, 100]},
                {"!": {"in": [{"var": "cart.coupon"}, ["BLOCKED", "EXPIRED"]]}}
            ]}),
        ),
        (
            "level",
            json!({"if": [
                {">": [{"var": "value"}, {"var": "limits.high"}]}, "HIGH",
                {">": [{"var": "value"}, {"var": "limits.low"}]}, "MEDIUM",
                "LOW"
            ]}),
        ),
        (
            "reduce_100",
            json!({"reduce": [{"var": "items"}, {"+": [{"var": "accumulator"}, {"var": "current.qty"}]}, 0]}),
        ),
    ];
    let data = json!({
        "country": "GB", "cart": {"total": 245.5, "coupon": "SPRING"},
        "value": 60_000, "limits": {"low": 50_000, "high": 100_000},
        "items": (0..100).map(|i| json!({"sku": format!("s{i}"), "qty": i})).collect::<Vec<_>>()
    });
    let limits = Limits::default();
    let engine = datalogic_rs::Engine::new();
    let parsed = datalogic_rs::ParsedData::from_json(&data.to_string()).unwrap();
    for (name, expr) in cases {
        let ours = Logic::compile(&expr).unwrap();
        let theirs = engine.compile(&expr).unwrap();
        let mut session = engine.session();
        // Same answers before timing anything.
        let expected = ours.evaluate(&data, &limits).unwrap();
        let got: Value =
            serde_json::from_str(&session.eval_str(&theirs, &data.to_string()).unwrap()).unwrap();
        let same = match (&got, &expected) {
            (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
            (a, b) => a == b,
        };
        assert!(same, "{name}: datalogic gave {got}, rulebook {expected}");
        session.reset();

        let mut group = c.benchmark_group(format!("jsonlogic/{name}"));
        group.bench_function("rulebook", |b| {
            b.iter(|| black_box(ours.evaluate(black_box(&data), &limits).unwrap()))
        });
        group.bench_function("datalogic_from_serde_value", |b| {
            b.iter(|| {
                let out = session
                    .eval_borrowed(&theirs, black_box(&data))
                    .map(|v| v.is_null())
                    .unwrap();
                session.reset();
                black_box(out)
            })
        });
        group.bench_function("datalogic_preparsed", |b| {
            b.iter(|| {
                let out = session
                    .eval_borrowed(&theirs, black_box(&parsed))
                    .map(|v| v.is_null())
                    .unwrap();
                session.reset();
                black_box(out)
            })
        });
        group.finish();
    }
}

criterion_group!(benches, entry_point, scorecard, jsonlogic);
criterion_main!(benches);
