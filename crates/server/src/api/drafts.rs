//! Drafts: `POST /v1/evaluate/{entry_point}` with `"drafts": [rule documents]` evaluates rules
//! that are not saved, so an author sees the effect of an edit before saving it.
//!
//! - **Checked like writes.** Each draft is read and validated exactly as `POST /v1/rules` and
//!   the import check a rule (the same messages), and ids must be unique among the drafts; every
//!   problem of every draft is reported at once, 422 `validation_failed`, each path starting with
//!   the draft's index (`drafts[2].priority`).
//! - **In place and beside.** A draft whose id is a saved rule of the entry point is evaluated in
//!   its place; a draft with a new id joins the entry point. The other saved rules run as usual.
//! - **Its own entry point only.** A draft whose `entry_point` is another one (or none) is
//!   refused (422 at `drafts[i].entry_point`): it would not be evaluated here once saved either,
//!   so evaluating it here would show an answer that saving cannot give. To see an entry point
//!   without one of its rules, send that rule as a draft with `"enabled": false`.
//! - **Nothing written, nothing cached, nothing logged.** The base is the entry point's cached
//!   ruleset (or, with `as_of`, the one built from the history); the drafts are compiled into a
//!   new ruleset owned by this request and dropped with it. The answer is not a decision: it has
//!   no `decision_id`, is never put in the decision log, and lists the drafts' ids in `drafts`.
//!   Drafts have version 0 in `matched` and `explain` (no saved rule has version 0).
//!
//! The answer's shape is documented with the others in [`crate::api::answer`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rulebook_rules::{EntryPoint, Limits, OnError, Ruleset};
use serde_json::Value;

use crate::api::answer::{AsOf, DraftAnswer};
use crate::api::rules::check_documents;
use crate::error::{plural, ApiError};

/// The request's drafts, checked: the rules to evaluate and their ids in the order sent.
#[derive(Debug)]
pub(crate) struct Drafts {
    rules: Vec<rulebook_rules::Rule>,
    ids: Vec<String>,
}

impl Drafts {
    /// Reads and checks `documents` as drafts of `entry_point` in `tenant` (see the module docs).
    pub(crate) fn check(
        tenant: &str,
        entry_point: &EntryPoint,
        documents: Vec<Value>,
    ) -> Result<Drafts, ApiError> {
        let total = documents.len();
        let checked = check_documents(tenant, documents, "drafts", |rule, named| {
            if rule.entry_point.as_ref() == Some(entry_point) {
                return None;
            }
            let message = match &rule.entry_point {
                Some(other) => format!(
                    "belongs to entry point `{other}`, not `{entry_point}`: evaluate it with `POST /v1/evaluate/{other}`, or set its `entry_point` to `{entry_point}`"
                ),
                None => format!(
                    "has no `entry_point`, so it is never evaluated at `{entry_point}`: set its `entry_point` to `{entry_point}`"
                ),
            };
            Some(("entry_point", named(&message)))
        });
        if !checked.problems.is_empty() {
            let bad = checked.bad_rules();
            let problems: Vec<_> = checked.problems.into_iter().map(|(_, e)| e).collect();
            return Err(ApiError::validation(
                format!(
                    "{} not valid, so nothing was evaluated: fix the {} listed in `errors` (each path starts with the draft's index in `drafts`)",
                    match (bad, total) {
                        (_, 1) => "the draft is".to_owned(),
                        (1, _) => format!("1 of {total} drafts is"),
                        (bad, _) => format!("{bad} of {total} drafts are"),
                    },
                    plural(problems.len(), "problem"),
                ),
                problems,
            ));
        }
        let mut rules = checked.rules;
        for rule in &mut rules {
            // Not saved: no version, no bookkeeping.
            rule.version = 0;
            rule.created_at = None;
            rule.created_by = None;
            rule.updated_at = None;
            rule.updated_by = None;
        }
        let ids = rules.iter().map(|r| r.id.clone()).collect();
        Ok(Drafts { rules, ids })
    }

    /// A ruleset of this request's own: `base` with the drafts in place of, and beside, its rules.
    fn compile(self, base: &Ruleset) -> Result<(Ruleset, Vec<String>), ApiError> {
        // The drafts were checked against the entry point and for repeated ids above, so this
        // cannot fail but by a bug; say so rather than guess.
        let ruleset = base.with_drafts(self.rules).map_err(ApiError::internal)?;
        Ok((ruleset, self.ids))
    }
}

/// Evaluates `contexts` with `drafts` over `base` (the entry point's saved rules, cached or as of
/// a past time) and encodes one [`DraftAnswer`] per context. Nothing is cached or logged.
// The request's fields, passed one by one like `evaluate_entry_point`'s.
#[allow(clippy::too_many_arguments)]
pub(crate) fn evaluate(
    seq: i64,
    base: Arc<Ruleset>,
    as_of: Option<&AsOf>,
    drafts: Drafts,
    contexts: &[Value],
    at: Option<DateTime<Utc>>,
    on_error: OnError,
    explain: bool,
) -> Result<Vec<Vec<u8>>, ApiError> {
    let (ruleset, ids) = drafts.compile(&base)?;
    drop(base);
    let at = at
        .or(as_of.map(|a| a.time))
        .unwrap_or_else(crate::api::answer::now);
    let limits = Limits::default();
    contexts
        .iter()
        .map(|context| {
            let evaluation = if explain {
                ruleset.explain(context, at, &limits)
            } else {
                ruleset.evaluate(context, at, &limits)
            }
            .into_result(on_error)
            .map_err(ApiError::rules_failed)?;
            serde_json::to_vec(&DraftAnswer {
                seq,
                drafts: &ids,
                outcome: &evaluation,
                as_of,
            })
            .map_err(ApiError::internal)
        })
        .collect()
}
