//! Redis for tests: the machine's shared Redis (with a channel per test) or a `redis-server` of
//! the test's own that it may stop and restart without touching anyone else's.

use std::net::TcpListener;
use std::time::Duration;

use crate::{in_ci, wait::eventually, DEFAULT_REDIS};

/// The machine's Redis; `None` when it is not answering outside CI.
pub async fn shared_redis_url() -> Option<String> {
    let url = crate::service_url(crate::REDIS_VAR, DEFAULT_REDIS, "the Redis tests");
    match redis_answers(&url).await {
        Ok(()) => Some(url),
        Err(e) => crate::unreachable("Redis", &url, e),
    }
}

async fn redis_answers(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| "timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A channel name no other test uses.
pub fn unique_channel() -> String {
    format!("rulebook:test:{:016x}", rand::random::<u64>())
}

/// A `redis-server` of this test's own on a free loopback port, stopped when dropped.
#[allow(missing_debug_implementations)]
pub struct PrivateRedis {
    /// The loopback port it listens on.
    pub port: u16,
    program: String,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    /// Starts one; `None` when there is no `redis-server` on the `PATH` outside CI.
    pub async fn start() -> Option<PrivateRedis> {
        let Some(program) = crate::find_on_path("redis-server") else {
            if in_ci() {
                panic!("CI=true but there is no `redis-server` on the PATH: install the redis-server package");
            }
            eprintln!("skipping: no `redis-server` on the PATH");
            return None;
        };
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut redis = PrivateRedis {
            port,
            program: program.to_string_lossy().into_owned(),
            child: None,
        };
        redis.restart().await;
        Some(redis)
    }

    /// Its URL, `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = crate::spawn_redis_server(&self.program, self.port);
        self.child = Some(child);
        let url = self.url();
        eventually(
            "the private redis-server to answer",
            Duration::from_secs(10),
            || {
                let url = url.clone();
                async move { redis_answers(&url).await.is_ok() }
            },
        )
        .await;
    }

    /// Kills the server (its clients see their connections drop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
