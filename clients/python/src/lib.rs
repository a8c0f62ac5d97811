//! `rulebook._native`: the native half of the `rulebook` Python package.
//!
//! It gives Python the coherent cache of `rulebook-cache` with its protocol unchanged: one load
//! per key, no resurrection after an invalidation, errors shared with the waiters and not cached,
//! and no waiter stranded by a failing or cancelled loader. The pure-Python module
//! `rulebook.cache` builds the public `Cache` and the `cached` decorator on it.
//!
//! # How Python runs under the cache
//!
//! Every call goes through the cache's async `get_or_load`, polled with the GIL held (see
//! `drive.rs`): the key is a GIL-free copy of the Python value (see `key.rs`), so the cache's
//! locks are only ever held by the thread that holds the GIL, and the GIL is released only
//! while a caller waits for another's load.
//!
//! - A **thread** calling `get_or_load` polls to completion. As the leader it calls the Python
//!   loader inside the poll; as a waiter it parks, GIL released, until the leader's end wakes it.
//!   A loader's `KeyboardInterrupt` or `SystemExit` interrupts its own thread only: the load is
//!   abandoned and a waiter takes over (see `drive::Interrupt`).
//! - An **asyncio task** drives a [`LoadOp`] step by step: `poll` says whether the load is done,
//!   whether this task must run the loader (it awaits the coroutine and hands the result back
//!   with `set_result` or `set_error`), or whether it must wait (the waker schedules a callback
//!   on its event loop). A task cancelled while it runs the loader closes its op, which drops
//!   the cache's load guard: a waiter takes over with its own loader, as the Rust contract says.
//!   An op is polled first without a waker, so a hit allocates no callback.
//! - A call of a plain function decorated with `cached` is one native call (a
//!   [`CachedFunction`]): its key is made from the arguments here, as `functools.lru_cache`
//!   makes it, and the function is called as the loader.
//!
//! Values are Python objects, cached as they are (not copied). A loader's exception is handed
//! to every caller that waited for that load, as the same exception object.
//!
//! # The client
//!
//! `rulebook.Client` wraps [`client::NativeClient`], `rulebook-client`'s replica with the GIL
//! released while it answers, restarted in a forked child (see `client.rs`); `json.rs` converts
//! plain Python values to JSON and back.
#![deny(missing_docs)]

mod answer;
mod client;
mod drive;
mod json;
mod key;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};
use rulebook_cache::{Cache, LoadError, Loaded};

use crate::drive::{block_on, CallbackWaker, Interrupt};
use crate::key::{Key, Keys};

type Value = Py<PyAny>;
type Answer = Result<Arc<Value>, LoadError<PyErr>>;
type LoadFuture = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// `LoadOp.poll`: the load is over; `result()` has the value or raises the error.
const DONE: u8 = 0;
/// `LoadOp.poll`: this task leads the load: run the loader, then `set_result` or `set_error`.
const RUN: u8 = 1;
/// `LoadOp.poll`: another caller is loading; the waker will be called when it ends.
const WAIT: u8 = 2;

/// The coherent cache, for the `rulebook.cache` module. Keys are hashable Python values, values
/// any Python objects.
#[pyclass(module = "rulebook._native", name = "Cache", frozen)]
struct NativeCache {
    cache: Cache<Key, Value>,
    keys: Keys,
}

#[pymethods]
impl NativeCache {
    /// `maxsize`: the most entries (at least 1). `ttl`, `tti`: seconds after insertion, or
    /// since the last read, after which an entry expires (positive; `None` for never).
    ///
    /// Errors: `ValueError` for a `maxsize` below 1 or a `ttl`/`tti` that is not a positive,
    /// finite number of seconds.
    #[new]
    #[pyo3(signature = (maxsize, ttl=None, tti=None))]
    fn new(py: Python<'_>, maxsize: u64, ttl: Option<f64>, tti: Option<f64>) -> PyResult<Self> {
        if maxsize == 0 {
            return Err(PyValueError::new_err("`maxsize` must be at least 1"));
        }
        // A removal listener makes `invalidate_all` hand the removed values back instead of
        // dropping them under the cache's lock: dropping a Python object may run its
        // `__del__`, which may let another thread take the GIL and then wait for that lock.
        let mut builder = Cache::builder()
            .max_capacity(maxsize)
            .removal_listener(|_, _, _| {});
        if let Some(ttl) = ttl {
            builder = builder.time_to_live(seconds("ttl", ttl)?);
        }
        if let Some(tti) = tti {
            builder = builder.time_to_idle(seconds("tti", tti)?);
        }
        Ok(Self {
            cache: builder.build(),
            keys: Keys::new(py),
        })
    }

    /// The cached value for `key`, or `default` when there is none.
    ///
    /// Errors: `TypeError` if `key` is not hashable.
    #[pyo3(signature = (key, default=None))]
    fn get(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let key = self.keys.key(key)?;
        Ok(match self.cache.get(&key) {
            Some(value) => value.clone_ref(py),
            None => default.unwrap_or_else(|| py.None()),
        })
    }

    /// The cached value for `key`, or what `loader()` returns, cached with `tags` (an iterable
    /// of strings, or a callable taking the value and returning them). Concurrent callers that
    /// miss on one key run one loader; the others wait, GIL released, and get its value or its
    /// exception.
    ///
    /// Errors: the loader's exception (not cached); `TypeError` for an unhashable key or tags
    /// that are not strings; `KeyboardInterrupt` while waiting.
    #[pyo3(signature = (key, loader, tags=None))]
    fn get_or_load(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        loader: Py<PyAny>,
        tags: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let key = self.keys.key(key)?;
        let interrupt = Interrupt::default();
        let load = self.cache.get_or_load(key, || async {
            let value = loader.bind(py).call0();
            let tags = tags.as_ref().map(|tags| tags.bind(py));
            interrupt
                .guard(value.and_then(|value| loaded(&value, tags)))
                .await
        });
        answer(py, &block_on(py, load, &interrupt)?)
    }

    /// Starts a load of `key` for an asyncio task, to be driven with [`LoadOp::poll`]. `tags` as
    /// for `get_or_load`.
    ///
    /// Errors: `TypeError` if `key` is not hashable.
    #[pyo3(signature = (key, tags=None))]
    fn load(&self, key: &Bound<'_, PyAny>, tags: Option<Py<PyAny>>) -> PyResult<LoadOp> {
        Ok(self.start(self.keys.key(key)?, tags))
    }

    /// `load` for a call of a decorated `async def`: keyed as `call` keys it.
    ///
    /// Errors: `TypeError` for an unhashable argument.
    #[pyo3(signature = (args, kwargs=None, tags=None))]
    fn load_call(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
        tags: Option<Py<PyAny>>,
    ) -> PyResult<LoadOp> {
        Ok(self.start(self.keys.call_key(args, kwargs)?, tags))
    }

    /// `invalidate` for the entry of the call `func(*args, **kwargs)`, keyed as `call` keys it.
    ///
    /// Errors: `TypeError` for an unhashable argument.
    #[pyo3(signature = (args, kwargs=None))]
    fn invalidate_call(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.cache.invalidate(&self.keys.call_key(args, kwargs)?);
        Ok(())
    }

    /// Removes `key`. Once this returns, no read that starts afterwards gets a value whose load
    /// began before the call.
    ///
    /// Errors: `TypeError` if `key` is not hashable.
    fn invalidate(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let key = self.keys.key(key)?;
        self.cache.invalidate(&key);
        Ok(())
    }

    /// Removes every entry tagged `tag`, with the same guarantee as `invalidate`.
    fn invalidate_tag(&self, tag: &str) {
        self.cache.invalidate_tag(tag);
    }

    /// Removes every entry, with the same guarantee as `invalidate`.
    fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// The counters since the cache was built, as a dict of ints: `hits`, `misses`, `loads`,
    /// `load_errors`, `coalesced_waiters`, `invalidations_key`, `invalidations_tag`,
    /// `invalidations_all`, `invalidated_entries`, `discarded_loads`, `evictions_size`,
    /// `evictions_expired`, `evictions_idle`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.cache.stats();
        let dict = PyDict::new(py);
        for (name, count) in [
            ("hits", stats.hits),
            ("misses", stats.misses),
            ("loads", stats.loads),
            ("load_errors", stats.load_errors),
            ("coalesced_waiters", stats.coalesced_waiters),
            ("invalidations_key", stats.invalidations_key),
            ("invalidations_tag", stats.invalidations_tag),
            ("invalidations_all", stats.invalidations_all),
            ("invalidated_entries", stats.invalidated_entries),
            ("discarded_loads", stats.discarded_loads),
            ("evictions_size", stats.evictions_size),
            ("evictions_expired", stats.evictions_expired),
            ("evictions_idle", stats.evictions_idle),
        ] {
            dict.set_item(name, count)?;
        }
        Ok(dict)
    }

    /// The number of entries, including expired ones not yet removed.
    fn __len__(&self) -> usize {
        self.cache.len()
    }
}

impl NativeCache {
    /// `func(*args, **kwargs)`, cached under a key made of the arguments (as
    /// `functools.lru_cache` makes it). `tags`, if given, is called with the same arguments
    /// when the value is loaded and returns its tags.
    ///
    /// Errors: `func`'s or `tags`' exception (not cached); `TypeError` for an unhashable
    /// argument or tags that are not strings; `KeyboardInterrupt` while waiting.
    fn call(
        &self,
        py: Python<'_>,
        func: &Bound<'_, PyAny>,
        tags: Option<&Bound<'_, PyAny>>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let key = self.keys.call_key(args, kwargs)?;
        let interrupt = Interrupt::default();
        let load = self.cache.get_or_load(key, || async {
            let loaded = func.call(args, kwargs).and_then(|value| {
                let names = match tags {
                    Some(tags) => tag_names(&tags.call(args, kwargs)?)?,
                    None => Vec::new(),
                };
                Ok(Loaded::new(value.unbind()).with_tags(names))
            });
            interrupt.guard(loaded).await
        });
        answer(py, &block_on(py, load, &interrupt)?)
    }

    /// A [`LoadOp`] for `key`: the cache's `get_or_load` with a loader that waits for the task.
    fn start(&self, key: Key, tags: Option<Py<PyAny>>) -> LoadOp {
        let cache = self.cache.clone();
        let slot = Arc::new(Mutex::new(Slot::Idle));
        let loader = Handoff {
            slot: Arc::clone(&slot),
        };
        let future: LoadFuture = Box::pin(async move { cache.get_or_load(key, || loader).await });
        LoadOp {
            state: Mutex::new(OpState {
                future: Some(future),
                answer: None,
            }),
            slot,
            tags,
        }
    }
}

/// A plain function decorated with `cached`: calling it is one native call, keyed from the
/// arguments. It binds as a method does (`__get__`), and has a `__dict__` so `functools.wraps`
/// can give it the function's name and docs.
#[pyclass(module = "rulebook._native", frozen, dict)]
struct CachedFunction {
    cache: Py<NativeCache>,
    func: Py<PyAny>,
    tags: Option<Py<PyAny>>,
}

#[pymethods]
impl CachedFunction {
    /// `func` cached in `cache`; `tags`, if given, takes `func`'s arguments and returns the
    /// entry's tags.
    #[new]
    #[pyo3(signature = (cache, func, tags=None))]
    fn new(cache: Py<NativeCache>, func: Py<PyAny>, tags: Option<Py<PyAny>>) -> Self {
        Self { cache, func, tags }
    }

    /// `func(*args, **kwargs)` from the cache, or loaded (see `NativeCache.call`).
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let tags = self.tags.as_ref().map(|tags| tags.bind(py));
        self.cache
            .get()
            .call(py, self.func.bind(py), tags, args, kwargs)
    }

    /// Binds to `instance` like a function: `instance.method(...)` passes it first.
    fn __get__<'py>(
        slf: Bound<'py, Self>,
        instance: Option<Bound<'py, PyAny>>,
        _owner: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        static METHOD: PyOnceLock<Py<PyType>> = PyOnceLock::new();
        match instance {
            Some(instance) if !instance.is_none() => METHOD
                .import(slf.py(), "types", "MethodType")?
                .call1((slf, instance)),
            _ => Ok(slf.into_any()),
        }
    }

    /// Drops the entry of the call `func(*args, **kwargs)`: once this returns, no call that
    /// starts afterwards gets a value whose load began before it.
    ///
    /// Errors: `TypeError` for an unhashable argument.
    #[pyo3(signature = (*args, **kwargs))]
    fn invalidate(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.cache.get().invalidate_call(args, kwargs)
    }
}

/// What an asyncio task's loader hands the cache.
enum Slot {
    /// The cache has not asked for a value.
    Idle,
    /// The cache made this task the leader and waits for its loader.
    Requested,
    /// The task's loader finished.
    Filled(PyResult<Loaded<Value>>),
}

/// The loader future of an asyncio load: ready once the task has filled the slot.
struct Handoff {
    slot: Arc<Mutex<Slot>>,
}

impl Future for Handoff {
    type Output = PyResult<Loaded<Value>>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.slot.lock();
        match std::mem::replace(&mut *slot, Slot::Requested) {
            Slot::Filled(result) => Poll::Ready(result),
            // The task re-polls after filling the slot; no waker is needed.
            Slot::Idle | Slot::Requested => Poll::Pending,
        }
    }
}

struct OpState {
    /// The cache's `get_or_load`, until it ends or the op is closed.
    future: Option<LoadFuture>,
    answer: Option<Answer>,
}

/// One asyncio task's `get_or_load`, driven by `rulebook.cache`. Used by one task only.
#[pyclass(module = "rulebook._native", frozen)]
struct LoadOp {
    // Guards the future and its answer. Only the task that owns the op takes it, so no other
    // thread ever waits for it.
    state: Mutex<OpState>,
    slot: Arc<Mutex<Slot>>,
    tags: Option<Py<PyAny>>,
}

#[pymethods]
impl LoadOp {
    /// Advances the load: `DONE` (then call `result`), `RUN` (run the loader, then `set_result`
    /// or `set_error`, then poll again) or `WAIT` (`wake()` will be called, from any thread,
    /// when it is worth polling again). With `wake=None` nothing will be called: a caller told
    /// `WAIT` polls again with a callable before it waits (a hit costs no callback that way).
    #[pyo3(signature = (wake=None))]
    fn poll(&self, wake: Option<Py<PyAny>>) -> u8 {
        let mut state = self.state.lock();
        let Some(future) = state.future.as_mut() else {
            return DONE;
        };
        let waker = wake.map_or_else(|| Waker::noop().clone(), CallbackWaker::waker);
        match future.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(answer) => {
                state.answer = Some(answer);
                state.future = None;
                DONE
            }
            Poll::Pending if matches!(*self.slot.lock(), Slot::Requested) => RUN,
            Poll::Pending => WAIT,
        }
    }

    /// Hands the loader's value to the cache (with the op's tags).
    ///
    /// Errors: none of its own; a tags callable's exception becomes the load's error.
    fn set_result(&self, value: &Bound<'_, PyAny>) {
        let tags = self.tags.as_ref().map(|tags| tags.bind(value.py()));
        *self.slot.lock() = Slot::Filled(loaded(value, tags));
    }

    /// Hands the loader's exception to the cache: every caller waiting for this load gets it.
    fn set_error(&self, error: &Bound<'_, PyAny>) {
        *self.slot.lock() = Slot::Filled(Err(PyErr::from_value(error.clone())));
    }

    /// The value, once `poll` said `DONE`.
    ///
    /// Errors: the loader's exception; `RuntimeError` if the load is not over.
    fn result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.state.lock().answer.take() {
            Some(done) => answer(py, &done),
            None => Err(PyRuntimeError::new_err(
                "the load is not over: poll it first",
            )),
        }
    }

    /// Abandons the load if it is not over: when this task was running the loader, a waiting
    /// caller takes over with its own.
    fn close(&self) {
        let future = self.state.lock().future.take();
        drop(future);
    }
}

/// A loader's value with its tags, for the cache.
fn loaded(value: &Bound<'_, PyAny>, tags: Option<&Bound<'_, PyAny>>) -> PyResult<Loaded<Value>> {
    let names = match tags {
        Some(tags) if tags.is_callable() => tag_names(&tags.call1((value,))?)?,
        Some(tags) => tag_names(tags)?,
        None => Vec::new(),
    };
    Ok(Loaded::new(value.clone().unbind()).with_tags(names))
}

/// The strings of an iterable of tags.
fn tag_names(tags: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if tags.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "`tags` must be an iterable of strings, not one string: write [tag]",
        ));
    }
    tags.try_iter()?
        .map(|tag| tag?.extract::<String>())
        .collect()
}

fn answer(py: Python<'_>, answer: &Answer) -> PyResult<Py<PyAny>> {
    match answer {
        Ok(value) => Ok(value.clone_ref(py)),
        Err(LoadError::Failed(error)) => Err(error.clone_ref(py)),
        Err(error) => Err(PyRuntimeError::new_err(error.to_string())),
    }
}

fn seconds(name: &str, seconds: f64) -> PyResult<Duration> {
    if seconds.is_finite() && seconds > 0.0 {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(PyValueError::new_err(format!(
            "`{name}` must be a positive number of seconds, not {seconds}"
        )))
    }
}

/// The native module.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<NativeCache>()?;
    module.add_class::<LoadOp>()?;
    module.add_class::<CachedFunction>()?;
    module.add_class::<client::NativeClient>()?;
    client::register_fork_hook(module)?;
    module.add("DONE", DONE)?;
    module.add("RUN", RUN)?;
    module.add("WAIT", WAIT)?;
    Ok(())
}
