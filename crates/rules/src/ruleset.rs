//! Rulesets: the compiled form of one entry point's rules, and their evaluation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::explain::{Explainer, RuleOutcome, Unwitnessed, Witness};
use crate::index::{Index, Test};
use crate::logic::{dispose, is_operation, Budget, Logic, Scope};
use crate::params::Flag;
use crate::rule::in_window;
use crate::{
    Action, CompileError, EntryPoint, EvalError, FieldError, Limits, OnError, Rule, RuleError,
    ValidationErrors,
};

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
    /// The rules filed under their equality and `in` tests, so an evaluation runs only those
    /// that can match (see `index.rs`).
    index: Index,
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
    pub(crate) params: Value,
    /// The compiled expressions, or why the rule cannot run (a stored rule that no longer
    /// validates): reported each time the rule would run, never failing its neighbours.
    pub(crate) body: Result<Body, EvalError>,
    /// The equality or `in` test the index files the rule under, if it has one.
    pub(crate) test: Option<Test>,
}

#[derive(Debug, Clone)]
pub(crate) struct Body {
    pub(crate) condition: Logic,
    /// The condition's top-level operator as written (`>`, `and`, ...), for explanations.
    pub(crate) operator: Option<String>,
    pub(crate) actions: Vec<CompiledAction>,
    /// The deepest and the largest of the rule's expressions, so that the usual evaluation, well
    /// within its limits, checks them with two comparisons.
    pub(crate) deepest: usize,
    pub(crate) largest: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledAction {
    /// The action as written, except that each computed field holds `null`: a firing copies it
    /// whole (its key table is copied, not rebuilt, so no key is hashed) and writes the computed
    /// values into their places. The fields a reserved action reads ([`Action::reserved`]: a
    /// score's `factor`, a route's `level` and `route`) are never computed, so they are here.
    pub(crate) template: Action,
    /// The fields computed when the action fires, by name, in the order written.
    pub(crate) computed: Vec<(String, Logic)>,
    /// For each field of `template` in order, whether it is computed (the next of `computed`).
    is_computed: Vec<bool>,
}

impl CompiledRule {
    /// Validates and compiles one rule. A rule that does not validate still compiles, into one
    /// that reports why each time it would run.
    pub(crate) fn compile(mut rule: Rule) -> CompiledRule {
        let body = Body::compile(&rule);
        let test = body.as_ref().ok().and_then(|_| Test::of(&rule.condition));
        // A condition built by a program may be nested thousands of levels deep (and refused by
        // the compiler); drop it without recursion.
        dispose(std::mem::take(&mut rule.condition));
        CompiledRule {
            id: rule.id,
            version: rule.version,
            priority: rule.priority,
            enabled: rule.enabled,
            stop_processing: rule.stop_processing,
            active_from: rule.active_from,
            active_until: rule.active_until,
            params: Value::Object(rule.params),
            body,
            test,
        }
    }

    pub(crate) fn applies_at(&self, at: DateTime<Utc>) -> bool {
        self.enabled && in_window(self.active_from, self.active_until, at)
    }

    /// The rule's compiled expressions, once they are known to be within `limits`.
    pub(crate) fn body(&self, limits: &Limits) -> Result<&Body, EvalError> {
        let body = self.body.as_ref().map_err(Clone::clone)?;
        body.check(limits, &self.id)?;
        Ok(body)
    }

    /// Whether the condition holds for `scope`: the body and what is left of the rule's budget
    /// when it does.
    fn decide(
        &self,
        scope: &Scope<'_>,
        limits: &Limits,
    ) -> Result<Option<(&Body, Budget)>, EvalError> {
        let body = self.body(limits)?;
        let mut budget = Budget::new(limits.max_ops);
        if !(body.condition.is_always_true() || body.condition.holds_in(scope, &mut budget)?) {
            return Ok(None);
        }
        Ok(Some((body, budget)))
    }

    /// The rule as a boolean flag for `input` at `at` (see [`crate::Params::flag`]): decided by
    /// the same checks, in the same order, as an evaluation decides the rule, without its
    /// actions.
    pub(crate) fn flag(&self, input: &Value, at: DateTime<Utc>, limits: &Limits) -> Flag {
        if !self.enabled {
            return Flag::Disabled;
        }
        if !self.applies_at(at) {
            return Flag::OutsideWindow;
        }
        let scope = Scope::Rule {
            input,
            params: &self.params,
        };
        match self.decide(&scope, limits) {
            Ok(Some((body, _))) if body.condition.is_always_true() => Flag::Always,
            Ok(Some(_)) => Flag::Matched,
            Ok(None) => Flag::ConditionFalse,
            Err(e) => Flag::Failed(e),
        }
    }

    /// Appends to `fired` the actions of a rule whose condition held, computed with the rest of
    /// its budget; on failure `fired` is left as it was.
    fn fire(
        &self,
        body: &Body,
        scope: &Scope<'_>,
        mut budget: Budget,
        fired: &mut Vec<FiredAction>,
    ) -> Result<(), EvalError> {
        let before = fired.len();
        for action in &body.actions {
            match action.evaluate(scope, &mut budget) {
                Ok(action) => fired.push(FiredAction {
                    rule_id: self.id.clone(),
                    action,
                }),
                Err(e) => {
                    fired.truncate(before);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

impl Body {
    fn compile(rule: &Rule) -> Result<Body, EvalError> {
        let invalid = |errors| EvalError::Invalid {
            rule_id: rule.id.clone(),
            errors,
        };
        rule.validate().map_err(invalid)?;
        // `validate` compiled every expression within the same limits; a failure here would be a
        // bug, still reported as the rule's own error.
        let logic_error = |field: String| {
            move |e: crate::logic::LogicError| {
                invalid(ValidationErrors {
                    errors: vec![FieldError::new(field, e.to_string())],
                })
            }
        };
        let condition = Logic::compile(&rule.condition).map_err(logic_error("condition".into()))?;
        let mut actions = Vec::with_capacity(rule.actions.len());
        for (i, action) in rule.actions.iter().enumerate() {
            let mut computed = Vec::new();
            for (field, expr) in action.expressions() {
                let logic =
                    Logic::compile(expr).map_err(logic_error(format!("actions[{i}].{field}")))?;
                computed.push((field.to_owned(), logic));
            }
            let mut template = action.clone();
            let mut is_computed = Vec::with_capacity(template.fields.len());
            let mut next = computed.iter().map(|(name, _)| name).peekable();
            for (name, value) in template.fields.iter_mut() {
                let here = next.next_if(|computed| *computed == name).is_some();
                if here {
                    dispose(std::mem::take(value));
                }
                is_computed.push(here);
            }
            actions.push(CompiledAction {
                template,
                computed,
                is_computed,
            });
        }
        let expressions = || {
            std::iter::once(&condition).chain(
                actions
                    .iter()
                    .flat_map(|a| a.computed.iter().map(|(_, l)| l)),
            )
        };
        let deepest = expressions().map(Logic::depth).max().unwrap_or(0);
        let largest = expressions().map(Logic::nodes).max().unwrap_or(0);
        let operator = match &rule.condition {
            Value::Object(map) if is_operation(&rule.condition) => map.keys().next().cloned(),
            _ => None,
        };
        Ok(Body {
            condition,
            operator,
            actions,
            deepest,
            largest,
        })
    }

    /// Checks every expression of the rule against the size limits.
    fn check(&self, limits: &Limits, rule_id: &str) -> Result<(), EvalError> {
        if self.deepest <= limits.max_depth && self.largest <= limits.max_nodes {
            return Ok(());
        }
        // Over a limit: find the expression to name, in the order they would run.
        self.condition.check(limits, rule_id)?;
        self.actions
            .iter()
            .flat_map(|a| a.computed.iter().map(|(_, l)| l))
            .try_for_each(|e| e.check(limits, rule_id))
    }
}

impl CompiledAction {
    pub(crate) fn evaluate(
        &self,
        scope: &Scope<'_>,
        budget: &mut Budget,
    ) -> Result<Action, EvalError> {
        let mut action = self.template.clone();
        let mut computed = self.computed.iter();
        let places = action.fields.values_mut().zip(&self.is_computed);
        for (place, _) in places.filter(|(_, is_computed)| **is_computed) {
            if let Some((_, logic)) = computed.next() {
                *place = logic.eval_in(scope, budget)?;
            }
        }
        Ok(action)
    }
}

/// What an evaluation decided: the rules that matched (with their versions, so a caller can tell
/// which rules decided) and their actions in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
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
    /// Every rule that failed at run time, in the order they ran; each counts as not matched.
    /// Always present (empty when nothing failed).
    #[serde(default)]
    pub errors: Vec<RuleError>,
    /// Only when asked for ([`Ruleset::explain`], `"explain": true`): every rule of the entry
    /// point in evaluation order, each with how it was decided (see [`crate::Outcome`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<Vec<RuleOutcome>>,
}

/// A rule that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct FiredAction {
    /// The rule the action belongs to.
    pub rule_id: String,
    /// The action with its computed fields (serialised inline:
    /// `{"rule_id": ..., "type": ..., ...fields}`).
    #[serde(flatten)]
    pub action: Action,
}

impl Evaluation {
    /// The last `value` set for `field` by an action `{"type": "set_value", "field": ...,
    /// "value": ...}` (a convention of the examples, not a reserved type).
    pub fn value(&self, field: &str) -> Option<&Value> {
        self.actions.iter().rev().find_map(|a| {
            let action = &a.action;
            (action.kind == "set_value"
                && action.field("field").and_then(Value::as_str) == Some(field))
            .then(|| action.field("value"))
            .flatten()
        })
    }

    /// The evaluation under `on_error`: itself, unless a rule failed and `on_error` is
    /// [`OnError::Fail`], when the failures are the error (every one, in order).
    pub fn into_result(self, on_error: OnError) -> Result<Evaluation, Vec<RuleError>> {
        if on_error == OnError::Fail && !self.errors.is_empty() {
            Err(self.errors)
        } else {
            Ok(self)
        }
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
            compiled.push(CompiledRule::compile(rule));
        }
        Ruleset::from_compiled(entry_point, compiled)
    }

    /// Sorts compiled rules into evaluation order, refusing a repeated id.
    fn from_compiled(
        entry_point: EntryPoint,
        mut compiled: Vec<CompiledRule>,
    ) -> Result<Ruleset, CompileError> {
        compiled.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
        let mut ids: Vec<&str> = compiled.iter().map(|r| r.id.as_str()).collect();
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(CompileError::DuplicateRule {
                rule_id: pair[0].to_owned(),
            });
        }
        let actions = compiled
            .iter()
            .filter_map(|r| r.body.as_ref().ok())
            .map(|b| b.actions.len())
            .sum();
        Ok(Ruleset {
            entry_point,
            index: Index::build(&compiled),
            rules: compiled,
            actions,
        })
    }

    /// A new ruleset: this one with `drafts` (rules that are not saved) in place of its rules with
    /// the same ids, and beside the rest; `self` is left as it was, so a cached ruleset can be the
    /// base. Every draft must name this entry point (else [`CompileError::WrongEntryPoint`]), and
    /// no two drafts may share an id. A draft keeps the `version` it was given (the service gives
    /// 0, which no saved rule has).
    pub fn with_drafts(&self, drafts: Vec<Rule>) -> Result<Ruleset, CompileError> {
        let drafts = Ruleset::compile(self.entry_point.clone(), drafts)?;
        let mut rules: Vec<CompiledRule> = self
            .rules
            .iter()
            .filter(|saved| !drafts.rules.iter().any(|d| d.id == saved.id))
            .cloned()
            .collect();
        rules.extend(drafts.rules);
        Ruleset::from_compiled(self.entry_point.clone(), rules)
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
    ///
    /// A rule that fails (over a limit, out of its work budget, or stored invalid) is listed in
    /// [`Evaluation::errors`] and counts as not matched; the other rules run as usual, each with
    /// its own budget of `limits.max_ops`. See [`Evaluation::into_result`] for all-or-nothing.
    ///
    /// Only the rules that can match run: a rule whose equality or `in` test of a variable cannot
    /// hold for the input's value is skipped, with the same answer as if it had run.
    pub fn evaluate(&self, input: &Value, at: DateTime<Utc>, limits: &Limits) -> Evaluation {
        let witness = &mut Unwitnessed;
        match self.index.select(input, limits) {
            Some(order) => self.run(
                order.iter().map(|&i| i as usize),
                input,
                at,
                limits,
                witness,
            ),
            None => self.run(0..self.rules.len(), input, at, limits, witness),
        }
    }

    /// Evaluates like [`Ruleset::evaluate`] (with the same answer) and adds
    /// [`Evaluation::explain`]: for every rule in evaluation order, whether it matched, its
    /// condition was false (with the values of the condition's top-level operands), it was
    /// disabled, outside its window, failed, or was not reached after a `stop_processing` rule.
    pub fn explain(&self, input: &Value, at: DateTime<Utc>, limits: &Limits) -> Evaluation {
        let mut explainer = Explainer::default();
        let every = 0..self.rules.len();
        let mut evaluation = self.run(every, input, at, limits, &mut explainer);
        evaluation.explain = Some(explainer.outcomes);
        evaluation
    }

    /// The one evaluation loop over the rules at the positions `order` gives (in evaluation
    /// order), telling `witness` how each was decided. A witness that records (`explain`) is
    /// given every rule.
    #[inline(always)]
    fn run<W: Witness>(
        &self,
        order: impl ExactSizeIterator<Item = usize>,
        input: &Value,
        at: DateTime<Utc>,
        limits: &Limits,
        witness: &mut W,
    ) -> Evaluation {
        let mut evaluation = Evaluation {
            entry_point: self.entry_point.clone(),
            at,
            matched: Vec::new(),
            actions: Vec::new(),
            stopped_by: None,
            errors: Vec::new(),
            explain: None,
        };
        let room = order.len();
        for i in order {
            let rule = &self.rules[i];
            if !rule.applies_at(at) {
                witness.not_in_force(rule);
                continue;
            }
            let scope = Scope::Rule {
                input,
                params: &rule.params,
            };
            let (body, budget) = match rule.decide(&scope, limits) {
                Ok(Some(decided)) => decided,
                Ok(None) => {
                    witness.condition_false(rule, &scope, limits);
                    continue;
                }
                Err(e) => {
                    witness.failed(rule, &e, false);
                    evaluation
                        .errors
                        .push(RuleError::new(&rule.id, rule.version, &e));
                    continue;
                }
            };
            if evaluation.actions.capacity() == 0 {
                // One allocation instead of a series of doublings; nothing when none match.
                evaluation.actions.reserve_exact(self.actions);
            }
            if let Err(e) = rule.fire(body, &scope, budget, &mut evaluation.actions) {
                witness.failed(rule, &e, true);
                evaluation
                    .errors
                    .push(RuleError::new(&rule.id, rule.version, &e));
                continue;
            }
            if evaluation.matched.is_empty() {
                evaluation.matched.reserve_exact(room);
            }
            evaluation.matched.push(MatchedRule {
                id: rule.id.clone(),
                version: rule.version,
                priority: rule.priority,
            });
            witness.matched(rule);
            if rule.stop_processing {
                evaluation.stopped_by = Some(rule.id.clone());
                witness.not_reached(&self.rules[i + 1..], &rule.id);
                break;
            }
        }
        evaluation
    }
}
