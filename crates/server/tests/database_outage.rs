//! The database going away: a private PostgreSQL (initdb and pg_ctl in a temporary folder, run as
//! the `postgres` user when the tests run as root), two `rulebook serve` instances on it, the
//! database stopped for a while and started again. While it is down, cached reads keep answering,
//! writes and cold reads get 503 with `Retry-After`, and `/health` turns unready; once it is back,
//! health is ready again, a write through one instance reaches the other through the feed, and no
//! acknowledged write is lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{banner, http, matched, Running};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Connection;

const TOKEN: &str = "outage-test-admin-token";

/// A PostgreSQL server of the test's own, in a temporary folder; stopped when dropped.
struct PrivatePg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivatePg {
    /// `None` (with the reason printed) when no PostgreSQL binaries are installed, outside CI.
    fn start() -> Option<PrivatePg> {
        let bin = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .filter(|b| b.join("initdb").exists())
                .max()
        });
        let Some(bin) = bin else {
            return rulebook_testkit::unreachable(
                "initdb",
                "/usr/lib/postgresql/*/bin",
                "not installed",
            );
        };
        let dir = tempfile::tempdir().unwrap();
        // PostgreSQL refuses to run as root: run it as `postgres` then.
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if as_postgres {
            assert!(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePg {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        pg.ctl("start");
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let output = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .current_dir(self.dir.path())
                .output()
        } else {
            Command::new(&program).args(args).output()
        }
        .unwrap();
        assert!(
            output.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `pg_ctl start` or `stop` (fast: open connections are terminated), waiting for it.
    fn ctl(&self, action: &str) {
        let data = self.data();
        let log = self.dir.path().join("postgres.log");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        match action {
            "start" => self.run(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-l",
                    log.to_str().unwrap(),
                    "-o",
                    &options,
                    "-w",
                    "start",
                ],
            ),
            _ => self.run(
                "pg_ctl",
                &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
            ),
        }
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        if Path::new(&self.data().join("postmaster.pid")).exists() {
            let data = self.data();
            let _ = std::panic::catch_unwind(|| {
                self.run(
                    "pg_ctl",
                    &[
                        "-D",
                        data.to_str().unwrap(),
                        "-m",
                        "immediate",
                        "-w",
                        "stop",
                    ],
                )
            });
        }
    }
}

/// Evaluates `entry_point` for a French context; with `min_seq`, once the instance has applied
/// every change through it (the freshness contract).
async fn evaluate_at(
    server: &Running,
    entry_point: &str,
    min_seq: Option<i64>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let query = min_seq
        .map(|seq| format!("?min_seq={seq}"))
        .unwrap_or_default();
    let (status, headers, body) = http(
        &server.client,
        Method::POST,
        &server.url(&format!("/v1/evaluate/{entry_point}{query}")),
        None,
        &[],
        Some(json!({"context": {"country": "FR"}})),
    )
    .await;
    let mut map = reqwest::header::HeaderMap::new();
    for (k, v) in &headers {
        map.insert(k.clone(), v.clone());
    }
    (status, map, body)
}

async fn evaluate(server: &Running, entry_point: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    evaluate_at(server, entry_point, None).await
}

/// Polls `check` every 50 ms until it holds, for at most `limit`.
async fn until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn health(server: &Running) -> u16 {
    match server.client.get(server.url("/health")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_and_coming_back() {
    let Some(pg) = PrivatePg::start() else {
        return;
    };
    let env = [
        ("RULEBOOK_ADMIN_TOKEN", TOKEN),
        ("RULEBOOK_DB_CONNECTIONS", "2"),
    ];
    let a = Running::start(&pg.url(), &env);
    a.ready().await;
    let b = Running::start(&pg.url(), &env);
    b.ready().await;

    // An acknowledged write, read (and so cached) on both instances.
    let mut acknowledged = vec![];
    let (status, headers, body) = http(
        &a.client,
        Method::POST,
        &a.url("/v1/rules"),
        Some(TOKEN),
        &[],
        Some(banner("OUT-1", "outage", "before")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    acknowledged.push(("OUT-1".to_owned(), 1));
    let written: i64 = headers
        .get("x-rulebook-seq")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or_else(|| panic!("the write carries no X-Rulebook-Seq: {headers:?}"));
    // Read once each instance has applied the write (`min_seq`): B's feed applying it later
    // would drop what B had cached, and the read below would be a cold one.
    for server in [&a, &b] {
        until(
            "the write reaches both instances",
            Duration::from_secs(10),
            || async {
                let (status, _, body) = evaluate_at(server, "outage", Some(written)).await;
                status == 200 && matched(&body) == [("OUT-1".to_owned(), 1)]
            },
        )
        .await;
    }

    pg.ctl("stop");

    for server in [&a, &b] {
        // Cached reads keep answering.
        let (status, _, body) = evaluate(server, "outage").await;
        assert_eq!(
            status, 200,
            "a cached read on {} while the database is down: {body}",
            server.base
        );
        assert_eq!(matched(&body), [("OUT-1".to_owned(), 1)]);
        // A cold read and a write: 503 with Retry-After.
        let (status, headers, body) = evaluate(server, "never_loaded").await;
        assert_eq!(
            status, 503,
            "a cold read while the database is down: {body}"
        );
        assert!(headers.contains_key("retry-after"), "{headers:?}");
        let (status, headers, body) = http(
            &server.client,
            Method::POST,
            &server.url("/v1/rules"),
            Some(TOKEN),
            &[],
            Some(banner("OUT-LOST", "outage", "during")),
        )
        .await;
        assert_eq!(status, 503, "a write while the database is down: {body}");
        assert!(headers.contains_key("retry-after"), "{headers:?}");
        // Health turns unready.
        until("/health turns unready", Duration::from_secs(30), || async {
            health(server).await == 503
        })
        .await;
    }

    pg.ctl("start");

    for server in [&a, &b] {
        until(
            "/health is ready again",
            Duration::from_secs(30),
            || async { health(server).await == 200 },
        )
        .await;
    }
    // A write through A (retried while the pool reconnects) reaches B through the feed.
    until(
        "a write is accepted again",
        Duration::from_secs(30),
        || async {
            let (status, _, _) = http(
                &a.client,
                Method::POST,
                &a.url("/v1/rules/OUT-1/disable"),
                Some(TOKEN),
                &[("if-match", "\"1\"")],
                None,
            )
            .await;
            status == 200
        },
    )
    .await;
    acknowledged.push(("OUT-1".to_owned(), 2));
    until(
        "B sees the write made after the outage",
        Duration::from_secs(10),
        || async {
            let (status, _, body) = evaluate(&b, "outage").await;
            status == 200 && matched(&body).is_empty()
        },
    )
    .await;

    // Nothing acknowledged is lost, nothing refused was written.
    let mut conn = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT rule_id, version FROM rule_history WHERE rule_id LIKE 'OUT-%' ORDER BY rule_id, version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(rows, acknowledged);
}
