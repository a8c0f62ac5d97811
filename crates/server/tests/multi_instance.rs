//! Several real `rulebook serve` processes sharing one fresh PostgreSQL database: a change
//! written through any of them, or typed into SQL on a connection of its own, reaches the caches
//! of all of them; Redis is optional, and a Redis that dies and comes back changes nothing but
//! what `/health` says. Each change must reach every instance within the stated staleness bound
//! (one poll interval, plus a stated margin), and its lag is printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::time::{Duration, Instant};

use common::{banner, binary, http, Running, TestDb};
use reqwest::Method;
use rulebook_testkit::PrivateRedis;
use serde_json::{json, Value};
use sqlx::Connection;

/// The poll interval the instances run with: a missed wake-up leaves an instance stale for at most
/// about this long (README, "Running more than one instance").
const POLL: &str = "1s";
/// The staleness bound asserted: one poll interval plus a margin of 1.5 s for the HTTP round trips
/// of the check itself and scheduling on a small shared machine.
const STALENESS_BOUND: Duration = Duration::from_millis(2500);
/// How long to wait for a state that is not a change's propagation (Redis seen up or down).
const CONVERGE_WITHIN: Duration = Duration::from_secs(15);

const RULE: &str = "MI-1";
const ENTRY_POINT: &str = "multi_instance";

/// Three instances on `db`, started one after the other (the first migrates and seeds, and
/// prints the admin token the others share through the database), each ready.
async fn three_instances(db: &TestDb, extra_env: &[(&str, &str)]) -> (Vec<Running>, String) {
    // A poll far slower than the wake-ups, so that convergence shows NOTIFY and Redis at work.
    let mut env = vec![("RULEBOOK_POLL_INTERVAL", POLL)];
    env.extend_from_slice(extra_env);
    let first = Running::start(&db.url, &env);
    first.ready().await;
    let token = first.token.clone().expect("the first start prints a token");
    let mut instances = vec![first];
    for _ in 0..2 {
        let next = Running::start(&db.url, &env);
        next.ready().await;
        instances.push(next);
    }
    (instances, token)
}

async fn health(instance: &Running) -> (u16, Value) {
    let (status, _, body) = http(
        &instance.client,
        Method::GET,
        &instance.url("/health"),
        None,
        &[],
        None,
    )
    .await;
    (status, body)
}

/// The version of [`RULE`] that `instance` evaluates with, from its cache.
async fn evaluated_version(instance: &Running) -> Option<i64> {
    let (status, _, body) = http(
        &instance.client,
        Method::POST,
        &instance.url(&format!("/v1/evaluate/{ENTRY_POINT}")),
        None,
        &[],
        Some(json!({"context": {"country": "FR"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["matched"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == RULE)
        .and_then(|m| m["version"].as_i64())
}

/// Updates [`RULE`]'s message through `instance`'s API; returns the new version.
async fn write_through(instance: &Running, token: &str, message: &str) -> i64 {
    let url = instance.url(&format!("/v1/rules/{RULE}"));
    let (status, headers, mut rule) =
        http(&instance.client, Method::GET, &url, None, &[], None).await;
    assert_eq!(status, 200, "{rule}");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    rule["actions"][0]["message"] = json!(message);
    let (status, _, body) = http(
        &instance.client,
        Method::PUT,
        &url,
        Some(token),
        &[("if-match", &etag)],
        Some(rule),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["version"].as_i64().unwrap()
}

/// Waits until every instance evaluates with `version` (or later); returns how long each took,
/// counted from the call.
async fn converge(instances: &[Running], version: i64, what: &str) -> Vec<Duration> {
    let start = Instant::now();
    let mut lags = Vec::new();
    for (i, instance) in instances.iter().enumerate() {
        loop {
            if evaluated_version(instance)
                .await
                .is_some_and(|v| v >= version)
            {
                lags.push(start.elapsed());
                break;
            }
            assert!(
                start.elapsed() < STALENESS_BOUND,
                "instance {i} still evaluates an older version than {version} after {STALENESS_BOUND:?} ({what})"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    eprintln!(
        "{what}: version {version} visible on every instance after {}",
        lags.iter()
            .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    lags
}

/// A write typed into SQL on a connection of Rulebook's own: the trigger bumps the version and
/// logs the change. Returns the new version.
async fn plain_sql_write(db: &TestDb) -> i64 {
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (version,): (i64,) = sqlx::query_as(&format!(
        "UPDATE rules SET priority = priority + 1 WHERE tenant = 'default' AND id = '{RULE}' RETURNING version"
    ))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    version
}

async fn create_rule(instance: &Running, token: &str) -> i64 {
    let (status, _, body) = http(
        &instance.client,
        Method::POST,
        &instance.url("/v1/rules"),
        Some(token),
        &[],
        Some(banner(RULE, ENTRY_POINT, "first")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["version"].as_i64().unwrap()
}

/// `instance`'s answer for a 75,000 equity trade held 10 days: the position-size level and the
/// overall level.
async fn score(instance: &Running) -> (String, String) {
    let (status, _, body) = http(
        &instance.client,
        Method::POST,
        &instance.url("/v1/score/pad_trade"),
        None,
        &[],
        Some(json!({"input": {"instrument_type": "equity", "value": 75000, "holding_days": 10}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let position = body["factors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["factor"] == "position_size")
        .unwrap();
    (
        position["level"].as_str().unwrap().to_owned(),
        body["overall"].as_str().unwrap().to_owned(),
    )
}

/// Every instance caches the `pad_trade` scorecard; raising the position-size thresholds through
/// instance 1 (PATCH params) changes its next score at once and every other instance's within the
/// staleness bound.
async fn a_params_write_reaches_every_cached_scorecard(instances: &[Running], token: &str) {
    let before = ("MEDIUM".to_owned(), "HIGH".to_owned());
    for instance in instances {
        assert_eq!(score(instance).await, before);
    }
    let (status, _, body) = http(
        &instances[1].client,
        Method::PATCH,
        &instances[1].url("/v1/rules/RF-005/params"),
        Some(token),
        &[],
        Some(json!({"params": {"lowThreshold": 80000, "highThreshold": 100000}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let after = ("LOW".to_owned(), "MEDIUM".to_owned());
    assert_eq!(
        score(&instances[1]).await,
        after,
        "the writer scores with its own write"
    );
    let start = Instant::now();
    for (i, instance) in instances.iter().enumerate() {
        while score(instance).await != after {
            assert!(
                start.elapsed() < STALENESS_BOUND,
                "instance {i} still scores with the old thresholds after {STALENESS_BOUND:?}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    eprintln!(
        "params write: new thresholds scored on every instance after {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_write_through_one_instance_or_plain_sql_reaches_all_three() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (instances, token) = three_instances(&db, &[]).await;
    for instance in &instances {
        let (status, body) = health(instance).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["feed"]["transport"], "listen+poll", "{body}");
        assert_eq!(body["feed"]["ready"], true, "{body}");
    }
    // Every instance caches the entry point before the rule exists.
    for instance in &instances {
        assert_eq!(evaluated_version(instance).await, None);
    }
    let version = create_rule(&instances[0], &token).await;
    converge(&instances, version, "create through A").await;

    for (round, writer) in [0, 1, 2, 0].into_iter().enumerate() {
        let version = write_through(&instances[writer], &token, &format!("round {round}")).await;
        // The writing instance reads its own write at once.
        assert_eq!(evaluated_version(&instances[writer]).await, Some(version));
        converge(
            &instances,
            version,
            &format!("update through instance {writer}"),
        )
        .await;
    }
    for round in 0..3 {
        let version = plain_sql_write(&db).await;
        converge(&instances, version, &format!("plain SQL, round {round}")).await;
    }
    a_params_write_reaches_every_cached_scorecard(&instances, &token).await;

    for instance in &instances {
        // The applied position is commit-safe: it may trail the log while any older transaction
        // of the cluster is still open, so it is waited for, not read once.
        let start = Instant::now();
        let body = loop {
            let (_, body) = health(instance).await;
            if body["feed"]["applied_seq"]
                .as_i64()
                .is_some_and(|seq| seq >= 8)
            {
                break body;
            }
            assert!(
                start.elapsed() < CONVERGE_WITHIN,
                "the applied position never reached the writes: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let feed = &body["feed"];
        assert_eq!(feed["listen"]["connected"], true, "{body}");
        assert_eq!(
            body["applied_seq"], feed["applied_seq"],
            "the cache and the feed agree on what was applied: {body}"
        );
        eprintln!(
            "{}: feed applied_seq {}, changes applied from elsewhere {}, last lag {} ms, max lag {} ms",
            instance.base,
            feed["applied_seq"],
            feed["changes_applied"],
            feed["last_lag_ms"],
            feed["max_lag_ms"]
        );
        let metrics = instance
            .client
            .get(instance.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for family in [
            "# TYPE rulebook_feed_propagation_lag_seconds histogram",
            "# TYPE rulebook_feed_replays_total counter",
            "# TYPE rulebook_feed_full_flushes_total counter",
            "rulebook_feed_ready 1",
            "rulebook_feed_listen_up 1",
        ] {
            assert!(metrics.contains(family), "no `{family}` in\n{metrics}");
        }
        let observed = metrics
            .lines()
            .find_map(|l| l.strip_prefix("rulebook_feed_propagation_lag_seconds_count "))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap();
        assert!(
            observed >= 3,
            "at least the plain-SQL changes were propagated to every instance: {observed}"
        );
    }
}

/// Waits until every instance's `/health` shows Redis `up` as `up`, and still answers 200.
async fn redis_shows(instances: &[Running], up: bool) {
    let start = Instant::now();
    for (i, instance) in instances.iter().enumerate() {
        loop {
            let (status, body) = health(instance).await;
            assert_eq!(status, 200, "the instance keeps serving: {body}");
            if body["feed"]["redis"]["up"] == up {
                break;
            }
            assert!(
                start.elapsed() < CONVERGE_WITHIN,
                "instance {i}'s /health never showed redis up = {up}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn redis_messages_received(instance: &Running) -> u64 {
    let (_, body) = health(instance).await;
    body["feed"]["redis"]["messages_received"].as_u64().unwrap()
}

#[tokio::test]
async fn instances_converge_while_redis_is_down_and_use_it_again_when_it_is_back() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let url = redis.url();
    let (instances, token) = three_instances(&db, &[("RULEBOOK_REDIS_URL", &url)]).await;
    redis_shows(&instances, true).await;
    let (_, body) = health(&instances[0]).await;
    assert_eq!(body["feed"]["transport"], "redis+listen+poll", "{body}");

    let version = create_rule(&instances[0], &token).await;
    converge(&instances, version, "redis up: create through A").await;
    let version = write_through(&instances[1], &token, "through B").await;
    converge(&instances, version, "redis up: update through B").await;
    assert!(
        redis_messages_received(&instances[0]).await >= 1,
        "A heard B's write over Redis"
    );

    redis.stop();
    for (round, writer) in [2, 0, 1].into_iter().enumerate() {
        let version = write_through(&instances[writer], &token, &format!("down {round}")).await;
        converge(
            &instances,
            version,
            &format!("redis down: update through instance {writer}"),
        )
        .await;
    }
    let version = plain_sql_write(&db).await;
    converge(&instances, version, "redis down: plain SQL").await;
    redis_shows(&instances, false).await;

    redis.restart().await;
    redis_shows(&instances, true).await;
    let before = redis_messages_received(&instances[2]).await;
    let version = write_through(&instances[0], &token, "back").await;
    converge(&instances, version, "redis back: update through A").await;
    let start = Instant::now();
    while redis_messages_received(&instances[2]).await <= before {
        assert!(
            start.elapsed() < CONVERGE_WITHIN,
            "instance 2 never received A's write over the restarted Redis"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for instance in &instances {
        let (_, body) = health(instance).await;
        eprintln!(
            "{}: redis {}, replays {}, full flushes {}, max lag {} ms",
            instance.base,
            body["feed"]["redis"],
            body["feed"]["replays"],
            body["feed"]["full_flushes"],
            body["feed"]["max_lag_ms"]
        );
    }
}

#[test]
fn a_redis_url_that_does_not_parse_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("rulebook.db");
    let output = binary()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            database.to_str().unwrap(),
            "--redis-url",
            "localhost:6379",
        ])
        .env_remove("RULEBOOK_REDIS_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("redis url `localhost:6379` cannot be used") && stderr.contains("redis://"),
        "{stderr}"
    );
    assert!(!database.exists(), "nothing was started or created");
}
