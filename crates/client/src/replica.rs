//! [`Replica`]: the tenant's rules held in-process, kept current by the change stream.
//!
//! ## How it stays current
//!
//! The replica loads `GET /v1/snapshot` (every rule and the `seq` it reflects), compiles it with
//! the rules crate exactly as the server does (a ruleset per entry point from the rules whose
//! `entry_point` it is, the parameter snapshot from every rule, a scorecard per
//! `scorecard:<name>` tag), and follows `GET /v1/changes` from that `seq`. Events name what
//! changed, never values: for each batch of events (every event that has arrived, up to 1024,
//! so a follower that fell behind fetches each rule once) the replica fetches each changed rule with
//! `min_seq` set to the batch's highest `seq` (so whichever instance answers has applied it; a
//! 404 means deleted), recompiles what the rules touch, and then publishes a new view whose `seq`
//! is the batch's highest event id. A heartbeat's id moves the `seq` without a fetch. A `reset`
//! loads a new snapshot; a dropped stream reconnects with `Last-Event-ID` (the view's `seq`)
//! after a growing pause (100 ms doubling to 5 s); while the server is away every read keeps
//! answering from the last view, and [`Replica::status`] says how stale it is.
//!
//! ## Why a read is never behind a write its caller made
//!
//! One task, the follower, builds views; a view is immutable and published whole (an `Arc`
//! swapped under a lock held only for the swap), then its `seq` is sent on a watch channel.
//! Every event id is a position through which the server has sent every change of the tenant,
//! and a rule fetched with `min_seq = s` reflects every change through `s`; so a published view
//! with `seq = s` reflects every change through `s`. A write through the replica records its
//! `seq` (the server's answer) before it returns; a read first compares the current view's `seq`
//! with the highest such `seq` and, if behind, waits on the watch channel for a view at or past
//! it (up to the read wait, 5 s by default, then an error rather than a stale answer). Readers
//! never block the follower and the follower never blocks readers beyond the pointer swap.
//!
//! ## How it is checked
//!
//! `crates/server/tests/replica_stress.rs` runs writers (over HTTP, and through replicas that
//! read each write back) and many readers of two replicas (of two instances on PostgreSQL, and
//! of one on SQLite), and checks every read's `(seq, answer)` pair, taken from one
//! [`ReplicaView`], against the acknowledged writes with `rulebook_testkit::seq_history`: the
//! answer is the one the writes give at that `seq` or a newer one, never behind the caller's
//! own write, behind any write for no longer than a stated bound while connected, and never
//! going back. A replica made to skip one change event fails it. `replica_faults.rs` cuts the
//! stream mid-event through a proxy and checks the replica resumes below the cut event and ends
//! equal to the server's snapshot; `replica.rs` covers the server killed and a `reset`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use rulebook_rules::{
    EntryPoint, Evaluation, Limits, Params, Rule, Ruleset, ScoreRequest, ScoreResult, Scorecard,
};
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::{Client, ClientError};
use crate::refusal::Refusal;
use crate::sse::SseParser;
use crate::wire::{self, ChangeEvent, Heartbeat};

/// The longest line the change stream may send.
const MAX_LINE: usize = 1 << 20;

/// The most events applied as one batch.
const MAX_BATCH: usize = 1024;

/// What [`Replica::status`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaStatus {
    /// The position the replica's answers reflect: every change of the tenant through it.
    pub seq: i64,
    /// Whether the change stream is connected now.
    pub connected: bool,
    /// When the last change event arrived.
    pub last_change_at: Option<DateTime<Utc>>,
    /// When the stream last said anything (a change or a heartbeat): how stale the replica may
    /// be while the server is away.
    pub last_heard_at: Option<DateTime<Utc>>,
    /// The last failure (unreachable server, unreadable stream), cleared on reconnection.
    pub last_error: Option<String>,
    /// Snapshots loaded (1 after the start; more after resets).
    pub snapshots: u64,
    /// How many rules the replica holds.
    pub rules: usize,
}

/// One immutable state of the replica.
#[derive(Debug)]
struct View {
    seq: i64,
    rules: BTreeMap<String, Rule>,
    rulesets: HashMap<EntryPoint, Result<Arc<Ruleset>, String>>,
    params: Arc<Params>,
    scorecards: HashMap<String, Result<Arc<Scorecard>, String>>,
}

impl View {
    fn build(seq: i64, rules: BTreeMap<String, Rule>) -> View {
        let mut view = View {
            seq,
            rulesets: HashMap::new(),
            params: Arc::new(Params::from_rules(Vec::new())),
            scorecards: HashMap::new(),
            rules,
        };
        let entry_points: BTreeSet<EntryPoint> = view
            .rules
            .values()
            .filter_map(|r| r.entry_point.clone())
            .collect();
        let scorecards: BTreeSet<String> = view.rules.values().flat_map(scorecard_names).collect();
        view.recompile(&entry_points, &scorecards);
        view
    }

    /// Recompiles these entry points and scorecards and the parameter snapshot, the way the
    /// server's registry loads them.
    fn recompile(&mut self, entry_points: &BTreeSet<EntryPoint>, scorecards: &BTreeSet<String>) {
        for ep in entry_points {
            let rules = self.sorted(|r| r.entry_point.as_ref() == Some(ep));
            if rules.is_empty() {
                self.rulesets.remove(ep);
            } else {
                let compiled = Ruleset::compile(ep.clone(), rules)
                    .map(Arc::new)
                    .map_err(|e| format!("entry point `{ep}` cannot be compiled: {e}"));
                self.rulesets.insert(ep.clone(), compiled);
            }
        }
        for name in scorecards {
            let tag = format!("scorecard:{name}");
            let rules = self.sorted(|r| r.has_tag(&tag));
            if rules.is_empty() {
                self.scorecards.remove(name);
            } else {
                let compiled = Scorecard::compile(name.clone(), rules)
                    .map(Arc::new)
                    .map_err(|e| format!("scorecard `{name}` cannot be compiled: {e}"));
                self.scorecards.insert(name.clone(), compiled);
            }
        }
        self.params = Arc::new(Params::from_rules(self.sorted(|_| true)));
    }

    /// The rules passing `keep`, by priority then id (the server's order).
    fn sorted(&self, keep: impl Fn(&Rule) -> bool) -> Vec<Rule> {
        let mut rules: Vec<Rule> = self.rules.values().filter(|r| keep(r)).cloned().collect();
        rules.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
        rules
    }
}

fn scorecard_names(rule: &Rule) -> Vec<String> {
    rule.tags
        .iter()
        .filter_map(|t| t.strip_prefix("scorecard:").map(str::to_owned))
        .collect()
}

/// One immutable state of a [`Replica`] (from [`Replica::view`]): every answer read from it
/// reflects the same position, so a caller can pair each answer with the `seq` it reflects, as
/// the server's answers are paired. Cheap to clone and to hold (an `Arc`); holding it does not
/// hold the replica back.
#[derive(Clone)]
pub struct ReplicaView {
    view: Arc<View>,
    limits: Limits,
    tenant: String,
}

impl std::fmt::Debug for ReplicaView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaView")
            .field("seq", &self.view.seq)
            .field("rules", &self.view.rules.len())
            .finish_non_exhaustive()
    }
}

impl ReplicaView {
    /// The position this state reflects: every change of the tenant through `seq`. A rule the
    /// follower fetched for a change may reflect a later change of the same rule too (a fetch
    /// with `min_seq` answers at least that position), never an earlier one.
    pub fn seq(&self) -> i64 {
        self.view.seq
    }

    /// Every rule, by id.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.view.rules.values()
    }

    /// Evaluates `entry_point` against `context` at time `at`, as the server would.
    ///
    /// Errors: [`ClientError::Refused`] as the server refuses the call: `bad_entry_point` (400)
    /// for an entry point that is not valid, `invalid_body` (400) for a context that is not a
    /// JSON object, `stored_rules_unusable` (500) for rules that cannot be compiled.
    pub fn evaluate_at(
        &self,
        entry_point: &str,
        context: &Value,
        at: DateTime<Utc>,
    ) -> Result<Evaluation, ClientError> {
        Ok(self
            .ruleset(entry_point, context)?
            .evaluate(context, at, &self.limits))
    }

    /// [`ReplicaView::evaluate_at`] with [`Evaluation::explain`]: how every rule of the entry
    /// point was decided, as the server answers `"explain": true` (the rules crate's
    /// [`Ruleset::explain`], the server's own). Errors as for `evaluate_at`.
    pub fn explain_at(
        &self,
        entry_point: &str,
        context: &Value,
        at: DateTime<Utc>,
    ) -> Result<Evaluation, ClientError> {
        Ok(self
            .ruleset(entry_point, context)?
            .explain(context, at, &self.limits))
    }

    /// The compiled rules of `entry_point` (none when it has no rules), after the checks the
    /// server makes of the call.
    fn ruleset(&self, entry_point: &str, context: &Value) -> Result<Arc<Ruleset>, ClientError> {
        let ep = EntryPoint::parse(entry_point).map_err(|e| Refusal::bad_entry_point(&e))?;
        if !context.is_object() {
            return Err(Refusal::context_not_an_object().into());
        }
        match self.view.rulesets.get(&ep) {
            Some(Ok(ruleset)) => Ok(Arc::clone(ruleset)),
            Some(Err(reason)) => Err(Refusal::stored_rules_unusable(reason.as_str()).into()),
            None => Ruleset::compile(ep, Vec::new())
                .map(Arc::new)
                .map_err(|e| Refusal::stored_rules_unusable(e.to_string()).into()),
        }
    }

    /// The rules of `entry_point` (normalised as the server normalises it: `Home Page Mount`
    /// names `home_page_mount`) that are in force at `at` (enabled, inside their window), in
    /// evaluation order (priority, then id): the rules an evaluation at `at` looks at.
    ///
    /// Errors: [`ClientError::Refused`] `bad_entry_point` (400) for an entry point that is not
    /// valid.
    pub fn entry_point_rules(
        &self,
        entry_point: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<Rule>, ClientError> {
        let ep = EntryPoint::parse(entry_point).map_err(|e| Refusal::bad_entry_point(&e))?;
        Ok(self
            .view
            .sorted(|r| r.entry_point.as_ref() == Some(&ep) && r.enabled && r.is_active_at(at)))
    }

    /// A parameter's value, or `None` when the rule or the param does not exist.
    pub fn param(&self, rule_id: &str, field: &str) -> Option<Value> {
        self.view.params.value(rule_id, field).cloned()
    }

    /// Whether a rule is enabled, or `None` when it does not exist.
    pub fn is_enabled(&self, rule_id: &str) -> Option<bool> {
        self.view.params.is_enabled(rule_id)
    }

    /// Scores `input` with scorecard `name` now, as the server would. Errors as for
    /// [`ReplicaView::score_request`].
    pub fn score(&self, name: &str, input: Value) -> Result<ScoreResult, ClientError> {
        let request = ScoreRequest {
            input,
            ..Default::default()
        };
        self.score_request(name, &request, Utc::now(), false)
    }

    /// Scores `request` (its input, per-request param overrides and `on_error`) with scorecard
    /// `name` at time `at`, as the server answers `POST /v1/score/{name}`; with `explain`, adds
    /// how every factor's rule was decided ([`Scorecard::score_explained`]).
    ///
    /// Errors: [`ClientError::Refused`] as the server refuses the call: `scorecard_not_found`
    /// (404) for a scorecard with no factors, `validation_failed` (422; `errors` at
    /// `overrides.<rule>.<param>`) for overrides that break a param schema, `evaluation_failed`
    /// (422) for overrides naming a rule outside the scorecard or a failure under
    /// `on_error: fail`, `stored_rules_unusable` (500) for rules that cannot be compiled.
    pub fn score_request(
        &self,
        name: &str,
        request: &ScoreRequest,
        at: DateTime<Utc>,
        explain: bool,
    ) -> Result<ScoreResult, ClientError> {
        let scorecard = match self.view.scorecards.get(name) {
            Some(Ok(scorecard)) if scorecard.factors().next().is_some() => Arc::clone(scorecard),
            Some(Err(reason)) => return Err(Refusal::stored_rules_unusable(reason.as_str()).into()),
            _ => return Err(Refusal::scorecard_not_found(name, &self.tenant).into()),
        };
        let scored = if explain {
            scorecard.score_explained(request, at, &self.limits)
        } else {
            scorecard.score(request, at, &self.limits)
        };
        scored.map_err(|e| Refusal::evaluation(e).into())
    }
}

struct Inner {
    client: Client,
    /// The current view. A read-write lock held only to clone or swap the `Arc`.
    view: RwLock<Arc<View>>,
    /// The current view's `seq`, for readers waiting for their own writes.
    seq: watch::Sender<i64>,
    /// The highest `seq` of a write made through this replica.
    own: AtomicI64,
    /// Reported state. A mutex: touched once per event batch or status call.
    status: Mutex<ReplicaStatus>,
    /// The same limits the server applies (one set, for writing and running rules).
    limits: Limits,
    read_wait: Duration,
}

/// A local replica of one tenant's rules (see the module docs). Stops following when dropped.
pub struct Replica {
    inner: Arc<Inner>,
    follower: JoinHandle<()>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("server", &self.inner.client.base())
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl Replica {
    /// Loads the snapshot through `client` and starts following the change stream. Fails when
    /// the first snapshot cannot be loaded. Must be called inside a tokio runtime.
    pub async fn start(client: Client) -> Result<Replica, ClientError> {
        Replica::start_at(client, None).await
    }

    /// A new replica of the same tenant, from a fresh snapshot that reflects at least every
    /// change this one reflects and every write made through it: for dropping whatever state
    /// this one holds (clearing by hand) without a read going back. Its
    /// [`ReplicaStatus::snapshots`] goes on counting from this one's. Must be called inside a
    /// tokio runtime.
    pub async fn renew(&self) -> Result<Replica, ClientError> {
        let at_least = self
            .inner
            .current()
            .seq
            .max(self.inner.own.load(Ordering::SeqCst));
        let renewed = Replica::start_at(self.inner.client.clone(), Some(at_least)).await?;
        // Its status counts the snapshots of the replicas it replaces too.
        let before = self.inner.status.lock().snapshots;
        renewed.inner.status.lock().snapshots += before;
        Ok(renewed)
    }

    async fn start_at(client: Client, min_seq: Option<i64>) -> Result<Replica, ClientError> {
        let snapshot = client.snapshot(min_seq).await?;
        let rules = snapshot
            .body
            .rules
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let view = View::build(snapshot.seq, rules);
        let status = ReplicaStatus {
            seq: view.seq,
            connected: false,
            last_change_at: None,
            last_heard_at: Some(Utc::now()),
            last_error: None,
            snapshots: 1,
            rules: view.rules.len(),
        };
        let inner = Arc::new(Inner {
            client,
            seq: watch::Sender::new(view.seq),
            view: RwLock::new(Arc::new(view)),
            own: AtomicI64::new(0),
            status: Mutex::new(status),
            limits: Limits::default(),
            read_wait: Duration::from_secs(5),
        });
        let follower = tokio::spawn(follow(Arc::clone(&inner)));
        Ok(Replica { inner, follower })
    }

    /// The client the replica uses (for calls the replica does not answer itself).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// How current the replica is.
    pub fn status(&self) -> ReplicaStatus {
        let mut status = self.inner.status.lock().clone();
        status.seq = self.inner.view.read().seq;
        status
    }

    /// Waits until the replica reflects `seq`, for at most `timeout`; returns the `seq` reached.
    pub async fn wait_for(&self, seq: i64, timeout: Duration) -> Result<i64, ClientError> {
        let mut watch = self.inner.seq.subscribe();
        let reached = tokio::time::timeout(timeout, watch.wait_for(|s| *s >= seq))
            .await
            .map(|r| r.map(|s| *s));
        match reached {
            Ok(Ok(reached)) => Ok(reached),
            _ => Err(ClientError::Replica(format!(
                "the replica reflects the changes through seq {}, not yet {seq}, after waiting {timeout:?}: see status() for why",
                *self.inner.seq.borrow()
            ))),
        }
    }

    /// The replica's current state, once it reflects every write made through this replica
    /// (waiting for it as [`Replica::evaluate`] does). Every answer read from one
    /// [`ReplicaView`] comes from the same state, whose [`ReplicaView::seq`] says how fresh it
    /// is.
    pub async fn view(&self) -> Result<ReplicaView, ClientError> {
        match self.ready() {
            Ok(view) => Ok(view),
            Err(own) => {
                self.wait_for(own, self.inner.read_wait).await?;
                Ok(self.inner.view_of(self.inner.current()))
            }
        }
    }

    /// [`Replica::view`] when it has nothing to wait for: the current state if it reflects every
    /// write made through this replica, else `None` (then `view` waits for it). The same
    /// freshness as `view`, without a runtime: for a caller outside async code that reaches for
    /// `block_on` only when a read must wait for its own write.
    pub fn try_view(&self) -> Option<ReplicaView> {
        self.ready().ok()
    }

    /// The current state if it reflects every write made through this replica, else the `seq`
    /// to wait for.
    fn ready(&self) -> Result<ReplicaView, i64> {
        let own = self.inner.own.load(Ordering::SeqCst);
        let current = self.inner.current();
        if current.seq >= own {
            Ok(self.inner.view_of(current))
        } else {
            Err(own)
        }
    }

    /// Evaluates `entry_point` against `context` now, in-process, as the server would.
    pub async fn evaluate(
        &self,
        entry_point: &str,
        context: &Value,
    ) -> Result<Evaluation, ClientError> {
        self.evaluate_at(entry_point, context, Utc::now()).await
    }

    /// [`Replica::evaluate`] at time `at`.
    pub async fn evaluate_at(
        &self,
        entry_point: &str,
        context: &Value,
        at: DateTime<Utc>,
    ) -> Result<Evaluation, ClientError> {
        self.view().await?.evaluate_at(entry_point, context, at)
    }

    /// A parameter's current value, or `None` when the rule or the param does not exist.
    pub async fn param(&self, rule_id: &str, field: &str) -> Result<Option<Value>, ClientError> {
        Ok(self.view().await?.param(rule_id, field))
    }

    /// Whether a rule is enabled, or `None` when it does not exist.
    pub async fn is_enabled(&self, rule_id: &str) -> Result<Option<bool>, ClientError> {
        Ok(self.view().await?.is_enabled(rule_id))
    }

    /// Scores `input` with scorecard `name` now, in-process, as the server would.
    pub async fn score(&self, name: &str, input: Value) -> Result<ScoreResult, ClientError> {
        self.view().await?.score(name, input)
    }

    /// Records a write made through [`Replica::client`] (whose answer carries the write's
    /// `seq`), so that the replica's next read reflects it, as for the replica's own write
    /// methods. For callers that want the server's whole answer to a write, not only its `seq`.
    pub fn note_write(&self, seq: i64) {
        self.wrote(seq);
    }

    fn wrote(&self, seq: i64) -> i64 {
        self.inner.own.fetch_max(seq, Ordering::SeqCst);
        seq
    }

    /// Creates a rule on the server; the replica's next read reflects it. Returns the write's
    /// `seq`.
    pub async fn create_rule(&self, rule: &Value) -> Result<i64, ClientError> {
        let answer = self.inner.client.create_rule(rule).await?;
        Ok(self.wrote(answer.seq))
    }

    /// Merges `params` into a rule's params on the server; the replica's next read reflects it.
    pub async fn update_params(
        &self,
        id: &str,
        params: Map<String, Value>,
    ) -> Result<i64, ClientError> {
        let answer = self.inner.client.update_params(id, params).await?;
        Ok(self.wrote(answer.seq))
    }

    /// Enables or disables a rule on the server; the replica's next read reflects it.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<i64, ClientError> {
        let answer = self.inner.client.set_enabled(id, enabled).await?;
        Ok(self.wrote(answer.seq))
    }

    /// Deletes a rule on the server; the replica's next read reflects it.
    pub async fn delete_rule(&self, id: &str) -> Result<i64, ClientError> {
        let seq = self.inner.client.delete_rule(id).await?;
        Ok(self.wrote(seq))
    }
}

impl Inner {
    fn current(&self) -> Arc<View> {
        Arc::clone(&self.view.read())
    }

    fn view_of(&self, view: Arc<View>) -> ReplicaView {
        ReplicaView {
            view,
            limits: self.limits,
            tenant: self.client.tenant().to_owned(),
        }
    }

    fn publish(&self, view: View) {
        let seq = view.seq;
        let rules = view.rules.len();
        *self.view.write() = Arc::new(view);
        self.seq.send_if_modified(|current| {
            let moved = seq > *current;
            *current = (*current).max(seq);
            moved
        });
        self.status.lock().rules = rules;
    }

    fn failed(&self, error: String) {
        let mut status = self.status.lock();
        status.connected = false;
        status.last_error = Some(error);
    }
}

/// How a stream ended.
enum Ended {
    /// Reconnect with `Last-Event-ID`.
    Resume,
    /// Load a snapshot first.
    Reset,
}

/// The follower task: follows the stream, reconnecting and reloading as needed.
async fn follow(inner: Arc<Inner>) {
    let mut pause = Duration::from_millis(100);
    let mut needs_snapshot = false;
    loop {
        let outcome = async {
            if needs_snapshot {
                reload(&inner).await?;
            }
            stream(&inner).await
        }
        .await;
        match outcome {
            Ok(Ended::Resume) => {
                needs_snapshot = false;
                pause = Duration::from_millis(100);
                inner.status.lock().connected = false;
                continue;
            }
            Ok(Ended::Reset) => {
                needs_snapshot = true;
                inner.status.lock().connected = false;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the replica's change stream failed; retrying");
                inner.failed(e.to_string());
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Loads a new snapshot (never older than the current view) and publishes it.
async fn reload(inner: &Inner) -> Result<(), ClientError> {
    let at_least = inner.current().seq;
    let snapshot = inner.client.snapshot(Some(at_least)).await?;
    let rules = snapshot
        .body
        .rules
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    inner.publish(View::build(snapshot.seq.max(at_least), rules));
    inner.status.lock().snapshots += 1;
    Ok(())
}

/// Follows one connection of the change stream from the current view's `seq`.
async fn stream(inner: &Inner) -> Result<Ended, ClientError> {
    let after = inner.current().seq;
    let mut response = inner
        .client
        .request(reqwest::Method::GET, "/v1/changes")
        .header("last-event-id", after)
        .header("accept", "text/event-stream")
        .send()
        .await
        .map_err(|e| inner.client.unreachable(e))?;
    if !response.status().is_success() {
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap_or_default();
        return Err(crate::client::api_error(status, &bytes));
    }
    {
        let mut status = inner.status.lock();
        status.connected = true;
        status.last_error = None;
    }
    let mut parser = SseParser::new(MAX_LINE);
    loop {
        let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| inner.client.unreachable(e))?
        else {
            return Ok(Ended::Resume);
        };
        let mut events = parser
            .feed(&chunk)
            .map_err(|e| inner.client.unreachable(e))?;
        // What has already arrived behind this chunk joins the batch (the server sends each
        // event as a chunk of its own), so a follower that fell behind catches up with one fetch
        // per changed rule rather than one per event. An end met here comes after the batch.
        let mut closed = None;
        while events.len() < MAX_BATCH {
            match tokio::time::timeout(Duration::ZERO, response.chunk()).await {
                Ok(Ok(Some(chunk))) => events.extend(
                    parser
                        .feed(&chunk)
                        .map_err(|e| inner.client.unreachable(e))?,
                ),
                Ok(Ok(None)) => {
                    closed = Some(Ok(Ended::Resume));
                    break;
                }
                Ok(Err(e)) => {
                    closed = Some(Err(inner.client.unreachable(e)));
                    break;
                }
                // Nothing more has arrived.
                Err(_) => break,
            }
        }
        let mut changes: Vec<ChangeEvent> = Vec::new();
        let mut reached = inner.current().seq;
        let mut ended = None;
        for event in events {
            let data = |what: &str| {
                inner
                    .client
                    .unreachable(format!("an unreadable `{what}` event: {}", event.data))
            };
            match event.event.as_str() {
                wire::EVENT_CHANGE => {
                    let change: ChangeEvent =
                        serde_json::from_str(&event.data).map_err(|_| data("change"))?;
                    reached = reached.max(change.seq);
                    changes.push(change);
                }
                wire::EVENT_HEARTBEAT => {
                    let beat: Heartbeat =
                        serde_json::from_str(&event.data).map_err(|_| data("heartbeat"))?;
                    reached = reached.max(beat.seq);
                }
                wire::EVENT_RESET => ended = Some(Ended::Reset),
                wire::EVENT_END => ended = Some(Ended::Resume),
                _ => {}
            }
            if ended.is_some() {
                break;
            }
        }
        apply(inner, changes, reached).await?;
        if let Some(ended) = ended {
            return Ok(ended);
        }
        if let Some(closed) = closed {
            return closed;
        }
    }
}

/// Applies one batch: fetches the changed rules reflecting at least `reached`, recompiles what
/// they touch, publishes a view at `reached`.
async fn apply(inner: &Inner, changes: Vec<ChangeEvent>, reached: i64) -> Result<(), ClientError> {
    let now = Some(Utc::now());
    {
        let mut status = inner.status.lock();
        status.last_heard_at = now;
        if !changes.is_empty() {
            status.last_change_at = now;
        }
    }
    let current = inner.current();
    if changes.is_empty() && reached <= current.seq {
        return Ok(());
    }
    let mut rules = current.rules.clone();
    let mut entry_points = BTreeSet::new();
    let mut scorecards = BTreeSet::new();
    let ids: BTreeSet<&str> = changes.iter().map(|c| c.rule_id.as_str()).collect();
    for change in &changes {
        for ep in &change.entry_points {
            if let Ok(ep) = EntryPoint::parse(ep) {
                entry_points.insert(ep);
            }
        }
        for tag in &change.tags {
            if let Some(name) = tag.strip_prefix("scorecard:") {
                scorecards.insert(name.to_owned());
            }
        }
    }
    for id in ids {
        match inner.client.rule(id, Some(reached)).await {
            Ok(fresh) => {
                entry_points.extend(fresh.body.entry_point.clone());
                scorecards.extend(scorecard_names(&fresh.body));
                rules.insert(id.to_owned(), fresh.body);
            }
            Err(e) if e.code() == Some("rule_not_found") => {
                rules.remove(id);
            }
            Err(e) => return Err(e),
        }
    }
    let mut view = View {
        seq: reached,
        rules,
        rulesets: current.rulesets.clone(),
        params: Arc::clone(&current.params),
        scorecards: current.scorecards.clone(),
    };
    if !changes.is_empty() {
        view.recompile(&entry_points, &scorecards);
    }
    inner.publish(view);
    Ok(())
}
