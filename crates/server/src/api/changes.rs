//! `GET /v1/changes`: the caller's tenant's committed changes as Server-Sent Events.
//!
//! Served from what this instance's own feed applies ([`rulebook_sync::Feed::subscribe`]), so it
//! works on every instance and for changes typed into SQL. The wire format is in
//! [`rulebook_client::wire`]: `event: change` with `id: <seq>` and what to invalidate (never
//! values); `event: heartbeat` every `--changes-heartbeat` and once when caught up; `event:
//! reset` when the cursor is older than the pruned log; `event: end` with a reason when the
//! stream stops (the client fell behind, the server is shutting down).
//!
//! ## Why no change is skipped or sent twice
//!
//! Every event's `id` is a position `s` such that every change of the tenant with a `seq` up to
//! `s` has been sent on this stream, so a client that reconnects with `Last-Event-ID: s` needs
//! exactly the changes above `s`. That holds because the feed releases changes only up to its
//! applied position and in `seq` order (see `rulebook_sync`'s "Released changes"), and the
//! stream starts like this:
//!
//! 1. Subscribe to the feed's releases, then read the applied position `P0`. Every release sent
//!    before the subscription carried only changes at or below the position at that time, which
//!    is at most `P0` (the registry's position moves before the release is sent).
//! 2. Catch up from the change log: the tenant's changes in `(after, P0]`, by pages. They have
//!    all committed (P0 is an applied position), so the range is complete; if the log was pruned
//!    past `after`, send `reset` and stop.
//! 3. Follow the releases, sending the tenant's changes above what was sent, and moving the
//!    sent position to each release's position.
//!
//! ## Bounded memory
//!
//! A subscriber holds one receiver on the feed's broadcast ring (1024 releases, shared by all
//! subscribers) and at most one page of the catch-up. A client that reads too slowly makes its
//! receiver lag: the stream sends `end` with the reason and stops, and the client resumes from
//! its `Last-Event-ID`.

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use rulebook_client::wire::{self, ChangeEvent, End, Heartbeat, Reset};
use rulebook_store::{Change, ChangeOp, StoreError};
use rulebook_sync::Released;
use serde::Deserialize;
use tokio::sync::{broadcast, watch};

use crate::api::openapi::Errors;
use crate::auth::Reader;
use crate::error::ApiError;
use crate::extract::QueryParams;
use crate::state::AppState;

/// Changes read from the log per page while catching up.
const PAGE: u32 = 500;

/// The query of `GET /v1/changes`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// Send the changes after this `seq` (`Last-Event-ID` wins when both are sent); from the
    /// instance's applied position when neither is.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub after: Option<String>,
}

/// `GET /v1/changes[?after=SEQ]`, `Last-Event-ID: SEQ`.
#[utoipa::path(
    get,
    path = "/v1/changes",
    tag = "replicas",
    params(Reader, ChangesQuery, ("Last-Event-ID" = Option<String>, Header, description = "The `id` of the last event received: send the changes after it (wins over `after`)")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Server-Sent Events: `change`, `heartbeat`, `reset` and `end`, each with `id` = a `seq` and JSON `data` (see the client crate's `wire` module)", content_type = "text/event-stream", body = String),
        Errors,
    )
)]
pub async fn changes(
    State(state): State<AppState>,
    Reader(caller): Reader,
    QueryParams(query): QueryParams<ChangesQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cursor = match headers.get("last-event-id") {
        Some(value) => Some(parse_cursor(
            value.to_str().unwrap_or("?"),
            "the `Last-Event-ID` header",
        )?),
        None => query
            .after
            .as_deref()
            .map(|a| parse_cursor(a, "`after`"))
            .transpose()?,
    };
    let Some(released) = state.subscribe_released() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "feed_not_running",
            "this instance's change feed is not running (it is starting or stopping): retry shortly",
        )
        .with_retry_after(1));
    };
    let position = state.registry().applied_seq();
    let after = cursor.unwrap_or(position);
    let follow = Follow {
        heartbeat: tokio::time::interval_at(
            tokio::time::Instant::now() + state.limits().changes_heartbeat,
            state.limits().changes_heartbeat,
        ),
        closing: state.closing(),
        state,
        tenant: caller.tenant,
        released,
        sent: after,
        catch_up_through: position,
        queue: VecDeque::new(),
        greeted: false,
        done: false,
    };
    Ok(Sse::new(events(follow)).into_response())
}

fn parse_cursor(text: &str, from: &str) -> Result<i64, ApiError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|seq| *seq >= 0)
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_cursor",
                format!(
                    "{from} `{text}` is not a change-log position: send a whole number at least 0, such as the `id` of the last event received"
                ),
            )
        })
}

/// One subscriber's stream state (see the module docs).
struct Follow {
    state: AppState,
    tenant: String,
    released: broadcast::Receiver<Released>,
    closing: watch::Receiver<bool>,
    heartbeat: tokio::time::Interval,
    /// Every change of the tenant through it has been sent.
    sent: i64,
    /// Catch up from the log through this position before following releases.
    catch_up_through: i64,
    /// Events ready to send (at most one page).
    queue: VecDeque<Event>,
    /// Whether the first heartbeat (after catching up) went out.
    greeted: bool,
    /// Whether the stream ends once the queue is empty.
    done: bool,
}

fn events(follow: Follow) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(follow, |mut follow| async move {
        loop {
            if let Some(event) = follow.queue.pop_front() {
                return Some((Ok(event), follow));
            }
            if follow.done {
                return None;
            }
            follow.step().await;
        }
    })
}

impl Follow {
    /// Fills the queue or ends the stream.
    async fn step(&mut self) {
        if self.sent < self.catch_up_through {
            self.catch_up().await;
            return;
        }
        if !self.greeted {
            self.greeted = true;
            self.queue.push_back(self.heartbeat_event());
            return;
        }
        enum Next {
            Closing,
            Message(Result<Released, broadcast::error::RecvError>),
            Heartbeat,
        }
        let next = tokio::select! {
            _ = self.closing.wait_for(|closing| *closing) => Next::Closing,
            message = self.released.recv() => Next::Message(message),
            _ = self.heartbeat.tick() => Next::Heartbeat,
        };
        match next {
            Next::Closing => self.end("the server is shutting down: reconnect with Last-Event-ID"),
            Next::Message(message) => self.receive(message),
            Next::Heartbeat => self.queue.push_back(self.heartbeat_event()),
        }
    }

    async fn catch_up(&mut self) {
        let page = self
            .state
            .store()
            .tenant_changes(&self.tenant, self.sent, self.catch_up_through, PAGE)
            .await;
        match page {
            Ok(changes) => {
                let full = changes.len() == PAGE as usize;
                for change in &changes {
                    self.queue.push_back(change_event(change));
                }
                self.sent = match changes.last() {
                    Some(last) if full => last.seq,
                    _ => self.catch_up_through,
                };
            }
            Err(StoreError::CursorPruned) => self.reset(format!(
                "the change log no longer reaches back to seq {}: load a snapshot and follow from its seq",
                self.sent
            )),
            Err(e) => {
                tracing::warn!(error = %e, "reading the change log for a change stream failed");
                self.end("the change log could not be read: reconnect with Last-Event-ID");
            }
        }
    }

    fn receive(&mut self, message: Result<Released, broadcast::error::RecvError>) {
        match message {
            Ok(Released::Changes { changes, position }) => {
                for change in changes.iter() {
                    if change.tenant == self.tenant && change.seq > self.sent {
                        self.queue.push_back(change_event(change));
                    }
                }
                self.sent = self.sent.max(position);
            }
            Ok(Released::Reset { position }) => {
                self.sent = self.sent.max(position);
                self.reset(
                    "this instance started its change feed again and cannot say what changed: load a snapshot and follow from its seq"
                        .to_owned(),
                );
            }
            Err(broadcast::error::RecvError::Lagged(_)) => self
                .end("this stream fell too far behind the changes: reconnect with Last-Event-ID"),
            Err(broadcast::error::RecvError::Closed) => {
                self.end("this instance's change feed stopped: reconnect with Last-Event-ID");
            }
        }
    }

    fn heartbeat_event(&self) -> Event {
        json_event(
            wire::EVENT_HEARTBEAT,
            self.sent,
            &Heartbeat { seq: self.sent },
        )
    }

    fn reset(&mut self, reason: String) {
        let seq = self.state.registry().applied_seq();
        self.queue
            .push_back(json_event(wire::EVENT_RESET, seq, &Reset { seq, reason }));
        self.done = true;
    }

    fn end(&mut self, reason: &str) {
        let end = End {
            seq: self.sent,
            reason: reason.to_owned(),
        };
        self.queue
            .push_back(json_event(wire::EVENT_END, self.sent, &end));
        self.done = true;
    }
}

fn json_event<T: serde::Serialize>(name: &str, id: i64, data: &T) -> Event {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned());
    Event::default().event(name).id(id.to_string()).data(data)
}

/// What a change invalidates, as the stream says it.
fn change_event(change: &Change) -> Event {
    let entry_points: BTreeSet<&String> = change
        .old_entry_point
        .iter()
        .chain(change.new_entry_point.iter())
        .collect();
    let tags: BTreeSet<&String> = change.old_tags.iter().chain(&change.new_tags).collect();
    let event = ChangeEvent {
        seq: change.seq,
        rule_id: change.rule_id.clone(),
        op: match change.op {
            ChangeOp::Insert => wire::ChangeOp::Insert,
            ChangeOp::Update => wire::ChangeOp::Update,
            ChangeOp::Delete => wire::ChangeOp::Delete,
        },
        entry_points: entry_points.into_iter().cloned().collect(),
        tags: tags.into_iter().cloned().collect(),
    };
    json_event(wire::EVENT_CHANGE, change.seq, &event)
}
