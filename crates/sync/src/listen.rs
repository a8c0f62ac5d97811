//! PostgreSQL LISTEN: a connection of its own that waits for the change log's notifications
//! (see [`rulebook_store::Notice`]). A wake-up wakes the reader; changes carried in a payload
//! (a write through another Rulebook instance) are invalidated at once, here, without waiting
//! for the reader's round trips to the log, which still follows (woken by the same write's
//! wake-up) to move the cursor and the applied position and skips what the payload applied.
//! Notifications are lost while the connection is down, so every (re)connection also wakes the
//! reader, and a reconnection counts as a replay.

use std::sync::Arc;
use std::time::Duration;

use rulebook_store::Notice;
use tokio::sync::watch;

use crate::feed::Shared;

pub(crate) async fn listen_loop(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let store = shared.registry.store().clone();
    let first_backoff = Duration::from_millis(50);
    let mut backoff = first_backoff;
    let mut was_up = false;
    loop {
        let opened = tokio::select! {
            opened = store.listen_for_changes() => opened,
            _ = stopped.changed() => return,
        };
        let mut notifications = match opened {
            Ok(Some(n)) => n,
            // SQLite has no notifications; the poll does the work.
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for changes; polling until it can");
                if let Some(listen) = shared.state.lock().listen.as_mut() {
                    listen.connected = false;
                    listen.last_error = Some(e.to_string());
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped.changed() => return,
                }
                backoff = (backoff * 2).min(shared.config.max_backoff);
                continue;
            }
        };
        backoff = first_backoff;
        if let Some(listen) = shared.state.lock().listen.as_mut() {
            listen.connected = true;
            if was_up {
                listen.reconnects += 1;
            }
        }
        // Whatever was notified while nobody listened is read now.
        shared.wake(was_up);
        was_up = true;
        loop {
            tokio::select! {
                next = notifications.next() => match next {
                    Ok(Notice::Wake) => {
                        shared.wake(false);
                        if let Some(listen) = shared.state.lock().listen.as_mut() {
                            listen.notifications += 1;
                        }
                    }
                    Ok(Notice::Changes(changes)) => {
                        let applied = shared.apply_pushed(changes);
                        if let Some(listen) = shared.state.lock().listen.as_mut() {
                            listen.notifications += 1;
                            listen.changes_applied += applied;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the LISTEN connection dropped; reconnecting");
                        if let Some(listen) = shared.state.lock().listen.as_mut() {
                            listen.connected = false;
                            listen.last_error = Some(e.to_string());
                        }
                        shared.wake(false);
                        break;
                    }
                },
                _ = stopped.changed() => return,
            }
        }
    }
}
