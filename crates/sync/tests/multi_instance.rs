//! Several Rulebook instances in one process (each its own store, pool, registry and feed) on
//! one fresh PostgreSQL database, with the machine's Redis or a private `redis-server`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rulebook_store::{ChangeOp, Cursor, FeedRead, StoreError};
use rulebook_sync::{FeedConfig, PruneConfig, RedisConfig, Released};
use rulebook_testkit::cluster::{
    self as common, bump, converge, rule, Event, History, Instance, TENANT,
};
use rulebook_testkit::{eventually, shared_redis_url, unique_channel, PrivateRedis, TestDb};
use sqlx::Connection;

/// Generous: convergence is expected in milliseconds, but CI machines are small and shared.
const CONVERGE: Duration = Duration::from_secs(15);

fn listen_only() -> FeedConfig {
    FeedConfig {
        poll_interval: Duration::from_secs(1),
        prune: None,
        ..FeedConfig::default()
    }
}

/// A poll so slow that within a test only the wake-ups (and replays) can deliver changes.
fn no_poll(mut config: FeedConfig) -> FeedConfig {
    config.poll_interval = Duration::from_secs(3600);
    config.stale_after = Duration::from_secs(7200);
    config
}

async fn start_three(db: &TestDb, configs: [FeedConfig; 3]) -> Vec<Instance> {
    let mut instances = Vec::new();
    for (name, config) in ["a", "b", "c"].into_iter().zip(configs) {
        // One after the other: the first one migrates the fresh database.
        instances.push(Instance::start(name, &db.url, config).await);
    }
    for instance in &instances {
        instance.wait_ready(true).await;
    }
    instances
}

async fn a_write_reaches_every_instance(transport: &str, configs: [FeedConfig; 3], db: TestDb) {
    let instances = start_three(&db, configs).await;
    let [a, b, c] = [&instances[0], &instances[1], &instances[2]];
    a.store
        .create_rule(TENANT, rule("R1", "checkout"), &common::author())
        .await
        .unwrap();
    converge(&[a, b, c], "checkout", "R1", 1).await;

    // Each instance has the ruleset cached at v1; a write through A must reach B and C.
    let v2 = bump(&a.store, "R1", false).await;
    assert_eq!(
        a.version("checkout", "R1").await,
        Some(v2),
        "the writer reads its own write"
    );
    let took = converge(&[b, c], "checkout", "R1", v2).await;

    // A change typed into psql reaches all three.
    db.plain_sql("UPDATE rules SET priority = 9 WHERE tenant = 'default' AND id = 'R1'")
        .await;
    let took_sql = converge(&[a, b, c], "checkout", "R1", v2 + 1).await;

    for instance in [b, c] {
        let status = instance.feed.status();
        assert_eq!(status.transport, transport);
        assert!(status.changes_applied >= 2, "{status:?}");
        assert!(status.ready && status.healthy, "{status:?}");
        assert_eq!(status.full_flushes, 0);
    }
    eprintln!(
        "{transport}: write through A visible on B and C after {took:?}, plain SQL on all after {took_sql:?}; feed lags (ms) b={:?} c={:?}",
        b.feed.status().max_lag_ms,
        c.feed.status().max_lag_ms
    );
    for instance in instances {
        instance.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_a_and_one_typed_into_psql_reach_b_and_c_over_notify() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let config = no_poll(listen_only());
    a_write_reaches_every_instance("listen+poll", [config.clone(), config.clone(), config], db)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_a_reaches_b_and_c_over_redis_and_psql_over_polling() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let Some(url) = shared_redis_url().await else {
        return;
    };
    // No LISTEN: a write through A can only travel by Redis; a change typed into psql
    // publishes nothing and travels by the poll.
    let config = FeedConfig {
        listen: false,
        redis: Some(RedisConfig::new(url).with_channel(unique_channel())),
        poll_interval: Duration::from_millis(200),
        prune: None,
        ..FeedConfig::default()
    };
    a_write_reaches_every_instance("redis+poll", [config.clone(), config.clone(), config], db)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_reaches_every_instance_by_polling_alone() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let config = FeedConfig {
        listen: false,
        poll_interval: Duration::from_millis(100),
        prune: None,
        ..FeedConfig::default()
    };
    a_write_reaches_every_instance("poll", [config.clone(), config.clone(), config], db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_two_instances_on_one_file_converge_by_polling() {
    let db = TestDb::sqlite();
    let config = FeedConfig {
        poll_interval: Duration::from_millis(50),
        prune: None,
        ..FeedConfig::default()
    };
    let a = Instance::start("a", &db.url, config.clone()).await;
    let b = Instance::start("b", &db.url, config).await;
    a.wait_ready(true).await;
    b.wait_ready(true).await;
    assert_eq!(b.feed.status().transport, "poll");
    assert!(b.feed.status().listen.is_none());
    a.store
        .create_rule(TENANT, rule("S1", "checkout"), &common::author())
        .await
        .unwrap();
    converge(&[&a, &b], "checkout", "S1", 1).await;
    let v2 = bump(&a.store, "S1", false).await;
    converge(&[&b], "checkout", "S1", v2).await;
    db.plain_sql("UPDATE rules SET priority = 3 WHERE id = 'S1'")
        .await;
    converge(&[&a, &b], "checkout", "S1", v2 + 1).await;
    a.stop().await;
    b.stop().await;
}

/// How changes may travel in [`every_change_reaches_every_instance_exactly_once`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Transport {
    Listen,
    Redis,
    Poll,
}

/// A writer on A creates a rule on each of `RULES` entry points of its own, B and C cache every
/// one, then A updates every rule, twice over. Each rule's entry point is its own and each change
/// meets a cached entry, so no change repairs another that was lost; with polling off, a lost
/// wake-up leaves its entry point stale and the convergence fails. Every change must be applied on B and C exactly once, and (for the
/// transports that read the log) read exactly once.
async fn every_change_reaches_every_instance_exactly_once(transport: Transport) {
    const RULES: usize = 12;
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let config = match transport {
        Transport::Listen => no_poll(listen_only()),
        Transport::Redis => {
            let Some(url) = shared_redis_url().await else {
                return;
            };
            FeedConfig {
                listen: false,
                redis: Some(RedisConfig::new(url).with_channel(unique_channel())),
                ..no_poll(listen_only())
            }
        }
        Transport::Poll => FeedConfig {
            listen: false,
            poll_interval: Duration::from_millis(50),
            prune: None,
            ..FeedConfig::default()
        },
    };
    let instances = start_three(&db, [config.clone(), config.clone(), config]).await;
    let [a, b, c] = [&instances[0], &instances[1], &instances[2]];
    let ids: Vec<String> = (0..RULES).map(|i| format!("L{i}")).collect();
    let ep_of = |id: &str| format!("ep_{}", id.to_lowercase());
    for id in &ids {
        a.store
            .create_rule(TENANT, rule(id, &ep_of(id)), &common::author())
            .await
            .unwrap();
    }
    // Every entry point cached on B and C, every create applied.
    for id in &ids {
        converge(&[b, c], &ep_of(id), id, 1).await;
    }
    for instance in [b, c] {
        eventually("the creates to be applied", CONVERGE, || async {
            instance.feed.changes_applied() == RULES as u64
        })
        .await;
    }
    let before = [b, c].map(|i| i.feed.status());

    // Each round changes every rule once and then reads every one on B and C, which caches it
    // again: so each change meets a cached entry that only that change can invalidate.
    let mut written = 0u64;
    for round in 0..2 {
        let mut versions = Vec::new();
        for id in &ids {
            versions.push((id, bump(&a.store, id, round % 2 == 0).await));
        }
        written += versions.len() as u64;
        for (id, version) in versions {
            converge(&[b, c], &ep_of(id), id, version).await;
        }
    }
    for (instance, before) in [b, c].into_iter().zip(before) {
        // Convergence above proves every change arrived; the counters prove none arrived twice.
        eventually("every change to be counted", CONVERGE, || async {
            instance.feed.changes_applied() >= before.changes_applied + written
        })
        .await;
        if transport != Transport::Redis {
            instance.caught_up().await;
        }
        let status = instance.feed.status();
        assert_eq!(
            status.changes_applied - before.changes_applied,
            written,
            "{transport:?}: each of the {written} changes applied exactly once: {status:?}"
        );
        match transport {
            Transport::Redis => {
                let (now, then) = (status.redis.clone().unwrap(), before.redis.clone().unwrap());
                assert_eq!(
                    now.changes_applied - then.changes_applied,
                    written,
                    "every change came by Redis: {status:?}"
                );
            }
            Transport::Listen | Transport::Poll => assert_eq!(
                status.changes_read - before.changes_read,
                written,
                "{transport:?}: each change read from the log exactly once: {status:?}"
            ),
        }
        assert_eq!(status.full_flushes, 0, "{status:?}");
    }
    for instance in instances {
        instance.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_notify_without_polling_every_change_reaches_every_instance_exactly_once() {
    every_change_reaches_every_instance_exactly_once(Transport::Listen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_redis_without_notify_or_polling_every_change_reaches_every_instance_exactly_once() {
    every_change_reaches_every_instance_exactly_once(Transport::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_polling_alone_every_change_reaches_every_instance_exactly_once() {
    every_change_reaches_every_instance_exactly_once(Transport::Poll).await;
}

/// A rule moved from one entry point to another leaves the first and joins the second on the
/// other instances, and a deleted rule leaves its entry point, with both entry points cached
/// there beforehand and no poll to repair a lost wake-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_between_entry_points_and_a_delete_reach_the_other_instances() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let config = no_poll(listen_only());
    let instances = start_three(&db, [config.clone(), config.clone(), config]).await;
    let [a, b, c] = [&instances[0], &instances[1], &instances[2]];
    let author = common::author();
    for (id, ep) in [("M1", "from_here"), ("M2", "to_there"), ("D1", "from_here")] {
        a.store
            .create_rule(TENANT, rule(id, ep), &author)
            .await
            .unwrap();
    }
    converge(&[b, c], "from_here", "M1", 1).await;
    converge(&[b, c], "from_here", "D1", 1).await;
    converge(&[b, c], "to_there", "M2", 1).await;
    for instance in [b, c] {
        assert_eq!(instance.version("to_there", "M1").await, None);
    }

    let mut moved = a.store.get_rule(TENANT, "M1").await.unwrap();
    moved.entry_point = Some(common::ep("to_there"));
    let moved = a
        .store
        .update_rule(TENANT, moved, 1, &author)
        .await
        .unwrap();
    a.store
        .delete_rule(TENANT, "D1", Some(1), &author)
        .await
        .unwrap();
    converge(&[b, c], "to_there", "M1", moved.rule.version).await;
    for instance in [b, c] {
        eventually(
            &format!("M1 and D1 to leave from_here on {}", instance.name),
            CONVERGE,
            || async {
                instance.version("from_here", "M1").await.is_none()
                    && instance.version("from_here", "D1").await.is_none()
            },
        )
        .await;
        assert_eq!(instance.version("to_there", "M2").await, Some(1));
        assert_eq!(instance.feed.status().full_flushes, 0);
    }
    for instance in instances {
        instance.stop().await;
    }
}

/// A write through A reaches B in its NOTIFY's payload: B invalidates the written tenant's entry,
/// and only it, while B's reads of the change log are held up (a lock on the pruning mark, which
/// every read takes first and no write touches), so nothing but the payload can have done it.
/// Once the log can be read again, B reads the row and skips it: the change is applied once,
/// and B reads the new version. If the payload invalidated another tenant's entry instead, that
/// skip would leave B stale, which the last checks catch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_payload_invalidates_its_own_tenant_before_the_log_is_read() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let config = no_poll(listen_only());
    let a = Instance::start("a", &db.url, config.clone()).await;
    let b = Instance::start("b", &db.url, config).await;
    a.wait_ready(true).await;
    b.wait_ready(true).await;
    let author = common::author();
    a.store.create_tenant("other").await.unwrap();
    for tenant in [TENANT, "other"] {
        a.store
            .create_rule(tenant, rule("P", "pay"), &author)
            .await
            .unwrap();
    }
    eventually("B to apply both creates", CONVERGE, || async {
        b.feed.changes_applied() == 2
    })
    .await;
    b.caught_up().await;
    // Both tenants' `pay` cached on B.
    assert_eq!(b.version("pay", "P").await, Some(1));
    b.registry
        .ruleset("other", &common::ep("pay"))
        .await
        .unwrap();
    let other_loads = b.registry.ruleset_loads("other", &common::ep("pay"));
    let before = b.feed.status();
    let pushed = before.listen.clone().unwrap().changes_applied;
    let cached = b.registry.len();

    let mut lock = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    sqlx::query("LOCK TABLE change_log_pruned IN ACCESS EXCLUSIVE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    let version = bump(&a.store, "P", false).await;
    eventually("B to apply the payload", CONVERGE, || async {
        b.feed.status().listen.unwrap().changes_applied == pushed + 1
    })
    .await;
    let during = b.feed.status();
    assert_eq!(
        during.changes_read, before.changes_read,
        "the log cannot be read while the mark is locked: {during:?}"
    );
    assert_eq!(during.changes_applied, before.changes_applied + 1);
    assert_eq!(b.registry.len(), cached - 1, "one entry invalidated");
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();

    b.caught_up().await;
    let after = b.feed.status();
    assert_eq!(after.changes_read, before.changes_read + 1, "{after:?}");
    assert_eq!(
        after.changes_applied,
        before.changes_applied + 1,
        "the log read skips what the payload applied: {after:?}"
    );
    assert_eq!(b.version("pay", "P").await, Some(version));
    b.registry
        .ruleset("other", &common::ep("pay"))
        .await
        .unwrap();
    assert_eq!(
        b.registry.ruleset_loads("other", &common::ep("pay")),
        other_loads,
        "the other tenant's entry was left cached"
    );
    a.stop().await;
    b.stop().await;
}

/// A write whose payload would not fit NOTIFY's 8000 bytes sends none (NOTIFY would refuse it and
/// fail the write): it commits, and the other instance gets its changes from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_too_large_for_a_payload_commits_and_arrives_by_the_log() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let config = no_poll(listen_only());
    let a = Instance::start("a", &db.url, config.clone()).await;
    let b = Instance::start("b", &db.url, config).await;
    a.wait_ready(true).await;
    b.wait_ready(true).await;
    // Fewer rules than a payload may carry, but over 8000 bytes of labels.
    const RULES: usize = 12;
    let labels: Vec<String> = (0..10)
        .map(|i| format!("segment:{i}-{}", "x".repeat(60)))
        .collect();
    let rules: Vec<_> = (0..RULES)
        .map(|i| {
            let mut r = rule(&format!("BIG{i}"), "big");
            r.tags = labels.clone();
            r
        })
        .collect();
    assert!(RULES as i64 <= rulebook_store::PAYLOAD_MAX_CHANGES);
    let label_bytes: usize = labels.iter().map(String::len).sum();
    assert!((RULES * label_bytes) as i64 > rulebook_store::PAYLOAD_MAX_BYTES);
    a.store
        .import_rules(TENANT, rules, &common::author())
        .await
        .unwrap();
    converge(&[&b], "big", &format!("BIG{}", RULES - 1), 1).await;
    b.caught_up().await;
    let status = b.feed.status();
    assert_eq!(status.changes_applied, RULES as u64, "{status:?}");
    assert_eq!(status.changes_read, RULES as u64, "{status:?}");
    assert_eq!(
        status.listen.unwrap().changes_applied,
        0,
        "no payload was sent"
    );
    a.stop().await;
    b.stop().await;
}

/// Writes through `writer` to `rules` (round robin) until `stop`; returns the final versions.
fn keep_writing(
    writer: rulebook_store::Store,
    rules: Vec<String>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(String, i64)>> {
    tokio::spawn(async move {
        let mut last = std::collections::BTreeMap::new();
        let mut n = 0usize;
        while !stop.load(Ordering::SeqCst) {
            let id = &rules[n % rules.len()];
            let version = bump(&writer, id, n % 2 == 0).await;
            last.insert(id.clone(), version);
            n += 1;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        last.into_iter().collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_listen_connections_from_the_database_side_misses_no_change() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    // No poll within the test: what the LISTEN connection missed can only come back through
    // the replay that follows its reconnection.
    let config = no_poll(listen_only());
    let instances = start_three(&db, [config.clone(), config.clone(), config]).await;
    let [a, b, c] = [&instances[0], &instances[1], &instances[2]];
    let ids: Vec<String> = (0..4).map(|i| format!("K{i}")).collect();
    for id in &ids {
        a.store
            .create_rule(TENANT, rule(id, &format!("ep_{id}")), &common::author())
            .await
            .unwrap();
    }
    for id in &ids {
        converge(&[b, c], &format!("ep_{id}"), id, 1).await;
    }
    for instance in [b, c] {
        instance.caught_up().await;
    }
    let read_before = [b, c].map(|i| i.feed.status().changes_read);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_writing(a.store.clone(), ids.clone(), Arc::clone(&stop));
    let mut killed = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        killed += db.terminate_listeners().await;
        // Let them come back before the next round, while the writes go on.
        for instance in &instances {
            eventually("LISTEN to reconnect", CONVERGE, || async {
                instance.feed.status().listen.is_some_and(|l| l.connected)
            })
            .await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let last = writer.await.unwrap();
    assert!(
        killed >= 3,
        "the LISTEN backends were found and killed ({killed})"
    );

    let written: u64 = last.iter().map(|(_, v)| (*v - 1) as u64).sum();
    for (id, version) in &last {
        converge(&[b, c], &format!("ep_{id}"), id, *version).await;
    }
    for (instance, before) in [b, c].into_iter().zip(read_before) {
        instance.caught_up().await;
        let status = instance.feed.status();
        let listen = status.listen.clone().unwrap();
        assert!(listen.reconnects >= 3, "{status:?}");
        assert!(status.replays >= 1, "{status:?}");
        assert_eq!(
            status.changes_read - before,
            written,
            "every one of the {written} changes was read exactly once: {status:?}"
        );
        assert_eq!(status.full_flushes, 0);
    }
    for instance in instances {
        instance.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_instances_converge_and_say_so_and_use_it_again_once_back() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let config = FeedConfig {
        listen: false,
        redis: Some(RedisConfig::new(redis.url()).with_channel(unique_channel())),
        poll_interval: Duration::from_millis(250),
        max_backoff: Duration::from_millis(200),
        prune: None,
        ..FeedConfig::default()
    };
    let instances = start_three(&db, [config.clone(), config.clone(), config]).await;
    let [a, b, c] = [&instances[0], &instances[1], &instances[2]];
    a.store
        .create_rule(TENANT, rule("R1", "checkout"), &common::author())
        .await
        .unwrap();
    converge(&[a, b, c], "checkout", "R1", 1).await;
    for instance in [b, c] {
        eventually("the create to arrive by Redis", CONVERGE, || async {
            instance.feed.status().redis.unwrap().changes_applied >= 1
        })
        .await;
    }

    redis.stop();
    for instance in &instances {
        eventually("the status to show Redis down", CONVERGE, || async {
            !instance.feed.status().redis.unwrap().up
        })
        .await;
    }
    let mut version = 1;
    for i in 0..5 {
        version = bump(&a.store, "R1", i % 2 == 0).await;
    }
    converge(&[b, c], "checkout", "R1", version).await;
    for instance in &instances {
        let status = instance.feed.status();
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["redis"]["up"], false, "{json}");
        assert!(json["redis"]["last_error"].is_string(), "{json}");
        assert!(
            status.ready,
            "PostgreSQL keeps the instance current: {status:?}"
        );
    }
    let by_redis_before = [b, c].map(|i| i.feed.status().redis.unwrap().changes_applied);

    redis.restart().await;
    for instance in &instances {
        eventually("Redis to be picked up again", CONVERGE, || async {
            instance.feed.status().redis.unwrap().up
        })
        .await;
    }
    let version = bump(&a.store, "R1", true).await;
    converge(&[b, c], "checkout", "R1", version).await;
    for (instance, before) in [b, c].into_iter().zip(by_redis_before) {
        eventually("a change to arrive by Redis again", CONVERGE, || async {
            instance.feed.status().redis.unwrap().changes_applied > before
        })
        .await;
        let redis = instance.feed.status().redis.unwrap();
        assert!(redis.reconnects >= 1, "{redis:?}");
    }
    for instance in instances {
        instance.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_writers_committing_out_of_seq_order_are_both_seen_everywhere() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let config = no_poll(listen_only());
    let instances = start_three(&db, [config.clone(), config.clone(), config]).await;
    let [a, b, c] = [&instances[0], &instances[1], &instances[2]];
    for (id, entry_point) in [("X", "ep_x"), ("Y", "ep_y")] {
        a.store
            .create_rule(TENANT, rule(id, entry_point), &common::author())
            .await
            .unwrap();
        converge(&[a, b, c], entry_point, id, 1).await;
    }
    for instance in &instances {
        instance.caught_up().await;
    }
    let read_before: Vec<u64> = instances
        .iter()
        .map(|i| i.feed.status().changes_read)
        .collect();

    let mut released: Vec<_> = instances.iter().map(|i| i.feed.subscribe()).collect();
    let mut first = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut second = sqlx::PgConnection::connect(&db.url).await.unwrap();
    // The first takes the lower seq and stays open; the second takes the higher and commits.
    sqlx::query("BEGIN").execute(&mut first).await.unwrap();
    sqlx::query("UPDATE rules SET priority = 1 WHERE id = 'X'")
        .execute(&mut first)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut second).await.unwrap();
    sqlx::query("UPDATE rules SET priority = 2 WHERE id = 'Y'")
        .execute(&mut second)
        .await
        .unwrap();
    sqlx::query("COMMIT").execute(&mut second).await.unwrap();
    // Every instance reads past Y (whose seq is higher than X's) before X commits.
    converge(&[a, b, c], "ep_y", "Y", 2).await;
    for instance in &instances {
        assert_eq!(instance.version("ep_x", "X").await, Some(1));
    }
    let positions_while_open: Vec<i64> =
        instances.iter().map(|i| i.registry.applied_seq()).collect();
    sqlx::query("COMMIT").execute(&mut first).await.unwrap();
    converge(&[a, b, c], "ep_x", "X", 2).await;
    let seq_of = |id: &'static str| {
        let url = db.url.clone();
        async move {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            let (seq,): (i64,) = sqlx::query_as(
                "SELECT MAX(seq) FROM change_log WHERE rule_id = $1 AND op = 'update'",
            )
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
            seq
        }
    };
    let (seq_x, seq_y) = (seq_of("X").await, seq_of("Y").await);
    assert!(seq_x < seq_y, "X took the lower seq");
    for ((instance, before), stream) in instances
        .iter()
        .zip(&positions_while_open)
        .zip(&mut released)
    {
        assert!(
            *before < seq_x,
            "{}: applied position {before} passed X ({seq_x}) while X was open",
            instance.name
        );
        instance.feed.want(seq_y);
        let reached = instance
            .registry
            .wait_for_position(seq_y, CONVERGE)
            .await
            .unwrap_or_else(|p| panic!("{}: position stayed at {p}", instance.name));
        assert!(reached >= seq_y);
        // Released in seq order, each once, X before Y although Y was read first.
        let mut seqs = Vec::new();
        let mut last_position = 0;
        while last_position < seq_y {
            let message = tokio::time::timeout(CONVERGE, stream.recv())
                .await
                .expect("the release of Y")
                .unwrap();
            match message {
                Released::Changes { changes, position } => {
                    assert!(position > last_position, "positions only grow");
                    last_position = position;
                    for change in changes.iter() {
                        assert!(change.seq <= position, "released above the position");
                        if change.op == ChangeOp::Update {
                            seqs.push((change.seq, change.rule_id.clone()));
                        }
                    }
                }
                Released::Reset { .. } => panic!("{}: nothing was pruned", instance.name),
            }
        }
        assert_eq!(
            seqs,
            vec![(seq_x, "X".to_owned()), (seq_y, "Y".to_owned())],
            "{}: released in seq order, each once",
            instance.name
        );
    }
    for (instance, before) in instances.iter().zip(read_before) {
        instance.caught_up().await;
        assert_eq!(
            instance.feed.status().changes_read - before,
            2,
            "both changes read, each once"
        );
    }
    for instance in instances {
        instance.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_older_than_the_pruned_log_flushes_everything() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    // A prunes everything on a short schedule; B never polls nor listens, so its cursor falls
    // behind what is left.
    let pruning = FeedConfig {
        prune: Some(PruneConfig {
            every: Duration::from_millis(100),
            keep: Duration::ZERO,
        }),
        ..listen_only()
    };
    let behind = FeedConfig {
        listen: false,
        ..no_poll(listen_only())
    };
    let a = Instance::start("a", &db.url, pruning).await;
    let b = Instance::start("b", &db.url, behind).await;
    a.wait_ready(true).await;
    b.wait_ready(true).await;
    a.store
        .create_rule(TENANT, rule("P1", "checkout"), &common::author())
        .await
        .unwrap();
    // B reads only when asked, or again soon while a read left changes above its applied
    // position. A read settles changes only below the cluster's transaction horizon (the
    // commit-safe cursor), which transactions of other databases may hold back for a moment:
    // ask again until B has read the create and its position has passed it, so that B has
    // nothing left to settle and reads nothing more on its own.
    let head = a.store.head_seq().await.unwrap();
    eventually("B to read and settle the create", CONVERGE, || async {
        b.feed.read_now();
        b.feed.status().cursor_seq >= head && b.registry.applied_seq() >= head
    })
    .await;
    converge(&[&b], "checkout", "P1", 1).await;
    let v2 = bump(&a.store, "P1", false).await;
    // Pruning also waits for that horizon.
    eventually(
        "the log to be pruned past B's cursor",
        4 * CONVERGE,
        || async {
            let status = a.feed.status().pruning.unwrap();
            status.rows_pruned >= 2
                && matches!(
                    a.store.read_feed(&Cursor::beginning()).await,
                    Ok(FeedRead::Pruned)
                )
                && a.store.changes_since(&Cursor::beginning()).await
                    == Err(StoreError::CursorPruned)
        },
    )
    .await;
    assert_eq!(
        b.version("checkout", "P1").await,
        Some(1),
        "B has not read the log yet"
    );

    b.feed.read_now();
    converge(&[&b], "checkout", "P1", v2).await;
    let status = b.feed.status();
    assert_eq!(status.full_flushes, 1, "{status:?}");
    assert!(status.ready, "{status:?}");
    let metrics = b.feed.metrics();
    assert_eq!(metrics.full_flushes, 1);

    // After the flush B follows the log again from the current position. A (and its pruning)
    // stops first: pruning that overtook B's cursor again would be a second flush, which is
    // right but not what this step shows.
    a.stop().await;
    let writer = rulebook_store::Store::open(&db.url).await.unwrap();
    let v3 = bump(&writer, "P1", true).await;
    eventually("B to read the update", CONVERGE, || async {
        b.feed.read_now();
        b.version("checkout", "P1").await == Some(v3)
    })
    .await;
    let status = b.feed.status();
    assert_eq!(status.full_flushes, 1, "{status:?}");
    assert!(status.changes_applied >= 2, "{status:?}");
    writer.close().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_the_first_read_and_lapses_while_the_log_cannot_be_read() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let config = FeedConfig {
        poll_interval: Duration::from_millis(50),
        stale_after: Duration::from_millis(300),
        max_backoff: Duration::from_millis(100),
        prune: None,
        ..FeedConfig::default()
    };
    // Open (and migrate), then shut the database's door before the feed starts.
    let store = rulebook_store::Store::open_with(
        &db.url,
        rulebook_store::StoreOptions {
            max_connections: 2,
            acquire_timeout: Duration::from_millis(500),
            migrate: true,
        },
    )
    .await
    .unwrap();
    let registry = rulebook_store::Registry::new(store.clone());
    db.allow_connections(false).await;
    let feed = rulebook_sync::Feed::spawn(registry, config);
    eventually("a failed first read", CONVERGE, || async {
        feed.status().last_error.is_some()
    })
    .await;
    let status = feed.status();
    assert!(!status.started && !status.ready, "{status:?}");
    assert!(!feed.metrics().ready);

    db.allow_connections(true).await;
    eventually("readiness once the database answers", CONVERGE, || async {
        feed.is_ready()
    })
    .await;
    let status = feed.status();
    assert!(
        status.started && status.healthy && status.last_error.is_none(),
        "{status:?}"
    );

    db.allow_connections(false).await;
    eventually("readiness to lapse", CONVERGE, || async {
        !feed.is_ready()
    })
    .await;
    let status = feed.status();
    assert!(!status.healthy, "{status:?}");
    assert!(!status.connected, "{status:?}");
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["ready"], false);

    db.allow_connections(true).await;
    eventually("readiness once the database is back", CONVERGE, || async {
        feed.is_ready()
    })
    .await;
    eventually("LISTEN back", CONVERGE, || async {
        feed.status().connected
    })
    .await;
    feed.stop().await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_soak_no_read_is_older_than_the_last_acknowledged_write_plus_the_bound() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let redis = shared_redis_url().await;
    let secs: u64 = std::env::var("RULEBOOK_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let poll = Duration::from_millis(500);
    // Three instances, three ways: LISTEN; Redis and LISTEN; polling alone.
    let listen = FeedConfig {
        poll_interval: poll,
        prune: None,
        ..FeedConfig::default()
    };
    let with_redis = FeedConfig {
        redis: redis.map(|url| RedisConfig::new(url).with_channel(unique_channel())),
        ..listen.clone()
    };
    let polling = FeedConfig {
        listen: false,
        ..listen.clone()
    };
    let instances = Arc::new(start_three(&db, [listen, with_redis, polling]).await);
    // Each rule on an entry point of its own, and enough of them that one rule is written about
    // once a second: a lost change is not repaired by the next write of another rule, nor soon
    // by the next write of its own, and the checker sees the stale reads in between.
    let ids: Vec<String> = (0..48).map(|i| format!("S{i}")).collect();
    for id in &ids {
        instances[0]
            .store
            .create_rule(TENANT, rule(id, &soak_ep(id)), &common::author())
            .await
            .unwrap();
    }
    for id in &ids {
        converge(
            &[&instances[0], &instances[1], &instances[2]],
            &soak_ep(id),
            id,
            1,
        )
        .await;
    }

    // The stated bound, from the README: stale for at most about one poll interval. The margin
    // (as long again) covers the read itself and scheduling on a small machine shared with
    // builds; a dropped change is caught by the final reads below whatever the margin.
    let bound = poll + STALENESS_MARGIN;
    let history = Arc::new(History::default());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..3u64 {
        let (instances, history, ids) = (Arc::clone(&instances), Arc::clone(&history), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut seed = w;
            while Instant::now() < deadline {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let at = (seed >> 33) as usize % 3;
                let id = &ids[(seed >> 40) as usize % ids.len()];
                let version = bump(&instances[at].store, id, seed & 1 == 0).await;
                history.record(Event::Write {
                    instance: at,
                    rule: id.clone(),
                    version,
                    acked: Instant::now(),
                });
                tokio::time::sleep(Duration::from_millis(10 + (seed >> 50) % 30)).await;
            }
        }));
    }
    for r in 0..4u64 {
        let (instances, history, ids) = (Arc::clone(&instances), Arc::clone(&history), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut seed = 1000 + r;
            while Instant::now() < deadline {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let at = (seed >> 33) as usize % 3;
                let id = &ids[(seed >> 40) as usize % ids.len()];
                read_into(&history, &instances[at], at, id).await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Once the writes have stopped and the bound has passed, every instance must show every
    // rule's last version: a lost last change is never repaired by a later one.
    let settled = Instant::now() + bound;
    while Instant::now() < settled {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (at, instance) in instances.iter().enumerate() {
        for id in &ids {
            read_into(&history, instance, at, id).await;
        }
    }
    let report = history.check(bound).unwrap_or_else(|e| panic!("{e}"));
    let lags: Vec<f64> = instances
        .iter()
        .map(|i| i.feed.status().max_lag_ms.unwrap_or(0.0))
        .collect();
    eprintln!(
        "soak {secs} s: {} writes, {} reads, {} stale within the {bound:?} bound, worst staleness {:?}, worst feed lag per instance (ms) {lags:?}",
        report.writes, report.reads, report.stale_reads, report.worst_staleness
    );
    assert!(report.writes > 10 && report.reads > 100, "{report:?}");
    for (instance, lag) in instances.iter().zip(&lags) {
        // Commit to applied, measured by the feed itself: within the poll interval plus margin.
        assert!(
            *lag <= bound.as_secs_f64() * 1000.0,
            "instance {}: feed lag {lag:.1} ms over the {bound:?} bound",
            instance.name
        );
        assert!(instance.feed.status().ready);
    }
    match Arc::try_unwrap(instances) {
        Ok(instances) => {
            for instance in instances {
                instance.stop().await;
            }
        }
        Err(_) => panic!("tasks still hold the instances"),
    }
}

/// How much longer than one poll interval a change may take to reach an instance in the soak.
const STALENESS_MARGIN: Duration = Duration::from_millis(500);

fn soak_ep(id: &str) -> String {
    format!("soak_{}", id.to_lowercase())
}

/// Reads `id` on `instance` (number `at`) and records the read.
async fn read_into(history: &History, instance: &Instance, at: usize, id: &str) {
    let started = Instant::now();
    let version = instance.version(&soak_ep(id), id).await.unwrap();
    history.record(Event::Read {
        instance: at,
        rule: id.to_owned(),
        version,
        started,
    });
}

#[test]
fn the_history_checker_catches_a_read_older_than_the_bound_and_a_lost_own_write() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let write = |instance, version, at| Event::Write {
        instance,
        rule: "R".into(),
        version,
        acked: at,
    };
    let read = |instance, version, at| Event::Read {
        instance,
        rule: "R".into(),
        version,
        started: at,
    };
    let bound = Duration::from_millis(100);

    let fine = History::default();
    fine.record(write(0, 2, ms(0)));
    fine.record(read(1, 1, ms(50))); // stale, but within the bound
    fine.record(read(1, 2, ms(200)));
    fine.record(read(0, 2, ms(1))); // the writer reads its own write
    let report = fine.check(bound).unwrap();
    assert_eq!((report.reads, report.stale_reads), (3, 1));
    assert_eq!(report.worst_staleness, Duration::from_millis(50));

    let too_old = History::default();
    too_old.record(write(0, 2, ms(0)));
    too_old.record(read(1, 1, ms(150)));
    assert!(too_old.check(bound).unwrap_err().contains("returned v1"));

    let own_lost = History::default();
    own_lost.record(write(0, 2, ms(0)));
    own_lost.record(read(0, 1, ms(10)));
    assert!(own_lost.check(bound).is_err());
}
