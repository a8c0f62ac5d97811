//! [`Feed`]: the running feed, its reader of the change log, and its shared state.
//!
//! One task, the reader, owns the cursor and is the only one that reads the change log. It reads
//! every poll interval, and at once when something wakes it: a NOTIFY (see `listen`), a Redis
//! message too large to carry its changes, a transport that reconnected, a commit of this
//! instance's own (`OwnCommits`), or [`Feed::read_now`].
//! Wake-ups go through one [`Notify`], so a burst of them costs one read.
//!
//! **Pushed changes.** A write through another instance also arrives with its changes: in its
//! NOTIFY's payload (see `listen`) and, with Redis, in a message. Those are invalidated at once
//! by the task that received them (`Shared::apply_pushed`), without waiting for the reader's
//! round trips to the log: safe, because invalidating is conservative and both transports send
//! only what has committed. Nothing else moves: the reader still reads those rows, skips them
//! (their `seq`s are remembered in `by_message`), and only its reads move the cursor and the
//! applied position, so a position still means every change through it was applied.
//!
//! **The applied position.** After applying a read, the reader moves the registry's applied
//! position to the cursor's ([`rulebook_store::Cursor::position`]): every change through it has
//! been applied. A caller that needs a position this instance has not reached yet (a read with
//! `min_seq`) says so with [`Feed::want`]: the reader reads at once, and keeps reading at short,
//! growing intervals (1 ms doubling up to the poll interval) until the position reaches it,
//! instead of waiting for the next wake-up or poll. It does the same while it has read changes
//! above the applied position: on PostgreSQL a read settles a change only once a later read's
//! snapshot shows every older transaction finished, so a change that brought one wake-up would
//! otherwise wait for the poll before the change stream could release it.
//!
//! **Released changes.** The change stream (`GET /v1/changes`) must hand changes out in `seq`
//! order with nothing skipped, so that a client resuming after `seq` misses nothing; on
//! PostgreSQL a read can return a change above the applied position before a lower one has
//! committed. So the reader holds the changes it read above the position and releases, after
//! each read that moves the position, every held change at or below it, in `seq` order, with the
//! position ([`Released`], from [`Feed::subscribe`]). Every change the log holds is released
//! exactly once (own writes and pushed ones too), in increasing `seq` across
//! messages. When the reader cannot tell what changed (it started afresh after the log was
//! pruned past its cursor, or it held more than [`HELD_MAX`] changes), it sends
//! [`Released::Reset`] instead, and subscribers start again from a snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use parking_lot::Mutex;
use rulebook_store::{Backend, Change, ChangeListener, Cursor, FeedRead, Registry, StoreError};
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;

use crate::config::FeedConfig;
use crate::status::{FeedMetrics, FeedStatus, LagRecorder, ListenStatus, PruneStatus, RedisStatus};
use rulebook_store::redact_url;

/// How many sequence numbers of pushed changes (notification payloads, Redis messages) are
/// remembered so that the log read does not apply them twice. Beyond it the oldest are
/// forgotten, which costs one more invalidation, nothing worse. (Own writes are remembered by the registry, see
/// [`Registry::apply_feed`].)
const SEQS_KEPT: usize = 10_000;

/// The most changes held above the applied position, waiting to be released (see the module
/// docs). Beyond it they are dropped and subscribers are told to start again.
pub const HELD_MAX: usize = 100_000;

/// How many released messages a slow subscriber may fall behind before it is told it lagged.
const RELEASED_BUFFER: usize = 1024;

/// What the reader releases to subscribers (see the module docs and [`Feed::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// Every change with a `seq` above the previous message's position and at or below
    /// `position`, in `seq` order (possibly none: the position moved without a change).
    Changes {
        /// The changes, of every tenant.
        changes: Arc<[Change]>,
        /// The applied position now.
        position: i64,
    },
    /// The reader could not tell which changes happened before `position`: start again from a
    /// snapshot taken at or after it.
    Reset {
        /// The applied position now.
        position: i64,
    },
}

/// A running change feed for one registry: keeps the registry's cache coherent with changes
/// committed by other instances and by plain SQL. Stops when [`Feed::stop`] is called or the
/// feed is dropped.
pub struct Feed {
    shared: Arc<Shared>,
    /// Kept so that the store keeps telling us of own commits while the feed runs (the store
    /// holds listeners weakly).
    _own_commits: Arc<dyn ChangeListener>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

/// What every task of one feed shares.
pub(crate) struct Shared {
    pub(crate) registry: Registry,
    pub(crate) config: FeedConfig,
    /// This instance's id on Redis (its store's), so that it ignores its own messages.
    pub(crate) instance: String,
    /// Wakes the reader.
    pub(crate) wake: Notify,
    /// Set by a transport that (re)connected after having been down: the next read is a replay.
    pub(crate) replay_pending: AtomicBool,
    /// Changes from elsewhere applied, by either path (an atomic so benches can wait on it
    /// cheaply).
    pub(crate) changes_applied: AtomicU64,
    /// The highest position a caller is waiting for ([`Feed::want`]).
    pub(crate) wanted: AtomicI64,
    /// Released changes for subscribers; a broadcast ring, so a slow subscriber costs no memory
    /// beyond it and learns that it lagged.
    pub(crate) released: broadcast::Sender<Released>,
    /// The rest of the state. A mutex: touched a few times per read or message, never held
    /// across an await.
    pub(crate) state: Mutex<State>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) started: bool,
    pub(crate) healthy: bool,
    pub(crate) last_ok: Option<Instant>,
    pub(crate) cursor_seq: i64,
    pub(crate) reads: u64,
    pub(crate) changes_read: u64,
    pub(crate) replays: u64,
    pub(crate) full_flushes: u64,
    pub(crate) last_error: Option<String>,
    pub(crate) listen: Option<ListenStatus>,
    pub(crate) redis: Option<RedisStatus>,
    pub(crate) pruning: Option<PruneStatus>,
    pub(crate) lag: LagRecorder,
    /// `seq`s of pushed changes applied straight from a payload or message, not yet seen in the
    /// log.
    pub(crate) by_message: BTreeSet<i64>,
    /// Changes read above the applied position, not yet released, by `seq`.
    pub(crate) held: BTreeMap<i64, Change>,
}

fn remember(set: &mut BTreeSet<i64>, seq: i64) {
    set.insert(seq);
    while set.len() > SEQS_KEPT {
        set.pop_first();
    }
}

impl State {
    pub(crate) fn remember_by_message(&mut self, seq: i64) {
        remember(&mut self.by_message, seq);
    }
}

impl Shared {
    /// Records the lag of a change from elsewhere applied now.
    pub(crate) fn applied(&self, state: &mut State, change: &Change) {
        let lag = (Utc::now() - change.changed_at)
            .to_std()
            .unwrap_or(Duration::ZERO);
        state.lag.record(lag);
        self.changes_applied.fetch_add(1, Ordering::Relaxed);
    }

    /// Applies changes pushed to this instance ahead of the log (a notification's payload, a
    /// Redis message): invalidates what they touch at once and remembers their `seq`s, so that
    /// the log read that brings them skips them. Returns how many it applied. Safe because
    /// invalidating is conservative and a pushed change has committed (each transport sends only
    /// after the commit); the applied position does not move, only a log read moves it.
    ///
    /// Claimed under the state lock, so that a change the log read has already applied (held
    /// above the position, or covered by it) is not applied again, nor one pushed twice (by both
    /// transports, or sent twice) applied twice (see [`apply`]).
    pub(crate) fn apply_pushed(&self, changes: Vec<Change>) -> u64 {
        let fresh: Vec<Change> = {
            let mut state = self.state.lock();
            let position = self.registry.applied_seq();
            let fresh: Vec<Change> = changes
                .into_iter()
                .filter(|c| {
                    c.seq > position
                        && !state.held.contains_key(&c.seq)
                        && !state.by_message.contains(&c.seq)
                })
                .collect();
            for change in &fresh {
                state.remember_by_message(change.seq);
            }
            fresh
        };
        let applied = self.registry.apply_feed(&fresh);
        let mut state = self.state.lock();
        for change in &applied.from_elsewhere {
            self.applied(&mut state, change);
        }
        applied.from_elsewhere.len() as u64
    }

    /// Asks for a read of the log now; `replay` when a transport reconnected and wake-ups may
    /// have been lost.
    pub(crate) fn wake(&self, replay: bool) {
        if replay {
            self.replay_pending.store(true, Ordering::SeqCst);
        }
        self.wake.notify_one();
    }
}

/// Told of this instance's own commits (after the registry has applied them and remembered
/// their `seq`s): publishes them to Redis when it is configured, and wakes the reader, so that
/// the applied position, and the change stream served from it, reach an own write at once
/// rather than at the next poll (SQLite has no other wake-up; on PostgreSQL it saves waiting
/// for the NOTIFY to come back).
pub(crate) struct OwnCommits {
    pub(crate) shared: Arc<Shared>,
    pub(crate) publish: Option<tokio::sync::mpsc::Sender<Vec<Change>>>,
}

impl ChangeListener for OwnCommits {
    fn committed(&self, changes: &[Change]) {
        // Never make the writer wait: when the publisher is behind or Redis is down, the other
        // instances get these changes from the log.
        if let Some(publish) = &self.publish {
            if publish.try_send(changes.to_vec()).is_err() {
                if let Some(redis) = self.shared.state.lock().redis.as_mut() {
                    redis.publish_dropped += 1;
                }
            }
        }
        self.shared.wake(false);
    }
}

impl Feed {
    /// Starts the feed for `registry` (and its store): reads the change log's current position,
    /// empties the registry once (it cannot know what changed before), then applies every
    /// change committed elsewhere. Must be called inside a tokio runtime. Settings are used as
    /// given; check them first with [`FeedConfig::validate`].
    pub fn spawn(registry: Registry, config: FeedConfig) -> Feed {
        let postgres = registry.store().backend() == Backend::Postgres;
        let listen = config.listen && postgres;
        let state = State {
            listen: listen.then(ListenStatus::default),
            redis: config.redis.as_ref().map(|r| RedisStatus {
                url: redact_url(&r.url),
                channel: r.channel.clone(),
                ..RedisStatus::default()
            }),
            pruning: config.prune.as_ref().map(|p| PruneStatus {
                keep_secs: p.keep.as_secs(),
                ..PruneStatus::default()
            }),
            ..State::default()
        };
        let shared = Arc::new(Shared {
            instance: registry.store().instance_id().to_owned(),
            registry,
            wake: Notify::new(),
            replay_pending: AtomicBool::new(false),
            changes_applied: AtomicU64::new(0),
            wanted: AtomicI64::new(0),
            released: broadcast::Sender::new(RELEASED_BUFFER),
            state: Mutex::new(state),
            config,
        });
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();

        let mut publish = None;
        if let Some(redis) = shared.config.redis.clone() {
            let (tx, rx) = tokio::sync::mpsc::channel(1024);
            publish = Some(tx);
            tasks.push(tokio::spawn(crate::redis::publish_loop(
                Arc::clone(&shared),
                redis.clone(),
                rx,
                stopped.clone(),
            )));
            tasks.push(tokio::spawn(crate::redis::subscribe_loop(
                Arc::clone(&shared),
                redis,
                stopped.clone(),
            )));
        }
        let own_commits: Arc<dyn ChangeListener> = Arc::new(OwnCommits {
            shared: Arc::clone(&shared),
            publish,
        });
        shared.registry.store().subscribe(&own_commits);
        if listen {
            tasks.push(tokio::spawn(crate::listen::listen_loop(
                Arc::clone(&shared),
                stopped.clone(),
            )));
        }
        if let Some(prune) = shared.config.prune.clone() {
            tasks.push(tokio::spawn(crate::prune::prune_loop(
                Arc::clone(&shared),
                prune,
                stopped.clone(),
            )));
        }
        tasks.push(tokio::spawn(read_loop(Arc::clone(&shared), stopped)));
        Feed {
            shared,
            _own_commits: own_commits,
            stop,
            tasks,
        }
    }

    /// The feed's state now.
    pub fn status(&self) -> FeedStatus {
        let config = &self.shared.config;
        let state = self.shared.state.lock();
        let since_ok = state.last_ok.map(|t| t.elapsed());
        let listen_up = state.listen.as_ref().is_some_and(|l| l.connected);
        let redis_up = state.redis.as_ref().is_some_and(|r| r.up);
        let backend = self.shared.registry.store().backend();
        FeedStatus {
            backend: backend.name(),
            transport: config.transport(backend == Backend::Postgres),
            ready: state.started && since_ok.is_some_and(|d| d <= config.stale_after),
            started: state.started,
            healthy: state.healthy,
            connected: listen_up || redis_up,
            listen: state.listen.clone(),
            redis: state.redis.clone(),
            cursor_seq: state.cursor_seq,
            applied_seq: self.shared.registry.applied_seq(),
            reads: state.reads,
            changes_read: state.changes_read,
            changes_applied: self.shared.changes_applied.load(Ordering::Relaxed),
            replays: state.replays,
            full_flushes: state.full_flushes,
            last_read_ms_ago: since_ok.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            last_lag_ms: state.lag.last().map(millis),
            max_lag_ms: state.lag.max().map(millis),
            pruning: state.pruning.clone(),
            last_error: state.last_error.clone(),
        }
    }

    /// Whether the feed can tell that the cache is current (see [`FeedStatus::ready`]).
    pub fn is_ready(&self) -> bool {
        self.status().ready
    }

    /// Counters and the lag histogram for `/metrics`; see [`FeedMetrics::write_prometheus`].
    pub fn metrics(&self) -> FeedMetrics {
        let state = self.shared.state.lock();
        let since_ok = state.last_ok.map(|t| t.elapsed());
        FeedMetrics {
            lag: state.lag.histogram(),
            replays: state.replays,
            full_flushes: state.full_flushes,
            changes_applied: self.shared.changes_applied.load(Ordering::Relaxed),
            ready: state.started && since_ok.is_some_and(|d| d <= self.shared.config.stale_after),
            redis_up: state.redis.as_ref().map(|r| r.up),
            listen_up: state.listen.as_ref().map(|l| l.connected),
            rows_pruned: state.pruning.as_ref().map_or(0, |p| p.rows_pruned),
        }
    }

    /// The lags of the most recent changes applied from elsewhere (up to 4096), oldest first:
    /// for benches and diagnostics.
    pub fn recent_lags(&self) -> Vec<Duration> {
        self.shared.state.lock().lag.recent()
    }

    /// How many changes made elsewhere have been applied: a cheap counter to wait on.
    pub fn changes_applied(&self) -> u64 {
        self.shared.changes_applied.load(Ordering::Relaxed)
    }

    /// Reads the change log now instead of at the next wake-up or poll (for example after an
    /// operator typed a change into `psql`).
    pub fn read_now(&self) {
        self.shared.wake(false);
    }

    /// Asks for the applied position to reach `seq` soon: reads the log now, and again at
    /// short intervals until it has (see the module docs). Wait for it with
    /// [`rulebook_store::Registry::wait_for_position`].
    pub fn want(&self, seq: i64) {
        if seq > self.shared.registry.applied_seq() {
            self.shared.wanted.fetch_max(seq, Ordering::SeqCst);
            self.shared.wake(false);
        }
    }

    /// Released changes from now on, in `seq` order (see [`Released`]). A subscriber that falls
    /// more than 1024 messages behind gets [`broadcast::error::RecvError::Lagged`] and must start
    /// again from the log or a snapshot.
    pub fn subscribe(&self) -> broadcast::Receiver<Released> {
        self.shared.released.subscribe()
    }

    /// Stops the feed and waits until its tasks have ended.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The reader: owns the cursor, reads the log on every tick or wake-up, applies what it finds.
async fn read_loop(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let registry = shared.registry.clone();
    let store = registry.store().clone();
    let mut cursor: Option<Cursor> = None;
    // How soon to read again while a caller wants a position not reached yet.
    let mut soon = WANT_FIRST_RETRY;
    loop {
        if *stopped.borrow() {
            return;
        }
        let replay = shared.replay_pending.swap(false, Ordering::SeqCst);
        let outcome = match &cursor {
            None => start(&shared, &registry).await.map(|c| (c, 0, false)),
            Some(current) => match store.read_feed(current).await {
                Ok(FeedRead::Changes { changes, next }) => {
                    let read = changes.len() as u64;
                    apply(&shared, &registry, changes, next.position());
                    Ok((next, read, false))
                }
                Ok(FeedRead::Pruned) => {
                    tracing::warn!(
                        "the change log was pruned past this instance's cursor; invalidating everything"
                    );
                    start(&shared, &registry).await.map(|c| (c, 0, true))
                }
                Err(e) => Err(e),
            },
        };
        {
            let mut state = shared.state.lock();
            state.reads += 1;
            match outcome {
                Ok((next, read, flushed)) => {
                    state.started = true;
                    state.healthy = true;
                    state.last_ok = Some(Instant::now());
                    state.last_error = None;
                    state.changes_read += read;
                    state.cursor_seq = next.last_seq();
                    if flushed {
                        state.full_flushes += 1;
                    }
                    if replay {
                        state.replays += 1;
                    }
                    cursor = Some(next);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the change log failed; retrying");
                    state.healthy = false;
                    state.last_error = Some(e.to_string());
                    if replay {
                        // Still owed once the database answers again.
                        shared.replay_pending.store(true, Ordering::SeqCst);
                    }
                }
            }
        }
        // Changes read above the applied position wait for a later read to settle them (on
        // PostgreSQL, one whose snapshot shows every older transaction finished): read again
        // soon, as for a wanted position, rather than at the next wake-up or poll.
        let unsettled = cursor.as_ref().is_some_and(|c| c.position() < c.last_seq());
        let pause = if unsettled || shared.wanted.load(Ordering::SeqCst) > registry.applied_seq() {
            let pause = soon;
            soon = (soon * 2).min(shared.config.poll_interval);
            pause
        } else {
            soon = WANT_FIRST_RETRY;
            shared.config.poll_interval
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shared.wake.notified() => {}
            _ = stopped.changed() => return,
        }
    }
}

/// The first pause before reading again for a wanted position; it doubles up to the poll
/// interval.
const WANT_FIRST_RETRY: Duration = Duration::from_millis(1);

/// Takes the log's current position, then empties the registry: whatever committed before the
/// position is in the database that a fresh load reads, whatever commits after is read from the
/// log. (Taking the position first means nothing falls between the two.)
async fn start(shared: &Shared, registry: &Registry) -> Result<Cursor, StoreError> {
    let cursor = registry.store().current_cursor().await?;
    registry.invalidate_all();
    registry.advance_position(cursor.position());
    {
        let mut state = shared.state.lock();
        // Whatever was pushed before this point is covered by the flush.
        state.by_message.clear();
        state.held.clear();
    }
    // Subscribers cannot be told what changed before this point: they start again.
    let _ = shared.released.send(Released::Reset {
        position: registry.applied_seq(),
    });
    Ok(cursor)
}

/// Applies changes read from the log: those already applied from a payload or message are
/// skipped; own writes go to the registry too (it skips them and forgets them) but count for
/// nothing.
/// Then moves the applied position to `position` and releases what it covers.
///
/// A change is applied once, by whichever of this and a pushed change claims it first: both
/// claim under the state lock, the log by holding the change (in `held`, until the position
/// passes it), a push by remembering its `seq` (in `by_message`).
fn apply(shared: &Shared, registry: &Registry, changes: Vec<Change>, position: i64) {
    let before = registry.applied_seq();
    if !changes.is_empty() {
        let fresh: Vec<Change> = {
            let mut state = shared.state.lock();
            for change in &changes {
                if change.seq > before {
                    state.held.insert(change.seq, change.clone());
                }
            }
            changes
                .iter()
                .filter(|c| !state.by_message.remove(&c.seq))
                .cloned()
                .collect()
        };
        let applied = registry.apply_feed(&fresh);
        let mut state = shared.state.lock();
        for change in applied.from_elsewhere {
            shared.applied(&mut state, change);
        }
    }
    registry.advance_position(position);
    let position = registry.applied_seq();
    let released = {
        let mut state = shared.state.lock();
        if state.held.len() > HELD_MAX {
            state.held.clear();
            Some(Released::Reset { position })
        } else if position > before {
            let above = state.held.split_off(&(position + 1));
            let covered = std::mem::replace(&mut state.held, above);
            Some(Released::Changes {
                changes: covered.into_values().collect(),
                position,
            })
        } else {
            None
        }
    };
    if let Some(released) = released {
        // No subscriber is fine.
        let _ = shared.released.send(released);
    }
}
