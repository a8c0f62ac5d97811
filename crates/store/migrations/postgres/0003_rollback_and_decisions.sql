-- Rollbacks get their own kind in the history, with the version they restored; and the decision
-- log.

ALTER TABLE rule_history DROP CONSTRAINT rule_history_kind_check;
ALTER TABLE rule_history ADD CONSTRAINT rule_history_kind_check
    CHECK (kind IN ('create', 'update', 'params', 'enable', 'disable', 'delete', 'import', 'rollback'));
-- For a rollback: the earlier version whose content this version restores.
ALTER TABLE rule_history ADD COLUMN restored_from BIGINT;
-- As-of reads: a tenant's history up to a time.
CREATE INDEX rule_history_by_time ON rule_history (tenant, changed_at);

-- The decision log (opt-in, `--decision-log`): one row per evaluation answer, written off the
-- request path in batches and pruned after the configured retention. `context` is the input as
-- sent, or NULL when only its SHA-256 is kept; `versions` maps each rule id the evaluation
-- considered to its version, so the decision can be tied to the exact rules that made it.
CREATE TABLE decisions (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('evaluate', 'score')),
    entry_point     TEXT NOT NULL,
    decided_at      TIMESTAMPTZ NOT NULL,
    versions        TEXT NOT NULL,
    context         TEXT,
    context_sha256  TEXT NOT NULL,
    answer          TEXT NOT NULL
);

CREATE INDEX decisions_by_entry_point ON decisions (tenant, entry_point, decided_at);
CREATE INDEX decisions_by_time ON decisions (decided_at);
