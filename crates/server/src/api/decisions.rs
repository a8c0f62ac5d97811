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

use crate::auth::Reader;
use crate::error::ApiError;
use crate::extract::{PathParams, QueryParams};
use crate::freshness::{Answer, Fresh};
use crate::state::AppState;

/// The most decisions one listing returns.
pub const MAX_LIMIT: u32 = 1000;

/// `GET /v1/decisions/{id}`: the logged decision: its id, time, tenant, entry point, the versions
/// of the rules used, the context (or only its SHA-256) and the answer as sent.
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this entry point (or scorecard).
    pub entry_point: Option<String>,
    /// Only decisions made at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only decisions made before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// At most this many (default 100, at most 1000), oldest first.
    pub limit: Option<u32>,
    /// `min_seq`, read by [`Fresh`]; named here so that it is not refused as unknown.
    #[serde(default, rename = "min_seq")]
    _min_seq: Option<String>,
}

/// The answer of `GET /v1/decisions`.
#[derive(Debug, Serialize)]
pub struct DecisionList {
    /// The decisions, oldest first.
    pub decisions: Vec<Decision>,
}

/// `GET /v1/decisions?entry_point=EP&since=T&until=T&limit=N`: logged decisions, oldest first.
/// To page on, ask again with `since` = the last one's `decided_at`.
pub async fn list(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Fresh(seq): Fresh,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Answer<DecisionList>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "bad_limit",
            format!("`limit` is {limit}: ask for 1 to {MAX_LIMIT} decisions at a time, and page on with `since`"),
        ));
    }
    let entry_point = query.entry_point.as_deref().map(|ep| {
        EntryPoint::parse(ep)
            .map(|ep| ep.as_str().to_owned())
            .unwrap_or_else(|_| ep.to_owned())
    });
    let decisions = state
        .store()
        .list_decisions(
            &caller.tenant,
            &DecisionQuery {
                entry_point,
                since: query.since,
                until: query.until,
                limit,
            },
        )
        .await?;
    Ok(Answer::new(seq, DecisionList { decisions }))
}
