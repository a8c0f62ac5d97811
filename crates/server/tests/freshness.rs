//! The freshness contract: `seq` on every answer, `min_seq` reads, and read-your-writes across
//! instances.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{banner, http, req, Api, Resp, Running, TestDb, ADMIN};
use serde_json::json;
use sqlx::Connection;

fn header_seq(r: &Resp) -> i64 {
    r.headers
        .get("x-rulebook-seq")
        .unwrap_or_else(|| panic!("no X-Rulebook-Seq: {}", r.text))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The `seq` of an answer: the body's and the header's, which must agree.
fn seq(r: &Resp) -> i64 {
    let header = header_seq(r);
    assert_eq!(r.body["seq"].as_i64(), Some(header), "{}", r.text);
    header
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_its_seq_and_a_write_its_own() {
    let api = Api::start(|c| c.min_seq_wait = Duration::from_millis(100)).await;
    let create = api
        .call(
            req(Method::POST, "/v1/rules")
                .token(ADMIN)
                .json(banner("FR-1", "fresh", "v1")),
        )
        .await;
    assert_eq!(create.status, StatusCode::CREATED, "{}", create.text);
    let written = seq(&create);
    assert_eq!(written, api.store().head_seq().await.unwrap());

    // Every read answers with the position it reflects; with `min_seq` it has reached it.
    let reads = [
        req(Method::POST, "/v1/evaluate/fresh").json(json!({"context": {"country": "FR"}})),
        req(Method::GET, "/v1/params/cache_ttl_seconds/seconds"),
        req(Method::GET, "/v1/rules/FR-1/enabled"),
        req(Method::GET, "/v1/rules?entry_point=fresh"),
        req(Method::GET, "/v1/rules/FR-1"),
        req(Method::GET, "/v1/rules/FR-1/history"),
        req(Method::POST, "/v1/score/pad_trade").json(
            json!({"input": {"instrument_type": "equity", "value": 75000, "holding_days": 10}}),
        ),
    ];
    for read in reads {
        let r = api
            .call(read.header("x-rulebook-min-seq", &written.to_string()))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(seq(&r) >= written, "{}", r.text);
    }
    let r = api
        .call(req(
            Method::GET,
            &format!("/v1/rules/FR-1?min_seq={written}"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(seq(&r) >= written);

    // What a read returned goes back in an update: `seq` is read-only like `version`.
    let mut rule = r.body.clone();
    rule["actions"][0]["message"] = json!("v2");
    let update = api
        .call(
            req(Method::PUT, "/v1/rules/FR-1")
                .token(ADMIN)
                .header("if-match", "\"1\"")
                .json(rule),
        )
        .await;
    assert_eq!(update.status, StatusCode::OK, "{}", update.text);
    assert_eq!(seq(&update), written + 1);
    for (method, path) in [
        (Method::POST, "/v1/rules/FR-1/disable"),
        (Method::POST, "/v1/rules/FR-1/enable"),
        (Method::DELETE, "/v1/rules/FR-1"),
    ] {
        let before = api.store().head_seq().await.unwrap();
        let r = api.call(req(method, path).token(ADMIN)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(seq(&r), before + 1, "{path}");
    }
}

/// Regression test (found by schemathesis): a `min_seq` that no write has reached was answered
/// 503 `not_yet_current`, "retry", which could never help; it is the caller's mistake, a 400.
/// (A committed position the instance has not applied yet is still a 503 with `Retry-After`:
/// see `multi_instance`'s read-your-writes through another instance.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_min_seq_beyond_the_log_is_a_400_and_so_is_a_bad_one() {
    let api = Api::start(|c| c.min_seq_wait = Duration::from_millis(50)).await;
    let head = api.store().head_seq().await.unwrap();
    let r = api
        .call(
            req(Method::GET, "/v1/params/cache_ttl_seconds/seconds")
                .header("x-rulebook-min-seq", &(head + 1000).to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.code(), "bad_min_seq");
    assert!(r.headers.get("retry-after").is_none());
    assert!(
        r.message().contains(&(head + 1000).to_string())
            && r.message().contains(&format!("last change is seq {head}")),
        "{}",
        r.message()
    );

    for bad in ["?min_seq=soon", "?min_seq=-3"] {
        let r = api.call(req(Method::GET, &format!("/v1/rules{bad}"))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(r.code(), "bad_min_seq");
    }
}

/// Regression guard for "the wait triggers a log read rather than waiting for the poll": with a
/// poll of an hour and no wake-up on SQLite, only the read that `min_seq` asks for can bring a
/// change typed into SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_min_seq_read_reads_the_log_at_once_instead_of_waiting_for_the_poll() {
    let api = Api::start(|c| {
        c.poll_interval = Duration::from_secs(3600);
        c.min_seq_wait = Duration::from_secs(5);
    })
    .await;
    let before = api
        .call(req(Method::GET, "/v1/rules/cache_ttl_seconds/enabled"))
        .await;
    assert_eq!(before.body["enabled"], json!(true), "{}", before.text);
    assert_eq!(before.status, StatusCode::OK, "{}", before.text);
    let mut conn = sqlx::SqliteConnection::connect(&api.db.url).await.unwrap();
    sqlx::query(
        "UPDATE rules SET enabled = 0 WHERE tenant = 'default' AND id = 'cache_ttl_seconds'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let head = api.store().head_seq().await.unwrap();
    assert!(head > seq(&before));
    let stale = api
        .call(req(Method::GET, "/v1/rules/cache_ttl_seconds/enabled"))
        .await;
    assert_eq!(
        stale.body["enabled"],
        json!(true),
        "no poll has run: {}",
        stale.text
    );
    let fresh = api
        .call(req(
            Method::GET,
            &format!("/v1/rules/cache_ttl_seconds/enabled?min_seq={head}"),
        ))
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.text);
    assert_eq!(fresh.body["enabled"], json!(false), "{}", fresh.text);
    assert!(seq(&fresh) >= head);
}

/// Writes through A and reads each write through B with `min_seq` a thousand times: B never
/// answers with an older version, and the wait is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_instance_is_read_through_another_with_min_seq() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    // A slow poll and no Redis: B learns of A's writes by NOTIFY or by the read `min_seq` asks.
    let env = [("RULEBOOK_POLL_INTERVAL", "1s")];
    let a = Running::start(&db.url, &env);
    a.ready().await;
    let token = a.token.clone().expect("the first start prints a token");
    let b = Running::start(&db.url, &env);
    b.ready().await;
    let (status, _, created) = http(
        &a.client,
        reqwest::Method::POST,
        &a.url("/v1/rules"),
        Some(&token),
        &[],
        Some(json!({"id": "RYW", "params": {"n": 0}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");

    let rounds = 1000;
    let mut waits = Vec::with_capacity(rounds);
    let mut retried = 0;
    for n in 1..=rounds {
        let (status, headers, written) = http(
            &a.client,
            reqwest::Method::PATCH,
            &a.url("/v1/rules/RYW/params"),
            Some(&token),
            &[],
            Some(json!({"params": {"n": n}})),
        )
        .await;
        assert_eq!(status, 200, "{written}");
        let seq = written["seq"].as_i64().unwrap();
        assert_eq!(headers["x-rulebook-seq"].to_str().unwrap(), seq.to_string());
        let started = Instant::now();
        // A 503 `not_yet_current` is the contract's honest answer when B cannot reach the
        // position within --min-seq-wait (on a shared cluster, a long transaction in another
        // database holds every snapshot's horizon back); a client retries it, as here.
        let mut attempts = 0;
        let (status, headers, read) = loop {
            attempts += 1;
            let answer = http(
                &b.client,
                reqwest::Method::GET,
                &b.url("/v1/params/RYW/n"),
                None,
                &[("x-rulebook-min-seq", &seq.to_string())],
                None,
            )
            .await;
            if answer.0 != 503 || attempts == 10 {
                break answer;
            }
            assert_eq!(answer.2["error"]["code"], "not_yet_current", "{}", answer.2);
            assert_eq!(answer.1["retry-after"], "1");
            retried += 1;
        };
        waits.push(started.elapsed());
        assert_eq!(status, 200, "round {n}: {read}");
        assert_eq!(
            read["value"],
            json!(n),
            "round {n}: B answered a stale value"
        );
        assert!(read["seq"].as_i64().unwrap() >= seq, "round {n}: {read}");
        let header: i64 = headers["x-rulebook-seq"].to_str().unwrap().parse().unwrap();
        assert_eq!(Some(header), read["seq"].as_i64());
    }
    waits.sort();
    let at = |q: f64| waits[((waits.len() as f64 * q) as usize).min(waits.len() - 1)];
    eprintln!(
        "read-your-writes through another instance, {rounds} rounds: read with min_seq p50 {:?}, p99 {:?}, max {:?}; {retried} reads answered 503 not_yet_current first and retried",
        at(0.5),
        at(0.99),
        waits[waits.len() - 1]
    );
}
