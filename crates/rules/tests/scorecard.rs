//! The pad_trade scorecard: the seeds' expectations, escalation, overrides, and isolation of
//! concurrent requests (the seeds' shared-singleton failure).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use rulebook_rules::examples::{seed_rules, PAD_TRADE};
use rulebook_rules::{
    EvalError, Level, Limits, OnError, Params, ScoreRequest, ScoreResult, Scorecard,
};
use serde_json::{json, Map, Value};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap()
}

fn card() -> Scorecard {
    Scorecard::compile(PAD_TRADE, seed_rules("default")).unwrap()
}

fn thresholds(low: f64, high: f64) -> BTreeMap<String, Map<String, Value>> {
    let mut overrides = BTreeMap::new();
    let Value::Object(m) = json!({"lowThreshold": low, "highThreshold": high}) else {
        unreachable!()
    };
    overrides.insert("RF-005".to_owned(), m);
    overrides
}

fn score(
    card: &Scorecard,
    input: Value,
    overrides: BTreeMap<String, Map<String, Value>>,
) -> Result<ScoreResult, EvalError> {
    card.score(
        &ScoreRequest {
            input,
            overrides,
            ..Default::default()
        },
        now(),
        &Limits::default(),
    )
}

fn equity(value: f64) -> Value {
    json!({"instrument_type": "equity", "instrument": "SOME", "value": value})
}

#[test]
fn sixty_thousand_with_the_default_thresholds_is_medium() {
    let result = score(&card(), equity(60_000.0), BTreeMap::new()).unwrap();
    assert_eq!(result.level_of("position_size"), Some(Level::Medium));
    assert_eq!(result.overall, Level::Medium);
    assert_eq!(result.route.as_deref(), Some("line_manager"));
    assert!(!result.escalated);
    assert_eq!(result.factors.len(), 5);
}

#[test]
fn fifty_thousand_with_ten_and_fifty_thousand_is_medium() {
    let result = score(&card(), equity(50_000.0), thresholds(10_000.0, 50_000.0)).unwrap();
    assert_eq!(
        result.overall,
        Level::Medium,
        "strictly above low, not strictly above high"
    );
}

#[test]
fn fifty_thousand_with_half_a_million_and_a_million_is_low() {
    let result = score(
        &card(),
        equity(50_000.0),
        thresholds(500_000.0, 1_000_000.0),
    )
    .unwrap();
    assert_eq!(result.overall, Level::Low);
    assert_eq!(result.route.as_deref(), Some("auto_approve"));
}

#[test]
fn thresholds_are_strict() {
    let card = card();
    assert_eq!(
        score(&card, equity(50_000.0), BTreeMap::new())
            .unwrap()
            .overall,
        Level::Low
    );
    assert_eq!(
        score(&card, equity(100_000.0), BTreeMap::new())
            .unwrap()
            .overall,
        Level::Medium
    );
    assert_eq!(
        score(&card, equity(100_001.0), BTreeMap::new())
            .unwrap()
            .overall,
        Level::High
    );
}

#[test]
fn each_factor_raises_its_level() {
    let card = card();
    let input = json!({"instrument_type": "crypto", "instrument": "ACME", "value": 1,
                       "firm_last_traded_days_ago": 30, "holding_days": 29});
    let result = score(&card, input, BTreeMap::new()).unwrap();
    assert_eq!(result.level_of("instrument_type"), Some(Level::High));
    assert_eq!(result.level_of("firm_traded"), Some(Level::High));
    assert_eq!(result.level_of("holding_period"), Some(Level::Medium));
    assert_eq!(result.level_of("restricted_list"), Some(Level::High));
    assert_eq!(result.level_of("position_size"), Some(Level::Low));
    assert_eq!(result.overall, Level::High);
    assert_eq!(result.route.as_deref(), Some("compliance_review"));
    let outside = json!({"instrument_type": "equity", "value": 1, "firm_last_traded_days_ago": 31, "holding_days": 30});
    assert_eq!(
        score(&card, outside, BTreeMap::new()).unwrap().overall,
        Level::Low
    );
}

#[test]
fn two_mediums_escalate_to_high_unless_the_escalation_is_overridden_off() {
    let card = card();
    let input = json!({"instrument_type": "option", "value": 60_000});
    let result = score(&card, input.clone(), BTreeMap::new()).unwrap();
    assert_eq!(result.overall, Level::High);
    assert!(result.escalated);
    let mut off = BTreeMap::new();
    let Value::Object(m) = json!({"mediumCountForHigh": 0}) else {
        unreachable!()
    };
    off.insert("pad_trade_routing".to_owned(), m);
    let result = score(&card, input, off).unwrap();
    assert_eq!(result.overall, Level::Medium);
    assert!(!result.escalated);
}

#[test]
fn overrides_that_break_the_schema_or_name_unknown_rules_are_errors() {
    let card = card();
    let err = score(&card, equity(1.0), thresholds(100.0, 10.0)).unwrap_err();
    let EvalError::InvalidOverride { rule_id, errors } = err else {
        panic!("{err:?}")
    };
    assert_eq!(rule_id, "RF-005");
    assert!(errors.has("params.lowThreshold"));
    let mut unknown = BTreeMap::new();
    unknown.insert("RF-404".to_owned(), Map::new());
    assert!(matches!(
        score(&card, equity(1.0), unknown),
        Err(EvalError::UnknownOverride { .. })
    ));
}

#[test]
fn params_of_the_scorecard_rules_are_readable_by_name() {
    let params = Params::from_rules(seed_rules("default"));
    assert_eq!(params.value("RF-002", "lookbackDays"), Some(&json!(30)));
    assert_eq!(params.value("RF-005", "lowThreshold"), Some(&json!(50_000)));
    assert_eq!(params.value("RF-007", "minimumHoldDays"), Some(&json!(30)));
    assert_eq!(params.is_enabled("RF-005"), Some(true));
}

#[test]
fn a_disabled_factor_is_left_out_and_a_bad_level_is_an_error() {
    let mut rules = seed_rules("default");
    for rule in &mut rules {
        if rule.id == "RF-005" {
            rule.enabled = false;
        }
    }
    let card = Scorecard::compile(PAD_TRADE, rules).unwrap();
    let result = score(&card, equity(1_000_000.0), BTreeMap::new()).unwrap();
    assert_eq!(result.level_of("position_size"), None);
    assert_eq!(result.overall, Level::Low);

    let mut rules = seed_rules("default");
    for rule in &mut rules {
        if rule.id == "RF-001" {
            rule.actions = vec![rulebook_rules::Action::new("score")
                .with("factor", "instrument_type")
                .with("level", json!("SEVERE"))];
        }
    }
    let card = Scorecard::compile(PAD_TRADE, rules).unwrap();
    // The bad factor is reported and left out; the others still score.
    let result = score(&card, equity(1.0), BTreeMap::new()).unwrap();
    assert_eq!(result.level_of("instrument_type"), None);
    assert!(result.level_of("position_size").is_some());
    assert_eq!(result.errors.len(), 1, "{:?}", result.errors);
    assert_eq!(result.errors[0].rule_id, "RF-001");
    assert_eq!(result.errors[0].code, "bad_level");
    assert!(
        result.errors[0].message.contains("SEVERE"),
        "{:?}",
        result.errors
    );
    // All or nothing when asked.
    let strict = card.score(
        &ScoreRequest {
            input: equity(1.0),
            on_error: OnError::Fail,
            ..Default::default()
        },
        now(),
        &Limits::default(),
    );
    assert!(
        matches!(strict, Err(EvalError::BadLevel { .. })),
        "{strict:?}"
    );
}

/// Regression (one rule breaks its whole entry point), for scorecards: a factor rule that runs out
/// of its work budget on a huge input is reported; the other factors score with their own budgets.
#[test]
fn one_factor_out_of_budget_leaves_the_others_scored() {
    let mut rules = seed_rules("default");
    for rule in &mut rules {
        if rule.id == "RF-001" {
            rule.condition = json!({"some": [{"var": "input.history"}, {"==": [{"var": ""}, -1]}]});
        }
    }
    let card = Scorecard::compile(PAD_TRADE, rules).unwrap();
    let mut input = equity(75_000.0);
    input["history"] = json!((0..50_000).collect::<Vec<_>>());
    let limits = Limits {
        max_ops: 10_000,
        ..Limits::default()
    };
    let request = ScoreRequest {
        input,
        ..Default::default()
    };
    let result = card.score(&request, now(), &limits).unwrap();
    assert_eq!(result.errors.len(), 1, "{:?}", result.errors);
    assert_eq!(result.errors[0].rule_id, "RF-001");
    assert_eq!(result.errors[0].code, "out_of_budget");
    assert_eq!(result.level_of("position_size"), Some(Level::Medium));
    assert_eq!(result.level_of("instrument_type"), None);
}

/// The seeds' failure: a shared scorer whose config each request overwrote. Here 10,000 requests
/// with different thresholds run at once on several threads against one shared scorecard, and
/// each must equal the same request scored alone.
#[test]
fn concurrent_requests_with_their_own_overrides_never_see_each_others() {
    let card = std::sync::Arc::new(card());
    let requests: Vec<ScoreRequest> = (0..10_000u32)
        .map(|i| {
            let low = 10_000.0 + f64::from(i % 100) * 2_000.0;
            let overrides = if i % 3 == 0 {
                BTreeMap::new()
            } else {
                thresholds(low, low * 10.0)
            };
            ScoreRequest {
                input: json!({"instrument_type": if i % 7 == 0 { "option" } else { "equity" },
                              "value": 75_000, "holding_days": i % 60}),
                overrides,
                ..Default::default()
            }
        })
        .collect();
    let alone: Vec<ScoreResult> = requests
        .iter()
        .map(|r| card.score(r, now(), &Limits::default()).unwrap())
        .collect();
    let requests = std::sync::Arc::new(requests);
    let threads = 4;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let card = card.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                // Interleave: thread t takes every `threads`-th request, in reverse for odd t.
                let mut mine: Vec<usize> = (t..requests.len()).step_by(threads).collect();
                if t % 2 == 1 {
                    mine.reverse();
                }
                mine.into_iter()
                    .map(|i| {
                        (
                            i,
                            card.score(&requests[i], now(), &Limits::default()).unwrap(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seen = 0;
    for handle in handles {
        for (i, result) in handle.join().unwrap() {
            assert_eq!(result, alone[i], "request {i}");
            seen += 1;
        }
    }
    assert_eq!(seen, 10_000);
    // The thresholds really differ between requests: both outcomes occur.
    assert!(alone.iter().any(|r| r.overall == Level::Low));
    assert!(alone.iter().any(|r| r.overall != Level::Low));
}

/// `score_explained` gives the same result plus one outcome per factor: a disabled rule's factor
/// is `disabled`, a level that is not LOW, MEDIUM or HIGH an `action_error`, the rest matched (or
/// condition_false, scored LOW).
#[test]
fn a_score_explains_each_factor() {
    use rulebook_rules::Outcome;
    let mut rules = seed_rules("default");
    for rule in &mut rules {
        if rule.id == "RF-005" {
            rule.enabled = false;
        }
        if rule.id == "RF-001" {
            rule.actions = vec![rulebook_rules::Action::new("score")
                .with("factor", "instrument_type")
                .with("level", json!("SEVERE"))];
        }
    }
    let card = Scorecard::compile(PAD_TRADE, rules).unwrap();
    let request = ScoreRequest {
        input: equity(1.0),
        ..Default::default()
    };
    let plain = card.score(&request, now(), &Limits::default()).unwrap();
    let mut explained = card
        .score_explained(&request, now(), &Limits::default())
        .unwrap();
    let explain = explained.explain.take().unwrap();
    assert_eq!(explained, plain);
    let outcome = |factor: &str| {
        &explain
            .iter()
            .find(|f| f.factor.as_deref() == Some(factor))
            .unwrap_or_else(|| panic!("no `{factor}` in {explain:?}"))
            .outcome
    };
    assert_eq!(outcome("position_size"), &Outcome::Disabled);
    assert!(
        matches!(outcome("instrument_type"), Outcome::ActionError { code, .. } if code == "bad_level"),
        "{explain:?}"
    );
    // Every factor that was scored is explained as matched or (LOW) condition false.
    for factor in &plain.factors {
        match outcome(&factor.factor) {
            Outcome::Matched => {}
            Outcome::ConditionFalse { .. } => assert_eq!(factor.level, Level::Low),
            other => panic!("{other:?} for scored factor {factor:?}"),
        }
    }
    assert_eq!(
        explain.len(),
        plain.factors.len() + 2,
        "the scored factors, the disabled one and the failed one: {explain:?}"
    );
}
