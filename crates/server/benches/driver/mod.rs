//! The HTTP load driver shared by the load benchmark (`benches/load.rs`) and the growth example
//! (`examples/growth_http.rs`): `connections` loops, each posting one body over its own
//! keep-alive connection as fast as answers come back, with a one-second warm-up whose requests
//! are not counted, and every loop stopping at its deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Two runtimes of two workers each: one for the servers, one for the load, as two processes
/// would have.
pub fn runtimes() -> (tokio::runtime::Runtime, tokio::runtime::Runtime) {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    };
    (runtime(), runtime())
}

/// Picks the tenant of each request (sent as `x-tenant-id`), a fresh pick per request.
pub type PickTenant = Arc<dyn Fn() -> String + Send + Sync>;

/// What the counted requests of one phase gave.
pub struct Latencies {
    /// Requests answered with a success status, their body read.
    pub requests: usize,
    /// Requests that failed or were answered with an error status.
    pub errors: usize,
    /// The median latency of the successful requests.
    pub p50: Duration,
    /// Their 99th percentile.
    pub p99: Duration,
    /// The CPU time the whole process (servers and load alike, user and system) used while the
    /// counted requests ran: the same window as `requests`. (Read by the load benchmark; the
    /// growth example, which compiles this module too, does not report it.)
    #[allow(dead_code)]
    pub cpu: Duration,
}

/// The CPU time this process has used so far: every thread, user and system, read from
/// `/proc/self/stat` (Linux only) in clock ticks of 1/100 s.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat (Linux only)");
    // The fields after the command name, which is in parentheses and may hold spaces: utime and
    // stime are the 14th and 15th of the whole line.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("a command name") + 2..]
        .split(' ')
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

/// Posts `body` (JSON) to `url` from `connections` loops for `seconds` after a one-second
/// warm-up; with `tenant`, each request names the tenant it picks, without it none.
pub async fn drive(
    url: String,
    body: Vec<u8>,
    connections: usize,
    seconds: u64,
    tenant: Option<PickTenant>,
) -> Latencies {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    let start = Instant::now() + Duration::from_secs(1);
    let end = start + Duration::from_secs(seconds);
    // The process's CPU time over the counted window, read by a thread of its own at both ends.
    let cpu = std::thread::spawn(move || {
        std::thread::sleep(start.saturating_duration_since(Instant::now()));
        let before = process_cpu();
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        process_cpu().saturating_sub(before)
    });
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, body, tenant) =
                (client.clone(), url.clone(), body.clone(), tenant.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(100_000);
                let mut errors = 0usize;
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let mut request = client.post(&url).header("content-type", "application/json");
                    if let Some(tenant) = &tenant {
                        request = request.header("x-tenant-id", tenant());
                    }
                    let ok = match request.body(body.clone()).send().await {
                        Ok(response) => {
                            let status = response.status();
                            response.bytes().await.is_ok() && status.is_success()
                        }
                        Err(_) => false,
                    };
                    if sent >= start {
                        if ok {
                            latencies.push(sent.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, e) = task.await.unwrap();
        all.extend(latencies);
        errors += e;
    }
    all.sort_unstable();
    let at = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Latencies {
        requests: all.len(),
        errors,
        p50: at(0.50),
        p99: at(0.99),
        cpu: cpu.join().expect("the CPU reading thread"),
    }
}
