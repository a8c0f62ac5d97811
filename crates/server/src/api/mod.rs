//! The HTTP API: [`app`] builds the router, one module per group of endpoints.
//!
//! | module | endpoints |
//! |---|---|
//! | [`answer`] | the evaluation answer's shape, shared by evaluate, score and batch |
//! | [`evaluate`] | `POST /v1/evaluate/{entry_point}`, `GET /v1/params/{rule_id}/{field}`, `GET /v1/rules/{id}/enabled`, `POST /v1/score/{scorecard}` |
//! | [`drafts`] | `POST /v1/evaluate/{entry_point}` with `drafts`: rules evaluated without saving them |
//! | [`batch`] | `POST /v1/evaluate`: several entry points, one context |
//! | [`rules`] | rules CRUD, enable, disable, params, history, `POST /v1/rules/import` |
//! | [`bounded`] | request bodies read as they arrive within a limit: the streamed (NDJSON) import |
//! | [`history`] | `GET /v1/rules/{id}/history/{version}`, `GET /v1/rules/{id}/diff`, `POST /v1/rules/{id}/rollback` |
//! | [`decisions`] | `GET /v1/decisions/{id}`, `GET /v1/decisions` |
//! | [`cache`] | `GET /v1/cache/stats`, `POST /v1/cache/invalidate` |
//! | [`snapshot`] | `GET /v1/snapshot` |
//! | [`changes`] | `GET /v1/changes` (Server-Sent Events) |
//! | [`ops`] | `GET /health`, `GET /health/live`, `GET /metrics` |
//! | [`openapi`] | `GET /openapi.json`: the OpenAPI 3.1 document, generated from the handlers |
//! | [`ofrep`] | `POST /ofrep/v1/evaluate/flags/{key}`, `POST /ofrep/v1/evaluate/flags`: rules and params as OpenFeature flags |
//!
//! [`app`] and [`openapi()`] are built from one list of handlers ([`routes`]): each handler's
//! `#[utoipa::path]` annotation says its method and path, and utoipa-axum's `OpenApiRouter`
//! routes it and documents it in the same step, so the router and the document cannot drift.
//! [`app`] adds the web admin's pages ([`crate::admin`]) beside them: HTML for people, not
//! operations, so not in the document.

pub mod answer;
pub mod batch;
pub mod bounded;
pub mod cache;
pub mod changes;
pub mod decisions;
pub mod drafts;
pub mod evaluate;
pub mod history;
pub mod ofrep;
pub mod openapi;
pub mod ops;
pub mod page;
pub mod rules;
pub mod snapshot;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

/// The whole HTTP service over `state`: the JSON API and the web admin's pages. Call it from
/// tests with `tower::ServiceExt::oneshot`, or serve it with [`crate::Server::serve`].
pub fn app(state: AppState) -> Router {
    let api = api_router(state.clone());
    crate::admin::router(state.clone(), api.clone())
        .layer(DefaultBodyLimit::max(state.limits().body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), around))
        .merge(api)
}

/// The JSON API alone (every route of [`routes`], with its limits, metrics and fallbacks): what
/// [`app`] serves besides the admin, and what the admin's pages call inside the process.
pub fn api_router(state: AppState) -> Router {
    let body_limit = state.limits().body_limit;
    let (router, _document) = routes().split_for_parts();
    router
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), around))
        .with_state(state)
}

/// The OpenAPI 3.1 document of [`app`]'s routes (served at `GET /openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// Every route, each routed and documented from its handler's `#[utoipa::path]` annotation.
/// Add a route here, with `routes!`, never with `route`: that would serve it undocumented (and
/// `every_route_is_in_the_openapi_document` would fail).
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(ops::health))
        .routes(routes!(ops::live))
        .routes(routes!(ops::metrics))
        .routes(routes!(openapi::document))
        .routes(routes!(batch::evaluate_many))
        .routes(routes!(evaluate::evaluate))
        .routes(routes!(evaluate::param))
        .routes(routes!(evaluate::score))
        .routes(routes!(ofrep::evaluate_flag))
        .routes(routes!(ofrep::evaluate_all))
        .routes(routes!(rules::list, rules::create))
        // A static path wins over `{id}`, so the rule whose id is `import` is served here too.
        .routes(routes!(
            rules::import,
            rules::get_import,
            rules::update_import,
            rules::delete_import
        ))
        .routes(routes!(rules::get, rules::update, rules::delete))
        .routes(routes!(evaluate::enabled))
        .routes(routes!(rules::patch_params))
        .routes(routes!(rules::enable))
        .routes(routes!(rules::disable))
        .routes(routes!(rules::history))
        .routes(routes!(snapshot::snapshot))
        .routes(routes!(changes::changes))
        .routes(routes!(history::version))
        .routes(routes!(history::diff))
        .routes(routes!(history::rollback))
        .routes(routes!(decisions::list))
        .routes(routes!(decisions::get))
        .routes(routes!(cache::stats))
        .routes(routes!(cache::invalidate))
}

/// Every request's middleware, one layer doing what three did (each `from_fn` layer boxes the
/// request's future and clones the service inside it, per request):
/// - the time limit: a request running longer than the configured timeout is answered 504
///   `request_timeout` ([`time_limit`]);
/// - the request's metrics and log line ([`crate::metrics::Tracked`]), timed around the limit;
/// - `X-Content-Type-Options: nosniff` on every answer, so a browser never guesses a JSON or
///   text body to be something it could run.
async fn around(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let tracked = crate::metrics::Tracked::start(&request);
    let mut response = time_limit(&state, request, next).await;
    response.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    tracked.finish(&state, &response);
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

/// Runs `request`, or answers 504 `request_timeout` when it takes longer than the configured
/// timeout (the import's own, longer, for a streamed import).
async fn time_limit(state: &AppState, request: Request, next: Next) -> Response {
    let (limit, setting) = if rules::is_streamed_import(&request) {
        (state.limits().import_timeout, "RULEBOOK_IMPORT_TIMEOUT")
    } else {
        (state.limits().request_timeout, "RULEBOOK_REQUEST_TIMEOUT")
    };
    let uri = request.uri().clone();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(%uri, ?limit, "request timed out");
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "request_timeout",
                format!(
                    "the request took longer than the server's limit of {limit:?} ({setting}): try again, or simplify it"
                ),
            )
            .into_response()
        }
    }
}
