-- Rulebook's schema on SQLite. The PostgreSQL migration beside this one creates the same tables.
--
-- `rules` keeps the full rule document as JSON in `document`, and the fields that are indexed, or
-- that a person is likely to change with plain SQL, as columns: `entry_point`, `enabled`,
-- `priority`, `tags` and `version`. The columns are authoritative: Rulebook writes both, and when
-- it reads a rule it overwrites those fields of the document with the columns, so
-- `UPDATE rules SET enabled = 0 WHERE id = 'RF-002'` typed into sqlite3 does what it says.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE rules (
    tenant       TEXT NOT NULL REFERENCES tenants (id),
    id           TEXT NOT NULL,
    entry_point  TEXT CHECK (entry_point IS NULL OR (entry_point <> '' AND entry_point NOT GLOB '*[^a-z0-9_.]*')),
    enabled      INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    priority     INTEGER NOT NULL DEFAULT 0,
    tags         TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags) AND json_type(tags) = 'array'),
    version      INTEGER NOT NULL DEFAULT 1,
    document     TEXT NOT NULL CHECK (json_valid(document)),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    created_by   TEXT NOT NULL DEFAULT 'sql',
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_by   TEXT NOT NULL DEFAULT 'sql',
    PRIMARY KEY (tenant, id)
);

CREATE INDEX rules_by_entry_point ON rules (tenant, entry_point);

-- One row per version of a rule, written by Rulebook in the same transaction as the rule.
CREATE TABLE rule_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT NOT NULL,
    rule_id     TEXT NOT NULL,
    version     INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('create', 'update', 'params', 'enable', 'disable', 'delete', 'import')),
    snapshot    TEXT NOT NULL,
    changed_by  TEXT NOT NULL,
    reason      TEXT,
    changed_at  TEXT NOT NULL
);

CREATE INDEX rule_history_by_rule ON rule_history (tenant, rule_id, version);

-- The change log: one row per changed rule, written by the triggers below in the writing
-- transaction, whoever wrote. SQLite has one writer at a time, so `seq` order is commit order.
CREATE TABLE change_log (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant           TEXT NOT NULL,
    rule_id          TEXT NOT NULL,
    op               TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    old_entry_point  TEXT,
    new_entry_point  TEXT,
    old_tags         TEXT,
    new_tags         TEXT,
    changed_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    tenant       TEXT REFERENCES tenants (id),
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);

-- A rule's tenant and id are its identity; renaming one is a delete and an insert.
CREATE TRIGGER rules_identity_is_fixed BEFORE UPDATE OF tenant, id ON rules
WHEN NEW.tenant IS NOT OLD.tenant OR NEW.id IS NOT OLD.id
BEGIN
    SELECT RAISE(ABORT, 'a rule''s tenant and id cannot change: delete the rule and insert it again');
END;

CREATE TRIGGER rules_log_insert AFTER INSERT ON rules
BEGIN
    INSERT INTO change_log (tenant, rule_id, op, new_entry_point, new_tags)
    VALUES (NEW.tenant, NEW.id, 'insert', NEW.entry_point, NEW.tags);
END;

-- Logs the change, and bumps the version when the writer did not (plain SQL), so optimistic
-- concurrency and cached versions notice every change. The inner UPDATE does not fire this trigger
-- again: SQLite triggers are not recursive unless `PRAGMA recursive_triggers` is on, which Rulebook
-- never turns on.
CREATE TRIGGER rules_log_update AFTER UPDATE ON rules
BEGIN
    INSERT INTO change_log (tenant, rule_id, op, old_entry_point, new_entry_point, old_tags, new_tags)
    VALUES (NEW.tenant, NEW.id, 'update', OLD.entry_point, NEW.entry_point, OLD.tags, NEW.tags);
    UPDATE rules SET version = OLD.version + 1
    WHERE NEW.version = OLD.version AND tenant = NEW.tenant AND id = NEW.id;
END;

CREATE TRIGGER rules_log_delete AFTER DELETE ON rules
BEGIN
    INSERT INTO change_log (tenant, rule_id, op, old_entry_point, old_tags)
    VALUES (OLD.tenant, OLD.id, 'delete', OLD.entry_point, OLD.tags);
END;
