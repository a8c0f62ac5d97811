-- Rollbacks get their own kind in the history, with the version they restored; and the decision
-- log. SQLite cannot change a CHECK constraint in place, so `rule_history` is rebuilt.

CREATE TABLE rule_history_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant          TEXT NOT NULL,
    rule_id         TEXT NOT NULL,
    version         INTEGER NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('create', 'update', 'params', 'enable', 'disable', 'delete', 'import', 'rollback')),
    snapshot        TEXT NOT NULL,
    changed_by      TEXT NOT NULL,
    reason          TEXT,
    changed_at      TEXT NOT NULL,
    -- For a rollback: the earlier version whose content this version restores.
    restored_from   INTEGER
);

INSERT INTO rule_history_new (id, tenant, rule_id, version, kind, snapshot, changed_by, reason, changed_at)
SELECT id, tenant, rule_id, version, kind, snapshot, changed_by, reason, changed_at FROM rule_history;

DROP TABLE rule_history;
ALTER TABLE rule_history_new RENAME TO rule_history;

CREATE INDEX rule_history_by_rule ON rule_history (tenant, rule_id, version);
-- As-of reads: a tenant's history up to a time.
CREATE INDEX rule_history_by_time ON rule_history (tenant, changed_at);

-- The decision log (opt-in, `--decision-log`): one row per evaluation answer, written off the
-- request path in batches and pruned after the configured retention. `context` is the input as
-- sent, or NULL when only its SHA-256 is kept; `versions` maps each rule id the evaluation
-- considered to its version, so the decision can be tied to the exact rules that made it.
CREATE TABLE decisions (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant          TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('evaluate', 'score')),
    entry_point     TEXT NOT NULL,
    decided_at      TEXT NOT NULL,
    versions        TEXT NOT NULL,
    context         TEXT,
    context_sha256  TEXT NOT NULL,
    answer          TEXT NOT NULL
);

CREATE INDEX decisions_by_entry_point ON decisions (tenant, entry_point, decided_at);
CREATE INDEX decisions_by_time ON decisions (decided_at);
