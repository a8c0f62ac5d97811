//! Rulebook's evaluation benchmarks.
//!
//! - `entry_point_50`: a 50-rule entry point evaluated from its compiled form, against the
//!   uncached path that re-parses the rules' JSON and compiles them on every call.
//! - `scorecard`: one `pad_trade` request with overrides.
//! - `entry_point_50_from_bytes`: the same entry point from the request's JSON bytes to the matched
//!   ids and the fired actions' values, by Rulebook and by datalogic-rs (the fastest JSONLogic
//!   engine in Rust) doing the same work on the same rules: both parse the same bytes, run the 50
//!   conditions in the same order and compute the matched rules' action expressions.
//! - `jsonlogic`: Rulebook's compiled JSONLogic against datalogic-rs on the same expressions.
//! - `answer_time`: an answer's `at` written by `write_rfc3339`, against chrono's `Serialize`
//!   through `serde_json`, which writes the same text.
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

/// The 50 benchmark rules compiled by datalogic-rs, in Rulebook's evaluation order (priority, then
/// id).
struct DatalogicRules {
    engine: datalogic_rs::Engine,
    rules: Vec<DatalogicRule>,
}

/// One rule: its id, its condition, and its action expressions.
type DatalogicRule = (String, datalogic_rs::Logic, Vec<datalogic_rs::Logic>);

impl DatalogicRules {
    fn compile(mut rules: Vec<Rule>) -> DatalogicRules {
        rules.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
        let engine = datalogic_rs::Engine::new();
        let rules = rules
            .iter()
            .map(|rule| {
                // Rulebook lets expressions read the rule's params as `params.*`; datalogic-rs
                // sees only its input, so the params are written into the expression instead.
                let params = Value::Object(rule.params.clone());
                let condition = engine.compile(&rule.condition).unwrap();
                let actions = rule
                    .actions
                    .iter()
                    .flat_map(|action| {
                        // In these rules every object-valued field is an expression.
                        action
                            .fields
                            .iter()
                            .filter(|(_, v)| v.is_object())
                            .map(|(_, expr)| engine.compile(&inline_params(expr, &params)).unwrap())
                            .collect::<Vec<_>>()
                    })
                    .collect();
                (rule.id.clone(), condition, actions)
            })
            .collect();
        DatalogicRules { engine, rules }
    }

    /// From the request's bytes to the matched ids and the computed action fields, in order.
    fn evaluate(
        &self,
        arena: &mut datalogic_rs::bumpalo::Bump,
        bytes: &[u8],
    ) -> (Vec<String>, Vec<Value>) {
        use datalogic_rs::EvalInput;
        arena.reset();
        let arena = &*arena;
        let text = std::str::from_utf8(bytes).unwrap();
        let input = text.into_arena_value(arena).unwrap();
        let mut matched = Vec::new();
        let mut values = Vec::new();
        for (id, condition, actions) in &self.rules {
            let holds = self.engine.evaluate(condition, input, arena).unwrap();
            if !self.engine.truthy(holds) {
                continue;
            }
            matched.push(id.clone());
            for logic in actions {
                let value = self.engine.evaluate(logic, input, arena).unwrap();
                values.push(<Value as datalogic_rs::FromDataValue>::from_arena(value).unwrap());
            }
        }
        (matched, values)
    }
}

/// `expr` with every `{"var": "params.NAME"}` replaced by the param's value.
fn inline_params(expr: &Value, params: &Value) -> Value {
    match expr {
        Value::Object(map) => {
            if let Some(Value::String(path)) = map.get("var") {
                if let Some(name) = path.strip_prefix("params.") {
                    return params[name].clone();
                }
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), inline_params(v, params)))
                    .collect(),
            )
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| inline_params(v, params)).collect())
        }
        other => other.clone(),
    }
}

/// Rulebook from the request's bytes: parse, evaluate, and the same two lists as datalogic-rs.
fn rulebook_from_bytes(set: &Ruleset, bytes: &[u8], limits: &Limits) -> rulebook_rules::Evaluation {
    let at = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
    let input: Value = serde_json::from_slice(bytes).unwrap();
    set.evaluate(&input, at, limits)
}

fn same_number_or_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (x, y) => x == y,
    }
}

fn entry_point_from_bytes(c: &mut Criterion) {
    let rules = fifty_rules();
    let ep = EntryPoint::parse("checkout").unwrap();
    let compiled = Ruleset::compile(ep, rules.clone()).unwrap();
    let theirs = DatalogicRules::compile(rules);
    let limits = Limits::default();
    let bytes = br#"{"country": "GB", "cart": {"total": 245.5, "coupon": "SPRING"}}"#;
    let mut arena = datalogic_rs::bumpalo::Bump::new();

    // The same answers before timing anything: matched ids in order, and every computed field.
    let ours = rulebook_from_bytes(&compiled, bytes, &limits);
    let (ids, values) = theirs.evaluate(&mut arena, bytes);
    assert_eq!(ours.matched_ids(), ids, "matched ids differ");
    assert_eq!(ids.len(), 25);
    let our_values: Vec<&Value> = ours
        .actions
        .iter()
        .flat_map(|a| [a.field("value"), a.field("message")])
        .flatten()
        .collect();
    assert_eq!(our_values.len(), values.len());
    for (a, b) in our_values.iter().zip(&values) {
        assert!(same_number_or_value(a, b), "rulebook {a}, datalogic-rs {b}");
    }

    let mut group = c.benchmark_group("entry_point_50_from_bytes");
    group.bench_function("rulebook", |b| {
        b.iter(|| black_box(rulebook_from_bytes(&compiled, black_box(bytes), &limits)))
    });
    group.bench_function("datalogic", |b| {
        b.iter(|| black_box(theirs.evaluate(&mut arena, black_box(bytes))))
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

/// An answer's time as text, into a reused buffer: ours against serde's.
fn answer_time(c: &mut Criterion) {
    let at = Utc.with_ymd_and_hms(2026, 3, 3, 10, 0, 0).unwrap()
        + chrono::Duration::microseconds(250_125);
    let mut group = c.benchmark_group("answer_time");
    let mut out = Vec::with_capacity(64);
    group.bench_function("write_rfc3339", |b| {
        b.iter(|| {
            out.clear();
            rulebook_rules::write_rfc3339(&mut out, black_box(&at));
            black_box(&out);
        })
    });
    group.bench_function("serde_json", |b| {
        b.iter(|| {
            out.clear();
            serde_json::to_writer(&mut out, black_box(&at)).unwrap();
            black_box(&out);
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    entry_point,
    entry_point_from_bytes,
    scorecard,
    jsonlogic,
    answer_time
);
criterion_main!(benches);
