//! Scorecards: risk scoring from factor rules, with per-request overrides.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::explain::{self, FactorOutcome, Outcome};
use crate::logic::{Budget, Logic, Scope};
use crate::ruleset::CompiledRule;
use crate::{
    CompileError, EvalError, Level, Limits, OnError, ParamSchema, Reserved, Rule, RuleError,
};

/// The param of a scorecard's routing rule that sets the escalation: when at least this many
/// factors are MEDIUM (and none is HIGH), the overall level is HIGH. Absent or 0: no escalation.
pub const ESCALATION_PARAM: &str = "mediumCountForHigh";

/// A compiled scorecard: its factor rules, their params and schemas, and its routes.
///
/// Immutable and `Send + Sync`: cache it behind an `Arc` and score any number of requests with it
/// at once. A request's overrides live only in that request's snapshot.
#[derive(Debug, Clone)]
pub struct Scorecard {
    name: String,
    factors: Vec<Factor>,
    members: HashMap<String, Member>,
    routes: BTreeMap<Level, String>,
    routing_rule: Option<String>,
    /// Rules of the scorecard that do not compile (stored before a check they now fail): reported
    /// in every answer's `errors` while they are in force.
    broken: Vec<String>,
}

#[derive(Debug, Clone)]
struct Member {
    schema: ParamSchema,
    params: Map<String, Value>,
    compiled: CompiledRule,
}

#[derive(Debug, Clone)]
struct Factor {
    rule_id: String,
    factor: String,
    level: Logic,
}

/// One scoring request: the input (instrument type, value, holding period, ...) and optional
/// overrides of params, by rule id then param name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    /// What is being scored.
    pub input: Value,
    /// Params to use instead of the stored ones, for this request only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, Map<String, Value>>,
    /// What a factor rule that fails at run time does: reported in the answer's `errors` and left
    /// out (the default), or fails the request.
    #[serde(default)]
    pub on_error: OnError,
}

/// The outcome of one scoring request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ScoreResult {
    /// The scorecard's name.
    pub scorecard: String,
    /// Each factor that was in force, in rule order.
    pub factors: Vec<FactorScore>,
    /// The overall level.
    pub overall: Level,
    /// Whether the escalation raised the overall level above the highest factor.
    pub escalated: bool,
    /// The approval route for the overall level, if the scorecard names one.
    pub route: Option<String>,
    /// Every factor rule that failed at run time; its factors are left out of `factors` and of
    /// the overall level. Always present (empty when nothing failed).
    #[serde(default)]
    pub errors: Vec<RuleError>,
    /// Only when asked for ([`Scorecard::score_explained`], `"explain": true`): every factor in
    /// scoring order (and every rule of the scorecard stored invalid), each with how its rule was
    /// decided (see [`crate::Outcome`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<Vec<FactorOutcome>>,
}

/// One factor's level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct FactorScore {
    /// The factor's name.
    pub factor: String,
    /// The rule that scored it.
    pub rule_id: String,
    /// The rule's version.
    pub version: i64,
    /// The level (LOW when the rule's condition did not hold).
    pub level: Level,
}

impl ScoreResult {
    /// The level of `factor`, if it was scored.
    pub fn level_of(&self, factor: &str) -> Option<Level> {
        self.factors
            .iter()
            .find(|f| f.factor == factor)
            .map(|f| f.level)
    }
}

impl Scorecard {
    /// Compiles scorecard `name` from the rules tagged `scorecard:<name>` (other rules are
    /// ignored, so a tenant's whole rule list may be passed). A rule's `score` actions are
    /// factors; the `route` actions (all in one rule) name the route per overall level, and that
    /// rule's param [`ESCALATION_PARAM`] sets the escalation.
    pub fn compile(name: impl Into<String>, rules: Vec<Rule>) -> Result<Scorecard, CompileError> {
        let name = name.into();
        let tag = crate::tags::scorecard_tag(&name);
        let mut card = Scorecard {
            name,
            factors: Vec::new(),
            members: HashMap::new(),
            routes: BTreeMap::new(),
            routing_rule: None,
            broken: Vec::new(),
        };
        let mut rules: Vec<Rule> = rules.into_iter().filter(|r| r.has_tag(&tag)).collect();
        rules.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
        for rule in rules {
            if card.members.contains_key(&rule.id) {
                return Err(CompileError::DuplicateRule { rule_id: rule.id });
            }
            let schema = rule.param_schema.clone();
            let params = rule.params.clone();
            let compiled = CompiledRule::compile(rule);
            let Ok(body) = &compiled.body else {
                card.broken.push(compiled.id.to_string());
                card.members.insert(
                    compiled.id.to_string(),
                    Member {
                        schema,
                        params,
                        compiled,
                    },
                );
                continue;
            };
            for action in &body.actions {
                match action.template.action.reserved() {
                    Some(Reserved::Score { factor, .. }) => {
                        // A score action computes exactly one field: its level.
                        if let Some((_, level)) = action.computed.first() {
                            card.factors.push(Factor {
                                rule_id: compiled.id.to_string(),
                                factor: factor.to_owned(),
                                level: level.clone(),
                            });
                        }
                    }
                    Some(Reserved::Route { level, route }) => {
                        match &card.routing_rule {
                            Some(first) if **first != *compiled.id => {
                                return Err(CompileError::DuplicateRoutes {
                                    scorecard: card.name.clone(),
                                    first: first.clone(),
                                    second: compiled.id.to_string(),
                                })
                            }
                            _ => card.routing_rule = Some(compiled.id.to_string()),
                        }
                        card.routes.insert(level, route.to_owned());
                    }
                    None => {}
                }
            }
            card.members.insert(
                compiled.id.to_string(),
                Member {
                    schema,
                    params,
                    compiled,
                },
            );
        }
        Ok(card)
    }

    /// The scorecard's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The factor names, in scoring order.
    pub fn factors(&self) -> impl Iterator<Item = &str> + '_ {
        self.factors.iter().map(|f| f.factor.as_str())
    }

    /// The scorecard's rules (factors and routing) with their versions, in no particular order.
    pub fn rules(&self) -> impl Iterator<Item = (&str, i64)> + '_ {
        self.members
            .iter()
            .map(|(id, member)| (id.as_str(), member.compiled.version))
    }

    /// Scores one request at time `at`.
    ///
    /// The request gets its own snapshot: the compiled scorecard (shared, immutable) plus its
    /// overrides, each merged over the rule's stored params and checked against the rule's
    /// param schema. Factors whose rule is disabled or outside its window at `at` are left out;
    /// a factor whose rule condition does not hold is LOW. Expressions see `input.*` (or bare
    /// names from the input) and `params.*` (the rule's params after overrides).
    ///
    /// A factor rule that fails (over a limit, out of its own budget of `limits.max_ops`, a level
    /// that is not LOW, MEDIUM or HIGH) is listed in [`ScoreResult::errors`] and its factors are
    /// left out; with [`OnError::Fail`] it fails the request instead. Overrides that name another
    /// rule or break a schema fail the request either way.
    pub fn score(
        &self,
        request: &ScoreRequest,
        at: DateTime<Utc>,
        limits: &Limits,
    ) -> Result<ScoreResult, EvalError> {
        self.score_with(request, at, limits, false)
    }

    /// Scores like [`Scorecard::score`] (with the same answer) and adds [`ScoreResult::explain`]:
    /// for every factor, whether its rule matched (its level is in `factors`), its condition was
    /// false (LOW; with the values of the condition's top-level operands), it was disabled,
    /// outside its window, or failed.
    pub fn score_explained(
        &self,
        request: &ScoreRequest,
        at: DateTime<Utc>,
        limits: &Limits,
    ) -> Result<ScoreResult, EvalError> {
        self.score_with(request, at, limits, true)
    }

    fn score_with(
        &self,
        request: &ScoreRequest,
        at: DateTime<Utc>,
        limits: &Limits,
        explain: bool,
    ) -> Result<ScoreResult, EvalError> {
        let on_error = request.on_error;
        let mut explained: Option<Vec<FactorOutcome>> = explain.then(Vec::new);
        // Builds the outcome only when explaining.
        let mut note =
            |factor: Option<&str>, rule: &CompiledRule, outcome: &dyn Fn() -> Outcome| {
                if let Some(explained) = &mut explained {
                    explained.push(FactorOutcome {
                        factor: factor.map(str::to_owned),
                        rule_id: rule.id.to_string(),
                        version: rule.version,
                        outcome: outcome(),
                    });
                }
            };
        let snapshot = self.snapshot(&request.overrides)?;
        let mut factors = Vec::with_capacity(self.factors.len());
        let mut errors = Vec::new();
        let mut fail = |rule: &CompiledRule, e: EvalError| {
            if on_error == OnError::Fail {
                return Err(e);
            }
            errors.push(RuleError::new(&rule.id, rule.version, &e));
            Ok(())
        };
        for id in &self.broken {
            if let Some(member) = self.members.get(id) {
                let rule = &member.compiled;
                match (rule.applies_at(at), &rule.body) {
                    (true, Err(e)) => {
                        note(None, rule, &|| explain::failed(e, false));
                        fail(rule, e.clone())?;
                    }
                    (false, _) => note(None, rule, &|| explain::not_in_force(rule)),
                    (true, Ok(_)) => {}
                }
            }
        }
        // Each rule's condition is decided once, with the rule's own budget, shared by its
        // factors' levels; a rule that failed is skipped for its other factors.
        let mut rules: HashMap<&str, Result<(bool, Budget), EvalError>> = HashMap::new();
        for factor in &self.factors {
            let Some(member) = self.members.get(&factor.rule_id) else {
                continue;
            };
            let rule = &member.compiled;
            let name = Some(factor.factor.as_str());
            if !rule.applies_at(at) {
                note(name, rule, &|| explain::not_in_force(rule));
                continue;
            }
            let params = snapshot.params(&factor.rule_id, &rule.params);
            let scope = Scope::Rule {
                input: &request.input,
                params,
            };
            let state = match rules.entry(&*rule.id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let decided = rule.body(limits).and_then(|body| {
                        let mut budget = Budget::new(limits.max_ops);
                        let holds = body.condition.is_always_true()
                            || body.condition.holds_in(&scope, &mut budget)?;
                        Ok((holds, budget))
                    });
                    match decided {
                        Ok(state) => e.insert(Ok(state)),
                        Err(err) => {
                            fail(rule, err.clone())?;
                            e.insert(Err(err))
                        }
                    }
                }
            };
            let (holds, budget) = match state {
                Ok(state) => state,
                Err(err) => {
                    note(name, rule, &|| explain::failed(err, false));
                    continue;
                }
            };
            let level = if *holds {
                let level = factor.level.eval_in(&scope, budget).and_then(|value| {
                    value
                        .as_str()
                        .and_then(Level::from_name)
                        .ok_or_else(|| EvalError::BadLevel {
                            factor: factor.factor.clone(),
                            rule_id: rule.id.to_string(),
                            value: value.to_string(),
                        })
                });
                match level {
                    Ok(level) => {
                        note(name, rule, &|| Outcome::Matched);
                        level
                    }
                    Err(e) => {
                        note(name, rule, &|| explain::failed(&e, true));
                        fail(rule, e)?;
                        continue;
                    }
                }
            } else {
                note(name, rule, &|| {
                    explain::condition_false(rule, &scope, limits)
                });
                Level::Low
            };
            factors.push(FactorScore {
                factor: factor.factor.clone(),
                rule_id: rule.id.to_string(),
                version: rule.version,
                level,
            });
        }
        let highest = factors.iter().map(|f| f.level).max().unwrap_or(Level::Low);
        let mediums = factors.iter().filter(|f| f.level == Level::Medium).count();
        let threshold = self
            .routing_rule
            .as_ref()
            .and_then(|id| {
                self.members
                    .get(id)
                    .map(|m| snapshot.params(id, &m.compiled.params))
            })
            .and_then(|p| p.get(ESCALATION_PARAM))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let escalated = highest == Level::Medium && threshold > 0 && mediums as u64 >= threshold;
        let overall = if escalated { Level::High } else { highest };
        Ok(ScoreResult {
            scorecard: self.name.clone(),
            factors,
            overall,
            escalated,
            route: self.routes.get(&overall).cloned(),
            errors,
            explain: explained,
        })
    }

    /// Builds a request's own params snapshot: overrides merged over the stored params and
    /// validated. Only overridden rules are copied; the rest are read from the compiled card.
    fn snapshot(
        &self,
        overrides: &BTreeMap<String, Map<String, Value>>,
    ) -> Result<Snapshot, EvalError> {
        let mut merged = HashMap::with_capacity(overrides.len());
        for (rule_id, values) in overrides {
            let member = self
                .members
                .get(rule_id)
                .ok_or_else(|| EvalError::UnknownOverride {
                    scorecard: self.name.clone(),
                    rule_id: rule_id.clone(),
                })?;
            let mut params = member.params.clone();
            params.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
            member.schema.validate_params(&params).map_err(|errors| {
                EvalError::InvalidOverride {
                    rule_id: rule_id.clone(),
                    errors,
                }
            })?;
            merged.insert(rule_id.clone(), Value::Object(params));
        }
        Ok(Snapshot { merged })
    }
}

/// One request's params: the overridden rules' merged params, owned by the request.
struct Snapshot {
    merged: HashMap<String, Value>,
}

impl Snapshot {
    fn params<'a>(&'a self, rule_id: &str, stored: &'a Value) -> &'a Value {
        self.merged.get(rule_id).unwrap_or(stored)
    }
}
