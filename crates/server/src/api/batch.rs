//! `POST /v1/evaluate`: several entry points evaluated against one context in one request.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use rulebook_rules::{EntryPoint, OnError};
use serde::Deserialize;
use serde_json::Value;

use crate::api::answer::json_response;
use crate::api::evaluate::{check_context, evaluate_entry_point};
use crate::auth::Reader;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::freshness::Fresh;
use crate::state::AppState;

/// The most entry points one batch may name.
pub const MAX_ENTRY_POINTS: usize = 100;

/// The body of `POST /v1/evaluate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    /// The entry points, each evaluated once, in this order (1 to 100).
    pub entry_points: Vec<String>,
    /// The input every entry point's conditions see.
    #[serde(default = "empty_object")]
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

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// `POST /v1/evaluate` with `{"entry_points": [...], "context": {...}}`: answers
/// `{"seq": ..., "results": [...]}`, one result per entry point in the order asked. Each result is
/// either that entry point's [`crate::api::answer::DecisionAnswer`] (with its own `decision_id`, logged like any
/// evaluation) or `{"entry_point": ..., "error": {"status": ..., "code": ..., "message": ...}}`;
/// one entry point's failure does not fail the others.
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
                &body.context,
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
                &serde_json::json!({
                "entry_point": entry_point,
                "error": {
                    "status": error.status().as_u16(),
                    "code": error.code(),
                    "message": error.message(),
                }
                }),
            )
            .map_err(ApiError::internal)?,
        }
    }
    out.extend_from_slice(b"]}");
    Ok(json_response(seq, out))
}
