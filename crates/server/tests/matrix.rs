//! The tenant × role matrix: every endpoint, called with no token and with a read, write and
//! admin token each scoped to the request's tenant, to another tenant, and to all tenants. Each
//! cell's status is stated by the table below (from what the endpoint needs) and checked, and no
//! answer carries the other tenant's data. Reads need a token here (`reads_need_token`, as off
//! loopback), so every row has something to refuse.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{req, Api, Req, ADMIN};
use http_body_util::BodyExt;
use rulebook_store::{Author, TokenRole};
use serde_json::{json, Value};
use tower::ServiceExt;

/// The tenant every request names.
const OWN: &str = "acme";
/// The tenant whose data must never show.
const OTHER: &str = "globex";
/// Written into everything of [`OTHER`]'s; no answer to a request for [`OWN`] may contain it.
const MARKER: &str = "globex-secret-marker";

/// What an endpoint asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Need {
    Nothing,
    Read,
    Write,
    Admin,
}

/// A token's scope, relative to the request's tenant.
#[derive(Debug, Clone, Copy)]
enum Scope {
    Own,
    Other,
    All,
}

/// Who calls: no token, or a token's role and scope.
type Caller = Option<(TokenRole, Scope)>;

/// One endpoint: how to call it for the rule `id` (a fresh rule of [`OWN`] per cell), what it
/// needs, and its status when the caller may.
struct Endpoint {
    method: Method,
    path: &'static str,
    need: Need,
    /// The status of an allowed call.
    ok: u16,
    body: fn(&str) -> Option<Value>,
    if_match: bool,
    /// A stream: the status is checked, the body is read only for its first frame.
    stream: bool,
}

fn none(_: &str) -> Option<Value> {
    None
}

fn endpoints() -> Vec<Endpoint> {
    let e = |method: Method, path: &'static str, need: Need, ok: u16| Endpoint {
        method,
        path,
        need,
        ok,
        body: none,
        if_match: false,
        stream: false,
    };
    vec![
        e(Method::GET, "/health", Need::Nothing, 200),
        e(Method::GET, "/health/live", Need::Nothing, 200),
        e(Method::GET, "/metrics", Need::Nothing, 200),
        e(Method::GET, "/admin", Need::Nothing, 200),
        e(Method::GET, "/openapi.json", Need::Nothing, 200),
        Endpoint {
            body: |_| Some(json!({"entry_points": ["matrix"], "context": {"country": "FR"}})),
            ..e(Method::POST, "/v1/evaluate", Need::Read, 200)
        },
        Endpoint {
            body: |_| Some(json!({"context": {"country": "FR"}})),
            ..e(Method::POST, "/v1/evaluate/matrix", Need::Read, 200)
        },
        e(Method::GET, "/v1/params/{id}/limit", Need::Read, 200),
        Endpoint {
            body: |_| Some(json!({"context": {"country": "FR"}})),
            ..e(
                Method::POST,
                "/ofrep/v1/evaluate/flags/{id}",
                Need::Read,
                200,
            )
        },
        Endpoint {
            body: |_| Some(json!({"context": {"country": "FR"}})),
            ..e(Method::POST, "/ofrep/v1/evaluate/flags", Need::Read, 200)
        },
        Endpoint {
            body: |_| Some(json!({"input": {"amount": 10}})),
            ..e(Method::POST, "/v1/score/pad_trade", Need::Read, 200)
        },
        e(Method::GET, "/v1/rules", Need::Read, 200),
        Endpoint {
            body: |id| Some(rule(&format!("{id}-new"))),
            ..e(Method::POST, "/v1/rules", Need::Write, 201)
        },
        Endpoint {
            body: |id| {
                Some(json!({"rules": [rule(&format!("{id}-imported"))], "reason": "matrix"}))
            },
            ..e(Method::POST, "/v1/rules/import", Need::Write, 200)
        },
        // The rule whose id is `import` (there is none) is served by the import route's GET, PUT
        // and DELETE.
        e(Method::GET, "/v1/rules/import", Need::Read, 404),
        Endpoint {
            body: |_| {
                let mut rule = rule("import");
                rule["version"] = json!(1);
                Some(rule)
            },
            ..e(Method::PUT, "/v1/rules/import", Need::Write, 404)
        },
        Endpoint {
            body: |_| Some(json!({"version": 1, "reason": "matrix"})),
            ..e(Method::DELETE, "/v1/rules/import", Need::Write, 404)
        },
        e(Method::GET, "/v1/rules/{id}", Need::Read, 200),
        Endpoint {
            body: |id| Some(rule(id)),
            if_match: true,
            ..e(Method::PUT, "/v1/rules/{id}", Need::Write, 200)
        },
        Endpoint {
            body: |_| Some(json!({"reason": "matrix"})),
            if_match: true,
            ..e(Method::DELETE, "/v1/rules/{id}", Need::Write, 200)
        },
        e(Method::GET, "/v1/rules/{id}/enabled", Need::Read, 200),
        Endpoint {
            body: |_| Some(json!({"params": {"limit": 5}})),
            if_match: true,
            ..e(Method::PATCH, "/v1/rules/{id}/params", Need::Write, 200)
        },
        Endpoint {
            if_match: true,
            ..e(Method::POST, "/v1/rules/{id}/enable", Need::Write, 200)
        },
        Endpoint {
            if_match: true,
            ..e(Method::POST, "/v1/rules/{id}/disable", Need::Write, 200)
        },
        e(Method::GET, "/v1/rules/{id}/history", Need::Read, 200),
        e(Method::GET, "/v1/rules/{id}/history/1", Need::Read, 200),
        e(
            Method::GET,
            "/v1/rules/{id}/diff?from=1&to=1",
            Need::Read,
            200,
        ),
        Endpoint {
            body: |_| Some(json!({"version": 1, "reason": "matrix"})),
            ..e(Method::POST, "/v1/rules/{id}/rollback", Need::Write, 200)
        },
        e(Method::GET, "/v1/snapshot", Need::Read, 200),
        Endpoint {
            stream: true,
            ..e(Method::GET, "/v1/changes?after=0", Need::Read, 200)
        },
        e(Method::GET, "/v1/decisions", Need::Read, 200),
        e(Method::GET, "/v1/decisions/{decision}", Need::Read, 200),
        e(Method::GET, "/v1/cache/stats", Need::Read, 200),
        Endpoint {
            body: |_| Some(json!({"all": true})),
            ..e(Method::POST, "/v1/cache/invalidate", Need::Admin, 200)
        },
    ]
}

/// A rule of the matrix's entry point with a param `limit`.
fn rule(id: &str) -> Value {
    json!({
        "id": id,
        "entry_point": "matrix",
        "condition": {"==": [{"var": "country"}, "FR"]},
        "actions": [{"type": "display_message", "message": format!("shown by {id}")}],
        "params": {"limit": 1}
    })
}

/// The status a caller gets: 401 without a token where one is needed, 403 for a role below the
/// need or a token of another tenant, else the endpoint's own.
fn expected(endpoint: &Endpoint, caller: Caller) -> u16 {
    let need = endpoint.need;
    if need == Need::Nothing {
        return endpoint.ok;
    }
    let Some((role, scope)) = caller else {
        return 401;
    };
    let has = match role {
        TokenRole::Read => Need::Read,
        TokenRole::Write => Need::Write,
        TokenRole::Admin => Need::Admin,
    };
    match (has >= need, scope) {
        (false, _) | (true, Scope::Other) => 403,
        (true, Scope::Own | Scope::All) => endpoint.ok,
    }
}

/// Every (method, path template) of the OpenAPI document, read the way tests/openapi.rs reads it.
fn documented_operations() -> BTreeSet<(String, String)> {
    let document = serde_json::to_value(rulebook::api::openapi()).unwrap();
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

/// Whether the matrix's concrete `path` (its query left off; `{id}` and `{decision}` stand for
/// the ids filled in per cell) is an instance of the document's `template`.
fn instance_of(path: &str, template: &str) -> bool {
    let path = path.split('?').next().unwrap();
    let (path, template): (Vec<_>, Vec<_>) =
        (path.split('/').collect(), template.split('/').collect());
    path.len() == template.len()
        && path
            .iter()
            .zip(&template)
            .all(|(p, t)| p == t || t.starts_with('{'))
}

/// The document and the matrix cannot drift: every documented operation has a row here, so a new
/// endpoint is checked for every role and tenant scope. A row is matched to the template with the most literal segments among the
/// documented ones of its method, as the router does.
#[test]
fn every_documented_operation_has_a_matrix_row() {
    let documented = documented_operations();
    assert!(
        documented.len() >= 20,
        "the document lists only {} operations",
        documented.len()
    );
    let mut covered = BTreeSet::new();
    for endpoint in endpoints() {
        let method = endpoint.method.as_str().to_owned();
        let best = documented
            .iter()
            .filter(|(m, t)| *m == method && instance_of(endpoint.path, t))
            .max_by_key(|(_, t)| t.split('/').filter(|s| !s.starts_with('{')).count());
        if let Some(operation) = best {
            covered.insert(operation.clone());
        }
    }
    let missing: Vec<_> = documented.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "documented operations with no row in the matrix's endpoints(): {missing:?}; add a row \
         (method, a concrete path, what it needs, its status)"
    );
}

#[tokio::test]
async fn every_endpoint_by_role_and_tenant_scope_answers_as_stated_and_never_leaks() {
    let api = Api::start(|c| {
        c.reads_need_token = Some(true);
        c.decision_log = true;
    })
    .await;
    let store = api.store();
    for tenant in [OWN, OTHER] {
        store.create_tenant(tenant).await.unwrap();
        for rule in rulebook_rules::examples::seed_rules(tenant) {
            store
                .create_rule(tenant, rule, &Author::new("setup"))
                .await
                .unwrap();
        }
    }
    // The other tenant's data, everywhere it can be: rules, params, history, decisions.
    let secret = json!({
        "id": "SECRET",
        "entry_point": "matrix",
        "name": MARKER,
        "condition": true,
        "actions": [{"type": "display_message", "message": MARKER}],
        "params": {"limit": MARKER}
    });
    let created = api
        .call(
            req(Method::POST, "/v1/rules")
                .token(ADMIN)
                .tenant(OTHER)
                .json(secret),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let logged = api
        .call(
            req(Method::POST, "/v1/evaluate/matrix")
                .token(ADMIN)
                .tenant(OTHER)
                .json(json!({"context": {"note": MARKER}})),
        )
        .await;
    assert_eq!(logged.status, 200, "{}", logged.text);

    let mut callers: Vec<(String, Caller, Option<String>)> = vec![("no token".into(), None, None)];
    for role in common::ROLES {
        for (scope, tenant) in [
            (Scope::Own, Some(OWN)),
            (Scope::Other, Some(OTHER)),
            (Scope::All, None),
        ] {
            let token = api.token(role, tenant).await;
            callers.push((
                format!("{} token for {scope:?}", role.as_str()),
                Some((role, scope)),
                Some(token),
            ));
        }
    }

    // A decision of the request's tenant, once the log (written off the request path) has it.
    let evaluated = api
        .call(
            req(Method::POST, "/v1/evaluate/matrix")
                .token(ADMIN)
                .tenant(OWN)
                .json(json!({"context": {"country": "FR"}})),
        )
        .await;
    let decision = evaluated.body["decision_id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while api
        .call(
            req(Method::GET, &format!("/v1/decisions/{decision}"))
                .token(ADMIN)
                .tenant(OWN),
        )
        .await
        .status
        != StatusCode::OK
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "decision {decision} never reached the log"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The marker is there to be found: asked for by its own tenant, it shows.
    for path in ["/v1/rules", "/v1/decisions", "/v1/rules/SECRET/history"] {
        let own = api
            .call(req(Method::GET, path).token(ADMIN).tenant(OTHER))
            .await;
        assert!(own.text.contains(MARKER), "{path}: {}", own.text);
    }

    let endpoints = endpoints();
    let mut cells = 0;
    let mut wrong = Vec::new();
    for (n, endpoint) in endpoints.iter().enumerate() {
        for (m, (who, caller, token)) in callers.iter().enumerate() {
            // A fresh rule of the request's tenant per cell, so writes in one cell do not change
            // what the next one finds.
            let id = format!("M{n}-{m}");
            let made = api
                .call(
                    req(Method::POST, "/v1/rules")
                        .token(ADMIN)
                        .tenant(OWN)
                        .json(rule(&id)),
                )
                .await;
            assert_eq!(made.status, 201, "{}", made.text);
            let path = endpoint
                .path
                .replace("{id}", &id)
                .replace("{decision}", &decision);
            let mut request = req(endpoint.method.clone(), &path).tenant(OWN);
            if let Some(token) = token {
                request = request.token(token);
            }
            if endpoint.if_match {
                request = request.header("if-match", "\"1\"");
            }
            if let Some(body) = (endpoint.body)(&id) {
                request = request.json(body);
            }
            let (status, text) = if endpoint.stream {
                first_frame(&api, request).await
            } else {
                let answer = api.call(request).await;
                (answer.status, answer.text)
            };
            cells += 1;
            let want = expected(endpoint, *caller);
            if status.as_u16() != want {
                wrong.push(format!(
                    "{} {path} with {who}: {status}, stated {want}: {text}",
                    endpoint.method
                ));
            }
            if text.contains(MARKER) {
                wrong.push(format!(
                    "{} {path} with {who} leaks {OTHER}'s data: {text}",
                    endpoint.method
                ));
            }
        }
    }
    assert_eq!(cells, endpoints.len() * callers.len());
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Calls a streaming endpoint: its status, and the text of its first frame (or nothing, if the
/// stream sends none within a second).
async fn first_frame(api: &Api, request: Req) -> (StatusCode, String) {
    let response = api.router.clone().oneshot(request.build()).await.unwrap();
    let status = response.status();
    let mut body = response.into_body();
    let text = match tokio::time::timeout(Duration::from_secs(1), body.frame()).await {
        Ok(Some(Ok(frame))) => frame
            .into_data()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default(),
        _ => String::new(),
    };
    (status, text)
}
