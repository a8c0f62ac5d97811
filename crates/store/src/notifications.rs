//! [`Store::listen_for_changes`]: on PostgreSQL, a connection of its own that LISTENs on
//! [`NOTIFY_CHANNEL`] for the change log's notifications. Two kinds arrive there:
//!
//! - **Wake-ups.** The triggers send an empty `NOTIFY` per writing statement, whoever wrote
//!   (Rulebook, a bulk import, plain SQL). It only says "read the change log now".
//! - **Changes.** A write through a [`Store`] also sends, from the same statement that reads back
//!   its change rows (see `change_log::own_changes`), a payload carrying those rows: what to
//!   invalidate (keys, entry points and labels, never values) and their `seq`s, signed with the
//!   writing store's id. Only when the write changed at most [`PAYLOAD_MAX_CHANGES`] rules and the
//!   payload fits NOTIFY's limit ([`PAYLOAD_MAX_BYTES`]); a larger batch brings the wake-up alone.
//!
//! Both are sent inside the writing transaction, so PostgreSQL delivers them with its commit and
//! never for a rollback: a change carried in a payload has committed, and a load that starts
//! after a listener invalidated it reads it. They are lost while the connection is down, so a
//! reader never trusts them alone (the sync crate's feed reads the log on every wake-up, on every
//! reconnection and on a poll). The reader owns the cursor and reconnecting.

use serde::Deserialize;
use sqlx::postgres::PgListener;

use crate::change_log::{Change, ChangeRow};
use crate::db::Pool;
use crate::error::db_error;
use crate::{Store, StoreError};

/// The notification channel the PostgreSQL triggers and writers send on.
pub const NOTIFY_CHANNEL: &str = "rulebook_changes";

/// The most changes one notification carries; a write of more sends only the wake-up (a bulk
/// import of a thousand rules is one empty notification, not a thousand rows of JSON).
pub const PAYLOAD_MAX_CHANGES: i64 = 32;

/// NOTIFY refuses a payload of 8000 bytes or more (PostgreSQL's default build); a payload that
/// long is not sent, and the wake-up alone tells listeners to read the log.
pub const PAYLOAD_MAX_BYTES: i64 = 8000;

/// What a notification's payload holds (see the module docs).
#[derive(Deserialize)]
struct Payload {
    /// The id of the store that wrote ([`Store::instance_id`]).
    from: String,
    /// The change rows of the write, in `seq` order.
    changes: Vec<ChangeRow>,
}

/// One notification, as [`ChangeNotifications::next`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Something committed: read the change log. (An empty notification, or a payload this
    /// version cannot read.)
    Wake,
    /// Changes another store committed, carried in the notification: invalidate from them at
    /// once. The change log has them too, and reading it is still what moves a cursor.
    Changes(Vec<Change>),
}

/// A PostgreSQL connection LISTENing for the change log's notifications (see
/// [`Store::listen_for_changes`]).
pub struct ChangeNotifications {
    listener: PgListener,
    /// This store's id: its own writes' payloads are skipped (it applied them when it wrote).
    own: String,
}

impl std::fmt::Debug for ChangeNotifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeNotifications")
            .finish_non_exhaustive()
    }
}

impl ChangeNotifications {
    /// Waits for the next notification, skipping the payloads of this store's own writes. An
    /// error means the connection dropped: notifications sent since are lost, so read the change
    /// log and open a new listener (this one does not reconnect).
    pub async fn next(&mut self) -> Result<Notice, StoreError> {
        loop {
            let notification = match self.listener.try_recv().await {
                Ok(Some(n)) => n,
                Ok(None) => {
                    return Err(StoreError::Unavailable(
                        "the LISTEN connection was closed".into(),
                    ))
                }
                Err(e) => return Err(db_error("waiting for change notifications", e)),
            };
            match read_payload(notification.payload(), &self.own) {
                Some(notice) => return Ok(notice),
                None => continue,
            }
        }
    }
}

/// Reads a notification's payload; `None` for one of the store `own`'s writes.
fn read_payload(payload: &str, own: &str) -> Option<Notice> {
    if payload.is_empty() {
        return Some(Notice::Wake);
    }
    let read = serde_json::from_str::<Payload>(payload)
        .map_err(|e| e.to_string())
        .and_then(|p| {
            if p.from == own {
                return Ok(None);
            }
            p.changes
                .into_iter()
                .map(|row| row.into_change().map(|(change, _)| change))
                .collect::<Result<Vec<Change>, StoreError>>()
                .map(Some)
                .map_err(|e| e.to_string())
        });
    match read {
        Ok(Some(changes)) => Some(Notice::Changes(changes)),
        Ok(None) => None,
        Err(e) => {
            // Someone else's NOTIFY on the channel, or another version's: the log has everything.
            tracing::warn!(error = %e, "reading a change notification's payload failed; reading the log instead");
            Some(Notice::Wake)
        }
    }
}

impl Store {
    /// On PostgreSQL, opens a connection of its own that LISTENs on [`NOTIFY_CHANNEL`] (see the
    /// module docs for what arrives there); `None` on SQLite, which has no notifications (poll
    /// the log instead).
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
        Ok(Some(ChangeNotifications {
            listener,
            own: self.instance_id().to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(from: &str, tenant: &str) -> String {
        serde_json::json!({
            "from": from,
            "changes": [{
                "seq": 7, "tenant": tenant, "rule_id": "RF-002", "op": "update",
                "old_entry_point": "checkout", "new_entry_point": "checkout",
                "old_tags": "[\"currency:USD\"]", "new_tags": null,
                "changed_at": "2026-01-01T00:00:00.123456+00:00"
            }]
        })
        .to_string()
    }

    #[test]
    fn a_payload_from_another_store_carries_its_changes_and_one_from_this_store_is_skipped() {
        let Some(Notice::Changes(changes)) = read_payload(&payload("b", "acme"), "a") else {
            panic!("no changes read");
        };
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].seq, changes[0].tenant.as_str()), (7, "acme"));
        assert_eq!(changes[0].old_tags, vec!["currency:USD".to_owned()]);
        assert!(
            changes[0]
                .tags()
                .contains(&crate::deps::tenant_tag("acme", "rule:RF-002")),
            "{:?}",
            changes[0].tags()
        );
        assert_eq!(read_payload(&payload("a", "acme"), "a"), None);
    }

    #[test]
    fn an_empty_or_unreadable_payload_is_a_wake_up() {
        assert_eq!(read_payload("", "a"), Some(Notice::Wake));
        assert_eq!(read_payload("not json", "a"), Some(Notice::Wake));
        assert_eq!(
            read_payload(r#"{"from":"b","changes":[{"seq":1}]}"#, "a"),
            Some(Notice::Wake)
        );
    }
}
