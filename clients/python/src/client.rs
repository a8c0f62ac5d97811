//! `rulebook._native.Client`: `rulebook-client`'s [`Replica`] for Python, which `rulebook.Client`
//! (pure Python, `rulebook/client.py`) wraps with its documented API.
//!
//! # Threads, the GIL and the runtime
//!
//! The process has one tokio runtime, made on first use (see [`runtime`]); each client's replica
//! follows the change stream on it. A Python call converts its arguments to JSON with the GIL
//! held, then releases the GIL (`py.detach`) and blocks on the replica's answer (a local read
//! that is already current finishes on the first poll; a read after the client's own write may
//! wait for the change stream; a write waits for the server), then takes the GIL back to build
//! the answer. Any number of Python threads may call one client at once.
//!
//! # Fork
//!
//! A forked child has a copy of the parent's memory but none of its threads: the runtime's
//! workers, and so the replica's follower, are gone, and any lock they held stays held. So every
//! call compares the process id with the one the client started in; in a child it leaves the
//! parent's runtime and replica untouched (leaked, never dropped: dropping them would wait for
//! threads that do not exist) and starts a new runtime and a new replica, which loads a fresh
//! snapshot. The state lock is held only to swap or clone the replica (and across the restart in
//! a child), so a fork cannot copy it held except mid-restart.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList};
use rulebook_client::wire::Fresh;
use rulebook_client::{Client, ClientError, Replica, ReplicaStatus};
use serde_json::Value;
use tokio::runtime::Runtime;

use crate::json::{to_json, to_python};

/// How long `wait_for` waits when not told.
const WAIT: Duration = Duration::from_secs(10);

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
    let pid = std::process::id();
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
}

impl Drop for NativeClient {
    fn drop(&mut self) {
        if let Some(live) = self.live.get_mut().take() {
            if live.pid != std::process::id() {
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
        let pid = std::process::id();
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
        };
        py.detach(|| client.live().map(drop))
            .map_err(|e| error(py, e))?;
        Ok(client)
    }

    /// The server's answer shape, computed locally (see `rulebook.Client.evaluate`). `at`: an
    /// RFC 3339 time, or `None` for now.
    #[pyo3(signature = (entry_point, context, at=None))]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        entry_point: &str,
        context: &Bound<'py, PyAny>,
        at: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let context = to_json(context)?;
        let at = match at {
            Some(at) => DateTime::parse_from_rfc3339(at)
                .map_err(|e| {
                    PyValueError::new_err(format!(
                        "`at` must be an RFC 3339 time such as 2026-03-03T10:00:00Z, not `{at}`: {e}"
                    ))
                })?
                .with_timezone(&Utc),
            None => Utc::now(),
        };
        let answer = self.run(py, async |replica| {
            // One view for the answer and its `seq`, as the server pairs them.
            let view = replica.view().await?;
            json(Fresh {
                seq: view.seq(),
                body: view.evaluate_at(entry_point, &context, at)?,
            })
        })?;
        to_python(py, &answer)
    }

    /// A param's value, or `(False, None)` when the rule or the param does not exist: the
    /// answer is `(found, value)`.
    fn get_value<'py>(
        &self,
        py: Python<'py>,
        rule_id: &str,
        field: &str,
    ) -> PyResult<(bool, Bound<'py, PyAny>)> {
        let value = self.run(py, async |replica| replica.param(rule_id, field).await)?;
        match value {
            Some(value) => Ok((true, to_python(py, &value)?)),
            None => Ok((false, py.None().into_bound(py))),
        }
    }

    /// Whether a rule is enabled, or `None` when it does not exist.
    fn is_enabled(&self, py: Python<'_>, rule_id: &str) -> PyResult<Option<bool>> {
        self.run(py, async |replica| replica.is_enabled(rule_id).await)
    }

    /// The server's score answer shape, computed locally (see `rulebook.Client.score`).
    fn score<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        input: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let input = to_json(input)?;
        let answer = self.run(py, async |replica| {
            let view = replica.view().await?;
            json(Fresh {
                seq: view.seq(),
                body: view.score(name, input)?,
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

    /// `DELETE /v1/rules/{id}`; returns the write's `seq`. The next local read reflects it.
    fn delete_rule(&self, py: Python<'_>, id: &str) -> PyResult<i64> {
        self.run(py, async |replica| {
            let seq = replica.client().delete_rule(id).await?;
            replica.note_write(seq);
            Ok(seq)
        })
    }
}

fn json(value: impl serde::Serialize) -> Result<Value, ClientError> {
    serde_json::to_value(value).map_err(|e| ClientError::Replica(e.to_string()))
}

/// `error` as the `rulebook` exception its code names (made by `rulebook.errors._error`).
fn error(py: Python<'_>, error: ClientError) -> PyErr {
    static MAKE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let (code, message, status, errors) = match error {
        ClientError::Api {
            status,
            code,
            message,
            errors,
        } => (code, message, Some(status), errors),
        ClientError::Unreachable { .. } => (
            "unreachable".to_owned(),
            error.to_string(),
            None,
            Vec::new(),
        ),
        ClientError::Replica(message) => ("replica".to_owned(), message, None, Vec::new()),
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
        make.call1((code, message, status, list))
    })();
    match made {
        Ok(exception) => PyErr::from_value(exception),
        Err(e) => e,
    }
}
