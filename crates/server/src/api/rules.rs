//! Rules: list, read (with `ETag` = version), create, update (with `If-Match`), params, enable,
//! disable, delete, history, and bulk import ([`import`]: many rules in one transaction).
//!
//! What `GET /v1/rules/{id}` returns, `PUT` accepts back after editing: the read-only fields
//! (`version`, `created_*`, `updated_*`) are accepted and ignored, except that a `version` that
//! disagrees with `If-Match` is a conflict. Unknown fields are rejected. Every write body may
//! carry `reason`, recorded in the history with the token's name as the author.
//!
//! Reads carry the applied position they reflect and writes the `seq` of their change, as `seq`
//! in the body and `X-Rulebook-Seq` (see [`crate::freshness`]); `seq` in a rule sent back is a
//! read-only field like `version`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rulebook_rules::{EntryPoint, FieldError, Rule};
use rulebook_store::{Author, HistoryEntry, Written};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::openapi::{
    ErrorBody, Errors, FreshDeleted, FreshHistory, FreshImportAnswer, FreshRule, FreshRuleList,
    RuleBody, TooLarge,
};
use crate::api::{bounded, page};
use crate::auth::{Caller, Reader, Writer};
use crate::error::{plural, ApiError};
use crate::extract::{parse_json, JsonBody, PathParams, QueryParams, RawBody};
use crate::freshness::{Answer, Fresh};
use crate::state::AppState;

/// The query of `GET /v1/rules`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only the rules of this entry point.
    pub entry_point: Option<String>,
    /// Rules per page, 1 to [`page::MAX_LIMIT`]; [`page::DEFAULT_LIMIT`] when absent. (The
    /// document's bounds are literals; tests/openapi.rs checks them against [`page`].)
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
}

/// The answer of `GET /v1/rules`: one page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleList {
    /// The rules, by priority then id.
    pub rules: Vec<Rule>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/rules[?entry_point=EP][&limit=N][&cursor=C]`: one page of the tenant's rules (see
/// [`page`] for how pages stay stable while others write).
#[utoipa::path(
    get,
    path = "/v1/rules",
    tag = "rules",
    params(Reader, Fresh, ListQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The rules, by priority then id", body = FreshRuleList, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        Errors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Fresh(seq): Fresh,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Answer<RuleList>, ApiError> {
    let entry_point = query
        .entry_point
        .as_deref()
        .map(EntryPoint::parse)
        .transpose()?;
    let limit = page::limit(query.limit, "rules")?;
    let after: Option<(i32, String)> = page::after(query.cursor.as_deref())?;
    let rules = state.registry().rules(&caller.tenant).await?;
    let key = |rule: &Rule| (rule.priority, rule.id.clone());
    let (rules, next_cursor) = match &entry_point {
        None => {
            let (rules, next) = page::page(&rules, key, after.as_ref(), limit);
            (rules.to_vec(), next)
        }
        Some(_) => {
            let of_entry_point: Vec<&Rule> = rules
                .iter()
                .filter(|r| r.entry_point == entry_point)
                .collect();
            let (rules, next) = page::page(&of_entry_point, |r| key(r), after.as_ref(), limit);
            (rules.iter().copied().cloned().collect(), next)
        }
    };
    Ok(Answer::new(seq, RuleList { rules, next_cursor }))
}

/// `GET /v1/rules/{id}`, with `ETag` = the version.
#[utoipa::path(
    get,
    path = "/v1/rules/{id}",
    tag = "rules",
    params(Reader, Fresh, ("id" = String, Path, pattern = "^[A-Za-z0-9_.:-]{1,128}$", example = "checkout_terms_banner", description = "The rule's id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The rule", body = FreshRule, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"), ("ETag" = String, description = "The rule's version, quoted: send it back in `If-Match`"))),
        (status = 404, description = "No such rule in the tenant", body = ErrorBody),
        Errors,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Fresh(seq): Fresh,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let rule = cached_rule(&state, &caller.tenant, &id).await?;
    Ok(with_etag(StatusCode::OK, Written { rule, seq }))
}

async fn cached_rule(state: &AppState, tenant: &str, id: &str) -> Result<Rule, ApiError> {
    Ok(Rule::clone(&*state.registry().rule(tenant, id).await?))
}

/// A rule answer: the rule with `seq`, and `ETag` = its version.
pub(crate) fn with_etag(status: StatusCode, written: Written) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", written.rule.version))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
    (
        status,
        [(header::ETAG, etag)],
        Answer::new(written.seq, written.rule),
    )
        .into_response()
}

/// `POST /v1/rules`: creates a rule (201, with `ETag` and `Location`).
#[utoipa::path(
    post,
    path = "/v1/rules",
    tag = "rules",
    params(Writer),
    request_body = RuleBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = FreshRule, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"), ("ETag" = String, description = "The rule's version, quoted: send it back in `If-Match`"), ("Location" = String, description = "The rule's URL"))),
        (status = 409, description = "A rule with this id exists (`rule_exists`)", body = ErrorBody),
        (status = 422, description = "The rule is not valid: `errors` lists every problem with its field path", body = ErrorBody),
        TooLarge,
        Errors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Writer(caller): Writer,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let (document, reason) = rule_document(&body)?;
    let rule = parse_rule(document)?;
    let created = state
        .store()
        .create_rule(&caller.tenant, rule, &author(&caller, reason))
        .await?;
    let location = HeaderValue::from_str(&format!("/v1/rules/{}", created.rule.id)).ok();
    let mut response = with_etag(StatusCode::CREATED, created);
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `PUT /v1/rules/{id}`: replaces a rule, if it is still at the version named by `If-Match`
/// (or by the body's `version` when there is no `If-Match`).
#[utoipa::path(
    put,
    path = "/v1/rules/{id}",
    tag = "rules",
    params(Writer, ("id" = String, Path, pattern = "^[A-Za-z0-9_.:-]{1,128}$", example = "checkout_terms_banner", description = "The rule's id"), IfMatch),
    request_body = RuleBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = FreshRule, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"), ("ETag" = String, description = "The rule's version, quoted: send it back in `If-Match`"))),
        (status = 404, description = "No such rule in the tenant", body = ErrorBody),
        (status = 409, description = "The rule is no longer at the version named (`current_version` says which it is at), or `If-Match` and the body disagree", body = ErrorBody),
        (status = 422, description = "The rule is not valid: `errors` lists every problem with its field path", body = ErrorBody),
        (status = 428, description = "Neither `If-Match` nor the body's `version` names the version replaced", body = ErrorBody),
        TooLarge,
        Errors,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Writer(caller): Writer,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let if_match = if_match(&headers)?;
    let (mut document, reason) = rule_document(&body)?;
    match document.get("id") {
        None => {
            document.insert("id".to_owned(), Value::String(id.clone()));
        }
        Some(Value::String(body_id)) if *body_id == id => {}
        Some(other) => {
            return Err(ApiError::bad_request(
                "id_mismatch",
                format!(
                    "the body's `id` is {other} but the URL names rule `{id}`: an id cannot be changed; create a new rule instead"
                ),
            ))
        }
    }
    let body_version = match document.get("version") {
        None => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            ApiError::validation(
                "the rule is not valid: fix the 1 problem listed in `errors`",
                vec![FieldError::new(
                    "version",
                    "must be a whole number: the version you read",
                )],
            )
        })?),
    };
    let expected = one_version(&state, &caller.tenant, if_match, body_version, &id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "missing_version",
                format!(
                    "an update must name the version it replaces: send `If-Match: \"<version>\"` with the `ETag` of `GET /v1/rules/{id}`"
                ),
            )
        })?;
    let rule = parse_rule(document)?;
    let updated = state
        .store()
        .update_rule(&caller.tenant, rule, expected, &author(&caller, reason))
        .await?;
    Ok(with_etag(StatusCode::OK, updated))
}

/// The body of `PATCH /v1/rules/{id}/params`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamsPatch {
    /// A JSON merge patch of the params: each key replaces that param, `null` removes it.
    pub params: Map<String, Value>,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// The version read, if no `If-Match` is sent.
    #[serde(default)]
    pub version: Option<i64>,
}

/// `PATCH /v1/rules/{id}/params`: changes some params, validated against the rule's schema.
#[utoipa::path(
    patch,
    path = "/v1/rules/{id}/params",
    tag = "rules",
    params(Writer, ("id" = String, Path, pattern = "^[A-Za-z0-9_.:-]{1,128}$", example = "checkout_terms_banner", description = "The rule's id"), IfMatch),
    request_body = ParamsPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = FreshRule, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"), ("ETag" = String, description = "The rule's version, quoted: send it back in `If-Match`"))),
        (status = 404, description = "No such rule in the tenant", body = ErrorBody),
        (status = 409, description = "The rule is no longer at the version named, or `If-Match` and the body disagree", body = ErrorBody),
        (status = 422, description = "The params do not fit the rule's `param_schema`: `errors` lists every problem", body = ErrorBody),
        TooLarge,
        Errors,
    )
)]
pub async fn patch_params(
    State(state): State<AppState>,
    Writer(caller): Writer,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    JsonBody(patch): JsonBody<ParamsPatch>,
) -> Result<Response, ApiError> {
    let expected = one_version(
        &state,
        &caller.tenant,
        if_match(&headers)?,
        patch.version,
        &id,
    )
    .await?;
    let current = state.store().get_rule(&caller.tenant, &id).await?;
    let mut params = current.params.clone();
    for (name, value) in patch.params {
        if value.is_null() {
            params.shift_remove(&name);
        } else {
            params.insert(name, value);
        }
    }
    let updated = state
        .store()
        .update_params(
            &caller.tenant,
            &id,
            params,
            Some(expected.unwrap_or(current.version)),
            &author(&caller, patch.reason),
        )
        .await?;
    Ok(with_etag(StatusCode::OK, updated))
}

/// The body of enable, disable and delete: all optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteBody {
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// The version read, if no `If-Match` is sent.
    #[serde(default)]
    pub version: Option<i64>,
}

/// `POST /v1/rules/{id}/enable`.
#[utoipa::path(
    post,
    path = "/v1/rules/{id}/enable",
    tag = "rules",
    params(Writer, ("id" = String, Path, pattern = "^[A-Za-z0-9_.:-]{1,128}$", example = "checkout_terms_banner", description = "The rule's id"), IfMatch),
    request_body(content = Option<WriteBody>, description = "Optional: `reason`, and `version` when no `If-Match` is sent"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Enabled", body = FreshRule, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"), ("ETag" = String, description = "The rule's version, quoted: send it back in `If-Match`"))),
        (status = 404, description = "No such rule in the tenant", body = ErrorBody),
        (status = 409, description = "The rule is no longer at the version named, or `If-Match` and the body disagree", body = ErrorBody),
        TooLarge,
        Errors,
    )
)]
pub async fn enable(
    state: State<AppState>,
    writer: Writer,
    id: PathParams<String>,
    headers: HeaderMap,
    body: JsonBody<WriteBody>,
) -> Result<Response, ApiError> {
    set_enabled(state, writer, id, headers, body, true).await
}

/// `POST /v1/rules/{id}/disable`.
#[utoipa::path(
    post,
    path = "/v1/rules/{id}/disable",
    tag = "rules",
    params(Writer, ("id" = String, Path, pattern = "^[A-Za-z0-9_.:-]{1,128}$", example = "checkout_terms_banner", description = "The rule's id"), IfMatch),
    request_body(content = Option<WriteBody>, description = "Optional: `reason`, and `version` when no `If-Match` is sent"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Disabled", body = FreshRule, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"), ("ETag" = String, description = "The rule's version, quoted: send it back in `If-Match`"))),
        (status = 404, description = "No such rule in the tenant", body = ErrorBody),
        (status = 409, description = "The rule is no longer at the version named, or `If-Match` and the body disagree", body = ErrorBody),
        TooLarge,
        Errors,
    )
)]
pub async fn disable(
    state: State<AppState>,
    writer: Writer,
    id: PathParams<String>,
    headers: HeaderMap,
    body: JsonBody<WriteBody>,
) -> Result<Response, ApiError> {
    set_enabled(state, writer, id, headers, body, false).await
}

async fn set_enabled(
    State(state): State<AppState>,
    Writer(caller): Writer,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<WriteBody>,
    enabled: bool,
) -> Result<Response, ApiError> {
    let expected = one_version(
        &state,
        &caller.tenant,
        if_match(&headers)?,
        body.version,
        &id,
    )
    .await?;
    let rule = state
        .store()
        .set_enabled(
            &caller.tenant,
            &id,
            enabled,
            expected,
            &author(&caller, body.reason),
        )
        .await?;
    Ok(with_etag(StatusCode::OK, rule))
}

/// The answer of `DELETE /v1/rules/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    /// The rule as it was.
    pub deleted: Rule,
}

/// `DELETE /v1/rules/{id}`: its history stays, ending with a `delete` entry.
#[utoipa::path(
    delete,
    path = "/v1/rules/{id}",
    tag = "rules",
    params(Writer, ("id" = String, Path, pattern = "^[A-Za-z0-9_.:-]{1,128}$", example = "checkout_terms_banner", description = "The rule's id"), IfMatch),
    request_body(content = Option<WriteBody>, description = "Optional: `reason`, and `version` when no `If-Match` is sent"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted: the rule as it was", body = FreshDeleted, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        (status = 404, description = "No such rule in the tenant", body = ErrorBody),
        (status = 409, description = "The rule is no longer at the version named, or `If-Match` and the body disagree", body = ErrorBody),
        TooLarge,
        Errors,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Writer(caller): Writer,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<WriteBody>,
) -> Result<Answer<Deleted>, ApiError> {
    let expected = one_version(
        &state,
        &caller.tenant,
        if_match(&headers)?,
        body.version,
        &id,
    )
    .await?;
    let written = state
        .store()
        .delete_rule(&caller.tenant, &id, expected, &author(&caller, body.reason))
        .await?;
    Ok(Answer::new(
        written.seq,
        Deleted {
            deleted: written.rule,
        },
    ))
}

/// The answer of `GET /v1/rules/{id}/history`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct History {
    /// The rule.
    pub rule_id: String,
    /// One page of its versions, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The query of `GET /v1/rules/{id}/history`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Versions per page, 1 to [`page::MAX_LIMIT`]; [`page::DEFAULT_LIMIT`] when absent.
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
}

/// `GET /v1/rules/{id}/history[?limit=N][&cursor=C]`: the audit trail (also for a deleted
/// rule), a page at a time, oldest first.
#[utoipa::path(
    get,
    path = "/v1/rules/{id}/history",
    tag = "rules",
    params(Reader, Fresh, ("id" = String, Path, pattern = "^[A-Za-z0-9_.:-]{1,128}$", example = "checkout_terms_banner", description = "The rule's id"), HistoryQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "One page of the versions, oldest first (also for a deleted rule)", body = FreshHistory, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        (status = 404, description = "No such rule in the tenant", body = ErrorBody),
        Errors,
    )
)]
pub async fn history(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Fresh(seq): Fresh,
    PathParams(id): PathParams<String>,
    QueryParams(query): QueryParams<HistoryQuery>,
) -> Result<Answer<History>, ApiError> {
    let limit = page::limit(query.limit, "versions")?;
    let after: Option<i64> = page::after(query.cursor.as_deref())?;
    let history = state.store().history(&caller.tenant, &id).await?;
    let (history, next_cursor) = page::page(&history, |e| e.version, after.as_ref(), limit);
    Ok(Answer::new(
        seq,
        History {
            rule_id: id,
            history: history.to_vec(),
            next_cursor,
        },
    ))
}

pub(crate) fn author(caller: &Caller, reason: Option<String>) -> Author {
    let author = Author::new(caller.name.clone());
    match reason {
        Some(reason) if !reason.trim().is_empty() => author.with_reason(reason),
        _ => author,
    }
}

/// A rule body as a JSON object, with `reason` taken out.
fn rule_document(body: &[u8]) -> Result<(Map<String, Value>, Option<String>), ApiError> {
    let value: Value = parse_json(body)?;
    let Value::Object(mut document) = value else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the request body must be a rule: a JSON object with at least an `id`",
        ));
    };
    // Read-only, like `version`: what a read answered with.
    document.shift_remove("seq");
    let reason = match document.shift_remove("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(reason)) => Some(reason),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "field `reason` must be a string saying why the rule changes",
            ))
        }
    };
    Ok((document, reason))
}

fn parse_rule(document: Map<String, Value>) -> Result<Rule, ApiError> {
    let id = document
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Rule::from_json_value(Value::Object(document)).map_err(|errors| {
        let n = errors.errors.len();
        ApiError::validation(
            if id.is_empty() {
                format!(
                    "the rule is not valid: fix the {} listed in `errors`",
                    plural(n, "problem")
                )
            } else {
                format!(
                    "rule `{id}` is not valid: fix the {} listed in `errors`",
                    plural(n, "problem")
                )
            },
            errors.errors,
        )
    })
}

/// `If-Match`, as the OpenAPI document names it: the header [`if_match`] reads.
pub(crate) struct IfMatch;

impl utoipa::IntoParams for IfMatch {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![crate::api::openapi::optional(
            "If-Match",
            utoipa::openapi::path::ParameterIn::Header,
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String)
                .pattern(Some(r#"^\s*(\*|(W/)?"?-?[0-9]{1,18}"?)\s*$"#)),
            "The `ETag` read (`\"3\"`, `W/\"3\"` or `3`): the write happens only if the rule is \
             still at that version, else 409. `*` names none.",
        )]
    }
}

/// The version named by `If-Match` (`"3"`, `W/"3"` or `3`); `*` and no header name none.
pub(crate) fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "bad_if_match",
            "the `If-Match` header is not a rule version: send the `ETag` you read, such as `\"3\"`",
        )
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text == "*" {
        return Ok(None);
    }
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse().map(Some).map_err(|_| bad())
}

/// One expected version from `If-Match` and the body; they must agree. When they do not, the
/// answer is 409 `version_conflict` naming both and the rule's current version.
async fn one_version(
    state: &AppState,
    tenant: &str,
    header: Option<i64>,
    body: Option<i64>,
    id: &str,
) -> Result<Option<i64>, ApiError> {
    match (header, body) {
        (Some(h), Some(b)) if h != b => {
            let current = cached_rule(state, tenant, id).await?.version;
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "version_conflict",
                format!(
                    "the body's `version` {b} disagrees with `If-Match` {h}; rule `{id}` is at version {current}: read it again and send one version"
                ),
            )
            .with_current_version(current))
        }
        (h, b) => Ok(h.or(b)),
    }
}

/// The body of `POST /v1/rules/import`.
///
/// With `"format": "django"`, `rules` holds the entries of a Django `manage.py dumpdata` file
/// (`[{"model": "app.rule", "pk": 1, "fields": {...}}]`), read through a field mapping whose
/// defaults are `rule_code` → `id` and `active` → `enabled` (see [`rulebook_rules::django`]):
/// `map` renames more fields (`{"code": "id"}`), `ignore` drops fields, `model` picks the rule
/// model out of a dump of several (entries of other models are skipped). Problems are reported at
/// the entry's path in the dump: `rules[3].fields.condition`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// The rules, each as `GET /v1/rules/{id}` returns it (read-only fields are ignored), or the
    /// `dumpdata` entries with `"format": "django"`.
    #[schema(value_type = Vec<Object>)]
    pub rules: Vec<Value>,
    /// What `rules` holds: `rulebook` (the default) or `django`.
    #[serde(default)]
    pub format: ImportFormat,
    /// Django only: more field renames, Django field to rule field, over the defaults.
    #[serde(default)]
    pub map: Option<std::collections::BTreeMap<String, String>>,
    /// Django only: Django fields to drop.
    #[serde(default)]
    pub ignore: Option<Vec<String>>,
    /// Django only: the rule model (`app_label.modelname`); entries of other models are skipped.
    #[serde(default)]
    pub model: Option<String>,
    /// Why, recorded in the history of every rule written.
    #[serde(default)]
    pub reason: Option<String>,
    /// Validate and say what would change, without writing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What an import's `rules` hold.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImportFormat {
    /// Rules as `GET /v1/rules/{id}` returns them.
    #[default]
    Rulebook,
    /// The entries of a Django `dumpdata` file.
    Django,
}

/// The answer of `POST /v1/rules/import`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportAnswer {
    /// Whether this was only a dry run (nothing written).
    pub dry_run: bool,
    /// Rules in the request.
    pub total: usize,
    /// Rules that did not exist (and were, or would be, created).
    pub created: usize,
    /// Rules that existed with other content (and were, or would be, updated).
    pub updated: usize,
    /// Rules that existed with the same content, left alone: no new version, no invalidation.
    pub unchanged: usize,
    /// Django only: entries of other models than `model`, skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<usize>,
}

/// The query of `POST /v1/rules/import`: the settings of a streamed (NDJSON) import, whose body
/// holds only rules. A JSON body carries them in its own fields instead.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// NDJSON only: why, recorded in the history of every rule written.
    pub reason: Option<String>,
    /// NDJSON only: validate and say what would change, without writing.
    pub dry_run: Option<bool>,
}

/// `POST /v1/rules/import`: creates or updates many rules in one transaction.
///
/// Two forms. `Content-Type: application/json` is an [`ImportBody`] under the normal body limit
/// (`--body-limit`). `Content-Type: application/x-ndjson` is one rule document a line, read as it
/// arrives under the import limit (`--import-body-limit`, 256 MiB by default) and the import
/// timeout (`--import-timeout`), with `reason` and `dry_run` in the query; line `i + 1` is
/// `rules[i]` in problems, blank lines are skipped (see [`super::bounded`]). Either way:
///
/// Every rule is checked before anything is written, and every problem of every rule is
/// reported at once (422, each problem's path starting with `rules[i]`; at most
/// [`MAX_LISTED_PROBLEMS`] are listed, the message counts them all); one bad rule writes
/// nothing. A good import commits as one change set: one history row per rule written, and each
/// touched entry point invalidated once. Rules that already hold the same content are left
/// alone. An import is authoritative: a rule is replaced whatever its stored version. A dry run
/// makes the same checks and counts, and writes nothing. See [`ImportBody`] for Django dumps.
#[utoipa::path(
    post,
    path = "/v1/rules/import",
    tag = "rules",
    params(Writer, Fresh, ImportQuery),
    request_body(
        description = "The rules: a JSON `ImportBody` (under `--body-limit`), or \
                       `application/x-ndjson` with one rule document (a JSON object, as \
                       `GET /v1/rules/{id}` returns it) a line, streamed, under \
                       `--import-body-limit` (256 MiB by default); line `i + 1` is `rules[i]` \
                       in problems, and `reason` and `dry_run` go in the query",
        content(
            (ImportBody = "application/json"),
            (String = "application/x-ndjson", example = json!("{\"id\": \"R-1\", \"entry_point\": \"checkout\"}\n{\"id\": \"R-2\"}\n")),
        ),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Imported (or, with `dry_run`, what would be)", body = FreshImportAnswer, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        (status = 422, description = "The import is not valid, so nothing was written: `errors` lists every problem, each path starting with `rules[i]`", body = ErrorBody),
        (status = 413, description = "The body is over its limit (`body_too_large`: `--body-limit` for JSON; `import_too_large`: `--import-body-limit` for NDJSON; `line_too_large`: one NDJSON line over `--body-limit`); `limit` says the limit in bytes", body = ErrorBody),
        Errors,
    )
)]
pub async fn import(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Fresh(seq): Fresh,
    QueryParams(query): QueryParams<ImportQuery>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Answer<ImportAnswer>, ApiError> {
    if bounded::is_ndjson(&headers) {
        return import_ndjson(state, caller, seq, query, &headers, body).await;
    }
    if let Some(field) = [
        query.reason.as_ref().map(|_| "reason"),
        query.dry_run.as_ref().map(|_| "dry_run"),
    ]
    .into_iter()
    .flatten()
    .next()
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "`{field}` in the query applies to a streamed import (`Content-Type: {}`): put it in the JSON body instead",
                bounded::NDJSON
            ),
        ));
    }
    let body = read_limited(body, state.limits().body_limit).await?;
    let body: ImportBody = parse_json(&body)?;
    let entries = body.rules.len();
    let (rules, skipped) = match body.format {
        ImportFormat::Rulebook => {
            if let Some(field) = [
                body.map.as_ref().map(|_| "map"),
                body.ignore.as_ref().map(|_| "ignore"),
                body.model.as_ref().map(|_| "model"),
            ]
            .into_iter()
            .flatten()
            .next()
            {
                return Err(ApiError::validation(
                    format!("`{field}` applies to Django dumps only: send `\"format\": \"django\"` with it, or leave it out"),
                    vec![FieldError::new(field, "applies only with `\"format\": \"django\"`")],
                ));
            }
            (check_import(&caller.tenant, body.rules)?, None)
        }
        ImportFormat::Django => {
            let rules = check_django_import(&caller.tenant, &body)?;
            let skipped = entries - rules.len();
            (rules, Some(skipped))
        }
    };
    write_import(
        &state,
        &caller,
        seq,
        rules,
        skipped,
        body.reason,
        body.dry_run,
    )
    .await
}

/// The streamed form of [`import`]: each line is read into a checked rule as it arrives, so the
/// server holds rules, never the body.
async fn import_ndjson(
    state: AppState,
    caller: Caller,
    seq: i64,
    query: ImportQuery,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<Answer<ImportAnswer>, ApiError> {
    let bounds = bounded::Bounds {
        body: state.limits().import_body_limit,
        line: state.limits().body_limit,
    };
    let mut checker = Checker::new(&caller.tenant, "rules", |_, _| None);
    bounded::read_lines(headers, body, bounds, |i, line| {
        match serde_json::from_slice::<Value>(line) {
            Ok(document) => checker.push(i, document),
            Err(e) => checker.problem(
                i,
                FieldError::new(
                    format!("rules[{i}]"),
                    format!(
                        "line {} is not a JSON document ({e}): send one rule, a JSON object, a line",
                        i + 1
                    ),
                ),
            ),
        }
    })
    .await?;
    let checked = checker.finish();
    let rules = finish_check(
        checked.rules,
        checked.problems,
        "each path `rules[i]` is line i + 1 of the body",
    )?;
    let dry_run = query.dry_run.unwrap_or(false);
    write_import(&state, &caller, seq, rules, None, query.reason, dry_run).await
}

/// Whether `request` is a streamed import, which has its own time limit (`--import-timeout`).
pub(crate) fn is_streamed_import(request: &axum::extract::Request) -> bool {
    request.method() == axum::http::Method::POST
        && request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .is_some_and(|path| path.as_str() == "/v1/rules/import")
        && bounded::is_ndjson(request.headers())
}

/// Writes checked `rules` (or, on a dry run, counts what would be written) and answers.
async fn write_import(
    state: &AppState,
    caller: &Caller,
    seq: i64,
    rules: Vec<Rule>,
    skipped: Option<usize>,
    reason: Option<String>,
    dry_run: bool,
) -> Result<Answer<ImportAnswer>, ApiError> {
    let mut answer = ImportAnswer {
        dry_run,
        total: rules.len(),
        created: 0,
        updated: 0,
        unchanged: 0,
        skipped,
    };
    if rules.is_empty() {
        return Ok(Answer::new(seq, answer));
    }
    let report = if dry_run {
        state.store().import_dry_run(&caller.tenant, rules).await?
    } else {
        state
            .store()
            .import_rules(&caller.tenant, rules, &author(caller, reason))
            .await?
    };
    answer.created = report.created;
    answer.updated = report.updated;
    answer.unchanged = report.unchanged;
    // Nothing written: the answer reflects the position it was checked against.
    let seq = report.changes.last().map_or(seq, |c| c.seq);
    Ok(Answer::new(seq, answer))
}

/// The whole body within `limit` bytes; over it, 413 `body_too_large` naming the limit, sent
/// after the rest of the body is drained (see [`super::bounded`] for why).
async fn read_limited(body: axum::body::Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    let mut bytes = Vec::new();
    bounded::read_all(body, limit, &mut bytes).await?;
    Ok(bytes.into())
}

/// Reads and checks every rule of an import for `tenant`, collecting every problem of every
/// rule (paths prefixed with `rules[i]`), so that one answer lists all there is to fix. The
/// problems of the rules as one batch (an id twice, another tenant) are the store's to find
/// ([`rulebook_store::batch_problems`]).
fn check_import(tenant: &str, documents: Vec<Value>) -> Result<Vec<Rule>, ApiError> {
    let checked = check_documents(tenant, documents, "rules", |_, _| None);
    finish_check(
        checked.rules,
        checked.problems,
        "each path starts with the rule's index in `rules`",
    )
}

/// Rule documents read and checked as a write checks them, with every problem.
pub(crate) struct Checked {
    /// The rules, in the order sent, their tenant set to the request's (complete only when
    /// there are no problems).
    pub(crate) rules: Vec<Rule>,
    /// Every problem of every document, with the document's index, each path prefixed with
    /// `<field>[i]`.
    pub(crate) problems: Vec<(Option<usize>, FieldError)>,
}

impl Checked {
    /// How many documents have a problem.
    pub(crate) fn bad_rules(&self) -> usize {
        self.problems
            .iter()
            .filter_map(|(i, _)| *i)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    }
}

/// Reads and checks the rule documents of `field` (`rules` of an import, `drafts` of an
/// evaluation) for `tenant` exactly as a write does (see [`Checker`]).
pub(crate) fn check_documents(
    tenant: &str,
    documents: Vec<Value>,
    field: &str,
    more: impl Fn(&Rule, &dyn Fn(&str) -> String) -> Option<(&'static str, String)>,
) -> Checked {
    let mut checker = Checker::new(tenant, field, more);
    for (i, document) in documents.into_iter().enumerate() {
        checker.push(i, document);
    }
    checker.finish()
}

/// Reads and checks rule documents one at a time, as they arrive, for `tenant` exactly as a
/// write does: the rule's own validation, and at the end the store's checks of the rules as one
/// batch (ids unique, no other tenant: [`rulebook_store::batch_problems`]); `more` adds a
/// caller's check of a rule that read well. Every problem's path starts with `<field>[i]` and its
/// message names the rule. A document's read-only `seq` (what a read answered with) is dropped,
/// as a single write drops it.
pub(crate) struct Checker<'a, M> {
    tenant: &'a str,
    field: &'a str,
    more: M,
    rules: Vec<Rule>,
    /// The index of each rule of `rules` among the documents.
    places: Vec<usize>,
    problems: Vec<(Option<usize>, FieldError)>,
}

impl<'a, M> Checker<'a, M>
where
    M: Fn(&Rule, &dyn Fn(&str) -> String) -> Option<(&'static str, String)>,
{
    /// A checker of the documents of `field` for `tenant`.
    pub(crate) fn new(tenant: &'a str, field: &'a str, more: M) -> Self {
        Checker {
            tenant,
            field,
            more,
            rules: Vec::new(),
            places: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// Reads and checks document `i`.
    pub(crate) fn push(&mut self, i: usize, mut document: Value) {
        let field = self.field;
        if let Some(fields) = document.as_object_mut() {
            fields.shift_remove("seq");
        }
        let id = document
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match Rule::from_json_value(document) {
            Ok(rule) => {
                if let Some((path, message)) = (self.more)(&rule, &|m| named(id.as_deref(), m)) {
                    self.problems.push((
                        Some(i),
                        FieldError::new(format!("{field}[{i}].{path}"), message),
                    ));
                }
                self.rules.push(rule);
                self.places.push(i);
            }
            Err(errors) => {
                for error in errors.errors {
                    let path = if error.path.is_empty() {
                        format!("{field}[{i}]")
                    } else {
                        format!("{field}[{i}].{}", error.path)
                    };
                    self.problems.push((
                        Some(i),
                        FieldError::new(path, named(id.as_deref(), &error.message)),
                    ));
                }
            }
        }
    }

    /// Records a problem of document `i` that could not be read at all.
    pub(crate) fn problem(&mut self, i: usize, problem: FieldError) {
        self.problems.push((Some(i), problem));
    }

    /// The batch's own checks, then every rule and every problem.
    pub(crate) fn finish(self) -> Checked {
        let Checker {
            tenant,
            field,
            mut rules,
            places,
            mut problems,
            ..
        } = self;
        problems.extend(
            rulebook_store::batch_problems(tenant, &rules, |k, name| {
                format!("{field}[{}].{name}", places[k])
            })
            .into_iter()
            .map(|(k, e)| (Some(places[k]), e)),
        );
        for rule in &mut rules {
            rule.tenant = tenant.to_owned();
        }
        problems.sort_by_key(|(i, _)| *i);
        Checked { rules, problems }
    }
}

/// [`check_import`] for a Django dump: the entries are read through the body's mapping by the
/// rules crate, and every problem is reported at its path in the dump (`rules[3].fields.rule_code`).
fn check_django_import(tenant: &str, body: &ImportBody) -> Result<Vec<Rule>, ApiError> {
    let mut mapping = rulebook_rules::DjangoMapping::default();
    let mut problems = Vec::new();
    for (django, rule_field) in body.map.iter().flatten() {
        if let Err(e) = mapping.map(django, rule_field) {
            problems.push(FieldError::new(format!("map.{django}"), e.message));
        }
    }
    for field in body.ignore.iter().flatten() {
        mapping.ignore(field);
    }
    if let Some(model) = &body.model {
        mapping.model(model);
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(
            format!("the field mapping is not valid, so nothing was read: fix the {} listed in `errors`", plural(problems.len(), "problem")),
            problems,
        ));
    }
    let (read, mut problems) = match rulebook_rules::django::django_rules(&body.rules, &mapping) {
        Ok(read) => (read, Vec::new()),
        Err(errors) => {
            let problems = errors
                .problems
                .into_iter()
                .map(|e| {
                    // `[3].fields.condition` is entry 3; a problem of the dump as a whole first.
                    let index = e
                        .path
                        .strip_prefix('[')
                        .and_then(|p| p.split_once(']'))
                        .and_then(|(i, _)| i.parse().ok());
                    (
                        index,
                        FieldError::new(format!("rules{}", e.path), e.message),
                    )
                })
                .collect::<Vec<_>>();
            (errors.readable, problems)
        }
    };
    let rules: Vec<Rule> = read.iter().map(|r| r.rule.clone()).collect();
    problems.extend(
        rulebook_store::batch_problems(tenant, &rules, |k, field| {
            format!("rules{}", read[k].path(field))
        })
        .into_iter()
        .map(|(k, e)| (Some(read[k].index), e)),
    );
    finish_check(
        rules,
        problems,
        "each path is the entry's place in the dump",
    )
}

/// The most problems one 422 of an import lists (the message counts them all), so that an
/// import of many bad rules is not answered with a body larger than itself.
pub const MAX_LISTED_PROBLEMS: usize = 1000;

/// The rules, or one 422 listing every problem (each with the index of its rule, if it has one).
fn finish_check(
    rules: Vec<Rule>,
    mut problems: Vec<(Option<usize>, FieldError)>,
    paths: &str,
) -> Result<Vec<Rule>, ApiError> {
    if problems.is_empty() {
        return Ok(rules);
    }
    // In document order, each rule's problems in the order found.
    problems.sort_by_key(|(i, _)| *i);
    let bad_rules = problems
        .iter()
        .filter_map(|(i, _)| *i)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let found = problems.len();
    let problems: Vec<FieldError> = problems
        .into_iter()
        .map(|(_, e)| e)
        .take(MAX_LISTED_PROBLEMS)
        .collect();
    // A problem of the whole dump (which model holds the rules) belongs to no rule.
    let counted = if bad_rules == 0 {
        plural(found, "problem")
    } else {
        format!(
            "{} in {}",
            plural(found, "problem"),
            plural(bad_rules, "rule")
        )
    };
    let listed = if found > problems.len() {
        format!("the first {} are listed in `errors`", problems.len())
    } else {
        "listed in `errors`".to_owned()
    };
    Err(ApiError::validation(
        format!(
            "the import is not valid, so nothing was written: fix the {counted} {listed} ({paths})"
        ),
        problems,
    ))
}

/// `message`, naming the rule when its id is known.
fn named(id: Option<&str>, message: &str) -> String {
    match id {
        Some(id) => format!("rule `{id}`: {message}"),
        None => message.to_owned(),
    }
}

/// `GET /v1/rules/import`: the rule whose id is `import` (the import endpoint's static path
/// would otherwise hide it).
#[utoipa::path(
    get,
    path = "/v1/rules/import",
    tag = "rules",
    params(Reader, Fresh),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The rule whose id is `import`", body = FreshRule, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"), ("ETag" = String, description = "The rule's version, quoted: send it back in `If-Match`"))),
        (status = 404, description = "No such rule in the tenant", body = ErrorBody),
        Errors,
    )
)]
pub async fn get_import(
    state: State<AppState>,
    reader: Reader,
    fresh: Fresh,
) -> Result<Response, ApiError> {
    get(state, reader, fresh, PathParams("import".to_owned())).await
}

/// `PUT /v1/rules/import`: updates the rule whose id is `import`.
#[utoipa::path(
    put,
    path = "/v1/rules/import",
    tag = "rules",
    params(Writer, IfMatch),
    request_body = RuleBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = FreshRule, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"), ("ETag" = String, description = "The rule's version, quoted: send it back in `If-Match`"))),
        (status = 404, description = "No such rule in the tenant", body = ErrorBody),
        (status = 409, description = "The rule is no longer at the version named (`current_version` says which it is at), or `If-Match` and the body disagree", body = ErrorBody),
        (status = 422, description = "The rule is not valid: `errors` lists every problem with its field path", body = ErrorBody),
        (status = 428, description = "Neither `If-Match` nor the body's `version` names the version replaced", body = ErrorBody),
        TooLarge,
        Errors,
    )
)]
pub async fn update_import(
    state: State<AppState>,
    writer: Writer,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, ApiError> {
    update(
        state,
        writer,
        PathParams("import".to_owned()),
        headers,
        body,
    )
    .await
}

/// `DELETE /v1/rules/import`: deletes the rule whose id is `import`.
#[utoipa::path(
    delete,
    path = "/v1/rules/import",
    tag = "rules",
    params(Writer, IfMatch),
    request_body(content = Option<WriteBody>, description = "Optional: `reason`, and `version` when no `If-Match` is sent"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted: the rule as it was", body = FreshDeleted, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        (status = 404, description = "No such rule in the tenant", body = ErrorBody),
        (status = 409, description = "The rule is no longer at the version named, or `If-Match` and the body disagree", body = ErrorBody),
        TooLarge,
        Errors,
    )
)]
pub async fn delete_import(
    state: State<AppState>,
    writer: Writer,
    headers: HeaderMap,
    body: JsonBody<WriteBody>,
) -> Result<Answer<Deleted>, ApiError> {
    delete(
        state,
        writer,
        PathParams("import".to_owned()),
        headers,
        body,
    )
    .await
}
