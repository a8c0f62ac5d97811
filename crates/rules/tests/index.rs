//! The index of equality and `in` tests changes nothing but the work: on generated rule sets and
//! inputs (numbers against numeric strings, booleans, `null`, missing variables, lists, nested
//! and numeric paths, params, conditions that run out of budget, rules stored invalid, tight
//! limits), `evaluate`, which uses the index, gives the answer `explain` gives, which runs every
//! rule, byte for byte once `explain` is set aside.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use rulebook_rules::{Action, EntryPoint, Limits, Rule, Ruleset};
use serde_json::{json, Map, Value};

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap()
}

/// Values where loose and strict equality part: numbers and the texts that read as them,
/// `-0`, booleans and the texts and numbers they loosely equal, `null`, lists and objects whose
/// text is a constant's.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("a")),
        Just(json!("b")),
        Just(json!("")),
        Just(json!("1")),
        Just(json!("01")),
        Just(json!("1.0")),
        Just(json!("0")),
        Just(json!("true")),
        Just(json!(1)),
        Just(json!(1.0)),
        Just(json!(0)),
        Just(json!(-0.0)),
        Just(json!(2)),
        Just(json!(true)),
        Just(json!(false)),
        Just(json!(null)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => scalar(),
        1 => Just(json!(["a"])),
        1 => Just(json!([1])),
        1 => Just(json!([])),
        1 => Just(json!({"b": "a"})),
    ]
}

/// `var` forms: plain, dotted, numeric, through `input.`, a string's length and first
/// character, the rule's params, with a default.
fn var() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => Just(json!({"var": "c"})),
        2 => Just(json!({"var": ["n"]})),
        1 => Just(json!({"var": "a.b"})),
        1 => Just(json!({"var": "input.c"})),
        1 => Just(json!({"var": 0})),
        1 => Just(json!({"var": "c.length"})),
        1 => Just(json!({"var": "c.0"})),
        1 => Just(json!({"var": "params.p"})),
        1 => Just(json!({"var": ["c", "a"]})),
        1 => Just(json!({"var": ["missing", 1]})),
    ]
}

fn constant() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => scalar(),
        1 => Just(json!(["a"])),
    ]
}

/// An equality or `in` test, as the index files them, and its near misses.
fn test() -> impl Strategy<Value = Value> {
    prop_oneof![
        (var(), constant(), any::<bool>(), any::<bool>()).prop_map(|(v, c, strict, flip)| {
            let op = if strict { "===" } else { "==" };
            let args = if flip { json!([c, v]) } else { json!([v, c]) };
            json!({ op: args })
        }),
        (var(), prop::collection::vec(scalar(), 0..4))
            .prop_map(|(v, list)| json!({"in": [v, list]})),
        (var(), constant()).prop_map(|(v, c)| json!({"!=": [v, c]})),
    ]
}

/// A conjunct before or after the test: a comparison of fixed cost, or one whose cost depends on
/// the data (`some` over a list the input may hold), or one that always fails to compile.
fn other() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (var(), constant(), prop::sample::select(vec!["<", ">=", "==", "!=="]))
            .prop_map(|(v, c, op)| json!({ op: [v, c] })),
        1 => Just(json!({"some": [{"var": "xs"}, {"==": [{"var": ""}, 1]}]})),
        1 => Just(json!(true)),
        1 => Just(json!({"or": [{"var": "c"}, {"var": "n"}]})),
    ]
}

fn condition() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => test(),
        4 => (prop::collection::vec(other(), 0..3), test(), prop::collection::vec(other(), 0..2))
            .prop_map(|(before, test, after)| {
                let mut all = before;
                all.push(test);
                all.extend(after);
                json!({"and": all})
            }),
        1 => other(),
        1 => test().prop_map(|t| json!({"or": [t]})),
        1 => Just(json!({"frobnicate": 1})),
    ]
}

#[derive(Debug, Clone)]
struct Shape {
    condition: Value,
    priority: i32,
    enabled: bool,
    stop: bool,
    out_of_window: bool,
    param: Value,
    costly_action: bool,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        condition(),
        0..3i32,
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.1),
        scalar(),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(condition, priority, enabled, stop, out_of_window, param, costly_action)| Shape {
                condition,
                priority,
                enabled,
                stop,
                out_of_window,
                param,
                costly_action,
            },
        )
}

fn rules(shapes: &[Shape]) -> Vec<Rule> {
    let ep = EntryPoint::parse("indexed").unwrap();
    shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut rule = Rule::new(format!("r{i:02}"));
            rule.entry_point = Some(ep.clone());
            rule.priority = s.priority;
            rule.enabled = s.enabled;
            rule.stop_processing = s.stop;
            if s.out_of_window {
                rule.active_from = Some(at() + Duration::days(1));
            }
            rule.condition = s.condition.clone();
            let mut params = Map::new();
            params.insert("p".into(), s.param.clone());
            rule.params = params;
            let value = if s.costly_action {
                json!({"map": [{"var": "xs"}, {"+": [{"var": ""}, 1]}]})
            } else {
                json!({"var": "c"})
            };
            rule.actions = vec![Action::new("set_value")
                .with("field", format!("f{i}"))
                .with("value", value)];
            rule
        })
        .collect()
}

/// An input: each variable the rules read present with a tricky value, or missing.
fn input() -> impl Strategy<Value = Value> {
    (
        prop::option::weighted(0.85, value()),
        prop::option::weighted(0.7, value()),
        prop::option::weighted(0.5, value()),
        prop::option::weighted(0.3, 0..20usize),
    )
        .prop_map(|(c, n, b, xs)| {
            let mut input = Map::new();
            if let Some(c) = c {
                input.insert("c".into(), c);
            }
            if let Some(n) = n {
                input.insert("n".into(), n);
            }
            if let Some(b) = b {
                input.insert("a".into(), json!({ "b": b }));
            }
            if let Some(xs) = xs {
                input.insert("xs".into(), json!((0..xs).collect::<Vec<_>>()));
            }
            input.insert("0".into(), json!("a"));
            Value::Object(input)
        })
}

/// The default limits, or ones tight enough that a rule fails on its size or runs out of budget
/// part way through its condition.
fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        3 => Just(Limits::default()),
        1 => (1..16u64).prop_map(|max_ops| Limits { max_ops, ..Limits::default() }),
        1 => (1..6usize, 1..12usize).prop_map(|(max_depth, max_nodes)| Limits {
            max_depth,
            max_nodes,
            ..Limits::default()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn the_index_gives_the_answer_of_every_rule_run(
        shapes in prop::collection::vec(shape(), 1..14),
        inputs in prop::collection::vec(input(), 1..6),
        limits in limits(),
    ) {
        let ruleset = Ruleset::compile(EntryPoint::parse("indexed").unwrap(), rules(&shapes)).unwrap();
        for input in &inputs {
            let indexed = ruleset.evaluate(input, at(), &limits);
            let mut every = ruleset.explain(input, at(), &limits);
            every.explain = None;
            prop_assert_eq!(
                serde_json::to_string(&indexed).unwrap(),
                serde_json::to_string(&every).unwrap(),
                "input {}", input
            );
        }
    }
}

/// The evaluation's answer (through the index) and `explain`'s (every rule run in full), as JSON.
fn both_answers(condition: Value, input: &Value, limits: &Limits) -> (String, String) {
    let mut rule = Rule::new("r");
    rule.entry_point = Some(EntryPoint::parse("indexed").unwrap());
    rule.condition = condition;
    rule.actions = vec![Action::new("set_value")
        .with("field", "f")
        .with("value", json!({"var": "c"}))];
    let ruleset = Ruleset::compile(EntryPoint::parse("indexed").unwrap(), vec![rule]).unwrap();
    let indexed = ruleset.evaluate(input, at(), limits);
    let mut every = ruleset.explain(input, at(), limits);
    every.explain = None;
    (
        serde_json::to_string(&indexed).unwrap(),
        serde_json::to_string(&every).unwrap(),
    )
}

/// When the index finds a rule's test true it runs only the rest of the condition, and spends
/// the test's budget: the `and`'s unit too when the test is all it holds. With `max_ops` 4 the
/// condition (`and` 1, `==` 3) uses the whole budget and the action's `var` runs out of it, with
/// or without the index.
#[test]
fn a_test_found_true_spends_its_budget_and_runs_the_rest() {
    let tight = Limits {
        max_ops: 4,
        ..Limits::default()
    };
    let (indexed, every) = both_answers(
        json!({"and": [{"==": [{"var": "c"}, "a"]}]}),
        &json!({"c": "a"}),
        &tight,
    );
    assert_eq!(indexed, every);
    assert!(indexed.contains("\"matched\":[]"), "{indexed}");
    assert!(
        indexed.contains("budget"),
        "the action should run out of budget: {indexed}"
    );

    let rest = json!({"and": [{"==": [{"var": "c"}, "a"]}, {"==": [{"var": "n"}, 1]}]});
    for (n, matched) in [(1, true), (2, false)] {
        let input = json!({"c": "a", "n": n});
        let (indexed, every) = both_answers(rest.clone(), &input, &Limits::default());
        assert_eq!(indexed, every);
        assert_eq!(
            indexed.contains("\"id\":\"r\""),
            matched,
            "{input}: {indexed}"
        );
    }
}
