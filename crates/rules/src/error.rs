//! The errors of compiling and evaluating rules.

use serde::{Deserialize, Serialize};

use crate::ValidationErrors;

/// Why an evaluation failed, for one rule (reported in [`crate::Evaluation::errors`] and
/// [`crate::ScoreResult::errors`]) or for a whole score request (its overrides).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// A stored rule no longer passes [`crate::Rule::validate`] (it was written under other
    /// limits, or by plain SQL): it never matches until it is fixed.
    #[error("rule `{rule_id}` is invalid and is skipped until it is fixed: {errors}")]
    Invalid {
        /// The rule.
        rule_id: String,
        /// Every problem.
        errors: ValidationErrors,
    },
    /// An expression nests deeper than [`Limits::max_depth`].
    #[error("rule `{rule_id}`: expression nests {depth} levels deep, more than the limit of {limit}; simplify it")]
    TooDeep {
        /// The rule.
        rule_id: String,
        /// The expression's depth.
        depth: usize,
        /// The limit in force.
        limit: usize,
    },
    /// An expression has more nodes than [`Limits::max_nodes`].
    #[error("rule `{rule_id}`: expression has {nodes} nodes, more than the limit of {limit}; simplify it")]
    TooLarge {
        /// The rule.
        rule_id: String,
        /// The expression's size.
        nodes: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The work budget ran out.
    #[error("evaluation used more than its budget of {limit} operations; simplify the rule or shrink the input")]
    OutOfBudget {
        /// The limit in force.
        limit: u64,
    },
    /// A scorecard factor's level expression gave something other than LOW, MEDIUM or HIGH.
    #[error("factor `{factor}` of rule `{rule_id}` gave {value}, not `LOW`, `MEDIUM` or `HIGH`; fix its level expression")]
    BadLevel {
        /// The factor.
        factor: String,
        /// The rule.
        rule_id: String,
        /// What it gave, as JSON.
        value: String,
    },
    /// A score request overrides params of a rule the scorecard does not have.
    #[error("override for rule `{rule_id}`, which is not part of scorecard `{scorecard}`; use one of its rule ids")]
    UnknownOverride {
        /// The scorecard.
        scorecard: String,
        /// The rule named by the override.
        rule_id: String,
    },
    /// Overridden params break the rule's param schema.
    #[error("overrides for rule `{rule_id}` are invalid: {errors}")]
    InvalidOverride {
        /// The rule.
        rule_id: String,
        /// Every problem.
        errors: ValidationErrors,
    },
}

impl EvalError {
    /// A stable machine-readable name of the kind of failure: `invalid_rule`, `too_deep`,
    /// `too_large`, `out_of_budget`, `bad_level`, `unknown_override` or `invalid_override`.
    pub fn code(&self) -> &'static str {
        match self {
            EvalError::Invalid { .. } => "invalid_rule",
            EvalError::TooDeep { .. } => "too_deep",
            EvalError::TooLarge { .. } => "too_large",
            EvalError::OutOfBudget { .. } => "out_of_budget",
            EvalError::BadLevel { .. } => "bad_level",
            EvalError::UnknownOverride { .. } => "unknown_override",
            EvalError::InvalidOverride { .. } => "invalid_override",
        }
    }
}

/// One rule that failed while an entry point or a scorecard was evaluated. The rule counts as not
/// matched (a scorecard factor is left out); the other rules are evaluated as usual.
///
/// Serialised as `{"rule_id": "deep_rule", "version": 3, "code": "out_of_budget", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RuleError {
    /// The rule.
    pub rule_id: String,
    /// The version that failed.
    pub version: i64,
    /// [`EvalError::code`].
    pub code: String,
    /// What went wrong and how to fix it.
    pub message: String,
}

impl RuleError {
    pub(crate) fn new(rule_id: &str, version: i64, error: &EvalError) -> RuleError {
        RuleError {
            rule_id: rule_id.to_owned(),
            version,
            code: error.code().to_owned(),
            message: error.to_string(),
        }
    }
}

/// What to do when a rule fails at run time: the `on_error` of an evaluation or score request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Report the rule in the answer's `errors`, count it as not matched, evaluate the others.
    #[default]
    Continue,
    /// All or nothing: any rule failure fails the whole request.
    Fail,
}

/// Why rules could not be compiled into a ruleset or a scorecard.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    /// A rule of a ruleset names another entry point (or none).
    #[error("rule `{rule_id}` belongs to entry point `{found}`, not `{expected}`; compile it with its own entry point")]
    WrongEntryPoint {
        /// The rule.
        rule_id: String,
        /// The ruleset's entry point.
        expected: String,
        /// The rule's entry point, or `none`.
        found: String,
    },
    /// Two rules share an id.
    #[error("rule id `{rule_id}` appears more than once; ids are unique within a tenant")]
    DuplicateRule {
        /// The repeated id.
        rule_id: String,
    },
    /// More than one rule of a scorecard declares its routes.
    #[error("scorecard `{scorecard}` has route actions in both `{first}` and `{second}`; keep them in one rule")]
    DuplicateRoutes {
        /// The scorecard.
        scorecard: String,
        /// One rule with routes.
        first: String,
        /// Another rule with routes.
        second: String,
    },
}
