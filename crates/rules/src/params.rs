//! Parameters: a snapshot of a tenant's rules, read by rule id: params by field, enabled flags,
//! and each rule as a boolean flag.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::ruleset::CompiledRule;
use crate::{EvalError, Limits, Rule};

/// An immutable snapshot of a tenant's rules (params, enabled flags, and each rule as a boolean
/// flag), built once from the rules and shared behind an `Arc` (it is `Send + Sync`).
///
/// A rule is compiled as a ruleset compiles it (validated, its expressions compiled once), so
/// [`Params::flag`] decides a rule with the very checks an evaluation uses. It is compiled the
/// first time it is asked for as a flag, not when the snapshot is built: the snapshot is rebuilt
/// on every change of the tenant, and most of its rules are only ever read for their params.
#[derive(Debug, Clone, Default)]
pub struct Params {
    rules: HashMap<String, Entry>,
    /// The rule ids, sorted (byte order): the order of [`Params::rule_ids`].
    ids: Vec<String>,
}

/// One rule of the snapshot: as stored, and compiled once it is first decided as a flag.
#[derive(Debug, Clone)]
struct Entry {
    rule: Rule,
    compiled: OnceLock<CompiledRule>,
}

impl Entry {
    fn compiled(&self) -> &CompiledRule {
        self.compiled
            .get_or_init(|| CompiledRule::compile(self.rule.clone()))
    }
}

/// A rule decided as a boolean flag for one input and time ([`Params::flag`]). The checks run in
/// the order an evaluation runs them: enabled, then the schedule window, then the condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Flag {
    /// Enabled, in its window, and its condition is the literal `true`: on for every input.
    Always,
    /// Enabled, in its window, and its condition held for the input.
    Matched,
    /// Enabled and in its window, but its condition did not hold for the input.
    ConditionFalse,
    /// The rule is disabled.
    Disabled,
    /// The time is outside the rule's window (`active_from` inclusive, `active_until` exclusive).
    OutsideWindow,
    /// The condition could not be decided: the rule is stored invalid, is over a limit, or ran
    /// out of its work budget (as in an evaluation's `errors`).
    Failed(EvalError),
}

impl Flag {
    /// The flag's value: `true` for [`Flag::Always`] and [`Flag::Matched`], `false` for the
    /// others, and none for [`Flag::Failed`].
    pub fn value(&self) -> Option<bool> {
        match self {
            Flag::Always | Flag::Matched => Some(true),
            Flag::ConditionFalse | Flag::Disabled | Flag::OutsideWindow => Some(false),
            Flag::Failed(_) => None,
        }
    }
}

impl Params {
    /// Indexes the rules by id. When an id repeats, the higher version wins.
    pub fn from_rules(rules: Vec<Rule>) -> Params {
        let mut map: HashMap<String, Entry> = HashMap::with_capacity(rules.len());
        for rule in rules {
            if map
                .get(&rule.id)
                .is_some_and(|old| old.rule.version > rule.version)
            {
                continue;
            }
            let entry = Entry {
                rule,
                compiled: OnceLock::new(),
            };
            map.insert(entry.rule.id.clone(), entry);
        }
        let mut ids: Vec<String> = map.keys().cloned().collect();
        ids.sort_unstable();
        Params { rules: map, ids }
    }

    /// The value of param `field` of rule `rule_id`, if both exist.
    pub fn value(&self, rule_id: &str, field: &str) -> Option<&Value> {
        self.rules.get(rule_id)?.rule.params.get(field)
    }

    /// Whether rule `rule_id` is enabled, if it exists.
    pub fn is_enabled(&self, rule_id: &str) -> Option<bool> {
        self.rules.get(rule_id).map(|e| e.rule.enabled)
    }

    /// The version of rule `rule_id`, if it exists.
    pub fn version(&self, rule_id: &str) -> Option<i64> {
        self.rules.get(rule_id).map(|e| e.rule.version)
    }

    /// All params of rule `rule_id`, if it exists.
    pub fn params(&self, rule_id: &str) -> Option<&Map<String, Value>> {
        Some(&self.rules.get(rule_id)?.rule.params)
    }

    /// Rule `rule_id` as a boolean flag for `input` at time `at`, if the rule exists: whether it
    /// is enabled, `at` is in its window, and its condition holds for `input` (which conditions
    /// see as in an evaluation, with the rule's own params as `params.<name>`), within `limits`.
    /// Its actions are not computed.
    pub fn flag(
        &self,
        rule_id: &str,
        input: &Value,
        at: DateTime<Utc>,
        limits: &Limits,
    ) -> Option<Flag> {
        Some(self.rules.get(rule_id)?.compiled().flag(input, at, limits))
    }

    /// Every rule id, sorted (byte order).
    pub fn rule_ids(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.ids.iter().map(String::as_str)
    }

    /// How many rules the snapshot holds.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the snapshot holds no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn values_and_enabled_flags_are_read_by_rule_id() {
        let mut a = Rule::new("RF-002");
        a.params.insert("lookbackDays".into(), json!(30));
        let mut b = Rule::new("RF-005");
        b.enabled = false;
        let params = Params::from_rules(vec![a, b]);
        assert_eq!(params.value("RF-002", "lookbackDays"), Some(&json!(30)));
        assert_eq!(params.value("RF-002", "nope"), None);
        assert_eq!(params.value("RF-404", "lookbackDays"), None);
        assert_eq!(params.is_enabled("RF-002"), Some(true));
        assert_eq!(params.is_enabled("RF-005"), Some(false));
        assert_eq!(params.is_enabled("RF-404"), None);
        assert_eq!(params.len(), 2);
    }

    #[test]
    fn the_higher_version_of_a_repeated_id_wins() {
        let mut old = Rule::new("RF-002");
        old.version = 2;
        old.params.insert("lookbackDays".into(), json!(30));
        let mut new = old.clone();
        new.version = 3;
        new.params.insert("lookbackDays".into(), json!(90));
        let params = Params::from_rules(vec![new, old]);
        assert_eq!(params.value("RF-002", "lookbackDays"), Some(&json!(90)));
        assert_eq!(params.version("RF-002"), Some(3));
    }

    fn flagged(id: &str, condition: Value) -> Rule {
        let mut rule = Rule::new(id);
        rule.condition = condition;
        rule.params.insert("min".into(), json!(100));
        rule
    }

    #[test]
    fn a_rule_as_a_flag_is_enabled_in_its_window_and_its_condition() {
        let at: DateTime<Utc> = "2026-03-03T10:00:00Z".parse().unwrap();
        let big = flagged(
            "big",
            json!({">=": [{"var": "total"}, {"var": "params.min"}]}),
        );
        let always = flagged("always", json!(true));
        let mut off = flagged("off", json!(true));
        off.enabled = false;
        let mut later = flagged("later", json!(true));
        later.active_from = Some("2026-04-01T00:00:00Z".parse().unwrap());
        let mut deep = flagged(
            "deep",
            json!({"some": [{"var": "items"}, {"==": [{"var": ""}, 0]}]}),
        );
        deep.version = 4;
        let params = Params::from_rules(vec![big, always, off, later, deep]);
        let limits = Limits::default();
        let flag = |id, input: Value| params.flag(id, &input, at, &limits);
        assert_eq!(flag("big", json!({"total": 150})), Some(Flag::Matched));
        assert_eq!(
            flag("big", json!({"total": 50})),
            Some(Flag::ConditionFalse)
        );
        assert_eq!(flag("always", json!({})), Some(Flag::Always));
        assert_eq!(flag("off", json!({})), Some(Flag::Disabled));
        assert_eq!(flag("later", json!({})), Some(Flag::OutsideWindow));
        assert_eq!(flag("nope", json!({})), None);
        let tight = Limits {
            max_ops: 10,
            ..Limits::default()
        };
        let items: Vec<i64> = (1..100).collect();
        let failed = params.flag("deep", &json!({"items": items}), at, &tight);
        assert!(
            matches!(failed, Some(Flag::Failed(EvalError::OutOfBudget { .. }))),
            "{failed:?}"
        );
        assert_eq!(failed.unwrap().value(), None);
        assert_eq!(
            params.rule_ids().collect::<Vec<_>>(),
            ["always", "big", "deep", "later", "off"]
        );
    }

    #[test]
    fn a_rule_is_compiled_when_first_decided_as_a_flag_not_when_the_snapshot_is_built() {
        let at: DateTime<Utc> = "2026-03-03T10:00:00Z".parse().unwrap();
        let params = Params::from_rules(vec![
            flagged("asked", json!({">": [{"var": "total"}, 1]})),
            flagged("never_asked", json!(true)),
        ]);
        let compiled = |id: &str| params.rules[id].compiled.get().is_some();
        assert!(!compiled("asked") && !compiled("never_asked"));
        assert_eq!(params.value("never_asked", "min"), Some(&json!(100)));
        assert!(!compiled("never_asked"), "reading a param compiles nothing");
        let flag = params.flag("asked", &json!({"total": 5}), at, &Limits::default());
        assert_eq!(flag, Some(Flag::Matched));
        assert!(compiled("asked") && !compiled("never_asked"));
    }
}
