//! The history read back (one version, diffs, rollback, rules as of a time) and the decision log,
//! each on a fresh SQLite file and a fresh PostgreSQL database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rulebook_rules::{Ruleset, DEFAULT_TENANT};
use rulebook_store::{
    Author, ChangeKind, ContextPolicy, DecisionKind, DecisionLog, DecisionLogConfig, DecisionQuery,
    NewDecision, StoreError, VersionsUsed,
};
use rulebook_testkit::cluster::{
    ep, message_of as message, message_rule as rule, registry_without_ttl as no_ttl,
};
use rulebook_testkit::{on_both_backends, TestDb};
use serde_json::json;

const T: &str = DEFAULT_TENANT;

on_both_backends!(
    a_version_can_be_read_diffed_and_rolled_back_through_the_write_path,
    a_deleted_rule_is_restored_from_its_history,
    rules_as_of_each_point_between_five_versions_are_those_versions,
    the_decision_log_writes_in_batches_reads_back_prunes_and_survives_a_restart,
    a_version_set_shared_by_many_decisions_reads_back_for_each_and_is_pruned_with_the_last,
    decisions_are_stored_in_batches_compressed_and_found_by_uuid_v7_id_and_time,
    a_decision_migrated_from_the_table_of_one_row_each_reads_back,
    decisions_recorded_from_many_threads_through_flushes_and_a_stop_are_written_or_counted_dropped,
    a_log_whose_handles_are_all_dropped_writes_what_is_pending,
);

async fn a_version_can_be_read_diffed_and_rolled_back_through_the_write_path(db: &TestDb) {
    let store = db.open().await;
    let registry = no_ttl(&store);
    let author = Author::new("alice");
    store
        .create_rule(T, rule("R-1", "promo", "first"), &author)
        .await
        .unwrap();
    let mut v2 = rule("R-1", "promo", "second");
    v2.priority = 7;
    v2.tags = vec!["currency:EUR".into()];
    store.update_rule(T, v2, 1, &author).await.unwrap();
    // Warm the cache on version 2.
    let ruleset = registry.ruleset(T, &ep("promo")).await.unwrap();
    assert_eq!(ruleset.rules().next(), Some(("R-1", 2)));

    let v1 = store.rule_version(T, "R-1", 1).await.unwrap();
    assert_eq!((v1.version, v1.kind), (1, ChangeKind::Create));
    assert_eq!(message(&v1.rule), "first");

    let diff = store.diff_versions(T, "R-1", 1, 2).await.unwrap();
    let fields: BTreeMap<&str, (&str, Option<serde_json::Value>, Option<serde_json::Value>)> = diff
        .changes
        .iter()
        .map(|c| {
            (
                c.field.as_str(),
                (c.change, c.before.clone(), c.after.clone()),
            )
        })
        .collect();
    assert_eq!(
        fields["actions[0].message"],
        ("changed", Some(json!("first")), Some(json!("second")))
    );
    assert_eq!(fields["priority"].0, "changed");
    assert!(
        fields.contains_key("tags") || fields.contains_key("tags[0]"),
        "{fields:?}"
    );
    assert!(
        !fields
            .keys()
            .any(|f| f.starts_with("version") || f.starts_with("updated")),
        "bookkeeping is not a change: {fields:?}"
    );
    // The patch turns version 1's document into version 2's.
    let mut doc = serde_json::to_value(&v1.rule).unwrap();
    json_patch_apply(&mut doc, &diff.patch);
    let v2_doc =
        serde_json::to_value(&store.rule_version(T, "R-1", 2).await.unwrap().rule).unwrap();
    for field in ["actions", "priority", "tags", "condition"] {
        assert_eq!(doc[field], v2_doc[field], "{field}");
    }

    // A stale expected version is a conflict and writes nothing.
    let err = store
        .rollback_rule(T, "R-1", 1, Some(1), &author)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                current_version: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = store
        .rollback_rule(T, "R-1", 9, None, &author)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::VersionNotFound { latest: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("1 to 2"), "{err}");

    let back = store
        .rollback_rule(
            T,
            "R-1",
            1,
            Some(2),
            &author.clone().with_reason("wrong wording"),
        )
        .await
        .unwrap()
        .rule;
    assert_eq!(back.version, 3);
    assert_eq!((message(&back), back.priority), ("first".to_owned(), 0));
    // The writer's own cache already serves it (invalidated after commit, before returning).
    let ruleset = registry.ruleset(T, &ep("promo")).await.unwrap();
    assert_eq!(ruleset.rules().next(), Some(("R-1", 3)));
    let history = store.history(T, "R-1").await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (
            last.version,
            last.kind,
            last.restored_from,
            last.reason.as_deref()
        ),
        (3, ChangeKind::Rollback, Some(1), Some("wrong wording"))
    );
    // The change log has the rollback like any write, and nothing else changed.
    assert_eq!(history.len(), 3);
    let diff = store.diff_versions(T, "R-1", 1, 3).await.unwrap();
    assert!(diff.patch.is_empty() && diff.changes.is_empty(), "{diff:?}");
}

/// Applies an RFC 6902 patch (the store's dependency, used here only to check the diff).
fn json_patch_apply(doc: &mut serde_json::Value, patch: &json_patch::Patch) {
    json_patch::patch(doc, patch).unwrap();
}

async fn a_deleted_rule_is_restored_from_its_history(db: &TestDb) {
    let store = db.open().await;
    let registry = no_ttl(&store);
    let author = Author::new("bob");
    store
        .create_rule(T, rule("R-2", "promo", "kept"), &author)
        .await
        .unwrap();
    let deleted = store.delete_rule(T, "R-2", None, &author).await.unwrap();
    assert!(registry.ruleset(T, &ep("promo")).await.unwrap().is_empty());

    let err = store
        .rollback_rule(T, "R-2", 2, None, &author)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("roll back to version 1")),
        "{err}"
    );
    // If-Match for a deleted rule names the version that recorded the deletion.
    let err = store
        .rollback_rule(T, "R-2", 1, Some(1), &author)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                current_version: 2,
                ..
            }
        ),
        "{err}"
    );

    let restored = store
        .rollback_rule(T, "R-2", 1, Some(2), &author)
        .await
        .unwrap();
    assert!(
        restored.seq > deleted.seq,
        "the restore is a change of its own"
    );
    let restored = restored.rule;
    assert_eq!(
        (restored.version, message(&restored)),
        (3, "kept".to_owned())
    );
    assert_eq!(store.get_rule(T, "R-2").await.unwrap().version, 3);
    assert_eq!(
        registry
            .ruleset(T, &ep("promo"))
            .await
            .unwrap()
            .rules()
            .next(),
        Some(("R-2", 3))
    );
    let history = store.history(T, "R-2").await.unwrap();
    let kinds: Vec<ChangeKind> = history.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [ChangeKind::Create, ChangeKind::Delete, ChangeKind::Rollback]
    );
    // Restoring again while it exists is an ordinary rollback, not a second create.
    let again = store
        .rollback_rule(T, "R-2", 1, None, &author)
        .await
        .unwrap();
    assert_eq!(again.rule.version, 4);
}

/// A rule through five versions (create, update, disable, delete, restore), plus a rule created
/// only at the end: at each point in between, the rules as of that time are exactly the
/// versions that stood then.
async fn rules_as_of_each_point_between_five_versions_are_those_versions(db: &TestDb) {
    let store = db.open().await;
    let author = Author::new("carol");
    let promo = ep("promo");
    let as_of = |at: DateTime<Utc>| {
        let store = store.clone();
        let promo = promo.clone();
        async move {
            let rules = store.rules_as_of(T, at).await.unwrap();
            let mut here: Vec<(String, i64, bool)> = rules
                .into_iter()
                .filter(|r| r.entry_point.as_ref() == Some(&promo))
                .map(|r| (r.id, r.version, r.enabled))
                .collect();
            here.sort();
            here
        }
    };
    store
        .create_rule(T, rule("R-3", "promo", "v1"), &author)
        .await
        .unwrap();
    store
        .update_rule(T, rule("R-3", "promo", "v2"), 1, &author)
        .await
        .unwrap();
    store
        .set_enabled(T, "R-3", false, Some(2), &author)
        .await
        .unwrap();
    store.delete_rule(T, "R-3", Some(3), &author).await.unwrap();
    store
        .rollback_rule(T, "R-3", 2, None, &author)
        .await
        .unwrap();
    store
        .create_rule(T, rule("R-4", "promo", "later"), &author)
        .await
        .unwrap();
    let history = store.history(T, "R-3").await.unwrap();
    let times: Vec<DateTime<Utc>> = history.iter().map(|e| e.changed_at).collect();
    assert_eq!(times.len(), 5);
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    let later = store.history(T, "R-4").await.unwrap()[0].changed_at;
    let before = |t: DateTime<Utc>| t - chrono::Duration::microseconds(1);

    assert_eq!(as_of(before(times[0])).await, []);
    assert_eq!(as_of(times[0]).await, [("R-3".into(), 1, true)]);
    assert_eq!(as_of(before(times[1])).await, [("R-3".into(), 1, true)]);
    assert_eq!(as_of(times[1]).await, [("R-3".into(), 2, true)]);
    assert_eq!(as_of(times[2]).await, [("R-3".into(), 3, false)]);
    assert_eq!(as_of(times[3]).await, []);
    assert_eq!(as_of(before(times[4])).await, []);
    assert_eq!(as_of(times[4]).await, [("R-3".into(), 5, true)]);
    assert_eq!(as_of(before(later)).await, [("R-3".into(), 5, true)]);
    assert_eq!(
        as_of(later).await,
        [("R-3".into(), 5, true), ("R-4".into(), 1, true)]
    );
    // What stood at version 2's time compiles and evaluates to version 2's answer.
    let rules = store.rules_as_of(T, times[1]).await.unwrap();
    let rules = rules
        .into_iter()
        .filter(|r| r.entry_point.as_ref() == Some(&promo))
        .collect();
    let ruleset = Ruleset::compile(promo.clone(), rules).unwrap();
    let evaluation = ruleset.evaluate(&json!({"country": "FR"}), times[1], &Default::default());
    assert_eq!(evaluation.matched[0].version, 2);
    let err = store.rules_as_of("nobody", times[0]).await.unwrap_err();
    assert!(matches!(err, StoreError::UnknownTenant(_)), "{err}");
}

/// A decision's parts, owned, lent to the log as a [`NewDecision`] (of tenant `T`).
struct Made {
    id: String,
    entry_point: String,
    at: DateTime<Utc>,
    versions: VersionsUsed,
    context: serde_json::Value,
    answer: Vec<u8>,
}

impl Made {
    fn lent(&self) -> NewDecision<'_> {
        NewDecision {
            id: &self.id,
            tenant: T,
            kind: DecisionKind::Evaluate,
            entry_point: &self.entry_point,
            decided_at: self.at,
            versions: &self.versions,
            context: &self.context,
            answer: &self.answer,
        }
    }
}

fn decision(id: &str, entry_point: &str, at: DateTime<Utc>, n: i64) -> Made {
    Made {
        id: id.to_owned(),
        entry_point: entry_point.to_owned(),
        at,
        versions: VersionsUsed::Listed(vec![("R-1".into(), n)]),
        context: json!({"n": n, "country": "FR"}),
        answer: serde_json::to_vec(&json!({"decision_id": id, "matched": []})).unwrap(),
    }
}

async fn the_decision_log_writes_in_batches_reads_back_prunes_and_survives_a_restart(db: &TestDb) {
    let store = db.open().await;
    let log = DecisionLog::start(
        store.clone(),
        DecisionLogConfig {
            batch: 7,
            ..DecisionLogConfig::default()
        },
    );
    // An hour ago, to the second: inside the default retention, outside a one-second one.
    let t0 = DateTime::<Utc>::from_timestamp(Utc::now().timestamp() - 3600, 0).unwrap();
    for n in 0..250 {
        let ep = if n % 2 == 0 { "even" } else { "odd" };
        let at = t0 + chrono::Duration::seconds(n);
        assert!(log.record(decision(&format!("d-{n:03}"), ep, at, n).lent()));
    }
    log.flush().await;
    assert_eq!(log.stats().written, 250);

    let one = store.decision(T, "d-042").await.unwrap();
    assert_eq!(one.entry_point, "even");
    assert_eq!(one.decided_at, t0 + chrono::Duration::seconds(42));
    assert_eq!(one.versions, BTreeMap::from([("R-1".to_owned(), 42)]));
    assert_eq!(one.context, Some(json!({"n": 42, "country": "FR"})));
    assert_eq!(one.answer["decision_id"], "d-042");
    assert_eq!(one.context_sha256.len(), 64);
    let err = store.decision(T, "nope").await.unwrap_err();
    assert!(matches!(err, StoreError::DecisionNotFound { .. }), "{err}");

    let listed = store
        .list_decisions(
            T,
            &DecisionQuery {
                after: None,
                entry_point: Some("odd".into()),
                since: Some(t0 + chrono::Duration::seconds(100)),
                until: None,
                limit: 5,
            },
        )
        .await
        .unwrap();
    let ids: Vec<&str> = listed.iter().map(|d| d.decision_id.as_str()).collect();
    assert_eq!(ids, ["d-101", "d-103", "d-105", "d-107", "d-109"]);

    // The hash-only setting keeps no context, and the same hash for the same context.
    let hashed = DecisionLog::start(
        store.clone(),
        DecisionLogConfig {
            context: ContextPolicy::Sha256,
            ..DecisionLogConfig::default()
        },
    );
    let mut same = decision("h-1", "even", t0, 42);
    same.context = json!({"country": "FR", "n": 42});
    assert!(hashed.record(same.lent()));
    // A kept context's hash is computed when it is read, and is the hash a hash-only log keeps
    // for the same context, floats and all.
    let floats = json!({"f": 0.1, "g": -1.5e300, "h": [1.0, 2.5e-8], "u": 18446744073709551615u64});
    let mut kept = decision("f-kept", "even", t0, 1);
    kept.context = floats.clone();
    assert!(log.record(kept.lent()));
    // A `null` context (a score's input may be any JSON) reads back as none, with its hash.
    let mut null = decision("n-null", "even", t0, 1);
    null.context = serde_json::Value::Null;
    assert!(log.record(null.lent()));
    let mut hashed_only = decision("f-hashed", "even", t0, 1);
    hashed_only.context = floats.clone();
    assert!(hashed.record(hashed_only.lent()));
    hashed.stop().await;
    log.flush().await;
    let h = store.decision(T, "h-1").await.unwrap();
    assert_eq!(h.context, None);
    assert_eq!(h.context_sha256, one.context_sha256);
    let kept = store.decision(T, "f-kept").await.unwrap();
    assert_eq!(kept.context, Some(floats));
    assert_eq!(
        kept.context_sha256,
        store.decision(T, "f-hashed").await.unwrap().context_sha256
    );
    assert_ne!(kept.context_sha256, one.context_sha256);
    let null = store.decision(T, "n-null").await.unwrap();
    assert_eq!(null.context, None);
    assert_eq!(
        null.context_sha256, "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b",
        "the SHA-256 of `null`"
    );
    // A stopped log takes nothing more, and says so.
    assert!(!hashed.record(decision("h-2", "even", t0, 1).lent()));
    assert_eq!(hashed.stats().dropped, 1);

    // Pruning removes what is older than the cut-off, nothing newer.
    let removed = store
        .prune_decisions(t0 + chrono::Duration::seconds(200))
        .await
        .unwrap();
    assert_eq!(
        removed, 204,
        "200 old ones, h-1, the two with floats and the null one"
    );
    log.stop().await;
    store.close().await;

    // Reopened (a restart), the rest is still there.
    let store = db.open().await;
    let rest = store
        .list_decisions(
            T,
            &DecisionQuery {
                after: None,
                limit: 1000,
                ..DecisionQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.len(), 50);
    assert_eq!(rest[0].decision_id, "d-200");

    // The retention prunes on its own: a log that keeps one second removes all of these.
    let short = DecisionLog::start(
        store.clone(),
        DecisionLogConfig {
            retention: Duration::from_secs(1),
            prune_every: Duration::from_millis(20),
            ..DecisionLogConfig::default()
        },
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while short.stats().pruned < 50 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            short.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    short.stop().await;
}

async fn a_version_set_shared_by_many_decisions_reads_back_for_each_and_is_pruned_with_the_last(
    db: &TestDb,
) {
    let store = db.open().await;
    let log = DecisionLog::start(
        store.clone(),
        DecisionLogConfig {
            batch: 4,
            ..DecisionLogConfig::default()
        },
    );
    let promo = ep("promo");
    let mut rules = vec![rule("R-1", "promo", "one"), rule("R-2", "promo", "two")];
    rules[0].version = 3;
    rules[1].version = 7;
    let ruleset = std::sync::Arc::new(Ruleset::compile(promo, rules).unwrap());
    let shared = BTreeMap::from([("R-1".to_owned(), 3), ("R-2".to_owned(), 7)]);
    let t0 = DateTime::<Utc>::from_timestamp(Utc::now().timestamp() - 3600, 0).unwrap();
    let at = |s: i64| t0 + chrono::Duration::seconds(s);
    // Ten decisions from one ruleset, three with listed versions between them, and one more from
    // the ruleset much later: the shared set's last use is that last one.
    for n in 0..10 {
        let mut d = decision(&format!("s-{n:02}"), "promo", at(n), n);
        d.versions = VersionsUsed::Ruleset(std::sync::Arc::clone(&ruleset));
        assert!(log.record(d.lent()));
        if n % 4 == 0 {
            assert!(log.record(decision(&format!("l-{n:02}"), "promo", at(n), n).lent()));
        }
    }
    let mut late = decision("s-late", "promo", at(100), 0);
    late.versions = VersionsUsed::Ruleset(std::sync::Arc::clone(&ruleset));
    assert!(log.record(late.lent()));
    log.flush().await;
    assert_eq!(log.stats().written, 14);
    for n in 0..10 {
        let d = store.decision(T, &format!("s-{n:02}")).await.unwrap();
        assert_eq!(d.versions, shared, "s-{n:02}");
    }
    for n in [0, 4, 8] {
        let d = store.decision(T, &format!("l-{n:02}")).await.unwrap();
        assert_eq!(
            d.versions,
            BTreeMap::from([("R-1".to_owned(), n)]),
            "l-{n:02}"
        );
    }

    // Pruning what is older than 50 s removes the first 13 and the listed sets, and keeps the set
    // the late decision still uses.
    assert_eq!(store.prune_decisions(at(50)).await.unwrap(), 13);
    let err = store.decision(T, "s-03").await.unwrap_err();
    assert!(matches!(err, StoreError::DecisionNotFound { .. }), "{err}");
    assert_eq!(store.decision(T, "s-late").await.unwrap().versions, shared);
    // A pruned set is stored again when a decision uses it again.
    assert!(log.record(decision("l-again", "promo", at(200), 4).lent()));
    log.flush().await;
    assert_eq!(
        store.decision(T, "l-again").await.unwrap().versions,
        BTreeMap::from([("R-1".to_owned(), 4)])
    );
    // Once its last decision is pruned, the shared set goes too, and a decision from the same
    // cached ruleset stores it again.
    assert_eq!(store.prune_decisions(at(150)).await.unwrap(), 1);
    let mut again = decision("s-again", "promo", at(300), 0);
    again.versions = VersionsUsed::Ruleset(ruleset);
    assert!(log.record(again.lent()));
    log.stop().await;
    assert_eq!(store.decision(T, "s-again").await.unwrap().versions, shared);
    assert_eq!(log.stats().failed, 0);
}

/// Fails with the first place `listed` and `expected` differ (the lists are long).
fn assert_same_ids(listed: &[String], expected: &[String]) {
    let first = listed.iter().zip(expected).position(|(a, b)| a != b);
    assert!(
        first.is_none() && listed.len() == expected.len(),
        "listed {} ids, expected {}; first difference at {first:?}",
        listed.len(),
        expected.len()
    );
}

/// Runs `sql` (one `COUNT`-like integer column) on the test database directly.
async fn sql_integer(db: &TestDb, sql: &str) -> i64 {
    use sqlx::Connection;
    match db.backend {
        rulebook_store::Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
        _ => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
    }
}

/// Runs the statement `sql` on the test database directly.
async fn sql_execute(db: &TestDb, sql: &str) {
    use sqlx::Connection;
    match db.backend {
        rulebook_store::Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
        _ => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
    }
}

async fn decisions_are_stored_in_batches_compressed_and_found_by_uuid_v7_id_and_time(db: &TestDb) {
    let store = db.open().await;
    let t0 = DateTime::<Utc>::from_timestamp(Utc::now().timestamp() - 3600, 0).unwrap();
    // 600 decisions 100 ms apart over a minute, spread over 40 entry points (one decision each
    // every 4 s), with UUIDv7 ids made at their times, written as one batch: each entry point's
    // decisions are stored 3 to a row (a row spans at most 10 s), so listings and lookups read
    // many overlapping rows.
    let mut expected = Vec::new();
    let mut decisions = Vec::new();
    for n in 0..600i64 {
        let at = t0 + chrono::Duration::milliseconds(n * 100);
        let stamp = uuid::Timestamp::from_unix(
            uuid::NoContext,
            at.timestamp() as u64,
            at.timestamp_subsec_nanos(),
        );
        let id = uuid::Uuid::new_v7(stamp).to_string();
        let entry_point = format!("ep-{:02}", n % 40);
        let mut d = decision(&id, &entry_point, at, n);
        d.answer = serde_json::to_vec(&json!({"decision_id": id, "n": n})).unwrap();
        expected.push((at, id, entry_point));
        decisions.push(d);
    }
    store
        .append_decisions(
            &decisions.iter().map(Made::lent).collect::<Vec<_>>(),
            ContextPolicy::Full,
        )
        .await
        .unwrap();
    assert_eq!(
        sql_integer(db, "SELECT COUNT(*) FROM decision_batches").await,
        200
    );
    assert_eq!(
        sql_integer(db, "SELECT COALESCE(SUM(count), 0) FROM decision_batches").await,
        600
    );

    for (n, (at, id, entry_point)) in expected.iter().enumerate().step_by(7) {
        let found = store.decision(T, id).await.unwrap();
        assert_eq!(
            (&found.decided_at, &found.entry_point),
            (at, entry_point),
            "{id}"
        );
        assert_eq!(found.answer["n"], n, "{id}");
        assert_eq!(found.context.as_ref().unwrap()["n"], n, "{id}");
        assert_eq!(
            found.versions,
            BTreeMap::from([("R-1".to_owned(), n as i64)])
        );
    }
    // A UUIDv7 of the same minute that was never logged is not found.
    let stranger = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        t0.timestamp() as u64 + 30,
        0,
    ))
    .to_string();
    let err = store.decision(T, &stranger).await.unwrap_err();
    assert!(matches!(err, StoreError::DecisionNotFound { .. }), "{err}");
    let err = store.decision("nobody", &expected[0].1).await.unwrap_err();
    assert!(matches!(err, StoreError::DecisionNotFound { .. }), "{err}");

    // Page by page through everything, and through a window of one entry point, in (time, id)
    // order.
    let pages = |entry_point: Option<&str>, since, until| {
        let store = store.clone();
        let entry_point = entry_point.map(str::to_owned);
        async move {
            let mut listed = Vec::new();
            let mut after = None;
            loop {
                let page = store
                    .list_decisions(
                        T,
                        &DecisionQuery {
                            entry_point: entry_point.clone(),
                            since,
                            until,
                            after: after.clone(),
                            limit: 25,
                        },
                    )
                    .await
                    .unwrap();
                let Some(last) = page.last() else {
                    return listed;
                };
                after = Some((last.decided_at, last.decision_id.clone()));
                listed.extend(page.into_iter().map(|d| d.decision_id));
            }
        }
    };
    let mut sorted = expected.clone();
    sorted.sort();
    let all: Vec<String> = sorted.iter().map(|(_, id, _)| id.clone()).collect();
    assert_same_ids(&pages(None, None, None).await, &all);
    let (since, until) = (
        t0 + chrono::Duration::seconds(12),
        t0 + chrono::Duration::seconds(41),
    );
    let window: Vec<String> = sorted
        .iter()
        .filter(|(at, _, ep)| ep == "ep-07" && *at >= since && *at < until)
        .map(|(_, id, _)| id.clone())
        .collect();
    assert_eq!(window.len(), 8);
    assert_same_ids(
        &pages(Some("ep-07"), Some(since), Some(until)).await,
        &window,
    );

    // Pruning at 30 s removes exactly the 300 decisions before it, rewriting the rows that
    // straddle the cut-off.
    let cut = t0 + chrono::Duration::seconds(30);
    assert_eq!(store.prune_decisions(cut).await.unwrap(), 300);
    assert_eq!(
        sql_integer(db, "SELECT COALESCE(SUM(count), 0) FROM decision_batches").await,
        300
    );
    assert_same_ids(&pages(None, None, None).await, &all[300..]);
    let err = store.decision(T, &expected[299].1).await.unwrap_err();
    assert!(matches!(err, StoreError::DecisionNotFound { .. }), "{err}");
    assert_eq!(
        store
            .decision(T, &expected[300].1)
            .await
            .unwrap()
            .decided_at,
        cut
    );

    // Stored compressed: 100 answers of 40 matched rules each, alike as one entry point's are.
    let mut big = Vec::new();
    let mut raw = 0;
    for n in 0..100i64 {
        let at = t0 + chrono::Duration::milliseconds(50_000 + n);
        let mut d = decision(&format!("big-{n:03}"), "big", at, n);
        let matched: Vec<_> = (0..40)
            .map(|r| json!({"id": format!("RULE-{r:02}"), "version": 3, "priority": r}))
            .collect();
        d.answer = serde_json::to_vec(&json!({"n": n, "matched": matched})).unwrap();
        raw += d.answer.len();
        big.push(d);
    }
    store
        .append_decisions(
            &big.iter().map(Made::lent).collect::<Vec<_>>(),
            ContextPolicy::Full,
        )
        .await
        .unwrap();
    let stored = sql_integer(
        db,
        "SELECT CAST(SUM(LENGTH(decisions)) AS BIGINT) FROM decision_batches \
         WHERE entry_point = 'big'",
    )
    .await;
    assert!(
        stored * 5 < raw as i64,
        "{stored} bytes stored for {raw} of answers"
    );
    assert_eq!(store.decision(T, "big-042").await.unwrap().answer["n"], 42);
}

async fn a_decision_migrated_from_the_table_of_one_row_each_reads_back(db: &TestDb) {
    let store = db.open().await;
    // What migration 0012 makes of a decision logged before it: a batch of one, as plain JSON.
    let json = r#"[{"id": "old-1", "kind": "score", "decided_at": "2026-01-01T00:00:00.123456+00:00",
        "versions_id": "decision:old-1", "context": null, "context_sha256": "abc",
        "answer": {"score": 1}}]"#;
    let (bytes, at) = match db.backend {
        rulebook_store::Backend::Sqlite => (
            format!("CAST('{json}' AS BLOB)"),
            "'2026-01-01T00:00:00.123456+00:00'",
        ),
        _ => (
            format!("convert_to('{json}', 'UTF8')"),
            "'2026-01-01T00:00:00.123456+00:00'::timestamptz",
        ),
    };
    sql_execute(
        db,
        &format!(
            "INSERT INTO decision_versions (id, versions, last_used) \
             VALUES ('decision:old-1', '{{\"R-1\": 3}}', {at})"
        ),
    )
    .await;
    sql_execute(
        db,
        &format!(
            "INSERT INTO decision_batches (tenant, entry_point, first_id, last_id, first_at, \
             last_at, count, decisions) VALUES ('{T}', 'card', 'old-1', 'old-1', {at}, {at}, 1, \
             {bytes})"
        ),
    )
    .await;
    let old = store.decision(T, "old-1").await.unwrap();
    assert_eq!(old.kind, DecisionKind::Score);
    assert_eq!(old.entry_point, "card");
    assert_eq!(old.versions, BTreeMap::from([("R-1".to_owned(), 3)]));
    assert_eq!(old.context, None);
    assert_eq!(old.answer, json!({"score": 1}));
    assert_eq!(old.decided_at.timestamp_subsec_micros(), 123_456);
    let listed = store
        .list_decisions(
            T,
            &DecisionQuery {
                limit: 10,
                ..DecisionQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed, vec![old]);
}

/// Threads record decisions while the writer is flushed over and over, then stopped while they
/// still record: every decision `record` took (`true`) is written and reads back, every one it
/// refused is counted dropped and absent, and the counters add up.
async fn decisions_recorded_from_many_threads_through_flushes_and_a_stop_are_written_or_counted_dropped(
    db: &TestDb,
) {
    const THREADS: usize = 4;
    /// Each thread records until this many are refused (the log has stopped)...
    const REFUSED: usize = 20;
    /// Decisions each thread records quickly (a pause of 1 ms every 50); after these, it pauses
    /// 1 ms after each, until the stop.
    const QUICKLY: usize = 1_000;
    /// The most each thread records, should the stop never come.
    const AT_MOST: usize = 20_000;
    /// Decisions recorded, all threads together, before the log is stopped (flushed meanwhile).
    const BEFORE_STOP: usize = 3_000;
    let store = db.open().await;
    let log = DecisionLog::start(
        store.clone(),
        DecisionLogConfig {
            batch: 16,
            gather: Duration::from_millis(3),
            ..DecisionLogConfig::default()
        },
    );
    let t0 = DateTime::<Utc>::from_timestamp(Utc::now().timestamp() - 60, 0).unwrap();
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let recorders: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (log, progress) = (log.clone(), std::sync::Arc::clone(&progress));
            std::thread::spawn(move || {
                let mut recorded = Vec::new();
                let mut refused = 0;
                for n in 0..AT_MOST {
                    let id = format!("t{thread}-{n:05}");
                    let at = t0 + chrono::Duration::milliseconds(n as i64);
                    let ep = if n % 3 == 0 { "odd" } else { "even" };
                    let taken = log.record(decision(&id, ep, at, n as i64).lent());
                    recorded.push((id, taken));
                    progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    refused += usize::from(!taken);
                    if refused == REFUSED {
                        break;
                    }
                    if n >= QUICKLY || n % 50 == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                recorded
            })
        })
        .collect();
    while progress.load(std::sync::atomic::Ordering::Relaxed) < BEFORE_STOP {
        log.flush().await;
    }
    log.stop().await;
    let recorded: Vec<(String, bool)> = recorders
        .into_iter()
        .flat_map(|recorder| recorder.join().unwrap())
        .collect();
    let taken: std::collections::BTreeSet<&str> = recorded
        .iter()
        .filter(|(_, taken)| *taken)
        .map(|(id, _)| id.as_str())
        .collect();
    let stats = log.stats();
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.written, taken.len() as u64, "{stats:?}");
    assert_eq!(stats.dropped, (recorded.len() - taken.len()) as u64);
    assert!(
        stats.dropped > 0,
        "the stop came while the threads recorded"
    );

    let mut stored = std::collections::BTreeSet::new();
    let mut query = DecisionQuery {
        limit: 1000,
        ..DecisionQuery::default()
    };
    loop {
        let page = store.list_decisions(T, &query).await.unwrap();
        let Some(last) = page.last() else { break };
        query.after = Some((last.decided_at, last.decision_id.clone()));
        for d in &page {
            assert!(
                stored.insert(d.decision_id.clone()),
                "{} twice",
                d.decision_id
            );
            let (_, n) = d.decision_id.split_once('-').unwrap();
            assert_eq!(d.answer["decision_id"], d.decision_id.as_str());
            assert_eq!(
                d.context,
                Some(json!({"n": n.parse::<i64>().unwrap(), "country": "FR"}))
            );
        }
    }
    let stored: std::collections::BTreeSet<&str> = stored.iter().map(String::as_str).collect();
    assert_eq!(stored, taken, "the decisions taken are those stored");
}

/// With every handle dropped and no stop asked for, the writer still writes what is pending (and
/// then ends), long before its next regular turn.
async fn a_log_whose_handles_are_all_dropped_writes_what_is_pending(db: &TestDb) {
    let store = db.open().await;
    let log = DecisionLog::start(
        store.clone(),
        DecisionLogConfig {
            gather: Duration::from_secs(3600),
            ..DecisionLogConfig::default()
        },
    );
    // Past the writer's first turn, which comes at once.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t0 = DateTime::<Utc>::from_timestamp(Utc::now().timestamp() - 60, 0).unwrap();
    assert!(log.record(decision("dropped-1", "even", t0, 1).lent()));
    drop(log);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match store.decision(T, "dropped-1").await {
            Ok(found) => break assert_eq!(found.entry_point, "even"),
            Err(StoreError::DecisionNotFound { .. }) => {
                assert!(tokio::time::Instant::now() < deadline, "never written");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}
