//! Running the cache's async `get_or_load` from Python: to completion on a thread, or one step
//! at a time from an asyncio task.
//!
//! Both drivers poll the future with the GIL held, so the cache's own code (key comparisons,
//! the protocol's locks) always runs on the thread that holds the GIL and never waits for it.
//! The GIL is released in exactly one place: while a thread waits for a load that another
//! thread (or task) runs, which may need the GIL to finish.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

/// How often a thread waiting for another's load looks at pending signals, so Ctrl-C still
/// interrupts a main thread that is waiting.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// Polls `future` to completion on this thread.
///
/// The first poll uses a no-op waker: a hit, or a load this thread runs itself, finishes
/// there without allocating. Only a caller that must wait for another's load builds a real
/// waker, and it waits with the GIL released.
///
/// Errors: whatever a signal handler raises while waiting (`KeyboardInterrupt`), or the
/// interruption `interrupt` caught in this thread's loader; the future is then dropped, which
/// leaves the load to its other callers (a waiter takes over with its own loader).
pub(crate) fn block_on<F: Future>(
    py: Python<'_>,
    future: F,
    interrupt: &Interrupt,
) -> PyResult<F::Output> {
    let mut future = pin!(future);
    if let Poll::Ready(output) = future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        return Ok(output);
    }
    interrupt.check()?;
    let parker = Arc::new(Parker::default());
    let waker = Waker::from(Arc::clone(&parker));
    let mut context = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return Ok(output);
        }
        interrupt.check()?;
        while !py.detach(|| parker.park(SIGNAL_CHECK)) {
            py.check_signals()?;
        }
    }
}

/// How a thread's loader is interrupted rather than failed.
///
/// A loader's `Exception` is the load's error, shared with every caller waiting for it. A
/// `BaseException` that is not an `Exception` (`KeyboardInterrupt`, `SystemExit`) concerns
/// only the thread it was raised in: the loader's future parks it here and never finishes,
/// [`block_on`] raises it in this thread and drops the load, and the waiters take over, as they
/// do when an asyncio task is cancelled.
#[derive(Default)]
pub(crate) struct Interrupt {
    raised: RefCell<Option<PyErr>>,
}

impl Interrupt {
    /// The loader's result as the cache should see it: interruptions never reach the cache.
    pub(crate) async fn guard<T>(&self, result: PyResult<T>) -> PyResult<T> {
        match result {
            Err(error) if Python::attach(|py| !error.is_instance_of::<PyException>(py)) => {
                *self.raised.borrow_mut() = Some(error);
                std::future::pending().await
            }
            result => result,
        }
    }

    fn check(&self) -> PyResult<()> {
        match self.raised.borrow_mut().take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// A waker that unparks one blocked thread.
#[derive(Default)]
struct Parker {
    // Guards only the wake-up flag; held for a flag read or write, never while calling out.
    woken: Mutex<bool>,
    cond: Condvar,
}

impl Parker {
    /// Waits up to `timeout` for a wake-up; true if there was one (which it consumes).
    fn park(&self, timeout: Duration) -> bool {
        let mut woken = self.woken.lock();
        if !*woken {
            self.cond.wait_for(&mut woken, timeout);
        }
        std::mem::replace(&mut *woken, false)
    }
}

impl Wake for Parker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        *self.woken.lock() = true;
        self.cond.notify_one();
    }
}

/// A waker that calls a Python callable once: the asyncio driver passes one that wakes its
/// task through the event loop (`loop.call_soon_threadsafe`), from whichever thread ends the
/// load.
pub(crate) struct CallbackWaker {
    callback: Mutex<Option<Py<PyAny>>>,
}

impl CallbackWaker {
    pub(crate) fn waker(callback: Py<PyAny>) -> Waker {
        Waker::from(Arc::new(Self {
            callback: Mutex::new(Some(callback)),
        }))
    }
}

impl Wake for CallbackWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let Some(callback) = self.callback.lock().take() else {
            return;
        };
        // The cache wakes its waiters with none of its locks held, so taking the GIL here
        // cannot close a cycle with a thread that holds the GIL and waits for a cache lock.
        Python::attach(|py| {
            if let Err(error) = callback.call0(py) {
                error.write_unraisable(py, Some(callback.bind(py)));
            }
        });
    }
}
