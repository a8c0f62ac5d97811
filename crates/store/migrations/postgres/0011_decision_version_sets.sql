-- The decision log keeps each set of rule versions once: every decision made from one cached
-- ruleset used the same versions (about 1 KB of JSON for 50 rules), and writing those bytes with
-- every decision was most of what the log cost. A decision names its set by `versions_id`, the
-- SHA-256 of the set's JSON in hex; the decisions logged before this migration keep their own
-- sets, named `decision:` and their id. `last_used` is the latest decision time that used the set,
-- so pruning removes a set with the last decisions that used it.

CREATE TABLE decision_versions (
    id          TEXT PRIMARY KEY,
    versions    TEXT NOT NULL,
    last_used   TIMESTAMPTZ NOT NULL
);

INSERT INTO decision_versions (id, versions, last_used)
SELECT 'decision:' || id, versions, decided_at FROM decisions;

ALTER TABLE decisions ADD COLUMN versions_id TEXT;
UPDATE decisions SET versions_id = 'decision:' || id;
ALTER TABLE decisions ALTER COLUMN versions_id SET NOT NULL;
ALTER TABLE decisions DROP COLUMN versions;
