//! The dependency map: which cache tags a change touches, and which tags a cached entry carries.
//!
//! This is the one place that knows how data maps to cache entries. The change side is a data
//! table and the entry side one `match` over [`RegistryItem`] (the one enum naming what the
//! registry caches), so adding a kind of cached entry or a kind of dependency is a row or an arm,
//! not an `invalidate()` call somewhere in a write path.
//!
//! Every tag is prefixed with the tenant (`default/entry_point:checkout`): the cache knows nothing
//! of tenants, and a change in one tenant must not touch another's entries.

use std::collections::BTreeSet;

use rulebook_rules::tags::{rule_tag, ENTRY_POINT_PREFIX, PARAMS_TAG, RULES_TAG, RULE_PREFIX};
use rulebook_rules::Rule;

use crate::change_log::Change;
use crate::registry::RegistryItem;

/// A fact about a rule change that names cache tags.
#[derive(Debug, Clone, Copy)]
enum ChangeFact {
    /// The changed rule's id.
    RuleId,
    /// The entry point the rule had before the change (none for an insert or a rule without one).
    OldEntryPoint,
    /// The entry point the rule has after the change (none for a delete or a rule without one).
    NewEntryPoint,
    /// Each label the rule had before the change.
    OldTags,
    /// Each label the rule has after the change.
    NewTags,
    /// Every change, whatever it is.
    Always,
}

/// The change side of the map: a change touches, for each row, the tag `prefix + value` for each
/// value of the fact (or just `prefix` for [`ChangeFact::Always`]).
const CHANGE_TOUCHES: &[(ChangeFact, &str)] = &[
    // Reads of the rule itself, and any entry carrying the rule (manual invalidation by rule).
    (ChangeFact::RuleId, RULE_PREFIX),
    // The ruleset it left and the ruleset it joined: a moved rule touches both.
    (ChangeFact::OldEntryPoint, ENTRY_POINT_PREFIX),
    (ChangeFact::NewEntryPoint, ENTRY_POINT_PREFIX),
    // A tenant's parameter snapshot and its rule list cover every rule of the tenant.
    (ChangeFact::Always, PARAMS_TAG),
    (ChangeFact::Always, RULES_TAG),
    // Labels, which include `scorecard:<name>` (a scorecard is the rules tagged so) and labels
    // such as `currency:USD`, old and new so that removing a label counts too.
    (ChangeFact::OldTags, ""),
    (ChangeFact::NewTags, ""),
];

/// The tags, tenant-prefixed, that one committed change touches.
pub fn tags_for_change(change: &Change) -> BTreeSet<String> {
    let mut tags = BTreeSet::new();
    for (fact, prefix) in CHANGE_TOUCHES {
        let values: Vec<&str> = match fact {
            ChangeFact::RuleId => vec![change.rule_id.as_str()],
            ChangeFact::OldEntryPoint => {
                change.old_entry_point.iter().map(String::as_str).collect()
            }
            ChangeFact::NewEntryPoint => {
                change.new_entry_point.iter().map(String::as_str).collect()
            }
            ChangeFact::OldTags => change.old_tags.iter().map(String::as_str).collect(),
            ChangeFact::NewTags => change.new_tags.iter().map(String::as_str).collect(),
            ChangeFact::Always => vec![""],
        };
        for value in values {
            tags.insert(tenant_tag(&change.tenant, &format!("{prefix}{value}")));
        }
    }
    tags
}

/// The tags, tenant-prefixed, of every change in `changes`, each once.
pub fn tags_for_changes<'a>(changes: impl IntoIterator<Item = &'a Change>) -> BTreeSet<String> {
    changes.into_iter().flat_map(tags_for_change).collect()
}

/// What an entry's tags are made of, besides its own key tag.
#[derive(Debug, Clone, Copy)]
enum EntryFact {
    /// `rule:<id>` for each rule the entry was built from.
    EachRuleId,
    /// Each label of each rule the entry was built from.
    EachRuleTag,
}

/// The entry side of the map: the tags each kind of registry item carries besides its key tag
/// (`entry_point:<ep>`, `params` or `scorecard:<name>`). A scorecard's thresholds are the params
/// of its own rules (those tagged `scorecard:<name>`), so its key tag covers them.
fn entry_carries(item: &RegistryItem) -> &'static [EntryFact] {
    match item {
        RegistryItem::Ruleset(_) | RegistryItem::Scorecard(_) => {
            &[EntryFact::EachRuleId, EntryFact::EachRuleTag]
        }
        // Their key tags cover them: every change touches `params` and `rules`, and a change
        // of one rule touches `rule:<id>`.
        RegistryItem::Params | RegistryItem::Rules | RegistryItem::Rule(_) => &[],
    }
}

/// The tags, tenant-prefixed, that the cached `item` of `tenant` built from `rules` carries: its
/// key tag, the tenant tag, and what [`entry_carries`] lists.
pub(crate) fn tags_for_entry(
    tenant: &str,
    item: &RegistryItem,
    rules: &[Rule],
) -> BTreeSet<String> {
    let mut tags = BTreeSet::new();
    tags.insert(tenant_tag(tenant, &item.key_tag()));
    tags.insert(tenant_tag(tenant, TENANT_TAG));
    for fact in entry_carries(item) {
        match fact {
            EntryFact::EachRuleId => {
                for rule in rules {
                    tags.insert(tenant_tag(tenant, &rule_tag(&rule.id)));
                }
            }
            EntryFact::EachRuleTag => {
                for rule in rules {
                    for tag in &rule.tags {
                        tags.insert(tenant_tag(tenant, tag));
                    }
                }
            }
        }
    }
    tags
}

/// The tag every entry of a tenant carries, for dropping all of one tenant's entries by hand.
/// No change touches it.
pub(crate) const TENANT_TAG: &str = "tenant";

/// `tenant/tag`, the form in which tags reach the cache.
pub fn tenant_tag(tenant: &str, tag: &str) -> String {
    format!("{tenant}/{tag}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::change_log::ChangeOp;
    use rulebook_rules::EntryPoint;

    fn change(old_ep: Option<&str>, new_ep: Option<&str>, old: &[&str], new: &[&str]) -> Change {
        Change {
            seq: 1,
            tenant: "acme".into(),
            rule_id: "RF-002".into(),
            op: ChangeOp::Update,
            old_entry_point: old_ep.map(Into::into),
            new_entry_point: new_ep.map(Into::into),
            old_tags: old.iter().map(|s| s.to_string()).collect(),
            new_tags: new.iter().map(|s| s.to_string()).collect(),
            changed_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_moved_rule_touches_both_entry_points() {
        let tags = tags_for_change(&change(Some("checkout"), Some("cart"), &[], &[]));
        assert!(tags.contains("acme/entry_point:checkout"));
        assert!(tags.contains("acme/entry_point:cart"));
        assert!(tags.contains("acme/rule:RF-002"));
        assert!(tags.contains("acme/params"));
        assert!(tags.contains("acme/rules"));
        assert_eq!(tags.len(), 5);
    }

    #[test]
    fn removed_and_added_labels_are_both_touched() {
        let tags = tags_for_change(&change(
            None,
            None,
            &["currency:USD", "scorecard:pad_trade"],
            &["currency:EUR"],
        ));
        for tag in [
            "acme/currency:USD",
            "acme/currency:EUR",
            "acme/scorecard:pad_trade",
        ] {
            assert!(tags.contains(tag), "{tag} missing from {tags:?}");
        }
        assert!(!tags.iter().any(|t| t.contains("entry_point:")));
    }

    #[test]
    fn every_tag_is_prefixed_with_the_tenant() {
        let tags = tags_for_change(&change(Some("a"), None, &["x"], &[]));
        assert!(tags.iter().all(|t| t.starts_with("acme/")), "{tags:?}");
    }

    #[test]
    fn entries_carry_their_key_tag_and_the_tenant_tag() {
        let mut rule = Rule::new("R1");
        rule.tags = vec!["currency:USD".into()];
        let checkout = RegistryItem::Ruleset(EntryPoint::parse("checkout").unwrap());
        let tags = tags_for_entry("t", &checkout, &[rule.clone()]);
        assert!(tags.contains("t/entry_point:checkout"));
        assert!(tags.contains("t/tenant"));
        assert!(tags.contains("t/rule:R1"));
        assert!(tags.contains("t/currency:USD"));
        let scorecard = tags_for_entry("t", &RegistryItem::Scorecard("s".into()), &[rule]);
        assert!(scorecard.contains("t/scorecard:s"));
        let params = tags_for_entry("t", &RegistryItem::Params, &[]);
        assert_eq!(params.len(), 2);
    }
}
