//! The decision log: every evaluation answer appended to a table, written off the request path.
//!
//! A request hands its decision to [`DecisionLog::record`], which only puts it on a bounded
//! queue (no I/O, no serialisation of the context, no hashing): a background task takes what has
//! queued up, in batches, and writes each batch in one transaction with multi-row inserts. So the
//! cost on the request path is a queue push, and the database sees a few large writes instead of
//! one per request. When the queue is full (the database cannot keep up) a decision is dropped
//! and counted, rather than letting memory grow or slowing evaluation down: the log is an audit
//! aid, and [`DecisionLogStats::dropped`] says when it is incomplete.
//!
//! The same task prunes decisions older than the retention, once at start and then every
//! [`DecisionLogConfig::prune_every`].
//!
//! The versions a decision was made with (every rule of its entry point, about 1 KB of JSON for
//! 50 rules) are the same for every decision made from one cached ruleset, so they are stored
//! once, in `decision_versions`, keyed by the SHA-256 of their JSON, and each decision names its
//! set: writing the bytes of each row is most of what the log costs. A set records the latest
//! decision time that used it (`last_used`), so pruning removes a set together with the last
//! decisions that used it: every decision naming a set was made at or before the set's
//! `last_used`, so a set older than the cut-off is named only by decisions older than it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rulebook_rules::Ruleset;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::db::{args, Arg, Backend};
use crate::error::{db_error, StoreError};
use crate::Store;

/// What kind of answer a decision is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DecisionKind {
    /// An evaluation of an entry point (`POST /v1/evaluate/...`, and each result of a batch).
    Evaluate,
    /// A scorecard's score (`POST /v1/score/...`).
    Score,
}

impl DecisionKind {
    /// The name stored in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Evaluate => "evaluate",
            DecisionKind::Score => "score",
        }
    }

    fn parse(text: &str) -> Option<DecisionKind> {
        match text {
            "evaluate" => Some(DecisionKind::Evaluate),
            "score" => Some(DecisionKind::Score),
            _ => None,
        }
    }
}

/// The versions of the rules a decision was made with.
#[derive(Debug, Clone)]
pub enum VersionsUsed {
    /// Every rule of this compiled ruleset (matched or not), read off the request path.
    Ruleset(Arc<Ruleset>),
    /// These rule ids and versions.
    Listed(Vec<(String, i64)>),
}

/// A decision as the request path hands it to [`DecisionLog::record`]. The context is serialised
/// and hashed by the writer, not by the request.
#[derive(Debug, Clone)]
pub struct NewDecision {
    /// The decision id the answer carried.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// Evaluation or score.
    pub kind: DecisionKind,
    /// The entry point evaluated (or the scorecard scored).
    pub entry_point: String,
    /// When the decision was made (to the microsecond, as the store keeps times).
    pub decided_at: DateTime<Utc>,
    /// The rule versions it was made with.
    pub versions: VersionsUsed,
    /// The input as sent.
    pub context: Value,
    /// The answer's JSON, exactly as sent to the caller.
    pub answer: Vec<u8>,
}

/// A logged decision, as `GET /v1/decisions/{id}` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Decision {
    /// The decision id.
    pub decision_id: String,
    /// The tenant.
    pub tenant: String,
    /// Evaluation or score.
    pub kind: DecisionKind,
    /// The entry point (or scorecard).
    pub entry_point: String,
    /// When it was made; replaying it `as_of` this time uses the same rule versions.
    pub decided_at: DateTime<Utc>,
    /// Rule id to version, for every rule the decision was made with.
    pub versions: BTreeMap<String, i64>,
    /// The input, unless the log keeps only its hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// The SHA-256 of the input's JSON as Rulebook writes it (keys sorted, no spaces), in hex.
    pub context_sha256: String,
    /// The answer as it was sent.
    pub answer: Value,
}

/// Which decisions `GET /v1/decisions` lists.
#[derive(Debug, Clone, Default)]
pub struct DecisionQuery {
    /// Only this entry point (or scorecard).
    pub entry_point: Option<String>,
    /// Only decisions made at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only decisions made before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only decisions after this one in the listing's order (time, then id): where the
    /// previous page ended.
    pub after: Option<(DateTime<Utc>, String)>,
    /// At most this many, oldest first.
    pub limit: u32,
}

/// What the log keeps of each decision's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextPolicy {
    /// The input itself, and its SHA-256.
    Full,
    /// Only the SHA-256 of the input (for inputs that hold personal data).
    Sha256,
}

/// How the decision log runs.
#[derive(Debug, Clone)]
pub struct DecisionLogConfig {
    /// How long a decision is kept before pruning removes it.
    pub retention: Duration,
    /// What is kept of the input.
    pub context: ContextPolicy,
    /// The most decisions waiting to be written; beyond it decisions are dropped and counted.
    pub queue: usize,
    /// The most decisions written in one transaction.
    pub batch: usize,
    /// How often decisions older than the retention are pruned.
    pub prune_every: Duration,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        DecisionLogConfig {
            retention: Duration::from_secs(30 * 24 * 3600),
            context: ContextPolicy::Full,
            queue: 50_000,
            batch: 500,
            prune_every: Duration::from_secs(3600),
        }
    }
}

/// The decision log's counters since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DecisionLogStats {
    /// Decisions written.
    pub written: u64,
    /// Decisions dropped because the queue was full.
    pub dropped: u64,
    /// Decisions lost because their batch could not be written (the log has the cause).
    pub failed: u64,
    /// Decisions removed by pruning.
    pub pruned: u64,
}

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    pruned: AtomicU64,
}

enum Message {
    Decision(Box<NewDecision>),
    /// Answered once every decision queued before it is written.
    Flush(oneshot::Sender<()>),
    /// Like `Flush`, then the writer ends.
    Stop(oneshot::Sender<()>),
}

/// The running decision log: a handle on the queue and its writer task. Cheap to clone.
#[derive(Clone)]
pub struct DecisionLog {
    inner: Arc<LogInner>,
}

struct LogInner {
    sender: mpsc::Sender<Message>,
    counters: Arc<Counters>,
    config: DecisionLogConfig,
    /// The writer task, taken by [`DecisionLog::stop`]. A mutex: touched once, at stop.
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for DecisionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionLog")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl DecisionLog {
    /// Starts the writer task on the current tokio runtime.
    pub fn start(store: Store, config: DecisionLogConfig) -> DecisionLog {
        let (sender, receiver) = mpsc::channel(config.queue.max(1));
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(write_loop(
            store,
            config.clone(),
            receiver,
            Arc::clone(&counters),
        ));
        DecisionLog {
            inner: Arc::new(LogInner {
                sender,
                counters,
                config,
                task: Mutex::new(Some(task)),
            }),
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &DecisionLogConfig {
        &self.inner.config
    }

    /// Queues `decision` for writing; never waits. Returns `false` (and counts it in
    /// [`DecisionLogStats::dropped`]) when the queue is full or the log has stopped.
    pub fn record(&self, decision: NewDecision) -> bool {
        match self
            .inner
            .sender
            .try_send(Message::Decision(Box::new(decision)))
        {
            Ok(()) => true,
            Err(_) => {
                self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Waits until every decision recorded before this call has been written (or has failed).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.inner.sender.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Writes what is queued and stops the writer. Decisions recorded afterwards are dropped.
    pub async fn stop(&self) {
        let (done, wait) = oneshot::channel();
        if self.inner.sender.send(Message::Stop(done)).await.is_ok() {
            let _ = wait.await;
        }
        let task = self.inner.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// The counters.
    pub fn stats(&self) -> DecisionLogStats {
        let c = &self.inner.counters;
        DecisionLogStats {
            written: c.written.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            pruned: c.pruned.load(Ordering::Relaxed),
        }
    }
}

async fn write_loop(
    store: Store,
    config: DecisionLogConfig,
    mut receiver: mpsc::Receiver<Message>,
    counters: Arc<Counters>,
) {
    let mut prune = tokio::time::interval(config.prune_every.max(Duration::from_millis(10)));
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let batch = config.batch.max(1);
    let mut messages = Vec::with_capacity(batch);
    let mut versions = VersionsCache::default();
    loop {
        tokio::select! {
            received = receiver.recv_many(&mut messages, batch) => {
                if received == 0 {
                    return;
                }
                let mut decisions = Vec::with_capacity(messages.len());
                let mut waiting = Vec::new();
                let mut stop = false;
                for message in messages.drain(..) {
                    match message {
                        Message::Decision(d) => decisions.push(*d),
                        Message::Flush(done) => waiting.push(done),
                        Message::Stop(done) => {
                            waiting.push(done);
                            stop = true;
                        }
                    }
                }
                let n = decisions.len() as u64;
                if n > 0 {
                    match store
                        .append_decisions_with(decisions, config.context, &mut versions)
                        .await
                    {
                        Ok(()) => counters.written.fetch_add(n, Ordering::Relaxed),
                        Err(e) => {
                            tracing::warn!(error = %e, decisions = n, "decisions could not be logged");
                            counters.failed.fetch_add(n, Ordering::Relaxed)
                        }
                    };
                }
                for done in waiting {
                    let _ = done.send(());
                }
                if stop {
                    return;
                }
            }
            _ = prune.tick() => {
                let cutoff = chrono::Duration::from_std(config.retention)
                    .ok()
                    .and_then(|keep| Utc::now().checked_sub_signed(keep));
                if let Some(cutoff) = cutoff {
                    match store.prune_decisions(cutoff).await {
                        Ok(n) => counters.pruned.fetch_add(n, Ordering::Relaxed),
                        Err(e) => {
                            tracing::warn!(error = %e, "pruning the decision log failed");
                            0
                        }
                    };
                }
            }
        }
    }
}

/// Decisions per insert statement: 9 values each, 900 parameters (SQLite takes 32,766 in one
/// statement, PostgreSQL 65,535). Binding is linear in their number (see [`insert_sql`]), so a
/// batch is a few statements.
const ROWS_PER_INSERT: usize = 100;

/// A set of versions as stored: the SHA-256 of its JSON (in hex, the key in `decision_versions`)
/// and the JSON.
#[derive(Clone)]
struct VersionSet {
    id: Arc<str>,
    json: Arc<str>,
}

impl VersionSet {
    fn of<'a>(versions: impl Iterator<Item = (&'a str, i64)>) -> Result<VersionSet, StoreError> {
        let json = versions_json(versions)?;
        Ok(VersionSet {
            id: Arc::from(hex(&Sha256::digest(json.as_bytes()))),
            json: Arc::from(json),
        })
    }
}

/// The version sets of the rulesets the writer has seen lately, so that a ruleset's versions are
/// serialised and hashed once, not once per decision: every decision made from the same cached
/// ruleset shares its `Arc`. An entry holds its `Arc`, so the pointer it is keyed by cannot be
/// reused by another ruleset while the entry lives; the map is emptied when it grows past a few
/// entries (an invalidation makes a new ruleset, and the old one should not be kept alive for
/// long).
#[derive(Default)]
struct VersionsCache {
    seen: Vec<(Arc<Ruleset>, VersionSet)>,
}

/// How many rulesets' versions the writer keeps (the entry points being evaluated right now).
const VERSIONS_CACHED: usize = 32;

impl VersionsCache {
    fn set(&mut self, versions: &VersionsUsed) -> Result<VersionSet, StoreError> {
        match versions {
            VersionsUsed::Ruleset(ruleset) => {
                if let Some((_, set)) = self.seen.iter().find(|(r, _)| Arc::ptr_eq(r, ruleset)) {
                    return Ok(set.clone());
                }
                let set = VersionSet::of(ruleset.rules())?;
                if self.seen.len() >= VERSIONS_CACHED {
                    self.seen.clear();
                }
                self.seen.push((Arc::clone(ruleset), set.clone()));
                Ok(set)
            }
            VersionsUsed::Listed(list) => {
                VersionSet::of(list.iter().map(|(id, v)| (id.as_str(), *v)))
            }
        }
    }
}

/// Rule id to version as a JSON object, ids sorted (as `GET /v1/decisions/{id}` reads it back).
fn versions_json<'a>(versions: impl Iterator<Item = (&'a str, i64)>) -> Result<String, StoreError> {
    let versions: BTreeMap<&str, i64> = versions.collect();
    serde_json::to_string(&versions)
        .map_err(|e| StoreError::Internal(format!("serialising versions: {e}")))
}

/// Stores `set` unless it is stored, and moves its `last_used` up to `at`.
fn upsert_version_set_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "INSERT INTO decision_versions (id, versions, last_used) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET last_used = max(last_used, excluded.last_used)"
        }
        Backend::Postgres => {
            "INSERT INTO decision_versions (id, versions, last_used) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET \
             last_used = GREATEST(decision_versions.last_used, excluded.last_used)"
        }
    }
}

impl Store {
    /// Writes `decisions` in one transaction, keeping of each context what `policy` says.
    pub async fn append_decisions(
        &self,
        decisions: Vec<NewDecision>,
        policy: ContextPolicy,
    ) -> Result<(), StoreError> {
        self.append_decisions_with(decisions, policy, &mut VersionsCache::default())
            .await
    }

    async fn append_decisions_with(
        &self,
        decisions: Vec<NewDecision>,
        policy: ContextPolicy,
        versions: &mut VersionsCache,
    ) -> Result<(), StoreError> {
        // Everything is serialised before the transaction starts, so the write lock is held
        // only for the inserts.
        let mut rows = Vec::with_capacity(decisions.len());
        // The batch's version sets (mostly one), each with its latest decision time.
        let mut sets: Vec<(VersionSet, DateTime<Utc>)> = Vec::new();
        for decision in decisions {
            let set = versions.set(&decision.versions)?;
            match sets.iter_mut().find(|(s, _)| s.id == set.id) {
                Some((_, last)) => *last = (*last).max(decision.decided_at),
                None => sets.push((set.clone(), decision.decided_at)),
            }
            rows.push(row_args(decision, policy, &set)?);
        }
        let backend = self.backend();
        let mut tx = self.pool().begin_write().await?;
        for (set, last_used) in sets {
            tx.conn()
                .execute(
                    upsert_version_set_sql(backend),
                    args![set.id.to_string(), set.json.to_string(), last_used],
                )
                .await
                .map_err(|e| db_error("writing the decision log", e))?;
        }
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Vec<Arg>> = rows.by_ref().take(ROWS_PER_INSERT).collect();
            tx.conn()
                .execute(
                    &insert_sql(backend, chunk.len()),
                    chunk.into_iter().flatten().collect(),
                )
                .await
                .map_err(|e| db_error("writing the decision log", e))?;
        }
        tx.commit().await
    }

    /// Logged decision `id` of `tenant` ([`StoreError::DecisionNotFound`] if there is none).
    pub async fn decision(&self, tenant: &str, id: &str) -> Result<Decision, StoreError> {
        let mut held = self.pool().acquire().await?;
        let row: Option<DecisionRow> = held
            .conn()
            .fetch_optional(
                &format!(
                    "SELECT {DECISION_COLUMNS} FROM {DECISIONS} WHERE d.tenant = $1 AND d.id = $2"
                ),
                args![tenant, id],
            )
            .await
            .map_err(|e| db_error("reading the decision log", e))?;
        match row {
            Some(row) => row.into_decision(),
            None => Err(StoreError::DecisionNotFound {
                tenant: tenant.to_owned(),
                id: id.to_owned(),
            }),
        }
    }

    /// Logged decisions of `tenant` matching `query`, oldest first.
    pub async fn list_decisions(
        &self,
        tenant: &str,
        query: &DecisionQuery,
    ) -> Result<Vec<Decision>, StoreError> {
        let mut sql = format!("SELECT {DECISION_COLUMNS} FROM {DECISIONS} WHERE d.tenant = $1");
        let mut values = args![tenant];
        if let Some(ep) = &query.entry_point {
            values.push(Arg::from(ep.clone()));
            sql.push_str(&format!(" AND d.entry_point = ${}", values.len()));
        }
        if let Some(since) = query.since {
            values.push(Arg::from(since));
            sql.push_str(&format!(" AND d.decided_at >= ${}", values.len()));
        }
        if let Some(until) = query.until {
            values.push(Arg::from(until));
            sql.push_str(&format!(" AND d.decided_at < ${}", values.len()));
        }
        if let Some((at, id)) = &query.after {
            values.push(Arg::from(*at));
            let at = values.len();
            values.push(Arg::from(id.clone()));
            let id = values.len();
            sql.push_str(&format!(
                " AND (d.decided_at > ${at} OR (d.decided_at = ${at} AND d.id > ${id}))"
            ));
        }
        values.push(Arg::from(i64::from(query.limit)));
        sql.push_str(&format!(
            " ORDER BY d.decided_at, d.id LIMIT ${}",
            values.len()
        ));
        let mut held = self.pool().acquire().await?;
        let rows: Vec<DecisionRow> = held
            .conn()
            .fetch_all(&sql, values)
            .await
            .map_err(|e| db_error("reading the decision log", e))?;
        rows.into_iter().map(DecisionRow::into_decision).collect()
    }

    /// Removes decisions made before `before`, and the version sets no later decision uses;
    /// returns how many decisions.
    pub async fn prune_decisions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let failed = |e| db_error("pruning the decision log", e);
        let mut tx = self.pool().begin_write().await?;
        let removed = tx
            .conn()
            .execute("DELETE FROM decisions WHERE decided_at < $1", args![before])
            .await
            .map_err(failed)?;
        tx.conn()
            .execute(
                "DELETE FROM decision_versions WHERE last_used < $1",
                args![before],
            )
            .await
            .map_err(failed)?;
        tx.commit().await?;
        Ok(removed)
    }
}

/// The decisions with their version sets (`d` and `v`). A left join, so that a decision whose set
/// is missing reads as corrupt rather than as absent.
const DECISIONS: &str = "decisions d LEFT JOIN decision_versions v ON v.id = d.versions_id";

const DECISION_COLUMNS: &str = "d.id, d.tenant, d.kind, d.entry_point, d.decided_at, \
     v.versions, d.context, d.context_sha256, d.answer";

#[derive(sqlx::FromRow)]
struct DecisionRow {
    id: String,
    tenant: String,
    kind: String,
    entry_point: String,
    decided_at: DateTime<Utc>,
    versions: Option<String>,
    context: Option<String>,
    context_sha256: String,
    answer: String,
}

impl DecisionRow {
    fn into_decision(self) -> Result<Decision, StoreError> {
        let corrupt = |what: &str| {
            tracing::error!(decision = %self.id, "logged decision has a bad {what}");
            StoreError::Internal(format!("logged decision `{}` has a bad {what}", self.id))
        };
        let kind = DecisionKind::parse(&self.kind).ok_or_else(|| corrupt("kind"))?;
        let versions = self
            .versions
            .as_deref()
            .and_then(|v| serde_json::from_str(v).ok())
            .ok_or_else(|| corrupt("versions"))?;
        let context = match &self.context {
            Some(text) => Some(serde_json::from_str(text).map_err(|_| corrupt("context"))?),
            None => None,
        };
        let answer = serde_json::from_str(&self.answer).map_err(|_| corrupt("answer"))?;
        Ok(Decision {
            decision_id: self.id,
            tenant: self.tenant,
            kind,
            entry_point: self.entry_point,
            decided_at: self.decided_at,
            versions,
            context,
            context_sha256: self.context_sha256,
            answer,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The SHA-256 of the context as JSON with every object's keys sorted, so that the same context
/// hashes the same whatever order its keys were written in (objects keep their written order
/// otherwise). The sorted JSON is fed to the hasher as it is written, never built as a string.
fn canonical_sha256(value: &Value) -> [u8; 32] {
    let mut hasher = Sha256::new();
    write_canonical(&mut HashWriter(&mut hasher), value);
    hasher.finalize().into()
}

/// An `io::Write` into a hasher, so serde_json can write into it.
struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `value` as compact JSON with every object's keys sorted: byte for byte what
/// serde_json writes for the same value rebuilt with sorted keys. Scalars and keys are written
/// by serde_json itself, so numbers and escapes are the same.
fn write_canonical(out: &mut HashWriter<'_>, value: &Value) {
    use std::io::Write as _;
    // Writing into a hasher cannot fail, nor can serialising a `Value` or a `str`.
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let _ = out.write_all(b"{");
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    let _ = out.write_all(b",");
                }
                let _ = serde_json::to_writer(&mut *out, key.as_str());
                let _ = out.write_all(b":");
                write_canonical(out, item);
            }
            let _ = out.write_all(b"}");
        }
        Value::Array(items) => {
            let _ = out.write_all(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    let _ = out.write_all(b",");
                }
                write_canonical(out, item);
            }
            let _ = out.write_all(b"]");
        }
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

/// `INSERT INTO decisions ... VALUES (...), ...` for `rows` rows of nine values.
///
/// On SQLite the statement is `INSERT OR FAIL` with anonymous `?` parameters, for two reasons
/// that together halved the SQLite thread's time in the load benchmark:
/// - A multi-row insert whose constraints would abort the statement makes SQLite keep a
///   statement journal (a copy of every page it touches, spilled to a temporary file that is
///   created and deleted per statement), to undo that statement alone. `OR FAIL` keeps the rows
///   inserted before a failure instead, which costs nothing here: any error abandons the whole
///   transaction, so nothing of the batch is committed either way.
/// - sqlx finds each parameter's position by its name, and SQLite finds a name by scanning the
///   statement's list of names, which is quadratic in their number; anonymous parameters have no
///   names to scan.
fn insert_sql(backend: Backend, rows: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(120 + rows * 60);
    sql.push_str(match backend {
        Backend::Sqlite => "INSERT OR FAIL INTO decisions",
        Backend::Postgres => "INSERT INTO decisions",
    });
    sql.push_str(
        " (id, tenant, kind, entry_point, decided_at, versions_id, \
         context, context_sha256, answer) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for k in 1..=9 {
            if k > 1 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    let _ = write!(sql, "${}", i * 9 + k);
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// One decision's nine values, in the order of [`insert_sql`]'s columns. Takes the decision by
/// value so that its strings and answer move into the row instead of being copied.
fn row_args(
    decision: NewDecision,
    policy: ContextPolicy,
    versions: &VersionSet,
) -> Result<Vec<Arg>, StoreError> {
    let sha = hex(&canonical_sha256(&decision.context));
    let context = match policy {
        ContextPolicy::Full => Some(
            serde_json::to_string(&decision.context)
                .map_err(|e| StoreError::Internal(format!("serialising a context: {e}")))?,
        ),
        ContextPolicy::Sha256 => None,
    };
    let answer = String::from_utf8(decision.answer)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    Ok(args![
        decision.id,
        decision.tenant,
        decision.kind.as_str(),
        decision.entry_point,
        decision.decided_at,
        versions.id.to_string(),
        context,
        sha,
        answer,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The hash as it was first computed: the sorted context built as a `Value`, then written.
    fn sorted_then_written(value: &Value) -> [u8; 32] {
        fn sorted(value: &Value) -> Value {
            match value {
                Value::Object(map) => {
                    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                    Value::Object(
                        entries
                            .into_iter()
                            .map(|(k, v)| (k.clone(), sorted(v)))
                            .collect(),
                    )
                }
                Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
                other => other.clone(),
            }
        }
        Sha256::digest(sorted(value).to_string().as_bytes()).into()
    }

    #[test]
    fn the_streamed_context_hash_is_the_hash_of_the_sorted_json() {
        let contexts = [
            json!({}),
            json!({"z": 1, "a": [3, {"y": null, "b": true}], "m": {"q": "x\"\n\u{e9}", "c": -1.5e300}}),
            json!({"country": "FR", "total": 260, "customer": {"tier": "gold", "since": 2019}}),
            json!({"big": 18446744073709551615u64, "neg": -9223372036854775808i64, "f": 0.1}),
        ];
        for context in &contexts {
            assert_eq!(
                canonical_sha256(context),
                sorted_then_written(context),
                "{context}"
            );
        }
        assert_eq!(
            canonical_sha256(&json!({"a": 1, "b": {"c": 2, "d": 3}})),
            canonical_sha256(&json!({"b": {"d": 3, "c": 2}, "a": 1}))
        );
    }
}
