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

/// A fresh database for one test.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<rulebook_testkit::PgDatabase>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("rulebook.db").display());
        TestDb {
            backend: Backend::Sqlite,
            url,
            _dir: Some(dir),
            _pg: None,
        }
    }

    /// `None` when PostgreSQL is not available outside CI.
    pub async fn postgres() -> Option<TestDb> {
        let pg = rulebook_testkit::PgDatabase::fresh().await?;
        Some(TestDb {
            backend: Backend::Postgres,
            url: pg.url().to_owned(),
            _dir: None,
            _pg: Some(pg),
        })
    }

    pub async fn open(&self) -> Store {
        Store::open(&self.url).await.unwrap()
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
