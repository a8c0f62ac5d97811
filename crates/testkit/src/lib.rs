//! Test support only: helpers shared by the tests of Rulebook's crates, never used by the
//! service itself.
//!
//! - [`PgDatabase`]: a fresh PostgreSQL database per test, dropped after.
//! - [`service_url`], [`unreachable`] and [`in_ci`]: the policy for services a test needs. With
//!   `CI=true` a missing variable or a service that does not answer fails the test loudly;
//!   elsewhere the loopback default is used and, when the service does not answer, the test prints
//!   why and skips.
//! - [`find_on_path`] and [`spawn_redis_server`]: a `redis-server` (found on the `PATH`) of the
//!   test's own on a given loopback port.
//! - [`TestDb`] and [`on_both_backends!`]: a fresh SQLite file or PostgreSQL database per test,
//!   plain SQL on a connection of its own, and one suite run on both backends.
//! - [`eventually`]: waiting for an event with a deadline, never a bare sleep.
//! - [`shared_redis_url`], [`unique_channel`] and [`PrivateRedis`]: the machine's Redis with a
//!   channel per test, or a `redis-server` of the test's own that it may stop and restart.
//! - [`cluster`]: several in-process instances on one database and the history checker of their
//!   reads against their writes.
//! - [`seq_history`]: the freshness contract checked by position: each read's `(seq, answer)`
//!   against the acknowledged writes, read-your-writes, bounded staleness and monotonic reads.
//!
//! Test code: a failed setup panics with the reason, as a test would.
#![deny(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

pub mod cluster;
mod db;
mod redis;
pub mod seq_history;
mod wait;

pub use db::TestDb;
pub use redis::{shared_redis_url, unique_channel, PrivateRedis};
pub use wait::eventually;

use std::fmt::Display;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::Connection;

/// The variable naming a PostgreSQL superuser URL for tests.
pub const DATABASE_VAR: &str = "RULEBOOK_TEST_DATABASE_URL";
/// The PostgreSQL superuser URL used outside CI when [`DATABASE_VAR`] is unset.
pub const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The variable naming the Redis URL for tests.
pub const REDIS_VAR: &str = "RULEBOOK_TEST_REDIS_URL";
/// The Redis URL used outside CI when [`REDIS_VAR`] is unset.
pub const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";

/// Whether the tests run in CI (`CI=true`), where every service must be there.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The URL in `var`; when it is unset or empty, `default` outside CI.
///
/// # Panics
///
/// With `CI=true` and `var` unset or empty, saying that `suite` must run in CI.
pub fn service_url(var: &str, default: &str, suite: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => url,
        _ if in_ci() => panic!("CI=true but {var} is not set: {suite} must run in CI"),
        _ => default.to_owned(),
    }
}

/// The policy when `service` at `url` does not answer: outside CI, prints why and returns `None`
/// so the test skips.
///
/// # Panics
///
/// With `CI=true`, saying the service is unreachable and why.
#[allow(clippy::print_stderr)]
pub fn unreachable<T>(service: &str, url: &str, problem: impl Display) -> Option<T> {
    if in_ci() {
        panic!("CI=true and {service} at {url} is unreachable: {problem}");
    }
    eprintln!("skipping: {service} at {url} is not answering ({problem})");
    None
}

/// A fresh PostgreSQL database `rulebook_test_<random>`, dropped (`WITH (FORCE)`) when this is
/// dropped.
#[derive(Debug)]
pub struct PgDatabase {
    admin: String,
    name: String,
    url: String,
}

impl PgDatabase {
    /// Creates one from the superuser URL in [`DATABASE_VAR`] ([`DEFAULT_PG`] outside CI);
    /// `None` when PostgreSQL is not answering outside CI.
    ///
    /// # Panics
    ///
    /// With `CI=true` when the variable is unset or PostgreSQL is unreachable, and when the
    /// database cannot be created.
    pub async fn fresh() -> Option<PgDatabase> {
        let admin = service_url(DATABASE_VAR, DEFAULT_PG, "the PostgreSQL suite");
        let connect =
            tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(&admin))
                .await;
        let mut conn = match connect {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return unreachable("PostgreSQL", &admin, e),
            Err(_) => return unreachable("PostgreSQL", &admin, "no answer in 10 s"),
        };
        let name = format!("rulebook_test_{:016x}", rand::random::<u64>());
        if let Err(e) = sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
        {
            panic!("creating the test database `{name}` at {admin} failed: {e}");
        }
        conn.close().await.ok();
        let url = with_database(&admin, &name);
        Some(PgDatabase { admin, name, url })
    }

    /// The URL of the fresh database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The fresh database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The superuser URL the database was created from.
    pub fn admin_url(&self) -> &str {
        &self.admin
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = std::mem::take(&mut self.admin);
        let name = std::mem::take(&mut self.name);
        // Dropping runs outside the test's runtime, on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// `admin` with its database replaced by `name`.
fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin, String::new()),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[after_scheme..]
        .find('/')
        .map(|i| i + after_scheme)
        .unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..host_end])
}

/// The first executable file called `program` in the directories of the `PATH`.
pub fn find_on_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Starts `program` (a `redis-server`) on `127.0.0.1:port` without persistence and with its
/// output discarded; the caller waits for it to answer and kills it.
///
/// # Panics
///
/// When `program` cannot be started.
pub fn spawn_redis_server(program: &str, port: u16) -> Child {
    let spawned = Command::new(program)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        Ok(child) => child,
        Err(e) => panic!("starting `{program}` on port {port} failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn with_database_replaces_only_the_database() {
        assert_eq!(
            with_database(
                "postgres://postgres@127.0.0.1:5432/postgres",
                "rulebook_test_1"
            ),
            "postgres://postgres@127.0.0.1:5432/rulebook_test_1"
        );
        assert_eq!(
            with_database("postgres://u:p@db:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@db:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://db", "x"), "postgres://db/x");
    }
}
