//! Property tests: entry-point normalisation is idempotent; ruleset evaluation equals a naive
//! reference evaluator over random rules and inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use rulebook_rules::logic::Logic;
use rulebook_rules::{Action, EntryPoint, EvalLimits, Rule, Ruleset};
use serde_json::{json, Value};

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

fn condition() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(true)),
        Just(json!(false)),
        (0i64..10).prop_map(|n| json!({">": [{"var": "x"}, n]})),
        (0i64..10).prop_map(|n| json!({"==": [{"var": "input.y"}, n]})),
        Just(json!({"<": [{"var": "x"}, {"var": "params.limit"}]})),
        (0i64..10, 0i64..10).prop_map(
            |(a, b)| json!({"or": [{"==": [{"var": "x"}, a]}, {"==": [{"var": "y"}, b]}]})
        ),
    ]
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
        rule.actions = vec![Action::SetValue { field: "out".into(), value: json!({"+": [{"var": "x"}, {"var": "params.limit"}]}) }];
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
        let limits = EvalLimits::default();
        let holds = Logic::compile(&rule.condition)
            .unwrap()
            .evaluate(&data, &limits)
            .unwrap();
        let truthy = !matches!(holds, Value::Bool(false) | Value::Null) && holds != json!(0);
        if !truthy {
            continue;
        }
        matched.push(rule.id.clone());
        for action in &rule.actions {
            if let Action::SetValue { value, .. } = action {
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
        x in 0i64..10, y in 0i64..10, hour in -4i64..4,
    ) {
        let mut rules = rules;
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        rules.dedup_by(|a, b| a.id == b.id);
        let input = json!({"x": x, "y": y});
        let at = base() + Duration::hours(hour);
        let set = Ruleset::compile(EntryPoint::parse("checkout").unwrap(), rules.clone()).unwrap();
        let got = set.evaluate(&input, at, &EvalLimits::default()).unwrap();
        let (matched, outs) = naive(&rules, &input, at);
        prop_assert_eq!(got.matched_ids(), matched.iter().map(String::as_str).collect::<Vec<_>>());
        let got_outs: Vec<Value> = got.actions.iter().filter_map(|a| match &a.action {
            Action::SetValue { value, .. } => Some(value.clone()),
            _ => None,
        }).collect();
        prop_assert_eq!(got_outs, outs);
    }
}
