//! `GET /v1/snapshot`: every rule of the caller's tenant with the `seq` it reflects, the starting
//! point of a client replica, which then follows `GET /v1/changes?after=<seq>`.
//!
//! The position is taken before the rules are read (by [`Fresh`]), so the rules reflect at least
//! `seq`; a change after it may already show, and then also comes again on the change stream,
//! which costs the replica one reload. The `ETag` is a digest of the rules alone, so a replica
//! that sends it back in `If-None-Match` gets 304 (with `X-Rulebook-Seq`) while nothing of its
//! tenant changed, however far the log moved for other tenants.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rulebook_client::wire::Snapshot;
use sha2::{Digest, Sha256};

use crate::api::openapi::{Errors, FreshSnapshot};
use crate::auth::Reader;
use crate::error::ApiError;
use crate::freshness::{Answer, Fresh, SEQ_HEADER};
use crate::state::AppState;

/// `GET /v1/snapshot` (`If-None-Match` answered with 304 while the rules are unchanged).
#[utoipa::path(
    get,
    path = "/v1/snapshot",
    tag = "replicas",
    params(Reader, Fresh, ("If-None-Match" = Option<String>, Header, description = "The `ETag` of a snapshot held: 304 while the rules are unchanged")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Every rule of the tenant, reflecting at least `seq`", body = FreshSnapshot, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"), ("ETag" = String, description = "A digest of the tenant's rules: send it back in `If-None-Match`"))),
        (status = 304, description = "The rules are unchanged since the snapshot named by `If-None-Match`", headers(("ETag" = String, description = "A digest of the tenant's rules: send it back in `If-None-Match`"), ("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        Errors,
    )
)]
pub async fn snapshot(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Fresh(seq): Fresh,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rules = state.registry().rules(&caller.tenant).await?;
    let digest = Sha256::digest(serde_json::to_vec(&*rules).map_err(ApiError::internal)?);
    let etag = format!(
        "\"{}\"",
        digest[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let etag = HeaderValue::from_str(&etag).map_err(ApiError::internal)?;
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sent| {
            sent.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag.to_str().unwrap_or_default())
        });
    if unchanged {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (SEQ_HEADER, HeaderValue::from(seq))],
        )
            .into_response());
    }
    let size = 256 + 512 * rules.len();
    let snapshot = Snapshot {
        tenant: caller.tenant,
        rules: (*rules).clone(),
    };
    Ok((
        [(header::ETAG, etag)],
        Answer::new(seq, snapshot).with_capacity(size),
    )
        .into_response())
}
