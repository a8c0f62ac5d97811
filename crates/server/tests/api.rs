//! The HTTP API through the router, without a socket (`tower::ServiceExt::oneshot`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{banner, req, Api, ADMIN};
use rulebook_store::TokenRole;
use rulebook_testkit::eventually;
use serde_json::json;

#[tokio::test]
async fn evaluate_params_enabled_and_score_answer_from_the_seeded_rules() {
    let api = Api::start(|_| {}).await;
    let r = api
        .call(
            req(
                Method::POST,
                "/v1/evaluate/Checkout Terms".replace(' ', "%20").as_str(),
            )
            .json(json!({"context": {"country": "FR", "total": 120}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["entry_point"], "checkout_terms");
    assert!(r.body["matched"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "checkout_terms_banner" && m["version"] == 1));

    let r = api
        .call(req(Method::GET, "/v1/params/cache_ttl_seconds/seconds"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["value"], 60);

    let r = api
        .call(req(Method::GET, "/v1/params/cache_ttl_seconds/nope"))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "param_not_found")
    );
    assert!(r.message().contains("`seconds`"), "{}", r.message());

    let r = api
        .call(req(Method::GET, "/v1/rules/checkout_terms_banner/enabled"))
        .await;
    assert_eq!(r.body["enabled"], true, "{}", r.text);

    let r = api
        .call(req(Method::POST, "/v1/score/pad_trade").json(json!({
            "input": {"instrument_type": "equity", "value": 75000, "holding_days": 10}
        })))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Position size 75,000 is above the low threshold (MEDIUM), 10 days is under the minimum hold
    // (MEDIUM); two MEDIUM factors escalate to HIGH, which routes to compliance.
    assert_eq!(
        levels(&r.body),
        json!({"instrument_type": "LOW", "firm_traded": "LOW", "position_size": "MEDIUM",
               "holding_period": "MEDIUM", "restricted_list": "LOW"}),
        "{}",
        r.text
    );
    assert_eq!(
        (&r.body["overall"], &r.body["escalated"], &r.body["route"]),
        (&json!("HIGH"), &json!(true), &json!("compliance_review")),
        "{}",
        r.text
    );

    let r = api
        .call(req(Method::POST, "/v1/score/no_such_card").json(json!({"input": {}})))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "scorecard_not_found")
    );
}

/// A score answer's level per factor, as `{factor: level}`.
fn levels(score: &serde_json::Value) -> serde_json::Value {
    score["factors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["factor"].as_str().unwrap().to_owned(), f["level"].clone()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Overrides apply to their own request only; a params write reaches the cached scorecard at
/// once.
#[tokio::test]
async fn score_overrides_are_per_request_and_a_params_write_reaches_the_cached_scorecard() {
    let api = Api::start(|_| {}).await;
    let score = |overrides: serde_json::Value| {
        req(Method::POST, "/v1/score/pad_trade").json(json!({
            "input": {"instrument_type": "equity", "value": 75000, "holding_days": 10},
            "overrides": overrides
        }))
    };
    let outcome = |r: &common::Resp| {
        (
            r.body["factors"][2]["level"].clone(),
            r.body["overall"].clone(),
            r.body["route"].clone(),
        )
    };
    let r = api.call(score(json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["factors"][2]["factor"], "position_size",
        "{}",
        r.text
    );
    let stored = (json!("MEDIUM"), json!("HIGH"), json!("compliance_review"));
    assert_eq!(outcome(&r), stored, "{}", r.text);

    // Raising the low threshold over the value for one request: position size LOW, one MEDIUM
    // factor left, no escalation.
    let r = api
        .call(score(json!({"RF-005": {"lowThreshold": 80000}})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let overridden = (json!("LOW"), json!("MEDIUM"), json!("line_manager"));
    assert_eq!(outcome(&r), overridden, "{}", r.text);
    assert_eq!(r.body["escalated"], false, "{}", r.text);
    // The next request without overrides is scored with the stored thresholds.
    let r = api.call(score(json!({}))).await;
    assert_eq!(outcome(&r), stored, "{}", r.text);
    // An override the param schema refuses (low above high) is the caller's error.
    let r = api
        .call(score(json!({"RF-005": {"lowThreshold": 200000}})))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        "{}",
        r.text
    );
    assert_eq!(
        r.body["error"]["errors"][0]["path"], "overrides.RF-005.params.lowThreshold",
        "{}",
        r.text
    );

    // The same thresholds written as params: the cached scorecard is replaced before the write
    // returns.
    let loads_before = api.state.registry().cache_stats().loads;
    let r = api
        .call(
            req(Method::PATCH, "/v1/rules/RF-005/params")
                .token(ADMIN)
                .json(
                    json!({"params": {"lowThreshold": 80000, "highThreshold": 100000},
                             "reason": "raise the material trade threshold"}),
                ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = api.call(score(json!({}))).await;
    assert_eq!(outcome(&r), overridden, "{}", r.text);
    assert_eq!(r.body["factors"][2]["version"], 2, "{}", r.text);
    assert!(
        api.state.registry().cache_stats().loads > loads_before,
        "the scorecard was reloaded, not recomputed around the cache"
    );
}

#[tokio::test]
async fn a_write_is_seen_by_the_very_next_read_and_round_trips() {
    let api = Api::start(|_| {}).await;
    let rule = banner("T-1", "promo", "first");
    let r = api
        .call(req(Method::POST, "/v1/rules").token(ADMIN).json(rule))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.etag().as_deref(), Some("\"1\""));
    assert_eq!(r.body["created_by"], "admin");

    let eval =
        || req(Method::POST, "/v1/evaluate/promo").json(json!({"context": {"country": "FR"}}));
    let r = api.call(eval()).await;
    assert_eq!(r.body["actions"][0]["message"], "first");

    // What GET returns, PUT accepts back: read-only fields are ignored.
    let got = api.call(req(Method::GET, "/v1/rules/T-1")).await;
    let mut edited = got.body.clone();
    edited["actions"][0]["message"] = json!("second");
    edited["reason"] = json!("new wording");
    let r = api
        .call(
            req(Method::PUT, "/v1/rules/T-1")
                .token(ADMIN)
                .header("if-match", &got.etag().unwrap())
                .json(edited),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["version"], 2);
    let r = api.call(eval()).await;
    assert_eq!(r.body["actions"][0]["message"], "second");
    assert_eq!(r.body["matched"][0]["version"], 2);

    let r = api.call(req(Method::GET, "/v1/rules/T-1/history")).await;
    let history = r.body["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["reason"], "new wording");
    assert_eq!(history[1]["changed_by"], "admin");

    // PATCH params merges; the list filters by entry point.
    let r = api
        .call(
            req(Method::PATCH, "/v1/rules/cache_ttl_seconds/params")
                .token(ADMIN)
                .json(json!({"params": {"seconds": 90}, "reason": "slower clients"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = api
        .call(req(Method::GET, "/v1/params/cache_ttl_seconds/seconds"))
        .await;
    assert_eq!(r.body["value"], 90);
    let r = api
        .call(req(Method::GET, "/v1/rules?entry_point=Promo"))
        .await;
    let ids: Vec<&str> = r.body["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["T-1"]);
}

/// Each error status from bad input, and the store unchanged afterwards.
#[tokio::test]
async fn every_error_status_leaves_the_store_unchanged() {
    let api = Api::start(|c| c.body_limit = 4096).await;
    let read = api.token(TokenRole::Read, None).await;
    let other_tenant_writer = {
        api.store().create_tenant("acme").await.unwrap();
        api.token(TokenRole::Write, Some("acme")).await
    };
    let before = api.snapshot("default").await;
    let current = api
        .call(req(Method::GET, "/v1/rules/checkout_terms_banner"))
        .await
        .body;
    let cases = vec![
        (
            req(Method::POST, "/v1/rules")
                .token(ADMIN)
                .raw(b"{\"id\": "),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            req(Method::POST, "/v1/evaluate/Home%20Page!").json(json!({"context": {}})),
            StatusCode::BAD_REQUEST,
            "bad_entry_point",
        ),
        (
            req(Method::POST, "/v1/evaluate/checkout").json(json!({"context": 5})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            req(Method::POST, "/v1/evaluate/checkout").json(json!({"context": {}, "at": "soon"})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            req(Method::POST, "/v1/rules")
                .token(ADMIN)
                .tenant("nobody")
                .json(banner("X", "a", "b")),
            StatusCode::BAD_REQUEST,
            "unknown_tenant",
        ),
        (
            req(Method::POST, "/v1/rules").json(banner("X", "a", "b")),
            StatusCode::UNAUTHORIZED,
            "missing_token",
        ),
        (
            req(Method::POST, "/v1/rules")
                .token("rb_not_a_token")
                .json(banner("X", "a", "b")),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            req(Method::POST, "/v1/rules")
                .token(&read)
                .json(banner("X", "a", "b")),
            StatusCode::FORBIDDEN,
            "forbidden_role",
        ),
        (
            req(Method::POST, "/v1/rules")
                .token(&other_tenant_writer)
                .json(banner("X", "a", "b")),
            StatusCode::FORBIDDEN,
            "forbidden_tenant",
        ),
        (
            req(Method::PUT, "/v1/rules/nope")
                .token(ADMIN)
                .header("if-match", "\"1\"")
                .json(banner("nope", "a", "b")),
            StatusCode::NOT_FOUND,
            "rule_not_found",
        ),
        (
            req(Method::PUT, "/v1/rules/checkout_terms_banner")
                .token(ADMIN)
                .header("if-match", "\"7\"")
                .json(current.clone()),
            StatusCode::CONFLICT,
            "version_conflict",
        ),
        (
            req(Method::PUT, "/v1/rules/checkout_terms_banner")
                .token(ADMIN)
                .header("if-match", "\"1\"")
                .json({
                    let mut c = current.clone();
                    c["version"] = json!(3);
                    c
                }),
            StatusCode::CONFLICT,
            "version_conflict",
        ),
        (
            req(Method::PUT, "/v1/rules/checkout_terms_banner")
                .token(ADMIN)
                .json({
                    let mut c = current.clone();
                    c.as_object_mut().unwrap().remove("version");
                    c
                }),
            StatusCode::PRECONDITION_REQUIRED,
            "missing_version",
        ),
        (
            req(Method::POST, "/v1/rules")
                .token(ADMIN)
                .json(json!({"id": "big", "description": "x".repeat(8192)})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            req(Method::POST, "/v1/rules").token(ADMIN).json(json!({
                "id": "bad rule!", "priority": "high", "colour": "red",
                "actions": [{"type": "explode"}]
            })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            req(Method::PATCH, "/v1/rules/cache_ttl_seconds/params")
                .token(ADMIN)
                .json(json!({"params": {"seconds": -5}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            req(Method::POST, "/v1/cache/invalidate")
                .token(ADMIN)
                .json(json!({"entry_points": ["Bad!"]})),
            StatusCode::BAD_REQUEST,
            "bad_entry_point",
        ),
        (
            req(Method::GET, "/v1/nothing/here"),
            StatusCode::NOT_FOUND,
            "no_route",
        ),
        (
            req(Method::DELETE, "/v1/cache/stats"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (request, status, code) in cases {
        let r = api.call(request).await;
        assert_eq!((r.status, r.code()), (status, code), "{}", r.text);
        assert!(!r.message().is_empty());
        assert_eq!(
            r.headers.get("content-type").unwrap(),
            "application/json",
            "errors are JSON"
        );
        assert_eq!(api.snapshot("default").await, before, "after {code}");
    }

    // A conflict names the current version, and validation lists every field path.
    let mut unversioned = current.clone();
    unversioned.as_object_mut().unwrap().remove("version");
    let r = api
        .call(
            req(Method::PUT, "/v1/rules/checkout_terms_banner")
                .token(ADMIN)
                .header("if-match", "\"7\"")
                .json(unversioned),
        )
        .await;
    assert_eq!(r.code(), "version_conflict");
    assert_eq!(r.body["error"]["current_version"], 1);
    assert!(r.message().contains("version 1"), "{}", r.message());
    // `If-Match` and a body `version` that disagree: the same answer from every write that takes
    // both.
    for (method, path, body) in [
        (Method::PUT, "/v1/rules/checkout_terms_banner", {
            let mut other = current.clone();
            other["version"] = json!(3);
            other
        }),
        (
            Method::PATCH,
            "/v1/rules/checkout_terms_banner/params",
            json!({"params": {}, "version": 3}),
        ),
        (
            Method::POST,
            "/v1/rules/checkout_terms_banner/disable",
            json!({"version": 3}),
        ),
        (
            Method::DELETE,
            "/v1/rules/checkout_terms_banner",
            json!({"version": 3}),
        ),
    ] {
        let r = api
            .call(
                req(method.clone(), path)
                    .token(ADMIN)
                    .header("if-match", "\"2\"")
                    .json(body),
            )
            .await;
        assert_eq!(r.code(), "version_conflict", "{method} {path}: {}", r.text);
        assert_eq!(r.body["error"]["current_version"], 1, "{method} {path}");
        assert_eq!(
            r.message(),
            "the body's `version` 3 disagrees with `If-Match` 2; rule `checkout_terms_banner` is at version 1: read it again and send one version",
            "{method} {path}"
        );
    }
    assert_eq!(
        api.snapshot("default").await,
        before,
        "after the disagreements"
    );
    let r = api
        .call(req(Method::POST, "/v1/rules").token(ADMIN).json(json!({
            "id": "bad", "priority": "high", "colour": "red"
        })))
        .await;
    let paths: Vec<&str> = r.body["error"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"priority") && paths.contains(&"colour"),
        "{paths:?}"
    );
    let r = api
        .call(
            req(Method::POST, "/v1/rules")
                .token(ADMIN)
                .tenant("nobody")
                .json(banner("X", "a", "b")),
        )
        .await;
    assert!(r.message().contains("`nobody`"), "{}", r.message());
}

#[tokio::test]
async fn a_request_over_the_time_limit_is_a_504() {
    let api = Api::start(|c| c.request_timeout = Duration::from_millis(200)).await;
    let before = api.snapshot("default").await;
    // A client that never finishes sending its body holds the request past the limit.
    let r = api
        .call_stalled(req(Method::POST, "/v1/rules").token(ADMIN))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::GATEWAY_TIMEOUT, "request_timeout"),
        "{}",
        r.text
    );
    assert_eq!(api.snapshot("default").await, before);
}

#[tokio::test]
async fn a_store_that_is_down_is_a_503_and_cached_reads_keep_answering() {
    let api = Api::start(|_| {}).await;
    let before = api.snapshot("default").await;
    let eval = || {
        req(Method::POST, "/v1/evaluate/checkout_terms").json(json!({"context": {"country": "FR"}}))
    };
    assert_eq!(api.call(eval()).await.status, StatusCode::OK);
    api.store().close().await;
    let r = api
        .call(
            req(Method::POST, "/v1/rules")
                .token(ADMIN)
                .json(banner("D-1", "x", "y")),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        "{}",
        r.text
    );
    assert!(!r.message().to_lowercase().contains("select"));
    assert_eq!(r.headers["retry-after"], "1", "a 503 says when to retry");
    let r = api.call(req(Method::GET, "/health")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["store"]["ok"], false);
    // The cached ruleset still answers.
    assert_eq!(api.call(eval()).await.status, StatusCode::OK);
    let reopened = rulebook_store::Store::open(&api.db.url).await.unwrap();
    assert_eq!(reopened.list_rules("default", None).await.unwrap(), before);
}

#[tokio::test]
async fn tenants_are_isolated() {
    let api = Api::start(|_| {}).await;
    api.store().create_tenant("acme").await.unwrap();
    let acme_admin = api.token(TokenRole::Admin, Some("acme")).await;
    let r = api
        .call(
            req(Method::POST, "/v1/rules")
                .token(&acme_admin)
                .tenant("acme")
                .json(banner(
                    "checkout_terms_banner",
                    "checkout_terms",
                    "acme only",
                )),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["tenant"], "acme");

    let eval = |tenant: &str| {
        req(Method::POST, "/v1/evaluate/checkout_terms")
            .tenant(tenant)
            .json(json!({"context": {"country": "FR"}}))
    };
    let acme = api.call(eval("acme")).await;
    let default = api.call(eval("default")).await;
    assert_eq!(acme.status, StatusCode::OK, "{}", acme.text);
    assert_eq!(default.status, StatusCode::OK, "{}", default.text);
    assert_eq!(acme.body["actions"][0]["message"], "acme only");
    let seeded = api
        .store()
        .get_rule("default", "checkout_terms_banner")
        .await
        .unwrap();
    assert_eq!(
        default.body["matched"][0]["version"], seeded.version,
        "{}",
        default.text
    );
    assert_eq!(
        default.body["actions"][0]["message"],
        serde_json::to_value(&seeded.actions[0]).unwrap()["message"],
        "the default tenant still answers with its own rule: {}",
        default.text
    );
    assert_eq!(
        api.call(req(Method::GET, "/v1/rules").tenant("acme"))
            .await
            .body["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Tenant A's token can do nothing to tenant B.
    for request in [
        req(Method::POST, "/v1/rules/checkout_terms_banner/disable"),
        req(Method::DELETE, "/v1/rules/checkout_terms_banner"),
        req(Method::POST, "/v1/cache/invalidate").json(json!({"all": true})),
    ] {
        let r = api.call(request.token(&acme_admin).tenant("default")).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "forbidden_tenant")
        );
    }
    // Clearing acme's cache leaves default's entries in place.
    let loads_before = api.state.registry().load_counts();
    let r = api
        .call(
            req(Method::POST, "/v1/cache/invalidate")
                .token(&acme_admin)
                .tenant("acme")
                .json(json!({"all": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    api.call(eval("default")).await;
    let default_loads = |counts: &[rulebook_store::LoadCount]| {
        counts
            .iter()
            .find(|c| c.tenant == "default" && c.item == "entry_point:checkout_terms")
            .map(|c| c.loads)
    };
    assert_eq!(
        default_loads(&loads_before),
        default_loads(&api.state.registry().load_counts())
    );
    let after: Vec<_> = api.snapshot("default").await;
    assert!(after.iter().all(|r| r.tenant == "default"));
}

#[tokio::test]
async fn the_tenant_cache_is_bounded_and_evicting_a_tenant_drops_its_entries() {
    let api = Api::start(|c| c.tenant_cache = 2).await;
    for tenant in ["t1", "t2", "t3", "t4"] {
        api.store().create_tenant(tenant).await.unwrap();
        let r = api
            .call(
                req(Method::POST, "/v1/evaluate/checkout")
                    .tenant(tenant)
                    .json(json!({"context": {}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    // Evictions happen as inserts arrive; the bound holds once they have.
    for _ in 0..100 {
        if api.state.tenants_cached() <= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        api.state.tenants_cached() <= 2,
        "{}",
        api.state.tenants_cached()
    );
    assert!(
        api.state.registry().len() <= 4,
        "{}",
        api.state.registry().len()
    );
}

/// A token-role test per endpoint group: reads (when they need a token), writes, cache admin.
#[tokio::test]
async fn each_endpoint_group_needs_its_role() {
    let api = Api::start(|c| c.reads_need_token = Some(true)).await;
    let read = api.token(TokenRole::Read, None).await;
    let write = api.token(TokenRole::Write, None).await;
    let admin = api.token(TokenRole::Admin, None).await;

    let reads = || {
        vec![
            req(Method::POST, "/v1/evaluate/checkout_terms").json(json!({"context": {}})),
            req(Method::GET, "/v1/params/cache_ttl_seconds/seconds"),
            req(Method::GET, "/v1/rules/checkout_terms_banner/enabled"),
            req(Method::GET, "/v1/rules"),
            req(Method::GET, "/v1/rules/checkout_terms_banner"),
            req(Method::GET, "/v1/rules/checkout_terms_banner/history"),
            req(Method::GET, "/v1/cache/stats"),
        ]
    };
    for request in reads() {
        assert_eq!(api.call(request).await.status, StatusCode::UNAUTHORIZED);
    }
    for request in reads() {
        let r = api.call(request.token(&read)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    let write_request = |token: &str| {
        req(Method::POST, "/v1/rules/checkout_terms_banner/disable")
            .token(token)
            .json(json!({"reason": "role test"}))
    };
    assert_eq!(
        api.call(write_request(&read)).await.code(),
        "forbidden_role"
    );
    let r = api.call(write_request(&write)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["updated_by"], "write-all");

    let clear = |token: &str| {
        req(Method::POST, "/v1/cache/invalidate")
            .token(token)
            .json(json!({"tags": ["params"]}))
    };
    assert_eq!(api.call(clear(&read)).await.code(), "forbidden_role");
    assert_eq!(api.call(clear(&write)).await.code(), "forbidden_role");
    assert_eq!(api.call(clear(&admin)).await.status, StatusCode::OK);

    // Health, metrics and the admin page need nothing.
    for path in ["/health", "/metrics", "/admin"] {
        assert_eq!(
            api.call(req(Method::GET, path)).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
}

#[tokio::test]
async fn metrics_count_requests_per_route_and_loads_per_entry_point() {
    let api = Api::start(|_| {}).await;
    for _ in 0..3 {
        api.call(req(Method::POST, "/v1/evaluate/checkout_terms").json(json!({"context": {}})))
            .await;
    }
    let r = api.call(req(Method::GET, "/metrics")).await;
    assert!(r.text.contains(
        "rulebook_http_requests_total{method=\"POST\",route=\"/v1/evaluate/{entry_point}\",status=\"200\"} 3"
    ), "{}", r.text);
    assert!(r.text.contains("rulebook_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/evaluate/{entry_point}\",le=\"+Inf\"} 3"));
    assert!(
        r.text.contains(
            "rulebook_loads_total{tenant=\"default\",item=\"entry_point:checkout_terms\"} 1"
        ),
        "{}",
        r.text
    );
    assert!(r.text.contains("rulebook_cache_hits_total 2"), "{}", r.text);
    let r = api.call(req(Method::GET, "/admin")).await;
    assert!(r.text.contains("Rulebook admin"));
    let r = api.call(req(Method::GET, "/health")).await;
    assert_eq!(r.body["ready"], true, "{}", r.text);
}

#[tokio::test]
async fn a_rules_folder_is_loaded_before_ready_and_reported_in_health() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("promo.yaml"),
        "id: FILE-1\nentry_point: from files\nactions:\n  - type: display_message\n    message: from a file\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("broken.json"), "{\"id\": ").unwrap();
    let path = dir.path().to_path_buf();
    let api = Api::start(move |c| c.rules_dir = Some(path)).await;
    let r = api
        .call(req(Method::POST, "/v1/evaluate/from_files").json(json!({"context": {}})))
        .await;
    assert_eq!(r.body["actions"][0]["message"], "from a file", "{}", r.text);
    let r = api.call(req(Method::GET, "/health")).await;
    assert_eq!(r.body["rules_dir"]["rules"], 1, "{}", r.text);
    assert_eq!(
        r.body["rules_dir"]["problems"].as_array().unwrap().len(),
        1,
        "{}",
        r.text
    );
}

/// The rules folder is watched: an edited file, a new file and a removed file each reach the
/// cached entry points while the server runs.
#[tokio::test]
async fn the_rules_folder_watcher_sees_an_edit_a_new_file_and_a_removed_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = |id: &str, ep: &str, message: &str| {
        format!("id: {id}\nentry_point: {ep}\nactions:\n  - type: display_message\n    message: {message}\n")
    };
    std::fs::write(
        dir.path().join("promo.yaml"),
        file("FILE-1", "promo", "first"),
    )
    .unwrap();
    let path = dir.path().to_path_buf();
    let api = Api::start(move |c| {
        c.rules_dir = Some(path);
        c.rules_scan = Duration::from_millis(20);
    })
    .await;
    let message = |ep: &'static str| {
        let api = &api;
        async move {
            let r = api
                .call(req(Method::POST, &format!("/v1/evaluate/{ep}")).json(json!({"context": {}})))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.body["actions"][0]["message"].as_str().map(str::to_owned)
        }
    };
    // Both entry points are cached before the files change.
    assert_eq!(message("promo").await.as_deref(), Some("first"));
    assert_eq!(message("banner").await, None);

    std::fs::write(
        dir.path().join("promo.yaml"),
        file("FILE-1", "promo", "second"),
    )
    .unwrap();
    eventually(
        "the edited file to be served",
        Duration::from_secs(30),
        || async { message("promo").await.as_deref() == Some("second") },
    )
    .await;
    std::fs::write(dir.path().join("banner.json"), r#"{"id": "FILE-2", "entry_point": "banner", "actions": [{"type": "display_message", "message": "new file"}]}"#).unwrap();
    eventually(
        "the new file to be served",
        Duration::from_secs(30),
        || async { message("banner").await.as_deref() == Some("new file") },
    )
    .await;
    std::fs::remove_file(dir.path().join("promo.yaml")).unwrap();
    eventually(
        "the removed file's rule to go",
        Duration::from_secs(30),
        || async { message("promo").await.is_none() },
    )
    .await;
    assert_eq!(message("banner").await.as_deref(), Some("new file"));
    let r = api.call(req(Method::GET, "/health")).await;
    assert_eq!(r.body["rules_dir"]["rules"], 1, "{}", r.text);
    let history = api.store().history("default", "FILE-1").await.unwrap();
    assert_eq!(history.len(), 3, "created, updated, deleted");
}

/// Rules `IMP-0`.. spread over the entry points `import_0`..`import_{entry_points - 1}`.
fn import_rules(count: usize, entry_points: usize, message: &str) -> Vec<serde_json::Value> {
    (0..count)
        .map(|i| {
            banner(
                &format!("IMP-{i}"),
                &format!("import_{}", i % entry_points),
                message,
            )
        })
        .collect()
}

/// One bad rule among many writes nothing, and the answer lists every problem with its index.
#[tokio::test]
async fn an_import_with_bad_rules_writes_nothing_and_lists_every_problem() {
    let api = Api::start(|_| {}).await;
    let before = api.snapshot("default").await;
    let head = api.store().head_seq().await.unwrap();
    let mut rules = import_rules(60, 3, "hello");
    rules[17]["priority"] = json!("high");
    rules[17]["colour"] = json!("red");
    rules[42]["id"] = json!("IMP-5");
    rules[50] = json!(["not", "a", "rule"]);
    let r = api
        .call(
            req(Method::POST, "/v1/rules/import")
                .token(ADMIN)
                .json(json!({"rules": rules, "reason": "bulk"})),
        )
        .await;
    let (errors, paths) = r.validation_errors();
    for path in [
        "rules[17].priority",
        "rules[17].colour",
        "rules[42].id",
        "rules[50]",
    ] {
        assert!(paths.contains(&path), "{path} missing from {paths:?}");
    }
    assert!(
        errors.iter().any(|e| e["path"] == "rules[17].priority"
            && e["message"].as_str().unwrap().contains("`IMP-17`")),
        "{}",
        r.text
    );
    assert!(r.message().contains("3 rules"), "{}", r.message());
    assert_eq!(api.snapshot("default").await, before);
    assert_eq!(
        api.store().head_seq().await.unwrap(),
        head,
        "no change logged"
    );
    assert!(
        matches!(
            api.store().history("default", "IMP-0").await,
            Err(rulebook_store::StoreError::NotFound { .. })
        ),
        "no history row"
    );

    // A rule for another tenant is a problem of that rule, too.
    let mut rules = import_rules(3, 1, "hello");
    rules[1]["tenant"] = json!("acme");
    let r = api
        .call(
            req(Method::POST, "/v1/rules/import")
                .token(ADMIN)
                .json(json!({"rules": rules})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["errors"][0]["path"], "rules[1].tenant");
    assert_eq!(api.snapshot("default").await, before);

    // Importing needs the write role.
    let read = api.token(TokenRole::Read, None).await;
    let r = api
        .call(
            req(Method::POST, "/v1/rules/import")
                .token(&read)
                .json(json!({"rules": import_rules(1, 1, "x")})),
        )
        .await;
    assert_eq!(r.code(), "forbidden_role", "{}", r.text);
    assert_eq!(api.snapshot("default").await, before);
}

/// Records each batch of changes the store commits.
struct Batches(std::sync::Mutex<Vec<usize>>);

impl rulebook_store::ChangeListener for Batches {
    fn committed(&self, changes: &[rulebook_store::Change]) {
        self.0.lock().unwrap().push(changes.len());
    }
}

/// A good import of 200 rules is one change set: one commit, a history row per rule, and each
/// touched entry point loaded once afterwards however often it is read.
#[tokio::test]
async fn an_import_of_200_rules_is_one_change_set() {
    let api = Api::start(|_| {}).await;
    let entry_points: Vec<rulebook_rules::EntryPoint> = (0..4)
        .map(|i| rulebook_rules::EntryPoint::parse(&format!("import_{i}")).unwrap())
        .collect();
    let evaluate_all = || async {
        for ep in &entry_points {
            for _ in 0..5 {
                let r = api
                    .call(
                        req(Method::POST, &format!("/v1/evaluate/{ep}"))
                            .json(json!({"context": {"country": "FR"}})),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            }
        }
    };
    evaluate_all().await;
    let loads = || {
        entry_points
            .iter()
            .map(|ep| api.state.registry().ruleset_loads("default", ep))
            .collect::<Vec<_>>()
    };
    assert_eq!(loads(), [1, 1, 1, 1]);

    // A dry run says what would happen and writes nothing.
    let body = |message: &str| json!({"rules": import_rules(200, 4, message), "reason": "bulk"});
    let mut dry = body("hello");
    dry["dry_run"] = json!(true);
    let r = api
        .call(req(Method::POST, "/v1/rules/import").token(ADMIN).json(dry))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (&r.body["created"], &r.body["dry_run"]),
        (&json!(200), &json!(true))
    );
    assert!(api.store().get_rule("default", "IMP-0").await.is_err());
    assert_eq!(loads(), [1, 1, 1, 1], "a dry run invalidates nothing");

    let batches = std::sync::Arc::new(Batches(std::sync::Mutex::new(Vec::new())));
    let listener: std::sync::Arc<dyn rulebook_store::ChangeListener> = batches.clone();
    api.store().subscribe(&listener);
    let head = api.store().head_seq().await.unwrap();
    let r = api
        .call(
            req(Method::POST, "/v1/rules/import")
                .token(ADMIN)
                .json(body("hello")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"seq": head + 200, "dry_run": false, "total": 200, "created": 200, "updated": 0, "unchanged": 0}),
        "the answer's seq is the import's last change"
    );
    assert_eq!(
        *batches.0.lock().unwrap(),
        [200],
        "one commit of 200 changes"
    );
    assert_eq!(api.store().head_seq().await.unwrap(), head + 200);
    for i in 0..200 {
        let history = api
            .store()
            .history("default", &format!("IMP-{i}"))
            .await
            .unwrap();
        assert_eq!(history.len(), 1, "IMP-{i}");
        assert_eq!(history[0].kind, rulebook_store::ChangeKind::Import);
        assert_eq!(history[0].reason.as_deref(), Some("bulk"));
        assert_eq!(history[0].changed_by, "admin");
    }
    evaluate_all().await;
    assert_eq!(loads(), [2, 2, 2, 2], "each entry point loaded once after");
    let r = api
        .call(
            req(Method::POST, "/v1/evaluate/import_0").json(json!({"context": {"country": "FR"}})),
        )
        .await;
    assert_eq!(
        r.body["matched"].as_array().unwrap().len(),
        50,
        "{}",
        r.text
    );

    // The same import again changes nothing; a changed one updates every rule in one commit.
    let r = api
        .call(
            req(Method::POST, "/v1/rules/import")
                .token(ADMIN)
                .json(body("hello")),
        )
        .await;
    assert_eq!(r.body["unchanged"], 200, "{}", r.text);
    evaluate_all().await;
    assert_eq!(
        loads(),
        [2, 2, 2, 2],
        "an unchanged import invalidates nothing"
    );
    let r = api
        .call(
            req(Method::POST, "/v1/rules/import")
                .token(ADMIN)
                .json(body("changed")),
        )
        .await;
    assert_eq!(r.body["updated"], 200, "{}", r.text);
    assert_eq!(*batches.0.lock().unwrap(), [200, 200]);
    evaluate_all().await;
    assert_eq!(loads(), [3, 3, 3, 3]);
}

/// The import endpoint's path does not hide a rule whose id is `import`.
#[tokio::test]
async fn a_rule_named_import_is_still_readable_and_writable() {
    let api = Api::start(|_| {}).await;
    let r = api
        .call(
            req(Method::POST, "/v1/rules")
                .token(ADMIN)
                .json(banner("import", "imports", "hi")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = api.call(req(Method::GET, "/v1/rules/import")).await;
    assert_eq!(
        (r.status, &r.body["id"]),
        (StatusCode::OK, &json!("import")),
        "{}",
        r.text
    );
    let mut edited = r.body.clone();
    edited["priority"] = json!(9);
    let r = api
        .call(
            req(Method::PUT, "/v1/rules/import")
                .token(ADMIN)
                .header("if-match", "\"1\"")
                .json(edited),
        )
        .await;
    assert_eq!(r.body["version"], 2, "{}", r.text);
    let r = api.call(req(Method::GET, "/v1/rules/import/history")).await;
    assert_eq!(r.body["history"].as_array().unwrap().len(), 2, "{}", r.text);
    let r = api
        .call(req(Method::DELETE, "/v1/rules/import").token(ADMIN))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(api.store().get_rule("default", "import").await.is_err());
}
