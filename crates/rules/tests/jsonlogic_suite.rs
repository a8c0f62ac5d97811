//! The official JSONLogic test suite (vendored in `tests/data`, see its README), run twice: every
//! case through [`Logic::evaluate`], which must give the expected value, and every case through
//! the path that decides a rule's condition (a one-rule ruleset, which asks only whether the
//! condition holds), which must match exactly when the expected value is truthy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod reference;

use chrono::{TimeZone, Utc};
use rulebook_rules::logic::Logic;
use rulebook_rules::{EntryPoint, Limits, Rule, Ruleset};
use serde_json::Value;

use reference::truthy;

const SUITE: &str = include_str!("data/jsonlogic-tests.json");

/// Every `[rule, data, expected]` case of the suite (headings skipped).
fn cases() -> Vec<(Value, Value, Value)> {
    let all: Vec<Value> = serde_json::from_str(SUITE).unwrap();
    all.into_iter()
        .filter_map(|case| match case {
            Value::Array(parts) => {
                let [rule, data, expected]: [Value; 3] = parts.try_into().unwrap();
                Some((rule, data, expected))
            }
            Value::String(_) => None,
            other => panic!("malformed case {other}"),
        })
        .collect()
}

/// Numbers compare by value (`3` and `3.0` are the same answer).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn every_case_of_the_official_suite_passes() {
    let cases = cases();
    assert_eq!(cases.len(), 277, "the suite should have 277 cases");
    let mut failures = Vec::new();
    for (rule, data, expected) in &cases {
        let got = Logic::compile(rule)
            .map_err(|e| e.to_string())
            .and_then(|l| {
                l.evaluate(data, &Limits::default())
                    .map_err(|e| e.to_string())
            });
        match got {
            Ok(got) if same(&got, expected) => {}
            other => failures.push(format!(
                "{rule} with {data}: expected {expected}, got {other:?}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Whether `expr` reads the whole data of its scope (`{"var": ""}`, `{"var": null}`,
/// `{"var": []}`, or `var` with no argument) outside the per-item scope of `map`, `filter`,
/// `reduce`, `all`, `some` and `none`. A rule's scope has no single whole value (it is the input
/// beside the rule's params), so such a case asks something else of a rule.
fn reads_whole_data(expr: &Value) -> bool {
    match expr {
        Value::Array(items) => items.iter().any(reads_whole_data),
        Value::Object(map) if map.len() == 1 => {
            let Some((op, args)) = map.iter().next() else {
                return false;
            };
            let args: Vec<&Value> = match args {
                Value::Array(items) => items.iter().collect(),
                single => vec![single],
            };
            match op.as_str() {
                "var" => {
                    let whole = match args.first() {
                        None | Some(Value::Null) => true,
                        Some(Value::String(s)) => s.is_empty(),
                        Some(Value::Array(a)) => a.is_empty(),
                        Some(path) => reads_whole_data(path),
                    };
                    whole || args.iter().skip(1).any(|a| reads_whole_data(a))
                }
                // Only the first argument (the array) is read in the outer scope; the others run
                // per item. `reduce`'s third (the initial value) is outer too.
                "map" | "filter" | "all" | "some" | "none" => {
                    args.first().is_some_and(|a| reads_whole_data(a))
                }
                "reduce" => {
                    args.first().is_some_and(|a| reads_whole_data(a))
                        || args.get(2).is_some_and(|a| reads_whole_data(a))
                }
                _ => args.iter().any(|a| reads_whole_data(a)),
            }
        }
        _ => false,
    }
}

#[test]
fn every_case_of_the_official_suite_decides_a_rule_condition_by_its_truthiness() {
    let entry_point = EntryPoint::parse("suite").unwrap();
    let at = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let mut run = 0;
    let mut failures = Vec::new();
    for (condition, data, expected) in cases() {
        if reads_whole_data(&condition) {
            continue;
        }
        run += 1;
        let mut rule = Rule::new("case");
        rule.entry_point = Some(entry_point.clone());
        rule.condition = condition.clone();
        let matched = Ruleset::compile(entry_point.clone(), vec![rule])
            .map_err(|e| e.to_string())
            .and_then(|set| {
                let evaluation = set.evaluate(&data, at, &Limits::default());
                match evaluation.errors.first() {
                    Some(error) => Err(error.message.clone()),
                    None => Ok(evaluation),
                }
            })
            .map(|evaluation| !evaluation.matched.is_empty());
        let want = truthy(&expected);
        if matched != Ok(want) {
            failures.push(format!(
                "{condition} with {data}: expected {expected}, so the rule should {}match; got {matched:?}",
                if want { "" } else { "not " }
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Three cases read the whole data (`{"var": ""}` and the like); every other one ran.
    assert_eq!(run, 277 - 3, "cases decided as rule conditions");
}
