//! Parameters: a snapshot of rules' params, read by rule id and field.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::Rule;

/// An immutable snapshot of rules' params and enabled flags, built once from a tenant's rules and
/// shared behind an `Arc` (it is `Send + Sync` and has no interior mutability).
#[derive(Debug, Clone, Default)]
pub struct Params {
    rules: HashMap<String, ParamRule>,
}

#[derive(Debug, Clone)]
struct ParamRule {
    enabled: bool,
    version: i64,
    params: Map<String, Value>,
}

impl Params {
    /// Indexes the rules by id. When an id repeats, the higher version wins.
    pub fn from_rules(rules: Vec<Rule>) -> Params {
        let mut map: HashMap<String, ParamRule> = HashMap::with_capacity(rules.len());
        for rule in rules {
            if map
                .get(&rule.id)
                .is_some_and(|old| old.version > rule.version)
            {
                continue;
            }
            map.insert(
                rule.id,
                ParamRule {
                    enabled: rule.enabled,
                    version: rule.version,
                    params: rule.params,
                },
            );
        }
        Params { rules: map }
    }

    /// The value of param `field` of rule `rule_id`, if both exist.
    pub fn value(&self, rule_id: &str, field: &str) -> Option<&Value> {
        self.rules.get(rule_id)?.params.get(field)
    }

    /// Whether rule `rule_id` is enabled, if it exists.
    pub fn is_enabled(&self, rule_id: &str) -> Option<bool> {
        self.rules.get(rule_id).map(|r| r.enabled)
    }

    /// The version of rule `rule_id`, if it exists.
    pub fn version(&self, rule_id: &str) -> Option<i64> {
        self.rules.get(rule_id).map(|r| r.version)
    }

    /// All params of rule `rule_id`, if it exists.
    pub fn params(&self, rule_id: &str) -> Option<&Map<String, Value>> {
        self.rules.get(rule_id).map(|r| &r.params)
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
}
