//! The two backends behind one small interface.
//!
//! Every query in the store is written once, with `$1`-style placeholders that both SQLite and
//! PostgreSQL accept, and run through [`Conn`], which dispatches to the right sqlx driver. The few
//! statements that differ between the backends (the commit-safe cursor, how a write transaction
//! begins) match on [`Backend`] where they are used.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{FromRow, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool};

use crate::error::{db_error, StoreError};

/// Which database a [`crate::Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file: the embedded default, for one instance.
    Sqlite,
    /// PostgreSQL: for one or more instances sharing the rules.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The most connections the pool opens (SQLite serialises writers anyway, so a few suffice).
    pub max_connections: u32,
    /// How long a request waits for a free connection before the store reports itself unavailable.
    pub acquire_timeout: Duration,
    /// Bring the schema up to date on open (the default). Turn off only to open a database whose
    /// migrations someone else runs.
    pub migrate: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            migrate: true,
        }
    }
}

/// The pool of one backend.
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Hides the password of a database or Redis URL for messages, logs and status pages:
/// `postgres://user:secret@host/db` becomes `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Pool {
    /// Opens a pool for `url`: `postgres://...` or `postgresql://...` for PostgreSQL, and
    /// `sqlite://PATH`, `sqlite:PATH` or a bare file path for SQLite (created if missing).
    pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<Pool, StoreError> {
        let invalid = |reason: String| StoreError::InvalidUrl {
            url: redact_url(url),
            reason,
        };
        let trimmed = url.trim();
        if trimmed.is_empty() {
            return Err(invalid(
                "it is empty: give a file path, sqlite://PATH or postgres://USER@HOST/DB".into(),
            ));
        }
        if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(trimmed)
                .map_err(|e| invalid(format!("it is not a valid PostgreSQL url ({e})")))?;
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await
                .map_err(|e| db_error("connecting to PostgreSQL", e))?;
            if options.migrate {
                POSTGRES_MIGRATIONS
                    .run(&pool)
                    .await
                    .map_err(|e| StoreError::Migration(e.to_string()))?;
            }
            return Ok(Pool::Postgres(pool));
        }
        let connect = if trimmed.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(trimmed)
                .map_err(|e| invalid(format!("it is not a valid SQLite url ({e})")))?
        } else if trimmed.contains("://") {
            return Err(invalid(
                "only sqlite and postgres databases are supported: give a file path, sqlite://PATH or postgres://USER@HOST/DB"
                    .into(),
            ));
        } else {
            SqliteConnectOptions::new().filename(trimmed)
        };
        // WAL lets readers run beside the one writer; the busy timeout makes a second writer wait
        // for the first instead of failing; foreign keys are off by default in SQLite.
        let connect = connect
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| db_error("opening the SQLite database", e))?;
        if options.migrate {
            SQLITE_MIGRATIONS
                .run(&pool)
                .await
                .map_err(|e| StoreError::Migration(e.to_string()))?;
        }
        Ok(Pool::Sqlite(pool))
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so that a transaction that reads a rule and then writes it cannot
    /// fail half-way with a stale read snapshot when another writer got in between.
    pub(crate) async fn begin_write(&self) -> Result<Tx, StoreError> {
        match self {
            Pool::Sqlite(p) => p
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map(Tx::Sqlite)
                .map_err(|e| db_error("starting a write", e)),
            Pool::Postgres(p) => p
                .begin()
                .await
                .map(Tx::Postgres)
                .map_err(|e| db_error("starting a write", e)),
        }
    }

    /// Begins a read-only transaction that sees one snapshot throughout (PostgreSQL's
    /// `REPEATABLE READ`; an SQLite read transaction always does).
    pub(crate) async fn begin_snapshot(&self) -> Result<Tx, StoreError> {
        match self {
            Pool::Sqlite(p) => p
                .begin()
                .await
                .map(Tx::Sqlite)
                .map_err(|e| db_error("starting a read", e)),
            Pool::Postgres(p) => p
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await
                .map(Tx::Postgres)
                .map_err(|e| db_error("starting a read", e)),
        }
    }

    /// A connection from the pool for reads outside a transaction.
    pub(crate) async fn acquire(&self) -> Result<Held, StoreError> {
        match self {
            Pool::Sqlite(p) => p
                .acquire()
                .await
                .map(Held::Sqlite)
                .map_err(|e| db_error("getting a database connection", e)),
            Pool::Postgres(p) => p
                .acquire()
                .await
                .map(Held::Postgres)
                .map_err(|e| db_error("getting a database connection", e)),
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

/// A pooled connection of either backend.
pub(crate) enum Held {
    Sqlite(sqlx::pool::PoolConnection<Sqlite>),
    Postgres(sqlx::pool::PoolConnection<Postgres>),
}

impl Held {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Held::Sqlite(c) => Conn::Sqlite(c),
            Held::Postgres(c) => Conn::Postgres(c),
        }
    }
}

/// An open transaction of either backend. Dropping it without [`Tx::commit`] rolls it back.
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(t) => Conn::Sqlite(t),
            Tx::Postgres(t) => Conn::Postgres(t),
        }
    }

    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
        .map_err(|e| db_error("committing", e))
    }
}

/// One bound value. The store binds only these types, which both backends map the same way.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    I64(i64),
    OptI64(Option<i64>),
    I32(i32),
    Bool(bool),
    Time(DateTime<Utc>),
    Bytes(Vec<u8>),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(v.to_owned())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(v)
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::OptText(v)
    }
}
impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Arg {
        Arg::Bytes(v)
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::I64(v)
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::OptI64(v)
    }
}
impl From<i32> for Arg {
    fn from(v: i32) -> Arg {
        Arg::I32(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Arg {
        Arg::Bool(v)
    }
}
impl From<DateTime<Utc>> for Arg {
    fn from(v: DateTime<Utc>) -> Arg {
        Arg::Time(v)
    }
}

/// Builds a `Vec<Arg>` from values of the types above.
macro_rules! args {
    ($($v:expr),* $(,)?) => { vec![$($crate::db::Arg::from($v)),*] };
}
pub(crate) use args;

/// Binds `args` to a sqlx query of whichever backend the call site has.
macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Text(v) => q.bind(v),
                Arg::OptText(v) => q.bind(v),
                Arg::I64(v) => q.bind(v),
                Arg::OptI64(v) => q.bind(v),
                Arg::I32(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Time(v) => q.bind(v),
                Arg::Bytes(v) => q.bind(v),
            };
        }
        q
    }};
}

/// A row type that both backends can decode (sqlx's derived `FromRow` and tuples of plain types).
pub(crate) trait AnyRow:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> AnyRow for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// A borrowed connection (pooled or inside a transaction) of either backend.
pub(crate) enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl Conn<'_> {
    pub(crate) async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Conn::Sqlite(c) => bind_all!(sqlx::query(sql), args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
            Conn::Postgres(c) => bind_all!(sqlx::query(sql), args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
        })
    }

    pub(crate) async fn fetch_all<T: AnyRow>(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Vec<T>, sqlx::Error> {
        match self {
            Conn::Sqlite(c) => {
                bind_all!(sqlx::query_as::<Sqlite, T>(sql), args)
                    .fetch_all(&mut **c)
                    .await
            }
            Conn::Postgres(c) => {
                bind_all!(sqlx::query_as::<Postgres, T>(sql), args)
                    .fetch_all(&mut **c)
                    .await
            }
        }
    }

    pub(crate) async fn fetch_optional<T: AnyRow>(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Option<T>, sqlx::Error> {
        match self {
            Conn::Sqlite(c) => {
                bind_all!(sqlx::query_as::<Sqlite, T>(sql), args)
                    .fetch_optional(&mut **c)
                    .await
            }
            Conn::Postgres(c) => {
                bind_all!(sqlx::query_as::<Postgres, T>(sql), args)
                    .fetch_optional(&mut **c)
                    .await
            }
        }
    }

    pub(crate) async fn fetch_one<T: AnyRow>(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<T, sqlx::Error> {
        match self {
            Conn::Sqlite(c) => {
                bind_all!(sqlx::query_as::<Sqlite, T>(sql), args)
                    .fetch_one(&mut **c)
                    .await
            }
            Conn::Postgres(c) => {
                bind_all!(sqlx::query_as::<Postgres, T>(sql), args)
                    .fetch_one(&mut **c)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url as redact;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://rb:secret@db:5432/rules"),
            "postgres://rb:***@db:5432/rules"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(redact("./rulebook.db"), "./rulebook.db");
        assert_eq!(redact("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
