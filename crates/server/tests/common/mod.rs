//! Helpers shared by the server's tests: fresh databases, the router called without a socket,
//! and the real `rulebook` binary started on port 0.
//!
//! PostgreSQL comes from `RULEBOOK_TEST_DATABASE_URL` (a superuser URL); each test creates
//! `rulebook_test_<random>` and drops it afterwards. With `CI=true` a missing PostgreSQL fails the
//! test; elsewhere the test says why it skipped.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    missing_debug_implementations
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use rulebook::{app, AppState, Config, Server};
use rulebook_store::{Store, TokenRole};
use serde_json::Value;
use tower::ServiceExt;

/// The admin token the in-process tests configure.
pub const ADMIN: &str = "test-admin-token";

pub use rulebook_testkit::TestDb;

// --- the router without a socket -------------------------------------------------------------

/// A started server's router, called with `oneshot`.
pub struct Api {
    pub router: Router,
    pub state: AppState,
    pub db: TestDb,
    _server: Server,
}

impl Api {
    /// A server on a fresh SQLite file, `configure`d, ready (first load done).
    pub async fn start(configure: impl FnOnce(&mut Config)) -> Api {
        Api::start_on(TestDb::sqlite(), configure).await
    }

    /// A server on `db`, `configure`d, ready (first load done).
    pub async fn start_on(db: TestDb, configure: impl FnOnce(&mut Config)) -> Api {
        let mut config = Config::with_database(db.url.clone()).unwrap();
        config.admin_token = Some(ADMIN.to_owned());
        config.poll_interval = Duration::from_millis(50);
        configure(&mut config);
        let server = Server::start(&config).await.unwrap();
        let state = server.state().clone();
        for _ in 0..500 {
            if state.is_ready() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(state.is_ready(), "the server did not become ready");
        Api {
            router: app(state.clone()),
            state,
            db,
            _server: server,
        }
    }

    pub fn store(&self) -> &Store {
        self.state.store()
    }

    /// Stops the server gracefully (as on SIGTERM) and hands back its database.
    pub async fn stop(self) -> TestDb {
        self._server.stop().await;
        self.db
    }

    /// A token with `role`, for `tenant` or all.
    pub async fn token(&self, role: TokenRole, tenant: Option<&str>) -> String {
        self.store()
            .create_token(
                &format!("{}-{}", role.as_str(), tenant.unwrap_or("all")),
                role,
                tenant,
            )
            .await
            .unwrap()
            .1
    }

    pub async fn call(&self, request: Req) -> Resp {
        let response = self.router.clone().oneshot(request.build()).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    /// Sends `request` with a body that never arrives, as a stalled client would.
    pub async fn call_stalled(&self, request: Req) -> Resp {
        let (parts, _) = request.build().into_parts();
        let request = Request::from_parts(parts, Body::new(Stalled));
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// Every rule of `tenant` as the store has it (not the cache): for "nothing changed".
    pub async fn snapshot(&self, tenant: &str) -> Vec<rulebook_rules::Rule> {
        self.store().list_rules(tenant, None).await.unwrap()
    }
}

/// A request under construction.
pub struct Req {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

pub fn req(method: Method, path: &str) -> Req {
    Req {
        method,
        path: path.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

impl Req {
    pub fn token(self, token: &str) -> Req {
        self.header("authorization", &format!("Bearer {token}"))
    }
    pub fn tenant(self, tenant: &str) -> Req {
        self.header("x-tenant-id", tenant)
    }
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    pub fn json(mut self, value: Value) -> Req {
        self.body = serde_json::to_vec(&value).unwrap();
        self.header("content-type", "application/json")
    }
    pub fn raw(mut self, body: &[u8]) -> Req {
        self.body = body.to_vec();
        self
    }
    pub fn build(self) -> Request<Body> {
        let mut builder = Request::builder().method(self.method).uri(self.path);
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        builder.body(Body::from(self.body)).unwrap()
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
    pub fn etag(&self) -> Option<String> {
        self.headers
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned())
    }
    /// The errors of a 422 `validation_failed` answer, and their paths; panics with the answer
    /// when it is not one.
    pub fn validation_errors(&self) -> (&[Value], Vec<&str>) {
        assert_eq!(
            (self.status, self.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "{}",
            self.text
        );
        let errors = self.body["error"]["errors"].as_array().unwrap();
        let paths = errors.iter().map(|e| e["path"].as_str().unwrap()).collect();
        (errors, paths)
    }
}

/// `POST /v1/evaluate/{entry_point}` with `body`, answered 200 (or the test fails): the answer.
pub async fn evaluate(api: &Api, entry_point: &str, body: Value) -> Value {
    let r = api
        .call(req(Method::POST, &format!("/v1/evaluate/{entry_point}")).json(body))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

/// `(id, value(item))` for each item of the JSON array `items` (rules, matched rules), in order.
pub fn by_id<T>(items: &Value, value: impl Fn(&Value) -> T) -> Vec<(String, T)> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (item["id"].as_str().unwrap().to_owned(), value(item)))
        .collect()
}

/// The rules an evaluation answer matched, as `(id, version)`, in the answer's order.
pub fn matched(answer: &Value) -> Vec<(String, i64)> {
    by_id(&answer["matched"], |m| m["version"].as_i64().unwrap())
}

/// The decision ids of a page of `GET /v1/decisions`, in its order.
pub fn decision_ids(page: &Value) -> Vec<&str> {
    page["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["decision_id"].as_str().unwrap())
        .collect()
}

/// Rules as JSON, sorted by id: two reads of a tenant's rules, compared.
pub fn sorted_rules(rules: impl IntoIterator<Item = rulebook_rules::Rule>) -> Vec<Value> {
    let mut rules: Vec<Value> = rules
        .into_iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    rules.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    rules
}

/// A valid rule of `entry_point` that shows `message`.
pub fn banner(id: &str, entry_point: &str, message: &str) -> Value {
    serde_json::json!({
        "id": id,
        "entry_point": entry_point,
        "name": "test banner",
        "priority": 5,
        "condition": {"==": [{"var": "country"}, "FR"]},
        "actions": [{"type": "display_message", "message": message}]
    })
}

/// Rule `i` of a bulk import: about 250 bytes, spread over 50 entry points.
pub fn bulk_rule(i: usize) -> Value {
    serde_json::json!({
        "id": format!("BULK-{i:06}"),
        "entry_point": format!("bulk_{}", i % 50),
        "name": format!("bulk rule {i}"),
        "priority": (i % 100) as i64,
        "tags": [format!("batch:b{}", i % 7)],
        "condition": {"==": [{"var": "country"}, "FR"]},
        "actions": [{"type": "display_message", "message": format!("bulk rule {i} says hello to its readers")}]
    })
}

/// Writes the bulk rules `0..rules` as `files` JSON files (`part-NN.json`) under `dir`, `edit`
/// changing any of them.
pub fn write_bulk(
    dir: &std::path::Path,
    rules: usize,
    files: usize,
    edit: impl Fn(usize, &mut Value),
) {
    let per_file = rules.div_ceil(files);
    for f in 0..files {
        let part: Vec<Value> = (f * per_file..((f + 1) * per_file).min(rules))
            .map(|i| {
                let mut rule = bulk_rule(i);
                edit(i, &mut rule);
                rule
            })
            .collect();
        std::fs::write(
            dir.join(format!("part-{f:02}.json")),
            Value::Array(part).to_string(),
        )
        .unwrap();
    }
}

// --- the real binary -------------------------------------------------------------------------

/// The `rulebook` binary serving on port 0, stopped (SIGTERM) when dropped.
pub struct Running {
    pub base: String,
    /// The admin token from the start line, when one was generated.
    pub token: Option<String>,
    pub line: String,
    /// The database it serves.
    pub database_url: String,
    child: Child,
    pub client: reqwest::Client,
}

pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rulebook"))
}

impl Running {
    pub fn start(database_url: &str, extra_env: &[(&str, &str)]) -> Running {
        Running::start_with_stderr(database_url, extra_env, Stdio::inherit())
    }

    /// As [`Running::start`], with the process's standard error (its log) sent to `stderr`.
    pub fn start_with_stderr(
        database_url: &str,
        extra_env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Running {
        let mut command = binary();
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .env("RULEBOOK_LOG", "warn")
            .env("RULEBOOK_POLL_INTERVAL", "50ms")
            .env_remove("RULEBOOK_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(
            line.starts_with("rulebook serving http://"),
            "start line: {line}"
        );
        let base = line
            .split_whitespace()
            .nth(2)
            .unwrap()
            .trim_end_matches('/')
            .to_owned();
        let token = line
            .split("admin token ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|t| t.starts_with("rb_"))
            .map(str::to_owned);
        Running {
            base,
            token,
            line,
            database_url: database_url.to_owned(),
            child,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Runs the `rulebook` CLI against this server, with its generated admin token and its
    /// database: the exit code, standard output and standard error.
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let output = binary()
            .args(args)
            .env("RULEBOOK_SERVER", &self.base)
            .env("RULEBOOK_TOKEN", self.token.as_deref().unwrap())
            .env("RULEBOOK_DATABASE_URL", &self.database_url)
            .output()
            .unwrap();
        (
            output.status.code().unwrap(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// [`Running::cli`] for a command that succeeds and prints JSON: the JSON.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let (code, out, err) = self.cli(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    /// Waits until `/health` says ready.
    pub async fn ready(&self) {
        for _ in 0..500 {
            if let Ok(r) = self.client.get(self.url("/health")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} never became ready", self.base);
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL (no shutdown of any kind) and waits for the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process; returns its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Sends one request to a running server: JSON in, status and JSON out.
pub async fn http(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, HeaderMap, Value) {
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let mut map = HeaderMap::new();
    for (k, v) in response.headers() {
        map.insert(k.clone(), v.clone());
    }
    let body = response.json().await.unwrap_or(Value::Null);
    (status, map, body)
}

/// Which roles exist, for role tests.
pub const ROLES: [TokenRole; 3] = [TokenRole::Read, TokenRole::Write, TokenRole::Admin];

/// A request body whose bytes never come.
struct Stalled;

impl axum::body::HttpBody for Stalled {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Pending
    }
}
