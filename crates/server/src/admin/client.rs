//! The pages' way to the data: calls of the JSON API inside the process.
//!
//! Every read and write a page makes is a request to the API's own router
//! ([`crate::api::api_router`]), sent with `tower::ServiceExt::oneshot` and carrying the
//! session's token as its bearer token. So the admin has no second copy of anything the API
//! does: the same token, role and tenant checks (a read-only token's forged form is refused by
//! the API, not by the page), the same validation with the same field paths, the same
//! `If-Match` rule, the same history. A revoked token stops working at its next call.

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt as _;

use super::session::Session;
use crate::auth::TENANT_HEADER;

/// The most bytes of an API answer a page reads (a full page of 10 000 rules fits).
const MAX_ANSWER_BYTES: usize = 256 * 1024 * 1024;

/// An API answer: status and JSON body (`null` when the body is not JSON).
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The JSON body.
    pub body: Value,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The error's `code` (`""` on success).
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    /// The error's message, or a generic one naming the status.
    pub fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the server answered {}", self.status))
    }
}

/// A call of the API on behalf of `session`, in its current tenant.
pub struct Call<'a> {
    api: &'a Router,
    session: &'a Session,
    method: Method,
    path: String,
    if_match: Option<i64>,
    body: Option<Value>,
}

impl std::fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("method", &self.method)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<'a> Call<'a> {
    /// A call of `method` `path` (with its query).
    pub fn new(api: &'a Router, session: &'a Session, method: Method, path: String) -> Self {
        Call {
            api,
            session,
            method,
            path,
            if_match: None,
            body: None,
        }
    }

    /// Sends `If-Match: "version"`.
    pub fn if_match(mut self, version: i64) -> Self {
        self.if_match = Some(version);
        self
    }

    /// Sends `body` as JSON.
    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Sends the call and reads the answer. An answer that cannot be read becomes a 502 whose
    /// message says so.
    pub async fn send(self) -> Answer {
        let mut builder = Request::builder()
            .method(self.method)
            .uri(&self.path)
            .header(TENANT_HEADER, self.session.tenant());
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", self.session.secret)) {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        if let Some(version) = self.if_match {
            builder = builder.header(header::IF_MATCH, format!("\"{version}\""));
        }
        let body = match self.body {
            Some(body) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        let request = match builder.body(body) {
            Ok(request) => request,
            Err(e) => return failed(format!("the request could not be built: {e}")),
        };
        let response = match self.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        match axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES).await {
            Ok(bytes) => Answer {
                status,
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            },
            Err(e) => failed(format!("the answer could not be read: {e}")),
        }
    }
}

fn failed(message: String) -> Answer {
    Answer {
        status: StatusCode::BAD_GATEWAY,
        body: serde_json::json!({"error": {"code": "admin_call_failed", "message": message}}),
    }
}

/// `text` made safe for a path segment or a query value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
