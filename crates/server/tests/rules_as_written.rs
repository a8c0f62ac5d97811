//! Rules as users write them, through the HTTP API: open actions that round-trip unchanged, one
//! set of limits at write and at run time, a failing rule isolated from its neighbours, numbers
//! read to the nearest double, entry-point keys that never alias.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::{req, Api, ADMIN};
use serde_json::{json, Value};

/// The seed's rule, as its team wrote it (after the field mapping of the Django import).
fn seed_rule(id: &str, entry_point: &str) -> Value {
    json!({
        "id": id,
        "name": "Test Rule Create",
        "entry_point": entry_point,
        "priority": 100,
        "enabled": true,
        "condition": true,
        "actions": [{"type": "display_message", "content": "Test"}]
    })
}

/// Regression: `{"type": "display_message", "content": "Test"}` was a 422 (`unknown field
/// content, expected message or placement`). It now round-trips through create, get, evaluate,
/// export (the list) and import unchanged, fields in the order written.
#[tokio::test]
async fn the_seeds_display_message_round_trips_through_create_get_evaluate_export_and_import() {
    let api = Api::start(|_| {}).await;
    let written = json!([{"type": "display_message", "content": "Test"},
                         {"type": "notify.slack", "zeta": 1, "channel": "#risk", "alpha": {"colour": "red"}}]);
    let mut rule = seed_rule("test_rule_create", "home_page_mount");
    rule["actions"] = written.clone();
    let text_of = |v: &Value| serde_json::to_string(v).unwrap();

    let r = api
        .call(
            req(Method::POST, "/v1/rules")
                .token(ADMIN)
                .json(rule.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(text_of(&r.body["actions"]), text_of(&written));

    let got = api
        .call(req(Method::GET, "/v1/rules/test_rule_create"))
        .await;
    assert_eq!(
        text_of(&got.body["actions"]),
        text_of(&written),
        "{}",
        got.text
    );

    let r = api
        .call(req(Method::POST, "/v1/evaluate/home_page_mount").json(json!({"context": {}})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let fired: Vec<Value> = r.body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule_id"] == "test_rule_create")
        .cloned()
        .collect();
    assert_eq!(
        text_of(&Value::Array(fired)),
        r##"[{"rule_id":"test_rule_create","type":"display_message","content":"Test"},{"rule_id":"test_rule_create","type":"notify.slack","zeta":1,"channel":"#risk","alpha":{"colour":"red"}}]"##
    );
    assert_eq!(r.body["errors"], json!([]));

    // Export (the list), then import what was exported: unchanged.
    let list = api
        .call(req(Method::GET, "/v1/rules?entry_point=home_page_mount"))
        .await;
    let exported: Vec<Value> = list.body["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"] == "test_rule_create")
        .cloned()
        .collect();
    assert_eq!(text_of(&exported[0]["actions"]), text_of(&written));
    let r = api
        .call(
            req(Method::POST, "/v1/rules/import")
                .token(ADMIN)
                .json(json!({"rules": exported})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["unchanged"], 1, "{}", r.text);
    let again = api
        .call(req(Method::GET, "/v1/rules/test_rule_create"))
        .await;
    // `seq` is the position the read reflects, a lower bound that may move on between two reads
    // (the feed applies the create's change in the background): the rule is what must not move.
    let rule = |body: &Value| {
        let mut rule = body.clone();
        rule.as_object_mut().unwrap().remove("seq");
        rule
    };
    assert_eq!(rule(&again.body), rule(&got.body));
}

/// Builds a condition nested `depth` levels deep whose value is false.
fn deep_false(depth: usize) -> Value {
    let mut condition = json!({"==": [1, 2]});
    // `{"==": [1, 2]}` is 2 levels; each `!!` adds one.
    for _ in 0..depth - 2 {
        condition = json!({"!!": condition});
    }
    condition
}

/// Regression (one rule breaks its whole entry point): a rule nested 64-125 levels was accepted
/// (201, and a dry run called it fine) because writes allowed 128 levels and evaluation 64; from
/// then on every evaluation of its entry point was a 422, its neighbours' too.
#[tokio::test]
async fn one_rule_breaks_its_whole_entry_point_a_rule_too_deep_to_evaluate_is_refused_at_write() {
    let api = Api::start(|_| {}).await;
    let neighbour = seed_rule("neighbour", "deep_ep");
    let r = api
        .call(req(Method::POST, "/v1/rules").token(ADMIN).json(neighbour))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for depth in [65, 100, 125] {
        let mut deep = seed_rule("deep", "deep_ep");
        deep["condition"] = deep_false(depth);
        let r = api
            .call(
                req(Method::POST, "/v1/rules")
                    .token(ADMIN)
                    .json(deep.clone()),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "depth {depth}: {}",
            r.text
        );
        assert_eq!(
            r.body["error"]["errors"][0]["path"], "condition",
            "{}",
            r.text
        );
        if depth > 120 {
            // Inside `{"rules": [...]}` the JSON parser's own limit (128) is reached first.
            continue;
        }
        let r = api
            .call(
                req(Method::POST, "/v1/rules/import")
                    .token(ADMIN)
                    .json(json!({"rules": [deep], "dry_run": true})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "dry run, depth {depth}: {}",
            r.text
        );
        assert_eq!(
            r.body["error"]["errors"][0]["path"], "rules[0].condition",
            "{}",
            r.text
        );
    }
    // The deepest rule evaluation accepts is accepted at write, and evaluates.
    let mut deep = seed_rule("deep", "deep_ep");
    deep["condition"] = deep_false(64);
    let r = api
        .call(req(Method::POST, "/v1/rules").token(ADMIN).json(deep))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = api
        .call(req(Method::POST, "/v1/evaluate/deep_ep").json(json!({"context": {}})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["matched"][0]["id"], "neighbour", "{}", r.text);
    assert_eq!(r.body["errors"], json!([]));
}

/// A rule whose condition runs out of its work budget on a large input is listed in `errors` and
/// counts as not matched; its neighbour still matches. `"on_error": "fail"` is all or nothing.
#[tokio::test]
async fn a_rule_failing_at_run_time_is_reported_and_its_neighbours_still_evaluate() {
    let api = Api::start(|_| {}).await;
    // 100 scans of a 20,000-element list: 2,000,000 units, over the 1,000,000 budget.
    let scans: Vec<Value> = (0..100)
        .map(|_| json!({"!": {"in": [-1, {"var": "xs"}]}}))
        .collect();
    let mut heavy = seed_rule("heavy", "busy");
    heavy["priority"] = json!(1);
    heavy["condition"] = json!({"and": scans});
    heavy["actions"] = json!([{"type": "display_message", "content": "heavy"}]);
    let light = seed_rule("light", "busy");
    for rule in [heavy, light] {
        let r = api
            .call(req(Method::POST, "/v1/rules").token(ADMIN).json(rule))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let xs: Vec<u32> = (0..20_000).collect();
    let r = api
        .call(req(Method::POST, "/v1/evaluate/busy").json(json!({"context": {"xs": xs}})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["matched"],
        json!([{"id": "light", "version": 1, "priority": 100}])
    );
    let errors = r.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{}", r.text);
    assert_eq!(errors[0]["rule_id"], "heavy");
    assert_eq!(errors[0]["version"], 1);
    assert_eq!(errors[0]["code"], "out_of_budget");
    assert!(errors[0]["message"].as_str().unwrap().contains("budget"));
    // A small input: both match, nothing failed.
    let r = api
        .call(req(Method::POST, "/v1/evaluate/busy").json(json!({"context": {"xs": [1, 2]}})))
        .await;
    assert_eq!(r.body["matched"].as_array().unwrap().len(), 2, "{}", r.text);
    assert_eq!(r.body["errors"], json!([]));
    // All or nothing.
    let r = api
        .call(
            req(Method::POST, "/v1/evaluate/busy")
                .json(json!({"context": {"xs": xs}, "on_error": "fail"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "evaluation_failed"),
        "{}",
        r.text
    );
    assert_eq!(r.body["error"]["errors"][0]["path"], "heavy", "{}", r.text);
    let r = api
        .call(
            req(Method::POST, "/v1/evaluate/busy")
                .json(json!({"context": {}, "on_error": "sometimes"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.message().contains("on_error"), "{}", r.text);
}

/// Regression (numbers drift): a param written as `9007199254740991.0` read back as
/// `9007199254740990.0`, `0.9215686321258545` as `...544`, and `x >= params.limit` matched for
/// x = 9007199254740990. The same happened to numbers in evaluation input.
#[tokio::test]
async fn numbers_drift_params_and_inputs_are_read_to_the_nearest_double() {
    let api = Api::start(|_| {}).await;
    let body = r#"{"id": "limit", "entry_point": "limits",
        "condition": {">=": [{"var": "x"}, {"var": "params.limit"}]},
        "params": {"limit": 9007199254740991.0, "ratio": 0.9215686321258545},
        "actions": [{"type": "over_limit"}]}"#;
    let r = api
        .call(
            req(Method::POST, "/v1/rules")
                .token(ADMIN)
                .raw(body.as_bytes()),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = api.call(req(Method::GET, "/v1/params/limit/limit")).await;
    assert!(
        r.text.contains("\"value\":9007199254740991.0"),
        "{}",
        r.text
    );
    let r = api.call(req(Method::GET, "/v1/params/limit/ratio")).await;
    assert!(
        r.text.contains("\"value\":0.9215686321258545"),
        "{}",
        r.text
    );
    let evaluate = |x: &str| {
        req(Method::POST, "/v1/evaluate/limits")
            .raw(format!(r#"{{"context": {{"x": {x}}}}}"#).as_bytes())
    };
    let r = api.call(evaluate("9007199254740990.0")).await;
    assert_eq!(r.body["matched"], json!([]), "{}", r.text);
    let r = api.call(evaluate("9007199254740991.0")).await;
    assert_eq!(r.body["matched"][0]["id"], "limit", "{}", r.text);
}

/// Regression (entry-point keys alias): `\u{212A}ey` (the Kelvin sign) was lower-cased into
/// `key` and silently read and wrote that entry point.
#[tokio::test]
async fn entry_point_keys_never_alias_the_kelvin_sign_is_a_400() {
    let api = Api::start(|_| {}).await;
    let r = api
        .call(req(Method::POST, "/v1/evaluate/%E2%84%AAey").json(json!({"context": {}})))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_entry_point"),
        "{}",
        r.text
    );
    let r = api
        .call(
            req(Method::POST, "/v1/rules")
                .token(ADMIN)
                .json(seed_rule("kelvin", "\u{212A}ey")),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
}

/// Scorecards likewise, over HTTP: a factor rule whose level is not LOW, MEDIUM or HIGH at run
/// time is listed in the answer's `errors` and left out while the other factors score;
/// `"on_error": "fail"` makes the same request a 422 naming the rule.
#[tokio::test]
async fn a_scorecard_factor_failing_at_run_time_is_reported_and_on_error_fail_is_a_422() {
    let api = Api::start(|_| {}).await;
    // RF-001's level comes from the input when the input names one, so a request can make it
    // fail at run time; otherwise it is LOW.
    let got = api.call(req(Method::GET, "/v1/rules/RF-001")).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    let mut rule = got.body.clone();
    rule["actions"][0]["level"] = json!({"if": [
        {"var": "input.forced_level"}, {"var": "input.forced_level"}, "LOW"
    ]});
    let r = api
        .call(
            req(Method::PUT, "/v1/rules/RF-001")
                .token(ADMIN)
                .header("if-match", &got.etag().unwrap())
                .json(rule),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let score = |input: Value, on_error: Option<&str>| {
        let mut body = json!({"input": input});
        if let Some(on_error) = on_error {
            body["on_error"] = json!(on_error);
        }
        req(Method::POST, "/v1/score/pad_trade").json(body)
    };
    let input = |forced: Option<&str>| {
        let mut input = json!({"instrument_type": "equity", "value": 75000, "holding_days": 10});
        if let Some(level) = forced {
            input["forced_level"] = json!(level);
        }
        input
    };
    let factors = |answer: &Value| -> Vec<String> {
        answer["factors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["factor"].as_str().unwrap().to_owned())
            .collect()
    };

    // Nothing fails: every factor scores, no errors.
    let healthy = api.call(score(input(None), None)).await;
    assert_eq!(healthy.status, StatusCode::OK, "{}", healthy.text);
    assert_eq!(healthy.body["errors"], json!([]), "{}", healthy.text);
    assert!(factors(&healthy.body).contains(&"instrument_type".to_owned()));

    // RF-001 fails: it is reported and left out; the other factors score as before.
    let r = api.call(score(input(Some("SEVERE")), None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let errors = r.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{}", r.text);
    assert_eq!(
        (&errors[0]["rule_id"], &errors[0]["code"]),
        (&json!("RF-001"), &json!("bad_level")),
        "{}",
        r.text
    );
    assert!(
        errors[0]["message"].as_str().unwrap().contains("SEVERE"),
        "{}",
        r.text
    );
    let others: Vec<String> = factors(&healthy.body)
        .into_iter()
        .filter(|f| f != "instrument_type")
        .collect();
    assert_eq!(factors(&r.body), others, "{}", r.text);
    // `"on_error": "continue"` is the default, said out loud.
    let r2 = api
        .call(score(input(Some("SEVERE")), Some("continue")))
        .await;
    assert_eq!(r2.body["errors"], r.body["errors"], "{}", r2.text);

    // All or nothing.
    let r = api.call(score(input(Some("SEVERE")), Some("fail"))).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "evaluation_failed"),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("RF-001") && r.text.contains("SEVERE"),
        "{}",
        r.text
    );
    // ... and only when something fails.
    let r = api.call(score(input(None), Some("fail"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(factors(&r.body), factors(&healthy.body), "{}", r.text);
}
