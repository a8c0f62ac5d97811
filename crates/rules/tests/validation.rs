//! Validation: every problem reported at once, each with its path; round trips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use rulebook_rules::examples::seed_rules;
use rulebook_rules::{OrderedPair, ParamSpec, ParamType, Rule};
use serde_json::json;

/// All messages at `path`, joined, so a test can look for one of several.
fn message_at(errors: &rulebook_rules::ValidationErrors, path: &str) -> String {
    let messages: Vec<&str> = errors.at(path).map(|e| e.message.as_str()).collect();
    assert!(!messages.is_empty(), "no error at `{path}` in {errors}");
    messages.join(" | ")
}

#[test]
fn every_seed_rule_validates_and_round_trips_through_json_and_yaml() {
    let rules = seed_rules("acme");
    assert!(rules.len() >= 10);
    for rule in rules {
        rule.validate()
            .unwrap_or_else(|e| panic!("{}: {e}", rule.id));
        let json = serde_json::to_value(&rule).unwrap();
        assert_eq!(
            Rule::from_json_value(json.clone()).unwrap(),
            rule,
            "json {}",
            rule.id
        );
        assert_eq!(serde_json::from_value::<Rule>(json).unwrap(), rule);
        let yaml = serde_yaml::to_string(&rule).unwrap();
        assert_eq!(
            Rule::from_yaml_str(&yaml).unwrap(),
            rule,
            "yaml {}",
            rule.id
        );
    }
}

#[test]
fn read_only_fields_are_optional_on_input() {
    let rule = Rule::from_json_str(r#"{"id": "minimal"}"#).unwrap();
    assert_eq!(rule.version, 0);
    assert!(rule.created_at.is_none() && rule.updated_by.is_none());
    assert!(rule.enabled);
    assert_eq!(rule.condition, json!(true));
    assert_eq!(rule.tenant, "default");
}

#[test]
fn structural_problems_are_all_reported_with_paths() {
    let errors = Rule::from_json_value(json!({
        "id": "x",
        "colour": "red",
        "priority": "high",
        "enabled": "yes",
        "tags": "a",
        "active_from": "yesterday",
        "entry_point": "Home Page!",
        "actions": [
            {"type": "teleport", "to": "mars"},
            {"type": 7},
            {"message": "no type"},
            "banner"
        ]
    }))
    .unwrap_err();
    assert!(message_at(&errors, "colour").contains("unknown field `colour`"));
    assert!(message_at(&errors, "priority").contains("whole number"));
    assert!(message_at(&errors, "enabled").contains("true or false"));
    assert!(message_at(&errors, "tags").contains("list of strings"));
    assert!(message_at(&errors, "active_from").contains("2025-01-31T00:00:00Z"));
    assert!(message_at(&errors, "entry_point").contains("`!`"));
    // Any type the application names is accepted; only its shape is checked here.
    assert!(
        !errors.has("actions[0]") && !errors.has("actions[0].type"),
        "{errors}"
    );
    assert!(message_at(&errors, "actions[1].type").contains("must be a string"));
    assert!(message_at(&errors, "actions[2].type").contains("no `type`"));
    assert!(message_at(&errors, "actions[3]").contains("must be an object"));
    assert_eq!(errors.errors.len(), 9, "{errors}");
}

#[test]
fn a_rule_that_is_not_an_object_or_not_json_is_explained() {
    let err = Rule::from_json_value(json!([1])).unwrap_err();
    assert!(err.errors[0].message.contains("must be an object"));
    let err = Rule::from_json_str("{\"id\": ").unwrap_err();
    assert!(err.errors[0].message.contains("not valid JSON"));
    let err = Rule::from_yaml_str("id: [unclosed").unwrap_err();
    assert!(err.errors[0].message.contains("not valid YAML"));
    let err = Rule::from_json_value(json!({"name": "no id"})).unwrap_err();
    assert!(err.has("id"));
}

#[test]
fn nested_schema_errors_carry_their_inner_path() {
    let err = Rule::from_json_value(json!({
        "id": "x",
        "param_schema": {"fields": {"a": {"type": "decimal"}}}
    }))
    .unwrap_err();
    assert!(err.has("param_schema.fields.a.type"), "{err}");
}

fn schema_rule() -> Rule {
    let mut rule = Rule::new("RF-005");
    for field in ["lowThreshold", "highThreshold"] {
        rule.param_schema.fields.insert(
            field.into(),
            ParamSpec::new(ParamType::Number)
                .between(Some(0.0), Some(1_000_000.0))
                .required(),
        );
    }
    rule.param_schema.fields.insert(
        "label".into(),
        ParamSpec::new(ParamType::String).between(Some(1.0), Some(5.0)),
    );
    rule.param_schema
        .fields
        .insert("days".into(), ParamSpec::new(ParamType::Integer));
    rule.param_schema.ordered.push(OrderedPair {
        low: "lowThreshold".into(),
        high: "highThreshold".into(),
    });
    rule.params.insert("lowThreshold".into(), json!(50_000));
    rule.params.insert("highThreshold".into(), json!(100_000));
    rule
}

#[test]
fn params_that_satisfy_their_schema_pass() {
    schema_rule().validate().unwrap();
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let mut rule = schema_rule();
    rule.id = " ".into();
    rule.tenant = String::new();
    rule.tags = vec!["ok".into(), "".into()];
    rule.version = -1;
    rule.params.insert("lowThreshold".into(), json!(1_500_000));
    rule.params.insert("highThreshold".into(), json!(100_000));
    rule.params.insert("label".into(), json!("much too long"));
    rule.params.insert("days".into(), json!(1.5));
    rule.params.insert("surprise".into(), json!(1));
    rule.active_from = Some(Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap());
    rule.active_until = Some(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap());
    rule.condition = json!({"and": [true, {"frobnicate": 1}]});
    rule.actions = vec![
        rulebook_rules::Action::new("set_value").with("value", json!([{"var": "x"}, {"nope": 1}])),
        rulebook_rules::Action::new(" ").with("rule_id", "mine"),
        rulebook_rules::Action::new("score")
            .with("factor", "")
            .with("weight", 2),
        rulebook_rules::Action::new("route")
            .with("level", "SEVERE")
            .with("route", "desk"),
    ];
    let errors = rule.validate().unwrap_err();
    assert!(message_at(&errors, "id").contains("empty"));
    assert!(message_at(&errors, "tenant").contains("empty"));
    assert!(message_at(&errors, "tags[1]").contains("empty"));
    assert!(message_at(&errors, "version").contains("negative"));
    assert!(message_at(&errors, "params.lowThreshold").contains("above the maximum"));
    assert!(message_at(&errors, "params.lowThreshold").contains("must not exceed `highThreshold`"));
    assert!(message_at(&errors, "params.label").contains("length `13` is above the maximum `5`"));
    assert!(message_at(&errors, "params.days").contains("whole number"));
    assert!(message_at(&errors, "params.surprise").contains("not declared"));
    assert!(message_at(&errors, "active_from").contains("not before active_until"));
    assert!(message_at(&errors, "condition").contains("unknown operator `frobnicate` at `and[1]`"));
    assert!(message_at(&errors, "actions[0].value").contains("unknown operator `nope`"));
    assert!(message_at(&errors, "actions[1].type").contains("empty"));
    assert!(message_at(&errors, "actions[1].rule_id").contains("reserved"));
    assert!(message_at(&errors, "actions[2].factor").contains("the factor's name"));
    assert!(message_at(&errors, "actions[2].weight").contains("unknown field `weight`"));
    assert!(message_at(&errors, "actions[2].level").contains("missing"));
    assert!(message_at(&errors, "actions[3].level").contains("`LOW`, `MEDIUM` or `HIGH`"));
    assert_eq!(errors.errors.len(), 18, "{errors}");
    assert!(errors.to_string().starts_with("18 problems: "));
}

#[test]
fn type_and_required_and_minimum_errors_name_the_param() {
    let mut rule = schema_rule();
    rule.params.remove("highThreshold");
    rule.params.insert("lowThreshold".into(), json!("fifty"));
    let errors = rule.validate().unwrap_err();
    assert!(message_at(&errors, "params.highThreshold").contains("required"));
    assert!(message_at(&errors, "params.lowThreshold")
        .contains("must be a number, got a string `\"fifty\"`"));
    let mut rule = schema_rule();
    rule.params.insert("lowThreshold".into(), json!(-1));
    assert!(
        message_at(&rule.validate().unwrap_err(), "params.lowThreshold")
            .contains("below the minimum")
    );
}

#[test]
fn a_broken_schema_is_reported() {
    let mut rule = Rule::new("x");
    rule.param_schema.fields.insert(
        "a".into(),
        ParamSpec::new(ParamType::Number).between(Some(5.0), Some(1.0)),
    );
    rule.param_schema.ordered.push(OrderedPair {
        low: "a".into(),
        high: "ghost".into(),
    });
    let errors = rule.validate().unwrap_err();
    assert!(errors.has("param_schema.fields.a.min"));
    assert!(message_at(&errors, "param_schema.ordered[0].high").contains("`ghost`"));
}

#[test]
fn bad_ids_are_rejected_and_good_ones_accepted() {
    for id in ["RF-002", "checkout_terms_banner", "scorecard:pad.v2"] {
        assert!(Rule::new(id).validate().is_ok(), "{id}");
    }
    for id in ["has space", "slash/id", &"x".repeat(200)] {
        assert!(Rule::new(id).validate().unwrap_err().has("id"), "{id}");
    }
}
