//! The change feed: committed rows of the change log, read with a commit-safe cursor.
//!
//! Triggers on `rules` write one `change_log` row per changed rule in the writing transaction,
//! whoever wrote (Rulebook, a bulk import, or plain SQL). A reader must never skip a row, and the
//! obvious cursor, `seq > last_seen`, does skip rows on PostgreSQL: `seq` comes from a sequence
//! when the row is written, not when it commits, so transaction A can take `seq` 10, transaction B
//! take 11 and commit, a reader see 11 and move past 10, and only then A commit.
//!
//! - **PostgreSQL.** Each row records its transaction id (`txid`, an `xid8`). A read runs in one
//!   `REPEATABLE READ` snapshot and takes that snapshot's `xmin`: every transaction with an id
//!   below `xmin` has finished, so its rows are either visible now or never will be. The cursor
//!   keeps that `xmin` as its watermark and the next read asks for `txid >= watermark`, which
//!   includes every transaction that was still running. Rows at or above the watermark that were
//!   already returned are remembered by `seq` in the cursor and not returned twice. (Returning one
//!   twice would be harmless, since invalidation is idempotent, but it would cost reloads.)
//! - **SQLite.** One writer at a time: a write transaction holds the database's write lock from
//!   its first write to its commit, and the next writer's rows get higher `seq`s. So `seq` order
//!   is commit order and `seq > last_seen` is commit-safe.
//!
//! **The applied position.** A reader also needs one number saying how current it is: the
//! *applied position* `P`, the highest `seq` such that every change with a `seq` at or below `P`
//! that will ever commit has been returned ([`Cursor::position`]). Once a reader has applied what
//! a read returned, it has applied every change through `P`, so an answer it gives reflects at
//! least `P`, and a client that wrote change `s` reads its write there once `P >= s`.
//!
//! - **SQLite.** `seq` order is commit order, so `P` is the log's head in the read's snapshot.
//! - **PostgreSQL.** The head `M` of a snapshot `S` is not enough: a transaction still running
//!   at `S` may hold a lower `seq` and commit later (the trap above). Every `seq <= M` was taken
//!   before `S` by a transaction whose id was assigned before it took the `seq` (the log is
//!   written by an `AFTER` trigger on `rules`, whose row write assigns the id first), hence
//!   before `S`. The read ends by taking a transaction id `N` of its own: ids are handed out in
//!   order, so every transaction that can hold a `seq <= M` has an id below `N`. A later read
//!   whose snapshot's `xmin` is at least `N` sees every one of those transactions finished:
//!   committed and visible to it (so returned by it or before), or rolled back. So after that
//!   read, `P >= M`. The cursor keeps the `(N, M)` pairs not yet settled and `P` is the highest
//!   settled `M`. When nothing else is writing, `xmin` already equals `N` in the same read, so
//!   `P` is the head at once; while transactions are running anywhere in the cluster (`xmin` is
//!   cluster-wide), `P` waits for them to end, which a reader that wants a position sooner
//!   turns into another read. Taking `N` costs one transaction id per read and no disk flush
//!   (the read writes nothing).
//!
//! **Pruning.** [`Store::prune_changes`] deletes old rows and records in `change_log_pruned` the
//! highest `seq` (and on PostgreSQL the highest transaction id) it removed. A read whose cursor
//! still needs a row at or below that mark (on PostgreSQL: whose watermark is not above the
//! highest pruned transaction id) cannot replay from the log; [`Store::read_feed`] says so with
//! [`FeedRead::Pruned`], and the reader invalidates everything and starts again from
//! [`Store::current_cursor`]. PostgreSQL prunes only rows of transactions below the current
//! horizon, so every pruned row was final, and a cursor taken after the prune is never told it
//! was pruned.

use std::collections::{BTreeSet, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::db::{args, Backend, Conn};
use crate::error::{db_error, StoreError};
use crate::notifications::{NOTIFY_CHANNEL, PAYLOAD_MAX_BYTES, PAYLOAD_MAX_CHANGES};
use crate::Store;

/// What happened to a row of `rules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    /// A rule was created.
    Insert,
    /// A rule was changed.
    Update,
    /// A rule was deleted.
    Delete,
}

impl ChangeOp {
    fn parse(s: &str) -> Option<ChangeOp> {
        match s {
            "insert" => Some(ChangeOp::Insert),
            "update" => Some(ChangeOp::Update),
            "delete" => Some(ChangeOp::Delete),
            _ => None,
        }
    }
}

/// One committed change of one rule: a row of the change log. It says what to invalidate (see
/// [`Change::tags`]), never the new value, which readers load from the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The change log's sequence number. Unique and increasing in write order; on PostgreSQL
    /// not necessarily in commit order.
    pub seq: i64,
    /// The rule's tenant.
    pub tenant: String,
    /// The rule's id.
    pub rule_id: String,
    /// Insert, update or delete.
    pub op: ChangeOp,
    /// The entry point before the change.
    pub old_entry_point: Option<String>,
    /// The entry point after the change.
    pub new_entry_point: Option<String>,
    /// The rule's labels before the change.
    pub old_tags: Vec<String>,
    /// The rule's labels after the change.
    pub new_tags: Vec<String>,
    /// When the row was written (in the writing transaction, shortly before its commit).
    pub changed_at: DateTime<Utc>,
}

impl Change {
    /// The cache tags this change touches, tenant-prefixed (see [`crate::deps`]).
    pub fn tags(&self) -> BTreeSet<String> {
        crate::deps::tags_for_change(self)
    }
}

/// Told of every change that a write through this [`Store`] committed, right after the commit
/// and before the write returns. The [`crate::Registry`] is one; the sync crate may add one that
/// publishes the changes to other instances. Must not block for long: the writer waits.
pub trait ChangeListener: Send + Sync + 'static {
    /// `changes` committed together, in `seq` order.
    fn committed(&self, changes: &[Change]);
}

/// A position in the change feed. Opaque: start from [`Cursor::beginning`] (replays the whole
/// log) or [`Store::current_cursor`] (only what commits from now on), and pass back what
/// [`Store::changes_since`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The highest `seq` returned so far.
    last_seq: i64,
    /// PostgreSQL: every transaction with a lower id had finished when the feed was last read.
    watermark: Option<u64>,
    /// PostgreSQL: `seq`s already returned whose transaction id is at or above the watermark.
    returned: BTreeSet<i64>,
    /// The applied position (see the module docs).
    position: i64,
    /// PostgreSQL: `(N, M)` of past reads not yet settled: once a read's `xmin` reaches `N`,
    /// every change through `M` has been returned. Both increase along the queue.
    unsettled: VecDeque<(u64, i64)>,
}

/// How many unsettled `(N, M)` pairs a cursor keeps while a long transaction holds `xmin` back.
/// Dropping one but the newest is safe: the newer pairs cover its changes, settling later.
const UNSETTLED_KEPT: usize = 64;

impl Cursor {
    /// The position before the first change.
    pub fn beginning() -> Cursor {
        Cursor::default()
    }

    /// The highest change sequence number returned so far (for status pages and lag).
    pub fn last_seq(&self) -> i64 {
        self.last_seq
    }

    /// The applied position: every change with a `seq` at or below it that will ever commit has
    /// been returned by the reads that led to this cursor (see the module docs). Never goes
    /// backwards along a chain of reads; 0 before anything is known.
    pub fn position(&self) -> i64 {
        self.position
    }

    /// PostgreSQL: records a read whose snapshot had the given `xmin`, saw the log's head at
    /// `head`, and then took transaction id `bound`; settles what that `xmin` settles.
    fn settle(&mut self, xmin: u64, head: i64, bound: u64) {
        if self.unsettled.back().is_none_or(|&(_, m)| head > m) {
            self.unsettled.push_back((bound, head));
            if self.unsettled.len() > UNSETTLED_KEPT {
                self.unsettled.remove(UNSETTLED_KEPT - 1);
            }
        }
        while let Some(&(n, m)) = self.unsettled.front() {
            if n > xmin {
                break;
            }
            self.position = self.position.max(m);
            self.unsettled.pop_front();
        }
    }
}

/// A row of the change log, as read from the table or from a notification's payload (where it
/// has no `txid`).
#[derive(sqlx::FromRow, Deserialize)]
pub(crate) struct ChangeRow {
    seq: i64,
    tenant: String,
    rule_id: String,
    op: String,
    old_entry_point: Option<String>,
    new_entry_point: Option<String>,
    old_tags: Option<String>,
    new_tags: Option<String>,
    changed_at: DateTime<Utc>,
    #[serde(default)]
    txid: Option<String>,
}

const CHANGE_COLUMNS: &str = "seq, tenant, rule_id, op, old_entry_point, new_entry_point, \
     old_tags, new_tags, changed_at";

impl ChangeRow {
    pub(crate) fn into_change(self) -> Result<(Change, Option<u64>), StoreError> {
        let corrupt = |reason: String| {
            tracing::error!(seq = self.seq, %reason, "unreadable change log row");
            StoreError::Internal(format!("reading change log row {}", self.seq))
        };
        let op = ChangeOp::parse(&self.op).ok_or_else(|| corrupt(format!("op `{}`", self.op)))?;
        let tags = |raw: &Option<String>| -> Result<Vec<String>, StoreError> {
            match raw {
                None => Ok(Vec::new()),
                Some(text) => serde_json::from_str(text).map_err(|e| corrupt(e.to_string())),
            }
        };
        let txid = match &self.txid {
            None => None,
            Some(t) => Some(t.parse::<u64>().map_err(|e| corrupt(e.to_string()))?),
        };
        Ok((
            Change {
                seq: self.seq,
                old_tags: tags(&self.old_tags)?,
                new_tags: tags(&self.new_tags)?,
                tenant: self.tenant,
                rule_id: self.rule_id,
                op,
                old_entry_point: self.old_entry_point,
                new_entry_point: self.new_entry_point,
                changed_at: self.changed_at,
            },
            txid,
        ))
    }
}

/// Reads the change rows written by the current write transaction, in `seq` order. On SQLite
/// `after_seq` is the log's highest `seq` when the transaction took the write lock; on
/// PostgreSQL the transaction's own id finds them, and the same statement also queues the
/// notification that carries them (see `notifications`), signed with `from`, the
/// writing store's id; it is delivered with the commit, or never.
pub(crate) async fn own_changes(
    conn: &mut Conn<'_>,
    backend: Backend,
    after_seq: i64,
    from: &str,
) -> Result<Vec<Change>, StoreError> {
    let rows: Vec<ChangeRow> = match backend {
        Backend::Sqlite => {
            conn.fetch_all(
                &format!(
                    "SELECT {CHANGE_COLUMNS}, NULL AS txid FROM change_log WHERE seq > $1 ORDER BY seq"
                ),
                args![after_seq],
            )
            .await
        }
        Backend::Postgres => {
            // One statement, so the notification costs the writer no round trip. The payload is
            // built only for a few rows (the rest of a large batch is never turned into JSON)
            // and sent only when it fits NOTIFY's limit; otherwise the trigger's empty wake-up
            // alone tells the listeners to read the log.
            conn.fetch_all(
                &format!(
                    "WITH mine AS (\
                         SELECT {CHANGE_COLUMNS}, txid::text AS txid FROM change_log \
                         WHERE txid = pg_current_xact_id()), \
                     notice AS (\
                         SELECT json_build_object('from', $1::text, 'changes', \
                             json_agg(few ORDER BY seq))::text AS payload \
                         FROM (SELECT {CHANGE_COLUMNS} FROM mine ORDER BY seq LIMIT $2) few \
                         HAVING count(*) > 0 AND count(*) < $2), \
                     sent AS (\
                         SELECT pg_notify('{NOTIFY_CHANNEL}', payload) FROM notice \
                         WHERE octet_length(payload) < $3) \
                     SELECT mine.*, n.notified FROM mine \
                     CROSS JOIN (SELECT count(*) AS notified FROM sent) n ORDER BY seq"
                ),
                args![
                    from.to_owned(),
                    PAYLOAD_MAX_CHANGES + 1,
                    PAYLOAD_MAX_BYTES
                ],
            )
            .await
        }
    }
    .map_err(|e| db_error("reading the change log", e))?;
    rows.into_iter()
        .map(|r| r.into_change().map(|(c, _)| c))
        .collect()
}

/// The log's highest `seq`, counting pruned rows (0 when nothing was ever logged), so that it
/// never goes backwards when the log is pruned.
pub(crate) async fn head_seq(conn: &mut Conn<'_>) -> Result<i64, StoreError> {
    let (seq,): (i64,) = conn
        .fetch_one(
            "SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM (\
                 SELECT MAX(seq) AS seq FROM change_log \
                 UNION ALL SELECT max_seq AS seq FROM change_log_pruned) AS heads",
            args![],
        )
        .await
        .map_err(|e| db_error("reading the change log", e))?;
    Ok(seq)
}

/// What [`Store::read_feed`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedRead {
    /// The committed changes after the cursor, in `seq` order, and the cursor to pass next time.
    Changes {
        /// The changes.
        changes: Vec<Change>,
        /// Where to read from next.
        next: Cursor,
    },
    /// The log was pruned past the cursor: changes after it may be gone. Invalidate everything
    /// and start again from [`Store::current_cursor`].
    Pruned,
}

/// The pruning mark as one snapshot sees it: the highest `seq` and (PostgreSQL) transaction id
/// removed so far.
async fn pruned_mark(
    conn: &mut Conn<'_>,
    backend: Backend,
) -> Result<Option<(i64, Option<u64>)>, StoreError> {
    let sql = match backend {
        Backend::Sqlite => "SELECT max_seq, NULL AS max_txid FROM change_log_pruned WHERE id = 1",
        Backend::Postgres => {
            "SELECT max_seq, max_txid::text AS max_txid FROM change_log_pruned WHERE id = 1"
        }
    };
    let row: Option<(i64, Option<String>)> = conn
        .fetch_optional(sql, args![])
        .await
        .map_err(|e| db_error("reading the change log", e))?;
    match row {
        None => Ok(None),
        Some((seq, None)) => Ok(Some((seq, None))),
        Some((seq, Some(txid))) => {
            let txid = txid.parse::<u64>().map_err(|_| {
                StoreError::Internal("reading the change log's pruning mark".into())
            })?;
            Ok(Some((seq, Some(txid))))
        }
    }
}

impl Store {
    /// The committed changes after `cursor`, in `seq` order, and the cursor to pass next time.
    /// Never skips a change that commits late with a lower `seq` (see the module docs). When the
    /// log was pruned past `cursor` this is [`StoreError::CursorPruned`]; [`Store::read_feed`]
    /// tells the same without an error.
    pub async fn changes_since(
        &self,
        cursor: &Cursor,
    ) -> Result<(Vec<Change>, Cursor), StoreError> {
        match self.read_feed(cursor).await? {
            FeedRead::Changes { changes, next } => Ok((changes, next)),
            FeedRead::Pruned => Err(StoreError::CursorPruned),
        }
    }

    /// Reads the committed changes after `cursor` (see [`Store::changes_since`]), or finds that
    /// the log was pruned past it. The pruning mark and the rows are read in one snapshot.
    pub async fn read_feed(&self, cursor: &Cursor) -> Result<FeedRead, StoreError> {
        let mut tx = self.pool().begin_snapshot().await?;
        let mut conn = tx.conn();
        let mark = pruned_mark(&mut conn, self.backend()).await?;
        let pruned = match (self.backend(), mark) {
            (_, None) => false,
            // Rows up to `seq` are gone; the cursor has read up to `last_seq`.
            (Backend::Sqlite, Some((seq, _))) => seq > cursor.last_seq,
            // Every row below the watermark was read; a pruned row at or above it may not have
            // been (counting it as missed costs at most one needless flush).
            (Backend::Postgres, Some((_, txid))) => {
                txid.unwrap_or(0) >= cursor.watermark.unwrap_or(0)
            }
        };
        if pruned {
            tx.commit().await?;
            return Ok(FeedRead::Pruned);
        }
        let result = match self.backend() {
            Backend::Sqlite => {
                let rows: Vec<ChangeRow> = conn
                    .fetch_all(
                        &format!(
                            "SELECT {CHANGE_COLUMNS}, NULL AS txid FROM change_log \
                             WHERE seq > $1 ORDER BY seq"
                        ),
                        args![cursor.last_seq],
                    )
                    .await
                    .map_err(|e| db_error("reading the change log", e))?;
                let head = head_seq(&mut conn).await?;
                let mut next = cursor.clone();
                let mut changes = Vec::with_capacity(rows.len());
                for row in rows {
                    let (change, _) = row.into_change()?;
                    next.last_seq = next.last_seq.max(change.seq);
                    changes.push(change);
                }
                // One writer at a time: everything through the head has committed and is read.
                next.position = next.position.max(head);
                (changes, next)
            }
            Backend::Postgres => {
                let (xmin,): (String,) = conn
                    .fetch_one(
                        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text",
                        args![],
                    )
                    .await
                    .map_err(|e| db_error("reading the change log", e))?;
                let xmin: u64 = xmin
                    .parse()
                    .map_err(|_| StoreError::Internal("reading the transaction horizon".into()))?;
                let from = cursor.watermark.unwrap_or(0).to_string();
                let rows: Vec<ChangeRow> = conn
                    .fetch_all(
                        &format!(
                            "SELECT {CHANGE_COLUMNS}, txid::text AS txid FROM change_log \
                             WHERE txid >= $1::xid8 ORDER BY seq"
                        ),
                        args![from],
                    )
                    .await
                    .map_err(|e| db_error("reading the change log", e))?;
                let head = head_seq(&mut conn).await?;
                // Taken last: every transaction that took a `seq` up to `head` has a lower id.
                let (bound,): (String,) = conn
                    .fetch_one("SELECT pg_current_xact_id()::text", args![])
                    .await
                    .map_err(|e| db_error("reading the change log", e))?;
                let bound: u64 = bound
                    .parse()
                    .map_err(|_| StoreError::Internal("reading a transaction id".into()))?;
                let mut next = Cursor {
                    last_seq: cursor.last_seq,
                    watermark: Some(xmin),
                    returned: BTreeSet::new(),
                    position: cursor.position,
                    unsettled: cursor.unsettled.clone(),
                };
                next.settle(xmin, head, bound);
                let mut changes = Vec::new();
                for row in rows {
                    let (change, txid) = row.into_change()?;
                    if txid.is_some_and(|t| t >= xmin) {
                        next.returned.insert(change.seq);
                    }
                    if cursor.returned.contains(&change.seq) {
                        continue;
                    }
                    next.last_seq = next.last_seq.max(change.seq);
                    changes.push(change);
                }
                (changes, next)
            }
        };
        tx.commit().await?;
        let (changes, next) = result;
        Ok(FeedRead::Changes { changes, next })
    }

    /// A cursor at the current end of the feed: [`Store::changes_since`] with it returns only
    /// changes that commit after this call.
    pub async fn current_cursor(&self) -> Result<Cursor, StoreError> {
        match self.backend() {
            Backend::Sqlite => {
                let mut held = self.pool().acquire().await?;
                let last_seq = head_seq(&mut held.conn()).await?;
                Ok(Cursor {
                    last_seq,
                    position: last_seq,
                    ..Cursor::default()
                })
            }
            Backend::Postgres => {
                // The whole log is not needed: everything below the current horizon is final and
                // already in the database that a fresh load reads, so start from the horizon.
                let mut tx = self.pool().begin_snapshot().await?;
                let (xmin, head): (String, i64) = tx
                    .conn()
                    .fetch_one(
                        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text, \
                         (SELECT COALESCE(MAX(seq), 0) FROM change_log)",
                        args![],
                    )
                    .await
                    .map_err(|e| db_error("reading the change log", e))?;
                tx.commit().await?;
                let xmin: u64 = xmin
                    .parse()
                    .map_err(|_| StoreError::Internal("reading the transaction horizon".into()))?;
                let start = Cursor {
                    last_seq: head,
                    watermark: Some(xmin),
                    ..Cursor::default()
                };
                // Rows at or above the horizon that have committed by now count as returned.
                match self.read_feed(&start).await? {
                    FeedRead::Changes { next, .. } => Ok(next),
                    // A prune committed between the two reads: take the position again.
                    FeedRead::Pruned => Box::pin(self.current_cursor()).await,
                }
            }
        }
    }

    /// The changes of `tenant` with a `seq` above `after` and at most `through`, in `seq` order,
    /// at most `limit` of them: for serving a change stream from a position. Only meaningful
    /// when `through` is an applied position ([`Cursor::position`]): every change up to it has
    /// committed, so none can appear later inside the range. [`StoreError::CursorPruned`] when the
    /// log was pruned past `after` (changes after it may be gone).
    pub async fn tenant_changes(
        &self,
        tenant: &str,
        after: i64,
        through: i64,
        limit: u32,
    ) -> Result<Vec<Change>, StoreError> {
        let mut tx = self.pool().begin_snapshot().await?;
        let mut conn = tx.conn();
        if pruned_mark(&mut conn, self.backend())
            .await?
            .is_some_and(|(seq, _)| seq > after)
        {
            tx.commit().await?;
            return Err(StoreError::CursorPruned);
        }
        let rows: Vec<ChangeRow> = conn
            .fetch_all(
                &format!(
                    "SELECT {CHANGE_COLUMNS}, NULL AS txid FROM change_log \
                     WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
                ),
                args![tenant.to_owned(), after, through, i64::from(limit)],
            )
            .await
            .map_err(|e| db_error("reading the change log", e))?;
        tx.commit().await?;
        rows.into_iter()
            .map(|r| r.into_change().map(|(c, _)| c))
            .collect()
    }

    /// The change log's highest sequence number (0 when empty): the source version of a load
    /// that starts now.
    pub async fn head_seq(&self) -> Result<i64, StoreError> {
        let mut held = self.pool().acquire().await?;
        head_seq(&mut held.conn()).await
    }

    /// Deletes the change-log rows written more than `keep` ago (by the database's clock) and
    /// records what was removed, so that a reader whose cursor is older learns that it must
    /// invalidate everything (see [`FeedRead::Pruned`]). Keep at least as long as an instance may
    /// be cut off from the database and still be expected to catch up by replaying. Returns how
    /// many rows were deleted. Safe to run from several instances at once.
    pub async fn prune_changes(&self, keep: std::time::Duration) -> Result<u64, StoreError> {
        let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        let doing = "pruning the change log";
        let mut tx = self.pool().begin_write().await?;
        let mut conn = tx.conn();
        let deleted = match self.backend() {
            Backend::Postgres => {
                // Only rows of transactions below the horizon: final, so a cursor taken after
                // the prune has a watermark above every pruned transaction id.
                let (deleted,): (i64,) = conn
                    .fetch_one(
                        "WITH gone AS (\
                             DELETE FROM change_log \
                             WHERE changed_at < clock_timestamp() - ($1::bigint * interval '1 millisecond') \
                               AND txid < pg_snapshot_xmin(pg_current_snapshot()) \
                             RETURNING seq, txid), \
                         mark AS (\
                             INSERT INTO change_log_pruned (id, max_seq, max_txid, pruned_at) \
                             SELECT 1, MAX(seq), MAX(txid), clock_timestamp() FROM gone \
                             HAVING COUNT(*) > 0 \
                             ON CONFLICT (id) DO UPDATE SET \
                                 max_seq = GREATEST(change_log_pruned.max_seq, EXCLUDED.max_seq), \
                                 max_txid = GREATEST(change_log_pruned.max_txid, EXCLUDED.max_txid), \
                                 pruned_at = EXCLUDED.pruned_at \
                             RETURNING 1) \
                         SELECT COUNT(*) FROM gone",
                        args![keep_ms],
                    )
                    .await
                    .map_err(|e| db_error(doing, e))?;
                u64::try_from(deleted).unwrap_or(0)
            }
            Backend::Sqlite => {
                // One writer at a time: `seq` order is commit order, so everything up to the
                // newest row old enough goes.
                let modifier = format!("-{}.{:03} seconds", keep_ms / 1000, keep_ms % 1000);
                let (upto,): (Option<i64>,) = conn
                    .fetch_one(
                        "SELECT MAX(seq) FROM change_log \
                         WHERE changed_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', $1)",
                        args![modifier],
                    )
                    .await
                    .map_err(|e| db_error(doing, e))?;
                match upto {
                    None => 0,
                    Some(upto) => {
                        let deleted = conn
                            .execute("DELETE FROM change_log WHERE seq <= $1", args![upto])
                            .await
                            .map_err(|e| db_error(doing, e))?;
                        conn.execute(
                            "INSERT INTO change_log_pruned (id, max_seq, pruned_at) \
                             VALUES (1, $1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
                             ON CONFLICT (id) DO UPDATE SET \
                                 max_seq = MAX(max_seq, excluded.max_seq), \
                                 pruned_at = excluded.pruned_at",
                            args![upto],
                        )
                        .await
                        .map_err(|e| db_error(doing, e))?;
                        deleted
                    }
                }
            }
        };
        tx.commit().await?;
        Ok(deleted)
    }
}
