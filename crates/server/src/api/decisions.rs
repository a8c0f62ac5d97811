//! The decision log read back: `GET /v1/decisions/{id}` and
//! `GET /v1/decisions?entry_point=EP&since=T&until=T&limit=N`.
//!
//! Decisions are logged only while the server runs with `--decision-log`; what was logged stays
//! readable (until pruned) whether or not the log is on now.

use axum::extract::State;
use chrono::{DateTime, Utc};
use rulebook_rules::EntryPoint;
use rulebook_store::{Decision, DecisionQuery};
use serde::{Deserialize, Serialize};

use crate::api::openapi::{ErrorBody, Errors, FreshDecision, FreshDecisionList};
use crate::api::page;
use crate::auth::Reader;
use crate::error::ApiError;
use crate::extract::{PathParams, QueryParams};
use crate::freshness::{Answer, Fresh};
use crate::state::AppState;

/// The most decisions one listing returns.
pub const MAX_LIMIT: u32 = 1000;
/// The page size of `GET /v1/decisions` when the request names none.
pub const DEFAULT_LIMIT: u32 = 100;

/// `GET /v1/decisions/{id}`: the logged decision: its id, time, tenant, entry point, the versions
/// of the rules used, the context (or only its SHA-256) and the answer as sent.
#[utoipa::path(
    get,
    path = "/v1/decisions/{id}",
    tag = "decisions",
    params(Reader, Fresh, ("id" = String, Path, description = "The decision id an answer carried")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The logged decision", body = FreshDecision, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        (status = 404, description = "No such decision in the tenant (never logged, or pruned)", body = ErrorBody),
        Errors,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Fresh(seq): Fresh,
    PathParams(id): PathParams<String>,
) -> Result<Answer<Decision>, ApiError> {
    let decision = state.store().decision(&caller.tenant, &id).await?;
    Ok(Answer::new(seq, decision))
}

/// The query of `GET /v1/decisions`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this entry point (or scorecard).
    pub entry_point: Option<String>,
    /// Only decisions made at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only decisions made before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// At most this many (default 100, at most 1000), oldest first.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
    /// `min_seq`, read by [`Fresh`]; named here so that it is not refused as unknown.
    #[serde(default, rename = "min_seq")]
    #[param(ignore)]
    _min_seq: Option<String>,
}

/// The answer of `GET /v1/decisions`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DecisionList {
    /// The decisions, oldest first.
    pub decisions: Vec<Decision>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/decisions?entry_point=EP&since=T&until=T&limit=N`: logged decisions, oldest first.
/// To page on, ask again with `cursor` = the answer's `next_cursor` (see [`page`]).
#[utoipa::path(
    get,
    path = "/v1/decisions",
    tag = "decisions",
    params(Reader, Fresh, ListQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Logged decisions, oldest first", body = FreshDecisionList, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        Errors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Fresh(seq): Fresh,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Answer<DecisionList>, ApiError> {
    let limit = page::limit_within(
        query.limit.map(|n| n as usize),
        DEFAULT_LIMIT as usize,
        MAX_LIMIT as usize,
        "decisions",
    )?;
    let entry_point = query.entry_point.as_deref().map(|ep| {
        EntryPoint::parse(ep)
            .map(|ep| ep.as_str().to_owned())
            .unwrap_or_else(|_| ep.to_owned())
    });
    let after = page::after(query.cursor.as_deref())?;
    // One more than asked for says whether another page follows.
    let mut decisions = state
        .store()
        .list_decisions(
            &caller.tenant,
            &DecisionQuery {
                entry_point,
                since: query.since,
                until: query.until,
                after,
                limit: u32::try_from(limit + 1).unwrap_or(u32::MAX),
            },
        )
        .await?;
    let more = decisions.len() > limit;
    decisions.truncate(limit);
    let next_cursor = more
        .then(|| decisions.last())
        .flatten()
        .map(|last| page::cursor(&(last.decided_at, &last.decision_id)));
    Ok(Answer::new(
        seq,
        DecisionList {
            decisions,
            next_cursor,
        },
    ))
}
