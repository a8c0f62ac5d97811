//! `GET /v1/snapshot` and `GET /v1/changes` against the real binary: the snapshot's `ETag`, the
//! change stream's events in `seq` order with nothing but invalidation targets, tenant scoping,
//! plain-SQL writes, resuming from `Last-Event-ID`, `reset` past the pruned log, heartbeats,
//! and the stream ending with a reason when the server shuts down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::time::Duration;

use common::{banner, http, Running, TestDb};
use reqwest::Method;
use rulebook_client::sse::{SseEvent, SseParser};
use serde_json::{json, Value};
use sqlx::Connection;

const WAIT: Duration = Duration::from_secs(15);

/// An open change stream.
struct Stream {
    response: reqwest::Response,
    parser: SseParser,
    ready: std::collections::VecDeque<SseEvent>,
}

impl Stream {
    async fn open(
        server: &Running,
        tenant: &str,
        after: Option<i64>,
        last_id: Option<&str>,
    ) -> Stream {
        let url = match after {
            Some(after) => server.url(&format!("/v1/changes?after={after}")),
            None => server.url("/v1/changes"),
        };
        let mut request = server.client.get(url).header("x-tenant-id", tenant);
        if let Some(id) = last_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Stream {
            response,
            parser: SseParser::new(1 << 20),
            ready: Default::default(),
        }
    }

    /// The next event, or `None` when the stream ended.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .expect("an event within the wait")
                .unwrap()?;
            self.ready.extend(self.parser.feed(&chunk).unwrap());
        }
    }

    /// The next event that is not a heartbeat.
    async fn next_change(&mut self) -> SseEvent {
        loop {
            let event = self.next().await.expect("the stream goes on");
            if event.event != "heartbeat" {
                return event;
            }
        }
    }
}

fn data(event: &SseEvent) -> Value {
    serde_json::from_str(&event.data).unwrap()
}

async fn write(
    server: &Running,
    token: &str,
    method: Method,
    path: &str,
    tenant: &str,
    body: Option<Value>,
) -> i64 {
    let (status, headers, body) = http(
        &server.client,
        method,
        &server.url(path),
        Some(token),
        &[("x-tenant-id", tenant)],
        body,
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    headers["x-rulebook-seq"].to_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_stream_sends_each_change_once_in_seq_order_and_resumes() {
    let db = TestDb::sqlite();
    let mut server = Running::start(&db.url, &[("RULEBOOK_CHANGES_HEARTBEAT", "200ms")]);
    server.ready().await;
    let token = server.token.clone().unwrap();
    let mut sql = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query("INSERT INTO tenants (id) VALUES ('acme')")
        .execute(&mut sql)
        .await
        .unwrap();

    // The snapshot, and 304 while nothing of the tenant changes.
    let snapshot = server
        .client
        .get(server.url("/v1/snapshot"))
        .send()
        .await
        .unwrap();
    assert_eq!(snapshot.status(), 200);
    let etag = snapshot.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = snapshot.json().await.unwrap();
    let at = body["seq"].as_i64().unwrap();
    assert_eq!(body["tenant"], "default");
    assert!(body["rules"].as_array().unwrap().len() >= 3, "{body}");
    let again = server
        .client
        .get(server.url("/v1/snapshot"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.headers().contains_key("x-rulebook-seq"));

    let mut stream = Stream::open(&server, "default", Some(at), None).await;
    let hello = stream.next().await.unwrap();
    assert_eq!(hello.event, "heartbeat", "{hello:?}");
    assert_eq!(hello.id.as_deref(), Some(at.to_string().as_str()));

    // Three API writes, one in another tenant, one typed into SQL.
    let created = write(
        &server,
        &token,
        Method::POST,
        "/v1/rules",
        "default",
        Some(banner("S1", "stream", "hello")),
    )
    .await;
    write(
        &server,
        &token,
        Method::POST,
        "/v1/rules",
        "acme",
        Some(banner("A1", "stream", "other tenant")),
    )
    .await;
    let disabled = write(
        &server,
        &token,
        Method::POST,
        "/v1/rules/S1/disable",
        "default",
        None,
    )
    .await;
    sqlx::query("UPDATE rules SET priority = 9 WHERE tenant = 'default' AND id = 'S1'")
        .execute(&mut sql)
        .await
        .unwrap();
    let deleted = write(
        &server,
        &token,
        Method::DELETE,
        "/v1/rules/S1",
        "default",
        None,
    )
    .await;

    let mut seen = Vec::new();
    while seen.len() < 4 {
        let event = stream.next_change().await;
        assert_eq!(event.event, "change", "{event:?}");
        let change = data(&event);
        assert_eq!(event.id, Some(change["seq"].to_string()));
        assert_eq!(
            change["rule_id"], "S1",
            "only the caller's tenant: {change}"
        );
        assert_eq!(change["entry_points"], json!(["stream"]));
        let mut keys: Vec<&String> = change.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["entry_points", "op", "rule_id", "seq", "tags"],
            "invalidation targets, never values"
        );
        seen.push((
            change["seq"].as_i64().unwrap(),
            change["op"].as_str().unwrap().to_owned(),
        ));
    }
    let seqs: Vec<i64> = seen.iter().map(|(s, _)| *s).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in seq order: {seen:?}"
    );
    assert_eq!(seqs[0], created);
    assert_eq!(seqs[1], disabled);
    assert_eq!(seqs[3], deleted);
    let ops: Vec<&str> = seen.iter().map(|(_, op)| op.as_str()).collect();
    assert_eq!(ops, ["insert", "update", "update", "delete"]);
    // A heartbeat says how far the stream has come.
    let beat = loop {
        let event = stream.next().await.unwrap();
        if event.event == "heartbeat" {
            break event;
        }
    };
    assert!(data(&beat)["seq"].as_i64().unwrap() >= deleted);

    // Resuming from an event's id sends exactly what came after it.
    let mut resumed = Stream::open(&server, "default", Some(0), Some(&created.to_string())).await;
    let mut after = Vec::new();
    while after.len() < 3 {
        after.push(data(&resumed.next_change().await)["seq"].as_i64().unwrap());
    }
    assert_eq!(after, seqs[1..]);
    let (status, _, body) = http(
        &server.client,
        Method::GET,
        &server.url("/v1/changes?after=soon"),
        None,
        &[],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_cursor"))
    );

    // Back to the same rules (S1 came and went), the snapshot is unchanged; with S2 it is not.
    let same = server
        .client
        .get(server.url("/v1/snapshot"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 304);
    write(
        &server,
        &token,
        Method::POST,
        "/v1/rules",
        "default",
        Some(banner("S2", "stream", "second")),
    )
    .await;
    let changed = server
        .client
        .get(server.url("/v1/snapshot"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);

    // Past the pruned log, the stream says `reset` and ends.
    let store = rulebook_store::Store::open(&db.url).await.unwrap();
    assert!(store.prune_changes(Duration::ZERO).await.unwrap() > 0);
    let mut old = Stream::open(&server, "default", Some(at), None).await;
    let reset = old.next().await.unwrap();
    assert_eq!(reset.event, "reset", "{reset:?}");
    assert!(data(&reset)["reason"]
        .as_str()
        .unwrap()
        .contains("snapshot"));
    assert!(old.next().await.is_none(), "the stream ends after a reset");

    // Shutting down ends open streams with a reason instead of hanging the shutdown.
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    let end = loop {
        let event = stream
            .next()
            .await
            .expect("an end event before the stream closes");
        // S2's creation is still to come on this stream.
        if event.event != "heartbeat" && event.event != "change" {
            break event;
        }
    };
    assert_eq!(end.event, "end", "{end:?}");
    assert!(data(&end)["reason"]
        .as_str()
        .unwrap()
        .contains("shutting down"));
    assert!(end.id.unwrap().parse::<i64>().unwrap() >= deleted);
}
