//! Runs each store test against a fresh SQLite file and a fresh PostgreSQL database.
//!
//! PostgreSQL comes from `RULEBOOK_TEST_DATABASE_URL` (a superuser URL); each test creates
//! `rulebook_test_<random>` and drops it afterwards. With `CI=true` a missing or unreachable
//! PostgreSQL fails the test; elsewhere the test says why it skipped.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr
)]

use std::str::FromStr;
use std::time::Duration;

use rulebook_rules::{Action, EntryPoint, Rule};
use rulebook_store::{Backend, Store};
use sqlx::Connection;

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database for one test.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("rulebook.db").display());
        TestDb {
            backend: Backend::Sqlite,
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// `None` when PostgreSQL is not available outside CI.
    pub async fn postgres() -> Option<TestDb> {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let admin = match std::env::var("RULEBOOK_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ if ci => panic!("CI=true but RULEBOOK_TEST_DATABASE_URL is not set: the PostgreSQL suite must run in CI"),
            _ => DEFAULT_PG.to_owned(),
        };
        let connect =
            tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(&admin))
                .await;
        let mut conn = match connect {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) if !ci => {
                eprintln!("skipping: PostgreSQL at {admin} is not answering ({e})");
                return None;
            }
            Err(_) if !ci => {
                eprintln!("skipping: PostgreSQL at {admin} did not answer in 10 s");
                return None;
            }
            other => panic!(
                "CI=true and PostgreSQL at {admin} is unreachable: {:?}",
                other.err()
            ),
        };
        let name = format!("rulebook_test_{:016x}", rand::random::<u64>());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
        let url = with_database(&admin, &name);
        Some(TestDb {
            backend: Backend::Postgres,
            url,
            _dir: None,
            pg: Some((admin, name)),
        })
    }

    pub async fn open(&self) -> Store {
        Store::open(&self.url).await.unwrap()
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

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            // Dropping runs outside the test's runtime, on a thread of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Runs a plain SQL statement on a connection of its own, as a person with sqlite3 or psql would.
pub async fn plain_sql(db: &TestDb, sql: &str) {
    match db.backend {
        Backend::Sqlite => {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)
                .unwrap()
                .busy_timeout(Duration::from_secs(10));
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
            conn.close().await.ok();
        }
        _ => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
            conn.close().await.ok();
        }
    }
}

pub fn ep(name: &str) -> EntryPoint {
    EntryPoint::parse(name).unwrap()
}

/// A simple action rule at `entry_point` that shows `message`.
pub fn rule(id: &str, entry_point: &str, message: &str) -> Rule {
    let mut rule = Rule::new(id);
    rule.name = format!("rule {id}");
    rule.entry_point = Some(ep(entry_point));
    rule.actions = vec![Action::DisplayMessage {
        message: serde_json::Value::String(message.to_owned()),
        placement: None,
    }];
    rule
}

/// Declares each listed `async fn name(db: &TestDb)` as a test against SQLite and one against
/// PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::common::TestDb::sqlite();
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::common::TestDb::postgres().await else { return };
                    super::$name(&db).await;
                }
            )*
        }
    };
}
