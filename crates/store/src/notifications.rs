//! [`Store::listen_for_changes`]: on PostgreSQL, a connection of its own that LISTENs for the
//! change log's wake-ups. The triggers send an empty `NOTIFY rulebook_changes` per writing
//! statement; a wake-up only says "read the change log now", so a lost one costs at most one poll
//! of the log. The reader that uses it (the sync crate's feed) owns the cursor and reconnecting.

use sqlx::postgres::PgListener;

use crate::db::Pool;
use crate::error::db_error;
use crate::{Store, StoreError};

/// The notification channel the PostgreSQL triggers send on.
pub const NOTIFY_CHANNEL: &str = "rulebook_changes";

/// A PostgreSQL connection LISTENing for the change log's wake-ups (see [`Store::listen_for_changes`]).
/// A wake-up carries nothing: on each one, read the change log.
pub struct ChangeNotifications {
    listener: PgListener,
}

impl std::fmt::Debug for ChangeNotifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeNotifications")
            .finish_non_exhaustive()
    }
}

impl ChangeNotifications {
    /// Waits for the next wake-up. An error means the connection dropped: wake-ups sent since
    /// are lost, so read the change log and open a new listener (this one does not reconnect).
    pub async fn next(&mut self) -> Result<(), StoreError> {
        match self.listener.try_recv().await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(StoreError::Unavailable(
                "the LISTEN connection was closed".into(),
            )),
            Err(e) => Err(db_error("waiting for change notifications", e)),
        }
    }
}

impl Store {
    /// On PostgreSQL, opens a connection of its own that LISTENs on [`NOTIFY_CHANNEL`], where
    /// the change log's triggers send a wake-up per writing statement; `None` on SQLite, which
    /// has no notifications (poll the log instead).
    pub async fn listen_for_changes(&self) -> Result<Option<ChangeNotifications>, StoreError> {
        let Pool::Postgres(pool) = self.pool() else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool)
            .await
            .map_err(|e| db_error("opening the LISTEN connection", e))?;
        listener
            .listen(NOTIFY_CHANNEL)
            .await
            .map_err(|e| db_error("listening for change notifications", e))?;
        Ok(Some(ChangeNotifications { listener }))
    }
}
