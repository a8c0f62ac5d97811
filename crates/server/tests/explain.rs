//! Answers that explain themselves, and drafts, through the router: `"explain": true` names how
//! every rule of an entry point (and every factor of a scorecard) was decided; `"drafts"` evaluates
//! rules that are not saved, checked like writes, without writing, caching or logging anything.
//! Each router test runs on SQLite and PostgreSQL; the CLI test drives the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::{banner, decision_ids, evaluate, req, Api, Running, TestDb, ADMIN};
use serde_json::{json, Value};

rulebook_testkit::on_both_backends!(
    explain_names_the_reason_for_every_rule_of_a_50_rule_entry_point,
    explain_is_the_same_answer_plus_the_reasons_in_a_batch_and_a_score,
    a_draft_changes_the_answer_without_changing_the_store_or_the_cache,
    drafts_are_evaluated_against_many_contexts_and_new_ids_join_the_entry_point,
    a_draft_that_does_not_validate_is_a_422_naming_its_index_and_field,
);

async fn create(api: &Api, rule: Value) {
    let r = api
        .call(req(Method::POST, "/v1/rules").token(ADMIN).json(rule))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The rule `id` of entry point `fifty` at `priority`, matching when `amount > threshold`.
fn amount_rule(id: &str, priority: i64, threshold: i64) -> Value {
    json!({
        "id": id,
        "entry_point": "fifty",
        "priority": priority,
        "condition": {">": [{"var": "amount"}, threshold]},
        "actions": [{"type": "set_value", "field": id, "value": {"var": "amount"}}]
    })
}

/// 50 rules, in priority order 0..50, each of a kind chosen by its index; the expected outcome of
/// each for `amount` 250 at 2026-06-01, with a stop_processing rule at index 40.
fn fifty_rules() -> (Vec<Value>, Vec<Value>) {
    let mut rules = Vec::new();
    let mut expected = Vec::new();
    for i in 0..50_i64 {
        let id = format!("r{i:02}");
        let mut rule = amount_rule(&id, i, 100);
        let outcome = if i >= 41 {
            // Whatever they are, the stopper comes first.
            if i % 2 == 0 {
                rule["enabled"] = json!(false);
            }
            json!({"outcome": "not_reached", "stopped_by": "r40"})
        } else if i == 40 {
            rule["stop_processing"] = json!(true);
            json!({"outcome": "matched"})
        } else {
            match i % 5 {
                0 => json!({"outcome": "matched"}),
                1 => {
                    rule["condition"] = json!({">": [{"var": "amount"}, 1000 + i]});
                    json!({"outcome": "condition_false", "operator": ">", "operands": [250, 1000 + i]})
                }
                2 => {
                    rule["enabled"] = json!(false);
                    json!({"outcome": "disabled"})
                }
                3 => {
                    rule["active_from"] = json!("2026-12-01T00:00:00Z");
                    rule["active_until"] = json!("2027-01-01T00:00:00Z");
                    json!({"outcome": "outside_window", "active_from": "2026-12-01T00:00:00Z", "active_until": "2027-01-01T00:00:00Z"})
                }
                _ => {
                    // 100 scans of the 20,000-element `xs`: over the 1,000,000 budget.
                    let scans: Vec<Value> = (0..100)
                        .map(|_| json!({"!": {"in": [-1, {"var": "xs"}]}}))
                        .collect();
                    rule["condition"] = json!({"and": scans});
                    json!({"outcome": "condition_error", "code": "out_of_budget"})
                }
            }
        };
        rules.push(rule);
        expected.push(outcome);
    }
    (rules, expected)
}

async fn explain_names_the_reason_for_every_rule_of_a_50_rule_entry_point(db: &TestDb) {
    let api = Api::start_on(db.shared(), |_| {}).await;
    let (rules, expected) = fifty_rules();
    let r = api
        .call(
            req(Method::POST, "/v1/rules/import")
                .token(ADMIN)
                .json(json!({ "rules": rules })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let xs: Vec<u32> = (0..20_000).collect();
    let context = json!({"amount": 250, "xs": xs});
    let at = "2026-06-01T00:00:00Z";
    let plain = evaluate(&api, "fifty", json!({"context": context, "at": at})).await;
    assert!(plain.get("explain").is_none(), "explain only when asked");
    let answer = evaluate(
        &api,
        "fifty",
        json!({"context": context, "at": at, "explain": true}),
    )
    .await;

    let explain = answer["explain"].as_array().unwrap();
    assert_eq!(explain.len(), 50, "one entry per rule: {answer}");
    for (i, (row, want)) in explain.iter().zip(&expected).enumerate() {
        assert_eq!(row["id"], format!("r{i:02}"), "evaluation order");
        assert_eq!(row["version"], 1, "{row}");
        assert_eq!(row["priority"], i, "{row}");
        for (field, value) in want.as_object().unwrap() {
            assert_eq!(&row[field], value, "rule {i}, `{field}`: {row}");
        }
        if want["outcome"] == "condition_error" {
            let reason = row["reason"].as_str().unwrap();
            assert!(reason.contains("budget"), "{reason}");
        }
    }
    // The explanation agrees with the rest of the answer, which is the answer without explain.
    let matched: Vec<String> = explain
        .iter()
        .filter(|r| r["outcome"] == "matched")
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids(&answer["matched"]), matched);
    assert_eq!(answer["stopped_by"], "r40");
    let failed: Vec<&str> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rule_id"].as_str().unwrap())
        .collect();
    let erroring: Vec<&str> = explain
        .iter()
        .filter(|r| r["outcome"] == "condition_error")
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(failed, erroring);
    for field in [
        "entry_point",
        "at",
        "matched",
        "actions",
        "stopped_by",
        "errors",
    ] {
        assert_eq!(
            answer[field], plain[field],
            "`{field}` is the same with explain"
        );
    }
}

async fn explain_is_the_same_answer_plus_the_reasons_in_a_batch_and_a_score(db: &TestDb) {
    let api = Api::start_on(db.shared(), |_| {}).await;
    create(&api, amount_rule("big", 1, 1000)).await;
    create(&api, amount_rule("small", 2, 10)).await;
    let r = api
        .call(req(Method::POST, "/v1/evaluate").json(json!({
            "entry_points": ["fifty", "checkout_terms"],
            "context": {"amount": 250},
            "explain": true
        })))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let first = &r.body["results"][0];
    assert_eq!(
        first["explain"],
        json!([
            {"id": "big", "version": 1, "priority": 1, "outcome": "condition_false", "operator": ">", "operands": [250, 1000]},
            {"id": "small", "version": 1, "priority": 2, "outcome": "matched"}
        ])
    );
    assert!(r.body["results"][1]["explain"].is_array(), "{}", r.text);

    // A scorecard explains each factor: a matched factor has its level in `factors`.
    let input = json!({"instrument_type": "equity", "value": 75000, "holding_days": 10});
    let plain = api
        .call(req(Method::POST, "/v1/score/pad_trade").json(json!({ "input": input })))
        .await;
    let r = api
        .call(
            req(Method::POST, "/v1/score/pad_trade")
                .json(json!({ "input": input, "explain": true })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for field in ["factors", "overall", "route", "errors"] {
        assert_eq!(r.body[field], plain.body[field], "`{field}`");
    }
    let explain = r.body["explain"].as_array().unwrap();
    let factors = r.body["factors"].as_array().unwrap();
    assert_eq!(explain.len(), factors.len(), "{}", r.text);
    for (row, factor) in explain.iter().zip(factors) {
        assert_eq!(row["factor"], factor["factor"]);
        assert_eq!(row["rule_id"], factor["rule_id"]);
        match row["outcome"].as_str().unwrap() {
            "matched" => {}
            "condition_false" => {
                assert_eq!(factor["level"], "LOW", "{row}");
                assert!(row["operands"].is_array(), "{row}");
            }
            other => panic!("unexpected outcome `{other}`: {row}"),
        }
    }
}

/// Everything a draft must leave alone: the stored rule, its history, the cache.
async fn footprint(api: &Api, id: &str) -> (Value, usize, Value) {
    let rule = api.call(req(Method::GET, &format!("/v1/rules/{id}"))).await;
    let history = api
        .call(req(Method::GET, &format!("/v1/rules/{id}/history")))
        .await;
    let stats = api.call(req(Method::GET, "/v1/cache/stats")).await;
    let cache = json!({
        "entries": stats.body["entries"],
        "loads": stats.body["counters"]["loads"],
        "misses": stats.body["counters"]["misses"],
        "per_item": stats.body["loads"],
    });
    let mut rule = rule.body;
    rule.as_object_mut().unwrap().remove("seq");
    (
        rule,
        history.body["history"].as_array().unwrap().len(),
        cache,
    )
}

async fn a_draft_changes_the_answer_without_changing_the_store_or_the_cache(db: &TestDb) {
    let api = Api::start_on(db.shared(), |c| c.decision_log = true).await;
    create(&api, amount_rule("big", 1, 1000)).await;
    create(&api, amount_rule("small", 2, 10)).await;
    let context = json!({"amount": 250});
    let saved = evaluate(&api, "fifty", json!({ "context": context })).await;
    assert_eq!(ids(&saved["matched"]), ["small"]);
    let before = footprint(&api, "big").await;
    let loads = api.state.registry().ruleset_loads(
        "default",
        &rulebook_rules::EntryPoint::parse("fifty").unwrap(),
    );

    // `big` lowered to 100: the draft matches in its place, with version 0; `small` still runs.
    let mut draft = api.call(req(Method::GET, "/v1/rules/big")).await.body;
    draft["condition"] = json!({">": [{"var": "amount"}, 100]});
    let answer = evaluate(
        &api,
        "fifty",
        json!({"context": context, "drafts": [draft], "explain": true}),
    )
    .await;
    assert_eq!(ids(&answer["matched"]), ["big", "small"], "{answer}");
    assert_eq!(answer["matched"][0]["version"], 0, "a draft is not saved");
    assert_eq!(answer["matched"][1]["version"], 1);
    assert_eq!(answer["drafts"], json!(["big"]));
    assert!(
        answer.get("decision_id").is_none(),
        "not a decision: {answer}"
    );
    assert_eq!(answer["explain"][0]["outcome"], "matched");

    // Nothing written, nothing cached: the rule, its history and the cache are as they were.
    assert_eq!(footprint(&api, "big").await, before);
    assert_eq!(
        api.state.registry().ruleset_loads(
            "default",
            &rulebook_rules::EntryPoint::parse("fifty").unwrap()
        ),
        loads
    );
    let again = evaluate(&api, "fifty", json!({ "context": context })).await;
    assert_eq!(again["matched"], saved["matched"]);
    assert_eq!(again["actions"], saved["actions"]);
    // Nothing logged: only the two saved evaluations are decisions.
    if let Some(log) = api.state.decision_log() {
        log.flush().await;
    }
    let r = api
        .call(req(Method::GET, "/v1/decisions?entry_point=fifty"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let logged = decision_ids(&r.body);
    assert_eq!(
        logged,
        [
            saved["decision_id"].as_str().unwrap(),
            again["decision_id"].as_str().unwrap()
        ]
    );
}

async fn drafts_are_evaluated_against_many_contexts_and_new_ids_join_the_entry_point(db: &TestDb) {
    let api = Api::start_on(db.shared(), |_| {}).await;
    create(&api, amount_rule("big", 1, 1000)).await;
    create(&api, amount_rule("small", 2, 10)).await;
    // A new id joins; a saved rule sent with `enabled: false` shows the entry point without it.
    let mut off = amount_rule("small", 2, 10);
    off["enabled"] = json!(false);
    let r = api
        .call(req(Method::POST, "/v1/evaluate/fifty").json(json!({
            "contexts": [{"amount": 5}, {"amount": 50}, {"amount": 5000}],
            "drafts": [amount_rule("medium", 3, 40), off],
        })))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let results = r.body["results"].as_array().unwrap();
    let matched: Vec<Vec<String>> = results.iter().map(|a| ids(&a["matched"])).collect();
    assert_eq!(
        matched,
        [
            vec![],
            vec!["medium".to_owned()],
            vec!["big".to_owned(), "medium".to_owned()]
        ]
    );
    for answer in results {
        assert_eq!(answer["drafts"], json!(["medium", "small"]));
        assert_eq!(answer["seq"], r.body["seq"]);
    }
    // Many contexts without drafts: one decision each.
    let r = api
        .call(req(Method::POST, "/v1/evaluate/fifty").json(json!({
            "contexts": [{"amount": 50}, {"amount": 5000}],
        })))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(ids(&results[0]["matched"]), ["small"]);
    assert_eq!(ids(&results[1]["matched"]), ["big", "small"]);
    assert_ne!(results[0]["decision_id"], results[1]["decision_id"]);
    // `context` and `contexts` together, or none in `contexts`, are refused.
    for body in [
        json!({"context": {}, "contexts": [{}]}),
        json!({"contexts": []}),
        json!({"contexts": [1]}),
        json!({"context": null}),
    ] {
        let r = api
            .call(req(Method::POST, "/v1/evaluate/fifty").json(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
    }
}

async fn a_draft_that_does_not_validate_is_a_422_naming_its_index_and_field(db: &TestDb) {
    let api = Api::start_on(db.shared(), |_| {}).await;
    create(&api, amount_rule("big", 1, 1000)).await;
    let history = api.call(req(Method::GET, "/v1/rules/big/history")).await;
    let good = amount_rule("fine", 5, 1);
    let mut bad_priority = amount_rule("big", 1, 1000);
    bad_priority["priority"] = json!("high");
    let mut bad_operator = amount_rule("other", 1, 1000);
    bad_operator["condition"] = json!({"frobnicate": 1});
    let elsewhere = banner("away", "somewhere_else", "hi");
    let r = api
        .call(req(Method::POST, "/v1/evaluate/fifty").json(json!({
            "context": {"amount": 5},
            "drafts": [good, bad_priority, bad_operator, elsewhere, amount_rule("fine", 6, 1)],
        })))
        .await;
    let (errors, paths) = r.validation_errors();
    assert!(r.message().contains("4 of 5 drafts"), "{}", r.message());
    assert_eq!(
        paths,
        [
            "drafts[1].priority",
            "drafts[2].condition",
            "drafts[3].entry_point",
            "drafts[4].id"
        ],
        "{}",
        r.text
    );
    // The same message a write gives for the same rule.
    let mut written = amount_rule("big", 1, 1000);
    written["priority"] = json!("high");
    let w = api
        .call(
            req(Method::PUT, "/v1/rules/big")
                .token(ADMIN)
                .header("if-match", "1")
                .json(written),
        )
        .await;
    assert_eq!(w.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", w.text);
    let write_message = w.body["error"]["errors"][0]["message"].as_str().unwrap();
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .ends_with(write_message),
        "{} vs {write_message}",
        errors[0]["message"]
    );
    assert!(
        errors[2]["message"]
            .as_str()
            .unwrap()
            .contains("`somewhere_else`"),
        "{}",
        errors[2]
    );
    // Nothing was written.
    let after = api.call(req(Method::GET, "/v1/rules/big/history")).await;
    assert_eq!(after.body["history"], history.body["history"]);
    assert_eq!(
        api.call(req(Method::GET, "/v1/rules/fine")).await.status,
        StatusCode::NOT_FOUND
    );
}

/// `rulebook evaluate --explain` prints a table with a row per rule; `rulebook rules test` prints
/// the answer with the drafts, changes nothing, and maps a bad draft back to its file.
#[tokio::test]
async fn the_cli_explains_and_tests_drafts() {
    let db = TestDb::sqlite();
    let server = Running::start(&db.url, &[]);
    server.ready().await;
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| server.cli(args);
    let rules = dir.path().join("rules.json");
    let mut stopper = amount_rule("small", 2, 10);
    stopper["stop_processing"] = json!(true);
    std::fs::write(
        &rules,
        json!([
            amount_rule("big", 1, 1000),
            stopper,
            amount_rule("late", 3, 0)
        ])
        .to_string(),
    )
    .unwrap();
    let (code, _, err) = cli(&["rules", "import", rules.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = cli(&[
        "evaluate",
        "fifty",
        "--context",
        "{\"amount\": 250}",
        "--explain",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let header = lines.iter().position(|l| l.starts_with("RULE")).unwrap();
    let table = &lines[header..];
    assert!(
        table[0].contains("OUTCOME") && table[0].contains("DETAIL"),
        "{out}"
    );
    assert_eq!(table.len(), 4, "a header and a row per rule: {out}");
    assert!(
        table[1].starts_with("big v1")
            && table[1].contains("condition false")
            && table[1].contains("250 > 1000 is false"),
        "{out}"
    );
    assert!(
        table[2].starts_with("small v1") && table[2].contains("matched"),
        "{out}"
    );
    assert!(
        table[3].starts_with("late v1")
            && table[3].contains("not reached")
            && table[3].contains("`small`"),
        "{out}"
    );
    // The columns line up.
    let column = table[0].find("OUTCOME").unwrap();
    assert!(table[1..].iter().all(|row| row[column - 2..column].trim().is_empty() && !row[column..].starts_with(' ')), "{out}");

    // A draft of `big` at 100 matches; nothing is saved.
    let draft = dir.path().join("draft.yaml");
    std::fs::write(
        &draft,
        "id: big\nentry_point: fifty\npriority: 1\ncondition: {\">\": [{var: amount}, 100]}\n",
    )
    .unwrap();
    let context_file = dir.path().join("context.json");
    std::fs::write(&context_file, "{\"amount\": 250}").unwrap();
    let at_file = format!("@{}", context_file.display());
    let (code, out, err) = cli(&[
        "rules",
        "test",
        draft.to_str().unwrap(),
        "--context",
        &at_file,
        "--explain",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("drafts (not saved): big"), "{out}");
    assert!(
        out.contains("2 rules matched") && out.contains("big (draft)"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("big (draft)") && l.contains("matched")),
        "{out}"
    );
    let (code, out, _) = cli(&["rules", "get", "big"]);
    assert_eq!(code, 0);
    let saved: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (saved["version"].as_i64(), &saved["condition"]),
        (Some(1), &json!({">": [{"var": "amount"}, 1000]}))
    );
    // Several contexts, as JSON for scripts.
    let (code, out, err) = cli(&[
        "rules",
        "test",
        draft.to_str().unwrap(),
        "--context",
        "{\"amount\": 5}",
        "--context",
        "{\"amount\": 500}",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ids(&answer["results"][0]["matched"]), ["late"]);
    assert_eq!(ids(&answer["results"][1]["matched"]), ["big", "small"]);

    // A draft the server refuses names its index, field and file; exit 1.
    std::fs::write(
        &draft,
        "id: big\nentry_point: fifty\ncondition: {frobnicate: 1}\n",
    )
    .unwrap();
    let (code, _, err) = cli(&["rules", "test", draft.to_str().unwrap(), "--context", "{}"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("draft.yaml"), "{err}");
}
