//! The freshness contract on the wire: `seq` on every answer, and reads that wait for `min_seq`.
//!
//! An instance's *applied position* is the highest change-log `seq` through which it has applied
//! every committed change (see `rulebook_store::Cursor::position` for how it is defined on
//! SQLite and PostgreSQL). Every read answer carries the position it reflects, `seq` in the
//! body and the `X-Rulebook-Seq` header; every write answer carries the `seq` of its own change.
//! The position is taken *before* the read looks at the cache: the cache never answers older
//! than what was applied before the lookup began, so the answer reflects at least that `seq`.
//!
//! A read may send `min_seq` (the query parameter or `X-Rulebook-Min-Seq`; with both, the
//! higher). [`Fresh`] then waits until the applied position reaches it, asking the feed to read
//! the change log at once rather than at its next wake-up or poll, for at most `--min-seq-wait`
//! (1 s by default); past that the answer is 503 `not_yet_current` with `Retry-After`. So
//! whoever wrote reads their write on any instance behind a load balancer by sending the `seq`
//! the write returned.
//!
//! The wait is a subscription to the registry's position (a `tokio::sync::watch`), which only the
//! feed's reader moves, after applying what it read: a waiter woken at position `p` is
//! answered from a cache in which every change through `p` has been applied.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rulebook_client::wire;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::AppState;

/// The header carrying the applied position (read answers) or the write's `seq` (writes).
pub const SEQ_HEADER: HeaderName = HeaderName::from_static("x-rulebook-seq");

/// The header a read may send instead of the `min_seq` query parameter.
pub const MIN_SEQ_HEADER: HeaderName = HeaderName::from_static("x-rulebook-min-seq");

/// The applied position a read answer reflects, reached after waiting for `min_seq` when the
/// request sent one. Rejects with 400 `bad_min_seq` for a `min_seq` that is not a whole number
/// at least 0, and 503 `not_yet_current` (with `Retry-After` and `X-Rulebook-Seq`) when the
/// position did not reach it within `--min-seq-wait`.
#[derive(Debug, Clone, Copy)]
pub struct Fresh(pub i64);

#[derive(Deserialize)]
struct MinSeqQuery {
    min_seq: Option<String>,
}

/// The `min_seq` a request asks for, if any.
pub fn min_seq(parts: &Parts) -> Result<Option<i64>, ApiError> {
    let parse = |text: &str, from: &str| {
        text.trim()
            .parse::<i64>()
            .ok()
            .filter(|seq| *seq >= 0)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "bad_min_seq",
                    format!(
                        "{from} `{text}` is not a change-log position: send a whole number at least 0, such as the `seq` a write returned"
                    ),
                )
            })
    };
    let from_query = match Query::<MinSeqQuery>::try_from_uri(&parts.uri) {
        Ok(Query(MinSeqQuery {
            min_seq: Some(text),
        })) => Some(parse(&text, "`min_seq`")?),
        _ => None,
    };
    let from_header = match parts.headers.get(MIN_SEQ_HEADER) {
        None => None,
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                ApiError::bad_request(
                    "bad_min_seq",
                    "the `X-Rulebook-Min-Seq` header is not text: send a whole number",
                )
            })?;
            Some(parse(text, "the `X-Rulebook-Min-Seq` header")?)
        }
    };
    Ok(from_query.max(from_header))
}

impl FromRequestParts<AppState> for Fresh {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Fresh, ApiError> {
        let wanted = min_seq(parts)?;
        let position = state.registry().applied_seq();
        match wanted {
            Some(seq) if seq > position => wait_for(state, seq).await.map(Fresh),
            _ => Ok(Fresh(position)),
        }
    }
}

/// `min_seq` and `X-Rulebook-Min-Seq`, as the OpenAPI document names them.
impl utoipa::IntoParams for Fresh {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::ParameterIn;
        let position = || {
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                )))
                .minimum(Some(0))
        };
        vec![
            crate::api::openapi::optional(
                "min_seq",
                ParameterIn::Query,
                position(),
                "Answer only once this instance has applied the change log through this \
                 position (such as the `seq` a write answered); 503 `not_yet_current` if it does \
                 not within `--min-seq-wait`",
            ),
            crate::api::openapi::optional(
                "X-Rulebook-Min-Seq",
                ParameterIn::Header,
                position(),
                "The same as `min_seq`; the higher of the two wins",
            ),
        ]
    }
}

/// Waits for the applied position to reach `seq` (see the module docs). A `seq` that no write
/// has reached yet is the caller's mistake, not a reason to retry: a client learns a `seq` only
/// from an answer, after its change committed, so when the wait runs out the change log's head
/// is read, and a `seq` beyond it is answered 400 rather than 503.
async fn wait_for(state: &AppState, seq: i64) -> Result<i64, ApiError> {
    state.want_position(seq);
    let wait = state.limits().min_seq_wait;
    let reached = match state.registry().wait_for_position(seq, wait).await {
        Ok(position) => return Ok(position),
        Err(reached) => reached,
    };
    if let Ok(head) = state.store().head_seq().await {
        if seq > head {
            return Err(ApiError::bad_request(
                "bad_min_seq",
                format!(
                    "`min_seq` {seq} is ahead of the change log, whose last change is seq {head}: send a `seq` that a write or a read answered"
                ),
            ));
        }
    }
    Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_yet_current",
                format!(
                "this instance has applied the changes through seq {reached}, not yet {seq}, after waiting {wait:?}: retry, or send the read to another instance"
            ),
        )
        .with_retry_after(1)
        .with_seq(reached))
}

/// A JSON answer with its `seq`: the body is `T`'s fields with `"seq"` first
/// ([`wire::Fresh<T>`](rulebook_client::wire::Fresh), the shape the OpenAPI document names), and
/// the same number is in `X-Rulebook-Seq`. `T` must serialize as a JSON object.
#[derive(Debug)]
pub struct Answer<T> {
    seq: i64,
    body: T,
    capacity: usize,
}

impl<T: Serialize> Answer<T> {
    /// `body` answered with `seq`.
    pub fn new(seq: i64, body: T) -> Answer<T> {
        Answer {
            seq,
            body,
            capacity: 256,
        }
    }

    /// The same, serialized into a buffer of `bytes` to start with (for large answers, so the
    /// buffer is not grown and copied several times).
    pub fn with_capacity(mut self, bytes: usize) -> Answer<T> {
        self.capacity = bytes;
        self
    }
}

impl<T: Serialize> IntoResponse for Answer<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(self.capacity);
        // The wire type is the one home of the shape: clients read it, the OpenAPI document
        // describes it.
        let with_seq = wire::Fresh {
            seq: self.seq,
            body: self.body,
        };
        if let Err(e) = serde_json::to_writer(&mut body, &with_seq) {
            return ApiError::internal(e).into_response();
        }
        (
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (SEQ_HEADER, HeaderValue::from(self.seq)),
            ],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::Request;

    fn parts(uri: &str, header: Option<&str>) -> Parts {
        let mut request = Request::builder().uri(uri);
        if let Some(value) = header {
            request = request.header(MIN_SEQ_HEADER, value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn min_seq_comes_from_the_query_or_the_header_and_the_higher_wins() {
        assert_eq!(min_seq(&parts("/v1/rules", None)).unwrap(), None);
        assert_eq!(
            min_seq(&parts("/v1/rules?min_seq=12", None)).unwrap(),
            Some(12)
        );
        assert_eq!(min_seq(&parts("/v1/rules", Some("7"))).unwrap(), Some(7));
        assert_eq!(
            min_seq(&parts("/v1/rules?entry_point=x&min_seq=3", Some("9"))).unwrap(),
            Some(9)
        );
        for bad in ["/v1/rules?min_seq=-1", "/v1/rules?min_seq=abc"] {
            let e = min_seq(&parts(bad, None)).unwrap_err();
            assert_eq!(e.code(), "bad_min_seq");
            assert!(e.message().contains("whole number"), "{}", e.message());
        }
        let e = min_seq(&parts("/v1/rules", Some("1.5"))).unwrap_err();
        assert!(
            e.message().contains("X-Rulebook-Min-Seq"),
            "{}",
            e.message()
        );
    }
}
