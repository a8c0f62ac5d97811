//! [`Client`]: the HTTP API, typed. Every answer comes back with its `seq` ([`Fresh`]).

use std::time::Duration;

use rulebook_rules::{Evaluation, Rule, ScoreResult};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::wire::{EnabledAnswer, Fresh, ParamAnswer, Snapshot, MIN_SEQ_HEADER};

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error (`{"error": {"code", "message", "errors"}}`); an
    /// answer not in that shape has code [`UNEXPECTED`] and its text as the message.
    #[error("{status} {code}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The stable machine-readable code, such as `rule_not_found` or `not_yet_current`.
        code: String,
        /// What to fix.
        message: String,
        /// Every field problem the server listed (a 422), in its order.
        errors: Vec<FieldProblem>,
    },
    /// The request was larger than the server takes (HTTP 413): `code` says which limit
    /// (`body_too_large`, `import_too_large`, `line_too_large`), `limit` its size in bytes when
    /// the server said.
    #[error("413 {code}: {message}")]
    TooLarge {
        /// The stable machine-readable code.
        code: String,
        /// What the server said, naming the limit and the setting that raises it.
        message: String,
        /// The limit, in bytes.
        limit: Option<u64>,
    },
    /// The server could not be reached: no connection could be made (refused, no such host).
    #[error("cannot reach the server at `{url}`: {reason}")]
    Unreachable {
        /// The server's base URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A replica refused a call as the server refuses it (an entry point that is not valid, a
    /// scorecard with no factors, overrides its schema refuses): `status` and `code` are those
    /// of the server's answer to the same call, though the server was not asked.
    #[error("{code}: {message}")]
    Refused {
        /// The HTTP status the server answers this call with.
        status: u16,
        /// The server's code for it, such as `scorecard_not_found` or `bad_entry_point`.
        code: String,
        /// What to fix.
        message: String,
        /// Every field problem (overrides that break a param schema), in order.
        errors: Vec<FieldProblem>,
    },
    /// Connecting or waiting for the answer took too long.
    #[error("timed out talking to the server at `{url}`: {reason}")]
    Timeout {
        /// The server's base URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The connection was made but broke before a whole answer came (the server stopped or
    /// closed it while the request was being sent), or the answer could not be read.
    #[error("the connection to the server at `{url}` broke before it answered: {reason}")]
    Interrupted {
        /// The server's base URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A replica could not answer (see [`crate::Replica`]): it did not reflect the caller's own
    /// write in time, or its runtime could not start.
    #[error("{0}")]
    Replica(String),
}

impl ClientError {
    /// The API error code, when the server answered with an error or a replica refused the
    /// call as the server would.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. }
            | ClientError::Refused { code, .. }
            | ClientError::TooLarge { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A client of one Rulebook server (or load balancer) for one tenant. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    tenant: String,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
    #[serde(default)]
    errors: Vec<FieldProblem>,
    #[serde(default)]
    limit: Option<u64>,
}

/// The code of a [`ClientError::Api`] whose answer was not the API's error shape (a proxy's
/// page, say).
pub const UNEXPECTED: &str = "unexpected";

/// One problem of a request that failed validation: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FieldProblem {
    /// Where, in the request body, such as `rules[17].priority`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// An answer as it came: for callers that pass JSON through (the CLI).
#[derive(Debug, Clone)]
pub struct RawAnswer {
    /// The HTTP status (a success).
    pub status: u16,
    /// The `ETag`, without its quotes.
    pub etag: Option<String>,
    /// The JSON body (`null` if empty, a string if it is not JSON).
    pub body: Value,
}

#[derive(Serialize)]
struct EvaluateBody<'a> {
    context: &'a Value,
}

/// The answer of `GET /v1/rules`.
#[derive(Debug, Clone, Deserialize)]
struct RuleList {
    rules: Vec<Rule>,
    next_cursor: Option<String>,
}

impl Client {
    /// A client of the server at `base` (such as `http://127.0.0.1:8080`) for tenant `default`,
    /// without a token.
    pub fn new(base: impl Into<String>) -> Client {
        Client {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            base: base.into().trim_end_matches('/').to_owned(),
            token: None,
            tenant: rulebook_rules::DEFAULT_TENANT.to_owned(),
        }
    }

    /// The same client sending `token` (`Authorization: Bearer`).
    pub fn with_token(mut self, token: impl Into<String>) -> Client {
        self.token = Some(token.into());
        self
    }

    /// The same client for `tenant` (`X-Tenant-ID`).
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Client {
        self.tenant = tenant.into();
        self
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-tenant-id", &self.tenant);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    pub(crate) fn unreachable(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        }
    }

    /// What a failed exchange with the server stands for, by reqwest's own kinds: no connection,
    /// too slow, or broken on the way. The reason is the innermost causes, which say the most
    /// (`Connection refused (os error 111)`).
    pub(crate) fn transport(&self, e: reqwest::Error) -> ClientError {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !reason.contains(&text) {
                reason = format!("{reason}: {text}");
            }
            source = cause.source();
        }
        let url = self.base.clone();
        if e.is_timeout() {
            ClientError::Timeout { url, reason }
        } else if e.is_connect() {
            ClientError::Unreachable { url, reason }
        } else {
            ClientError::Interrupted { url, reason }
        }
    }

    /// Sends `method path` with an optional JSON body and `If-Match`, and returns the answer's
    /// JSON as it is; an error answer becomes [`ClientError::Api`].
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<i64>,
    ) -> Result<RawAnswer, ClientError> {
        let mut request = self.request(method, path);
        if let Some(version) = if_match {
            request = request.header("if-match", format!("\"{version}\""));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.raw_answer(request).await
    }

    /// Sends `POST path` with `body` as it comes (a stream, see [`reqwest::Body::wrap_stream`])
    /// of `content_type`, declaring `length` bytes when given, and returns the answer's JSON as
    /// it is; an error answer becomes [`ClientError::Api`] (413: [`ClientError::TooLarge`]).
    pub async fn send_stream(
        &self,
        path: &str,
        content_type: &str,
        body: reqwest::Body,
        length: Option<u64>,
    ) -> Result<RawAnswer, ClientError> {
        let mut request = self
            .request(reqwest::Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(length) = length {
            request = request.header(reqwest::header::CONTENT_LENGTH, length);
        }
        self.raw_answer(request).await
    }

    async fn raw_answer(&self, request: reqwest::RequestBuilder) -> Result<RawAnswer, ClientError> {
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_matches('"').to_owned());
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &bytes));
        }
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(RawAnswer {
            status: status.as_u16(),
            etag,
            body,
        })
    }

    /// Sends `request` and reads a JSON answer (an error answer becomes [`ClientError::Api`]).
    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &bytes));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| self.unreachable(format!("unreadable answer: {e}")))
    }

    fn with_min_seq(
        request: reqwest::RequestBuilder,
        min_seq: Option<i64>,
    ) -> reqwest::RequestBuilder {
        match min_seq {
            Some(seq) => request.header(MIN_SEQ_HEADER, seq),
            None => request,
        }
    }

    /// `GET /v1/snapshot`: every rule of the tenant and the `seq` it reflects.
    pub async fn snapshot(&self, min_seq: Option<i64>) -> Result<Fresh<Snapshot>, ClientError> {
        let request =
            Client::with_min_seq(self.request(reqwest::Method::GET, "/v1/snapshot"), min_seq);
        self.call(request).await
    }

    /// `POST /v1/evaluate/{entry_point}` with `context` (a JSON object).
    pub async fn evaluate(
        &self,
        entry_point: &str,
        context: &Value,
        min_seq: Option<i64>,
    ) -> Result<Fresh<Evaluation>, ClientError> {
        let request = self
            .request(
                reqwest::Method::POST,
                &format!("/v1/evaluate/{}", segment(entry_point)),
            )
            .json(&EvaluateBody { context });
        self.call(Client::with_min_seq(request, min_seq)).await
    }

    /// `GET /v1/params/{rule_id}/{field}`.
    pub async fn param(
        &self,
        rule_id: &str,
        field: &str,
        min_seq: Option<i64>,
    ) -> Result<Fresh<ParamAnswer>, ClientError> {
        let path = format!("/v1/params/{}/{}", segment(rule_id), segment(field));
        let request = Client::with_min_seq(self.request(reqwest::Method::GET, &path), min_seq);
        self.call(request).await
    }

    /// `GET /v1/rules/{id}/enabled`.
    pub async fn is_enabled(
        &self,
        rule_id: &str,
        min_seq: Option<i64>,
    ) -> Result<Fresh<EnabledAnswer>, ClientError> {
        let path = format!("/v1/rules/{}/enabled", segment(rule_id));
        let request = Client::with_min_seq(self.request(reqwest::Method::GET, &path), min_seq);
        self.call(request).await
    }

    /// `POST /v1/score/{scorecard}` with `input`.
    pub async fn score(
        &self,
        scorecard: &str,
        input: &Value,
    ) -> Result<Fresh<ScoreResult>, ClientError> {
        let request = self
            .request(
                reqwest::Method::POST,
                &format!("/v1/score/{}", segment(scorecard)),
            )
            .json(&json!({ "input": input }));
        self.call(request).await
    }

    /// `GET /v1/rules`: every rule of the tenant, paging through (10,000 a page); `seq` is the
    /// first page's, which the whole answer reflects at least.
    pub async fn rules(&self) -> Result<Fresh<Vec<Rule>>, ClientError> {
        let mut rules = Vec::new();
        let mut seq = None;
        let mut cursor: Option<String> = None;
        loop {
            let mut path = "/v1/rules?limit=10000".to_owned();
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={}", segment(cursor)));
            }
            let page: Fresh<RuleList> =
                self.call(self.request(reqwest::Method::GET, &path)).await?;
            seq.get_or_insert(page.seq);
            rules.extend(page.body.rules);
            match page.body.next_cursor {
                Some(next) => cursor = Some(next),
                None => {
                    return Ok(Fresh {
                        seq: seq.unwrap_or(page.seq),
                        body: rules,
                    })
                }
            }
        }
    }

    /// `GET /v1/rules/{id}`.
    pub async fn rule(&self, id: &str, min_seq: Option<i64>) -> Result<Fresh<Rule>, ClientError> {
        let path = format!("/v1/rules/{}", segment(id));
        let request = Client::with_min_seq(self.request(reqwest::Method::GET, &path), min_seq);
        self.call(request).await
    }

    /// `POST /v1/rules`: creates `rule` (a rule document); the answer's `seq` is the write's.
    pub async fn create_rule(&self, rule: &Value) -> Result<Fresh<Rule>, ClientError> {
        self.call(self.request(reqwest::Method::POST, "/v1/rules").json(rule))
            .await
    }

    /// `PATCH /v1/rules/{id}/params`: merges `params` into the rule's params.
    pub async fn update_params(
        &self,
        id: &str,
        params: Map<String, Value>,
    ) -> Result<Fresh<Rule>, ClientError> {
        let path = format!("/v1/rules/{}/params", segment(id));
        let request = self
            .request(reqwest::Method::PATCH, &path)
            .json(&json!({ "params": params }));
        self.call(request).await
    }

    /// `POST /v1/rules/{id}/enable` or `/disable`.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<Fresh<Rule>, ClientError> {
        let verb = if enabled { "enable" } else { "disable" };
        let path = format!("/v1/rules/{}/{verb}", segment(id));
        self.call(self.request(reqwest::Method::POST, &path)).await
    }

    /// `DELETE /v1/rules/{id}`; the answer's `seq` is the write's.
    pub async fn delete_rule(&self, id: &str) -> Result<i64, ClientError> {
        let path = format!("/v1/rules/{}", segment(id));
        let answer: Fresh<Value> = self
            .call(self.request(reqwest::Method::DELETE, &path))
            .await?;
        Ok(answer.seq)
    }
}

/// One URL path segment, percent-encoded.
/// The error an answer with `status` and body `bytes` stands for.
pub(crate) fn api_error(status: u16, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorEnvelope>(bytes) {
        Ok(envelope) if status == 413 => ClientError::TooLarge {
            code: envelope.error.code,
            message: envelope.error.message,
            limit: envelope.error.limit,
        },
        Ok(envelope) => ClientError::Api {
            status,
            code: envelope.error.code,
            message: envelope.error.message,
            errors: envelope.error.errors,
        },
        Err(_) => ClientError::Api {
            status,
            code: UNEXPECTED.to_owned(),
            message: String::from_utf8_lossy(bytes).into_owned(),
            errors: Vec::new(),
        },
    }
}

/// Percent-encodes one path segment (or query value).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
