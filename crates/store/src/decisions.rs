//! The decision log: every evaluation answer appended to a table, written off the request path.
//!
//! A request hands its decision to [`DecisionLog::record`], borrowed, which writes its text at
//! once into the pending batch of its entry point, in its thread's shard of pending decisions
//! (no I/O; a shard per core, so each of the runtime's worker threads has a lock of its own,
//! shared only with the writer). A background task takes every shard's pending batches each
//! [`DecisionLogConfig::gather`] (sooner when a shard fills up), compresses them and writes them
//! in one transaction with multi-row inserts. So the database sees a few large writes instead of
//! one per request. When a shard holds its share of [`DecisionLogConfig::queue`] (the database
//! cannot keep up) a decision is dropped and counted, rather than letting memory grow or slowing
//! evaluation down: the log is an audit aid, and [`DecisionLogStats::dropped`] says when it is
//! incomplete.
//!
//! Why the text is written by the request rather than by the writer: handed over whole (its id,
//! tenant and entry point copied, its answer and context shared), a decision cost the request
//! path four allocations and a queue push, and the writer a pass over memory gone cold 20 ms
//! later, all of it freed on another thread than the one that allocated it. Under wrk, with a
//! 50-rule entry point, the log cost the server 3.6–3.9 µs of CPU per decision, 1.5 µs of it
//! the handing over alone (measured with a writer that dropped what it took); written by the
//! request, the whole log costs 1–3 µs.
//!
//! The same task prunes decisions older than the retention, once at start and then every
//! [`DecisionLogConfig::prune_every`].
//!
//! The decisions are stored a batch to a row (`decision_batches`): a shard's pending decisions
//! are grouped by tenant and entry point, and each group is stored as one JSON array compressed
//! with zstd, spanning at most ten seconds ([`BATCH_SPAN_MS`]). One row per decision cost SQLite a
//! statement step, a table insert and three index inserts for every evaluation; a row per batch
//! pays them once for hundreds. What then cost most was the answers' bytes (about 1.6 KB each
//! for 13 matched rules), written to SQLite's WAL and again at checkpoint: with answers cut to
//! `{}`, the log's cost in throughput fell from about 25% to within the noise. The answers of
//! one entry point are much alike, so zstd at its fastest level ([`ZSTD_LEVEL`]) makes a batch
//! about a tenth of its size for less CPU than the bytes it saves. A decision is read back by
//! its id or time from the few batches whose range holds it: ids are UUIDv7 (time first), and a
//! batch spans a bounded time, so the batches to read start at most a span before.
//!
//! The versions a decision was made with (every rule of its entry point, about 1 KB of JSON for
//! 50 rules) are the same for every decision made from one cached ruleset, so they are stored
//! once, in `decision_versions`, keyed by the SHA-256 of their JSON, and each decision names its
//! set: writing the bytes of each row is most of what the log costs. A set records the latest
//! decision time that used it (`last_used`), so pruning removes a set together with the last
//! decisions that used it: every decision naming a set was made at or before the set's
//! `last_used`, so a set older than the cut-off is named only by decisions older than it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rulebook_rules::Ruleset;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
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
}

/// The versions of the rules a decision was made with.
#[derive(Debug, Clone)]
pub enum VersionsUsed {
    /// Every rule of this compiled ruleset (matched or not), read off the request path.
    Ruleset(Arc<Ruleset>),
    /// These rule ids and versions.
    Listed(Vec<(String, i64)>),
}

/// A decision as the request path hands it to [`DecisionLog::record`], borrowed: its text is
/// written before `record` returns.
#[derive(Debug, Clone)]
pub struct NewDecision<'a> {
    /// The decision id the answer carried: unique, and a UUIDv7 in lowercase hyphenated text
    /// (as the server makes them) for the id's time to bound the search for it.
    pub id: &'a str,
    /// The tenant.
    pub tenant: &'a str,
    /// Evaluation or score.
    pub kind: DecisionKind,
    /// The entry point evaluated (or the scorecard scored).
    pub entry_point: &'a str,
    /// When the decision was made (to the microsecond, as the store keeps times).
    pub decided_at: DateTime<Utc>,
    /// The rule versions it was made with.
    pub versions: &'a VersionsUsed,
    /// The input as sent.
    pub context: &'a Value,
    /// The answer's JSON, exactly as sent to the caller (stored as it is, so it must be JSON).
    pub answer: &'a [u8],
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
    /// The most decisions waiting to be taken by the writer, split evenly among the shards
    /// (one per core); beyond its shard's share a decision is dropped and counted. (The writer
    /// may hold as many again while it writes what it took.)
    pub queue: usize,
    /// How many decisions pending in one shard wake the writer before
    /// [`DecisionLogConfig::gather`] has passed (at most half the shard's share of `queue`).
    pub batch: usize,
    /// How often decisions older than the retention are pruned.
    pub prune_every: Duration,
    /// How often the writer takes the pending decisions and writes them in one transaction
    /// (sooner when a shard holds `batch` of them or a flush is asked for). A transaction costs
    /// the database far more than a decision in it, so this keeps the log from paying one per
    /// request; it is also how long a decision may take to become readable.
    pub gather: Duration,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        DecisionLogConfig {
            retention: Duration::from_secs(30 * 24 * 3600),
            context: ContextPolicy::Full,
            queue: 50_000,
            batch: 500,
            prune_every: Duration::from_secs(3600),
            gather: Duration::from_millis(20),
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
    /// Answered once every decision recorded before it is written.
    Flush(oneshot::Sender<()>),
    /// Like `Flush`, then the writer ends.
    Stop(oneshot::Sender<()>),
}

/// The running decision log: a handle on the pending decisions and the writer task. Cheap to
/// clone. Once every handle is dropped, the writer writes what is pending and ends.
#[derive(Clone)]
pub struct DecisionLog {
    inner: Arc<LogInner>,
    /// Flushes and stops for the writer, which ends when every sender is gone: held by the
    /// handles only.
    sender: mpsc::Sender<Message>,
}

struct LogInner {
    /// The pending decisions, a shard per request thread ([`shard_of_this_thread`]). A mutex
    /// each: a request thread takes its own, and the writer takes each once per transaction.
    shards: Box<[Mutex<Pending>]>,
    /// The most decisions one shard holds (its part of [`DecisionLogConfig::queue`]).
    shard_queue: usize,
    /// How many decisions in one shard wake the writer early (`full`).
    wake_at: usize,
    /// Wakes the writer when a shard holds `wake_at` decisions.
    full: tokio::sync::Notify,
    /// Set by the writer when it is asked to stop, before it takes the shards for the last
    /// time: nothing more is taken.
    stopped: std::sync::atomic::AtomicBool,
    counters: Counters,
    config: DecisionLogConfig,
    /// The writer task, taken by [`DecisionLog::stop`]. A mutex: touched once, at stop.
    task: Mutex<Option<JoinHandle<()>>>,
}

/// The shard of pending decisions of the calling thread, among `shards`: threads take numbers in
/// turn as they first record, so the runtime's worker threads each have their own.
fn shard_of_this_thread(shards: usize) -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static NUMBER: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NUMBER.with(|n| *n) % shards
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
        let (sender, receiver) = mpsc::channel(16);
        // One per core: tokio runs a worker thread per core by default.
        let shards = std::thread::available_parallelism().map_or(4, std::num::NonZero::get);
        let shard_queue = config.queue.div_ceil(shards).max(1);
        let inner = Arc::new(LogInner {
            shards: (0..shards)
                .map(|_| Mutex::new(Pending::default()))
                .collect(),
            shard_queue,
            wake_at: config.batch.min(shard_queue / 2).max(1),
            full: tokio::sync::Notify::new(),
            stopped: std::sync::atomic::AtomicBool::new(false),
            counters: Counters::default(),
            config,
            task: Mutex::new(None),
        });
        let task = tokio::spawn(write_loop(store, Arc::clone(&inner), receiver));
        *inner.task.lock() = Some(task);
        DecisionLog { inner, sender }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &DecisionLogConfig {
        &self.inner.config
    }

    /// Writes `decision`'s text into the pending decisions; never waits on the database.
    /// Returns `false` (and counts it in [`DecisionLogStats::dropped`]) when its thread's shard
    /// holds its share of [`DecisionLogConfig::queue`] or the log has stopped, and counts it in
    /// [`DecisionLogStats::failed`] if its context cannot be written as JSON.
    pub fn record(&self, decision: NewDecision<'_>) -> bool {
        let inner = &*self.inner;
        let dropped = || {
            inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
            false
        };
        let shard = &inner.shards[shard_of_this_thread(inner.shards.len())];
        let mut pending = shard.lock();
        // Read under the shard's lock: the writer sets it before taking the shards for the last
        // time, so a decision either is taken then or sees it.
        if inner.stopped.load(Ordering::Acquire) || pending.count >= inner.shard_queue {
            return dropped();
        }
        if let Err(e) = pending.add(&decision, inner.config.context) {
            drop(pending);
            tracing::warn!(error = %e, decision = decision.id, "a decision could not be logged");
            inner.counters.failed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let full = pending.count == inner.wake_at;
        drop(pending);
        if full {
            inner.full.notify_one();
        }
        true
    }

    /// Waits until every decision recorded before this call has been written (or has failed).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Writes what is pending and stops the writer. Decisions recorded afterwards are dropped.
    pub async fn stop(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Stop(done)).await.is_ok() {
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

async fn write_loop(store: Store, log: Arc<LogInner>, mut receiver: mpsc::Receiver<Message>) {
    let config = &log.config;
    let mut prune = tokio::time::interval(config.prune_every.max(Duration::from_millis(10)));
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut gather = tokio::time::interval(config.gather.max(Duration::from_millis(1)));
    gather.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state = WriterState::default();
    let mut spare = Vec::new();
    loop {
        // What to answer once written, and whether to end then.
        let (done, stop) = tokio::select! {
            _ = gather.tick() => (None, false),
            () = log.full.notified() => (None, false),
            message = receiver.recv() => match message {
                Some(Message::Flush(done)) => (Some(done), false),
                Some(Message::Stop(done)) => (Some(done), true),
                // Every handle is gone: nothing more can be recorded.
                None => (None, true),
            },
            _ = prune.tick() => {
                let cutoff = chrono::Duration::from_std(config.retention)
                    .ok()
                    .and_then(|keep| Utc::now().checked_sub_signed(keep));
                if let Some(cutoff) = cutoff {
                    match store.prune_decisions(cutoff).await {
                        Ok(n) => log.counters.pruned.fetch_add(n, Ordering::Relaxed),
                        Err(e) => {
                            tracing::warn!(error = %e, "pruning the decision log failed");
                            0
                        }
                    };
                }
                continue;
            }
        };
        if stop {
            log.stopped.store(true, Ordering::Release);
        }
        let mut taken = Pending::default();
        for shard in log.shards.iter() {
            taken.take_from(&mut shard.lock(), &mut spare);
        }
        let n = taken.count as u64;
        if n > 0 {
            match store.write_pending(taken, &mut state).await {
                Ok(buffers) => {
                    spare = buffers;
                    spare.retain(|buffer| buffer.capacity() <= SPARE_BUFFER_BYTES);
                    spare.truncate(log.shards.len() * SPARE_BUFFERS);
                    log.counters.written.fetch_add(n, Ordering::Relaxed)
                }
                Err(e) => {
                    tracing::warn!(error = %e, decisions = n, "decisions could not be logged");
                    log.counters.failed.fetch_add(n, Ordering::Relaxed)
                }
            };
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
        if stop {
            return;
        }
    }
}

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

/// What the writer keeps between transactions: its zstd context (made once: setting up a
/// context's tables costs more than compressing a few decisions).
#[derive(Default)]
struct WriterState {
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

impl WriterState {
    /// `json` as one zstd frame.
    fn compress(&mut self, json: &[u8]) -> Result<Vec<u8>, StoreError> {
        let failed =
            |e: std::io::Error| StoreError::Internal(format!("compressing decisions: {e}"));
        let zstd = match &mut self.zstd {
            Some(zstd) => zstd,
            None => self
                .zstd
                .insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(failed)?),
        };
        zstd.compress(json).map_err(failed)
    }
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

/// The longest time one stored batch spans, by its decisions' times and by the times in their
/// UUIDv7 ids: a decision is looked for only among the batches that start at most this long
/// before it, so reads by id and by time stay bounded however long the log grows.
const BATCH_SPAN_MS: i64 = 10_000;

/// zstd's level for the batches: its fastest standard level (higher levels compress the
/// answers little better for several times the CPU).
const ZSTD_LEVEL: i32 = 1;

/// Batches per insert statement: 8 values each (SQLite takes 32,766 parameters in one
/// statement, PostgreSQL 65,535).
const BATCHES_PER_INSERT: usize = 100;

/// Batches read at a time when listing, before checking whether the page is complete.
const BATCHES_PER_READ: i64 = 8;

/// The decisions of one tenant and entry point being written together as one row of
/// `decision_batches`: a JSON array of `{"id", "kind", "decided_at", "versions_id", "context",
/// "context_sha256", "answer"}` (what [`StoredDecision`] reads), `context_sha256` only when the
/// context is not kept (a kept context's hash is computed when it is read).
struct Batch {
    tenant: String,
    entry_point: String,
    /// The milliseconds of its ids' UUIDv7 times, when every id is a UUIDv7 (decision ids
    /// are); a batch holds only UUIDv7 ids or only others.
    v7_millis: Option<(u64, u64)>,
    first_id: String,
    last_id: String,
    first_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
    count: i64,
    json: Vec<u8>,
}

impl Batch {
    /// An empty batch of `tenant` and `entry_point`, to begin with decision `id` made at `at`,
    /// its text to be written into `json` (empty).
    fn new(
        tenant: &str,
        entry_point: &str,
        id: &str,
        at: DateTime<Utc>,
        v7: Option<u64>,
        json: Vec<u8>,
    ) -> Batch {
        Batch {
            tenant: tenant.to_owned(),
            entry_point: entry_point.to_owned(),
            v7_millis: v7.map(|ms| (ms, ms)),
            first_id: id.to_owned(),
            last_id: id.to_owned(),
            first_at: at,
            last_at: at,
            count: 0,
            json,
        }
    }

    /// Whether `decision` (whose id's UUIDv7 time is `v7`) may join this batch: same tenant,
    /// entry point and kind of id, and the batch still spans at most [`BATCH_SPAN_MS`].
    fn takes(&self, decision: &NewDecision<'_>, v7: Option<u64>) -> bool {
        let first = self.first_at.min(decision.decided_at);
        let last = self.last_at.max(decision.decided_at);
        let ids_fit = match (self.v7_millis, v7) {
            (Some((low, high)), Some(ms)) => high.max(ms) - low.min(ms) <= BATCH_SPAN_MS as u64,
            (None, None) => true,
            _ => false,
        };
        ids_fit
            && last - first <= chrono::Duration::milliseconds(BATCH_SPAN_MS)
            && self.tenant == decision.tenant
            && self.entry_point == decision.entry_point
    }

    /// Counts decision `id`, made at `at`, in (its text is written into `json` afterwards).
    fn push(&mut self, id: &str, at: DateTime<Utc>, v7: Option<u64>) {
        if let (Some((low, high)), Some(ms)) = (&mut self.v7_millis, v7) {
            (*low, *high) = ((*low).min(ms), (*high).max(ms));
        }
        if id < self.first_id.as_str() {
            id.clone_into(&mut self.first_id);
        }
        if id > self.last_id.as_str() {
            id.clone_into(&mut self.last_id);
        }
        self.first_at = self.first_at.min(at);
        self.last_at = self.last_at.max(at);
        self.count += 1;
    }

    /// The row's eight values, in the order of [`insert_sql`]'s columns, and its text's buffer
    /// emptied, for another batch.
    fn into_args(mut self, state: &mut WriterState) -> Result<(Vec<Arg>, Vec<u8>), StoreError> {
        self.json.push(b']');
        let compressed = state.compress(&self.json)?;
        let mut json = std::mem::take(&mut self.json);
        json.clear();
        Ok((
            args![
                self.tenant,
                self.entry_point,
                self.first_id,
                self.last_id,
                self.first_at,
                self.last_at,
                self.count,
                compressed,
            ],
            json,
        ))
    }
}

/// Decisions written and not yet stored: their batches, by tenant and entry point, and the
/// version sets they name.
#[derive(Default)]
struct Pending {
    batches: Vec<Batch>,
    /// The open batch of each tenant, entry point and kind of id, by their hash (a batch found
    /// under a colliding hash is not taken: a new one is opened instead).
    open: HashMap<u64, usize>,
    /// The batch the last decision went to, tried first: most decisions in a row are of one
    /// entry point.
    last: Option<usize>,
    /// The version sets used (mostly one), each with its latest decision time.
    sets: Vec<(VersionSet, DateTime<Utc>)>,
    /// Version sets already made, kept when the rest is taken.
    versions: VersionsCache,
    /// The decisions in `batches`.
    count: usize,
    /// Emptied buffers of batches written, for new batches' text: reused, a buffer is already
    /// its batch's size (no copies as it grows) and its memory already mapped.
    spare: Vec<Vec<u8>>,
}

/// The most spare buffers a shard keeps ([`Pending::spare`]).
const SPARE_BUFFERS: usize = 4;

/// The largest buffer kept spare, in bytes: a batch's text under heavy traffic (20 ms of
/// decisions of about 2 KB at some 35,000 a second per thread), not one grown while the database
/// was stalled.
const SPARE_BUFFER_BYTES: usize = 8 << 20;

impl Pending {
    /// Writes `decision`'s text into its batch, keeping of its context what `policy` says; on
    /// an error nothing of it is kept.
    fn add(&mut self, decision: &NewDecision<'_>, policy: ContextPolicy) -> Result<(), StoreError> {
        let set = self.versions.set(decision.versions)?;
        let v7 = v7_millis(decision.id);
        let key = || {
            std::hash::BuildHasher::hash_one(
                &OPEN_KEYS,
                (decision.tenant, decision.entry_point, v7.is_some()),
            )
        };
        let takes = |at: &usize| self.batches[*at].takes(decision, v7);
        let found =
            (self.last.filter(takes)).or_else(|| self.open.get(&key()).copied().filter(takes));
        let at = match found {
            Some(at) => at,
            None => {
                let json = self.spare.pop().unwrap_or_default();
                self.batches.push(Batch::new(
                    decision.tenant,
                    decision.entry_point,
                    decision.id,
                    decision.decided_at,
                    v7,
                    json,
                ));
                self.open.insert(key(), self.batches.len() - 1);
                self.batches.len() - 1
            }
        };
        self.last = Some(at);
        let batch = &mut self.batches[at];
        let before = batch.json.len();
        batch.json.push(if before == 0 { b'[' } else { b',' });
        if let Err(e) = write_decision(&mut batch.json, decision, policy, &set) {
            batch.json.truncate(before);
            if batch.count == 0 {
                // Opened for this decision: closed again, so that no empty batch is stored.
                if let Some(empty) = self.batches.pop() {
                    self.spare.push(empty.json);
                }
                self.open.retain(|_, open| *open != at);
                self.last = None;
            }
            return Err(e);
        }
        batch.push(decision.id, decision.decided_at, v7);
        self.note_use(set, decision.decided_at);
        self.count += 1;
        Ok(())
    }

    /// Moves `from`'s batches and sets into this one, leaving `from` empty but for its version
    /// sets made, and gives it spare buffers from `spare`.
    fn take_from(&mut self, from: &mut Pending, spare: &mut Vec<Vec<u8>>) {
        while from.spare.len() < SPARE_BUFFERS {
            match spare.pop() {
                Some(buffer) => from.spare.push(buffer),
                None => break,
            }
        }
        self.batches.append(&mut from.batches);
        from.open.clear();
        from.last = None;
        for (set, last) in from.sets.drain(..) {
            self.note_use(set, last);
        }
        self.count += std::mem::take(&mut from.count);
    }

    /// Notes that `set` was used by a decision made at `at`: its latest use is kept.
    fn note_use(&mut self, set: VersionSet, at: DateTime<Utc>) {
        match self.sets.iter_mut().find(|(s, _)| s.id == set.id) {
            Some((_, last)) => *last = (*last).max(at),
            None => self.sets.push((set, at)),
        }
    }
}

/// The hasher of [`Pending::open`]'s keys: fixed keys, since the keys are checked on use.
static OPEN_KEYS: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher> =
    std::hash::BuildHasherDefault::new();

/// Writes `decision` as its batch stores it, keeping of its context what `policy` says. The
/// answer's bytes are copied as they are: they are the JSON sent to the caller.
fn write_decision(
    out: &mut Vec<u8>,
    decision: &NewDecision<'_>,
    policy: ContextPolicy,
    versions: &VersionSet,
) -> Result<(), StoreError> {
    let failed = |e: serde_json::Error| StoreError::Internal(format!("writing a decision: {e}"));
    debug_assert!(
        serde_json::from_slice::<serde::de::IgnoredAny>(decision.answer).is_ok(),
        "a decision's answer is JSON"
    );
    out.extend_from_slice(b"{\"id\":");
    serde_json::to_writer(&mut *out, decision.id).map_err(failed)?;
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(decision.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"decided_at\":\"");
    rulebook_rules::write_rfc3339(out, &decision.decided_at);
    out.extend_from_slice(b"\",\"versions_id\":\"");
    out.extend_from_slice(versions.id.as_bytes());
    out.extend_from_slice(b"\",\"context\":");
    match policy {
        ContextPolicy::Full => {
            serde_json::to_writer(&mut *out, decision.context).map_err(failed)?
        }
        ContextPolicy::Sha256 => {
            out.extend_from_slice(b"null,\"context_sha256\":\"");
            out.extend_from_slice(hex(&canonical_sha256(decision.context)).as_bytes());
            out.push(b'"');
        }
    }
    out.extend_from_slice(b",\"answer\":");
    out.extend_from_slice(decision.answer);
    out.push(b'}');
    Ok(())
}

/// One decision of a stored batch, as written by [`write_decision`], borrowing from the batch's
/// text.
#[derive(Deserialize)]
struct StoredDecision<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    kind: DecisionKind,
    decided_at: DateTime<Utc>,
    #[serde(borrow)]
    versions_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    context: Option<&'a RawValue>,
    /// Written only when the context is not (and by the log before it was computed on reading).
    #[serde(borrow, default)]
    context_sha256: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    answer: &'a RawValue,
}

/// A logged decision read from its batch, its `versions` empty until its version set is looked
/// up ([`Store::with_versions`]).
struct Found {
    versions_id: String,
    decision: Decision,
}

/// A stored batch's JSON: decompressed, or as it is when it was stored uncompressed (the
/// decisions migrated from the log's earlier table, whose JSON starts with `[`; a zstd frame
/// starts with its magic number).
fn batch_json(stored: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, StoreError> {
    if stored.first() == Some(&b'[') {
        return Ok(std::borrow::Cow::Borrowed(stored));
    }
    zstd::stream::decode_all(stored)
        .map(std::borrow::Cow::Owned)
        .map_err(|e| {
            tracing::error!(error = %e, "a stored decision batch does not decompress");
            StoreError::Internal(format!("a stored decision batch does not decompress: {e}"))
        })
}

/// A stored batch's decisions (its [`batch_json`]), each as its text and as read
/// ([`StoredDecision`]).
fn read_batch(json: &[u8]) -> Result<Vec<(&RawValue, StoredDecision<'_>)>, StoreError> {
    let corrupt = |e: serde_json::Error| {
        tracing::error!(error = %e, "a stored decision batch does not read");
        StoreError::Internal(format!("a stored decision batch does not read: {e}"))
    };
    let items: Vec<&RawValue> = serde_json::from_slice(json).map_err(corrupt)?;
    items
        .into_iter()
        .map(|item| Ok((item, serde_json::from_str(item.get()).map_err(corrupt)?)))
        .collect()
}

impl Found {
    fn new(
        tenant: &str,
        entry_point: &str,
        stored: &StoredDecision<'_>,
    ) -> Result<Found, StoreError> {
        let corrupt = |what: &str| {
            tracing::error!(decision = %stored.id, "logged decision has a bad {what}");
            StoreError::Internal(format!("logged decision `{}` has a bad {what}", stored.id))
        };
        let context: Option<Value> = match stored.context {
            Some(raw) => Some(serde_json::from_str(raw.get()).map_err(|_| corrupt("context"))?),
            None => None,
        };
        // Read back exactly as it was written (`float_roundtrip`), a kept context hashes as it
        // did when the decision was made.
        let context_sha256 = match (&stored.context_sha256, &context) {
            (Some(hash), _) => hash.to_string(),
            (None, Some(context)) => hex(&canonical_sha256(context)),
            // A `null` context, kept: it reads back as none.
            (None, None) => hex(&canonical_sha256(&Value::Null)),
        };
        Ok(Found {
            versions_id: stored.versions_id.to_string(),
            decision: Decision {
                decision_id: stored.id.to_string(),
                tenant: tenant.to_owned(),
                kind: stored.kind,
                entry_point: entry_point.to_owned(),
                decided_at: stored.decided_at,
                versions: BTreeMap::new(),
                context,
                context_sha256,
                answer: serde_json::from_str(stored.answer.get()).map_err(|_| corrupt("answer"))?,
            },
        })
    }
}

/// The milliseconds since the epoch of `id`'s time, when `id` is a UUIDv7 as decision ids are
/// written (lowercase, hyphenated: RFC 9562, section 5.7), so that ids sort by it as text.
fn v7_millis(id: &str) -> Option<u64> {
    let bytes: &[u8; 36] = id.as_bytes().try_into().ok()?;
    // One pass: each place is a hyphen or a lowercase hex digit, and the first twelve digits
    // are the time.
    let mut millis = 0;
    for (place, &byte) in bytes.iter().enumerate() {
        let hyphen = matches!(place, 8 | 13 | 18 | 23);
        let digit = match byte {
            b'-' if hyphen => continue,
            b'0'..=b'9' if !hyphen => byte - b'0',
            b'a'..=b'f' if !hyphen => byte - b'a' + 10,
            _ => return None,
        };
        if place < 13 {
            millis = millis << 4 | u64::from(digit);
        }
    }
    (bytes[14] == b'7' && matches!(bytes[19], b'8' | b'9' | b'a' | b'b')).then_some(millis)
}

/// The text every UUIDv7 id of time `millis` or later sorts at or after.
fn v7_floor(millis: u64) -> String {
    format!("{:08x}-{:04x}", millis >> 16, millis & 0xffff)
}

/// `at` less a batch's longest span: no batch holding a decision at or after `at` starts before.
fn span_before(at: DateTime<Utc>) -> DateTime<Utc> {
    at.checked_sub_signed(chrono::Duration::milliseconds(BATCH_SPAN_MS))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[derive(sqlx::FromRow)]
struct BatchRow {
    tenant: String,
    entry_point: String,
    first_at: DateTime<Utc>,
    first_id: String,
    decisions: Vec<u8>,
}

#[derive(sqlx::FromRow)]
struct VersionsRow {
    versions: String,
}

#[derive(sqlx::FromRow)]
struct CountRow {
    count: i64,
}

const BATCH_COLUMNS: &str = "tenant, entry_point, first_at, first_id, decisions";

impl Store {
    /// Writes `decisions` in one transaction, keeping of each context what `policy` says.
    pub async fn append_decisions(
        &self,
        decisions: &[NewDecision<'_>],
        policy: ContextPolicy,
    ) -> Result<(), StoreError> {
        let mut pending = Pending::default();
        for decision in decisions {
            pending.add(decision, policy)?;
        }
        self.write_pending(pending, &mut WriterState::default())
            .await
            .map(drop)
    }

    /// Writes `pending` in one transaction: its batches compressed, then its version sets and
    /// batches inserted, so that the write lock is held only for the inserts. Returns the
    /// batches' buffers, emptied.
    async fn write_pending(
        &self,
        pending: Pending,
        state: &mut WriterState,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut rows = Vec::with_capacity(pending.batches.len());
        let mut buffers = Vec::with_capacity(pending.batches.len());
        for batch in pending.batches {
            let (row, buffer) = batch.into_args(state)?;
            rows.push(row);
            buffers.push(buffer);
        }
        let backend = self.backend();
        let failed = |e| db_error("writing the decision log", e);
        let mut tx = self.pool().begin_write().await?;
        for (set, last_used) in pending.sets {
            tx.conn()
                .execute(
                    upsert_version_set_sql(backend),
                    args![set.id.to_string(), set.json.to_string(), last_used],
                )
                .await
                .map_err(failed)?;
        }
        insert_batches(&mut tx, backend, rows).await?;
        tx.commit().await?;
        Ok(buffers)
    }

    /// Logged decision `id` of `tenant` ([`StoreError::DecisionNotFound`] if there is none).
    pub async fn decision(&self, tenant: &str, id: &str) -> Result<Decision, StoreError> {
        let failed = |e| db_error("reading the decision log", e);
        let select = format!(
            "SELECT {BATCH_COLUMNS} FROM decision_batches \
             WHERE tenant = $1 AND first_id <= $2 AND last_id >= $2"
        );
        let (sql, values) = match v7_millis(id) {
            // Only the batches that start at most a span before it.
            Some(millis) => (
                format!("{select} AND first_id >= $3"),
                args![
                    tenant,
                    id,
                    v7_floor(millis.saturating_sub(BATCH_SPAN_MS as u64))
                ],
            ),
            None => (select, args![tenant, id]),
        };
        let mut held = self.pool().acquire().await?;
        let rows: Vec<BatchRow> = held.conn().fetch_all(&sql, values).await.map_err(failed)?;
        drop(held);
        for row in &rows {
            for (_, stored) in read_batch(&batch_json(&row.decisions)?)? {
                if stored.id == id {
                    let found = Found::new(&row.tenant, &row.entry_point, &stored)?;
                    let mut sets = HashMap::new();
                    return self.with_versions(found, &mut sets).await;
                }
            }
        }
        Err(StoreError::DecisionNotFound {
            tenant: tenant.to_owned(),
            id: id.to_owned(),
        })
    }

    /// Logged decisions of `tenant` matching `query`, oldest first (by time, then id).
    ///
    /// Batches are read in the order they start, a few at a time: once the page's decisions
    /// all come before the start of the next unread batch, no unread decision can come before
    /// them.
    pub async fn list_decisions(
        &self,
        tenant: &str,
        query: &DecisionQuery,
    ) -> Result<Vec<Decision>, StoreError> {
        let failed = |e| db_error("reading the decision log", e);
        let limit = query.limit as usize;
        let lower = match (query.since, &query.after) {
            (Some(since), Some((at, _))) => Some(since.max(*at)),
            (since, after) => since.or(after.as_ref().map(|(at, _)| *at)),
        };
        let wanted = |stored: &StoredDecision<'_>| {
            query.since.is_none_or(|since| stored.decided_at >= since)
                && query.until.is_none_or(|until| stored.decided_at < until)
                && query.after.as_ref().is_none_or(|(at, id)| {
                    (stored.decided_at, stored.id.as_ref()) > (*at, id.as_str())
                })
        };
        let mut found: Vec<Found> = Vec::new();
        let mut read_to: Option<(DateTime<Utc>, String)> = None;
        let mut held = self.pool().acquire().await?;
        loop {
            let mut sql = format!("SELECT {BATCH_COLUMNS} FROM decision_batches WHERE tenant = $1");
            let mut values = args![tenant];
            if let Some(ep) = &query.entry_point {
                values.push(Arg::from(ep.clone()));
                sql.push_str(&format!(" AND entry_point = ${}", values.len()));
            }
            if let Some(lower) = lower {
                values.push(Arg::from(lower));
                let n = values.len();
                values.push(Arg::from(span_before(lower)));
                sql.push_str(&format!(" AND last_at >= ${n} AND first_at >= ${}", n + 1));
            }
            if let Some(until) = query.until {
                values.push(Arg::from(until));
                sql.push_str(&format!(" AND first_at < ${}", values.len()));
            }
            if let Some((at, id)) = &read_to {
                values.push(Arg::from(*at));
                let at = values.len();
                values.push(Arg::from(id.clone()));
                let id = values.len();
                sql.push_str(&format!(
                    " AND (first_at > ${at} OR (first_at = ${at} AND first_id > ${id}))"
                ));
            }
            values.push(Arg::from(BATCHES_PER_READ));
            sql.push_str(&format!(
                " ORDER BY first_at, first_id LIMIT ${}",
                values.len()
            ));
            let rows: Vec<BatchRow> = held.conn().fetch_all(&sql, values).await.map_err(failed)?;
            for row in &rows {
                for (_, stored) in read_batch(&batch_json(&row.decisions)?)? {
                    if wanted(&stored) {
                        found.push(Found::new(&row.tenant, &row.entry_point, &stored)?);
                    }
                }
            }
            let Some(last) = rows.last() else { break };
            if rows.len() < BATCHES_PER_READ as usize {
                break;
            }
            let complete = found
                .iter()
                .filter(|f| f.decision.decided_at < last.first_at)
                .count()
                >= limit;
            if complete {
                break;
            }
            read_to = Some((last.first_at, last.first_id.clone()));
        }
        drop(held);
        found.sort_by(|a, b| {
            let (a, b) = (&a.decision, &b.decision);
            (a.decided_at, &a.decision_id).cmp(&(b.decided_at, &b.decision_id))
        });
        found.truncate(limit);
        let mut sets = HashMap::new();
        let mut decisions = Vec::with_capacity(found.len());
        for f in found {
            decisions.push(self.with_versions(f, &mut sets).await?);
        }
        Ok(decisions)
    }

    /// `found` with its version set, read once per set into `sets`.
    async fn with_versions(
        &self,
        found: Found,
        sets: &mut HashMap<String, BTreeMap<String, i64>>,
    ) -> Result<Decision, StoreError> {
        let Found {
            versions_id,
            mut decision,
        } = found;
        decision.versions = match sets.get(&versions_id) {
            Some(versions) => versions.clone(),
            None => {
                let mut held = self.pool().acquire().await?;
                let row: Option<VersionsRow> = held
                    .conn()
                    .fetch_optional(
                        "SELECT versions FROM decision_versions WHERE id = $1",
                        args![versions_id.clone()],
                    )
                    .await
                    .map_err(|e| db_error("reading the decision log", e))?;
                let versions: BTreeMap<String, i64> = row
                    .and_then(|row| serde_json::from_str(&row.versions).ok())
                    .ok_or_else(|| {
                        tracing::error!(decision = %decision.decision_id, "logged decision has bad versions");
                        StoreError::Internal(format!(
                            "logged decision `{}` has bad versions",
                            decision.decision_id
                        ))
                    })?;
                sets.insert(versions_id, versions.clone());
                versions
            }
        };
        Ok(decision)
    }

    /// Removes decisions made before `before`, and the version sets no later decision uses;
    /// returns how many decisions.
    ///
    /// Batches that end before `before` go whole; the few that straddle it (they start at most
    /// a span before it) are written again with their later decisions only.
    pub async fn prune_decisions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let failed = |e| db_error("pruning the decision log", e);
        let backend = self.backend();
        let mut tx = self.pool().begin_write().await?;
        let whole: CountRow = tx
            .conn()
            .fetch_one(
                "SELECT COALESCE(SUM(count), 0) AS count FROM decision_batches WHERE last_at < $1",
                args![before],
            )
            .await
            .map_err(failed)?;
        tx.conn()
            .execute(
                "DELETE FROM decision_batches WHERE last_at < $1",
                args![before],
            )
            .await
            .map_err(failed)?;
        let straddling: Vec<BatchRow> = tx
            .conn()
            .fetch_all(
                &format!(
                    "SELECT {BATCH_COLUMNS} FROM decision_batches \
                     WHERE first_at < $1 AND last_at >= $1 AND last_at < $2"
                ),
                args![
                    before,
                    before
                        .checked_add_signed(chrono::Duration::milliseconds(BATCH_SPAN_MS + 1))
                        .unwrap_or(DateTime::<Utc>::MAX_UTC)
                ],
            )
            .await
            .map_err(failed)?;
        let mut removed = u64::try_from(whole.count).unwrap_or(0);
        let mut state = WriterState::default();
        let mut kept_rows = Vec::new();
        for row in &straddling {
            let mut kept: Option<Batch> = None;
            let json = batch_json(&row.decisions)?;
            for (text, stored) in read_batch(&json)? {
                if stored.decided_at < before {
                    removed += 1;
                    continue;
                }
                let (id, at) = (stored.id.as_ref(), stored.decided_at);
                let v7 = v7_millis(id);
                let kept = kept.get_or_insert_with(|| {
                    Batch::new(&row.tenant, &row.entry_point, id, at, v7, Vec::new())
                });
                kept.push(id, at, v7);
                kept.json
                    .push(if kept.json.is_empty() { b'[' } else { b',' });
                kept.json.extend_from_slice(text.get().as_bytes());
            }
            tx.conn()
                .execute(
                    "DELETE FROM decision_batches WHERE tenant = $1 AND entry_point = $2 \
                     AND first_id = $3",
                    args![
                        row.tenant.clone(),
                        row.entry_point.clone(),
                        row.first_id.clone()
                    ],
                )
                .await
                .map_err(failed)?;
            if let Some(kept) = kept {
                kept_rows.push(kept.into_args(&mut state)?.0);
            }
        }
        insert_batches(&mut tx, backend, kept_rows).await?;
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

/// Inserts `rows` (each [`Batch::into_args`]) in statements of [`BATCHES_PER_INSERT`].
async fn insert_batches(
    tx: &mut crate::db::Tx,
    backend: Backend,
    rows: Vec<Vec<Arg>>,
) -> Result<(), StoreError> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Arg>> = rows.by_ref().take(BATCHES_PER_INSERT).collect();
        tx.conn()
            .execute(
                &insert_sql(backend, chunk.len()),
                chunk.into_iter().flatten().collect(),
            )
            .await
            .map_err(|e| db_error("writing the decision log", e))?;
    }
    Ok(())
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

/// `INSERT INTO decision_batches ... VALUES (...), ...` for `rows` rows of eight values.
///
/// On SQLite the statement is `INSERT OR FAIL` with anonymous `?` parameters:
/// - A multi-row insert whose constraints would abort the statement makes SQLite keep a
///   statement journal (a copy of every page it touches), to undo that statement alone. `OR
///   FAIL` keeps the rows inserted before a failure instead, which costs nothing here: any error
///   abandons the whole transaction, so nothing of it is committed either way.
/// - sqlx finds each parameter's position by its name, and SQLite finds a name by scanning the
///   statement's list of names, which is quadratic in their number; anonymous parameters have no
///   names to scan.
fn insert_sql(backend: Backend, rows: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(120 + rows * 60);
    sql.push_str(match backend {
        Backend::Sqlite => "INSERT OR FAIL INTO decision_batches",
        Backend::Postgres => "INSERT INTO decision_batches",
    });
    sql.push_str(
        " (tenant, entry_point, first_id, last_id, first_at, last_at, count, decisions) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for k in 1..=8 {
            if k > 1 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    let _ = write!(sql, "${}", i * 8 + k);
                }
            }
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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
    fn a_batch_spans_at_most_its_span_to_the_microsecond() {
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let (versions, context) = (VersionsUsed::Listed(Vec::new()), json!({}));
        let at = |micros: i64| NewDecision {
            id: "d",
            tenant: "t",
            kind: DecisionKind::Evaluate,
            entry_point: "e",
            decided_at: t0 + chrono::Duration::microseconds(micros),
            versions: &versions,
            context: &context,
            answer: b"{}",
        };
        let first = at(0);
        let batch = Batch::new(
            first.tenant,
            first.entry_point,
            first.id,
            first.decided_at,
            None,
            Vec::new(),
        );
        let span = BATCH_SPAN_MS * 1000;
        assert!(batch.takes(&at(span), None));
        assert!(!batch.takes(&at(span + 1), None));
        assert!(batch.takes(&at(-span), None));
        assert!(!batch.takes(&at(-span - 1), None));
        // Another kind of id, tenant or entry point never joins.
        assert!(!batch.takes(&at(1), Some(1)));
        let mut other = at(1);
        other.entry_point = "f";
        assert!(!batch.takes(&other, None));
    }

    #[test]
    fn uuid_v7_ids_give_their_time_and_others_none() {
        let id = uuid::Uuid::now_v7().to_string();
        let millis = v7_millis(&id).unwrap();
        let now = Utc::now().timestamp_millis() as u64;
        assert!(
            now.abs_diff(millis) < 60_000,
            "{id}: {millis} against {now}"
        );
        assert!(v7_floor(millis).as_str() <= id.as_str());
        assert!(v7_floor(millis + 1).as_str() > id.as_str());
        assert_eq!(v7_millis(&id.to_uppercase()), None);
        assert_eq!(v7_millis("0192abcd-ef01-4abc-8def-0123456789ab"), None);
        assert_eq!(
            v7_millis("0192abcd-ef01-7abc-8def-0123456789ab"),
            Some(0x0192_abcd_ef01)
        );
        assert_eq!(v7_millis("d-042"), None);
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
