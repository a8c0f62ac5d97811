//! OpenFeature Remote Evaluation Protocol (OFREP): `POST /ofrep/v1/evaluate/flags/{key}` and the
//! bulk `POST /ofrep/v1/evaluate/flags`, so that any OpenFeature SDK with an OFREP provider reads
//! Rulebook's rules as boolean flags and their params as typed flags.
//!
//! ## Flags
//!
//! A flag key is a rule id, or a rule id, `@` and a param name. Rule ids are written with
//! `[A-Za-z0-9_.:-]` only, so `@` ([`KEY_SEPARATOR`]) never occurs in one and the key is split at
//! its first `@`: everything after it is the param's name, whatever it holds.
//!
//! **A rule is a boolean flag**: `true` when the rule is enabled, the time now is inside its
//! schedule window, and its condition holds for the request's `context` (conditions see the
//! context as in `POST /v1/evaluate/{entry_point}`, and the rule's own params as `params.<name>`;
//! the actions are not computed). The reason and variant say which of these decided:
//!
//! | the rule | `value` | `reason` | `variant` |
//! |---|---|---|---|
//! | enabled, in its window, condition the literal `true` | `true` | `STATIC` | `matched` |
//! | enabled, in its window, condition held | `true` | `TARGETING_MATCH` | `matched` |
//! | enabled, in its window, condition did not hold | `false` | `DEFAULT` | `condition_false` |
//! | disabled | `false` | `DISABLED` | `disabled` |
//! | outside its window | `false` | `DISABLED` | `outside_window` |
//! | the condition failed (stored invalid, over a limit, out of its work budget) | — | an error: `INVALID_CONTEXT` for an exhausted budget (the input is too large for the rule), `GENERAL` otherwise | — |
//!
//! The variants are the outcome names of an explanation (see [`crate::api::answer`]). `DEFAULT`
//! for a condition that did not hold follows OpenFeature's reasons ("no targeting matched, the
//! flag's default was served", as flagd answers it); the SDK's `ERROR` reason is the SDK's own
//! for every error answer.
//!
//! **A param is a typed flag** (`<rule id>@<param>`): its value exactly as
//! `GET /v1/params/{rule_id}/{field}` answers it (whether or not the rule is enabled), with
//! `reason` `STATIC` and `variant` `v<version>`; a param whose value is `null` has no `value`
//! (OFREP's "use the code default"), with `reason` `DEFAULT`. The SDK checks the type: asked for
//! an integer, a param `30` is one; asked for a float, a Python provider wants `30.0`.
//!
//! Every answer's `metadata` holds the rule's `version` and, for one flag, the `seq` the answer
//! reflects (also in `X-Rulebook-Seq`, as every read answer of the API).
//!
//! ## Requests and errors
//!
//! The body is `{"context": {...}}`; a missing body or `context` is an empty context, and other
//! top-level fields are ignored (the protocol may add some). `targetingKey` is optional and, as
//! any field of the context, seen by conditions as `targetingKey`; when sent it must be a string.
//! Errors of the protocol's own are `{"key", "errorCode", "errorDetails"}`: 400 `PARSE_ERROR`
//! (the body is not a JSON object), 400 `INVALID_CONTEXT` (`context` is not an object, or
//! `targetingKey` is not a string), 400 `GENERAL` (any other bad request: an unknown tenant, a bad
//! `min_seq`), 404 `FLAG_NOT_FOUND` (whose details list what exists). Tokens and tenants are
//! checked exactly as for every other read ([`Reader`], `X-Tenant-ID`); 401, 403, 413, 5xx answer
//! with the API's usual error shape.
//!
//! ## The bulk form
//!
//! `POST /ofrep/v1/evaluate/flags` answers `{"flags": [...], "metadata": {"seq", "rules",
//! "truncated"}}`: for each rule of the tenant in id order, its boolean flag, then a typed flag
//! per param in the order written. One flag's failure is an entry `{"key", "errorCode",
//! "errorDetails"}` among the others. Bounded: the flags of at most [`MAX_BULK_RULES`] rules
//! (`metadata.rules` counts the tenant's rules; `truncated` says some were left out, which the
//! single-flag endpoint still answers).
//!
//! The `ETag` is a weak tag, a digest of the `flags` array itself: it changes exactly when an
//! answer would, whether a rule was written (every flag carries its rule's version), the context
//! differs, or a schedule window opened or closed without any write. `If-None-Match` with it is
//! answered 304 while that holds. The array is evaluated either way: the tag saves the wire, not
//! the work.
//!
//! Both endpoints read the tenant's parameter snapshot from the registry
//! ([`rulebook_store::Registry::params`], the cache `GET /v1/params` reads, invalidated by the
//! same writes) and decide each rule with [`rulebook_rules::Params::flag`], the checks an
//! evaluation makes; nothing else is cached.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use rulebook_rules::{EvalError, Flag, Limits, Params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use utoipa::openapi::RefOr;

use crate::api::answer::now;
use crate::api::openapi::{Errors, TooLarge};
use crate::auth::{Caller, Reader};
use crate::error::ApiError;
use crate::extract::{PathParams, RawBody};
use crate::freshness::{Fresh, SEQ_HEADER};
use crate::state::AppState;

/// What separates a rule id from a param name in a flag key: `position_size@lowThreshold`. Never
/// part of a rule id.
pub const KEY_SEPARATOR: char = '@';

/// The most rules whose flags one bulk answer carries (the default page of `GET /v1/rules`).
pub const MAX_BULK_RULES: usize = crate::api::page::DEFAULT_LIMIT;

/// The body of both endpoints (documentation only: it is read by hand, to answer with the
/// protocol's error codes).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct OfrepRequest {
    /// The evaluation context: the input the rules' conditions see (`{}` when left out).
    #[schema(value_type = Option<Object>, example = json!({"targetingKey": "user-123", "country": "FR", "total": 120}))]
    context: Option<Value>,
}

/// Why an evaluation was decided so (OpenFeature's resolution reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// No targeting: a rule whose condition is `true`, or a param.
    Static,
    /// The rule's condition held for the context.
    TargetingMatch,
    /// The rule's condition did not hold (the flag's default, `false`), or a param is `null`
    /// (the code default).
    Default,
    /// The rule is disabled, or outside its schedule window.
    Disabled,
}

/// A flag's metadata.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FlagMetadata {
    /// The version of the rule the flag was decided with.
    pub version: i64,
    /// The change-log position the answer reflects (single-flag answers; the bulk answer has it
    /// once, in its own `metadata`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

/// One flag evaluated.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FlagSuccess {
    /// The flag's key, as asked.
    pub key: String,
    /// The flag's value: a boolean for a rule, the param's JSON value for a param. Absent for a
    /// param whose value is `null`: use the default written in the code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Why (see the mapping in the module docs).
    pub reason: Reason,
    /// For a rule: `matched`, `condition_false`, `disabled` or `outside_window`; for a param,
    /// `v<version>`.
    pub variant: String,
    /// The rule's version, and the answer's `seq`.
    pub metadata: FlagMetadata,
}

/// The protocol's error codes that Rulebook answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The body is not a JSON object.
    ParseError,
    /// `context` is not an object, `targetingKey` is not a string, or the context is too large
    /// for a rule's work budget.
    InvalidContext,
    /// No rule, or no param, by that key.
    FlagNotFound,
    /// Anything else: a rule that cannot be decided, an unknown tenant, a bad `min_seq`.
    General,
}

/// A flag that could not be evaluated, or (without `key`) a bulk request that failed whole.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagFailure {
    /// The flag's key, as asked; absent when a bulk request failed whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What kind of failure.
    pub error_code: ErrorCode,
    /// What was wrong and how to fix it.
    pub error_details: String,
}

/// One entry of a bulk answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FlagResult {
    /// The flag evaluated.
    Success(FlagSuccess),
    /// Why this flag could not be; the others are evaluated.
    Failure(FlagFailure),
}

/// The bulk answer's own metadata.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BulkMetadata {
    /// The change-log position the answer reflects.
    pub seq: i64,
    /// How many rules the tenant has.
    pub rules: usize,
    /// Whether rules were left out (past the first 1000 by id).
    pub truncated: bool,
}

/// The answer of `POST /ofrep/v1/evaluate/flags` (documentation only: it is written around the
/// encoded `flags`, whose digest is the `ETag`).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct BulkAnswer {
    /// Every flag of the tenant: for each rule (by id), its boolean flag, then one flag per param.
    flags: Vec<FlagResult>,
    /// The answer's `seq`, and whether rules were left out.
    metadata: BulkMetadata,
}

/// An OFREP endpoint's failure: the protocol's error shape, or the API's for what the protocol
/// leaves open (401, 403, 413, 5xx).
#[derive(Debug)]
pub enum Failure {
    /// `{"key", "errorCode", "errorDetails"}` with this status.
    Flag(StatusCode, FlagFailure),
    /// The API's usual error.
    Api(ApiError),
}

impl Failure {
    fn new(status: StatusCode, key: Option<&str>, code: ErrorCode, details: String) -> Failure {
        Failure::Flag(
            status,
            FlagFailure {
                key: key.map(str::to_owned),
                error_code: code,
                error_details: details,
            },
        )
    }

    /// An API error in the protocol's terms: a 400 (the request was wrong) is `GENERAL`, with the
    /// API's code in the details; the rest keep the API's shape.
    fn from_api(key: Option<&str>, error: ApiError) -> Failure {
        if error.status() == StatusCode::BAD_REQUEST {
            let details = format!("{} ({})", error.message(), error.code());
            Failure::new(StatusCode::BAD_REQUEST, key, ErrorCode::General, details)
        } else {
            Failure::Api(error)
        }
    }
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Failure {
        Failure::from_api(None, error)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Flag(status, failure) => (status, axum::Json(failure)).into_response(),
            Failure::Api(error) => error.into_response(),
        }
    }
}

/// `POST /ofrep/v1/evaluate/flags/{key}`: one flag (see the module docs for the mapping).
#[utoipa::path(
    post,
    path = "/ofrep/v1/evaluate/flags/{key}",
    tag = "ofrep",
    params(Reader, Fresh, ("key" = String, Path, pattern = "^[A-Za-z0-9_.:-]{1,128}(@.*)?$", example = "checkout_terms_banner", description = "A rule id (a boolean flag), or `<rule id>@<param>` (the param's value)")),
    request_body(content = Option<OfrepRequest>, description = "`{\"context\": {...}}`; an empty body or no `context` is an empty context"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The flag's value, reason and variant, with the rule's version and the answer's `seq` in `metadata`", body = FlagSuccess, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        (status = 400, description = "`PARSE_ERROR` (the body is not a JSON object), `INVALID_CONTEXT` (`context` or `targetingKey` is wrong, or the context is too large for the rule), `GENERAL` (the rule cannot be decided, an unknown tenant, a bad `min_seq`)", body = FlagFailure),
        (status = 404, description = "`FLAG_NOT_FOUND`: no rule, or no param, by that key (`errorDetails` says what exists)", body = FlagFailure),
        TooLarge,
        NotBadRequest,
    )
)]
pub async fn evaluate_flag(
    State(state): State<AppState>,
    key: Result<PathParams<String>, ApiError>,
    parts: Parts,
    body: Result<RawBody, ApiError>,
) -> Result<Response, Failure> {
    let key = match key {
        Ok(PathParams(key)) => key,
        Err(e) => return Err(Failure::from_api(Some(""), e)),
    };
    let (caller, seq) = admit(&state, parts, Some(&key)).await?;
    let context = context(body, Some(&key))?;
    let params = state
        .registry()
        .params(&caller.tenant)
        .await
        .map_err(|e| Failure::from_api(Some(&key), e.into()))?;
    let found = match key.split_once(KEY_SEPARATOR) {
        None => rule_flag(&params, &key, &key, &context, now(), &Limits::default()),
        Some((rule_id, name)) => param_flag(&params, &key, rule_id, name).map(FlagResult::Success),
    };
    match found {
        Some(FlagResult::Success(mut success)) => {
            success.metadata.seq = Some(seq);
            Ok(([(SEQ_HEADER, HeaderValue::from(seq))], axum::Json(success)).into_response())
        }
        Some(FlagResult::Failure(failure)) => Err(Failure::Flag(StatusCode::BAD_REQUEST, failure)),
        None => Err(Failure::new(
            StatusCode::NOT_FOUND,
            Some(&key),
            ErrorCode::FlagNotFound,
            not_found(&params, &caller.tenant, &key),
        )),
    }
}

/// `POST /ofrep/v1/evaluate/flags`: every flag of the tenant (see the module docs), with an
/// `ETag`; `If-None-Match` is answered 304 while the flags are unchanged.
#[utoipa::path(
    post,
    path = "/ofrep/v1/evaluate/flags",
    tag = "ofrep",
    params(Reader, Fresh, ("If-None-Match" = Option<String>, Header, description = "The `ETag` of a bulk answer held: 304 while its flags are unchanged for this context")),
    request_body(content = Option<OfrepRequest>, description = "`{\"context\": {...}}`; an empty body or no `context` is an empty context"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Every flag of the tenant (for at most 1000 rules)", body = BulkAnswer, headers(("ETag" = String, description = "A weak tag of the `flags`: send it back in `If-None-Match`"), ("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        (status = 304, description = "The flags are those of the answer named by `If-None-Match`", headers(("ETag" = String, description = "A weak tag of the `flags`: send it back in `If-None-Match`"), ("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        (status = 400, description = "`PARSE_ERROR` (the body is not a JSON object), `INVALID_CONTEXT` (`context` or `targetingKey` is wrong), `GENERAL` (an unknown tenant, a bad `min_seq`); no `key`", body = FlagFailure),
        TooLarge,
        NotBadRequest,
    )
)]
pub async fn evaluate_all(
    State(state): State<AppState>,
    parts: Parts,
    body: Result<RawBody, ApiError>,
) -> Result<Response, Failure> {
    let if_none_match = parts.headers.get(header::IF_NONE_MATCH).cloned();
    let (caller, seq) = admit(&state, parts, None).await?;
    let context = context(body, None)?;
    let params = state
        .registry()
        .params(&caller.tenant)
        .await
        .map_err(ApiError::from)?;
    let flags = all_flags(&params, &context, now(), &Limits::default());
    let encoded = serde_json::to_vec(&flags).map_err(ApiError::internal)?;
    let digest = Sha256::digest(&encoded);
    let tag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let etag = HeaderValue::from_str(&format!("W/\"{tag}\"")).map_err(ApiError::internal)?;
    if if_none_match
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sent| matches(sent, &tag))
    {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (SEQ_HEADER, HeaderValue::from(seq))],
        )
            .into_response());
    }
    let metadata = BulkMetadata {
        seq,
        rules: params.len(),
        truncated: params.len() > MAX_BULK_RULES,
    };
    let mut out = Vec::with_capacity(encoded.len() + 96);
    out.extend_from_slice(b"{\"flags\":");
    out.extend_from_slice(&encoded);
    out.extend_from_slice(b",\"metadata\":");
    serde_json::to_writer(&mut out, &metadata).map_err(ApiError::internal)?;
    out.push(b'}');
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag),
            (SEQ_HEADER, HeaderValue::from(seq)),
        ],
        out,
    )
        .into_response())
}

/// Whether an `If-None-Match` value names the tag (weak comparison, so `W/` is ignored), or is `*`.
fn matches(sent: &str, tag: &str) -> bool {
    sent.split(',')
        .map(str::trim)
        .any(|sent| sent == "*" || sent.trim_start_matches("W/").trim_matches('"') == tag)
}

/// The caller and the answer's `seq`, checked exactly as for every read ([`Reader`], then
/// [`Fresh`]), with a 400 in the protocol's shape.
async fn admit(
    state: &AppState,
    mut parts: Parts,
    key: Option<&str>,
) -> Result<(Caller, i64), Failure> {
    let Reader(caller) = Reader::from_request_parts(&mut parts, state)
        .await
        .map_err(|e| Failure::from_api(key, e))?;
    let Fresh(seq) = Fresh::from_request_parts(&mut parts, state)
        .await
        .map_err(|e| Failure::from_api(key, e))?;
    Ok((caller, seq))
}

/// The request's context: `{}` for an empty body or no `context`.
fn context(body: Result<RawBody, ApiError>, key: Option<&str>) -> Result<Value, Failure> {
    let RawBody(bytes) = body.map_err(|e| Failure::from_api(key, e))?;
    let bad = |code, details: String| Failure::new(StatusCode::BAD_REQUEST, key, code, details);
    if bytes.trim_ascii().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let body: Value = serde_json::from_slice(&bytes).map_err(|e| {
        bad(
            ErrorCode::ParseError,
            format!("the request body is not valid JSON ({e}); send {{\"context\": {{...}}}}"),
        )
    })?;
    let Value::Object(mut body) = body else {
        return Err(bad(
            ErrorCode::ParseError,
            "the request body is not a JSON object: send {\"context\": {...}}".to_owned(),
        ));
    };
    let context = match body.remove("context") {
        None => Value::Object(Map::new()),
        Some(context @ Value::Object(_)) => context,
        Some(_) => {
            return Err(bad(
                ErrorCode::InvalidContext,
                "field `context` must be a JSON object such as {\"targetingKey\": \"user-1\", \"country\": \"FR\"}".to_owned(),
            ))
        }
    };
    if context
        .get("targetingKey")
        .is_some_and(|key| !key.is_string())
    {
        return Err(bad(
            ErrorCode::InvalidContext,
            "`context.targetingKey` must be a string such as \"user-1\", or left out".to_owned(),
        ));
    }
    Ok(context)
}

/// Rule `rule_id` as the boolean flag `key`, if the rule exists (the mapping of the module docs).
fn rule_flag(
    params: &Params,
    key: &str,
    rule_id: &str,
    context: &Value,
    at: DateTime<Utc>,
    limits: &Limits,
) -> Option<FlagResult> {
    let flag = params.flag(rule_id, context, at, limits)?;
    let version = params.version(rule_id)?;
    let (reason, variant) = match &flag {
        Flag::Always => (Reason::Static, "matched"),
        Flag::Matched => (Reason::TargetingMatch, "matched"),
        Flag::ConditionFalse => (Reason::Default, "condition_false"),
        Flag::Disabled => (Reason::Disabled, "disabled"),
        Flag::OutsideWindow => (Reason::Disabled, "outside_window"),
        Flag::Failed(error) => {
            return Some(FlagResult::Failure(FlagFailure {
                key: Some(key.to_owned()),
                error_code: failure_code(error),
                error_details: format!(
                    "rule `{rule_id}` (version {version}) could not be decided ({}): {error}",
                    error.code()
                ),
            }))
        }
    };
    Some(FlagResult::Success(FlagSuccess {
        key: key.to_owned(),
        value: flag.value().map(Value::Bool),
        reason,
        variant: variant.to_owned(),
        metadata: FlagMetadata { version, seq: None },
    }))
}

/// A condition's failure in the protocol's codes: an exhausted work budget is the context's size
/// (the same rule decides a smaller one); the rest are the rule's own.
fn failure_code(error: &EvalError) -> ErrorCode {
    match error {
        EvalError::OutOfBudget { .. } => ErrorCode::InvalidContext,
        _ => ErrorCode::General,
    }
}

/// Param `name` of rule `rule_id` as the typed flag `key`, if both exist.
fn param_flag(params: &Params, key: &str, rule_id: &str, name: &str) -> Option<FlagSuccess> {
    let value = params.value(rule_id, name)?;
    let version = params.version(rule_id)?;
    let (value, reason) = match value {
        Value::Null => (None, Reason::Default),
        value => (Some(value.clone()), Reason::Static),
    };
    Some(FlagSuccess {
        key: key.to_owned(),
        value,
        reason,
        variant: format!("v{version}"),
        metadata: FlagMetadata { version, seq: None },
    })
}

/// Every flag of the first [`MAX_BULK_RULES`] rules by id: each rule's, then its params'.
fn all_flags(
    params: &Params,
    context: &Value,
    at: DateTime<Utc>,
    limits: &Limits,
) -> Vec<FlagResult> {
    let mut flags = Vec::new();
    for rule_id in params.rule_ids().take(MAX_BULK_RULES) {
        flags.extend(rule_flag(params, rule_id, rule_id, context, at, limits));
        for name in params.params(rule_id).into_iter().flat_map(Map::keys) {
            let key = format!("{rule_id}{KEY_SEPARATOR}{name}");
            flags.extend(param_flag(params, &key, rule_id, name).map(FlagResult::Success));
        }
    }
    flags
}

/// The details of a 404: which part of the key is missing, and what exists instead.
fn not_found(params: &Params, tenant: &str, key: &str) -> String {
    match key.split_once(KEY_SEPARATOR) {
        Some((rule_id, name)) if params.version(rule_id).is_some() => {
            let names: Vec<String> = params
                .params(rule_id)
                .into_iter()
                .flat_map(Map::keys)
                .map(|k| format!("`{rule_id}{KEY_SEPARATOR}{k}`"))
                .collect();
            if names.is_empty() {
                format!("flag `{key}`: rule `{rule_id}` has no param `{name}`, nor any param: its flag is `{rule_id}`")
            } else {
                format!(
                    "flag `{key}`: rule `{rule_id}` has no param `{name}`: its param flags are {}",
                    names.join(", ")
                )
            }
        }
        split => {
            let rule_id = split.map_or(key, |(rule_id, _)| rule_id);
            format!(
                "flag `{key}`: there is no rule `{rule_id}` in tenant `{tenant}` ({} rules): a flag key is a rule id, or `<rule id>{KEY_SEPARATOR}<param>`; list them with `GET /v1/rules` or `POST /ofrep/v1/evaluate/flags`",
                params.len()
            )
        }
    }
}

/// The error answers of [`Errors`] but its 400, which the OFREP endpoints answer in the
/// protocol's shape.
pub(crate) struct NotBadRequest;

impl utoipa::IntoResponses for NotBadRequest {
    fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::response::Response>>
    {
        let mut responses = <Errors as utoipa::IntoResponses>::responses();
        responses.remove("400");
        responses
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_star() {
        assert!(matches("W/\"abc\"", "abc"));
        assert!(matches("\"abc\"", "abc"));
        assert!(matches("\"x\", W/\"abc\"", "abc"));
        assert!(matches("*", "abc"));
        assert!(!matches("W/\"abd\"", "abc"));
        assert!(!matches("", "abc"));
    }

    #[test]
    fn the_separator_is_never_part_of_a_rule_id() {
        let mut rule = rulebook_rules::Rule::new(format!("a{KEY_SEPARATOR}b"));
        rule.tenant = "default".into();
        assert!(rule.validate().is_err());
    }
}
