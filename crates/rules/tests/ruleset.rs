//! Rulesets: ordering, stop_processing, schedule windows, expression-valued actions, limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use rulebook_rules::examples::seed_rules;
use rulebook_rules::logic::{Logic, LogicError};
use rulebook_rules::{
    Action, CompileError, EntryPoint, EvalError, Limits, OnError, Rule, RuleError, Ruleset,
};
use serde_json::{json, Value};

fn ep(name: &str) -> EntryPoint {
    EntryPoint::parse(name).unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap()
}

fn rule(id: &str, priority: i32) -> Rule {
    let mut r = Rule::new(id);
    r.entry_point = Some(ep("checkout"));
    r.priority = priority;
    r.actions = vec![Action::new("set_value")
        .with("field", "last")
        .with("value", json!(id))];
    r
}

fn ids(rules: Vec<Rule>, input: Value, at: DateTime<Utc>) -> Vec<String> {
    let set = Ruleset::compile(ep("checkout"), rules).unwrap();
    let out = set.evaluate(&input, at, &Limits::default());
    out.matched.iter().map(|m| m.id.to_string()).collect()
}

#[test]
fn priority_runs_ascending_with_ties_broken_by_id() {
    let rules = vec![
        rule("c", 5),
        rule("b", 5),
        rule("z", 1),
        rule("a", 9),
        rule("a2", 5),
    ];
    assert_eq!(ids(rules, json!({}), now()), ["z", "a2", "b", "c", "a"]);
}

#[test]
fn stop_processing_stops_after_its_rule_matches() {
    let mut stopper = rule("b", 2);
    stopper.stop_processing = true;
    let mut not_matching_stopper = rule("a", 1);
    not_matching_stopper.stop_processing = true;
    not_matching_stopper.condition = json!({"==": [{"var": "x"}, 1]});
    let set = Ruleset::compile(
        ep("checkout"),
        vec![rule("c", 3), stopper, not_matching_stopper],
    )
    .unwrap();
    let out = set.evaluate(&json!({"x": 2}), now(), &Limits::default());
    assert_eq!(out.matched_ids(), ["b"]);
    assert_eq!(out.stopped_by.as_deref(), Some("b"));
    let out = set.evaluate(&json!({"x": 1}), now(), &Limits::default());
    assert_eq!(out.matched_ids(), ["a"]);
}

#[test]
fn schedule_windows_are_checked_at_evaluation_time_not_compile_time() {
    let mut future = rule("future", 1);
    future.active_from = Some(now() + Duration::minutes(5));
    let mut expiring = rule("expiring", 2);
    expiring.active_until = Some(now() + Duration::minutes(5));
    let mut disabled = rule("disabled", 3);
    disabled.enabled = false;
    // One compiled ruleset, evaluated on both sides of the boundaries, as a cached one would be.
    let set = Ruleset::compile(ep("checkout"), vec![future, expiring, disabled]).unwrap();
    let limits = Limits::default();
    let before = set.evaluate(&json!({}), now(), &limits);
    assert_eq!(before.matched_ids(), ["expiring"]);
    let at_boundary = set.evaluate(&json!({}), now() + Duration::minutes(5), &limits);
    assert_eq!(
        at_boundary.matched_ids(),
        ["future"],
        "from is inclusive, until exclusive"
    );
    let after = set.evaluate(&json!({}), now() + Duration::hours(1), &limits);
    assert_eq!(after.matched_ids(), ["future"]);
}

#[test]
fn action_values_may_be_expressions_over_the_input_and_params() {
    let rules: Vec<Rule> = seed_rules("default")
        .into_iter()
        .filter(|r| r.entry_point.as_ref().map(EntryPoint::as_str) == Some("vat_calculation"))
        .collect();
    let set = Ruleset::compile(ep("VAT Calculation"), rules).unwrap();
    let out = set.evaluate(
        &json!({"country": "GB", "net_amount": 150}),
        now(),
        &Limits::default(),
    );
    assert_eq!(out.value("vat_amount"), Some(&json!(30)));
    assert_eq!(out.value("vat_rate"), Some(&json!(0.2)));
    assert_eq!(
        out.matched,
        vec![rulebook_rules::MatchedRule {
            id: "vat_gb_standard".into(),
            version: 1,
            priority: 10
        }]
    );
    let out = set.evaluate(
        &json!({"country": "FR", "net_amount": 150}),
        now(),
        &Limits::default(),
    );
    assert_eq!(out.value("vat_amount"), Some(&json!(0)));
    assert_eq!(out.matched_ids(), ["vat_zero_rated"]);
}

#[test]
fn messages_are_evaluated_and_the_answer_serialises_with_rule_ids() {
    let rules: Vec<Rule> = seed_rules("default")
        .into_iter()
        .filter(|r| r.entry_point.as_ref().map(EntryPoint::as_str) == Some("home_page_mount"))
        .collect();
    let set = Ruleset::compile(ep("Home Page Mount"), rules).unwrap();
    let out = set.evaluate(
        &json!({"user": {"first_name": "Ada"}}),
        now(),
        &Limits::default(),
    );
    let json = serde_json::to_value(&out).unwrap();
    assert_eq!(json["actions"][0]["rule_id"], "home_welcome_banner");
    assert_eq!(json["actions"][0]["type"], "display_message");
    assert_eq!(json["actions"][0]["message"], "Welcome back, Ada!");
    assert_eq!(json["matched"][0]["version"], 1);
    let back: rulebook_rules::Evaluation = serde_json::from_value(json).unwrap();
    assert_eq!(back, out);
}

#[test]
fn rules_of_another_entry_point_or_repeated_ids_are_refused() {
    let mut other = rule("x", 1);
    other.entry_point = Some(ep("home"));
    assert!(matches!(
        Ruleset::compile(ep("checkout"), vec![other]),
        Err(CompileError::WrongEntryPoint { .. })
    ));
    let err = Ruleset::compile(
        ep("checkout"),
        vec![rule("x", 1), rule("y", 2), rule("x", 3)],
    )
    .unwrap_err();
    assert_eq!(
        err,
        CompileError::DuplicateRule {
            rule_id: "x".into()
        }
    );
}

/// Regression (one rule breaks its whole entry point): a stored rule that does not validate (an
/// unknown operator typed in by plain SQL, say) is reported for itself; its neighbours still run.
#[test]
fn one_invalid_stored_rule_does_not_break_its_entry_point() {
    let mut invalid = rule("bad", 1);
    invalid.condition = json!({"nope": []});
    let set = Ruleset::compile(ep("checkout"), vec![invalid, rule("good", 2)]).unwrap();
    let out = set.evaluate(&json!({}), now(), &Limits::default());
    assert_eq!(out.matched_ids(), ["good"]);
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    assert_eq!(out.errors[0].rule_id, "bad");
    assert_eq!(out.errors[0].code, "invalid_rule");
    assert!(
        out.errors[0].message.contains("nope"),
        "{}",
        out.errors[0].message
    );
}

/// Builds `{"!": {"!": ... true}}` `depth` levels deep without recursion.
fn deep_not(depth: usize) -> Value {
    let mut v = json!(true);
    for _ in 0..depth {
        let mut m = serde_json::Map::new();
        m.insert("!".into(), v);
        v = Value::Object(m);
    }
    v
}

/// Takes a deep list apart level by level so dropping it cannot overflow the stack.
fn dismantle_arrays(mut v: Value) {
    while let Value::Array(mut items) = v {
        v = items.pop().unwrap_or(Value::Null);
    }
}

#[test]
fn a_ten_thousand_deep_condition_is_an_error_not_a_crash() {
    // Built, compiled and taken apart on this (small) test thread: nothing here recurses.
    let deep = deep_not(10_000);
    assert_eq!(
        Logic::compile(&deep).unwrap_err(),
        LogicError::TooDeep {
            limit: Limits::default().max_depth
        }
    );
    let mut r = rule("deep", 1);
    r.condition = deep;
    let r = r;
    let errors = r.validate().unwrap_err();
    assert!(errors.has("condition"));
    // The ruleset compiler takes the rule and must drop its deep condition without recursion;
    // the rule is reported at evaluation, not fatal to the entry point.
    let set = Ruleset::compile(ep("checkout"), vec![r]).unwrap();
    let out = set.evaluate(&json!({}), now(), &Limits::default());
    assert!(out.matched.is_empty());
    assert_eq!(out.errors[0].code, "invalid_rule");
    let deep_array = (0..10_000).fold(json!(1), |v, _| Value::Array(vec![v]));
    assert!(matches!(
        Logic::compile(&deep_array),
        Err(LogicError::TooDeep { .. })
    ));
    dismantle_arrays(deep_array);
}

#[test]
fn the_same_deep_condition_from_text_is_refused_by_the_parser() {
    let text = format!(
        "{{\"id\": \"deep\", \"condition\": {}true{}}}",
        "{\"!\": ".repeat(10_000),
        "}".repeat(10_000)
    );
    let err = Rule::from_json_str(&text).unwrap_err();
    assert!(err.errors[0].message.contains("not valid JSON"), "{err}");
}

#[test]
fn evaluation_limits_are_errors_of_the_rule_that_exceeds_them() {
    let mut r = rule("nested", 1);
    r.condition = deep_not(20);
    let set = Ruleset::compile(ep("checkout"), vec![r, rule("plain", 2)]).unwrap();
    let shallow = Limits {
        max_depth: 10,
        ..Limits::default()
    };
    let out = set.evaluate(&json!({}), now(), &shallow);
    assert_eq!(out.matched_ids(), ["plain"]);
    assert_eq!(out.errors[0].code, "too_deep");
    assert!(
        out.errors[0].message.contains("21 levels"),
        "{:?}",
        out.errors
    );
    let small = Limits {
        max_nodes: 5,
        ..Limits::default()
    };
    let out = set.evaluate(&json!({}), now(), &small);
    assert_eq!(out.errors[0].code, "too_large");
    assert_eq!(out.matched_ids(), ["plain"]);

    let mut busy = rule("busy", 1);
    busy.condition = json!({"some": [{"var": "xs"}, {"==": [{"var": ""}, -1]}]});
    let mut after = rule("after", 2);
    after.condition = json!({"==": [{"var": "xs.0"}, 0]});
    let set = Ruleset::compile(ep("checkout"), vec![busy, after]).unwrap();
    let input = json!({"xs": (0..50_000).collect::<Vec<_>>()});
    let tight = Limits {
        max_ops: 10_000,
        ..Limits::default()
    };
    let out = set.evaluate(&input, now(), &tight);
    assert_eq!(
        out.errors,
        [RuleError {
            rule_id: "busy".into(),
            version: 0,
            code: "out_of_budget".into(),
            message: EvalError::OutOfBudget { limit: 10_000 }.to_string(),
        }]
    );
    // The neighbour has its own budget and still matches.
    assert_eq!(out.matched_ids(), ["after"]);
    assert_eq!(
        out.clone().into_result(OnError::Fail).unwrap_err(),
        out.errors
    );
    let out = set.evaluate(&input, now(), &Limits::default());
    assert!(out.errors.is_empty());
    assert_eq!(out.matched_ids(), ["after"]);
}

/// Regression (one rule breaks its whole entry point): a rule nested 64-125 levels was accepted
/// at write (compile allowed 128 levels) but evaluation allowed 64, so every evaluation of its
/// entry point failed, its neighbours' too, even when the deep rule's condition was false.
#[test]
fn one_rule_breaks_its_whole_entry_point_deep_rules_are_refused_at_write() {
    let limits = Limits::default();
    // `{"!": ... {"==": [1, 2]}}`: false or true by parity, never matching when false.
    for depth in [limits.max_depth, limits.max_depth + 1, 100, 125] {
        let mut r = rule("deep", 1);
        let mut condition = json!({"==": [1, 2]});
        for _ in 0..depth.saturating_sub(3) {
            condition = json!({"!": condition});
        }
        r.condition = condition;
        let written = r.validate();
        let logic = Logic::compile(&r.condition);
        match &logic {
            Ok(l) => {
                // Accepted at write only when evaluation accepts it too.
                assert!(l.depth() <= limits.max_depth);
                assert!(written.is_ok(), "depth {depth}: {written:?}");
            }
            Err(_) => {
                let errors = written.unwrap_err();
                assert!(errors.has("condition"), "{errors}");
                assert!(
                    errors
                        .to_string()
                        .contains(&format!("{} levels", limits.max_depth)),
                    "{errors}"
                );
            }
        }
        let set = Ruleset::compile(ep("checkout"), vec![r, rule("neighbour", 2)]).unwrap();
        let out = set.evaluate(&json!({}), now(), &limits);
        assert!(
            out.matched_ids().contains(&"neighbour"),
            "depth {depth}: {out:?}"
        );
        assert_eq!(
            out.errors.is_empty(),
            logic.is_ok(),
            "depth {depth}: {out:?}"
        );
    }
}

#[test]
fn conditions_see_the_input_directly_and_under_input_and_their_own_params() {
    let mut r = rule("p", 1);
    r.params.insert("minimum".into(), json!(10));
    r.condition = json!({"and": [
        {">=": [{"var": "total"}, {"var": "params.minimum"}]},
        {"==": [{"var": "input.total"}, {"var": "total"}]}
    ]});
    assert_eq!(ids(vec![r.clone()], json!({"total": 10}), now()), ["p"]);
    assert!(ids(vec![r], json!({"total": 9}), now()).is_empty());
}

/// `explain` gives the answer `evaluate` gives, plus one outcome per rule in evaluation order.
#[test]
fn explain_adds_an_outcome_per_rule_to_the_same_answer() {
    use rulebook_rules::{Outcome, RuleOutcome};
    let mut off = rule("off", 1);
    off.enabled = false;
    let mut later = rule("later", 2);
    later.active_from = Some(now() + Duration::days(1));
    let mut small = rule("small", 3);
    small.condition =
        json!({"and": [{">": [{"var": "amount"}, 10]}, {"==": [{"var": "country"}, "FR"]}]});
    let mut big = rule("big", 4);
    big.condition = json!({">": [{"var": "amount"}, 1000]});
    let mut stop = rule("stop", 5);
    stop.stop_processing = true;
    let after = rule("after", 6);
    let set = Ruleset::compile(ep("checkout"), vec![after, stop, big, small, later, off]).unwrap();
    let input = json!({"amount": 250, "country": "DE"});
    let plain = set.evaluate(&input, now(), &Limits::default());
    let mut explained = set.explain(&input, now(), &Limits::default());
    let explain = explained.explain.take().unwrap();
    assert_eq!(explained, plain);
    let outcome = |id: &str, outcome: Outcome| RuleOutcome {
        id: id.into(),
        version: 0,
        priority: explain.iter().find(|r| r.id == id).unwrap().priority,
        outcome,
    };
    assert_eq!(
        explain,
        [
            outcome("off", Outcome::Disabled),
            outcome(
                "later",
                Outcome::OutsideWindow {
                    active_from: Some(now() + Duration::days(1)),
                    active_until: None
                }
            ),
            outcome(
                "small",
                Outcome::ConditionFalse {
                    operator: Some("and".into()),
                    operands: Some(vec![json!(true), json!(false)])
                }
            ),
            outcome(
                "big",
                Outcome::ConditionFalse {
                    operator: Some(">".into()),
                    operands: Some(vec![json!(250), json!(1000)])
                }
            ),
            outcome("stop", Outcome::Matched),
            outcome(
                "after",
                Outcome::NotReached {
                    stopped_by: "stop".into()
                }
            ),
        ]
    );
}

/// A failure deciding the condition and one computing an action are told apart.
#[test]
fn explain_tells_a_condition_error_from_an_action_error() {
    use rulebook_rules::Outcome;
    let limits = Limits {
        max_ops: 50,
        ..Limits::default()
    };
    let mut heavy_condition = rule("cond", 1);
    heavy_condition.condition = json!({"some": [{"var": "xs"}, {"<": [{"var": ""}, 0]}]});
    let mut heavy_action = rule("act", 2);
    heavy_action.actions = vec![Action::new("set_value").with("field", "n").with(
        "value",
        json!({"map": [{"var": "xs"}, {"+": [{"var": ""}, 1]}]}),
    )];
    let set = Ruleset::compile(ep("checkout"), vec![heavy_condition, heavy_action]).unwrap();
    let xs: Vec<u32> = (0..100).collect();
    let out = set.explain(&json!({ "xs": xs }), now(), &limits);
    let explain = out.explain.unwrap();
    assert!(
        matches!(&explain[0].outcome, Outcome::ConditionError { code, .. } if code == "out_of_budget"),
        "{explain:?}"
    );
    assert!(
        matches!(&explain[1].outcome, Outcome::ActionError { code, .. } if code == "out_of_budget"),
        "{explain:?}"
    );
    assert_eq!(out.errors.len(), 2);
}

/// A rule whose second action fails adds neither action to the answer (its first one is taken
/// back) and is not matched; the rules around it keep theirs.
#[test]
fn a_rule_whose_later_action_fails_adds_none_of_its_actions() {
    let limits = Limits {
        max_ops: 50,
        ..Limits::default()
    };
    let mut broken = rule("broken", 2);
    broken
        .actions
        .push(Action::new("set_value").with("field", "n").with(
            "value",
            json!({"map": [{"var": "xs"}, {"+": [{"var": ""}, 1]}]}),
        ));
    let set = Ruleset::compile(
        ep("checkout"),
        vec![rule("before", 1), broken, rule("after", 3)],
    )
    .unwrap();
    let xs: Vec<u32> = (0..100).collect();
    let out = set.evaluate(&json!({ "xs": xs }), now(), &limits);
    assert_eq!(out.matched_ids(), ["before", "after"]);
    let fired: Vec<&str> = out.actions.iter().map(|a| a.rule_id()).collect();
    assert_eq!(fired, ["before", "after"]);
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].rule_id, "broken");
}

/// Drafts take the place of the rules with their ids and join beside the rest; the base ruleset
/// is unchanged, and a draft of another entry point is refused.
#[test]
fn drafts_replace_and_join_without_changing_the_base() {
    let mut a = rule("a", 1);
    a.condition = json!({"==": [{"var": "x"}, 1]});
    let base = Ruleset::compile(ep("checkout"), vec![a, rule("b", 2)]).unwrap();
    let mut draft_a = rule("a", 3);
    draft_a.condition = json!(true);
    let with = base.with_drafts(vec![draft_a, rule("c", 0)]).unwrap();
    let out = with.evaluate(&json!({"x": 2}), now(), &Limits::default());
    assert_eq!(out.matched_ids(), ["c", "b", "a"]);
    assert_eq!(
        base.evaluate(&json!({"x": 2}), now(), &Limits::default())
            .matched_ids(),
        ["b"]
    );
    let mut stray = rule("d", 1);
    stray.entry_point = Some(ep("elsewhere"));
    assert!(matches!(
        base.with_drafts(vec![stray]),
        Err(CompileError::WrongEntryPoint { .. })
    ));
}
