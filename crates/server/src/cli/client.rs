//! The HTTP client the CLI talks to a server with.

use clap::Args;
use reqwest::Method;
pub use rulebook_client::segment;
use rulebook_client::{ClientError, UNEXPECTED};
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

/// A client of one server: the workspace's one HTTP client ([`rulebook_client::Client`]), with
/// its errors turned into [`CliError`]s that keep the server's code and field problems as data.
#[derive(Debug, Clone)]
pub struct Client {
    opts: ClientOpts,
    inner: rulebook_client::Client,
}

/// A successful answer.
#[derive(Debug)]
pub struct Answer {
    /// The `ETag`, if any.
    pub etag: Option<String>,
    /// The JSON body (`null` if empty).
    pub body: Value,
}

impl Client {
    /// A client for `opts`.
    pub fn new(opts: &ClientOpts) -> Result<Client, CliError> {
        let mut inner = rulebook_client::Client::new(&opts.server).with_tenant(&opts.tenant);
        if let Some(token) = &opts.token {
            inner = inner.with_token(token);
        }
        Ok(Client {
            opts: opts.clone(),
            inner,
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
        match self.inner.send(method, path, body, if_match).await {
            Ok(answer) => Ok(Answer {
                etag: answer.etag,
                body: answer.body,
            }),
            Err(error) => Err(self.error_of(error)),
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Answer, CliError> {
        self.send(Method::GET, path, None, None).await
    }

    /// `POST path` with a streamed body of `content_type` and `length` bytes; errors come back
    /// as the client's, for a command that says more about some of them (see [`Client::error_of`]
    /// for the others).
    pub async fn send_stream(
        &self,
        path: &str,
        content_type: &str,
        body: reqwest::Body,
        length: u64,
    ) -> Result<Answer, ClientError> {
        let answer = self
            .inner
            .send_stream(path, content_type, body, Some(length))
            .await?;
        Ok(Answer {
            etag: answer.etag,
            body: answer.body,
        })
    }

    /// `error` as the CLI says it: the server's own message and code for an error answer, and
    /// the cause for the others (no connection, too slow, a broken connection).
    pub fn error_of(&self, error: ClientError) -> CliError {
        let server = &self.opts.server;
        let (status, code, message, errors) = match error {
            ClientError::TooLarge { code, message, .. } => (413, code, message, Vec::new()),
            ClientError::Timeout { reason, .. } => {
                return CliError::new(
                    Exit::Server,
                    format!("timed out talking to the server at `{server}` ({reason}): check that it is up and not overloaded, and try again"),
                )
            }
            ClientError::Interrupted { reason, .. } => {
                return CliError::new(
                    Exit::Server,
                    format!("the connection to the server at `{server}` broke before it answered ({reason}): the server may have stopped or restarted; see its log, and try again"),
                )
            }
            ClientError::Api {
                status,
                code,
                message,
                errors,
            }
            | ClientError::Refused {
                status,
                code,
                message,
                errors,
            } => (status, code, message, errors),
            ClientError::Unreachable { reason, .. } => {
                return CliError::new(
                    Exit::Server,
                    format!(
                        "cannot reach the server at `{server}` ({reason}): start it with `rulebook serve`, or point --server / RULEBOOK_SERVER at it"
                    ),
                )
            }
            ClientError::Replica(message) => return CliError::new(Exit::Server, message),
        };
        let exit = match status {
            404 => Exit::NotFound,
            409 | 412 | 428 => Exit::Conflict,
            401 | 403 => Exit::NotAllowed,
            400..=499 => Exit::Refused,
            _ => Exit::Server,
        };
        if code == UNEXPECTED {
            return CliError::new(
                exit,
                format!("the server answered HTTP {status}: {message}"),
            );
        }
        let mut failed = CliError::new(exit, message);
        failed.api = Some(ApiProblem {
            status,
            code,
            errors: errors
                .into_iter()
                .map(|problem| ApiFieldProblem {
                    path: problem.path,
                    message: problem.message,
                    origin: None,
                })
                .collect(),
        });
        failed
    }
}
