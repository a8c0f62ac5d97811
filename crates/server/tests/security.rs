//! Security basics: token secrets never appear in error bodies or in the log, every answer
//! carries `X-Content-Type-Options: nosniff`, the admin page has a strict Content-Security-Policy
//! that still allows its own script and style, and refused tokens are counted in `/metrics` by a
//! fixed set of reasons.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::Method;
use common::{req, Api, Running, TestDb, ADMIN};
use rulebook_store::TokenRole;
use serde_json::json;

/// Requests that are refused for their token, or written with one: none of the secrets sent may
/// come back in the body.
#[tokio::test]
async fn error_bodies_never_echo_a_token() {
    let api = Api::start(|_| {}).await;
    api.store().create_tenant("acme").await.unwrap();
    let read = api.token(TokenRole::Read, None).await;
    let acme_write = api.token(TokenRole::Write, Some("acme")).await;
    let unknown = "rb_this-secret-is-unknown-to-the-server";
    let cases = [
        (req(Method::POST, "/v1/rules").token(&read), 403),
        (req(Method::POST, "/v1/rules").token(&acme_write), 403),
        (req(Method::POST, "/v1/rules").token(unknown), 401),
        (
            req(Method::POST, "/v1/rules").header("authorization", &format!("Token {unknown}")),
            401,
        ),
        (
            req(Method::POST, "/v1/rules")
                .token(&acme_write)
                .tenant("acme")
                .json(json!({"id": "x", "nonsense": 1})),
            422,
        ),
        (
            req(Method::POST, "/v1/cache/invalidate")
                .token(&acme_write)
                .tenant("acme")
                .json(json!({"all": true})),
            403,
        ),
        (
            req(Method::DELETE, "/v1/rules/nope")
                .token(ADMIN)
                .json(json!({})),
            404,
        ),
    ];
    let secrets = [read.as_str(), acme_write.as_str(), unknown, ADMIN];
    for (request, status) in cases {
        let response = api.call(request).await;
        assert_eq!(response.status, status, "{}", response.text);
        for secret in secrets {
            assert!(
                !response.text.contains(secret),
                "a secret came back in a {} body: {}",
                response.status,
                response.text
            );
        }
    }
}

/// The real binary logging at `debug`, sent good, bad and malformed tokens: its whole log holds
/// none of them.
#[tokio::test]
async fn the_log_never_holds_a_token() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let admin = "rb_configured-admin-secret-for-the-log-test";
    let unknown = "rb_unknown-secret-for-the-log-test";
    let mut server = Running::start_with_stderr(
        &db.url,
        &[("RULEBOOK_ADMIN_TOKEN", admin), ("RULEBOOK_LOG", "debug")],
        log.into(),
    );
    server.ready().await;
    let c = &server.client;
    let create = c
        .post(server.url("/v1/rules"))
        .bearer_auth(admin)
        .json(&common::banner("LOG-1", "landing", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(create.status(), 201);
    for (auth, status) in [
        (format!("Bearer {unknown}"), 401),
        (format!("Basic {unknown}"), 401),
        (format!("Bearer {admin}"), 409),
    ] {
        let response = c
            .post(server.url("/v1/rules"))
            .header("authorization", auth)
            .json(&common::banner("LOG-1", "landing", "hi"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status);
    }
    server.stop();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("DEBUG"),
        "the log ran at debug level, so the check covers it: {log}"
    );
    for secret in [admin, unknown] {
        assert!(!log.contains(secret), "a token is in the log:\n{log}");
    }
}

#[tokio::test]
async fn every_answer_says_nosniff() {
    let api = Api::start(|_| {}).await;
    for request in [
        req(Method::GET, "/health"),
        req(Method::GET, "/metrics"),
        req(Method::GET, "/admin"),
        req(Method::GET, "/v1/rules"),
        req(Method::GET, "/no/such/route"),
        req(Method::POST, "/v1/rules"),
        req(Method::POST, "/v1/evaluate/checkout_terms").raw(b"{not json"),
    ] {
        let response = api.call(request).await;
        assert_eq!(
            response.headers["x-content-type-options"], "nosniff",
            "{} answer without nosniff",
            response.status
        );
    }
}

/// The admin's pages allow no script at all and only this server's stylesheet; the pages hold
/// no inline script or style that the policy would block, and the stylesheet is served.
#[tokio::test]
async fn the_admin_page_has_a_strict_content_security_policy() {
    let api = Api::start(|_| {}).await;
    let response = api.call(req(Method::GET, "/admin")).await;
    assert_eq!(response.status, 200);
    let csp = response.headers["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    for directive in [
        "script-src 'none'",
        "style-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!response.text.contains("<script"), "{}", response.text);
    assert!(!response.text.contains("<style") && !response.text.contains("style="));
    assert!(response
        .text
        .contains(r#"<link rel="stylesheet" href="/admin/static/admin.css">"#));
    let css = api.call(req(Method::GET, "/admin/static/admin.css")).await;
    assert_eq!(css.status, 200);
    assert_eq!(css.headers["content-type"], "text/css; charset=utf-8");
    assert!(css.text.contains("font-family"));
}

#[tokio::test]
async fn refused_tokens_are_counted_by_reason() {
    let api = Api::start(|_| {}).await;
    api.store().create_tenant("acme").await.unwrap();
    let read = api.token(TokenRole::Read, None).await;
    let acme_admin = api.token(TokenRole::Admin, Some("acme")).await;
    let sends = [
        (req(Method::POST, "/v1/rules"), "missing_token"),
        (
            req(Method::POST, "/v1/rules").header("authorization", "Basic abc"),
            "bad_token",
        ),
        (
            req(Method::POST, "/v1/rules").token("rb_unknown"),
            "invalid_token",
        ),
        (
            req(Method::POST, "/v1/rules").token("rb_unknown2"),
            "invalid_token",
        ),
        (
            req(Method::POST, "/v1/rules").token(&read),
            "forbidden_role",
        ),
        (
            req(Method::POST, "/v1/cache/invalidate").token(&acme_admin),
            "forbidden_tenant",
        ),
    ];
    for (request, code) in sends {
        let response = api.call(request).await;
        assert_eq!(response.code(), code, "{}", response.text);
    }
    // A read that needs no token and a write with a good one are not failures.
    assert_eq!(api.call(req(Method::GET, "/v1/rules")).await.status, 200);
    let metrics = api.call(req(Method::GET, "/metrics")).await.text;
    for (reason, count) in [
        ("missing_token", 1),
        ("bad_token", 1),
        ("invalid_token", 2),
        ("forbidden_role", 1),
        ("forbidden_tenant", 1),
    ] {
        let line = format!("rulebook_auth_failures_total{{reason=\"{reason}\"}} {count}\n");
        assert!(metrics.contains(&line), "no `{line}` in:\n{metrics}");
    }
    let series = metrics
        .lines()
        .filter(|l| l.starts_with("rulebook_auth_failures_total{"))
        .count();
    assert_eq!(series, 5, "one series per reason, whatever was sent");
}
