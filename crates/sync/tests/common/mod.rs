//! Helpers for running several Rulebook instances against one fresh PostgreSQL database and a
//! real Redis, reusable beyond this crate's tests (the bench includes this file, and the
//! multi-process tests of the server can include it with `#[path]`):
//!
//! - [`TestDb`]: a fresh PostgreSQL database per test (or a fresh SQLite file), dropped after;
//!   plain SQL on a connection of its own; killing LISTEN backends from the database side.
//! - [`shared_redis_url`] and [`PrivateRedis`]: the machine's Redis (with a per-test channel from
//!   [`unique_channel`]), or a `redis-server` of the test's own on a free loopback port that the
//!   test may stop and restart without touching anyone else's.
//! - [`Instance`]: one in-process instance (its own `Store` with its own pool, `Registry` and
//!   `Feed`).
//! - [`History`]: records every acknowledged write and every read with the version it returned,
//!   and checks that no read was older than the last write acknowledged before it started, more
//!   than a stated bound ago.
//!
//! With `CI=true` a missing PostgreSQL, Redis or `redis-server` fails loudly; elsewhere the test
//! says why and skips.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    clippy::print_stdout
)]

use std::collections::HashMap;
use std::future::Future;
use std::net::TcpListener;
use std::str::FromStr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rulebook_rules::{Action, EntryPoint, Rule};
use rulebook_store::{Author, Backend, Registry, RegistryConfig, Store, StoreError, StoreOptions};
use rulebook_sync::{Feed, FeedConfig};
use sqlx::Connection;

// The bench, which includes this file, uses the defaults too.
#[allow(unused_imports)]
pub use rulebook_testkit::{in_ci, DEFAULT_PG, DEFAULT_REDIS};
pub const TENANT: &str = rulebook_rules::DEFAULT_TENANT;

/// A fresh database for one test, dropped when this is dropped.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    /// PostgreSQL: the fresh database, dropped with this.
    pg: Option<rulebook_testkit::PgDatabase>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A fresh PostgreSQL database; `None` when PostgreSQL is not available outside CI.
    pub async fn postgres() -> Option<TestDb> {
        let pg = rulebook_testkit::PgDatabase::fresh().await?;
        Some(TestDb {
            backend: Backend::Postgres,
            url: pg.url().to_owned(),
            pg: Some(pg),
            _dir: None,
        })
    }

    /// A fresh SQLite file in a temporary folder.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("rulebook.db").display());
        TestDb {
            backend: Backend::Sqlite,
            url,
            pg: None,
            _dir: Some(dir),
        }
    }

    /// The database's name (PostgreSQL).
    pub fn name(&self) -> &str {
        self.pg.as_ref().map_or("", |pg| pg.name())
    }

    async fn admin(&self) -> sqlx::PgConnection {
        let pg = self.pg.as_ref().expect("a PostgreSQL test database");
        sqlx::PgConnection::connect(pg.admin_url()).await.unwrap()
    }

    /// Runs a statement on a connection of its own, as a person typing into psql would.
    pub async fn plain_sql(&self, sql: &str) {
        match self.backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
                conn.close().await.ok();
            }
            Backend::Sqlite => {
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(&self.url)
                    .unwrap()
                    .busy_timeout(Duration::from_secs(10));
                let mut conn = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
                conn.close().await.ok();
            }
        }
    }

    /// Terminates, from the database side, every backend of this database whose last query was
    /// a LISTEN; returns how many.
    pub async fn terminate_listeners(&self) -> usize {
        let mut conn = self.admin().await;
        let rows: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        )
        .bind(self.name())
        .fetch_all(&mut conn)
        .await
        .unwrap();
        conn.close().await.ok();
        rows.into_iter().filter(|(killed,)| *killed).count()
    }

    /// Lets connections to this database in, or shuts them out and terminates those open.
    pub async fn allow_connections(&self, allow: bool) {
        let mut conn = self.admin().await;
        sqlx::query(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS {allow}",
            self.name()
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        if !allow {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(self.name())
            .execute(&mut conn)
            .await
            .unwrap();
        }
        conn.close().await.ok();
    }
}

/// The machine's Redis; `None` when it is not answering outside CI.
pub async fn shared_redis_url() -> Option<String> {
    let url = rulebook_testkit::service_url(
        rulebook_testkit::REDIS_VAR,
        DEFAULT_REDIS,
        "the Redis tests",
    );
    match redis_answers(&url).await {
        Ok(()) => Some(url),
        Err(e) => rulebook_testkit::unreachable("Redis", &url, e),
    }
}

async fn redis_answers(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| "timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A channel name no other test uses.
pub fn unique_channel() -> String {
    format!("rulebook:test:{:016x}", rand::random::<u64>())
}

/// A `redis-server` of this test's own on a free loopback port, stopped when dropped.
pub struct PrivateRedis {
    pub port: u16,
    program: String,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    /// Starts one; `None` when there is no `redis-server` on the `PATH` outside CI.
    pub async fn start() -> Option<PrivateRedis> {
        let Some(program) = rulebook_testkit::find_on_path("redis-server") else {
            if in_ci() {
                panic!("CI=true but there is no `redis-server` on the PATH: install the redis-server package");
            }
            eprintln!("skipping: no `redis-server` on the PATH");
            return None;
        };
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut redis = PrivateRedis {
            port,
            program: program.to_string_lossy().into_owned(),
            child: None,
        };
        redis.restart().await;
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = rulebook_testkit::spawn_redis_server(&self.program, self.port);
        self.child = Some(child);
        let url = self.url();
        eventually(
            "the private redis-server to answer",
            Duration::from_secs(10),
            || {
                let url = url.clone();
                async move { redis_answers(&url).await.is_ok() }
            },
        )
        .await;
    }

    /// Kills the server (its clients see their connections drop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `check` holds, panicking with `what` after `bound`.
pub async fn eventually<F, Fut>(what: &str, bound: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + bound;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {bound:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One in-process Rulebook instance: its own store (and pool), registry and feed.
pub struct Instance {
    pub name: String,
    pub store: Store,
    pub registry: Registry,
    pub feed: Feed,
}

impl Instance {
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
        // No time to live: nothing in these tests is explained by expiry.
        let registry = Registry::with_config(
            store.clone(),
            RegistryConfig {
                max_capacity: 10_000,
                time_to_live: None,
            },
        );
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

pub fn ep(name: &str) -> EntryPoint {
    EntryPoint::parse(name).unwrap()
}

/// A simple action rule at `entry_point`.
pub fn rule(id: &str, entry_point: &str) -> Rule {
    let mut rule = Rule::new(id);
    rule.name = format!("rule {id}");
    rule.entry_point = Some(ep(entry_point));
    rule.actions = vec![Action::DisplayMessage {
        message: serde_json::Value::String(format!("message of {id}")),
        placement: None,
    }];
    rule
}

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
        instance: usize,
        rule: String,
        version: i64,
        acked: Instant,
    },
    /// A read of `rule` on `instance`, started at `started`, that returned `version`.
    Read {
        instance: usize,
        rule: String,
        version: i64,
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
    pub writes: usize,
    pub reads: usize,
    /// Reads that returned an older version than the newest one acknowledged before they
    /// started (allowed within the bound).
    pub stale_reads: usize,
    /// The longest time after a newer version was acknowledged that a read still returned an
    /// older one.
    pub worst_staleness: Duration,
}

impl History {
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
