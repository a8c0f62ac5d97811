//! Test-only switches on the write path (feature `test-hooks`, which only tests turn on):
//! [`Store::fail_next_write`] and [`Store::pause_next_write`] act on a write transaction after its
//! rule row, history row and change-log row are written and before it commits, so that tests can
//! show a failed write leaves nothing behind and that nothing is handed to the cache before the
//! commit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::Store;

/// The switches of one store.
#[derive(Debug, Default)]
pub(crate) struct WriteHooks {
    fail_next: AtomicBool,
    /// The pause the next write takes. A mutex: set by a test, taken by one write.
    pause_next: Mutex<Option<PauseSide>>,
}

/// The write's side of a [`WritePause`].
#[derive(Debug)]
struct PauseSide {
    reached: oneshot::Sender<()>,
    resume: oneshot::Receiver<()>,
}

/// A write transaction held between its writes and its commit; see [`Store::pause_next_write`].
#[derive(Debug)]
pub struct WritePause {
    reached: Option<oneshot::Receiver<()>>,
    resume: oneshot::Sender<()>,
}

impl WritePause {
    /// Waits until the paused write has written its rows and is waiting to commit.
    ///
    /// # Panics
    ///
    /// When no write reaches the pause within `within`, or this is called twice.
    pub async fn reached(&mut self, within: Duration) {
        let Some(reached) = self.reached.take() else {
            panic!("WritePause::reached called twice");
        };
        match tokio::time::timeout(within, reached).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("the paused write was dropped before it reached the pause"),
            Err(_) => panic!("no write reached the pause within {within:?}"),
        }
    }

    /// Lets the paused write commit (dropping the pause does too).
    pub fn resume(self) {
        let _ = self.resume.send(());
    }
}

impl WriteHooks {
    /// Called by every write between its writes and its commit: waits while paused; returns
    /// whether the write must fail instead of committing.
    pub(crate) async fn before_commit(&self) -> bool {
        let pause = self.pause_next.lock().take();
        if let Some(PauseSide { reached, resume }) = pause {
            let _ = reached.send(());
            // A dropped `WritePause` resumes the write too.
            let _ = resume.await;
        }
        self.fail_next.swap(false, Ordering::SeqCst)
    }
}

impl Store {
    /// Test support (feature `test-hooks`): makes the next write transaction fail just before its
    /// commit, after its rule row, history row and change-log row have been written, so that
    /// tests can show a failed write leaves nothing behind and invalidates nothing.
    pub fn fail_next_write(&self) {
        self.hooks().fail_next.store(true, Ordering::SeqCst);
    }

    /// Test support (feature `test-hooks`): makes the next write transaction stop after its
    /// rows are written and before it commits, until [`WritePause::resume`]; the transaction
    /// holds its locks meanwhile.
    pub fn pause_next_write(&self) -> WritePause {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (resume_tx, resume_rx) = oneshot::channel();
        *self.hooks().pause_next.lock() = Some(PauseSide {
            reached: reached_tx,
            resume: resume_rx,
        });
        WritePause {
            reached: Some(reached_rx),
            resume: resume_tx,
        }
    }
}
