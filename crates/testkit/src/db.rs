//! [`TestDb`]: a fresh database per test, and the [`on_both_backends!`](crate::on_both_backends)
//! macro that runs one test against SQLite and PostgreSQL.

use std::str::FromStr;
use std::time::Duration;

use rulebook_store::{Backend, Store};
use sqlx::Connection;

/// A fresh database for one test, dropped when this is dropped.
#[allow(missing_debug_implementations)]
pub struct TestDb {
    /// SQLite or PostgreSQL.
    pub backend: Backend,
    /// The URL to open the store with.
    pub url: String,
    /// PostgreSQL: the fresh database, dropped with this.
    pg: Option<crate::PgDatabase>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// Opens (and migrates) the store on this database.
    ///
    /// # Panics
    ///
    /// When the store does not open.
    pub async fn open(&self) -> Store {
        match Store::open(&self.url).await {
            Ok(store) => store,
            Err(e) => panic!("opening the store at {} failed: {e}", self.url),
        }
    }

    /// A fresh PostgreSQL database; `None` when PostgreSQL is not available outside CI.
    pub async fn postgres() -> Option<TestDb> {
        let pg = crate::PgDatabase::fresh().await?;
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

    /// The same database, for a second instance to open; the first `TestDb` keeps owning it
    /// (and drops it).
    pub fn shared(&self) -> TestDb {
        TestDb {
            backend: self.backend,
            url: self.url.clone(),
            pg: None,
            _dir: None,
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

/// Declares each listed `async fn name(db: &TestDb)` of the calling module as a test against a
/// fresh SQLite file (in `mod sqlite`) and one against a fresh PostgreSQL database (in
/// `mod postgres`, skipped outside CI when PostgreSQL is not answering).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::TestDb::sqlite();
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::TestDb::postgres().await else { return };
                    super::$name(&db).await;
                }
            )*
        }
    };
}
