//! The one set of limits on expressions, used both when a rule is written (validation, an
//! import's dry run) and when it runs.
//!
//! There is deliberately one set: a rule that passes the write-time checks is within the limits
//! its evaluation applies, so no rule can be accepted that could never evaluate.

use serde::{Deserialize, Serialize};

/// Bounds on expressions and on their evaluation. Exceeding any of them is an error, never a
/// crash or a hang: at write time a [`crate::ValidationErrors`] entry, at run time an
/// [`crate::EvalError`] reported for the one rule concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Deepest nesting an expression may have (a literal is 1, `{"!": true}` is 2).
    pub max_depth: usize,
    /// Most operators and literals an expression may have.
    pub max_nodes: usize,
    /// Work budget of one rule in one evaluation (its condition and its actions, or a scorecard
    /// factor's condition and level): one unit per operator evaluated and per array element or
    /// character visited by `map`, `filter`, `reduce`, `all`, `some`, `none`, `merge`, `in` and
    /// `substr`. Each rule has its own budget, so one rule that runs out cannot starve the others.
    pub max_ops: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_nodes: 10_000,
            max_ops: 1_000_000,
        }
    }
}
