-- The decision log keeps a batch of decisions per row, compressed. One row per decision cost
-- SQLite a statement step, a table insert and three index inserts for every evaluation, and the
-- answers' bytes, written to the WAL and again at checkpoint, cost more still. A row per batch
-- pays the first once for hundreds of decisions, and zstd makes the bytes about a tenth. A batch
-- holds decisions of one tenant and entry point, written together by the log's writer, spanning
-- at most ten seconds (by time and by the time in their UUIDv7 ids), so that a decision is found
-- by its id or time among the few batches whose range holds it.
--
-- `decisions` is a JSON array of `{"id", "kind", "decided_at", "versions_id", "context",
-- "context_sha256", "answer"}`, compressed with zstd as one frame; `count` is its length. The
-- decisions logged before this migration become batches of one, as uncompressed JSON (which
-- starts with `[`, where a zstd frame never does). Read the log through `GET /v1/decisions`.

CREATE TABLE decision_batches (
    tenant       TEXT NOT NULL,
    entry_point  TEXT NOT NULL,
    first_id     TEXT NOT NULL,
    last_id      TEXT NOT NULL,
    first_at     TEXT NOT NULL,
    last_at      TEXT NOT NULL,
    count        INTEGER NOT NULL,
    decisions    BLOB NOT NULL
);

INSERT INTO decision_batches (tenant, entry_point, first_id, last_id, first_at, last_at, count, decisions)
SELECT tenant, entry_point, id, id, decided_at, decided_at, 1,
       CAST(json_array(json_object(
           'id', id, 'kind', kind, 'decided_at', decided_at, 'versions_id', versions_id,
           'context', json(context), 'context_sha256', context_sha256, 'answer', json(answer)))
           AS BLOB)
FROM decisions;

DROP TABLE decisions;

CREATE INDEX decision_batches_by_id ON decision_batches (tenant, first_id);
CREATE INDEX decision_batches_by_entry_point ON decision_batches (tenant, entry_point, first_at);
CREATE INDEX decision_batches_by_tenant_time ON decision_batches (tenant, first_at);
CREATE INDEX decision_batches_by_time ON decision_batches (last_at);
