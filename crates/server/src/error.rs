//! [`ApiError`]: the one error type of the HTTP API.
//!
//! Every failure a client can see is `{"error": {"code": "...", "message": "..."}}` with the
//! right status. The `code` is stable and meant for programs; the `message` is for the person
//! who sent the request and says what to fix. Validation failures add `errors`, one entry per
//! field path; version conflicts add `current_version`. Internal causes are logged here and never
//! sent: a database error reaches the client only as "the database is unavailable" or "the rule
//! store failed".

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rulebook_client::refusal::Refusal;
use rulebook_rules::{EntryPointError, EvalError, FieldError, RuleError};
use rulebook_store::StoreError;
use serde::Serialize;

/// An error answer of the HTTP API.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    errors: Vec<FieldError>,
    /// A version conflict's current version, or a 413's limit (one field: an error has at most
    /// one, and `ApiError` stays small enough to return by value).
    detail: Option<Detail>,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u64>,
    /// The applied position for an `X-Rulebook-Seq` header.
    seq: Option<i64>,
}

/// What an error says besides its message.
#[derive(Debug, Clone, Copy)]
enum Detail {
    /// A version conflict: the rule's current version.
    CurrentVersion(i64),
    /// A body over a limit: the limit, in bytes.
    Limit(u64),
}

/// Every error answer of the API (named `Error` in the OpenAPI document).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(crate) struct Envelope<'a> {
    /// What went wrong.
    error: Body<'a>,
}

/// The error itself (named `ErrorDetail` in the OpenAPI document).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorDetail)]
struct Body<'a> {
    /// Stable and meant for programs, such as `rule_not_found` or `validation_failed`.
    code: &'a str,
    /// For the person who sent the request: what was wrong and how to fix it.
    message: &'a str,
    /// Validation failures: one entry per problem, with the field's path.
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    #[schema(value_type = Vec<FieldError>)]
    errors: &'a [FieldError],
    /// Version conflicts: the rule's current version.
    #[serde(skip_serializing_if = "Option::is_none")]
    current_version: Option<i64>,
    /// A body over a limit (413): the limit, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u64>,
}

impl ApiError {
    /// An error with `status`, a stable `code` and a `message` saying what to fix.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
            detail: None,
            retry_after: None,
            seq: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 with `code`.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 422 listing every problem with its field path.
    pub fn validation(message: impl Into<String>, errors: Vec<FieldError>) -> ApiError {
        ApiError {
            errors,
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                message,
            )
        }
    }

    /// The same error, naming the rule's current version in `current_version`.
    pub fn with_current_version(mut self, version: i64) -> ApiError {
        self.detail = Some(Detail::CurrentVersion(version));
        self
    }

    /// The same error, naming the limit a body went over (bytes) in `limit`.
    pub fn with_limit(mut self, limit: u64) -> ApiError {
        self.detail = Some(Detail::Limit(limit));
        self
    }

    /// 500 for a failure inside the server; `cause` is logged, not sent.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to answer; the server log has the detail",
        )
    }

    /// The same error with `Retry-After: <secs>`.
    pub fn with_retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }

    /// The same error with the instance's applied position in `X-Rulebook-Seq`.
    pub fn with_seq(mut self, seq: i64) -> ApiError {
        self.seq = Some(seq);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let envelope = Envelope {
            error: Body {
                code: self.code,
                message: &self.message,
                errors: &self.errors,
                current_version: match self.detail {
                    Some(Detail::CurrentVersion(version)) => Some(version),
                    _ => None,
                },
                limit: match self.detail {
                    Some(Detail::Limit(limit)) => Some(limit),
                    _ => None,
                },
            },
        };
        let body = serde_json::to_vec(&envelope).unwrap_or_else(|_| {
            br#"{"error":{"code":"internal","message":"the error could not be encoded"}}"#.to_vec()
        });
        let mut response = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if let Some(seq) = self.seq {
            headers.insert(crate::freshness::SEQ_HEADER, seq.into());
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound { .. } => ApiError::not_found("rule_not_found", error.to_string()),
            StoreError::VersionNotFound { .. } => {
                ApiError::not_found("version_not_found", error.to_string())
            }
            StoreError::DecisionNotFound { .. } => {
                ApiError::not_found("decision_not_found", error.to_string())
            }
            StoreError::AlreadyExists { .. } => {
                ApiError::new(StatusCode::CONFLICT, "rule_exists", error.to_string())
            }
            // The message is the store's: written once, in `StoreError::Conflict`.
            StoreError::Conflict {
                current_version, ..
            } => ApiError::new(StatusCode::CONFLICT, "version_conflict", error.to_string())
                .with_current_version(current_version),
            StoreError::Validation { rule_id, errors } => ApiError::validation(
                format!(
                    "rule `{rule_id}` is not valid: fix the {} listed in `errors`",
                    plural(errors.errors.len(), "problem")
                ),
                errors.errors,
            ),
            StoreError::Invalid(_) => ApiError::bad_request("invalid_request", error.to_string()),
            StoreError::UnknownTenant(_) => {
                ApiError::bad_request("unknown_tenant", error.to_string())
            }
            // Retrying shortly may succeed: the database may be restarting.
            StoreError::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                error.to_string(),
            )
            .with_retry_after(1),
            StoreError::TokenNotFound(_) => {
                ApiError::not_found("token_not_found", error.to_string())
            }
            // The stored rules themselves are at fault: the message names the rule and is safe.
            StoreError::Corrupt { .. } | StoreError::Compile { .. } => {
                tracing::error!(error = %error, "stored rules cannot be used");
                Refusal::stored_rules_unusable(error.to_string()).into()
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<EntryPointError> for ApiError {
    fn from(error: EntryPointError) -> ApiError {
        Refusal::bad_entry_point(&error).into()
    }
}

/// A refusal's status, code, message and field problems, as they are defined once in
/// [`rulebook_client::refusal`] (where the replica refuses with them too).
impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        let status =
            StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let errors = refusal
            .errors
            .into_iter()
            .map(|p| FieldError::new(p.path, p.message))
            .collect();
        ApiError {
            errors,
            ..ApiError::new(status, refusal.code, refusal.message)
        }
    }
}

impl ApiError {
    /// 422 `evaluation_failed`: rules that failed at run time under `"on_error": "fail"`, each
    /// listed in `errors` with the rule's id as its path.
    pub fn rules_failed(failures: Vec<RuleError>) -> ApiError {
        ApiError {
            code: "evaluation_failed",
            ..ApiError::validation(
            format!(
                "{} failed and `on_error` is `fail`, so nothing was decided: fix the rules listed in `errors`, or leave `on_error` out to skip failing rules",
                plural(failures.len(), "rule")
            ),
            failures
                .into_iter()
                .map(|f| FieldError::new(f.rule_id, format!("{} ({})", f.message, f.code)))
                .collect(),
        )
        }
    }
}

impl From<EvalError> for ApiError {
    fn from(error: EvalError) -> ApiError {
        Refusal::evaluation(error).into()
    }
}

/// `1 problem`, `2 problems`.
pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn store_errors_never_leak_database_detail() {
        let error: ApiError = StoreError::Internal("SELECT * FROM rules".into()).into();
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!error.message().contains("SELECT"));
    }

    #[test]
    fn conflicts_name_the_current_version() {
        let error: ApiError = StoreError::Conflict {
            id: "RF-1".into(),
            expected_version: 2,
            current_version: 5,
        }
        .into();
        assert_eq!(error.status(), StatusCode::CONFLICT);
        assert!(error.message().contains("version 5"));
    }
}
