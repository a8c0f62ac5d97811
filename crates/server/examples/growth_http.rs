//! How the service's cost grows with the work, over HTTP: for 10, 100, 1,000 and 10,000 rules per
//! entry point, the time to import them (`POST /v1/rules/import`, NDJSON, one transaction), the
//! latency of the first evaluation after the entry point is dropped from the cache (a cold load:
//! read from the store, compile, evaluate) against a warm one, and the evaluation throughput and
//! p50/p99 latency with one match and with half the rules matching; then, for 1 to 10,000
//! tenants (each with a 10-rule entry point) under the tenant-cache bound (`--tenant-cache`,
//! default 100), the throughput, p50/p99 latency and cache hit rate when each request goes to a
//! tenant drawn at random.
//!
//! The server runs in this process on port 0 with a temporary SQLite file, on a runtime of its
//! own (two workers), and the load on another, as two processes would; traffic goes to 127.0.0.1
//! only and every loop stops at its deadline. The rules are those of the `growth` example of
//! `rulebook-rules`. Prints two markdown tables and writes two CSVs for `scripts/growth-plot
//! --http` (which draws `docs/growth-http.png`).
//!
//! `cargo run --release -p rulebook --example growth_http -- [RULES_CSV [TENANTS_CSV]]`
//! (defaults `target/growth-http.csv`, `target/growth-tenants.csv`). `RULEBOOK_GROWTH_SIZES` and
//! `RULEBOOK_GROWTH_TENANTS` override the counts (comma-separated), `RULEBOOK_GROWTH_SECONDS`
//! (default 3) the length of each load phase and `RULEBOOK_GROWTH_CONNECTIONS` (default 16) its
//! connections. About three minutes with the defaults, most of it creating 10,000 tenants.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rulebook::{AppState, Config, Server};
use rulebook_rules::{Action, EntryPoint, Rule};
use rulebook_store::Author;
use serde_json::{json, Value};

#[path = "../benches/driver/mod.rs"]
mod driver;
use driver::PickTenant;

const ADMIN: &str = "growth-admin";
const TENANT_CACHE: u64 = 100;
const RULES_PER_TENANT: usize = 10;

fn numbers(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` rules of `entry_point`, as in the `growth` example: with `many`, half of them match
/// [`context`], else exactly one does.
fn rules(entry_point: &str, n: usize, many: bool) -> Vec<Rule> {
    let ep = EntryPoint::parse(entry_point).unwrap();
    (0..n)
        .map(|i| {
            let mut rule = Rule::new(format!("{entry_point}_{i:05}"));
            rule.entry_point = Some(ep.clone());
            rule.priority = (i % 100) as i32;
            let customer = if many && i % 2 == 0 {
                "c0".to_owned()
            } else {
                format!("c{i}")
            };
            rule.condition = json!({"and": [
                {"==": [{"var": "customer"}, customer]},
                {">": [{"var": "total"}, {"var": "params.threshold"}]}
            ]});
            rule.params = json!({"threshold": i % 100}).as_object().unwrap().clone();
            rule.actions = vec![Action::new("set_value")
                .with("field", format!("flag_{i}"))
                .with("value", json!({"*": [{"var": "total"}, 0.2]}))];
            rule
        })
        .collect()
}

fn context() -> Value {
    json!({"context": {"customer": "c0", "total": 260}})
}

struct Phase {
    requests: usize,
    errors: usize,
    seconds: f64,
    p50: Duration,
    p99: Duration,
}

impl Phase {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// `connections` loops posting `body` for `seconds` after a one-second warm-up, each request to
/// the tenant `tenant` picks (a fresh pick per request).
async fn drive(
    url: String,
    body: Value,
    connections: usize,
    seconds: u64,
    tenant: PickTenant,
) -> Phase {
    let body = serde_json::to_vec(&body).unwrap();
    let load = driver::drive(url, body, connections, seconds, Some(tenant)).await;
    Phase {
        requests: load.requests,
        errors: load.errors,
        seconds: seconds as f64,
        p50: load.p50,
        p99: load.p99,
    }
}

fn default_tenant() -> PickTenant {
    Arc::new(|| "default".to_owned())
}

/// Posts `rules` to the import endpoint as NDJSON (what `rulebook rules import` sends); returns
/// the seconds it took.
async fn import(client: &reqwest::Client, base: &str, rules: &[Rule]) -> f64 {
    let mut body = Vec::new();
    for rule in rules {
        serde_json::to_writer(&mut body, rule).unwrap();
        body.push(b'\n');
    }
    let started = Instant::now();
    let response = client
        .post(format!("{base}/v1/rules/import"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert!(status.is_success(), "import failed: {status} {answer}");
    started.elapsed().as_secs_f64()
}

/// One evaluation's latency and answer.
async fn evaluate(client: &reqwest::Client, url: &str) -> (Duration, Value) {
    let started = Instant::now();
    let response = client.post(url).json(&context()).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let answer: Value = response.json().await.unwrap();
    (started.elapsed(), answer)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn start(path: &std::path::Path) -> (SocketAddr, AppState) {
    let mut config = Config::with_database(format!("sqlite://{}", path.display())).unwrap();
    config.admin_token = Some(ADMIN.to_owned());
    config.log = "warn".to_owned();
    config.tenant_cache = TENANT_CACHE;
    let server = Server::start(&config).await.unwrap();
    let state = server.state().clone();
    while !state.is_ready() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let listener = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve(listener, std::future::pending()));
    (addr, state)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rules_csv = args
        .next()
        .unwrap_or_else(|| "target/growth-http.csv".to_owned());
    let tenants_csv = args
        .next()
        .unwrap_or_else(|| "target/growth-tenants.csv".to_owned());
    let sizes = numbers("RULEBOOK_GROWTH_SIZES", &[10, 100, 1_000, 10_000]);
    let tenant_counts = numbers("RULEBOOK_GROWTH_TENANTS", &[1, 10, 100, 1_000, 10_000]);
    let seconds = env_number("RULEBOOK_GROWTH_SECONDS", 3);
    let connections = env_number("RULEBOOK_GROWTH_CONNECTIONS", 16) as usize;
    let dir = tempfile::tempdir().unwrap();

    // The server gets a runtime of its own, and the load its own, as two processes would.
    let (server, load) = driver::runtimes();
    let (addr, state) = server.block_on(start(&dir.path().join("growth.db")));
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();

    println!(
        "Rules per entry point over HTTP ({connections} connections, {seconds} s per phase, loopback, SQLite)\n"
    );
    println!("| rules | import | cold evaluation | warm evaluation | 1 match: req/s | p50 | p99 | half match: req/s | p50 | p99 |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut csv = String::from(
        "rules,import_ms,cold_ms,warm_us,one_rps,one_p50_us,one_p99_us,half_rps,half_p50_us,half_p99_us\n",
    );
    for &n in &sizes {
        let few = format!("growth_{n}");
        let many = format!("growth_many_{n}");
        let import_time = load.block_on(import(&client, &base, &rules(&few, n, false)));
        load.block_on(import(&client, &base, &rules(&many, n, true)));
        let url = |ep: &str| format!("{base}/v1/evaluate/{ep}");
        let (one_url, half_url) = (url(&few), url(&many));
        // The answers are right before they are timed.
        let (_, answer) = load.block_on(evaluate(&client, &one_url));
        assert_eq!(answer["matched"].as_array().unwrap().len(), 1, "{answer}");
        let (_, answer) = load.block_on(evaluate(&client, &half_url));
        assert_eq!(answer["matched"].as_array().unwrap().len(), n.div_ceil(2));

        let ep = EntryPoint::parse(&few).unwrap();
        let cold = median(
            (0..5)
                .map(|_| {
                    state
                        .registry()
                        .invalidate_entry_points("default", std::slice::from_ref(&ep));
                    load.block_on(evaluate(&client, &one_url)).0
                })
                .collect(),
        );
        let warm = median(
            (0..25)
                .map(|_| load.block_on(evaluate(&client, &one_url)).0)
                .collect(),
        );
        let one = load.block_on(drive(
            one_url,
            context(),
            connections,
            seconds,
            default_tenant(),
        ));
        let half = load.block_on(drive(
            half_url,
            context(),
            connections,
            seconds,
            default_tenant(),
        ));
        assert_eq!(one.errors + half.errors, 0, "requests failed");
        println!(
            "| {n} | {:.0} ms | {:.2} ms | {:.0} µs | {:.0} | {:.0} µs | {:.0} µs | {:.0} | {:.0} µs | {:.0} µs |",
            import_time * 1e3,
            ms(cold),
            us(warm),
            one.rps(),
            us(one.p50),
            us(one.p99),
            half.rps(),
            us(half.p50),
            us(half.p99),
        );
        csv.push_str(&format!(
            "{n},{:.3},{:.3},{:.1},{:.0},{:.1},{:.1},{:.0},{:.1},{:.1}\n",
            import_time * 1e3,
            ms(cold),
            us(warm),
            one.rps(),
            us(one.p50),
            us(one.p99),
            half.rps(),
            us(half.p50),
            us(half.p99),
        ));
    }
    std::fs::write(&rules_csv, csv).unwrap();

    println!(
        "\nTenants drawn at random per request, each with a {RULES_PER_TENANT}-rule entry point, tenant cache bound {TENANT_CACHE}\n"
    );
    println!("| tenants | req/s | p50 | p99 | cache hit rate | tenants cached |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut csv = String::from("tenants,rps,p50_us,p99_us,hit_rate,tenants_cached\n");
    let mut created = 0;
    let store = state.store().clone();
    for &count in &tenant_counts {
        server.block_on(async {
            let author = Author::new("growth");
            for t in created..count {
                let tenant = format!("t{t:05}");
                store.create_tenant(&tenant).await.unwrap();
                store
                    .import_rules(&tenant, rules("shop", RULES_PER_TENANT, false), &author)
                    .await
                    .unwrap();
            }
        });
        created = created.max(count);
        let before = state.registry().cache_stats();
        let pick: PickTenant =
            Arc::new(move || format!("t{:05}", rand::random::<u32>() as usize % count));
        let phase = load.block_on(drive(
            format!("{base}/v1/evaluate/shop"),
            context(),
            connections,
            seconds,
            pick,
        ));
        assert_eq!(phase.errors, 0, "requests failed");
        let after = state.registry().cache_stats();
        let hits = (after.hits - before.hits) as f64;
        let misses = (after.misses - before.misses) as f64;
        let hit_rate = hits / (hits + misses).max(1.0);
        let cached = state.tenants_cached();
        println!(
            "| {count} | {:.0} | {:.0} µs | {:.0} µs | {:.1}% | {cached} |",
            phase.rps(),
            us(phase.p50),
            us(phase.p99),
            hit_rate * 100.0,
        );
        csv.push_str(&format!(
            "{count},{:.0},{:.1},{:.1},{:.4},{cached}\n",
            phase.rps(),
            us(phase.p50),
            us(phase.p99),
            hit_rate,
        ));
    }
    std::fs::write(&tenants_csv, csv).unwrap();
    println!("\nwrote {rules_csv} and {tenants_csv}");
    drop(server);
}
