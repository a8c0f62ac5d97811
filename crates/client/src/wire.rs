//! The wire format: JSON bodies and Server-Sent Events of Rulebook's HTTP API.
//!
//! **Freshness.** Every read answer carries `seq`, the server instance's applied position (every
//! change of the change log through it is reflected), and every write answer the `seq` of its own
//! change; both also in the [`SEQ_HEADER`] header. A read may send [`MIN_SEQ_HEADER`] (or the
//! `min_seq` query parameter) to be answered only once the instance has reached that position.
//!
//! **The change stream** (`GET /v1/changes`) sends one SSE event per committed change of the
//! caller's tenant, in `seq` order: `event:` is one of [`EVENT_CHANGE`], [`EVENT_HEARTBEAT`],
//! [`EVENT_RESET`] and [`EVENT_END`]; `id:` is a `seq` such that every change of the tenant
//! through it has been sent, so reconnecting with `Last-Event-ID` misses nothing; `data:` is the
//! JSON of [`ChangeEvent`], [`Heartbeat`], [`Reset`] or [`End`].

use rulebook_rules::Rule;
use serde::{Deserialize, Serialize};

/// The header carrying an answer's `seq`.
pub const SEQ_HEADER: &str = "x-rulebook-seq";

/// The header a read sends to be answered only once the instance has applied this position.
pub const MIN_SEQ_HEADER: &str = "x-rulebook-min-seq";

/// The SSE event name of a [`ChangeEvent`].
pub const EVENT_CHANGE: &str = "change";
/// The SSE event name of a [`Heartbeat`].
pub const EVENT_HEARTBEAT: &str = "heartbeat";
/// The SSE event name of a [`Reset`].
pub const EVENT_RESET: &str = "reset";
/// The SSE event name of an [`End`].
pub const EVENT_END: &str = "end";

/// An answer `T` with the `seq` it reflects (`{"seq": 12, ...T's fields}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fresh<T> {
    /// For a read, the applied position it reflects; for a write, the `seq` of its change.
    pub seq: i64,
    /// The answer.
    #[serde(flatten)]
    pub body: T,
}

/// `GET /v1/snapshot`: every rule of the tenant, reflecting at least `seq` (with `ETag`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Snapshot {
    /// The tenant.
    pub tenant: String,
    /// Every rule, by priority then id.
    pub rules: Vec<Rule>,
}

/// What happened to a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    /// Created.
    Insert,
    /// Changed.
    Update,
    /// Deleted.
    Delete,
}

/// One committed change of one rule: what to invalidate, never the new value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ChangeEvent {
    /// The change log's `seq` (also the event's `id`).
    pub seq: i64,
    /// The rule.
    pub rule_id: String,
    /// Created, changed or deleted.
    pub op: ChangeOp,
    /// The entry points the rule had before and after (one when it did not move, none for a
    /// parameter-only rule).
    pub entry_points: Vec<String>,
    /// The rule's labels before and after.
    pub tags: Vec<String>,
}

/// Sent every heartbeat interval, and once when the stream starts: every change of the tenant
/// through `seq` has been sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Heartbeat {
    /// The position.
    pub seq: i64,
}

/// The stream cannot say what changed after the cursor (the change log was pruned past it, or
/// the instance itself started again from scratch): load a snapshot, then follow the stream from
/// the snapshot's `seq`. The stream ends after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Reset {
    /// The instance's applied position.
    pub seq: i64,
    /// Why.
    pub reason: String,
}

/// The stream ends (the client fell too far behind, or the server is shutting down): reconnect
/// with `Last-Event-ID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct End {
    /// Every change of the tenant through it has been sent.
    pub seq: i64,
    /// Why.
    pub reason: String,
}

/// `GET /v1/params/{rule_id}/{field}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ParamAnswer {
    /// The rule.
    pub rule_id: String,
    /// The param's name.
    pub field: String,
    /// Its value.
    pub value: serde_json::Value,
    /// The rule's version the value comes from.
    pub version: i64,
}

/// `GET /v1/rules/{id}/enabled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct EnabledAnswer {
    /// The rule.
    pub rule_id: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Its version.
    pub version: i64,
}
