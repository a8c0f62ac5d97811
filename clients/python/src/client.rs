//! `rulebook._native.Client`: `rulebook-client`'s [`Replica`] for Python, which `rulebook.Client`
//! (pure Python, `rulebook/client.py`) wraps with its documented API.
//!
//! # Threads, the GIL and the runtime
//!
//! The process has one tokio runtime, made on first use (see [`runtime`]); each client's replica
//! follows the change stream on it. A Python call converts its arguments to JSON with the GIL
//! held, then releases the GIL (`py.detach`) for the work: a local read takes the replica's
//! current view at once when it already reflects this client's writes ([`Replica::try_view`]),
//! and otherwise blocks on the runtime until the change stream brings them
//! ([`Replica::view`]); a write blocks on the runtime until the server answers. Then it takes the
//! GIL back and builds the answer's Python objects. Any number of Python threads may call one
//! client at once.
//!
//! # Fork
//!
//! A forked child has a copy of the parent's memory but none of its threads: the runtime's
//! workers, and so the replica's follower, are gone, and any lock they held stays held. So every
//! call compares the process id with the one the client started in; in a child it leaves the
//! parent's runtime and replica untouched (leaked, never dropped: dropping them would wait for
//! threads that do not exist) and starts a new runtime and a new replica, which loads a fresh
//! snapshot. The process id a call compares is kept in [`PROCESS`] rather than asked of the
//! system (`getpid` is a system call, a noticeable part of a short read): it is noted again in
//! every forked child that goes on running Python, by the `os.register_at_fork` hook that
//! [`register_fork_hook`] installs when the module is imported. The state lock is held only to
//! swap or clone the replica (and across the restart in
//! a child), so a fork cannot copy it held except mid-restart.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::Mutex;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList};
use reqwest::Method;
use rulebook_client::wire::Fresh;
use rulebook_client::{segment, Client, ClientError, Replica, ReplicaStatus, ReplicaView};
use rulebook_rules::ScoreRequest;
use serde_json::Value;
use tokio::runtime::Runtime;

use crate::answer::Prototypes;
use crate::json::{to_json, to_python, value_to_python};

/// How long `wait_for` waits when not told.
const WAIT: Duration = Duration::from_secs(10);

/// This process's id, noted on first use and again in a forked child by [`forked`]; 0 before.
static PROCESS: AtomicU32 = AtomicU32::new(0);

/// This process's id, without a system call once it is known.
fn process_id() -> u32 {
    match PROCESS.load(Ordering::Relaxed) {
        0 => {
            let pid = std::process::id();
            PROCESS.store(pid, Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}

/// Run by Python in a forked child, before any other Python code: notes the child's id.
#[pyfunction]
fn forked() {
    PROCESS.store(std::process::id(), Ordering::Relaxed);
}

/// Has Python call [`forked`] in every forked child (`os.register_at_fork`, which `os.fork`
/// and `PyOS_AfterFork_Child` run: every fork that goes on running Python). Where there is no
/// `fork` (Windows), there is nothing to register.
pub(crate) fn register_fork_hook(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let os = module.py().import("os")?;
    if !os.hasattr("register_at_fork")? {
        return Ok(());
    }
    let hook = wrap_pyfunction!(forked, module)?;
    let kwargs = PyDict::new(module.py());
    kwargs.set_item("after_in_child", hook)?;
    os.call_method("register_at_fork", (), Some(&kwargs))?;
    Ok(())
}

/// The process's runtime and the process it was made in.
struct ProcessRuntime {
    pid: u32,
    runtime: &'static Runtime,
}

/// The runtime of this process: made on first use, and again in a forked child (the parent's is
/// leaked there: its worker threads were not copied). A mutex because it is taken once per
/// replica start, never on a read.
static RUNTIME: Mutex<Option<ProcessRuntime>> = Mutex::new(None);

fn runtime() -> Result<&'static Runtime, ClientError> {
    let pid = process_id();
    let mut slot = RUNTIME.lock();
    if let Some(current) = slot.as_ref() {
        if current.pid == pid {
            return Ok(current.runtime);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("rulebook-replica")
        .enable_all()
        .build()
        .map_err(|e| ClientError::Replica(format!("cannot start the client's runtime: {e}")))?;
    let runtime: &'static Runtime = Box::leak(Box::new(runtime));
    *slot = Some(ProcessRuntime { pid, runtime });
    Ok(runtime)
}

/// A replica and the process it runs in.
struct Live {
    pid: u32,
    runtime: &'static Runtime,
    replica: Arc<Replica>,
}

/// The replica of one tenant of one server, restarted in a forked child.
#[pyclass(module = "rulebook._native", name = "Client", frozen)]
pub(crate) struct NativeClient {
    url: String,
    token: Option<String>,
    tenant: String,
    // The running replica. Held to clone or swap it, and across a restart after a fork so that
    // two threads of the child do not start two replicas.
    live: Mutex<Option<Live>>,
    /// What `evaluate` answers are made of (see `answer.rs`).
    prototypes: Prototypes,
}

impl Drop for NativeClient {
    fn drop(&mut self) {
        if let Some(live) = self.live.get_mut().take() {
            if live.pid != process_id() {
                // Made in the parent: its follower lives on the parent's runtime (see the
                // module docs).
                std::mem::forget(live);
            }
        }
    }
}

impl NativeClient {
    fn client(&self) -> Client {
        let client = Client::new(self.url.clone()).with_tenant(self.tenant.clone());
        match &self.token {
            Some(token) => client.with_token(token.clone()),
            None => client,
        }
    }

    /// The replica of this process, started (or restarted after a fork) if need be. Called with
    /// the GIL released.
    fn live(&self) -> Result<(&'static Runtime, Arc<Replica>), ClientError> {
        let pid = process_id();
        let mut live = self.live.lock();
        if let Some(current) = live.as_ref() {
            if current.pid == pid {
                return Ok((current.runtime, Arc::clone(&current.replica)));
            }
        }
        if let Some(parent) = live.take() {
            std::mem::forget(parent);
        }
        let runtime = runtime()?;
        let replica = Arc::new(runtime.block_on(Replica::start(self.client()))?);
        *live = Some(Live {
            pid,
            runtime,
            replica: Arc::clone(&replica),
        });
        Ok((runtime, replica))
    }

    /// Sends a write (`method path` with `body`, `If-Match: version`), notes its `seq` so the
    /// next local read reflects it, and returns the server's answer.
    fn write<'py>(
        &self,
        py: Python<'py>,
        method: Method,
        path: &str,
        body: Value,
        version: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let answer = self.run(py, async |replica| {
            let answer = replica
                .client()
                .send(method, path, Some(&body), version)
                .await?;
            if let Some(seq) = answer.body.get("seq").and_then(Value::as_i64) {
                replica.note_write(seq);
            }
            Ok(answer.body)
        })?;
        to_python(py, &answer)
    }

    /// Runs `call` on this process's current view with the GIL released, and turns its error
    /// into the Python exception. A view that already reflects this client's writes (the usual
    /// case) is read at once; one that does not is waited for on the runtime, as
    /// [`Replica::view`] waits.
    fn read<T: Send>(
        &self,
        py: Python<'_>,
        call: impl FnOnce(&ReplicaView) -> Result<T, ClientError> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let (runtime, replica) = self.live()?;
            let view = match replica.try_view() {
                Some(view) => view,
                None => runtime.block_on(replica.view())?,
            };
            call(&view)
        })
        .map_err(|e| error(py, e))
    }

    /// Runs `call` on this process's replica with the GIL released, and turns its error into
    /// the Python exception.
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        call: impl AsyncFnOnce(&Replica) -> Result<T, ClientError> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let (runtime, replica) = self.live()?;
            runtime.block_on(call(&replica))
        })
        .map_err(|e| error(py, e))
    }
}

#[pymethods]
impl NativeClient {
    /// Starts a replica of `tenant` at the server `url` (see `rulebook.Client`).
    ///
    /// Errors: `rulebook.Unreachable`, or the server's error (such as `Unauthorized`).
    #[new]
    #[pyo3(signature = (url, token=None, tenant="default".to_owned()))]
    fn new(py: Python<'_>, url: String, token: Option<String>, tenant: String) -> PyResult<Self> {
        let client = NativeClient {
            url,
            token,
            tenant,
            live: Mutex::new(None),
            prototypes: Prototypes::default(),
        };
        py.detach(|| client.live().map(drop))
            .map_err(|e| error(py, e))?;
        Ok(client)
    }

    /// The server's answer shape, computed locally (see `rulebook.Client.evaluate`). `context`:
    /// a dict (else `TypeError`); `at`: an RFC 3339 time, or `None` for now; `explain`: add how
    /// every rule was decided.
    #[pyo3(signature = (entry_point, context, at=None, explain=false))]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        entry_point: &str,
        context: &Bound<'py, PyAny>,
        at: Option<&str>,
        explain: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        if !context.is_instance_of::<PyDict>() {
            return Err(PyTypeError::new_err(format!(
                "`context` must be a dict such as {{'country': 'FR'}}, not {}",
                context.get_type().name()?
            )));
        }
        let context = to_json(context)?;
        let at = time(at)?;
        let (seq, evaluation) = self.read(py, |view| {
            // One view for the answer and its `seq`, as the server pairs them.
            let evaluation = if explain {
                view.explain_at(entry_point, &context, at)?
            } else {
                view.evaluate_at(entry_point, &context, at)?
            };
            Ok((view.seq(), evaluation))
        })?;
        Ok(self.prototypes.answer(py, seq, &evaluation)?.into_any())
    }

    /// The rules of `entry_point` in force now (enabled, inside their window), by priority then
    /// id, as the API shapes rules: `{"seq", "rules"}`.
    fn entry_point_rules<'py>(
        &self,
        py: Python<'py>,
        entry_point: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let answer = self.read(py, |view| {
            Ok(Fresh {
                seq: view.seq(),
                body: EntryPointRules {
                    rules: view.entry_point_rules(entry_point, Utc::now())?,
                },
            })
        })?;
        to_python(py, &answer)
    }

    /// For `bench/client_bench.py`, which reports how much of `evaluate` is the evaluation and
    /// how much the conversion of the context and the answer: converts `context` once, then
    /// evaluates `entry_point` `times` times on the current view with the GIL released, keeping
    /// each answer as the rules crate returns it, and returns the mean nanoseconds per
    /// evaluation. Answers nothing else.
    fn time_evaluation(
        &self,
        py: Python<'_>,
        entry_point: &str,
        context: &Bound<'_, PyAny>,
        times: u32,
    ) -> PyResult<f64> {
        let context = to_json(context)?;
        let times = times.max(1);
        self.read(py, |view| {
            let start = std::time::Instant::now();
            for _ in 0..times {
                std::hint::black_box(view.evaluate_at(entry_point, &context, Utc::now())?);
            }
            Ok(start.elapsed().as_nanos() as f64 / f64::from(times))
        })
    }

    /// For `bench/client_bench.py`, the other part of its split: evaluates `entry_point` once,
    /// then `times` times converts `context` to JSON and the evaluation's answer to Python
    /// objects, as `evaluate` does, and frees both (the answer's freeing is part of its cost:
    /// a caller drops each answer), and returns the mean nanoseconds per conversion.
    fn time_conversion(
        &self,
        py: Python<'_>,
        entry_point: &str,
        context: &Bound<'_, PyAny>,
        times: u32,
    ) -> PyResult<f64> {
        let json = to_json(context)?;
        let (seq, evaluation) = self.read(py, |view| {
            Ok((
                view.seq(),
                view.evaluate_at(entry_point, &json, Utc::now())?,
            ))
        })?;
        drop(json);
        let times = times.max(1);
        let start = std::time::Instant::now();
        for _ in 0..times {
            drop(std::hint::black_box(to_json(context)?));
            drop(std::hint::black_box(self.prototypes.answer(
                py,
                seq,
                &evaluation,
            )?));
        }
        Ok(start.elapsed().as_nanos() as f64 / f64::from(times))
    }

    /// A param's value, or `(False, None)` when the rule or the param does not exist: the
    /// answer is `(found, value)`.
    fn get_value<'py>(
        &self,
        py: Python<'py>,
        rule_id: &str,
        field: &str,
    ) -> PyResult<(bool, Bound<'py, PyAny>)> {
        let value = self.read(py, |view| Ok(view.param(rule_id, field)))?;
        match value {
            Some(value) => Ok((true, value_to_python(py, &value)?)),
            None => Ok((false, py.None().into_bound(py))),
        }
    }

    /// Whether a rule is enabled, or `None` when it does not exist.
    fn is_enabled(&self, py: Python<'_>, rule_id: &str) -> PyResult<Option<bool>> {
        self.read(py, |view| Ok(view.is_enabled(rule_id)))
    }

    /// The server's score answer shape, computed locally (see `rulebook.Client.score`).
    /// `overrides`: params by rule id then name, for this call only; `at` as for `evaluate`.
    #[pyo3(signature = (name, input, overrides=None, at=None, explain=false))]
    fn score<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        input: &Bound<'py, PyAny>,
        overrides: Option<&Bound<'py, PyAny>>,
        at: Option<&str>,
        explain: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = ScoreRequest {
            input: to_json(input)?,
            overrides: match overrides {
                None => BTreeMap::new(),
                Some(overrides) => serde_json::from_value(to_json(overrides)?).map_err(|_| {
                    PyValueError::new_err(
                        "`overrides` must be a dict of dicts, params by rule id then name, such as {\"RF-002\": {\"lookbackDays\": 30}}",
                    )
                })?,
            },
            ..Default::default()
        };
        let at = time(at)?;
        let answer = self.read(py, |view| {
            Ok(Fresh {
                seq: view.seq(),
                body: view.score_request(name, &request, at, explain)?,
            })
        })?;
        to_python(py, &answer)
    }

    /// The replica's state: `seq`, `connected`, `last_change_at`, `last_heard_at` (RFC 3339
    /// strings or `None`), `last_error`, `snapshots`, `rules`.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let status: ReplicaStatus = self.run(py, async |replica| Ok(replica.status()))?;
        let time =
            |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true));
        let dict = PyDict::new(py);
        dict.set_item("seq", status.seq)?;
        dict.set_item("connected", status.connected)?;
        dict.set_item("last_change_at", time(status.last_change_at))?;
        dict.set_item("last_heard_at", time(status.last_heard_at))?;
        dict.set_item("last_error", status.last_error)?;
        dict.set_item("snapshots", status.snapshots)?;
        dict.set_item("rules", status.rules)?;
        Ok(dict)
    }

    /// Waits until the replica reflects `seq`; returns the `seq` reached.
    #[pyo3(signature = (seq, timeout=None))]
    fn wait_for(&self, py: Python<'_>, seq: i64, timeout: Option<f64>) -> PyResult<i64> {
        let timeout = match timeout {
            Some(t) if t.is_finite() && t >= 0.0 => Duration::from_secs_f64(t),
            Some(t) => {
                return Err(PyValueError::new_err(format!(
                    "`timeout` must be a number of seconds, not {t}"
                )))
            }
            None => WAIT,
        };
        self.run(py, async |replica| replica.wait_for(seq, timeout).await)
    }

    /// `GET /v1/rules/{id}`: the rule with the `seq` its answer reflects.
    fn rule<'py>(&self, py: Python<'py>, id: &str) -> PyResult<Bound<'py, PyAny>> {
        let answer = self.run(py, async |replica| {
            json(replica.client().rule(id, None).await?)
        })?;
        to_python(py, &answer)
    }

    /// `GET /v1/rules`: `{"seq", "rules"}`.
    fn rules<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let answer = self.run(py, async |replica| {
            let fresh = replica.client().rules().await?;
            Ok(serde_json::json!({"seq": fresh.seq, "rules": json(fresh.body)?}))
        })?;
        to_python(py, &answer)
    }

    /// `POST /v1/rules`; the next local read reflects the write.
    fn create_rule<'py>(
        &self,
        py: Python<'py>,
        rule: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rule = to_json(rule)?;
        let answer = self.run(py, async |replica| {
            let fresh = replica.client().create_rule(&rule).await?;
            replica.note_write(fresh.seq);
            json(fresh)
        })?;
        to_python(py, &answer)
    }

    /// `PATCH /v1/rules/{id}/params`; the next local read reflects the write.
    fn update_params<'py>(
        &self,
        py: Python<'py>,
        id: &str,
        params: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Value::Object(params) = to_json(params)? else {
            return Err(PyValueError::new_err(
                "`params` must be a dict such as {\"seconds\": 90}",
            ));
        };
        let answer = self.run(py, async |replica| {
            let fresh = replica.client().update_params(id, params).await?;
            replica.note_write(fresh.seq);
            json(fresh)
        })?;
        to_python(py, &answer)
    }

    /// `POST /v1/rules/{id}/enable` or `/disable`; the next local read reflects the write.
    fn set_enabled<'py>(
        &self,
        py: Python<'py>,
        id: &str,
        enabled: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let answer = self.run(py, async |replica| {
            let fresh = replica.client().set_enabled(id, enabled).await?;
            replica.note_write(fresh.seq);
            json(fresh)
        })?;
        to_python(py, &answer)
    }

    /// `PUT /v1/rules/{id}` with `rule` (a rule document, with `reason`), replacing version
    /// `version` (sent as `If-Match`; `None` leaves it to the body's `version`); the next local
    /// read reflects the write.
    #[pyo3(signature = (id, rule, version=None))]
    fn update_rule<'py>(
        &self,
        py: Python<'py>,
        id: &str,
        rule: &Bound<'py, PyAny>,
        version: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rule = to_json(rule)?;
        let path = format!("/v1/rules/{}", segment(id));
        self.write(py, Method::PUT, &path, rule, version)
    }

    /// `POST /v1/rules/import` with `body` (`{"rules", "reason", "dry_run", ...}`); the next local
    /// read reflects the write.
    fn import_rules<'py>(
        &self,
        py: Python<'py>,
        body: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let body = to_json(body)?;
        self.write(py, Method::POST, "/v1/rules/import", body, None)
    }

    /// `POST /v1/cache/invalidate` with `body` (`{"entry_points", "tags", "all"}`): the server's
    /// answer (what it invalidated).
    fn invalidate_cache<'py>(
        &self,
        py: Python<'py>,
        body: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let body = to_json(body)?;
        let answer = self.run(py, async |replica| {
            let answer = replica
                .client()
                .send(Method::POST, "/v1/cache/invalidate", Some(&body), None)
                .await?;
            Ok(answer.body)
        })?;
        to_python(py, &answer)
    }

    /// Replaces this process's replica with a new one, from a fresh snapshot reflecting at least
    /// everything the old one did; returns the new replica's `seq`.
    fn renew(&self, py: Python<'_>) -> PyResult<i64> {
        py.detach(|| {
            let (runtime, old) = self.live()?;
            let new = Arc::new(runtime.block_on(old.renew())?);
            let seq = new.status().seq;
            let mut live = self.live.lock();
            // A fork between `live()` and here leaves the child's own replica alone.
            if let Some(current) = live.as_mut() {
                if current.pid == process_id() {
                    current.replica = new;
                }
            }
            Ok(seq)
        })
        .map_err(|e| error(py, e))
    }

    /// `DELETE /v1/rules/{id}`; returns the write's `seq`. The next local read reflects it.
    fn delete_rule(&self, py: Python<'_>, id: &str) -> PyResult<i64> {
        self.run(py, async |replica| {
            let seq = replica.client().delete_rule(id).await?;
            replica.note_write(seq);
            Ok(seq)
        })
    }
}

/// `at` as a time: an RFC 3339 string, or now.
fn time(at: Option<&str>) -> PyResult<DateTime<Utc>> {
    match at {
        Some(at) => DateTime::parse_from_rfc3339(at)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|e| {
                PyValueError::new_err(format!(
                    "`at` must be an RFC 3339 time such as 2026-03-03T10:00:00Z, not `{at}`: {e}"
                ))
            }),
        None => Ok(Utc::now()),
    }
}

/// The answer of `entry_point_rules` beside its `seq`.
#[derive(serde::Serialize)]
struct EntryPointRules {
    rules: Vec<rulebook_rules::Rule>,
}

fn json(value: impl serde::Serialize) -> Result<Value, ClientError> {
    serde_json::to_value(value).map_err(|e| ClientError::Replica(e.to_string()))
}

/// `error` as the `rulebook` exception its code names (made by `rulebook.errors._error`). A
/// call the replica refused as the server would gets the class of the server's status, and no
/// status (the server did not answer).
fn error(py: Python<'_>, error: ClientError) -> PyErr {
    static MAKE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let (code, message, status, errors, would) = match error {
        ClientError::Api {
            status,
            code,
            message,
            errors,
        } => (code, message, Some(status), errors, None),
        ClientError::Refused {
            status,
            code,
            message,
            errors,
        } => (code, message, None, errors, Some(status)),
        ClientError::TooLarge { code, message, .. } => (code, message, Some(413), Vec::new(), None),
        ClientError::Unreachable { .. }
        | ClientError::Timeout { .. }
        | ClientError::Interrupted { .. } => (
            "unreachable".to_owned(),
            error.to_string(),
            None,
            Vec::new(),
            None,
        ),
        ClientError::Replica(message) => ("replica".to_owned(), message, None, Vec::new(), None),
    };
    let made = (|| {
        let list = PyList::empty(py);
        for problem in &errors {
            let item = PyDict::new(py);
            item.set_item("path", &problem.path)?;
            item.set_item("message", &problem.message)?;
            list.append(item)?;
        }
        let make = MAKE.import(py, "rulebook.errors", "_error")?;
        make.call1((code, message, status, list, would))
    })();
    match made {
        Ok(exception) => PyErr::from_value(exception),
        Err(e) => e,
    }
}
