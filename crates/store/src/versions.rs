//! Reading the history back: one version of a rule, the difference between two versions, a
//! rollback to an earlier version, and a tenant's rules as they stood at a past time.
//!
//! History rows are never changed once written, so these reads need no transaction of their own.
//! A rollback is an ordinary write: it goes through the same transaction, version check, history
//! row, change-log trigger and after-commit invalidation as an update (or, for a deleted rule, a
//! create), so every instance's cache learns of it the way it learns of any write.

use chrono::{DateTime, Utc};
use rulebook_rules::{EntryPoint, Rule, Ruleset, Scorecard};
use serde::Serialize;
use serde_json::Value;

use crate::db::args;
use crate::error::{db_error, StoreError};
use crate::model::{
    fetch_rule, now, Author, ChangeKind, HistoryEntry, HistoryRow, HISTORY_COLUMNS,
};
use crate::store::tenant_exists;
use crate::write::{
    already_exists, insert_history_row, insert_row, last_history_version, last_seq, prepare,
    Written,
};
use crate::Store;

/// The bookkeeping fields of a rule document, left out of diffs: they change with every version
/// and say nothing about what the rule does.
const BOOKKEEPING: [&str; 5] = [
    "version",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
];

/// What changed between two versions of a rule, as `GET /v1/rules/{id}/diff` answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct VersionDiff {
    /// The rule.
    pub rule_id: String,
    /// The version diffed from.
    pub from: i64,
    /// The version diffed to.
    pub to: i64,
    /// An RFC 6902 JSON Patch that turns version `from`'s document into version `to`'s
    /// (bookkeeping fields such as `version` and `updated_at` left out).
    #[cfg_attr(feature = "utoipa", schema(value_type = Vec<Object>))]
    pub patch: json_patch::Patch,
    /// The same changes as a readable list, one per changed field, in the patch's order.
    pub changes: Vec<FieldChange>,
}

/// One changed field of a [`VersionDiff`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct FieldChange {
    /// The field, written the way the validation errors write paths: `condition`,
    /// `actions[0].message`, `params.rate`.
    pub field: String,
    /// `added`, `removed` or `changed`.
    #[cfg_attr(feature = "utoipa", schema(value_type = String, pattern = "^(added|removed|changed)$"))]
    pub change: &'static str,
    /// The value in version `from` (absent when the field was added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The value in version `to` (absent when the field was removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

impl Store {
    /// Version `version` of rule `id`, from its history (also for a rule deleted since). For the
    /// version that records a deletion, the rule is as it was when deleted.
    ///
    /// Errors: [`StoreError::NotFound`] when the rule has no history at all,
    /// [`StoreError::VersionNotFound`] (naming the versions there are) when it has no such version,
    /// [`StoreError::UnknownTenant`].
    pub async fn rule_version(
        &self,
        tenant: &str,
        id: &str,
        version: i64,
    ) -> Result<HistoryEntry, StoreError> {
        let mut held = self.pool().acquire().await?;
        let row: Option<HistoryRow> = held
            .conn()
            .fetch_optional(
                &format!(
                    "SELECT {HISTORY_COLUMNS} FROM rule_history \
                     WHERE tenant = $1 AND rule_id = $2 AND version = $3 ORDER BY id DESC LIMIT 1"
                ),
                args![tenant, id, version],
            )
            .await
            .map_err(|e| db_error("reading a rule's history", e))?;
        if let Some(row) = row {
            return row.into_entry(tenant, id);
        }
        drop(held);
        // Say what there is instead: the history (NotFound, UnknownTenant) or its versions.
        let history = self.history(tenant, id).await?;
        Err(StoreError::VersionNotFound {
            id: id.to_owned(),
            version,
            latest: history.last().map_or(0, |e| e.version),
        })
    }

    /// The difference between versions `from` and `to` of rule `id` (either may be the older), as
    /// an RFC 6902 JSON Patch and as a readable field list. Errors as [`Store::rule_version`].
    pub async fn diff_versions(
        &self,
        tenant: &str,
        id: &str,
        from: i64,
        to: i64,
    ) -> Result<VersionDiff, StoreError> {
        let before = content_document(&self.rule_version(tenant, id, from).await?.rule)?;
        let after = content_document(&self.rule_version(tenant, id, to).await?.rule)?;
        let patch = json_patch::diff(&before, &after);
        let changes = patch
            .iter()
            .map(|op| field_change(op, &before, &after))
            .collect();
        Ok(VersionDiff {
            rule_id: id.to_owned(),
            from,
            to,
            patch,
            changes,
        })
    }

    /// Writes the content of version `to` of rule `id` as the rule's next version, through the
    /// normal write path: one transaction with its history row (kind `rollback`, naming `to` in
    /// `restored_from`) and change-log row, then invalidation. Returns the rule as written and the
    /// `seq` of its change. A rule deleted since is restored
    /// the same way. The content is validated as any write is.
    ///
    /// `expected_version`, when given, must be the rule's current version (for a deleted rule:
    /// the version that recorded the deletion), else [`StoreError::Conflict`]. Rolling back to
    /// the version that recorded a deletion is [`StoreError::Invalid`]: name the version before it.
    pub async fn rollback_rule(
        &self,
        tenant: &str,
        id: &str,
        to: i64,
        expected_version: Option<i64>,
        author: &Author,
    ) -> Result<Written, StoreError> {
        let entry = self.rule_version(tenant, id, to).await?;
        if entry.kind == ChangeKind::Delete {
            return Err(StoreError::Invalid(format!(
                "version {to} of rule `{id}` records its deletion: roll back to version {}, the rule as it was",
                to - 1
            )));
        }
        let mut target = entry.rule;
        target.id = id.to_owned();
        let target = prepare(tenant, target)?;
        match self.get_rule(tenant, id).await {
            Ok(_) => {
                self.modify(
                    tenant,
                    id,
                    expected_version,
                    ChangeKind::Rollback,
                    Some(to),
                    author,
                    |_| Ok(target),
                )
                .await
            }
            Err(StoreError::NotFound { .. }) => {
                self.restore(tenant, target, to, expected_version, author)
                    .await
            }
            Err(e) => Err(e),
        }
    }

    /// Creates deleted rule `rule.id` again with the content of version `from`.
    async fn restore(
        &self,
        tenant: &str,
        mut rule: Rule,
        from: i64,
        expected_version: Option<i64>,
        author: &Author,
    ) -> Result<Written, StoreError> {
        let mut write = self.begin_rule_write(tenant).await?;
        {
            let mut conn = write.tx.conn();
            if fetch_rule(&mut conn, tenant, &rule.id).await?.is_some() {
                // Created again since the caller looked.
                return Err(already_exists(tenant, &rule.id));
            }
            let last = last_history_version(&mut conn, tenant, &rule.id).await?;
            if let Some(expected) = expected_version.filter(|e| *e != last) {
                return Err(StoreError::Conflict {
                    id: rule.id.clone(),
                    expected_version: expected,
                    current_version: last,
                });
            }
            let at = now();
            rule.version = last + 1;
            rule.created_at = Some(at);
            rule.created_by = Some(author.name.clone());
            rule.updated_at = Some(at);
            rule.updated_by = Some(author.name.clone());
            insert_row(&mut conn, &rule).await?;
            insert_history_row(
                &mut conn,
                &rule,
                rule.version,
                ChangeKind::Rollback,
                author,
                Some(from),
            )
            .await?;
        }
        let seq = last_seq(self.finish_rule_write(write).await?)?;
        Ok(Written { rule, seq })
    }

    /// Every rule of `tenant` as it stood at `at`, built from the history: for each rule, the
    /// last version written at or before `at`, unless that version was its deletion. Rules
    /// created after `at` are absent; rules deleted since are present. Sorted by priority, then id.
    ///
    /// Only writes made through Rulebook have history rows, so a change typed into SQL by hand is
    /// not seen here.
    pub async fn rules_as_of(
        &self,
        tenant: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<Rule>, StoreError> {
        let mut held = self.pool().acquire().await?;
        let mut conn = held.conn();
        if !tenant_exists(&mut conn, tenant).await? {
            return Err(StoreError::UnknownTenant(tenant.to_owned()));
        }
        let rows: Vec<AsOfRow> = conn
            .fetch_all(
                "SELECT h.rule_id, h.version, h.kind, h.snapshot FROM rule_history h \
                 JOIN (SELECT rule_id, MAX(version) AS version FROM rule_history \
                       WHERE tenant = $1 AND changed_at <= $2 GROUP BY rule_id) last \
                 ON h.rule_id = last.rule_id AND h.version = last.version \
                 WHERE h.tenant = $1",
                args![tenant, at],
            )
            .await
            .map_err(|e| db_error("reading rules as of a time", e))?;
        let mut rules = Vec::with_capacity(rows.len());
        for row in rows {
            if row.kind == ChangeKind::Delete.as_str() {
                continue;
            }
            let mut rule: Rule =
                serde_json::from_str(&row.snapshot).map_err(|e| StoreError::Corrupt {
                    tenant: tenant.to_owned(),
                    id: row.rule_id.clone(),
                    reason: format!("history snapshot {} is not a rule ({e})", row.version),
                })?;
            rule.id = row.rule_id;
            rule.tenant = tenant.to_owned();
            rule.version = row.version;
            rules.push(rule);
        }
        rules.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
        Ok(rules)
    }
}

impl Store {
    /// The ruleset of `entry_point` as it stood at `at` (see [`Store::rules_as_of`]), compiled
    /// afresh: as-of rulesets are never cached with the live ones.
    pub async fn ruleset_as_of(
        &self,
        tenant: &str,
        entry_point: &EntryPoint,
        at: DateTime<Utc>,
    ) -> Result<Ruleset, StoreError> {
        let mut rules = self.rules_as_of(tenant, at).await?;
        rules.retain(|r| r.entry_point.as_ref() == Some(entry_point));
        Ruleset::compile(entry_point.clone(), rules).map_err(|e| StoreError::Compile {
            what: format!("entry point `{entry_point}` of tenant `{tenant}` as of {at}"),
            reason: e.to_string(),
        })
    }

    /// Scorecard `name` as it stood at `at` (see [`Store::rules_as_of`]), compiled afresh.
    pub async fn scorecard_as_of(
        &self,
        tenant: &str,
        name: &str,
        at: DateTime<Utc>,
    ) -> Result<Scorecard, StoreError> {
        let rules = self.rules_as_of(tenant, at).await?;
        Scorecard::compile(name, rules).map_err(|e| StoreError::Compile {
            what: format!("scorecard `{name}` of tenant `{tenant}` as of {at}"),
            reason: e.to_string(),
        })
    }
}

#[derive(sqlx::FromRow)]
struct AsOfRow {
    rule_id: String,
    version: i64,
    kind: String,
    snapshot: String,
}

/// A rule's document without its bookkeeping fields.
fn content_document(rule: &Rule) -> Result<Value, StoreError> {
    let mut value = serde_json::to_value(rule)
        .map_err(|e| StoreError::Internal(format!("serialising rule `{}`: {e}", rule.id)))?;
    if let Some(map) = value.as_object_mut() {
        for field in BOOKKEEPING {
            map.remove(field);
        }
    }
    Ok(value)
}

/// One patch operation as a readable change, with the values before and after.
fn field_change(op: &json_patch::PatchOperation, before: &Value, after: &Value) -> FieldChange {
    use json_patch::PatchOperation as Op;
    let pointer = op.path().as_str();
    let at = |doc: &Value| doc.pointer(pointer).cloned();
    let (change, before, after) = match op {
        Op::Add(_) => ("added", None, at(after)),
        Op::Remove(_) => ("removed", at(before), None),
        _ => ("changed", at(before), at(after)),
    };
    FieldChange {
        field: readable_path(pointer),
        change,
        before,
        after,
    }
}

/// `/actions/0/message` as `actions[0].message`; `/params/a~1b` as `params.a/b`.
fn readable_path(pointer: &str) -> String {
    let mut out = String::new();
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{token}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_read_like_validation_paths() {
        assert_eq!(readable_path("/actions/0/message"), "actions[0].message");
        assert_eq!(readable_path("/params/a~1b"), "params.a/b");
        assert_eq!(readable_path("/condition"), "condition");
    }

    #[test]
    fn each_patch_operation_names_the_field_and_both_values() {
        let before = json!({"priority": 1, "tags": ["a"], "name": "x"});
        let after = json!({"priority": 2, "tags": ["a", "b"], "description": "d"});
        let patch = json_patch::diff(&before, &after);
        let changes: Vec<FieldChange> = patch
            .iter()
            .map(|op| field_change(op, &before, &after))
            .collect();
        let find = |field: &str| changes.iter().find(|c| c.field == field).unwrap();
        assert_eq!(find("priority").change, "changed");
        assert_eq!(find("priority").before, Some(json!(1)));
        assert_eq!(find("priority").after, Some(json!(2)));
        assert_eq!(find("tags[1]").change, "added");
        assert_eq!(find("name").change, "removed");
        assert_eq!(find("name").before, Some(json!("x")));
        assert_eq!(find("description").after, Some(json!("d")));
        // The patch itself turns one into the other.
        let mut doc = before.clone();
        json_patch::patch(&mut doc, &patch).unwrap();
        assert_eq!(doc, after);
    }
}
