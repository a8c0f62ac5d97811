//! The HTTP API: [`app`] builds the router, one module per group of endpoints.
//!
//! | module | endpoints |
//! |---|---|
//! | [`answer`] | the evaluation answer's shape, shared by evaluate, score and batch |
//! | [`evaluate`] | `POST /v1/evaluate/{entry_point}`, `GET /v1/params/{rule_id}/{field}`, `GET /v1/rules/{id}/enabled`, `POST /v1/score/{scorecard}` |
//! | [`drafts`] | `POST /v1/evaluate/{entry_point}` with `drafts`: rules evaluated without saving them |
//! | [`batch`] | `POST /v1/evaluate`: several entry points, one context |
//! | [`rules`] | rules CRUD, enable, disable, params, history, `POST /v1/rules/import` |
//! | [`history`] | `GET /v1/rules/{id}/history/{version}`, `GET /v1/rules/{id}/diff`, `POST /v1/rules/{id}/rollback` |
//! | [`decisions`] | `GET /v1/decisions/{id}`, `GET /v1/decisions` |
//! | [`cache`] | `GET /v1/cache/stats`, `POST /v1/cache/invalidate` |
//! | [`snapshot`] | `GET /v1/snapshot` |
//! | [`changes`] | `GET /v1/changes` (Server-Sent Events) |
//! | [`ops`] | `GET /health`, `GET /health/live`, `GET /metrics`, `GET /admin` |

pub mod answer;
pub mod batch;
pub mod cache;
pub mod changes;
pub mod decisions;
pub mod drafts;
pub mod evaluate;
pub mod history;
pub mod ops;
pub mod page;
pub mod rules;
pub mod snapshot;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

/// The whole HTTP API over `state`. Call it from tests with `tower::ServiceExt::oneshot`, or
/// serve it with [`crate::Server::serve`].
pub fn app(state: AppState) -> Router {
    let body_limit = state.limits().body_limit;
    Router::new()
        .route("/health", get(ops::health))
        .route("/health/live", get(ops::live))
        .route("/metrics", get(ops::metrics))
        .route("/admin", get(ops::admin_page))
        .route("/v1/evaluate", post(batch::evaluate_many))
        .route("/v1/evaluate/{entry_point}", post(evaluate::evaluate))
        .route("/v1/params/{rule_id}/{field}", get(evaluate::param))
        .route("/v1/score/{scorecard}", post(evaluate::score))
        .route("/v1/rules", get(rules::list).post(rules::create))
        // A static path wins over `{id}`, so the rule whose id is `import` is served here too.
        .route(
            "/v1/rules/import",
            post(rules::import)
                .get(rules::get_import)
                .put(rules::update_import)
                .delete(rules::delete_import),
        )
        .route(
            "/v1/rules/{id}",
            get(rules::get).put(rules::update).delete(rules::delete),
        )
        .route("/v1/rules/{id}/enabled", get(evaluate::enabled))
        .route("/v1/rules/{id}/params", patch(rules::patch_params))
        .route("/v1/rules/{id}/enable", post(rules::enable))
        .route("/v1/rules/{id}/disable", post(rules::disable))
        .route("/v1/rules/{id}/history", get(rules::history))
        .route("/v1/snapshot", get(snapshot::snapshot))
        .route("/v1/changes", get(changes::changes))
        .route("/v1/rules/{id}/history/{version}", get(history::version))
        .route("/v1/rules/{id}/diff", get(history::diff))
        .route("/v1/rules/{id}/rollback", post(history::rollback))
        .route("/v1/decisions", get(decisions::list))
        .route("/v1/decisions/{id}", get(decisions::get))
        .route("/v1/cache/stats", get(cache::stats))
        .route("/v1/cache/invalidate", post(cache::invalidate))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), time_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .layer(middleware::map_response(nosniff))
        .with_state(state)
}

/// `X-Content-Type-Options: nosniff` on every answer, so a browser never guesses a JSON or text
/// body to be something it could run.
async fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    response
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::not_found(
        "no_route",
        format!(
            "there is no endpoint at `{}`: see the API table in the README",
            uri.path()
        ),
    )
}

async fn wrong_method(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "`{}` does not take `{}`: see the API table in the README",
            request.uri().path(),
            request.method()
        ),
    )
}

/// Answers 504 `request_timeout` when a request takes longer than the configured timeout.
async fn time_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.limits().request_timeout;
    let uri = request.uri().clone();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(%uri, ?limit, "request timed out");
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "request_timeout",
                format!(
                    "the request took longer than the server's limit of {limit:?} (RULEBOOK_REQUEST_TIMEOUT): try again, or simplify it"
                ),
            )
            .into_response()
        }
    }
}
