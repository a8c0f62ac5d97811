//! The evaluation answer: the one shape that `POST /v1/evaluate/{entry_point}`,
//! `POST /v1/score/{scorecard}` and each result of the batch `POST /v1/evaluate` answer with.
//!
//! ```json
//! {
//!   "seq": 4182,
//!   "decision_id": "019ad3c2-8f3e-7b61-9a57-0c1f4e2b7d90",
//!   "entry_point": "checkout_terms",
//!   "at": "2026-03-03T10:00:00Z",
//!   "matched": [{"id": "checkout_terms_banner", "version": 3, "priority": 10}],
//!   "actions": [{"rule_id": "checkout_terms_banner", "type": "display_message", "message": "..."}],
//!   "stopped_by": "checkout_terms_banner",
//!   "as_of": {"time": "2026-03-03T10:00:00Z", "versions": {"checkout_terms_banner": 3}}
//! }
//! ```
//!
//! - `seq`: the change-log position the answer reflects (also in `X-Rulebook-Seq`; see
//!   [`crate::freshness`]).
//! - `decision_id`: unique and sortable by time (a UUIDv7). With `--decision-log` the decision is
//!   logged under it (`GET /v1/decisions/{decision_id}`).
//! - The evaluation itself (for a score: `scorecard`, `factors` each with its rule's `version`,
//!   `overall`, `escalated`, `route`) is [`rulebook_rules::Evaluation`] or
//!   [`rulebook_rules::ScoreResult`], flattened in: every matched rule carries its `version`.
//! - `as_of`: only when the request asked for the rules as they stood at a past time: that time
//!   and the version of every rule the evaluation was built from.
//! - `explain`: only when the request asked for it (`"explain": true`): for an evaluation, every
//!   rule of the entry point in evaluation order; for a score, every factor in scoring order; each
//!   with its `outcome`, one of `matched`, `condition_false` (with the condition's `operator` and
//!   the values of its top-level `operands`), `disabled`, `outside_window` (with `active_from` and
//!   `active_until`), `condition_error` or `action_error` (with `code` and `reason`, the failure
//!   also listed in `errors`), or `not_reached` (with `stopped_by`, the `stop_processing` rule
//!   that ended the evaluation). See [`rulebook_rules::Outcome`].
//!
//!   ```json
//!   "explain": [
//!     {"id": "big_order", "version": 2, "priority": 10, "outcome": "condition_false", "operator": ">", "operands": [250, 1000]},
//!     {"id": "eu_vat", "version": 5, "priority": 20, "outcome": "matched"},
//!     {"id": "xmas_promo", "version": 1, "priority": 30, "outcome": "outside_window", "active_from": "2026-12-01T00:00:00Z"},
//!     {"id": "old_banner", "version": 3, "priority": 40, "outcome": "not_reached", "stopped_by": "eu_vat"}
//!   ]
//!   ```
//!
//! **With drafts** (`"drafts": [...]`, see [`crate::api::drafts`]) the answer is the same but for
//! two things: it has no `decision_id` (it is not a decision and is never logged), and `drafts`
//! lists the ids of the drafts evaluated, in the order sent; drafts have version 0.
//!
//! **With several contexts** (`"contexts": [{...}, {...}]` instead of `"context"`) the answer is
//! `{"seq": ..., "results": [...]}`, one answer as above per context, in the order sent.

use std::collections::BTreeMap;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, SubsecRound, Utc};
use rulebook_store::{DecisionKind, NewDecision, VersionsUsed};
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::freshness::SEQ_HEADER;
use crate::state::AppState;

/// An evaluation answer (see the module docs for the shape).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DecisionAnswer<'a, T: Serialize> {
    /// The change-log position the answer reflects.
    pub seq: i64,
    /// The decision's id: a UUIDv7, unique and sortable by time.
    pub decision_id: &'a str,
    /// The evaluation or score, flattened into the answer.
    #[serde(flatten)]
    pub outcome: &'a T,
    /// The rules' past time and versions, when the request named `as_of`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<&'a AsOf>,
}

/// An evaluation answer computed with drafts (see the module docs): no `decision_id`, and the
/// drafts' ids.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DraftAnswer<'a> {
    /// The change-log position the saved rules reflect.
    pub seq: i64,
    /// The ids of the drafts evaluated, in the order sent.
    pub drafts: &'a [String],
    /// The evaluation, flattened into the answer.
    #[serde(flatten)]
    pub outcome: &'a rulebook_rules::Evaluation,
    /// The rules' past time and versions, when the request named `as_of`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<&'a AsOf>,
}

/// The `as_of` part of an answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AsOf {
    /// The time the rules were taken as of.
    pub time: DateTime<Utc>,
    /// Rule id to the version that stood then, for every rule the evaluation was built from.
    pub versions: BTreeMap<String, i64>,
}

/// One decision being answered: its id and time.
#[derive(Debug)]
pub(crate) struct Decision {
    pub(crate) id: String,
    pub(crate) at: DateTime<Utc>,
}

impl Decision {
    /// A new decision id (UUIDv7) and the time, to the microsecond as the store keeps times.
    pub(crate) fn new() -> Decision {
        Decision {
            id: uuid::Uuid::now_v7().to_string(),
            at: now(),
        }
    }
}

/// The time now, to the microsecond as the store keeps times: the evaluation time of a request
/// that names none.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// What is needed to log a decision besides its answer.
#[derive(Debug)]
pub(crate) struct ToLog<'a, F> {
    pub(crate) tenant: &'a str,
    pub(crate) kind: DecisionKind,
    pub(crate) name: &'a str,
    /// Called only when the log is on.
    pub(crate) versions: F,
    /// The input.
    pub(crate) context: &'a Value,
}

/// An answer's JSON, written into a buffer.
pub(crate) trait WriteJson {
    /// Appends the answer's JSON: the bytes `serde_json` writes for it.
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), ApiError>;
}

impl WriteJson for DecisionAnswer<'_, rulebook_rules::ScoreResult> {
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), ApiError> {
        serde_json::to_writer(out, self).map_err(ApiError::internal)
    }
}

/// Written by hand in the order serde writes the fields, so that each rule's fixed parts, written
/// once when its rule was compiled, are copied rather than serialised again
/// ([`rulebook_rules::Evaluation::write_json_fields`]).
impl WriteJson for DecisionAnswer<'_, rulebook_rules::Evaluation> {
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), ApiError> {
        out.extend_from_slice(b"{\"seq\":");
        serde_json::to_writer(&mut *out, &self.seq).map_err(ApiError::internal)?;
        out.extend_from_slice(b",\"decision_id\":");
        serde_json::to_writer(&mut *out, self.decision_id).map_err(ApiError::internal)?;
        out.push(b',');
        self.outcome.write_json_fields(out);
        if let Some(as_of) = self.as_of {
            out.extend_from_slice(b",\"as_of\":");
            serde_json::to_writer(&mut *out, as_of).map_err(ApiError::internal)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// Writes `answer` once, into a buffer sized for it, and hands it to the decision log when it
/// runs (which copies it into its pending batch before this returns).
pub(crate) fn encode(
    state: &AppState,
    decision: &Decision,
    answer: &impl WriteJson,
    size_hint: usize,
    log: ToLog<'_, impl FnOnce() -> VersionsUsed>,
) -> Result<Bytes, ApiError> {
    let mut body = Vec::with_capacity(size_hint);
    answer.write_json(&mut body)?;
    if let Some(decisions) = state.decision_log() {
        decisions.record(NewDecision {
            id: &decision.id,
            tenant: log.tenant,
            kind: log.kind,
            entry_point: log.name,
            decided_at: decision.at,
            versions: &(log.versions)(),
            context: log.context,
            answer: &body,
        });
    }
    Ok(Bytes::from(body))
}

/// An encoded answer as a response, with its `seq` in `X-Rulebook-Seq`.
pub(crate) fn json_response(seq: i64, body: impl Into<Bytes>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (SEQ_HEADER, HeaderValue::from(seq)),
        ],
        body.into(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;
    use rulebook_rules::{EntryPoint, Limits, Ruleset};

    /// The answer written by hand is the one serde writes, with and without `as_of`, `explain`
    /// and `stopped_by`.
    #[test]
    fn written_evaluation_answer_equals_the_serialised_one() {
        let entry_point = EntryPoint::parse("checkout").unwrap();
        let mut rules = rulebook_rules::examples::benchmark_rules();
        // Rule 3 matches any country (the others list theirs), writes the country in its
        // message (a string that needs escaping) and stops the rest.
        rules[3].condition = serde_json::json!({"!!": [{"var": "country"}]});
        rules[3].stop_processing = true;
        let set = Ruleset::compile(entry_point, rules).unwrap();
        let at = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
        let input = serde_json::json!({"country": "GB \"quoted\"", "cart": {"total": 245.5}});
        let as_of = AsOf {
            time: at,
            versions: set.rules().map(|(id, v)| (id.to_owned(), v)).collect(),
        };
        for explain in [false, true] {
            let evaluation = if explain {
                set.explain(&input, at, &Limits::default())
            } else {
                set.evaluate(&input, at, &Limits::default())
            };
            assert!(evaluation.stopped_by.is_some());
            for as_of in [None, Some(&as_of)] {
                let answer = DecisionAnswer {
                    seq: 42,
                    decision_id: "019ad3c2-8f3e-7b61-9a57-0c1f4e2b7d90",
                    outcome: &evaluation,
                    as_of,
                };
                let mut written = Vec::new();
                answer.write_json(&mut written).unwrap();
                let serialised = serde_json::to_vec(&answer).unwrap();
                assert_eq!(
                    String::from_utf8(written).unwrap(),
                    String::from_utf8(serialised).unwrap()
                );
            }
        }
    }
}
