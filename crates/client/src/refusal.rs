//! Refusals: the API's answers to calls refused for what the call or the rules are, not for the
//! state of the store. One home for their status, code and message, used by the server's error
//! answers and by the [`crate::Replica`], so a call refused locally fails exactly as the server
//! would have refused it (the Python client raises the same exception class for both).

use rulebook_rules::{EntryPointError, EvalError};

use crate::{ClientError, FieldProblem};

/// One refusal: the HTTP status and API error code the server answers with, what to fix, and
/// every field problem (for a 422), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status, such as 400, 404, 422 or 500.
    pub status: u16,
    /// The API error code, such as `bad_entry_point`.
    pub code: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
    /// Field problems (paths such as `overrides.RF-001.lowThreshold`).
    pub errors: Vec<FieldProblem>,
}

impl Refusal {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    /// 400 `bad_entry_point`: an entry point that does not normalise.
    pub fn bad_entry_point(error: &EntryPointError) -> Refusal {
        Refusal::new(400, "bad_entry_point", error.to_string())
    }

    /// 400 `invalid_body`: an evaluation context that is not a JSON object.
    pub fn context_not_an_object() -> Refusal {
        Refusal::new(
            400,
            "invalid_body",
            "field `context` must be a JSON object such as {\"country\": \"FR\"}",
        )
    }

    /// 404 `scorecard_not_found`: a scorecard with no factors in `tenant`.
    pub fn scorecard_not_found(name: &str, tenant: &str) -> Refusal {
        Refusal::new(
            404,
            "scorecard_not_found",
            format!(
                "scorecard `{name}` has no factors in tenant `{tenant}`: tag its rules `{}` and give them `score` actions",
                rulebook_rules::tags::scorecard_tag(name)
            ),
        )
    }

    /// 500 `stored_rules_unusable`: stored rules that cannot be compiled; `reason` names the
    /// rule.
    pub fn stored_rules_unusable(reason: impl Into<String>) -> Refusal {
        Refusal::new(500, "stored_rules_unusable", reason)
    }

    /// An evaluation or scoring failure: 422 `validation_failed` for overrides that break a
    /// param schema (each problem at `overrides.<rule>.<param>`), 422 `evaluation_failed`
    /// otherwise.
    pub fn evaluation(error: EvalError) -> Refusal {
        match error {
            EvalError::InvalidOverride { rule_id, errors } => {
                let count = errors.errors.len();
                Refusal {
                    status: 422,
                    code: "validation_failed",
                    message: format!(
                        "overrides for rule `{rule_id}` are invalid: fix the {count} problem{} listed in `errors`",
                        if count == 1 { "" } else { "s" }
                    ),
                    errors: errors
                        .errors
                        .into_iter()
                        .map(|e| FieldProblem {
                            path: format!("overrides.{rule_id}.{}", e.path),
                            message: e.message,
                        })
                        .collect(),
                }
            }
            other => Refusal::new(422, "evaluation_failed", other.to_string()),
        }
    }
}

impl From<Refusal> for ClientError {
    fn from(refusal: Refusal) -> ClientError {
        ClientError::Refused {
            status: refusal.status,
            code: refusal.code.to_owned(),
            message: refusal.message,
            errors: refusal.errors,
        }
    }
}
