//! End to end: the real `rulebook` binary on port 0 with a fresh database, driven over HTTP and
//! through its own CLI. The lifecycle suite runs once on SQLite and once on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{banner, http, matched, Running, TestDb};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Connection;

/// Create, evaluate, update with If-Match, see the change in the very next request, disable, move
/// to another entry point, delete, read the history: each step checked.
async fn lifecycle(db: &TestDb) {
    let server = Running::start(&db.url, &[]);
    let token = server
        .token
        .clone()
        .expect("a first start generates and prints an admin token");
    server.ready().await;
    let c = &server.client;
    let t = Some(token.as_str());
    let eval = |ep: &str| {
        let url = server.url(&format!("/v1/evaluate/{ep}"));
        async move {
            http(
                c,
                Method::POST,
                &url,
                None,
                &[],
                Some(json!({"context": {"country": "FR"}})),
            )
            .await
        }
    };

    // Create.
    let (status, headers, body) = http(
        c,
        Method::POST,
        &server.url("/v1/rules"),
        t,
        &[],
        Some(banner("E2E-1", "landing", "hello")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["etag"], "\"1\"");

    // Evaluate.
    let (status, _, body) = eval("landing").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(matched(&body), [("E2E-1".to_owned(), 1)]);
    assert_eq!(body["actions"][0]["message"], "hello");

    // Update with If-Match; the very next request sees it.
    let (_, headers, mut rule) = http(
        c,
        Method::GET,
        &server.url("/v1/rules/E2E-1"),
        None,
        &[],
        None,
    )
    .await;
    let etag = headers["etag"].to_str().unwrap().to_owned();
    rule["actions"][0]["message"] = json!("bonjour");
    rule["reason"] = json!("translate");
    let (status, _, body) = http(
        c,
        Method::PUT,
        &server.url("/v1/rules/E2E-1"),
        t,
        &[("if-match", &etag)],
        Some(rule.clone()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = eval("landing").await;
    assert_eq!(matched(&body), [("E2E-1".to_owned(), 2)]);
    assert_eq!(body["actions"][0]["message"], "bonjour");

    // The same stale If-Match again is a conflict naming the current version.
    let (status, _, body) = http(
        c,
        Method::PUT,
        &server.url("/v1/rules/E2E-1"),
        t,
        &[("if-match", &etag)],
        Some({
            let mut r = rule.clone();
            r.as_object_mut().unwrap().remove("version");
            r
        }),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["current_version"], 2);

    // Disable: the next evaluation no longer matches it.
    let (status, _, body) = http(
        c,
        Method::POST,
        &server.url("/v1/rules/E2E-1/disable"),
        t,
        &[],
        Some(json!({"reason": "campaign over"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = eval("landing").await;
    assert!(matched(&body).is_empty(), "{body}");
    let (_, _, body) = http(
        c,
        Method::GET,
        &server.url("/v1/rules/E2E-1/enabled"),
        None,
        &[],
        None,
    )
    .await;
    assert_eq!(body["enabled"], false);

    // Enable and move to another entry point: it leaves the first and joins the second.
    let (status, _, _) = http(
        c,
        Method::POST,
        &server.url("/v1/rules/E2E-1/enable"),
        t,
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, headers, mut rule) = http(
        c,
        Method::GET,
        &server.url("/v1/rules/E2E-1"),
        None,
        &[],
        None,
    )
    .await;
    rule["entry_point"] = json!("Checkout Page");
    let (status, _, body) = http(
        c,
        Method::PUT,
        &server.url("/v1/rules/E2E-1"),
        t,
        &[("if-match", headers["etag"].to_str().unwrap())],
        Some(rule),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = eval("landing").await;
    assert!(matched(&body).is_empty(), "{body}");
    let (_, _, body) = eval("checkout_page").await;
    assert_eq!(matched(&body), [("E2E-1".to_owned(), 5)]);

    // Delete: gone from evaluation and reads.
    let (status, _, body) = http(
        c,
        Method::DELETE,
        &server.url("/v1/rules/E2E-1"),
        t,
        &[],
        Some(json!({"reason": "cleanup"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = eval("checkout_page").await;
    assert!(matched(&body).is_empty(), "{body}");
    let (status, _, _) = http(
        c,
        Method::GET,
        &server.url("/v1/rules/E2E-1"),
        None,
        &[],
        None,
    )
    .await;
    assert_eq!(status, 404);

    // History: every step, with the author and reasons.
    let (status, _, body) = http(
        c,
        Method::GET,
        &server.url("/v1/rules/E2E-1/history"),
        None,
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let kinds: Vec<&str> = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["create", "update", "disable", "enable", "update", "delete"]
    );
    assert_eq!(body["history"][1]["reason"], "translate");
    assert_eq!(body["history"][2]["reason"], "campaign over");
    assert_eq!(body["history"][0]["changed_by"], "admin");

    // A graceful stop exits 0.
    let mut server = server;
    assert!(server.stop().success());
}

#[tokio::test]
async fn lifecycle_on_sqlite() {
    lifecycle(&TestDb::sqlite()).await;
}

#[tokio::test]
async fn lifecycle_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    lifecycle(&db).await;
}

/// Restart on a cold cache and send 500 concurrent evaluations of one entry point while
/// PostgreSQL holds the `rules` table locked from another connection, so the first load cannot
/// finish before every other request has joined it: all 500 overlap, and the entry point loads
/// once.
#[tokio::test]
async fn a_stampede_on_a_cold_cache_loads_the_entry_point_once() {
    const REQUESTS: usize = 500;
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let env = [("RULEBOOK_REQUEST_TIMEOUT", "120s")];
    // First start: seed, then stop, so the second start begins with a cold cache.
    let mut first = Running::start(&db.url, &env);
    first.ready().await;
    first.stop();

    let server = Running::start(&db.url, &env);
    server.ready().await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(600)
        .build()
        .unwrap();
    let stats = |client: reqwest::Client, url: String| async move {
        http(&client, Method::GET, &url, None, &[], None).await.2
    };
    let stats_url = server.url("/v1/cache/stats");

    let mut lock = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    sqlx::query("LOCK TABLE rules IN ACCESS EXCLUSIVE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    let url = server.url("/v1/evaluate/checkout_terms");
    let requests = (0..REQUESTS).map(|_| {
        let client = client.clone();
        let url = url.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"context": {"country": "FR"}}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    });
    let requests: Vec<_> = requests.collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let now = stats(client.clone(), stats_url.clone()).await;
        if now["counters"]["coalesced_waiters"].as_u64().unwrap() >= REQUESTS as u64 - 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the requests never all waited on one load: {now}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    sqlx::query("COMMIT").execute(&mut lock).await.unwrap();
    lock.close().await.ok();
    let statuses: Vec<u16> = futures_join(requests.into_iter()).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    let stats = stats(client.clone(), stats_url).await;
    let loads: Vec<&Value> = stats["loads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["item"] == "entry_point:checkout_terms")
        .collect();
    assert_eq!(loads.len(), 1, "{stats}");
    assert_eq!(loads[0]["loads"], 1, "{stats}");
    assert!(
        stats["counters"]["coalesced_waiters"].as_u64().unwrap() >= REQUESTS as u64 - 1,
        "{stats}"
    );
}

async fn futures_join(handles: impl Iterator<Item = tokio::task::JoinHandle<u16>>) -> Vec<u16> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}

/// The CLI against a running server: readable output, `--json`, import and export, exit codes.
#[tokio::test]
async fn the_cli_drives_a_running_server() {
    let db = TestDb::sqlite();
    let server = Running::start(&db.url, &[]);
    server.ready().await;
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| server.cli(args);

    let (code, out, _) = cli(&["rules", "list", "--entry-point", "checkout terms"]);
    assert_eq!(code, 0);
    assert!(out.contains("checkout_terms_banner"), "{out}");

    // Import a folder of YAML and JSON, then again: the second time nothing changes.
    std::fs::write(
        dir.path().join("a.yaml"),
        "- id: CLI-1\n  entry_point: cli\n  actions: [{type: block, reason: no}]\n- id: CLI-2\n  entry_point: cli\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.json"),
        banner("CLI-3", "cli", "hi").to_string(),
    )
    .unwrap();
    let folder = dir.path().to_str().unwrap();
    let (code, out, err) = cli(&["rules", "import", folder, "--reason", "bulk"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 created"), "{out}");
    let (code, out, _) = cli(&["rules", "import", folder]);
    assert_eq!(code, 0);
    assert!(out.contains("3 unchanged"), "{out}");

    // One import is one transaction: a bad rule in one file means nothing from any file is
    // written, and every problem is named with its file.
    let bad_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        bad_dir.path().join("a.json"),
        json!([banner("CLI-10", "cli_bad", "x"), {"id": "CLI-11", "priority": "high"}]).to_string(),
    )
    .unwrap();
    std::fs::write(
        bad_dir.path().join("b.yaml"),
        "id: CLI-12\nentry_point: cli_bad\ncolour: red\n",
    )
    .unwrap();
    let bad_folder = bad_dir.path().to_str().unwrap();
    let (code, _, err) = cli(&["rules", "import", bad_folder]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("rule 2 of") && err.contains("a.json") && err.contains("`priority`"),
        "{err}"
    );
    assert!(err.contains("b.yaml") && err.contains("`colour`"), "{err}");
    assert_eq!(cli(&["rules", "get", "CLI-10"]).0, 3, "nothing was written");
    // Problems only the server sees (an id twice) are mapped back to their files.
    std::fs::write(
        bad_dir.path().join("a.json"),
        banner("CLI-10", "cli_bad", "x").to_string(),
    )
    .unwrap();
    std::fs::write(
        bad_dir.path().join("b.yaml"),
        "id: CLI-10\nentry_point: cli_bad\n",
    )
    .unwrap();
    let (code, _, err) = cli(&["rules", "import", bad_folder]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("`rules[1].id`") && err.contains("b.yaml"),
        "{err}"
    );
    assert_eq!(cli(&["rules", "get", "CLI-10"]).0, 3, "nothing was written");

    // A dry run reports and writes nothing; an import over the normal body limit streams.
    let (code, out, err) = cli(&["rules", "import", folder, "--dry-run", "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&report["dry_run"], &report["unchanged"]),
        (&json!(true), &json!(3))
    );
    let big: Vec<Value> = (0..3000)
        .map(|i| banner(&format!("BIG-{i}"), "big", &"x".repeat(300)))
        .collect();
    let big_file = dir.path().join("big.json");
    std::fs::write(&big_file, Value::Array(big).to_string()).unwrap();
    let (code, out, err) = cli(&["rules", "import", big_file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("imported 3000 rules: 3000 created"), "{out}");
    assert_eq!(cli(&["rules", "get", "BIG-0"]).0, 0);

    // Evaluate, as people and as scripts read it.
    let (code, out, _) = cli(&["evaluate", "cli", "--context", "{\"country\": \"FR\"}"]);
    assert_eq!(code, 0);
    assert!(out.contains("3 rules matched"), "{out}");
    let (code, out, _) = cli(&["evaluate", "cli", "--context", "{}", "--json"]);
    assert_eq!(code, 0);
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["matched"].as_array().unwrap().len(), 2);

    // get -> edit -> update round trip; then a stale update is a conflict (exit 4).
    let (_, out, _) = cli(&["rules", "get", "CLI-2"]);
    let file = dir.path().join("edit.json");
    let mut rule: Value = serde_json::from_str(&out).unwrap();
    rule["priority"] = json!(3);
    std::fs::write(&file, rule.to_string()).unwrap();
    let edited = file.to_str().unwrap();
    let (code, out, err) = cli(&["rules", "update", "CLI-2", "--file", edited]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("version 2"), "{out}");
    let (code, _, err) = cli(&["rules", "update", "CLI-2", "--file", edited]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("version 2"), "{err}");

    // Exit codes: not found 3, refused 1, usage 2, not allowed 5, server unreachable 6.
    assert_eq!(cli(&["rules", "get", "NOPE"]).0, 3);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"id\": \"B\", \"colour\": 1}").unwrap();
    let (code, _, err) = cli(&["rules", "create", "--file", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("`colour`"), "{err}");
    assert_eq!(cli(&["rules", "frobnicate"]).0, 2);
    assert_eq!(cli(&["cache", "clear"]).0, 2);
    let (code, _, _) = cli(&["rules", "disable", "CLI-1", "--token", "rb_wrong"]);
    assert_eq!(code, 5);
    let (code, _, _) = cli(&["rules", "list", "--server", "http://127.0.0.1:9"]);
    assert_eq!(code, 6);

    // Cache stats and clear; export; history.
    let (code, out, _) = cli(&["cache", "stats"]);
    assert_eq!(code, 0);
    assert!(out.contains("entry_point:cli"), "{out}");
    let (code, _, err) = cli(&["cache", "clear", "--entry-point", "cli", "--tag", "params"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = cli(&[
        "rules",
        "export",
        "--entry-point",
        "cli",
        "--format",
        "yaml",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("id: CLI-3"), "{out}");
    let (code, out, _) = cli(&["rules", "history", "CLI-2"]);
    assert_eq!(code, 0);
    assert!(out.contains("bulk") && out.contains("update"), "{out}");

    // Tokens and tenants work on the database directly.
    let (code, out, _) = cli(&["tenants", "create", "acme"]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = cli(&[
        "tokens", "create", "--name", "acme-ci", "--role", "write", "--tenant", "acme", "--json",
    ]);
    assert_eq!(code, 0);
    let created: Value = serde_json::from_str(&out).unwrap();
    let acme = created["secret"].as_str().unwrap();
    let (code, _, _) = cli(&["rules", "disable", "CLI-1", "--token", acme]);
    assert_eq!(code, 5, "a token for acme cannot write to default");
    let (code, out, _) = cli(&["tokens", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("acme-ci"), "{out}");
    let id = created["token"]["id"].as_str().unwrap();
    assert_eq!(cli(&["tokens", "revoke", id]).0, 0);
    let (code, _, _) = cli(&["rules", "list", "--tenant", "acme", "--token", acme]);
    assert_eq!(code, 0, "reads need no token on loopback");
    let r = http(
        &server.client,
        Method::POST,
        &server.url("/v1/rules"),
        Some(acme),
        &[("x-tenant-id", "acme")],
        Some(banner("R", "x", "y")),
    )
    .await;
    assert_eq!(r.0, 401, "a revoked token no longer works");
}

/// SIGTERM lets a request in flight finish before the process exits. The request is held inside
/// its handler (its first load waits for the `rules` table, locked from another connection), the
/// signal comes, the server stops taking connections, and only then is the table released.
#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish() {
    use std::time::{Duration, Instant};
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let mut server = Running::start(&db.url, &[("RULEBOOK_REQUEST_TIMEOUT", "120s")]);
    server.ready().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let misses = |stats: &Value| stats["counters"]["misses"].as_u64().unwrap();
    let stats_url = server.url("/v1/cache/stats");
    let before = misses(
        &http(&client, Method::GET, &stats_url, None, &[], None)
            .await
            .2,
    );

    let mut lock = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    sqlx::query("LOCK TABLE rules IN ACCESS EXCLUSIVE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    let in_flight = {
        let (client, url) = (client.clone(), server.url("/v1/evaluate/checkout_terms"));
        tokio::spawn(async move {
            let response = client
                .post(url)
                .json(&json!({"context": {"country": "FR"}}))
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while misses(
        &http(&client, Method::GET, &stats_url, None, &[], None)
            .await
            .2,
    ) == before
    {
        assert!(
            Instant::now() < deadline,
            "the request never reached the cache"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    let addr = server.base.trim_start_matches("http://").to_owned();
    while std::net::TcpStream::connect(&addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the server kept taking connections after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        !in_flight.is_finished(),
        "the request was answered before the table was released"
    );
    sqlx::query("COMMIT").execute(&mut lock).await.unwrap();
    lock.close().await.ok();
    let (status, body) = tokio::time::timeout(Duration::from_secs(60), in_flight)
        .await
        .expect("the request in flight was never answered")
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("checkout_terms_banner"), "{body}");
    assert!(server.stop().success());
}
