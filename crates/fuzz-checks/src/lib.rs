//! The properties Rulebook's fuzz targets check: one function per target, each taking the
//! fuzzer's raw bytes and panicking when a property fails (which is how libFuzzer learns of a
//! failure). The targets in `fuzz/` call these; `tests/replay.rs` runs every committed input in
//! `corpus/<target>/` through them on stable, so a crash once found stays fixed.
//!
//! Each check compares against a simple model where one exists:
//! - [`rule_documents`]: reading never panics, and every rule read writes back to JSON that
//!   reads back as the same rule;
//! - [`jsonlogic`]: compiling and evaluating never panic, and a one-rule entry point matches
//!   exactly when the expression's value is truthy (the condition path against `evaluate`),
//!   unless the expression reads what a rule's scope shows differently (the whole data,
//!   `input.*`, `params.*`);
//! - [`entry_point`]: parsing never panics, its key is made of `[a-z0-9_.]` only, and parsing the
//!   key again gives the same entry point;
//! - [`sse`]: the change stream's event parser gives the same events however the bytes are split
//!   into reads;
//! - [`django_import`]: reading a Django `dumpdata` dump never panics, every rule read round-trips
//!   through JSON, and every problem's path names an entry of the dump.

use std::path::Path;

use chrono::{TimeZone, Utc};
use rulebook_client::sse::SseParser;
use rulebook_rules::django::django_rules;
use rulebook_rules::logic::Logic;
use rulebook_rules::{
    parse_rules, DjangoMapping, EntryPoint, Limits, Rule, Ruleset, MAX_ENTRY_POINT_LEN,
};
use serde_json::{json, Value};

/// A target's check: takes the fuzzer's bytes, panics when a property fails.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name: the folders under `corpus/` and the binaries under `fuzz/`.
pub const TARGETS: &[(&str, Check)] = &[
    ("rule_documents", rule_documents),
    ("jsonlogic", jsonlogic),
    ("entry_point", entry_point),
    ("sse", sse),
    ("django_import", django_import),
];

/// Reads `data` as a rule file, as JSON and as YAML; every rule read round-trips through JSON.
///
/// # Panics
///
/// When a rule read from `data` does not read back equal from its own JSON.
pub fn rule_documents(data: &[u8]) {
    for file in ["fuzz.json", "fuzz.yaml"] {
        let Ok(documents) = parse_rules(Path::new(file), data) else {
            continue;
        };
        for document in documents {
            let written = match serde_json::to_value(&document.rule) {
                Ok(written) => written,
                Err(e) => panic!("rule {:?} does not write as JSON: {e}", document.rule),
            };
            match Rule::from_json_value(written.clone()) {
                Ok(read) => assert_eq!(read, document.rule, "{written}"),
                Err(e) => panic!("rule written as {written} does not read back: {e:?}"),
            }
        }
    }
}

/// Reads `data` as JSON `[expression, data]` (or a lone expression, evaluated against `null`),
/// compiles and evaluates it, and checks the condition path against the value's truthiness.
///
/// # Panics
///
/// When a one-rule entry point with the expression as its condition matches and the value is
/// falsy, or the reverse, or when the rule errs where `evaluate` did not.
pub fn jsonlogic(data: &[u8]) {
    let Ok(input) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let (expression, context) = match input {
        Value::Array(mut pair) if pair.len() == 2 => {
            let context = pair.pop().unwrap_or(Value::Null);
            (pair.pop().unwrap_or(Value::Null), context)
        }
        other => (other, Value::Null),
    };
    let limits = Limits::default();
    let Ok(logic) = Logic::compile_with(&expression, &limits) else {
        return;
    };
    let value = logic.evaluate(&context, &limits);
    if rule_scope_differs(&expression) {
        return;
    }
    let Ok(fuzz) = EntryPoint::parse("fuzz") else {
        return;
    };
    let mut rule = Rule::new("fuzz");
    rule.entry_point = Some(fuzz.clone());
    rule.condition = expression.clone();
    let Ok(ruleset) = Ruleset::compile(fuzz, vec![rule]) else {
        return;
    };
    let at = Utc
        .timestamp_opt(1_700_000_000, 0)
        .single()
        .unwrap_or_default();
    let evaluation = ruleset.evaluate(&context, at, &limits);
    let matched = !evaluation.matched.is_empty();
    match value {
        Ok(value) => {
            assert!(
                evaluation.errors.is_empty(),
                "evaluate gave {value} but the condition path erred: {:?}; {}",
                evaluation.errors,
                json!([expression, context])
            );
            assert_eq!(
                matched,
                truthy(&value),
                "condition path and evaluate disagree on {} (value {value})",
                json!([expression, context])
            );
        }
        Err(_) => assert!(
            !matched,
            "a condition that errs matched: {}",
            json!([expression, context])
        ),
    }
}

/// Whether a rule's condition may read `expression` differently from plain data: a rule's whole
/// data is `{"input": ..., "params": ...}` and its first path names `input` and `params` are
/// those two (see the rules crate's `Scope::Rule`), so an expression that reads the whole data
/// (`{"var": ""}`, `{"var": null}`, `{"missing": [""]}`), names `input` or `params` first, or
/// computes its path is compared only through `evaluate`.
fn rule_scope_differs(expression: &Value) -> bool {
    match expression {
        Value::Array(items) => items.iter().any(rule_scope_differs),
        Value::Object(map) => map.iter().any(|(op, arg)| {
            let reads = matches!(op.as_str(), "var" | "missing" | "missing_some");
            (reads && path_differs(op, arg)) || rule_scope_differs(arg)
        }),
        _ => false,
    }
}

/// Whether the path arguments of `var`, `missing` or `missing_some` may read the whole data, or
/// start at `input` or `params`.
fn path_differs(op: &str, arg: &Value) -> bool {
    let key_differs = |key: &Value| match key {
        Value::Null => true,
        Value::String(path) => {
            let first = path.split('.').next().unwrap_or_default();
            path.is_empty() || first == "input" || first == "params"
        }
        Value::Number(_) | Value::Bool(_) => false,
        // A computed path, or a list of them.
        Value::Array(_) | Value::Object(_) => true,
    };
    match (op, arg) {
        ("var", Value::Array(items)) => items.first().is_none_or(key_differs),
        ("var", key) => key_differs(key),
        ("missing_some", Value::Array(items)) => match items.get(1) {
            Some(Value::Array(keys)) => keys.iter().any(key_differs),
            _ => true,
        },
        (_, Value::Array(keys)) => keys.iter().any(key_differs),
        (_, key) => key_differs(key),
    }
}

/// JSONLogic's truthiness (json-logic-js `truthy`): an empty array is falsy, otherwise
/// JavaScript's `!!` (false for `false`, `0`, `""` and `null`).
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(_) => true,
    }
}

/// Parses `data` (as UTF-8, lossily) as an entry point.
///
/// # Panics
///
/// When an accepted entry point's key has a character outside `[a-z0-9_.]`, is longer than
/// [`MAX_ENTRY_POINT_LEN`], or parses to a different entry point.
pub fn entry_point(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    let Ok(parsed) = EntryPoint::parse(&raw) else {
        return;
    };
    let key = parsed.as_str();
    assert!(
        key.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.')),
        "{raw:?} gave key {key:?}"
    );
    assert!(key.len() <= MAX_ENTRY_POINT_LEN, "{raw:?} gave key {key:?}");
    assert_eq!(EntryPoint::parse(key).ok(), Some(parsed.clone()), "{raw:?}");
}

/// The longest SSE line the check's parsers accept: small, so inputs reach the limit.
const SSE_MAX_LINE: usize = 64;

/// Feeds `data` (after its first byte, which picks the split points) to one SSE parser whole
/// and to another in pieces.
///
/// # Panics
///
/// When the two parsers give different events, or one refuses a line the other accepts.
pub fn sse(data: &[u8]) {
    let Some((&step, bytes)) = data.split_first() else {
        return;
    };
    let whole = SseParser::new(SSE_MAX_LINE).feed(bytes);
    let mut pieces = SseParser::new(SSE_MAX_LINE);
    let mut events = Vec::new();
    let mut refused = false;
    let step = usize::from(step % 16) + 1;
    for piece in bytes.chunks(step) {
        match pieces.feed(piece) {
            Ok(more) => events.extend(more),
            Err(_) => {
                refused = true;
                break;
            }
        }
    }
    match whole {
        Ok(whole) => {
            assert!(!refused, "split into {step}-byte reads, a line was refused");
            assert_eq!(whole, events, "split into {step}-byte reads");
        }
        Err(_) => assert!(refused, "split into {step}-byte reads, no line was refused"),
    }
}

/// Reads `data` as JSON and, when it is a list, as a Django `dumpdata` dump with the default
/// mapping.
///
/// # Panics
///
/// When a rule read does not read back equal from its own JSON, or a problem's path does not
/// start with the index of an entry of the dump (or is empty, for the dump as a whole).
pub fn django_import(data: &[u8]) {
    let Ok(serde_json::Value::Array(entries)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let (read, problems) = match django_rules(&entries, &DjangoMapping::default()) {
        Ok(read) => (read, Vec::new()),
        Err(errors) => (errors.readable, errors.problems),
    };
    for problem in &problems {
        let index = problem
            .path
            .strip_prefix('[')
            .and_then(|p| p.split_once(']'))
            .and_then(|(i, _)| i.parse::<usize>().ok());
        assert!(
            problem.path.is_empty() || index.is_some_and(|i| i < entries.len()),
            "problem at `{}` names no entry of {} ({})",
            problem.path,
            entries.len(),
            problem.message
        );
    }
    for entry in read {
        assert!(
            entry.index < entries.len(),
            "entry {} of {}",
            entry.index,
            entries.len()
        );
        let written = match serde_json::to_value(&entry.rule) {
            Ok(written) => written,
            Err(e) => panic!("rule {:?} does not write as JSON: {e}", entry.rule),
        };
        match Rule::from_json_value(written.clone()) {
            Ok(back) => assert_eq!(back, entry.rule, "{written}"),
            Err(e) => panic!("rule written as {written} does not read back: {e:?}"),
        }
    }
}
