//! The store's one error type.
//!
//! Messages are written for the person who hit them: lower case, the input in backticks, and what
//! to do about it. Database errors are logged with their detail and reach users only as
//! [`StoreError::Unavailable`] or [`StoreError::Internal`], never as SQL.

use rulebook_rules::ValidationErrors;

/// Everything that can go wrong in the store, the registry and the rule-files source.
///
/// `Clone` because the registry hands one load error to every caller that waited for that load.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No rule with this id in this tenant.
    #[error("rule `{id}` does not exist in tenant `{tenant}`")]
    NotFound {
        /// The tenant that was searched.
        tenant: String,
        /// The rule id asked for.
        id: String,
    },
    /// The rule has a history, but no version with this number.
    #[error(
        "rule `{id}` has no version {version}: its versions are 1 to {latest} (see its history)"
    )]
    VersionNotFound {
        /// The rule id.
        id: String,
        /// The version asked for.
        version: i64,
        /// The last version in its history.
        latest: i64,
    },
    /// No logged decision with this id in this tenant.
    #[error("decision `{id}` is not in the decision log of tenant `{tenant}`: it was never logged (is the server started with --decision-log?), or it was pruned after the retention period")]
    DecisionNotFound {
        /// The tenant that was searched.
        tenant: String,
        /// The decision id asked for.
        id: String,
    },
    /// A create named an id that is taken.
    #[error("rule `{id}` already exists in tenant `{tenant}`: update it, or choose another id")]
    AlreadyExists {
        /// The tenant.
        tenant: String,
        /// The rule id that is taken.
        id: String,
    },
    /// The caller changed a version it no longer holds: someone else wrote in between.
    #[error(
        "rule `{id}` is at version {current_version}, not {expected_version}: read it again and reapply your change"
    )]
    Conflict {
        /// The rule id.
        id: String,
        /// The version the caller said it read.
        expected_version: i64,
        /// The version stored now.
        current_version: i64,
    },
    /// The rule fails validation; nothing was written.
    #[error("rule `{rule_id}` is not valid: {errors}")]
    Validation {
        /// The rule's id as sent.
        rule_id: String,
        /// Every problem found, each with its field path.
        errors: ValidationErrors,
    },
    /// Something other than a rule's content is wrong with the request (a bad tenant id, a
    /// rule whose tenant disagrees with the one named, an import naming one id twice, ...).
    #[error("{0}")]
    Invalid(String),
    /// The tenant does not exist.
    #[error("unknown tenant `{0}`: send an existing tenant, or create it first")]
    UnknownTenant(String),
    /// The database URL cannot be used.
    #[error("database url `{url}` cannot be used: {reason}")]
    InvalidUrl {
        /// The URL with any password hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database cannot be reached or is overloaded; the request may be retried.
    #[error("the database is unavailable ({0}); try again once it is back")]
    Unavailable(String),
    /// The schema could not be brought up to date.
    #[error("the database could not be migrated: {0}")]
    Migration(String),
    /// A stored rule cannot be read back (for example a document edited by hand into a shape
    /// that is not a rule).
    #[error("stored rule `{id}` in tenant `{tenant}` cannot be read: {reason}; fix the row or write the rule again")]
    Corrupt {
        /// The tenant.
        tenant: String,
        /// The rule id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// Stored rules do not compile into a ruleset or scorecard.
    #[error("{what} cannot be compiled: {reason}")]
    Compile {
        /// What was being compiled, such as ``entry point `checkout` of tenant `default` ``.
        what: String,
        /// The compiler's message.
        reason: String,
    },
    /// A rule file or folder cannot be used.
    #[error("rule file `{path}`: {reason}")]
    File {
        /// The file or folder.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An API token id that does not exist.
    #[error("token `{0}` does not exist")]
    TokenNotFound(String),
    /// The change log was pruned past a reader's cursor, so the changes after it cannot all be
    /// replayed.
    #[error("the change log was pruned past this position: invalidate everything and read again from the current position")]
    CursorPruned,
    /// A failure inside the store; the detail is in the log.
    #[error("the rule store failed ({0}); the server log has the detail")]
    Internal(String),
}

/// The one conversion of a cache load's error: the loader's own error as it returned it (shared by
/// every caller that waited for the load), and anything else (a panicked load) as
/// [`StoreError::Internal`].
impl From<rulebook_cache::LoadError<StoreError>> for StoreError {
    fn from(error: rulebook_cache::LoadError<StoreError>) -> StoreError {
        match error {
            rulebook_cache::LoadError::Failed(error) => (*error).clone(),
            // A panicked load (the panic itself is in the log).
            other => StoreError::Internal(other.to_string()),
        }
    }
}

impl StoreError {
    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Turns a database error into a [`StoreError`] without letting SQL reach the user. `doing` names
/// the operation for the log and the message ("reading rules", "writing rule `X`").
pub(crate) fn db_error(doing: &str, err: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match &err {
        E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
            tracing::warn!(error = %err, "database unavailable while {doing}");
            StoreError::Unavailable(format!("{doing}: cannot reach the database"))
        }
        E::Database(db) if is_busy(db.as_ref()) => {
            tracing::warn!(error = %err, "database busy while {doing}");
            StoreError::Unavailable(format!("{doing}: the database is busy"))
        }
        _ => {
            tracing::error!(error = %err, "database error while {doing}");
            StoreError::Internal(doing.to_owned())
        }
    }
}

/// SQLite's "busy"/"locked" and PostgreSQL's serialization failure and deadlock: transient.
fn is_busy(db: &dyn sqlx::error::DatabaseError) -> bool {
    matches!(
        db.code().as_deref(),
        Some("5" | "6" | "517" | "261" | "40001" | "40P01" | "57P01" | "57P03")
    )
}

/// Whether a database error is a unique-key violation.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}
