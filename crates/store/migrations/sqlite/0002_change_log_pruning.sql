-- What pruning has removed from the change log. A reader whose cursor is older than this can no
-- longer replay from the log and must invalidate everything (see feed.rs). One row at most.
CREATE TABLE change_log_pruned (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    max_seq    INTEGER NOT NULL,
    pruned_at  TEXT NOT NULL
);

CREATE INDEX change_log_by_changed_at ON change_log (changed_at);
