//! What a [`crate::Feed`] reports: [`FeedStatus`] for `/health`, [`FeedMetrics`] for `/metrics`.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// The feed's state, for `/health`. Serialises to JSON as is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct FeedStatus {
    /// `postgres` or `sqlite`.
    pub backend: &'static str,
    /// How changes arrive: `poll`, `listen+poll`, `redis+poll` or `redis+listen+poll`.
    pub transport: String,
    /// Whether the instance can tell that its cache is current: it has read the change log,
    /// and its last successful read is more recent than the configured bound.
    pub ready: bool,
    /// Whether the first read of the change log has succeeded.
    pub started: bool,
    /// Whether the last read of the change log succeeded.
    pub healthy: bool,
    /// Whether some push wake-up (LISTEN or Redis) is up; `false` when polling alone.
    pub connected: bool,
    /// PostgreSQL LISTEN, when it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<ListenStatus>,
    /// Redis pub/sub, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisStatus>,
    /// The highest change-log sequence number the feed has read.
    pub cursor_seq: i64,
    /// The highest change-log sequence number applied to the cache, by own writes or the feed.
    pub applied_seq: i64,
    /// Reads of the change log since start.
    pub reads: u64,
    /// Change-log rows read since start (own writes included).
    pub changes_read: u64,
    /// Changes made elsewhere (other instances, plain SQL) applied to the cache since start.
    pub changes_applied: u64,
    /// Reads that replayed the log after a wake-up transport reconnected.
    pub replays: u64,
    /// Times the whole cache was invalidated because the log no longer reached back to the
    /// cursor (the flush at start is not counted).
    pub full_flushes: u64,
    /// Milliseconds since the last successful read of the change log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_read_ms_ago: Option<u64>,
    /// Propagation lag of the last change applied from elsewhere, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_lag_ms: Option<f64>,
    /// The largest propagation lag seen, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lag_ms: Option<f64>,
    /// Pruning of the change log, when this instance prunes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruning: Option<PruneStatus>,
    /// The last error reading the change log, if the last read failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// PostgreSQL LISTEN.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ListenStatus {
    /// Whether the LISTEN connection is up.
    pub connected: bool,
    /// Notifications received since start.
    pub notifications: u64,
    /// Changes applied straight from notifications' payloads (the log read then skips them).
    pub changes_applied: u64,
    /// Times the connection was lost and opened again.
    pub reconnects: u64,
    /// Why the connection last failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Redis pub/sub.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RedisStatus {
    /// The URL, password hidden.
    pub url: String,
    /// The channel.
    pub channel: String,
    /// Whether Redis is usable: subscribed and able to publish.
    pub up: bool,
    /// Whether the subscription is up.
    pub subscribed: bool,
    /// Whether the publishing connection is up.
    pub publishing: bool,
    /// Messages received from other instances.
    pub messages_received: u64,
    /// Changes applied straight from Redis messages.
    pub changes_applied: u64,
    /// Messages published after this instance's own commits.
    pub published: u64,
    /// Messages not published because Redis was down (other instances get those changes from
    /// the change log).
    pub publish_dropped: u64,
    /// Times a Redis connection was lost and opened again.
    pub reconnects: u64,
    /// Why Redis last failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Change-log pruning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct PruneStatus {
    /// How long changes are kept, in seconds.
    pub keep_secs: u64,
    /// Runs since start.
    pub runs: u64,
    /// Rows deleted since start.
    pub rows_pruned: u64,
    /// Why the last run failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Upper bounds of the propagation-lag histogram's buckets, in seconds.
pub const LAG_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of propagation lag: from the change's time in the change log (the database's
/// clock, in the writing transaction) to when this instance applied it.
#[derive(Debug, Clone, PartialEq)]
pub struct LagHistogram {
    /// Per bucket of [`LAG_BUCKETS`], how many lags were at most its bound (cumulative, as
    /// Prometheus wants).
    pub buckets: Vec<(f64, u64)>,
    /// How many lags were recorded (the `+Inf` bucket).
    pub count: u64,
    /// Their sum, in seconds.
    pub sum_seconds: f64,
}

/// Counters and the lag histogram, for `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedMetrics {
    /// Propagation lag of changes applied from elsewhere.
    pub lag: LagHistogram,
    /// Reads that replayed the log after a wake-up transport reconnected.
    pub replays: u64,
    /// Whole-cache invalidations because the log no longer reached back to the cursor.
    pub full_flushes: u64,
    /// Changes made elsewhere applied to the cache.
    pub changes_applied: u64,
    /// Whether the feed is ready (see [`FeedStatus::ready`]).
    pub ready: bool,
    /// Whether Redis is up; `None` when not configured.
    pub redis_up: Option<bool>,
    /// Whether LISTEN is up; `None` when it does not run.
    pub listen_up: Option<bool>,
    /// Change-log rows pruned by this instance.
    pub rows_pruned: u64,
}

impl FeedMetrics {
    /// Appends the metrics in Prometheus' text format, each family with its `# HELP` and
    /// `# TYPE`: `rulebook_feed_propagation_lag_seconds` (histogram),
    /// `rulebook_feed_replays_total`, `rulebook_feed_full_flushes_total`,
    /// `rulebook_feed_changes_applied_total`, `rulebook_feed_pruned_rows_total`,
    /// `rulebook_feed_ready`, and `rulebook_feed_redis_up` / `rulebook_feed_listen_up` when
    /// those run.
    pub fn write_prometheus(&self, out: &mut String) {
        let name = "rulebook_feed_propagation_lag_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a change's commit to this instance applying it.\n# TYPE {name} histogram"
        );
        for (bound, count) in &self.lag.buckets {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.lag.count);
        let _ = writeln!(out, "{name}_sum {}", self.lag.sum_seconds);
        let _ = writeln!(out, "{name}_count {}", self.lag.count);
        let counters = [
            (
                "rulebook_feed_replays_total",
                "Reads of the change log replaying after a wake-up transport reconnected.",
                self.replays,
            ),
            (
                "rulebook_feed_full_flushes_total",
                "Whole-cache invalidations because the change log no longer reached back to the cursor.",
                self.full_flushes,
            ),
            (
                "rulebook_feed_changes_applied_total",
                "Changes made elsewhere applied to this instance's cache.",
                self.changes_applied,
            ),
            (
                "rulebook_feed_pruned_rows_total",
                "Change-log rows pruned by this instance.",
                self.rows_pruned,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let mut gauges = vec![(
            "rulebook_feed_ready",
            "Whether the change feed can tell the cache is current.",
            self.ready,
        )];
        if let Some(up) = self.redis_up {
            gauges.push(("rulebook_feed_redis_up", "Whether Redis pub/sub is up.", up));
        }
        if let Some(up) = self.listen_up {
            gauges.push((
                "rulebook_feed_listen_up",
                "Whether the PostgreSQL LISTEN connection is up.",
                up,
            ));
        }
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                u8::from(value)
            );
        }
    }
}

/// The recording side of [`LagHistogram`].
#[derive(Debug, Default)]
pub(crate) struct LagRecorder {
    /// Per bucket, lags that fell in it (not cumulative).
    counts: [u64; LAG_BUCKETS.len()],
    /// Lags above the last bound.
    over: u64,
    count: u64,
    sum_seconds: f64,
    last: Option<Duration>,
    max: Option<Duration>,
    /// The most recent lags, oldest first, for benches and diagnostics.
    recent: std::collections::VecDeque<Duration>,
}

/// How many recent lags [`LagRecorder`] keeps.
pub(crate) const RECENT_LAGS: usize = 4096;

impl LagRecorder {
    pub(crate) fn record(&mut self, lag: Duration) {
        let seconds = lag.as_secs_f64();
        match LAG_BUCKETS.iter().position(|bound| seconds <= *bound) {
            Some(i) => self.counts[i] += 1,
            None => self.over += 1,
        }
        self.count += 1;
        self.sum_seconds += seconds;
        self.last = Some(lag);
        self.max = Some(self.max.map_or(lag, |m| m.max(lag)));
        if self.recent.len() == RECENT_LAGS {
            self.recent.pop_front();
        }
        self.recent.push_back(lag);
    }

    pub(crate) fn histogram(&self) -> LagHistogram {
        let mut cumulative = 0;
        let buckets = LAG_BUCKETS
            .iter()
            .zip(self.counts)
            .map(|(bound, n)| {
                cumulative += n;
                (*bound, cumulative)
            })
            .collect();
        LagHistogram {
            buckets,
            count: self.count,
            sum_seconds: self.sum_seconds,
        }
    }

    pub(crate) fn last(&self) -> Option<Duration> {
        self.last
    }

    pub(crate) fn max(&self) -> Option<Duration> {
        self.max
    }

    pub(crate) fn recent(&self) -> Vec<Duration> {
        self.recent.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_the_overflow() {
        let mut lags = LagRecorder::default();
        for ms in [0, 1, 3, 3, 40, 20_000] {
            lags.record(Duration::from_millis(ms));
        }
        let h = lags.histogram();
        assert_eq!(h.count, 6);
        let at = |bound: f64| h.buckets.iter().find(|(b, _)| *b == bound).map(|(_, n)| *n);
        assert_eq!(at(0.0005), Some(1));
        assert_eq!(at(0.001), Some(2));
        assert_eq!(at(0.005), Some(4));
        assert_eq!(at(0.05), Some(5));
        assert_eq!(at(10.0), Some(5), "20 s is only in +Inf");
        assert!((h.sum_seconds - 20.047).abs() < 1e-9);
        assert_eq!(lags.max(), Some(Duration::from_secs(20)));
        assert_eq!(lags.recent().len(), 6);
    }

    #[test]
    fn prometheus_text_has_every_family() {
        let mut lags = LagRecorder::default();
        lags.record(Duration::from_millis(2));
        let metrics = FeedMetrics {
            lag: lags.histogram(),
            replays: 3,
            full_flushes: 1,
            changes_applied: 7,
            ready: true,
            redis_up: Some(false),
            listen_up: None,
            rows_pruned: 0,
        };
        let mut out = String::new();
        metrics.write_prometheus(&mut out);
        for line in [
            "# TYPE rulebook_feed_propagation_lag_seconds histogram",
            "rulebook_feed_propagation_lag_seconds_bucket{le=\"0.002\"} 1",
            "rulebook_feed_propagation_lag_seconds_bucket{le=\"+Inf\"} 1",
            "rulebook_feed_propagation_lag_seconds_count 1",
            "rulebook_feed_replays_total 3",
            "rulebook_feed_full_flushes_total 1",
            "rulebook_feed_changes_applied_total 7",
            "rulebook_feed_ready 1",
            "rulebook_feed_redis_up 0",
        ] {
            assert!(out.lines().any(|l| l == line), "missing `{line}` in\n{out}");
        }
        assert!(!out.contains("listen_up"));
    }
}
