//! The HTTP API through the router, without a socket (`tower::ServiceExt::oneshot`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{banner, req, Api, ADMIN};
use rulebook_store::TokenRole;
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
    assert!(r.body["overall"].is_string(), "{}", r.text);

    let r = api
        .call(req(Method::POST, "/v1/score/no_such_card").json(json!({"input": {}})))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "scorecard_not_found")
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
    assert_eq!(acme.body["actions"][0]["message"], "acme only");
    assert_ne!(default.body["actions"][0]["message"], "acme only");
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
