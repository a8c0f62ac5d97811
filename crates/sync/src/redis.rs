//! Redis pub/sub: after each own commit the instance publishes what changed (the change-log
//! rows' keys and labels, never the new values); the others invalidate at once from the message
//! and skip those rows when the log brings them. Pub/sub is at-most-once: a message lost while
//! Redis or a connection is down is still in the change log, which LISTEN or the poll reads.
//!
//! Two connections, each with its own reconnect loop and backoff: the subscription, and a
//! publishing connection that also pings, so a dead Redis shows in the status even when nothing
//! is written, and a restarted one is picked up without a restart of Rulebook.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use rulebook_store::Change;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::config::{redis_client, RedisConfig};
use crate::feed::Shared;

/// Above this many changes a message carries none, only a wake-up to read the log (a bulk
/// import of a thousand rules is one small message).
const MAX_CHANGES_PER_MESSAGE: usize = 32;

/// How long one connection attempt, publish or ping may take before Redis counts as down.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// How often an idle connection is pinged.
const PING_EVERY: Duration = Duration::from_secs(1);

/// What goes over the channel.
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    /// The publishing instance.
    from: String,
    /// The committed changes; empty when `wake` is set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    changes: Vec<Change>,
    /// Too many changes to carry: read the log.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    wake: bool,
}

fn encode(from: &str, changes: Vec<Change>) -> Result<String, serde_json::Error> {
    let message = if changes.len() > MAX_CHANGES_PER_MESSAGE {
        Message {
            from: from.to_owned(),
            changes: Vec::new(),
            wake: true,
        }
    } else {
        Message {
            from: from.to_owned(),
            changes,
            wake: false,
        }
    };
    serde_json::to_string(&message)
}

fn set_redis(shared: &Shared, update: impl FnOnce(&mut crate::status::RedisStatus)) {
    if let Some(redis) = shared.state.lock().redis.as_mut() {
        update(redis);
        redis.up = redis.subscribed && redis.publishing;
    }
}

/// Sleeps `backoff` (or until stopped, then `false`) and doubles it up to the configured cap.
async fn back_off(
    shared: &Shared,
    backoff: &mut Duration,
    stopped: &mut watch::Receiver<bool>,
) -> bool {
    let keep_going = tokio::select! {
        _ = tokio::time::sleep(*backoff) => true,
        _ = stopped.changed() => false,
    };
    *backoff = (*backoff * 2).min(shared.config.max_backoff);
    keep_going
}

const FIRST_BACKOFF: Duration = Duration::from_millis(50);

pub(crate) async fn publish_loop(
    shared: Arc<Shared>,
    config: RedisConfig,
    mut commits: mpsc::Receiver<Vec<Change>>,
    mut stopped: watch::Receiver<bool>,
) {
    let client = match redis_client(&config.url) {
        Ok(client) => client,
        Err(e) => {
            set_redis(&shared, |r| r.last_error = Some(e.to_string()));
            // Nothing can be published; drain so writers never see a full channel.
            loop {
                tokio::select! {
                    got = commits.recv() => match got {
                        Some(_) => set_redis(&shared, |r| r.publish_dropped += 1),
                        None => return,
                    },
                    _ = stopped.changed() => return,
                }
            }
        }
    };
    let mut backoff = FIRST_BACKOFF;
    let mut was_up = false;
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if conn.is_none() {
            match tokio::time::timeout(REDIS_TIMEOUT, client.get_multiplexed_async_connection())
                .await
            {
                Ok(Ok(c)) => {
                    conn = Some(c);
                    backoff = FIRST_BACKOFF;
                    set_redis(&shared, |r| {
                        r.publishing = true;
                        if was_up {
                            r.reconnects += 1;
                        }
                    });
                    was_up = true;
                }
                failed => {
                    let reason = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "connecting timed out".to_owned(),
                    };
                    set_redis(&shared, |r| {
                        r.publishing = false;
                        r.last_error = Some(reason);
                    });
                    // Keep draining while waiting: what is not published now is in the log.
                    let deadline = tokio::time::sleep(backoff);
                    tokio::pin!(deadline);
                    loop {
                        tokio::select! {
                            _ = &mut deadline => break,
                            got = commits.recv() => match got {
                                Some(_) => set_redis(&shared, |r| r.publish_dropped += 1),
                                None => return,
                            },
                            _ = stopped.changed() => return,
                        }
                    }
                    backoff = (backoff * 2).min(shared.config.max_backoff);
                    continue;
                }
            }
        }
        let Some(active) = conn.as_mut() else {
            continue;
        };
        let result = tokio::select! {
            got = commits.recv() => match got {
                Some(changes) => match encode(&shared.instance, changes) {
                    Ok(payload) => {
                        let sent = tokio::time::timeout(
                            REDIS_TIMEOUT,
                            active.publish::<_, _, i64>(&config.channel, payload),
                        )
                        .await;
                        let failed = match sent {
                            Ok(Ok(_)) => None,
                            Ok(Err(e)) => Some(e.to_string()),
                            Err(_) => Some("publishing timed out".to_owned()),
                        };
                        set_redis(&shared, |r| match &failed {
                            None => r.published += 1,
                            Some(_) => r.publish_dropped += 1,
                        });
                        failed.map_or(Ok(()), Err)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot encode a change message");
                        Ok(())
                    }
                },
                None => return,
            },
            _ = ping.tick() => {
                match tokio::time::timeout(REDIS_TIMEOUT, redis::cmd("PING").query_async::<String>(active)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("ping timed out".to_owned()),
                }
            }
            _ = stopped.changed() => return,
        };
        if let Err(reason) = result {
            tracing::warn!(error = %reason, "redis publishing connection lost; reconnecting");
            conn = None;
            set_redis(&shared, |r| {
                r.publishing = false;
                r.last_error = Some(reason);
            });
            if !back_off(&shared, &mut backoff, &mut stopped).await {
                return;
            }
        }
    }
}

pub(crate) async fn subscribe_loop(
    shared: Arc<Shared>,
    config: RedisConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let client = match redis_client(&config.url) {
        Ok(client) => client,
        Err(e) => {
            set_redis(&shared, |r| r.last_error = Some(e.to_string()));
            return;
        }
    };
    let mut backoff = FIRST_BACKOFF;
    let mut was_up = false;
    loop {
        let subscribed = tokio::time::timeout(REDIS_TIMEOUT, async {
            let (mut sink, stream) = client.get_async_pubsub().await?.split();
            sink.subscribe(&config.channel).await?;
            Ok::<_, redis::RedisError>((sink, stream))
        })
        .await;
        let (mut sink, mut stream) = match subscribed {
            Ok(Ok(pair)) => pair,
            failed => {
                let reason = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "subscribing timed out".to_owned(),
                };
                set_redis(&shared, |r| {
                    r.subscribed = false;
                    r.last_error = Some(reason);
                });
                if !back_off(&shared, &mut backoff, &mut stopped).await {
                    return;
                }
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        set_redis(&shared, |r| {
            r.subscribed = true;
            if was_up {
                r.reconnects += 1;
            }
        });
        // Messages published while nobody was subscribed are lost: replay from the log.
        shared.wake(was_up);
        was_up = true;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reason = loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => receive(&shared, message.get_payload_bytes()),
                    None => break "the subscription closed".to_owned(),
                },
                _ = ping.tick() => {
                    match tokio::time::timeout(REDIS_TIMEOUT, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => break e.to_string(),
                        Err(_) => break "ping timed out".to_owned(),
                    }
                }
                _ = stopped.changed() => return,
            }
        };
        tracing::warn!(error = %reason, "redis subscription lost; reconnecting");
        set_redis(&shared, |r| {
            r.subscribed = false;
            r.last_error = Some(reason);
        });
        shared.wake(false);
        if !back_off(&shared, &mut backoff, &mut stopped).await {
            return;
        }
    }
}

/// Applies one message: invalidates what its changes touch, or wakes the reader.
fn receive(shared: &Shared, payload: &[u8]) {
    let message: Message = match serde_json::from_slice(payload) {
        Ok(m) => m,
        Err(e) => {
            // Not ours (someone else on the channel) or from an incompatible version: the log
            // still has everything.
            tracing::warn!(error = %e, "ignoring an unreadable message on the redis channel");
            shared.wake(false);
            return;
        }
    };
    if message.from == shared.instance {
        return;
    }
    set_redis(shared, |r| r.messages_received += 1);
    if message.wake {
        shared.wake(false);
        return;
    }
    let applied = shared.apply_pushed(message.changes);
    set_redis(shared, |r| r.changes_applied += applied);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(seq: i64) -> Change {
        serde_json::from_value(serde_json::json!({
            "seq": seq, "tenant": "default", "rule_id": "RF-002", "op": "update",
            "old_entry_point": "checkout", "new_entry_point": "checkout",
            "old_tags": ["currency:USD"], "new_tags": [],
            "changed_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn messages_carry_keys_for_small_batches_and_a_wake_up_for_large_ones() {
        let small = encode("a", vec![change(1), change(2)]).unwrap_or_default();
        let decoded: Message = serde_json::from_str(&small).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decoded.changes.len(), 2);
        assert!(!decoded.wake);
        assert!(small.len() < 600, "{} bytes: {small}", small.len());

        let large = encode("a", (0..100).map(change).collect()).unwrap_or_default();
        let decoded: Message = serde_json::from_str(&large).unwrap_or_else(|e| panic!("{e}"));
        assert!(decoded.wake && decoded.changes.is_empty());
        assert!(large.len() < 64, "{large}");
    }
}
