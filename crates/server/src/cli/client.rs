//! The HTTP client the CLI talks to a server with.

use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{ApiFieldProblem, ApiProblem, CliError, Exit};

/// Where the server is and who is asking; shared by every command that talks to a server.
#[derive(Args, Debug, Clone)]
pub struct ClientOpts {
    /// The server's base URL.
    #[arg(
        long,
        env = "RULEBOOK_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// A bearer token (writes need the write role, `cache clear` the admin role).
    #[arg(long, env = "RULEBOOK_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// The tenant to act on.
    #[arg(
        long,
        env = "RULEBOOK_TENANT",
        default_value = "default",
        global = true
    )]
    pub tenant: String,
    /// Print the server's JSON answers as they are, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A client of one server.
#[derive(Debug, Clone)]
pub struct Client {
    opts: ClientOpts,
    http: reqwest::Client,
}

/// A successful answer.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The `ETag`, if any.
    pub etag: Option<String>,
    /// The JSON body (`null` if empty).
    pub body: Value,
}

impl Client {
    /// A client for `opts`.
    pub fn new(opts: &ClientOpts) -> Result<Client, CliError> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| CliError::new(Exit::Server, format!("cannot make an HTTP client: {e}")))?;
        Ok(Client {
            opts: opts.clone(),
            http,
        })
    }

    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        self.opts.json
    }

    /// Sends `method path` with an optional JSON body and `If-Match`; errors become [`CliError`]s
    /// with the server's message and the exit code of the status.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<i64>,
    ) -> Result<Answer, CliError> {
        let url = format!("{}{path}", self.opts.server.trim_end_matches('/'));
        let mut request = self
            .http
            .request(method, &url)
            .header("x-tenant-id", &self.opts.tenant);
        if let Some(token) = &self.opts.token {
            request = request.bearer_auth(token);
        }
        if let Some(version) = if_match {
            request = request.header("if-match", format!("\"{version}\""));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            CliError::new(
                Exit::Server,
                format!(
                    "cannot reach the server at `{}` ({e}): start it with `rulebook serve`, or point --server / RULEBOOK_SERVER at it",
                    self.opts.server
                ),
            )
        })?;
        let status = response.status();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_matches('"').to_owned());
        let text = response.text().await.map_err(|e| {
            CliError::new(
                Exit::Server,
                format!("the server's answer could not be read: {e}"),
            )
        })?;
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(Answer { status, etag, body });
        }
        Err(error_of(status, &body))
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Answer, CliError> {
        self.send(Method::GET, path, None, None).await
    }
}

fn error_of(status: StatusCode, body: &Value) -> CliError {
    let exit = match status.as_u16() {
        404 => Exit::NotFound,
        409 | 412 | 428 => Exit::Conflict,
        401 | 403 => Exit::NotAllowed,
        400..=499 => Exit::Refused,
        _ => Exit::Server,
    };
    let error = &body["error"];
    let (Some(code), Some(message)) = (error["code"].as_str(), error["message"].as_str()) else {
        return CliError::new(
            exit,
            format!("the server answered HTTP {}: {body}", status.as_u16()),
        );
    };
    let errors = error["errors"]
        .as_array()
        .map_or(&[][..], |e| e)
        .iter()
        .map(|problem| ApiFieldProblem {
            path: problem["path"].as_str().unwrap_or_default().to_owned(),
            message: problem["message"].as_str().unwrap_or_default().to_owned(),
            origin: None,
        })
        .collect();
    let mut failed = CliError::new(exit, message);
    failed.api = Some(ApiProblem {
        status: status.as_u16(),
        code: code.to_owned(),
        errors,
    });
    failed
}

/// Percent-encodes one path segment.
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
