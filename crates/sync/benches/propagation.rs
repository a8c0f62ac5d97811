//! Propagation lag between two in-process instances on loopback: instance A writes, instance B's
//! feed applies; the lag is the feed's own measure, from the change's time in the change log
//! (the database's clock, taken by the trigger in A's transaction, so A's history row, the read
//! of its change rows and its commit count too) to B applying it: B's cache no longer holds
//! anything older, which the bench checks after each sample by reading the rule on B and finding
//! the version A wrote. Reported as p50/p99/max for NOTIFY, Redis and polling alone.
//!
//! Then, for the NOTIFY row, where the time goes: with a third LISTEN connection of the bench's
//! own, each sample's lag is split at the moment that connection received the write's first
//! notification (the commit and its delivery before, B's work after), and a read of the change
//! log on B (pool acquire, the read's statements, commit) is timed alone.
//!
//! The floor is measured in the same run: a raw NOTIFY→LISTEN round trip on the same database
//! (one connection sends `NOTIFY`, another that LISTENs receives it; timed from before the send
//! to the receipt), before and after the NOTIFY row, and the NOTIFY row's p50 and p99 are printed
//! as ratios of the raw round trip's. A raw `NOTIFY` writes nothing, so its commit waits for no
//! disk; a change does, so a second floor is measured too: a durable write, one row inserted with
//! its `NOTIFY` in one statement and committed (timed from before that statement, as the NOTIFY
//! row is timed from its change row, to the receipt), with the NOTIFY row's ratios to it.
//!
//! `cargo bench -p rulebook-sync --bench propagation` (PostgreSQL from
//! `RULEBOOK_TEST_DATABASE_URL`, Redis from `RULEBOOK_TEST_REDIS_URL`, loopback defaults).
//! `RULEBOOK_BENCH_SAMPLES` sets the samples per push transport (default 500). Without
//! PostgreSQL it says so and exits 0; without Redis it skips that row.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::time::{Duration, Instant};

use rulebook_sync::{FeedConfig, RedisConfig};
use rulebook_testkit::cluster::{bump, rule, Instance, TENANT};
use rulebook_testkit::TestDb;
use sqlx::Connection;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn postgres_answers(url: &str) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(url)).await {
        Ok(Ok(conn)) => {
            conn.close().await.ok();
            Ok(())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer in 5 s".to_owned()),
    }
}

async fn redis_answers(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    matches!(
        tokio::time::timeout(
            Duration::from_secs(2),
            client.get_multiplexed_async_connection()
        )
        .await,
        Ok(Ok(_))
    )
}

/// A floor: `samples` notifications on the database at `url`, each sent after the previous one
/// was received, timed from before the send to the receipt; returns the durations, sorted. Raw:
/// `SELECT pg_notify(...)`, which writes nothing. Durable: one row inserted with its `NOTIFY` in
/// one statement, then committed, which waits for the write-ahead log to reach the disk (the
/// transaction is begun before the clock starts, as a change's is before its change row).
async fn floor(url: &str, samples: usize, durable: bool) -> Vec<Duration> {
    let channel = rulebook_testkit::unique_channel();
    let mut listener = sqlx::postgres::PgListener::connect(url).await.unwrap();
    listener.listen(&channel).await.unwrap();
    let mut sender = sqlx::PgConnection::connect(url).await.unwrap();
    if durable {
        sqlx::query("CREATE TABLE IF NOT EXISTS durable_floor (id BIGSERIAL PRIMARY KEY)")
            .execute(&mut sender)
            .await
            .unwrap();
    }
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples + samples / 10 {
        let started = if durable {
            let mut tx = sender.begin().await.unwrap();
            let started = Instant::now();
            sqlx::query(
                "WITH written AS (INSERT INTO durable_floor DEFAULT VALUES RETURNING id) \
                 SELECT pg_notify($1, id::text) FROM written",
            )
            .bind(&channel)
            .execute(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
            started
        } else {
            let started = Instant::now();
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(&channel)
                .execute(&mut sender)
                .await
                .unwrap();
            started
        };
        tokio::time::timeout(Duration::from_secs(30), listener.recv())
            .await
            .expect("a NOTIFY was not received in 30 s")
            .unwrap();
        // The first tenth warms the connections up.
        if i >= samples / 10 {
            times.push(started.elapsed());
        }
    }
    sender.close().await.ok();
    times.sort();
    times
}

fn report(label: &str, sorted: &[Duration], elapsed: Duration) {
    println!(
        "{label:<34} n={:<4} p50 {:>9}  p99 {:>9}  max {:>9}  ({:.1} s)",
        sorted.len(),
        ms(percentile(sorted, 0.50)),
        ms(percentile(sorted, 0.99)),
        ms(*sorted.last().unwrap_or(&Duration::ZERO)),
        elapsed.as_secs_f64()
    );
}

/// Runs `samples` writes through A, each after B applied the previous one; returns B's lags.
async fn measure(label: &str, config: FeedConfig, samples: usize) -> Option<Vec<Duration>> {
    let db = TestDb::postgres().await?;
    let a = Instance::start("a", &db.url, config.clone()).await;
    let b = Instance::start("b", &db.url, config).await;
    a.wait_ready(true).await;
    b.wait_ready(true).await;
    a.store
        .create_rule(
            TENANT,
            rule("BENCH", "bench"),
            &rulebook_testkit::cluster::author(),
        )
        .await
        .unwrap();
    // Warm up: both have the ruleset cached and B has seen the create.
    rulebook_testkit::cluster::converge(&[&a, &b], "bench", "BENCH", 1).await;
    b.feed.read_now();
    b.caught_up().await;
    let skip = b.feed.recent_lags().len();
    let started = Instant::now();
    for i in 0..samples {
        let before = b.feed.changes_applied();
        bump(&a.store, "BENCH", i % 2 == 0).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while b.feed.changes_applied() == before {
            assert!(
                Instant::now() < deadline,
                "{label}: B did not apply a change in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Keep B's cache warm, as a serving instance's would be; and check that "applied" means
        // what it says: B's next read finds the version A wrote.
        let version = a.version("bench", "BENCH").await;
        assert_eq!(
            b.version("bench", "BENCH").await,
            version,
            "{label}: B applied a change but still reads an older version"
        );
    }
    let elapsed = started.elapsed();
    let mut lags: Vec<Duration> = b.feed.recent_lags().into_iter().skip(skip).collect();
    lags.sort();
    report(label, &lags, elapsed);
    a.stop().await;
    b.stop().await;
    Some(lags)
}

/// Where the NOTIFY row's time goes: `samples` writes through A, each split at the moment a LISTEN
/// connection of the bench's own received the write's first notification; then `samples` reads
/// of the change log on B, timed alone.
async fn breakdown(config: FeedConfig, samples: usize) {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let a = Instance::start("a", &db.url, config.clone()).await;
    let b = Instance::start("b", &db.url, config).await;
    a.wait_ready(true).await;
    b.wait_ready(true).await;
    a.store
        .create_rule(
            TENANT,
            rule("BENCH", "bench"),
            &rulebook_testkit::cluster::author(),
        )
        .await
        .unwrap();
    rulebook_testkit::cluster::converge(&[&a, &b], "bench", "BENCH", 1).await;
    b.feed.read_now();
    b.caught_up().await;
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener
        .listen(rulebook_store::NOTIFY_CHANNEL)
        .await
        .unwrap();
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (mut commit, mut after, mut acked) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..samples {
        let before = b.feed.changes_applied();
        let written = a
            .store
            .set_enabled(
                TENANT,
                "BENCH",
                i % 2 == 0,
                None,
                &rulebook_testkit::cluster::author(),
            )
            .await
            .unwrap();
        let acked_at = chrono::Utc::now();
        // The write's notifications (one, or a wake-up and a payload) come together.
        tokio::time::timeout(Duration::from_secs(30), listener.recv())
            .await
            .expect("no NOTIFY in 30 s")
            .unwrap();
        let notified_at = chrono::Utc::now();
        let deadline = Instant::now() + Duration::from_secs(30);
        while b.feed.changes_applied() == before {
            assert!(
                Instant::now() < deadline,
                "B did not apply a change in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let lag = *b.feed.recent_lags().last().unwrap();
        let (changed_at,): (chrono::DateTime<chrono::Utc>,) =
            sqlx::query_as("SELECT changed_at FROM change_log WHERE seq = $1")
                .bind(written.seq)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        let applied_at = changed_at + chrono::Duration::from_std(lag).unwrap();
        let span = |from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>| {
            (to - from).to_std().unwrap_or(Duration::ZERO)
        };
        acked.push(span(changed_at, acked_at));
        commit.push(span(changed_at, notified_at));
        after.push(span(notified_at, applied_at));
        b.version("bench", "BENCH").await;
        // A write through Rulebook may bring a second notification (its payload): drain it.
        while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(2), listener.recv()).await
        {
        }
    }
    let mut reads = Vec::new();
    let mut cursor = b.store.current_cursor().await.unwrap();
    for _ in 0..samples {
        let started = Instant::now();
        if let rulebook_store::FeedRead::Changes { next, .. } =
            b.store.read_feed(&cursor).await.unwrap()
        {
            cursor = next;
        }
        reads.push(started.elapsed());
    }
    for times in [&mut acked, &mut commit, &mut after, &mut reads] {
        times.sort();
    }
    println!("where the NOTIFY row's time goes ({samples} writes, a listener of the bench's own):");
    report("  change row → A's commit returned", &acked, Duration::ZERO);
    report("  change row → NOTIFY received", &commit, Duration::ZERO);
    report("  NOTIFY received → B applied", &after, Duration::ZERO);
    report("  one read of the log on B, alone", &reads, Duration::ZERO);
    listener.unlisten_all().await.ok();
    a.stop().await;
    b.stop().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pg = std::env::var("RULEBOOK_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| rulebook_testkit::DEFAULT_PG.to_owned());
        if let Err(e) = postgres_answers(&pg).await {
            println!("propagation bench skipped: PostgreSQL at {pg} is not answering ({e}); set RULEBOOK_TEST_DATABASE_URL");
            return;
        }
        let redis = std::env::var("RULEBOOK_TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| rulebook_testkit::DEFAULT_REDIS.to_owned());
        let samples: usize = std::env::var("RULEBOOK_BENCH_SAMPLES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(500);
        let base = FeedConfig {
            poll_interval: Duration::from_secs(3600),
            stale_after: Duration::from_secs(7200),
            prune: None,
            ..FeedConfig::default()
        };
        println!("propagation lag, commit (change-log time) to applied on another instance:");
        let started = Instant::now();
        let mut raw = floor(&pg, samples / 2, false).await;
        let notify = measure("NOTIFY (LISTEN, no poll)", base.clone(), samples)
            .await
            .unwrap_or_default();
        raw.extend(floor(&pg, samples / 2, false).await);
        raw.sort();
        report("raw NOTIFY→LISTEN round trip", &raw, started.elapsed());
        let started = Instant::now();
        let durable = match TestDb::postgres().await {
            Some(db) => floor(&db.url, samples, true).await,
            None => Vec::new(),
        };
        report("durable write + NOTIFY, committed", &durable, started.elapsed());
        for (floor, name) in [(&raw, "raw round trip"), (&durable, "durable write")] {
            if !notify.is_empty() && !floor.is_empty() {
                let ratio =
                    |p| percentile(&notify, p).as_secs_f64() / percentile(floor, p).as_secs_f64();
                println!(
                    "NOTIFY row / {name}: p50 {:.2}x, p99 {:.2}x",
                    ratio(0.50),
                    ratio(0.99)
                );
            }
        }
        breakdown(base.clone(), (samples / 3).max(20)).await;
        if redis_answers(&redis).await {
            let config = FeedConfig {
                listen: false,
                redis: Some(RedisConfig::new(&redis).with_channel(rulebook_testkit::unique_channel())),
                ..base.clone()
            };
            measure("Redis pub/sub (no LISTEN, no poll)", config, samples).await;
        } else {
            println!("Redis row skipped: Redis at {redis} is not answering; set RULEBOOK_TEST_REDIS_URL");
        }
        let poll = Duration::from_millis(250);
        let config = FeedConfig {
            listen: false,
            poll_interval: poll,
            ..base
        };
        measure(
            &format!("poll only (every {} ms)", poll.as_millis()),
            config,
            (samples / 10).max(20),
        )
        .await;
    });
}
