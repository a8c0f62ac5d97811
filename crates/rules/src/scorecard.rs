//! Scorecards: risk scoring from factor rules, with per-request overrides.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::logic::{Budget, Logic, Scope};
use crate::ruleset::CompiledRule;
use crate::{Action, CompileError, EvalError, EvalLimits, Level, ParamSchema, Rule};

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
}

/// The outcome of one scoring request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// One factor's level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        };
        let mut rules: Vec<Rule> = rules.into_iter().filter(|r| r.has_tag(&tag)).collect();
        rules.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
        for rule in rules {
            if card.members.contains_key(&rule.id) {
                return Err(CompileError::DuplicateRule { rule_id: rule.id });
            }
            let schema = rule.param_schema.clone();
            let params = rule.params.clone();
            let compiled = CompiledRule::compile(rule)?;
            for action in &compiled.actions {
                match &action.template {
                    Action::Score { factor, .. } => {
                        // A score action has exactly one expression: its level.
                        if let Some(level) = action.expressions.first() {
                            card.factors.push(Factor {
                                rule_id: compiled.id.clone(),
                                factor: factor.clone(),
                                level: level.clone(),
                            });
                        }
                    }
                    Action::Route { level, route } => {
                        match &card.routing_rule {
                            Some(first) if *first != compiled.id => {
                                return Err(CompileError::DuplicateRoutes {
                                    scorecard: card.name.clone(),
                                    first: first.clone(),
                                    second: compiled.id.clone(),
                                })
                            }
                            _ => card.routing_rule = Some(compiled.id.clone()),
                        }
                        card.routes.insert(*level, route.clone());
                    }
                    _ => {}
                }
            }
            card.members.insert(
                compiled.id.clone(),
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
    pub fn score(
        &self,
        request: &ScoreRequest,
        at: DateTime<Utc>,
        limits: &EvalLimits,
    ) -> Result<ScoreResult, EvalError> {
        let snapshot = self.snapshot(&request.overrides)?;
        let mut budget = Budget::new(limits.max_ops);
        let mut factors = Vec::with_capacity(self.factors.len());
        let mut conditions: HashMap<&str, bool> = HashMap::new();
        for factor in &self.factors {
            let Some(member) = self.members.get(&factor.rule_id) else {
                continue;
            };
            let rule = &member.compiled;
            if !rule.applies_at(at) {
                continue;
            }
            rule.check(limits)?;
            let params = snapshot.params(&factor.rule_id, &rule.params);
            let scope = Scope::Rule {
                input: &request.input,
                params,
            };
            let holds = match conditions.get(rule.id.as_str()) {
                Some(h) => *h,
                None => {
                    let h = rule.condition.is_always_true()
                        || rule.condition.holds_in(&scope, &mut budget)?;
                    conditions.insert(&rule.id, h);
                    h
                }
            };
            let level = if holds {
                let value = factor.level.eval_in(&scope, &mut budget)?;
                value
                    .as_str()
                    .and_then(Level::from_name)
                    .ok_or_else(|| EvalError::BadLevel {
                        factor: factor.factor.clone(),
                        rule_id: rule.id.clone(),
                        value: value.to_string(),
                    })?
            } else {
                Level::Low
            };
            factors.push(FactorScore {
                factor: factor.factor.clone(),
                rule_id: rule.id.clone(),
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
