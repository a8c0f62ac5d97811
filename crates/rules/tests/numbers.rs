//! Numbers exact: every number in a rule, a param or an input is read to the nearest double (or
//! kept exact as an integer) and written back in the shortest form that reads back the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::Utc;
use rulebook_rules::{EntryPoint, Limits, Rule, Ruleset};
use serde_json::{json, Value};

/// Texts whose nearest double serde_json's default (fast, approximate) parser missed; the
/// standard library's parser (correctly rounded) gives the expected value.
const HARD: &[&str] = &[
    "9007199254740991.0",
    "0.9215686321258545",
    "2.2250738585072011e-308",
    "1.7976931348623157e308",
];

/// Regression: a param written as `9007199254740991.0` read back as `9007199254740990.0`.
#[test]
fn numbers_drift_params_read_back_to_the_nearest_double() {
    for text in HARD {
        let expected: f64 = text.parse().unwrap();
        let rule = Rule::from_json_str(&format!(r#"{{"id": "p", "params": {{"limit": {text}}}}}"#))
            .unwrap();
        let got = rule.params["limit"].as_f64().unwrap();
        assert_eq!(got.to_bits(), expected.to_bits(), "{text} read as {got}");
        // Written back in the shortest form that reads back the same.
        let written = serde_json::to_string(&rule.params["limit"]).unwrap();
        let again: Value = serde_json::from_str(&written).unwrap();
        assert_eq!(
            again.as_f64().unwrap().to_bits(),
            expected.to_bits(),
            "{written}"
        );
        let yaml = serde_yaml::to_string(&rule).unwrap();
        let back = Rule::from_yaml_str(&yaml).unwrap();
        assert_eq!(
            back.params["limit"].as_f64().unwrap().to_bits(),
            expected.to_bits(),
            "{yaml}"
        );
    }
}

/// Regression: `x >= params.limit` matched for x = 9007199254740990 when the limit was written
/// `9007199254740991.0`, because the limit was read one double too low.
#[test]
fn numbers_drift_threshold_comparisons_do_not_flip() {
    let text = r#"{"id": "limit", "entry_point": "check",
        "condition": {">=": [{"var": "x"}, {"var": "params.limit"}]},
        "params": {"limit": 9007199254740991.0},
        "actions": [{"type": "over_limit"}]}"#;
    let rule = Rule::from_json_str(text).unwrap();
    let set = Ruleset::compile(EntryPoint::parse("check").unwrap(), vec![rule]).unwrap();
    let input: Value = serde_json::from_str(r#"{"x": 9007199254740990.0}"#).unwrap();
    let out = set.evaluate(&input, Utc::now(), &Limits::default());
    assert!(out.matched.is_empty(), "{out:?}");
    let input: Value = serde_json::from_str(r#"{"x": 9007199254740991.0}"#).unwrap();
    let out = set.evaluate(&input, Utc::now(), &Limits::default());
    assert_eq!(out.matched_ids(), ["limit"]);
}

#[test]
fn integers_above_two_to_the_53_stay_exact() {
    let rule = Rule::from_json_str(
        r#"{"id": "p", "params": {"big": 18446744073709551615, "neg": -9223372036854775808}}"#,
    )
    .unwrap();
    assert_eq!(rule.params["big"], json!(u64::MAX));
    assert_eq!(rule.params["neg"], json!(i64::MIN));
}
