//! The replica's change stream cut in the middle of an event: a TCP proxy between the replica
//! and the server passes everything through, except that it cuts chosen change-stream
//! connections partway through a chosen `change` event (after its `event:` line, in the middle
//! of its `data:` line, or with every line sent but the blank line that ends it). The replica
//! must reconnect with a `Last-Event-ID` below the cut event, receive it again, and converge on
//! exactly the server's snapshot, without a new snapshot of its own. (A `reset` after pruning,
//! and the server killed and restarted, are in `tests/replica.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{sorted_rules, Running, TestDb};
use parking_lot::Mutex;
use rulebook_client::{Client, Replica};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(20);
const MARKER: &[u8] = b"event: change\n";

/// Where in an event a cut falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Within {
    /// Right after the `event: change` line.
    AfterEventLine,
    /// Halfway through the `data:` line.
    MidData,
    /// Every line sent, but not the blank line that ends the event.
    BeforeBlankLine,
}

/// Cut a change-stream connection in its `nth` change event (1-based), at `within`.
#[derive(Debug, Clone, Copy)]
struct Cut {
    nth: usize,
    within: Within,
}

/// What the proxy saw of one change-stream connection.
#[derive(Debug, Clone)]
struct StreamSeen {
    /// The `Last-Event-ID` the replica sent.
    last_event_id: Option<i64>,
    /// The `id` of the event cut, and where.
    cut: Option<(i64, Within)>,
}

#[derive(Default)]
struct ProxyState {
    /// Cuts for the next change-stream connections, in order; later ones pass through.
    plan: VecDeque<Cut>,
    streams: Vec<StreamSeen>,
}

/// A TCP proxy on loopback in front of `upstream`.
struct Proxy {
    addr: String,
    state: Arc<Mutex<ProxyState>>,
}

impl Proxy {
    async fn start(upstream: String, plan: Vec<Cut>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(ProxyState {
            plan: plan.into(),
            streams: Vec::new(),
        }));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream).await.unwrap();
                tokio::spawn(relay(client, server, Arc::clone(&shared)));
            }
        });
        Proxy { addr, state }
    }

    fn streams(&self) -> Vec<StreamSeen> {
        self.state.lock().streams.clone()
    }

    fn cuts_made(&self) -> usize {
        self.state
            .lock()
            .streams
            .iter()
            .filter(|s| s.cut.is_some())
            .count()
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// The `last-event-id` header of a request head, if it has one.
fn last_event_id(head: &str) -> Option<i64> {
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("last-event-id")
            .then(|| value.trim().parse().unwrap())
    })
}

/// Relays one connection. Requests go up untouched; once a request for `/v1/changes` has gone
/// up, the connection is a change stream and the next cut of the plan (if any) applies to what
/// comes down.
async fn relay(mut client: TcpStream, mut server: TcpStream, state: Arc<Mutex<ProxyState>>) {
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    // The stream this connection is (its index in `streams`) and its cut, once known.
    let stream: Mutex<Option<(usize, Option<Cut>)>> = Mutex::new(None);
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut head = Vec::new();
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            head.extend_from_slice(&buf[..n]);
            if let Some(end) = find(&head, b"\r\n\r\n", 0) {
                let request = String::from_utf8_lossy(&head[..end]).into_owned();
                head.drain(..end + 4);
                if request.starts_with("GET /v1/changes") {
                    let mut state = state.lock();
                    let cut = state.plan.pop_front();
                    state.streams.push(StreamSeen {
                        last_event_id: last_event_id(&request),
                        cut: None,
                    });
                    *stream.lock() = Some((state.streams.len() - 1, cut));
                }
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        // What came down since this connection became a stream, and how much of it went on.
        let mut seen: Vec<u8> = Vec::new();
        let mut sent = 0;
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let plan = *stream.lock();
            let Some((index, Some(cut))) = plan else {
                if client_write.write_all(&buf[..n]).await.is_err() {
                    return;
                }
                continue;
            };
            seen.extend_from_slice(&buf[..n]);
            // The start of the nth change event, if it has come.
            let mut start = None;
            let mut from = 0;
            for _ in 0..cut.nth {
                match find(&seen, MARKER, from) {
                    Some(at) => {
                        start = Some(at);
                        from = at + MARKER.len();
                    }
                    None => {
                        start = None;
                        break;
                    }
                }
            }
            // Pass on what cannot be the target event (keeping back a marker cut in two).
            let safe = match start {
                Some(start) => start,
                None => seen.len().saturating_sub(MARKER.len() - 1),
            };
            if safe > sent {
                if client_write.write_all(&seen[sent..safe]).await.is_err() {
                    return;
                }
                sent = safe;
            }
            let Some(start) = start else { continue };
            let Some(end) = find(&seen, b"\n\n", start) else {
                continue;
            };
            let event = String::from_utf8_lossy(&seen[start..end]).into_owned();
            let id: i64 = event
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .unwrap()
                .parse()
                .unwrap();
            let at = match cut.within {
                Within::AfterEventLine => start + MARKER.len(),
                Within::MidData => {
                    let data = find(&seen, b"data: ", start).unwrap();
                    let line_end = find(&seen, b"\n", data).unwrap();
                    data + (line_end - data) / 2
                }
                Within::BeforeBlankLine => end + 1,
            };
            let _ = client_write.write_all(&seen[sent..at]).await;
            let _ = client_write.flush().await;
            state.lock().streams[index].cut = Some((id, cut.within));
            return;
        }
    };
    // Whichever direction ends first ends the connection: both sockets close when dropped.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

fn rule(id: &str, entry_point: &str) -> Value {
    json!({
        "id": id,
        "name": format!("fault rule {id}"),
        "entry_point": entry_point,
        "priority": 2,
        "condition": {"==": [{"var": "country"}, "FR"]},
        "params": {"n": 0},
        "actions": [{"type": "display_message", "message": format!("from {id}")}]
    })
}

/// The `round`th write of a cycle that creates, changes, disables, enables and deletes rules.
async fn write(client: &Client, round: usize) -> i64 {
    let id = format!("F{}", round % 3);
    let mut params = Map::new();
    params.insert("n".into(), json!(round));
    match round / 3 % 5 {
        0 => {
            client
                .create_rule(&rule(&id, &format!("faults_{}", round % 2)))
                .await
                .unwrap()
                .seq
        }
        1 => client.update_params(&id, params).await.unwrap().seq,
        2 => client.set_enabled(&id, false).await.unwrap().seq,
        3 => client.set_enabled(&id, true).await.unwrap().seq,
        _ => client.delete_rule(&id).await.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_mid_event_resumes_from_last_event_id_and_misses_nothing() {
    let db = TestDb::sqlite();
    let server = Running::start(&db.url, &[("RULEBOOK_CHANGES_HEARTBEAT", "100ms")]);
    server.ready().await;
    let token = server.token.clone().unwrap();
    let direct = Client::new(&server.base).with_token(&token);
    let plan = vec![
        Cut {
            nth: 2,
            within: Within::MidData,
        },
        // The event cut above comes first again on the next connection: cut it once more.
        Cut {
            nth: 1,
            within: Within::AfterEventLine,
        },
        Cut {
            nth: 3,
            within: Within::BeforeBlankLine,
        },
        // In the burst.
        Cut {
            nth: 4,
            within: Within::MidData,
        },
    ];
    let cuts = plan.len();
    let proxy = Proxy::start(server.base.trim_start_matches("http://").to_owned(), plan).await;
    let replica = Replica::start(Client::new(&proxy.addr).with_token(&token))
        .await
        .unwrap();

    // One write at a time, each waited for, until the first three cuts were made: each falls on
    // an event sent alone, or first in a catch-up.
    let started = Instant::now();
    let mut round = 0;
    while proxy.cuts_made() < cuts - 1 {
        assert!(
            started.elapsed() < WAIT,
            "the proxy made {} of {cuts} cuts",
            proxy.cuts_made()
        );
        let seq = write(&direct, round).await;
        round += 1;
        replica.wait_for(seq, WAIT).await.unwrap();
    }
    // Then a burst, waited for as a whole: the last cut falls among events sent back to back,
    // and the catch-up after it brings the rest in a few reads.
    let mut head = 0;
    for _ in 0..20 {
        head = write(&direct, round).await;
        round += 1;
    }
    replica.wait_for(head, WAIT).await.unwrap();

    let streams = proxy.streams();
    eprintln!("{round} writes; change-stream connections as the proxy saw them: {streams:?}");
    let cut: Vec<(usize, i64, Within)> = streams
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.cut.map(|(id, within)| (i, id, within)))
        .collect();
    assert_eq!(cut.len(), cuts, "every planned cut was made: {streams:#?}");
    for (i, id, within) in cut {
        let next = streams
            .get(i + 1)
            .unwrap_or_else(|| panic!("no reconnection after the cut of event {id}"));
        let resumed = next
            .last_event_id
            .unwrap_or_else(|| panic!("reconnected without Last-Event-ID: {next:?}"));
        assert!(
            resumed < id,
            "cut {within:?} in event {id}, the replica resumed after {resumed}: it took a partial event as received"
        );
    }

    // Nothing missed: the replica holds exactly the server's rules at the head, from the one
    // snapshot it started with.
    let view = replica.view().await.unwrap();
    let snapshot = direct.snapshot(Some(view.seq())).await.unwrap();
    assert_eq!(snapshot.seq, view.seq(), "nothing was written since");
    assert_eq!(
        sorted_rules(view.rules().cloned()),
        sorted_rules(snapshot.body.rules)
    );
    let context = json!({"country": "FR"});
    for entry_point in ["faults_0", "faults_1"] {
        let local = replica.evaluate(entry_point, &context).await.unwrap();
        let remote = direct.evaluate(entry_point, &context, None).await.unwrap();
        assert_eq!(local.matched, remote.body.matched, "{entry_point}");
        assert_eq!(local.actions, remote.body.actions, "{entry_point}");
    }
    let status = replica.status();
    assert_eq!(status.snapshots, 1, "caught up from the stream: {status:?}");
    assert!(status.connected, "{status:?}");
}
