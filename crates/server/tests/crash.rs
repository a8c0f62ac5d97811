//! Crash safety: the real `rulebook` binary is killed with SIGKILL in the middle of a stream of
//! writes, several rounds over one database, and restarted each time. After every restart the
//! database (read with SQL, not through Rulebook) and the service's answers are checked:
//!
//! - every acknowledged write is there, with its history row and its change-log row;
//! - nothing is half-written: a rule's history is exactly versions `1..=version` and its change
//!   log has one row per version, whether or not the write was acknowledged; a create that did
//!   not commit left no history behind;
//! - a write that was in flight at the kill either committed whole (one version past the last
//!   acknowledged) or not at all;
//! - the restarted service (its cache loads from the store) answers reads and evaluations with
//!   exactly the stored state.
//!
//! The kill point is random: after a random number of acknowledged writes, while the other
//! writers have requests in flight. The seed is printed; `RULEBOOK_CRASH_SEED` replays one and
//! `RULEBOOK_CRASH_ROUNDS` runs more rounds than CI's four.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Running, TestDb};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::Connection;

const TOKEN: &str = "crash-test-admin-token";
/// Rounds in CI; `RULEBOOK_CRASH_ROUNDS` asks for more.
const ROUNDS: usize = 4;
const WRITERS: usize = 3;
const ENTRY_POINT: &str = "crash";

/// What the writers were told: the highest acknowledged version of each rule, and every rule a
/// create was sent for.
#[derive(Default, Clone)]
struct Ledger {
    acked: BTreeMap<String, i64>,
    attempted: BTreeSet<String>,
    acks: usize,
}

/// One rule as the database holds it.
#[derive(Debug, PartialEq)]
struct Stored {
    version: i64,
    enabled: bool,
    history: Vec<i64>,
    last_snapshot_enabled: Option<bool>,
    change_log_rows: i64,
}

async fn stored(url: &str) -> (BTreeMap<String, Stored>, BTreeSet<String>) {
    let rules_sql =
        "SELECT id, CAST(version AS BIGINT), CAST(CASE WHEN enabled THEN 1 ELSE 0 END AS BIGINT) \
                     FROM rules WHERE tenant = 'default' AND id LIKE 'crash-%'";
    let history_sql = "SELECT rule_id, CAST(version AS BIGINT), CAST(snapshot AS TEXT) FROM rule_history \
                       WHERE tenant = 'default' AND rule_id LIKE 'crash-%' ORDER BY rule_id, version";
    let log_sql = "SELECT rule_id, COUNT(*) FROM change_log WHERE tenant = 'default' \
                   AND rule_id LIKE 'crash-%' GROUP BY rule_id";
    type Rows = (
        Vec<(String, i64, i64)>,
        Vec<(String, i64, String)>,
        Vec<(String, i64)>,
    );
    let (rules, history, log): Rows = if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        (
            sqlx::query_as(rules_sql).fetch_all(&mut c).await.unwrap(),
            sqlx::query_as(history_sql).fetch_all(&mut c).await.unwrap(),
            sqlx::query_as(log_sql).fetch_all(&mut c).await.unwrap(),
        )
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        (
            sqlx::query_as(rules_sql).fetch_all(&mut c).await.unwrap(),
            sqlx::query_as(history_sql).fetch_all(&mut c).await.unwrap(),
            sqlx::query_as(log_sql).fetch_all(&mut c).await.unwrap(),
        )
    };
    let mut out: BTreeMap<String, Stored> = rules
        .into_iter()
        .map(|(id, version, enabled)| {
            (
                id,
                Stored {
                    version,
                    enabled: enabled == 1,
                    history: Vec::new(),
                    last_snapshot_enabled: None,
                    change_log_rows: 0,
                },
            )
        })
        .collect();
    let mut orphans = BTreeSet::new();
    for (id, version, snapshot) in history {
        let Some(rule) = out.get_mut(&id) else {
            orphans.insert(id);
            continue;
        };
        rule.history.push(version);
        let snapshot: Value = serde_json::from_str(&snapshot).unwrap();
        rule.last_snapshot_enabled = snapshot["enabled"].as_bool();
    }
    for (id, rows) in log {
        match out.get_mut(&id) {
            Some(rule) => rule.change_log_rows = rows,
            None => {
                orphans.insert(id);
            }
        }
    }
    (out, orphans)
}

/// Checks the database and the restarted service against what was acknowledged; returns how many
/// writes committed without being acknowledged (in flight at a kill).
async fn verify(db: &TestDb, server: &Running, ledger: &Ledger) -> usize {
    let (stored, orphans) = stored(&db.url).await;
    assert!(
        orphans.is_empty(),
        "history or change-log rows of rules that were never committed: {orphans:?}"
    );
    for (id, acked) in &ledger.acked {
        let rule = stored
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged rule `{id}` (version {acked}) is missing"));
        assert!(
            rule.version == *acked || rule.version == acked + 1,
            "`{id}`: acknowledged version {acked}, stored {}: only the one write in flight at the kill may add a version",
            rule.version
        );
    }
    for (id, rule) in &stored {
        assert!(ledger.attempted.contains(id), "`{id}` was never sent");
        if !ledger.acked.contains_key(id) {
            assert_eq!(rule.version, 1, "`{id}`: its create was never acknowledged");
        }
        let whole: Vec<i64> = (1..=rule.version).collect();
        assert_eq!(rule.history, whole, "`{id}`: history rows against version");
        assert_eq!(
            rule.change_log_rows, rule.version,
            "`{id}`: one change-log row per version"
        );
        assert_eq!(
            rule.last_snapshot_enabled,
            Some(rule.enabled),
            "`{id}`: the last history snapshot is the rule"
        );
    }

    // The service, whose cache loads from the store, serves exactly that.
    let (status, _, body) = common::http(
        &server.client,
        reqwest::Method::GET,
        &server.url(&format!("/v1/rules?entry_point={ENTRY_POINT}")),
        Some(TOKEN),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let listed: BTreeMap<String, (i64, bool)> = common::by_id(&body["rules"], |r| {
        (
            r["version"].as_i64().unwrap(),
            r["enabled"].as_bool().unwrap(),
        )
    })
    .into_iter()
    .collect();
    let expected: BTreeMap<String, (i64, bool)> = stored
        .iter()
        .map(|(id, r)| (id.clone(), (r.version, r.enabled)))
        .collect();
    assert_eq!(listed, expected, "the rule list against the database");
    let (status, _, body) = common::http(
        &server.client,
        reqwest::Method::POST,
        &server.url(&format!("/v1/evaluate/{ENTRY_POINT}")),
        Some(TOKEN),
        &[],
        Some(json!({"context": {}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let matched: BTreeMap<String, i64> = body["matched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                m["version"].as_i64().unwrap(),
            )
        })
        .collect();
    let enabled: BTreeMap<String, i64> = stored
        .iter()
        .filter(|(_, r)| r.enabled)
        .map(|(id, r)| (id.clone(), r.version))
        .collect();
    assert_eq!(matched, enabled, "evaluation against the database");
    stored
        .iter()
        .map(|(id, r)| (r.version - ledger.acked.get(id).copied().unwrap_or(0)) as usize)
        .sum()
}

/// One writer: creates its own rules and toggles each a few times, each write naming the version
/// it expects; stops at the first failed request (the process was killed).
async fn writer(
    base: String,
    round: usize,
    w: usize,
    ledger: Arc<Mutex<Ledger>>,
    acks: Arc<AtomicUsize>,
    kill: Arc<tokio::sync::Notify>,
    kill_after: usize,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let ack = |id: &str, version: i64| {
        let mut l = ledger.lock();
        l.acked.insert(id.to_owned(), version);
        l.acks += 1;
        if acks.fetch_add(1, Ordering::SeqCst) + 1 == kill_after {
            kill.notify_one();
        }
    };
    for i in 0.. {
        let id = format!("crash-{round}-{w}-{i}");
        ledger.lock().attempted.insert(id.clone());
        let rule = json!({
            "id": id, "entry_point": ENTRY_POINT, "condition": true,
            "actions": [{"type": "display_message", "message": id}], "reason": "crash test"
        });
        let Ok(response) = client
            .post(format!("{base}/v1/rules"))
            .bearer_auth(TOKEN)
            .json(&rule)
            .send()
            .await
        else {
            return;
        };
        let status = response.status();
        let Ok(body) = response.text().await else {
            return;
        };
        assert_eq!(status, 201, "create `{id}`: {body}");
        ack(&id, 1);
        for version in 1..=(i % 4) as i64 {
            let verb = if version % 2 == 1 {
                "disable"
            } else {
                "enable"
            };
            let Ok(response) = client
                .post(format!("{base}/v1/rules/{id}/{verb}"))
                .bearer_auth(TOKEN)
                .header("if-match", format!("\"{version}\""))
                .send()
                .await
            else {
                return;
            };
            let status = response.status();
            let Ok(body) = response.text().await else {
                return;
            };
            assert_eq!(status, 200, "{verb} `{id}` at {version}: {body}");
            ack(&id, version + 1);
        }
    }
}

async fn crash_rounds(db: &TestDb) {
    let seed = std::env::var("RULEBOOK_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("crash test seed {seed} (RULEBOOK_CRASH_SEED replays it)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let rounds = std::env::var("RULEBOOK_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ROUNDS);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let env = [("RULEBOOK_ADMIN_TOKEN", TOKEN)];
    for round in 0..rounds {
        let mut server = Running::start(&db.url, &env);
        server.ready().await;
        let seen = ledger.lock().clone();
        verify(db, &server, &seen).await;

        let kill_after = rng.gen_range(2..40);
        let acks = Arc::new(AtomicUsize::new(0));
        let kill = Arc::new(tokio::sync::Notify::new());
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                tokio::spawn(writer(
                    server.base.clone(),
                    round,
                    w,
                    ledger.clone(),
                    acks.clone(),
                    kill.clone(),
                    kill_after,
                ))
            })
            .collect();
        tokio::time::timeout(Duration::from_secs(60), kill.notified())
            .await
            .expect("the writers never reached the kill point");
        // A few more scheduler turns so the kill lands at a varying stage of the other writes.
        for _ in 0..rng.gen_range(0..50) {
            tokio::task::yield_now().await;
        }
        server.kill();
        for w in writers {
            w.await.unwrap();
        }
    }
    let server = Running::start(&db.url, &env);
    server.ready().await;
    let ledger = ledger.lock().clone();
    let unacknowledged = verify(db, &server, &ledger).await;
    eprintln!(
        "crash test: {rounds} SIGKILL rounds, {} acknowledged writes verified, {unacknowledged} in-flight writes committed whole, {} rules sent",
        ledger.acks,
        ledger.attempted.len()
    );
    assert!(ledger.acks >= rounds * 2, "every round acknowledged writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write_loses_no_acknowledged_write_on_sqlite() {
    crash_rounds(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write_loses_no_acknowledged_write_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    crash_rounds(&db).await;
}
