//! The web admin at `/admin`: a rule author's tool, served as HTML pages.
//!
//! A tour:
//!
//! - [`session`]: sign-in sessions kept by the server (the cookie holds only a random id), and
//!   the CSRF token every form carries.
//! - [`client`]: how a page reads and writes: by calling the JSON API inside the process with
//!   the session's token, so every check and every validation is the API's own.
//! - [`pages`]: sign in and out, the tenant switch, entry points, rule lists and search,
//!   trying an entry point, and operations (health, feed, cache statistics, clearing).
//! - [`editor`]: the rule editor (create, edit with `If-Match`, field errors, conflicts, trying
//!   the unsaved edit as a draft), history, diffs and rollback.
//!
//! # Design decisions
//!
//! - **Server-rendered pages, no script.** Every action is an HTML form sent to the server,
//!   which answers with the next page. Nothing needs JavaScript, so there is no build step and
//!   no front-end library to vendor, the pages work with the keyboard alone (native controls
//!   in document order), and the Content-Security-Policy allows no script at all
//!   (`script-src 'none'`); the one stylesheet is served by this server. Confirmations (clearing
//!   the cache) are a second page rather than a dialog.
//! - **Templates: minijinja.** A small, well-kept template engine (no proc macros, few
//!   dependencies) with HTML autoescaping on by default, so every value a user wrote (rule
//!   names, reasons, JSON) is escaped without the templates having to ask. The templates are
//!   compiled into the binary (`include_str!`) and parsed once; the browser test renders every
//!   page, so a template error cannot hide. askama checks templates at compile time but adds a
//!   proc macro and its build cost to every build of the server.
//! - **The pages are not part of the JSON API.** They are not in the OpenAPI document (they are
//!   HTML for people, not operations for programs); `tests/openapi.rs` names the `/admin`
//!   prefix as its one exemption.

pub mod client;
pub mod editor;
pub mod pages;
pub mod session;

use std::sync::{Arc, LazyLock};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::Environment;
use serde::Serialize;

use crate::state::AppState;
use client::Answer;
use session::{Session, Sessions};

/// What the admin's handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The service's state (the store, for listing tenants and checking tokens; the metrics).
    pub app: AppState,
    /// The JSON API's router, which the pages call (see [`client`]).
    pub api: Router,
    /// The signed-in sessions.
    pub sessions: Sessions,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

impl FromRef<AdminState> for AppState {
    fn from_ref(state: &AdminState) -> AppState {
        state.app.clone()
    }
}

/// The admin's routes, over the JSON API's router `api`.
pub fn router(app: AppState, api: Router) -> Router {
    let state = AdminState {
        app: app.clone(),
        api,
        sessions: Sessions::default(),
    };
    Router::new()
        .route("/admin", get(pages::home))
        .route("/admin/", get(pages::home))
        .route("/admin/static/admin.css", get(pages::stylesheet))
        .route("/admin/sign-in", post(pages::sign_in))
        .route("/admin/sign-out", post(pages::sign_out))
        .route("/admin/tenant", post(pages::switch_tenant))
        .route("/admin/rules", get(pages::rules))
        .route(
            "/admin/try/{entry_point}",
            get(pages::try_page).post(pages::try_run),
        )
        .route("/admin/ops", get(pages::ops))
        .route("/admin/ops/clear", post(pages::clear))
        .route("/admin/new", get(editor::new_rule).post(editor::create))
        .route("/admin/rule/{id}", get(editor::edit).post(editor::save))
        .route("/admin/rule/{id}/history", get(editor::history))
        .route("/admin/rule/{id}/diff", get(editor::diff))
        .route("/admin/rule/{id}/rollback", post(editor::rollback))
        .layer(middleware::map_response(page_headers))
        .with_state(state)
}

/// The policy of every admin page: nothing loads but this server's stylesheet and images; no
/// script at all; forms post only here; no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'none'; \
     style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A signed-in request's session; without one, the request is sent to the sign-in page.
#[derive(Debug)]
pub struct SignedIn(pub Arc<Session>);

impl FromRequestParts<AdminState> for SignedIn {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, Response> {
        state
            .sessions
            .of(&parts.headers)
            .map(SignedIn)
            .ok_or_else(|| Redirect::to("/admin").into_response())
    }
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("result.html", include_str!("templates/result.html")),
        ("sign_in.html", include_str!("templates/sign_in.html")),
        ("home.html", include_str!("templates/home.html")),
        ("rules.html", include_str!("templates/rules.html")),
        ("try.html", include_str!("templates/try.html")),
        ("ops.html", include_str!("templates/ops.html")),
        ("confirm.html", include_str!("templates/confirm.html")),
        ("message.html", include_str!("templates/message.html")),
        ("edit.html", include_str!("templates/edit.html")),
        ("history.html", include_str!("templates/history.html")),
        ("diff.html", include_str!("templates/diff.html")),
    ] {
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "an admin template does not parse");
        }
    }
    env
});

/// The part of every page that shows who is signed in.
#[derive(Debug, Serialize)]
pub struct Frame {
    /// The token's name.
    pub name: String,
    /// The token's role.
    pub role: &'static str,
    /// Whether edit controls are shown.
    pub can_write: bool,
    /// Whether cache controls are shown.
    pub is_admin: bool,
    /// The session's CSRF token, for the forms.
    pub csrf: String,
    /// The current tenant.
    pub tenant: String,
    /// The tenants the token may switch to.
    pub tenants: Vec<String>,
}

impl Frame {
    /// The frame of `session`'s pages.
    pub async fn of(state: &AdminState, session: &Session) -> Frame {
        let tenants = match &session.scope {
            Some(tenant) => vec![tenant.clone()],
            None => state
                .app
                .store()
                .list_tenants()
                .await
                .unwrap_or_else(|_| vec![session.tenant()]),
        };
        Frame {
            name: session.name.clone(),
            role: session.role.as_str(),
            can_write: session.can_write(),
            is_admin: session.is_admin(),
            csrf: session.csrf.clone(),
            tenant: session.tenant(),
            tenants,
        }
    }
}

/// A template's context: `page!{ a, b => expr }` is the JSON object `{"a": a, "b": expr}`, each
/// value serialised (a value that cannot be is `null`).
macro_rules! page {
    ($($key:ident $(=> $value:expr)?),* $(,)?) => {{
        let mut map = serde_json::Map::new();
        $(
            map.insert(
                stringify!($key).to_owned(),
                serde_json::to_value(&$crate::admin::page!(@value $key $(, $value)?))
                    .unwrap_or_default(),
            );
        )*
        serde_json::Value::Object(map)
    }};
    (@value $key:ident) => { $key };
    (@value $key:ident, $value:expr) => { $value };
}
pub(crate) use page;

/// Renders template `name` with `context` as an HTML answer with `status`.
pub fn render(status: StatusCode, name: &str, context: serde_json::Value) -> Response {
    let rendered = TEMPLATES
        .get_template(name)
        .and_then(|template| template.render(minijinja::value::Serde(&context)));
    match rendered {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "an admin page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Rulebook admin</title><p>This page could not be shown; the server log says why.</p>".to_owned()),
            )
                .into_response()
        }
    }
}

/// A page that says what went wrong, with a link back.
pub fn message_page(
    frame: Option<&Frame>,
    status: StatusCode,
    title: &str,
    message: &str,
    back: &str,
) -> Response {
    render(
        status,
        "message.html",
        page! { frame, title, message, back },
    )
}

/// The page for an API answer that failed where no form can show it (a read that failed).
pub fn api_error_page(frame: &Frame, answer: &Answer, back: &str) -> Response {
    message_page(
        Some(frame),
        answer.status,
        "The server refused",
        &answer.message(),
        back,
    )
}

/// The answer to a form whose CSRF token is missing or wrong.
pub fn csrf_refused(frame: &Frame) -> Response {
    message_page(
        Some(frame),
        StatusCode::FORBIDDEN,
        "The form has expired",
        "this form does not carry the session's form token (it may be from an older session, or from another site): go back, reload the page and send it again",
        "/admin",
    )
}

/// `None` when the form's `csrf` is the session's; else the refusal page.
pub fn csrf_refusal(frame: &Frame, session: &Session, sent: &str) -> Option<Response> {
    (!session.csrf_matches(sent)).then(|| csrf_refused(frame))
}

/// `value` as indented JSON, for a text area or a result.
pub fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}
