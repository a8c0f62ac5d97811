//! The cache by hand: statistics, and invalidation by entry points, tags or all. Nobody needs the
//! latter (every write invalidates what it touches after its commit); it is there for operators.

use axum::extract::State;
use axum::Json;
use rulebook_cache::CacheStats;
use rulebook_rules::EntryPoint;
use serde::{Deserialize, Serialize};

use crate::api::openapi::{Errors, TooLarge};
use crate::auth::{Admin, Reader};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::AppState;

/// The answer of `GET /v1/cache/stats`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// The tenant whose loads are listed.
    pub tenant: String,
    /// Entries cached now (all tenants).
    pub entries: usize,
    /// Tenants whose entries are kept now.
    pub tenants_cached: usize,
    /// The cache's counters since start (all tenants).
    pub counters: CacheStats,
    /// Loads from the store per cached item of this tenant, since start: items that have rules
    /// by name (at most `rulebook_store::MAX_LISTED_LOADS` over all tenants), the rest as
    /// `unlisted`.
    pub loads: Vec<ItemLoads>,
}

/// Loads of one cached item.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemLoads {
    /// `entry_point:<ep>`, `params`, `scorecard:<name>` or `unlisted`.
    pub item: String,
    /// Loads since start.
    pub loads: u64,
}

/// `GET /v1/cache/stats`.
#[utoipa::path(
    get,
    path = "/v1/cache/stats",
    tag = "cache",
    params(Reader),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The cache's counters, and this tenant's loads per item", body = Stats),
        Errors,
    )
)]
pub async fn stats(State(state): State<AppState>, Reader(caller): Reader) -> Json<Stats> {
    let loads = state
        .registry()
        .tenant_load_counts(&caller.tenant)
        .into_iter()
        .map(|c| ItemLoads {
            item: c.item,
            loads: c.loads,
        })
        .collect();
    Json(Stats {
        tenant: caller.tenant,
        entries: state.registry().len(),
        tenants_cached: state.tenants_cached(),
        counters: state.registry().cache_stats(),
        loads,
    })
}

/// The body of `POST /v1/cache/invalidate`.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invalidate {
    /// Entry points whose rulesets to drop.
    #[serde(default)]
    pub entry_points: Vec<String>,
    /// Tags (such as `currency:USD`, `rule:RF-002`, `params`) whose entries to drop.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Drop every entry of the tenant.
    #[serde(default)]
    pub all: bool,
}

/// `POST /v1/cache/invalidate` (admin): drops entries of the request's tenant. Answers what was
/// invalidated, entry points normalised.
#[utoipa::path(
    post,
    path = "/v1/cache/invalidate",
    tag = "cache",
    params(Admin),
    request_body = Invalidate,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What was invalidated, entry points normalised", body = Invalidate),
        TooLarge,
        Errors,
    )
)]
pub async fn invalidate(
    State(state): State<AppState>,
    Admin(caller): Admin,
    JsonBody(body): JsonBody<Invalidate>,
) -> Result<Json<Invalidate>, ApiError> {
    if body.entry_points.is_empty() && body.tags.is_empty() && !body.all {
        return Err(ApiError::bad_request(
            "nothing_to_invalidate",
            "say what to invalidate: `entry_points`, `tags`, or `\"all\": true`",
        ));
    }
    let entry_points = body
        .entry_points
        .iter()
        .map(|ep| EntryPoint::parse(ep))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(tag) = body.tags.iter().find(|t| t.trim().is_empty()) {
        return Err(ApiError::bad_request(
            "bad_tag",
            format!("tag `{tag}` is empty: name a tag such as `currency:USD`"),
        ));
    }
    state
        .registry()
        .invalidate_entry_points(&caller.tenant, &entry_points);
    state.registry().invalidate_tags(&caller.tenant, &body.tags);
    if body.all {
        state.invalidate_tenant(&caller.tenant);
    }
    tracing::info!(
        tenant = %caller.tenant,
        by = %caller.name,
        entry_points = ?entry_points,
        tags = ?body.tags,
        all = body.all,
        "cache invalidated by hand"
    );
    Ok(Json(Invalidate {
        entry_points: entry_points.iter().map(|e| e.as_str().to_owned()).collect(),
        tags: body.tags,
        all: body.all,
    }))
}
