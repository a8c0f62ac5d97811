-- The decision log keeps each set of rule versions once: every decision made from one cached
-- ruleset used the same versions (about 1 KB of JSON for 50 rules), and writing those bytes with
-- every decision was most of what the log cost. A decision names its set by `versions_id`, the
-- SHA-256 of the set's JSON in hex; the decisions logged before this migration keep their own
-- sets, named `decision:` and their id. `last_used` is the latest decision time that used the set,
-- so pruning removes a set with the last decisions that used it. SQLite cannot drop a column that
-- is NOT NULL in place, so `decisions` is rebuilt.

CREATE TABLE decision_versions (
    id          TEXT PRIMARY KEY NOT NULL,
    versions    TEXT NOT NULL,
    last_used   TEXT NOT NULL
);

INSERT INTO decision_versions (id, versions, last_used)
SELECT 'decision:' || id, versions, decided_at FROM decisions;

CREATE TABLE decisions_new (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant          TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('evaluate', 'score')),
    entry_point     TEXT NOT NULL,
    decided_at      TEXT NOT NULL,
    versions_id     TEXT NOT NULL,
    context         TEXT,
    context_sha256  TEXT NOT NULL,
    answer          TEXT NOT NULL
);

INSERT INTO decisions_new (id, tenant, kind, entry_point, decided_at, versions_id, context, context_sha256, answer)
SELECT id, tenant, kind, entry_point, decided_at, 'decision:' || id, context, context_sha256, answer FROM decisions;

DROP TABLE decisions;
ALTER TABLE decisions_new RENAME TO decisions;

CREATE INDEX decisions_by_entry_point ON decisions (tenant, entry_point, decided_at);
CREATE INDEX decisions_by_time ON decisions (decided_at);
