//! Property tests: entry-point normalisation is idempotent; a condition is decided (by the
//! boolean path a ruleset uses) exactly as `evaluate` followed by json-logic-js's truthiness
//! decides it; ruleset evaluation equals a naive reference evaluator over random rules and inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use rulebook_rules::logic::Logic;
use rulebook_rules::{Action, EntryPoint, Limits, Rule, Ruleset};
use serde_json::{json, Value};

mod reference;

use reference::truthy;

proptest! {
    #[test]
    fn normalisation_is_idempotent(raw in "[ A-Za-z0-9_.\\-!é]{0,24}") {
        if let Ok(once) = EntryPoint::parse(&raw) {
            let twice = EntryPoint::parse(once.as_str()).unwrap();
            prop_assert_eq!(&once, &twice);
            prop_assert!(once.as_str().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'));
        }
    }
}

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
}

/// Literals where engines and JavaScript's coercions disagree: `0`, `""`, `"0"`, `[]`, `[0]`,
/// `null`, numbers as strings (hexadecimal, with a byte-order mark, `Infinity` and the `inf` that
/// is not a number), a non-integer, texts outside the Basic Multilingual Plane.
fn literal() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("0x10")),
        Just(json!("\u{feff}12")),
        Just(json!(" 12 ")),
        Just(json!("1e3")),
        Just(json!("Infinity")),
        Just(json!("inf")),
        Just(json!("😀")),
        Just(json!(1e21)),
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(2)),
        Just(json!(-1)),
        Just(json!(0.5)),
        Just(json!("")),
        Just(json!("0")),
        Just(json!("1")),
        Just(json!("a")),
        Just(json!([])),
        Just(json!([0])),
        Just(json!([1, "a"])),
        Just(json!(null)),
        Just(json!(true)),
        Just(json!(false)),
    ]
}

/// An operand: a literal, a variable of the input (present or missing, with or without a
/// default) or of the rule's params.
fn operand() -> impl Strategy<Value = Value> {
    prop_oneof![
        literal(),
        Just(json!({"var": "x"})),
        Just(json!({"var": "input.y"})),
        Just(json!({"var": "s"})),
        Just(json!({"var": "list"})),
        Just(json!({"var": "params.limit"})),
        Just(json!({"var": "s.length"})),
        Just(json!({"var": "list.1"})),
        Just(json!({"var": ["list.length", 9]})),
        Just(json!({"var": ["z", 9]})),
        Just(json!({"-": [{"var": "x"}, 1]})),
        Just(json!({"+": [{"var": "s"}, 1]})),
        Just(json!({"var": "missing_name"})),
        Just(json!({"var": "input.missing_name"})),
        literal().prop_map(|d| json!({"var": ["missing_name", d]})),
    ]
}

/// Conditions over the operators a rule's condition is decided by: `and`, `or`, `!`, `!!`, the
/// comparisons (with the three-argument between), `in` over strings and arrays, and bare
/// operands whose truthiness decides.
fn condition() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        operand(),
        (
            prop::sample::select(vec!["==", "!=", "===", "!==", "<", "<=", ">", ">="]),
            operand(),
            operand()
        )
            .prop_map(|(op, a, b)| json!({ op: [a, b] })),
        (
            prop::sample::select(vec!["<", "<="]),
            operand(),
            operand(),
            operand()
        )
            .prop_map(|(op, a, b, c)| json!({ op: [a, b, c] })),
        (operand(), operand()).prop_map(|(needle, hay)| json!({"in": [needle, hay]})),
    ];
    leaf.prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|xs| json!({ "and": xs })),
            prop::collection::vec(inner.clone(), 0..4).prop_map(|xs| json!({ "or": xs })),
            inner.clone().prop_map(|x| json!({ "!": [x] })),
            inner.prop_map(|x| json!({ "!!": [x] })),
        ]
    })
}

/// An input with values of every kind under the names the operands read.
fn input() -> impl Strategy<Value = Value> {
    (
        literal(),
        literal(),
        prop::sample::select(vec!["", "0", "a", "abc", "b1", "x😀", "0x1f"]),
        literal(),
    )
        .prop_map(|(x, y, s, list)| {
            let list = if list.is_array() { list } else { json!([list]) };
            json!({"x": x, "y": y, "s": s, "list": list, "z": null})
        })
}

prop_compose! {
    fn arb_rule()(id in 0u8..12, priority in 0i32..4, enabled in any::<bool>(), stop in any::<bool>(),
                  condition in condition(), limit in 0i64..10,
                  from in proptest::option::of(-3i64..3), until in proptest::option::of(-3i64..3))
                  -> Rule {
        let mut rule = Rule::new(format!("r{id}"));
        rule.entry_point = Some(EntryPoint::parse("checkout").unwrap());
        rule.priority = priority;
        rule.enabled = enabled;
        rule.stop_processing = stop;
        rule.condition = condition;
        rule.params.insert("limit".into(), json!(limit));
        rule.active_from = from.map(|h| base() + Duration::hours(h));
        rule.active_until = until.map(|h| base() + Duration::hours(h));
        if let (Some(f), Some(u)) = (rule.active_from, rule.active_until) {
            if f >= u { rule.active_until = None; }
        }
        rule.actions = vec![Action::new("set_value")
.with("field", "out")
.with("value", json!({"+": [{"var": "x"}, {"var": "params.limit"}]}))
.with("note", "say \"hi\"\n to r\u{e9}sum\u{e9}s </script>")
.with("twice", json!({"cat": [{"var": "x"}, " and ", {"var": "x"}]}))];
        rule
    }
}

/// The obvious evaluator: sort, filter, evaluate each condition afresh with the data laid out as
/// the docs describe (`input.*`, `params.*`, and the input's own names).
fn naive(rules: &[Rule], input: &Value, at: DateTime<Utc>) -> (Vec<String>, Vec<Value>) {
    let mut sorted: Vec<&Rule> = rules.iter().collect();
    sorted.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
    let mut matched = Vec::new();
    let mut outs = Vec::new();
    for rule in sorted {
        let in_window =
            rule.active_from.is_none_or(|f| f <= at) && rule.active_until.is_none_or(|u| at < u);
        if !rule.enabled || !in_window {
            continue;
        }
        let mut data = input.as_object().cloned().unwrap_or_default();
        data.insert("input".into(), input.clone());
        data.insert("params".into(), Value::Object(rule.params.clone()));
        let data = Value::Object(data);
        let limits = Limits::default();
        let value = Logic::compile(&rule.condition)
            .unwrap()
            .evaluate(&data, &limits)
            .unwrap();
        if !truthy(&value) {
            continue;
        }
        matched.push(rule.id.clone());
        for action in &rule.actions {
            if let Some(value) = action.field("value") {
                outs.push(
                    Logic::compile(value)
                        .unwrap()
                        .evaluate(&data, &limits)
                        .unwrap(),
                );
            }
        }
        if rule.stop_processing {
            break;
        }
    }
    (matched, outs)
}

proptest! {
    #[test]
    fn ruleset_evaluation_equals_the_naive_reference(
        rules in proptest::collection::vec(arb_rule(), 0..10),
        input in input(), hour in -4i64..4,
    ) {
        let mut rules = rules;
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        rules.dedup_by(|a, b| a.id == b.id);
        let at = base() + Duration::hours(hour);
        let set = Ruleset::compile(EntryPoint::parse("checkout").unwrap(), rules.clone()).unwrap();
        let got = set.evaluate(&input, at, &Limits::default());
        let (matched, outs) = naive(&rules, &input, at);
        prop_assert_eq!(got.matched_ids(), matched.iter().map(String::as_str).collect::<Vec<_>>());
        let got_outs: Vec<Value> = got.actions.iter().filter_map(|a| a.field("value").cloned()).collect();
        prop_assert_eq!(got_outs, outs);
    }

    /// The answer the service writes from the parts serialised at compile time is the one serde
    /// writes, and reads back as the same evaluation.
    #[test]
    fn written_answer_equals_the_serialised_one(
        rules in proptest::collection::vec(arb_rule(), 0..10),
        input in input(), hour in -4i64..4, explain in any::<bool>(),
    ) {
        let mut rules = rules;
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        rules.dedup_by(|a, b| a.id == b.id);
        let at = base() + Duration::hours(hour);
        let set = Ruleset::compile(EntryPoint::parse("checkout").unwrap(), rules).unwrap();
        let got = if explain {
            set.explain(&input, at, &Limits::default())
        } else {
            set.evaluate(&input, at, &Limits::default())
        };
        let mut written = b"{".to_vec();
        got.write_json_fields(&mut written);
        written.push(b'}');
        let serialised = serde_json::to_vec(&got).unwrap();
        prop_assert_eq!(String::from_utf8(written).unwrap(), String::from_utf8(serialised.clone()).unwrap());
        let back: rulebook_rules::Evaluation = serde_json::from_slice(&serialised).unwrap();
        prop_assert_eq!(back, got);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// The boolean path that decides every condition agrees with the value path and the
    /// truthiness reference, for every operator and kind of value above.
    #[test]
    fn a_condition_matches_exactly_when_its_value_is_truthy(
        condition in condition(), input in input(), limit in literal(),
    ) {
        let entry_point = EntryPoint::parse("checkout").unwrap();
        let mut rule = Rule::new("r");
        rule.entry_point = Some(entry_point.clone());
        rule.condition = condition.clone();
        rule.params.insert("limit".into(), limit.clone());
        let set = Ruleset::compile(entry_point, vec![rule]).unwrap();
        let evaluation = set.evaluate(&input, base(), &Limits::default());
        prop_assert!(evaluation.errors.is_empty(), "{:?}", evaluation.errors);
        let matched = !evaluation.matched.is_empty();
        let mut data = input.as_object().cloned().unwrap();
        data.insert("input".into(), input.clone());
        data.insert("params".into(), json!({"limit": limit}));
        let value = Logic::compile(&condition)
            .unwrap()
            .evaluate(&Value::Object(data), &Limits::default())
            .unwrap();
        prop_assert_eq!(matched, truthy(&value), "{} is {} for {}", condition, value, input);
    }
}
