//! The tag vocabulary, built in this one module: the labels and cache tags that name an entry
//! point, a scorecard, a rule and a tenant's parameters.
//!
//! A rule's own labels (`Rule::tags`) use [`scorecard_tag`] to join a scorecard; the store's
//! dependency map and registry use all of them as cache tags (tenant-prefixed there).

use crate::EntryPoint;

/// The prefix of the tag naming an entry point's ruleset.
pub const ENTRY_POINT_PREFIX: &str = "entry_point:";
/// The prefix of the label that makes a rule part of a scorecard, and of the scorecard's tag.
pub const SCORECARD_PREFIX: &str = "scorecard:";
/// The prefix of the tag naming one rule.
pub const RULE_PREFIX: &str = "rule:";
/// The tag of a tenant's parameter snapshot, which every change of the tenant touches.
pub const PARAMS_TAG: &str = "params";
/// The tag of a tenant's list of rules, which every change of the tenant touches.
pub const RULES_TAG: &str = "rules";

/// `entry_point:<ep>`.
pub fn entry_point_tag(entry_point: &EntryPoint) -> String {
    format!("{ENTRY_POINT_PREFIX}{entry_point}")
}

/// `scorecard:<name>`: the label a scorecard's rules carry, and the scorecard's tag.
pub fn scorecard_tag(name: &str) -> String {
    format!("{SCORECARD_PREFIX}{name}")
}

/// `rule:<id>`.
pub fn rule_tag(id: &str) -> String {
    format!("{RULE_PREFIX}{id}")
}
