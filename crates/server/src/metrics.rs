//! Request metrics and the Prometheus text of `/metrics`.
//!
//! Each route (the matched path pattern, such as `/v1/evaluate/{entry_point}`, never the raw
//! path) and method (standard methods by name, any other as `other`) has a request counter per status and a latency
//! histogram. The counters are atomics: the hot path takes a read lock on the route table and
//! adds to a few atomics, so metrics stay on in production.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use parking_lot::RwLock;

use crate::state::AppState;

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The request metrics of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Per route, then per method. A read-write lock: a new route is written once, every
    /// request after that only reads (and looks up by `&str`, allocating nothing).
    routes: RwLock<HashMap<String, HashMap<String, Arc<RouteMetrics>>>>,
    /// Failed authentications and authorisations, indexed by [`AuthFailure`].
    auth_failures: [AtomicU64; AuthFailure::ALL.len()],
}

/// Why a request was refused for its token: the `reason` label of
/// `rulebook_auth_failures_total`, a fixed set so the label cannot grow with input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header where one is needed.
    MissingToken,
    /// An `Authorization` header that is not `Bearer <token>`.
    BadToken,
    /// A token that is unknown or revoked.
    InvalidToken,
    /// A valid token whose role is too low.
    ForbiddenRole,
    /// A valid token limited to another tenant.
    ForbiddenTenant,
}

impl AuthFailure {
    /// Every reason, in the order of the counters.
    pub const ALL: [AuthFailure; 5] = [
        AuthFailure::MissingToken,
        AuthFailure::BadToken,
        AuthFailure::InvalidToken,
        AuthFailure::ForbiddenRole,
        AuthFailure::ForbiddenTenant,
    ];

    /// The label value, also the error code of the refusal.
    pub fn label(self) -> &'static str {
        match self {
            AuthFailure::MissingToken => "missing_token",
            AuthFailure::BadToken => "bad_token",
            AuthFailure::InvalidToken => "invalid_token",
            AuthFailure::ForbiddenRole => "forbidden_role",
            AuthFailure::ForbiddenTenant => "forbidden_tenant",
        }
    }
}

#[derive(Debug)]
struct RouteMetrics {
    /// Requests per status code, indexed by the code (100..=599).
    statuses: Box<[AtomicU64]>,
    /// Cumulative-free bucket counts; the last one is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl RouteMetrics {
    fn new() -> RouteMetrics {
        RouteMetrics {
            statuses: (0..600).map(|_| AtomicU64::new(0)).collect(),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts one refused token.
    pub fn auth_failed(&self, why: AuthFailure) {
        self.auth_failures[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Tokens refused for `why` so far.
    pub fn auth_failures(&self, why: AuthFailure) -> u64 {
        self.auth_failures[why as usize].load(Ordering::Relaxed)
    }

    fn write_auth_failures(&self, out: &mut String) {
        header(
            out,
            "rulebook_auth_failures_total",
            "counter",
            "requests refused for their token (missing, malformed, unknown or revoked, wrong role, wrong tenant)",
        );
        for why in AuthFailure::ALL {
            let _ = writeln!(
                out,
                "rulebook_auth_failures_total{{reason=\"{}\"}} {}",
                why.label(),
                self.auth_failures(why)
            );
        }
    }

    /// Records one request.
    pub fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let existing = self
            .routes
            .read()
            .get(route)
            .and_then(|methods| methods.get(method))
            .cloned();
        let route = match existing {
            Some(metrics) => metrics,
            None => Arc::clone(
                self.routes
                    .write()
                    .entry(route.to_owned())
                    .or_default()
                    .entry(method.to_owned())
                    .or_insert_with(|| Arc::new(RouteMetrics::new())),
            ),
        };
        if let Some(counter) = route.statuses.get(usize::from(status)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        route.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        route.sum_nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        route.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered so far on `method route` with `status`.
    pub fn requests(&self, method: &str, route: &str, status: u16) -> u64 {
        self.routes
            .read()
            .get(route)
            .and_then(|methods| methods.get(method))
            .and_then(|r| r.statuses.get(usize::from(status)))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn write_requests(&self, out: &mut String) {
        let mut routes: Vec<((String, String), Arc<RouteMetrics>)> = self
            .routes
            .read()
            .iter()
            .flat_map(|(route, methods)| {
                methods
                    .iter()
                    .map(|(method, m)| ((method.clone(), route.clone()), Arc::clone(m)))
            })
            .collect();
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        header(
            out,
            "rulebook_http_requests_total",
            "counter",
            "HTTP requests answered, by method, route and status",
        );
        for ((method, route), m) in &routes {
            for (status, counter) in m.statuses.iter().enumerate() {
                let n = counter.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "rulebook_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                        escape(route)
                    );
                }
            }
        }
        header(
            out,
            "rulebook_http_request_duration_seconds",
            "histogram",
            "HTTP request latency, by method and route",
        );
        for ((method, route), m) in &routes {
            let route = escape(route);
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += m.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "rulebook_http_request_duration_seconds_bucket{{method=\"{method}\",route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            cumulative += m.buckets[BUCKETS.len()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "rulebook_http_request_duration_seconds_bucket{{method=\"{method}\",route=\"{route}\",le=\"+Inf\"}} {cumulative}"
            );
            let sum = m.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "rulebook_http_request_duration_seconds_sum{{method=\"{method}\",route=\"{route}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "rulebook_http_request_duration_seconds_count{{method=\"{method}\",route=\"{route}\"}} {}",
                m.count.load(Ordering::Relaxed)
            );
        }
    }
}

/// The method as a metric label: the standard methods by name, any other (a client may send any
/// token as a method) as `other`, so that callers cannot add series.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// One request being served, for its metrics and its log line: started by
/// [`crate::api`]'s middleware before the request runs and finished with its response.
#[derive(Debug)]
pub struct Tracked {
    started: Instant,
    method: &'static str,
    route: Option<MatchedPath>,
}

impl Tracked {
    /// Starts the clock on `request`, noting its method (as a bounded label) and its route.
    pub fn start(request: &Request) -> Tracked {
        Tracked {
            started: Instant::now(),
            method: method_label(request.method()),
            route: request.extensions().get::<MatchedPath>().cloned(),
        }
    }

    /// Records the request's status and duration, and logs it: at `warn` for a 5xx answer, at
    /// `debug` otherwise.
    pub fn finish(self, state: &AppState, response: &Response) {
        let status = response.status().as_u16();
        let elapsed = self.started.elapsed();
        let route = self.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let method = self.method;
        state.metrics().record(method, route, status, elapsed);
        if status >= 500 {
            tracing::warn!(%method, %route, status, ?elapsed, "request failed");
        } else {
            tracing::debug!(%method, %route, status, ?elapsed, "request");
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole `/metrics` page.
pub fn render(state: &AppState) -> String {
    let mut out = String::with_capacity(8 * 1024);
    state.metrics().write_requests(&mut out);
    state.metrics().write_auth_failures(&mut out);

    let stats = state.registry().cache_stats();
    let counters: [(&str, u64, &str); 15] = [
        ("hits", stats.hits, "reads answered from the cache"),
        ("misses", stats.misses, "reads that found no live entry"),
        ("loads", stats.loads, "loads from the store started"),
        ("load_errors", stats.load_errors, "loads that failed"),
        ("load_panics", stats.load_panics, "loads that panicked"),
        (
            "coalesced_waiters",
            stats.coalesced_waiters,
            "callers that waited for another caller's load",
        ),
        (
            "invalidations_key",
            stats.invalidations_key,
            "invalidations by key",
        ),
        (
            "invalidations_tag",
            stats.invalidations_tag,
            "invalidations by tag",
        ),
        (
            "invalidations_all",
            stats.invalidations_all,
            "invalidations of everything",
        ),
        (
            "invalidated_entries",
            stats.invalidated_entries,
            "entries removed by invalidations",
        ),
        (
            "discarded_loads",
            stats.discarded_loads,
            "loads not cached because an invalidation came while they ran",
        ),
        (
            "evictions_size",
            stats.evictions_size,
            "entries evicted by the size bound",
        ),
        (
            "evictions_expired",
            stats.evictions_expired,
            "entries expired by the time to live",
        ),
        (
            "evictions_idle",
            stats.evictions_idle,
            "entries expired by the time to idle",
        ),
        (
            "refused_stale_inserts",
            stats.refused_stale_inserts,
            "inserts refused because a newer version was cached",
        ),
    ];
    for (name, value, help) in counters {
        let metric = format!("rulebook_cache_{name}_total");
        header(&mut out, &metric, "counter", help);
        let _ = writeln!(out, "{metric} {value}");
    }
    header(
        &mut out,
        "rulebook_cache_entries",
        "gauge",
        "entries cached now",
    );
    let _ = writeln!(out, "rulebook_cache_entries {}", state.registry().len());
    header(
        &mut out,
        "rulebook_tenants_cached",
        "gauge",
        "tenants whose compiled rules are kept in memory",
    );
    let _ = writeln!(out, "rulebook_tenants_cached {}", state.tenants_cached());

    header(
        &mut out,
        "rulebook_loads_total",
        "counter",
        "loads from the store, by tenant and cached item (entry_point:<ep>, params, scorecard:<name> when it has rules; the rest as unlisted)",
    );
    for count in state.registry().load_counts() {
        let _ = writeln!(
            out,
            "rulebook_loads_total{{tenant=\"{}\",item=\"{}\"}} {}",
            escape(&count.tenant),
            escape(&count.item),
            count.loads
        );
    }

    if let Some(feed) = state.feed_status() {
        header(
            &mut out,
            "rulebook_feed_healthy",
            "gauge",
            "1 if the last read of the change log succeeded",
        );
        let _ = writeln!(out, "rulebook_feed_healthy {}", u8::from(feed.healthy));
        header(
            &mut out,
            "rulebook_feed_cursor_seq",
            "gauge",
            "the highest change-log sequence read",
        );
        let _ = writeln!(out, "rulebook_feed_cursor_seq {}", feed.cursor_seq);
    }
    header(
        &mut out,
        "rulebook_applied_seq",
        "gauge",
        "the highest change-log sequence applied to the cache",
    );
    let _ = writeln!(
        out,
        "rulebook_applied_seq {}",
        state.registry().applied_seq()
    );
    header(
        &mut out,
        "rulebook_ready",
        "gauge",
        "1 once the first load from the store has finished",
    );
    let _ = writeln!(out, "rulebook_ready {}", u8::from(state.is_ready()));
    out.push_str(&state.feed_metrics_text());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_first_bucket_that_holds_it() {
        let metrics = Metrics::default();
        metrics.record("GET", "/health", 200, Duration::from_micros(300));
        metrics.record("GET", "/health", 503, Duration::from_secs(10));
        assert_eq!(metrics.requests("GET", "/health", 200), 1);
        assert_eq!(metrics.requests("GET", "/health", 503), 1);
        let mut out = String::new();
        metrics.write_requests(&mut out);
        assert!(out.contains("route=\"/health\",le=\"0.00025\"} 0"), "{out}");
        assert!(out.contains("route=\"/health\",le=\"0.0005\"} 1"), "{out}");
        assert!(out.contains("route=\"/health\",le=\"+Inf\"} 2"), "{out}");
    }
}
