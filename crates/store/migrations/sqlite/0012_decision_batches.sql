-- The decision log keeps a batch of decisions per row. One row per decision cost SQLite a
-- statement step, a table insert and three index inserts for every evaluation, which took about
-- a third of the service's CPU with the log on; a row per batch pays those once for hundreds of
-- decisions. A batch holds decisions of one tenant and entry point, written together by the
-- log's writer, spanning at most ten seconds (by time and by the time in their UUIDv7 ids), so
-- that a decision is found by its id or time among the few batches whose range holds it.
--
-- `decisions` is a JSON array of `{"id", "kind", "decided_at", "versions_id", "context",
-- "context_sha256", "answer"}`, oldest first; `count` is its length. The view `decisions` shows
-- one row per decision, with the columns the table had, for reading the log in plain SQL.

CREATE TABLE decision_batches (
    tenant       TEXT NOT NULL,
    entry_point  TEXT NOT NULL,
    first_id     TEXT NOT NULL,
    last_id      TEXT NOT NULL,
    first_at     TEXT NOT NULL,
    last_at      TEXT NOT NULL,
    count        INTEGER NOT NULL,
    decisions    TEXT NOT NULL
);

INSERT INTO decision_batches (tenant, entry_point, first_id, last_id, first_at, last_at, count, decisions)
SELECT tenant, entry_point, id, id, decided_at, decided_at, 1,
       json_array(json_object(
           'id', id, 'kind', kind, 'decided_at', decided_at, 'versions_id', versions_id,
           'context', json(context), 'context_sha256', context_sha256, 'answer', json(answer)))
FROM decisions;

DROP TABLE decisions;

CREATE INDEX decision_batches_by_id ON decision_batches (tenant, first_id);
CREATE INDEX decision_batches_by_entry_point ON decision_batches (tenant, entry_point, first_at);
CREATE INDEX decision_batches_by_tenant_time ON decision_batches (tenant, first_at);
CREATE INDEX decision_batches_by_time ON decision_batches (last_at);

CREATE VIEW decisions AS
SELECT json_extract(d.value, '$.id') AS id,
       b.tenant AS tenant,
       json_extract(d.value, '$.kind') AS kind,
       b.entry_point AS entry_point,
       json_extract(d.value, '$.decided_at') AS decided_at,
       json_extract(d.value, '$.versions_id') AS versions_id,
       json_extract(d.value, '$.context') AS context,
       json_extract(d.value, '$.context_sha256') AS context_sha256,
       json_extract(d.value, '$.answer') AS answer
FROM decision_batches b, json_each(b.decisions) d;
