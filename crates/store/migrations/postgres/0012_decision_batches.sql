-- The decision log keeps a batch of decisions per row. One row per decision cost a table insert
-- and three index inserts for every evaluation; a row per batch pays those once for hundreds of
-- decisions. A batch holds decisions of one tenant and entry point, written together by the
-- log's writer, spanning at most ten seconds (by time and by the time in their UUIDv7 ids), so
-- that a decision is found by its id or time among the few batches whose range holds it.
--
-- `decisions` is a JSON array (as text) of `{"id", "kind", "decided_at", "versions_id",
-- "context", "context_sha256", "answer"}`, oldest first; `count` is its length. The view
-- `decisions` shows one row per decision, with the columns the table had, for reading the log in
-- plain SQL.

CREATE TABLE decision_batches (
    tenant       TEXT NOT NULL,
    entry_point  TEXT NOT NULL,
    first_id     TEXT NOT NULL,
    last_id      TEXT NOT NULL,
    first_at     TIMESTAMPTZ NOT NULL,
    last_at      TIMESTAMPTZ NOT NULL,
    count        INTEGER NOT NULL,
    decisions    TEXT NOT NULL
);

INSERT INTO decision_batches (tenant, entry_point, first_id, last_id, first_at, last_at, count, decisions)
SELECT tenant, entry_point, id, id, decided_at, decided_at, 1,
       json_build_array(json_build_object(
           'id', id, 'kind', kind, 'decided_at', decided_at, 'versions_id', versions_id,
           'context', context::json, 'context_sha256', context_sha256, 'answer', answer::json))::text
FROM decisions;

DROP TABLE decisions;

CREATE INDEX decision_batches_by_id ON decision_batches (tenant, first_id);
CREATE INDEX decision_batches_by_entry_point ON decision_batches (tenant, entry_point, first_at);
CREATE INDEX decision_batches_by_tenant_time ON decision_batches (tenant, first_at);
CREATE INDEX decision_batches_by_time ON decision_batches (last_at);

CREATE VIEW decisions AS
SELECT d ->> 'id' AS id,
       b.tenant AS tenant,
       d ->> 'kind' AS kind,
       b.entry_point AS entry_point,
       (d ->> 'decided_at')::timestamptz AS decided_at,
       d ->> 'versions_id' AS versions_id,
       d ->> 'context' AS context,
       d ->> 'context_sha256' AS context_sha256,
       d ->> 'answer' AS answer
FROM decision_batches b, json_array_elements(b.decisions::json) d;
