//! OpenFeature Remote Evaluation Protocol through the router: rules as boolean flags (enabled,
//! window, condition), params as typed flags, the protocol's error codes, the bulk answer with its
//! `ETag`, 304 and a tag that moves with a write, and tenants kept apart. Each test runs on SQLite
//! and PostgreSQL. (clients/python/tests/test_ofrep.py drives the same endpoints through the
//! OpenFeature Python SDK against the real binary.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::{req, Api, Resp, TestDb, ADMIN};
use serde_json::{json, Value};

rulebook_testkit::on_both_backends!(
    a_rule_is_a_boolean_flag_of_its_enabled_flag_window_and_condition,
    a_param_is_a_typed_flag_and_null_defers_to_the_code_default,
    an_unknown_flag_is_404_flag_not_found_saying_what_exists,
    bad_bodies_and_failing_conditions_answer_the_protocols_error_codes,
    the_bulk_answer_has_every_flag_and_an_etag_that_moves_with_a_write,
    a_tenant_sees_only_its_own_flags,
);

const FLAG: &str = "/ofrep/v1/evaluate/flags";

async fn create(api: &Api, tenant: &str, rule: Value) {
    let r = api
        .call(
            req(Method::POST, "/v1/rules")
                .token(ADMIN)
                .tenant(tenant)
                .json(rule),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

async fn flag(api: &Api, key: &str, context: Value) -> Resp {
    api.call(req(Method::POST, &format!("{FLAG}/{key}")).json(json!({ "context": context })))
        .await
}

/// The flag's `(value, reason, variant)`, after checking it answered 200 with its key.
async fn decided(api: &Api, key: &str, context: Value) -> (Value, String, String) {
    let r = flag(api, key, context).await;
    assert_eq!(r.status, StatusCode::OK, "{key}: {}", r.text);
    assert_eq!(r.body["key"], key);
    (
        r.body.get("value").cloned().unwrap_or(Value::Null),
        r.body["reason"].as_str().unwrap().to_owned(),
        r.body["variant"].as_str().unwrap().to_owned(),
    )
}

fn fr_only(id: &str) -> Value {
    json!({"id": id, "entry_point": "checkout", "condition": {"==": [{"var": "country"}, "FR"]}})
}

async fn a_rule_is_a_boolean_flag_of_its_enabled_flag_window_and_condition(db: &TestDb) {
    let api = Api::start_on(db.shared(), |_| {}).await;
    create(&api, "default", fr_only("fr_banner")).await;
    create(&api, "default", json!({"id": "always_on"})).await;
    let mut off = fr_only("fr_off");
    off["enabled"] = json!(false);
    create(&api, "default", off).await;
    let mut later = fr_only("fr_later");
    later["active_from"] = json!("2099-01-01T00:00:00Z");
    create(&api, "default", later).await;
    // A param-only rule whose condition reads its own param.
    create(
        &api,
        "default",
        json!({"id": "big_order", "params": {"min": 100}, "condition": {">=": [{"var": "total"}, {"var": "params.min"}]}}),
    )
    .await;

    let fr = json!({"targetingKey": "user-1", "country": "FR"});
    let gb = json!({"targetingKey": "user-1", "country": "GB"});
    let expect = |value: bool, reason: &str, variant: &str| {
        (json!(value), reason.to_owned(), variant.to_owned())
    };
    assert_eq!(
        decided(&api, "fr_banner", fr.clone()).await,
        expect(true, "TARGETING_MATCH", "matched")
    );
    assert_eq!(
        decided(&api, "fr_banner", gb.clone()).await,
        expect(false, "DEFAULT", "condition_false")
    );
    assert_eq!(
        decided(&api, "always_on", gb.clone()).await,
        expect(true, "STATIC", "matched")
    );
    assert_eq!(
        decided(&api, "fr_off", fr.clone()).await,
        expect(false, "DISABLED", "disabled")
    );
    assert_eq!(
        decided(&api, "fr_later", fr.clone()).await,
        expect(false, "DISABLED", "outside_window")
    );
    assert_eq!(
        decided(&api, "big_order", json!({"total": 150})).await,
        expect(true, "TARGETING_MATCH", "matched")
    );
    assert_eq!(
        decided(&api, "big_order", json!({"total": 50})).await,
        expect(false, "DEFAULT", "condition_false")
    );

    // The metadata names the rule's version and the answer's seq (also in X-Rulebook-Seq).
    let r = flag(&api, "fr_banner", fr.clone()).await;
    assert_eq!(r.body["metadata"]["version"], 1);
    let seq = r.headers["x-rulebook-seq"].to_str().unwrap().to_owned();
    assert_eq!(r.body["metadata"]["seq"].to_string(), seq);

    // Enabling a rule over the API is seen by the very next evaluation.
    let enabled = api
        .call(
            req(Method::POST, "/v1/rules/fr_off/enable")
                .token(ADMIN)
                .json(json!({"reason": "test"})),
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.text);
    assert_eq!(
        decided(&api, "fr_off", fr.clone()).await,
        expect(true, "TARGETING_MATCH", "matched")
    );
    let r = flag(&api, "fr_off", fr).await;
    assert_eq!(r.body["metadata"]["version"], 2);

    // No body at all, or no `context`, is an empty context.
    let r = api
        .call(req(Method::POST, &format!("{FLAG}/always_on")))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["value"], true);
    let r = api
        .call(req(Method::POST, &format!("{FLAG}/fr_banner")).json(json!({})))
        .await;
    assert_eq!(r.body["value"], false, "{}", r.text);
}

async fn a_param_is_a_typed_flag_and_null_defers_to_the_code_default(db: &TestDb) {
    let api = Api::start_on(db.shared(), |_| {}).await;
    create(
        &api,
        "default",
        json!({"id": "limits", "enabled": false, "params": {
            "days": 30, "rate": 0.2, "label": "gold", "tiers": {"gold": 3}, "codes": ["A", "B"],
            "unset": null, "odd@name": true
        }}),
    )
    .await;
    for (name, value) in [
        ("days", json!(30)),
        ("rate", json!(0.2)),
        ("label", json!("gold")),
        ("tiers", json!({"gold": 3})),
        ("codes", json!(["A", "B"])),
        // Split at the first `@`: the rest is the param's name, whatever it holds.
        ("odd@name", json!(true)),
    ] {
        // A disabled rule's params are still its params, as `GET /v1/params` answers them.
        assert_eq!(
            decided(&api, &format!("limits@{name}"), json!({})).await,
            (value, "STATIC".to_owned(), "v1".to_owned()),
            "{name}"
        );
    }
    let r = flag(&api, "limits@unset", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body.get("value").is_none(), "{}", r.text);
    assert_eq!(r.body["reason"], "DEFAULT");

    let patched = api
        .call(
            req(Method::PATCH, "/v1/rules/limits/params")
                .token(ADMIN)
                .json(json!({"params": {"days": 45}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(
        decided(&api, "limits@days", json!({})).await,
        (json!(45), "STATIC".to_owned(), "v2".to_owned())
    );
}

async fn an_unknown_flag_is_404_flag_not_found_saying_what_exists(db: &TestDb) {
    let api = Api::start_on(db.shared(), |_| {}).await;
    create(
        &api,
        "default",
        json!({"id": "limits", "params": {"days": 30, "label": "gold"}}),
    )
    .await;
    for (key, says) in [
        ("no_such_rule", "there is no rule `no_such_rule`"),
        ("no_such_rule@days", "there is no rule `no_such_rule`"),
        (
            "limits@weeks",
            "its param flags are `limits@days`, `limits@label`",
        ),
        ("limits@", "has no param ``"),
    ] {
        let r = flag(&api, key, json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{key}: {}", r.text);
        assert_eq!(r.body["key"], key);
        assert_eq!(r.body["errorCode"], "FLAG_NOT_FOUND");
        let details = r.body["errorDetails"].as_str().unwrap();
        assert!(details.contains(says), "{key}: {details}");
    }
}

async fn bad_bodies_and_failing_conditions_answer_the_protocols_error_codes(db: &TestDb) {
    let api = Api::start_on(db.shared(), |_| {}).await;
    create(&api, "default", fr_only("fr_banner")).await;
    for (body, code, says) in [
        (&b"{\"context\": "[..], "PARSE_ERROR", "not valid JSON"),
        (b"[1, 2]", "PARSE_ERROR", "not a JSON object"),
        (
            b"{\"context\": \"FR\"}",
            "INVALID_CONTEXT",
            "`context` must be a JSON object",
        ),
        (b"{\"context\": null}", "INVALID_CONTEXT", "`context`"),
        (
            b"{\"context\": {\"targetingKey\": 7}}",
            "INVALID_CONTEXT",
            "`context.targetingKey` must be a string",
        ),
    ] {
        for (path, key) in [
            (format!("{FLAG}/fr_banner"), Some("fr_banner")),
            (FLAG.to_owned(), None),
        ] {
            let r = api.call(req(Method::POST, &path).raw(body)).await;
            let sent = String::from_utf8_lossy(body);
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{path} {sent}: {}",
                r.text
            );
            assert_eq!(r.body["errorCode"], code, "{path} {sent}: {}", r.text);
            assert_eq!(r.body.get("key").and_then(Value::as_str), key, "{}", r.text);
            let details = r.body["errorDetails"].as_str().unwrap();
            assert!(details.contains(says), "{path} {sent}: {details}");
        }
    }

    // An unknown tenant is the API's 400, in the protocol's shape.
    let r = api
        .call(
            req(Method::POST, &format!("{FLAG}/fr_banner"))
                .tenant("nobody")
                .json(json!({"context": {}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body["errorCode"], "GENERAL");
    assert!(
        r.body["errorDetails"]
            .as_str()
            .unwrap()
            .contains("unknown_tenant"),
        "{}",
        r.text
    );

    // A condition that runs out of its work budget on this context: an error, never a value.
    // 100 scans of a 20,000-element `xs` is over the 1,000,000 budget.
    let scans: Vec<Value> = (0..100)
        .map(|_| json!({"!": {"in": [-1, {"var": "xs"}]}}))
        .collect();
    create(
        &api,
        "default",
        json!({"id": "scanner", "condition": {"and": scans}}),
    )
    .await;
    let xs: Vec<i64> = (0..20_000).collect();
    let r = flag(&api, "scanner", json!({"xs": xs})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body["key"], "scanner");
    assert_eq!(r.body["errorCode"], "INVALID_CONTEXT");
    assert!(
        r.body["errorDetails"]
            .as_str()
            .unwrap()
            .contains("out_of_budget"),
        "{}",
        r.text
    );
    // The same rule decides a small context.
    assert_eq!(
        decided(&api, "scanner", json!({"xs": [1, 2]})).await.0,
        json!(true)
    );
    // In the bulk answer the failure is one entry; the other flags are evaluated.
    let r = api
        .call(req(Method::POST, FLAG).json(json!({"context": {"xs": xs, "country": "FR"}})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let flags = r.body["flags"].as_array().unwrap();
    let scanner = flags.iter().find(|f| f["key"] == "scanner").unwrap();
    assert_eq!(scanner["errorCode"], "INVALID_CONTEXT", "{scanner}");
    let banner = flags.iter().find(|f| f["key"] == "fr_banner").unwrap();
    assert_eq!(banner["value"], true, "{banner}");
}

async fn bulk(api: &Api, context: Value, if_none_match: Option<&str>) -> Resp {
    let mut request = req(Method::POST, FLAG).json(json!({ "context": context }));
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    api.call(request).await
}

async fn the_bulk_answer_has_every_flag_and_an_etag_that_moves_with_a_write(db: &TestDb) {
    let api = Api::start_on(db.shared(), |_| {}).await;
    create(&api, "default", fr_only("fr_banner")).await;
    create(
        &api,
        "default",
        json!({"id": "limits", "params": {"days": 30, "label": "gold"}}),
    )
    .await;
    let rules = api.snapshot("default").await;
    let fr = json!({"country": "FR"});

    let first = bulk(&api, fr.clone(), None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let flags = first.body["flags"].as_array().unwrap();
    // One flag per rule, one per param; rules in id order, each followed by its params.
    let params: usize = rules.iter().map(|r| r.params.len()).sum();
    assert_eq!(flags.len(), rules.len() + params, "{}", first.text);
    let keys: Vec<&str> = flags.iter().map(|f| f["key"].as_str().unwrap()).collect();
    let at = keys.iter().position(|k| *k == "limits").unwrap();
    assert_eq!(keys[at + 1..at + 3], ["limits@days", "limits@label"]);
    let mut rule_keys: Vec<&str> = keys.iter().copied().filter(|k| !k.contains('@')).collect();
    let sorted = {
        let mut s = rule_keys.clone();
        s.sort_unstable();
        s
    };
    assert_eq!(rule_keys, sorted);
    rule_keys.dedup();
    assert_eq!(rule_keys.len(), rules.len());
    let banner = flags.iter().find(|f| f["key"] == "fr_banner").unwrap();
    assert_eq!(banner["value"], true);
    assert_eq!(banner["reason"], "TARGETING_MATCH");
    assert_eq!(first.body["metadata"]["rules"], rules.len());
    assert_eq!(first.body["metadata"]["truncated"], false);

    // A weak tag; the same request gets the same one, and it revalidates as 304.
    let etag = first.etag().expect("an ETag");
    assert!(etag.starts_with("W/\""), "{etag}");
    assert_eq!(
        bulk(&api, fr.clone(), None).await.etag(),
        Some(etag.clone())
    );
    let again = bulk(&api, fr.clone(), Some(&etag)).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{}", again.text);
    assert!(again.text.is_empty());
    assert_eq!(again.etag(), Some(etag.clone()));

    // Another context with other answers has another tag, and is not a 304.
    let gb = bulk(&api, json!({"country": "GB"}), Some(&etag)).await;
    assert_eq!(gb.status, StatusCode::OK);
    assert_ne!(gb.etag(), Some(etag.clone()));

    // A write moves the tag: the held answer is stale, so the same request is a 200 again.
    let patched = api
        .call(
            req(Method::PATCH, "/v1/rules/limits/params")
                .token(ADMIN)
                .json(json!({"params": {"days": 45}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let after = bulk(&api, fr.clone(), Some(&etag)).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.text);
    let moved = after.etag().unwrap();
    assert_ne!(moved, etag);
    let days = after.body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "limits@days")
        .unwrap();
    assert_eq!(days["value"], 45);
    assert_eq!(
        bulk(&api, fr, Some(&moved)).await.status,
        StatusCode::NOT_MODIFIED
    );
}

async fn a_tenant_sees_only_its_own_flags(db: &TestDb) {
    let api = Api::start_on(db.shared(), |_| {}).await;
    api.store().create_tenant("globex").await.unwrap();
    create(
        &api,
        "globex",
        json!({"id": "globex_only", "params": {"secret": "globex-marker"}}),
    )
    .await;
    let r = flag(&api, "globex_only", json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.body["errorCode"], "FLAG_NOT_FOUND");
    let r = flag(&api, "globex_only@secret", json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let all = bulk(&api, json!({}), None).await;
    assert!(!all.text.contains("globex"), "{}", all.text);

    let own = api
        .call(
            req(Method::POST, &format!("{FLAG}/globex_only@secret"))
                .tenant("globex")
                .json(json!({"context": {}})),
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    assert_eq!(own.body["value"], "globex-marker");
    let theirs = api
        .call(
            req(Method::POST, FLAG)
                .tenant("globex")
                .json(json!({"context": {}})),
        )
        .await;
    let keys: Vec<&str> = theirs.body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["globex_only", "globex_only@secret"]);
}
