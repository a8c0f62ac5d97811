//! Rulesets: the compiled form of one entry point's rules, and their evaluation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::logic::{dispose, Budget, Logic, Scope};
use crate::rule::in_window;
use crate::{Action, CompileError, EntryPoint, EvalError, EvalLimits, Rule};

/// The compiled rules of one entry point, sorted by priority then id.
///
/// Compiled once per set of rule versions and shared (it is immutable, `Send + Sync`). Nothing
/// about time is baked in: `enabled` and the schedule window are checked on every evaluation
/// against the time the caller gives, so a cached ruleset stays correct when `active_from` passes.
#[derive(Debug, Clone)]
pub struct Ruleset {
    entry_point: EntryPoint,
    rules: Vec<CompiledRule>,
    /// How many actions the rules have in all: room reserved once an evaluation matches.
    actions: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub(crate) id: String,
    pub(crate) version: i64,
    pub(crate) priority: i32,
    pub(crate) enabled: bool,
    pub(crate) stop_processing: bool,
    pub(crate) active_from: Option<DateTime<Utc>>,
    pub(crate) active_until: Option<DateTime<Utc>>,
    pub(crate) condition: Logic,
    pub(crate) params: Value,
    pub(crate) actions: Vec<CompiledAction>,
    /// The deepest and the largest of the rule's expressions, so that the usual evaluation, well
    /// within its limits, checks them with two comparisons.
    deepest: usize,
    largest: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledAction {
    pub(crate) template: Action,
    pub(crate) expressions: Vec<Logic>,
}

impl CompiledRule {
    /// Validates and compiles one rule.
    pub(crate) fn compile(mut rule: Rule) -> Result<CompiledRule, CompileError> {
        let compiled = CompiledRule::compile_ref(&rule);
        // A condition built by a program may be nested thousands of levels deep (and refused by
        // the compiler); drop it without recursion.
        dispose(std::mem::take(&mut rule.condition));
        compiled
    }

    fn compile_ref(rule: &Rule) -> Result<CompiledRule, CompileError> {
        rule.validate().map_err(|errors| CompileError::Invalid {
            rule_id: rule.id.clone(),
            errors,
        })?;
        let logic_error = |field: String| {
            let id = rule.id.clone();
            move |source| CompileError::Logic {
                rule_id: id,
                field,
                source,
            }
        };
        let condition = Logic::compile(&rule.condition).map_err(logic_error("condition".into()))?;
        let mut actions = Vec::with_capacity(rule.actions.len());
        for (i, action) in rule.actions.iter().enumerate() {
            let mut expressions = Vec::new();
            for (field, expr) in action.expressions() {
                expressions.push(
                    Logic::compile(expr).map_err(logic_error(format!("actions[{i}].{field}")))?,
                );
            }
            actions.push(CompiledAction {
                template: action.clone(),
                expressions,
            });
        }
        let expressions =
            || std::iter::once(&condition).chain(actions.iter().flat_map(|a| &a.expressions));
        let deepest = expressions().map(Logic::depth).max().unwrap_or(0);
        let largest = expressions().map(Logic::nodes).max().unwrap_or(0);
        Ok(CompiledRule {
            id: rule.id.clone(),
            version: rule.version,
            priority: rule.priority,
            enabled: rule.enabled,
            stop_processing: rule.stop_processing,
            active_from: rule.active_from,
            active_until: rule.active_until,
            condition,
            params: Value::Object(rule.params.clone()),
            actions,
            deepest,
            largest,
        })
    }

    pub(crate) fn applies_at(&self, at: DateTime<Utc>) -> bool {
        self.enabled && in_window(self.active_from, self.active_until, at)
    }

    /// Checks every expression of the rule against the size limits.
    pub(crate) fn check(&self, limits: &EvalLimits) -> Result<(), EvalError> {
        if self.deepest <= limits.max_depth && self.largest <= limits.max_nodes {
            return Ok(());
        }
        // Over a limit: find the expression to name, in the order they would run.
        self.condition.check(limits, &self.id)?;
        self.actions
            .iter()
            .flat_map(|a| &a.expressions)
            .try_for_each(|e| e.check(limits, &self.id))
    }
}

impl CompiledAction {
    pub(crate) fn evaluate(
        &self,
        scope: &Scope<'_>,
        budget: &mut Budget,
    ) -> Result<Action, EvalError> {
        // Every kind of action has at most one expression: spare the list for that case.
        if let [only] = self.expressions.as_slice() {
            let value = only.eval_in(scope, budget)?;
            return Ok(self.template.with_values(std::iter::once(value)));
        }
        let values = self
            .expressions
            .iter()
            .map(|e| e.eval_in(scope, budget))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.template.with_values(values.into_iter()))
    }
}

/// What an evaluation decided: the rules that matched (with their versions, so a caller can tell
/// which rules decided) and their actions in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The entry point evaluated.
    pub entry_point: EntryPoint,
    /// The evaluation time the schedule windows were checked against.
    pub at: DateTime<Utc>,
    /// Every rule whose condition held, in the order they ran.
    pub matched: Vec<MatchedRule>,
    /// The actions of the matched rules, in order, with expression values evaluated.
    pub actions: Vec<FiredAction>,
    /// The rule whose `stop_processing` ended the evaluation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
}

/// A rule that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchedRule {
    /// The rule's id.
    pub id: String,
    /// The version that was evaluated.
    pub version: i64,
    /// Its priority.
    pub priority: i32,
}

/// One action of a matched rule, with its expressions evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiredAction {
    /// The rule the action belongs to.
    pub rule_id: String,
    /// The action (serialised inline: `{"rule_id": ..., "type": ..., ...}`).
    #[serde(flatten)]
    pub action: Action,
}

impl Evaluation {
    /// The last value set for `field` by a `set_value` action.
    pub fn value(&self, field: &str) -> Option<&Value> {
        self.actions.iter().rev().find_map(|a| match &a.action {
            Action::SetValue { field: f, value } if f == field => Some(value),
            _ => None,
        })
    }

    /// The ids of the matched rules, in order.
    pub fn matched_ids(&self) -> Vec<&str> {
        self.matched.iter().map(|m| m.id.as_str()).collect()
    }
}

impl Ruleset {
    /// Validates and compiles the rules of `entry_point`. Every rule must name that entry point;
    /// ids must be unique.
    pub fn compile(entry_point: EntryPoint, rules: Vec<Rule>) -> Result<Ruleset, CompileError> {
        let mut compiled = Vec::with_capacity(rules.len());
        for rule in rules {
            if rule.entry_point.as_ref() != Some(&entry_point) {
                return Err(CompileError::WrongEntryPoint {
                    rule_id: rule.id,
                    expected: entry_point.to_string(),
                    found: rule
                        .entry_point
                        .map_or_else(|| "none".to_owned(), |e| e.to_string()),
                });
            }
            compiled.push(CompiledRule::compile(rule)?);
        }
        compiled.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
        let mut ids: Vec<&str> = compiled.iter().map(|r| r.id.as_str()).collect();
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(CompileError::DuplicateRule {
                rule_id: pair[0].to_owned(),
            });
        }
        let actions = compiled.iter().map(|r| r.actions.len()).sum();
        Ok(Ruleset {
            entry_point,
            rules: compiled,
            actions,
        })
    }

    /// The entry point.
    pub fn entry_point(&self) -> &EntryPoint {
        &self.entry_point
    }

    /// How many rules were compiled (enabled or not).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule ids in evaluation order, with their versions.
    pub fn rules(&self) -> impl Iterator<Item = (&str, i64)> + '_ {
        self.rules.iter().map(|r| (r.id.as_str(), r.version))
    }

    /// Evaluates the entry point for `input` at time `at`.
    ///
    /// Keeps the rules that are enabled and whose window contains `at`, runs their conditions in
    /// priority order (ties by id), collects the actions of every match with their expressions
    /// evaluated, and stops after a matching rule with `stop_processing`. Conditions and action
    /// expressions see the input (`{"var": "country"}` or `{"var": "input.country"}`) and the
    /// rule's own params (`{"var": "params.rate"}`).
    pub fn evaluate(
        &self,
        input: &Value,
        at: DateTime<Utc>,
        limits: &EvalLimits,
    ) -> Result<Evaluation, EvalError> {
        let mut budget = Budget::new(limits.max_ops);
        let mut evaluation = Evaluation {
            entry_point: self.entry_point.clone(),
            at,
            matched: Vec::new(),
            actions: Vec::new(),
            stopped_by: None,
        };
        for rule in self.rules.iter().filter(|r| r.applies_at(at)) {
            rule.check(limits)?;
            let scope = Scope::Rule {
                input,
                params: &rule.params,
            };
            let matched =
                rule.condition.is_always_true() || rule.condition.holds_in(&scope, &mut budget)?;
            if !matched {
                continue;
            }
            if evaluation.matched.is_empty() {
                // One allocation each instead of a series of doublings; nothing when none match.
                evaluation.matched.reserve_exact(self.rules.len());
                evaluation.actions.reserve_exact(self.actions);
            }
            evaluation.matched.push(MatchedRule {
                id: rule.id.clone(),
                version: rule.version,
                priority: rule.priority,
            });
            for action in &rule.actions {
                evaluation.actions.push(FiredAction {
                    rule_id: rule.id.clone(),
                    action: action.evaluate(&scope, &mut budget)?,
                });
            }
            if rule.stop_processing {
                evaluation.stopped_by = Some(rule.id.clone());
                break;
            }
        }
        Ok(evaluation)
    }
}
