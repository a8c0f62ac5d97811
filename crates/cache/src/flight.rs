//! A load in flight: the one place where the callers that missed on the same key wait for the
//! caller that runs the loader.
//!
//! Blocking callers wait on a condition variable and async callers register a waker; the leader
//! (or its guard's `Drop`, if the leader was cancelled or panicked) completes the flight once and
//! wakes both kinds.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::shim::{Arc, Condvar, Mutex};

/// How a load ended, as seen by the callers that waited for it.
pub(crate) enum Outcome<V> {
    /// The load produced `value`. `fresh` is false when an invalidation that matches the value
    /// came while it was loading: then only callers that joined before any invalidation at all
    /// (the flight's start epoch was still current) may use it.
    Value { value: Arc<V>, fresh: bool },
    /// The loader returned an error (an `Arc<E>`, type-erased because the cache is not generic
    /// over the error type).
    Failed(Arc<dyn Any + Send + Sync>),
    /// The loader panicked.
    Panicked,
    /// The loading caller was cancelled (its future dropped) before the load finished.
    Abandoned,
}

impl<V> Clone for Outcome<V> {
    fn clone(&self) -> Self {
        match self {
            Self::Value { value, fresh } => Self::Value {
                value: Arc::clone(value),
                fresh: *fresh,
            },
            Self::Failed(error) => Self::Failed(Arc::clone(error)),
            Self::Panicked => Self::Panicked,
            Self::Abandoned => Self::Abandoned,
        }
    }
}

struct State<V> {
    outcome: Option<Outcome<V>>,
    wakers: Vec<Waker>,
}

/// One load in flight.
pub(crate) struct Flight<V> {
    /// The invalidation epoch read when the load began, under the coherence lock.
    pub(crate) start: u64,
    // This mutex guards only the outcome and the wakers of this one load; it is never held
    // while another lock is taken, so it cannot take part in a deadlock.
    state: Mutex<State<V>>,
    done: Condvar,
}

impl<V> Flight<V> {
    pub(crate) fn new(start: u64) -> Self {
        Self {
            start,
            state: Mutex::new(State {
                outcome: None,
                wakers: Vec::new(),
            }),
            done: Condvar::new(),
        }
    }

    /// Records how the load ended and wakes every waiter. Only the first call counts.
    pub(crate) fn complete(&self, outcome: Outcome<V>) {
        let wakers = {
            let mut state = self.state.lock();
            if state.outcome.is_some() {
                return;
            }
            state.outcome = Some(outcome);
            std::mem::take(&mut state.wakers)
        };
        self.done.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Blocks the calling thread until the load ends.
    pub(crate) fn wait_blocking(&self) -> Outcome<V> {
        let mut state = self.state.lock();
        loop {
            if let Some(outcome) = &state.outcome {
                return outcome.clone();
            }
            state = self.done.wait(state);
        }
    }

    /// Waits, without blocking the thread, until the load ends.
    pub(crate) fn wait(self: Arc<Self>) -> WaitFlight<V> {
        WaitFlight {
            flight: self,
            slot: None,
        }
    }
}

/// The future returned by [`Flight::wait`].
pub(crate) struct WaitFlight<V> {
    flight: Arc<Flight<V>>,
    /// Where this waiter's waker sits in the flight's list, so a re-poll replaces it instead
    /// of growing the list.
    slot: Option<usize>,
}

impl<V> Future for WaitFlight<V> {
    type Output = Outcome<V>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut state = this.flight.state.lock();
        if let Some(outcome) = &state.outcome {
            return Poll::Ready(outcome.clone());
        }
        match this.slot {
            Some(slot) if slot < state.wakers.len() => {
                if !state.wakers[slot].will_wake(cx.waker()) {
                    state.wakers[slot] = cx.waker().clone();
                }
            }
            _ => {
                this.slot = Some(state.wakers.len());
                state.wakers.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}
