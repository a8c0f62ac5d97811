//! Several in-process Rulebook instances on one database: [`Instance`] (its own store with its own
//! pool, registry and feed), [`converge`], and [`History`], which records every acknowledged write
//! and every read with the version it returned and checks that no read was older than the last
//! write acknowledged before it started, more than a stated bound ago.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rulebook_rules::{Action, EntryPoint, Rule};
use rulebook_store::{Author, Registry, RegistryConfig, Store, StoreError, StoreOptions};
use rulebook_sync::{Feed, FeedConfig};

use crate::wait::eventually;

/// The tenant the instances' rules are written to.
pub const TENANT: &str = rulebook_rules::DEFAULT_TENANT;

/// One in-process Rulebook instance: its own store (and pool), registry and feed.
#[allow(missing_debug_implementations)]
pub struct Instance {
    /// A name for messages (`a`, `b`, ...).
    pub name: String,
    /// Its store, with a pool of its own.
    pub store: Store,
    /// Its registry, without a time to live.
    pub registry: Registry,
    /// Its change feed.
    pub feed: Feed,
}

impl Instance {
    /// Starts an instance on the database at `url` with `config`.
    pub async fn start(name: &str, url: &str, config: FeedConfig) -> Instance {
        config.validate().unwrap();
        let store = Store::open_with(
            url,
            StoreOptions {
                max_connections: 4,
                acquire_timeout: Duration::from_secs(2),
                migrate: true,
            },
        )
        .await
        .unwrap();
        let registry = registry_without_ttl(&store);
        let feed = Feed::spawn(registry.clone(), config);
        Instance {
            name: name.to_owned(),
            store,
            registry,
            feed,
        }
    }

    /// Waits until the feed has read the log (and its transports are up when `connected`).
    pub async fn wait_ready(&self, connected: bool) {
        eventually(
            &format!("instance {} to be ready", self.name),
            Duration::from_secs(15),
            || async {
                let status = self.feed.status();
                status.ready
                    && (!connected
                        || (status.listen.as_ref().is_none_or(|l| l.connected)
                            && status.redis.as_ref().is_none_or(|r| r.up)))
            },
        )
        .await;
    }

    /// Waits until the feed has read the log up to its current head.
    pub async fn caught_up(&self) {
        let head = self.store.head_seq().await.unwrap();
        eventually(
            &format!("instance {} to read the log up to {head}", self.name),
            Duration::from_secs(15),
            || async { self.feed.status().cursor_seq >= head },
        )
        .await;
    }

    /// The version of `rule` in the cached ruleset of `entry_point` (`None`: not in it).
    pub async fn version(&self, entry_point: &str, rule: &str) -> Option<i64> {
        let ruleset = self
            .registry
            .ruleset(TENANT, &ep(entry_point))
            .await
            .unwrap();
        let version = ruleset
            .rules()
            .find(|(id, _)| *id == rule)
            .map(|(_, version)| version);
        version
    }

    /// Stops the feed and closes the pool.
    pub async fn stop(self) {
        self.feed.stop().await;
        self.store.close().await;
    }
}

/// Waits until every instance's cached ruleset shows `rule` at `version` (or newer); returns
/// how long that took.
pub async fn converge(
    instances: &[&Instance],
    entry_point: &str,
    rule: &str,
    version: i64,
) -> Duration {
    let start = Instant::now();
    for instance in instances {
        eventually(
            &format!(
                "{rule} v{version} at {entry_point} on instance {}",
                instance.name
            ),
            Duration::from_secs(15),
            || async {
                instance
                    .version(entry_point, rule)
                    .await
                    .is_some_and(|v| v >= version)
            },
        )
        .await;
    }
    start.elapsed()
}

/// Parses an entry point that is known to be valid.
pub fn ep(name: &str) -> EntryPoint {
    EntryPoint::parse(name).unwrap()
}

/// A rule at `entry_point` that shows "message of `id`".
pub fn rule(id: &str, entry_point: &str) -> Rule {
    message_rule(id, entry_point, &format!("message of {id}"))
}

/// A rule at `entry_point` that shows `message`.
pub fn message_rule(id: &str, entry_point: &str, message: &str) -> Rule {
    let mut rule = Rule::new(id);
    rule.name = format!("rule {id}");
    rule.entry_point = Some(ep(entry_point));
    rule.actions = vec![Action::new("display_message")
        .with("message", serde_json::Value::String(message.to_owned()))];
    rule
}

/// A registry over `store` without a time to live, so nothing in a test is explained by expiry.
pub fn registry_without_ttl(store: &Store) -> Registry {
    Registry::with_config(
        store.clone(),
        RegistryConfig {
            max_capacity: 10_000,
            time_to_live: None,
        },
    )
}

/// The message of `rule`'s first action, which must be a `display_message` (as
/// [`message_rule`] makes them).
pub fn message_of(rule: &Rule) -> String {
    let action = &rule.actions[0];
    assert_eq!(
        action.kind, "display_message",
        "unexpected action {action:?}"
    );
    action
        .field("message")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The author of the tests' writes.
pub fn author() -> Author {
    Author::new("sync-test")
}

/// Flips `id`'s enabled flag through `store`; returns the new version once acknowledged.
/// Writers on other instances may get in between its read and its write; it tries again then.
pub async fn bump(store: &Store, id: &str, enabled: bool) -> i64 {
    loop {
        match store
            .set_enabled(TENANT, id, enabled, None, &author())
            .await
        {
            Ok(written) => return written.rule.version,
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => panic!("writing {id}: {e}"),
        }
    }
}

/// One event of a run.
#[derive(Debug, Clone)]
pub enum Event {
    /// A write of `rule` to `version`, acknowledged at `acked` by `instance`.
    Write {
        /// The instance written through.
        instance: usize,
        /// The rule written.
        rule: String,
        /// The version the write produced.
        version: i64,
        /// When the write was acknowledged.
        acked: Instant,
    },
    /// A read of `rule` on `instance`, started at `started`, that returned `version`.
    Read {
        /// The instance read from.
        instance: usize,
        /// The rule read.
        rule: String,
        /// The version the read returned.
        version: i64,
        /// When the read started.
        started: Instant,
    },
}

/// Every acknowledged write and every read of a run, for [`History::check`].
#[derive(Debug, Default)]
pub struct History {
    events: Mutex<Vec<Event>>,
}

/// What [`History::check`] found.
#[derive(Debug)]
pub struct Report {
    /// Acknowledged writes.
    pub writes: usize,
    /// Reads.
    pub reads: usize,
    /// Reads that returned an older version than the newest one acknowledged before they
    /// started (allowed within the bound).
    pub stale_reads: usize,
    /// The longest time after a newer version was acknowledged that a read still returned an
    /// older one.
    pub worst_staleness: Duration,
}

impl History {
    /// Records one event.
    pub fn record(&self, event: Event) {
        self.events.lock().push(event);
    }

    /// Checks every read: it returned at least the version of the last write of its rule
    /// acknowledged more than `bound` before it started, and at least the version of the last
    /// write its own instance acknowledged before it started (read-your-writes, no bound).
    pub fn check(&self, bound: Duration) -> Result<Report, String> {
        let events = self.events.lock().clone();
        let mut writes: HashMap<&str, Vec<(Instant, i64, usize)>> = HashMap::new();
        for event in &events {
            if let Event::Write {
                instance,
                rule,
                version,
                acked,
            } = event
            {
                writes
                    .entry(rule)
                    .or_default()
                    .push((*acked, *version, *instance));
            }
        }
        let mut report = Report {
            writes: writes.values().map(Vec::len).sum(),
            reads: 0,
            stale_reads: 0,
            worst_staleness: Duration::ZERO,
        };
        let mut violations = Vec::new();
        for event in &events {
            let Event::Read {
                instance,
                rule,
                version,
                started,
            } = event
            else {
                continue;
            };
            report.reads += 1;
            let acked_before = writes
                .get(rule.as_str())
                .map(|w| {
                    w.iter()
                        .filter(|(acked, _, _)| acked <= started)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let required = acked_before
                .iter()
                .filter(|(acked, _, by)| *acked + bound <= *started || by == instance)
                .map(|(_, v, _)| *v)
                .max();
            if let Some(required) = required {
                if *version < required {
                    violations.push(format!(
                        "a read of {rule} on instance {instance} returned v{version}, older than v{required} acknowledged before it started"
                    ));
                }
            }
            // Staleness: since when was something newer than what this read returned known?
            if let Some(first_newer) = acked_before
                .iter()
                .filter(|(_, v, _)| *v > *version)
                .map(|(acked, _, _)| *acked)
                .min()
            {
                report.stale_reads += 1;
                report.worst_staleness = report.worst_staleness.max(*started - first_newer);
            }
        }
        if violations.is_empty() {
            Ok(report)
        } else {
            Err(format!(
                "{} of {} reads were too old:\n{}",
                violations.len(),
                report.reads,
                violations
                    .iter()
                    .take(20)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            ))
        }
    }
}
