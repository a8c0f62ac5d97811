-- Rulebook's schema on PostgreSQL. The SQLite migration beside this one creates the same tables.
--
-- `rules` keeps the full rule document as JSON text in `document`, and the fields that are
-- indexed, or that a person is likely to change with plain SQL, as columns: `entry_point`,
-- `enabled`, `priority`, `tags` and `version`. The columns are authoritative: Rulebook writes both,
-- and when it reads a rule it overwrites those fields of the document with the columns, so
-- `UPDATE rules SET enabled = false WHERE id = 'RF-002'` typed into psql does what it says.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE rules (
    tenant       TEXT NOT NULL REFERENCES tenants (id),
    id           TEXT NOT NULL,
    entry_point  TEXT CHECK (entry_point ~ '^[a-z0-9_.]+$'),
    enabled      BOOLEAN NOT NULL DEFAULT true,
    priority     INTEGER NOT NULL DEFAULT 0,
    tags         TEXT NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(tags::jsonb) = 'array'),
    version      BIGINT NOT NULL DEFAULT 1,
    document     TEXT NOT NULL CHECK (jsonb_typeof(document::jsonb) = 'object'),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by   TEXT NOT NULL DEFAULT current_user,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by   TEXT NOT NULL DEFAULT current_user,
    PRIMARY KEY (tenant, id)
);

CREATE INDEX rules_by_entry_point ON rules (tenant, entry_point);

-- One row per version of a rule, written by Rulebook in the same transaction as the rule.
CREATE TABLE rule_history (
    id          BIGSERIAL PRIMARY KEY,
    tenant      TEXT NOT NULL,
    rule_id     TEXT NOT NULL,
    version     BIGINT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('create', 'update', 'params', 'enable', 'disable', 'delete', 'import')),
    snapshot    TEXT NOT NULL,
    changed_by  TEXT NOT NULL,
    reason      TEXT,
    changed_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX rule_history_by_rule ON rule_history (tenant, rule_id, version);

-- The change log: one row per changed rule, written by the triggers below in the writing
-- transaction, whoever wrote. `seq` is handed out before commit, so a transaction can commit after
-- one with a higher `seq`; `txid` lets a reader use a commit-safe cursor instead (see feed.rs).
CREATE TABLE change_log (
    seq              BIGSERIAL PRIMARY KEY,
    txid             xid8 NOT NULL DEFAULT pg_current_xact_id(),
    tenant           TEXT NOT NULL,
    rule_id          TEXT NOT NULL,
    op               TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    old_entry_point  TEXT,
    new_entry_point  TEXT,
    old_tags         TEXT,
    new_tags         TEXT,
    changed_at       TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX change_log_by_txid ON change_log (txid);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    tenant       TEXT REFERENCES tenants (id),
    created_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ
);

-- A rule's tenant and id are its identity; and every change bumps the version, also when plain SQL
-- did not, so optimistic concurrency and cached versions notice every change.
CREATE FUNCTION rulebook_rules_before_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.tenant IS DISTINCT FROM OLD.tenant OR NEW.id IS DISTINCT FROM OLD.id THEN
        RAISE EXCEPTION 'a rule''s tenant and id cannot change: delete the rule and insert it again';
    END IF;
    IF NEW.version = OLD.version THEN
        NEW.version := OLD.version + 1;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER rules_before_update BEFORE UPDATE ON rules
FOR EACH ROW EXECUTE FUNCTION rulebook_rules_before_update();

CREATE FUNCTION rulebook_rules_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO change_log (tenant, rule_id, op, new_entry_point, new_tags)
        VALUES (NEW.tenant, NEW.id, 'insert', NEW.entry_point, NEW.tags);
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO change_log (tenant, rule_id, op, old_entry_point, new_entry_point, old_tags, new_tags)
        VALUES (NEW.tenant, NEW.id, 'update', OLD.entry_point, NEW.entry_point, OLD.tags, NEW.tags);
    ELSE
        INSERT INTO change_log (tenant, rule_id, op, old_entry_point, old_tags)
        VALUES (OLD.tenant, OLD.id, 'delete', OLD.entry_point, OLD.tags);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER rules_log AFTER INSERT OR UPDATE OR DELETE ON rules
FOR EACH ROW EXECUTE FUNCTION rulebook_rules_log();

-- A wake-up for listening instances, once per statement (and PostgreSQL folds identical payloads
-- of one transaction into one notification). It carries nothing: readers go to the change log.
CREATE FUNCTION rulebook_rules_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rulebook_changes', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER rules_notify AFTER INSERT OR UPDATE OR DELETE ON rules
FOR EACH STATEMENT EXECUTE FUNCTION rulebook_rules_notify();
