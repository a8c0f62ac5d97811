//! Writes: create, update, params, enable, disable, delete and bulk import.
//!
//! Each write is one transaction: the rule row and its history row are written by Rulebook, the
//! change-log row by the database's trigger on `rules`, and all three commit together or not at
//! all. Validation runs before anything is written. An update names the version it read; if the
//! stored version differs the write is refused with [`StoreError::Conflict`], never applied over
//! someone else's change. After the commit the changes go to the store's listeners (see
//! [`Store::subscribe`]); a transaction that does not commit hands nothing to anyone.

use std::collections::{BTreeSet, HashMap};

use rulebook_rules::{FieldError, Rule, DEFAULT_TENANT};
use serde_json::{Map, Value};

use crate::change_log::{head_seq, own_changes, Change};
use crate::db::{args, Arg, Backend, Conn, Tx};
use crate::error::{db_error, is_unique_violation, StoreError};
use crate::model::{content, document, fetch_rule, now, tags_column, Author, ChangeKind};
use crate::store::tenant_exists;
use crate::Store;

/// What a bulk import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Rules that did not exist.
    pub created: usize,
    /// Rules that existed and changed.
    pub updated: usize,
    /// Rules that existed with the same content, left alone (no new version, no invalidation).
    pub unchanged: usize,
    /// Rules deleted (see [`Store::apply_batch`]).
    pub deleted: usize,
    /// The committed changes, one per rule written, in `seq` order.
    pub changes: Vec<Change>,
}

/// What a one-rule write committed: the rule as written (for a delete, as it was) and the
/// change log's `seq` of its change, which a reader waits for to read the write (see
/// [`crate::Cursor::position`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The rule.
    pub rule: Rule,
    /// The `seq` of the change this write committed.
    pub seq: i64,
}

/// A write transaction in progress.
pub(crate) struct WriteTx {
    pub(crate) tx: Tx,
    /// SQLite: the change log's head when the write lock was taken; the rows after it are ours.
    before_seq: i64,
}

impl Store {
    pub(crate) async fn begin_rule_write(&self, tenant: &str) -> Result<WriteTx, StoreError> {
        let mut tx = self.pool().begin_write().await?;
        let mut conn = tx.conn();
        if !tenant_exists(&mut conn, tenant).await? {
            return Err(StoreError::UnknownTenant(tenant.to_owned()));
        }
        let before_seq = match self.backend() {
            Backend::Sqlite => head_seq(&mut conn).await?,
            Backend::Postgres => 0,
        };
        Ok(WriteTx { tx, before_seq })
    }

    /// Reads the transaction's change rows, commits, and then (only then) hands the changes to
    /// the listeners. Returns the changes.
    pub(crate) async fn finish_rule_write(
        &self,
        mut write: WriteTx,
    ) -> Result<Vec<Change>, StoreError> {
        let changes = own_changes(
            &mut write.tx.conn(),
            self.backend(),
            write.before_seq,
            self.instance_id(),
        )
        .await?;
        #[cfg(feature = "test-hooks")]
        if self.hooks().before_commit().await {
            // Dropping the transaction rolls it back: rule row, history row and change row.
            drop(write);
            return Err(StoreError::Internal(
                "injected failure before commit".into(),
            ));
        }
        write.tx.commit().await?;
        self.publish(&changes);
        Ok(changes)
    }

    /// Creates `rule` in `tenant` at the next version its id has had (1 for a new id; a rule
    /// created again after a delete continues its history). Returns the stored rule and the `seq` of
    /// its change.
    pub async fn create_rule(
        &self,
        tenant: &str,
        rule: Rule,
        author: &Author,
    ) -> Result<Written, StoreError> {
        let mut rule = prepare(tenant, rule)?;
        let mut write = self.begin_rule_write(tenant).await?;
        {
            let mut conn = write.tx.conn();
            if fetch_rule(&mut conn, tenant, &rule.id).await?.is_some() {
                return Err(already_exists(tenant, &rule.id));
            }
            let last = last_history_version(&mut conn, tenant, &rule.id).await?;
            let at = now();
            rule.version = last + 1;
            rule.created_at = Some(at);
            rule.created_by = Some(author.name.clone());
            rule.updated_at = Some(at);
            rule.updated_by = Some(author.name.clone());
            insert_row(&mut conn, &rule).await?;
            insert_history(&mut conn, &rule, rule.version, ChangeKind::Create, author).await?;
        }
        let seq = last_seq(self.finish_rule_write(write).await?)?;
        Ok(Written { rule, seq })
    }

    /// Replaces rule `rule.id` with `rule`, if it is still at `expected_version` (the version
    /// the caller read). The bookkeeping fields of `rule` are ignored.
    pub async fn update_rule(
        &self,
        tenant: &str,
        rule: Rule,
        expected_version: i64,
        author: &Author,
    ) -> Result<Written, StoreError> {
        let rule = prepare(tenant, rule)?;
        let id = rule.id.clone();
        self.modify(
            tenant,
            &id,
            Some(expected_version),
            ChangeKind::Update,
            None,
            author,
            |_| Ok(rule),
        )
        .await
    }

    /// Replaces the params of a rule, validated against its `param_schema`. With
    /// `expected_version`, only if the rule is still at that version.
    pub async fn update_params(
        &self,
        tenant: &str,
        id: &str,
        params: Map<String, Value>,
        expected_version: Option<i64>,
        author: &Author,
    ) -> Result<Written, StoreError> {
        self.modify(
            tenant,
            id,
            expected_version,
            ChangeKind::Params,
            None,
            author,
            |mut rule| {
                rule.params = params;
                validate(&rule)?;
                Ok(rule)
            },
        )
        .await
    }

    /// Enables or disables a rule. With `expected_version`, only if the rule is still at that
    /// version.
    pub async fn set_enabled(
        &self,
        tenant: &str,
        id: &str,
        enabled: bool,
        expected_version: Option<i64>,
        author: &Author,
    ) -> Result<Written, StoreError> {
        let kind = if enabled {
            ChangeKind::Enable
        } else {
            ChangeKind::Disable
        };
        self.modify(
            tenant,
            id,
            expected_version,
            kind,
            None,
            author,
            |mut rule| {
                rule.enabled = enabled;
                Ok(rule)
            },
        )
        .await
    }

    /// Deletes a rule and returns it as it was. With `expected_version`, only if the rule is
    /// still at that version. Its history stays, ending with a `delete` entry.
    pub async fn delete_rule(
        &self,
        tenant: &str,
        id: &str,
        expected_version: Option<i64>,
        author: &Author,
    ) -> Result<Written, StoreError> {
        let mut write = self.begin_rule_write(tenant).await?;
        let current = {
            let mut conn = write.tx.conn();
            let current = fetch_rule(&mut conn, tenant, id)
                .await?
                .ok_or_else(|| not_found(tenant, id))?;
            check_version(&current, expected_version)?;
            delete_row(&mut conn, &current).await?;
            insert_history(
                &mut conn,
                &current,
                current.version + 1,
                ChangeKind::Delete,
                author,
            )
            .await?;
            current
        };
        let seq = last_seq(self.finish_rule_write(write).await?)?;
        Ok(Written { rule: current, seq })
    }

    /// Writes every rule of `rules` into `tenant` in one transaction: new ids are created,
    /// changed rules updated (whatever their version: an import is authoritative), identical
    /// ones left alone. Every rule is validated before anything is written; one invalid rule
    /// fails the whole import.
    pub async fn import_rules(
        &self,
        tenant: &str,
        rules: Vec<Rule>,
        author: &Author,
    ) -> Result<ImportReport, StoreError> {
        self.apply_batch(tenant, rules, &[], author).await
    }

    /// What [`Store::import_rules`] would do with `rules`, without writing: the same checks (an
    /// invalid rule or batch is the same error) and the same counts, against the rules stored now.
    pub async fn import_dry_run(
        &self,
        tenant: &str,
        rules: Vec<Rule>,
    ) -> Result<ImportReport, StoreError> {
        let prepared = prepare_batch(tenant, rules)?;
        let existing: HashMap<String, Rule> = self
            .list_rules(tenant, None)
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let mut report = ImportReport::default();
        for rule in &prepared {
            match existing.get(&rule.id) {
                None => report.created += 1,
                Some(current) if content(current) == content(rule) => report.unchanged += 1,
                Some(_) => report.updated += 1,
            }
        }
        Ok(report)
    }

    /// [`Store::import_rules`], and in the same transaction deletes the rules named in
    /// `delete_ids` (ids that do not exist are skipped). The rule-files source uses it so that a
    /// rule removed from a file is removed from the store.
    pub async fn apply_batch(
        &self,
        tenant: &str,
        rules: Vec<Rule>,
        delete_ids: &[String],
        author: &Author,
    ) -> Result<ImportReport, StoreError> {
        let prepared = prepare_batch(tenant, rules)?;
        let seen: BTreeSet<&str> = prepared.iter().map(|r| r.id.as_str()).collect();
        if let Some(id) = delete_ids.iter().find(|id| seen.contains(id.as_str())) {
            return Err(StoreError::Invalid(format!(
                "rule `{id}` is both written and deleted in one batch"
            )));
        }
        let mut report = ImportReport::default();
        let mut write = self.begin_rule_write(tenant).await?;
        {
            let mut conn = write.tx.conn();
            let existing = all_rules(&mut conn, tenant).await?;
            let last_versions = last_history_versions(&mut conn, tenant).await?;
            let at = now();
            // New rules and every history row are written many to a statement (see
            // `insert_rows`); an update checks its row's version, so it is one statement each.
            let mut created = Vec::new();
            let mut written = Vec::new();
            for mut rule in prepared {
                match existing.get(&rule.id) {
                    None => {
                        rule.version = last_versions.get(&rule.id).copied().unwrap_or(0) + 1;
                        rule.created_at = Some(at);
                        rule.created_by = Some(author.name.clone());
                        rule.updated_at = Some(at);
                        rule.updated_by = Some(author.name.clone());
                        created.push(rule);
                    }
                    Some(current) if content(current) == content(&rule) => {
                        report.unchanged += 1;
                    }
                    Some(current) => {
                        stamp_update(&mut rule, current, at, author);
                        if update_row(&mut conn, &rule, current.version).await? == 0 {
                            return Err(StoreError::Internal(
                                "a rule changed during an import".into(),
                            ));
                        }
                        report.updated += 1;
                        written.push(rule);
                    }
                }
            }
            report.created = created.len();
            insert_rows(&mut conn, &created).await?;
            let history = created
                .iter()
                .chain(&written)
                .map(|rule| HistoryRow {
                    rule,
                    version: rule.version,
                    kind: ChangeKind::Import,
                })
                .chain(
                    delete_ids
                        .iter()
                        .filter_map(|id| existing.get(id))
                        .map(|rule| HistoryRow {
                            rule,
                            version: rule.version + 1,
                            kind: ChangeKind::Delete,
                        }),
                )
                .collect::<Vec<_>>();
            for id in delete_ids {
                if let Some(current) = existing.get(id) {
                    delete_row(&mut conn, current).await?;
                    report.deleted += 1;
                }
            }
            insert_history_rows(&mut conn, &history, author, at).await?;
        }
        report.changes = self.finish_rule_write(write).await?;
        Ok(report)
    }

    /// Reads the rule, checks the version, applies `change` (which validates), writes the new
    /// version and its history row (naming `restored_from` for a rollback).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn modify(
        &self,
        tenant: &str,
        id: &str,
        expected_version: Option<i64>,
        kind: ChangeKind,
        restored_from: Option<i64>,
        author: &Author,
        change: impl FnOnce(Rule) -> Result<Rule, StoreError>,
    ) -> Result<Written, StoreError> {
        let mut write = self.begin_rule_write(tenant).await?;
        let next = {
            let mut conn = write.tx.conn();
            let current = fetch_rule(&mut conn, tenant, id)
                .await?
                .ok_or_else(|| not_found(tenant, id))?;
            check_version(&current, expected_version)?;
            let mut next = change(current.clone())?;
            stamp_update(&mut next, &current, now(), author);
            let history = HistoryRow {
                rule: &next,
                version: next.version,
                kind,
            };
            if update_row_and_history(&mut conn, current.version, &history, author, restored_from)
                .await?
                == 0
            {
                // Another writer got in between the read and the write (PostgreSQL only: on
                // SQLite this transaction holds the write lock).
                let now_at = fetch_rule(&mut conn, tenant, id)
                    .await?
                    .ok_or_else(|| not_found(tenant, id))?;
                return Err(StoreError::Conflict {
                    id: id.to_owned(),
                    expected_version: expected_version.unwrap_or(current.version),
                    current_version: now_at.version,
                });
            }
            next
        };
        let seq = last_seq(self.finish_rule_write(write).await?)?;
        Ok(Written { rule: next, seq })
    }
}

/// The `seq` of a one-rule write's change (the trigger writes exactly one row per rule row).
pub(crate) fn last_seq(changes: Vec<Change>) -> Result<i64, StoreError> {
    changes
        .last()
        .map(|c| c.seq)
        .ok_or_else(|| StoreError::Internal("a write left no change-log row".into()))
}

/// Sets the tenant and validates, before any write.
pub(crate) fn prepare(tenant: &str, mut rule: Rule) -> Result<Rule, StoreError> {
    crate::store::validate_tenant_id(tenant)?;
    if let Some(message) = other_tenant(tenant, &rule) {
        return Err(StoreError::Invalid(format!("rule `{}` {message}", rule.id)));
    }
    rule.tenant = tenant.to_owned();
    validate(&rule)?;
    Ok(rule)
}

/// [`batch_problems`], then [`prepare`] for each rule.
fn prepare_batch(tenant: &str, rules: Vec<Rule>) -> Result<Vec<Rule>, StoreError> {
    let problems = batch_problems(tenant, &rules, |i, field| format!("[{i}].{field}"));
    if !problems.is_empty() {
        return Err(StoreError::Invalid(
            problems
                .iter()
                .map(|(_, e)| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    rules
        .into_iter()
        .map(|rule| prepare(tenant, rule))
        .collect()
}

/// Every problem `rules` have as one batch written into `tenant` that no rule has alone: an id
/// written twice, a rule naming another tenant. Each comes with the index of its rule and a
/// [`FieldError`] whose path is `path(index, field)` (`rules[3].id` for the import endpoint).
///
/// This is the one place these checks live: the import endpoint calls it to report them with the
/// rules' own problems, all at once, and every batch write calls it before writing.
pub fn batch_problems(
    tenant: &str,
    rules: &[Rule],
    path: impl Fn(usize, &str) -> String,
) -> Vec<(usize, FieldError)> {
    let mut problems = Vec::new();
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, rule) in rules.iter().enumerate() {
        if let Some(first) = first.get(rule.id.as_str()) {
            problems.push((
                i,
                FieldError::new(
                    path(i, "id"),
                    format!(
                        "rule `{}` appears twice, also at `{}`: keep one of them",
                        rule.id,
                        path(*first, "id")
                    ),
                ),
            ));
        } else {
            first.insert(&rule.id, i);
        }
        if let Some(message) = other_tenant(tenant, rule) {
            problems.push((
                i,
                FieldError::new(path(i, "tenant"), format!("rule `{}` {message}", rule.id)),
            ));
        }
    }
    problems
}

/// What is wrong with writing `rule` into `tenant`, if it names another.
fn other_tenant(tenant: &str, rule: &Rule) -> Option<String> {
    (rule.tenant != tenant && rule.tenant != DEFAULT_TENANT).then(|| {
        format!(
            "names tenant `{}` but is written to tenant `{tenant}`: remove its `tenant` field or send it to its own tenant",
            rule.tenant
        )
    })
}

fn validate(rule: &Rule) -> Result<(), StoreError> {
    rule.validate().map_err(|errors| StoreError::Validation {
        rule_id: rule.id.clone(),
        errors,
    })
}

pub(crate) fn check_version(current: &Rule, expected: Option<i64>) -> Result<(), StoreError> {
    match expected {
        Some(expected) if expected != current.version => Err(StoreError::Conflict {
            id: current.id.clone(),
            expected_version: expected,
            current_version: current.version,
        }),
        _ => Ok(()),
    }
}

/// The bookkeeping of an update: next version, creation kept, update stamped.
fn stamp_update(
    next: &mut Rule,
    current: &Rule,
    at: chrono::DateTime<chrono::Utc>,
    author: &Author,
) {
    next.id = current.id.clone();
    next.tenant = current.tenant.clone();
    next.version = current.version + 1;
    next.created_at = current.created_at;
    next.created_by = current.created_by.clone();
    next.updated_at = Some(at);
    next.updated_by = Some(author.name.clone());
}

pub(crate) fn not_found(tenant: &str, id: &str) -> StoreError {
    StoreError::NotFound {
        tenant: tenant.to_owned(),
        id: id.to_owned(),
    }
}

pub(crate) fn already_exists(tenant: &str, id: &str) -> StoreError {
    StoreError::AlreadyExists {
        tenant: tenant.to_owned(),
        id: id.to_owned(),
    }
}

/// The columns of a `rules` row, in the order of [`rule_args`].
const RULE_INSERT: &str = "INSERT INTO rules (tenant, id, entry_point, enabled, priority, tags, \
                           version, document, created_at, created_by, updated_at, updated_by) ";

/// The values of `rule`'s row, in the order of [`RULE_INSERT`].
fn rule_args(rule: &Rule) -> Result<Vec<Arg>, StoreError> {
    let mut args = content_args(rule)?;
    args.extend(args![
        rule.created_at.unwrap_or_else(now),
        rule.created_by.clone().unwrap_or_default(),
        rule.updated_at.unwrap_or_else(now),
        rule.updated_by.clone().unwrap_or_default(),
    ]);
    Ok(args)
}

/// The first eight values of `rule`'s row, shared by [`rule_args`] and [`update_args`]: tenant,
/// id, entry point, enabled, priority, tags, version and document.
fn content_args(rule: &Rule) -> Result<Vec<Arg>, StoreError> {
    Ok(args![
        rule.tenant.clone(),
        rule.id.clone(),
        rule.entry_point.as_ref().map(|e| e.as_str().to_owned()),
        rule.enabled,
        rule.priority,
        tags_column(rule)?,
        rule.version,
        document(rule)?,
    ])
}

/// Rows written by one statement of a batch: few enough that a statement's placeholders
/// (12 a rule row, 9 a history row) stay far under both backends' limits (SQLite 32,766,
/// PostgreSQL 65,535), many enough that a 100,000-rule import is a few hundred statements.
const ROWS_PER_STATEMENT: usize = 500;

/// `insert` (`INSERT INTO table (columns) `) then `VALUES` with `rows` tuples of `columns`
/// placeholders each.
fn values(insert: &str, rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(insert.len() + 7 + rows * columns * 5);
    sql.push_str(insert);
    sql.push_str("VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", row * columns + column + 1));
        }
        sql.push(')');
    }
    sql
}

/// Inserts the rows of new rules, [`ROWS_PER_STATEMENT`] to a statement. A taken id (another
/// writer created it meanwhile, on PostgreSQL) is [`StoreError::AlreadyExists`] naming it: the
/// statement that failed is tried again a row at a time to find which.
async fn insert_rows(conn: &mut Conn<'_>, rules: &[Rule]) -> Result<(), StoreError> {
    for chunk in rules.chunks(ROWS_PER_STATEMENT) {
        let mut args = Vec::with_capacity(chunk.len() * 12);
        for rule in chunk {
            args.extend(rule_args(rule)?);
        }
        let sql = values(RULE_INSERT, chunk.len(), 12);
        if let Err(e) = conn.execute(&sql, args).await {
            if !is_unique_violation(&e) {
                return Err(db_error("writing rules", e));
            }
            // The failed statement left nothing (a statement is atomic); find the taken id.
            for rule in chunk {
                insert_row(conn, rule).await?;
            }
        }
    }
    Ok(())
}

/// Inserts the row of a new rule; a taken id is [`StoreError::AlreadyExists`].
pub(crate) async fn insert_row(conn: &mut Conn<'_>, rule: &Rule) -> Result<(), StoreError> {
    conn.execute(&values(RULE_INSERT, 1, 12), rule_args(rule)?)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                already_exists(&rule.tenant, &rule.id)
            } else {
                db_error("writing a rule", e)
            }
        })?;
    Ok(())
}

/// Writes `rule` over the row if the row is still at `expected_version`; returns the rows
/// changed (0 when someone else wrote first).
async fn update_row(
    conn: &mut Conn<'_>,
    rule: &Rule,
    expected_version: i64,
) -> Result<u64, StoreError> {
    conn.execute(RULE_UPDATE, update_args(rule, expected_version)?)
        .await
        .map_err(|e| db_error("writing a rule", e))
}

/// Writes a rule over its row if the row is at a version: the arguments are [`update_args`].
const RULE_UPDATE: &str = "UPDATE rules SET entry_point = $3, enabled = $4, priority = $5, \
                           tags = $6, version = $7, document = $8, updated_at = $9, \
                           updated_by = $10 WHERE tenant = $1 AND id = $2 AND version = $11";

/// [`RULE_UPDATE`]'s eleven arguments.
fn update_args(rule: &Rule, expected_version: i64) -> Result<Vec<Arg>, StoreError> {
    let mut args = content_args(rule)?;
    args.extend(args![
        rule.updated_at.unwrap_or_else(now),
        rule.updated_by.clone().unwrap_or_default(),
        expected_version,
    ]);
    Ok(args)
}

/// [`update_row`], and when it wrote, `history`'s row ([`insert_history_row`]); returns the rows
/// changed (0 when someone else wrote first, and then no history row is written). On PostgreSQL
/// both are one statement, a round trip less between the change row and the commit.
async fn update_row_and_history(
    conn: &mut Conn<'_>,
    expected_version: i64,
    history: &HistoryRow<'_>,
    author: &Author,
    restored_from: Option<i64>,
) -> Result<u64, StoreError> {
    let rule = history.rule;
    if let Conn::Sqlite(_) = conn {
        let written = update_row(conn, rule, expected_version).await?;
        if written > 0 {
            insert_history_row(
                conn,
                rule,
                history.version,
                history.kind,
                author,
                restored_from,
            )
            .await?;
        }
        return Ok(written);
    }
    let mut args = update_args(rule, expected_version)?;
    args.extend(args![
        history.version,
        history.kind.as_str(),
        author.name.clone(),
        author.reason.clone(),
        now(),
        restored_from,
    ]);
    conn.execute(
        &format!(
            "WITH updated AS ({RULE_UPDATE} RETURNING tenant, id, document) {HISTORY_INSERT}\
             SELECT tenant, id, $12, $13, document, $14, $15, $16, $17 FROM updated"
        ),
        args,
    )
    .await
    .map_err(|e| db_error("writing a rule and its history", e))
}

async fn delete_row(conn: &mut Conn<'_>, rule: &Rule) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM rules WHERE tenant = $1 AND id = $2",
        args![rule.tenant.clone(), rule.id.clone()],
    )
    .await
    .map_err(|e| db_error("deleting a rule", e))?;
    Ok(())
}

async fn insert_history(
    conn: &mut Conn<'_>,
    rule: &Rule,
    version: i64,
    kind: ChangeKind,
    author: &Author,
) -> Result<(), StoreError> {
    insert_history_row(conn, rule, version, kind, author, None).await
}

/// Writes one history row; `restored_from` names the version a rollback restores.
pub(crate) async fn insert_history_row(
    conn: &mut Conn<'_>,
    rule: &Rule,
    version: i64,
    kind: ChangeKind,
    author: &Author,
    restored_from: Option<i64>,
) -> Result<(), StoreError> {
    conn.execute(
        &values(HISTORY_INSERT, 1, 9),
        args![
            rule.tenant.clone(),
            rule.id.clone(),
            version,
            kind.as_str(),
            document(rule)?,
            author.name.clone(),
            author.reason.clone(),
            now(),
            restored_from,
        ],
    )
    .await
    .map_err(|e| db_error("writing a rule's history", e))?;
    Ok(())
}

/// One history row of a batch.
struct HistoryRow<'a> {
    rule: &'a Rule,
    version: i64,
    kind: ChangeKind,
}

/// Inserts the history rows of a batch, [`ROWS_PER_STATEMENT`] to a statement, all by `author`
/// at `at`.
async fn insert_history_rows(
    conn: &mut Conn<'_>,
    rows: &[HistoryRow<'_>],
    author: &Author,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut args = Vec::with_capacity(chunk.len() * 9);
        for row in chunk {
            args.extend(args![
                row.rule.tenant.clone(),
                row.rule.id.clone(),
                row.version,
                row.kind.as_str(),
                document(row.rule)?,
                author.name.clone(),
                author.reason.clone(),
                at,
                None::<i64>,
            ]);
        }
        conn.execute(&values(HISTORY_INSERT, chunk.len(), 9), args)
            .await
            .map_err(|e| db_error("writing rule history", e))?;
    }
    Ok(())
}

/// The columns of a `rule_history` row, in the order every history insert gives them.
const HISTORY_INSERT: &str = "INSERT INTO rule_history (tenant, rule_id, version, kind, snapshot, \
                              changed_by, reason, changed_at, restored_from) ";

pub(crate) async fn last_history_version(
    conn: &mut Conn<'_>,
    tenant: &str,
    id: &str,
) -> Result<i64, StoreError> {
    let (version,): (i64,) = conn
        .fetch_one(
            "SELECT COALESCE(MAX(version), 0) FROM rule_history WHERE tenant = $1 AND rule_id = $2",
            args![tenant, id],
        )
        .await
        .map_err(|e| db_error("reading a rule's history", e))?;
    Ok(version)
}

async fn last_history_versions(
    conn: &mut Conn<'_>,
    tenant: &str,
) -> Result<HashMap<String, i64>, StoreError> {
    let rows: Vec<(String, i64)> = conn
        .fetch_all(
            "SELECT rule_id, MAX(version) FROM rule_history WHERE tenant = $1 GROUP BY rule_id",
            args![tenant],
        )
        .await
        .map_err(|e| db_error("reading rule history", e))?;
    Ok(rows.into_iter().collect())
}

async fn all_rules(conn: &mut Conn<'_>, tenant: &str) -> Result<HashMap<String, Rule>, StoreError> {
    let rows: Vec<crate::model::RuleRow> = conn
        .fetch_all(
            &format!(
                "SELECT {} FROM rules WHERE tenant = $1",
                crate::model::RULE_COLUMNS
            ),
            args![tenant],
        )
        .await
        .map_err(|e| db_error("reading rules", e))?;
    rows.into_iter()
        .map(|row| row.into_rule().map(|rule| (rule.id.clone(), rule)))
        .collect()
}
