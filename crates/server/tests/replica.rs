//! The Rust client's replica against the real binary: the server's answers in-process,
//! read-your-writes, a plain-SQL change arriving by the stream, serving while the server is
//! killed, catching up from `Last-Event-ID` when it comes back on the same address, and a new
//! snapshot after the log was pruned past the replica's position.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{binary, TestDb};
use rulebook_client::{Client, Replica};
use serde_json::{json, Map, Value};
use sqlx::Connection;

const TOKEN: &str = "replica-test-admin-token";
const WAIT: Duration = Duration::from_secs(15);

/// The binary serving `db` on `port`, until killed.
struct Server(Child);

impl Server {
    fn start(db: &str, port: u16) -> Server {
        let mut child = binary()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                db,
            ])
            .env("RULEBOOK_LOG", "warn")
            .env("RULEBOOK_POLL_INTERVAL", "50ms")
            .env("RULEBOOK_CHANGES_HEARTBEAT", "100ms")
            .env("RULEBOOK_ADMIN_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("rulebook serving http://"), "{line}");
        Server(child)
    }

    fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn head(db: &str) -> i64 {
    let mut conn = sqlx::SqliteConnection::connect(db).await.unwrap();
    let (seq,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM change_log")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    seq
}

async fn sql(db: &str, statement: &str) {
    let mut conn = sqlx::SqliteConnection::connect(db).await.unwrap();
    sqlx::query(statement).execute(&mut conn).await.unwrap();
}

/// Waits (polling the status, with a deadline) until `check` holds.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {WAIT:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_answers_like_the_server_reads_its_writes_and_survives_the_server() {
    let db = TestDb::sqlite();
    let port = free_port();
    let mut server = Server::start(&db.url, port);
    let base = format!("http://127.0.0.1:{port}");
    let client = Client::new(&base).with_token(TOKEN);
    let mut started = None;
    for _ in 0..500 {
        if let Ok(replica) = Replica::start(client.clone()).await {
            started = Some(replica);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let replica = started.expect("the replica loads its first snapshot");

    // The same answers as the server's, in-process.
    let context = json!({"country": "FR", "total": 120});
    let local =
        serde_json::to_value(replica.evaluate("checkout_terms", &context).await.unwrap()).unwrap();
    let remote = client
        .evaluate("checkout_terms", &context, None)
        .await
        .unwrap();
    let remote = serde_json::to_value(remote.body).unwrap();
    assert!(!local["matched"].as_array().unwrap().is_empty(), "{local}");
    assert_eq!(local["matched"], remote["matched"]);
    assert_eq!(local["actions"], remote["actions"]);
    let remote = client
        .param("cache_ttl_seconds", "seconds", None)
        .await
        .unwrap();
    assert_eq!(
        replica.param("cache_ttl_seconds", "seconds").await.unwrap(),
        Some(remote.body.value)
    );
    assert_eq!(replica.is_enabled("no_such_rule").await.unwrap(), None);

    // Read-your-writes: the next local read reflects the write, every time.
    for n in 0..20 {
        let mut params = Map::new();
        params.insert("seconds".into(), json!(100 + n));
        let seq = replica
            .update_params("cache_ttl_seconds", params)
            .await
            .unwrap();
        assert_eq!(
            replica.param("cache_ttl_seconds", "seconds").await.unwrap(),
            Some(json!(100 + n)),
            "write {n} (seq {seq}) not read back"
        );
        assert!(replica.status().seq >= seq);
    }

    // A change typed into SQL reaches the replica through the server's feed and the stream.
    sql(
        &db.url,
        "UPDATE rules SET enabled = 0 WHERE id = 'cache_ttl_seconds'",
    )
    .await;
    replica.wait_for(head(&db.url).await, WAIT).await.unwrap();
    assert_eq!(
        replica.is_enabled("cache_ttl_seconds").await.unwrap(),
        Some(false)
    );
    assert!(replica.status().connected);

    // The server is killed: the replica keeps answering and says it is disconnected.
    server.kill();
    until("the replica to notice", || !replica.status().connected).await;
    assert_eq!(
        replica.is_enabled("cache_ttl_seconds").await.unwrap(),
        Some(false)
    );
    let status = replica.status();
    assert!(status.last_error.is_some(), "{status:?}");
    assert!(status.last_heard_at.is_some());
    // The view without waiting is the current one only while it reflects the replica's own
    // writes: a write noted past what the frozen view reflects leaves nothing to take.
    assert_eq!(replica.try_view().map(|v| v.seq()), Some(status.seq));
    replica.note_write(status.seq + 1);
    assert!(
        replica.try_view().is_none(),
        "a view behind the replica's own write"
    );

    // Changed while it was away; back on the same address, the replica catches up from its
    // Last-Event-ID without a new snapshot.
    sql(
        &db.url,
        "UPDATE rules SET enabled = 1 WHERE id = 'cache_ttl_seconds'",
    )
    .await;
    let mut server = Server::start(&db.url, port);
    replica.wait_for(head(&db.url).await, WAIT).await.unwrap();
    assert_eq!(
        replica.is_enabled("cache_ttl_seconds").await.unwrap(),
        Some(true)
    );
    until("the replica to reconnect", || replica.status().connected).await;
    assert_eq!(replica.status().snapshots, 1, "caught up from the stream");
    assert!(replica.try_view().is_some_and(|v| v.seq() > status.seq));

    // Away again, and the log pruned past the replica's position: a reset, then a snapshot.
    server.kill();
    until("the replica to notice", || !replica.status().connected).await;
    sql(
        &db.url,
        "UPDATE rules SET enabled = 0 WHERE id = 'cache_ttl_seconds'",
    )
    .await;
    let store = rulebook_store::Store::open(&db.url).await.unwrap();
    assert!(store.prune_changes(Duration::ZERO).await.unwrap() > 0);
    let pruned_head = store.head_seq().await.unwrap();
    store.close().await;
    let _server = Server::start(&db.url, port);
    replica.wait_for(pruned_head, WAIT).await.unwrap();
    until("a new snapshot", || replica.status().snapshots == 2).await;
    assert_eq!(
        replica.is_enabled("cache_ttl_seconds").await.unwrap(),
        Some(false)
    );
    let value: Value = replica
        .param("cache_ttl_seconds", "seconds")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value, json!(119));
}
