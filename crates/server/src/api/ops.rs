//! Operations: health and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rulebook_store::FilesStatus;
use rulebook_sync::FeedStatus;
use serde::Serialize;

use crate::state::AppState;

/// The answer of `GET /health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, `starting` (the first load has not finished) or `degraded`.
    pub status: &'static str,
    /// The process answers (always true when this is sent).
    pub live: bool,
    /// Ready for traffic: the first load from the store has finished, the store answers and the
    /// change feed is ready (it has read the change log recently enough to tell that the cache
    /// is current).
    pub ready: bool,
    /// The store.
    pub store: StoreHealth,
    /// The change feed: transport, whether LISTEN and Redis are up, the cursor, propagation lag,
    /// replays and full flushes; `null` while no feed runs.
    pub feed: Option<FeedStatus>,
    /// The highest change-log sequence applied to the cache.
    pub applied_seq: i64,
    /// The rules folder, with `--rules-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules_dir: Option<RulesDirHealth>,
}

/// The store's part of `/health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StoreHealth {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Whether it answered just now.
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The rules folder's part of `/health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RulesDirHealth {
    /// The folder.
    pub dir: String,
    /// Files loaded.
    pub files: usize,
    /// Rules loaded.
    pub rules: usize,
    /// Files that cannot be used now (their last good version keeps serving).
    pub problems: Vec<FileProblemHealth>,
}

/// One unusable rule file.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FileProblemHealth {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub error: String,
}

impl From<FilesStatus> for RulesDirHealth {
    fn from(status: FilesStatus) -> Self {
        RulesDirHealth {
            dir: status.dir,
            files: status.files,
            rules: status.rules,
            problems: status
                .problems
                .into_iter()
                .map(|p| FileProblemHealth {
                    path: p.path,
                    error: p.error,
                })
                .collect(),
        }
    }
}

/// `GET /health`: 200 when ready, 503 otherwise; the body says why.
#[utoipa::path(
    get,
    path = "/health",
    tag = "ops",
    responses(
        (status = 200, description = "Ready for traffic", body = Health),
        (status = 503, description = "Not ready: starting, or degraded (the body says why)", body = Health),
    )
)]
pub async fn health(State(state): State<AppState>) -> Response {
    let ping = state.store().ping().await;
    let feed = state.feed_status();
    let loaded = state.is_ready();
    let ready = loaded && ping.is_ok() && feed.as_ref().is_some_and(|f| f.ready);
    let status = if ready {
        "ok"
    } else if !loaded {
        "starting"
    } else {
        "degraded"
    };
    let body = Health {
        status,
        live: true,
        ready,
        store: StoreHealth {
            backend: state.store().backend().name(),
            ok: ping.is_ok(),
            error: ping.err().map(|e| e.to_string()),
        },
        feed,
        applied_seq: state.registry().applied_seq(),
        rules_dir: state.files().map(|f| f.status().into()),
    };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// The answer of `GET /health/live`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Live {
    /// Always true: the process answers.
    pub live: bool,
}

/// `GET /health/live`: 200 while the process answers.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "ops",
    responses((status = 200, description = "The process answers", body = Live))
)]
pub async fn live() -> Json<Live> {
    Json(Live { live: true })
}

/// `GET /metrics`: Prometheus text.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses((status = 200, description = "Counters and latency histograms in Prometheus' text format", content_type = "text/plain", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&state),
    )
        .into_response()
}
