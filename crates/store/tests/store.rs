//! The store's integration suite. Every test runs once against a fresh SQLite file and once
//! against a fresh PostgreSQL database (`rulebook_testkit::on_both_backends!`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rulebook_rules::{Rule, Ruleset, DEFAULT_TENANT};
use rulebook_store::{
    deps, Author, Backend, Change, ChangeKind, ChangeListener, ChangeOp, Cursor, FeedRead,
    Registry, RuleFiles, Store, StoreError, TokenRole,
};
use rulebook_testkit::cluster::{
    ep, message_of as message, message_rule as rule, registry_without_ttl as registry,
};
use rulebook_testkit::{eventually, on_both_backends, TestDb};
use sqlx::Connection;

const T: &str = DEFAULT_TENANT;

on_both_backends!(
    writer_reads_its_own_write,
    rule_lists_and_single_rules_are_cached_and_see_every_write,
    failed_write_leaves_no_change_no_history_and_no_invalidation,
    moved_rule_leaves_the_old_entry_point_and_joins_the_new,
    concurrent_updates_from_one_version_one_wins_and_nothing_is_lost,
    an_update_waiting_on_an_uncommitted_update_of_its_version_is_a_conflict,
    readers_see_a_write_only_after_its_commit_and_always_after_it_returns,
    plain_sql_update_on_another_connection_reaches_the_cache,
    plain_sql_cannot_move_a_version_backwards,
    transactions_committing_out_of_seq_order_are_both_seen_by_the_cursor,
    bulk_import_of_1000_rules_is_one_transaction_invalidating_each_entry_point_once,
    malformed_rule_file_keeps_the_last_good_version_and_is_reported,
    concurrent_first_loads_of_53_rule_files_load_once,
    rule_lifecycle_with_history_and_clear_errors,
    params_updates_are_checked_against_the_schema,
    seeding_is_idempotent_and_the_examples_compile,
    tokens_are_stored_hashed_and_can_be_revoked,
    pruning_keeps_recent_changes_and_tells_an_older_cursor_it_was_pruned,
);

fn versions(ruleset: &Ruleset) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = ruleset
        .rules()
        .map(|(id, version)| (id.to_owned(), version))
        .collect();
    v.sort();
    v
}

/// Records what the store hands its listeners after each commit.
#[derive(Default)]
struct Recorder(Mutex<Vec<Vec<Change>>>);

impl ChangeListener for Recorder {
    fn committed(&self, changes: &[Change]) {
        self.0.lock().push(changes.to_vec());
    }
}

fn record(store: &Store) -> Arc<Recorder> {
    let recorder = Arc::new(Recorder::default());
    let listener: Arc<dyn ChangeListener> = recorder.clone();
    store.subscribe(&listener);
    // The store holds the listener weakly; the recorder keeps it alive through `listener`'s
    // allocation, which `recorder` shares.
    recorder
}

async fn writer_reads_its_own_write(db: &TestDb) {
    let store = db.open().await;
    let registry = registry(&store);
    let alice = Author::new("alice");
    store
        .create_rule(T, rule("R1", "checkout", "v1"), &alice)
        .await
        .unwrap();
    let before = registry.ruleset(T, &ep("checkout")).await.unwrap();
    assert_eq!(versions(&before), vec![("R1".to_owned(), 1)]);

    let mut next = store.get_rule(T, "R1").await.unwrap();
    next.actions = rule("R1", "checkout", "v2").actions;
    let written = store
        .update_rule(T, next, 1, &alice.clone().with_reason("new wording"))
        .await
        .unwrap();
    assert_eq!(written.rule.version, 2);

    // The very next read, on the writing side, sees the write: no wait, no TTL.
    let after = registry.ruleset(T, &ep("checkout")).await.unwrap();
    assert_eq!(versions(&after), vec![("R1".to_owned(), 2)]);
    assert_eq!(registry.ruleset_loads(T, &ep("checkout")), 2);
    assert_eq!(message(&store.get_rule(T, "R1").await.unwrap()), "v2");

    let history = store.history(T, "R1").await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].kind, ChangeKind::Update);
    assert_eq!(history[1].changed_by, "alice");
    assert_eq!(history[1].reason.as_deref(), Some("new wording"));
    assert_eq!(message(&history[0].rule), "v1");
    assert_eq!(message(&history[1].rule), "v2");
}

/// The tenant's rule list and one rule are registry items: a second read is a hit, a write (on
/// any rule for the list, on that rule for the rule) is seen by the very next read, and a rule
/// that does not exist is an error that is not cached.
async fn rule_lists_and_single_rules_are_cached_and_see_every_write(db: &TestDb) {
    let store = db.open().await;
    let registry = registry(&store);
    let alice = Author::new("alice");
    for id in ["R1", "R2"] {
        store
            .create_rule(T, rule(id, "checkout", "v1"), &alice)
            .await
            .unwrap();
    }
    let ids = |rules: &[Rule]| {
        rules
            .iter()
            .map(|r| (r.id.clone(), r.version))
            .collect::<Vec<_>>()
    };
    let list = registry.rules(T).await.unwrap();
    assert_eq!(ids(&list), [("R1".to_owned(), 1), ("R2".to_owned(), 1)]);
    assert_eq!(registry.rule(T, "R1").await.unwrap().version, 1);
    let hits = registry.cache_stats().hits;
    assert!(
        Arc::ptr_eq(&list, &registry.rules(T).await.unwrap()),
        "the list is cached"
    );
    registry.rule(T, "R1").await.unwrap();
    assert_eq!(registry.cache_stats().hits - hits, 2);

    store
        .set_enabled(T, "R2", false, Some(1), &alice)
        .await
        .unwrap();
    let list = registry.rules(T).await.unwrap();
    assert_eq!(ids(&list), [("R1".to_owned(), 1), ("R2".to_owned(), 2)]);
    let r1 = registry.rule(T, "R1").await.unwrap();
    assert_eq!(r1.version, 1);
    store
        .set_enabled(T, "R1", false, Some(1), &alice)
        .await
        .unwrap();
    let r1 = registry.rule(T, "R1").await.unwrap();
    assert_eq!((r1.version, r1.enabled), (2, false));

    let misses = registry.cache_stats().misses;
    for _ in 0..2 {
        let missing = registry.rule(T, "NOPE").await.unwrap_err();
        assert!(
            matches!(missing, StoreError::NotFound { .. }),
            "{missing:?}"
        );
    }
    assert_eq!(
        registry.cache_stats().misses - misses,
        2,
        "a missing rule is not cached"
    );
}

async fn failed_write_leaves_no_change_no_history_and_no_invalidation(db: &TestDb) {
    let store = db.open().await;
    let registry = registry(&store);
    let recorder = record(&store);
    let bob = Author::new("bob");
    store
        .create_rule(T, rule("R1", "checkout", "v1"), &bob)
        .await
        .unwrap();
    let cached = registry.ruleset(T, &ep("checkout")).await.unwrap();
    let head = store.head_seq().await.unwrap();
    let stats = registry.cache_stats();
    let commits = recorder.0.lock().len();

    // The failure comes after the rule row, the history row and the change-log row are written.
    let mut next = store.get_rule(T, "R1").await.unwrap();
    next.actions = rule("R1", "checkout", "v2").actions;
    next.entry_point = Some(ep("cart"));
    store.fail_next_write();
    let err = store.update_rule(T, next, 1, &bob).await.unwrap_err();
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");

    store.fail_next_write();
    let err = store
        .create_rule(T, rule("R2", "checkout", "new"), &bob)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");

    let stored = store.get_rule(T, "R1").await.unwrap();
    assert_eq!((stored.version, message(&stored)), (1, "v1".to_owned()));
    assert_eq!(stored.entry_point, Some(ep("checkout")));
    assert_eq!(store.history(T, "R1").await.unwrap().len(), 1);
    assert!(matches!(
        store.get_rule(T, "R2").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.history(T, "R2").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.head_seq().await.unwrap(), head, "no change-log row");
    assert_eq!(recorder.0.lock().len(), commits, "nothing handed on");
    let after = registry.cache_stats();
    assert_eq!(after.invalidations_tag, stats.invalidations_tag);
    assert_eq!(after.invalidated_entries, stats.invalidated_entries);
    let again = registry.ruleset(T, &ep("checkout")).await.unwrap();
    assert!(Arc::ptr_eq(&cached, &again), "the cached ruleset survived");
    assert_eq!(registry.ruleset_loads(T, &ep("checkout")), 1);

    // And the store is fine afterwards: the fault fires once.
    let mut next = store.get_rule(T, "R1").await.unwrap();
    next.actions = rule("R1", "checkout", "v2").actions;
    store.update_rule(T, next, 1, &bob).await.unwrap();
    let fresh = registry.ruleset(T, &ep("checkout")).await.unwrap();
    assert_eq!(versions(&fresh), vec![("R1".to_owned(), 2)]);
}

async fn moved_rule_leaves_the_old_entry_point_and_joins_the_new(db: &TestDb) {
    let store = db.open().await;
    let registry = registry(&store);
    let carol = Author::new("carol");
    store
        .create_rule(T, rule("A1", "checkout", "a"), &carol)
        .await
        .unwrap();
    store
        .create_rule(T, rule("B1", "cart", "b"), &carol)
        .await
        .unwrap();
    assert_eq!(
        versions(&registry.ruleset(T, &ep("checkout")).await.unwrap()),
        vec![("A1".to_owned(), 1)]
    );
    assert_eq!(
        versions(&registry.ruleset(T, &ep("cart")).await.unwrap()),
        vec![("B1".to_owned(), 1)]
    );

    let mut moved = store.get_rule(T, "A1").await.unwrap();
    moved.entry_point = Some(ep("Cart"));
    store.update_rule(T, moved, 1, &carol).await.unwrap();

    assert!(registry
        .ruleset(T, &ep("checkout"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        versions(&registry.ruleset(T, &ep("cart")).await.unwrap()),
        vec![("A1".to_owned(), 2), ("B1".to_owned(), 1)]
    );
    let listed = store.list_rules(T, Some(&ep("cart"))).await.unwrap();
    assert_eq!(listed.len(), 2);
}

async fn concurrent_updates_from_one_version_one_wins_and_nothing_is_lost(db: &TestDb) {
    let store = db.open().await;
    store
        .create_rule(T, rule("R1", "checkout", "x"), &Author::new("setup"))
        .await
        .unwrap();
    for round in 0..5i32 {
        let current = store.get_rule(T, "R1").await.unwrap();
        let v = current.version;
        let mut by_a = current.clone();
        by_a.priority = round + 1;
        let mut by_b = current.clone();
        by_b.description = format!("round {round}");
        let (sa, sb) = (store.clone(), store.clone());
        let a = tokio::spawn(async move { sa.update_rule(T, by_a, v, &Author::new("a")).await });
        let b = tokio::spawn(async move { sb.update_rule(T, by_b, v, &Author::new("b")).await });
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let (winner_is_a, conflict) = match (&a, &b) {
            (Ok(_), Err(e)) => (true, e.clone()),
            (Err(e), Ok(_)) => (false, e.clone()),
            other => panic!("expected exactly one winner, got {other:?}"),
        };
        assert_eq!(
            conflict,
            StoreError::Conflict {
                id: "R1".into(),
                expected_version: v,
                current_version: v + 1
            }
        );
        // The loser reads again and reapplies its change: both changes survive.
        let mut retry = store.get_rule(T, "R1").await.unwrap();
        if winner_is_a {
            retry.description = format!("round {round}");
        } else {
            retry.priority = round + 1;
        }
        store
            .update_rule(T, retry, v + 1, &Author::new("retry"))
            .await
            .unwrap();
        let last = store.get_rule(T, "R1").await.unwrap();
        assert_eq!(last.version, v + 2);
        assert_eq!(last.priority, round + 1);
        assert_eq!(last.description, format!("round {round}"));
    }
    let history = store.history(T, "R1").await.unwrap();
    let numbers: Vec<i64> = history.iter().map(|h| h.version).collect();
    assert_eq!(
        numbers,
        (1..=11).collect::<Vec<_>>(),
        "one entry per version"
    );
}

/// How long a test waits for an event before it fails.
const EVENT_DEADLINE: Duration = Duration::from_secs(30);

/// Two updates of one rule from the same version, the second waiting for the row while the first
/// is written but not committed (held at the store's pause point): once the first commits, the
/// second is a conflict naming the new version. On PostgreSQL the second has read the old version
/// and is blocked inside its `UPDATE ... WHERE version = v`, so this reaches the conflict found at
/// write time, not the one found when reading; on SQLite the second waits for the write lock.
async fn an_update_waiting_on_an_uncommitted_update_of_its_version_is_a_conflict(db: &TestDb) {
    let store = db.open().await;
    store
        .create_rule(T, rule("R1", "checkout", "x"), &Author::new("setup"))
        .await
        .unwrap();
    let mut pause = store.pause_next_write();
    let first = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .set_enabled(T, "R1", false, Some(1), &Author::new("a"))
                .await
        })
    };
    pause.reached(EVENT_DEADLINE).await;
    let mut next = store.get_rule(T, "R1").await.unwrap();
    assert_eq!(next.version, 1, "the uncommitted write is not visible");
    next.description = "by b".into();
    let second = {
        let store = store.clone();
        tokio::spawn(async move { store.update_rule(T, next, 1, &Author::new("b")).await })
    };
    if db.backend == Backend::Postgres {
        // The second update is blocked on the row lock the first holds.
        let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let deadline = Instant::now() + EVENT_DEADLINE;
        loop {
            let (waiting,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND query LIKE '%UPDATE rules%'",
            )
            .fetch_one(&mut admin)
            .await
            .unwrap();
            if waiting == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the second update never waited for the row lock"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        admin.close().await.ok();
    }
    pause.resume();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.rule.version, 2);
    assert_eq!(
        second.await.unwrap().unwrap_err(),
        StoreError::Conflict {
            id: "R1".into(),
            expected_version: 1,
            current_version: 2
        }
    );
    let stored = store.get_rule(T, "R1").await.unwrap();
    assert_eq!((stored.version, stored.enabled), (2, false));
    assert_eq!(stored.description, "", "the loser wrote nothing");
    assert_eq!(store.history(T, "R1").await.unwrap().len(), 2);
}

/// Phases of the write in `readers_see_a_write_only_after_its_commit_and_always_after_it_returns`.
const BEFORE: u8 = 0;
const PAUSED: u8 = 1;
const COMMITTING: u8 = 2;
const RETURNED: u8 = 3;
const PHASES: [&str; 4] = [
    "before the write",
    "while the write was paused before its commit",
    "while the write committed",
    "after the write returned",
];

/// Readers hammer an entry point while a write of one of its rules is held between its writes and
/// its commit (the store's pause point), then commits. Every read is checked against the phase it
/// started and ended in: a read that ended before the commit began returns the old version, and
/// a read that started after the write returned returns the new one. If the store handed the
/// change to the registry before the commit, readers would reload the old rows during the pause
/// and keep them cached after the commit (the registry skips its own changes when the feed brings
/// them back, so until the TTL).
async fn readers_see_a_write_only_after_its_commit_and_always_after_it_returns(db: &TestDb) {
    const READERS: usize = 4;
    const READS_PER_PHASE: usize = 200;
    let store = db.open().await;
    let registry = registry(&store);
    store
        .create_rule(T, rule("R1", "hot", "v1"), &Author::new("setup"))
        .await
        .unwrap();
    let version = |registry: Registry| async move {
        let ruleset = registry.ruleset(T, &ep("hot")).await.unwrap();
        let found = ruleset.rules().find(|(id, _)| *id == "R1").map(|(_, v)| v);
        found.unwrap()
    };
    assert_eq!(version(registry.clone()).await, 1);

    let phase = Arc::new(AtomicU8::new(BEFORE));
    let stop = Arc::new(AtomicBool::new(false));
    // Reads that started and ended in each phase.
    let within: Arc<[AtomicUsize; 4]> = Arc::new(Default::default());
    let violations = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (registry, phase, stop) = (registry.clone(), phase.clone(), stop.clone());
            let (within, violations) = (within.clone(), violations.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let started = phase.load(Ordering::SeqCst);
                    let got = version(registry.clone()).await;
                    let ended = phase.load(Ordering::SeqCst);
                    let wrong = (ended <= PAUSED && got != 1) || (started == RETURNED && got != 2);
                    if wrong {
                        let mut violations = violations.lock();
                        if violations.len() < 10 {
                            violations.push(format!(
                                "a read that started {} and ended {} returned v{got}",
                                PHASES[usize::from(started)],
                                PHASES[usize::from(ended)]
                            ));
                        }
                    }
                    if started == ended {
                        within[usize::from(started)].fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();

    let mut pause = store.pause_next_write();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .set_enabled(T, "R1", false, Some(1), &Author::new("w"))
                .await
        })
    };
    pause.reached(EVENT_DEADLINE).await;
    phase.store(PAUSED, Ordering::SeqCst);
    let read_while = |p: u8| {
        let within = within.clone();
        move || {
            let within = within.clone();
            async move { within[usize::from(p)].load(Ordering::SeqCst) >= READS_PER_PHASE }
        }
    };
    eventually(
        "reads while the write is paused",
        EVENT_DEADLINE,
        read_while(PAUSED),
    )
    .await;
    phase.store(COMMITTING, Ordering::SeqCst);
    pause.resume();
    assert_eq!(writer.await.unwrap().unwrap().rule.version, 2);
    phase.store(RETURNED, Ordering::SeqCst);
    eventually(
        "reads after the write returned",
        EVENT_DEADLINE,
        read_while(RETURNED),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.await.unwrap();
    }
    let violations = violations.lock().clone();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    assert_eq!(
        registry.ruleset_loads(T, &ep("hot")),
        2,
        "one load before the write, one after its commit"
    );
}

async fn plain_sql_update_on_another_connection_reaches_the_cache(db: &TestDb) {
    let store = db.open().await;
    let registry = registry(&store);
    store
        .create_rule(T, rule("R1", "checkout", "x"), &Author::new("setup"))
        .await
        .unwrap();
    let cursor = store.current_cursor().await.unwrap();
    let mut wake_ups = store.listen_for_changes().await.unwrap();
    assert_eq!(wake_ups.is_some(), db.backend == Backend::Postgres);
    let cached = registry.ruleset(T, &ep("checkout")).await.unwrap();
    assert_eq!(versions(&cached), vec![("R1".to_owned(), 1)]);

    // What a person would type into sqlite3 or psql; the trigger logs it and bumps the version.
    db.plain_sql(
        "UPDATE rules SET enabled = false, priority = 7 WHERE tenant = 'default' AND id = 'R1'",
    )
    .await;

    // On PostgreSQL the trigger's NOTIFY wakes a listener; a write not made through a store
    // sends no payload, so the wake-up carries nothing.
    if let Some(wake_ups) = wake_ups.as_mut() {
        let notice = tokio::time::timeout(Duration::from_secs(10), wake_ups.next())
            .await
            .expect("the trigger's NOTIFY arrives")
            .unwrap();
        assert_eq!(notice, rulebook_store::Notice::Wake);
    }
    // The store did not write it, so the cache still has the old version until the feed says.
    assert_eq!(
        versions(&registry.ruleset(T, &ep("checkout")).await.unwrap()),
        vec![("R1".to_owned(), 1)]
    );
    let FeedRead::Changes { changes, next } = store.read_feed(&cursor).await.unwrap() else {
        panic!("nothing was pruned");
    };
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].rule_id, "R1");
    assert_eq!(changes[0].op, ChangeOp::Update);
    assert!(
        registry.apply_feed(&changes).tags > 0,
        "the change touches cached tags"
    );
    assert_eq!(
        registry.applied_seq(),
        0,
        "applying changes alone does not move the position"
    );
    let next = read_until_position(&store, next, changes[0].seq).await;
    registry.advance_position(next.position());
    assert!(registry.applied_seq() >= changes[0].seq);
    registry.advance_position(0);
    assert_eq!(
        registry.applied_seq(),
        next.position(),
        "it never goes back"
    );
    assert_eq!(
        versions(&registry.ruleset(T, &ep("checkout")).await.unwrap()),
        vec![("R1".to_owned(), 2)]
    );
    let stored = store.get_rule(T, "R1").await.unwrap();
    assert!(!stored.enabled);
    assert_eq!(stored.priority, 7);
    // Read from where this read ended, the change is not handed out twice.
    let FeedRead::Changes { changes, .. } = store.read_feed(&next).await.unwrap() else {
        panic!("nothing was pruned");
    };
    assert!(changes.is_empty(), "{changes:?}");
}

/// Regression: a plain-SQL writer could set a rule's version backwards (`SET version = 1` on a rule
/// at version 3), after which an `If-Match` with the old version was accepted again.
async fn plain_sql_cannot_move_a_version_backwards(db: &TestDb) {
    let store = db.open().await;
    let author = Author::new("setup");
    let created = store
        .create_rule(T, rule("R1", "checkout", "x"), &author)
        .await
        .unwrap()
        .rule;
    let v2 = store
        .update_rule(T, created.clone(), 1, &author)
        .await
        .unwrap();
    let v3 = store.update_rule(T, v2.rule, 2, &author).await.unwrap();
    assert_eq!(v3.rule.version, 3);

    for backwards in [1, 2] {
        let sql = format!(
            "UPDATE rules SET version = {backwards} WHERE tenant = 'default' AND id = 'R1'"
        );
        let refused = match db.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
                sqlx::query(&sql).execute(&mut conn).await.unwrap_err()
            }
            _ => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::query(&sql).execute(&mut conn).await.unwrap_err()
            }
        };
        let message = refused.to_string();
        assert!(
            message.contains("cannot go backwards") && message.contains("leave `version` out"),
            "the refusal names the fix: {message}"
        );
    }
    assert_eq!(store.get_rule(T, "R1").await.unwrap().version, 3);
    let stale = store.update_rule(T, created, 1, &author).await.unwrap_err();
    assert!(
        matches!(stale, StoreError::Conflict { .. }),
        "an If-Match of the old version is still a conflict: {stale:?}"
    );

    // Forward is allowed, and so is leaving the version out (the trigger bumps it).
    db.plain_sql("UPDATE rules SET version = 10 WHERE tenant = 'default' AND id = 'R1'")
        .await;
    db.plain_sql("UPDATE rules SET priority = 3 WHERE tenant = 'default' AND id = 'R1'")
        .await;
    assert_eq!(store.get_rule(T, "R1").await.unwrap().version, 11);
}

async fn transactions_committing_out_of_seq_order_are_both_seen_by_the_cursor(db: &TestDb) {
    let store = db.open().await;
    let setup = Author::new("setup");
    store
        .create_rule(T, rule("X", "checkout", "x"), &setup)
        .await
        .unwrap();
    store
        .create_rule(T, rule("Y", "checkout", "y"), &setup)
        .await
        .unwrap();
    let start = store.current_cursor().await.unwrap();
    let update_x = "UPDATE rules SET priority = 1 WHERE tenant = 'default' AND id = 'X'";
    let update_y = "UPDATE rules SET priority = 2 WHERE tenant = 'default' AND id = 'Y'";

    match db.backend {
        Backend::Postgres => {
            let mut a = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let mut b = sqlx::PgConnection::connect(&db.url).await.unwrap();
            // A takes the lower seq and stays open; B takes the higher seq and commits first.
            sqlx::query("BEGIN").execute(&mut a).await.unwrap();
            sqlx::query(update_x).execute(&mut a).await.unwrap();
            sqlx::query("BEGIN").execute(&mut b).await.unwrap();
            sqlx::query(update_y).execute(&mut b).await.unwrap();
            sqlx::query("COMMIT").execute(&mut b).await.unwrap();

            let (first, cursor) = store.changes_since(&start).await.unwrap();
            assert_eq!(ids(&first), vec!["Y"]);
            // Y is read, but X (lower seq, still open) is not: the position stays below both.
            let mut position_while_open = cursor.position();
            let mut cursor = cursor;
            for _ in 0..3 {
                let (none, next) = store.changes_since(&cursor).await.unwrap();
                assert!(none.is_empty(), "{none:?}");
                position_while_open = position_while_open.max(next.position());
                cursor = next;
            }

            sqlx::query("COMMIT").execute(&mut a).await.unwrap();
            let (second, cursor) = store.changes_since(&cursor).await.unwrap();
            assert_eq!(ids(&second), vec!["X"], "the late commit is not skipped");
            assert!(
                second[0].seq < first[0].seq,
                "X committed after Y with a lower seq: a `seq > last` cursor would skip it"
            );
            assert!(
                position_while_open < second[0].seq,
                "the applied position {position_while_open} passed X ({}) while X could still commit",
                second[0].seq
            );
            // Once X has committed, the position reaches Y (after every transaction that was
            // running anywhere in the cluster when it was read has ended).
            let cursor = read_until_position(&store, cursor, first[0].seq).await;
            let (third, _) = store.changes_since(&cursor).await.unwrap();
            assert!(third.is_empty(), "nothing is returned twice: {third:?}");
        }
        Backend::Sqlite => {
            // On SQLite the situation cannot arise: a writer holds the write lock from its first
            // write to its commit, so a second writer cannot write (and take a seq) until the
            // first has committed. Shown with a second writer that does not wait.
            let url = &db.url;
            let waiting = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .unwrap()
                .busy_timeout(Duration::from_secs(10));
            let impatient = waiting.clone().busy_timeout(Duration::ZERO);
            let mut a = sqlx::SqliteConnection::connect_with(&waiting)
                .await
                .unwrap();
            let mut b = sqlx::SqliteConnection::connect_with(&impatient)
                .await
                .unwrap();
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut a)
                .await
                .unwrap();
            sqlx::query(update_x).execute(&mut a).await.unwrap();
            let refused = sqlx::query(update_y).execute(&mut b).await;
            assert!(refused.is_err(), "a second writer cannot overlap the first");
            let (none, _) = store.changes_since(&start).await.unwrap();
            assert!(none.is_empty(), "uncommitted rows are not read: {none:?}");
            sqlx::query("COMMIT").execute(&mut a).await.unwrap();
            sqlx::query(update_y).execute(&mut b).await.unwrap();
            let (both, cursor) = store.changes_since(&start).await.unwrap();
            assert_eq!(ids(&both), vec!["X", "Y"]);
            assert!(both[0].seq < both[1].seq, "seq order is commit order");
            assert_eq!(cursor.position(), both[1].seq, "the head is the position");
            let (again, _) = store.changes_since(&cursor).await.unwrap();
            assert!(again.is_empty());
        }
    }
}

/// Reads the feed until its applied position reaches `seq` (or fails after 10 s).
async fn read_until_position(store: &Store, mut cursor: Cursor, seq: i64) -> Cursor {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cursor.position() < seq {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the applied position stayed at {} below {seq}",
            cursor.position()
        );
        tokio::task::yield_now().await;
        cursor = store.changes_since(&cursor).await.unwrap().1;
    }
    cursor
}

fn ids(changes: &[Change]) -> Vec<&str> {
    changes.iter().map(|c| c.rule_id.as_str()).collect()
}

async fn bulk_import_of_1000_rules_is_one_transaction_invalidating_each_entry_point_once(
    db: &TestDb,
) {
    let store = db.open().await;
    let registry = registry(&store);
    let recorder = record(&store);
    let importer = Author::new("importer").with_reason("bulk load");
    let entry_points: Vec<String> = (0..10).map(|i| format!("bulk_{i}")).collect();
    for e in &entry_points {
        assert!(registry.ruleset(T, &ep(e)).await.unwrap().is_empty());
    }
    registry.params(T).await.unwrap();
    let rules: Vec<Rule> = (0..1000)
        .map(|i| {
            let mut r = rule(&format!("BULK-{i:04}"), &entry_points[i % 10], "hello");
            r.tags = vec!["batch:bulk".into()];
            r
        })
        .collect();

    // One transaction: a failure at the end leaves none of the 1,000 rules.
    store.fail_next_write();
    assert!(store
        .import_rules(T, rules.clone(), &importer)
        .await
        .is_err());
    assert!(store.list_rules(T, None).await.unwrap().is_empty());
    // Validation runs before anything is written: one bad rule and nothing is written.
    let mut with_bad = rules.clone();
    with_bad[999].id = String::new();
    let err = store
        .import_rules(T, with_bad, &importer)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Validation { .. }), "{err:?}");
    assert!(store.list_rules(T, None).await.unwrap().is_empty());
    assert!(recorder.0.lock().is_empty());

    let before = registry.cache_stats();
    let report = store
        .import_rules(T, rules.clone(), &importer)
        .await
        .unwrap();
    assert_eq!((report.created, report.updated), (1000, 0));
    assert_eq!(report.changes.len(), 1000);

    // One commit handed on, with all 1,000 changes.
    let commits = recorder.0.lock().clone();
    assert_eq!(commits.len(), 1);
    assert_eq!(commits[0].len(), 1000);
    // Each tag once: 1,000 `rule:` tags, 10 entry points, `params`, `rules` and the batch label.
    let touched = deps::tags_for_changes(&report.changes);
    let entry_point_tags: Vec<&String> = touched
        .iter()
        .filter(|t| t.starts_with("default/entry_point:"))
        .collect();
    assert_eq!(entry_point_tags.len(), 10);
    assert_eq!(touched.len(), 1013);
    let after = registry.cache_stats();
    assert_eq!(after.invalidations_tag - before.invalidations_tag, 1013);
    assert_eq!(after.invalidated_entries - before.invalidated_entries, 11);

    for e in &entry_points {
        assert_eq!(registry.ruleset(T, &ep(e)).await.unwrap().len(), 100);
        assert_eq!(registry.ruleset_loads(T, &ep(e)), 2);
    }
    let history = store.history(T, "BULK-0007").await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].kind, ChangeKind::Import);
    assert_eq!(history[0].reason.as_deref(), Some("bulk load"));

    // Importing the same rules again changes nothing and invalidates nothing.
    let again = store.import_rules(T, rules, &importer).await.unwrap();
    assert_eq!(again.unchanged, 1000);
    assert!(again.changes.is_empty());
    assert_eq!(recorder.0.lock().len(), 1);
}

fn write_rule_file(dir: &std::path::Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).unwrap();
}

fn rule_json(id: &str, entry_point: &str, message: &str) -> String {
    serde_json::to_string(&rule(id, entry_point, message)).unwrap()
}

async fn malformed_rule_file_keeps_the_last_good_version_and_is_reported(db: &TestDb) {
    let store = db.open().await;
    let registry = registry(&store);
    let dir = tempfile::tempdir().unwrap();
    write_rule_file(dir.path(), "a.json", &rule_json("F1", "files_a", "good"));
    write_rule_file(
        dir.path(),
        "b.yaml",
        "id: F2\nentry_point: files_b\nactions:\n  - type: display_message\n    message: b\n",
    );
    let files = RuleFiles::new(store.clone(), dir.path(), T);
    let first = files.ensure_loaded().await.unwrap();
    assert_eq!(first.files_imported, 2);
    let a = registry.ruleset(T, &ep("files_a")).await.unwrap();
    let b = registry.ruleset(T, &ep("files_b")).await.unwrap();
    assert_eq!(versions(&a), vec![("F1".to_owned(), 1)]);

    // Broken JSON: reported with its path, and the last good version keeps serving.
    write_rule_file(dir.path(), "a.json", "{ \"id\": \"F1\", ");
    let report = files.scan().await.unwrap();
    assert_eq!(report.problems, 1);
    let status = files.status();
    assert_eq!(status.problems.len(), 1);
    assert!(status.problems[0].path.ends_with("a.json"), "{status:?}");
    assert!(
        status.problems[0].error.contains("not valid JSON"),
        "{status:?}"
    );
    let still = registry.ruleset(T, &ep("files_a")).await.unwrap();
    assert!(Arc::ptr_eq(&a, &still), "nothing was invalidated");
    assert_eq!(message(&store.get_rule(T, "F1").await.unwrap()), "good");

    // A well-formed file with an invalid rule is reported the same way.
    write_rule_file(
        dir.path(),
        "a.json",
        r#"{"id": "F1", "entry_point": "Files A!", "actions": []}"#,
    );
    files.scan().await.unwrap();
    let status = files.status();
    assert_eq!(status.problems.len(), 1, "{status:?}");
    assert_eq!(message(&store.get_rule(T, "F1").await.unwrap()), "good");

    // Fixed: imported through the normal write path, invalidating only what it touched.
    write_rule_file(dir.path(), "a.json", &rule_json("F1", "files_a", "better"));
    let report = files.scan().await.unwrap();
    assert_eq!((report.files_imported, report.problems), (1, 0));
    assert!(files.status().problems.is_empty());
    let fixed = registry.ruleset(T, &ep("files_a")).await.unwrap();
    assert_eq!(versions(&fixed), vec![("F1".to_owned(), 2)]);
    let untouched = registry.ruleset(T, &ep("files_b")).await.unwrap();
    assert!(
        Arc::ptr_eq(&b, &untouched),
        "the other file's entry point stayed cached"
    );
    let history = store.history(T, "F1").await.unwrap();
    assert!(history[1].changed_by.starts_with("file:"));
    assert!(history[1].changed_by.ends_with("a.json"));

    // A removed file removes its rules.
    std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
    files.scan().await.unwrap();
    assert!(registry
        .ruleset(T, &ep("files_b"))
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        store.get_rule(T, "F2").await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn concurrent_first_loads_of_53_rule_files_load_once(db: &TestDb) {
    let store = db.open().await;
    let registry = registry(&store);
    let dir = tempfile::tempdir().unwrap();
    for i in 0..53 {
        write_rule_file(
            dir.path(),
            &format!("rule_{i:02}.json"),
            &rule_json(&format!("FILE-{i:02}"), "from_files", "hi"),
        );
    }
    let files = RuleFiles::new(store.clone(), dir.path(), T);
    let callers: Vec<_> = (0..32)
        .map(|_| {
            let files = files.clone();
            tokio::spawn(async move { files.ensure_loaded().await })
        })
        .collect();
    let mut reports = Vec::new();
    for caller in callers {
        reports.push(caller.await.unwrap().unwrap());
    }
    assert!(reports.iter().all(|r| Arc::ptr_eq(r, &reports[0])));
    assert_eq!(reports[0].files_imported, 53);
    assert_eq!(files.status().scans, 1, "the folder was read once");
    assert_eq!(store.list_rules(T, None).await.unwrap().len(), 53);

    // And 32 concurrent first reads of the entry point load it once.
    let readers: Vec<_> = (0..32)
        .map(|_| {
            let registry = registry.clone();
            tokio::spawn(async move { registry.ruleset(T, &ep("from_files")).await })
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap().unwrap().len(), 53);
    }
    assert_eq!(registry.ruleset_loads(T, &ep("from_files")), 1);
}

async fn rule_lifecycle_with_history_and_clear_errors(db: &TestDb) {
    let store = db.open().await;
    let registry = registry(&store);
    let dan = Author::new("dan");
    let created = store
        .create_rule(T, rule("R1", "checkout", "x"), &dan)
        .await
        .unwrap();
    assert_eq!(created.rule.version, 1);
    assert_eq!(created.rule.created_by.as_deref(), Some("dan"));
    assert_eq!(
        store.get_rule(T, "R1").await.unwrap(),
        created.rule,
        "round trip"
    );

    let err = store
        .create_rule(T, rule("R1", "checkout", "x"), &dan)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    let err = store
        .create_rule("nobody", rule("R9", "checkout", "x"), &dan)
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::UnknownTenant("nobody".into()));
    assert!(err.to_string().contains("`nobody`"));
    let mut invalid = rule("R2", "checkout", "x");
    invalid.id = "bad id with spaces and !".into();
    let err = store.create_rule(T, invalid, &dan).await.unwrap_err();
    assert!(matches!(err, StoreError::Validation { .. }), "{err:?}");
    let err = store
        .update_rule(T, rule("R1", "checkout", "y"), 7, &dan)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("version 1, not 7"), "{err}");

    let cached = registry.ruleset(T, &ep("checkout")).await.unwrap();
    assert_eq!(cached.len(), 1);
    let disabled = store
        .set_enabled(T, "R1", false, Some(1), &dan)
        .await
        .unwrap();
    assert!(!disabled.rule.enabled);
    assert_eq!(
        versions(&registry.ruleset(T, &ep("checkout")).await.unwrap()),
        vec![("R1".to_owned(), 2)]
    );
    store.set_enabled(T, "R1", true, None, &dan).await.unwrap();
    let deleted = store.delete_rule(T, "R1", Some(3), &dan).await.unwrap();
    assert_eq!(deleted.rule.version, 3);
    assert!(registry
        .ruleset(T, &ep("checkout"))
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        store.delete_rule(T, "R1", None, &dan).await,
        Err(StoreError::NotFound { .. })
    ));

    // Created again, the rule continues its history.
    let again = store
        .create_rule(T, rule("R1", "checkout", "z"), &dan)
        .await
        .unwrap();
    assert_eq!(again.rule.version, 5);
    let kinds: Vec<ChangeKind> = store
        .history(T, "R1")
        .await
        .unwrap()
        .iter()
        .map(|h| h.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            ChangeKind::Create,
            ChangeKind::Disable,
            ChangeKind::Enable,
            ChangeKind::Delete,
            ChangeKind::Create
        ]
    );

    // Tenants are separate.
    assert!(store.create_tenant("acme").await.unwrap());
    assert!(!store.create_tenant("acme").await.unwrap());
    store
        .create_rule("acme", rule("R1", "checkout", "acme"), &dan)
        .await
        .unwrap();
    let acme = registry.ruleset("acme", &ep("checkout")).await.unwrap();
    assert_eq!(versions(&acme), vec![("R1".to_owned(), 1)]);
    assert_eq!(
        versions(&registry.ruleset(T, &ep("checkout")).await.unwrap()),
        vec![("R1".to_owned(), 5)]
    );
    assert!(matches!(
        registry.ruleset("nobody", &ep("checkout")).await,
        Err(StoreError::UnknownTenant(_))
    ));
    assert!(store.create_tenant("Not Valid").await.is_err());
}

async fn params_updates_are_checked_against_the_schema(db: &TestDb) {
    let store = db.open().await;
    let registry = registry(&store);
    let rule: Rule = serde_json::from_value(serde_json::json!({
        "id": "LIMITS",
        "params": {"rate": 5},
        "param_schema": {"fields": {"rate": {"type": "number", "min": 0, "max": 10}}}
    }))
    .unwrap();
    let eve = Author::new("eve");
    store.create_rule(T, rule, &eve).await.unwrap();
    let params = registry.params(T).await.unwrap();
    assert_eq!(params.value("LIMITS", "rate"), Some(&serde_json::json!(5)));

    let mut too_big = serde_json::Map::new();
    too_big.insert("rate".into(), serde_json::json!(50));
    let err = store
        .update_params(T, "LIMITS", too_big, Some(1), &eve)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Validation { .. }), "{err:?}");
    assert_eq!(store.get_rule(T, "LIMITS").await.unwrap().version, 1);

    let mut fine = serde_json::Map::new();
    fine.insert("rate".into(), serde_json::json!(7));
    store
        .update_params(T, "LIMITS", fine, Some(1), &eve)
        .await
        .unwrap();
    let params = registry.params(T).await.unwrap();
    assert_eq!(params.value("LIMITS", "rate"), Some(&serde_json::json!(7)));
    let history = store.history(T, "LIMITS").await.unwrap();
    assert_eq!(history[1].kind, ChangeKind::Params);
}

async fn seeding_is_idempotent_and_the_examples_compile(db: &TestDb) {
    let store = db.open().await;
    let seeded = store.seed_defaults().await.unwrap();
    assert!(seeded > 0);
    assert_eq!(store.seed_defaults().await.unwrap(), 0);
    // Opening again (a restart) migrates nothing new and keeps the rules.
    store.close().await;
    let store = db.open().await;
    assert_eq!(store.seed_defaults().await.unwrap(), 0);
    let rules = store.list_rules(T, None).await.unwrap();
    assert_eq!(rules.len(), seeded);

    let registry = registry(&store);
    let mut entry_points: Vec<_> = rules.iter().filter_map(|r| r.entry_point.clone()).collect();
    entry_points.dedup();
    assert!(entry_points.len() >= 2);
    for e in &entry_points {
        assert!(!registry.ruleset(T, e).await.unwrap().is_empty());
    }
    registry.params(T).await.unwrap();
    registry.scorecard(T, "pad_trade").await.unwrap();
}

async fn tokens_are_stored_hashed_and_can_be_revoked(db: &TestDb) {
    let store = db.open().await;
    assert!(!store.has_live_tokens().await.unwrap());
    let (admin, secret) = store
        .create_token("ops", TokenRole::Admin, None)
        .await
        .unwrap();
    let (scoped, _) = store
        .create_token("ci", TokenRole::Write, Some(T))
        .await
        .unwrap();
    assert!(store.has_live_tokens().await.unwrap());
    assert_eq!(
        store.authenticate(&secret).await.unwrap().map(|t| t.id),
        Some(admin.id.clone())
    );
    assert_eq!(store.authenticate("rb_wrong").await.unwrap(), None);
    assert!(scoped.covers_tenant(T) && !scoped.covers_tenant("acme"));
    assert!(matches!(
        store
            .create_token("x", TokenRole::Read, Some("nobody"))
            .await,
        Err(StoreError::UnknownTenant(_))
    ));
    assert_eq!(store.list_tokens().await.unwrap().len(), 2);

    store.revoke_token(&admin.id).await.unwrap();
    assert_eq!(store.authenticate(&secret).await.unwrap(), None);
    assert!(matches!(
        store.revoke_token("tok_missing").await,
        Err(StoreError::TokenNotFound(_))
    ));
    let listed = store.list_tokens().await.unwrap();
    assert!(listed
        .iter()
        .any(|t| t.id == admin.id && t.revoked_at.is_some()));
}

async fn pruning_keeps_recent_changes_and_tells_an_older_cursor_it_was_pruned(db: &TestDb) {
    let store = db.open().await;
    let setup = Author::new("setup");
    let old_cursor = store.current_cursor().await.unwrap();
    for id in ["P1", "P2"] {
        store
            .create_rule(T, rule(id, "checkout", "x"), &setup)
            .await
            .unwrap();
    }
    let head_before = store.head_seq().await.unwrap();

    // A long retention keeps everything and changes nothing for any cursor.
    assert_eq!(
        store
            .prune_changes(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    let (kept, _) = store.changes_since(&old_cursor).await.unwrap();
    assert_eq!(ids(&kept), vec!["P1", "P2"]);

    // Pruning everything: the cursor that had not read P1 and P2 is told so, and so is one
    // taken after the prune. On PostgreSQL only rows below the cluster-wide transaction horizon
    // go, and transactions of other databases may hold it back for a moment: prune until both
    // rows are gone.
    let mut pruned = 0;
    for _ in 0..500 {
        pruned += store.prune_changes(Duration::ZERO).await.unwrap();
        if pruned >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pruned, 2);
    assert_eq!(
        store.read_feed(&old_cursor).await.unwrap(),
        FeedRead::Pruned
    );
    assert_eq!(
        store.changes_since(&old_cursor).await.unwrap_err(),
        StoreError::CursorPruned
    );
    let fresh = store.current_cursor().await.unwrap();
    assert_eq!(
        store.head_seq().await.unwrap(),
        head_before,
        "the head never goes backwards, also when the log is empty"
    );

    store
        .create_rule(T, rule("P3", "checkout", "x"), &setup)
        .await
        .unwrap();
    let (after_prune, _) = store.changes_since(&fresh).await.unwrap();
    assert_eq!(ids(&after_prune), vec!["P3"]);
    assert!(after_prune[0].seq > head_before, "seq keeps increasing");
}
