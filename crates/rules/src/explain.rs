//! Explanations: why each rule of an entry point (or each factor of a scorecard) did or did not
//! match, asked for with [`crate::Ruleset::explain`] and [`crate::Scorecard::score_explained`].
//!
//! An evaluation decides each rule in one of six ways, and an explanation names the way for every
//! rule, in evaluation order ([`Outcome`]). The usual evaluation records none of this: it runs the
//! same loop with a witness whose methods are empty (`Unwitnessed`), so the compiler removes
//! them and the fast path stays what it was. The explaining witness (`Explainer`) does its
//! extra work only where the answer needs it: when a condition is false it evaluates the
//! condition's top-level operands once more, in full and with a fresh budget, to show their
//! values. Nothing it does changes what the evaluation decides.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::logic::{Budget, Scope};
use crate::ruleset::CompiledRule;
use crate::{EvalError, Limits};

/// How one rule was decided. Serialised inline with an `outcome` tag, for example
/// `{"outcome": "condition_false", "operator": ">", "operands": [250, 1000]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The condition held and the actions were computed: the rule is in `matched`.
    Matched,
    /// The condition did not hold.
    ConditionFalse {
        /// The condition's top-level operator (`>`, `and`, `in`, ...); absent when the condition
        /// is not an operation (a literal such as `false`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        operator: Option<String>,
        /// The values of its top-level operands, in order: `[250, 1000]` for
        /// `{">": [{"var": "amount"}, 1000]}` with `amount` 250; for `and`, each operand's own
        /// value (every operand is computed, even past the one that decided). A condition that is
        /// a bare `var` or a literal gives its one value. Absent when computing them again would
        /// exceed the rule's limits.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "utoipa", schema(value_type = Option<Vec<serde_json::Value>>))]
        operands: Option<Vec<Value>>,
    },
    /// The rule is disabled.
    Disabled,
    /// The evaluation time is outside the rule's window (`active_from` inclusive,
    /// `active_until` exclusive).
    OutsideWindow {
        /// When the rule starts to apply, if it has a start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        active_from: Option<DateTime<Utc>>,
        /// When it stops applying, if it has an end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        active_until: Option<DateTime<Utc>>,
    },
    /// The condition could not be decided (the rule is stored invalid, is over a limit, or ran
    /// out of its work budget): the same failure is listed in the answer's `errors`.
    ConditionError {
        /// [`EvalError::code`].
        code: String,
        /// What went wrong and how to fix it.
        reason: String,
    },
    /// The condition held but an action's expression (for a scorecard, the factor's level)
    /// failed: the rule counts as not matched, and the failure is listed in `errors`.
    ActionError {
        /// [`EvalError::code`].
        code: String,
        /// What went wrong and how to fix it.
        reason: String,
    },
    /// An earlier rule with `stop_processing` matched, so this one was never looked at.
    NotReached {
        /// The rule that stopped the evaluation.
        stopped_by: String,
    },
}

/// One rule of an entry point and how it was decided: one entry of
/// [`crate::Evaluation::explain`], serialised as
/// `{"id": "big_order", "version": 3, "priority": 10, "outcome": "matched"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RuleOutcome {
    /// The rule's id.
    pub id: String,
    /// The version evaluated (0 for a draft, which is not saved).
    pub version: i64,
    /// Its priority.
    pub priority: i32,
    /// How it was decided, inline.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// One factor of a scorecard and how its rule was decided: one entry of
/// [`crate::ScoreResult::explain`]. A factor whose rule matched has its level in `factors`; one
/// whose condition was false is LOW.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct FactorOutcome {
    /// The factor; absent for a rule of the scorecard that is stored invalid (its factors are
    /// unknown until it is fixed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<String>,
    /// The rule that scores it.
    pub rule_id: String,
    /// The rule's version.
    pub version: i64,
    /// How the rule was decided, inline.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What an evaluation tells its witness, rule by rule. The usual evaluation's witness does
/// nothing; the explaining one writes down an [`Outcome`] for each call.
pub(crate) trait Witness {
    /// `rule` was not in force at `at` (disabled or outside its window).
    fn not_in_force(&mut self, rule: &CompiledRule);
    /// `rule`'s condition did not hold for `scope`.
    fn condition_false(&mut self, rule: &CompiledRule, scope: &Scope<'_>, limits: &Limits);
    /// `rule` failed, deciding its condition or after it held.
    fn failed(&mut self, rule: &CompiledRule, error: &EvalError, condition_held: bool);
    /// `rule` matched.
    fn matched(&mut self, rule: &CompiledRule);
    /// `rest` were never looked at, because `stopper` stopped the evaluation.
    fn not_reached(&mut self, rest: &[CompiledRule], stopper: &str);
}

/// The usual evaluation's witness: sees nothing, costs nothing.
pub(crate) struct Unwitnessed;

impl Witness for Unwitnessed {
    #[inline(always)]
    fn not_in_force(&mut self, _: &CompiledRule) {}
    #[inline(always)]
    fn condition_false(&mut self, _: &CompiledRule, _: &Scope<'_>, _: &Limits) {}
    #[inline(always)]
    fn failed(&mut self, _: &CompiledRule, _: &EvalError, _: bool) {}
    #[inline(always)]
    fn matched(&mut self, _: &CompiledRule) {}
    #[inline(always)]
    fn not_reached(&mut self, _: &[CompiledRule], _: &str) {}
}

/// The explaining witness: one [`RuleOutcome`] per rule, in the order the rules were decided.
#[derive(Debug, Default)]
pub(crate) struct Explainer {
    pub(crate) outcomes: Vec<RuleOutcome>,
}

impl Explainer {
    fn push(&mut self, rule: &CompiledRule, outcome: Outcome) {
        self.outcomes.push(RuleOutcome {
            id: rule.id.to_string(),
            version: rule.version,
            priority: rule.priority,
            outcome,
        });
    }
}

impl Witness for Explainer {
    fn not_in_force(&mut self, rule: &CompiledRule) {
        self.push(rule, not_in_force(rule));
    }

    fn condition_false(&mut self, rule: &CompiledRule, scope: &Scope<'_>, limits: &Limits) {
        self.push(rule, condition_false(rule, scope, limits));
    }

    fn failed(&mut self, rule: &CompiledRule, error: &EvalError, condition_held: bool) {
        self.push(rule, failed(error, condition_held));
    }

    fn matched(&mut self, rule: &CompiledRule) {
        self.push(rule, Outcome::Matched);
    }

    fn not_reached(&mut self, rest: &[CompiledRule], stopper: &str) {
        for rule in rest {
            self.push(
                rule,
                Outcome::NotReached {
                    stopped_by: stopper.to_owned(),
                },
            );
        }
    }
}

/// Why a rule that is not in force is not: disabled first, then its window.
pub(crate) fn not_in_force(rule: &CompiledRule) -> Outcome {
    if rule.enabled {
        Outcome::OutsideWindow {
            active_from: rule.active_from,
            active_until: rule.active_until,
        }
    } else {
        Outcome::Disabled
    }
}

/// A false condition with its operator and its top-level operands' values, computed again with a
/// fresh budget of `limits.max_ops`.
pub(crate) fn condition_false(rule: &CompiledRule, scope: &Scope<'_>, limits: &Limits) -> Outcome {
    let Ok(body) = rule.body(limits) else {
        // The condition was just decided, so the body is there; say no more than is known.
        return Outcome::ConditionFalse {
            operator: None,
            operands: None,
        };
    };
    let mut budget = Budget::new(limits.max_ops);
    Outcome::ConditionFalse {
        operator: body.operator.clone(),
        operands: body.condition.operand_values(scope, &mut budget).ok(),
    }
}

pub(crate) fn failed(error: &EvalError, condition_held: bool) -> Outcome {
    let (code, reason) = (error.code().to_owned(), error.to_string());
    if condition_held {
        Outcome::ActionError { code, reason }
    } else {
        Outcome::ConditionError { code, reason }
    }
}
