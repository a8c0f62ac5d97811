//! Answers that explain themselves and can be replayed, through the router: decision ids and
//! versions on every answer, a rule's versions read, diffed and rolled back, evaluation as of a
//! past time, the decision log, and batch evaluation. Each test runs on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{banner, decision_ids, evaluate, matched, req, Api, TestDb, ADMIN};
use serde_json::{json, Value};

rulebook_testkit::on_both_backends!(
    every_answer_carries_a_time_ordered_decision_id_and_the_matched_versions,
    a_version_is_read_diffed_and_rolled_back_with_if_match,
    a_rollback_invalidates_a_second_instance,
    as_of_replays_of_logged_decisions_equal_what_was_logged,
    the_decision_log_is_listed_and_survives_a_restart,
    a_batch_answers_each_entry_point_with_its_own_outcome,
);

fn uuid_v7(value: &Value) -> uuid::Uuid {
    let id = uuid::Uuid::parse_str(value.as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7, "{id}");
    id
}

async fn create(api: &Api, rule: Value) {
    let r = api
        .call(req(Method::POST, "/v1/rules").token(ADMIN).json(rule))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

async fn update(api: &Api, id: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let got = api.call(req(Method::GET, &format!("/v1/rules/{id}"))).await;
    let mut rule = got.body.clone();
    edit(&mut rule);
    let r = api
        .call(
            req(Method::PUT, &format!("/v1/rules/{id}"))
                .token(ADMIN)
                .header("if-match", &got.etag().unwrap())
                .json(rule),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

async fn every_answer_carries_a_time_ordered_decision_id_and_the_matched_versions(db: &TestDb) {
    let api = Api::start_on(db.shared(), |_| {}).await;
    let context = json!({"context": {"country": "FR", "total": 120}});
    let first = evaluate(&api, "checkout_terms", context.clone()).await;
    let second = evaluate(&api, "checkout_terms", context).await;
    let (a, b) = (
        uuid_v7(&first["decision_id"]),
        uuid_v7(&second["decision_id"]),
    );
    assert!(a < b, "ids sort by time: {a} then {b}");
    assert!(matched(&first).contains(&("checkout_terms_banner".to_owned(), 1)));
    assert!(first.get("as_of").is_none(), "as_of only when asked");
    assert!(first["seq"].is_i64(), "{first}");

    let r = api
        .call(req(Method::POST, "/v1/score/pad_trade").json(json!({
            "input": {"instrument_type": "equity", "value": 75000, "holding_days": 10}
        })))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let c = uuid_v7(&r.body["decision_id"]);
    assert!(b < c);
    assert!(
        r.body["factors"][0]["version"].as_i64().unwrap() >= 1,
        "{}",
        r.text
    );
    assert!(r.body["overall"].is_string(), "{}", r.text);
}

async fn a_version_is_read_diffed_and_rolled_back_with_if_match(db: &TestDb) {
    // A machine busy with other suites may take more than the default second to apply a write.
    let api = Api::start_on(db.shared(), |c| c.min_seq_wait = Duration::from_secs(10)).await;
    create(&api, banner("H-1", "promo", "first")).await;
    update(&api, "H-1", |r| {
        r["actions"][0]["message"] = json!("second");
        r["priority"] = json!(9);
    })
    .await;
    let fr = json!({"context": {"country": "FR"}});
    assert_eq!(
        evaluate(&api, "promo", fr.clone()).await["actions"][0]["message"],
        "second"
    );

    let r = api.call(req(Method::GET, "/v1/rules/H-1/history/1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (r.body["version"].as_i64(), r.body["kind"].as_str()),
        (Some(1), Some("create"))
    );
    assert_eq!(r.body["rule"]["actions"][0]["message"], "first");
    let r = api.call(req(Method::GET, "/v1/rules/H-1/history/7")).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "version_not_found")
    );
    assert!(r.message().contains("1 to 2"), "{}", r.message());
    let r = api.call(req(Method::GET, "/v1/rules/nope/history/1")).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "rule_not_found")
    );

    let r = api
        .call(req(Method::GET, "/v1/rules/H-1/diff?from=1&to=2"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let patch = r.body["patch"].as_array().unwrap();
    assert!(
        patch.contains(&json!({"op": "replace", "path": "/actions/0/message", "value": "second"})),
        "{}",
        r.text
    );
    assert!(
        r.body["changes"].as_array().unwrap().contains(&json!({
            "field": "priority", "change": "changed", "before": 5, "after": 9
        })),
        "{}",
        r.text
    );
    let r = api
        .call(req(Method::GET, "/v1/rules/H-1/diff?from=1"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);

    let rollback = |if_match: &str, body: Value| {
        req(Method::POST, "/v1/rules/H-1/rollback")
            .token(ADMIN)
            .header("if-match", if_match)
            .json(body)
    };
    let before = api.snapshot("default").await;
    let r = api.call(rollback("\"1\"", json!({"version": 1}))).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "version_conflict"),
        "{}",
        r.text
    );
    let r = api
        .call(rollback("\"2\"", json!({"version": 1, "extra": 1})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = api
        .call(req(Method::POST, "/v1/rules/H-1/rollback").json(json!({"version": 1})))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(
        api.snapshot("default").await,
        before,
        "refusals write nothing"
    );

    let r = api
        .call(rollback(
            "\"2\"",
            json!({"version": 1, "reason": "wrong wording"}),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.etag().as_deref(), Some("\"3\""));
    // The rollback's own `seq`: a read that asks for it sees the rollback.
    let seq = r.body["seq"].as_i64().unwrap();
    let r = api
        .call(req(
            Method::GET,
            &format!("/v1/rules/H-1/diff?from=2&to=3&min_seq={seq}"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["seq"].as_i64().unwrap() >= seq, "{}", r.text);
    assert!(
        !r.body["changes"].as_array().unwrap().is_empty(),
        "{}",
        r.text
    );
    let answer = evaluate(&api, "promo", fr.clone()).await;
    assert_eq!(answer["actions"][0]["message"], "first");
    assert_eq!(matched(&answer), [("H-1".to_owned(), 3)]);
    let r = api.call(req(Method::GET, "/v1/rules/H-1/history")).await;
    let last = r.body["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (
            &last["kind"],
            &last["restored_from"],
            &last["reason"],
            &last["changed_by"]
        ),
        (
            &json!("rollback"),
            &json!(1),
            &json!("wrong wording"),
            &json!("admin")
        )
    );

    // Deleted, then restored from its history the same way.
    let r = api
        .call(req(Method::DELETE, "/v1/rules/H-1").token(ADMIN))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(matched(&evaluate(&api, "promo", fr.clone()).await).is_empty());
    let r = api.call(rollback("*", json!({"version": 4}))).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{}",
        r.text
    );
    let r = api.call(rollback("\"4\"", json!({"version": 2}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.etag().as_deref(), Some("\"5\""));
    let answer = evaluate(&api, "promo", fr).await;
    assert_eq!(answer["actions"][0]["message"], "second");
    assert_eq!(matched(&answer), [("H-1".to_owned(), 5)]);
}

/// Waits until `check` holds for instance `api`'s answer, or fails after ten seconds.
async fn eventually(api: &Api, entry_point: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = evaluate(api, entry_point, json!({"context": {"country": "FR"}})).await;
        if check(&answer) {
            return answer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "instance never saw the change: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_rollback_invalidates_a_second_instance(db: &TestDb) {
    let a = Api::start_on(db.shared(), |_| {}).await;
    let b = Api::start_on(db.shared(), |_| {}).await;
    create(&a, banner("M-1", "promo", "first")).await;
    update(&a, "M-1", |r| r["actions"][0]["message"] = json!("second")).await;
    // B has version 2 cached.
    eventually(&b, "promo", |x| matched(x) == [("M-1".to_owned(), 2)]).await;
    let loads = b
        .state
        .registry()
        .ruleset_loads("default", &"promo".parse().unwrap());
    let r = a
        .call(
            req(Method::POST, "/v1/rules/M-1/rollback")
                .token(ADMIN)
                .json(json!({"version": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let seen = eventually(&b, "promo", |x| matched(x) == [("M-1".to_owned(), 3)]).await;
    assert_eq!(seen["actions"][0]["message"], "first");
    assert!(
        b.state
            .registry()
            .ruleset_loads("default", &"promo".parse().unwrap())
            > loads,
        "B reloaded because its entry was invalidated"
    );
}

/// A rule through five versions, a decision logged after each; every logged decision replayed
/// `as_of` its time answers exactly what was logged, with the versions that were logged.
async fn as_of_replays_of_logged_decisions_equal_what_was_logged(db: &TestDb) {
    let api = Api::start_on(db.shared(), |c| c.decision_log = true).await;
    let fr = json!({"context": {"country": "FR"}});
    let mut ids = Vec::new();
    create(&api, banner("A-1", "replay", "v1")).await;
    ids.push(evaluate(&api, "replay", fr.clone()).await["decision_id"].clone());
    update(&api, "A-1", |r| r["actions"][0]["message"] = json!("v2")).await;
    ids.push(evaluate(&api, "replay", fr.clone()).await["decision_id"].clone());
    create(&api, banner("A-2", "replay", "second rule")).await;
    ids.push(evaluate(&api, "replay", fr.clone()).await["decision_id"].clone());
    let r = api
        .call(req(Method::POST, "/v1/rules/A-1/disable").token(ADMIN))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    ids.push(evaluate(&api, "replay", fr.clone()).await["decision_id"].clone());
    let r = api
        .call(req(Method::DELETE, "/v1/rules/A-2").token(ADMIN))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = api
        .call(
            req(Method::POST, "/v1/rules/A-1/rollback")
                .token(ADMIN)
                .json(json!({"version": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    ids.push(evaluate(&api, "replay", fr.clone()).await["decision_id"].clone());
    api.state.decision_log().unwrap().flush().await;

    let mut answers = Vec::new();
    for id in &ids {
        let r = api
            .call(req(
                Method::GET,
                &format!("/v1/decisions/{}", id.as_str().unwrap()),
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let logged = r.body;
        assert_eq!(logged["decision_id"], *id);
        assert_eq!(logged["context"], fr["context"]);
        let replay = evaluate(
            &api,
            "replay",
            json!({
                "context": logged["context"],
                "as_of": logged["decided_at"],
                "at": logged["answer"]["at"],
            }),
        )
        .await;
        for field in ["entry_point", "at", "matched", "actions", "stopped_by"] {
            assert_eq!(
                replay.get(field),
                logged["answer"].get(field),
                "{field} of {id}"
            );
        }
        assert_eq!(replay["as_of"]["versions"], logged["versions"], "{id}");
        answers.push(matched(&logged["answer"]));
    }
    // The five decisions saw five different states of the rules.
    assert_eq!(
        answers,
        [
            vec![("A-1".to_owned(), 1)],
            vec![("A-1".to_owned(), 2)],
            vec![("A-1".to_owned(), 2), ("A-2".to_owned(), 1)],
            vec![("A-2".to_owned(), 1)],
            vec![("A-1".to_owned(), 4)],
        ]
    );
}

async fn the_decision_log_is_listed_and_survives_a_restart(db: &TestDb) {
    let api = Api::start_on(db.shared(), |c| {
        c.decision_log = true;
        c.decision_log_context = rulebook::config::LogContext::Sha256;
    })
    .await;
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    let mut ids = Vec::new();
    for total in [10, 20, 30] {
        let answer = evaluate(
            &api,
            "checkout_terms",
            json!({"context": {"country": "FR", "total": total}}),
        )
        .await;
        ids.push(answer["decision_id"].as_str().unwrap().to_owned());
    }
    evaluate(&api, "promo", json!({})).await;
    let r = api.call(req(Method::GET, "/v1/decisions?limit=0")).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "bad_limit"));
    // A graceful stop writes what is queued.
    let db = api.stop().await;

    let api = Api::start_on(db.shared(), |_| {}).await;
    let r = api
        .call(req(
            Method::GET,
            &format!(
                "/v1/decisions?entry_point=Checkout%20Terms&since={}&limit=10",
                since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            ),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let listed = decision_ids(&r.body);
    assert_eq!(listed, ids);
    let first = &r.body["decisions"][0];
    assert!(
        first.get("context").is_none(),
        "only the hash is kept: {first}"
    );
    assert_eq!(first["context_sha256"].as_str().unwrap().len(), 64);
    assert_ne!(
        first["context_sha256"],
        r.body["decisions"][1]["context_sha256"]
    );
    assert_eq!(first["answer"]["decision_id"], ids[0].as_str());
    assert!(
        first["versions"]["checkout_terms_banner"].is_i64(),
        "{first}"
    );
    let r = api
        .call(req(
            Method::GET,
            "/v1/decisions/0190ffff-0000-7000-8000-000000000000",
        ))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "decision_not_found")
    );
    // Logging is off now: nothing new is logged.
    let off = evaluate(&api, "checkout_terms", json!({})).await;
    let r = api
        .call(req(
            Method::GET,
            &format!("/v1/decisions/{}", off["decision_id"].as_str().unwrap()),
        ))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

async fn a_batch_answers_each_entry_point_with_its_own_outcome(db: &TestDb) {
    let api = Api::start_on(db.shared(), |_| {}).await;
    create(&api, banner("B-1", "promo", "hello")).await;
    let r = api
        .call(req(Method::POST, "/v1/evaluate").json(json!({
            "entry_points": ["Checkout Terms", "promo", "bad name!", "nothing_here"],
            "context": {"country": "FR", "total": 120}
        })))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["entry_point"], "checkout_terms");
    assert!(matched(&results[0]).contains(&("checkout_terms_banner".to_owned(), 1)));
    assert_eq!(matched(&results[1]), [("B-1".to_owned(), 1)]);
    assert_eq!(results[1]["actions"][0]["message"], "hello");
    assert_eq!(results[2]["entry_point"], "bad name!");
    assert_eq!(results[2]["error"]["code"], "bad_entry_point");
    assert_eq!(results[2]["error"]["status"], 400);
    assert!(matched(&results[3]).is_empty());
    let ids: std::collections::BTreeSet<uuid::Uuid> = [0, 1, 3]
        .iter()
        .map(|&i| uuid_v7(&results[i]["decision_id"]))
        .collect();
    assert_eq!(ids.len(), 3, "each result is its own decision");
    // The same answer as one evaluation, but for the decision id (and the position, which the
    // feed may have moved in between).
    let mut single = evaluate(
        &api,
        "promo",
        json!({"context": {"country": "FR", "total": 120}}),
    )
    .await;
    let mut batched = results[1].clone();
    single["decision_id"] = Value::Null;
    batched["decision_id"] = Value::Null;
    batched["at"] = single["at"].clone();
    batched["seq"] = single["seq"].clone();
    assert_eq!(single, batched);

    for (body, code) in [
        (json!({"entry_points": []}), "bad_entry_points"),
        (
            json!({"entry_points": vec!["promo"; 101]}),
            "bad_entry_points",
        ),
        (
            json!({"entry_points": ["promo"], "context": [1]}),
            "invalid_body",
        ),
    ] {
        let r = api.call(req(Method::POST, "/v1/evaluate").json(body)).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, code),
            "{}",
            r.text
        );
    }
    // As of a time before the rule existed, the batch answers without it.
    let r = api
        .call(req(Method::POST, "/v1/evaluate").json(json!({
            "entry_points": ["promo"],
            "context": {"country": "FR"},
            "as_of": "2020-01-01T00:00:00Z"
        })))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(matched(&r.body["results"][0]).is_empty(), "{}", r.text);
    assert_eq!(r.body["results"][0]["as_of"]["versions"], json!({}));
}

/// `rulebook rules diff` and `rulebook rules rollback` against the real binary.
#[tokio::test]
async fn the_cli_diffs_and_rolls_back() {
    let db = TestDb::sqlite();
    let server = common::Running::start(&db.url, &[]);
    server.ready().await;
    let cli = |args: &[&str]| server.cli(args);
    let (code, out, err) = cli(&[
        "rules",
        "disable",
        "checkout_terms_banner",
        "--reason",
        "pause",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(&["rules", "diff", "checkout_terms_banner", "1", "2"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("changed  enabled: true -> false"), "{out}");
    let (code, _, err) = cli(&["rules", "diff", "checkout_terms_banner", "1", "9"]);
    assert_eq!(code, 3, "not found: {err}");
    assert!(err.contains("version_not_found"), "{err}");

    let rollback = |if_match: &str| {
        cli(&[
            "rules",
            "rollback",
            "checkout_terms_banner",
            "--to",
            "1",
            "--reason",
            "paused by mistake",
            "--if-match",
            if_match,
        ])
    };
    let (code, _, err) = rollback("1");
    assert_eq!(code, 4, "a stale version is a conflict: {err}");
    let (code, out, err) = rollback("2");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("now at version 3"), "{out}");
    let (code, out, _) = cli(&["rules", "history", "checkout_terms_banner"]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.contains("rollback") && l.contains("paused by mistake")),
        "{out}"
    );
    let (code, out, _) = cli(&["rules", "diff", "checkout_terms_banner", "1", "3", "--json"]);
    assert_eq!(code, 0);
    let diff: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(diff["patch"], json!([]), "{out}");
}
