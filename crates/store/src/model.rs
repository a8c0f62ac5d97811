//! Rows as stored, and the types a write or a history read deals in.

use chrono::{DateTime, SubsecRound, Utc};
use rulebook_rules::{EntryPoint, Rule};
use serde::{Deserialize, Serialize};

use crate::db::{args, Conn};
use crate::error::{db_error, StoreError};

/// Who makes a change and why; recorded in the rule's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// Who: a token's name, `file:<path>` for rule files, `rulebook:seed` for the example rules.
    pub name: String,
    /// Why, as the author put it.
    pub reason: Option<String>,
}

impl Author {
    /// An author with no reason given.
    pub fn new(name: impl Into<String>) -> Author {
        Author {
            name: name.into(),
            reason: None,
        }
    }

    /// The same author, giving a reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Author {
        self.reason = Some(reason.into());
        self
    }
}

/// The kind of a write, as recorded in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// A new rule.
    Create,
    /// A full update.
    Update,
    /// Only the params changed.
    Params,
    /// Enabled.
    Enable,
    /// Disabled.
    Disable,
    /// Deleted; the snapshot is the rule as it was.
    Delete,
    /// Written by a bulk import or a rule file.
    Import,
    /// A rollback: the content of an earlier version written again as a new version (also how
    /// a deleted rule is restored). The entry's `restored_from` names that version.
    Rollback,
}

impl ChangeKind {
    /// The name stored in the history table.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Update => "update",
            ChangeKind::Params => "params",
            ChangeKind::Enable => "enable",
            ChangeKind::Disable => "disable",
            ChangeKind::Delete => "delete",
            ChangeKind::Import => "import",
            ChangeKind::Rollback => "rollback",
        }
    }

    fn parse(s: &str) -> Option<ChangeKind> {
        [
            ChangeKind::Create,
            ChangeKind::Update,
            ChangeKind::Params,
            ChangeKind::Enable,
            ChangeKind::Disable,
            ChangeKind::Delete,
            ChangeKind::Import,
            ChangeKind::Rollback,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One version of a rule in its audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct HistoryEntry {
    /// The version this entry created (for a delete, the version after the last one).
    pub version: i64,
    /// What kind of write it was.
    pub kind: ChangeKind,
    /// The whole rule after the write (for a delete, the rule as it was).
    pub rule: Rule,
    /// Who wrote.
    pub changed_by: String,
    /// Why, if they said.
    pub reason: Option<String>,
    /// When.
    pub changed_at: DateTime<Utc>,
    /// For a rollback: the earlier version whose content this version restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<i64>,
}

/// The time a write records: now, to the microsecond, which both backends store exactly.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub(crate) const RULE_COLUMNS: &str = "tenant, id, entry_point, enabled, priority, tags, version, \
     document, created_at, created_by, updated_at, updated_by";

/// A row of `rules`. The columns win over the document for the fields both hold (see the
/// migration), so plain-SQL edits of those columns take effect.
#[derive(sqlx::FromRow, Debug)]
pub(crate) struct RuleRow {
    pub(crate) tenant: String,
    pub(crate) id: String,
    pub(crate) entry_point: Option<String>,
    pub(crate) enabled: bool,
    pub(crate) priority: i32,
    pub(crate) tags: String,
    pub(crate) version: i64,
    pub(crate) document: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) created_by: String,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) updated_by: String,
}

impl RuleRow {
    pub(crate) fn into_rule(self) -> Result<Rule, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            tenant: self.tenant.clone(),
            id: self.id.clone(),
            reason,
        };
        let mut rule: Rule = serde_json::from_str(&self.document)
            .map_err(|e| corrupt(format!("the document is not a rule ({e})")))?;
        rule.entry_point = match &self.entry_point {
            None => None,
            Some(ep) => Some(
                EntryPoint::parse(ep)
                    .map_err(|e| corrupt(format!("the entry point is not valid ({e})")))?,
            ),
        };
        rule.tags = serde_json::from_str(&self.tags)
            .map_err(|e| corrupt(format!("the tags are not a list of strings ({e})")))?;
        rule.enabled = self.enabled;
        rule.priority = self.priority;
        rule.version = self.version;
        rule.created_at = Some(self.created_at);
        rule.created_by = Some(self.created_by);
        rule.updated_at = Some(self.updated_at);
        rule.updated_by = Some(self.updated_by);
        rule.id = self.id;
        rule.tenant = self.tenant;
        Ok(rule)
    }
}

/// The document stored for `rule`.
pub(crate) fn document(rule: &Rule) -> Result<String, StoreError> {
    serde_json::to_string(rule).map_err(|e| {
        tracing::error!(error = %e, rule = %rule.id, "cannot serialise rule");
        StoreError::Internal(format!("serialising rule `{}`", rule.id))
    })
}

/// The rule's labels as stored in the `tags` column.
pub(crate) fn tags_column(rule: &Rule) -> Result<String, StoreError> {
    serde_json::to_string(&rule.tags).map_err(|e| {
        tracing::error!(error = %e, rule = %rule.id, "cannot serialise tags");
        StoreError::Internal(format!("serialising the tags of rule `{}`", rule.id))
    })
}

/// The rule's content without bookkeeping, for telling whether an import changes anything.
pub(crate) fn content(rule: &Rule) -> Rule {
    let mut content = rule.clone();
    content.version = 0;
    content.created_at = None;
    content.created_by = None;
    content.updated_at = None;
    content.updated_by = None;
    content
}

pub(crate) async fn fetch_rule(
    conn: &mut Conn<'_>,
    tenant: &str,
    id: &str,
) -> Result<Option<Rule>, StoreError> {
    let row: Option<RuleRow> = conn
        .fetch_optional(
            &format!("SELECT {RULE_COLUMNS} FROM rules WHERE tenant = $1 AND id = $2"),
            args![tenant, id],
        )
        .await
        .map_err(|e| db_error("reading a rule", e))?;
    row.map(RuleRow::into_rule).transpose()
}

/// The columns a [`HistoryRow`] reads.
pub(crate) const HISTORY_COLUMNS: &str =
    "version, kind, snapshot, changed_by, reason, changed_at, restored_from";

#[derive(sqlx::FromRow)]
pub(crate) struct HistoryRow {
    pub(crate) version: i64,
    pub(crate) kind: String,
    snapshot: String,
    changed_by: String,
    reason: Option<String>,
    changed_at: DateTime<Utc>,
    restored_from: Option<i64>,
}

impl HistoryRow {
    pub(crate) fn into_entry(self, tenant: &str, id: &str) -> Result<HistoryEntry, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            tenant: tenant.to_owned(),
            id: id.to_owned(),
            reason,
        };
        Ok(HistoryEntry {
            version: self.version,
            kind: ChangeKind::parse(&self.kind)
                .ok_or_else(|| corrupt(format!("history kind `{}` is unknown", self.kind)))?,
            rule: serde_json::from_str(&self.snapshot).map_err(|e| {
                corrupt(format!(
                    "history snapshot {} is not a rule ({e})",
                    self.version
                ))
            })?,
            changed_by: self.changed_by,
            reason: self.reason,
            changed_at: self.changed_at,
            restored_from: self.restored_from,
        })
    }
}
