//! Pages of `GET /v1/rules` and `GET /v1/rules/{id}/history`: `limit` and an opaque `cursor`
//! that names a sort key, not an offset, so paging while others write returns every rule that was
//! there the whole time exactly once. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::Method;
use common::{decision_ids, req, Api, ADMIN};
use rulebook_testkit::{on_both_backends, TestDb};
use serde_json::{json, Value};

on_both_backends!(
    pages_cover_the_list_in_order_and_end_with_no_cursor,
    a_page_after_writes_before_its_cursor_starts_where_the_last_ended,
    paging_while_a_writer_churns_returns_every_untouched_rule_exactly_once,
    history_pages_by_version,
    decision_pages_follow_time_then_id,
);

/// A tenant of the tests' own: the default tenant holds the seeded examples.
const TENANT: &str = "paging";

/// The server on `db`, with [`TENANT`] made.
async fn start(db: &TestDb) -> Api {
    let api = Api::start_on(db.shared(), |_| {}).await;
    api.store().create_tenant(TENANT).await.unwrap();
    api
}

fn rule(id: &str, priority: i64) -> Value {
    json!({"id": id, "entry_point": "paged", "priority": priority, "condition": true})
}

async fn create(api: &Api, id: &str, priority: i64) {
    let r = api
        .call(
            req(Method::POST, "/v1/rules")
                .token(ADMIN)
                .tenant(TENANT)
                .json(rule(id, priority)),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn delete(api: &Api, id: &str) {
    let r = api
        .call(
            req(Method::DELETE, &format!("/v1/rules/{id}"))
                .token(ADMIN)
                .tenant(TENANT)
                .header("if-match", "\"1\"")
                .json(json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// One page: its rule ids and the next cursor.
async fn page(api: &Api, path: &str, cursor: Option<&str>) -> (Vec<String>, Option<String>) {
    let url = match cursor {
        Some(c) => format!("{path}&cursor={c}"),
        None => path.to_owned(),
    };
    let r = api
        .call(req(Method::GET, &url).token(ADMIN).tenant(TENANT))
        .await;
    assert_eq!(r.status, 200, "{url}: {}", r.text);
    let ids = r.body["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| rule["id"].as_str().unwrap().to_owned())
        .collect();
    (ids, r.body["next_cursor"].as_str().map(str::to_owned))
}

/// Rule `P{n}` for n in 0..count, with priorities that do not follow the ids.
async fn seed(api: &Api, count: usize) -> Vec<String> {
    let mut expected: Vec<(i64, String)> = Vec::new();
    for n in 0..count {
        let id = format!("P{n:02}");
        let priority = i64::try_from((n * 7) % 5).unwrap();
        create(api, &id, priority).await;
        expected.push((priority, id));
    }
    expected.sort();
    expected.into_iter().map(|(_, id)| id).collect()
}

async fn pages_cover_the_list_in_order_and_end_with_no_cursor(db: &TestDb) {
    let api = start(db).await;
    let expected = seed(&api, 25).await;
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    loop {
        let (ids, next) = page(&api, "/v1/rules?limit=10", cursor.as_deref()).await;
        sizes.push(ids.len());
        seen.extend(ids);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(seen, expected);
    // Without `limit`, the default page holds them all; with an entry point, only its rules.
    let (all, next) = page(&api, "/v1/rules?entry_point=paged", None).await;
    assert_eq!((all, next), (expected, None));
    let (none, _) = page(&api, "/v1/rules?entry_point=elsewhere&limit=3", None).await;
    assert!(none.is_empty());

    for bad in [
        "/v1/rules?limit=0",
        "/v1/rules?limit=10001",
        "/v1/rules?cursor=nonsense",
    ] {
        let r = api
            .call(req(Method::GET, bad).token(ADMIN).tenant(TENANT))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(
            ["bad_limit", "bad_cursor"].contains(&r.code()),
            "{bad}: {}",
            r.text
        );
    }
}

async fn a_page_after_writes_before_its_cursor_starts_where_the_last_ended(db: &TestDb) {
    let api = start(db).await;
    let expected = seed(&api, 25).await;
    let (first, cursor) = page(&api, "/v1/rules?limit=10", None).await;
    assert_eq!(first, expected[..10]);
    // Behind the cursor: one rule gone, one new; far ahead of it: one new.
    delete(&api, &first[3]).await;
    create(&api, "A-EARLY", -5).await;
    create(&api, "Z-LATE", 99).await;
    let (second, cursor) = page(&api, "/v1/rules?limit=10", cursor.as_deref()).await;
    assert_eq!(
        second,
        expected[10..20],
        "an offset would have shifted by one"
    );
    let (third, end) = page(&api, "/v1/rules?limit=10", cursor.as_deref()).await;
    let mut tail = expected[20..].to_vec();
    tail.push("Z-LATE".into());
    assert_eq!((third, end), (tail, None));
}

async fn paging_while_a_writer_churns_returns_every_untouched_rule_exactly_once(db: &TestDb) {
    let api = Arc::new(start(db).await);
    let untouched = seed(&api, 40).await;
    let stop = Arc::new(AtomicBool::new(false));
    // The writer creates and deletes rules of its own, with priorities among the others'.
    let writer = {
        let (api, stop) = (api.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0_i64;
            while !stop.load(Ordering::SeqCst) {
                let id = format!("CHURN-{n}");
                create(&api, &id, n % 5).await;
                if n % 2 == 0 {
                    delete(&api, &id).await;
                }
                n += 1;
                tokio::task::yield_now().await;
            }
            n
        })
    };
    for _ in 0..15 {
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut cursor = None;
        loop {
            let (ids, next) = page(&api, "/v1/rules?limit=7", cursor.as_deref()).await;
            for id in ids {
                *counts.entry(id).or_default() += 1;
            }
            tokio::task::yield_now().await;
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        for id in &untouched {
            assert_eq!(counts.get(id), Some(&1), "{id} in one pass: {counts:?}");
        }
        assert!(
            counts.values().all(|n| *n == 1),
            "a rule seen twice: {counts:?}"
        );
    }
    stop.store(true, Ordering::SeqCst);
    let writes = writer.await.unwrap();
    assert!(writes > 0, "the writer wrote while the pages were read");
}

async fn history_pages_by_version(db: &TestDb) {
    let api = start(db).await;
    create(&api, "H1", 0).await;
    for version in 1..5 {
        let path = if version % 2 == 1 {
            "disable"
        } else {
            "enable"
        };
        let r = api
            .call(
                req(Method::POST, &format!("/v1/rules/H1/{path}"))
                    .token(ADMIN)
                    .tenant(TENANT)
                    .header("if-match", &format!("\"{version}\"")),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let mut versions = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("/v1/rules/H1/history?limit=2&cursor={c}"),
            None => "/v1/rules/H1/history?limit=2".to_owned(),
        };
        let r = api
            .call(req(Method::GET, &url).token(ADMIN).tenant(TENANT))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let page: Vec<i64> = r.body["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["version"].as_i64().unwrap())
            .collect();
        sizes.push(page.len());
        versions.extend(page);
        match r.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(versions, [1, 2, 3, 4, 5]);
}

async fn decision_pages_follow_time_then_id(db: &TestDb) {
    let api = Api::start_on(db.shared(), |c| c.decision_log = true).await;
    api.store().create_tenant(TENANT).await.unwrap();
    create(&api, "D1", 0).await;
    let mut made = Vec::new();
    for n in 0..7 {
        let r = api
            .call(
                req(Method::POST, "/v1/evaluate/paged")
                    .token(ADMIN)
                    .tenant(TENANT)
                    .json(json!({"context": {"n": n}})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        made.push(r.body["decision_id"].as_str().unwrap().to_owned());
    }
    api.state.decision_log().unwrap().flush().await;
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("/v1/decisions?limit=3&cursor={c}"),
            None => "/v1/decisions?limit=3".to_owned(),
        };
        let r = api
            .call(req(Method::GET, &url).token(ADMIN).tenant(TENANT))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let page = decision_ids(&r.body);
        sizes.push(page.len());
        seen.extend(page.into_iter().map(str::to_owned));
        match r.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(sizes, [3, 3, 1]);
    let whole = api
        .call(
            req(Method::GET, "/v1/decisions?limit=1000")
                .token(ADMIN)
                .tenant(TENANT),
        )
        .await;
    let whole = decision_ids(&whole.body);
    assert_eq!(
        seen, whole,
        "the pages are the one-page listing, in its order"
    );
    let mut seen_sorted = seen.clone();
    seen_sorted.sort();
    made.sort();
    assert_eq!(seen_sorted, made, "each decision once");
}
