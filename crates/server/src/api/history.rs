//! A rule's history read back and rolled back: one version (`GET /v1/rules/{id}/history/{version}`),
//! the difference between two (`GET /v1/rules/{id}/diff?from=V1&to=V2`), and a rollback to an
//! earlier version (`POST /v1/rules/{id}/rollback`), which also restores a deleted rule.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use rulebook_store::{HistoryEntry, VersionDiff};
use serde::Deserialize;

use crate::api::openapi::{
    ErrorBody, Errors, FreshHistoryEntry, FreshRule, FreshVersionDiff, TooLarge,
};
use crate::api::rules::{author, if_match, with_etag, IfMatch};
use crate::auth::{Reader, Writer};
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::freshness::{Answer, Fresh};
use crate::state::AppState;

/// `GET /v1/rules/{id}/history/{version}`: that version's entry, its document in `rule` (also for
/// a rule deleted since).
#[utoipa::path(
    get,
    path = "/v1/rules/{id}/history/{version}",
    tag = "rules",
    params(Reader, Fresh, ("id" = String, Path, pattern = "^[A-Za-z0-9_.:-]{1,128}$", example = "checkout_terms_banner", description = "The rule's id"), ("version" = i64, Path, example = 1, description = "The version")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "That version's history entry, its document in `rule`", body = FreshHistoryEntry, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        (status = 404, description = "No such rule, or no such version of it (`message` lists the versions there are)", body = ErrorBody),
        Errors,
    )
)]
pub async fn version(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Fresh(seq): Fresh,
    PathParams((id, version)): PathParams<(String, i64)>,
) -> Result<Answer<HistoryEntry>, ApiError> {
    let entry = state
        .store()
        .rule_version(&caller.tenant, &id, version)
        .await?;
    Ok(Answer::new(seq, entry))
}

/// The query of `GET /v1/rules/{id}/diff`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// The version to diff from.
    pub from: i64,
    /// The version to diff to.
    pub to: i64,
    /// `min_seq`, read by [`Fresh`]; named here so that it is not refused as unknown.
    #[serde(default, rename = "min_seq")]
    #[param(ignore)]
    _min_seq: Option<String>,
}

/// `GET /v1/rules/{id}/diff?from=V1&to=V2`: what changed from `V1` to `V2`, as an RFC 6902 JSON
/// Patch (`patch`) and as a field list (`changes`, each with `field`, `change`, `before`,
/// `after`). Bookkeeping fields (`version`, `created_*`, `updated_*`) are left out.
#[utoipa::path(
    get,
    path = "/v1/rules/{id}/diff",
    tag = "rules",
    params(Reader, Fresh, ("id" = String, Path, pattern = "^[A-Za-z0-9_.:-]{1,128}$", example = "checkout_terms_banner", description = "The rule's id"), DiffQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "What changed from `from` to `to`: an RFC 6902 patch and a field list", body = FreshVersionDiff, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        (status = 404, description = "No such rule, or no such version of it", body = ErrorBody),
        Errors,
    )
)]
pub async fn diff(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Fresh(seq): Fresh,
    PathParams(id): PathParams<String>,
    QueryParams(query): QueryParams<DiffQuery>,
) -> Result<Answer<VersionDiff>, ApiError> {
    let diff = state
        .store()
        .diff_versions(&caller.tenant, &id, query.from, query.to)
        .await?;
    Ok(Answer::new(seq, diff))
}

/// The body of `POST /v1/rules/{id}/rollback`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The earlier version whose content becomes the rule's next version.
    pub version: i64,
    /// Why, recorded in the history.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/rules/{id}/rollback` with `{"version": V, "reason": "..."}`: writes the content of
/// version `V` as the rule's next version (200, with `ETag` and the write's `seq`), through the normal write path: its
/// history entry (kind `rollback`, `restored_from: V`), the change log and invalidation on every
/// instance. A deleted rule is restored the same way. `If-Match`, when sent, must name the
/// current version (for a deleted rule, the version that recorded the deletion): else 409.
#[utoipa::path(
    post,
    path = "/v1/rules/{id}/rollback",
    tag = "rules",
    params(Writer, ("id" = String, Path, pattern = "^[A-Za-z0-9_.:-]{1,128}$", example = "checkout_terms_banner", description = "The rule's id"), IfMatch),
    request_body = RollbackBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Rolled back: the rule's new version", body = FreshRule, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"), ("ETag" = String, description = "The rule's version, quoted: send it back in `If-Match`"))),
        (status = 404, description = "No such rule, or no such version of it", body = ErrorBody),
        (status = 409, description = "`If-Match` does not name the current version", body = ErrorBody),
        (status = 422, description = "The earlier version is not valid today", body = ErrorBody),
        TooLarge,
        Errors,
    )
)]
pub async fn rollback(
    State(state): State<AppState>,
    Writer(caller): Writer,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RollbackBody>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let written = state
        .store()
        .rollback_rule(
            &caller.tenant,
            &id,
            body.version,
            expected,
            &author(&caller, body.reason),
        )
        .await?;
    Ok(with_etag(StatusCode::OK, written))
}
