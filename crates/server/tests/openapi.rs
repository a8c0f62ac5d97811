//! The OpenAPI document against the router it describes: every route is documented, every
//! documented operation is routed, and the document is served at `/openapi.json` without a
//! token. (schemathesis, run by `scripts/schemathesis`, checks the answers against it.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use common::{req, Api};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The methods a route may take besides `HEAD`, which axum answers for every `GET` route.
const METHODS: [Method; 6] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

fn document() -> Value {
    serde_json::to_value(rulebook::api::openapi()).unwrap()
}

/// Every (path, method) of the document, methods upper case.
fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if METHODS
                .iter()
                .any(|m| m.as_str().eq_ignore_ascii_case(method))
            {
                operations.insert((path.clone(), method.to_uppercase()));
            }
        }
    }
    operations
}

/// The paths the router serves. axum has no public list of routes; its `Debug` shows each as
/// `RouteId(n): "/path"`, and the test fails loudly (rather than passing on nothing) if that
/// ever stops being so.
fn routed_paths(router: &Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    // The routes are in `path_router`; `fallback_router` holds axum's own catch-all for the
    // fallback, which is not a route of ours.
    let routes = debug
        .split_once("path_router")
        .and_then(|(_, rest)| rest.split_once("fallback_router"))
        .map_or("", |(routes, _)| routes);
    let mut paths = BTreeSet::new();
    let mut rest = routes;
    while let Some(at) = rest.find("RouteId(") {
        rest = &rest[at..];
        let Some(open) = rest.find(": \"") else { break };
        let tail = &rest[open + 3..];
        let close = tail.find('"').unwrap();
        paths.insert(tail[..close].to_owned());
        rest = &tail[close..];
    }
    assert!(
        paths.len() >= 20,
        "found only {} routes in the router's Debug output: axum's Debug format changed; \
         read the routes another way\n{debug}",
        paths.len()
    );
    paths
}

/// `path` with each `{param}` filled in with a plausible value.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{version}" => "1",
            s if s.starts_with('{') => "openapi_probe",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The status and error code (when there is one) of `method path`, without a token and with an
/// empty body. The body is read only for 404 and 405: a change stream never ends.
async fn probe(router: &Router, method: Method, path: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    if status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED {
        return (status, String::new());
    }
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// A route the document lacks fails here: every path the router serves is in the document, and
/// on each of them every method that is not documented answers 405.
#[tokio::test]
async fn every_route_is_in_the_openapi_document() {
    let api = Api::start(|_| {}).await;
    let document = document();
    let operations = documented(&document);
    let documented_paths: BTreeSet<String> = operations.iter().map(|(p, _)| p.clone()).collect();
    // The one exemption: the web admin's pages (`/admin`, `/admin/...`) are HTML for people,
    // not operations of the JSON API, so the document leaves them out (see `rulebook::admin`).
    let routed: BTreeSet<String> = routed_paths(&api.router)
        .into_iter()
        .filter(|path| path != "/admin" && !path.starts_with("/admin/"))
        .collect();
    let undocumented: Vec<&String> = routed.difference(&documented_paths).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in the OpenAPI document: {undocumented:?}; route them with `routes!` \
         and a `#[utoipa::path]` annotation (see api::routes)"
    );
    for path in &routed {
        for method in METHODS {
            if operations.contains(&(path.clone(), method.as_str().to_owned())) {
                continue;
            }
            let (status, code) = probe(&api.router, method.clone(), &concrete(path)).await;
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
                "`{method} {path}` is served but not in the OpenAPI document"
            );
        }
    }
}

/// Every operation of the document is routed: it answers with something other than the router's
/// own 404 (`no_route`) or 405.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let api = Api::start(|_| {}).await;
    let operations = documented(&document());
    assert!(operations.len() >= 30, "{operations:?}");
    for (path, method) in &operations {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, code) = probe(&api.router, method.clone(), &concrete(path)).await;
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "`{method} {path}` is in the document but not routed"
        );
        assert_ne!(
            code, "no_route",
            "`{method} {path}` is in the document but not routed"
        );
    }
}

#[tokio::test]
async fn the_document_is_served_at_openapi_json_without_a_token() {
    let api = Api::start(|config| config.reads_need_token = Some(true)).await;
    // Reads need a token here, so a read without one is refused ...
    let refused = api.call(req(Method::GET, "/v1/rules")).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    // ... but the document, like /health, is not.
    let served = api.call(req(Method::GET, "/openapi.json")).await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.text);
    assert_eq!(served.headers["content-type"], "application/json");
    assert!(
        served.body["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        served.body["openapi"]
    );
    assert_eq!(served.body, document());
}

/// The parts a client relies on are in the document: the error shape, the version and freshness
/// headers, the bearer scheme.
#[test]
fn the_document_names_the_error_shape_and_the_headers() {
    let document = document();
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["Error"]["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorDetail"
    );
    let error = &schemas["ErrorDetail"];
    for field in ["code", "message", "errors", "current_version"] {
        assert!(
            error["properties"].get(field).is_some(),
            "`Error.error.{field}` is missing: {error}"
        );
    }
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let get = &document["paths"]["/v1/rules/{id}"]["get"];
    let headers = &get["responses"]["200"]["headers"];
    assert!(headers.get("ETag").is_some(), "{get}");
    assert!(headers.get("X-Rulebook-Seq").is_some(), "{get}");
    assert!(get["responses"].get("404").is_some(), "{get}");
    let unavailable = &get["responses"]["503"]["headers"];
    assert!(unavailable.get("Retry-After").is_some(), "{get}");
    let parameters: Vec<&str> = get["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in ["X-Tenant-ID", "min_seq", "X-Rulebook-Min-Seq", "id"] {
        assert!(parameters.contains(&name), "{name} in {parameters:?}");
    }

    let put = &document["paths"]["/v1/rules/{id}"]["put"];
    assert!(
        put["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "If-Match" && p["in"] == "header"),
        "{put}"
    );
    assert!(put["responses"].get("409").is_some(), "{put}");
    assert!(put["responses"].get("428").is_some(), "{put}");
    assert_eq!(put["security"], serde_json::json!([{"bearer": []}]));
}

/// A response's JSON schema as text, its `$ref` (if it is one) read from the components.
fn resolved(document: &Value, response: &Value) -> String {
    let schema = &response["content"]["application/json"]["schema"];
    match schema["$ref"].as_str() {
        Some(name) => {
            let name = name.trim_start_matches("#/components/schemas/");
            document["components"]["schemas"][name].to_string()
        }
        None => schema.to_string(),
    }
}

/// What main added since the document was first written is in it: pages (`limit` bounded as
/// `api::page` bounds it, `cursor`, `next_cursor`), explain, drafts and contexts on evaluate, and
/// the Django import's fields.
#[test]
fn the_document_names_pages_explain_drafts_contexts_and_django_imports() {
    let document = document();
    let schemas = &document["components"]["schemas"];
    for (path, max) in [
        ("/v1/rules", rulebook::api::page::MAX_LIMIT),
        ("/v1/rules/{id}/history", rulebook::api::page::MAX_LIMIT),
        (
            "/v1/decisions",
            rulebook::api::decisions::MAX_LIMIT as usize,
        ),
    ] {
        let get = &document["paths"][path]["get"];
        let parameters = get["parameters"].as_array().unwrap();
        let limit = parameters.iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(limit["in"], "query", "{path}");
        assert_eq!(limit["schema"]["minimum"], 1, "{path}: {limit}");
        assert_eq!(limit["schema"]["maximum"], max, "{path}: {limit}");
        assert!(
            parameters.iter().any(|p| p["name"] == "cursor"),
            "{path}: {parameters:?}"
        );
        let answer = resolved(&document, &get["responses"]["200"]);
        assert!(answer.contains("next_cursor"), "{path}: {answer}");
    }

    let evaluate = &document["paths"]["/v1/evaluate/{entry_point}"]["post"];
    let body = &schemas["EvaluateBody"]["properties"];
    for field in ["context", "contexts", "drafts", "explain"] {
        assert!(body.get(field).is_some(), "EvaluateBody.{field}: {body}");
    }
    let answer = resolved(&document, &evaluate["responses"]["200"]);
    for part in [
        "\"results\"",
        "\"drafts\"",
        "\"decision_id\"",
        "schemas/Evaluation\"",
    ] {
        assert!(answer.contains(part), "{part} in {answer}");
    }
    let explain = serde_json::to_string(&schemas["Evaluation"]).unwrap();
    assert!(explain.contains("RuleOutcome"), "{explain}");
    assert!(schemas.get("Outcome").is_some());

    let import = &schemas["ImportBody"]["properties"];
    for field in [
        "rules", "format", "map", "ignore", "model", "reason", "dry_run",
    ] {
        assert!(import.get(field).is_some(), "ImportBody.{field}: {import}");
    }
    let import = resolved(
        &document,
        &document["paths"]["/v1/rules/import"]["post"]["responses"]["200"],
    );
    assert!(import.contains("\"skipped\""), "{import}");
}
