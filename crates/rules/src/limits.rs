//! Evaluation limits and the errors of compiling and evaluating.

use serde::{Deserialize, Serialize};

use crate::logic::LogicError;
use crate::ValidationErrors;

/// Bounds on one evaluation. Exceeding any of them is an [`EvalError`], never a crash or a hang.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalLimits {
    /// Deepest nesting of operators an expression may have.
    pub max_depth: usize,
    /// Most operators and literals an expression may have.
    pub max_nodes: usize,
    /// Work budget for one whole evaluation (a ruleset or a scorecard request): one unit per
    /// operator evaluated and per array element visited by `map`, `filter`, `reduce`, `all`,
    /// `some`, `none`, `merge` and `in`.
    pub max_ops: u64,
}

impl Default for EvalLimits {
    fn default() -> Self {
        EvalLimits {
            max_depth: 64,
            max_nodes: 10_000,
            max_ops: 1_000_000,
        }
    }
}

/// Why an evaluation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// An expression nests deeper than [`EvalLimits::max_depth`].
    #[error("rule `{rule_id}`: expression nests {depth} levels deep, more than the limit of {limit}; simplify it")]
    TooDeep {
        /// The rule.
        rule_id: String,
        /// The expression's depth.
        depth: usize,
        /// The limit in force.
        limit: usize,
    },
    /// An expression has more nodes than [`EvalLimits::max_nodes`].
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
    #[error("evaluation used more than its budget of {limit} operations; simplify the rules or shrink the input")]
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

/// Why rules could not be compiled into a ruleset or a scorecard.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    /// A rule fails [`crate::Rule::validate`].
    #[error("rule `{rule_id}` is invalid: {errors}")]
    Invalid {
        /// The rule.
        rule_id: String,
        /// Every problem.
        errors: ValidationErrors,
    },
    /// An expression of a rule does not compile.
    #[error("rule `{rule_id}`, field `{field}`: {source}")]
    Logic {
        /// The rule.
        rule_id: String,
        /// Which expression: `condition`, `actions[0].value`, ...
        field: String,
        /// What is wrong with it.
        source: LogicError,
    },
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
