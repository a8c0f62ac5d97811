//! `POST /v1/evaluate`: several entry points evaluated against one context in one request.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use rulebook_rules::{EntryPoint, Evaluation, OnError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::answer::{json_response, DecisionAnswer};
use crate::api::evaluate::{check_context, evaluate_entry_point};
use crate::api::openapi::{Errors, TooLarge};
use crate::auth::Reader;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::freshness::Fresh;
use crate::state::AppState;

/// The most entry points one batch may name.
pub const MAX_ENTRY_POINTS: usize = 100;

/// The body of `POST /v1/evaluate`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    /// The entry points, each evaluated once, in this order (1 to 100).
    #[schema(min_items = 1, max_items = 100)]
    pub entry_points: Vec<String>,
    /// The input every entry point's conditions see.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub context: Value,
    /// The evaluation time (RFC 3339); now when left out, or `as_of` when that is given.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// Evaluate with the rules as they stood at this time (RFC 3339), built from the history.
    #[serde(default)]
    pub as_of: Option<DateTime<Utc>>,
    /// `"continue"` (the default): a rule that fails at run time is listed in its result's
    /// `errors`. `"fail"`: any such failure makes that entry point's result an error.
    #[serde(default)]
    pub on_error: OnError,
    /// `true`: each result explains how every rule was decided (`explain`, see
    /// [`crate::api::answer`]).
    #[serde(default)]
    pub explain: bool,
}

/// The answer of `POST /v1/evaluate`. Written around each result's already encoded bytes, so
/// never built: this type names the shape for the OpenAPI document.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // documentation only (see above)
pub struct BatchAnswer {
    /// The change-log position every result reflects.
    seq: i64,
    /// One per entry point asked, in order.
    results: Vec<BatchResult>,
}

/// One entry point's result: its answer, or its error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documentation only (see `BatchAnswer`)
enum BatchResult {
    /// The entry point's answer, as `POST /v1/evaluate/{entry_point}` gives it.
    Decided(DecisionAnswer<'static, Evaluation>),
    /// Why this entry point has no answer.
    Failed(BatchFailure<'static>),
}

/// One entry point of a batch that could not be evaluated; the others are.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchFailure<'a> {
    /// The entry point, normalised when it could be.
    entry_point: &'a str,
    /// Why.
    error: BatchError<'a>,
}

/// A batch entry's error: the status and error the single evaluation would have answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchError<'a> {
    /// The HTTP status the single evaluation would have answered.
    status: u16,
    /// Stable and meant for programs.
    code: &'a str,
    /// What was wrong and how to fix it.
    message: &'a str,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// `POST /v1/evaluate` with `{"entry_points": [...], "context": {...}}`: answers
/// `{"seq": ..., "results": [...]}`, one result per entry point in the order asked. Each result is
/// either that entry point's [`crate::api::answer::DecisionAnswer`] (with its own `decision_id`, logged like any
/// evaluation) or `{"entry_point": ..., "error": {"status": ..., "code": ..., "message": ...}}`;
/// one entry point's failure does not fail the others.
#[utoipa::path(
    post,
    path = "/v1/evaluate",
    tag = "evaluate",
    params(Reader, Fresh),
    request_body = BatchBody,
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "One result per entry point, in the order asked: its answer, or its own error", body = BatchAnswer, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        TooLarge,
        Errors,
    )
)]
pub async fn evaluate_many(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Fresh(seq): Fresh,
    JsonBody(body): JsonBody<BatchBody>,
) -> Result<Response, ApiError> {
    check_context(&body.context)?;
    if body.entry_points.is_empty() || body.entry_points.len() > MAX_ENTRY_POINTS {
        return Err(ApiError::bad_request(
            "bad_entry_points",
            format!(
                "`entry_points` has {} entries: name 1 to {MAX_ENTRY_POINTS} entry points, or send several requests",
                body.entry_points.len()
            ),
        ));
    }
    // Each result is already encoded JSON; the answer is written around them without parsing
    // them again.
    let context = body.context;
    let mut out = Vec::with_capacity(1024 * body.entry_points.len());
    out.extend_from_slice(format!("{{\"seq\":{seq},\"results\":[").as_bytes());
    for (i, name) in body.entry_points.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let answer = match EntryPoint::parse(name) {
            Ok(entry_point) => evaluate_entry_point(
                &state,
                seq,
                &caller.tenant,
                &entry_point,
                &context,
                body.at,
                body.as_of,
                body.on_error,
                body.explain,
            )
            .await
            .map_err(|e| (entry_point.as_str().to_owned(), e)),
            Err(e) => Err((name.clone(), ApiError::from(e))),
        };
        match answer {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err((entry_point, error)) => serde_json::to_writer(
                &mut out,
                &BatchFailure {
                    entry_point: &entry_point,
                    error: BatchError {
                        status: error.status().as_u16(),
                        code: error.code(),
                        message: error.message(),
                    },
                },
            )
            .map_err(ApiError::internal)?,
        }
    }
    out.extend_from_slice(b"]}");
    Ok(json_response(seq, out))
}
