//! The official JSONLogic test suite: every case must pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::PathBuf;

use rulebook_rules::logic::Logic;
use rulebook_rules::EvalLimits;
use serde_json::Value;

fn suite_path() -> PathBuf {
    match std::env::var_os("RULEBOOK_JSONLOGIC_TESTS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/conformance/jsonlogic-tests.json"),
    }
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
    let path = suite_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "the JSONLogic suite is missing at {}: {e}; CI must have it",
                path.display()
            )
        }
        Err(e) => {
            eprintln!(
                "skipping the JSONLogic suite: cannot read {} ({e}); set RULEBOOK_JSONLOGIC_TESTS to its path",
                path.display()
            );
            return;
        }
    };
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    let mut run = 0;
    let mut failures = Vec::new();
    for case in cases.iter().filter_map(Value::as_array) {
        let [rule, data, expected] = case.as_slice() else {
            panic!("malformed case {case:?}");
        };
        run += 1;
        let got = Logic::compile(rule)
            .map_err(|e| e.to_string())
            .and_then(|l| {
                l.evaluate(data, &EvalLimits::default())
                    .map_err(|e| e.to_string())
            });
        match got {
            Ok(got) if same(&got, expected) => {}
            other => failures.push(format!(
                "{rule} with {data}: expected {expected}, got {other:?}"
            )),
        }
    }
    assert_eq!(run, 277, "the suite should have 277 cases");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
