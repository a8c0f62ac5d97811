//! The rules of the Django team of seed 001, as they wrote them: a `manage.py dumpdata` file
//! imported through the API (on SQLite and PostgreSQL) and through the CLI against a running
//! server, then evaluated and exported with their actions unchanged; a dump with bad entries
//! reported all at once with nothing written; and their `display_message` action round-tripped
//! through the CLI's create, get, evaluate, export and import.
//!
//! The dumps are `tests/data/django/rules_engine.json` (five rules shaped like the seed's) and
//! `rules_engine_bad.json` (one good entry and five bad ones). Expectations are computed from
//! the dump itself through the documented mapping, not written out again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use axum::http::{Method, StatusCode};
use common::{req, Api, Running, TestDb, ADMIN};
use rulebook_rules::EntryPoint;
use serde_json::{json, Value};

rulebook_testkit::on_both_backends!(
    a_django_dump_imports_evaluates_and_exports_as_written,
    a_dump_with_bad_entries_reports_every_one_and_writes_nothing,
);

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/django")
        .join(name)
}

fn dump(name: &str) -> Vec<Value> {
    serde_json::from_slice(&std::fs::read(data(name)).unwrap()).unwrap()
}

/// JSON text, to compare field order too.
fn text(value: &Value) -> String {
    serde_json::to_string(value).unwrap()
}

/// The condition an entry's condition becomes: `{"always": b}` is `b`.
fn condition_of(fields: &Value) -> Value {
    match fields["condition"].get("always") {
        Some(always) => always.clone(),
        None => fields["condition"].clone(),
    }
}

/// The dump's entries that are enabled and always true, on `entry_point`, by priority: the ones an
/// evaluation with an empty context matches.
fn always_matching(entries: &[Value], entry_point: &str) -> Vec<String> {
    let mut hits: Vec<(i64, String)> = entries
        .iter()
        .map(|e| &e["fields"])
        .filter(|f| f["active"] == true && condition_of(f) == true)
        .filter(|f| normalised(&f["entry_point"]) == entry_point)
        .map(|f| {
            (
                f["priority"].as_i64().unwrap(),
                f["rule_code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    hits.sort();
    hits.into_iter().map(|(_, id)| id).collect()
}

fn normalised(entry_point: &Value) -> String {
    EntryPoint::parse(entry_point.as_str().unwrap())
        .unwrap()
        .as_str()
        .to_owned()
}

/// The actions each of `ids` fired in `answer`, with their `rule_id`, as JSON text: what the dump
/// says they are, in order.
fn fired(answer: &Value, ids: &[String]) -> String {
    text(&Value::Array(
        answer["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| ids.iter().any(|id| a["rule_id"] == id.as_str()))
            .cloned()
            .collect(),
    ))
}

fn expected_actions(entries: &[Value], ids: &[String]) -> String {
    let mut actions = Vec::new();
    for id in ids {
        let entry = entries
            .iter()
            .find(|e| e["fields"]["rule_code"] == id.as_str())
            .unwrap();
        for action in entry["fields"]["actions"].as_array().unwrap() {
            let mut with_id = serde_json::Map::new();
            with_id.insert("rule_id".into(), json!(id));
            with_id.extend(action.as_object().unwrap().clone());
            actions.push(Value::Object(with_id));
        }
    }
    text(&Value::Array(actions))
}

/// Every entry of the dump against the exported rules: each field the seed writes comes back as
/// written (renamed by the mapping; the entry point normalised; `{"always": b}` as `b`), the
/// actions byte for byte.
fn assert_exported_as_written(entries: &[Value], exported: &[Value]) {
    for entry in entries {
        let fields = &entry["fields"];
        let id = fields["rule_code"].as_str().unwrap();
        let rule = exported
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("`{id}` was not exported"));
        assert_eq!(text(&rule["actions"]), text(&fields["actions"]), "{id}");
        assert_eq!(rule["condition"], condition_of(fields), "{id}");
        assert_eq!(rule["enabled"], fields["active"], "{id}");
        assert_eq!(
            rule["entry_point"],
            normalised(&fields["entry_point"]),
            "{id}"
        );
        for same in ["name", "description", "priority", "stop_processing"] {
            assert_eq!(rule[same], fields[same], "{id}: {same}");
        }
    }
}

async fn import(api: &Api, body: Value) -> common::Resp {
    api.call(
        req(Method::POST, "/v1/rules/import")
            .token(ADMIN)
            .json(body),
    )
    .await
}

/// The dump imports (after a dry run that writes nothing), evaluates, and exports as written; the
/// same dump again and the export imported back change nothing.
async fn a_django_dump_imports_evaluates_and_exports_as_written(db: &TestDb) {
    let api = Api::start_on(db.shared(), |_| {}).await;
    let entries = dump("rules_engine.json");
    let before = api.snapshot("default").await;
    let head = api.store().head_seq().await.unwrap();

    let r = import(
        &api,
        json!({"format": "django", "rules": entries, "dry_run": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (&r.body["dry_run"], &r.body["total"], &r.body["created"]),
        (&json!(true), &json!(entries.len()), &json!(entries.len())),
        "{}",
        r.text
    );
    assert_eq!(
        api.snapshot("default").await,
        before,
        "a dry run writes nothing"
    );
    assert_eq!(api.store().head_seq().await.unwrap(), head);

    let r = import(
        &api,
        json!({"format": "django", "rules": entries, "reason": "from django"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["created"], json!(entries.len()), "{}", r.text);
    assert_eq!(r.body["skipped"], 0, "{}", r.text);

    // Evaluate: the always-true, active rules of the home page fire their actions as written,
    // by priority; the inactive one and the always-false one do not.
    let home = always_matching(&entries, "home_page_mount");
    assert!(home.len() >= 2, "the dump has rules to match: {home:?}");
    let r = api
        .call(req(Method::POST, "/v1/evaluate/home_page_mount").json(json!({"context": {}})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["errors"], json!([]), "{}", r.text);
    let all: Vec<String> = entries
        .iter()
        .map(|e| e["fields"]["rule_code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fired(&r.body, &all), expected_actions(&entries, &home));
    // A real condition: the checkout rule fires for GB only.
    let uk = vec!["checkout_terms_uk".to_owned()];
    let r = api
        .call(
            req(Method::POST, "/v1/evaluate/checkout_terms")
                .json(json!({"context": {"country": "GB"}})),
        )
        .await;
    assert_eq!(fired(&r.body, &uk), expected_actions(&entries, &uk));
    let r = api
        .call(
            req(Method::POST, "/v1/evaluate/checkout_terms")
                .json(json!({"context": {"country": "FR"}})),
        )
        .await;
    assert_eq!(fired(&r.body, &uk), "[]", "{}", r.text);

    // Export, compare with the dump, and import both back: nothing changes.
    let exported = api.call(req(Method::GET, "/v1/rules")).await.body["rules"]
        .as_array()
        .unwrap()
        .clone();
    assert_exported_as_written(&entries, &exported);
    let r = import(&api, json!({"format": "django", "rules": entries})).await;
    assert_eq!(r.body["unchanged"], json!(entries.len()), "{}", r.text);
    let r = import(&api, json!({"rules": exported})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (&r.body["created"], &r.body["updated"]),
        (&json!(0), &json!(0)),
        "{}",
        r.text
    );
}

/// Every bad entry is reported at once, at its path in the dump with a hint, in a dry run too,
/// and nothing is written; so are a mistaken mapping, a Django option without the Django format,
/// and a dump of several models without `model`.
async fn a_dump_with_bad_entries_reports_every_one_and_writes_nothing(db: &TestDb) {
    let api = Api::start_on(db.shared(), |_| {}).await;
    let bad = dump("rules_engine_bad.json");
    let before = api.snapshot("default").await;
    let head = api.store().head_seq().await.unwrap();

    for dry_run in [true, false] {
        let r = import(
            &api,
            json!({"format": "django", "rules": bad, "dry_run": dry_run}),
        )
        .await;
        let (errors, paths) = r.validation_errors();
        assert_eq!(
            paths,
            [
                "rules[1].fields.metadata",
                "rules[2].fields.priority",
                "rules[3].fields.condition",
                "rules[4].fields.rule_code",
                "rules[5].fields.actions[0].type",
            ],
            "{}",
            r.text
        );
        let message = |i: usize| errors[i]["message"].as_str().unwrap();
        assert!(
            message(0).contains("--map metadata=") && message(0).contains("--ignore metadata"),
            "{}",
            message(0)
        );
        assert!(message(2).contains("sometimes"), "{}", message(2));
        assert!(
            message(3).contains("also at `rules[0].fields.rule_code`"),
            "{}",
            message(3)
        );
        assert!(r.message().contains("5 rules"), "{}", r.message());
    }
    assert_eq!(api.snapshot("default").await, before, "nothing was written");
    assert_eq!(
        api.store().head_seq().await.unwrap(),
        head,
        "no change logged"
    );

    // A mapping onto no rule field; a Django option with the Rulebook format.
    let r = import(
        &api,
        json!({"format": "django", "rules": bad, "map": {"metadata": "meta"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        r.body["error"]["errors"][0]["path"], "map.metadata",
        "{}",
        r.text
    );
    let r = import(&api, json!({"rules": [], "ignore": ["metadata"]})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(
        r.message().contains("\"format\": \"django\""),
        "{}",
        r.message()
    );

    // A full dump holds other models: without `model` that is one problem naming them; with it,
    // the others are skipped.
    let mut full = dump("rules_engine.json");
    full.insert(
        0,
        json!({"model": "auth.user", "pk": 1, "fields": {"username": "ann", "is_staff": true}}),
    );
    let r = import(
        &api,
        json!({"format": "django", "rules": full, "dry_run": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(
        r.text.contains("`auth.user` (1)") && r.text.contains("--model rules_engine.actedrule"),
        "{}",
        r.text
    );
    assert!(
        r.message().contains("fix the 1 problem listed"),
        "{}",
        r.message()
    );
    let r = import(
        &api,
        json!({"format": "django", "rules": full, "dry_run": true, "model": "rules_engine.ActedRule"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (&r.body["skipped"], &r.body["created"]),
        (&json!(1), &json!(full.len() - 1)),
        "{}",
        r.text
    );
    assert_eq!(api.snapshot("default").await, before, "nothing was written");
}

/// The `rulebook` CLI against a running server, with this test's environment.
/// `rulebook rules import FILE --format django`: dry run, import, evaluate, export as written; a
/// bad dump names every problem with its entry and writes nothing; a mistaken flag is a usage
/// error.
#[tokio::test]
async fn the_cli_imports_a_django_dump_then_evaluates_and_exports_it() {
    let db = TestDb::sqlite();
    let server = Running::start(&db.url, &[]);
    server.ready().await;
    let file = data("rules_engine.json");
    let file = file.to_str().unwrap();
    let entries = dump("rules_engine.json");
    let n = entries.len();

    let (code, out, err) =
        server.cli(&["rules", "import", file, "--format", "django", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("would import {n} rules: {n} created")),
        "{out}"
    );
    assert_eq!(
        server.cli(&["rules", "get", "test_rule_create"]).0,
        3,
        "a dry run writes nothing"
    );
    let (code, out, err) = server.cli(&["rules", "import", file, "--format", "django"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("imported {n} rules: {n} created")),
        "{out}"
    );

    let answer = server.cli_json(&["evaluate", "home_page_mount", "--context", "{}", "--json"]);
    let all: Vec<String> = entries
        .iter()
        .map(|e| e["fields"]["rule_code"].as_str().unwrap().to_owned())
        .collect();
    let home = always_matching(&entries, "home_page_mount");
    assert_eq!(fired(&answer, &all), expected_actions(&entries, &home));
    let exported = server.cli_json(&["rules", "export"]);
    assert_exported_as_written(&entries, exported.as_array().unwrap());
    let (code, out, _) = server.cli(&["rules", "import", file, "--format", "django"]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("{n} unchanged")), "{out}");
    // The same dump as `dumpdata --format yaml` writes it reads the same.
    let yaml = dir_with("rules.yaml", &serde_yaml::to_string(&entries).unwrap());
    let (code, out, err) = server.cli(&[
        "rules",
        "import",
        yaml.1.to_str().unwrap(),
        "--format",
        "django",
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{n} unchanged")), "{out}");

    // Every bad entry at once, with its place in the file, and nothing written.
    let bad = data("rules_engine_bad.json");
    let (code, _, err) = server.cli(&[
        "rules",
        "import",
        bad.to_str().unwrap(),
        "--format",
        "django",
    ]);
    assert_eq!(code, 1, "{err}");
    for (i, field) in [
        (1, "metadata"),
        (2, "priority"),
        (3, "condition"),
        (4, "rule_code"),
        (5, "actions[0].type"),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(&format!("`rules[{i}].fields.{field}`")))
            .unwrap_or_else(|| panic!("entry {i} `{field}` missing: {err}"));
        assert!(
            line.contains(&format!("(in rule {} of `", i + 1))
                && line.contains("rules_engine_bad.json"),
            "{line}"
        );
    }
    assert!(err.contains("--ignore metadata"), "{err}");
    assert_eq!(
        server.cli(&["rules", "get", "bad_good_neighbour"]).0,
        3,
        "nothing was written"
    );

    // Flags: a mapping onto no rule field, and Django flags without `--format django`.
    let (code, _, err) = server.cli(&[
        "rules",
        "import",
        file,
        "--format",
        "django",
        "--map",
        "metadata=meta",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`meta` is not a rule field"), "{err}");
    let (code, _, err) = server.cli(&["rules", "import", file, "--map", "rule_code=id"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--format django"), "{err}");
    // `--ignore` drops a field, so the dump with `metadata` imports once that is its only problem.
    let bad_entries = dump("rules_engine_bad.json");
    let one = dir_with("one.json", &json!([bad_entries[1].clone()]).to_string());
    let (code, _, err) = server.cli(&[
        "rules",
        "import",
        one.1.to_str().unwrap(),
        "--format",
        "django",
    ]);
    assert_eq!(code, 1, "{err}");
    let (code, out, err) = server.cli(&[
        "rules",
        "import",
        one.1.to_str().unwrap(),
        "--format",
        "django",
        "--ignore",
        "metadata",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 created"), "{out}");
}

/// A folder holding one file; the folder lives as long as the returned guard.
fn dir_with(name: &str, content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

/// The seed's `display_message` action, and an application action with fields in no particular
/// order, round-trip through the CLI: create, get, evaluate, export, and import of the export
/// (unchanged, then into an empty place after a delete), byte for byte.
#[tokio::test]
async fn the_cli_round_trips_the_seeds_display_message_action() {
    let db = TestDb::sqlite();
    let server = Running::start(&db.url, &[]);
    server.ready().await;
    let actions = json!([{"type": "display_message", "content": "Test"},
                         {"type": "notify.slack", "zeta": 1, "channel": "#risk", "alpha": {"colour": "red"}}]);
    let rule = json!({
        "id": "test_rule_create",
        "name": "Test Rule Create",
        "entry_point": "home_page_mount",
        "priority": 100,
        "enabled": true,
        "condition": true,
        "actions": actions,
    });
    let (_dir, file) = dir_with("rule.json", &rule.to_string());
    let (code, _, err) = server.cli(&["rules", "create", "--file", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");

    let got = server.cli_json(&["rules", "get", "test_rule_create"]);
    assert_eq!(text(&got["actions"]), text(&actions));
    let answer = server.cli_json(&["evaluate", "home_page_mount", "--context", "{}", "--json"]);
    let ids = vec!["test_rule_create".to_owned()];
    let mut expected = Vec::new();
    for action in actions.as_array().unwrap() {
        let mut with_id = serde_json::Map::new();
        with_id.insert("rule_id".into(), json!("test_rule_create"));
        with_id.extend(action.as_object().unwrap().clone());
        expected.push(Value::Object(with_id));
    }
    assert_eq!(fired(&answer, &ids), text(&Value::Array(expected)));

    let (code, exported, err) =
        server.cli(&["rules", "export", "--entry-point", "home_page_mount"]);
    assert_eq!(code, 0, "{err}");
    let export = dir_with("export.json", &exported);
    let listed: Value = serde_json::from_str(&exported).unwrap();
    let mine = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "test_rule_create")
        .unwrap();
    assert_eq!(text(&mine["actions"]), text(&actions));
    let (code, out, err) = server.cli(&["rules", "import", export.1.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0 created, 0 updated"), "{out}");
    assert_eq!(server.cli(&["rules", "delete", "test_rule_create"]).0, 0);
    let (code, out, err) = server.cli(&["rules", "import", export.1.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 created"), "{out}");
    let again = server.cli_json(&["rules", "get", "test_rule_create"]);
    assert_eq!(text(&again["actions"]), text(&actions));
}
