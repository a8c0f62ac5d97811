//! Sign in and out, the tenant switch, entry points, rule lists and search, trying an entry
//! point, and operations.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use rulebook_rules::DEFAULT_TENANT;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::{encode, Answer, Call};
use super::session::{self, set_cookie, Session, SESSION_COOKIE, SIGN_IN_COOKIE};
use super::{
    api_error_page, csrf_refusal, message_page, page, pretty, render, AdminState, Frame, SignedIn,
};
use crate::metrics::AuthFailure;

/// `GET /admin/static/admin.css`.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("admin.css"),
    )
        .into_response()
}

/// `GET /admin`: the entry points when signed in, else the sign-in page.
pub async fn home(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    match state.sessions.of(&headers) {
        Some(session) => entry_points(&state, &session).await,
        None => sign_in_page(&headers, StatusCode::OK, None),
    }
}

/// The sign-in page, with a fresh form token in a cookie of its own (there is no session yet
/// to hold it), so a sign-in form cannot be sent from another site either.
fn sign_in_page(headers: &HeaderMap, status: StatusCode, error: Option<&str>) -> Response {
    let csrf = session::random_token();
    let cookie = set_cookie(
        SIGN_IN_COOKIE,
        &csrf,
        std::time::Duration::from_secs(3600),
        session::over_tls(headers),
    );
    let mut response = render(status, "sign_in.html", page! { csrf, error });
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

/// `POST /admin/sign-in`: checks the token and starts a session (303 to `/admin`). A token
/// that is unknown or revoked is counted with the API's failed authentications.
pub async fn sign_in(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    use subtle::ConstantTimeEq as _;
    let expected = session::cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(form.csrf.as_bytes())) {
        return sign_in_page(
            &headers,
            StatusCode::FORBIDDEN,
            Some("the sign-in form had expired: it is fresh now, sign in again"),
        );
    }
    let secret = form.token.trim();
    if secret.is_empty() {
        state.app.metrics().auth_failed(AuthFailure::MissingToken);
        return sign_in_page(
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("enter a token (create one with `rulebook tokens create`)"),
        );
    }
    let token = match crate::auth::token_for_secret(&state.app, secret).await {
        Ok(Some(token)) => token,
        Ok(None) => {
            state.app.metrics().auth_failed(AuthFailure::InvalidToken);
            return sign_in_page(
                &headers,
                StatusCode::UNAUTHORIZED,
                Some("this token is not valid (unknown or revoked): check it, or create a new one with `rulebook tokens create`"),
            );
        }
        Err(e) => {
            return sign_in_page(
                &headers,
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&format!("the token could not be checked now: {e}")),
            )
        }
    };
    let tenant = token
        .tenant
        .clone()
        .unwrap_or_else(|| DEFAULT_TENANT.to_owned());
    let id = state
        .sessions
        .start(secret, &token.name, token.role, token.tenant, &tenant);
    let secure = session::over_tls(&headers);
    let mut response = Redirect::to("/admin").into_response();
    for cookie in [
        set_cookie(SESSION_COOKIE, &id, session::LIFETIME, secure),
        set_cookie(SIGN_IN_COOKIE, "", std::time::Duration::ZERO, secure),
    ] {
        if let Ok(value) = cookie.parse() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// A form that carries only its CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /admin/sign-out`: ends the session and removes its cookie.
pub async fn sign_out(
    State(state): State<AdminState>,
    SignedIn(session): SignedIn,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !session.csrf_matches(&form.csrf) {
        return super::csrf_refused(&Frame::of(&state, &session).await);
    }
    state.sessions.end(&headers);
    let cookie = set_cookie(
        SESSION_COOKIE,
        "",
        std::time::Duration::ZERO,
        session::over_tls(&headers),
    );
    let mut response = Redirect::to("/admin").into_response();
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The tenant switch.
#[derive(Debug, Deserialize)]
pub struct TenantForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
}

/// `POST /admin/tenant`: the pages act on another tenant, one the token may see.
pub async fn switch_tenant(
    State(state): State<AdminState>,
    SignedIn(session): SignedIn,
    Form(form): Form<TenantForm>,
) -> Response {
    let frame = Frame::of(&state, &session).await;
    if let Some(refused) = csrf_refusal(&frame, &session, &form.csrf) {
        return refused;
    }
    if !frame.tenants.contains(&form.tenant) {
        return message_page(
            Some(&frame),
            StatusCode::FORBIDDEN,
            "No such tenant here",
            &format!(
                "tenant `{}` is not one this token may see: pick one of {}",
                form.tenant,
                frame.tenants.join(", ")
            ),
            "/admin",
        );
    }
    session.set_tenant(&form.tenant);
    Redirect::to("/admin").into_response()
}

/// Every rule of the session's tenant, by priority then id, read page by page.
pub async fn all_rules(state: &AdminState, session: &Session) -> Result<Vec<Value>, Answer> {
    let mut rules = Vec::new();
    let mut cursor: Option<String> = None;
    // 100 pages of the largest size: far beyond any tenant's rules, and still a bound.
    for _ in 0..100 {
        let mut path = "/v1/rules?limit=10000".to_owned();
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={}", encode(cursor)));
        }
        let answer = Call::new(&state.api, session, Method::GET, path)
            .send()
            .await;
        if !answer.ok() {
            return Err(answer);
        }
        if let Some(page) = answer.body["rules"].as_array() {
            rules.extend(page.iter().cloned());
        }
        match answer.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    Ok(rules)
}

#[derive(Debug, Default, Serialize)]
struct EntryPointRow {
    name: String,
    rules: usize,
    enabled: usize,
}

async fn entry_points(state: &AdminState, session: &Session) -> Response {
    let frame = Frame::of(state, session).await;
    let rules = match all_rules(state, session).await {
        Ok(rules) => rules,
        Err(answer) => return api_error_page(&frame, &answer, "/admin"),
    };
    let mut by_entry_point: BTreeMap<String, EntryPointRow> = BTreeMap::new();
    let mut without = 0;
    for rule in &rules {
        let Some(name) = rule["entry_point"].as_str() else {
            without += 1;
            continue;
        };
        let row = by_entry_point
            .entry(name.to_owned())
            .or_insert_with(|| EntryPointRow {
                name: name.to_owned(),
                ..EntryPointRow::default()
            });
        row.rules += 1;
        if rule["enabled"].as_bool().unwrap_or(true) {
            row.enabled += 1;
        }
    }
    let entry_points: Vec<EntryPointRow> = by_entry_point.into_values().collect();
    render(
        StatusCode::OK,
        "home.html",
        page! { frame, entry_points, without, total => rules.len() },
    )
}

/// The query of the rule list.
#[derive(Debug, Deserialize)]
pub struct RulesQuery {
    /// Only this entry point's rules; `-` for rules without one.
    #[serde(default)]
    entry_point: Option<String>,
    /// Only rules whose id, name or a tag contains this (case-insensitive).
    #[serde(default)]
    q: Option<String>,
}

/// One row of a rule list.
#[derive(Debug, Serialize)]
struct RuleRow {
    id: String,
    name: String,
    entry_point: String,
    priority: i64,
    enabled: bool,
    stop_processing: bool,
    window: String,
    version: i64,
    updated_by: String,
    updated_at: String,
    tags: Vec<String>,
}

fn rule_row(rule: &Value) -> RuleRow {
    let text = |field: &str| rule[field].as_str().unwrap_or_default().to_owned();
    let window = match (rule["active_from"].as_str(), rule["active_until"].as_str()) {
        (None, None) => "always".to_owned(),
        (from, until) => format!(
            "{} – {}",
            from.map(short_time).unwrap_or_else(|| "…".to_owned()),
            until.map(short_time).unwrap_or_else(|| "…".to_owned())
        ),
    };
    RuleRow {
        id: text("id"),
        name: text("name"),
        entry_point: text("entry_point"),
        priority: rule["priority"].as_i64().unwrap_or_default(),
        enabled: rule["enabled"].as_bool().unwrap_or(true),
        stop_processing: rule["stop_processing"].as_bool().unwrap_or(false),
        window,
        version: rule["version"].as_i64().unwrap_or_default(),
        updated_by: text("updated_by"),
        updated_at: rule["updated_at"]
            .as_str()
            .map(short_time)
            .unwrap_or_default(),
        tags: rule["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// An RFC 3339 time as `2026-11-30 06:39 UTC`.
pub fn short_time(time: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(time) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M UTC")
            .to_string(),
        Err(_) => time.to_owned(),
    }
}

/// `GET /admin/rules[?entry_point=EP][&q=TEXT]`: rules in evaluation order (priority, then id).
pub async fn rules(
    State(state): State<AdminState>,
    SignedIn(session): SignedIn,
    Query(query): Query<RulesQuery>,
) -> Response {
    let frame = Frame::of(&state, &session).await;
    let all = match all_rules(&state, &session).await {
        Ok(rules) => rules,
        Err(answer) => return api_error_page(&frame, &answer, "/admin"),
    };
    let entry_point = query.entry_point.filter(|e| !e.is_empty());
    let q = query
        .q
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty());
    let needle = q.as_deref().map(str::to_lowercase);
    let rows: Vec<RuleRow> = all
        .iter()
        .map(rule_row)
        .filter(|row| match entry_point.as_deref() {
            None => true,
            Some("-") => row.entry_point.is_empty(),
            Some(ep) => row.entry_point == ep,
        })
        .filter(|row| match &needle {
            None => true,
            Some(n) => {
                row.id.to_lowercase().contains(n)
                    || row.name.to_lowercase().contains(n)
                    || row.tags.iter().any(|t| t.to_lowercase().contains(n))
            }
        })
        .collect();
    render(
        StatusCode::OK,
        "rules.html",
        page! { frame, rows, entry_point, q },
    )
}

/// The sample context of an entry point: the one last tried in this session, else `{}`.
pub fn sample_context(session: &Session, entry_point: &str) -> String {
    session
        .context(entry_point)
        .unwrap_or_else(|| "{\n  \n}".to_owned())
}

/// An evaluation shown on a page: what matched, the actions, errors, and the explanation per
/// rule.
#[derive(Debug, Serialize)]
pub struct Shown {
    /// The ids of the rules that matched.
    matched: Vec<String>,
    /// The actions, one JSON line each.
    actions: Vec<String>,
    /// Errors, one JSON line each.
    errors: Vec<String>,
    /// The explanation: id, version, outcome and what else the API said, per rule.
    explain: Vec<ExplainRow>,
    /// The answer as the API sent it, indented.
    raw: String,
}

#[derive(Debug, Serialize)]
struct ExplainRow {
    id: String,
    version: i64,
    priority: i64,
    outcome: String,
    detail: String,
}

/// The evaluation answer `body`, for a page.
pub fn shown(body: &Value) -> Shown {
    let lines = |field: &str| -> Vec<String> {
        body[field]
            .as_array()
            .map(|items| items.iter().map(Value::to_string).collect())
            .unwrap_or_default()
    };
    let explain = body["explain"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| {
                    let mut rest = row.as_object().cloned().unwrap_or_default();
                    for known in ["id", "version", "priority", "outcome"] {
                        rest.remove(known);
                    }
                    ExplainRow {
                        id: row["id"].as_str().unwrap_or_default().to_owned(),
                        version: row["version"].as_i64().unwrap_or_default(),
                        priority: row["priority"].as_i64().unwrap_or_default(),
                        outcome: row["outcome"].as_str().unwrap_or_default().to_owned(),
                        detail: if rest.is_empty() {
                            String::new()
                        } else {
                            Value::Object(rest).to_string()
                        },
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Shown {
        matched: body["matched"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|r| r["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        actions: lines("actions"),
        errors: lines("errors"),
        explain,
        raw: pretty(body),
    }
}

/// Parses a sample context; the error names line and column.
pub fn parse_context(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("the context is not valid JSON: {e}"))
}

/// Evaluates `entry_point` on `context` with the explanation, with `drafts` when some.
pub async fn evaluate(
    state: &AdminState,
    session: &Session,
    entry_point: &str,
    context: &Value,
    drafts: Option<Vec<Value>>,
) -> Answer {
    let mut body = json!({"context": context, "explain": true});
    if let Some(drafts) = drafts {
        body["drafts"] = Value::Array(drafts);
    }
    Call::new(
        &state.api,
        session,
        Method::POST,
        format!("/v1/evaluate/{}", encode(entry_point)),
    )
    .json(body)
    .send()
    .await
}

/// `GET /admin/try/{entry_point}`: the sample context form.
pub async fn try_page(
    State(state): State<AdminState>,
    SignedIn(session): SignedIn,
    Path(entry_point): Path<String>,
) -> Response {
    let frame = Frame::of(&state, &session).await;
    let context = sample_context(&session, &entry_point);
    let result: Option<Shown> = None;
    let error: Option<String> = None;
    render(
        StatusCode::OK,
        "try.html",
        page! { frame, entry_point, context, outcome => result, error },
    )
}

/// The try-it form.
#[derive(Debug, Deserialize)]
pub struct TryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    context: String,
}

/// `POST /admin/try/{entry_point}`: evaluates the sample context (and remembers it).
pub async fn try_run(
    State(state): State<AdminState>,
    SignedIn(session): SignedIn,
    Path(entry_point): Path<String>,
    Form(form): Form<TryForm>,
) -> Response {
    let frame = Frame::of(&state, &session).await;
    if let Some(refused) = csrf_refusal(&frame, &session, &form.csrf) {
        return refused;
    }
    let context = form.context;
    let (result, error, status) = match parse_context(&context) {
        Err(error) => (None, Some(error), StatusCode::UNPROCESSABLE_ENTITY),
        Ok(value) => {
            session.remember_context(&entry_point, &context);
            let answer = evaluate(&state, &session, &entry_point, &value, None).await;
            if answer.ok() {
                (Some(shown(&answer.body)), None, StatusCode::OK)
            } else {
                (None, Some(answer.message()), answer.status)
            }
        }
    };
    render(
        status,
        "try.html",
        page! { frame, entry_point, context, outcome => result, error },
    )
}

/// Key and value rows of a JSON object, values as compact JSON (strings bare).
fn fields(value: &Value) -> Vec<(String, String)> {
    value
        .as_object()
        .map(|object| {
            object
                .iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn ops_page(
    state: &AdminState,
    session: &Session,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let frame = Frame::of(state, session).await;
    let health = Call::new(&state.api, session, Method::GET, "/health".to_owned())
        .send()
        .await;
    let stats = Call::new(
        &state.api,
        session,
        Method::GET,
        "/v1/cache/stats".to_owned(),
    )
    .send()
    .await;
    let health_body = &health.body;
    let feed = fields(&health_body["feed"]);
    let lag = match (
        health_body["feed"]["cursor_seq"].as_i64(),
        health_body["applied_seq"].as_i64(),
    ) {
        (Some(cursor), Some(applied)) => Some(cursor - applied),
        _ => None,
    };
    let problems: Vec<(String, String)> = health_body["rules_dir"]["problems"]
        .as_array()
        .map(|p| {
            p.iter()
                .map(|p| {
                    (
                        p["path"].as_str().unwrap_or_default().to_owned(),
                        p["error"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let rules_dir = health_body["rules_dir"]["dir"].as_str().map(str::to_owned);
    let counters = fields(&stats.body["counters"]);
    let stats_error = (!stats.ok()).then(|| stats.message());
    let loads: Vec<(String, String)> = stats.body["loads"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|l| {
                    (
                        l["item"].as_str().unwrap_or_default().to_owned(),
                        l["loads"].to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    render(
        status,
        "ops.html",
        page! {
            frame,
            health_status => health_body["status"].as_str().unwrap_or("unknown"),
            ready => health_body["ready"].as_bool().unwrap_or(false),
            store => fields(&health_body["store"]),
            applied_seq => health_body["applied_seq"].as_i64(),
            feed, lag, rules_dir, problems,
            entries => stats.body["entries"].as_u64(),
            tenants_cached => stats.body["tenants_cached"].as_u64(),
            counters, loads, stats_error, notice, error,
        },
    )
}

/// `GET /admin/ops`: health, feed, rules-folder problems, cache statistics and clearing.
pub async fn ops(State(state): State<AdminState>, SignedIn(session): SignedIn) -> Response {
    ops_page(&state, &session, StatusCode::OK, None, None).await
}

/// The clear-cache form.
#[derive(Debug, Deserialize, Serialize)]
pub struct ClearForm {
    #[serde(default)]
    csrf: String,
    /// `all`, `entry_point` or `tag`.
    #[serde(default)]
    scope: String,
    /// The entry point or tag.
    #[serde(default)]
    value: String,
    /// `yes` once confirmed.
    #[serde(default)]
    confirm: String,
}

/// `POST /admin/ops/clear`: asks for confirmation, then clears (by entry point, tag or all).
pub async fn clear(
    State(state): State<AdminState>,
    SignedIn(session): SignedIn,
    Form(form): Form<ClearForm>,
) -> Response {
    let frame = Frame::of(&state, &session).await;
    if let Some(refused) = csrf_refusal(&frame, &session, &form.csrf) {
        return refused;
    }
    let value = form.value.trim().to_owned();
    let (body, what) = match form.scope.as_str() {
        "all" => (
            json!({"all": true}),
            "every cached entry of the tenant".to_owned(),
        ),
        "entry_point" if !value.is_empty() => (
            json!({"entry_points": [value]}),
            format!("the cached rules of entry point `{value}`"),
        ),
        "tag" if !value.is_empty() => (
            json!({"tags": [value]}),
            format!("the cached entries tagged `{value}`"),
        ),
        "entry_point" | "tag" => {
            return ops_page(
                &state,
                &session,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some("name the entry point or tag to clear, or choose `everything`".to_owned()),
            )
            .await
        }
        other => {
            return ops_page(
                &state,
                &session,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(format!(
                "`{other}` is not something to clear: choose everything, an entry point or a tag"
            )),
            )
            .await
        }
    };
    if form.confirm != "yes" {
        return render(
            StatusCode::OK,
            "confirm.html",
            page! { frame, what, scope => form.scope, value },
        );
    }
    let answer = Call::new(
        &state.api,
        &session,
        Method::POST,
        "/v1/cache/invalidate".to_owned(),
    )
    .json(body)
    .send()
    .await;
    if answer.ok() {
        ops_page(
            &state,
            &session,
            StatusCode::OK,
            Some(format!("Cleared {what}.")),
            None,
        )
        .await
    } else {
        ops_page(
            &state,
            &session,
            answer.status,
            None,
            Some(answer.message()),
        )
        .await
    }
}
