//! Actions as users write them: any `type`, fields kept as written and in order, operations
//! computed, `preserve` for literal operations, and the reserved `score` and `route`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::Utc;
use rulebook_rules::{EntryPoint, Limits, Rule, Ruleset};
use serde_json::{json, Value};

fn evaluate(rule_text: &str, input: Value) -> Value {
    let rule = Rule::from_json_str(rule_text).unwrap();
    let ep = rule.entry_point.clone().unwrap();
    let set = Ruleset::compile(ep, vec![rule]).unwrap();
    serde_json::to_value(set.evaluate(&input, Utc::now(), &Limits::default())).unwrap()
}

/// Regression: the seed's `{"type": "display_message", "content": "Test"}` was a 422 (`unknown
/// field content, expected message or placement`).
#[test]
fn the_seeds_display_message_with_content_round_trips_unchanged() {
    let text = r#"{"id": "test_rule_create", "entry_point": "home_page_mount",
        "actions": [{"type": "display_message", "content": "Test"}]}"#;
    let rule = Rule::from_json_str(text).unwrap();
    let written = serde_json::to_value(&rule.actions).unwrap();
    assert_eq!(
        written,
        json!([{"type": "display_message", "content": "Test"}])
    );
    let out = evaluate(text, json!({}));
    assert_eq!(
        out["actions"],
        json!([{"rule_id": "test_rule_create", "type": "display_message", "content": "Test"}])
    );
    assert_eq!(out["errors"], json!([]));
}

#[test]
fn fields_keep_the_order_written_and_operations_are_computed() {
    let text = r##"{"id": "n", "entry_point": "ep", "actions": [{"type": "notify.slack",
        "zeta": 1, "channel": {"cat": ["#", {"var": "team"}]}, "alpha": {"colour": "red"},
        "list": [{"var": "team"}, 2], "plain": [1, 2], "data": {"a": {"var": "x"}, "b": 1},
        "kept": {"preserve": {"var": "team"}}}]}"##;
    let rule = Rule::from_json_str(text).unwrap();
    // Stored and written back exactly as written, in order.
    let text_back = serde_json::to_string(&rule.actions[0]).unwrap();
    assert_eq!(
        text_back,
        r##"{"type":"notify.slack","zeta":1,"channel":{"cat":["#",{"var":"team"}]},"alpha":{"colour":"red"},"list":[{"var":"team"},2],"plain":[1,2],"data":{"a":{"var":"x"},"b":1},"kept":{"preserve":{"var":"team"}}}"##
    );
    let out = evaluate(text, json!({"team": "risk"}));
    assert_eq!(
        serde_json::to_string(&out["actions"][0]).unwrap(),
        r##"{"rule_id":"n","type":"notify.slack","zeta":1,"channel":"#risk","alpha":{"colour":"red"},"list":["risk",2],"plain":[1,2],"data":{"a":{"var":"x"},"b":1},"kept":{"var":"team"}}"##
    );
}

#[test]
fn a_fired_action_names_its_computed_places_and_its_compiled_action() {
    let text = r##"{"id": "n", "entry_point": "ep", "actions": [
        {"type": "notify", "zeta": 1, "channel": {"cat": ["#", {"var": "team"}]},
         "plain": [1, 2], "kept": {"preserve": {"var": "team"}}},
        {"type": "log", "line": "fixed"}]}"##;
    let rule = Rule::from_json_str(text).unwrap();
    let set = Ruleset::compile(rule.entry_point.clone().unwrap(), vec![rule]).unwrap();
    let first = set.evaluate(&json!({"team": "risk"}), Utc::now(), &Limits::default());
    let second = set.evaluate(&json!({"team": "ops"}), Utc::now(), &Limits::default());
    let computed: Vec<_> = first.actions[0].computed().collect();
    assert_eq!(
        computed,
        [(1, &json!("#risk")), (3, &json!({"var": "team"}))]
    );
    assert_eq!(first.actions[1].computed().count(), 0);
    // One compiled action, one identity, whatever was computed; another action, another one.
    assert_eq!(
        first.actions[0].template_id(),
        second.actions[0].template_id()
    );
    assert_eq!(
        first.actions[1].template_id(),
        second.actions[1].template_id()
    );
    assert_ne!(
        first.actions[0].template_id(),
        first.actions[1].template_id()
    );
}

#[test]
fn the_seeded_examples_still_evaluate() {
    let rules = rulebook_rules::examples::seed_rules("default");
    let vat = EntryPoint::parse("vat_calculation").unwrap();
    let mine: Vec<Rule> = rules
        .into_iter()
        .filter(|r| r.entry_point.as_ref() == Some(&vat))
        .collect();
    let set = Ruleset::compile(vat, mine).unwrap();
    let out = set.evaluate(
        &json!({"country": "GB", "net_amount": 150}),
        Utc::now(),
        &Limits::default(),
    );
    assert_eq!(out.value("vat_amount"), Some(&json!(30)));
    assert!(out.errors.is_empty());
}
